/*
 * The redis plugin, loaded from the build tree and driven through the fake
 * host against a fake Redis server on the same event base: a small RESP
 * server whose state (role, replicas, persistence, memory, AUTH) the tests
 * set, and which can also stay silent, reset, close mid-reply, talk
 * garbage, or send replies nobody asked for or without end.
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "fake_host.h"
#include "spawn.h"

#define REDIS_PLUGIN TEST_BUILD_PLUGIN_DIR "/troika-redis.so"

enum srv_mode {
	SRV_NORMAL,
	SRV_SILENT,       /* accept, read, never answer */
	SRV_GARBAGE,      /* answer anything with an HTTP error */
	SRV_CLOSE_ON_INFO, /* half an INFO reply, then close */
	SRV_RESET_ON_INFO, /* RST instead of an INFO reply */
	SRV_HUGE_INFO,    /* an INFO reply that never ends */
	SRV_HUGE_ARRAY,   /* an array of 100000 elements for INFO */
	SRV_DOUBLE_PONG,  /* two replies to one PING */
	SRV_BANNER,       /* talks first */
};

struct srv {
	struct event_base *base;
	enum srv_mode mode;
	int lfd;
	int port;
	int cfd;
	struct event *accept_ev;
	struct event *read_ev;
	struct event *write_ev; /* SRV_HUGE_INFO */
	char in[8192];
	size_t inlen;
	int accepted;
	int eof_seen; /* the client closed its side */
	size_t huge_sent;

	/* The server's state, as INFO shows it. */
	const char *role; /* "master" or "slave" */
	char master_host[64];
	int master_port;
	const char *link; /* "up" or "down" */
	int sync_in_progress;
	int master_io;
	int link_down_since; /* -1: line absent */
	const char *replicas; /* "slave0:...\r\n" lines */
	int connected_slaves;
	const char *bgsave_status;
	const char *aof_write_status;
	long long used_memory;
	long long maxmemory;
	int loading; /* PING says LOADING, INFO loading:1 */
	int loading_pings; /* PINGs answered LOADING before PONG */
	const char *info_override; /* the whole INFO text */
	const char *requirepass;
	const char *acl_user; /* with requirepass: AUTH user pass */
	int authed;
	const char *noperm; /* a command refused with NOPERM */
	/* Actions. */
	int promote_polls; /* INFOs after REPLICAOF NO ONE to role:master */
	int link_up_polls; /* INFOs after REPLICAOF h p to the link up */
	int bgsave_polls;   /* INFOs while a BGSAVE runs */
	int bgsave_running; /* BGSAVE answers "already in progress" */
	const char *bgsave_result;
	long long lastsave;
	const char *config_dir;        /* CONFIG GET dir; NULL: refused */
	const char *config_dbfilename; /* CONFIG GET dbfilename */
	int pending_polls;
	/* FAILOVER: INFOs until it ends, and whether it gives up then. */
	const char *failover_state;
	int failover_polls;
	int failover_gives_up;
	char failover_host[64];
	int failover_port;
	/* What the client sent. */
	int ncmds;
	char cmds[64][128]; /* each command, arguments joined by spaces */
};

struct fixture {
	const struct troika_plugin *p;
	void *dl;
	struct fake_host *fh;
	void *state;
	struct srv srv;
	int fds_before;
	int extra_fd;
};

/* ---- the fake server ---- */

static void
srv_write(struct srv *s, const char *p, size_t len)
{
	if (s->cfd >= 0)
		assert_int_equal(write(s->cfd, p, len), (ssize_t)len);
}

static void
srv_puts(struct srv *s, const char *p)
{
	srv_write(s, p, strlen(p));
}

static void
srv_printf(struct srv *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
srv_printf(struct srv *s, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < sizeof(buf));
	srv_write(s, buf, (size_t)n);
}

static void
srv_drop_client(struct srv *s)
{
	if (s->read_ev != NULL)
		event_free(s->read_ev);
	if (s->write_ev != NULL)
		event_free(s->write_ev);
	s->read_ev = s->write_ev = NULL;
	if (s->cfd >= 0)
		close(s->cfd);
	s->cfd = -1;
	s->inlen = 0;
	s->authed = 0;
}

static void
srv_reset_client(struct srv *s)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(s->cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	srv_drop_client(s);
}

/* The INFO text of the server's state. */
static void
srv_info_text(struct srv *s, char *buf, size_t len)
{
	size_t n = 0;

#define ADD(...) n += (size_t)snprintf(buf + n, len - n, __VA_ARGS__)
	ADD("# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n"
	    "uptime_in_seconds:42\r\n\r\n# Clients\r\nconnected_clients:3\r\n"
	    "blocked_clients:0\r\nmaxclients:10000\r\n\r\n");
	ADD("# Memory\r\nused_memory:%lld\r\nused_memory_rss:12451840\r\n"
	    "used_memory_peak:1014160\r\nmaxmemory:%lld\r\n"
	    "mem_fragmentation_ratio:12.79\r\n\r\n", s->used_memory,
	    s->maxmemory);
	ADD("# Persistence\r\nloading:%d\r\n", s->loading);
	if (s->loading)
		ADD("loading_loaded_perc:37.50\r\n");
	ADD("rdb_changes_since_last_save:5\r\nrdb_bgsave_in_progress:%d\r\n"
	    "rdb_last_save_time:%lld\r\nrdb_last_bgsave_status:%s\r\n"
	    "rdb_last_bgsave_time_sec:0\r\nrdb_saves:2\r\naof_enabled:1\r\n"
	    "aof_rewrite_in_progress:0\r\naof_last_bgrewrite_status:ok\r\n"
	    "aof_last_write_status:%s\r\n\r\n", s->bgsave_running,
	    s->lastsave, s->bgsave_status, s->aof_write_status);
	ADD("# Stats\r\ntotal_connections_received:7\r\n"
	    "total_commands_processed:1234\r\nrejected_connections:0\r\n"
	    "expired_keys:1\r\nevicted_keys:0\r\nkeyspace_hits:10\r\n"
	    "keyspace_misses:4\r\ntotal_net_input_bytes:100\r\n"
	    "total_net_output_bytes:200\r\n\r\n");
	ADD("# Replication\r\nrole:%s\r\n", s->role);
	if (strcmp(s->role, "slave") == 0) {
		ADD("master_host:%s\r\nmaster_port:%d\r\n"
		    "master_link_status:%s\r\nmaster_last_io_seconds_ago:%d\r\n"
		    "master_sync_in_progress:%d\r\nslave_repl_offset:5000\r\n",
		    s->master_host, s->master_port, s->link, s->master_io,
		    s->sync_in_progress);
		if (s->link_down_since >= 0)
			ADD("master_link_down_since_seconds:%d\r\n",
			    s->link_down_since);
		ADD("slave_priority:100\r\nslave_read_only:1\r\n");
	}
	ADD("connected_slaves:%d\r\n%s", s->connected_slaves,
	    s->replicas != NULL ? s->replicas : "");
	ADD("master_failover_state:%s\r\n", s->failover_state != NULL ?
	    s->failover_state : "no-failover");
	ADD("master_replid:a018d3aa4e5acb61c5857b2d341ab73ddc30a5b5\r\n"
	    "master_repl_offset:5100\r\n\r\n# Keyspace\r\n"
	    "db0:keys=12,expires=3,avg_ttl=0\r\ndb3:keys=1,expires=0\r\n");
#undef ADD
	assert_true(n < len);
}

static void
srv_send_info(struct srv *s)
{
	char text[8192];
	const char *t = text;

	/* Actions move on as they are polled. */
	if (s->pending_polls > 0 && --s->pending_polls == 0) {
		if (strcmp(s->role, "slave") == 0 && s->master_port == 0)
			s->role = "master";
		else if (strcmp(s->role, "slave") == 0)
			s->link = "up";
	}
	if (s->failover_state != NULL && s->failover_polls > 0 &&
	    --s->failover_polls == 0) {
		s->failover_state = "no-failover";
		if (!s->failover_gives_up) {
			s->role = "slave";
			snprintf(s->master_host, sizeof(s->master_host), "%s",
			    s->failover_host);
			s->master_port = s->failover_port;
			s->link = "up";
		}
	}
	if (s->bgsave_running > 0 && s->bgsave_polls-- <= 0) {
		s->bgsave_running = 0;
		s->bgsave_status = s->bgsave_result;
		if (strcmp(s->bgsave_result, "ok") == 0)
			s->lastsave++;
	}
	if (s->info_override != NULL)
		t = s->info_override;
	else
		srv_info_text(s, text, sizeof(text));
	srv_printf(s, "$%zu\r\n", strlen(t));
	srv_puts(s, t);
	srv_puts(s, "\r\n");
}

