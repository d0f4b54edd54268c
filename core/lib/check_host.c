#include "check_host.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "conf.h"
#include "curlm.h"
#include "emit.h"
#include "log.h"
#include "metrics.h"
#include "plugin_set.h"
#include "spawn.h"
#include "status.h"
#include "svc.h"
#include "worker.h"

/* Bounds on what one result may carry; more is cut and counted. */
#define RESULT_MAX_SAMPLES 1000
#define RESULT_MAX_LABELS 16
#define RESULT_MAX_MESSAGE 1024
#define RESULT_MAX_FIELDS 64
#define RESULT_MAX_FIELD_VALUE 4096
#define WORKER_QUEUE_MAX 4096
/* Distinct intervals and timeouts given O(1) timer queues (libevent: 256). */
#define COMMON_TIMEOUTS_MAX 64

static const double check_duration_bounds[] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5, 10, 30,
};

struct sample_copy {
	char *name;
	char *help;
	enum troika_metric_type type;
	double value;
	struct troika_label *labels; /* names and values owned */
	size_t nlabels;
};

struct result_copy {
	enum troika_status status;
	enum troika_evidence evidence;
	char *message;
	struct sample_copy *samples;
	size_t nsamples;
	size_t ndropped; /* samples refused (bad names, over the limit) */
	struct troika_label *fields; /* names and values owned */
	size_t nfields;
};

/* A check's own copy of its options (the agent_conf may go away). */
struct opt_copy {
	char *name;
	enum troika_option_type type;
	int isset;
	int hasvalue;
	char *str;
	int64_t num;
	char **list;
	size_t nlist;
	char **keys;
	char **vals;
	size_t nmap;
};

enum task_state {
	TASK_RUNNING,
	/* Past its deadline, result recorded; waiting for the late end. */
	TASK_ABANDONED,
};

struct troika_task {
	struct troika_instance *check; /* NULL once the check is gone */
	struct check_host *host;
	enum task_state state;
	int blocking;
	int64_t started_us;  /* monotonic */
	int64_t deadline_us; /* monotonic */
	struct event *deadline;
	/*
	 * Blocking plugins: check_done() on the worker thread fills this;
	 * the loop reads it after the job's done callback. When the check
	 * was freed while the job ran, the task keeps what instance_free
	 * needs.
	 */
	int has_result;
	struct result_copy result;
	struct plugin *orphan_plugin;
	void *orphan_state;

	/* An action rather than a check run. */
	int is_action;
	/* start/stop/restart run by the host's service manager, no plugin. */
	int builtin_service;
	char *action;
	char **argv;
	size_t argc;
	int64_t timeout_ms;
	check_action_done_fn done; /* NULL once reported or forgotten */
	void *done_arg;
};

struct troika_instance {
	struct check_host *host;
	char *name;
	char *plugin_name;
	char *canonical;
	int64_t interval_ms;
	int64_t timeout_ms;
	int64_t action_timeout_ms;
	struct opt_copy *opts;
	size_t nopts;
	struct svc_spec service;
	struct service_call *service_calls; /* in progress; cancelled with us */

	struct plugin *plugin; /* referenced; NULL when not loaded */
	void *state;           /* plugin instance; NULL if not created */
	int runnable;

	struct troika_task *pending_action; /* waits for the running check */
	struct event *first;  /* one-shot: the spread offset */
	struct event *ticker; /* persistent: every interval after that */
	struct troika_task *task;

	int has_result;
	struct result_copy last;
	uint64_t runs[CHECK_RESULT_COUNT];
	uint64_t overruns;
	uint64_t samples_dropped;
	int warned_samples;
	double last_run_time; /* wall clock, seconds */
	struct metrics_histogram duration;
};

struct check_host {
	struct event_base *base;
	pthread_t loop_thread; /* where the host's own state may be touched */
	struct worker_pool *pool;
	struct curlm *curlm;
	struct troika_instance **checks; /* in configuration order */
	size_t nchecks;
	struct {
		int64_t ms;
		const struct timeval *tv;
	} common[COMMON_TIMEOUTS_MAX];
	size_t ncommon;
};

static const struct troika_host host_table;
/* The host's curlm, for curl_remove(), whose ABI carries no instance. */
static struct curlm *current_curlm;
static atomic_size_t tasks_alive;

static const char *const check_result_names[CHECK_RESULT_COUNT] = {
	"ok", "warning", "critical", "unknown", "timeout",
};

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static double
wall_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct timeval
us_to_tv(int64_t us)
{
	struct timeval tv;

	if (us < 0)
		us = 0;
	tv.tv_sec = us / 1000000;
	tv.tv_usec = us % 1000000;
	return tv;
}

/* ---- result copies ---- */

static void
result_clear(struct result_copy *r)
{
	free(r->message);
	for (size_t i = 0; i < r->nsamples; i++) {
		struct sample_copy *s = &r->samples[i];
		free(s->name);
		free(s->help);
		for (size_t j = 0; j < s->nlabels; j++) {
			free((char *)(uintptr_t)s->labels[j].name);
			free((char *)(uintptr_t)s->labels[j].value);
		}
		free(s->labels);
	}
	free(r->samples);
	for (size_t i = 0; i < r->nfields; i++) {
		free((char *)(uintptr_t)r->fields[i].name);
		free((char *)(uintptr_t)r->fields[i].value);
	}
	free(r->fields);
	memset(r, 0, sizeof(*r));
}

static int
sample_name_allowed(const char *name)
{
	return name != NULL && metrics_name_valid(name) &&
	    strncmp(name, "troika_check_", 13) != 0 &&
	    strncmp(name, "troika_plugin_", 14) != 0;
}

static int
sample_labels_allowed(const struct troika_sample *s)
{
	if (s->nlabels > RESULT_MAX_LABELS || (s->nlabels > 0 && s->labels == NULL))
		return 0;
	for (size_t i = 0; i < s->nlabels; i++) {
		const char *n = s->labels[i].name;
		if (n == NULL || s->labels[i].value == NULL ||
		    !metrics_label_name_valid(n) || strcmp(n, "check") == 0 ||
		    strcmp(n, "plugin") == 0)
			return 0;
		for (size_t j = 0; j < i; j++)
			if (strcmp(n, s->labels[j].name) == 0)
				return 0;
	}
	return s->type == TROIKA_METRIC_GAUGE || s->type == TROIKA_METRIC_COUNTER;
}

/* The first line of a message, at most RESULT_MAX_MESSAGE bytes. */
static char *
message_copy(const char *m)
{
	size_t n;

	if (m == NULL)
		return NULL;
	n = strcspn(m, "\r\n");
	if (n > RESULT_MAX_MESSAGE)
		n = RESULT_MAX_MESSAGE;
	return strndup(m, n);
}

