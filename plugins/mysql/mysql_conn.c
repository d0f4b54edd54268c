/*
 * myconn: see mysql_conn.h. The one subtle part is ending a run early (the
 * deadline, a refused reply, myconn_free): Connector/C keeps the state of
 * the call in progress on a private coroutine stack, so simply closing the
 * handle would leak whatever that call had allocated. Instead the call is
 * resumed with MYSQL_WAIT_TIMEOUT (its wait "timed out"), after
 * mariadb_cancel() shut the socket down, so it unwinds and frees its own
 * state; then the handle is closed, with no further I/O possible.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <mysql.h>
#include <errmsg.h>

#include "mysql_conn.h"

/*
 * Stack of Connector/C's coroutine. Its default is tight for a client
 * whose malloc is interposed (sanitizers); memory is cheap here.
 */
#define MYCONN_STACK_SIZE (256UL * 1024)
/* Resumptions allowed for unwinding an abandoned call. */
#define MYCONN_UNWIND_MAX 64

enum myconn_op {
	OP_NONE = 0,
	OP_CONNECT,
	OP_QUERY,
	OP_FETCH,
	OP_CLOSE,
};

struct myconn {
	struct event_base *base;
	MYSQL *my;
	MYSQL_RES *res;
	enum myconn_op op;
	int waiting; /* wait flags of the suspended call; 0: none */

	/* Return values of the calls in progress. */
	MYSQL *ret_conn;
	int ret_int;
	MYSQL_ROW row;

	const char *const *queries;
	size_t nqueries;
	size_t qi;
	size_t nrows;
	const char **names;
	unsigned int nfields;

	struct event *io;
	struct event *timer;
	struct event *defer;
	struct timespec start;
	int64_t timeout_ms;

	myconn_row_cb row_cb;
	myconn_done_cb done;
	void *arg;
	struct myconn_outcome out;
};

static void myconn_step(struct myconn *c, int status);

double
myconn_elapsed_ms(const struct myconn *c)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - c->start.tv_sec) * 1e3 +
	    (double)(now.tv_nsec - c->start.tv_nsec) / 1e6;
}

static enum myconn_step
myconn_step_of(enum myconn_op op)
{
	switch (op) {
	case OP_QUERY:
		return MYCONN_QUERY;
	case OP_FETCH:
		return MYCONN_FETCH;
	case OP_CLOSE:
		return MYCONN_CLOSE;
	case OP_NONE:
	case OP_CONNECT:
		break;
	}
	return MYCONN_CONNECT;
}

/* Resume the suspended call with the events that happened. */
static int
myconn_cont(struct myconn *c, int events)
{
	switch (c->op) {
	case OP_CONNECT:
		return mysql_real_connect_cont(&c->ret_conn, c->my, events);
	case OP_QUERY:
		return mysql_real_query_cont(&c->ret_int, c->my, events);
	case OP_FETCH:
		return mysql_fetch_row_cont(&c->row, c->res, events);
	case OP_CLOSE:
		return mysql_close_cont(c->my, events);
	case OP_NONE:
		break;
	}
	return 0;
}

static void
myconn_free_names(struct myconn *c)
{
	free(c->names);
	c->names = NULL;
	c->nfields = 0;
}

/* Close the handle however far the run got; no I/O can block. */
static void
myconn_abandon(struct myconn *c)
{
	event_del(c->io);
	event_del(c->timer);
	event_del(c->defer);
	if (c->my == NULL)
		return;
	if (c->waiting != 0) {
		mariadb_cancel(c->my);
		for (int i = 0; c->waiting != 0 && i < MYCONN_UNWIND_MAX; i++)
			c->waiting = myconn_cont(c, MYSQL_WAIT_TIMEOUT);
		if (c->op == OP_CLOSE && c->waiting == 0) {
			/* The close finished, and freed the handle. */
			c->my = NULL;
			c->op = OP_NONE;
			return;
		}
	}
	mariadb_cancel(c->my);
	if (c->res != NULL)
		mysql_free_result(c->res);
	c->res = NULL;
	myconn_free_names(c);
	mysql_close(c->my);
	c->my = NULL;
	c->op = OP_NONE;
}

