/*
 * haproxy: watch one backend of HAProxy through its runtime API (the
 * stats socket, `level admin` for the actions) and take its servers out
 * of rotation and back: disable (maint), drain, enable (ready), state.
 * The coordinator uses these to take a lost node out of the load
 * balancer and to return it once every check is OK.
 *
 * Async: each request is one connection on the host's event base, the
 * way HAProxy's non-interactive mode works: send one line of commands,
 * read until HAProxy closes. A check is one request
 *     show stat <backend> 6 -1;show servers state <backend>
 * (rows of the backend and its servers, plus each server's admin state,
 * which show stat alone hides for a drained server that is also down).
 * An action is that request, then `set server <backend>/<server> state
 * ...`, then the first request again to confirm the new state.
 *
 * Replies are bounded (max_reply) and parsed by haproxy_stat.c, which
 * trusts nothing. A refused or reset connection (also a missing unix
 * socket) is certain evidence that HAProxy is not there; a timeout, or a
 * reply cut short or malformed, is ambiguous.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <netdb.h>
#include <netinet/in.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include <troika/plugin.h>

#include "haproxy.h"

#define HAP_MAX_REPLY_MAX (64LL * 1024 * 1024)
/* Fields of a result (the host keeps 64): room for states and friends. */
#define HAP_SERVER_FIELDS_MAX 60
#define HAP_MSG_MAX 512

enum hap_job {
	HAP_JOB_CHECK,
	HAP_JOB_DISABLE,
	HAP_JOB_DRAIN,
	HAP_JOB_ENABLE,
	HAP_JOB_STATE,
};

/* Where an action is: the first look, the set, the look that confirms. */
enum hap_step {
	HAP_STEP_QUERY,
	HAP_STEP_SET,
	HAP_STEP_CONFIRM,
};

enum hap_phase {
	HAP_IDLE = 0,
	HAP_CONNECTING,
	HAP_SENDING,
	HAP_READING,
};

struct hap {
	const struct troika_host *host;
	struct troika_instance *inst;
	struct event_base *base;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char peer[sizeof(((struct sockaddr_un *)0)->sun_path) + 16];
	int is_unix;
	char *backend;
	char **watch; /* servers option; NULL: every server of the backend */
	size_t nwatch;
	size_t max_reply;
	struct event *timer; /* the task's own deadline */
	/* Fired from check() and action(): starts the first request from the
	 * loop, or reports the result decided there, as the host wants no
	 * check_done() inside check(). */
	struct event *kick;
	int decided;

	/* The current task; hap_task_end() resets it. */
	struct troika_task *task;
	enum hap_job job;
	enum hap_step step;
	char server[HAPROXY_NAME_MAX + 1]; /* the action's server, or "" */
	char previous[32];                 /* its state before the set */
	int set_sent;                      /* the set went out: outcome matters */
	int64_t budget_ms;
	struct haproxy_backend be;         /* the last look, once parsed */
	int have_be;

	/* The request in flight. */
	enum hap_phase phase;
	int fd;
	struct event *io;
	char cmd[2 * HAPROXY_NAME_MAX + 96];
	size_t cmdlen;
	size_t sent;
	char *buf;
	size_t len;
	size_t cap;

	/* The result, once decided. */
	enum troika_status status;
	enum troika_evidence evidence;
	char msg[HAP_MSG_MAX];
};

static const struct troika_option hap_options[] = {
	{ .name = "socket", .type = TROIKA_OPT_STRING,
	    .help = "path of HAProxy's stats socket (level admin for actions)" },
	{ .name = "address", .type = TROIKA_OPT_STRING,
	    .help = "numeric host:port of a TCP stats socket, e.g. "
	    "127.0.0.1:9999 or [::1]:9999; names are not resolved" },
	{ .name = "backend", .type = TROIKA_OPT_STRING, .required = 1,
	    .help = "the backend watched" },
	{ .name = "servers", .type = TROIKA_OPT_STRING_LIST,
	    .help = "servers of the backend watched; default: all of them" },
	{ .name = "max_reply", .type = TROIKA_OPT_SIZE, .default_value = "1MiB",
	    .min = 4096, .max = HAP_MAX_REPLY_MAX,
	    .help = "largest reply read; a larger one is CRITICAL" },
	{ .name = NULL },
};

static const struct troika_action hap_actions[] = {
	{ .name = "disable", .usage = "<server>", .min_args = 1, .max_args = 1,
	    .help = "take the server out of rotation now (maint), confirmed" },
	{ .name = "drain", .usage = "<server>", .min_args = 1, .max_args = 1,
	    .help = "no new sessions for the server (drain), confirmed" },
	{ .name = "enable", .usage = "<server>", .min_args = 1, .max_args = 1,
	    .help = "return the server to rotation (ready), confirmed" },
	{ .name = "state", .usage = "[server]", .min_args = 0, .max_args = 1,
	    .help = "the servers' states as fields" },
	{ .name = NULL },
};

static void hap_instance_free(void *state);
static void hap_timer_cb(evutil_socket_t fd, short what, void *arg);
static void hap_kick_cb(evutil_socket_t fd, short what, void *arg);
static void hap_io_cb(evutil_socket_t fd, short what, void *arg);

/*
 * "host:port", "[v6]:port", with HAProxy's "ipv4@"/"ipv6@" prefix
 * allowed; numeric only (a blocking resolver would stall the loop).
 */
