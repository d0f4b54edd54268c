/*
 * The rabbitmq plugin, loaded from the build tree and driven through the
 * fake host. The plugin is blocking, so check() runs in the test's thread
 * while scripted servers answer from their own threads on 127.0.0.1: a
 * fake AMQP 0-9-1 broker (handshake, refused logins and vhosts, passive
 * queue.declare, stalls, forced closes) and a fake management API (JSON
 * replies, errors, silence, oversized bodies), plus raw misbehaviour
 * (silence, early close, reset, garbage, an oversized frame).
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "fake_host.h"

#define RABBITMQ_PLUGIN TEST_BUILD_PLUGIN_DIR "/troika-rabbitmq.so"

/* ---- a scripted server on its own thread ---- */

enum amqp_mode {
	AMQP_BROKER,      /* speak AMQP as scripted below */
	AMQP_SILENT,      /* accept, say nothing */
	AMQP_CLOSE,       /* read the protocol header, close */
	AMQP_RESET,       /* read the protocol header, then RST */
	AMQP_GARBAGE,     /* answer the header with an HTTP error page */
	AMQP_HUGE_FRAME,  /* a frame header claiming 2 GB, then bytes */
	AMQP_PARTIAL,     /* half of connection.start, then close */
};

struct fake_queue {
	const char *name;
	uint32_t messages;
	uint32_t consumers;
	uint16_t refuse_code; /* 0: exists; else channel.close with it */
};

struct amqp_script {
	enum amqp_mode mode;
	int refuse_login;     /* connection.close 403 after start-ok */
	const char *login_text; /* its text, if not the usual one */
	const char *cluster_name; /* if not "fake@test" */
	int refuse_vhost;     /* connection.close 530 after open */
	int stall_channel;    /* never answer channel.open */
	int force_close;      /* connection.close 320 on the first declare */
	struct fake_queue queues[4];
	size_t nqueues;
	/* What the client did. */
	char user[64];
	char password[64];
	char vhost[256];
	int heartbeat;
	int declares;
	int channel_opens;
	int closed_cleanly; /* sent connection.close */
	int channel_close_oks;
};

enum http_mode {
	HTTP_OK,
	HTTP_SILENT,
	HTTP_STATUS,     /* status code `status`, body "{}" */
	HTTP_NOT_JSON,
	HTTP_HUGE,       /* 4 MiB body */
	HTTP_SHORT,      /* announces 1000 bytes, sends 10, closes */
};

struct http_script {
	enum http_mode mode;
	int status;
	const char *overview;
	const char *nodes;
	/* What the client did. */
	int requests;
	char paths[4][256];
	char auth[256];
};

struct server {
	int lfd;
	int port;
	int stop[2]; /* a pipe: readable once the server must stop */
	pthread_t thread;
	int running;
	int accepted;
	int is_http;
	struct amqp_script amqp;
	struct http_script http;
};

struct fixture {
	const struct troika_plugin *p;
	void *dl;
	struct fake_host *fh;
	void *state;
	struct server amqp;
	struct server http;
	int extra_fd[2];
	int fds_before;
};

