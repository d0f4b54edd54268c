/*
 * fcgi: one FastCGI request for a PHP-FPM status page. See fcgi.h.
 *
 * Records (FastCGI 1.0): an 8-byte header (version 1, type, request id,
 * content length, padding length, reserved), then content and padding.
 * A request is BEGIN_REQUEST (role RESPONDER, no keep-alive), PARAMS
 * name-value pairs ended by an empty PARAMS, and an empty STDIN. The
 * reply is STDOUT (a CGI response: headers, blank line, body) and STDERR
 * records, then END_REQUEST; without keep-alive the pool then closes.
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/util.h>

#include "fcgi.h"

#define FCGI_VERSION_1 1
#define FCGI_BEGIN_REQUEST 1
#define FCGI_END_REQUEST 3
#define FCGI_PARAMS 4
#define FCGI_STDIN 5
#define FCGI_STDOUT 6
#define FCGI_STDERR 7
#define FCGI_RESPONDER 1
#define FCGI_HEADER_LEN 8
/* The one request on each connection. */
#define FCGI_ID 1
/* FastCGI's protocolStatus values in END_REQUEST. */
#define FCGI_REQUEST_COMPLETE 0
#define FCGI_OVERLOADED 2

#define FCGI_PATH_MAX 1024
/* STDERR text kept for messages (the rest is dropped). */
#define FCGI_STDERR_KEEP 200
#define FCGI_READ_CHUNK 16384

enum fcgi_phase {
	FCGI_CONNECTING,
	FCGI_WRITING,
	FCGI_READING,
};

struct fcgi {
	const struct troika_host *host;
	struct troika_instance *inst;
	struct sockaddr_storage addr;
	int addrlen;
	char *shown; /* the address as configured, for messages */
	char *path;
	size_t max_body;
	struct event *defer;

	/* The current request. */
	fcgi_done_cb done;
	void *arg;
	int running;
	int fd;
	enum fcgi_phase phase;
	int64_t timeout_ms;
	struct event *io;
	struct event *timer;
	struct evbuffer *out;    /* request bytes not yet written */
	struct evbuffer *in;     /* record bytes not yet parsed */
	struct evbuffer *stdout_data;
	size_t received;         /* bytes read, all records */
	char err[FCGI_STDERR_KEEP + 1];
	size_t errlen;

	/* Its outcome. */
	enum troika_status status;
	enum troika_evidence evidence;
	char msg[320];
	long http_status;
	const char *body;        /* inside stdout_data */
	size_t bodylen;
};

static void fcgi_defer_cb(evutil_socket_t fd, short what, void *arg);

static int
fcgi_parse_address(struct fcgi *fc, const char *address)
{
	if (address[0] == '/') {
		struct sockaddr_un *sun = (struct sockaddr_un *)&fc->addr;

		if (strlen(address) >= sizeof(sun->sun_path)) {
			fc->host->log(fc->inst, TROIKA_LOG_ERR, "fastcgi: "
			    "socket path %s is longer than %zu bytes", address,
			    sizeof(sun->sun_path) - 1);
			return -EINVAL;
		}
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, address, strlen(address) + 1);
		fc->addrlen = (int)sizeof(*sun);
		return 0;
	}
	fc->addrlen = (int)sizeof(fc->addr);
	if (evutil_parse_sockaddr_port(address, (struct sockaddr *)&fc->addr,
	    &fc->addrlen) < 0 || (fc->addr.ss_family == AF_INET &&
	    ((struct sockaddr_in *)&fc->addr)->sin_port == 0) ||
	    (fc->addr.ss_family == AF_INET6 &&
	    ((struct sockaddr_in6 *)&fc->addr)->sin6_port == 0)) {
		fc->host->log(fc->inst, TROIKA_LOG_ERR, "fastcgi \"%s\" is not "
		    "a numeric ip:port, [ipv6]:port or an absolute socket "
		    "path", address);
		return -EINVAL;
	}
	return 0;
}

