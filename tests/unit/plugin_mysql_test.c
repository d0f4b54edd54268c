/*
 * The mysql plugin, loaded from the build tree and driven through the fake
 * host against a fake MariaDB server on 127.0.0.1: a few hundred lines of
 * the client/server protocol (greeting, OK/ERR, text result sets) on the
 * same event base, serving status tables the tests set, and misbehaving
 * on demand (silence, garbage, a reply cut or stalled half-way, a flood
 * of rows). The offline paths use a temporary datadir (grastate.dat,
 * ibdata1 and its lock) and shell scripts standing in for mariadbd
 * --wsrep-recover and for bootstrap_command. A real Galera cluster is in
 * tests/system/test_mysql.py.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "fake_host.h"
#include "spawn.h"

#define MYSQL_PLUGIN TEST_BUILD_PLUGIN_DIR "/troika-mysql.so"
#define UUID "8ee8db6e-e986-11f1-b5aa-dff7f5c883ba"
#define NIL_UUID "00000000-0000-0000-0000-000000000000"

/* ---- a fake MariaDB server ---- */

enum srv_mode {
	SRV_NORMAL,
	SRV_SILENT,    /* accept, never say a word */
	SRV_GARBAGE,   /* an HTTP error page instead of a greeting */
	SRV_DENY,      /* ERR 1045 to the login */
	SRV_CLOSE_MID, /* a query's reply cut after its column count */
	SRV_STALL_MID, /* a query's reply stops after its column count */
	SRV_HUGE,      /* SHOW GLOBAL STATUS answers 20000 rows */
	SRV_BAD_ROWS,  /* status rows with three columns */
	SRV_RESET,     /* accept, then reset the connection at once */
};

struct kv {
	const char *name;
	const char *value;
};

#define SRV_MAX_KV 32
#define SRV_MAX_QUERIES 16

struct server;

struct sconn {
	struct server *s;
	struct bufferevent *bev;
	int authed;
	struct sconn *next;
};

struct server {
	struct event_base *base;
	enum srv_mode mode;
	int lfd;
	int port;
	int listening;
	struct event *accept_ev;
	struct event *marker_ev; /* listen once marker exists */
	char marker[256];
	struct sconn *conns;
	int accepted;
	struct kv status[SRV_MAX_KV];
	struct kv vars[SRV_MAX_KV];
	/* SHOW ALL SLAVES STATUS: columns and rows (NULL value = SQL NULL) */
	const char *const *rcols;
	size_t nrcols;
	const char *const (*rrows)[8];
	size_t nrrows;
	char queries[SRV_MAX_QUERIES][256];
	size_t nqueries;
	char user[64];
	int stays_non_primary; /* pc.bootstrap=YES accepted, to no effect */
};

static const struct kv synced_status[] = {
	{ "wsrep_local_state_uuid", UUID },
	{ "wsrep_cluster_state_uuid", UUID },
	{ "wsrep_cluster_status", "Primary" },
	{ "wsrep_local_state", "4" },
	{ "wsrep_local_state_comment", "Synced" },
	{ "wsrep_cluster_size", "3" },
	{ "wsrep_ready", "ON" },
	{ "wsrep_connected", "ON" },
	{ "wsrep_last_committed", "42" },
	{ "wsrep_flow_control_paused", "0.000000" },
	{ "wsrep_flow_control_paused_ns", "1000" },
	{ "wsrep_local_recv_queue", "0" },
	{ "wsrep_local_send_queue", "1" },
	{ "wsrep_provider_version", "4.23(rXXXX)" },
	{ "Threads_connected", "5" },
	{ NULL, NULL },
};

static const struct kv default_vars[] = {
	{ "max_connections", "151" },
	{ "read_only", "OFF" },
	{ "wsrep_on", "ON" },
	{ NULL, NULL },
};

static void
kv_copy(struct kv *dst, const struct kv *src)
{
	size_t i;

	for (i = 0; src[i].name != NULL && i + 1 < SRV_MAX_KV; i++)
		dst[i] = src[i];
	dst[i] = (struct kv){ NULL, NULL };
}

/* Set (or add) name; value NULL removes it. */
static void
kv_set(struct kv *t, const char *name, const char *value)
{
	size_t i;

	for (i = 0; t[i].name != NULL; i++)
		if (strcmp(t[i].name, name) == 0)
			break;
	if (t[i].name == NULL) {
		if (value == NULL)
			return;
		assert_true(i + 1 < SRV_MAX_KV);
		t[i + 1] = (struct kv){ NULL, NULL };
	} else if (value == NULL) {
		for (; t[i].name != NULL; i++)
			t[i] = t[i + 1];
		return;
	}
	t[i] = (struct kv){ name, value };
}

/* A growing packet payload. */
struct pkt {
	unsigned char b[8192];
	size_t n;
};

static void
pkt_put(struct pkt *p, const void *data, size_t len)
{
	assert_true(p->n + len <= sizeof(p->b));
	memcpy(p->b + p->n, data, len);
	p->n += len;
}

static void
pkt_u8(struct pkt *p, unsigned v)
{
	unsigned char c = (unsigned char)v;

	pkt_put(p, &c, 1);
}

static void
pkt_u16(struct pkt *p, unsigned v)
{
	pkt_u8(p, v & 0xff);
	pkt_u8(p, (v >> 8) & 0xff);
}

static void
pkt_u32(struct pkt *p, uint32_t v)
{
	pkt_u16(p, v & 0xffff);
	pkt_u16(p, v >> 16);
}

/* A length-encoded string (short ones only), or NULL as 0xfb. */
static void
pkt_lenstr(struct pkt *p, const char *s)
{
	size_t len;

	if (s == NULL) {
		pkt_u8(p, 0xfb);
		return;
	}
	len = strlen(s);
	if (len < 251) {
		pkt_u8(p, (unsigned)len);
	} else {
		pkt_u8(p, 0xfc);
		pkt_u16(p, (unsigned)len);
	}
	pkt_put(p, s, len);
}

static void
send_pkt(struct sconn *c, unsigned seq, const struct pkt *p)
{
	unsigned char hdr[4] = {
		p->n & 0xff, (p->n >> 8) & 0xff, (p->n >> 16) & 0xff,
		seq & 0xff,
	};

	evbuffer_add(bufferevent_get_output(c->bev), hdr, 4);
	evbuffer_add(bufferevent_get_output(c->bev), p->b, p->n);
}

/* Capabilities: long password, long flag, protocol 4.1, transactions,
 * secure connection, multi results, plugin auth. */
#define SRV_CAPS (0x1u | 0x4u | 0x200u | 0x2000u | 0x8000u | 0x20000u | \
    0x80000u)

static void
send_greeting(struct sconn *c)
{
	struct pkt p = { .n = 0 };
	static const char version[] = "10.11.19-MariaDB-fake";
	static const char scramble[] = "abcdefgh" "ijklmnopqrst";

	pkt_u8(&p, 10);
	pkt_put(&p, version, sizeof(version));
	pkt_u32(&p, 7);
	pkt_put(&p, scramble, 8);
	pkt_u8(&p, 0);
	pkt_u16(&p, SRV_CAPS & 0xffff);
	pkt_u8(&p, 33); /* utf8_general_ci */
	pkt_u16(&p, 2); /* autocommit */
	pkt_u16(&p, SRV_CAPS >> 16);
	pkt_u8(&p, 21);
	for (int i = 0; i < 10; i++)
		pkt_u8(&p, 0);
	pkt_put(&p, scramble + 8, 12);
	pkt_u8(&p, 0);
	pkt_put(&p, "mysql_native_password", 22);
	send_pkt(c, 0, &p);
}

static void
send_ok(struct sconn *c, unsigned seq)
{
	struct pkt p = { .n = 0 };

	pkt_u8(&p, 0);
	pkt_u8(&p, 0);
	pkt_u8(&p, 0);
	pkt_u16(&p, 2);
	pkt_u16(&p, 0);
	send_pkt(c, seq, &p);
}

static void
send_err(struct sconn *c, unsigned seq, unsigned code, const char *state,
    const char *msg)
{
	struct pkt p = { .n = 0 };

	pkt_u8(&p, 0xff);
	pkt_u16(&p, code);
	pkt_u8(&p, '#');
	pkt_put(&p, state, 5);
	pkt_put(&p, msg, strlen(msg));
	send_pkt(c, seq, &p);
}

static void
send_eof(struct sconn *c, unsigned seq)
{
	struct pkt p = { .n = 0 };

	pkt_u8(&p, 0xfe);
	pkt_u16(&p, 0);
	pkt_u16(&p, 2);
	send_pkt(c, seq, &p);
}