/* The run is over (the handle closed): tell the owner, last thing. */
static void
myconn_report(struct myconn *c)
{
	event_del(c->timer);
	c->done(c->arg, c, &c->out);
}

/*
 * The errno Connector/C put into its message: "Can't connect to server on
 * 'h' (111)" for a failed connect, "Lost connection to server at '...',
 * system error: 104" for a lost one; 0 when there is none.
 */
static int
myconn_sys_errno(unsigned int error, const char *msg)
{
	static const char tag[] = "system error: ";
	const char *p;
	int v = 0;

	if (error == CR_CONNECTION_ERROR || error == CR_CONN_HOST_ERROR) {
		if ((p = strrchr(msg, '(')) == NULL)
			return 0;
		p++;
	} else if (error == CR_SERVER_LOST) {
		if ((p = strstr(msg, tag)) == NULL)
			return 0;
		p += sizeof(tag) - 1;
	} else {
		return 0;
	}
	if (*p < '0' || *p > '9')
		return 0;
	for (; *p >= '0' && *p <= '9' && v < 100000; p++)
		v = v * 10 + (*p - '0');
	return *p == ')' || *p == '\0' || *p == ' ' ? v : 0;
}

/* End the run with the error Connector/C reported. */
static void
myconn_fail_mysql(struct myconn *c)
{
	c->out.ok = 0;
	c->out.step = myconn_step_of(c->op);
	c->out.query = c->qi;
	c->out.error = mysql_errno(c->my);
	snprintf(c->out.message, sizeof(c->out.message), "%s",
	    mysql_error(c->my));
	c->out.sys_errno = myconn_sys_errno(c->out.error, c->out.message);
	c->waiting = 0;
	myconn_abandon(c);
	myconn_report(c);
}

static void
myconn_fail(struct myconn *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* End the run for a reason of our own. */
static void
myconn_fail(struct myconn *c, int err, const char *fmt, ...)
{
	va_list ap;

	c->out.ok = 0;
	c->out.step = myconn_step_of(c->op);
	c->out.query = c->qi;
	c->out.error = 0;
	c->out.sys_errno = err;
	va_start(ap, fmt);
	vsnprintf(c->out.message, sizeof(c->out.message), fmt, ap);
	va_end(ap);
	myconn_abandon(c);
	myconn_report(c);
}

static void
myconn_io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct myconn *c = arg;
	int events = 0;

	(void)fd;
	if (what & EV_READ)
		events |= MYSQL_WAIT_READ;
	if (what & EV_WRITE)
		events |= MYSQL_WAIT_WRITE;
	if (what & EV_TIMEOUT)
		events |= MYSQL_WAIT_TIMEOUT;
	myconn_step(c, myconn_cont(c, events));
}

/* Wait for what the suspended call asked for. */
static int
myconn_wait(struct myconn *c, int status)
{
	my_socket fd = mysql_get_socket(c->my);
	struct timeval tv, *tvp = NULL;
	short what = 0;

	c->waiting = status;
	if (status & (MYSQL_WAIT_READ | MYSQL_WAIT_EXCEPT))
		what |= EV_READ;
	if (status & MYSQL_WAIT_WRITE)
		what |= EV_WRITE;
	if (what != 0 && fd == MARIADB_INVALID_SOCKET)
		return -EBADF;
	if (status & MYSQL_WAIT_TIMEOUT) {
		unsigned int ms = mysql_get_timeout_value_ms(c->my);

		tv.tv_sec = ms / 1000;
		tv.tv_usec = (ms % 1000) * 1000;
		tvp = &tv;
	}
	if (event_assign(c->io, c->base, what != 0 ? fd : -1, what,
	    myconn_io_cb, c) == -1 || event_add(c->io, tvp) == -1)
		return -ENOMEM;
	return 0;
}

