/*
 * tcp: connect to a numeric address and port, optionally send some bytes
 * and wait for an expected substring in the reply. Async: a non-blocking
 * socket driven by events on the host's event base.
 *
 * Names are not resolved. getaddrinfo() on a name blocks, and a stalled
 * resolver would stall every check on the loop; so `host` must be a
 * numeric IPv4 or IPv6 address (AI_NUMERICHOST), and instance_new refuses
 * anything else with a log line saying so.
 *
 * Evidence: a refused or reset connection is certain (the service is not
 * there); a timeout, a reply without the expected text, or any other
 * error is ambiguous (the service may be slow or busy).
 */
#include <sys/socket.h>
#include <netdb.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include <troika/plugin.h>

#define TCP_READ_LIMIT_MAX (16LL * 1024 * 1024)
/* Longest form of the expect text quoted in messages. */
#define TCP_SHOWN_MAX 64

enum tcp_phase {
	TCP_IDLE = 0,
	TCP_CONNECTING,
	TCP_SENDING,
	TCP_READING,
};

struct tcp_check {
	const struct troika_host *host;
	struct troika_instance *inst;
	struct event_base *base;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	/* "127.0.0.1:80" or "[::1]:80": a numeric address and a port. Kept
	 * small: there is one of these per check, 1,000s per agent. */
	char peer[INET6_ADDRSTRLEN + IF_NAMESIZE + 24];
	char *send;                 /* decoded, may hold any byte */
	size_t send_len;
	char *expect;               /* decoded; NULL when not configured */
	size_t expect_len;
	char expect_shown[TCP_SHOWN_MAX + 8]; /* printable, for messages */
	size_t read_limit;
	struct event *timer; /* the run's own deadline */
	struct event *defer; /* reports a result decided inside check() */

	/* The current run; tcp_run_end() resets it. */
	struct troika_task *task;
	enum tcp_phase phase;
	int fd;
	struct event *io;
	struct timespec start;
	int64_t budget_ms;
	double connect_s; /* < 0: not connected */
	double response_s; /* < 0: no expected reply */
	size_t sent;
	char *buf;
	size_t buflen;

	/* The result, once decided. */
	enum troika_status status;
	enum troika_evidence evidence;
	char msg[256];
};

static const struct troika_option tcp_options[] = {
	{ .name = "host", .type = TROIKA_OPT_STRING, .required = 1,
	    .help = "numeric IPv4 or IPv6 address; names are not resolved" },
	{ .name = "port", .type = TROIKA_OPT_INT, .required = 1,
	    .min = 1, .max = 65535, .help = "TCP port" },
	{ .name = "send", .type = TROIKA_OPT_STRING,
	    .help = "bytes to send once connected; escapes \\r \\n \\t \\\\" },
	{ .name = "expect", .type = TROIKA_OPT_STRING,
	    .help = "text the reply must contain; escapes \\r \\n \\t \\\\" },
	{ .name = "read_limit", .type = TROIKA_OPT_SIZE, .default_value = "4KiB",
	    .min = 1, .max = TCP_READ_LIMIT_MAX,
	    .help = "most bytes read while looking for expect" },
	{ .name = NULL },
};

/*
 * Decode the escapes \r \n \t and \\ of s into a new buffer. Any other
 * backslash sequence is an error: -EINVAL with *ret_bad set to its offset,
 * so the log line can point at it.
 */
static int
tcp_unescape(const char *s, char **ret, size_t *ret_len, size_t *ret_bad)
{
	size_t n = strlen(s), j = 0;
	char *out;

	if ((out = malloc(n + 1)) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '\\') {
			out[j++] = s[i];
			continue;
		}
		switch (s[i + 1]) {
		case 'r':
			out[j++] = '\r';
			break;
		case 'n':
			out[j++] = '\n';
			break;
		case 't':
			out[j++] = '\t';
			break;
		case '\\':
			out[j++] = '\\';
			break;
		default:
			free(out);
			*ret_bad = i;
			return -EINVAL;
		}
		i++;
	}
	out[j] = '\0';
	*ret = out;
	*ret_len = j;
	return 0;
}

/* A printable, bounded form of bytes for messages (one line, no quotes). */
static void
tcp_show(const char *p, size_t len, char *out, size_t outlen)
{
	size_t j = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];
		char tmp[8];

		if (c == '\r')
			snprintf(tmp, sizeof(tmp), "\\r");
		else if (c == '\n')
			snprintf(tmp, sizeof(tmp), "\\n");
		else if (c == '\t')
			snprintf(tmp, sizeof(tmp), "\\t");
		else if (c == '\\' || c == '"')
			snprintf(tmp, sizeof(tmp), "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			snprintf(tmp, sizeof(tmp), "\\x%02x", c);
		else
			snprintf(tmp, sizeof(tmp), "%c", c);
		if (j + strlen(tmp) + 4 > outlen) {
			snprintf(out + j, outlen - j, "...");
			return;
		}
		memcpy(out + j, tmp, strlen(tmp));
		j += strlen(tmp);
	}
	out[j] = '\0';
}