/* Column count and definitions, then the EOF; returns the next seq. */
static unsigned
send_columns(struct sconn *c, const char *const *names, size_t n)
{
	struct pkt p = { .n = 0 };
	unsigned seq = 1;

	pkt_u8(&p, (unsigned)n);
	send_pkt(c, seq++, &p);
	for (size_t i = 0; i < n; i++) {
		p.n = 0;
		pkt_lenstr(&p, "def");
		pkt_lenstr(&p, "");
		pkt_lenstr(&p, "");
		pkt_lenstr(&p, "");
		pkt_lenstr(&p, names[i]);
		pkt_lenstr(&p, names[i]);
		pkt_u8(&p, 0x0c);
		pkt_u16(&p, 33);
		pkt_u32(&p, 1024);
		pkt_u8(&p, 0xfd); /* VAR_STRING */
		pkt_u16(&p, 0);
		pkt_u8(&p, 0);
		pkt_u16(&p, 0);
		send_pkt(c, seq++, &p);
	}
	send_eof(c, seq++);
	return seq;
}

static void
send_kv(struct sconn *c, const struct kv *t)
{
	static const char *const names[] = { "Variable_name", "Value" };
	unsigned seq = send_columns(c, names, 2);

	for (size_t i = 0; t[i].name != NULL; i++) {
		struct pkt p = { .n = 0 };

		pkt_lenstr(&p, t[i].name);
		pkt_lenstr(&p, t[i].value);
		send_pkt(c, seq++, &p);
	}
	send_eof(c, seq);
}

static void
send_replicas(struct sconn *c)
{
	struct server *s = c->s;
	unsigned seq = send_columns(c, s->rcols, s->nrcols);

	for (size_t r = 0; r < s->nrrows; r++) {
		struct pkt p = { .n = 0 };

		for (size_t i = 0; i < s->nrcols; i++)
			pkt_lenstr(&p, s->rrows[r][i]);
		send_pkt(c, seq++, &p);
	}
	send_eof(c, seq);
}

static void
sconn_free(struct sconn *c)
{
	struct server *s = c->s;

	for (struct sconn **pp = &s->conns; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	bufferevent_free(c->bev);
	free(c);
}

static void
server_query(struct sconn *c, const char *q)
{
	struct server *s = c->s;
	static const char *const two[] = { "Variable_name", "Value" };

	if (s->nqueries < SRV_MAX_QUERIES)
		snprintf(s->queries[s->nqueries++], sizeof(s->queries[0]),
		    "%s", q);
	if (s->mode == SRV_CLOSE_MID || s->mode == SRV_STALL_MID) {
		struct pkt p = { .n = 0 };

		pkt_u8(&p, 2);
		send_pkt(c, 1, &p);
		if (s->mode == SRV_CLOSE_MID)
			c->authed = -1; /* close once that is written */
		return;
	}
	if (strncmp(q, "SHOW GLOBAL STATUS", 18) == 0) {
		if (s->mode == SRV_HUGE) {
			unsigned seq = send_columns(c, two, 2);
			struct pkt p = { .n = 0 };

			pkt_lenstr(&p, "wsrep_x");
			pkt_lenstr(&p, "1");
			for (int i = 0; i < 20000; i++)
				send_pkt(c, seq++ & 0xff, &p);
			send_eof(c, seq);
			return;
		}
		if (s->mode == SRV_BAD_ROWS) {
			static const char *const three[] = { "a", "b", "c" };
			unsigned seq = send_columns(c, three, 3);
			struct pkt p = { .n = 0 };

			pkt_lenstr(&p, "x");
			pkt_lenstr(&p, "y");
			pkt_lenstr(&p, "z");
			send_pkt(c, seq++, &p);
			send_eof(c, seq);
			return;
		}
		send_kv(c, s->status);
	} else if (strncmp(q, "SHOW GLOBAL VARIABLES", 21) == 0) {
		send_kv(c, s->vars);
	} else if (strcmp(q, "SHOW ALL SLAVES STATUS") == 0) {
		if (s->rcols == NULL)
			send_err(c, 1, 1227, "42000", "Access denied; you need "
			    "(at least one of) the SLAVE MONITOR privilege(s)");
		else
			send_replicas(c);
	} else if (strcmp(q, "SET GLOBAL wsrep_desync = ON") == 0) {
		kv_set(s->status, "wsrep_local_state", "2");
		kv_set(s->status, "wsrep_local_state_comment",
		    "Donor/Desynced");
		send_ok(c, 1);
	} else if (strcmp(q, "SET GLOBAL wsrep_provider_options = "
	    "'pc.bootstrap=YES'") == 0) {
		if (!s->stays_non_primary) {
			kv_set(s->status, "wsrep_cluster_status", "Primary");
			kv_set(s->status, "wsrep_ready", "ON");
		}
		send_ok(c, 0);
	} else if (strcmp(q, "SET GLOBAL wsrep_desync = OFF") == 0) {
		kv_set(s->status, "wsrep_local_state", "4");
		kv_set(s->status, "wsrep_local_state_comment", "Synced");
		send_ok(c, 1);
	} else {
		send_err(c, 1, 1064, "42000", "You have an error in your SQL "
		    "syntax");
	}
}

static void
sconn_close_later(struct sconn *c)
{
	/* Write what is queued, then close (see sconn_write_cb). */
	c->authed = -1;
}

static void
sconn_read_cb(struct bufferevent *bev, void *arg)
{
	struct sconn *c = arg;
	struct server *s = c->s;
	struct evbuffer *in = bufferevent_get_input(bev);
	unsigned char hdr[4];
	char *body;
	size_t len;

	while (evbuffer_get_length(in) >= 4) {
		evbuffer_copyout(in, hdr, 4);
		len = hdr[0] | (size_t)hdr[1] << 8 | (size_t)hdr[2] << 16;
		if (evbuffer_get_length(in) < 4 + len)
			return;
		evbuffer_drain(in, 4);
		body = calloc(1, len + 1);
		assert_non_null(body);
		evbuffer_remove(in, body, len);
		if (!c->authed) {
			/* flags 4, max packet 4, charset 1, filler 23, user */
			if (len > 32)
				snprintf(s->user, sizeof(s->user), "%s",
				    body + 32);
			if (s->mode == SRV_DENY) {
				send_err(c, 2, 1045, "28000", "Access denied "
				    "for user 'troika'@'127.0.0.1' (using "
				    "password: YES)");
				sconn_close_later(c);
			} else {
				send_ok(c, 2);
				c->authed = 1;
			}
		} else if (c->authed == 1 && len >= 1 && body[0] == 0x03) {
			server_query(c, body + 1);
		} else if (len >= 1 && body[0] == 0x01) {
			free(body);
			sconn_free(c);
			return;
		}
		free(body);
		if (c->authed == -1) {
			if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
				sconn_free(c);
			return;
		}
	}
}

static void
sconn_write_cb(struct bufferevent *bev, void *arg)
{
	struct sconn *c = arg;

	(void)bev;
	if (c->authed == -1)
		sconn_free(c);
}

static void
sconn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	sconn_free(arg);
}

static void
server_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	struct sconn *c;
	int cfd;

	(void)what;
	if ((cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) < 0)
		return;
	s->accepted++;
	if (s->mode == SRV_RESET) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		setsockopt(cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(cfd);
		return;
	}
	c = calloc(1, sizeof(*c));
	assert_non_null(c);
	c->s = s;
	c->bev = bufferevent_socket_new(s->base, cfd, BEV_OPT_CLOSE_ON_FREE);
	assert_non_null(c->bev);
	bufferevent_setcb(c->bev, sconn_read_cb, sconn_write_cb,
	    sconn_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->next = s->conns;
	s->conns = c;
	switch (s->mode) {
	case SRV_SILENT:
		break;
	case SRV_GARBAGE:
		evbuffer_add_printf(bufferevent_get_output(c->bev),
		    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
		break;
	default:
		send_greeting(c);
		break;
	}
}

static void
server_marker_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;

	(void)fd;
	(void)what;
	if (s->listening || access(s->marker, F_OK) != 0)
		return;
	assert_int_equal(listen(s->lfd, 16), 0);
	s->listening = 1;
}

/*
 * Bind 127.0.0.1 on an ephemeral port; listen at once, or (marker not
 * NULL) only once the file marker exists, so connects are refused until
 * then.
 */