/* Wait for fd to be readable (or writable), or the stop pipe; 0 or -1. */
static int
srv_wait(struct server *s, int fd, short events)
{
	struct pollfd pfd[2] = {
		{ .fd = fd, .events = events },
		{ .fd = s->stop[0], .events = POLLIN },
	};

	for (;;) {
		if (poll(pfd, 2, -1) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (pfd[1].revents != 0)
			return -1;
		if (pfd[0].revents != 0)
			return 0;
	}
}

static int
srv_read(struct server *s, int fd, void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r;

		if (srv_wait(s, fd, POLLIN) < 0)
			return -1;
		r = read(fd, (char *)buf + got, n - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static int
srv_write(struct server *s, int fd, const void *buf, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r;

		if (srv_wait(s, fd, POLLOUT) < 0)
			return -1;
		r = send(fd, (const char *)buf + done, n - done, MSG_NOSIGNAL);
		if (r <= 0)
			return -1;
		done += (size_t)r;
	}
	return 0;
}

/* Hold a connection open, saying nothing, until the server stops. */
static void
srv_hold(struct server *s, int fd)
{
	char buf[512];

	while (srv_wait(s, fd, POLLIN) == 0)
		if (read(fd, buf, sizeof(buf)) <= 0)
			return;
}

/* ---- AMQP frames ---- */

struct buf {
	unsigned char b[8192];
	size_t len;
};

static void
put8(struct buf *b, unsigned v)
{
	assert_true(b->len + 1 <= sizeof(b->b));
	b->b[b->len++] = (unsigned char)v;
}

static void
put16(struct buf *b, unsigned v)
{
	put8(b, v >> 8);
	put8(b, v);
}

static void
put32(struct buf *b, uint32_t v)
{
	put16(b, v >> 16);
	put16(b, v & 0xffff);
}

static void
put_shortstr(struct buf *b, const char *s)
{
	size_t n = strlen(s);

	put8(b, (unsigned)n);
	assert_true(b->len + n <= sizeof(b->b));
	memcpy(b->b + b->len, s, n);
	b->len += n;
}

static void
put_longstr(struct buf *b, const char *s)
{
	size_t n = strlen(s);

	put32(b, (uint32_t)n);
	assert_true(b->len + n <= sizeof(b->b));
	memcpy(b->b + b->len, s, n);
	b->len += n;
}

/* A field table of string values: key, 'S', long string. */
static void
put_table(struct buf *b, const char *const *kv, size_t n)
{
	struct buf t = { .len = 0 };

	for (size_t i = 0; i + 1 < n; i += 2) {
		put_shortstr(&t, kv[i]);
		put8(&t, 'S');
		put_longstr(&t, kv[i + 1]);
	}
	put32(b, (uint32_t)t.len);
	memcpy(b->b + b->len, t.b, t.len);
	b->len += t.len;
}

static int
send_method(struct server *s, int fd, unsigned channel, const struct buf *args,
    unsigned class_id, unsigned method_id)
{
	struct buf f = { .len = 0 };

	put8(&f, 1); /* method frame */
	put16(&f, channel);
	put32(&f, (uint32_t)(4 + args->len));
	put16(&f, class_id);
	put16(&f, method_id);
	memcpy(f.b + f.len, args->b, args->len);
	f.len += args->len;
	put8(&f, 0xCE);
	return srv_write(s, fd, f.b, f.len);
}

struct frame {
	unsigned type;
	unsigned channel;
	unsigned class_id;
	unsigned method_id;
	unsigned char payload[4096];
	size_t len;
};

/* The next frame; heartbeats are skipped. 0, or -1 at EOF or stop. */
static int
read_frame(struct server *s, int fd, struct frame *fr)
{
	unsigned char h[7], end;
	uint32_t size;

	for (;;) {
		if (srv_read(s, fd, h, 7) < 0)
			return -1;
		size = (uint32_t)h[3] << 24 | (uint32_t)h[4] << 16 |
		    (uint32_t)h[5] << 8 | h[6];
		if (size > sizeof(fr->payload))
			return -1;
		fr->type = h[0];
		fr->channel = (unsigned)h[1] << 8 | h[2];
		fr->len = size;
		if (srv_read(s, fd, fr->payload, size) < 0 ||
		    srv_read(s, fd, &end, 1) < 0 || end != 0xCE)
			return -1;
		if (fr->type == 8)
			continue;
		if (fr->type != 1 || size < 4)
			return -1;
		fr->class_id = (unsigned)fr->payload[0] << 8 | fr->payload[1];
		fr->method_id = (unsigned)fr->payload[2] << 8 | fr->payload[3];
		return 0;
	}
}

/* A short string at *off of a payload, copied into out. */
static void
get_shortstr(const struct frame *fr, size_t *off, char *out, size_t outlen)
{
	size_t n = fr->payload[*off];

	assert_true(*off + 1 + n <= fr->len);
	assert_true(n < outlen);
	memcpy(out, fr->payload + *off + 1, n);
	out[n] = '\0';
	*off += 1 + n;
}

static uint32_t
get32(const struct frame *fr, size_t off)
{
	return (uint32_t)fr->payload[off] << 24 |
	    (uint32_t)fr->payload[off + 1] << 16 |
	    (uint32_t)fr->payload[off + 2] << 8 | fr->payload[off + 3];
}

static int
send_close(struct server *s, int fd, unsigned channel, unsigned code,
    const char *text, unsigned class_id, unsigned method_id)
{
	struct buf a = { .len = 0 };

	put16(&a, code);
	put_shortstr(&a, text);
	put16(&a, class_id);
	put16(&a, method_id);
	/* connection.close is 10/50, channel.close 20/40. */
	return send_method(s, fd, channel, &a, channel == 0 ? 10 : 20,
	    channel == 0 ? 50 : 40);
}

static void
amqp_broker(struct server *s, int fd)
{
	struct amqp_script *sc = &s->amqp;
	const char *const props[] = {
		"product", "RabbitMQ", "version", "3.10.8-fake",
		"cluster_name", sc->cluster_name != NULL ? sc->cluster_name :
		    "fake@test",
	};
	unsigned char header[8];
	struct frame fr;
	struct buf a;
	size_t off;
	uint32_t n;

	if (srv_read(s, fd, header, 8) < 0 ||
	    memcmp(header, "AMQP\0\0\x09\x01", 8) != 0)
		return;
	a.len = 0;
	put8(&a, 0);
	put8(&a, 9);
	put_table(&a, props, 6);
	put_longstr(&a, "PLAIN AMQPLAIN");
	put_longstr(&a, "en_US");
	if (send_method(s, fd, 0, &a, 10, 10) < 0)
		return;
	/* start-ok: client properties, mechanism, response, locale */
	if (read_frame(s, fd, &fr) < 0 || fr.class_id != 10 || fr.method_id != 11)
		return;
	off = 4;
	off += 4 + get32(&fr, off);
	{
		char mech[32];

		get_shortstr(&fr, &off, mech, sizeof(mech));
		assert_string_equal(mech, "PLAIN");
	}
	n = get32(&fr, off);
	off += 4;
	/* PLAIN: "\0user\0password" */
	{
		const char *resp = (const char *)fr.payload + off;
		size_t ulen = strnlen(resp + 1, n - 1);

		assert_true(ulen < sizeof(sc->user));
		memcpy(sc->user, resp + 1, ulen);
		assert_true(n - ulen - 2 < sizeof(sc->password));
		memcpy(sc->password, resp + 2 + ulen, n - ulen - 2);
	}
	if (sc->refuse_login) {
		send_close(s, fd, 0, 403, sc->login_text != NULL ?
		    sc->login_text : "ACCESS_REFUSED - Login was refused "
		    "using authentication mechanism PLAIN", 0, 0);
		read_frame(s, fd, &fr);
		return;
	}
	a.len = 0;
	put16(&a, 2047);
	put32(&a, 131072);
	put16(&a, 60);
	if (send_method(s, fd, 0, &a, 10, 30) < 0)
		return;
	if (read_frame(s, fd, &fr) < 0 || fr.class_id != 10 || fr.method_id != 31)
		return;
	sc->heartbeat = (int)fr.payload[10] << 8 | fr.payload[11];
	if (read_frame(s, fd, &fr) < 0 || fr.class_id != 10 || fr.method_id != 40)
		return;
	off = 4;
	get_shortstr(&fr, &off, sc->vhost, sizeof(sc->vhost));
	if (sc->refuse_vhost) {
		char text[300];

		snprintf(text, sizeof(text), "NOT_ALLOWED - vhost %s not found",
		    sc->vhost);
		send_close(s, fd, 0, 530, text, 10, 40);
		read_frame(s, fd, &fr);
		return;
	}
	a.len = 0;
	put_shortstr(&a, "");
	if (send_method(s, fd, 0, &a, 10, 41) < 0)
		return;

	while (read_frame(s, fd, &fr) == 0) {
		if (fr.class_id == 20 && fr.method_id == 10) {
			sc->channel_opens++;
			if (sc->stall_channel)
				continue;
			a.len = 0;
			put_longstr(&a, "");
			if (send_method(s, fd, fr.channel, &a, 20, 11) < 0)
				return;
		} else if (fr.class_id == 20 && fr.method_id == 41) {
			sc->channel_close_oks++;
		} else if (fr.class_id == 50 && fr.method_id == 10) {
			char name[256], text[700];
			const struct fake_queue *q = NULL;

			sc->declares++;
			off = 6; /* class, method, reserved short */
			get_shortstr(&fr, &off, name, sizeof(name));
			assert_true(fr.payload[off] & 1); /* passive */
			if (sc->force_close) {
				send_close(s, fd, 0, 320, "CONNECTION_FORCED - "
				    "broker forced connection closure with "
				    "reason 'shutdown'", 0, 0);
				read_frame(s, fd, &fr);
				return;
			}
			for (size_t i = 0; i < sc->nqueues; i++)
				if (strcmp(sc->queues[i].name, name) == 0)
					q = &sc->queues[i];
			if (q == NULL || q->refuse_code != 0) {
				snprintf(text, sizeof(text), "%s queue '%s' in "
				    "vhost '%s'", q == NULL ? "NOT_FOUND - no" :
				    "RESOURCE_LOCKED - cannot obtain access to",
				    name, sc->vhost);
				if (send_close(s, fd, fr.channel, q == NULL ? 404 :
				    q->refuse_code, text, 50, 10) < 0)
					return;
				continue;
			}
			a.len = 0;
			put_shortstr(&a, name);
			put32(&a, q->messages);
			put32(&a, q->consumers);
			if (send_method(s, fd, fr.channel, &a, 50, 11) < 0)
				return;
		} else if (fr.class_id == 10 && fr.method_id == 50) {
			sc->closed_cleanly = 1;
			a.len = 0;
			send_method(s, fd, 0, &a, 10, 51);
			return;
		}
	}
}

static void
amqp_handle(struct server *s, int fd)
{
	static const char page[] = "HTTP/1.1 400 Bad Request\r\n"
	    "Content-Type: text/html\r\n\r\n<html>no</html>\r\n";
	unsigned char header[8];

	switch (s->amqp.mode) {
	case AMQP_BROKER:
		amqp_broker(s, fd);
		break;
	case AMQP_SILENT:
		srv_hold(s, fd);
		break;
	case AMQP_CLOSE:
		/* Read first: closing with unread data would send a reset. */
		srv_read(s, fd, header, 8);
		break;
	case AMQP_RESET:
		if (srv_read(s, fd, header, 8) == 0) {
			struct linger lg = { .l_onoff = 1, .l_linger = 0 };

			setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		break;
	case AMQP_GARBAGE:
		if (srv_read(s, fd, header, 8) == 0 &&
		    srv_write(s, fd, page, sizeof(page) - 1) == 0)
			srv_hold(s, fd);
		break;
	case AMQP_PARTIAL: {
		/* Method frame, channel 0, 200 bytes announced; 11 sent. */
		static const unsigned char h[11] = { 1, 0, 0, 0, 0, 0, 200,
			0, 10, 0, 10 };

		if (srv_read(s, fd, header, 8) == 0)
			srv_write(s, fd, h, sizeof(h));
		break;
	}
	case AMQP_HUGE_FRAME: {
		/* A method frame on channel 0 claiming 0x7ffffff0 bytes. */
		static const unsigned char h[7] = { 1, 0, 0, 0x7f, 0xff, 0xff,
			0xf0 };
		unsigned char junk[4096];

		memset(junk, 'x', sizeof(junk));
		if (srv_read(s, fd, header, 8) < 0 ||
		    srv_write(s, fd, h, sizeof(h)) < 0)
			break;
		while (srv_write(s, fd, junk, sizeof(junk)) == 0)
			;
		break;
	}
	}
}

/* ---- the management API ---- */

static void
http_reply(struct server *s, int fd, int status, const char *body,
    size_t len)
{
	char head[256];
	int n;

	n = snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nContent-Type: "
	    "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n"
	    "\r\n", status, len);
	if (srv_write(s, fd, head, (size_t)n) == 0 && len > 0)
		srv_write(s, fd, body, len);
}

static void
http_handle(struct server *s, int fd)
{
	struct http_script *sc = &s->http;
	char req[4096], *line_end, *auth;
	size_t len = 0;
	const char *body;

	/* Read the request head. */
	while (len < sizeof(req) - 1) {
		ssize_t r;

		if (srv_wait(s, fd, POLLIN) < 0)
			return;
		if ((r = read(fd, req + len, sizeof(req) - 1 - len)) <= 0)
			return;
		len += (size_t)r;
		req[len] = '\0';
		if (strstr(req, "\r\n\r\n") != NULL)
			break;
	}
	if ((line_end = strstr(req, "\r\n")) != NULL && sc->requests < 4) {
		*line_end = '\0';
		snprintf(sc->paths[sc->requests], sizeof(sc->paths[0]), "%.255s",
		    req);
		*line_end = '\r';
	}
	if ((auth = strstr(req, "Authorization: ")) != NULL) {
		size_t n = strcspn(auth, "\r");

		snprintf(sc->auth, sizeof(sc->auth), "%.*s", (int)n, auth);
	}
	sc->requests++;
	switch (sc->mode) {
	case HTTP_SILENT:
		srv_hold(s, fd);
		return;
	case HTTP_STATUS:
		http_reply(s, fd, sc->status, "{}", 2);
		return;
	case HTTP_NOT_JSON:
		http_reply(s, fd, 200, "<html>oops</html>", 17);
		return;
	case HTTP_HUGE: {
		size_t total = 4 * 1024 * 1024;
		char *big = malloc(total);

		assert_non_null(big);
		memset(big, ' ', total);
		big[0] = '[';
		http_reply(s, fd, 200, big, total);
		free(big);
		return;
	}
	case HTTP_SHORT: {
		static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: "
		    "1000\r\n\r\n{\"node\":\"";

		srv_write(s, fd, head, sizeof(head) - 1);
		return;
	}
	case HTTP_OK:
		break;
	}
	body = strstr(req, "/api/overview") != NULL ? sc->overview : sc->nodes;
	http_reply(s, fd, 200, body, strlen(body));
}

static void *
server_main(void *arg)
{
	struct server *s = arg;
	struct pollfd pfd[2] = {
		{ .fd = s->lfd, .events = POLLIN },
		{ .fd = s->stop[0], .events = POLLIN },
	};

	for (;;) {
		int fd;

		if (poll(pfd, 2, -1) == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents != 0)
			break;
		if ((fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC)) == -1)
			continue;
		s->accepted++;
		if (s->is_http)
			http_handle(s, fd);
		else
			amqp_handle(s, fd);
		close(fd);
	}
	return NULL;
}

/* A socket on 127.0.0.1, an ephemeral port; listening if backlog >= 0. */
static int
bound_socket(int backlog, int *ret_port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    (backlog >= 0 && listen(fd, backlog) == -1) ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) == -1) {
		close(fd);
		return -1;
	}
	*ret_port = ntohs(sin.sin_port);
	return fd;
}

