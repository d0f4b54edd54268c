/*
 * The AMQP side of a run: connect, log in, passively declare each
 * configured queue (which reads its ready messages and consumers without
 * changing anything), close.
 *
 * The TCP connect is ours, not librabbitmq's: a non-blocking connect and
 * poll() bounded by the deadline, so a refused connect (certain: nothing
 * listens) is told apart from a timeout (ambiguous), which the library's
 * amqp_socket_open_noblock() reports alike. The connected socket is handed
 * to the library, which keeps it non-blocking and polls with the handshake
 * and RPC timeouts we set from the time left before each step.
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>

#include "rabbitmq.h"

/* A connection.close from the server answers with these (AMQP 0-9-1). */
#define AMQP_REPLY_ACCESS_REFUSED 403
#define AMQP_REPLY_NOT_FOUND 404
#define AMQP_REPLY_NOT_ALLOWED 530
/* Server texts kept (result fields hold at most 4 KiB). */
#define RABBITMQ_PROPERTY_MAX 1024

static struct timeval
rabbitmq_tv(int64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	return tv;
}

static void
rabbitmq_fail(struct rabbitmq_amqp *a, enum troika_evidence evidence,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Record the session's failure; the first one is the one that counts. */
static void
rabbitmq_fail(struct rabbitmq_amqp *a, enum troika_evidence evidence,
    const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (a->error.len > 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	rabbitmq_text_add(&a->error, "%s", buf);
	a->evidence = evidence;
}

/*
 * A non-blocking TCP connect to the configured address, finished within
 * deadline. Returns the socket, or -1 after recording why on a.
 */
static int
rabbitmq_connect(const struct rabbitmq_conf *c, const struct timespec *deadline,
    struct rabbitmq_amqp *a)
{
	struct pollfd pfd;
	socklen_t len = sizeof(int);
	int fd, err = 0, r;

	fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1) {
		rabbitmq_fail(a, TROIKA_EVIDENCE_NONE, "cannot make a socket: %s",
		    strerror(errno));
		return -1;
	}
	if (connect(fd, (const struct sockaddr *)&c->addr, c->addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS) {
		err = errno;
		goto fail;
	}
	pfd.fd = fd;
	pfd.events = POLLOUT;
	for (;;) {
		int64_t left = rabbitmq_left_ms(deadline);

		if (left == 0) {
			err = ETIMEDOUT;
			goto fail;
		}
		r = poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int)left);
		if (r > 0)
			break;
		if (r == -1 && errno != EINTR) {
			err = errno;
			goto fail;
		}
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0)
		goto fail;
	return fd;

fail:
	close(fd);
	a->refused = err == ECONNREFUSED;
	if (err == ETIMEDOUT)
		rabbitmq_fail(a, TROIKA_EVIDENCE_AMBIGUOUS, "connect to %s port "
		    "%d timed out", c->host, c->port);
	else
		rabbitmq_fail(a, err == ECONNREFUSED || err == ECONNRESET ?
		    TROIKA_EVIDENCE_CERTAIN : TROIKA_EVIDENCE_AMBIGUOUS,
		    "connect to %s port %d: %s", c->host, c->port,
		    strerror(err));
	return -1;
}

/*
 * A copy of an AMQP string as a C string, at most RABBITMQ_PROPERTY_MAX
 * bytes (a NUL inside would cut it short).
 */
static char *
rabbitmq_bytes_dup(amqp_bytes_t b)
{
	size_t len = b.len > RABBITMQ_PROPERTY_MAX ? RABBITMQ_PROPERTY_MAX : b.len;
	char *s = malloc(len + 1);

	if (s == NULL)
		return NULL;
	if (len > 0)
		memcpy(s, b.bytes, len);
	s[len] = '\0';
	return s;
}