/* Text facts of a result; bad or excess fields are dropped and counted. */
static int
result_copy_fields(struct result_copy *r, const struct troika_label *f, size_t n)
{
	if (n > RESULT_MAX_FIELDS) {
		r->ndropped += n - RESULT_MAX_FIELDS;
		n = RESULT_MAX_FIELDS;
	}
	if ((r->fields = calloc(n, sizeof(*r->fields))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct troika_label *d = &r->fields[r->nfields];

		if (f[i].name == NULL || f[i].value == NULL ||
		    !metrics_label_name_valid(f[i].name)) {
			r->ndropped++;
			continue;
		}
		d->name = strdup(f[i].name);
		d->value = strndup(f[i].value, RESULT_MAX_FIELD_VALUE);
		r->nfields++;
		if (d->name == NULL || d->value == NULL)
			return -ENOMEM;
	}
	return 0;
}

/*
 * Copy a plugin's result. Reads only the fields the plugin's struct has.
 * Safe on any thread. Returns 0 or -ENOMEM (r then holds what was copied).
 */
static int
result_copy_from(struct result_copy *r, const struct troika_result *res)
{
	size_t have = res != NULL ? res->size : 0;

	memset(r, 0, sizeof(*r));
	if (res == NULL || have < offsetof(struct troika_result, message) +
	    sizeof(res->message)) {
		r->status = TROIKA_STATUS_UNKNOWN;
		r->message = strdup("plugin returned an unreadable result");
		return r->message != NULL ? 0 : -ENOMEM;
	}
	r->status = res->status;
	if (r->status < TROIKA_STATUS_OK || r->status > TROIKA_STATUS_UNKNOWN)
		r->status = TROIKA_STATUS_UNKNOWN;
	r->evidence = res->evidence;
	if (r->evidence < TROIKA_EVIDENCE_NONE ||
	    r->evidence > TROIKA_EVIDENCE_AMBIGUOUS)
		r->evidence = TROIKA_EVIDENCE_NONE;
	if (res->message != NULL && (r->message = message_copy(res->message)) == NULL)
		return -ENOMEM;
	if (have >= offsetof(struct troika_result, nfields) + sizeof(res->nfields) &&
	    res->nfields > 0 && res->fields != NULL) {
		int r0 = result_copy_fields(r, res->fields, res->nfields);
		if (r0 < 0)
			return r0;
	}
	if (have < offsetof(struct troika_result, nsamples) + sizeof(res->nsamples) ||
	    res->nsamples == 0 || res->samples == NULL)
		return 0;

	size_t n = res->nsamples;
	if (n > RESULT_MAX_SAMPLES) {
		r->ndropped += n - RESULT_MAX_SAMPLES;
		n = RESULT_MAX_SAMPLES;
	}
	if ((r->samples = calloc(n, sizeof(*r->samples))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct troika_sample *s = &res->samples[i];
		struct sample_copy *d = &r->samples[r->nsamples];

		if (!sample_name_allowed(s->name) || !sample_labels_allowed(s)) {
			r->ndropped++;
			continue;
		}
		d->type = s->type;
		d->value = s->value;
		if ((d->name = strdup(s->name)) == NULL)
			return -ENOMEM;
		r->nsamples++;
		if (s->help != NULL && (d->help = message_copy(s->help)) == NULL)
			return -ENOMEM;
		if (s->nlabels == 0)
			continue;
		if ((d->labels = calloc(s->nlabels, sizeof(*d->labels))) == NULL)
			return -ENOMEM;
		for (size_t j = 0; j < s->nlabels; j++) {
			d->labels[j].name = strdup(s->labels[j].name);
			d->labels[j].value = strdup(s->labels[j].value);
			d->nlabels++;
			if (d->labels[j].name == NULL || d->labels[j].value == NULL)
				return -ENOMEM;
		}
	}
	return 0;
}

/* ---- options ---- */

static void
opts_free(struct opt_copy *opts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(opts[i].name);
		free(opts[i].str);
		conf_strv_free(opts[i].list, opts[i].nlist);
		conf_strv_free(opts[i].keys, opts[i].nmap);
		conf_strv_free(opts[i].vals, opts[i].nmap);
	}
	free(opts);
}

static char **
strv_dup(char *const *v, size_t n)
{
	char **d;

	if (n == 0)
		return NULL;
	if ((d = calloc(n, sizeof(*d))) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if ((d[i] = strdup(v[i])) == NULL) {
			conf_strv_free(d, i);
			return NULL;
		}
	}
	return d;
}

static int
opts_copy(const struct conf_check *cc, struct opt_copy **ret, size_t *ret_n)
{
	struct opt_copy *o;

	*ret = NULL;
	*ret_n = 0;
	if (cc->nopts == 0)
		return 0;
	if ((o = calloc(cc->nopts, sizeof(*o))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < cc->nopts; i++) {
		const struct conf_value *v = &cc->opts[i];
		o[i].type = v->type;
		o[i].isset = v->isset;
		o[i].hasvalue = v->hasvalue;
		o[i].num = v->num;
		o[i].nlist = v->nlist;
		o[i].nmap = v->nmap;
		o[i].name = strdup(v->name);
		o[i].str = v->str ? strdup(v->str) : NULL;
		o[i].list = strv_dup(v->list, v->nlist);
		o[i].keys = strv_dup(v->keys, v->nmap);
		o[i].vals = strv_dup(v->vals, v->nmap);
		if (o[i].name == NULL || (v->str && o[i].str == NULL) ||
		    (v->nlist && o[i].list == NULL) ||
		    (v->nmap && (o[i].keys == NULL || o[i].vals == NULL))) {
			/* Partially copied arrays are freed with their sizes. */
			if (o[i].list == NULL)
				o[i].nlist = 0;
			if (o[i].keys == NULL || o[i].vals == NULL) {
				conf_strv_free(o[i].keys, o[i].keys ? o[i].nmap : 0);
				conf_strv_free(o[i].vals, o[i].vals ? o[i].nmap : 0);
				o[i].keys = o[i].vals = NULL;
				o[i].nmap = 0;
			}
			opts_free(o, i + 1);
			return -ENOMEM;
		}
	}
	*ret = o;
	*ret_n = cc->nopts;
	return 0;
}

static const struct opt_copy *
opt_find(const struct troika_instance *c, const char *name, enum troika_option_type type)
{
	for (size_t i = 0; i < c->nopts; i++)
		if (strcmp(c->opts[i].name, name) == 0)
			return c->opts[i].hasvalue && c->opts[i].type == type ?
			    &c->opts[i] : NULL;
	return NULL;
}

/* ---- the host table ---- */

static void
host_log(struct troika_instance *c, enum troika_log_level level, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* Plugins may log from worker threads; the name is immutable. */
	if (c != NULL)
		log_msg((int)level, "check=%s plugin=%s: %s", c->name,
		    c->plugin_name, line);
	else
		log_msg((int)level, "plugin: %s", line);
}

static struct event_base *
host_event_base(struct troika_instance *c)
{
	return c->host->base;
}

static const char *
host_instance_name(struct troika_instance *c)
{
	return c->name;
}

static int
host_opt_isset(struct troika_instance *c, const char *name)
{
	for (size_t i = 0; i < c->nopts; i++)
		if (strcmp(c->opts[i].name, name) == 0)
			return c->opts[i].isset;
	return 0;
}

static const char *
host_opt_string(struct troika_instance *c, const char *name)
{
	const struct opt_copy *o = opt_find(c, name, TROIKA_OPT_STRING);

	return o ? o->str : NULL;
}

static int64_t
host_opt_num(struct troika_instance *c, const char *name, enum troika_option_type type)
{
	const struct opt_copy *o = opt_find(c, name, type);

	return o ? o->num : 0;
}

static int64_t
host_opt_int(struct troika_instance *c, const char *name)
{
	return host_opt_num(c, name, TROIKA_OPT_INT);
}

static int
host_opt_bool(struct troika_instance *c, const char *name)
{
	return (int)host_opt_num(c, name, TROIKA_OPT_BOOL);
}

static int64_t
host_opt_duration_ms(struct troika_instance *c, const char *name)
{
	return host_opt_num(c, name, TROIKA_OPT_DURATION);
}

static int64_t
host_opt_size(struct troika_instance *c, const char *name)
{
	return host_opt_num(c, name, TROIKA_OPT_SIZE);
}

static size_t
host_opt_list_len(struct troika_instance *c, const char *name)
{
	const struct opt_copy *o = opt_find(c, name, TROIKA_OPT_STRING_LIST);

	return o ? o->nlist : 0;
}

static const char *
host_opt_list_at(struct troika_instance *c, const char *name, size_t i)
{
	const struct opt_copy *o = opt_find(c, name, TROIKA_OPT_STRING_LIST);

	return o && i < o->nlist ? o->list[i] : NULL;
}

static size_t
host_opt_map_len(struct troika_instance *c, const char *name)
{
	const struct opt_copy *o = opt_find(c, name, TROIKA_OPT_STRING_MAP);

	return o ? o->nmap : 0;
}

static const char *
host_opt_map_key(struct troika_instance *c, const char *name, size_t i)
{
	const struct opt_copy *o = opt_find(c, name, TROIKA_OPT_STRING_MAP);

	return o && i < o->nmap ? o->keys[i] : NULL;
}

static const char *
host_opt_map_value(struct troika_instance *c, const char *name, size_t i)
{
	const struct opt_copy *o = opt_find(c, name, TROIKA_OPT_STRING_MAP);

	return o && i < o->nmap ? o->vals[i] : NULL;
}

static void task_finish(struct troika_task *t, struct result_copy *r, int timed_out);
static int host_service_control(struct troika_instance *c, const char *op,
    int64_t timeout_ms, troika_service_done_cb done, void *arg);
static void service_call_cancel_arg(struct troika_instance *c, void *arg);
static const struct timeval *host_timeout(struct check_host *h, int64_t ms,
    struct timeval *plain);
static void task_free(struct troika_task *t);

static void
host_check_done(struct troika_task *t, const struct troika_result *res)
{
	if (t->blocking) {
		/* Worker thread: keep it until the job's done callback. */
		if (!t->has_result) {
			result_copy_from(&t->result, res);
			t->has_result = 1;
		}
		return;
	}
	if (t->state == TASK_ABANDONED) {
		/* A late end of a timed-out run of a plugin without cancel(). */
		if (t->check != NULL && t->check->task == t)
			t->check->task = NULL;
		task_free(t);
		return;
	}
	struct result_copy r;
	result_copy_from(&r, res);
	task_finish(t, &r, 0);
}

static int64_t
host_task_remaining_ms(struct troika_task *t)
{
	int64_t left = t->deadline_us - now_us();

	return left > 0 ? (left + 999) / 1000 : 0;
}

static void *
host_spawn(struct troika_instance *c, const char *const *argv, int64_t timeout_ms,
    size_t max_output, troika_spawn_done_cb done, void *arg)
{
	return spawn_start(c->host->base, argv, timeout_ms, max_output, done, arg);
}

static void
host_spawn_cancel(void *handle)
{
	spawn_cancel(handle);
}

static int
host_curl_add(struct troika_instance *c, void *easy, troika_curl_done_cb done, void *arg)
{
	struct check_host *h = c->host;

	/*
	 * Made on first use: curl's global init brings up OpenSSL, which
	 * costs ~5 MiB of resident memory an agent without HTTP checks
	 * need not pay (docs/benchmarks.md).
	 */
	if (h->curlm == NULL) {
		if ((h->curlm = curlm_new(h->base)) == NULL)
			return -ENOMEM;
		current_curlm = h->curlm;
	}
	return curlm_add(h->curlm, easy, done, arg);
}

static void
host_curl_remove(void *easy)
{
	if (current_curlm != NULL)
		curlm_remove(current_curlm, easy);
}

/* One host->service_control() in progress. */
struct service_call {
	struct troika_instance *check;
	struct svc_op *op;
	troika_service_done_cb done;
	void *arg;
	struct service_call *next;
};

static void
service_call_unlink(struct service_call *sc)
{
	struct service_call **pp;

	for (pp = &sc->check->service_calls; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == sc) {
			*pp = sc->next;
			return;
		}
	}
}

static void
service_call_done_cb(int ok, const char *message, void *arg)
{
	struct service_call *sc = arg;
	troika_service_done_cb done = sc->done;
	void *done_arg = sc->arg;

	log_msg(ok ? LOG_INFO : LOG_WARNING, "check=%s: service: %s",
	    sc->check->name, message);
	service_call_unlink(sc);
	free(sc);
	done(ok, message, done_arg);
}

static int
host_service_control(struct troika_instance *c, const char *op,
    int64_t timeout_ms, troika_service_done_cb done, void *arg)
{
	struct service_call *sc;
	int err = 0;

	if (c->service.backend == SVC_NONE)
		return -ENOENT;
	if (!pthread_equal(pthread_self(), c->host->loop_thread)) {
		/* A blocking plugin's worker: the host's lists are the loop's. */
		log_warnx("check=%s plugin=%s: service_control called off the "
		    "loop thread; refused (use the host's own start/stop/restart)",
		    c->name, c->plugin_name);
		return -EPERM;
	}
	if ((sc = calloc(1, sizeof(*sc))) == NULL)
		return -ENOMEM;
	sc->check = c;
	sc->done = done;
	sc->arg = arg;
	log_info("check=%s: service %s", c->name, op);
	sc->op = svc_control(c->host->base, &c->service, op,
	    timeout_ms > 0 ? timeout_ms : c->timeout_ms, service_call_done_cb,
	    sc, &err);
	if (sc->op == NULL) {
		free(sc);
		return err;
	}
	sc->next = c->service_calls;
	c->service_calls = sc;
	return 0;
}

/* Cancel the service call made for arg (a built-in action's task). */
static void
service_call_cancel_arg(struct troika_instance *c, void *arg)
{
	for (struct service_call *sc = c->service_calls; sc != NULL; sc = sc->next) {
		if (sc->arg == arg) {
			svc_op_cancel(sc->op);
			service_call_unlink(sc);
			free(sc);
			return;
		}
	}
}

static void
service_calls_cancel(struct troika_instance *c)
{
	struct service_call *sc, *next;

	for (sc = c->service_calls; sc != NULL; sc = next) {
		next = sc->next;
		svc_op_cancel(sc->op);
		free(sc);
	}
	c->service_calls = NULL;
}

static void
service_spec_free(struct svc_spec *s)
{
	conf_strv_free(s->start, s->nstart);
	conf_strv_free(s->stop, s->nstop);
	conf_strv_free(s->restart, s->nrestart);
	free(s->unit);
	memset(s, 0, sizeof(*s));
}

static int
service_spec_copy(struct svc_spec *d, const struct conf_service *cs)
{
	memset(d, 0, sizeof(*d));
	if (cs->manager == CONF_SERVICE_NONE)
		return 0;
	if (cs->manager == CONF_SERVICE_SYSTEMD) {
		d->backend = SVC_SYSTEMD;
		return (d->unit = strdup(cs->unit)) != NULL ? 0 : -ENOMEM;
	}
	d->backend = SVC_EXEC;
	d->start = strv_dup(cs->start, cs->nstart);
	d->nstart = d->start ? cs->nstart : 0;
	d->stop = strv_dup(cs->stop, cs->nstop);
	d->nstop = d->stop ? cs->nstop : 0;
	d->restart = strv_dup(cs->restart, cs->nrestart);
	d->nrestart = d->restart ? cs->nrestart : 0;
	if (d->nstart != cs->nstart || d->nstop != cs->nstop ||
	    d->nrestart != cs->nrestart) {
		service_spec_free(d);
		return -ENOMEM;
	}
	return 0;
}

static const struct troika_host host_table = {
	.abi_major = TROIKA_PLUGIN_ABI_MAJOR,
	.abi_minor = TROIKA_PLUGIN_ABI_MINOR,
	.size = sizeof(struct troika_host),
	.log = host_log,
	.event_base = host_event_base,
	.instance_name = host_instance_name,
	.opt_isset = host_opt_isset,
	.opt_string = host_opt_string,
	.opt_int = host_opt_int,
	.opt_bool = host_opt_bool,
	.opt_duration_ms = host_opt_duration_ms,
	.opt_size = host_opt_size,
	.opt_list_len = host_opt_list_len,
	.opt_list_at = host_opt_list_at,
	.opt_map_len = host_opt_map_len,
	.opt_map_key = host_opt_map_key,
	.opt_map_value = host_opt_map_value,
	.check_done = host_check_done,
	.task_remaining_ms = host_task_remaining_ms,
	.spawn = host_spawn,
	.spawn_cancel = host_spawn_cancel,
	.curl_add = host_curl_add,
	.curl_remove = host_curl_remove,
	.service_control = host_service_control,
};

/* ---- results ---- */

static void
check_record(struct troika_instance *c, struct result_copy *r, int timed_out,
    double duration)
{
	int old = c->has_result ? (int)c->last.status : -1;
	enum check_result kind;

	kind = timed_out ? CHECK_RESULT_TIMEOUT : (enum check_result)r->status;
	c->runs[kind]++;
	c->samples_dropped += r->ndropped;
	if (r->ndropped > 0 && !c->warned_samples) {
		/* Once per check: a plugin bug, not worth a line per run. */
		log_warnx("check=%s plugin=%s: dropped %zu invalid metric "
		    "samples (bad or reserved names, bad labels, too many)",
		    c->name, c->plugin_name, r->ndropped);
		c->warned_samples = 1;
	}
	metrics_histogram_observe(&c->duration, duration);
	c->last_run_time = wall_seconds();
	result_clear(&c->last);
	c->last = *r;
	memset(r, 0, sizeof(*r));
	c->has_result = 1;
	if (old != (int)c->last.status) {
		struct troika_event ev = {
			.kind = EVENT_CHECK_STATUS, .check = c->name,
			.plugin = c->plugin_name, .old_status = old,
			.new_status = (int)c->last.status,
			.message = c->last.message,
		};
		event_emit(&ev);
	}
}

/* Record a status the host decided itself (not loaded, refused, ...). */
static void
check_set_host_status(struct troika_instance *c, const char *fmt, ...)
{
	struct result_copy r = { .status = TROIKA_STATUS_UNKNOWN };
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r.message = strdup(msg);
	check_record(c, &r, 0, 0);
	result_clear(&r);
}

/* ---- tasks ---- */

static void
task_free(struct troika_task *t)
{
	if (t == NULL)
		return;
	if (t->deadline != NULL)
		event_free(t->deadline);
	result_clear(&t->result);
	free(t->action);
	conf_strv_free(t->argv, t->argc);
	free(t);
	atomic_fetch_sub(&tasks_alive, 1);
}

/* Tell an action's requester how it went, once. */
static void
action_report(struct troika_task *t, const struct result_copy *r, int timed_out)
{
	struct troika_instance *c = t->check;
	check_action_done_fn done = t->done;
	struct action_outcome o = {
		.status = r->status,
		.message = r->message,
		.fields = r->fields,
		.nfields = r->nfields,
		.timed_out = timed_out,
		.duration = (double)(now_us() - t->started_us) / 1e6,
	};
	char msg[1200];

	if (done == NULL)
		return;
	t->done = NULL;
	snprintf(msg, sizeof(msg), "%s: %s%s%s", t->action,
	    r->status == TROIKA_STATUS_OK ? "done" :
	    r->status == TROIKA_STATUS_CRITICAL ? "failed" : "outcome unknown",
	    r->message ? ": " : "", r->message ? r->message : "");
	struct troika_event ev = {
		.kind = EVENT_ACTION_DONE, .check = c ? c->name : NULL,
		.plugin = c ? c->plugin_name : NULL, .old_status = -1,
		.new_status = -1, .message = msg,
	};
	event_emit(&ev);
	done(&o, t->done_arg);
}

static int task_begin(struct troika_instance *c, struct troika_task *t);

/* The instance is free again: start an action that waited for it. */
static void
check_task_ended(struct troika_instance *c)
{
	struct troika_task *next = c->pending_action;

	if (next == NULL || c->task != NULL)
		return;
	c->pending_action = NULL;
	task_begin(c, next);
}

static void
task_finish(struct troika_task *t, struct result_copy *r, int timed_out)
{
	struct troika_instance *c = t->check;
	double duration = (double)(now_us() - t->started_us) / 1e6;

	if (t->is_action)
		action_report(t, r, timed_out);
	if (c != NULL) {
		if (c->task == t)
			c->task = NULL;
		if (!t->is_action)
			check_record(c, r, timed_out, duration);
	}
	result_clear(r);
	task_free(t);
	if (c != NULL)
		check_task_ended(c);
}

static int
plugin_has_cancel(const struct troika_plugin *d)
{
	return d->size >= offsetof(struct troika_plugin, cancel) +
	    sizeof(d->cancel) && d->cancel != NULL;
}

static void
task_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct troika_task *t = arg;
	struct troika_instance *c = t->check;
	const struct troika_plugin *d = c->plugin->desc;
	struct result_copy r = {
		.status = TROIKA_STATUS_UNKNOWN,
		.evidence = TROIKA_EVIDENCE_AMBIGUOUS,
	};
	char msg[128];

	(void)fd;
	(void)what;
	snprintf(msg, sizeof(msg), "timed out after %.3fs",
	    (double)t->timeout_ms / 1000);
	r.message = strdup(msg);
	if (t->is_action) {
		action_report(t, &r, 1);
	} else {
		struct troika_event ev = {
			.kind = EVENT_CHECK_TIMEOUT, .check = c->name,
			.plugin = c->plugin_name, .old_status = -1,
			.new_status = -1, .message = msg,
		};
		event_emit(&ev);
		check_record(c, &r, 1, (double)(now_us() - t->started_us) / 1e6);
	}
	result_clear(&r);

	if (t->builtin_service) {
		service_call_cancel_arg(c, t);
		c->task = NULL;
		task_free(t);
		check_task_ended(c);
		return;
	}
	if (!t->blocking && plugin_has_cancel(d)) {
		d->cancel(c->state, t);
		c->task = NULL;
		task_free(t);
		check_task_ended(c);
		return;
	}
	/* Keep c->task: nothing else runs on this instance until it ends. */
	t->state = TASK_ABANDONED;
}