static void
srv_huge_cb(evutil_socket_t fd, short what, void *arg)
{
	struct srv *s = arg;
	char chunk[65536];
	ssize_t n;

	(void)what;
	memset(chunk, 'x', sizeof(chunk));
	n = write(fd, chunk, sizeof(chunk));
	if (n <= 0 && errno != EAGAIN) {
		event_del(s->write_ev);
		return;
	}
	if (n > 0)
		s->huge_sent += (size_t)n;
}

static void
srv_command(struct srv *s, int argc, char **argv)
{
	const char *cmd = argv[0];
	size_t off = 0;

	if (s->ncmds < 64) {
		for (int i = 0; i < argc; i++)
			off += (size_t)snprintf(s->cmds[s->ncmds] + off,
			    sizeof(s->cmds[0]) - off, "%s%s", i ? " " : "",
			    argv[i]);
		s->ncmds++;
	}
	switch (s->mode) {
	case SRV_SILENT:
		return;
	case SRV_GARBAGE:
		srv_puts(s, "HTTP/1.1 400 Bad Request\r\n\r\n");
		return;
	case SRV_DOUBLE_PONG:
		if (strcmp(cmd, "PING") == 0) {
			srv_puts(s, "+PONG\r\n+PONG\r\n");
			return;
		}
		break;
	case SRV_CLOSE_ON_INFO:
		if (strcmp(cmd, "INFO") == 0) {
			srv_puts(s, "$5000\r\n# Server\r\nredis_ver");
			srv_drop_client(s);
			return;
		}
		break;
	case SRV_RESET_ON_INFO:
		if (strcmp(cmd, "INFO") == 0) {
			srv_reset_client(s);
			return;
		}
		break;
	case SRV_HUGE_INFO:
		if (strcmp(cmd, "INFO") == 0) {
			srv_puts(s, "$1000000000\r\n");
			s->write_ev = event_new(s->base, s->cfd,
			    EV_WRITE | EV_PERSIST, srv_huge_cb, s);
			event_add(s->write_ev, NULL);
			return;
		}
		break;
	case SRV_HUGE_ARRAY:
		if (strcmp(cmd, "INFO") == 0) {
			srv_puts(s, "*100000\r\n:1\r\n:2\r\n");
			return;
		}
		break;
	default:
		break;
	}
	if (strcasecmp(cmd, "AUTH") == 0) {
		const char *user = argc == 3 ? argv[1] : "default";
		const char *pass = argv[argc - 1];

		if (s->requirepass == NULL && argc == 2) {
			srv_puts(s, "-ERR AUTH <password> called without any "
			    "password configured for the default user. Are you "
			    "sure your configuration is correct?\r\n");
		} else if (s->requirepass != NULL &&
		    strcmp(pass, s->requirepass) == 0 &&
		    strcmp(user, s->acl_user ? s->acl_user : "default") == 0) {
			s->authed = 1;
			srv_puts(s, "+OK\r\n");
		} else {
			srv_puts(s, "-WRONGPASS invalid username-password pair "
			    "or user is disabled.\r\n");
		}
		return;
	}
	if (s->requirepass != NULL && !s->authed) {
		srv_puts(s, "-NOAUTH Authentication required.\r\n");
		return;
	}
	if (s->noperm != NULL && strcmp(cmd, s->noperm) == 0) {
		srv_printf(s, "-NOPERM this user has no permissions to run the "
		    "'%s' command\r\n", cmd);
		return;
	}
	if (strcmp(cmd, "PING") == 0 && s->loading_pings > 0) {
		s->loading_pings--;
		srv_puts(s, "-LOADING Redis is loading the dataset in "
		    "memory\r\n");
	} else if (strcmp(cmd, "PING") == 0) {
		srv_puts(s, s->loading ? "-LOADING Redis is loading the "
		    "dataset in memory\r\n" : "+PONG\r\n");
	} else if (strcmp(cmd, "INFO") == 0) {
		srv_send_info(s);
	} else if (strcmp(cmd, "REPLICAOF") == 0 && argc == 3) {
		if (strcasecmp(argv[1], "no") == 0) {
			s->master_port = 0;
			s->pending_polls = s->promote_polls;
			if (s->pending_polls == 0)
				s->role = "master";
		} else {
			s->role = "slave";
			snprintf(s->master_host, sizeof(s->master_host), "%s",
			    argv[1]);
			s->master_port = atoi(argv[2]);
			s->link = "down";
			s->pending_polls = s->link_up_polls;
		}
		srv_puts(s, "+OK\r\n");
	} else if (strcmp(cmd, "FAILOVER") == 0 && argc == 6) {
		if (strcmp(s->role, "master") != 0) {
			srv_puts(s, "-ERR FAILOVER is not valid when server is "
			    "a replica.\r\n");
			return;
		}
		if (s->connected_slaves == 0) {
			srv_puts(s, "-ERR FAILOVER requires connected "
			    "replicas.\r\n");
			return;
		}
		snprintf(s->failover_host, sizeof(s->failover_host), "%s",
		    argv[2]);
		s->failover_port = atoi(argv[3]);
		s->failover_state = "waiting-for-sync";
		srv_puts(s, "+OK\r\n");
	} else if (strcmp(cmd, "CONFIG") == 0 && argc == 3 &&
	    s->config_dir != NULL) {
		const char *v = strcmp(argv[2], "dir") == 0 ? s->config_dir :
		    s->config_dbfilename;

		srv_printf(s, "*2\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n",
		    strlen(argv[2]), argv[2], strlen(v), v);
	} else if (strcmp(cmd, "BGSAVE") == 0) {
		if (s->bgsave_running) {
			srv_puts(s, "-ERR Background save already in "
			    "progress\r\n");
			return;
		}
		s->bgsave_running = 1;
		srv_puts(s, "+Background saving started\r\n");
	} else {
		srv_printf(s, "-ERR unknown command '%s'\r\n", cmd);
	}
}

/* Parse one RESP array of bulk strings; returns the bytes used, 0 if
 * incomplete. */
static size_t
srv_parse(struct srv *s, char **argv, int *argc)
{
	char *p = s->in, *end = s->in + s->inlen, *nl;
	long n;

	if (s->inlen == 0 || *p != '*' ||
	    (nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
		return 0;
	n = strtol(p + 1, NULL, 10);
	assert_true(n >= 1 && n <= 8);
	p = nl + 1;
	for (long i = 0; i < n; i++) {
		long len;

		if (p >= end || (nl = memchr(p, '\n', (size_t)(end - p))) ==
		    NULL)
			return 0;
		assert_int_equal(*p, '$');
		len = strtol(p + 1, NULL, 10);
		p = nl + 1;
		if (end - p < len + 2)
			return 0;
		argv[i] = p;
		p[len] = '\0';
		p += len + 2;
	}
	*argc = (int)n;
	return (size_t)(p - s->in);
}

static void
srv_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct srv *s = arg;
	ssize_t n;
	size_t used;
	char *argv[8];
	int argc;

	(void)what;
	n = read(fd, s->in + s->inlen, sizeof(s->in) - s->inlen - 1);
	if (n <= 0) {
		s->eof_seen = 1;
		srv_drop_client(s);
		return;
	}
	s->inlen += (size_t)n;
	while (s->cfd >= 0 && (used = srv_parse(s, argv, &argc)) > 0) {
		char copy[sizeof(s->in)];

		/* Commands are handled on a copy: replies may drop s->in. */
		memcpy(copy, s->in, used);
		for (int i = 0; i < argc; i++)
			argv[i] = copy + (argv[i] - s->in);
		memmove(s->in, s->in + used, s->inlen - used);
		s->inlen -= used;
		srv_command(s, argc, argv);
	}
}

static void
srv_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct srv *s = arg;
	int cfd;

	(void)what;
	cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	assert_true(cfd >= 0);
	s->accepted++;
	/* One client at a time: a new connection replaces the old one. */
	srv_drop_client(s);
	s->cfd = cfd;
	s->read_ev = event_new(s->base, cfd, EV_READ | EV_PERSIST, srv_read_cb,
	    s);
	assert_non_null(s->read_ev);
	event_add(s->read_ev, NULL);
	if (s->mode == SRV_BANNER)
		srv_puts(s, "+OK hello\r\n");
}

static int
bound_socket(int backlog, int *ret_port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (bind(fd, (struct sockaddr *)&sin, len) == -1 ||
	    (backlog >= 0 && listen(fd, backlog) == -1) ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) == -1) {
		close(fd);
		return -1;
	}
	*ret_port = ntohs(sin.sin_port);
	return fd;
}

static void srv_listen(struct fixture *f, int fd, int port);

/* A healthy master with two online replicas, until a test says otherwise. */
static void
srv_start(struct fixture *f, enum srv_mode mode)
{
	int port, fd = bound_socket(-1, &port);

	assert_true(fd >= 0);
	f->srv.mode = mode;
	srv_listen(f, fd, port);
}