/* The string value of key in the server's connection.start properties. */
static char *
rabbitmq_server_property(amqp_connection_state_t conn, const char *key)
{
	amqp_table_t *t = amqp_get_server_properties(conn);
	size_t klen = strlen(key);

	if (t == NULL)
		return NULL;
	for (int i = 0; i < t->num_entries; i++) {
		const amqp_table_entry_t *e = &t->entries[i];

		if (e->key.len != klen || memcmp(e->key.bytes, key, klen) != 0)
			continue;
		if (e->value.kind != AMQP_FIELD_KIND_UTF8 &&
		    e->value.kind != AMQP_FIELD_KIND_BYTES)
			return NULL;
		return rabbitmq_bytes_dup(e->value.value.bytes);
	}
	return NULL;
}

/*
 * A library error of a step, in the result's terms. A broken connection
 * is certain when it was a reset; a timeout or something that does not
 * speak AMQP is ambiguous.
 */
static void
rabbitmq_library_error(struct rabbitmq_amqp *a, const char *step, int err,
    int saved_errno)
{
	switch (err) {
	case AMQP_STATUS_TIMEOUT:
	case AMQP_STATUS_HEARTBEAT_TIMEOUT:
		rabbitmq_fail(a, TROIKA_EVIDENCE_AMBIGUOUS, "%s timed out", step);
		break;
	case AMQP_STATUS_CONNECTION_CLOSED:
	case AMQP_STATUS_SOCKET_CLOSED:
		rabbitmq_fail(a, TROIKA_EVIDENCE_AMBIGUOUS, "%s: the server "
		    "closed the connection", step);
		break;
	case AMQP_STATUS_SOCKET_ERROR:
		if (saved_errno == ECONNRESET)
			rabbitmq_fail(a, TROIKA_EVIDENCE_CERTAIN, "%s: connection "
			    "reset by the server", step);
		else
			rabbitmq_fail(a, TROIKA_EVIDENCE_AMBIGUOUS, "%s: socket "
			    "error%s%s", step, saved_errno != 0 ? ": " : "",
			    saved_errno != 0 ? strerror(saved_errno) : "");
		break;
	case AMQP_STATUS_NO_MEMORY:
		rabbitmq_fail(a, TROIKA_EVIDENCE_NONE, "%s: out of memory", step);
		break;
	case AMQP_STATUS_BAD_AMQP_DATA:
	case AMQP_STATUS_INCOMPATIBLE_AMQP_VERSION:
	case AMQP_STATUS_UNKNOWN_CLASS:
	case AMQP_STATUS_UNKNOWN_METHOD:
	case AMQP_STATUS_UNEXPECTED_STATE:
	case AMQP_STATUS_WRONG_METHOD:
		rabbitmq_fail(a, TROIKA_EVIDENCE_AMBIGUOUS, "%s: not an AMQP "
		    "0-9-1 reply (%s)", step, amqp_error_string2(err));
		break;
	default:
		rabbitmq_fail(a, TROIKA_EVIDENCE_AMBIGUOUS, "%s: %s", step,
		    amqp_error_string2(err));
		break;
	}
}

