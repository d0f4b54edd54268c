/*
 * phpfpm: reads a PHP-FPM pool's status page (pm.status_path) in its JSON
 * form, either over HTTP through the web server (url) or straight from
 * the pool over FastCGI (fastcgi: address or socket path; fcgi.c), so a
 * broken web server is not taken for a broken pool. Async either way.
 *
 * Warnings: the listen queue above listen_queue_warning (requests wait for
 * a free child), and "max children reached" grown since the previous run
 * (pm.max_children was hit; the counter only grows while the pool runs).
 *
 * Actions: start, stop, restart through the service manager, reload
 * through the check's reload_command (webaction.c).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include <troika/plugin.h>

#include "fcgi.h"
#include "webaction.h"
#include "webfetch.h"
#include "webjson.h"

static const struct troika_option phpfpm_options[] = {
	{ .name = "url", .type = TROIKA_OPT_STRING,
	    .help = "URL of the status page through the web server" },
	{ .name = "fastcgi", .type = TROIKA_OPT_STRING,
	    .help = "the pool's FastCGI listen address (ip:port) or socket "
		"path" },
	{ .name = "status_path", .type = TROIKA_OPT_STRING,
	    .default_value = "/status",
	    .help = "the pool's pm.status_path (with fastcgi)" },
	{ .name = "listen_queue_warning", .type = TROIKA_OPT_INT,
	    .default_value = "0", .min = 0, .max = 1000000,
	    .help = "WARNING when more requests than this wait in the "
		"listen queue" },
	WEBFETCH_OPTIONS("64KiB"),
	WEBACTION_OPTION_RELOAD,
	{ .name = NULL },
};

/* The pool's numbers from one status page. */
struct phpfpm_status {
	char pool[64];
	char pm[32];
	double start_time;
	double start_since;
	double accepted;
	double listen_queue;
	double max_listen_queue;
	double listen_queue_len;
	double idle;
	double active;
	double total;
	double max_active;
	double max_children_reached;
	double slow_requests;
};

struct phpfpm_check {
	const struct troika_host *host;
	struct troika_instance *inst;
	char *url;          /* with the json query added, or NULL */
	struct webfetch *wf;
	struct fcgi *fc;    /* with fastcgi, or NULL */
	struct webaction *wa;
	struct troika_task *task;
	int64_t queue_warn;

	/* The previous page, to see max children reached grow. */
	int have_prev;
	double prev_start_time;
	double prev_max_children;
};

static void
phpfpm_instance_free(void *state)
{
	struct phpfpm_check *p = state;

	if (p == NULL)
		return;
	webfetch_free(p->wf);
	fcgi_free(p->fc);
	webaction_free(p->wa);
	free(p->url);
	free(p);
}

/* url with "json" added to its query: FPM then answers in JSON. */
static int
phpfpm_json_url(struct phpfpm_check *p, const char *url)
{
	CURLU *u;
	char *query = NULL, *full = NULL;
	int r = 0;

	if ((u = curl_url()) == NULL)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
		r = -EINVAL;
		goto out;
	}
	curl_url_get(u, CURLUPART_QUERY, &query, 0);
	if ((query == NULL || (strcmp(query, "json") != 0 &&
	    strncmp(query, "json&", 5) != 0 && strstr(query, "&json") ==
	    NULL)) && curl_url_set(u, CURLUPART_QUERY, "json",
	    CURLU_APPENDQUERY) != CURLUE_OK) {
		r = -ENOMEM;
		goto out;
	}
	if (curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK) {
		r = -ENOMEM;
		goto out;
	}
	if ((p->url = strdup(full)) == NULL)
		r = -ENOMEM;
out:
	curl_free(query);
	curl_free(full);
	curl_url_cleanup(u);
	return r;
}