static void
server_start(struct server *s, int is_http)
{
	s->is_http = is_http;
	s->lfd = bound_socket(16, &s->port);
	assert_true(s->lfd >= 0);
	assert_int_equal(pipe2(s->stop, O_CLOEXEC), 0);
	assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
	s->running = 1;
}

/* Stop the thread; what it recorded may be read afterwards. */
static void
server_stop(struct server *s)
{
	if (!s->running)
		return;
	assert_int_equal(write(s->stop[1], "x", 1), 1);
	pthread_join(s->thread, NULL);
	close(s->stop[0]);
	close(s->stop[1]);
	close(s->lfd);
	s->running = 0;
}

/* ---- fixture ---- */

static int
group_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->p = fake_host_load_plugin(RABBITMQ_PLUGIN, &f->dl);
	*state = f;
	return 0;
}

static int
group_teardown(void **state)
{
	struct fixture *f = *state;

	dlclose(f->dl);
	free(f);
	return 0;
}

static int
setup(void **state)
{
	struct fixture *f = *state;

	f->fds_before = fake_host_count_fds();
	f->fh = fake_host_new(f->p->options);
	f->state = NULL;
	memset(&f->amqp, 0, sizeof(f->amqp));
	memset(&f->http, 0, sizeof(f->http));
	f->extra_fd[0] = f->extra_fd[1] = -1;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	if (f->state != NULL)
		f->p->instance_free(f->state);
	f->state = NULL;
	server_stop(&f->amqp);
	server_stop(&f->http);
	for (int i = 0; i < 2; i++)
		if (f->extra_fd[i] >= 0)
			close(f->extra_fd[i]);
	assert_int_equal(fake_host_violations(f->fh), 0);
	fake_host_free(f->fh);
	f->fh = NULL;
	assert_int_equal(fake_host_count_fds(), f->fds_before);
	return 0;
}

static void
assert_contains(const char *hay, const char *needle)
{
	if (hay == NULL || strstr(hay, needle) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"", hay ? hay : "(null)",
		    needle);
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000 + (double)ts.tv_nsec / 1e6;
}

/* The broker on the fake AMQP server, user and password set. */
static void
target_amqp(struct fixture *f)
{
	if (!f->amqp.running)
		server_start(&f->amqp, 0);
	fake_host_set_string(f->fh, "host", "127.0.0.1");
	fake_host_set_int(f->fh, "port", f->amqp.port);
	fake_host_set_string(f->fh, "user", "probe");
	fake_host_set_string(f->fh, "password", "pw");
}

static void
target_http(struct fixture *f)
{
	char url[64];

	server_start(&f->http, 1);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", f->http.port);
	fake_host_set_string(f->fh, "management_url", url);
}

/*
 * One run with a deadline: check() reports before it returns (blocking
 * plugin), exactly once, one line, within the deadline.
 */