/* A server's connection.close during login: refused credentials or vhost. */
static void
rabbitmq_login_refused(const struct rabbitmq_conf *c, struct rabbitmq_amqp *a,
    amqp_connection_state_t conn, const amqp_connection_close_t *cl)
{
	amqp_connection_close_ok_t ok = { 0 };
	int text_len = cl->reply_text.len > 300 ? 300 : (int)cl->reply_text.len;
	const char *text = cl->reply_text.bytes;

	if (cl->reply_code == AMQP_REPLY_ACCESS_REFUSED)
		rabbitmq_fail(a, TROIKA_EVIDENCE_CERTAIN, "login refused for "
		    "user \"%s\": %.*s", c->user, text_len, text);
	else if (cl->reply_code == AMQP_REPLY_NOT_ALLOWED)
		rabbitmq_fail(a, TROIKA_EVIDENCE_CERTAIN, "vhost \"%s\" refused "
		    "for user \"%s\": %.*s", c->vhost, c->user, text_len, text);
	else
		rabbitmq_fail(a, TROIKA_EVIDENCE_CERTAIN, "login: the server "
		    "closed the connection: %u %.*s", cl->reply_code, text_len,
		    text);
	/* Polite, and the broker logs a clean close rather than an abort. */
	amqp_send_method(conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
}

/* Set the RPC timeout to what is left; 0 when nothing is. */
static int64_t
rabbitmq_rpc_budget(amqp_connection_state_t conn, const struct timespec *deadline)
{
	int64_t left = rabbitmq_left_ms(deadline);
	struct timeval tv = rabbitmq_tv(left);

	if (left > 0)
		amqp_set_rpc_timeout(conn, &tv);
	return left;
}

/*
 * The reply of a failed RPC on channel ch. Returns 1 when the session goes
 * on (a channel error, recorded on qs when given), 0 when it broke.
 */
static int
rabbitmq_rpc_failed(struct rabbitmq_amqp *a, amqp_connection_state_t conn,
    amqp_channel_t ch, const char *step, struct rabbitmq_queue_stat *qs,
    int saved_errno)
{
	amqp_rpc_reply_t r = amqp_get_rpc_reply(conn);

	if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
		rabbitmq_library_error(a, step, r.library_error, saved_errno);
		return 0;
	}
	if (r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION) {
		rabbitmq_fail(a, TROIKA_EVIDENCE_AMBIGUOUS, "%s: no reply", step);
		return 0;
	}
	if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
		const amqp_channel_close_t *cl = r.reply.decoded;
		amqp_channel_close_ok_t ok = { 0 };

		if (qs != NULL) {
			qs->state = cl->reply_code == AMQP_REPLY_NOT_FOUND ?
			    RABBITMQ_QUEUE_MISSING : RABBITMQ_QUEUE_REFUSED;
			free(qs->error);
			qs->error = rabbitmq_bytes_dup(cl->reply_text);
		}
		if (amqp_send_method(conn, ch, AMQP_CHANNEL_CLOSE_OK_METHOD,
		    &ok) != AMQP_STATUS_OK) {
			rabbitmq_fail(a, TROIKA_EVIDENCE_AMBIGUOUS, "%s: cannot "
			    "acknowledge the channel's close", step);
			return 0;
		}
		if (qs == NULL) {
			rabbitmq_fail(a, TROIKA_EVIDENCE_CERTAIN, "%s: the server "
			    "closed the channel: %u %.*s", step, cl->reply_code,
			    (int)cl->reply_text.len, (const char *)cl->reply_text.bytes);
			return 0;
		}
		return 1;
	}
	if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
		const amqp_connection_close_t *cl = r.reply.decoded;
		amqp_connection_close_ok_t ok = { 0 };
		int len = cl->reply_text.len > 300 ? 300 : (int)cl->reply_text.len;

		rabbitmq_fail(a, TROIKA_EVIDENCE_CERTAIN, "%s: the server closed "
		    "the connection: %u %.*s", step, cl->reply_code, len,
		    (const char *)cl->reply_text.bytes);
		amqp_send_method(conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
		return 0;
	}
	rabbitmq_fail(a, TROIKA_EVIDENCE_AMBIGUOUS, "%s: unexpected method "
	    "0x%08x", step, r.reply.id);
	return 0;
}

/* Passive queue.declare of every configured queue, on channels from 1. */
static int
rabbitmq_declare_all(const struct rabbitmq_conf *c,
    const struct timespec *deadline, struct rabbitmq_amqp *a,
    amqp_connection_state_t conn)
{
	amqp_channel_t ch = 1;
	int open = 0;
	char step[300];

	for (size_t i = 0; i < c->nqueues; i++) {
		struct rabbitmq_queue_stat *qs = &a->queues[i];
		amqp_queue_declare_ok_t *ok;

		if (!open) {
			if (rabbitmq_rpc_budget(conn, deadline) == 0) {
				rabbitmq_fail(a, TROIKA_EVIDENCE_AMBIGUOUS,
				    "channel.open: no time left");
				return -1;
			}
			errno = 0;
			if (amqp_channel_open(conn, ch) == NULL) {
				rabbitmq_rpc_failed(a, conn, ch, "channel.open",
				    NULL, errno);
				return -1;
			}
			open = 1;
		}
		snprintf(step, sizeof(step), "queue.declare of \"%s\"",
		    c->queues[i]);
		if (rabbitmq_rpc_budget(conn, deadline) == 0) {
			rabbitmq_fail(a, TROIKA_EVIDENCE_AMBIGUOUS, "%s: no time "
			    "left", step);
			return -1;
		}
		errno = 0;
		ok = amqp_queue_declare(conn, ch, amqp_cstring_bytes(c->queues[i]),
		    1, 0, 0, 0, amqp_empty_table);
		if (ok != NULL) {
			qs->state = RABBITMQ_QUEUE_FOUND;
			qs->messages_ready = ok->message_count;
			qs->consumers = ok->consumer_count;
		} else {
			if (!rabbitmq_rpc_failed(a, conn, ch, step, qs, errno))
				return -1;
			/*
			 * The server closed the channel; a closed channel's
			 * number may be used again once close-ok is sent.
			 */
			open = 0;
		}
		amqp_maybe_release_buffers(conn);
	}
	return 0;
}