static int
myconn_start_query(struct myconn *c)
{
	const char *q = c->queries[c->qi];

	c->op = OP_QUERY;
	return mysql_real_query_start(&c->ret_int, c->my, q, strlen(q));
}

/* After query qi: the next one, or the clean close. */
static int
myconn_next(struct myconn *c)
{
	if (c->op != OP_CONNECT)
		c->qi++;
	if (c->qi < c->nqueries)
		return myconn_start_query(c);
	c->op = OP_CLOSE;
	return mysql_close_start(c->my);
}

/* A result set begins: its column names, then the first row. */
static int
myconn_start_fetch(struct myconn *c, int *ret_status)
{
	MYSQL_FIELD *fields = mysql_fetch_fields(c->res);

	c->nfields = mysql_num_fields(c->res);
	c->names = calloc(c->nfields > 0 ? c->nfields : 1, sizeof(*c->names));
	if (c->names == NULL)
		return -ENOMEM;
	for (unsigned int i = 0; i < c->nfields; i++)
		c->names[i] = fields[i].name;
	c->nrows = 0;
	c->op = OP_FETCH;
	*ret_status = mysql_fetch_row_start(&c->row, c->res);
	return 0;
}

/* One row has come. Returns 0, or -1 after ending the run. */
static int
myconn_row(struct myconn *c)
{
	unsigned long *lengths = mysql_fetch_lengths(c->res);
	int r;

	if (++c->nrows > MYCONN_MAX_ROWS) {
		myconn_fail(c, E2BIG, "reply refused: more than %d rows",
		    MYCONN_MAX_ROWS);
		return -1;
	}
	if (c->row_cb == NULL)
		return 0;
	r = c->row_cb(c->arg, c->qi, c->names, (const char *const *)c->row,
	    lengths, c->nfields);
	if (r < 0) {
		myconn_fail(c, -r, "reply refused: %s", strerror(-r));
		return -1;
	}
	return 0;
}

/*
 * Carry the run on from a call's status: wait if it is suspended,
 * otherwise take its result and start the next call, until one has to
 * wait or the run is over.
 */
static void
myconn_step(struct myconn *c, int status)
{
	int r;

	for (;;) {
		if (status != 0) {
			if ((r = myconn_wait(c, status)) < 0)
				myconn_fail(c, -r, "cannot wait for the server: "
				    "%s", strerror(-r));
			return;
		}
		c->waiting = 0;
		switch (c->op) {
		case OP_CONNECT:
			if (c->ret_conn == NULL) {
				myconn_fail_mysql(c);
				return;
			}
			status = myconn_next(c);
			break;
		case OP_QUERY:
			if (c->ret_int != 0) {
				myconn_fail_mysql(c);
				return;
			}
			c->res = mysql_use_result(c->my);
			if (c->res == NULL) {
				if (mysql_errno(c->my) != 0) {
					myconn_fail_mysql(c);
					return;
				}
				status = myconn_next(c); /* no result set */
				break;
			}
			if (myconn_start_fetch(c, &status) < 0) {
				myconn_fail(c, ENOMEM, "out of memory");
				return;
			}
			break;
		case OP_FETCH:
			if (c->row == NULL) {
				if (mysql_errno(c->my) != 0) {
					myconn_fail_mysql(c);
					return;
				}
				mysql_free_result(c->res);
				c->res = NULL;
				myconn_free_names(c);
				status = myconn_next(c);
				break;
			}
			if (myconn_row(c) < 0)
				return;
			status = mysql_fetch_row_start(&c->row, c->res);
			break;
		case OP_CLOSE:
			c->my = NULL; /* mysql_close freed it */
			c->op = OP_NONE;
			c->out.ok = 1;
			c->out.step = MYCONN_CLOSE;
			myconn_report(c);
			return;
		case OP_NONE:
			return;
		}
	}
}