static void
server_start(struct server *s, struct event_base *base, enum srv_mode mode,
    const char *marker)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);

	s->base = base;
	s->mode = mode;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	assert_true(s->lfd >= 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sin, &len), 0);
	s->port = ntohs(sin.sin_port);
	if (marker == NULL) {
		assert_int_equal(listen(s->lfd, 16), 0);
		s->listening = 1;
	} else {
		struct timeval tv = { 0, 10 * 1000 };

		snprintf(s->marker, sizeof(s->marker), "%s", marker);
		s->marker_ev = event_new(base, -1, EV_PERSIST,
		    server_marker_cb, s);
		assert_non_null(s->marker_ev);
		event_add(s->marker_ev, &tv);
	}
	s->accept_ev = event_new(base, s->lfd, EV_READ | EV_PERSIST,
	    server_accept_cb, s);
	assert_non_null(s->accept_ev);
	event_add(s->accept_ev, NULL);
}

/* Serve on a unix socket at path instead. */
static void
server_start_unix(struct server *s, struct event_base *base, const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	s->base = base;
	s->mode = SRV_NORMAL;
	assert_true(strlen(path) < sizeof(sun.sun_path));
	memcpy(sun.sun_path, path, strlen(path) + 1);
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	assert_true(s->lfd >= 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(s->lfd, 16), 0);
	s->listening = 1;
	s->accept_ev = event_new(base, s->lfd, EV_READ | EV_PERSIST,
	    server_accept_cb, s);
	assert_non_null(s->accept_ev);
	event_add(s->accept_ev, NULL);
}

static void
server_stop(struct server *s)
{
	while (s->conns != NULL)
		sconn_free(s->conns);
	if (s->accept_ev != NULL)
		event_free(s->accept_ev);
	if (s->marker_ev != NULL)
		event_free(s->marker_ev);
	if (s->lfd >= 0)
		close(s->lfd);
	s->accept_ev = s->marker_ev = NULL;
	s->lfd = -1;
	s->listening = 0;
}

static int
server_saw(const struct server *s, const char *q)
{
	for (size_t i = 0; i < s->nqueries; i++)
		if (strcmp(s->queries[i], q) == 0)
			return 1;
	return 0;
}

/* ---- fixture ---- */

struct fixture {
	const struct troika_plugin *p;
	void *dl;
	struct fake_host *fh;
	void *state;
	struct server srv;
	int fds_before;
	char dir[128];     /* temporary: datadir, scripts */
	char datadir[160];
	int lockfd;
};

static int
group_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	/* The fake server writes to connections the plugin abandoned. */
	signal(SIGPIPE, SIG_IGN);
	f->p = fake_host_load_plugin(MYSQL_PLUGIN, &f->dl);
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
	memset(&f->srv, 0, sizeof(f->srv));
	f->srv.lfd = -1;
	kv_copy(f->srv.status, synced_status);
	kv_copy(f->srv.vars, default_vars);
	snprintf(f->dir, sizeof(f->dir), "/tmp/troika-mysql-test-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->datadir, sizeof(f->datadir), "%s/data", f->dir);
	assert_int_equal(mkdir(f->datadir, 0755), 0);
	f->lockfd = -1;
	fake_host_set_string(f->fh, "user", "troika");
	fake_host_set_string(f->fh, "password", "secret");
	/* The plugin's temporary files (the recovery log) go here. */
	assert_int_equal(setenv("TMPDIR", f->dir, 1), 0);
	return 0;
}

static void
rm_rf(const char *dir)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	f->p->instance_free(f->state);
	f->state = NULL;
	server_stop(&f->srv);
	if (f->lockfd >= 0)
		close(f->lockfd);
	assert_int_equal(fake_host_violations(f->fh), 0);
	fake_host_free(f->fh);
	f->fh = NULL;
	assert_int_equal(spawn_active(), 0);
	assert_int_equal(fake_host_count_fds(), f->fds_before);
	rm_rf(f->dir);
	return 0;
}

static void
assert_contains(const char *haystack, const char *needle)
{
	if (haystack == NULL || strstr(haystack, needle) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"",
		    haystack != NULL ? haystack : "(null)", needle);
}

static void
target_server(struct fixture *f)
{
	fake_host_set_string(f->fh, "host", "127.0.0.1");
	fake_host_set_int(f->fh, "port", f->srv.port);
}

/* Start the fake server in mode and point the check at it. */
static void
serve(struct fixture *f, enum srv_mode mode)
{
	server_start(&f->srv, fake_host_base(f->fh), mode, NULL);
	target_server(f);
}

static void
new_instance(struct fixture *f)
{
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
}

