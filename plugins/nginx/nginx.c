/*
 * nginx: reads nginx's stub_status page (ngx_http_stub_status_module) on
 * the host's curl multi handle, so nothing blocks the loop.
 *
 *   Active connections: 291
 *   server accepts handled requests
 *    16630948 16630948 31070465
 *   Reading: 6 Writing: 179 Waiting: 106
 *
 * accepts - handled is the number of connections nginx accepted and then
 * dropped (worker_connections or another resource limit reached): the
 * check warns when it grew since the previous run.
 *
 * Actions: start, stop, restart through the service manager, reload
 * through the check's reload_command (webaction.c).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <troika/plugin.h>

#include "webaction.h"
#include "webfetch.h"

static const struct troika_option nginx_options[] = {
	{ .name = "url", .type = TROIKA_OPT_STRING, .required = 1,
	    .help = "URL of the stub_status page" },
	WEBFETCH_OPTIONS("64KiB"),
	WEBACTION_OPTION_RELOAD,
	{ .name = NULL },
};

/* The numbers of one stub_status page. */
struct nginx_status {
	uint64_t active;
	uint64_t accepts;
	uint64_t handled;
	uint64_t requests;
	uint64_t reading;
	uint64_t writing;
	uint64_t waiting;
};

struct nginx_check {
	const struct troika_host *host;
	struct troika_instance *inst;
	char *url;
	struct webfetch *wf;
	struct webaction *wa;
	struct troika_task *task;

	/* The previous page, to see dropped connections grow. */
	int have_prev;
	uint64_t prev_accepts;
	uint64_t prev_dropped;
};

static void
nginx_instance_free(void *state)
{
	struct nginx_check *n = state;

	if (n == NULL)
		return;
	webfetch_free(n->wf);
	webaction_free(n->wa);
	free(n->url);
	free(n);
}

static int
nginx_instance_new(const struct troika_host *host,
    struct troika_instance *inst, void **ret_state)
{
	struct nginx_check *n;
	const char *url = host->opt_string(inst, "url");
	int r;