static const char *
myconn_doing(const struct myconn *c)
{
	switch (c->op) {
	case OP_CONNECT:
		return "connecting";
	case OP_QUERY:
		return "waiting for a query's reply";
	case OP_FETCH:
		return "reading a query's rows";
	case OP_CLOSE:
		return "closing";
	case OP_NONE:
		break;
	}
	return "idle";
}

static void
myconn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct myconn *c = arg;

	(void)fd;
	(void)what;
	c->out.timed_out = 1;
	myconn_fail(c, ETIMEDOUT, "timed out after %lld ms %s",
	    (long long)c->timeout_ms, myconn_doing(c));
}

static void
myconn_defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct myconn *c = arg;

	(void)fd;
	(void)what;
	myconn_step(c, c->waiting);
}

int
myconn_start(struct event_base *base, const struct myconn_target *t,
    const char *const *queries, size_t nqueries, int64_t timeout_ms,
    myconn_row_cb row, myconn_done_cb done, void *arg, struct myconn **ret)
{
	struct myconn *c;
	size_t stack = MYCONN_STACK_SIZE;
	unsigned long packet = MYCONN_MAX_PACKET;
	unsigned int off = 0, proto;
	struct timeval tv;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -ENOMEM;
	c->base = base;
	c->queries = queries;
	c->nqueries = nqueries;
	c->row_cb = row;
	c->done = done;
	c->arg = arg;
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
	clock_gettime(CLOCK_MONOTONIC, &c->start);
	c->io = event_new(base, -1, 0, myconn_io_cb, c);
	c->timer = evtimer_new(base, myconn_timer_cb, c);
	c->defer = event_new(base, -1, 0, myconn_defer_cb, c);
	if (c->io == NULL || c->timer == NULL || c->defer == NULL ||
	    (c->my = mysql_init(NULL)) == NULL)
		goto fail;
	proto = t->host != NULL ? MYSQL_PROTOCOL_TCP : MYSQL_PROTOCOL_SOCKET;
	/*
	 * No LOAD DATA LOCAL: a hostile server could otherwise ask for any
	 * file the agent can read. No option files are read (none named).
	 */
	if (mysql_options(c->my, MYSQL_OPT_NONBLOCK, &stack) != 0 ||
	    mysql_options(c->my, MYSQL_OPT_LOCAL_INFILE, &off) != 0 ||
	    mysql_options(c->my, MYSQL_OPT_MAX_ALLOWED_PACKET, &packet) != 0 ||
	    mysql_options(c->my, MYSQL_OPT_PROTOCOL, &proto) != 0)
		goto fail;
	tv.tv_sec = c->timeout_ms / 1000;
	tv.tv_usec = (c->timeout_ms % 1000) * 1000;
	if (evtimer_add(c->timer, &tv) == -1)
		goto fail;
	c->op = OP_CONNECT;
	c->waiting = mysql_real_connect_start(&c->ret_conn, c->my, t->host,
	    t->user, t->password, NULL, t->port, t->host == NULL ? t->socket :
	    NULL, 0);
	/* Even a finished call is taken up from the loop, never from here. */
	event_active(c->defer, EV_TIMEOUT, 1);
	*ret = c;
	return 0;

fail:
	myconn_free(c);
	return -ENOMEM;
}

void
myconn_free(struct myconn *c)
{
	if (c == NULL)
		return;
	if (c->io != NULL && c->timer != NULL && c->defer != NULL)
		myconn_abandon(c);
	else if (c->my != NULL)
		mysql_close(c->my);
	myconn_free_names(c);
	if (c->io != NULL)
		event_free(c->io);
	if (c->timer != NULL)
		event_free(c->timer);
	if (c->defer != NULL)
		event_free(c->defer);
	free(c);
}