/* After a task: nothing of the plugin's left on the loop. */
static void
assert_quiet(struct fixture *f)
{
	struct server keep = f->srv;

	/* The fake server's own events do not count. */
	if (f->srv.accept_ev != NULL)
		event_del(f->srv.accept_ev);
	if (f->srv.marker_ev != NULL)
		event_del(f->srv.marker_ev);
	for (struct sconn *c = f->srv.conns; c != NULL; c = c->next)
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	assert_int_equal(fake_host_events_pending(f->fh), 0);
	if (keep.accept_ev != NULL)
		event_add(keep.accept_ev, NULL);
	if (keep.marker_ev != NULL) {
		struct timeval tv = { 0, 10 * 1000 };

		event_add(keep.marker_ev, &tv);
	}
	for (struct sconn *c = f->srv.conns; c != NULL; c = c->next)
		bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/*
 * Wait for the result of a task started just before; checks what every
 * result must satisfy: once, not inside the call, one line, nothing left
 * on the loop.
 */
static const struct fake_result *
wait_result(struct fixture *f, struct troika_task *task, unsigned before,
    int64_t deadline_ms)
{
	const struct fake_result *r;

	assert_int_equal(fake_host_done_count(f->fh), before);
	assert_int_equal(fake_host_wait_done(f->fh, before + 1,
	    (int)deadline_ms + 2000), 0);
	r = fake_host_last(f->fh);
	assert_ptr_equal(r->task, task);
	assert_non_null(r->message);
	assert_null(strchr(r->message, '\n'));
	assert_quiet(f);
	return r;
}

static const struct fake_result *
run_check(struct fixture *f, int64_t deadline_ms)
{
	struct troika_task *task = fake_host_task(f->fh, deadline_ms);
	unsigned before = fake_host_done_count(f->fh);

	fake_host_check(f->fh, f->p, f->state, task);
	return wait_result(f, task, before, deadline_ms);
}

static const struct fake_result *
run_action(struct fixture *f, int64_t deadline_ms, const char *name,
    const char *arg)
{
	struct troika_task *task = fake_host_task(f->fh, deadline_ms);
	unsigned before = fake_host_done_count(f->fh);
	const char *argv[1] = { arg };

	fake_host_action(f->fh, f->p, f->state, task, name, argv,
	    arg != NULL ? 1 : 0);
	return wait_result(f, task, before, deadline_ms);
}

static double
sample(const struct fake_result *r, const char *name)
{
	const struct fake_sample *s = fake_result_sample(r, name, NULL, NULL);

	if (s == NULL)
		fail_msg("no sample %s", name);
	return s->value;
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(close(fd), 0);
}

/* The whole of a small file; "" when missing. */
static const char *
read_file(const char *path)
{
	static char buf[8192];
	ssize_t n;
	int fd;

	buf[0] = '\0';
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return buf;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* Entries of dir whose names start with prefix. */
static int
count_prefix(const char *dir, const char *prefix)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	closedir(d);
	return n;
}

static void
path_in(const struct fixture *f, char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", f->dir, name);
}

/* A datadir as mariadbd leaves it: ibdata1 and grastate.dat. */
static void
make_datadir(struct fixture *f, const char *uuid, const char *seqno,
    const char *safe)
{
	char path[300], text[512];

	snprintf(path, sizeof(path), "%s/ibdata1", f->datadir);
	write_file(path, "", 0660);
	snprintf(path, sizeof(path), "%s/grastate.dat", f->datadir);
	snprintf(text, sizeof(text), "# GALERA saved state\nversion: 2.1\n"
	    "uuid:    %s\nseqno:   %s\nsafe_to_bootstrap: %s\n", uuid, seqno,
	    safe);
	write_file(path, text, 0660);
	fake_host_set_string(f->fh, "datadir", f->datadir);
}

static const char *
grastate(struct fixture *f)
{
	char path[300];

	snprintf(path, sizeof(path), "%s/grastate.dat", f->datadir);
	return read_file(path);
}

/* Hold InnoDB's lock on ibdata1 as a running mariadbd would. */
static void
lock_datadir(struct fixture *f)
{
	char path[300];
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	snprintf(path, sizeof(path), "%s/ibdata1", f->datadir);
	f->lockfd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(f->lockfd >= 0);
	assert_int_equal(fcntl(f->lockfd, F_SETLK, &fl), 0);
}

/*
 * A stand-in for mariadbd: a shell script that logs its arguments to
 * <dir>/args and then runs body (with $log set to --log-error's value).
 */
static void
fake_mariadbd(struct fixture *f, const char *body)
{
	char path[300], args[300], text[2048];

	path_in(f, path, sizeof(path), "mariadbd");
	path_in(f, args, sizeof(args), "args");
	snprintf(text, sizeof(text), "#!/bin/sh\n"
	    "echo \"$@\" > '%s'\n"
	    "log=\n"
	    "for a; do case $a in --log-error=*) log=${a#--log-error=};; "
	    "esac; done\n%s\n", args, body);
	write_file(path, text, 0755);
	fake_host_set_string(f->fh, "mariadbd", path);
	path_in(f, path, sizeof(path), "my.cnf");
	write_file(path, "[mariadbd]\n", 0644);
	fake_host_set_string(f->fh, "defaults_file", path);
}

/* ---- checks ---- */

static void
test_descriptor(void **state)
{
	struct fixture *f = *state;
	const char *names[] = { "position", "bootstrap", "desync", "start",
	    "stop", "restart" };
	size_t n = 0;

	assert_string_equal(f->p->name, "mysql");
	assert_int_equal(f->p->exec_model, TROIKA_EXEC_ASYNC);
	assert_int_equal(f->p->abi_minor, TROIKA_PLUGIN_ABI_MINOR);
	assert_non_null(f->p->cancel);
	assert_non_null(f->p->actions);
	for (const struct troika_action *a = f->p->actions; a->name != NULL;
	    a++, n++)
		assert_string_equal(a->name, names[n]);
	assert_int_equal(n, 6);
	/* Only the entry point is exported. */
	assert_null(dlsym(f->dl, "mysql_check"));
	assert_null(dlsym(f->dl, "myconn_start"));
	assert_null(dlsym(f->dl, "galera_grastate_read"));
}

static void
test_synced_ok(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	const struct fake_sample *s;

	serve(f, SRV_NORMAL);
	fake_host_set_int(f->fh, "expected_cluster_size", 3);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	assert_string_equal(r->message, "Synced, Primary, cluster size 3; "
	    "5 of 151 connections");
	assert_string_equal(f->srv.user, "troika");
	assert_true(sample(r, "mysql_up") == 1);
	assert_true(sample(r, "mysql_global_status_wsrep_cluster_size") == 3);
	assert_true(sample(r, "mysql_global_status_wsrep_local_state") == 4);
	assert_true(sample(r, "mysql_global_status_wsrep_ready") == 1);
	assert_true(sample(r, "mysql_global_status_wsrep_connected") == 1);
	assert_true(sample(r, "mysql_global_status_wsrep_cluster_status") == 1);
	assert_true(sample(r, "mysql_global_status_wsrep_last_committed") == 42);
	assert_true(sample(r, "mysql_global_status_wsrep_flow_control_paused")
	    == 0);
	assert_true(sample(r, "mysql_global_status_wsrep_local_send_queue")
	    == 1);
	assert_true(sample(r, "mysql_global_status_threads_connected") == 5);
	assert_true(sample(r, "mysql_global_variables_max_connections") == 151);
	assert_true(sample(r, "mysql_global_variables_read_only") == 0);
	/* The first run has no interval to measure flow control over. */
	assert_null(fake_result_sample(r,
	    "troika_mysql_flow_control_paused_ratio", NULL, NULL));
	s = fake_result_sample(r, "mysql_galera_status_info", NULL, NULL);
	assert_non_null(s);
	assert_true(s->value == 1);
	assert_string_equal(fake_sample_label(s, "wsrep_local_state_uuid"),
	    UUID);
	assert_string_equal(fake_sample_label(s, "wsrep_cluster_state_uuid"),
	    UUID);
	assert_string_equal(fake_sample_label(s, "wsrep_provider_version"),
	    "4.23(rXXXX)");
	for (size_t i = 0; i < r->nsamples; i++)
		assert_int_equal(r->samples[i].type, TROIKA_METRIC_GAUGE);
	assert_string_equal(fake_result_field(r, "wsrep_local_state_comment"),
	    "Synced");
	assert_string_equal(fake_result_field(r, "wsrep_cluster_status"),
	    "Primary");
	assert_string_equal(fake_result_field(r, "wsrep_cluster_state_uuid"),
	    UUID);
	assert_string_equal(fake_result_field(r, "wsrep_last_committed"), "42");
	/* Status and variables; no replication query unless asked for. */
	assert_int_equal(f->srv.nqueries, 2);
	assert_false(server_saw(&f->srv, "SHOW ALL SLAVES STATUS"));
}

static void
test_non_primary_critical(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	kv_set(f->srv.status, "wsrep_cluster_status", "non-Primary");
	kv_set(f->srv.status, "wsrep_cluster_size", "1");
	kv_set(f->srv.status, "wsrep_ready", "OFF");
	kv_set(f->srv.status, "wsrep_local_state", "0");
	kv_set(f->srv.status, "wsrep_local_state_comment", "Initialized");
	serve(f, SRV_NORMAL);
	fake_host_set_int(f->fh, "expected_cluster_size", 3);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	/* A member in a view change says this for a moment: ambiguous. */
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_string_equal(r->message, "cluster status non-Primary "
	    "(component of 1); not ready (wsrep_ready OFF); cluster size 1, "
	    "expected 3");
	assert_true(sample(r, "mysql_global_status_wsrep_cluster_status") == 0);
	assert_true(sample(r, "mysql_global_status_wsrep_ready") == 0);
	assert_true(sample(r, "mysql_up") == 1);
	assert_string_equal(fake_result_field(r, "wsrep_cluster_status"),
	    "non-Primary");
}

static void
test_not_connected_critical(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	kv_set(f->srv.status, "wsrep_connected", "OFF");
	kv_set(f->srv.status, "wsrep_cluster_status", "Disconnected");
	serve(f, SRV_NORMAL);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "not connected to the cluster "
	    "(wsrep_connected OFF); cluster status Disconnected");
	assert_true(sample(r, "mysql_global_status_wsrep_connected") == 0);
}

static void
test_donor_warning(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	kv_set(f->srv.status, "wsrep_local_state", "2");
	kv_set(f->srv.status, "wsrep_local_state_comment", "Donor/Desynced");
	serve(f, SRV_NORMAL);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_WARNING);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_string_equal(r->message, "local state Donor/Desynced");
	assert_true(sample(r, "mysql_global_status_wsrep_local_state") == 2);
	assert_string_equal(fake_result_field(r, "wsrep_local_state_comment"),
	    "Donor/Desynced");
}

static void
test_small_cluster_warning(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	kv_set(f->srv.status, "wsrep_cluster_size", "2");
	serve(f, SRV_NORMAL);
	fake_host_set_int(f->fh, "expected_cluster_size", 3);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_WARNING);
	assert_string_equal(r->message, "cluster size 2, expected 3");
	/* Not checked unless configured. */
	f->p->instance_free(f->state);
	fake_host_unset(f->fh, "expected_cluster_size");
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
}

static void
test_flow_control(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	/* The first run goes by the server's own fraction. */
	kv_set(f->srv.status, "wsrep_flow_control_paused", "0.500000");
	serve(f, SRV_NORMAL);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_WARNING);
	assert_string_equal(r->message, "flow control paused replication 50% "
	    "of the time (warning above 10%)");
	assert_true(sample(r, "mysql_global_status_wsrep_flow_control_paused")
	    == 0.5);
	/* Later runs by the counter: it did not move, so no pause since. */
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_true(sample(r, "troika_mysql_flow_control_paused_ratio") == 0);
	/* Paused for longer than the whole interval: all of it. */
	kv_set(f->srv.status, "wsrep_flow_control_paused_ns",
	    "999999999999");
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_WARNING);
	assert_true(sample(r, "troika_mysql_flow_control_paused_ratio") == 1);
	assert_contains(r->message, "paused replication 100% of the time");
	/* A counter that went back (a restart) measures nothing. */
	kv_set(f->srv.status, "wsrep_flow_control_paused_ns", "5");
	kv_set(f->srv.status, "wsrep_flow_control_paused", "0.05");
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_null(fake_result_sample(r,
	    "troika_mysql_flow_control_paused_ratio", NULL, NULL));
}