/* Serve on fd, bound to port and not yet listening. */
static void
srv_listen(struct fixture *f, int fd, int port)
{
	struct srv *s = &f->srv;

	s->base = fake_host_base(f->fh);
	s->role = "master";
	s->link = "up";
	s->link_down_since = -1;
	s->replicas = "slave0:ip=127.0.1.2,port=6379,state=online,offset=5100,"
	    "lag=0\r\nslave1:ip=127.0.1.3,port=6379,state=online,offset=5000,"
	    "lag=1\r\n";
	s->connected_slaves = 2;
	s->bgsave_status = "ok";
	s->bgsave_result = "ok";
	s->aof_write_status = "ok";
	s->used_memory = 1014160;
	s->maxmemory = 67108864;
	s->lastsave = 1795690020;
	s->lfd = fd;
	s->port = port;
	assert_int_equal(listen(fd, 16), 0);
	s->accept_ev = event_new(s->base, s->lfd, EV_READ | EV_PERSIST,
	    srv_accept_cb, s);
	assert_non_null(s->accept_ev);
	event_add(s->accept_ev, NULL);
	fake_host_set_string(f->fh, "host", "127.0.0.1");
	fake_host_set_int(f->fh, "port", s->port);
}

static void
srv_stop(struct srv *s)
{
	srv_drop_client(s);
	if (s->accept_ev != NULL)
		event_free(s->accept_ev);
	s->accept_ev = NULL;
	if (s->lfd >= 0)
		close(s->lfd);
	s->lfd = -1;
}

/* Events of the server that are pending, to tell them from the plugin's. */
static int
srv_events(const struct srv *s)
{
	int n = 0;

	if (s->accept_ev != NULL && event_pending(s->accept_ev, EV_READ, NULL))
		n++;
	if (s->read_ev != NULL && event_pending(s->read_ev, EV_READ, NULL))
		n++;
	if (s->write_ev != NULL && event_pending(s->write_ev, EV_WRITE, NULL))
		n++;
	return n;
}

/* ---- fixture and helpers ---- */

static int
group_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	/* hiredis writes with write(2); the agent ignores SIGPIPE too. */
	signal(SIGPIPE, SIG_IGN);
	f->p = fake_host_load_plugin(REDIS_PLUGIN, &f->dl);
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
	f->srv.lfd = f->srv.cfd = -1;
	f->extra_fd = -1;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	f->p->instance_free(f->state);
	f->state = NULL;
	srv_stop(&f->srv);
	if (f->extra_fd >= 0)
		close(f->extra_fd);
	assert_int_equal(fake_host_events_pending(f->fh), 0);
	assert_int_equal(fake_host_violations(f->fh), 0);
	fake_host_free(f->fh);
	f->fh = NULL;
	assert_int_equal(fake_host_count_fds(), f->fds_before);
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
new_instance(struct fixture *f)
{
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
}

/* The plugin's pending events: the connection's read watcher, or none. */
static int
plugin_events(struct fixture *f)
{
	return fake_host_events_pending(f->fh) - srv_events(&f->srv);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Run a task (a check, or the action name with args) with a deadline and
 * wait for its result; checks what every result must satisfy.
 */
static const struct fake_result *
run_task(struct fixture *f, int64_t deadline_ms, const char *action,
    const char *const *argv, size_t argc)
{
	struct troika_task *task = fake_host_task(f->fh, deadline_ms);
	unsigned before = fake_host_done_count(f->fh);
	const struct fake_result *r;
	double t0 = now_s();

	if (action == NULL)
		fake_host_check(f->fh, f->p, f->state, task);
	else
		fake_host_action(f->fh, f->p, f->state, task, action, argv,
		    argc);
	assert_int_equal(fake_host_done_count(f->fh), before);
	assert_int_equal(fake_host_wait_done(f->fh, before + 1,
	    (int)deadline_ms + 2000), 0);
	/* The plugin's own timeout comes before the host's deadline. */
	assert_true(now_s() - t0 < (double)deadline_ms / 1000);
	r = fake_host_last(f->fh);
	assert_ptr_equal(r->task, task);
	assert_non_null(r->message);
	assert_null(strchr(r->message, '\n'));
	assert_int_equal(fake_host_violations(f->fh), 0);
	return r;
}

static const struct fake_result *
run_check(struct fixture *f, int64_t deadline_ms)
{
	return run_task(f, deadline_ms, NULL, NULL, 0);
}

static double
sample(const struct fake_result *r, const char *name, const char *label,
    const char *value)
{
	const struct fake_sample *s = fake_result_sample(r, name, label,
	    value);

	if (s == NULL)
		fail_msg("no sample %s{%s=\"%s\"}", name, label ? label : "",
		    value ? value : "");
	return s->value;
}

static void
assert_field(const struct fake_result *r, const char *name, const char *want)
{
	const char *v = fake_result_field(r, name);

	if (v == NULL || strcmp(v, want) != 0)
		fail_msg("field %s is \"%s\", not \"%s\"", name,
		    v != NULL ? v : "(none)", want);
}

/* The server's address: the one field a result has when it is down. */
static void
assert_only_address(const struct fake_result *r)
{
	const char *v = fake_result_field(r, "address");

	assert_int_equal(r->nfields, 1);
	assert_non_null(v);
	assert_true(strncmp(v, "127.0.0.1:", 10) == 0 ||
	    strncmp(v, "[::1]:", 6) == 0);
}

/* The result of a failed run: redis_up 0 and its address, no more. */
static void
assert_down(const struct fake_result *r)
{
	assert_int_equal(sample(r, "redis_up", NULL, NULL), 0);
	assert_null(fake_result_sample(r, "redis_instance_info", NULL, NULL));
	assert_only_address(r);
}

/* ---- the descriptor and options ---- */

static void
test_descriptor(void **state)
{
	struct fixture *f = *state;
	const char *names[] = { "role", "promote", "replicate", "handover",
	    "bgsave", "backup", "start", "stop", "restart" };
	size_t n = 0;

	assert_string_equal(f->p->name, "redis");
	assert_string_equal(f->p->version, TROIKA_VERSION);
	assert_int_equal(f->p->exec_model, TROIKA_EXEC_ASYNC);
	assert_int_equal(f->p->abi_minor, TROIKA_PLUGIN_ABI_MINOR);
	assert_non_null(f->p->cancel);
	for (const struct troika_action *a = f->p->actions; a->name; a++) {
		assert_true(n < sizeof(names) / sizeof(names[0]));
		assert_string_equal(a->name, names[n]);
		n++;
	}
	assert_int_equal(n, sizeof(names) / sizeof(names[0]));
	/* Only the entry point is exported. */
	assert_null(dlsym(f->dl, "redis_info_parse"));
	assert_null(dlsym(f->dl, "redis_link_open"));
}

static void
test_bad_options(void **state)
{
	struct fixture *f = *state;
	void *st = NULL;

	fake_host_set_string(f->fh, "host", "localhost");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &st), -EINVAL);
	assert_contains(fake_host_log_last(f->fh), "names are not resolved");
	fake_host_set_string(f->fh, "host", "127.0.0.1");
	fake_host_set_string(f->fh, "username", "alice");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &st), -EINVAL);
	assert_contains(fake_host_log_last(f->fh), "username needs a password");
	fake_host_unset(f->fh, "username");
	fake_host_set_string(f->fh, "expected_role", "slave");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &st), -EINVAL);
	assert_contains(fake_host_log_last(f->fh),
	    "expected master, replica or any");
	fake_host_set_string(f->fh, "expected_role", "replica");
	fake_host_set_string(f->fh, "host", "[::1]");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &st), 0);
	f->p->instance_free(st);
}

/* ---- checks ---- */