int
fcgi_new(const struct troika_host *host, struct troika_instance *inst,
    const char *address, const char *path, size_t max_body,
    struct fcgi **ret)
{
	struct fcgi *fc;
	int r;

	*ret = NULL;
	if ((fc = calloc(1, sizeof(*fc))) == NULL)
		return -ENOMEM;
	fc->host = host;
	fc->inst = inst;
	fc->fd = -1;
	fc->max_body = max_body;
	if ((r = fcgi_parse_address(fc, address)) < 0)
		goto fail;
	if (path[0] != '/' || strlen(path) > FCGI_PATH_MAX ||
	    strpbrk(path, "?#") != NULL) {
		host->log(inst, TROIKA_LOG_ERR, "status_path \"%s\" must be an "
		    "absolute path of at most %d bytes, without a query",
		    path, FCGI_PATH_MAX);
		r = -EINVAL;
		goto fail;
	}
	if ((fc->shown = strdup(address)) == NULL ||
	    (fc->path = strdup(path)) == NULL ||
	    (fc->stdout_data = evbuffer_new()) == NULL ||
	    (fc->defer = event_new(host->event_base(inst), -1, 0,
	    fcgi_defer_cb, fc)) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	*ret = fc;
	return 0;

fail:
	fcgi_free(fc);
	return r;
}

/* Release the request's socket and events; the outcome stays. */
static void
fcgi_end(struct fcgi *fc)
{
	if (fc->io != NULL)
		event_free(fc->io);
	fc->io = NULL;
	if (fc->timer != NULL)
		event_free(fc->timer);
	fc->timer = NULL;
	if (fc->fd >= 0)
		close(fc->fd);
	fc->fd = -1;
	if (fc->out != NULL)
		evbuffer_free(fc->out);
	fc->out = NULL;
	if (fc->in != NULL)
		evbuffer_free(fc->in);
	fc->in = NULL;
	if (fc->defer != NULL)
		event_del(fc->defer);
	fc->running = 0;
}

void
fcgi_abort(struct fcgi *fc)
{
	if (fc != NULL && fc->running)
		fcgi_end(fc);
}

void
fcgi_free(struct fcgi *fc)
{
	if (fc == NULL)
		return;
	fcgi_abort(fc);
	if (fc->defer != NULL)
		event_free(fc->defer);
	if (fc->stdout_data != NULL)
		evbuffer_free(fc->stdout_data);
	free(fc->shown);
	free(fc->path);
	free(fc);
}

static void
fcgi_set(struct fcgi *fc, enum troika_status status,
    enum troika_evidence evidence, const char *fmt, va_list ap)
{
	fc->status = status;
	fc->evidence = evidence;
	vsnprintf(fc->msg, sizeof(fc->msg), fmt, ap);
}

static void
fcgi_finish(struct fcgi *fc, enum troika_status status,
    enum troika_evidence evidence, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* End the request with this outcome and report it. */
static void
fcgi_finish(struct fcgi *fc, enum troika_status status,
    enum troika_evidence evidence, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fcgi_set(fc, status, evidence, fmt, ap);
	va_end(ap);
	fcgi_end(fc);
	fc->done(fc, fc->arg);
}

static void
fcgi_defer(struct fcgi *fc, enum troika_status status,
    enum troika_evidence evidence, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The same, from the loop: fcgi_get() must return first. */
static void
fcgi_defer(struct fcgi *fc, enum troika_status status,
    enum troika_evidence evidence, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fcgi_set(fc, status, evidence, fmt, ap);
	va_end(ap);
	event_active(fc->defer, EV_TIMEOUT, 1);
}

static void
fcgi_defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fcgi *fc = arg;

	(void)fd;
	(void)what;
	fcgi_end(fc);
	fc->done(fc, fc->arg);
}

/* A failed socket call: refused and reset are certain, the rest not. */
static void
fcgi_fail_errno(struct fcgi *fc, int err, const char *doing)
{
	enum troika_evidence ev = TROIKA_EVIDENCE_AMBIGUOUS;
	const char *what = "";

	if (err == ECONNREFUSED) {
		ev = TROIKA_EVIDENCE_CERTAIN;
		what = "connection refused: ";
	} else if (err == ECONNRESET || err == EPIPE) {
		ev = TROIKA_EVIDENCE_CERTAIN;
		what = "connection reset: ";
	} else if (err == ENOENT) {
		/* FPM removes its socket when it stops. */
		ev = TROIKA_EVIDENCE_CERTAIN;
		what = "no socket: ";
	} else if (err == EAGAIN && fc->addr.ss_family == AF_UNIX) {
		what = "the socket's listen queue is full: ";
	}
	fcgi_finish(fc, TROIKA_STATUS_CRITICAL, ev, "%s%s %s: %s", what, doing,
	    fc->shown, strerror(err));
}

/* One record header. */
static int
fcgi_add_header(struct evbuffer *b, int type, size_t len)
{
	unsigned char h[FCGI_HEADER_LEN] = {
		FCGI_VERSION_1, (unsigned char)type, 0, FCGI_ID,
		(unsigned char)(len >> 8), (unsigned char)(len & 0xff), 0, 0,
	};

	return evbuffer_add(b, h, sizeof(h));
}

/* A name-value pair: lengths below 128 in one byte, else four. */
static int
fcgi_add_pair(struct evbuffer *b, const char *name, const char *value)
{
	size_t lens[2] = { strlen(name), strlen(value) };

	for (int i = 0; i < 2; i++) {
		unsigned char l[4];

		if (lens[i] < 128) {
			l[0] = (unsigned char)lens[i];
			if (evbuffer_add(b, l, 1) < 0)
				return -1;
			continue;
		}
		l[0] = (unsigned char)(0x80 | ((lens[i] >> 24) & 0x7f));
		l[1] = (unsigned char)(lens[i] >> 16);
		l[2] = (unsigned char)(lens[i] >> 8);
		l[3] = (unsigned char)lens[i];
		if (evbuffer_add(b, l, 4) < 0)
			return -1;
	}
	if (evbuffer_add(b, name, lens[0]) < 0 ||
	    evbuffer_add(b, value, lens[1]) < 0)
		return -1;
	return 0;
}

/*
 * The whole request. FPM finds its status page by SCRIPT_NAME and wants
 * SCRIPT_FILENAME to be set; "json" in the query picks the JSON form.
 */
static int
fcgi_build(struct fcgi *fc)
{
	static const unsigned char begin[8] = {
		0, FCGI_RESPONDER, 0 /* flags: close after the reply */,
	};
	struct evbuffer *params;
	char uri[FCGI_PATH_MAX + 8];
	int r = -1;

	if ((params = evbuffer_new()) == NULL)
		return -1;
	snprintf(uri, sizeof(uri), "%s?json", fc->path);
	if (fcgi_add_pair(params, "GATEWAY_INTERFACE", "CGI/1.1") < 0 ||
	    fcgi_add_pair(params, "SERVER_SOFTWARE", "troika") < 0 ||
	    fcgi_add_pair(params, "SERVER_PROTOCOL", "HTTP/1.1") < 0 ||
	    fcgi_add_pair(params, "REQUEST_METHOD", "GET") < 0 ||
	    fcgi_add_pair(params, "SCRIPT_NAME", fc->path) < 0 ||
	    fcgi_add_pair(params, "SCRIPT_FILENAME", fc->path) < 0 ||
	    fcgi_add_pair(params, "REQUEST_URI", uri) < 0 ||
	    fcgi_add_pair(params, "QUERY_STRING", "json") < 0)
		goto out;
	/* Well below one record's 65535 bytes: status_path is bounded. */
	if (fcgi_add_header(fc->out, FCGI_BEGIN_REQUEST, sizeof(begin)) < 0 ||
	    evbuffer_add(fc->out, begin, sizeof(begin)) < 0 ||
	    fcgi_add_header(fc->out, FCGI_PARAMS,
	    evbuffer_get_length(params)) < 0 ||
	    evbuffer_add_buffer(fc->out, params) < 0 ||
	    fcgi_add_header(fc->out, FCGI_PARAMS, 0) < 0 ||
	    fcgi_add_header(fc->out, FCGI_STDIN, 0) < 0)
		goto out;
	r = 0;
out:
	evbuffer_free(params);
	return r;
}

/*
 * The CGI response in stdout_data: headers, a blank line, the body. Only
 * Status matters (FPM sends one for errors; none means 200).
 */
static void
fcgi_response(struct fcgi *fc)
{
	size_t len = evbuffer_get_length(fc->stdout_data);
	char *data = (char *)evbuffer_pullup(fc->stdout_data, -1);
	char *p, *end = NULL;
	size_t skip = 0;

	fc->http_status = 200;
	for (size_t i = 0; data != NULL && i < len; i++) {
		if (i + 3 < len && memcmp(data + i, "\r\n\r\n", 4) == 0) {
			end = data + i;
			skip = 4;
			break;
		}
		if (i + 1 < len && memcmp(data + i, "\n\n", 2) == 0) {
			end = data + i;
			skip = 2;
			break;
		}
	}
	if (end == NULL) {
		fcgi_finish(fc, TROIKA_STATUS_CRITICAL,
		    TROIKA_EVIDENCE_AMBIGUOUS, "the pool's reply has no CGI "
		    "headers (%zu bytes)%s%s", len, fc->errlen > 0 ? ": " : "",
		    fc->err);
		return;
	}
	for (p = data; p < end;) {
		char *eol = memchr(p, '\n', (size_t)(end - p));

		if (eol == NULL)
			eol = end;
		if ((size_t)(eol - p) > 7 && strncasecmp(p, "Status:", 7) == 0)
			fc->http_status = strtol(p + 7, NULL, 10);
		p = eol + 1;
	}
	fc->body = end + skip;
	fc->bodylen = len - (size_t)(end + skip - data);
	fcgi_finish(fc, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE, "%s%s",
	    fc->errlen > 0 ? "stderr: " : "", fc->err);
}

/*
 * Handle the complete records in fc->in. Returns 1 when the request
 * ended (reported), 0 to read on.
 */
static int
fcgi_records(struct fcgi *fc)
{
	unsigned char h[FCGI_HEADER_LEN];

	while (evbuffer_copyout(fc->in, h, sizeof(h)) ==
	    (ev_ssize_t)sizeof(h)) {
		size_t clen = ((size_t)h[4] << 8) | h[5];
		size_t total = sizeof(h) + clen + h[6];
		unsigned char end[8];

		if (h[0] != FCGI_VERSION_1 || ((h[2] << 8) | h[3]) != FCGI_ID) {
			fcgi_finish(fc, TROIKA_STATUS_CRITICAL,
			    TROIKA_EVIDENCE_AMBIGUOUS, "not a FastCGI reply "
			    "from %s (record version %u, id %u)", fc->shown,
			    h[0], (unsigned)((h[2] << 8) | h[3]));
			return 1;
		}
		if (evbuffer_get_length(fc->in) < total)
			return 0;
		evbuffer_drain(fc->in, sizeof(h));
		switch (h[1]) {
		case FCGI_STDOUT:
			if (evbuffer_get_length(fc->stdout_data) + clen >
			    fc->max_body) {
				fcgi_finish(fc, TROIKA_STATUS_CRITICAL,
				    TROIKA_EVIDENCE_AMBIGUOUS, "reply larger "
				    "than max_body (%zu bytes)", fc->max_body);
				return 1;
			}
			evbuffer_remove_buffer(fc->in, fc->stdout_data, clen);
			break;
		case FCGI_STDERR: {
			size_t keep = FCGI_STDERR_KEEP - fc->errlen;

			if (keep > clen)
				keep = clen;
			evbuffer_remove(fc->in, fc->err + fc->errlen, keep);
			evbuffer_drain(fc->in, clen - keep);
			for (size_t i = fc->errlen; i < fc->errlen + keep; i++)
				if ((unsigned char)fc->err[i] < 0x20 ||
				    (unsigned char)fc->err[i] >= 0x7f)
					fc->err[i] = ' ';
			fc->errlen += keep;
			fc->err[fc->errlen] = '\0';
			break;
		}
		case FCGI_END_REQUEST:
			if (clen < sizeof(end)) {
				fcgi_finish(fc, TROIKA_STATUS_CRITICAL,
				    TROIKA_EVIDENCE_AMBIGUOUS, "short "
				    "END_REQUEST record from %s", fc->shown);
				return 1;
			}
			evbuffer_remove(fc->in, end, sizeof(end));
			if (end[4] == FCGI_OVERLOADED) {
				fcgi_finish(fc, TROIKA_STATUS_CRITICAL,
				    TROIKA_EVIDENCE_AMBIGUOUS, "the pool is "
				    "overloaded (FastCGI FCGI_OVERLOADED)");
				return 1;
			}
			if (end[4] != FCGI_REQUEST_COMPLETE) {
				fcgi_finish(fc, TROIKA_STATUS_CRITICAL,
				    TROIKA_EVIDENCE_AMBIGUOUS, "the pool "
				    "refused the request (FastCGI protocol "
				    "status %u)", end[4]);
				return 1;
			}
			fcgi_response(fc);
			return 1;
		default:
			/* Types a responder does not send: skip them. */
			evbuffer_drain(fc->in, clen);
			break;
		}
		evbuffer_drain(fc->in, h[6]); /* padding */
	}
	return 0;
}

static void
fcgi_read(struct fcgi *fc)
{
	int n = evbuffer_read(fc->in, fc->fd, FCGI_READ_CHUNK);

	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		fcgi_fail_errno(fc, errno, "reading from");
		return;
	}
	if (n == 0) {
		if (fc->received == 0)
			fcgi_finish(fc, TROIKA_STATUS_CRITICAL,
			    TROIKA_EVIDENCE_AMBIGUOUS, "%s closed the "
			    "connection without a reply "
			    "(listen.allowed_clients?)",
			    fc->shown);
		else
			fcgi_finish(fc, TROIKA_STATUS_CRITICAL,
			    TROIKA_EVIDENCE_AMBIGUOUS, "%s closed the "
			    "connection mid-reply, after %zu bytes", fc->shown,
			    fc->received);
		return;
	}
	fc->received += (size_t)n;
	fcgi_records(fc);
}

static void fcgi_io_cb(evutil_socket_t fd, short what, void *arg);

/* Wait for what (EV_READ or EV_WRITE) on the socket from now on. */
static int
fcgi_watch(struct fcgi *fc, short what)
{
	if (fc->io != NULL)
		event_free(fc->io);
	fc->io = event_new(fc->host->event_base(fc->inst), fc->fd,
	    what | EV_PERSIST, fcgi_io_cb, fc);
	if (fc->io == NULL || event_add(fc->io, NULL) < 0)
		return -1;
	return 0;
}

static void
fcgi_write(struct fcgi *fc)
{
	while (evbuffer_get_length(fc->out) > 0) {
		size_t len = evbuffer_get_length(fc->out);
		unsigned char *data = evbuffer_pullup(fc->out, -1);
		/* MSG_NOSIGNAL: a pool that hung up is an error, no SIGPIPE. */
		ssize_t n = send(fc->fd, data, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			fcgi_fail_errno(fc, errno, "writing to");
			return;
		}
		evbuffer_drain(fc->out, (size_t)n);
	}
	fc->phase = FCGI_READING;
	if (fcgi_watch(fc, EV_READ) < 0)
		fcgi_finish(fc, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "cannot watch the socket: out of memory");
}

static void
fcgi_io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fcgi *fc = arg;
	int err = 0;
	socklen_t len = sizeof(err);