static void
test_connections_warning(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	kv_set(f->srv.status, "Threads_connected", "136");
	serve(f, SRV_NORMAL);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_WARNING);
	assert_string_equal(r->message, "136 of 151 connections used "
	    "(warning at 90%)");
	assert_true(sample(r, "mysql_global_status_threads_connected") == 136);
}

static void
test_wsrep_off_and_plain_server(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	struct kv plain[] = { { "Threads_connected", "2" }, { NULL, NULL } };

	kv_copy(f->srv.status, plain);
	kv_set(f->srv.vars, "wsrep_on", "OFF");
	kv_set(f->srv.vars, "read_only", "ON");
	serve(f, SRV_NORMAL);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "wsrep_on is OFF: not a Galera node");
	/* A plain server, checked as one. */
	f->p->instance_free(f->state);
	fake_host_set_bool(f->fh, "galera", 0);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, "2 of 151 connections");
	assert_true(sample(r, "mysql_global_variables_read_only") == 1);
	assert_null(fake_result_sample(r, "mysql_global_status_wsrep_ready",
	    NULL, NULL));
	assert_int_equal(r->nfields, 0);
}

static void
test_no_wsrep_status(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	struct kv plain[] = { { "Threads_connected", "2" }, { NULL, NULL } };

	kv_copy(f->srv.status, plain);
	serve(f, SRV_NORMAL);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "no wsrep status from the server (no "
	    "Galera provider loaded?)");
}

static const char *const replica_cols[] = { "Connection_name",
    "Master_Host", "Slave_IO_Running", "Slave_SQL_Running",
    "Seconds_Behind_Master", "Last_IO_Error", "Last_SQL_Error" };

static void
test_replication(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	const struct fake_sample *s;
	static const char *const rows[][8] = {
		{ "", "10.0.0.9", "Yes", "Yes", "3", "", "" },
		{ "dc2", "10.0.0.8", "Yes", "Yes", "120", "", "" },
	};

	f->srv.rcols = replica_cols;
	f->srv.nrcols = 7;
	f->srv.rrows = rows;
	f->srv.nrrows = 2;
	serve(f, SRV_NORMAL);
	fake_host_set_bool(f->fh, "galera", 0);
	fake_host_set_bool(f->fh, "replication", 1);
	fake_host_set_duration(f->fh, "max_replication_lag", 60000);
	new_instance(f);
	r = run_check(f, 2000);
	assert_true(server_saw(&f->srv, "SHOW ALL SLAVES STATUS"));
	assert_int_equal(r->status, TROIKA_STATUS_WARNING);
	assert_string_equal(r->message, "replication 'dc2' from 10.0.0.8: "
	    "120 s behind (warning above 60 s)");
	s = fake_result_sample(r, "mysql_slave_status_seconds_behind_master",
	    "connection_name", "dc2");
	assert_non_null(s);
	assert_true(s->value == 120);
	assert_string_equal(fake_sample_label(s, "master_host"), "10.0.0.8");
	s = fake_result_sample(r, "mysql_slave_status_seconds_behind_master",
	    "connection_name", "");
	assert_non_null(s);
	assert_true(s->value == 3);
	s = fake_result_sample(r, "mysql_slave_status_slave_io_running",
	    "connection_name", "dc2");
	assert_non_null(s);
	assert_true(s->value == 1);
}

static void
test_replication_broken(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	const struct fake_sample *s;
	static const char *const rows[][8] = {
		{ "", "10.0.0.9", "Connecting", "Yes", NULL,
		    "error connecting to master", "" },
	};

	f->srv.rcols = replica_cols;
	f->srv.nrcols = 7;
	f->srv.rrows = rows;
	f->srv.nrrows = 1;
	serve(f, SRV_NORMAL);
	fake_host_set_bool(f->fh, "galera", 0);
	fake_host_set_bool(f->fh, "replication", 1);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "replication from 10.0.0.9: IO thread "
	    "not running (error connecting to master)");
	s = fake_result_sample(r, "mysql_slave_status_slave_io_running",
	    NULL, NULL);
	assert_non_null(s);
	assert_true(s->value == 0);
	/* NULL lag: no sample rather than a made-up number. */
	assert_null(fake_result_sample(r,
	    "mysql_slave_status_seconds_behind_master", NULL, NULL));
	/* No replication configured at all. */
	f->srv.nrrows = 0;
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "replicates from no primary");
	/* Not allowed to look. */
	f->srv.rcols = NULL;
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_contains(r->message, "query 3 failed: Access denied; you need");
	assert_true(sample(r, "mysql_up") == 1);
}

static void
test_refused(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char want[96];

	/* Bound, not listening: refused. */
	server_start(&f->srv, fake_host_base(f->fh), SRV_NORMAL, "/nonexistent");
	target_server(f);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	snprintf(want, sizeof(want), "connection to 127.0.0.1:%d refused",
	    f->srv.port);
	assert_string_equal(r->message, want);
	assert_true(sample(r, "mysql_up") == 0);
	assert_int_equal(r->nsamples, 1);
	assert_int_equal(r->nfields, 0);
}

static void
test_socket_missing(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char path[300], want[400];

	path_in(f, path, sizeof(path), "mysqld.sock");
	fake_host_set_string(f->fh, "socket", path);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	snprintf(want, sizeof(want), "connection to %s refused (no socket "
	    "file)", path);
	assert_string_equal(r->message, want);
}

static void
test_unix_socket(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char path[300];

	path_in(f, path, sizeof(path), "mysqld.sock");
	server_start_unix(&f->srv, fake_host_base(f->fh), path);
	fake_host_set_string(f->fh, "socket", path);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_true(sample(r, "mysql_up") == 1);
	assert_string_equal(f->srv.user, "troika");
	/* Nobody listening on it any more: refused, certain. */
	server_stop(&f->srv);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_contains(r->message, "refused");
}

static void
test_access_denied(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	serve(f, SRV_DENY);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	assert_contains(r->message, "Access denied for user 'troika'");
	assert_contains(r->message, "(the server is up, but the check cannot "
	    "see its state)");
	assert_true(sample(r, "mysql_up") == 0);
}

/* How long the last run took, by the wall clock around it. */
static double
elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 +
	    (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static void
test_silent_server_times_out(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	struct timespec t0;
	double ms;

	serve(f, SRV_SILENT);
	new_instance(f);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = run_check(f, 500);
	ms = elapsed_ms(&t0);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "timed out after ");
	assert_contains(r->message, " ms connecting");
	/* Its own deadline: a margin before the host's. */
	assert_true(ms >= 380 && ms < 500);
	assert_int_equal(f->srv.accepted, 1);
}

static void
test_garbage(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	struct timespec t0;

	serve(f, SRV_GARBAGE);
	new_instance(f);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "127.0.0.1:");
	/* Refused as soon as it is read, not at the deadline. */
	assert_true(elapsed_ms(&t0) < 1000);
	assert_true(sample(r, "mysql_up") == 0);
}

static void
test_reset_while_logging_in(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	/* What a server shutting down does to a new connection. */
	serve(f, SRV_RESET);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	/* "Can't connect ... (104)" or "Lost connection ... system error:
	 * 104", depending on when the reset comes. */
	assert_contains(r->message, "104");
	assert_true(sample(r, "mysql_up") == 0);
}

static void
test_closed_mid_reply(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	serve(f, SRV_CLOSE_MID);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "Lost connection");
	assert_true(sample(r, "mysql_up") == 1);
}

static void
test_stalled_mid_reply(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	serve(f, SRV_STALL_MID);
	new_instance(f);
	r = run_check(f, 600);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "ms waiting for a query's reply");
}

static void
test_huge_reply_refused(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	serve(f, SRV_HUGE);
	new_instance(f);
	r = run_check(f, 3000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "reply refused: more than 10000 rows");
}

static void
test_malformed_rows_refused(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	serve(f, SRV_BAD_ROWS);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "reply refused: Protocol error");
}

static void
test_cancel(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task;

	serve(f, SRV_STALL_MID);
	new_instance(f);
	task = fake_host_task(f->fh, 5000);
	fake_host_check(f->fh, f->p, f->state, task);
	fake_host_run_for(f->fh, 100);
	assert_int_equal(f->srv.nqueries, 1); /* stuck in the reply */
	fake_host_cancel(f->fh, f->p, f->state, task);
	assert_quiet(f);
	fake_host_run_for(f->fh, 50);
	assert_int_equal(fake_host_done_count(f->fh), 0);
	/* The instance is free for the next run. */
	f->srv.mode = SRV_NORMAL;
	assert_int_equal(run_check(f, 2000)->status, TROIKA_STATUS_OK);
}