static int
phpfpm_instance_new(const struct troika_host *host,
    struct troika_instance *inst, void **ret_state)
{
	struct phpfpm_check *p;
	int has_url = host->opt_isset(inst, "url");
	int has_fcgi = host->opt_isset(inst, "fastcgi");
	int r;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return -ENOMEM;
	p->host = host;
	p->inst = inst;
	if (has_url == has_fcgi) {
		host->log(inst, TROIKA_LOG_ERR, "set exactly one of url (the "
		    "status page through the web server) and fastcgi (the "
		    "pool's address)");
		r = -EINVAL;
		goto fail;
	}
	p->queue_warn = host->opt_int(inst, "listen_queue_warning");
	if (has_url) {
		const char *url = host->opt_string(inst, "url");

		if ((r = webfetch_check_url(host, inst, "url", url)) < 0 ||
		    (r = phpfpm_json_url(p, url)) < 0 ||
		    (r = webfetch_from_options(host, inst, &p->wf)) < 0)
			goto fail;
	} else {
		if ((r = fcgi_new(host, inst, host->opt_string(inst, "fastcgi"),
		    host->opt_string(inst, "status_path"),
		    (size_t)host->opt_size(inst, "max_body"), &p->fc)) < 0)
			goto fail;
	}
	if ((r = webaction_new(host, inst, &p->wa)) < 0)
		goto fail;
	*ret_state = p;
	return 0;

fail:
	phpfpm_instance_free(p);
	return r;
}