	(void)what;
	switch (fc->phase) {
	case FCGI_CONNECTING:
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err != 0) {
			fcgi_fail_errno(fc, err, "connecting to");
			return;
		}
		fc->phase = FCGI_WRITING;
		fcgi_write(fc);
		break;
	case FCGI_WRITING:
		fcgi_write(fc);
		break;
	case FCGI_READING:
		fcgi_read(fc);
		break;
	}
}

static void
fcgi_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fcgi *fc = arg;
	static const char *const doing[] = {
		[FCGI_CONNECTING] = "connecting to",
		[FCGI_WRITING] = "writing to",
		[FCGI_READING] = "waiting for the reply of",
	};

	(void)fd;
	(void)what;
	fcgi_finish(fc, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_AMBIGUOUS,
	    "timed out after %lld ms %s %s", (long long)fc->timeout_ms,
	    doing[fc->phase], fc->shown);
}

void
fcgi_get(struct fcgi *fc, int64_t timeout_ms, fcgi_done_cb done, void *arg)
{
	struct event_base *base = fc->host->event_base(fc->inst);
	struct timeval tv;

	fcgi_abort(fc);
	fc->done = done;
	fc->arg = arg;
	fc->running = 1;
	fc->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
	fc->phase = FCGI_CONNECTING;
	fc->received = 0;
	fc->errlen = 0;
	fc->err[0] = '\0';
	fc->http_status = 0;
	fc->body = NULL;
	fc->bodylen = 0;
	evbuffer_drain(fc->stdout_data, evbuffer_get_length(fc->stdout_data));
	tv.tv_sec = (time_t)(fc->timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(fc->timeout_ms % 1000) * 1000;
	if ((fc->out = evbuffer_new()) == NULL ||
	    (fc->in = evbuffer_new()) == NULL ||
	    (fc->timer = evtimer_new(base, fcgi_timer_cb, fc)) == NULL ||
	    evtimer_add(fc->timer, &tv) < 0 || fcgi_build(fc) < 0) {
		fcgi_defer(fc, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "out of memory for the request");
		return;
	}
	fc->fd = socket(fc->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fc->fd < 0) {
		fcgi_defer(fc, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "cannot make a socket: %s", strerror(errno));
		return;
	}
	if (connect(fc->fd, (struct sockaddr *)&fc->addr,
	    (socklen_t)fc->addrlen) == 0) {
		fc->phase = FCGI_WRITING;
	} else if (errno != EINPROGRESS) {
		int err = errno;
		enum troika_evidence ev = err == ECONNREFUSED ||
		    err == ENOENT ? TROIKA_EVIDENCE_CERTAIN :
		    TROIKA_EVIDENCE_AMBIGUOUS;

		fcgi_defer(fc, TROIKA_STATUS_CRITICAL, ev, "%sconnecting to "
		    "%s: %s", err == ECONNREFUSED ? "connection refused: " :
		    err == ENOENT ? "no socket: " : err == EAGAIN ?
		    "the socket's listen queue is full: " : "", fc->shown,
		    strerror(err));
		return;
	}
	if (fcgi_watch(fc, EV_WRITE) < 0)
		fcgi_defer(fc, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "cannot watch the socket: out of memory");
}

enum troika_status
fcgi_outcome(const struct fcgi *fc, enum troika_evidence *ret_evidence,
    char *msg, size_t msglen)
{
	*ret_evidence = fc->evidence;
	snprintf(msg, msglen, "%s", fc->msg);
	return fc->status;
}

long
fcgi_status(const struct fcgi *fc)
{
	return fc->http_status;
}

const char *
fcgi_body(const struct fcgi *fc, size_t *ret_len)
{
	*ret_len = fc->bodylen;
	return fc->body != NULL ? fc->body : "";
}