static void
test_cancel_while_connecting(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task;

	serve(f, SRV_SILENT);
	new_instance(f);
	task = fake_host_task(f->fh, 5000);
	fake_host_check(f->fh, f->p, f->state, task);
	fake_host_run_for(f->fh, 50);
	fake_host_cancel(f->fh, f->p, f->state, task);
	assert_quiet(f);
	assert_int_equal(fake_host_done_count(f->fh), 0);
}

static void
test_many_runs_no_leaks(void **state)
{
	struct fixture *f = *state;
	int fds;

	serve(f, SRV_NORMAL);
	new_instance(f);
	assert_int_equal(run_check(f, 2000)->status, TROIKA_STATUS_OK);
	fake_host_run_for(f->fh, 20); /* the server sees the close */
	fds = fake_host_count_fds();
	for (int i = 0; i < 20; i++)
		assert_int_equal(run_check(f, 2000)->status, TROIKA_STATUS_OK);
	fake_host_run_for(f->fh, 20);
	assert_int_equal(fake_host_count_fds(), fds);
}

static void
test_config_errors(void **state)
{
	struct fixture *f = *state;
	const char *empty[1] = { NULL };

	fake_host_set_string(f->fh, "host", "db.example.com");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_true(fake_host_log_contains(f->fh, "names are not resolved"));
	fake_host_set_string(f->fh, "host", "127.0.0.1");
	fake_host_set_string(f->fh, "socket", "/run/mysqld/mysqld.sock");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_true(fake_host_log_contains(f->fh, "set either socket"));
	fake_host_unset(f->fh, "socket");
	fake_host_set_string(f->fh, "datadir", "var/lib/mysql");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_true(fake_host_log_contains(f->fh,
	    "datadir must be an absolute path"));
	fake_host_unset(f->fh, "datadir");
	fake_host_set_list(f->fh, "bootstrap_command", empty, 0);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_true(fake_host_log_contains(f->fh, "bootstrap_command is empty"));
	fake_host_unset(f->fh, "bootstrap_command");
	fake_host_set_string(f->fh, "host", "::1");
	new_instance(f);
}

/* ---- actions ---- */

static void
test_position_from_server(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	serve(f, SRV_NORMAL);
	make_datadir(f, UUID, "-1", "0");
	new_instance(f);
	r = run_action(f, 2000, "position", NULL);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, UUID ":42 from the running server "
	    "(Primary, Synced)");
	assert_string_equal(fake_result_field(r, "cluster_uuid"), UUID);
	assert_string_equal(fake_result_field(r, "seqno"), "42");
	assert_string_equal(fake_result_field(r, "source"), "server");
	assert_string_equal(fake_result_field(r, "safe_to_bootstrap"), "0");
	assert_int_equal(fake_host_spawns(f->fh), 0);
}

static void
test_position_from_grastate(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	server_start(&f->srv, fake_host_base(f->fh), SRV_NORMAL, "/nonexistent");
	target_server(f);
	make_datadir(f, UUID, "12", "1");
	new_instance(f);
	r = run_action(f, 2000, "position", NULL);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, UUID ":12 from grastate (server down)");
	assert_string_equal(fake_result_field(r, "seqno"), "12");
	assert_string_equal(fake_result_field(r, "source"), "grastate");
	assert_string_equal(fake_result_field(r, "safe_to_bootstrap"), "1");
	assert_int_equal(fake_host_spawns(f->fh), 0);
}

static void
test_position_from_wsrep_recover(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char args[300], want[600];

	server_start(&f->srv, fake_host_base(f->fh), SRV_NORMAL, "/nonexistent");
	target_server(f);
	make_datadir(f, UUID, "-1", "0");
	fake_mariadbd(f, "echo '2026-01-01 0 [Note] WSREP: Recovered position: "
	    NIL_UUID ":-1' >> \"$log\"\n"
	    "echo '2026-01-01 0 [Note] WSREP: Recovered position: " UUID
	    ":23,0-1-5' >> \"$log\"");
	new_instance(f);
	r = run_action(f, 3000, "position", NULL);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, UUID ":23 from wsrep-recover (server "
	    "down)");
	assert_string_equal(fake_result_field(r, "seqno"), "23");
	assert_string_equal(fake_result_field(r, "source"), "wsrep-recover");
	assert_string_equal(fake_result_field(r, "safe_to_bootstrap"), "0");
	assert_int_equal(fake_host_spawns(f->fh), 1);
	/* --defaults-file first, the log in a file of its own, removed. */
	path_in(f, args, sizeof(args), "args");
	snprintf(want, sizeof(want), "--defaults-file=%s/my.cnf "
	    "--wsrep-recover --log-error=%s/troika-wsrep-recover-", f->dir,
	    f->dir);
	assert_contains(read_file(args), want);
	assert_contains(read_file(args), ".log\n");
	assert_int_equal(count_prefix(f->dir, "troika-wsrep-recover-"), 0);
	/* A position is a fact: nothing was written. */
	assert_contains(grastate(f), "seqno:   -1\n");
}

static void
test_recover_to_stderr(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	/* mariadbd keeps logging to stderr when it cannot open the file. */
	server_start(&f->srv, fake_host_base(f->fh), SRV_NORMAL, "/nonexistent");
	target_server(f);
	make_datadir(f, UUID, "-1", "0");
	fake_mariadbd(f, "echo 'WSREP: Recovered position: " UUID ":7' >&2");
	new_instance(f);
	r = run_action(f, 3000, "position", NULL);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(fake_result_field(r, "seqno"), "7");
}

static void
test_recover_fails(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	server_start(&f->srv, fake_host_base(f->fh), SRV_NORMAL, "/nonexistent");
	target_server(f);
	make_datadir(f, UUID, "-1", "0");
	fake_mariadbd(f, "echo '2026-01-01 0 [ERROR] InnoDB: corrupt page' "
	    ">> \"$log\"\necho '2026-01-01 0 [ERROR] Aborting' >> \"$log\"\n"
	    "exit 1");
	new_instance(f);
	r = run_action(f, 3000, "position", NULL);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "--wsrep-recover found no position "
	    "(exit 1): Aborting");
	assert_int_equal(r->nfields, 0);
	/* Hanging: killed at the deadline, reported before the host's. */
	fake_mariadbd(f, "exec sleep 30");
	f->p->instance_free(f->state);
	new_instance(f);
	r = run_action(f, 800, "position", NULL);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "--wsrep-recover did not finish within");
	for (int i = 0; i < 300 && spawn_active() > 0; i++)
		fake_host_run_for(f->fh, 10);
}

static void
test_position_refusals(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char want[400];

	server_start(&f->srv, fake_host_base(f->fh), SRV_NORMAL, "/nonexistent");
	target_server(f);
	/* No datadir configured. */
	new_instance(f);
	r = run_action(f, 2000, "position", NULL);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "does not answer (");
	assert_contains(r->message, "and no datadir is configured");
	f->p->instance_free(f->state);
	/* Crashed, but no defaults_file for --wsrep-recover. */
	make_datadir(f, UUID, "-1", "0");
	new_instance(f);
	r = run_action(f, 2000, "position", NULL);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "grastate.dat says seqno -1 (the "
	    "server crashed), and no defaults_file is configured to run "
	    "--wsrep-recover with");
	/* Still held by a server that does not answer: hands off. */
	lock_datadir(f);
	r = run_action(f, 2000, "position", NULL);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	snprintf(want, sizeof(want), "position: a mariadbd (pid %ld) holds %s, "
	    "but 127.0.0.1:%d does not answer", (long)getpid(), f->datadir,
	    f->srv.port);
	assert_contains(r->message, want);
	close(f->lockfd);
	f->lockfd = -1;
	/* No grastate.dat. */
	snprintf(want, sizeof(want), "%s/grastate.dat", f->datadir);
	unlink(want);
	r = run_action(f, 2000, "position", NULL);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "position: no position: cannot read ");
	/* Garbage in grastate.dat. */
	write_file(want, "# GALERA saved state\nuuid: nonsense\nseqno: 1\n",
	    0644);
	r = run_action(f, 2000, "position", NULL);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "position: no position: grastate.dat: "
	    "bad uuid");
	assert_int_equal(fake_host_spawns(f->fh), 0);
}