	if ((n = calloc(1, sizeof(*n))) == NULL)
		return -ENOMEM;
	n->host = host;
	n->inst = inst;
	if ((r = webfetch_check_url(host, inst, "url", url)) < 0)
		goto fail;
	if ((n->url = strdup(url)) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	if ((r = webfetch_from_options(host, inst, &n->wf)) < 0)
		goto fail;
	if ((r = webaction_new(host, inst, &n->wa)) < 0)
		goto fail;
	*ret_state = n;
	return 0;

fail:
	nginx_instance_free(n);
	return r;
}

/*
 * Expect the literal word at *p (after blanks), then move past it.
 * Returns 0 or -1.
 */
static int
nginx_expect(const char **p, const char *word)
{
	size_t len = strlen(word);

	while (**p == ' ' || **p == '\t' || **p == '\r' || **p == '\n')
		(*p)++;
	if (strncmp(*p, word, len) != 0)
		return -1;
	*p += len;
	return 0;
}

/* A decimal number at *p (after blanks), then move past it. */
static int
nginx_number(const char **p, uint64_t *ret)
{
	char *end;

	while (**p == ' ' || **p == '\t' || **p == '\r' || **p == '\n')
		(*p)++;
	if (!isdigit((unsigned char)**p))
		return -1;
	errno = 0;
	*ret = strtoull(*p, &end, 10);
	if (errno != 0)
		return -1;
	*p = end;
	return 0;
}

/*
 * Parse the page. The body is NUL-terminated by webfetch; a NUL inside it
 * simply ends the parse early, which fails it.
 */
static int
nginx_parse(const char *body, struct nginx_status *st)
{
	const char *p = body;

	if (nginx_expect(&p, "Active connections:") < 0 ||
	    nginx_number(&p, &st->active) < 0 ||
	    nginx_expect(&p, "server accepts handled requests") < 0 ||
	    nginx_number(&p, &st->accepts) < 0 ||
	    nginx_number(&p, &st->handled) < 0 ||
	    nginx_number(&p, &st->requests) < 0 ||
	    nginx_expect(&p, "Reading:") < 0 ||
	    nginx_number(&p, &st->reading) < 0 ||
	    nginx_expect(&p, "Writing:") < 0 ||
	    nginx_number(&p, &st->writing) < 0 ||
	    nginx_expect(&p, "Waiting:") < 0 ||
	    nginx_number(&p, &st->waiting) < 0)
		return -1;
	return 0;
}

static void
nginx_report(struct nginx_check *n, enum troika_status status,
    enum troika_evidence evidence, const struct troika_sample *samples,
    size_t nsamples, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void
nginx_report(struct nginx_check *n, enum troika_status status,
    enum troika_evidence evidence, const struct troika_sample *samples,
    size_t nsamples, const char *fmt, ...)
{
	struct troika_task *task = n->task;
	struct troika_result res = {
		.size = sizeof(res),
		.status = status,
		.evidence = evidence,
		.samples = samples,
		.nsamples = nsamples,
	};
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	res.message = msg;
	n->task = NULL;
	n->host->check_done(task, &res);
}

static struct troika_sample
nginx_sample(const char *name, const char *help, enum troika_metric_type type,
    uint64_t v)
{
	return (struct troika_sample){ .name = name, .help = help,
	    .type = type, .value = (double)v };
}

static void
nginx_judge(struct nginx_check *n, const struct nginx_status *st)
{
	struct troika_sample s[9];
	uint64_t dropped = st->accepts >= st->handled ?
	    st->accepts - st->handled : 0;
	uint64_t grew = 0;

	s[0] = nginx_sample("nginx_up", "Whether the status page was read",
	    TROIKA_METRIC_GAUGE, 1);
	s[1] = nginx_sample("nginx_connections_active", "Active client "
	    "connections, including waiting ones", TROIKA_METRIC_GAUGE,
	    st->active);
	s[2] = nginx_sample("nginx_connections_accepted_total", "Accepted "
	    "client connections", TROIKA_METRIC_COUNTER, st->accepts);
	s[3] = nginx_sample("nginx_connections_handled_total", "Handled "
	    "client connections", TROIKA_METRIC_COUNTER, st->handled);
	s[4] = nginx_sample("nginx_http_requests_total", "Client requests",
	    TROIKA_METRIC_COUNTER, st->requests);
	s[5] = nginx_sample("nginx_connections_reading", "Connections where "
	    "nginx is reading the request header", TROIKA_METRIC_GAUGE,
	    st->reading);
	s[6] = nginx_sample("nginx_connections_writing", "Connections where "
	    "nginx is writing the response", TROIKA_METRIC_GAUGE, st->writing);
	s[7] = nginx_sample("nginx_connections_waiting", "Idle client "
	    "connections waiting for a request", TROIKA_METRIC_GAUGE,
	    st->waiting);
	s[8] = nginx_sample("nginx_connections_dropped_total", "Accepted "
	    "connections that were not handled (accepts - handled)",
	    TROIKA_METRIC_COUNTER, dropped);

	/* Counters that went back mean nginx restarted: a new baseline. */
	if (n->have_prev && st->accepts >= n->prev_accepts &&
	    dropped > n->prev_dropped)
		grew = dropped - n->prev_dropped;
	n->have_prev = 1;
	n->prev_accepts = st->accepts;
	n->prev_dropped = dropped;
	if (grew > 0)
		nginx_report(n, TROIKA_STATUS_WARNING,
		    TROIKA_EVIDENCE_AMBIGUOUS, s, 9, "%" PRIu64 " connections "
		    "dropped since the last run (accepts %" PRIu64 ", handled %"
		    PRIu64 "): a connection limit was reached", grew,
		    st->accepts, st->handled);
	else
		nginx_report(n, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE, s, 9,
		    "%" PRIu64 " active connections (%" PRIu64 " reading, %"
		    PRIu64 " writing, %" PRIu64 " waiting), %" PRIu64
		    " requests", st->active, st->reading, st->writing,
		    st->waiting, st->requests);
}

static void
nginx_fetch_done_cb(struct webfetch *wf, void *arg)
{
	struct nginx_check *n = arg;
	struct troika_sample down = nginx_sample("nginx_up", "Whether the "
	    "status page was read", TROIKA_METRIC_GAUGE, 0);
	enum troika_evidence ev;
	enum troika_status status;
	struct nginx_status st;
	char msg[400], excerpt[80];
	const char *body;
	size_t len;
	long http;

	status = webfetch_outcome(wf, &ev, msg, sizeof(msg));
	if (status != TROIKA_STATUS_OK) {
		nginx_report(n, status, ev, &down, 1, "%s", msg);
		return;
	}
	http = webfetch_http_status(wf);
	body = webfetch_body(wf, &len);
	if (http == 401 || http == 403 || http == 404) {
		/* nginx answered: it is up, but the check is set up wrong. */
		nginx_report(n, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    &down, 1, "HTTP %ld from %s: is stub_status enabled there, "
		    "and are user and password right?", http, n->url);
		return;
	}
	if (http != 200) {
		nginx_report(n, TROIKA_STATUS_CRITICAL,
		    TROIKA_EVIDENCE_AMBIGUOUS, &down, 1, "HTTP %ld from the "
		    "status page", http);
		return;
	}
	memset(&st, 0, sizeof(st));
	if (strlen(body) != len || nginx_parse(body, &st) < 0) {
		webfetch_excerpt(body, len, excerpt, sizeof(excerpt));
		nginx_report(n, TROIKA_STATUS_CRITICAL,
		    TROIKA_EVIDENCE_AMBIGUOUS, &down, 1, "not a stub_status "
		    "page: \"%s\"", excerpt);
		return;
	}
	nginx_judge(n, &st);
}

static void
nginx_check(void *state, struct troika_task *task)
{
	struct nginx_check *n = state;

	n->task = task;
	webfetch_get(n->wf, n->url,
	    webfetch_budget_ms(n->host->task_remaining_ms(task)),
	    nginx_fetch_done_cb, n);
}

static void
nginx_action(void *state, struct troika_task *task, const char *name,
    const char *const *argv, size_t argc)
{
	struct nginx_check *n = state;

	(void)argv;
	(void)argc;
	webaction_run(n->wa, task, name);
}

static void
nginx_cancel(void *state, struct troika_task *task)
{
	struct nginx_check *n = state;

	if (n->task == task) {
		webfetch_abort(n->wf);
		n->task = NULL;
	}
	webaction_cancel(n->wa, task);
}

static const struct troika_plugin nginx_plugin = {
	.abi_major = TROIKA_PLUGIN_ABI_MAJOR,
	.abi_minor = TROIKA_PLUGIN_ABI_MINOR,
	.size = sizeof(struct troika_plugin),
	.name = "nginx",
	.version = TROIKA_VERSION,
	.description = "nginx stub_status: connections, requests, drops",
	.exec_model = TROIKA_EXEC_ASYNC,
	.options = nginx_options,
	.instance_new = nginx_instance_new,
	.instance_free = nginx_instance_free,
	.check = nginx_check,
	.cancel = nginx_cancel,
	.actions = webaction_actions,
	.action = nginx_action,
};

__attribute__((visibility("default"))) const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void);

const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void)
{
	return &nginx_plugin;
}