static void
builtin_service_done_cb(int ok, const char *message, void *arg)
{
	struct troika_task *t = arg;
	struct result_copy r = {
		.status = ok ? TROIKA_STATUS_OK : TROIKA_STATUS_CRITICAL,
	};

	r.message = strdup(message);
	task_finish(t, &r, 0);
}

static void
task_run_plugin(struct troika_task *t)
{
	const struct troika_plugin *d = t->orphan_plugin->desc;

	if (t->builtin_service) {
		int r = host_service_control(t->check, t->action, t->timeout_ms,
		    builtin_service_done_cb, t);
		if (r < 0) {
			struct result_copy rc = { .status = TROIKA_STATUS_CRITICAL };
			char msg[128];
			if (r == -ENOENT)
				snprintf(msg, sizeof(msg), "no '%s' command in the "
				    "check's service (restart needs restart, or "
				    "stop and start)", t->action);
			else
				snprintf(msg, sizeof(msg), "service %s: %s",
				    t->action, strerror(-r));
			rc.message = strdup(msg);
			/* From the loop like a plugin would: finish at once is
			 * safe here, task_begin does not touch t afterwards. */
			task_finish(t, &rc, 0);
		}
		return;
	}
	if (t->is_action)
		d->action(t->orphan_state, t, t->action,
		    (const char *const *)t->argv, t->argc);
	else
		d->check(t->orphan_state, t);
}