/*
 * Parse the numeric address; "[::1]" is accepted as well as "::1". Names
 * are refused (see the top of the file).
 */
static int
tcp_parse_addr(struct tcp_check *t, const char *host, int64_t port)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
	};
	struct addrinfo *ai = NULL;
	char name[NI_MAXHOST], serv[16];
	char numhost[INET6_ADDRSTRLEN + IF_NAMESIZE];
	size_t len = strlen(host);
	int r;

	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		host++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(name)) {
		t->host->log(t->inst, TROIKA_LOG_ERR,
		    "host \"%s\" is not a numeric IPv4 or IPv6 address", host);
		return -EINVAL;
	}
	memcpy(name, host, len);
	name[len] = '\0';
	snprintf(serv, sizeof(serv), "%lld", (long long)port);
	if ((r = getaddrinfo(name, serv, &hints, &ai)) != 0) {
		if (r == EAI_NONAME)
			t->host->log(t->inst, TROIKA_LOG_ERR, "host \"%s\" is not "
			    "a numeric IPv4 or IPv6 address: names are not "
			    "resolved, as a blocking resolver would stall the "
			    "event loop", name);
		else
			t->host->log(t->inst, TROIKA_LOG_ERR,
			    "host \"%s\": %s", name, gai_strerror(r));
		return r == EAI_MEMORY ? -ENOMEM : -EINVAL;
	}
	memcpy(&t->addr, ai->ai_addr, ai->ai_addrlen);
	t->addrlen = ai->ai_addrlen;
	if (getnameinfo(ai->ai_addr, ai->ai_addrlen, numhost, sizeof(numhost),
	    NULL, 0, NI_NUMERICHOST) != 0)
		snprintf(numhost, sizeof(numhost), "%.*s",
		    (int)sizeof(numhost) - 1, name);
	if (ai->ai_family == AF_INET6)
		snprintf(t->peer, sizeof(t->peer), "[%s]:%lld", numhost,
		    (long long)port);
	else
		snprintf(t->peer, sizeof(t->peer), "%s:%lld", numhost,
		    (long long)port);
	freeaddrinfo(ai);
	return 0;
}

static void tcp_instance_free(void *state);
static void tcp_timer_cb(evutil_socket_t fd, short what, void *arg);
static void tcp_defer_cb(evutil_socket_t fd, short what, void *arg);

/* Decode a send/expect option; logs and fails on a bad escape. */
static int
tcp_opt_bytes(struct tcp_check *t, const char *name, char **ret,
    size_t *ret_len)
{
	const char *s = t->host->opt_string(t->inst, name);
	size_t bad = 0;
	int r;

	*ret = NULL;
	*ret_len = 0;
	if (!t->host->opt_isset(t->inst, name) || s == NULL)
		return 0;
	if ((r = tcp_unescape(s, ret, ret_len, &bad)) == -EINVAL)
		t->host->log(t->inst, TROIKA_LOG_ERR, "%s: unknown escape "
		    "\"\\%.1s\" at offset %zu; only \\r \\n \\t and \\\\ are "
		    "known", name, s + bad + 1, bad);
	return r;
}