static int
hap_parse_address(struct hap *h, const char *spec)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
	};
	struct addrinfo *ai = NULL;
	char host[INET6_ADDRSTRLEN + 8];
	const char *s = spec, *colon, *port;
	size_t hlen;
	int r;

	if (strncmp(s, "ipv4@", 5) == 0 || strncmp(s, "ipv6@", 5) == 0)
		s += 5;
	if (*s == '[') {
		const char *end = strchr(s, ']');

		if (end == NULL || end[1] != ':')
			goto bad;
		s++;
		hlen = (size_t)(end - s);
		port = end + 2;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			goto bad;
		hlen = (size_t)(colon - s);
		port = colon + 1;
	}
	if (hlen == 0 || hlen >= sizeof(host) || *port == '\0')
		goto bad;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if ((r = getaddrinfo(host, port, &hints, &ai)) != 0) {
		h->host->log(h->inst, TROIKA_LOG_ERR, "address \"%s\": %s%s",
		    spec, r == EAI_NONAME ? "not a numeric address and port" :
		    gai_strerror(r), r == EAI_NONAME ? " (names are not "
		    "resolved: a blocking resolver would stall the loop)" : "");
		return -EINVAL;
	}
	memcpy(&h->addr, ai->ai_addr, ai->ai_addrlen);
	h->addrlen = ai->ai_addrlen;
	freeaddrinfo(ai);
	snprintf(h->peer, sizeof(h->peer), "%s", spec);
	return 0;
bad:
	h->host->log(h->inst, TROIKA_LOG_ERR, "address \"%s\" is not "
	    "host:port (numeric; [v6]:port for IPv6)", spec);
	return -EINVAL;
}

static int
hap_parse_socket(struct hap *h, const char *path)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)&h->addr;

	if (*path == '\0' || strlen(path) >= sizeof(sun->sun_path)) {
		h->host->log(h->inst, TROIKA_LOG_ERR, "socket path \"%s\" is "
		    "empty or longer than a unix socket takes (%zu bytes)",
		    path, sizeof(sun->sun_path) - 1);
		return -EINVAL;
	}
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, strlen(path) + 1);
	h->addrlen = sizeof(*sun);
	h->is_unix = 1;
	snprintf(h->peer, sizeof(h->peer), "%s", path);
	return 0;
}