int
rabbitmq_amqp_run(const struct rabbitmq_conf *c, const struct timespec *deadline,
    struct rabbitmq_amqp *a)
{
	amqp_connection_state_t conn = NULL;
	amqp_socket_t *sock;
	amqp_rpc_reply_t r;
	struct timespec start;
	struct timeval tv;
	int fd, saved;

	memset(a, 0, sizeof(*a));
	if ((a->queues = calloc(c->nqueues > 0 ? c->nqueues : 1,
	    sizeof(*a->queues))) == NULL)
		return -ENOMEM;
	a->nqueues = c->nqueues;
	clock_gettime(CLOCK_MONOTONIC, &start);
	if ((fd = rabbitmq_connect(c, deadline, a)) == -1)
		return 0;
	if ((conn = amqp_new_connection()) == NULL ||
	    (sock = amqp_tcp_socket_new(conn)) == NULL) {
		close(fd);
		rabbitmq_fail(a, TROIKA_EVIDENCE_NONE, "out of memory");
		goto done;
	}
	/* From here the connection owns fd. */
	amqp_tcp_socket_set_sockfd(sock, fd);

	tv = rabbitmq_tv(rabbitmq_left_ms(deadline));
	if (tv.tv_sec == 0 && tv.tv_usec == 0) {
		rabbitmq_fail(a, TROIKA_EVIDENCE_AMBIGUOUS, "login: no time left");
		goto done;
	}
	amqp_set_handshake_timeout(conn, &tv);
	errno = 0;
	r = amqp_login(conn, c->vhost, 0, AMQP_DEFAULT_FRAME_SIZE,
	    c->heartbeat_s, AMQP_SASL_METHOD_PLAIN, c->user, c->password);
	saved = errno;
	if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
	    r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
		rabbitmq_login_refused(c, a, conn, r.reply.decoded);
		goto done;
	}
	if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
		rabbitmq_library_error(a, "login", r.library_error, saved);
		goto done;
	}
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		rabbitmq_fail(a, TROIKA_EVIDENCE_AMBIGUOUS, "login: unexpected "
		    "reply");
		goto done;
	}
	a->logged_in = 1;
	a->connect_seconds = rabbitmq_since(&start);
	a->product = rabbitmq_server_property(conn, "product");
	a->version = rabbitmq_server_property(conn, "version");
	a->cluster_name = rabbitmq_server_property(conn, "cluster_name");

	if (rabbitmq_declare_all(c, deadline, a, conn) == 0 &&
	    rabbitmq_rpc_budget(conn, deadline) > 0)
		/* Best effort: the answers are in already. */
		amqp_connection_close(conn, AMQP_REPLY_SUCCESS);

done:
	if (conn != NULL)
		amqp_destroy_connection(conn);
	return 0;
}

void
rabbitmq_amqp_clear(struct rabbitmq_amqp *a)
{
	if (a == NULL)
		return;
	rabbitmq_text_free(&a->error);
	free(a->product);
	free(a->version);
	free(a->cluster_name);
	for (size_t i = 0; i < a->nqueues; i++)
		free(a->queues[i].error);
	free(a->queues);
	memset(a, 0, sizeof(*a));
}