static void
test_master_ok(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	const struct fake_sample *s;

	srv_start(f, SRV_NORMAL);
	fake_host_set_string(f->fh, "expected_role", "master");
	fake_host_set_int(f->fh, "min_replicas", 2);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	assert_string_equal(r->message, "master, 2 replicas online, offset "
	    "5100, memory 990.4 KiB of 64.0 MiB (2%)");
	assert_int_equal(sample(r, "redis_up", NULL, NULL), 1);
	s = fake_result_sample(r, "redis_instance_info", "role", "master");
	assert_non_null(s);
	assert_int_equal(s->value, 1);
	assert_string_equal(fake_sample_label(s, "redis_version"), "7.0.15");
	assert_int_equal(sample(r, "redis_connected_slaves", NULL, NULL), 2);
	assert_int_equal(sample(r, "redis_master_repl_offset", NULL, NULL),
	    5100);
	assert_int_equal(sample(r, "redis_memory_used_bytes", NULL, NULL),
	    1014160);
	assert_int_equal(sample(r, "redis_memory_max_bytes", NULL, NULL),
	    67108864);
	assert_int_equal(sample(r, "redis_rdb_last_bgsave_status", NULL,
	    NULL), 1);
	assert_int_equal(sample(r, "redis_aof_last_write_status", NULL, NULL),
	    1);
	assert_int_equal(sample(r, "redis_uptime_in_seconds", NULL, NULL), 42);
	assert_int_equal(sample(r, "redis_connected_slave_offset_bytes",
	    "slave_ip", "127.0.1.3"), 5000);
	assert_int_equal(sample(r, "redis_connected_slave_lag_seconds",
	    "slave_ip", "127.0.1.3"), 1);
	s = fake_result_sample(r, "redis_connected_slave_lag_seconds",
	    "slave_ip", "127.0.1.2");
	assert_non_null(s);
	assert_string_equal(fake_sample_label(s, "slave_port"), "6379");
	assert_string_equal(fake_sample_label(s, "slave_state"), "online");
	assert_int_equal(sample(r, "redis_db_keys", "db", "db0"), 12);
	assert_int_equal(sample(r, "redis_db_keys_expiring", "db", "db0"), 3);
	assert_int_equal(sample(r, "redis_db_keys", "db", "db3"), 1);
	s = fake_result_sample(r, "redis_commands_processed_total", NULL,
	    NULL);
	assert_non_null(s);
	assert_int_equal(s->type, TROIKA_METRIC_COUNTER);
	assert_int_equal(s->value, 1234);
	assert_true(sample(r, "troika_redis_ping_seconds", NULL, NULL) >= 0);
	/* Replica-only families are absent on a master. */
	assert_null(fake_result_sample(r, "redis_master_link_up", NULL, NULL));
	assert_null(fake_result_sample(r, "redis_slave_info", NULL, NULL));
	assert_field(r, "role", "master");
	assert_field(r, "master_replid",
	    "a018d3aa4e5acb61c5857b2d341ab73ddc30a5b5");
	assert_field(r, "master_repl_offset", "5100");
	assert_null(fake_result_field(r, "master_host"));
	assert_int_equal(f->srv.ncmds, 2);
	assert_string_equal(f->srv.cmds[0], "PING");
	assert_string_equal(f->srv.cmds[1], "INFO");
	/* The connection stays, watched for a close. */
	assert_int_equal(plugin_events(f), 1);
}

static void
test_connection_kept_across_runs(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	new_instance(f);
	for (int i = 0; i < 3; i++) {
		r = run_check(f, 2000);
		assert_int_equal(r->status, TROIKA_STATUS_OK);
	}
	assert_int_equal(f->srv.accepted, 1);
	assert_int_equal(f->srv.ncmds, 6);
	/* Closed while idle (a restart, a client timeout): made again. */
	srv_drop_client(&f->srv);
	fake_host_run_for(f->fh, 50);
	assert_int_equal(plugin_events(f), 0);
	assert_true(fake_host_log_contains(f->fh, "ended while idle"));
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_int_equal(f->srv.accepted, 2);
	/* Freed with a live connection: the server sees it close. */
	f->p->instance_free(f->state);
	f->state = NULL;
	fake_host_run_for(f->fh, 50);
	assert_int_equal(f->srv.eof_seen, 1);
	assert_int_equal(plugin_events(f), 0);
}

static void
test_close_not_yet_seen_is_not_a_failure(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	new_instance(f);
	assert_int_equal(run_check(f, 2000)->status, TROIKA_STATUS_OK);
	/* The close is on the socket, but the loop has not seen it yet. */
	srv_drop_client(&f->srv);
	usleep(20000);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_int_equal(f->srv.accepted, 2);
}

static void
test_refused(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char want[64];
	int port;

	/* Bound but not listening: the port answers with an RST. */
	f->extra_fd = bound_socket(-1, &port);
	assert_true(f->extra_fd >= 0);
	fake_host_set_string(f->fh, "host", "127.0.0.1");
	fake_host_set_int(f->fh, "port", port);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	snprintf(want, sizeof(want), "connection to 127.0.0.1:%d refused",
	    port);
	assert_string_equal(r->message, want);
	assert_down(r);
	assert_null(fake_result_sample(r, "troika_redis_ping_seconds", NULL,
	    NULL));
	assert_int_equal(plugin_events(f), 0);
}

static void
test_silent_server_times_out(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char want[96];
	double t0 = now_s();

	srv_start(f, SRV_SILENT);
	new_instance(f);
	r = run_check(f, 500);
	/* The budget: the deadline minus a tenth (at most 100 ms). */
	assert_true(now_s() - t0 >= 0.44);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	snprintf(want, sizeof(want), "no reply to PING from 127.0.0.1:%d "
	    "within 450 ms", f->srv.port);
	assert_string_equal(r->message, want);
	assert_down(r);
	/* The connection is out of step: dropped, and made anew. */
	assert_int_equal(plugin_events(f), 0);
	fake_host_run_for(f->fh, 50);
	assert_int_equal(f->srv.eof_seen, 1);
	r = run_check(f, 300);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(f->srv.accepted, 2);
}

static void
test_closed_mid_reply(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char want[128];

	srv_start(f, SRV_CLOSE_ON_INFO);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	snprintf(want, sizeof(want), "127.0.0.1:%d: the server closed the "
	    "connection (waiting for the reply to INFO)", f->srv.port);
	assert_string_equal(r->message, want);
	assert_down(r);
	assert_int_equal(plugin_events(f), 0);
}

static void
test_reset(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_RESET_ON_INFO);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_contains(r->message, "Connection reset by peer (waiting for the "
	    "reply to INFO)");
	assert_down(r);
}

static void
test_garbage(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_GARBAGE);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "not a Redis reply: Protocol error");
	assert_contains(r->message, "(waiting for the reply to PING)");
	assert_down(r);
	assert_int_equal(plugin_events(f), 0);
}

static void
test_server_talks_first(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_BANNER);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	/* Seen before PING went out, or taken as PING's reply. */
	if (strstr(r->message, "unexpected data from the server: \"+OK "
	    "hello\\x0d\\x0a\"") == NULL)
		assert_contains(r->message, "unexpected reply to PING");
	assert_down(r);
	assert_int_equal(plugin_events(f), 0);
}

static void
test_more_replies_than_asked(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	/* hiredis 0.14 would abort on the second PONG: it must not reach it. */
	srv_start(f, SRV_DOUBLE_PONG);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "unexpected data after a reply: "
	    "\"+PONG\\x0d\\x0a\" (waiting for the reply to PING)");
	assert_down(r);
	assert_int_equal(plugin_events(f), 0);
}

static void
test_data_while_idle(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	new_instance(f);
	assert_int_equal(run_check(f, 2000)->status, TROIKA_STATUS_OK);
	/* A reply nobody asked for, between runs: refused, not parsed. */
	srv_puts(&f->srv, "+SURPRISE\r\n");
	fake_host_run_for(f->fh, 50);
	assert_true(fake_host_log_contains(f->fh, "unexpected data from the "
	    "server: \"+SURPRISE"));
	assert_int_equal(plugin_events(f), 0);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_int_equal(f->srv.accepted, 2);
}

static void
test_huge_reply_is_bounded(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_HUGE_INFO);
	fake_host_set_size(f->fh, "max_reply", 65536);
	new_instance(f);
	r = run_check(f, 3000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "reply larger than max_reply (65536 bytes)"
	    " (waiting for the reply to INFO)");
	assert_down(r);
	assert_int_equal(plugin_events(f), 0);
}

static void
test_huge_array_is_refused(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_HUGE_ARRAY);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "array reply longer than 1024 elements");
	assert_down(r);
}

static void
test_auth(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	f->srv.requirepass = "s3cret";
	fake_host_set_string(f->fh, "password", "s3cret");
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(f->srv.cmds[0], "AUTH s3cret");
	/* AUTH once per connection, not per run. */
	assert_int_equal(run_check(f, 2000)->status, TROIKA_STATUS_OK);
	assert_int_equal(f->srv.ncmds, 5);
	assert_string_equal(f->srv.cmds[3], "PING");
}

static void
test_auth_wrong_password(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char want[160];

	srv_start(f, SRV_NORMAL);
	f->srv.requirepass = "s3cret";
	fake_host_set_string(f->fh, "password", "guess");
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	snprintf(want, sizeof(want), "127.0.0.1:%d: authentication failed: "
	    "WRONGPASS invalid username-password pair or user is disabled.",
	    f->srv.port);
	assert_string_equal(r->message, want);
	assert_down(r);
	/* A fresh connection (and AUTH) at the next run. */
	assert_int_equal(plugin_events(f), 0);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(f->srv.accepted, 2);
}

static void
test_auth_missing(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	f->srv.requirepass = "s3cret";
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	assert_contains(r->message, "authentication required, and no password "
	    "is configured for this check: NOAUTH Authentication required.");
	assert_down(r);
}

static void
test_auth_not_needed(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	fake_host_set_string(f->fh, "password", "s3cret");
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	assert_contains(r->message, "authentication failed: ERR AUTH "
	    "<password> called without any password configured");
}

