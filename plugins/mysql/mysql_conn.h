/*
 * myconn: one MariaDB connection that runs a list of queries and closes,
 * driven by MariaDB Connector/C's non-blocking API on a libevent base.
 *
 * Every *_start/_cont call of Connector/C returns the events it waits for
 * (MYSQL_WAIT_READ/WRITE/TIMEOUT); myconn waits for them with one event on
 * the connection's socket and resumes the call. Rows are streamed
 * (mysql_use_result) to a callback one at a time, so a huge reply costs no
 * memory and is cut at MYCONN_MAX_ROWS.
 *
 * A run ends exactly once through the done callback, from the event loop
 * (never from myconn_start), after the connection was closed: cleanly
 * (COM_QUIT) when every query ran, abandoned otherwise (the operation in
 * progress is unwound, the socket shut down). The callback may free the
 * myconn.
 */
#ifndef MYSQL_CONN_H
#define MYSQL_CONN_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct myconn;

/* Rows per query beyond which the reply is refused as malformed. */
#define MYCONN_MAX_ROWS 10000
/* Largest packet accepted from the server. */
#define MYCONN_MAX_PACKET (1024UL * 1024)

struct myconn_target {
	const char *host;   /* numeric address; NULL: use socket */
	unsigned int port;
	const char *socket; /* unix socket path when host is NULL */
	const char *user;
	const char *password; /* may be NULL */
};

enum myconn_step {
	MYCONN_CONNECT = 0,
	MYCONN_QUERY,
	MYCONN_FETCH,
	MYCONN_CLOSE,
};

struct myconn_outcome {
	int ok;                /* connected and every query ran */
	enum myconn_step step; /* where it stopped */
	size_t query;          /* index of the query it stopped in */
	unsigned int error;    /* mysql_errno(), 0 when none */
	int sys_errno;         /* errno behind a failed or lost connection,
	                        * 0 if unknown */
	int timed_out;         /* the deadline passed */
	char message[256];     /* what went wrong; "" when ok */
};

/*
 * One row of query number query: nfields values (NULL for SQL NULL) with
 * their lengths, and the column names. Return 0 to go on, or a negative
 * errno to stop the run (it ends with that error and a message saying the
 * reply was refused).
 */
typedef int (*myconn_row_cb)(void *arg, size_t query,
    const char *const *names, const char *const *values,
    const unsigned long *lengths, unsigned int nfields);
typedef void (*myconn_done_cb)(void *arg, struct myconn *c,
    const struct myconn_outcome *o);

/*
 * Connect to target and run queries[0..nqueries-1] in order, all within
 * timeout_ms. queries must stay valid until done. Returns 0, or a negative
 * errno (nothing started, done never called).
 */
int myconn_start(struct event_base *base, const struct myconn_target *target,
    const char *const *queries, size_t nqueries, int64_t timeout_ms,
    myconn_row_cb row, myconn_done_cb done, void *arg,
    struct myconn **ret);

/* Abandon a run that is still going (done is not called) and free it.
 * Accepts NULL. */
void myconn_free(struct myconn *c);

/* Milliseconds since myconn_start(). */
double myconn_elapsed_ms(const struct myconn *c);

#endif