static const struct fake_result *
run_check(struct fixture *f, int64_t deadline_ms)
{
	struct troika_task *task = fake_host_task(f->fh, deadline_ms);
	unsigned before = fake_host_done_count(f->fh);
	const struct fake_result *r;
	double t0 = now_ms();

	if (f->state == NULL)
		assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
		    0);
	fake_host_check(f->fh, f->p, f->state, task);
	assert_true(now_ms() - t0 < (double)deadline_ms);
	assert_int_equal(fake_host_done_count(f->fh), before + 1);
	r = fake_host_last(f->fh);
	assert_non_null(r);
	assert_ptr_equal(r->task, task);
	assert_non_null(r->message);
	assert_null(strchr(r->message, '\n'));
	assert_int_equal(fake_host_events_pending(f->fh), 0);
	return r;
}

static double
sample(const struct fake_result *r, const char *name, const char *queue)
{
	const struct fake_sample *s = fake_result_sample(r, name,
	    queue != NULL ? "queue" : NULL, queue);

	if (s == NULL)
		fail_msg("no sample %s%s%s", name, queue ? " queue=" : "",
		    queue ? queue : "");
	return s->value;
}

static void
assert_no_sample(const struct fake_result *r, const char *name)
{
	if (fake_result_sample(r, name, NULL, NULL) != NULL)
		fail_msg("unexpected sample %s", name);
}

static void
add_queue(struct fixture *f, const char *name, uint32_t messages,
    uint32_t consumers, uint16_t refuse_code)
{
	struct amqp_script *sc = &f->amqp.amqp;

	sc->queues[sc->nqueues++] = (struct fake_queue){ name, messages,
		consumers, refuse_code };
}

static void
set_queues(struct fixture *f, const char *const *names, size_t n)
{
	fake_host_set_list(f->fh, "queues", names, n);
}

/* ---- descriptor and options ---- */

static void
test_descriptor(void **state)
{
	struct fixture *f = *state;
	const char *names[3] = { NULL };
	size_t n = 0;

	assert_string_equal(f->p->name, "rabbitmq");
	assert_int_equal(f->p->exec_model, TROIKA_EXEC_BLOCKING);
	assert_null(f->p->cancel);
	assert_non_null(f->p->action);
	for (const struct troika_action *a = f->p->actions; a->name != NULL;
	    a++) {
		assert_true(n < 3);
		assert_int_equal(a->min_args, 0);
		assert_int_equal(a->max_args, 0);
		names[n++] = a->name;
	}
	assert_int_equal(n, 3);
	assert_string_equal(names[0], "start");
	assert_string_equal(names[1], "stop");
	assert_string_equal(names[2], "restart");
}

static void
expect_refused_config(struct fixture *f, const char *log_part)
{
	void *st = NULL;

	assert_int_equal(fake_host_instance_new(f->fh, f->p, &st), -EINVAL);
	assert_null(st);
	assert_contains(fake_host_log_last(f->fh), log_part);
	assert_int_equal(fake_host_log_last_level(f->fh), TROIKA_LOG_ERR);
}

static void
test_config_errors(void **state)
{
	struct fixture *f = *state;
	char longname[300];
	const char *bad_queues[2] = { "ok", "" };
	const char *long_queue[1] = { longname };
	void *st = NULL;

	fake_host_set_string(f->fh, "host", "localhost");
	expect_refused_config(f, "not a numeric IPv4 or IPv6 address");
	fake_host_set_string(f->fh, "host", "[::1]");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &st), 0);
	f->p->instance_free(st);

	memset(longname, 'q', 256);
	longname[256] = '\0';
	fake_host_set_string(f->fh, "vhost", longname);
	expect_refused_config(f, "vhost must have 1 to 255 bytes");
	fake_host_set_string(f->fh, "vhost", "");
	expect_refused_config(f, "vhost must have 1 to 255 bytes");
	fake_host_unset(f->fh, "vhost");

	set_queues(f, bad_queues, 2);
	expect_refused_config(f, "queues: entry 1 must have 1 to 255 bytes");
	set_queues(f, long_queue, 1);
	expect_refused_config(f, "queues: entry 0 must have 1 to 255 bytes");
	fake_host_unset(f->fh, "queues");

	fake_host_set_string(f->fh, "management_user", "admin");
	expect_refused_config(f, "need management_url");
	fake_host_unset(f->fh, "management_user");
	fake_host_set_string(f->fh, "management_password", "pw");
	expect_refused_config(f, "need management_url");
	fake_host_set_string(f->fh, "management_url", "ftp://127.0.0.1/");
	expect_refused_config(f, "must start with http:// or https://");
	fake_host_set_string(f->fh, "management_url", "https://127.0.0.1:15671");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &st), 0);
	f->p->instance_free(st);
}

/* ---- transport ---- */

static void
test_refused(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	int port, fd = bound_socket(-1, &port);

	/* Bound but not listening: a connect is refused. */
	assert_true(fd >= 0);
	f->extra_fd[0] = fd;
	fake_host_set_string(f->fh, "host", "127.0.0.1");
	fake_host_set_int(f->fh, "port", port);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_contains(r->message, "connect to 127.0.0.1 port ");
	assert_contains(r->message, "Connection refused");
	assert_int_equal(r->nsamples, 1);
	assert_true(sample(r, "rabbitmq_up", NULL) == 0);
	assert_int_equal(r->nfields, 0);
}

static void
test_connect_timeout(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	double t0;
	int port;

	/*
	 * A listen queue of one, filled by a connection that is never
	 * accepted: the kernel drops further SYNs, so a connect hangs.
	 */
	f->extra_fd[0] = bound_socket(0, &port);
	assert_true(f->extra_fd[0] >= 0);
	f->extra_fd[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	assert_int_equal(connect(f->extra_fd[1], (struct sockaddr *)&sin,
	    sizeof(sin)), 0);
	fake_host_set_string(f->fh, "host", "127.0.0.1");
	fake_host_set_int(f->fh, "port", port);
	t0 = now_ms();
	r = run_check(f, 400);
	/* The margin: a tenth of the time left. */
	assert_true(now_ms() - t0 >= 340);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "timed out");
	assert_true(sample(r, "rabbitmq_up", NULL) == 0);
}

static void
test_silent_server(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	double t0;

	f->amqp.amqp.mode = AMQP_SILENT;
	target_amqp(f);
	t0 = now_ms();
	r = run_check(f, 500);
	assert_true(now_ms() - t0 >= 420);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_string_equal(r->message, "login timed out");
	assert_true(sample(r, "rabbitmq_up", NULL) == 0);
}