static void
test_auth_acl_user(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	f->srv.requirepass = "pw";
	f->srv.acl_user = "monitor";
	fake_host_set_string(f->fh, "username", "monitor");
	fake_host_set_string(f->fh, "password", "pw");
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(f->srv.cmds[0], "AUTH monitor pw");
	f->p->instance_free(f->state);
	fake_host_set_string(f->fh, "username", "intruder");
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "authentication failed for user intruder: "
	    "WRONGPASS");
}

static void
test_noperm(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	f->srv.noperm = "INFO";
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	assert_contains(r->message, ": INFO refused: NOPERM this user has no "
	    "permissions to run the 'INFO' command");
	assert_down(r);
	/* An error reply leaves the connection usable. */
	assert_int_equal(plugin_events(f), 1);
}

static void
test_replica_ok(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	const struct fake_sample *s;

	srv_start(f, SRV_NORMAL);
	f->srv.role = "slave";
	snprintf(f->srv.master_host, sizeof(f->srv.master_host), "127.0.1.1");
	f->srv.master_port = 6379;
	f->srv.master_io = 3;
	f->srv.replicas = NULL;
	f->srv.connected_slaves = 0;
	fake_host_set_string(f->fh, "expected_role", "replica");
	/* min_replicas is for masters. */
	fake_host_set_int(f->fh, "min_replicas", 2);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, "replica of 127.0.1.1:6379, link up, "
	    "offset 5000, memory 990.4 KiB of 64.0 MiB (2%)");
	assert_int_equal(sample(r, "redis_master_link_up", NULL, NULL), 1);
	assert_int_equal(sample(r, "redis_slave_repl_offset", NULL, NULL),
	    5000);
	assert_int_equal(sample(r, "redis_master_last_io_seconds_ago", NULL,
	    NULL), 3);
	assert_non_null(fake_result_sample(r, "redis_instance_info", "role",
	    "slave"));
	s = fake_result_sample(r, "redis_slave_info", "master_host",
	    "127.0.1.1");
	assert_non_null(s);
	assert_string_equal(fake_sample_label(s, "master_port"), "6379");
	assert_string_equal(fake_sample_label(s, "read_only"), "1");
	assert_field(r, "role", "replica");
	assert_field(r, "master_host", "127.0.1.1");
	assert_field(r, "master_port", "6379");
	assert_field(r, "master_link_status", "up");
	assert_field(r, "slave_repl_offset", "5000");
}

static void
set_replica(struct fixture *f, const char *link)
{
	f->srv.role = "slave";
	snprintf(f->srv.master_host, sizeof(f->srv.master_host), "127.0.1.1");
	f->srv.master_port = 6379;
	f->srv.link = link;
	f->srv.replicas = NULL;
	f->srv.connected_slaves = 0;
}

static void
test_replica_link_down(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	set_replica(f, "down");
	f->srv.master_io = -1;
	f->srv.link_down_since = 5;
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_string_equal(r->message, "link to master 127.0.1.1:6379 down "
	    "for 5 s (replica of 127.0.1.1:6379, link down, offset 5000, "
	    "memory 990.4 KiB of 64.0 MiB (2%))");
	/* It answered: up, with the link down. */
	assert_int_equal(sample(r, "redis_up", NULL, NULL), 1);
	assert_int_equal(sample(r, "redis_master_link_up", NULL, NULL), 0);
	assert_field(r, "master_link_status", "down");
	/* While a full sync runs, it is a warning. */
	f->srv.sync_in_progress = 1;
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_WARNING);
	assert_contains(r->message, "full sync from master 127.0.1.1:6379 in "
	    "progress");
}

static void
test_replica_lag(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	set_replica(f, "up");
	f->srv.master_io = 31;
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_WARNING);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	assert_contains(r->message, "nothing from master 127.0.1.1:6379 for "
	    "31 s (max_replication_lag 30 s)");
	f->srv.master_io = 30;
	assert_int_equal(run_check(f, 2000)->status, TROIKA_STATUS_OK);
	/* 0 turns it off. */
	f->p->instance_free(f->state);
	fake_host_set_duration(f->fh, "max_replication_lag", 0);
	new_instance(f);
	f->srv.master_io = 3000;
	assert_int_equal(run_check(f, 2000)->status, TROIKA_STATUS_OK);
}

static void
test_wrong_role(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	set_replica(f, "up");
	fake_host_set_string(f->fh, "expected_role", "master");
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_contains(r->message, "role is replica, expected master (replica "
	    "of 127.0.1.1:6379");
	f->p->instance_free(f->state);
	fake_host_set_string(f->fh, "expected_role", "replica");
	new_instance(f);
	f->srv.role = "master";
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "role is master, expected replica");
}

static void
test_master_warnings(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	f->srv.replicas = "slave0:ip=127.0.1.2,port=6379,state=online,"
	    "offset=5100,lag=45\r\nslave1:ip=127.0.1.3,port=6379,"
	    "state=wait_bgsave,offset=0,lag=0\r\n";
	f->srv.bgsave_status = "err";
	f->srv.aof_write_status = "err";
	f->srv.used_memory = 64000000;
	fake_host_set_int(f->fh, "min_replicas", 2);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_WARNING);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	assert_string_equal(r->message, "replica 127.0.1.2:6379 silent for "
	    "45 s (max_replication_lag 30 s); 1 replica online, min_replicas "
	    "2; last bgsave failed (rdb_last_bgsave_status:err); AOF write "
	    "error (aof_last_write_status:err); memory at 95% of maxmemory "
	    "(memory_warning 90%) (master, 1 replica online, offset 5100, "
	    "memory 61.0 MiB of 64.0 MiB (95%))");
	assert_int_equal(sample(r, "redis_rdb_last_bgsave_status", NULL, NULL),
	    0);
	assert_int_equal(sample(r, "redis_aof_last_write_status", NULL, NULL),
	    0);
	assert_int_equal(sample(r, "redis_connected_slave_offset_bytes",
	    "slave_state", "wait_bgsave"), 0);
	/* Without maxmemory there is no percentage. */
	f->srv.maxmemory = 0;
	f->srv.bgsave_status = "ok";
	f->srv.aof_write_status = "ok";
	f->srv.replicas = NULL;
	f->p->instance_free(f->state);
	fake_host_unset(f->fh, "min_replicas");
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, "master, 0 replicas online, offset "
	    "5100, memory 61.0 MiB");
}

static void
test_loading(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	f->srv.loading = 1;
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_WARNING);
	assert_contains(r->message, "loading the dataset (37.5% done)");
	assert_int_equal(sample(r, "redis_loading_dump_file", NULL, NULL), 1);
	assert_null(fake_result_sample(r, "troika_redis_ping_seconds", NULL,
	    NULL));
}

static void
test_odd_info(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	static char big[40000];
	size_t n = 0;

	srv_start(f, SRV_NORMAL);
	f->srv.info_override = "# Server\r\nno colon here\r\n:novalue\r\n"
	    "redis_version:\r\nused_memory:12abc\r\n";
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "INFO has no role line (not a Redis "
	    "server?)");
	/* Hundreds of replica and db lines: tables stay bounded. */
	n += (size_t)snprintf(big + n, sizeof(big) - n, "role:master\r\n"
	    "connected_slaves:100\r\n");
	for (int i = 0; i < 100; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "slave%d:ip=10."
		    "0.0.%d,port=6379,state=online,offset=%d,lag=0\r\n", i, i,
		    i);
	for (int i = 0; i < 200; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n,
		    "db%d:keys=%d,expires=0\r\n", i, i);
	assert_true(n < sizeof(big));
	f->srv.info_override = big;
	fake_host_set_int(f->fh, "min_replicas", 100);
	f->p->instance_free(f->state);
	new_instance(f);
	r = run_check(f, 2000);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_contains(r->message, "master, 100 replicas online");
	assert_int_equal(sample(r, "redis_connected_slave_offset_bytes",
	    "slave_ip", "10.0.0.31"), 31);
	assert_null(fake_result_sample(r, "redis_connected_slave_offset_bytes",
	    "slave_ip", "10.0.0.32"));
	assert_non_null(fake_result_sample(r, "redis_db_keys", "db", "db63"));
	assert_null(fake_result_sample(r, "redis_db_keys", "db", "db64"));
}

static void
test_ping_unexpected(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	/* A valid RESP reply of the wrong kind: the server is not Redis. */
	srv_start(f, SRV_SILENT);
	new_instance(f);
	{
		struct troika_task *task = fake_host_task(f->fh, 2000);

		fake_host_check(f->fh, f->p, f->state, task);
		fake_host_run_for(f->fh, 50);
		srv_puts(&f->srv, ":42\r\n");
		assert_int_equal(fake_host_wait_done(f->fh, 1, 2000), 0);
	}
	r = fake_host_last(f->fh);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_AMBIGUOUS);
	assert_contains(r->message, "unexpected reply to PING (type 3)");
	assert_int_equal(plugin_events(f), 0);
}

/* ---- cancel ---- */