static int
tcp_instance_new(const struct troika_host *host, struct troika_instance *inst,
    void **ret_state)
{
	struct tcp_check *t;
	int r;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return -ENOMEM;
	t->host = host;
	t->inst = inst;
	t->fd = -1;
	t->base = host->event_base(inst);
	if ((r = tcp_parse_addr(t, host->opt_string(inst, "host"),
	    host->opt_int(inst, "port"))) < 0)
		goto fail;
	if ((r = tcp_opt_bytes(t, "send", &t->send, &t->send_len)) < 0)
		goto fail;
	if ((r = tcp_opt_bytes(t, "expect", &t->expect, &t->expect_len)) < 0)
		goto fail;
	if (t->expect != NULL && t->expect_len == 0) {
		/* It would match anything: surely not what was meant. */
		host->log(inst, TROIKA_LOG_ERR, "expect must not be empty");
		r = -EINVAL;
		goto fail;
	}
	if (t->expect != NULL)
		tcp_show(t->expect, t->expect_len, t->expect_shown,
		    sizeof(t->expect_shown));
	t->read_limit = (size_t)host->opt_size(inst, "read_limit");
	if (t->expect != NULL && t->read_limit < t->expect_len) {
		host->log(inst, TROIKA_LOG_ERR, "read_limit (%zu bytes) is "
		    "shorter than expect (%zu bytes)", t->read_limit,
		    t->expect_len);
		r = -EINVAL;
		goto fail;
	}
	t->timer = evtimer_new(t->base, tcp_timer_cb, t);
	t->defer = event_new(t->base, -1, 0, tcp_defer_cb, t);
	if (t->timer == NULL || t->defer == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	*ret_state = t;
	return 0;

fail:
	tcp_instance_free(t);
	return r;
}

/* Close the socket and drop the events of the current run. */
static void
tcp_run_end(struct tcp_check *t)
{
	if (t->io != NULL)
		event_free(t->io);
	t->io = NULL;
	if (t->fd != -1)
		close(t->fd);
	t->fd = -1;
	if (t->timer != NULL)
		evtimer_del(t->timer);
	if (t->defer != NULL)
		event_del(t->defer);
	free(t->buf);
	t->buf = NULL;
	t->buflen = 0;
	t->task = NULL;
	t->phase = TCP_IDLE;
}

static void
tcp_instance_free(void *state)
{
	struct tcp_check *t = state;

	if (t == NULL)
		return;
	tcp_run_end(t);
	if (t->timer != NULL)
		event_free(t->timer);
	if (t->defer != NULL)
		event_free(t->defer);
	free(t->send);
	free(t->expect);
	free(t);
}

static double
tcp_elapsed_s(const struct tcp_check *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->start.tv_sec) +
	    (double)(now.tv_nsec - t->start.tv_nsec) / 1e9;
}

static void
tcp_set_result(struct tcp_check *t, enum troika_status status,
    enum troika_evidence evidence, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
tcp_set_result(struct tcp_check *t, enum troika_status status,
    enum troika_evidence evidence, const char *fmt, ...)
{
	va_list ap;

	t->status = status;
	t->evidence = evidence;
	va_start(ap, fmt);
	vsnprintf(t->msg, sizeof(t->msg), fmt, ap);
	va_end(ap);
}

/* Report the decided result and end the run. */
static void
tcp_report(struct tcp_check *t)
{
	struct troika_sample samples[2];
	struct troika_result res = {
		.size = sizeof(res),
		.status = t->status,
		.evidence = t->evidence,
		.samples = samples,
	};
	struct troika_task *task = t->task;
	char msg[sizeof(t->msg)];
	size_t n = 0;

	if (t->connect_s >= 0)
		samples[n++] = (struct troika_sample){
			.name = "troika_tcp_connect_seconds",
			.help = "Time to establish the TCP connection",
			.type = TROIKA_METRIC_GAUGE,
			.value = t->connect_s,
		};
	if (t->response_s >= 0)
		samples[n++] = (struct troika_sample){
			.name = "troika_tcp_response_seconds",
			.help = "Time from connect start to the expected reply",
			.type = TROIKA_METRIC_GAUGE,
			.value = t->response_s,
		};
	res.nsamples = n;
	/* The run ends before check_done(), which may start the next one. */
	memcpy(msg, t->msg, sizeof(msg));
	res.message = msg;
	tcp_run_end(t);
	t->host->check_done(task, &res);
}

static void
tcp_fail(struct tcp_check *t, enum troika_status status,
    enum troika_evidence evidence, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
tcp_fail(struct tcp_check *t, enum troika_status status,
    enum troika_evidence evidence, const char *fmt, ...)
{
	va_list ap;

	t->status = status;
	t->evidence = evidence;
	va_start(ap, fmt);
	vsnprintf(t->msg, sizeof(t->msg), fmt, ap);
	va_end(ap);
	tcp_report(t);
}

/* Evidence of a socket error: refused and reset are certain. */
static enum troika_evidence
tcp_evidence(int err)
{
	if (err == ECONNREFUSED || err == ECONNRESET)
		return TROIKA_EVIDENCE_CERTAIN;
	return TROIKA_EVIDENCE_AMBIGUOUS;
}

static void
tcp_connect_error(struct tcp_check *t, int err)
{
	if (err == ECONNREFUSED)
		tcp_set_result(t, TROIKA_STATUS_CRITICAL,
		    TROIKA_EVIDENCE_CERTAIN, "connection to %s refused",
		    t->peer);
	else
		tcp_set_result(t, TROIKA_STATUS_CRITICAL, tcp_evidence(err),
		    "connect to %s failed: %s", t->peer, strerror(err));
}

static void tcp_io_cb(evutil_socket_t fd, short what, void *arg);

/*
 * Wait for one event on the socket (the io event is not persistent). On
 * failure the run is over: the caller must not touch it any more.
 */
static void
tcp_wait(struct tcp_check *t, short what)
{
	if (t->io != NULL)
		event_free(t->io);
	t->io = event_new(t->base, t->fd, what, tcp_io_cb, t);
	if (t->io == NULL || event_add(t->io, NULL) == -1)
		tcp_fail(t, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "cannot add a socket event");
}

static void
tcp_done_ok(struct tcp_check *t)
{
	if (t->expect != NULL) {
		t->response_s = tcp_elapsed_s(t);
		tcp_fail(t, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE,
		    "\"%s\" received from %s in %.3f ms", t->expect_shown,
		    t->peer, t->response_s * 1e3);
	} else {
		tcp_fail(t, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE,
		    "connected to %s in %.3f ms%s", t->peer, t->connect_s * 1e3,
		    t->send_len > 0 ? ", request sent" : "");
	}
}

static void
tcp_start_reading(struct tcp_check *t)
{
	if (t->expect == NULL) {
		tcp_done_ok(t);
		return;
	}
	if ((t->buf = malloc(t->read_limit)) == NULL) {
		tcp_fail(t, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "out of memory for a %zu byte read buffer", t->read_limit);
		return;
	}
	t->phase = TCP_READING;
	tcp_wait(t, EV_READ);
}

static void
tcp_send_some(struct tcp_check *t)
{
	while (t->sent < t->send_len) {
		ssize_t n = send(t->fd, t->send + t->sent,
		    t->send_len - t->sent, MSG_NOSIGNAL);

		if (n >= 0) {
			t->sent += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			tcp_wait(t, EV_WRITE);
			return;
		}
		tcp_fail(t, TROIKA_STATUS_CRITICAL, tcp_evidence(errno),
		    "sending to %s failed after %zu bytes: %s", t->peer,
		    t->sent, strerror(errno));
		return;
	}
	tcp_start_reading(t);
}

static void
tcp_connected(struct tcp_check *t)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0) {
		tcp_connect_error(t, err);
		tcp_report(t);
		return;
	}
	t->connect_s = tcp_elapsed_s(t);
	t->phase = TCP_SENDING;
	tcp_send_some(t);
}

