/*
 * solr: the configured cores of a Solr node, from the core admin API
 * (GET <base_url>/admin/cores?action=STATUS: each core loaded, or listed
 * in initFailures; documents, index size, uptime) and each core's ping
 * handler (GET <base_url>/<core>/admin/ping: "status":"OK"). All
 * transfers run at once on the host's curl multi handle; the run ends
 * when all did. A missing core or a failed ping is CRITICAL.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <troika/plugin.h>

#include "webfetch.h"
#include "webjson.h"

#define SOLR_MAX_CORES 32
#define SOLR_CORE_NAME_MAX 100
/* Per core: ping status and six numbers; plus solr_up. */
#define SOLR_SAMPLES_PER_CORE 7

static const struct troika_option solr_options[] = {
	{ .name = "base_url", .type = TROIKA_OPT_STRING, .required = 1,
	    .help = "the node's Solr URL, e.g. http://127.0.0.1:8983/solr" },
	{ .name = "cores", .type = TROIKA_OPT_STRING_LIST, .required = 1,
	    .help = "cores that must be loaded and answer their ping" },
	WEBFETCH_OPTIONS("4MiB"),
	{ .name = NULL },
};

struct solr_core {
	char *name;
	char *ping_url;
	struct webfetch *ping;
};

struct solr_check {
	const struct troika_host *host;
	struct troika_instance *inst;
	char *status_url;
	struct webfetch *status;
	struct solr_core *cores;
	size_t ncores;
	struct troika_task *task;
	size_t pending; /* transfers of the run still out */
};

static void
solr_instance_free(void *state)
{
	struct solr_check *s = state;

	if (s == NULL)
		return;
	webfetch_free(s->status);
	for (size_t i = 0; i < s->ncores; i++) {
		webfetch_free(s->cores[i].ping);
		free(s->cores[i].name);
		free(s->cores[i].ping_url);
	}
	free(s->cores);
	free(s->status_url);
	free(s);
}

/* Solr's own rule for core names; it also keeps URLs unambiguous. */
static int
solr_core_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > SOLR_CORE_NAME_MAX || name[0] == '-' ||
	    strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return 0;
	for (; *name != '\0'; name++)
		if (!isalnum((unsigned char)*name) && *name != '_' &&
		    *name != '-' && *name != '.')
			return 0;
	return 1;
}