static void
test_cancel_while_waiting(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task;

	srv_start(f, SRV_SILENT);
	new_instance(f);
	task = fake_host_task(f->fh, 5000);
	fake_host_check(f->fh, f->p, f->state, task);
	fake_host_run_for(f->fh, 50);
	fake_host_cancel(f->fh, f->p, f->state, task);
	assert_int_equal(plugin_events(f), 0);
	fake_host_run_for(f->fh, 100);
	assert_int_equal(fake_host_done_count(f->fh), 0);
	assert_int_equal(f->srv.eof_seen, 1);
	/* Another task is ignored by cancel. */
	f->srv.mode = SRV_NORMAL;
	task = fake_host_task(f->fh, 2000);
	fake_host_check(f->fh, f->p, f->state, task);
	fake_host_cancel(f->fh, f->p, f->state, fake_host_task(f->fh, 10));
	assert_int_equal(fake_host_wait_done(f->fh, 1, 2000), 0);
	assert_int_equal(fake_host_last(f->fh)->status, TROIKA_STATUS_OK);
}

static void
test_cancel_keeps_a_quiet_connection(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task;

	/* Cancelled while an action waits between two INFOs. */
	srv_start(f, SRV_NORMAL);
	f->srv.bgsave_polls = 1000;
	new_instance(f);
	task = fake_host_task(f->fh, 5000);
	fake_host_action(f->fh, f->p, f->state, task, "bgsave", NULL, 0);
	/* INFO, BGSAVE, INFO, INFO at 100 ms, the next at 200 ms. */
	fake_host_run_for(f->fh, 150);
	assert_string_equal(f->srv.cmds[1], "BGSAVE");
	assert_int_equal(f->srv.ncmds, 4);
	fake_host_cancel(f->fh, f->p, f->state, task);
	fake_host_run_for(f->fh, 50);
	assert_int_equal(fake_host_done_count(f->fh), 0);
	assert_int_equal(f->srv.accepted, 1);
	f->srv.bgsave_running = 0;
	assert_int_equal(run_check(f, 2000)->status, TROIKA_STATUS_OK);
}

/* ---- actions ---- */

static const struct fake_result *
run_action(struct fixture *f, int64_t deadline_ms, const char *name,
    const char *a0, const char *a1)
{
	const char *argv[2] = { a0, a1 };

	return run_task(f, deadline_ms, name, argv, a1 ? 2 : a0 ? 1 : 0);
}

static void
test_action_role(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char want[64];

	srv_start(f, SRV_NORMAL);
	new_instance(f);
	r = run_action(f, 2000, "role", NULL, NULL);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	snprintf(want, sizeof(want), "127.0.0.1:%d: master", f->srv.port);
	assert_string_equal(r->message, want);
	assert_int_equal(r->nsamples, 0);
	assert_field(r, "role", "master");
	assert_field(r, "master_repl_offset", "5100");
	assert_field(r, "connected_slaves", "2");
	assert_field(r, "slave0", "ip=127.0.1.2,port=6379,state=online,"
	    "offset=5100,lag=0");
	assert_field(r, "slave1", "ip=127.0.1.3,port=6379,state=online,"
	    "offset=5000,lag=1");
	assert_string_equal(f->srv.cmds[0], "INFO replication");
	set_replica(f, "up");
	r = run_action(f, 2000, "role", NULL, NULL);
	assert_field(r, "role", "replica");
	assert_field(r, "slave_repl_offset", "5000");
	assert_field(r, "slave_priority", "100");
	assert_field(r, "master_host", "127.0.1.1");
	/* The connection of the check is the action's too. */
	assert_int_equal(f->srv.accepted, 1);
}

static void
test_action_promote(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	set_replica(f, "up");
	f->srv.promote_polls = 3;
	new_instance(f);
	r = run_action(f, 2000, "promote", NULL, NULL);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_contains(r->message, "promoted: master after ");
	assert_field(r, "role", "master");
	assert_field(r, "master_replid",
	    "a018d3aa4e5acb61c5857b2d341ab73ddc30a5b5");
	assert_string_equal(f->srv.cmds[0], "INFO replication");
	assert_string_equal(f->srv.cmds[1], "REPLICAOF NO ONE");
	assert_int_equal(f->srv.ncmds, 5); /* INFO until role:master */
	/* Again: nothing to do. */
	r = run_action(f, 2000, "promote", NULL, NULL);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_contains(r->message, "is a master already");
	assert_int_equal(f->srv.ncmds, 6);
}

static void
test_action_promote_never_master(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	set_replica(f, "up");
	f->srv.promote_polls = 100000;
	new_instance(f);
	r = run_action(f, 500, "promote", NULL, NULL);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_contains(r->message, "REPLICAOF NO ONE sent, but no "
	    "role:master within 450 ms");
	assert_field(r, "role", "replica");
}

static void
test_action_promote_refused(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	set_replica(f, "up");
	f->srv.noperm = "REPLICAOF";
	new_instance(f);
	r = run_action(f, 2000, "promote", NULL, NULL);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "REPLICAOF refused: NOPERM");
}

static void
test_action_replicate(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	f->srv.link_up_polls = 2;
	new_instance(f);
	r = run_action(f, 2000, "replicate", "127.0.1.2", "6379");
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_contains(r->message, "is a replica of 127.0.1.2:6379, link up "
	    "after ");
	assert_field(r, "role", "replica");
	assert_field(r, "master_host", "127.0.1.2");
	assert_field(r, "master_port", "6379");
	assert_field(r, "master_link_status", "up");
	assert_string_equal(f->srv.cmds[0], "REPLICAOF 127.0.1.2 6379");
	assert_int_equal(f->srv.ncmds, 3);
}

static void
test_action_replicate_link_stays_down(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	f->srv.link_up_polls = 100000;
	new_instance(f);
	r = run_action(f, 500, "replicate", "127.0.1.9", "6379");
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_contains(r->message, "REPLICAOF 127.0.1.9 6379 sent, but the "
	    "link is not up within 450 ms");
	assert_field(r, "master_link_status", "down");
}

static void
test_action_replicate_bad_args(void **state)
{
	struct fixture *f = *state;
	const char *bad[][2] = {
		{ "no", "one" }, { "127.0.1.2", "0" }, { "127.0.1.2", "65536" },
		{ "127.0.1.2", "63x" }, { "", "6379" }, { "a b", "6379" },
		{ "127.0.1.2", "" },
	};

	srv_start(f, SRV_NORMAL);
	new_instance(f);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const struct fake_result *r = run_action(f, 1000, "replicate",
		    bad[i][0], bad[i][1]);

		assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
		assert_contains(r->message, "replicate: expected <host> "
		    "<port>");
	}
	assert_int_equal(f->srv.accepted, 0);
}

static const struct fake_result *
run_handover(struct fixture *f, int64_t deadline_ms, const char *host,
    const char *port, const char *ms)
{
	const char *argv[3] = { host, port, ms };

	return run_task(f, deadline_ms, "handover", argv, 3);
}

static void
test_action_handover(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	f->srv.failover_polls = 3;
	new_instance(f);
	r = run_handover(f, 2000, "127.0.1.2", "6379", "5000");
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_contains(r->message, "handed over to 127.0.1.2:6379 after ");
	assert_contains(r->message, "now its replica");
	assert_field(r, "role", "replica");
	assert_field(r, "master_host", "127.0.1.2");
	assert_field(r, "master_port", "6379");
	assert_string_equal(f->srv.cmds[0], "INFO replication");
	/* The action's 2 s less the margin and four polls: 1700 ms, less
	 * the few the action took so far. */
	assert_true(strncmp(f->srv.cmds[1], "FAILOVER TO 127.0.1.2 6379 "
	    "TIMEOUT ", 35) == 0);
	assert_in_range(atoi(f->srv.cmds[1] + 35), 1600, 1700);
	assert_int_equal(f->srv.ncmds, 5); /* INFO until it ended */
	/* Now a replica: refused before anything is sent. */
	r = run_handover(f, 2000, "127.0.1.2", "6379", "5000");
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "is not a master (role replica): nothing "
	    "to hand over");
	assert_int_equal(f->srv.ncmds, 6);
}

static void
test_action_handover_own_timeout(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	f->srv.failover_polls = 2;
	new_instance(f);
	r = run_handover(f, 2000, "127.0.1.3", "6390", "250");
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(f->srv.cmds[1],
	    "FAILOVER TO 127.0.1.3 6390 TIMEOUT 250");
}

static void
test_action_handover_gives_up(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	f->srv.failover_polls = 2;
	f->srv.failover_gives_up = 1;
	new_instance(f);
	r = run_handover(f, 2000, "127.0.1.2", "6379", "300");
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "FAILOVER TO 127.0.1.2 6379 gave up, "
	    "still the master: the target did not catch up or answer within "
	    "300 ms");
	assert_field(r, "role", "master");
}

static void
test_action_handover_never_ends(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	f->srv.failover_polls = 100000;
	new_instance(f);
	r = run_handover(f, 500, "127.0.1.2", "6379", "5000");
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_contains(r->message, "FAILOVER TO 127.0.1.2 6379 sent, but it "
	    "had not ended within 450 ms");
}