static void
tcp_read_some(struct tcp_check *t)
{
	for (;;) {
		size_t old = t->buflen;
		size_t from;
		ssize_t n;

		n = read(t->fd, t->buf + t->buflen, t->read_limit - t->buflen);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			tcp_wait(t, EV_READ);
			return;
		}
		if (n == -1) {
			tcp_fail(t, TROIKA_STATUS_CRITICAL, tcp_evidence(errno),
			    "reading from %s failed after %zu bytes: %s",
			    t->peer, t->buflen, strerror(errno));
			return;
		}
		if (n == 0) {
			tcp_fail(t, TROIKA_STATUS_CRITICAL,
			    TROIKA_EVIDENCE_AMBIGUOUS, "\"%s\" not received: "
			    "%s closed the connection after %zu bytes",
			    t->expect_shown, t->peer, t->buflen);
			return;
		}
		t->buflen += (size_t)n;
		/* Search only what is new, plus a possible split match. */
		from = old >= t->expect_len ? old - (t->expect_len - 1) : 0;
		if (memmem(t->buf + from, t->buflen - from, t->expect,
		    t->expect_len) != NULL) {
			tcp_done_ok(t);
			return;
		}
		if (t->buflen == t->read_limit) {
			tcp_fail(t, TROIKA_STATUS_CRITICAL,
			    TROIKA_EVIDENCE_AMBIGUOUS, "\"%s\" not found in the "
			    "first %zu bytes from %s (read_limit)",
			    t->expect_shown, t->buflen, t->peer);
			return;
		}
	}
}

static void
tcp_io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tcp_check *t = arg;

	(void)fd;
	(void)what;
	switch (t->phase) {
	case TCP_CONNECTING:
		tcp_connected(t);
		break;
	case TCP_SENDING:
		tcp_send_some(t);
		break;
	case TCP_READING:
		tcp_read_some(t);
		break;
	case TCP_IDLE:
		break;
	}
}