static void
task_work(void *arg)
{
	/* Worker thread: the plugin and its state outlive the job (see
	 * check_free), and nothing else touches the task until done. */
	task_run_plugin(arg);
}

static void
task_work_done(void *arg, int cancelled)
{
	struct troika_task *t = arg;
	struct troika_instance *c = t->check;

	if (c == NULL) {
		/* The check was freed while this ran: free its instance now. */
		t->orphan_plugin->desc->instance_free(t->orphan_state);
		plugin_unref(t->orphan_plugin);
		task_free(t);
		return;
	}
	if (t->state == TASK_ABANDONED || cancelled) {
		if (c->task == t)
			c->task = NULL;
		if (cancelled && t->is_action) {
			struct result_copy r = { .status = TROIKA_STATUS_UNKNOWN };
			r.message = strdup("agent stopping");
			action_report(t, &r, 0);
			result_clear(&r);
		}
		task_free(t);
		check_task_ended(c);
		return;
	}
	if (!t->has_result) {
		t->result.status = TROIKA_STATUS_UNKNOWN;
		t->result.message = strdup("plugin returned without reporting a result");
	}
	struct result_copy r = t->result;
	memset(&t->result, 0, sizeof(t->result));
	task_finish(t, &r, 0);
}

static struct troika_task *
task_new(struct troika_instance *c, int64_t timeout_ms)
{
	struct troika_task *t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	atomic_fetch_add(&tasks_alive, 1);
	t->check = c;
	t->host = c->host;
	t->blocking = c->plugin->desc->exec_model == TROIKA_EXEC_BLOCKING;
	t->timeout_ms = timeout_ms;
	/* What the worker thread needs, so it never reads the check. */
	t->orphan_plugin = c->plugin;
	t->orphan_state = c->state;
	t->deadline = evtimer_new(c->host->base, task_deadline_cb, t);
	if (t->deadline == NULL) {
		task_free(t);
		return NULL;
	}
	return t;
}