static void
test_action_handover_refused(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	f->srv.connected_slaves = 0;
	new_instance(f);
	r = run_handover(f, 2000, "127.0.1.2", "6379", "5000");
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "FAILOVER TO 127.0.1.2 6379 refused: "
	    "ERR FAILOVER requires connected replicas.");
	/* No time for it within the action's own deadline. */
	f->srv.connected_slaves = 2;
	r = run_handover(f, 150, "127.0.1.2", "6379", "5000");
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, "no time left for FAILOVER within the "
	    "action's 135 ms");
}

static void
test_action_handover_bad_args(void **state)
{
	struct fixture *f = *state;
	const char *bad[][3] = {
		{ "no", "one", "100" }, { "127.0.1.2", "0", "100" },
		{ "127.0.1.2", "6379", "0" }, { "127.0.1.2", "6379", "1x" },
		{ "127.0.1.2", "6379", "" }, { "127.0.1.2", "6379", "3600001" },
	};

	srv_start(f, SRV_NORMAL);
	new_instance(f);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const struct fake_result *r = run_handover(f, 1000, bad[i][0],
		    bad[i][1], bad[i][2]);

		assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
		assert_contains(r->message, "handover: expected <host> <port> "
		    "<timeout_ms>");
	}
	assert_int_equal(f->srv.accepted, 0);
}

static void
test_action_bgsave(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	f->srv.bgsave_polls = 2;
	new_instance(f);
	r = run_action(f, 3000, "bgsave", NULL, NULL);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_contains(r->message, "bgsave done after ");
	assert_contains(r->message, " ms, lastsave 1795690021");
	assert_field(r, "lastsave", "1795690021");
	assert_field(r, "rdb_last_bgsave_status", "ok");
	assert_string_equal(f->srv.cmds[0], "INFO persistence");
	assert_string_equal(f->srv.cmds[1], "BGSAVE");
	assert_int_equal(f->srv.ncmds, 5);
	/* It failed. */
	f->srv.bgsave_result = "err";
	f->srv.bgsave_polls = 0;
	r = run_action(f, 3000, "bgsave", NULL, NULL);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "bgsave failed "
	    "(rdb_last_bgsave_status:err)");
	assert_field(r, "lastsave", "1795690021");
}

static void
test_action_bgsave_already_running(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	f->srv.bgsave_running = 1;
	f->srv.bgsave_polls = 2;
	new_instance(f);
	r = run_action(f, 3000, "bgsave", NULL, NULL);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_contains(r->message, "a running bgsave done after ");
	/* Still running at the deadline: the outcome is not known. */
	f->srv.bgsave_running = 1;
	f->srv.bgsave_polls = 100000;
	r = run_action(f, 500, "bgsave", NULL, NULL);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_contains(r->message, "bgsave still running after 450 ms");
}

/*
 * backup: the BGSAVE, the RDB's path, then backup_program. /bin/echo as the
 * program shows the argv the plugin built.
 */
static void
test_action_backup(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char script[] = "/tmp/troika-redis-backup-test.XXXXXX";
	int fd;

	srv_start(f, SRV_NORMAL);
	f->srv.config_dir = "/var/lib/redis";
	f->srv.config_dbfilename = "dump.rdb";
	fake_host_set_string(f->fh, "backup_dir", "/srv/backups");
	fake_host_set_string(f->fh, "backup_program", "/bin/echo");
	new_instance(f);
	r = run_action(f, 3000, "backup", NULL, NULL);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_contains(r->message, ": backup done after ");
	assert_contains(r->message, " ms; store --keep 4 --check "
	    "/usr/bin/redis-check-rdb /srv/backups /var/lib/redis/dump.rdb");
	/* Only a "stored DIR/NAME: ..." line names a set. */
	assert_null(fake_result_field(r, "backup_set"));
	assert_string_equal(f->srv.cmds[0], "INFO persistence");
	assert_string_equal(f->srv.cmds[1], "BGSAVE");
	assert_string_equal(f->srv.cmds[f->srv.ncmds - 2], "CONFIG GET dir");
	assert_string_equal(f->srv.cmds[f->srv.ncmds - 1],
	    "CONFIG GET dbfilename");
	assert_int_equal(fake_host_spawns(f->fh), 1);
	f->p->instance_free(f->state);

	/* rdb_file: no CONFIG; no check program; the set's name. */
	fd = mkstemp(script);
	assert_true(fd >= 0);
	assert_true(dprintf(fd, "#!/bin/sh\necho some check output\n"
	    "echo \"stored $4/20261127T031500Z: 1 file, 3 bytes, sha256 x, "
	    "0 older removed\"\n") > 0);
	close(fd);
	assert_int_equal(chmod(script, 0700), 0);
	fake_host_set_string(f->fh, "backup_program", script);
	fake_host_set_string(f->fh, "rdb_file", "/data/x.rdb");
	fake_host_set_string(f->fh, "rdb_check_program", "none");
	fake_host_set_int(f->fh, "backup_keep", 9);
	f->srv.ncmds = 0;
	new_instance(f);
	r = run_action(f, 3000, "backup", NULL, NULL);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_contains(r->message, " ms; stored /srv/backups/20261127T031500Z: "
	    "1 file, 3 bytes");
	assert_field(r, "backup_set", "/srv/backups/20261127T031500Z");
	for (int i = 0; i < f->srv.ncmds; i++)
		assert_true(strncmp(f->srv.cmds[i], "CONFIG", 6) != 0);
	f->p->instance_free(f->state);

	/* Still running at the deadline: stopped, and UNKNOWN. */
	fd = open(script, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_true(dprintf(fd, "#!/bin/sh\nexec sleep 30\n") > 0);
	close(fd);
	new_instance(f);
	r = run_action(f, 1000, "backup", NULL, NULL);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_contains(r->message, script);
	assert_contains(r->message, " had not ended after 900 ms; stopped");
	assert_int_equal(fake_host_spawn_cancels(f->fh), 1);
	/* TERM, then reaped: the sleep is gone before the test ends. */
	for (int i = 0; i < 300 && spawn_active() > 0; i++)
		fake_host_run_for(f->fh, 10);
	assert_int_equal(spawn_active(), 0);
	unlink(script);
}

static void
test_action_backup_refused_or_failed(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	f->srv.config_dir = "/var/lib/redis";
	f->srv.config_dbfilename = "dump.rdb";
	/* No backup_dir: nothing is sent. */
	new_instance(f);
	r = run_action(f, 3000, "backup", NULL, NULL);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message,
	    "backup: no backup_dir configured for this check");
	assert_int_equal(f->srv.ncmds, 0);
	f->p->instance_free(f->state);
	f->state = NULL;

	/* Relative paths are refused when the check is made. */
	fake_host_set_string(f->fh, "backup_dir", "backups");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	fake_host_set_string(f->fh, "backup_dir", "/srv/backups");
	fake_host_set_string(f->fh, "rdb_check_program", "redis-check-rdb");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	fake_host_set_string(f->fh, "rdb_check_program", "none");
	fake_host_set_string(f->fh, "backup_program", "/bin/false");
	new_instance(f);

	/* The program fails. */
	r = run_action(f, 3000, "backup", NULL, NULL);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "backup of /var/lib/redis/dump.rdb "
	    "failed: /bin/false exit 1, and said nothing");
	/* It cannot be started. */
	fake_host_fail_next_spawn(f->fh, EAGAIN);
	r = run_action(f, 3000, "backup", NULL, NULL);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "cannot run /bin/false: Resource "
	    "temporarily unavailable");
	/* CONFIG answers what no RDB path is made of. */
	f->srv.config_dir = "relative";
	r = run_action(f, 3000, "backup", NULL, NULL);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, ": CONFIG GET dir is not an absolute path; "
	    "set rdb_file");
	f->srv.config_dir = "/var/lib/redis";
	f->srv.config_dbfilename = "../etc/x";
	r = run_action(f, 3000, "backup", NULL, NULL);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, ": CONFIG GET dbfilename is not a plain "
	    "file name; set rdb_file");
	/* CONFIG renamed away. */
	f->srv.config_dir = NULL;
	r = run_action(f, 3000, "backup", NULL, NULL);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_contains(r->message, ": CONFIG GET dir refused: ERR unknown "
	    "command 'CONFIG'; set rdb_file");
	/* The BGSAVE fails: no CONFIG, no program. */
	f->srv.config_dir = "/var/lib/redis";
	f->srv.bgsave_result = "err";
	f->srv.ncmds = 0;
	r = run_action(f, 3000, "backup", NULL, NULL);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message,
	    "bgsave failed (rdb_last_bgsave_status:err)");
	for (int i = 0; i < f->srv.ncmds; i++)
		assert_true(strncmp(f->srv.cmds[i], "CONFIG", 6) != 0);
	assert_int_equal(fake_host_spawns(f->fh), 1);
}

