/*
 * The agent's local admin socket: a unix socket, mode 0600, for
 * `troika-agent action` and `troika-agent status`. One request line per
 * connection, one reply, then the agent closes.
 *
 * Request:  "action <check> <action> [arg...]\n" or "status\n"; tokens are
 *           separated by one space and percent-encoded (admin_proto.c).
 * Reply:    "key: value" lines and an empty line. For an action:
 *           result (ok|failed|unknown|error), message, duration, and one
 *           "field.<name>: <value>" per result field.
 *
 * Bounded: 4 KiB per request, 16 connections, 30 s to send a request and
 * to take the reply (no limit while an action runs: it has its own
 * deadline); a client that misbehaves is closed without affecting others.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "admin_proto.h"
#include "agent.h"
#include "check_host.h"
#include "log.h"
#include "status.h"

#define ADMIN_MAX_REQUEST 4096
#define ADMIN_MAX_CONNS 16
#define ADMIN_CONN_TIMEOUT_S 30
#define ADMIN_MAX_ARGS 16

struct agent_admin;

struct admin_conn {
	struct agent_admin *admin;
	struct bufferevent *bev;
	struct troika_task *action; /* in progress, or NULL */
	int closing;                /* reply queued: close once written */
	struct admin_conn *next;
};

struct agent_admin {
	struct agent *agent;
	struct evconnlistener *listener;
	char *path;
	struct admin_conn *conns;
	int nconns;
};

static void
admin_conn_free(struct admin_conn *c)
{
	struct admin_conn **pp;

	for (pp = &c->admin->conns; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	c->admin->nconns--;
	check_host_action_forget(c->action);
	bufferevent_free(c->bev);
	free(c);
}

static void
admin_reply_done(struct admin_conn *c)
{
	c->closing = 1;
	/* Close once the reply is out (write callback at low-water 0). */
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		admin_conn_free(c);
}

static void
admin_error(struct admin_conn *c, const char *msg)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	evbuffer_add_printf(out, "result: error\nmessage: ");
	admin_put_value(out, msg);
	evbuffer_add(out, "\n\n", 2);
	admin_reply_done(c);
}

static const char *
action_result_word(const struct action_outcome *o)
{
	switch (o->status) {
	case TROIKA_STATUS_OK:
		return "ok";
	case TROIKA_STATUS_CRITICAL:
		return "failed";
	default:
		return "unknown";
	}
}

static void
admin_action_done_cb(const struct action_outcome *o, void *arg)
{
	struct admin_conn *c = arg;
	struct evbuffer *out = bufferevent_get_output(c->bev);

	c->action = NULL;
	evbuffer_add_printf(out, "result: %s\nmessage: ", action_result_word(o));
	admin_put_value(out, o->message ? o->message : "");
	evbuffer_add_printf(out, "\nduration: %.3f\n", o->duration);
	if (o->timed_out)
		evbuffer_add_printf(out, "timed_out: true\n");
	for (size_t i = 0; i < o->nfields; i++) {
		evbuffer_add_printf(out, "field.%s: ", o->fields[i].name);
		admin_put_value(out, o->fields[i].value);
		evbuffer_add(out, "\n", 1);
	}
	evbuffer_add(out, "\n", 1);
	admin_reply_done(c);
}

static void
admin_status(struct admin_conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct check_host *h = c->admin->agent->checks;
	struct check_view v;

	evbuffer_add_printf(out, "result: ok\nchecks: %zu\n", check_host_count(h));
	for (size_t i = 0; i < check_host_count(h); i++) {
		check_view(check_host_at(h, i), &v);
		evbuffer_add_printf(out, "check.%s: %s %s ", v.name, v.plugin,
		    v.has_result ? troika_status_str(v.status) : "pending");
		admin_put_value(out, v.message ? v.message : "");
		evbuffer_add(out, "\n", 1);
	}
	evbuffer_add(out, "\n", 1);
	admin_reply_done(c);
}