static void
test_closed_at_once(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	f->amqp.amqp.mode = AMQP_CLOSE;
	target_amqp(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_string_equal(r->message, "login: the server closed the "
	    "connection");
	assert_true(sample(r, "rabbitmq_up", NULL) == 0);
}

static void
test_closed_mid_reply(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	f->amqp.amqp.mode = AMQP_PARTIAL;
	target_amqp(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_string_equal(r->message, "login: the server closed the "
	    "connection");
	assert_true(sample(r, "rabbitmq_up", NULL) == 0);
}

static void
test_reset(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	f->amqp.amqp.mode = AMQP_RESET;
	target_amqp(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_string_equal(r->message, "login: connection reset by the server");
}

static void
test_garbage(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	f->amqp.amqp.mode = AMQP_GARBAGE;
	target_amqp(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "login: not an AMQP 0-9-1 reply");
	assert_true(sample(r, "rabbitmq_up", NULL) == 0);
}

static void
test_huge_frame(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	f->amqp.amqp.mode = AMQP_HUGE_FRAME;
	target_amqp(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "login: not an AMQP 0-9-1 reply");
}

/* ---- the broker's answers ---- */

static void
test_login_refused(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	f->amqp.amqp.refuse_login = 1;
	target_amqp(f);
	r = run_check(f, 2000);
	server_stop(&f->amqp);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_string_equal(r->message, "login refused for user \"probe\": "
	    "ACCESS_REFUSED - Login was refused using authentication "
	    "mechanism PLAIN");
	assert_string_equal(f->amqp.amqp.user, "probe");
	assert_string_equal(f->amqp.amqp.password, "pw");
	assert_true(sample(r, "rabbitmq_up", NULL) == 0);
}

/* Server texts reach the message as one line. */
static void
test_server_text_one_line(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	f->amqp.amqp.refuse_login = 1;
	f->amqp.amqp.login_text = "ACCESS_REFUSED\r\nsecond line\x01\x7f!";
	target_amqp(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "login refused for user \"probe\": "
	    "ACCESS_REFUSED  second line  !");
}

/* Many problems: the message is cut, a long server text too. */
static void
test_long_texts_are_cut(void **state)
{
	struct fixture *f = *state;
	char names[12][201], cluster[2001];
	const char *queues[12];
	const struct fake_result *r;

	for (int i = 0; i < 12; i++) {
		memset(names[i], 'a' + i, 200);
		names[i][200] = '\0';
		queues[i] = names[i];
	}
	memset(cluster, 'c', 2000);
	cluster[2000] = '\0';
	f->amqp.amqp.cluster_name = cluster;
	target_amqp(f);
	set_queues(f, queues, 12);
	r = run_check(f, 2000);
	server_stop(&f->amqp);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(f->amqp.amqp.declares, 12);
	assert_int_equal(strlen(r->message), 2048);
	assert_contains(r->message, "queue \"aaaa");
	assert_string_equal(r->message + 2048 - 6, " (cut)");
	assert_int_equal(strlen(fake_result_field(r, "cluster_name")), 1024);
	assert_true(sample(r, "troika_rabbitmq_queue_exists", names[11]) == 0);
}

static void
test_vhost_refused(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	f->amqp.amqp.refuse_vhost = 1;
	target_amqp(f);
	fake_host_set_string(f->fh, "vhost", "shop");
	r = run_check(f, 2000);
	server_stop(&f->amqp);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_string_equal(r->message, "vhost \"shop\" refused for user "
	    "\"probe\": NOT_ALLOWED - vhost shop not found");
	assert_string_equal(f->amqp.amqp.vhost, "shop");
}

static void
test_ok_with_queues(void **state)
{
	struct fixture *f = *state;
	const char *queues[2] = { "orders", "mails" };
	const struct fake_result *r;

	add_queue(f, "orders", 5, 2, 0);
	add_queue(f, "mails", 0, 1, 0);
	target_amqp(f);
	set_queues(f, queues, 2);
	fake_host_set_int(f->fh, "max_messages", 5);
	fake_host_set_int(f->fh, "min_consumers", 1);
	fake_host_set_duration(f->fh, "heartbeat", 2500);
	r = run_check(f, 2000);
	server_stop(&f->amqp);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	assert_string_equal(r->message, "RabbitMQ 3.10.8-fake: 2 queues, "
	    "5 messages ready, 3 consumers");
	assert_true(sample(r, "rabbitmq_up", NULL) == 1);
	assert_true(sample(r, "rabbitmq_queue_messages_ready", "orders") == 5);
	assert_true(sample(r, "rabbitmq_queue_consumers", "orders") == 2);
	assert_true(sample(r, "rabbitmq_queue_messages_ready", "mails") == 0);
	assert_true(sample(r, "rabbitmq_queue_consumers", "mails") == 1);
	assert_true(sample(r, "troika_rabbitmq_queue_exists", "mails") == 1);
	assert_true(sample(r, "troika_rabbitmq_connect_seconds", NULL) > 0);
	assert_true(sample(r, "troika_rabbitmq_connect_seconds", NULL) < 2);
	assert_no_sample(r, "troika_rabbitmq_management_up");
	assert_string_equal(fake_result_field(r, "product"), "RabbitMQ");
	assert_string_equal(fake_result_field(r, "version"), "3.10.8-fake");
	assert_string_equal(fake_result_field(r, "cluster_name"), "fake@test");
	assert_null(fake_result_field(r, "node"));
	/* What went over the wire. */
	assert_string_equal(f->amqp.amqp.vhost, "/");
	assert_int_equal(f->amqp.amqp.heartbeat, 3); /* 2.5 s, rounded up */
	assert_int_equal(f->amqp.amqp.declares, 2);
	assert_int_equal(f->amqp.amqp.channel_opens, 1);
	assert_int_equal(f->amqp.amqp.closed_cleanly, 1);
}

static void
test_no_queues(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	target_amqp(f);
	fake_host_set_duration(f->fh, "heartbeat", 0);
	r = run_check(f, 2000);
	server_stop(&f->amqp);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, "RabbitMQ 3.10.8-fake: logged in to "
	    "vhost \"/\"");
	assert_int_equal(r->nsamples, 2); /* up, connect time */
	assert_int_equal(f->amqp.amqp.heartbeat, 0);
	assert_int_equal(f->amqp.amqp.channel_opens, 0);
	assert_int_equal(f->amqp.amqp.closed_cleanly, 1);
}

static void
test_thresholds(void **state)
{
	struct fixture *f = *state;
	const char *queues[2] = { "orders", "mails" };
	const struct fake_result *r;

	add_queue(f, "orders", 11, 2, 0);
	add_queue(f, "mails", 0, 0, 0);
	target_amqp(f);
	set_queues(f, queues, 2);
	fake_host_set_int(f->fh, "max_messages", 10);
	fake_host_set_int(f->fh, "min_consumers", 1);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_WARNING);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_string_equal(r->message, "queue \"orders\": 11 messages ready, "
	    "above max_messages 10; queue \"mails\": 0 consumers, below "
	    "min_consumers 1");
	assert_true(sample(r, "rabbitmq_queue_messages_ready", "orders") == 11);
	assert_true(sample(r, "rabbitmq_queue_consumers", "mails") == 0);
	assert_true(sample(r, "rabbitmq_up", NULL) == 1);

	/* max_messages 0 means an empty queue is required. */
	fake_host_set_int(f->fh, "max_messages", 0);
	fake_host_set_int(f->fh, "min_consumers", 0);
	f->p->instance_free(f->state);
	f->state = NULL;
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_WARNING);
	assert_string_equal(r->message, "queue \"orders\": 11 messages ready, "
	    "above max_messages 0");
}