static void
test_action_on_a_dead_server(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	int port;

	f->extra_fd = bound_socket(-1, &port);
	fake_host_set_string(f->fh, "host", "127.0.0.1");
	fake_host_set_int(f->fh, "port", port);
	new_instance(f);
	r = run_action(f, 1000, "promote", NULL, NULL);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_contains(r->message, "refused");
	assert_only_address(r);
}

static void
test_service_actions_without_manager(void **state)
{
	struct fixture *f = *state;
	const char *ops[] = { "start", "stop", "restart" };

	srv_start(f, SRV_NORMAL);
	new_instance(f);
	for (size_t i = 0; i < 3; i++) {
		const struct fake_result *r = run_action(f, 1000, ops[i], NULL,
		    NULL);

		assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
		assert_string_equal(r->message, "no service manager "
		    "configured for this check");
		assert_string_equal(fake_host_service_last_op(f->fh), ops[i]);
	}
	assert_int_equal(fake_host_service_calls(f->fh), 3);
	assert_int_equal(f->srv.accepted, 0);
}

static void
test_service_actions_with_manager(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	new_instance(f);
	assert_int_equal(run_check(f, 2000)->status, TROIKA_STATUS_OK);
	fake_host_set_service(f->fh, 1,
	    "restart: redis-server.service restarted");
	r = run_action(f, 1000, "restart", NULL, NULL);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_contains(r->message, "restart: redis-server.service restarted; "
	    "127.0.0.1:");
	assert_contains(r->message, " answers PING after ");
	assert_string_equal(fake_host_service_last_op(f->fh), "restart");
	/* The old connection went; the one that saw PONG stays. */
	assert_int_equal(f->srv.accepted, 2);
	assert_string_equal(f->srv.cmds[f->srv.ncmds - 1], "PING");
	assert_int_equal(run_check(f, 2000)->status, TROIKA_STATUS_OK);
	assert_int_equal(f->srv.accepted, 2);
	/* A stop is the service manager's word alone. */
	fake_host_set_service(f->fh, 1, "stop: stopped");
	r = run_action(f, 1000, "stop", NULL, NULL);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, "stop: stopped");
	assert_int_equal(plugin_events(f), 0);
	fake_host_set_service(f->fh, 0, "start: unit failed");
	r = run_action(f, 1000, "start", NULL, NULL);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "start: unit failed");
	assert_int_equal(f->srv.accepted, 2);
	/* The server closes the connection while the manager works. */
	assert_int_equal(run_check(f, 2000)->status, TROIKA_STATUS_OK);
	fake_host_set_service(f->fh, 1, "restart: done");
	{
		struct troika_task *task = fake_host_task(f->fh, 1000);
		unsigned n = fake_host_done_count(f->fh);

		fake_host_action(f->fh, f->p, f->state, task, "restart", NULL,
		    0);
		srv_drop_client(&f->srv);
		assert_int_equal(fake_host_wait_done(f->fh, n + 1, 2000), 0);
		r = fake_host_last(f->fh);
		assert_int_equal(r->status, TROIKA_STATUS_OK);
		assert_contains(r->message, "restart: done; 127.0.0.1:");
	}
	/* A manager that says nothing. */
	fake_host_set_service(f->fh, 1, "");
	r = run_action(f, 1000, "stop", NULL, NULL);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_string_equal(r->message, "stop: done");
}

static void
test_start_waits_for_redis(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	struct troika_task *task;
	int port, fd = bound_socket(-1, &port);

	/* Refused at first, then LOADING twice, then PONG. */
	assert_true(fd >= 0);
	fake_host_set_string(f->fh, "host", "127.0.0.1");
	fake_host_set_int(f->fh, "port", port);
	fake_host_set_string(f->fh, "password", "pw");
	new_instance(f);
	fake_host_set_service(f->fh, 1, "start: started");
	task = fake_host_task(f->fh, 3000);
	fake_host_action(f->fh, f->p, f->state, task, "start", NULL, 0);
	fake_host_run_for(f->fh, 300);
	assert_int_equal(fake_host_done_count(f->fh), 0);
	f->srv.requirepass = "pw";
	f->srv.loading_pings = 2;
	srv_listen(f, fd, port);
	assert_int_equal(fake_host_wait_done(f->fh, 1, 3000), 0);
	r = fake_host_last(f->fh);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_contains(r->message, "start: started; 127.0.0.1:");
	assert_contains(r->message, " answers PING after ");
	assert_int_equal(f->srv.accepted, 1);
	assert_int_equal(f->srv.ncmds, 4);
	assert_string_equal(f->srv.cmds[0], "AUTH pw");
	assert_string_equal(f->srv.cmds[3], "PING");
}

static void
test_start_never_answers(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	f->extra_fd = bound_socket(-1, &f->srv.port);
	fake_host_set_string(f->fh, "host", "127.0.0.1");
	fake_host_set_int(f->fh, "port", f->srv.port);
	new_instance(f);
	fake_host_set_service(f->fh, 1, "start: started");
	r = run_action(f, 600, "restart", NULL, NULL);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_contains(r->message, "start: started, but 127.0.0.1:");
	assert_contains(r->message, " did not answer PING within 540 ms "
	    "(last: connection refused)");
	assert_int_equal(plugin_events(f), 0);
}

static void
test_start_then_wrong_password(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	srv_start(f, SRV_NORMAL);
	f->srv.requirepass = "pw";
	fake_host_set_string(f->fh, "password", "nope");
	new_instance(f);
	fake_host_set_service(f->fh, 1, "start: started");
	r = run_action(f, 1000, "start", NULL, NULL);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_string_equal(r->message, "start: started; then AUTH: WRONGPASS "
	    "invalid username-password pair or user is disabled.");
}

static void
test_service_call_out_when_freed(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task;

	srv_start(f, SRV_NORMAL);
	new_instance(f);
	fake_host_set_service(f->fh, 1, "start: started");
	task = fake_host_task(f->fh, 1000);
	fake_host_action(f->fh, f->p, f->state, task, "start", NULL, 0);
	fake_host_cancel(f->fh, f->p, f->state, task);
	/* Freed before the answer: the host never calls done (ASan: no
	 * leak of the call). The fake host would still call it from its
	 * loop, so it goes without running that loop again. */
	f->p->instance_free(f->state);
	f->state = NULL;
	assert_int_equal(fake_host_done_count(f->fh), 0);
	assert_int_equal(fake_host_violations(f->fh), 0);
	srv_stop(&f->srv);
	fake_host_free(f->fh);
	f->fh = fake_host_new(f->p->options);
}

static void
test_service_cancelled(void **state)
{
	struct fixture *f = *state;
	struct troika_task *task;

	srv_start(f, SRV_NORMAL);
	new_instance(f);
	fake_host_set_service(f->fh, 1, "start: started");
	task = fake_host_task(f->fh, 1000);
	fake_host_action(f->fh, f->p, f->state, task, "start", NULL, 0);
	/* Cancelled before the service manager answers: its answer later
	 * must go nowhere. */
	fake_host_cancel(f->fh, f->p, f->state, task);
	fake_host_run_for(f->fh, 50);
	assert_int_equal(fake_host_done_count(f->fh), 0);
	assert_int_equal(fake_host_service_calls(f->fh), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_descriptor, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_options, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_master_ok, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_connection_kept_across_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_close_not_yet_seen_is_not_a_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_silent_server_times_out,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_closed_mid_reply, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_talks_first, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_more_replies_than_asked,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_data_while_idle, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_huge_reply_is_bounded,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_huge_array_is_refused,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_wrong_password, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_auth_missing, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_auth_not_needed, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_auth_acl_user, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_noperm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replica_ok, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_replica_link_down, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_replica_lag, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_wrong_role, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_master_warnings, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_loading, setup, teardown),
		cmocka_unit_test_setup_teardown(test_odd_info, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ping_unexpected, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cancel_while_waiting,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_cancel_keeps_a_quiet_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_action_role, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_action_promote, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_action_promote_never_master, setup, teardown),
		cmocka_unit_test_setup_teardown(test_action_promote_refused,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_action_replicate, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_action_replicate_link_stays_down, setup, teardown),
		cmocka_unit_test_setup_teardown(test_action_replicate_bad_args,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_action_handover, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_action_handover_own_timeout,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_action_handover_gives_up,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_action_handover_never_ends,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_action_handover_refused,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_action_handover_bad_args,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_action_bgsave, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_action_bgsave_already_running, setup, teardown),
		cmocka_unit_test_setup_teardown(test_action_backup, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_action_backup_refused_or_failed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_action_on_a_dead_server,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_service_actions_without_manager, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_service_actions_with_manager, setup, teardown),
		cmocka_unit_test_setup_teardown(test_service_cancelled, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_start_waits_for_redis,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_never_answers, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_start_then_wrong_password,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_service_call_out_when_freed, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
