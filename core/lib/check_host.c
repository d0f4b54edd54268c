/* The check host: the host table, options, instances, schedule, apply. */
#include "check_host_int.h"

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

static const double check_duration_bounds[] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5, 10, 30,
};

static const struct troika_host host_table;
/* The host's curlm, for curl_remove(), whose ABI carries no instance. */
static struct curlm *current_curlm;

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

char **
check_strv_dup(char *const *v, size_t n)
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
		o[i].list = check_strv_dup(v->list, v->nlist);
		o[i].keys = check_strv_dup(v->keys, v->nmap);
		o[i].vals = check_strv_dup(v->vals, v->nmap);
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
	.check_done = check_task_done,
	.task_remaining_ms = check_task_remaining_ms,
	.spawn = host_spawn,
	.spawn_cancel = host_spawn_cancel,
	.curl_add = host_curl_add,
	.curl_remove = host_curl_remove,
	.service_control = check_service_control,
};

/* ---- results ---- */

void
check_record(struct troika_instance *c, struct result_copy *r, int timed_out,
    double duration)
{
	int old = c->has_result ? (int)c->last.status : -1;
	int old_certain = c->has_result &&
	    c->last.evidence == TROIKA_EVIDENCE_CERTAIN;
	uint64_t prev_seq = c->result_seq;
	enum check_result kind;
	int confirming = c->confirm_next;

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
	c->last_run_time = check_wall_seconds();
	c->last_duration = duration;
	c->last_timed_out = timed_out;
	c->result_seq = ++c->host->result_seq;
	check_result_clear(&c->last);
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
	/*
	 * A failure with certain evidence, new: confirm it at once rather
	 * than an interval later. The confirming result never asks again.
	 */
	c->confirm_next = 0;
	if (!confirming && c->last.status == TROIKA_STATUS_CRITICAL &&
	    c->last.evidence == TROIKA_EVIDENCE_CERTAIN &&
	    !(old == TROIKA_STATUS_CRITICAL && old_certain)) {
		c->confirm_next = 1;
		check_recheck_soon(c, CHECK_RECHECK_CERTAIN);
	}
	check_watch_rearm(c);
	if (c->host->result_hook != NULL)
		c->host->result_hook(c, prev_seq, c->host->result_hook_arg);
}

int
check_report_get(const struct troika_instance *c, struct check_report *r)
{
	uint64_t runs = 0;

	if (!c->has_result)
		return -ENOENT;
	for (int k = 0; k < CHECK_RESULT_COUNT; k++)
		runs += c->runs[k];
	*r = (struct check_report){
		.check = c->name, .plugin = c->plugin_name,
		.status = c->last.status, .evidence = c->last.evidence,
		.message = c->last.message != NULL ? c->last.message : "",
		.fields = c->last.fields, .nfields = c->last.nfields,
		.nsamples = c->last.nsamples, .duration = c->last_duration,
		.time = c->last_run_time, .timed_out = c->last_timed_out,
		.run = runs, .seq = c->result_seq,
	};
	return 0;
}

void
check_report_sample(const struct troika_instance *c, size_t i,
    struct troika_sample *s)
{
	const struct sample_copy *sc = &c->last.samples[i];

	*s = (struct troika_sample){
		.name = sc->name, .help = sc->help, .type = sc->type,
		.value = sc->value, .labels = sc->labels,
		.nlabels = sc->nlabels,
	};
}

void
check_host_set_result_hook(struct check_host *h, check_result_hook_fn fn,
    void *arg)
{
	h->result_hook = fn;
	h->result_hook_arg = arg;
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
	check_result_clear(&r);
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
const struct timeval *
check_host_timeout(struct check_host *h, int64_t ms, struct timeval *plain)
{
	*plain = check_us_to_tv(ms * 1000);
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
	event_add(c->ticker, check_host_timeout(c->host, c->interval_ms, &plain));
	check_start(c);
}

static void
check_schedule(struct troika_instance *c)
{
	struct timeval tv = check_us_to_tv(check_spread_offset_ms(c->name, c->interval_ms) * 1000);

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
	check_watch_free(c);
	/* The plugin is about to go: its service callbacks must not run. */
	check_service_cancel_all(c);
	if (c->pending_action != NULL) {
		struct result_copy r = { .status = TROIKA_STATUS_UNKNOWN };
		r.message = strdup("check removed before the action started");
		check_action_report(c->pending_action, &r, 0);
		check_result_clear(&r);
		check_task_free(c->pending_action);
		c->pending_action = NULL;
	}
	t = c->task;
	if (t != NULL && t->is_action && t->done != NULL) {
		struct result_copy r = { .status = TROIKA_STATUS_UNKNOWN };
		r.message = strdup("check removed while the action ran");
		check_action_report(t, &r, 0);
		check_result_clear(&r);
	}
	if (c->state != NULL) {
		const struct troika_plugin *d = c->plugin->desc;
		int has_cancel = check_plugin_has_cancel(d);

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
	check_task_free(t);
	plugin_unref(c->plugin);
	check_result_clear(&c->last);
	opts_free(c->opts, c->nopts);
	check_service_spec_free(&c->service);
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
	c->watch_fd = -1;
	c->interval_ms = cc->interval_ms;
	c->timeout_ms = cc->timeout_ms;
	c->action_timeout_ms = cc->action_timeout_ms;
	c->name = strdup(cc->name);
	c->plugin_name = strdup(cc->plugin);
	c->canonical = strdup(cc->canonical ? cc->canonical : "");
	if (c->name == NULL || c->plugin_name == NULL || c->canonical == NULL ||
	    opts_copy(cc, &c->opts, &c->nopts) < 0 ||
	    check_service_spec_copy(&c->service, &cc->service) < 0 ||
	    metrics_histogram_init(&c->duration, check_duration_bounds,
	    sizeof(check_duration_bounds) / sizeof(check_duration_bounds[0])) < 0 ||
	    (c->first = evtimer_new(h->base, check_first_cb, c)) == NULL ||
	    (c->ticker = event_new(h->base, -1, EV_PERSIST, check_tick_cb, c)) == NULL ||
	    check_watch_init(c, cc->service.pidfile) < 0) {
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
	check_watch_rearm(c);
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

int
check_host_uses_plugin(const struct check_host *h, const struct plugin *p)
{
	for (size_t i = 0; i < h->nchecks; i++)
		if (h->checks[i]->plugin == p)
			return 1;
	return 0;
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

