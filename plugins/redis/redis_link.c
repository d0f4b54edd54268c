/*
 * redis_link: one hiredis async connection on the host's event base.
 *
 * hiredis 0.14 (Debian 12) is driven through a small adapter of our own
 * rather than its adapters/libevent.h, because the read path needs three
 * guards that the stock adapter cannot give:
 *  - a bound on what a reply may buffer: hiredis keeps reading a bulk
 *    string until all of it is there, so a server that announces a huge
 *    reply would grow the agent without limit; the adapter refuses to
 *    read once max_reply bytes are waiting, and array replies are capped
 *    through the reader's object functions;
 *  - no reply nobody asked for: hiredis 0.14 assert()s (aborts the agent)
 *    when a reply arrives with no callback waiting, outside pub/sub. So
 *    data on an idle connection is refused before hiredis parses it, and
 *    bytes left over after the reply to our last command are too;
 *  - errors classified for the evidence of a result (refused, reset,
 *    closed are certain; garbage and timeouts are not).
 *
 * hiredis writes with write(2): the host must ignore SIGPIPE (the agent
 * does); a closed peer then shows as EPIPE, a reset.
 *
 * Ownership: the redis_link belongs to its user, the redisAsyncContext to
 * hiredis once it is connected (hiredis frees it itself when the
 * connection fails). Every hiredis callback checks that its context is
 * still the link's current one, so callbacks that hiredis runs while it
 * tears a context down after the link let go of it are ignored.
 */
#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "redis.h"

/* No command of this plugin has an array reply longer than this. */
#define LINK_MAX_ARRAY 1024
/* Bytes of unexpected data quoted in a message. */
#define LINK_SHOWN_MAX 48

struct redis_link {
	struct event_base *base;
	const struct redis_link_ops *ops;
	void *arg;
	size_t max_reply;
	redisAsyncContext *ac; /* NULL once lost or dropped */
	struct event *rev;     /* the adapter's events; NULL after cleanup */
	struct event *wev;
	int waiting;           /* a reply is due */
	int too_large;         /* an array was refused */
	redisReplyObjectFunctions fn; /* the reader's, with a capped array */
	void *(*create_array)(const redisReadTask *, int);
};

int
redis_loss_is_certain(enum redis_loss loss)
{
	return loss == REDIS_LOSS_REFUSED || loss == REDIS_LOSS_RESET ||
	    loss == REDIS_LOSS_CLOSED;
}

/* 1 if hiredis' error text is the strerror() text of errnum. */
static int
link_errstr_is(const char *errstr, int errnum)
{
	return errstr != NULL && strstr(errstr, strerror(errnum)) != NULL;
}

static enum redis_loss
link_classify_io(const char *errstr)
{
	if (link_errstr_is(errstr, ECONNREFUSED))
		return REDIS_LOSS_REFUSED;
	if (link_errstr_is(errstr, ECONNRESET) ||
	    link_errstr_is(errstr, EPIPE))
		return REDIS_LOSS_RESET;
	return REDIS_LOSS_OTHER;
}

/* A printable, bounded form of bytes for messages. */
static void
link_show(const char *p, size_t len, char *out, size_t outlen)
{
	size_t j = 0;

	for (size_t i = 0; i < len && j + 5 < outlen; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			out[j++] = (char)c;
		else
			j += (size_t)snprintf(out + j, outlen - j, "\\x%02x",
			    c);
	}
	out[j < outlen ? j : outlen - 1] = '\0';
}

/*
 * Let go of the context and close it: hiredis runs the callbacks still
 * due (with NULL replies) and the disconnect callback, all of which see a
 * context that is no longer ours. Inside a hiredis callback the freeing
 * happens when that callback returns.
 */
static void
link_drop(struct redis_link *l)
{
	redisAsyncContext *ac = l->ac;

	if (ac == NULL)
		return;
	l->ac = NULL;
	l->waiting = 0;
	redisAsyncFree(ac);
}

/* Drop the connection for a reason of ours and tell the user. */
static void
link_fail(struct redis_link *l, enum redis_loss loss, const char *why)
{
	link_drop(l);
	l->ops->lost(l->arg, loss, why);
}

/* ---- the event adapter ---- */

static void
link_add_read(void *privdata)
{
	struct redis_link *l = privdata;

	if (l != NULL && l->rev != NULL)
		event_add(l->rev, NULL);
}

static void
link_del_read(void *privdata)
{
	struct redis_link *l = privdata;

	if (l != NULL && l->rev != NULL)
		event_del(l->rev);
}

static void
link_add_write(void *privdata)
{
	struct redis_link *l = privdata;

	if (l != NULL && l->wev != NULL)
		event_add(l->wev, NULL);
}