/* Hand a task to its plugin; the instance must be idle. */
static int
task_begin(struct troika_instance *c, struct troika_task *t)
{
	struct timeval plain;

	t->started_us = now_us();
	t->deadline_us = t->started_us + t->timeout_ms * 1000;
	evtimer_add(t->deadline, host_timeout(c->host, t->timeout_ms, &plain));
	c->task = t;
	if (!t->blocking) {
		task_run_plugin(t);
		return 0;
	}
	if (worker_pool_submit(c->host->pool, task_work, task_work_done, t) < 0) {
		struct result_copy r = { .status = TROIKA_STATUS_UNKNOWN };
		r.message = strdup("worker queue full; not run");
		task_finish(t, &r, 0);
		return -EAGAIN;
	}
	return 0;
}

static int
check_start(struct troika_instance *c)
{
	struct troika_task *t;

	if (!c->runnable)
		return -ENOENT;
	if (c->task != NULL || c->pending_action != NULL) {
		c->overruns++;
		return -EBUSY;
	}
	if ((t = task_new(c, c->timeout_ms)) == NULL) {
		log_warn("check=%s: starting a run", c->name);
		return -ENOMEM;
	}
	return task_begin(c, t);
}

static const struct troika_action *
plugin_find_action(const struct troika_plugin *d, const char *name)
{
	if (d->size < offsetof(struct troika_plugin, action) + sizeof(d->action) ||
	    d->actions == NULL || d->action == NULL)
		return NULL;
	for (const struct troika_action *a = d->actions; a->name != NULL; a++)
		if (strcmp(a->name, name) == 0)
			return a;
	return NULL;
}