static void
tcp_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tcp_check *t = arg;
	long long ms = (long long)t->budget_ms;

	(void)fd;
	(void)what;
	switch (t->phase) {
	case TCP_CONNECTING:
		tcp_fail(t, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_AMBIGUOUS,
		    "connect to %s timed out after %lld ms", t->peer, ms);
		break;
	case TCP_SENDING:
		tcp_fail(t, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_AMBIGUOUS,
		    "sending to %s timed out after %lld ms (%zu of %zu bytes "
		    "sent)", t->peer, ms, t->sent, t->send_len);
		break;
	case TCP_READING:
		tcp_fail(t, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_AMBIGUOUS,
		    "\"%s\" not received from %s within %lld ms (%zu bytes "
		    "read)", t->expect_shown, t->peer, ms, t->buflen);
		break;
	case TCP_IDLE:
		break;
	}
}

static void
tcp_defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tcp_check *t = arg;

	(void)fd;
	if (what & EV_WRITE)
		tcp_send_some(t);
	else
		tcp_report(t);
}

/*
 * Whether the connection is up the moment connect() returns: to a local
 * address the kernel often runs the whole handshake inside connect().
 * Such a run needs no socket event. A failed connection shows POLLERR
 * and takes the ordinary path, where SO_ERROR says why.
 */
static int
tcp_connected_already(const struct tcp_check *t)
{
	struct pollfd pfd = { .fd = t->fd, .events = POLLOUT };

	return poll(&pfd, 1, 0) == 1 &&
	    (pfd.revents & (POLLOUT | POLLERR | POLLHUP)) == POLLOUT;
}

/*
 * The time this run may take: what the host allows minus a margin, so the
 * plugin's own, more telling timeout result normally arrives before the
 * host gives up on the task.
 */
static int64_t
tcp_budget_ms(int64_t remaining)
{
	int64_t margin = remaining / 10;

	if (margin > 100)
		margin = 100;
	return remaining - margin > 1 ? remaining - margin : 1;
}

/*
 * Decide a result inside check() and report it from the loop: check() must
 * return before the plugin calls check_done().
 */
static void
tcp_defer(struct tcp_check *t)
{
	event_active(t->defer, EV_TIMEOUT, 1);
}

static void
tcp_check(void *state, struct troika_task *task)
{
	struct tcp_check *t = state;
	struct timeval tv;

	t->task = task;
	t->phase = TCP_CONNECTING;
	t->connect_s = -1;
	t->response_s = -1;
	t->sent = 0;
	t->buflen = 0;
	clock_gettime(CLOCK_MONOTONIC, &t->start);
	t->budget_ms = tcp_budget_ms(t->host->task_remaining_ms(task));
	tv.tv_sec = t->budget_ms / 1000;
	tv.tv_usec = (t->budget_ms % 1000) * 1000;
	if (evtimer_add(t->timer, &tv) == -1) {
		tcp_set_result(t, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "cannot add a timer");
		tcp_defer(t);
		return;
	}
	t->fd = socket(t->addr.ss_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (t->fd == -1) {
		tcp_set_result(t, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "cannot create a socket: %s", strerror(errno));
		tcp_defer(t);
		return;
	}
	if (connect(t->fd, (struct sockaddr *)&t->addr, t->addrlen) == -1 &&
	    errno != EINPROGRESS) {
		/* Loopback often refuses at once, before any event. */
		tcp_connect_error(t, errno);
		tcp_defer(t);
		return;
	}
	if (tcp_connected_already(t)) {
		/* The rest of the run goes on from the loop, like a result. */
		t->phase = TCP_SENDING;
		t->connect_s = tcp_elapsed_s(t);
		event_active(t->defer, EV_WRITE, 1);
		return;
	}
	t->io = event_new(t->base, t->fd, EV_WRITE, tcp_io_cb, t);
	if (t->io == NULL || event_add(t->io, NULL) == -1) {
		tcp_set_result(t, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "cannot add a socket event");
		tcp_defer(t);
	}
}

static void
tcp_cancel(void *state, struct troika_task *task)
{
	struct tcp_check *t = state;

	if (t->task == task)
		tcp_run_end(t);
}

static const struct troika_plugin tcp_plugin = {
	.abi_major = TROIKA_PLUGIN_ABI_MAJOR,
	.abi_minor = TROIKA_PLUGIN_ABI_MINOR,
	.size = sizeof(struct troika_plugin),
	.name = "tcp",
	.version = TROIKA_VERSION,
	.description = "TCP connect, optional send and expect",
	.exec_model = TROIKA_EXEC_ASYNC,
	.options = tcp_options,
	.instance_new = tcp_instance_new,
	.instance_free = tcp_instance_free,
	.check = tcp_check,
	.cancel = tcp_cancel,
};

__attribute__((visibility("default"))) const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void);

const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void)
{
	return &tcp_plugin;
}