static void
link_del_write(void *privdata)
{
	struct redis_link *l = privdata;

	if (l != NULL && l->wev != NULL)
		event_del(l->wev);
}

/* hiredis frees the context: drop our events with it. */
static void
link_cleanup(void *privdata)
{
	struct redis_link *l = privdata;

	if (l == NULL)
		return;
	if (l->rev != NULL)
		event_free(l->rev);
	if (l->wev != NULL)
		event_free(l->wev);
	l->rev = NULL;
	l->wev = NULL;
}

/*
 * Readable while no reply is due: whatever is there (other than the end
 * of the connection, which hiredis reports itself) is a protocol breach.
 * Returns 1 when it dropped the link.
 */
static int
link_refuse_unsolicited(struct redis_link *l)
{
	char buf[LINK_SHOWN_MAX], shown[LINK_SHOWN_MAX * 4 + 8];
	char why[sizeof(shown) + 64];
	ssize_t n;

	n = recv(l->ac->c.fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
	if (n <= 0)
		return 0;
	link_show(buf, (size_t)n, shown, sizeof(shown));
	snprintf(why, sizeof(why), "unexpected data from the server: \"%s\"",
	    shown);
	link_fail(l, REDIS_LOSS_UNSOLICITED, why);
	return 1;
}

static void
link_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct redis_link *l = arg;
	redisAsyncContext *ac = l->ac;
	redisReader *rd;

	(void)fd;
	(void)what;
	if (ac == NULL)
		return;
	if ((ac->c.flags & REDIS_CONNECTED) && ac->replies.head == NULL) {
		if (link_refuse_unsolicited(l))
			return;
	}
	rd = ac->c.reader;
	if (rd != NULL && rd->len - rd->pos > l->max_reply) {
		char why[128];

		snprintf(why, sizeof(why), "reply larger than max_reply (%zu "
		    "bytes)", l->max_reply);
		link_fail(l, REDIS_LOSS_TOO_LARGE, why);
		return;
	}
	redisAsyncHandleRead(ac);
}

static void
link_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct redis_link *l = arg;

	(void)fd;
	(void)what;
	if (l->ac != NULL)
		redisAsyncHandleWrite(l->ac);
}

/*
 * The reader's array constructor with a cap: the stock one allocates the
 * announced number of element pointers before any element arrived.
 */
static void *
link_create_array(const redisReadTask *task, int elements)
{
	struct redis_link *l = task->privdata;

	if (elements < 0 || elements > LINK_MAX_ARRAY) {
		l->too_large = 1;
		return NULL; /* the reader stops with an error */
	}
	return l->create_array(task, elements);
}

static int
link_attach(struct redis_link *l, redisAsyncContext *ac)
{
	redisReader *rd = ac->c.reader;

	l->rev = event_new(l->base, ac->c.fd, EV_READ, link_read_cb, l);
	l->wev = event_new(l->base, ac->c.fd, EV_WRITE, link_write_cb, l);
	if (l->rev == NULL || l->wev == NULL) {
		link_cleanup(l);
		return -ENOMEM;
	}
	if (rd != NULL && rd->fn != NULL && rd->fn->createArray != NULL) {
		l->fn = *rd->fn;
		l->create_array = rd->fn->createArray;
		l->fn.createArray = link_create_array;
		rd->fn = &l->fn;
		rd->privdata = l;
	}
	ac->ev.data = l;
	ac->ev.addRead = link_add_read;
	ac->ev.delRead = link_del_read;
	ac->ev.addWrite = link_add_write;
	ac->ev.delWrite = link_del_write;
	ac->ev.cleanup = link_cleanup;
	event_add(l->rev, NULL);
	event_add(l->wev, NULL);
	return 0;
}

/* ---- hiredis callbacks ---- */

static struct redis_link *
link_of(const redisAsyncContext *ac)
{
	struct redis_link *l = ac->data;

	return l != NULL && l->ac == ac ? l : NULL;
}

static void
link_connect_cb(const redisAsyncContext *ac, int status)
{
	struct redis_link *l = link_of(ac);
	char why[160];

	if (l == NULL)
		return;
	if (status == REDIS_OK) {
		l->ops->connected(l->arg);
		return;
	}
	/* hiredis frees the context after this returns. */
	l->ac = NULL;
	snprintf(why, sizeof(why), "%s", ac->c.errstr);
	l->ops->lost(l->arg, link_classify_io(ac->c.errstr), why);
}