static int
solr_read_cores(struct solr_check *s, const char *base, int baselen)
{
	const struct troika_host *host = s->host;
	size_t n = host->opt_list_len(s->inst, "cores");
	int r;

	if (n == 0 || n > SOLR_MAX_CORES) {
		host->log(s->inst, TROIKA_LOG_ERR, "cores: list 1 to %d cores "
		    "(%zu given)", SOLR_MAX_CORES, n);
		return -EINVAL;
	}
	if ((s->cores = calloc(n, sizeof(*s->cores))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const char *name = host->opt_list_at(s->inst, "cores", i);
		struct solr_core *c = &s->cores[s->ncores];

		if (!solr_core_name_valid(name)) {
			host->log(s->inst, TROIKA_LOG_ERR, "cores: \"%s\" is "
			    "not a Solr core name (letters, digits, '.', '-', "
			    "'_')", name);
			return -EINVAL;
		}
		for (size_t j = 0; j < s->ncores; j++) {
			if (strcmp(s->cores[j].name, name) == 0) {
				host->log(s->inst, TROIKA_LOG_ERR, "cores: "
				    "\"%s\" is listed twice", name);
				return -EINVAL;
			}
		}
		s->ncores++;
		if ((c->name = strdup(name)) == NULL ||
		    asprintf(&c->ping_url, "%.*s/%s/admin/ping?wt=json",
		    baselen, base, name) < 0) {
			c->ping_url = NULL;
			return -ENOMEM;
		}
		if ((r = webfetch_from_options(host, s->inst, &c->ping)) < 0)
			return r;
	}
	return 0;
}

static int
solr_instance_new(const struct troika_host *host,
    struct troika_instance *inst, void **ret_state)
{
	struct solr_check *s;
	const char *base = host->opt_string(inst, "base_url");
	size_t len = strlen(base);
	int r;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	s->host = host;
	s->inst = inst;
	if ((r = webfetch_check_url(host, inst, "base_url", base)) < 0)
		goto fail;
	if (strpbrk(base, "?#") != NULL) {
		host->log(inst, TROIKA_LOG_ERR, "base_url \"%s\" must not have "
		    "a query", base);
		r = -EINVAL;
		goto fail;
	}
	while (len > 0 && base[len - 1] == '/')
		len--;
	if (asprintf(&s->status_url, "%.*s/admin/cores?action=STATUS&wt=json",
	    (int)len, base) < 0) {
		s->status_url = NULL;
		r = -ENOMEM;
		goto fail;
	}
	if ((r = webfetch_from_options(host, inst, &s->status)) < 0 ||
	    (r = solr_read_cores(s, base, (int)len)) < 0)
		goto fail;
	*ret_state = s;
	return 0;

fail:
	solr_instance_free(s);
	return r;
}

static void
solr_report(struct solr_check *s, enum troika_status status,
    enum troika_evidence evidence, const struct troika_sample *samples,
    size_t nsamples, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void
solr_report(struct solr_check *s, enum troika_status status,
    enum troika_evidence evidence, const struct troika_sample *samples,
    size_t nsamples, const char *fmt, ...)
{
	struct troika_task *task = s->task;
	struct troika_result res = {
		.size = sizeof(res),
		.status = status,
		.evidence = evidence,
		.samples = samples,
		.nsamples = nsamples,
	};
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	res.message = msg;
	s->task = NULL;
	s->host->check_done(task, &res);
}

/* Append to a growing, bounded message (cut with "..."). */
static void
solr_append(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
solr_append(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;
	int n;

	if (used + 4 >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len - used)
		snprintf(buf + len - 4, 4, "...");
}

/*
 * How the ping of core c went: 1 when Solr said "status":"OK", else 0
 * with the reason in why.
 */
static int
solr_ping_ok(const struct solr_core *c, char *why, size_t len,
    enum troika_evidence *ev)
{
	enum troika_status st;
	const char *body, *status;
	const json_t *err;
	char msg[300];
	size_t blen;
	long http;
	json_t *j;
	int ok = 0;

	*ev = TROIKA_EVIDENCE_AMBIGUOUS;
	st = webfetch_outcome(c->ping, ev, msg, sizeof(msg));
	if (st != TROIKA_STATUS_OK) {
		snprintf(why, len, "%s", msg);
		return 0;
	}
	*ev = TROIKA_EVIDENCE_AMBIGUOUS;
	http = webfetch_http_status(c->ping);
	body = webfetch_body(c->ping, &blen);
	j = webjson_object(body, blen, msg, sizeof(msg));
	if (http != 200) {
		/* Solr explains in {"error":{"msg":...,"code":...}}. */
		err = json_object_get(j, "error");
		if (webjson_string(err, "msg") != NULL)
			snprintf(why, len, "HTTP %ld: %s", http,
			    webjson_string(err, "msg"));
		else
			snprintf(why, len, "HTTP %ld", http);
	} else if (j == NULL) {
		snprintf(why, len, "%s", msg);
	} else if ((status = webjson_string(j, "status")) == NULL) {
		snprintf(why, len, "no status in the ping reply");
	} else if (strcmp(status, "OK") != 0) {
		snprintf(why, len, "status \"%.40s\"", status);
	} else {
		ok = 1;
	}
	json_decref(j);
	return ok;
}

/* Everything the run found, built up by solr_judge_core(). */
struct solr_findings {
	struct troika_sample *samples;
	size_t n;
	struct troika_label (*labels)[1];
	char problems[700];
	char summary[700];
	size_t bad;
	enum troika_evidence evidence;
};

static void
solr_add(struct solr_findings *fd, size_t core, const char *name,
    const char *help, double v)
{
	fd->samples[fd->n++] = (struct troika_sample){ .name = name,
	    .help = help, .type = TROIKA_METRIC_GAUGE, .value = v,
	    .labels = fd->labels[core], .nlabels = 1 };
}

static void
solr_problem(struct solr_findings *fd, enum troika_evidence ev,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
solr_problem(struct solr_findings *fd, enum troika_evidence ev,
    const char *fmt, ...)
{
	char line[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	solr_append(fd->problems, sizeof(fd->problems), "%s%s",
	    fd->bad > 0 ? "; " : "", line);
	fd->bad++;
	/* The surest piece of evidence wins. */
	if (ev == TROIKA_EVIDENCE_CERTAIN)
		fd->evidence = ev;
}

/* One core: loaded (and its numbers), failed to load, or missing. */
static void
solr_judge_core(struct solr_check *s, struct solr_findings *fd, size_t i,
    const json_t *status, const json_t *failures)
{
	const struct solr_core *c = &s->cores[i];
	const json_t *core = json_object_get(status, c->name);
	const json_t *index = json_object_get(core, "index");
	const char *failure = webjson_string(failures, c->name);
	enum troika_evidence ev;
	char why[300];
	double v;
	int ok;

	fd->labels[i][0] = (struct troika_label){ "core", c->name };
	ok = solr_ping_ok(c, why, sizeof(why), &ev);
	solr_add(fd, i, "solr_ping_status", "1 when the core's ping handler "
	    "answered status OK", ok);
	if (failure != NULL) {
		char shown[160];

		webfetch_excerpt(failure, strlen(failure), shown,
		    sizeof(shown));
		solr_problem(fd, TROIKA_EVIDENCE_AMBIGUOUS, "core %s failed to "
		    "load: %s", c->name, shown);
		return;
	}
	if (!json_is_object(core) || json_object_size(core) == 0) {
		solr_problem(fd, TROIKA_EVIDENCE_AMBIGUOUS, "core %s is not "
		    "loaded", c->name);
		return;
	}
	if (json_is_object(index)) {
		if (webjson_number(index, "numDocs", &v) == 0)
			solr_add(fd, i, "solr_core_num_docs", "Documents in "
			    "the core's index", v);
		if (webjson_number(index, "maxDoc", &v) == 0)
			solr_add(fd, i, "solr_core_max_docs", "Documents "
			    "including deleted ones not yet merged away", v);
		if (webjson_number(index, "deletedDocs", &v) == 0)
			solr_add(fd, i, "solr_core_deleted_docs", "Deleted "
			    "documents not yet merged away", v);
		if (webjson_number(index, "sizeInBytes", &v) == 0)
			solr_add(fd, i, "solr_core_index_size_bytes", "Size "
			    "of the core's index", v);
		if (webjson_number(index, "segmentCount", &v) == 0)
			solr_add(fd, i, "solr_core_segments", "Segments "
			    "in the core's index", v);
	}
	if (webjson_number(core, "uptime", &v) == 0)
		solr_add(fd, i, "solr_core_uptime_seconds", "Seconds since the "
		    "core was loaded", v / 1000);
	if (!ok) {
		solr_problem(fd, ev, "ping of core %s failed: %s", c->name,
		    why);
		return;
	}
	if (webjson_number(index, "numDocs", &v) == 0)
		solr_append(fd->summary, sizeof(fd->summary), "%s%s %.0f docs",
		    i > 0 ? ", " : "", c->name, v);
	else
		solr_append(fd->summary, sizeof(fd->summary), "%s%s",
		    i > 0 ? ", " : "", c->name);
}

/* The STATUS reply is read; judge every core. */
static void
solr_judge(struct solr_check *s, const json_t *j)
{
	const json_t *status = json_object_get(j, "status");
	const json_t *failures = json_object_get(j, "initFailures");
	struct solr_findings fd = { .evidence = TROIKA_EVIDENCE_AMBIGUOUS };
	char excerpt[100];

	if (!json_is_object(status)) {
		char *text = json_dumps(j, JSON_COMPACT);
		struct troika_sample down = { .name = "solr_up", .help =
		    "Whether the core status was read", .type =
		    TROIKA_METRIC_GAUGE, .value = 0 };

		webfetch_excerpt(text != NULL ? text : "", text != NULL ?
		    strlen(text) : 0, excerpt, sizeof(excerpt));
		free(text);
		solr_report(s, TROIKA_STATUS_CRITICAL,
		    TROIKA_EVIDENCE_AMBIGUOUS, &down, 1, "not a core STATUS "
		    "reply: %s", excerpt);
		return;
	}
	fd.samples = calloc(1 + s->ncores * SOLR_SAMPLES_PER_CORE,
	    sizeof(*fd.samples));
	fd.labels = calloc(s->ncores, sizeof(*fd.labels));
	if (fd.samples == NULL || fd.labels == NULL) {
		free(fd.samples);
		free(fd.labels);
		solr_report(s, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    NULL, 0, "out of memory");
		return;
	}
	fd.samples[fd.n++] = (struct troika_sample){ .name = "solr_up",
	    .help = "Whether the core status was read", .type =
	    TROIKA_METRIC_GAUGE, .value = 1 };
	for (size_t i = 0; i < s->ncores; i++)
		solr_judge_core(s, &fd, i, status, failures);
	if (fd.bad > 0)
		solr_report(s, TROIKA_STATUS_CRITICAL, fd.evidence, fd.samples,
		    fd.n, "%s", fd.problems);
	else
		solr_report(s, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE,
		    fd.samples, fd.n, "%zu core%s OK: %s", s->ncores,
		    s->ncores > 1 ? "s" : "", fd.summary);
	free(fd.samples);
	free(fd.labels);
}

/* All transfers ended. */
static void
solr_judge_run(struct solr_check *s)
{
	struct troika_sample down = { .name = "solr_up", .help = "Whether the "
	    "core status was read", .type = TROIKA_METRIC_GAUGE, .value = 0 };
	enum troika_evidence ev;
	enum troika_status st;
	const char *body;
	char msg[400];
	size_t len;
	long http;
	json_t *j;

	st = webfetch_outcome(s->status, &ev, msg, sizeof(msg));
	if (st != TROIKA_STATUS_OK) {
		solr_report(s, st, ev, &down, 1, "%s", msg);
		return;
	}
	http = webfetch_http_status(s->status);
	body = webfetch_body(s->status, &len);
	if (http == 401 || http == 403) {
		/* It answered, so it is up; a restart would not help. */
		solr_report(s, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    &down, 1, "HTTP %ld from the core admin API: user and "
		    "password were refused, or the user may not read it", http);
		return;
	}
	if (http != 200) {
		webfetch_excerpt(body, len, msg, 100);
		solr_report(s, TROIKA_STATUS_CRITICAL,
		    TROIKA_EVIDENCE_AMBIGUOUS, &down, 1, "HTTP %ld from the "
		    "core admin API: \"%s\"", http, msg);
		return;
	}
	if ((j = webjson_object(body, len, msg, sizeof(msg))) == NULL) {
		solr_report(s, TROIKA_STATUS_CRITICAL,
		    TROIKA_EVIDENCE_AMBIGUOUS, &down, 1, "%s", msg);
		return;
	}
	solr_judge(s, j);
	json_decref(j);
}

static void
solr_fetch_done_cb(struct webfetch *wf, void *arg)
{
	struct solr_check *s = arg;

	(void)wf;
	if (--s->pending == 0)
		solr_judge_run(s);
}

static void
solr_check(void *state, struct troika_task *task)
{
	struct solr_check *s = state;
	int64_t ms = webfetch_budget_ms(s->host->task_remaining_ms(task));

	s->task = task;
	s->pending = 1 + s->ncores;
	webfetch_get(s->status, s->status_url, ms, solr_fetch_done_cb, s);
	for (size_t i = 0; i < s->ncores; i++)
		webfetch_get(s->cores[i].ping, s->cores[i].ping_url, ms,
		    solr_fetch_done_cb, s);
}

static void
solr_cancel(void *state, struct troika_task *task)
{
	struct solr_check *s = state;

	if (s->task != task)
		return;
	webfetch_abort(s->status);
	for (size_t i = 0; i < s->ncores; i++)
		webfetch_abort(s->cores[i].ping);
	s->pending = 0;
	s->task = NULL;
}

static const struct troika_plugin solr_plugin = {
	.abi_major = TROIKA_PLUGIN_ABI_MAJOR,
	.abi_minor = TROIKA_PLUGIN_ABI_MINOR,
	.size = sizeof(struct troika_plugin),
	.name = "solr",
	.version = TROIKA_VERSION,
	.description = "Solr cores: loaded, ping, documents, index size",
	.exec_model = TROIKA_EXEC_ASYNC,
	.options = solr_options,
	.instance_new = solr_instance_new,
	.instance_free = solr_instance_free,
	.check = solr_check,
	.cancel = solr_cancel,
};

__attribute__((visibility("default"))) const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void);

const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void)
{
	return &solr_plugin;
}