/* bootstrap_command: a script that records its arguments and "starts the
 * server" by creating the marker the fake server waits for. */
static void
fake_bootstrap_command(struct fixture *f, const char *extra)
{
	char path[300], marker[300], bargs[300], text[1024];
	const char *argv[2];

	path_in(f, path, sizeof(path), "start-server");
	path_in(f, marker, sizeof(marker), "started");
	path_in(f, bargs, sizeof(bargs), "bootstrap-args");
	snprintf(text, sizeof(text), "#!/bin/sh\necho \"$@\" > '%s'\n%s\n"
	    "touch '%s'\n", bargs, extra, marker);
	write_file(path, text, 0755);
	argv[0] = path;
	argv[1] = "--defaults-file=/etc/mysql/my.cnf";
	fake_host_set_list(f->fh, "bootstrap_command", argv, 2);
	server_start(&f->srv, fake_host_base(f->fh), SRV_NORMAL, marker);
	target_server(f);
}

static void
test_bootstrap(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char path[300];

	kv_set(f->srv.status, "wsrep_cluster_size", "1");
	fake_bootstrap_command(f, "");
	make_datadir(f, UUID, "-1", "0");
	fake_mariadbd(f, "echo 'WSREP: Recovered position: " UUID ":57' >> "
	    "\"$log\"");
	new_instance(f);
	r = run_action(f, 5000, "bootstrap", NULL);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, "bootstrapped at " UUID ":57: Primary, "
	    "Synced, cluster size 1");
	assert_string_equal(fake_result_field(r, "cluster_uuid"), UUID);
	assert_string_equal(fake_result_field(r, "seqno"), "57");
	assert_string_equal(fake_result_field(r, "source"), "wsrep-recover");
	assert_string_equal(fake_result_field(r, "safe_to_bootstrap"), "1");
	assert_string_equal(fake_result_field(r, "wsrep_cluster_status"),
	    "Primary");
	path_in(f, path, sizeof(path), "bootstrap-args");
	assert_string_equal(read_file(path), "--defaults-file=/etc/mysql/my.cnf "
	    "--wsrep-new-cluster --wsrep_start_position=" UUID ":57\n");
	/* safe_to_bootstrap set, the rest of the file kept as it was. */
	assert_string_equal(grastate(f), "# GALERA saved state\nversion: 2.1\n"
	    "uuid:    " UUID "\nseqno:   -1\nsafe_to_bootstrap: 1\n");
	/* No temporary file left beside it. */
	assert_int_equal(count_prefix(f->datadir, ".grastate"), 0);
	assert_true(fake_host_log_contains(f->fh, "bootstrap: starting a new "
	    "cluster at " UUID ":57 (position from wsrep-recover)"));
}

static void
test_bootstrap_refusals(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char path[300];

	/* Running: never. */
	fake_bootstrap_command(f, "");
	make_datadir(f, UUID, "9", "0");
	path_in(f, path, sizeof(path), "started");
	write_file(path, "", 0644);
	fake_host_run_for(f->fh, 30);
	new_instance(f);
	r = run_action(f, 2000, "bootstrap", NULL);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "refusing to bootstrap: the server at "
	    "127.0.0.1:");
	assert_contains(r->message, "is running (Primary, Synced)");
	assert_int_equal(fake_host_spawns(f->fh), 0);
	assert_contains(grastate(f), "safe_to_bootstrap: 0\n");
	server_stop(&f->srv);
	unlink(path);
	f->p->instance_free(f->state);
	/* No position: a new history. */
	fake_bootstrap_command(f, "");
	make_datadir(f, UUID, "-1", "0");
	fake_mariadbd(f, "echo 'WSREP: Recovered position: " NIL_UUID ":-1' "
	    ">> \"$log\"");
	new_instance(f);
	r = run_action(f, 3000, "bootstrap", NULL);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "refusing to bootstrap: no position ("
	    NIL_UUID ":-1 from wsrep-recover)");
	assert_contains(grastate(f), "safe_to_bootstrap: 0\n");
	assert_int_equal(fake_host_spawns(f->fh), 1); /* the recovery only */
	f->p->instance_free(f->state);
	/* Not configured. */
	fake_host_unset(f->fh, "bootstrap_command");
	new_instance(f);
	r = run_action(f, 2000, "bootstrap", NULL);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "bootstrap needs bootstrap_command "
	    "configured");
}

static void
test_bootstrap_command_fails(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	fake_bootstrap_command(f, "echo 'mariadbd: cannot start'; exit 3");
	make_datadir(f, UUID, "31", "0");
	new_instance(f);
	r = run_action(f, 3000, "bootstrap", NULL);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "bootstrap_command failed (exit 3): "
	    "mariadbd: cannot start");
	/* It got as far as setting the flag, as the server would need it. */
	assert_contains(grastate(f), "safe_to_bootstrap: 1\n");
}

static void
test_bootstrap_never_primary(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	kv_set(f->srv.status, "wsrep_cluster_status", "non-Primary");
	fake_bootstrap_command(f, "");
	make_datadir(f, UUID, "31", "0");
	new_instance(f);
	r = run_action(f, 1500, "bootstrap", NULL);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_contains(r->message, "bootstrap_command started the server at "
	    UUID ":31, but it was not Primary and ready in time (last look: "
	    "non-Primary)");
}

/* A running non-Primary server made Primary where it stands. */
static void
test_bootstrap_in_place(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	static const char set[] =
	    "SET GLOBAL wsrep_provider_options = 'pc.bootstrap=YES'";

	kv_set(f->srv.status, "wsrep_cluster_status", "non-Primary");
	kv_set(f->srv.status, "wsrep_ready", "OFF");
	kv_set(f->srv.status, "wsrep_cluster_size", "1");
	serve(f, SRV_NORMAL);
	make_datadir(f, UUID, "-1", "0");
	new_instance(f);
	r = run_action(f, 3000, "bootstrap", "in-place");
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, "bootstrapped in place at " UUID
	    ":42: Primary, Synced, cluster size 1");
	assert_string_equal(fake_result_field(r, "cluster_uuid"), UUID);
	assert_string_equal(fake_result_field(r, "seqno"), "42");
	assert_string_equal(fake_result_field(r, "source"), "server");
	assert_string_equal(fake_result_field(r, "wsrep_cluster_status"),
	    "Primary");
	assert_true(server_saw(&f->srv, set));
	/* Nothing started, nothing written: no command, grastate.dat kept. */
	assert_int_equal(fake_host_spawns(f->fh), 0);
	assert_int_equal(fake_host_service_calls(f->fh), 0);
	assert_contains(grastate(f), "safe_to_bootstrap: 0\n");
	/* Primary now: a second time does nothing. */
	f->srv.nqueries = 0;
	r = run_action(f, 2000, "bootstrap", "in-place");
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_contains(r->message, "bootstrap in-place: 127.0.0.1:");
	assert_contains(r->message, " is Primary already (cluster size 1): "
	    "nothing done");
	assert_false(server_saw(&f->srv, set));
}

static void
test_bootstrap_in_place_refusals(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	/* No server: nothing to bootstrap in place (and nothing started). */
	make_datadir(f, UUID, "5", "0");
	fake_bootstrap_command(f, "");
	new_instance(f);
	r = run_action(f, 2000, "bootstrap", "in-place");
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "refusing to bootstrap in place: ");
	assert_int_equal(fake_host_spawns(f->fh), 0);
	assert_contains(grastate(f), "safe_to_bootstrap: 0\n");
	r = run_action(f, 2000, "bootstrap", "now");
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "usage: bootstrap [in-place]");
}

static void
test_bootstrap_in_place_never_primary(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	kv_set(f->srv.status, "wsrep_cluster_status", "non-Primary");
	f->srv.stays_non_primary = 1;
	serve(f, SRV_NORMAL);
	new_instance(f);
	r = run_action(f, 1500, "bootstrap", "in-place");
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_string_equal(r->message, "bootstrap in-place: pc.bootstrap=YES "
	    "was set at " UUID ":42, but the server was not Primary and ready "
	    "in time (last look: non-Primary)");
	/* A server without a position is refused before anything is set. */
	f->srv.nqueries = 0;
	kv_set(f->srv.status, "wsrep_last_committed", "-1");
	r = run_action(f, 1500, "bootstrap", "in-place");
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "bootstrap in-place: the server at ");
	assert_contains(r->message, "reports no wsrep position");
	assert_int_equal(f->srv.nqueries, 1);
}