static void
link_disconnect_cb(const redisAsyncContext *ac, int status)
{
	struct redis_link *l = link_of(ac);
	enum redis_loss loss;
	char why[160];

	(void)status;
	if (l == NULL)
		return;
	/* hiredis frees the context after this returns. */
	l->ac = NULL;
	l->waiting = 0;
	switch (ac->c.err) {
	case REDIS_ERR_EOF:
		loss = REDIS_LOSS_CLOSED;
		snprintf(why, sizeof(why), "the server closed the connection");
		break;
	case REDIS_ERR_PROTOCOL:
		loss = REDIS_LOSS_PROTOCOL;
		snprintf(why, sizeof(why), "not a Redis reply: %s",
		    ac->c.errstr);
		break;
	case REDIS_ERR_OOM:
		if (l->too_large) {
			loss = REDIS_LOSS_TOO_LARGE;
			snprintf(why, sizeof(why), "array reply longer than %d "
			    "elements", LINK_MAX_ARRAY);
			break;
		}
		loss = REDIS_LOSS_OTHER;
		snprintf(why, sizeof(why), "%s", ac->c.errstr);
		break;
	case REDIS_ERR_IO:
		loss = link_classify_io(ac->c.errstr);
		snprintf(why, sizeof(why), "%s", ac->c.errstr);
		break;
	default:
		/*
		 * REDIS_ERR_OTHER: hiredis turns an error reply nobody asked
		 * for into this (the server's "max number of clients").
		 */
		loss = REDIS_LOSS_OTHER;
		snprintf(why, sizeof(why), "%s", ac->c.err != 0 ?
		    ac->c.errstr : "connection closed");
		break;
	}
	l->ops->lost(l->arg, loss, why);
}

static void
link_reply_cb(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_link *l = link_of(ac);
	const redisReader *rd = ac->c.reader;

	(void)privdata;
	if (l == NULL || r == NULL)
		return; /* torn down; the loss is reported on its own */
	l->waiting = 0;
	if (rd != NULL && rd->pos < rd->len) {
		/* More than we asked for: the stream can't be trusted. */
		char shown[LINK_SHOWN_MAX * 4 + 8], why[sizeof(shown) + 64];
		size_t n = rd->len - rd->pos;

		link_show(rd->buf + rd->pos, n < LINK_SHOWN_MAX ? n :
		    LINK_SHOWN_MAX, shown, sizeof(shown));
		snprintf(why, sizeof(why), "unexpected data after a reply: "
		    "\"%s\"", shown);
		link_fail(l, REDIS_LOSS_UNSOLICITED, why);
		return;
	}
	l->ops->reply(l->arg, r);
}

/* ---- the interface ---- */

int
redis_link_open(struct event_base *base, const char *ip, int port,
    size_t max_reply, const struct redis_link_ops *ops, void *arg,
    struct redis_link **ret_link, char *why, size_t whylen)
{
	struct redis_link *l;
	redisAsyncContext *ac;
	int r;

	*ret_link = NULL;
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	l->base = base;
	l->ops = ops;
	l->arg = arg;
	l->max_reply = max_reply;
	if ((ac = redisAsyncConnect(ip, port)) == NULL) {
		snprintf(why, whylen, "out of memory");
		free(l);
		return -ENOMEM;
	}
	if (ac->err != 0) {
		/* Loopback may refuse before any event. */
		snprintf(why, whylen, "%s", ac->errstr);
		r = link_classify_io(ac->errstr) == REDIS_LOSS_REFUSED ?
		    -ECONNREFUSED : -EIO;
		redisAsyncFree(ac);
		free(l);
		return r;
	}
	ac->data = l;
	l->ac = ac;
	if ((r = link_attach(l, ac)) < 0) {
		snprintf(why, whylen, "out of memory");
		l->ac = NULL;
		redisAsyncFree(ac);
		free(l);
		return r;
	}
	redisAsyncSetConnectCallback(ac, link_connect_cb);
	redisAsyncSetDisconnectCallback(ac, link_disconnect_cb);
	*ret_link = l;
	return 0;
}

int
redis_link_command(struct redis_link *l, int argc, const char **argv)
{
	if (l->ac == NULL)
		return -ENOTCONN;
	if (l->waiting)
		return -EBUSY;
	if (redisAsyncCommandArgv(l->ac, link_reply_cb, NULL, argc, argv,
	    NULL) != REDIS_OK)
		return -ENOTCONN;
	l->waiting = 1;
	return 0;
}

int
redis_link_usable(struct redis_link *l)
{
	char c;
	ssize_t n;

	if (l == NULL || l->ac == NULL || !(l->ac->c.flags & REDIS_CONNECTED))
		return 0;
	if (l->waiting)
		return 0;
	/*
	 * The read event reports a close while idle, but a close that came
	 * just before this run may not have been dispatched yet.
	 */
	n = recv(l->ac->c.fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

int
redis_link_busy(const struct redis_link *l)
{
	return l != NULL && l->waiting;
}

void
redis_link_free(struct redis_link *l)
{
	if (l == NULL)
		return;
	link_drop(l);
	free(l);
}