static void
admin_request(struct admin_conn *c, char *line)
{
	char *argv[ADMIN_MAX_ARGS + 3];
	const char *err;
	int argc, r;

	argc = admin_split(line, argv, ADMIN_MAX_ARGS + 3);
	if (argc < 0) {
		admin_error(c, "malformed request (bad encoding or too many arguments)");
		return;
	}
	if (argc == 1 && strcmp(argv[0], "status") == 0) {
		admin_status(c);
		return;
	}
	if (argc < 3 || strcmp(argv[0], "action") != 0) {
		admin_error(c, "unknown request; expected 'status' or "
		    "'action <check> <action> [args]'");
		return;
	}
	r = check_host_action(c->admin->agent->checks, argv[1], argv[2],
	    (const char *const *)&argv[3], (size_t)(argc - 3), 0,
	    admin_action_done_cb, c, &c->action, &err);
	if (r == 0 && c->action != NULL) {
		/* The action has its own deadline (action_timeout): no idle
		 * timeout while it runs; EOF still tells us the client left. */
		bufferevent_set_timeouts(c->bev, NULL, NULL);
	}
	if (r < 0) {
		char msg[512];
		if (r == -EINVAL)
			snprintf(msg, sizeof(msg), "usage: %s %s", argv[2], err);
		else
			snprintf(msg, sizeof(msg), "%s", err);
		c->action = NULL;
		admin_error(c, msg);
	}
}

static void
admin_read_cb(struct bufferevent *bev, void *arg)
{
	struct admin_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	char *line;

	if (c->closing || c->action != NULL) {
		/* One request per connection: ignore whatever follows. */
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
	if (line == NULL) {
		if (evbuffer_get_length(in) > ADMIN_MAX_REQUEST)
			admin_error(c, "request too long");
		return;
	}
	if (len > ADMIN_MAX_REQUEST)
		admin_error(c, "request too long");
	else
		admin_request(c, line);
	free(line);
}

static void
admin_write_cb(struct bufferevent *bev, void *arg)
{
	struct admin_conn *c = arg;

	(void)bev;
	if (c->closing)
		admin_conn_free(c);
}

static void
admin_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	/* EOF, error or timeout: the requester is gone; forget its action. */
	admin_conn_free(arg);
}

static void
admin_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct agent_admin *a = arg;
	struct admin_conn *c;
	struct timeval tv = { ADMIN_CONN_TIMEOUT_S, 0 };

	(void)l;
	(void)sa;
	(void)salen;
	if (a->nconns >= ADMIN_MAX_CONNS) {
		static const char busy[] = "result: error\nmessage: too many admin connections\n\n";
		ssize_t w = write(fd, busy, sizeof(busy) - 1);
		(void)w;
		close(fd);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->bev = bufferevent_socket_new(a->agent->base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		log_warn("admin connection");
		free(c);
		close(fd);
		return;
	}
	c->admin = a;
	c->next = a->conns;
	a->conns = c;
	a->nconns++;
	bufferevent_setcb(c->bev, admin_read_cb, admin_write_cb, admin_event_cb, c);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_setwatermark(c->bev, EV_READ, 0, ADMIN_MAX_REQUEST + 2);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

struct agent_admin *
agent_admin_start(struct agent *agent, const char *path)
{
	struct agent_admin *a;
	struct sockaddr_un sun;
	mode_t old;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_warnx("admin socket path too long: %s", path);
		return NULL;
	}
	strcpy(sun.sun_path, path);
	if ((a = calloc(1, sizeof(*a))) == NULL || (a->path = strdup(path)) == NULL) {
		free(a);
		return NULL;
	}
	a->agent = agent;
	/* A socket left by a dead agent; a live one would answer connect(). */
	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("removing old admin socket %s", path);
	old = umask(0177); /* created 0600: root (or the agent's user) only */
	a->listener = evconnlistener_new_bind(agent->base, admin_accept_cb, a,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16,
	    (struct sockaddr *)&sun, (int)sizeof(sun));
	umask(old);
	if (a->listener == NULL) {
		log_warn("cannot listen on admin socket %s", path);
		free(a->path);
		free(a);
		return NULL;
	}
	log_info("admin socket at %s", path);
	return a;
}

void
agent_admin_free(struct agent_admin *a)
{
	if (a == NULL)
		return;
	while (a->conns != NULL)
		admin_conn_free(a->conns);
	evconnlistener_free(a->listener);
	unlink(a->path);
	free(a->path);
	free(a);
}