int
check_host_action(struct check_host *h, const char *check, const char *action,
    const char *const *argv, size_t argc, int64_t timeout_ms,
    check_action_done_fn done, void *arg, struct troika_task **ret_handle,
    const char **ret_error)
{
	struct troika_instance *c = check_host_find(h, check);
	const struct troika_action *a;
	struct troika_task *t;

	*ret_error = NULL;
	if (c == NULL || !c->runnable) {
		*ret_error = c == NULL ? "no such check" : "check is not running";
		return -ENOENT;
	}
	/*
	 * start, stop and restart are the host's own for a check with a
	 * `service:`, unless the plugin brings its own (Galera's start must
	 * first recover the node's position, for instance).
	 */
	int builtin = 0;
	if ((a = plugin_find_action(c->plugin->desc, action)) == NULL) {
		if (c->service.backend == SVC_NONE ||
		    (strcmp(action, "start") != 0 && strcmp(action, "stop") != 0 &&
		    strcmp(action, "restart") != 0)) {
			*ret_error = c->service.backend == SVC_NONE &&
			    (strcmp(action, "start") == 0 ||
			    strcmp(action, "stop") == 0 ||
			    strcmp(action, "restart") == 0) ?
			    "no service manager configured for this check "
			    "(its 'service:' key)" :
			    "the check's plugin has no such action";
			return -EOPNOTSUPP;
		}
		builtin = 1;
	}
	if (builtin ? argc != 0 :
	    (int64_t)argc < a->min_args || (int64_t)argc > a->max_args) {
		*ret_error = builtin || a->usage == NULL ? "takes no arguments" :
		    a->usage;
		return -EINVAL;
	}
	if (c->pending_action != NULL || (c->task != NULL && c->task->is_action)) {
		*ret_error = "another action is in progress on this check";
		return -EBUSY;
	}
	if (timeout_ms <= 0)
		timeout_ms = c->action_timeout_ms > 0 ? c->action_timeout_ms :
		    c->timeout_ms;
	if ((t = task_new(c, timeout_ms)) == NULL ||
	    (t->action = strdup(action)) == NULL ||
	    (argc > 0 && (t->argv = calloc(argc, sizeof(char *))) == NULL)) {
		task_free(t);
		*ret_error = "out of memory";
		return -ENOMEM;
	}
	for (size_t i = 0; i < argc; i++, t->argc++)
		if ((t->argv[i] = strdup(argv[i])) == NULL) {
			task_free(t);
			*ret_error = "out of memory";
			return -ENOMEM;
		}
	t->is_action = 1;
	t->builtin_service = builtin;
	t->done = done;
	t->done_arg = arg;
	if (ret_handle != NULL)
		*ret_handle = t;

	char msg[512];
	size_t off = (size_t)snprintf(msg, sizeof(msg), "%s", action);
	for (size_t i = 0; i < argc && off < sizeof(msg); i++)
		off += (size_t)snprintf(msg + off, sizeof(msg) - off, " %s", argv[i]);
	struct troika_event ev = {
		.kind = EVENT_ACTION_STARTED, .check = c->name,
		.plugin = c->plugin_name, .old_status = -1, .new_status = -1,
		.message = msg,
	};
	event_emit(&ev);
	if (c->task != NULL) {
		/* A check run is out: the action starts when it ends. */
		c->pending_action = t;
		return 0;
	}
	task_begin(c, t);
	return 0;
}

void
check_host_action_forget(struct troika_task *handle)
{
	if (handle != NULL)
		handle->done = NULL;
}

/* ---- scheduling ---- */

int64_t
check_spread_offset_ms(const char *name, int64_t interval_ms)
{
	uint64_t h = 14695981039346656037ULL; /* FNV-1a */
	int64_t quantum;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		h ^= *p;
		h *= 1099511628211ULL;
	}
	if (interval_ms <= 0)
		return 0;
	/*
	 * 100 start slots per interval (at least 1 ms apart): checks spread
	 * over the whole interval, and those sharing a slot share a wake-up.
	 */
	quantum = interval_ms / 100 > 0 ? interval_ms / 100 : 1;
	return (int64_t)(h % (uint64_t)interval_ms) / quantum * quantum;
}

/*
 * Timers of one duration go into one of libevent's "common timeout" queues
 * (O(1) instead of a heap operation each), and checks whose offsets fall in
 * the same quantum fire in the same loop iteration. With 1,000 checks per
 * second that is ~100 wake-ups instead of ~1,000; measured in
 * docs/benchmarks.md. libevent allows 256 such queues per base; beyond the
 * cache, plain timers are used.
 */
static const struct timeval *
host_timeout(struct check_host *h, int64_t ms, struct timeval *plain)
{
	*plain = us_to_tv(ms * 1000);
	for (size_t i = 0; i < h->ncommon; i++)
		if (h->common[i].ms == ms)
			return h->common[i].tv;
	if (h->ncommon < COMMON_TIMEOUTS_MAX) {
		const struct timeval *tv = event_base_init_common_timeout(h->base, plain);
		if (tv != NULL) {
			h->common[h->ncommon].ms = ms;
			h->common[h->ncommon].tv = tv;
			h->ncommon++;
			return tv;
		}
	}
	return plain;
}

static void
check_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	/*
	 * EV_PERSIST timers are re-armed from their last deadline, so runs
	 * do not drift; after a stall libevent re-arms from now instead of
	 * firing a burst of missed runs.
	 */
	check_start(arg);
}

static void
check_first_cb(evutil_socket_t fd, short what, void *arg)
{
	struct troika_instance *c = arg;
	struct timeval plain;

	(void)fd;
	(void)what;
	event_add(c->ticker, host_timeout(c->host, c->interval_ms, &plain));
	check_start(c);
}

static void
check_schedule(struct troika_instance *c)
{
	struct timeval tv = us_to_tv(check_spread_offset_ms(c->name, c->interval_ms) * 1000);

	evtimer_add(c->first, &tv);
}

/* ---- checks ---- */