static void
test_missing_queue(void **state)
{
	struct fixture *f = *state;
	const char *queues[3] = { "gone", "orders", "locked" };
	const struct fake_result *r;

	add_queue(f, "orders", 3, 1, 0);
	add_queue(f, "locked", 0, 0, 405);
	target_amqp(f);
	set_queues(f, queues, 3);
	fake_host_set_int(f->fh, "max_messages", 1);
	r = run_check(f, 2000);
	server_stop(&f->amqp);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_string_equal(r->message, "queue \"gone\" not found in vhost "
	    "\"/\"; queue \"locked\": RESOURCE_LOCKED - cannot obtain access "
	    "to queue 'locked' in vhost '/'; queue \"orders\": 3 messages "
	    "ready, above max_messages 1");
	assert_true(sample(r, "troika_rabbitmq_queue_exists", "gone") == 0);
	assert_true(sample(r, "troika_rabbitmq_queue_exists", "orders") == 1);
	assert_true(sample(r, "rabbitmq_queue_messages_ready", "orders") == 3);
	assert_null(fake_result_sample(r, "rabbitmq_queue_messages_ready",
	    "queue", "gone"));
	/* A missing queue is an answer: the broker itself is up. */
	assert_true(sample(r, "rabbitmq_up", NULL) == 1);
	/* Each channel error was acknowledged and a new channel opened. */
	assert_int_equal(f->amqp.amqp.declares, 3);
	assert_int_equal(f->amqp.amqp.channel_close_oks, 2);
	assert_int_equal(f->amqp.amqp.channel_opens, 2);
	assert_int_equal(f->amqp.amqp.closed_cleanly, 1);
}

static void
test_stall_after_login(void **state)
{
	struct fixture *f = *state;
	const char *queues[1] = { "orders" };
	const struct fake_result *r;
	double t0;

	f->amqp.amqp.stall_channel = 1;
	add_queue(f, "orders", 3, 1, 0);
	target_amqp(f);
	set_queues(f, queues, 1);
	t0 = now_ms();
	r = run_check(f, 600);
	assert_true(now_ms() - t0 >= 500);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_string_equal(r->message, "channel.open timed out");
	assert_true(sample(r, "rabbitmq_up", NULL) == 0);
	assert_null(fake_result_sample(r, "troika_rabbitmq_queue_exists",
	    "queue", "orders"));
	/* It logged in: the broker's identity is known. */
	assert_string_equal(fake_result_field(r, "version"), "3.10.8-fake");
}

static void
test_forced_close(void **state)
{
	struct fixture *f = *state;
	const char *queues[1] = { "orders" };
	const struct fake_result *r;

	f->amqp.amqp.force_close = 1;
	target_amqp(f);
	set_queues(f, queues, 1);
	target_http(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_string_equal(r->message, "queue.declare of \"orders\": the "
	    "server closed the connection: 320 CONNECTION_FORCED - broker "
	    "forced connection closure with reason 'shutdown'");
	assert_true(sample(r, "rabbitmq_up", NULL) == 0);
	/* A broken session: the management API is not asked. */
	server_stop(&f->http);
	assert_int_equal(f->http.http.requests, 0);
}

/* ---- the management API ---- */

static const char overview_json[] = "{\"node\":\"rabbit1@n1\","
    "\"cluster_name\":\"shop\",\"rabbitmq_version\":\"3.10.8\"}";

static const char nodes_ok_json[] = "[{\"name\":\"rabbit1@n1\","
    "\"running\":true,\"mem_alarm\":false,\"disk_free_alarm\":false,"
    "\"partitions\":[],\"mem_used\":140000000,\"mem_limit\":1000000000,"
    "\"disk_free\":5000000000,\"disk_free_limit\":50000000,\"fd_used\":37,"
    "\"fd_total\":20000,\"sockets_used\":2,\"sockets_total\":17910,"
    "\"proc_used\":356,\"proc_total\":1048576},"
    "{\"name\":\"rabbit2@n2\",\"running\":true,\"mem_alarm\":false,"
    "\"disk_free_alarm\":false,\"partitions\":[]}]";

static const struct fake_result *
run_mgmt(struct fixture *f, enum http_mode mode, const char *nodes,
    int64_t deadline_ms)
{
	f->http.http.mode = mode;
	f->http.http.overview = overview_json;
	f->http.http.nodes = nodes;
	target_amqp(f);
	target_http(f);
	return run_check(f, deadline_ms);
}

static void
test_mgmt_ok(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	r = run_mgmt(f, HTTP_OK, nodes_ok_json, 2000);
	server_stop(&f->http);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, "RabbitMQ 3.10.8-fake: logged in to "
	    "vhost \"/\"");
	assert_true(sample(r, "troika_rabbitmq_management_up", NULL) == 1);
	assert_true(sample(r, "troika_rabbitmq_cluster_nodes", NULL) == 2);
	assert_true(sample(r, "troika_rabbitmq_cluster_nodes_running", NULL) == 2);
	assert_true(sample(r, "rabbitmq_alarms_memory_used_watermark", NULL) == 0);
	assert_true(sample(r, "rabbitmq_alarms_free_disk_space_watermark",
	    NULL) == 0);
	assert_true(sample(r, "troika_rabbitmq_partitions", NULL) == 0);
	assert_true(sample(r, "rabbitmq_process_resident_memory_bytes",
	    NULL) == 140000000);
	assert_true(sample(r, "rabbitmq_resident_memory_limit_bytes",
	    NULL) == 1000000000);
	assert_true(sample(r, "rabbitmq_disk_space_available_bytes",
	    NULL) == 5000000000.0);
	assert_true(sample(r, "rabbitmq_disk_space_available_limit_bytes",
	    NULL) == 50000000);
	assert_true(sample(r, "rabbitmq_process_open_fds", NULL) == 37);
	assert_true(sample(r, "rabbitmq_process_max_fds", NULL) == 20000);
	assert_true(sample(r, "rabbitmq_process_open_tcp_sockets", NULL) == 2);
	assert_true(sample(r, "rabbitmq_process_max_tcp_sockets", NULL) == 17910);
	assert_true(sample(r, "rabbitmq_erlang_processes_used", NULL) == 356);
	assert_true(sample(r, "rabbitmq_erlang_processes_limit", NULL) == 1048576);
	assert_string_equal(fake_result_field(r, "node"), "rabbit1@n1");
	/* The trailing '/' of the URL is dropped; columns keep replies small. */
	assert_int_equal(f->http.http.requests, 2);
	assert_string_equal(f->http.http.paths[0], "GET /api/overview?columns="
	    "node,cluster_name,rabbitmq_version HTTP/1.1");
	assert_contains(f->http.http.paths[1], "GET /api/nodes?columns=name,"
	    "running,mem_alarm,disk_free_alarm,partitions,");
	/* management_user defaults to user: "probe:pw". */
	assert_string_equal(f->http.http.auth, "Authorization: Basic "
	    "cHJvYmU6cHc=");
}

static void
test_mgmt_own_credentials(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	fake_host_set_string(f->fh, "management_user", "admin");
	fake_host_set_string(f->fh, "management_password", "secret");
	r = run_mgmt(f, HTTP_OK, nodes_ok_json, 2000);
	server_stop(&f->http);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	/* "admin:secret" */
	assert_string_equal(f->http.http.auth, "Authorization: Basic "
	    "YWRtaW46c2VjcmV0");
}