static void
phpfpm_report(struct phpfpm_check *p, enum troika_status status,
    enum troika_evidence evidence, const struct troika_sample *samples,
    size_t nsamples, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void
phpfpm_report(struct phpfpm_check *p, enum troika_status status,
    enum troika_evidence evidence, const struct troika_sample *samples,
    size_t nsamples, const char *fmt, ...)
{
	struct troika_task *task = p->task;
	struct troika_result res = {
		.size = sizeof(res),
		.status = status,
		.evidence = evidence,
		.samples = samples,
		.nsamples = nsamples,
	};
	char msg[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	res.message = msg;
	p->task = NULL;
	p->host->check_done(task, &res);
}

static const struct troika_sample phpfpm_down = {
	.name = "phpfpm_up",
	.help = "Whether the status page was read",
	.type = TROIKA_METRIC_GAUGE,
	.value = 0,
};

/* The fields every FPM since 5.3 reports; a page without them is wrong. */
static int
phpfpm_parse(const json_t *j, struct phpfpm_status *st, char *msg,
    size_t msglen)
{
	static const struct {
		const char *key;
		size_t off;
		int required;
	} nums[] = {
		{ "start time", offsetof(struct phpfpm_status, start_time), 1 },
		{ "start since", offsetof(struct phpfpm_status, start_since),
		    1 },
		{ "accepted conn", offsetof(struct phpfpm_status, accepted),
		    1 },
		{ "listen queue", offsetof(struct phpfpm_status, listen_queue),
		    1 },
		{ "max listen queue", offsetof(struct phpfpm_status,
		    max_listen_queue), 1 },
		{ "listen queue len", offsetof(struct phpfpm_status,
		    listen_queue_len), 1 },
		{ "idle processes", offsetof(struct phpfpm_status, idle), 1 },
		{ "active processes", offsetof(struct phpfpm_status, active),
		    1 },
		{ "total processes", offsetof(struct phpfpm_status, total), 1 },
		{ "max active processes", offsetof(struct phpfpm_status,
		    max_active), 1 },
		{ "max children reached", offsetof(struct phpfpm_status,
		    max_children_reached), 1 },
		{ "slow requests", offsetof(struct phpfpm_status,
		    slow_requests), 0 },
	};
	const char *s;

	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		double *v = (double *)(void *)((char *)st + nums[i].off);
		int r = webjson_number(j, nums[i].key, v);

		if (r == -ENOENT && !nums[i].required) {
			*v = NAN;
			continue;
		}
		if (r < 0) {
			snprintf(msg, msglen, "status page without a number "
			    "\"%s\": not PHP-FPM's status page?", nums[i].key);
			return -1;
		}
	}
	s = webjson_string(j, "pool");
	snprintf(st->pool, sizeof(st->pool), "%s", s != NULL ? s : "");
	s = webjson_string(j, "process manager");
	snprintf(st->pm, sizeof(st->pm), "%s", s != NULL ? s : "");
	return 0;
}

/* Add one sample, labelled with the pool, to s[*n]. */
static void
phpfpm_add(struct troika_sample *s, size_t *n, const struct troika_label *pool,
    const char *name, const char *help, enum troika_metric_type type,
    double v)
{
	s[(*n)++] = (struct troika_sample){ .name = name, .help = help,
	    .type = type, .value = v, .labels = pool, .nlabels = 1 };
}

static void
phpfpm_judge(struct phpfpm_check *p, const struct phpfpm_status *st)
{
	const struct troika_label pool[] = { { "pool", st->pool } };
	struct troika_sample s[13];
	size_t n = 0;
	double grew = 0;
	char warn[300] = "";
	size_t wl = 0;

	phpfpm_add(s, &n, pool, "phpfpm_up", "Whether the status page was "
	    "read", TROIKA_METRIC_GAUGE, 1);
	phpfpm_add(s, &n, pool, "phpfpm_start_since", "Seconds since the pool "
	    "started", TROIKA_METRIC_GAUGE, st->start_since);
	phpfpm_add(s, &n, pool, "phpfpm_accepted_connections_total",
	    "Requests the pool accepted", TROIKA_METRIC_COUNTER, st->accepted);
	phpfpm_add(s, &n, pool, "phpfpm_listen_queue", "Requests waiting for "
	    "a free process", TROIKA_METRIC_GAUGE, st->listen_queue);
	phpfpm_add(s, &n, pool, "phpfpm_max_listen_queue", "Most requests "
	    "ever waiting in the listen queue", TROIKA_METRIC_GAUGE,
	    st->max_listen_queue);
	phpfpm_add(s, &n, pool, "phpfpm_listen_queue_length", "Size of the "
	    "socket's listen queue", TROIKA_METRIC_GAUGE, st->listen_queue_len);
	phpfpm_add(s, &n, pool, "phpfpm_idle_processes", "Idle processes",
	    TROIKA_METRIC_GAUGE, st->idle);
	phpfpm_add(s, &n, pool, "phpfpm_active_processes", "Active processes",
	    TROIKA_METRIC_GAUGE, st->active);
	phpfpm_add(s, &n, pool, "phpfpm_total_processes", "Idle plus active "
	    "processes", TROIKA_METRIC_GAUGE, st->total);
	phpfpm_add(s, &n, pool, "phpfpm_max_active_processes", "Most "
	    "processes ever active at once", TROIKA_METRIC_GAUGE,
	    st->max_active);
	phpfpm_add(s, &n, pool, "phpfpm_max_children_reached_total", "Times "
	    "pm.max_children was reached", TROIKA_METRIC_COUNTER,
	    st->max_children_reached);
	if (!isnan(st->slow_requests))
		phpfpm_add(s, &n, pool, "phpfpm_slow_requests_total",
		    "Requests slower than request_slowlog_timeout",
		    TROIKA_METRIC_COUNTER, st->slow_requests);

	/* Another start time means the pool restarted: a new baseline. */
	if (p->have_prev && st->start_time == p->prev_start_time &&
	    st->max_children_reached > p->prev_max_children)
		grew = st->max_children_reached - p->prev_max_children;
	p->have_prev = 1;
	p->prev_start_time = st->start_time;
	p->prev_max_children = st->max_children_reached;

	if (st->listen_queue > (double)p->queue_warn)
		wl += (size_t)snprintf(warn + wl, sizeof(warn) - wl, "%s%.0f "
		    "requests wait in the listen queue (more than %lld)",
		    wl > 0 ? "; " : "", st->listen_queue,
		    (long long)p->queue_warn);
	if (grew > 0 && wl < sizeof(warn))
		wl += (size_t)snprintf(warn + wl, sizeof(warn) - wl, "%s"
		    "pm.max_children reached %.0f more times since the last "
		    "run", wl > 0 ? "; " : "", grew);
	if (wl > 0)
		phpfpm_report(p, TROIKA_STATUS_WARNING,
		    TROIKA_EVIDENCE_AMBIGUOUS, s, n, "pool %s: %s (%.0f "
		    "active, %.0f idle)", st->pool, warn, st->active, st->idle);
	else
		phpfpm_report(p, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE, s, n,
		    "pool %s: %.0f active, %.0f idle, %.0f total processes, "
		    "listen queue %.0f", st->pool, st->active, st->idle,
		    st->total, st->listen_queue);
}

/* A reply (HTTP or FastCGI) arrived: judge its status and body. */
static void
phpfpm_reply(struct phpfpm_check *p, long http, const char *body,
    size_t len, const char *via)
{
	struct phpfpm_status st;
	char msg[400];
	json_t *j;

	if (http == 401 || http == 403 || http == 404) {
		/* Something answered, but the check cannot read the page. */
		phpfpm_report(p, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    &phpfpm_down, 1, "HTTP %ld %s: is pm.status_path set to "
		    "that path, and are the credentials right?", http, via);
		return;
	}
	if (http != 200) {
		phpfpm_report(p, TROIKA_STATUS_CRITICAL,
		    TROIKA_EVIDENCE_AMBIGUOUS, &phpfpm_down, 1, "HTTP %ld %s",
		    http, via);
		return;
	}
	if ((j = webjson_object(body, len, msg, sizeof(msg))) == NULL) {
		phpfpm_report(p, TROIKA_STATUS_CRITICAL,
		    TROIKA_EVIDENCE_AMBIGUOUS, &phpfpm_down, 1, "%s", msg);
		return;
	}
	memset(&st, 0, sizeof(st));
	if (phpfpm_parse(j, &st, msg, sizeof(msg)) < 0) {
		json_decref(j);
		phpfpm_report(p, TROIKA_STATUS_CRITICAL,
		    TROIKA_EVIDENCE_AMBIGUOUS, &phpfpm_down, 1, "%s", msg);
		return;
	}
	json_decref(j);
	phpfpm_judge(p, &st);
}

static void
phpfpm_fetch_done_cb(struct webfetch *wf, void *arg)
{
	struct phpfpm_check *p = arg;
	enum troika_evidence ev;
	enum troika_status status;
	const char *body;
	size_t len;
	char msg[400];

	status = webfetch_outcome(wf, &ev, msg, sizeof(msg));
	if (status != TROIKA_STATUS_OK) {
		phpfpm_report(p, status, ev, &phpfpm_down, 1, "%s", msg);
		return;
	}
	body = webfetch_body(wf, &len);
	phpfpm_reply(p, webfetch_http_status(wf), body, len,
	    "from the status page");
}

static void
phpfpm_fcgi_done_cb(struct fcgi *fc, void *arg)
{
	struct phpfpm_check *p = arg;
	enum troika_evidence ev;
	enum troika_status status;
	const char *body;
	size_t len;
	char msg[400];

	status = fcgi_outcome(fc, &ev, msg, sizeof(msg));
	if (status != TROIKA_STATUS_OK) {
		phpfpm_report(p, status, ev, &phpfpm_down, 1, "%s", msg);
		return;
	}
	body = fcgi_body(fc, &len);
	phpfpm_reply(p, fcgi_status(fc), body, len, "from the pool");
}

static void
phpfpm_check(void *state, struct troika_task *task)
{
	struct phpfpm_check *p = state;
	int64_t ms = webfetch_budget_ms(p->host->task_remaining_ms(task));

	p->task = task;
	if (p->fc != NULL)
		fcgi_get(p->fc, ms, phpfpm_fcgi_done_cb, p);
	else
		webfetch_get(p->wf, p->url, ms, phpfpm_fetch_done_cb, p);
}

static void
phpfpm_action(void *state, struct troika_task *task, const char *name,
    const char *const *argv, size_t argc)
{
	struct phpfpm_check *p = state;

	(void)argv;
	(void)argc;
	webaction_run(p->wa, task, name);
}

static void
phpfpm_cancel(void *state, struct troika_task *task)
{
	struct phpfpm_check *p = state;

	if (p->task == task) {
		webfetch_abort(p->wf);
		fcgi_abort(p->fc);
		p->task = NULL;
	}
	webaction_cancel(p->wa, task);
}

static const struct troika_plugin phpfpm_plugin = {
	.abi_major = TROIKA_PLUGIN_ABI_MAJOR,
	.abi_minor = TROIKA_PLUGIN_ABI_MINOR,
	.size = sizeof(struct troika_plugin),
	.name = "phpfpm",
	.version = TROIKA_VERSION,
	.description = "PHP-FPM pool status over HTTP or FastCGI",
	.exec_model = TROIKA_EXEC_ASYNC,
	.options = phpfpm_options,
	.instance_new = phpfpm_instance_new,
	.instance_free = phpfpm_instance_free,
	.check = phpfpm_check,
	.cancel = phpfpm_cancel,
	.actions = webaction_actions,
	.action = phpfpm_action,
};

__attribute__((visibility("default"))) const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void);

const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void)
{
	return &phpfpm_plugin;
}