static void
check_free(struct troika_instance *c)
{
	struct troika_task *t;

	if (c == NULL)
		return;
	if (c->first != NULL)
		event_free(c->first);
	if (c->ticker != NULL)
		event_free(c->ticker);
	/* The plugin is about to go: its service callbacks must not run. */
	service_calls_cancel(c);
	if (c->pending_action != NULL) {
		struct result_copy r = { .status = TROIKA_STATUS_UNKNOWN };
		r.message = strdup("check removed before the action started");
		action_report(c->pending_action, &r, 0);
		result_clear(&r);
		task_free(c->pending_action);
		c->pending_action = NULL;
	}
	t = c->task;
	if (t != NULL && t->is_action && t->done != NULL) {
		struct result_copy r = { .status = TROIKA_STATUS_UNKNOWN };
		r.message = strdup("check removed while the action ran");
		action_report(t, &r, 0);
		result_clear(&r);
	}
	if (c->state != NULL) {
		const struct troika_plugin *d = c->plugin->desc;
		int has_cancel = plugin_has_cancel(d);

		if (t != NULL && t->blocking) {
			/* The worker still runs check(): hand it the instance. */
			t->check = NULL;
			if (t->deadline != NULL) {
				event_free(t->deadline);
				t->deadline = NULL;
			}
			plugin_ref(c->plugin);
			c->state = NULL;
			t = NULL;
		} else {
			if (t != NULL && has_cancel && t->state == TASK_RUNNING)
				d->cancel(c->state, t);
			d->instance_free(c->state);
		}
	}
	task_free(t);
	plugin_unref(c->plugin);
	result_clear(&c->last);
	opts_free(c->opts, c->nopts);
	service_spec_free(&c->service);
	metrics_histogram_free(&c->duration);
	free(c->name);
	free(c->plugin_name);
	free(c->canonical);
	free(c);
}

static struct troika_instance *
check_new(struct check_host *h, const struct conf_check *cc, struct plugin_set *ps)
{
	struct troika_instance *c;
	struct plugin *p;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->host = h;
	c->interval_ms = cc->interval_ms;
	c->timeout_ms = cc->timeout_ms;
	c->action_timeout_ms = cc->action_timeout_ms;
	c->name = strdup(cc->name);
	c->plugin_name = strdup(cc->plugin);
	c->canonical = strdup(cc->canonical ? cc->canonical : "");
	if (c->name == NULL || c->plugin_name == NULL || c->canonical == NULL ||
	    opts_copy(cc, &c->opts, &c->nopts) < 0 ||
	    service_spec_copy(&c->service, &cc->service) < 0 ||
	    metrics_histogram_init(&c->duration, check_duration_bounds,
	    sizeof(check_duration_bounds) / sizeof(check_duration_bounds[0])) < 0 ||
	    (c->first = evtimer_new(h->base, check_first_cb, c)) == NULL ||
	    (c->ticker = event_new(h->base, -1, EV_PERSIST, check_tick_cb, c)) == NULL) {
		check_free(c);
		return NULL;
	}

	struct troika_event ev = {
		.kind = EVENT_CHECK_ADDED, .check = c->name,
		.plugin = c->plugin_name, .old_status = -1, .new_status = -1,
	};
	event_emit(&ev);

	p = cc->plugin_missing ? NULL : plugin_set_find(ps, cc->plugin);
	if (p == NULL) {
		log_warnx("%s:%d:%d: check '%s': plugin '%s' is not loaded; "
		    "the check cannot run", cc->plugin_pos.file,
		    cc->plugin_pos.line, cc->plugin_pos.col, c->name, c->plugin_name);
		check_set_host_status(c, "plugin '%s' is not loaded", c->plugin_name);
		return c;
	}
	plugin_ref(p);
	c->plugin = p;
	if (p->desc->instance_new(&host_table, c, &c->state) < 0) {
		c->state = NULL;
		check_set_host_status(c, "plugin '%s' refused the check's "
		    "configuration (see the log)", c->plugin_name);
		return c;
	}
	c->runnable = 1;
	check_schedule(c);
	return c;
}

struct check_host *
check_host_new(struct event_base *base, int workers)
{
	struct check_host *h;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	h->base = base;
	h->loop_thread = pthread_self();
	h->pool = worker_pool_new(base, workers, WORKER_QUEUE_MAX);
	if (h->pool == NULL) {
		check_host_free(h);
		return NULL;
	}
	return h;
}

void
check_host_free(struct check_host *h)
{
	if (h == NULL)
		return;
	for (size_t i = 0; i < h->nchecks; i++)
		check_free(h->checks[i]);
	free(h->checks);
	/* Waits for running blocking jobs; their done callbacks free them. */
	worker_pool_free(h->pool);
	if (current_curlm == h->curlm)
		current_curlm = NULL;
	curlm_free(h->curlm);
	free(h);
}

static void
check_removed(struct troika_instance *c)
{
	struct troika_event ev = {
		.kind = EVENT_CHECK_REMOVED, .check = c->name,
		.plugin = c->plugin_name, .old_status = -1, .new_status = -1,
	};

	event_emit(&ev);
	check_free(c);
}

void
check_host_apply(struct check_host *h, const struct agent_conf *conf,
    struct plugin_set *ps)
{
	struct troika_instance **next;
	size_t n = 0;

	next = calloc(conf->nchecks ? conf->nchecks : 1, sizeof(*next));
	if (next == NULL) {
		log_warn("applying configuration; keeping the old checks");
		return;
	}
	for (size_t i = 0; i < conf->nchecks; i++) {
		const struct conf_check *cc = &conf->checks[i];
		struct troika_instance *keep = NULL;
		struct plugin *p = plugin_set_find(ps, cc->plugin);

		/* Unchanged: same name, same definition, same plugin object. */
		for (size_t j = 0; j < h->nchecks; j++) {
			struct troika_instance *old = h->checks[j];
			if (old != NULL && strcmp(old->name, cc->name) == 0) {
				if (old->runnable && old->plugin == p &&
				    strcmp(old->canonical, cc->canonical) == 0) {
					keep = old;
					h->checks[j] = NULL;
				}
				break;
			}
		}
		next[n] = keep != NULL ? keep : check_new(h, cc, ps);
		if (next[n] == NULL)
			log_warn("check '%s' could not be created", cc->name);
		else
			n++;
	}
	for (size_t j = 0; j < h->nchecks; j++)
		if (h->checks[j] != NULL)
			check_removed(h->checks[j]);
	free(h->checks);
	h->checks = next;
	h->nchecks = n;
}

void
check_host_drop_plugin(struct check_host *h, const struct plugin *p)
{
	size_t n = 0;

	for (size_t i = 0; i < h->nchecks; i++) {
		if (h->checks[i]->plugin == p)
			check_removed(h->checks[i]);
		else
			h->checks[n++] = h->checks[i];
	}
	h->nchecks = n;
}

int
check_host_run_now(struct check_host *h, const char *name)
{
	struct troika_instance *c = check_host_find(h, name);

	if (c == NULL)
		return -ENOENT;
	return check_start(c);
}