static void
test_mgmt_alarms(void **state)
{
	struct fixture *f = *state;
	static const char nodes[] = "[{\"name\":\"rabbit1@n1\",\"running\":true,"
	    "\"mem_alarm\":true,\"disk_free_alarm\":false,\"partitions\":[]},"
	    "{\"name\":\"rabbit2@n2\",\"running\":true,\"mem_alarm\":false,"
	    "\"disk_free_alarm\":true,\"partitions\":[]}]";
	const struct fake_result *r;

	r = run_mgmt(f, HTTP_OK, nodes, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_string_equal(r->message, "memory alarm on rabbit1@n1; disk "
	    "alarm on rabbit2@n2");
	assert_true(sample(r, "rabbitmq_alarms_memory_used_watermark", NULL) == 1);
	/* The metrics are this node's; the status is the cluster's. */
	assert_true(sample(r, "rabbitmq_alarms_free_disk_space_watermark",
	    NULL) == 0);
	/* Figures the reply leaves out are not made up. */
	assert_no_sample(r, "rabbitmq_process_resident_memory_bytes");
	assert_true(sample(r, "rabbitmq_up", NULL) == 1);
}

static void
test_mgmt_partitions(void **state)
{
	struct fixture *f = *state;
	static const char nodes[] = "[{\"name\":\"rabbit1@n1\",\"running\":true,"
	    "\"partitions\":[\"rabbit2@n2\",\"rabbit3@n3\"]},"
	    "{\"name\":\"rabbit2@n2\",\"running\":false,\"partitions\":[]}]";
	const struct fake_result *r;

	r = run_mgmt(f, HTTP_OK, nodes, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_string_equal(r->message, "rabbit1@n1 is partitioned from "
	    "rabbit2@n2, rabbit3@n3; cluster node rabbit2@n2 is not running");
	assert_true(sample(r, "troika_rabbitmq_partitions", NULL) == 2);
	assert_true(sample(r, "troika_rabbitmq_cluster_nodes_running", NULL) == 1);
}

static void
test_mgmt_node_down(void **state)
{
	struct fixture *f = *state;
	static const char nodes[] = "[{\"name\":\"rabbit1@n1\",\"running\":true,"
	    "\"partitions\":[]},{\"name\":\"rabbit3@n3\",\"running\":false}]";
	const struct fake_result *r;

	r = run_mgmt(f, HTTP_OK, nodes, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_WARNING);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_string_equal(r->message, "cluster node rabbit3@n3 is not running");
	assert_true(sample(r, "troika_rabbitmq_cluster_nodes", NULL) == 2);
	assert_true(sample(r, "troika_rabbitmq_cluster_nodes_running", NULL) == 1);
}

static void
test_mgmt_local_node_missing(void **state)
{
	struct fixture *f = *state;
	static const char nodes[] = "[{\"name\":\"rabbit2@n2\",\"running\":true,"
	    "\"partitions\":[]}]";
	const struct fake_result *r;

	r = run_mgmt(f, HTTP_OK, nodes, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_WARNING);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_string_equal(r->message, "management API: node rabbit1@n1 is "
	    "not in /api/nodes");
	assert_no_sample(r, "rabbitmq_alarms_memory_used_watermark");
}

static void
test_mgmt_long_node_name(void **state)
{
	struct fixture *f = *state;
	char name[3001], overview[3100], nodes[3200];
	const struct fake_result *r;

	memset(name, 'n', 3000);
	name[3000] = '\0';
	snprintf(overview, sizeof(overview), "{\"node\":\"%s\"}", name);
	snprintf(nodes, sizeof(nodes), "[{\"name\":\"%s\",\"running\":true,"
	    "\"mem_alarm\":true}]", name);
	f->http.http.overview = overview;
	f->http.http.nodes = nodes;
	target_amqp(f);
	target_http(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(strlen(fake_result_field(r, "node")), 1024);
	/* Cut alike, the names still match: this node's alarm is seen. */
	assert_true(sample(r, "rabbitmq_alarms_memory_used_watermark", NULL) == 1);
	assert_int_equal(strlen(r->message), strlen("memory alarm on ") + 1024);
}

/* Every API failure is a WARNING: the broker serves, facts are missing. */
static void
expect_mgmt_warning(const struct fake_result *r, const char *part)
{
	assert_int_equal(r->status, TROIKA_STATUS_WARNING);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "management API: ");
	assert_contains(r->message, part);
	assert_true(sample(r, "troika_rabbitmq_management_up", NULL) == 0);
	assert_true(sample(r, "rabbitmq_up", NULL) == 1);
	assert_no_sample(r, "rabbitmq_alarms_memory_used_watermark");
}

static void
test_mgmt_unauthorized(void **state)
{
	struct fixture *f = *state;

	f->http.http.status = 401;
	expect_mgmt_warning(run_mgmt(f, HTTP_STATUS, nodes_ok_json, 2000),
	    "/api/overview?columns=node,cluster_name,rabbitmq_version: "
	    "credentials of user \"probe\" refused (HTTP 401)");
}

static void
test_mgmt_server_error(void **state)
{
	struct fixture *f = *state;

	f->http.http.status = 500;
	expect_mgmt_warning(run_mgmt(f, HTTP_STATUS, nodes_ok_json, 2000),
	    ": HTTP 500");
}

static void
test_mgmt_not_json(void **state)
{
	struct fixture *f = *state;

	expect_mgmt_warning(run_mgmt(f, HTTP_NOT_JSON, nodes_ok_json, 2000),
	    ": not JSON: ");
}

static void
test_mgmt_nodes_not_a_list(void **state)
{
	struct fixture *f = *state;

	expect_mgmt_warning(run_mgmt(f, HTTP_OK, "{\"name\":1}", 2000),
	    "/api/nodes is not a list");
}

static void
test_mgmt_bad_node_entry(void **state)
{
	struct fixture *f = *state;

	expect_mgmt_warning(run_mgmt(f, HTTP_OK, "[{\"running\":true}]", 2000),
	    "/api/nodes: entry 0 is not a node");
}

static void
test_mgmt_huge(void **state)
{
	struct fixture *f = *state;

	fake_host_set_size(f->fh, "management_max_body", 64 * 1024);
	expect_mgmt_warning(run_mgmt(f, HTTP_HUGE, nodes_ok_json, 3000),
	    "reply larger than management_max_body (65536 bytes)");
}

static void
test_mgmt_short_reply(void **state)
{
	struct fixture *f = *state;

	expect_mgmt_warning(run_mgmt(f, HTTP_SHORT, nodes_ok_json, 2000),
	    "/api/overview");
}

static void
test_mgmt_silent(void **state)
{
	struct fixture *f = *state;
	double t0 = now_ms();

	expect_mgmt_warning(run_mgmt(f, HTTP_SILENT, nodes_ok_json, 700),
	    "/api/overview?columns=node,cluster_name,rabbitmq_version "
	    "timed out");
	assert_true(now_ms() - t0 >= 550);
}

static void
test_mgmt_refused(void **state)
{
	struct fixture *f = *state;
	char url[64];
	int port, fd = bound_socket(-1, &port);

	assert_true(fd >= 0);
	f->extra_fd[0] = fd;
	target_amqp(f);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	fake_host_set_string(f->fh, "management_url", url);
	expect_mgmt_warning(run_check(f, 2000), "Failed to connect to "
	    "127.0.0.1 port");
}

/* ---- actions ---- */

struct action_run {
	struct fixture *f;
	struct troika_task *task;
	const char *name;
};

static void *
action_thread(void *arg)
{
	struct action_run *a = arg;

	fake_host_action(a->f->fh, a->f->p, a->f->state, a->task, a->name,
	    NULL, 0);
	return NULL;
}

/*
 * Run an action on a thread of its own, as the agent's worker pool would,
 * while this thread runs the loop that service_control() belongs to.
 */
static const struct fake_result *
run_action(struct fixture *f, const char *name, int64_t deadline_ms)
{
	struct action_run a = { f, fake_host_task(f->fh, deadline_ms), name };
	unsigned before = fake_host_done_count(f->fh);
	pthread_t t;

	if (f->state == NULL)
		assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
		    0);
	assert_int_equal(pthread_create(&t, NULL, action_thread, &a), 0);
	assert_int_equal(fake_host_wait_done(f->fh, before + 1,
	    (int)deadline_ms + 1000), 0);
	pthread_join(t, NULL);
	assert_int_equal(fake_host_done_count(f->fh), before + 1);
	assert_ptr_equal(fake_host_last(f->fh)->task, a.task);
	return fake_host_last(f->fh);
}

static void
test_action_no_service(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	r = run_action(f, "restart", 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "no service manager configured for "
	    "this check");
	assert_int_equal(r->nsamples, 0);
	assert_int_equal(fake_host_service_calls(f->fh), 1);
	assert_string_equal(fake_host_service_last_op(f->fh), "restart");
}

static void
test_action_start_waits_for_login(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	target_amqp(f);
	fake_host_set_service(f->fh, 1, "rabbitmq-server started");
	r = run_action(f, "start", 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_contains(r->message, "rabbitmq-server started; the broker "
	    "accepts logins after 0.");
	assert_string_equal(fake_host_service_last_op(f->fh), "start");
	server_stop(&f->amqp);
	assert_int_equal(f->amqp.amqp.closed_cleanly, 1);
	assert_int_equal(f->amqp.amqp.channel_opens, 0);
	assert_int_equal(fake_host_events_pending(f->fh), 0);
}

static void
test_action_start_never_up(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char want[200];
	int port, fd = bound_socket(-1, &port);
	double t0 = now_ms();

	assert_true(fd >= 0);
	f->extra_fd[0] = fd;
	fake_host_set_string(f->fh, "host", "127.0.0.1");
	fake_host_set_int(f->fh, "port", port);
	fake_host_set_service(f->fh, 1, "restarted");
	r = run_action(f, "restart", 600);
	/* It kept trying until its deadline. */
	assert_true(now_ms() - t0 >= 500);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	snprintf(want, sizeof(want), "restarted; the broker accepted no login "
	    "in time: connect to 127.0.0.1 port %d: Connection refused", port);
	assert_string_equal(r->message, want);
}

static void
test_action_stop_waits_for_refusal(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	int port, fd = bound_socket(-1, &port);

	assert_true(fd >= 0);
	f->extra_fd[0] = fd;
	fake_host_set_string(f->fh, "host", "127.0.0.1");
	fake_host_set_int(f->fh, "port", port);
	fake_host_set_service(f->fh, 1, "stopped");
	r = run_action(f, "stop", 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_contains(r->message, "stopped; the broker refuses connections "
	    "after 0.");
	assert_string_equal(fake_host_service_last_op(f->fh), "stop");
}

static void
test_action_stop_still_up(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	target_amqp(f);
	fake_host_set_service(f->fh, 1, "stopped");
	r = run_action(f, "stop", 700);
	server_stop(&f->amqp);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_string_equal(r->message, "stopped; the broker still accepts "
	    "connections");
	/* Asked again and again, 200 ms apart. */
	assert_true(f->amqp.accepted >= 2);
}

static void
test_action_service_failed(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	target_amqp(f);
	fake_host_set_service(f->fh, 0, "stop: exit status 1");
	r = run_action(f, "stop", 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "stop: exit status 1");
	assert_int_equal(fake_host_service_calls(f->fh), 1);
	/* A failed command is the answer: the broker is not probed. */
	server_stop(&f->amqp);
	assert_int_equal(f->amqp.accepted, 0);
}

/* A service manager that never answers (as for a check being freed). */
static unsigned silent_calls;

static int
silent_service_control(struct troika_instance *inst, const char *op,
    int64_t timeout_ms, troika_service_done_cb done, void *arg)
{
	(void)inst;
	(void)op;
	(void)timeout_ms;
	(void)done;
	(void)arg;
	silent_calls++;
	return 0;
}

static void
test_action_freed_while_service_runs(void **state)
{
	struct fixture *f = *state;
	struct troika_host table = *fake_host_table(f->fh);
	const struct fake_result *r;

	/*
	 * The worker gives up at its deadline while the service manager
	 * still holds the call; the host then never calls done for a freed
	 * check, so instance_free must free the call (ASan: no leak).
	 */
	table.service_control = silent_service_control;
	silent_calls = 0;
	assert_int_equal(f->p->instance_new(&table, fake_host_instance(f->fh),
	    &f->state), 0);
	r = run_action(f, "restart", 300);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_string_equal(r->message, "the service manager did not answer "
	    "in time; the operation may still complete");
	assert_int_equal(silent_calls, 1);
	f->p->instance_free(f->state);
	f->state = NULL;
}

static void
test_action_loop_stalled(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task = fake_host_task(f->fh, 300);
	const struct fake_result *r;
	double t0 = now_ms();

	/*
	 * Nobody runs the loop while the action waits: it gives up at its
	 * deadline. When the loop runs later, the abandoned request is
	 * dropped without calling the service manager.
	 */
	fake_host_set_service(f->fh, 1, "late");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	fake_host_action(f->fh, f->p, f->state, task, "restart", NULL, 0);
	assert_true(now_ms() - t0 >= 250);
	assert_true(now_ms() - t0 < 300);
	assert_int_equal(fake_host_done_count(f->fh), 1);
	r = fake_host_last(f->fh);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_string_equal(r->message, "the service manager did not answer "
	    "in time; the operation may still complete");
	fake_host_run_for(f->fh, 50);
	assert_int_equal(fake_host_service_calls(f->fh), 0);
	assert_int_equal(fake_host_done_count(f->fh), 1);
	assert_int_equal(fake_host_events_pending(f->fh), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_descriptor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_errors, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_timeout, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_silent_server, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_closed_at_once, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_closed_mid_reply, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_huge_frame, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_login_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_vhost_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_server_text_one_line, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_long_texts_are_cut, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_ok_with_queues, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_no_queues, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thresholds, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_missing_queue, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stall_after_login, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_forced_close, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mgmt_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mgmt_own_credentials, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mgmt_alarms, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mgmt_partitions, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mgmt_node_down, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mgmt_local_node_missing,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_mgmt_long_node_name, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mgmt_unauthorized, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mgmt_server_error, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mgmt_not_json, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mgmt_nodes_not_a_list,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_mgmt_bad_node_entry, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mgmt_huge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mgmt_short_reply, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mgmt_silent, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mgmt_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_action_no_service, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_action_start_waits_for_login,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_action_start_never_up, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_action_stop_waits_for_refusal,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_action_stop_still_up, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_action_service_failed, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_action_freed_while_service_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_action_loop_stalled, setup,
		    teardown),
	};

	/*
	 * As in the agent: actions hand work to the loop from another
	 * thread, which libevent allows once it knows about threads.
	 */
	if (evthread_use_pthreads() < 0)
		return 1;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