static int
hap_instance_new(const struct troika_host *host, struct troika_instance *inst,
    void **ret_state)
{
	struct hap *h;
	int has_socket = host->opt_isset(inst, "socket");
	int has_address = host->opt_isset(inst, "address");
	const char *be = host->opt_string(inst, "backend");
	int r;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return -ENOMEM;
	h->host = host;
	h->inst = inst;
	h->fd = -1;
	h->base = host->event_base(inst);
	if (has_socket == has_address) {
		host->log(inst, TROIKA_LOG_ERR, "give either socket (a path) "
		    "or address (host:port), %s", has_socket ? "not both" :
		    "one is needed");
		r = -EINVAL;
		goto fail;
	}
	r = has_socket ? hap_parse_socket(h, host->opt_string(inst, "socket")) :
	    hap_parse_address(h, host->opt_string(inst, "address"));
	if (r < 0)
		goto fail;
	if (!haproxy_name_valid(be)) {
		host->log(inst, TROIKA_LOG_ERR, "backend \"%s\" is not a "
		    "HAProxy name (letters, digits, \"-_.:\", at most %d)", be,
		    HAPROXY_NAME_MAX);
		r = -EINVAL;
		goto fail;
	}
	if ((h->backend = strdup(be)) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	h->nwatch = host->opt_isset(inst, "servers") ?
	    host->opt_list_len(inst, "servers") : 0;
	if (host->opt_isset(inst, "servers") && h->nwatch == 0) {
		host->log(inst, TROIKA_LOG_ERR, "servers is empty; leave it "
		    "out to watch every server of the backend");
		r = -EINVAL;
		goto fail;
	}
	if (h->nwatch > 0 &&
	    (h->watch = calloc(h->nwatch, sizeof(*h->watch))) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < h->nwatch; i++) {
		const char *s = host->opt_list_at(inst, "servers", i);

		if (!haproxy_name_valid(s)) {
			host->log(inst, TROIKA_LOG_ERR, "servers: \"%s\" is not "
			    "a HAProxy name (letters, digits, \"-_.:\")", s);
			r = -EINVAL;
			goto fail;
		}
		if ((h->watch[i] = strdup(s)) == NULL) {
			r = -ENOMEM;
			goto fail;
		}
	}
	h->max_reply = (size_t)host->opt_size(inst, "max_reply");
	h->timer = evtimer_new(h->base, hap_timer_cb, h);
	h->kick = event_new(h->base, -1, 0, hap_kick_cb, h);
	if (h->timer == NULL || h->kick == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	*ret_state = h;
	return 0;

fail:
	hap_instance_free(h);
	return r;
}

/* Close the request's connection; the task goes on. */
static void
hap_request_end(struct hap *h)
{
	if (h->io != NULL)
		event_free(h->io);
	h->io = NULL;
	if (h->fd != -1)
		close(h->fd);
	h->fd = -1;
	free(h->buf);
	h->buf = NULL;
	h->len = h->cap = 0;
	h->phase = HAP_IDLE;
}

static void
hap_task_end(struct hap *h)
{
	hap_request_end(h);
	if (h->timer != NULL)
		evtimer_del(h->timer);
	if (h->kick != NULL)
		event_del(h->kick);
	haproxy_backend_clear(&h->be);
	h->have_be = 0;
	h->task = NULL;
}

static void
hap_instance_free(void *state)
{
	struct hap *h = state;

	if (h == NULL)
		return;
	hap_task_end(h);
	if (h->timer != NULL)
		event_free(h->timer);
	if (h->kick != NULL)
		event_free(h->kick);
	for (size_t i = 0; i < h->nwatch && h->watch != NULL; i++)
		free(h->watch[i]);
	free(h->watch);
	free(h->backend);
	free(h);
}

static void
hap_set_result(struct hap *h, enum troika_status status,
    enum troika_evidence evidence, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
hap_set_result(struct hap *h, enum troika_status status,
    enum troika_evidence evidence, const char *fmt, ...)
{
	va_list ap;

	h->status = status;
	h->evidence = evidence;
	va_start(ap, fmt);
	vsnprintf(h->msg, sizeof(h->msg), fmt, ap);
	va_end(ap);
}

/* Append to a bounded message; a cut message ends with "...". */
static void
hap_append(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
hap_append(char *buf, size_t size, const char *fmt, ...)
{
	size_t n = strlen(buf);
	va_list ap;
	int w;

	if (n + 4 >= size)
		return;
	va_start(ap, fmt);
	w = vsnprintf(buf + n, size - n, fmt, ap);
	va_end(ap);
	if (w < 0 || (size_t)w >= size - n)
		memcpy(buf + size - 4, "...", 4);
}

/* The servers a check looks at: the watched ones, or all. */
static size_t
hap_watched_count(const struct hap *h)
{
	return h->nwatch > 0 ? h->nwatch : h->be.nsrv;
}

static const char *
hap_watched_name(const struct hap *h, size_t i)
{
	return h->nwatch > 0 ? h->watch[i] : h->be.srv[i].name;
}

/* A server name as a field name: characters outside [A-Za-z0-9_] -> '_'. */
static void
hap_field_name(const char *name, char *out, size_t outlen)
{
	size_t j = 0;

	if (!((*name >= 'a' && *name <= 'z') || (*name >= 'A' && *name <= 'Z')))
		out[j++] = '_';
	for (; *name != '\0' && j + 1 < outlen; name++)
		out[j++] = ((*name >= 'a' && *name <= 'z') ||
		    (*name >= 'A' && *name <= 'Z') ||
		    (*name >= '0' && *name <= '9')) ? *name : '_';
	out[j] = '\0';
}

struct hap_out {
	struct troika_sample *samples;
	size_t nsamples;
	struct troika_label *labels; /* backend/server pairs, 2 per server */
	struct troika_label *fields;
	size_t nfields;
	char (*fnames)[HAPROXY_NAME_MAX + 2];
	char *states;
};

static void
hap_out_free(struct hap_out *o)
{
	free(o->samples);
	free(o->labels);
	free(o->fields);
	free(o->fnames);
	free(o->states);
}

static void
hap_sample(struct hap_out *o, const char *name, const char *help,
    enum troika_metric_type type, double v, const struct troika_label *l,
    size_t nl)
{
	if (isnan(v))
		return;
	o->samples[o->nsamples++] = (struct troika_sample){
		.name = name, .help = help, .type = type, .value = v,
		.labels = l, .nlabels = nl,
	};
}

/* Metrics of the backend and of the watched servers found in it. */
static int
hap_out_samples(struct hap *h, struct hap_out *o)
{
	size_t n = hap_watched_count(h);
	struct troika_label *bl;

	o->samples = calloc(4 + 8 * n, sizeof(*o->samples));
	o->labels = calloc(1 + 2 * n, sizeof(*o->labels));
	if (o->samples == NULL || o->labels == NULL)
		return -ENOMEM;
	bl = &o->labels[2 * n];
	*bl = (struct troika_label){ "backend", h->backend };
	hap_sample(o, "haproxy_backend_up", "Backend is UP (1) or not (0)",
	    TROIKA_METRIC_GAUGE, strcmp(h->be.status, "UP") == 0, bl, 1);
	hap_sample(o, "haproxy_backend_current_sessions", "Current sessions",
	    TROIKA_METRIC_GAUGE, h->be.scur, bl, 1);
	hap_sample(o, "haproxy_backend_sessions_total", "Sessions served",
	    TROIKA_METRIC_COUNTER, h->be.stot, bl, 1);
	hap_sample(o, "haproxy_backend_active_servers",
	    "Active servers taking part in load balancing",
	    TROIKA_METRIC_GAUGE, h->be.act, bl, 1);
	for (size_t i = 0; i < n; i++) {
		const struct haproxy_server *s =
		    haproxy_backend_server(&h->be, hap_watched_name(h, i));
		struct troika_label *l = &o->labels[2 * i];

		if (s == NULL)
			continue;
		l[0] = (struct troika_label){ "backend", h->backend };
		l[1] = (struct troika_label){ "server", s->name };
		hap_sample(o, "haproxy_server_up", "Server is UP by its "
		    "health (1; DRAIN counts) or not (0)", TROIKA_METRIC_GAUGE,
		    haproxy_server_up(s), l, 2);
		hap_sample(o, "troika_haproxy_server_disabled", "Server taken "
		    "out of rotation by an operator: MAINT or DRAIN (1)",
		    TROIKA_METRIC_GAUGE, haproxy_server_disabled(s), l, 2);
		hap_sample(o, "haproxy_server_current_sessions",
		    "Current sessions", TROIKA_METRIC_GAUGE, s->scur, l, 2);
		hap_sample(o, "haproxy_server_sessions_total", "Sessions "
		    "served", TROIKA_METRIC_COUNTER, s->stot, l, 2);
		hap_sample(o, "haproxy_server_current_queue", "Requests "
		    "queued for the server", TROIKA_METRIC_GAUGE, s->qcur, l, 2);
		hap_sample(o, "haproxy_server_weight", "Effective weight",
		    TROIKA_METRIC_GAUGE, s->weight, l, 2);
		hap_sample(o, "haproxy_server_check_failures_total", "Failed "
		    "health checks", TROIKA_METRIC_COUNTER, s->chkfail, l, 2);
		hap_sample(o, "haproxy_server_downtime_seconds_total",
		    "Time spent DOWN", TROIKA_METRIC_COUNTER, s->downtime, l, 2);
	}
	return 0;
}

/*
 * Fields: one per server (name made a field name) holding its state, and
 * "states" with every one as name=STATE, in order. only: one server.
 */
static int
hap_out_fields(struct hap *h, struct hap_out *o, int watched_only,
    const char *only)
{
	size_t n = watched_only ? hap_watched_count(h) : h->be.nsrv;
	size_t cap = 64, slen = 0;

	o->fields = calloc(HAP_SERVER_FIELDS_MAX + 4, sizeof(*o->fields));
	o->fnames = calloc(HAP_SERVER_FIELDS_MAX, sizeof(*o->fnames));
	o->states = malloc(cap);
	if (o->fields == NULL || o->fnames == NULL || o->states == NULL)
		return -ENOMEM;
	o->states[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		const char *name = watched_only ? hap_watched_name(h, i) :
		    h->be.srv[i].name;
		const struct haproxy_server *s =
		    haproxy_backend_server(&h->be, name);
		const char *st = s != NULL ? haproxy_server_state(s) : "MISSING";
		size_t need = strlen(name) + strlen(st) + 3;

		if (only != NULL && strcmp(name, only) != 0)
			continue;
		if (slen + need > cap) {
			char *p;

			while (slen + need > cap)
				cap *= 2;
			if ((p = realloc(o->states, cap)) == NULL)
				return -ENOMEM;
			o->states = p;
		}
		slen += (size_t)snprintf(o->states + slen, cap - slen, "%s%s=%s",
		    slen > 0 ? " " : "", name, st);
		if (o->nfields < HAP_SERVER_FIELDS_MAX) {
			hap_field_name(name, o->fnames[o->nfields],
			    sizeof(o->fnames[0]));
			o->fields[o->nfields] = (struct troika_label){
				o->fnames[o->nfields], st };
			o->nfields++;
		}
	}
	o->fields[o->nfields++] = (struct troika_label){ "states", o->states };
	return 0;
}

/* Report the decided result and end the task. */
static void
hap_report(struct hap *h)
{
	struct troika_result res = {
		.size = sizeof(res),
		.status = h->status,
		.evidence = h->evidence,
	};
	struct troika_task *task = h->task;
	struct hap_out o = { 0 };
	char msg[sizeof(h->msg)];
	char state[32] = "";
	int r = 0;

	if (h->have_be && h->job == HAP_JOB_CHECK) {
		if ((r = hap_out_samples(h, &o)) == 0)
			r = hap_out_fields(h, &o, 1, NULL);
	} else if (h->have_be && h->job == HAP_JOB_STATE &&
	    h->status == TROIKA_STATUS_OK) {
		r = hap_out_fields(h, &o, 0, h->server[0] != '\0' ?
		    h->server : NULL);
	} else if (h->job != HAP_JOB_CHECK && h->job != HAP_JOB_STATE &&
	    h->server[0] != '\0') {
		const struct haproxy_server *s = h->have_be ?
		    haproxy_backend_server(&h->be, h->server) : NULL;

		o.fields = calloc(3, sizeof(*o.fields));
		if (o.fields == NULL) {
			r = -ENOMEM;
		} else {
			if (s != NULL)
				snprintf(state, sizeof(state), "%s",
				    haproxy_server_state(s));
			o.fields[o.nfields++] = (struct troika_label){
				"server", h->server };
			if (state[0] != '\0')
				o.fields[o.nfields++] = (struct troika_label){
					"state", state };
			if (h->previous[0] != '\0')
				o.fields[o.nfields++] = (struct troika_label){
					"previous", h->previous };
		}
	}
	if (r < 0) {
		hap_out_free(&o);
		memset(&o, 0, sizeof(o));
		res.status = TROIKA_STATUS_UNKNOWN;
		res.evidence = TROIKA_EVIDENCE_NONE;
		snprintf(h->msg, sizeof(h->msg), "out of memory building the "
		    "result");
	}
	res.samples = o.samples;
	res.nsamples = o.nsamples;
	res.fields = o.fields;
	res.nfields = o.nfields;
	/* The task ends before check_done(), which may start the next one;
	 * what the result points into (h->be) stays until after it. */
	memcpy(msg, h->msg, sizeof(msg));
	res.message = msg;
	hap_request_end(h);
	evtimer_del(h->timer);
	event_del(h->kick);
	h->task = NULL;
	h->host->check_done(task, &res);
	hap_out_free(&o);
	if (h->task == NULL) {
		haproxy_backend_clear(&h->be);
		h->have_be = 0;
	}
}

static void
hap_fail(struct hap *h, enum troika_status status,
    enum troika_evidence evidence, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
hap_fail(struct hap *h, enum troika_status status,
    enum troika_evidence evidence, const char *fmt, ...)
{
	va_list ap;

	h->status = status;
	h->evidence = evidence;
	va_start(ap, fmt);
	vsnprintf(h->msg, sizeof(h->msg), fmt, ap);
	va_end(ap);
	hap_report(h);
}

static const char *
hap_job_state(enum hap_job job)
{
	switch (job) {
	case HAP_JOB_DISABLE:
		return "MAINT";
	case HAP_JOB_DRAIN:
		return "DRAIN";
	default:
		return "ready";
	}
}

static const char *
hap_what(const struct hap *h)
{
	return h->step == HAP_STEP_SET ? "set server" : "show stat";
}

/*
 * A request failed: err is an errno, or 0 for a close before the reply
 * was complete. Before an action's set went out nothing was changed
 * (CRITICAL); after, the outcome is not known (UNKNOWN).
 */
static void
hap_request_failed(struct hap *h, int err, const char *doing)
{
	enum troika_status st = h->set_sent ? TROIKA_STATUS_UNKNOWN :
	    TROIKA_STATUS_CRITICAL;
	const char *after = h->set_sent ? "; the set server was sent, its "
	    "outcome is not known" : "";

	if (err == ECONNREFUSED || err == ENOENT)
		hap_fail(h, st, TROIKA_EVIDENCE_CERTAIN, "HAProxy stats socket "
		    "%s: connection refused%s%s", h->peer, err == ENOENT ?
		    " (no such socket)" : "", after);
	else if (err == ECONNRESET || err == EPIPE)
		hap_fail(h, st, TROIKA_EVIDENCE_CERTAIN, "HAProxy stats socket "
		    "%s: connection reset while %s (%s)%s", h->peer, doing,
		    hap_what(h), after);
	else if (err == 0)
		hap_fail(h, st, TROIKA_EVIDENCE_AMBIGUOUS, "HAProxy stats "
		    "socket %s closed the connection after %zu bytes, before "
		    "the reply to %s was complete%s", h->peer, h->len,
		    hap_what(h), after);
	else
		hap_fail(h, st, TROIKA_EVIDENCE_AMBIGUOUS, "HAProxy stats "
		    "socket %s: %s while %s%s", h->peer, strerror(err), doing,
		    after);
}

/* Decide a result inside check() or action(), report it from the loop. */
static void
hap_decide(struct hap *h, enum troika_status status,
    enum troika_evidence evidence, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
hap_decide(struct hap *h, enum troika_status status,
    enum troika_evidence evidence, const char *fmt, ...)
{
	va_list ap;

	h->status = status;
	h->evidence = evidence;
	va_start(ap, fmt);
	vsnprintf(h->msg, sizeof(h->msg), fmt, ap);
	va_end(ap);
	h->decided = 1;
}

static void
hap_wait(struct hap *h, short what)
{
	if (h->io != NULL)
		event_free(h->io);
	h->io = event_new(h->base, h->fd, what, hap_io_cb, h);
	if (h->io == NULL || event_add(h->io, NULL) == -1)
		hap_fail(h, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "cannot add a socket event");
}

/*
 * Send cmd (one line) on a new connection and read the reply to its end.
 * Returns 0, or a negative errno with the result set (not reported).
 */
static int
hap_request(struct hap *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
hap_request(struct hap *h, const char *fmt, ...)
{
	va_list ap;
	int n;

	hap_request_end(h);
	va_start(ap, fmt);
	n = vsnprintf(h->cmd, sizeof(h->cmd), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(h->cmd)) {
		hap_set_result(h, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "command too long");
		return -E2BIG;
	}
	h->cmdlen = (size_t)n;
	h->sent = 0;
	h->fd = socket(h->addr.ss_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (h->fd == -1) {
		hap_set_result(h, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "cannot create a socket: %s", strerror(errno));
		return -errno;
	}
	h->phase = HAP_CONNECTING;
	if (connect(h->fd, (struct sockaddr *)&h->addr, h->addrlen) == -1 &&
	    errno != EINPROGRESS) {
		int err = errno;

		/* Reported from the loop by the caller. */
		h->phase = HAP_IDLE;
		return -err;
	}
	h->io = event_new(h->base, h->fd, EV_WRITE, hap_io_cb, h);
	if (h->io == NULL || event_add(h->io, NULL) == -1) {
		hap_set_result(h, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "cannot add a socket event");
		return -ENOMEM;
	}
	return 0;
}

static void hap_start_query(struct hap *h);
static void hap_request_start_failed(struct hap *h, int r);

/* The look at the backend (query or confirm) came back. */
static int
hap_parse_reply(struct hap *h)
{
	char err[HAP_MSG_MAX / 2];
	int r;

	haproxy_backend_clear(&h->be);
	h->have_be = 0;
	r = haproxy_stat_parse(&h->be, h->buf, h->len, h->backend, err,
	    sizeof(err));
	if (r == 0) {
		h->have_be = 1;
		return 0;
	}
	haproxy_backend_clear(&h->be);
	if (r == -ENOENT)
		hap_fail(h, h->set_sent ? TROIKA_STATUS_UNKNOWN :
		    TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_CERTAIN, "%s", err);
	else if (r == -ENOMEM)
		hap_fail(h, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "out of memory parsing the reply");
	else
		hap_fail(h, h->set_sent ? TROIKA_STATUS_UNKNOWN :
		    TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_AMBIGUOUS,
		    "malformed reply from %s: %s", h->peer, err);
	return r;
}

static void
hap_check_verdict(struct hap *h)
{
	size_t n = hap_watched_count(h), nup = 0, nbad = 0, nmissing = 0;
	char list[HAP_MSG_MAX / 2] = "", missing[HAP_MSG_MAX / 2] = "";

	for (size_t i = 0; i < h->be.nsrv; i++)
		if (strcmp(haproxy_server_state(&h->be.srv[i]), "UP") == 0)
			nup++;
	for (size_t i = 0; i < n; i++) {
		const char *name = hap_watched_name(h, i);
		const struct haproxy_server *s =
		    haproxy_backend_server(&h->be, name);
		const char *st;

		if (s == NULL) {
			hap_append(missing, sizeof(missing), "%s%s",
			    nmissing++ > 0 ? ", " : "", name);
			continue;
		}
		st = haproxy_server_state(s);
		if (strcmp(st, "UP") != 0 && !haproxy_server_disabled(s))
			nbad++;
		hap_append(list, sizeof(list), "%s%s %s",
		    i > 0 ? ", " : "", name, st);
	}
	if (nmissing > 0)
		hap_fail(h, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_CERTAIN,
		    "backend %s has no server %s", h->backend, missing);
	else if (nup == 0)
		hap_fail(h, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_CERTAIN,
		    "no server of backend %s is UP: %s", h->backend,
		    h->be.nsrv == 0 ? "it has none" : list);
	else if (nbad > 0)
		hap_fail(h, TROIKA_STATUS_WARNING, TROIKA_EVIDENCE_NONE,
		    "backend %s: %s; %zu of %zu servers UP", h->backend, list,
		    nup, h->be.nsrv);
	else
		hap_fail(h, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE,
		    "backend %s: %s; %zu of %zu servers UP", h->backend, list,
		    nup, h->be.nsrv);
}

/* 1 when the server is where the action wants it. */
static int
hap_action_done(const struct hap *h, const struct haproxy_server *s)
{
	const char *st = haproxy_server_state(s);

	switch (h->job) {
	case HAP_JOB_DISABLE:
		return strcmp(st, "MAINT") == 0;
	case HAP_JOB_DRAIN:
		return strcmp(st, "DRAIN") == 0;
	default:
		return !haproxy_server_disabled(s);
	}
}

static void
hap_server_list(const struct hap *h, char *out, size_t outlen)
{
	out[0] = '\0';
	for (size_t i = 0; i < h->be.nsrv; i++)
		hap_append(out, outlen, "%s%s", i > 0 ? ", " : "",
		    h->be.srv[i].name);
	if (h->be.nsrv == 0)
		hap_append(out, outlen, "none");
}

static void
hap_query_done(struct hap *h)
{
	const struct haproxy_server *s;
	char names[HAP_MSG_MAX / 2];
	int r;

	if (hap_parse_reply(h) < 0)
		return;
	if (h->job == HAP_JOB_CHECK) {
		hap_check_verdict(h);
		return;
	}
	s = h->server[0] != '\0' ? haproxy_backend_server(&h->be, h->server) :
	    NULL;
	if (h->server[0] != '\0' && s == NULL) {
		hap_server_list(h, names, sizeof(names));
		hap_fail(h, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_NONE,
		    "refused: backend %s has no server %s (its servers: %s)",
		    h->backend, h->server, names);
		return;
	}
	if (h->job == HAP_JOB_STATE) {
		if (s != NULL)
			hap_fail(h, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE,
			    "%s/%s is %s", h->backend, s->name,
			    haproxy_server_state(s));
		else
			hap_fail(h, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE,
			    "backend %s: %zu servers", h->backend, h->be.nsrv);
		return;
	}
	snprintf(h->previous, sizeof(h->previous), "%s",
	    haproxy_server_state(s));
	if (hap_action_done(h, s)) {
		hap_fail(h, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE,
		    "%s/%s is already %s; nothing to do", h->backend, s->name,
		    h->job == HAP_JOB_ENABLE ? "in rotation (not MAINT nor "
		    "DRAIN)" : h->previous);
		return;
	}
	h->step = HAP_STEP_SET;
	if ((r = hap_request(h, "set server %s/%s state %s\n", h->backend,
	    h->server, h->job == HAP_JOB_DISABLE ? "maint" :
	    h->job == HAP_JOB_DRAIN ? "drain" : "ready")) < 0)
		hap_request_start_failed(h, r);
}

static void
hap_set_done(struct hap *h)
{
	char shown[160];
	size_t j = 0;

	/* HAProxy answers a successful set with an empty line. */
	for (size_t i = 0; i < h->len && j + 1 < sizeof(shown); i++) {
		char c = h->buf[i];

		if (c == '\n' || c == '\r')
			c = j > 0 && shown[j - 1] != ' ' ? ' ' : '\0';
		else if (c < 0x20 || c >= 0x7f)
			c = '?';
		if (c != '\0')
			shown[j++] = c;
	}
	while (j > 0 && shown[j - 1] == ' ')
		j--;
	shown[j] = '\0';
	if (j > 0) {
		/* Refused ("Permission denied", "No such server."): unchanged. */
		hap_fail(h, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_NONE,
		    "HAProxy refused set server %s/%s state %s: %s", h->backend,
		    h->server, h->job == HAP_JOB_DISABLE ? "maint" :
		    h->job == HAP_JOB_DRAIN ? "drain" : "ready", shown);
		return;
	}
	h->step = HAP_STEP_CONFIRM;
	hap_start_query(h);
}

static void
hap_confirm_done(struct hap *h)
{
	const struct haproxy_server *s;

	if (hap_parse_reply(h) < 0)
		return;
	if ((s = haproxy_backend_server(&h->be, h->server)) == NULL) {
		hap_fail(h, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "%s/%s vanished from the backend after the set",
		    h->backend, h->server);
		return;
	}
	if (!hap_action_done(h, s)) {
		hap_fail(h, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_NONE,
		    "%s/%s is %s after set server state %s (was %s)",
		    h->backend, s->name, haproxy_server_state(s),
		    h->job == HAP_JOB_DISABLE ? "maint" :
		    h->job == HAP_JOB_DRAIN ? "drain" : "ready", h->previous);
		return;
	}
	if (h->job == HAP_JOB_ENABLE)
		hap_fail(h, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE,
		    "%s/%s back in rotation, now %s (was %s)%s", h->backend,
		    s->name, haproxy_server_state(s), h->previous,
		    strcmp(haproxy_server_state(s), "UP") != 0 ?
		    ": its health check decides when it takes traffic" : "");
	else
		hap_fail(h, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE,
		    "%s/%s is %s (was %s)", h->backend, s->name,
		    hap_job_state(h->job), h->previous);
}

/* The whole reply is in: hand it to the step it answers. */
static void
hap_reply_done(struct hap *h)
{
	switch (h->step) {
	case HAP_STEP_QUERY:
		hap_query_done(h);
		break;
	case HAP_STEP_SET:
		hap_set_done(h);
		break;
	case HAP_STEP_CONFIRM:
		hap_confirm_done(h);
		break;
	}
}

static void
hap_connected(struct hap *h)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0) {
		hap_request_failed(h, err, "connecting");
		return;
	}
	h->phase = HAP_SENDING;
}

static void
hap_send_some(struct hap *h)
{
	while (h->sent < h->cmdlen) {
		ssize_t n = send(h->fd, h->cmd + h->sent, h->cmdlen - h->sent,
		    MSG_NOSIGNAL);

		if (n >= 0) {
			h->sent += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			hap_wait(h, EV_WRITE);
			return;
		}
		hap_request_failed(h, errno, "sending");
		return;
	}
	if (h->step == HAP_STEP_SET)
		h->set_sent = 1;
	h->phase = HAP_READING;
	hap_wait(h, EV_READ);
}

static void
hap_read_some(struct hap *h)
{
	for (;;) {
		ssize_t n;

		if (h->len == h->cap) {
			size_t cap = h->cap == 0 ? 16384 : h->cap * 2;
			char *p;

			/* One byte past the limit tells a too large reply. */
			if (cap > h->max_reply + 1)
				cap = h->max_reply + 1;
			if (cap <= h->len) {
				hap_fail(h, h->set_sent ?
				    TROIKA_STATUS_UNKNOWN :
				    TROIKA_STATUS_CRITICAL,
				    TROIKA_EVIDENCE_AMBIGUOUS, "reply from %s "
				    "to %s larger than max_reply (%zu bytes)",
				    h->peer, hap_what(h), h->max_reply);
				return;
			}
			if ((p = realloc(h->buf, cap)) == NULL) {
				hap_fail(h, TROIKA_STATUS_UNKNOWN,
				    TROIKA_EVIDENCE_NONE, "out of memory for "
				    "a %zu byte reply", cap);
				return;
			}
			h->buf = p;
			h->cap = cap;
		}
		n = read(h->fd, h->buf + h->len, h->cap - h->len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			hap_wait(h, EV_READ);
			return;
		}
		if (n == -1) {
			hap_request_failed(h, errno, "reading");
			return;
		}
		if (n == 0) {
			if (h->len > h->max_reply) {
				hap_fail(h, h->set_sent ?
				    TROIKA_STATUS_UNKNOWN :
				    TROIKA_STATUS_CRITICAL,
				    TROIKA_EVIDENCE_AMBIGUOUS, "reply from %s "
				    "to %s larger than max_reply (%zu bytes)",
				    h->peer, hap_what(h), h->max_reply);
				return;
			}
			close(h->fd);
			h->fd = -1;
			event_free(h->io);
			h->io = NULL;
			h->phase = HAP_IDLE;
			hap_reply_done(h);
			return;
		}
		h->len += (size_t)n;
	}
}

static void
hap_io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hap *h = arg;

	(void)fd;
	(void)what;
	switch (h->phase) {
	case HAP_CONNECTING:
		hap_connected(h);
		if (h->task != NULL && h->phase == HAP_SENDING)
			hap_send_some(h);
		break;
	case HAP_SENDING:
		hap_send_some(h);
		break;
	case HAP_READING:
		hap_read_some(h);
		break;
	case HAP_IDLE:
		break;
	}
}

static void
hap_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hap *h = arg;
	const char *doing = h->phase == HAP_CONNECTING ? "connecting" :
	    h->phase == HAP_SENDING ? "sending" : "waiting for the reply";

	(void)fd;
	(void)what;
	hap_fail(h, h->set_sent ? TROIKA_STATUS_UNKNOWN : TROIKA_STATUS_CRITICAL,
	    TROIKA_EVIDENCE_AMBIGUOUS, "HAProxy stats socket %s: timed out "
	    "after %lld ms %s (%s, %zu bytes read)%s", h->peer,
	    (long long)h->budget_ms, doing, hap_what(h), h->len,
	    h->set_sent ? "; the set server was sent, its outcome is not "
	    "known" : "");
}

static void
hap_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hap *h = arg;

	(void)fd;
	(void)what;
	if (h->decided)
		hap_report(h);
	else
		hap_start_query(h);
}

/* Start a request from the loop; a failure at once is reported. */
static void
hap_request_start_failed(struct hap *h, int r)
{
	if (h->fd != -1 && h->phase == HAP_IDLE)
		hap_request_failed(h, -r, "connecting");
	else
		hap_report(h);
}

static void
hap_start_query(struct hap *h)
{
	int r = hap_request(h, "show stat %s 6 -1;show servers state %s\n",
	    h->backend, h->backend);

	if (r < 0)
		hap_request_start_failed(h, r);
}

/*
 * The time a task may take: what the host allows minus a margin, so the
 * plugin's own, more telling timeout result arrives first.
 */
static int64_t
hap_budget_ms(int64_t remaining)
{
	int64_t margin = remaining / 10;

	if (margin > 100)
		margin = 100;
	return remaining - margin > 1 ? remaining - margin : 1;
}

/* A bounded, printable copy of s for one-line messages. */
static const char *
hap_printable(const char *s, char *out, size_t outlen)
{
	size_t j = 0;

	for (; *s != '\0' && j + 4 < outlen; s++)
		out[j++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
	if (*s != '\0') {
		memcpy(out + j, "...", 3);
		j += 3;
	}
	out[j] = '\0';
	return out;
}

/* Set up a task; the kick starts it from the loop. */
static void
hap_start(struct hap *h, struct troika_task *task, enum hap_job job)
{
	struct timeval tv;

	h->task = task;
	h->job = job;
	h->step = HAP_STEP_QUERY;
	h->server[0] = '\0';
	h->previous[0] = '\0';
	h->set_sent = 0;
	h->have_be = 0;
	h->decided = 0;
	h->len = 0;
	h->budget_ms = hap_budget_ms(h->host->task_remaining_ms(task));
	tv.tv_sec = h->budget_ms / 1000;
	tv.tv_usec = (h->budget_ms % 1000) * 1000;
	if (evtimer_add(h->timer, &tv) == -1)
		hap_decide(h, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "cannot add a timer");
	event_active(h->kick, EV_TIMEOUT, 1);
}

static void
hap_check(void *state, struct troika_task *task)
{
	hap_start(state, task, HAP_JOB_CHECK);
}

static void
hap_action(void *state, struct troika_task *task, const char *name,
    const char *const *argv, size_t argc)
{
	struct hap *h = state;
	enum hap_job job = HAP_JOB_STATE;
	char shown[HAPROXY_NAME_MAX + 4];

	if (strcmp(name, "disable") == 0)
		job = HAP_JOB_DISABLE;
	else if (strcmp(name, "drain") == 0)
		job = HAP_JOB_DRAIN;
	else if (strcmp(name, "enable") == 0)
		job = HAP_JOB_ENABLE;
	hap_start(h, task, job);
	if (h->decided)
		return;
	if (job == HAP_JOB_STATE && strcmp(name, "state") != 0)
		hap_decide(h, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "unknown action %s", name);
	else if (argc > 0 && !haproxy_name_valid(argv[0]))
		hap_decide(h, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_NONE,
		    "refused: \"%s\" is not a HAProxy server name (letters, "
		    "digits, \"-_.:\")", hap_printable(argv[0], shown,
		    sizeof(shown)));
	else if (argc > 0)
		snprintf(h->server, sizeof(h->server), "%s", argv[0]);
}

static void
hap_cancel(void *state, struct troika_task *task)
{
	struct hap *h = state;

	if (h->task == task)
		hap_task_end(h);
}

static const struct troika_plugin hap_plugin = {
	.abi_major = TROIKA_PLUGIN_ABI_MAJOR,
	.abi_minor = TROIKA_PLUGIN_ABI_MINOR,
	.size = sizeof(struct troika_plugin),
	.name = "haproxy",
	.version = TROIKA_VERSION,
	.description = "HAProxy backend servers through the runtime API; "
	    "disable, drain and enable actions",
	.exec_model = TROIKA_EXEC_ASYNC,
	.options = hap_options,
	.instance_new = hap_instance_new,
	.instance_free = hap_instance_free,
	.check = hap_check,
	.cancel = hap_cancel,
	.actions = hap_actions,
	.action = hap_action,
};

__attribute__((visibility("default"))) const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void);

const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void)
{
	return &hap_plugin;
}