size_t
check_host_count(const struct check_host *h)
{
	return h->nchecks;
}

struct troika_instance *
check_host_at(const struct check_host *h, size_t i)
{
	return i < h->nchecks ? h->checks[i] : NULL;
}

struct troika_instance *
check_host_find(const struct check_host *h, const char *name)
{
	for (size_t i = 0; i < h->nchecks; i++)
		if (strcmp(h->checks[i]->name, name) == 0)
			return h->checks[i];
	return NULL;
}

void
check_view(const struct troika_instance *c, struct check_view *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->name = c->name;
	ret->plugin = c->plugin_name;
	ret->has_result = c->has_result;
	ret->status = c->last.status;
	ret->evidence = c->last.evidence;
	ret->message = c->last.message;
	memcpy(ret->runs, c->runs, sizeof(ret->runs));
	ret->overruns = c->overruns;
	ret->running = c->task != NULL;
	ret->nsamples = c->last.nsamples;
}

size_t
check_host_tasks_alive(void)
{
	return atomic_load(&tasks_alive);
}

/* ---- exposition ---- */

struct sample_ref {
	const struct troika_instance *check;
	const struct sample_copy *sample;
	size_t order; /* keeps qsort stable */
};

static int
sample_ref_cmp(const void *a, const void *b)
{
	const struct sample_ref *x = a, *y = b;
	int r = strcmp(x->sample->name, y->sample->name);

	if (r != 0)
		return r;
	return x->order < y->order ? -1 : x->order > y->order;
}

static void
write_plugin_samples(const struct check_host *h, struct evbuffer *out)
{
	struct sample_ref *refs;
	size_t n = 0, total = 0;

	for (size_t i = 0; i < h->nchecks; i++)
		total += h->checks[i]->last.nsamples;
	if (total == 0)
		return;
	if ((refs = calloc(total, sizeof(*refs))) == NULL)
		return;
	for (size_t i = 0; i < h->nchecks; i++) {
		const struct troika_instance *c = h->checks[i];
		for (size_t j = 0; j < c->last.nsamples; j++) {
			refs[n].check = c;
			refs[n].sample = &c->last.samples[j];
			refs[n].order = n;
			n++;
		}
	}
	qsort(refs, n, sizeof(*refs), sample_ref_cmp);

	for (size_t i = 0; i < n;) {
		const struct sample_copy *first = refs[i].sample;
		const char *help = NULL;
		size_t end = i;

		while (end < n && strcmp(refs[end].sample->name, first->name) == 0) {
			if (help == NULL && refs[end].sample->help != NULL)
				help = refs[end].sample->help;
			end++;
		}
		metrics_family(out, first->name,
		    first->type == TROIKA_METRIC_COUNTER ? "counter" : "gauge",
		    help ? help : "Reported by a troika plugin.");
		for (; i < end; i++) {
			const struct sample_copy *s = refs[i].sample;
			struct troika_label labels[2 + RESULT_MAX_LABELS];

			/* One family has one type: samples that disagree are
			 * left out rather than make the page unparsable. */
			if (s->type != first->type)
				continue;
			labels[0].name = "check";
			labels[0].value = refs[i].check->name;
			labels[1].name = "plugin";
			labels[1].value = refs[i].check->plugin_name;
			if (s->nlabels > 0)
				memcpy(&labels[2], s->labels,
				    s->nlabels * sizeof(*s->labels));
			metrics_sample(out, s->name, labels, 2 + s->nlabels, NULL,
			    s->value);
		}
	}
	free(refs);
}

void
check_host_metrics(const struct check_host *h, struct evbuffer *out)
{
	metrics_family(out, "troika_checks_configured", "gauge",
	    "Checks in the running configuration.");
	metrics_sample(out, "troika_checks_configured", NULL, 0, NULL,
	    (double)h->nchecks);

	metrics_family(out, "troika_check_status", "gauge",
	    "Last status of a check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.");
	for (size_t i = 0; i < h->nchecks; i++) {
		const struct troika_instance *c = h->checks[i];
		const struct troika_label l[] = {
			{ "check", c->name }, { "plugin", c->plugin_name },
		};
		if (c->has_result)
			metrics_sample(out, "troika_check_status", l, 2, NULL,
			    (double)c->last.status);
	}

	metrics_family(out, "troika_check_runs_total", "counter",
	    "Completed runs of a check by result (timeout counted apart).");
	for (size_t i = 0; i < h->nchecks; i++) {
		const struct troika_instance *c = h->checks[i];
		for (int k = 0; k < CHECK_RESULT_COUNT; k++) {
			const struct troika_label l[] = {
				{ "check", c->name }, { "plugin", c->plugin_name },
				{ "result", check_result_names[k] },
			};
			metrics_sample(out, "troika_check_runs_total", l, 3, NULL,
			    (double)c->runs[k]);
		}
	}

	metrics_family(out, "troika_check_duration_seconds", "histogram",
	    "Duration of check runs, timeouts included.");
	for (size_t i = 0; i < h->nchecks; i++) {
		const struct troika_instance *c = h->checks[i];
		const struct troika_label l[] = {
			{ "check", c->name }, { "plugin", c->plugin_name },
		};
		metrics_histogram_write(out, "troika_check_duration_seconds", l, 2,
		    &c->duration);
	}

	metrics_family(out, "troika_check_overruns_total", "counter",
	    "Runs skipped because the previous run of the check was still out.");
	for (size_t i = 0; i < h->nchecks; i++) {
		const struct troika_instance *c = h->checks[i];
		const struct troika_label l[] = {
			{ "check", c->name }, { "plugin", c->plugin_name },
		};
		metrics_sample(out, "troika_check_overruns_total", l, 2, NULL,
		    (double)c->overruns);
	}

	metrics_family(out, "troika_check_last_run_timestamp_seconds", "gauge",
	    "Wall-clock time the last run of a check ended.");
	for (size_t i = 0; i < h->nchecks; i++) {
		const struct troika_instance *c = h->checks[i];
		const struct troika_label l[] = {
			{ "check", c->name }, { "plugin", c->plugin_name },
		};
		if (c->has_result)
			metrics_sample(out, "troika_check_last_run_timestamp_seconds",
			    l, 2, NULL, c->last_run_time);
	}

	metrics_family(out, "troika_check_samples_dropped_total", "counter",
	    "Metric samples of a check's plugin refused by the host.");
	for (size_t i = 0; i < h->nchecks; i++) {
		const struct troika_instance *c = h->checks[i];
		const struct troika_label l[] = {
			{ "check", c->name }, { "plugin", c->plugin_name },
		};
		metrics_sample(out, "troika_check_samples_dropped_total", l, 2,
		    NULL, (double)c->samples_dropped);
	}

	write_plugin_samples(h, out);
}
