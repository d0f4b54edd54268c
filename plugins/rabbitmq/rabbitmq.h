/*
 * rabbitmq plugin internals, shared by its three files:
 *   rabbitmq.c       descriptor, options, the verdict, metrics
 *   rabbitmq_action.c  start, stop, restart through the service manager
 *   rabbitmq_amqp.c  AMQP 0-9-1 (librabbitmq): login, passive queue.declare
 *   rabbitmq_mgmt.c  the management HTTP API (libcurl easy + jansson)
 * Everything here runs on a worker thread, one run of an instance at a time.
 */
#ifndef RABBITMQ_H
#define RABBITMQ_H

#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <troika/plugin.h>

/* The options, as validated by instance_new; read-only afterwards. */
struct rabbitmq_conf {
	char *host;
	struct sockaddr_storage addr; /* host and port, numeric */
	socklen_t addrlen;
	int port;
	char *vhost;
	char *user;
	char *password;
	char **queues;
	size_t nqueues;
	int64_t max_messages;  /* -1: no limit */
	int64_t min_consumers; /* 0: no minimum */
	int heartbeat_s;       /* AMQP heartbeat asked for; 0: none */
	char *mgmt_url;        /* without a trailing '/'; NULL: not used */
	char *mgmt_user;
	char *mgmt_password;
	int64_t mgmt_max_body;
	int mgmt_tls_verify;
};

struct event_base;
struct rabbitmq_svc_call;

/* One configured check. */
struct rabbitmq {
	const struct troika_host *host;
	struct troika_instance *inst;
	struct event_base *base;
	struct rabbitmq_conf conf;
	int curl_inited;
	/* Loop thread only: calls whose service_control() done is due. */
	struct rabbitmq_svc_call *calls;
};

/* The task's time left minus a margin (a tenth, at most 100 ms). */
int64_t rabbitmq_budget_ms(int64_t remaining);
/* ms from now, on CLOCK_MONOTONIC. */
void rabbitmq_deadline(int64_t ms, struct timespec *ret);
/* Report a result without samples or fields (evidence none). */
void rabbitmq_report(struct rabbitmq *rq, struct troika_task *task,
    enum troika_status status, const char *message);

/* rabbitmq_action.c: start, stop and restart. */
extern const struct troika_action rabbitmq_actions[];
void rabbitmq_action(void *state, struct troika_task *task, const char *name,
    const char *const *argv, size_t argc);
/* Free the calls still waiting for the service manager (instance_free). */
void rabbitmq_calls_free(struct rabbitmq *rq);

/* A growing one-line text; on allocation failure it stays what it was. */
struct rabbitmq_text {
	char *s;
	size_t len;
};

void rabbitmq_text_add(struct rabbitmq_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Append a separator first unless t is empty. */
void rabbitmq_text_sep(struct rabbitmq_text *t, const char *sep);
void rabbitmq_text_free(struct rabbitmq_text *t);
/* The text, or "" when nothing was added. */
const char *rabbitmq_text_str(const struct rabbitmq_text *t);

/* Milliseconds until deadline (CLOCK_MONOTONIC), 0 when past it. */
int64_t rabbitmq_left_ms(const struct timespec *deadline);
/* Seconds since start (CLOCK_MONOTONIC). */
double rabbitmq_since(const struct timespec *start);

/* What the AMQP side learnt of one configured queue. */
enum rabbitmq_queue_state {
	RABBITMQ_QUEUE_UNKNOWN = 0, /* not asked: the session broke first */
	RABBITMQ_QUEUE_FOUND,
	RABBITMQ_QUEUE_MISSING,     /* 404 NOT_FOUND */
	RABBITMQ_QUEUE_REFUSED,     /* another channel error (403, 405, ...) */
};

struct rabbitmq_queue_stat {
	enum rabbitmq_queue_state state;
	uint32_t messages_ready;
	uint32_t consumers;
	char *error; /* the server's reply text, for REFUSED */
};

struct rabbitmq_amqp {
	int logged_in;
	int refused; /* the TCP connect was refused */
	/* A failure of the session (connect, login, a broken connection). */
	struct rabbitmq_text error;
	enum troika_evidence evidence;
	double connect_seconds; /* connect and handshake, when logged in */
	char *product;          /* server properties; NULL when not sent */
	char *version;
	char *cluster_name;
	struct rabbitmq_queue_stat *queues; /* nqueues: the configured ones */
	size_t nqueues;
};

/*
 * Connect, log in and passively declare every configured queue, never
 * past deadline. Fills *ret (cleared first); returns 0, or -ENOMEM when
 * nothing could be tried.
 */
int rabbitmq_amqp_run(const struct rabbitmq_conf *conf,
    const struct timespec *deadline, struct rabbitmq_amqp *ret);
void rabbitmq_amqp_clear(struct rabbitmq_amqp *a);

/* Figures of one cluster node from /api/nodes; NAN where absent. */
struct rabbitmq_node_stat {
	char *name;
	int running;
	int mem_alarm;
	int disk_alarm;
	size_t npartitions;
	struct rabbitmq_text partitions; /* names, comma separated */
	double mem_used;
	double mem_limit;
	double disk_free;
	double disk_free_limit;
	double fd_used;
	double fd_total;
	double sockets_used;
	double sockets_total;
	double proc_used;
	double proc_total;
};

struct rabbitmq_mgmt {
	int ok;
	struct rabbitmq_text error;
	enum troika_evidence evidence;
	char *node; /* the node that answered: "this" node */
	char *cluster_name;
	char *version;
	struct rabbitmq_node_stat *nodes;
	size_t nnodes;
	struct rabbitmq_node_stat *local; /* the entry of node; may be NULL */
};

/*
 * Ask the management API (/api/overview, /api/nodes) within deadline.
 * Fills *ret (cleared first); returns 0, or -ENOMEM.
 */
int rabbitmq_mgmt_run(const struct rabbitmq_conf *conf,
    const struct timespec *deadline, struct rabbitmq_mgmt *ret);
void rabbitmq_mgmt_clear(struct rabbitmq_mgmt *m);

#endif