/* start nowait: done once the service manager started it. */
static void
test_start_nowait(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	server_start(&f->srv, fake_host_base(f->fh), SRV_NORMAL, "/nonexistent");
	target_server(f);
	make_datadir(f, UUID, "-1", "0");
	fake_mariadbd(f, "echo 'WSREP: Recovered position: " UUID ":77' >> "
	    "\"$log\"");
	fake_host_set_service(f->fh, 1, "started");
	new_instance(f);
	r = run_action(f, 3000, "start", "nowait");
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, "start: started; not waiting for the "
	    "server to answer");
	assert_string_equal(fake_host_service_last_op(f->fh), "start");
	/* The recovered position is in grastate.dat, as for a plain start. */
	assert_contains(grastate(f), "seqno:   77\n");
	r = run_action(f, 2000, "start", "later");
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "usage: start [nowait]");
	assert_int_equal(fake_host_service_calls(f->fh), 1);
}

static void
test_desync(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	serve(f, SRV_NORMAL);
	new_instance(f);
	r = run_action(f, 2000, "desync", "on");
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, "wsrep_desync ON: local state "
	    "Donor/Desynced");
	assert_string_equal(fake_result_field(r, "wsrep_local_state_comment"),
	    "Donor/Desynced");
	assert_true(server_saw(&f->srv, "SET GLOBAL wsrep_desync = ON"));
	assert_int_equal(run_check(f, 2000)->status, TROIKA_STATUS_WARNING);
	r = run_action(f, 2000, "desync", "OFF");
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, "wsrep_desync OFF: local state Synced");
	assert_int_equal(run_check(f, 2000)->status, TROIKA_STATUS_OK);
	r = run_action(f, 2000, "desync", "maybe");
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "usage: desync on|off");
	f->srv.mode = SRV_DENY;
	r = run_action(f, 2000, "desync", "on");
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "desync on: 127.0.0.1:");
	assert_contains(r->message, "Access denied");
}

static void
test_service_without_manager(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	serve(f, SRV_NORMAL);
	new_instance(f);
	r = run_action(f, 2000, "stop", NULL);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "no service manager configured for "
	    "this check");
	assert_int_equal(fake_host_service_calls(f->fh), 1);
	assert_string_equal(fake_host_service_last_op(f->fh), "stop");
	r = run_action(f, 2000, "restart", NULL);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(fake_host_service_last_op(f->fh), "restart");
}

static void
test_service_with_manager(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	serve(f, SRV_NORMAL);
	make_datadir(f, UUID, "-1", "0");
	fake_host_set_service(f->fh, 1, "mariadb.service restarted");
	new_instance(f);
	r = run_action(f, 2000, "restart", NULL);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, "restart: mariadb.service restarted; "
	    "the server answers (Primary, Synced)");
	assert_string_equal(fake_result_field(r, "wsrep_local_state_comment"),
	    "Synced");
	assert_string_equal(fake_host_service_last_op(f->fh), "restart");
	/* Running already: start has nothing to do. */
	r = run_action(f, 2000, "start", NULL);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_contains(r->message, "start: already running at 127.0.0.1:");
	assert_int_equal(fake_host_service_calls(f->fh), 1);
	fake_host_set_service(f->fh, 0, "unit failed");
	r = run_action(f, 2000, "stop", NULL);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "stop: unit failed");
}

static void
test_start_after_crash_records_position(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	server_start(&f->srv, fake_host_base(f->fh), SRV_NORMAL, "/nonexistent");
	target_server(f);
	make_datadir(f, UUID, "-1", "0");
	fake_mariadbd(f, "echo 'WSREP: Recovered position: " UUID ":77' >> "
	    "\"$log\"");
	new_instance(f);
	r = run_action(f, 3000, "start", NULL);
	/* No service manager yet; the position is recorded regardless. */
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "no service manager configured for "
	    "this check");
	assert_string_equal(fake_result_field(r, "seqno"), "77");
	assert_string_equal(fake_result_field(r, "source"), "wsrep-recover");
	assert_string_equal(grastate(f), "# GALERA saved state\nversion: 2.1\n"
	    "uuid:    " UUID "\nseqno:   77\nsafe_to_bootstrap: 0\n");
	assert_string_equal(fake_host_service_last_op(f->fh), "start");
	/* Now with one: the position is in grastate.dat already. The
	 * server never comes up here: said so at the deadline. */
	fake_host_set_service(f->fh, 1, "started");
	r = run_action(f, 1000, "start", NULL);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_contains(r->message, "start: started; but the server did not "
	    "answer in time (last look: ");
	assert_string_equal(fake_result_field(r, "source"), "grastate");
	assert_int_equal(fake_host_spawns(f->fh), 1);
}

static void
test_start_refusals(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	server_start(&f->srv, fake_host_base(f->fh), SRV_NORMAL, "/nonexistent");
	target_server(f);
	make_datadir(f, UUID, "5", "0");
	fake_host_set_service(f->fh, 1, "done");
	lock_datadir(f);
	new_instance(f);
	/* Held by a server that does not answer: not a second one. */
	r = run_action(f, 2000, "start", NULL);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "start: a mariadbd (pid ");
	assert_int_equal(fake_host_service_calls(f->fh), 0);
	/* But restart is what a hung server needs. */
	r = run_action(f, 1000, "restart", NULL);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_contains(r->message, "restart: done; but the server did not "
	    "answer in time");
	assert_string_equal(fake_host_service_last_op(f->fh), "restart");
}

static void
test_cancel_action(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task;

	/* Cancelled during --wsrep-recover: the child is killed, the log
	 * file removed. */
	server_start(&f->srv, fake_host_base(f->fh), SRV_NORMAL, "/nonexistent");
	target_server(f);
	make_datadir(f, UUID, "-1", "0");
	fake_mariadbd(f, "exec sleep 30");
	new_instance(f);
	task = fake_host_task(f->fh, 5000);
	fake_host_action(f->fh, f->p, f->state, task, "position", NULL, 0);
	for (int i = 0; i < 100 && fake_host_spawns(f->fh) == 0; i++)
		fake_host_run_for(f->fh, 10);
	assert_int_equal(fake_host_spawns(f->fh), 1);
	fake_host_cancel(f->fh, f->p, f->state, task);
	assert_int_equal(fake_host_spawn_cancels(f->fh), 1);
	assert_int_equal(count_prefix(f->dir, "troika-wsrep-recover-"), 0);
	for (int i = 0; i < 300 && spawn_active() > 0; i++)
		fake_host_run_for(f->fh, 10);
	assert_int_equal(fake_host_done_count(f->fh), 0);
	/* Cancelled while the service manager works: its late answer is
	 * dropped. */
	fake_host_set_service(f->fh, 1, "late");
	task = fake_host_task(f->fh, 5000);
	fake_host_action(f->fh, f->p, f->state, task, "stop", NULL, 0);
	fake_host_cancel(f->fh, f->p, f->state, task);
	fake_host_run_for(f->fh, 50);
	assert_int_equal(fake_host_done_count(f->fh), 0);
}

static void
test_free_with_service_call_out(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task;

	/* The host never answers a freed check's service call: the
	 * instance frees what it kept for it (ASan checks). */
	serve(f, SRV_NORMAL);
	fake_host_set_service(f->fh, 1, "never seen");
	new_instance(f);
	task = fake_host_task(f->fh, 5000);
	fake_host_action(f->fh, f->p, f->state, task, "stop", NULL, 0);
	assert_int_equal(fake_host_service_calls(f->fh), 1);
	f->p->instance_free(f->state);
	f->state = NULL;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_descriptor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_synced_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_non_primary_critical,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_connected_critical,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_donor_warning, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_small_cluster_warning,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_flow_control, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_connections_warning,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_wsrep_off_and_plain_server,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_wsrep_status, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_replication, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_replication_broken, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_missing, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_unix_socket, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_access_denied, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_silent_server_times_out,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_while_logging_in,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_closed_mid_reply, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stalled_mid_reply, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_huge_reply_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_malformed_rows_refused,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_while_connecting,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_runs_no_leaks, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_config_errors, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_position_from_server,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_position_from_grastate,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_position_from_wsrep_recover,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_to_stderr, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_recover_fails, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_position_refusals, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bootstrap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bootstrap_refusals, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bootstrap_command_fails,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_bootstrap_never_primary,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_bootstrap_in_place, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_bootstrap_in_place_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_bootstrap_in_place_never_primary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_nowait, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_desync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_service_without_manager,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_service_with_manager,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_start_after_crash_records_position, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_refusals, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cancel_action, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_free_with_service_call_out,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
