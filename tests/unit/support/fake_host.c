#include "fake_host.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <event2/event.h>

#include "curlm.h"
#include "parse.h"
#include "spawn.h"

/* The opaque host objects, as this fake host sees them. */
struct troika_instance {
	struct fake_host *fh;
};

struct troika_task {
	struct fake_host *fh;
	struct troika_task *next;
	struct timespec deadline;
	int done;
	int cancelled;
};

struct fake_opt {
	char *name;
	enum troika_option_type type;
	char *str;
	int64_t num;
	char **list;
	size_t nlist;
	char **keys;
	char **vals;
	size_t nmap;
};

/* One transfer handed to curl_add(), until done or curl_remove(). */
struct fake_transfer {
	struct fake_host *fh;
	struct fake_transfer *next;
	void *easy;
	troika_curl_done_cb done;
	void *arg;
};

struct fake_host {
	struct troika_host host;
	struct troika_instance inst;
	struct event_base *base;
	const struct troika_option *decl;

	struct fake_opt *opts;
	size_t nopts;
	struct troika_task *tasks;

	/* Blocking plugins report and log from other threads. */
	pthread_mutex_t lock;
	struct fake_result *results;
	size_t nresults;
	char **logs;
	int last_level;
	size_t nlogs;
	unsigned violations;
	char last_violation[512];
	int in_async_check;

	int fail_spawn;
	int fail_curl;
	unsigned nspawn;
	unsigned nspawn_cancel;
	unsigned ncurl_add;
	unsigned ncurl_remove;
	struct curlm *curlm;
	int curl_inited;
	struct fake_transfer *transfers;

	int service_set;
	int service_ok;
	char *service_message;
	char *service_op;
	unsigned nservice;
	struct fake_service_call *service_calls;

	struct event *wait_timer;
	struct event *wait_tick;
	int wait_expired;
};

/* A service_control() whose done is still to be called from the loop. */
struct fake_service_call {
	struct fake_host *fh;
	struct fake_service_call *next;
	struct event *ev;
	troika_service_done_cb done;
	void *arg;
};

/* See fake_host.h: spawn_cancel() and curl_remove() carry no instance. */
static struct fake_host *fake_live;

static char *
fake_strdup(const char *s)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		fail_msg("fake_host: out of memory");
	return d;
}

static void *
fake_calloc(size_t n, size_t size)
{
	void *p;

	if ((p = calloc(n > 0 ? n : 1, size)) == NULL)
		fail_msg("fake_host: out of memory");
	return p;
}

static void
fake_violation(struct fake_host *fh, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Record a breach of the plugin contract (any thread). */
static void
fake_violation(struct fake_host *fh, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&fh->lock);
	fh->violations++;
	va_start(ap, fmt);
	vsnprintf(fh->last_violation, sizeof(fh->last_violation), fmt, ap);
	va_end(ap);
	fprintf(stderr, "fake_host: contract violation: %s\n",
	    fh->last_violation);
	pthread_mutex_unlock(&fh->lock);
}

static const char *
fake_type_name(enum troika_option_type type)
{
	switch (type) {
	case TROIKA_OPT_STRING:
		return "string";
	case TROIKA_OPT_INT:
		return "int";
	case TROIKA_OPT_BOOL:
		return "bool";
	case TROIKA_OPT_DURATION:
		return "duration";
	case TROIKA_OPT_SIZE:
		return "size";
	case TROIKA_OPT_STRING_LIST:
		return "string list";
	case TROIKA_OPT_STRING_MAP:
		return "string map";
	}
	return "?";
}

static const struct troika_option *
fake_decl(const struct fake_host *fh, const char *name)
{
	if (fh->decl == NULL)
		return NULL;
	for (const struct troika_option *o = fh->decl; o->name != NULL; o++)
		if (strcmp(o->name, name) == 0)
			return o;
	return NULL;
}

static struct fake_opt *
fake_opt_find(struct fake_host *fh, const char *name)
{
	for (size_t i = 0; i < fh->nopts; i++)
		if (strcmp(fh->opts[i].name, name) == 0)
			return &fh->opts[i];
	return NULL;
}

static void
fake_opt_clear(struct fake_opt *o)
{
	free(o->str);
	for (size_t i = 0; i < o->nlist; i++)
		free(o->list[i]);
	free(o->list);
	for (size_t i = 0; i < o->nmap; i++) {
		free(o->keys[i]);
		free(o->vals[i]);
	}
	free(o->keys);
	free(o->vals);
	memset(o, 0, sizeof(*o));
}

/*
 * The slot for a value set by the test, after checking it is one the host
 * could hand over (declared, of this type, in range).
 */
static struct fake_opt *
fake_opt_slot(struct fake_host *fh, const char *name,
    enum troika_option_type type)
{
	const struct troika_option *d = fake_decl(fh, name);
	struct fake_opt *o;

	if (fh->decl != NULL && d == NULL)
		fail_msg("fake_host: option \"%s\" is not declared", name);
	if (d != NULL && d->type != type)
		fail_msg("fake_host: option \"%s\" is a %s, not a %s", name,
		    fake_type_name(d->type), fake_type_name(type));
	if ((o = fake_opt_find(fh, name)) != NULL) {
		char *keep = o->name;

		o->name = NULL;
		fake_opt_clear(o);
		o->name = keep;
	} else {
		o = realloc(fh->opts, (fh->nopts + 1) * sizeof(*fh->opts));
		if (o == NULL)
			fail_msg("fake_host: out of memory");
		fh->opts = o;
		o = &fh->opts[fh->nopts++];
		memset(o, 0, sizeof(*o));
		o->name = fake_strdup(name);
	}
	o->type = type;
	return o;
}

static void
fake_check_range(struct fake_host *fh, const char *name, int64_t v)
{
	const struct troika_option *d = fake_decl(fh, name);

	if (d == NULL || (d->type != TROIKA_OPT_INT &&
	    d->type != TROIKA_OPT_DURATION && d->type != TROIKA_OPT_SIZE))
		return;
	if (d->min <= d->max && (v < d->min || v > d->max))
		fail_msg("fake_host: option \"%s\" = %lld is outside %lld..%lld; "
		    "the host would refuse it", name, (long long)v,
		    (long long)d->min, (long long)d->max);
}

void
fake_host_set_string(struct fake_host *fh, const char *name, const char *value)
{
	struct fake_opt *o = fake_opt_slot(fh, name, TROIKA_OPT_STRING);

	o->str = fake_strdup(value);
}

static void
fake_set_num(struct fake_host *fh, const char *name,
    enum troika_option_type type, int64_t v)
{
	struct fake_opt *o;

	fake_check_range(fh, name, v);
	o = fake_opt_slot(fh, name, type);
	o->num = v;
}

void
fake_host_set_int(struct fake_host *fh, const char *name, int64_t v)
{
	fake_set_num(fh, name, TROIKA_OPT_INT, v);
}

void
fake_host_set_bool(struct fake_host *fh, const char *name, int v)
{
	fake_set_num(fh, name, TROIKA_OPT_BOOL, v != 0);
}

void
fake_host_set_duration(struct fake_host *fh, const char *name, int64_t ms)
{
	fake_set_num(fh, name, TROIKA_OPT_DURATION, ms);
}

void
fake_host_set_size(struct fake_host *fh, const char *name, int64_t bytes)
{
	fake_set_num(fh, name, TROIKA_OPT_SIZE, bytes);
}

void
fake_host_set_list(struct fake_host *fh, const char *name,
    const char *const *items, size_t n)
{
	struct fake_opt *o = fake_opt_slot(fh, name, TROIKA_OPT_STRING_LIST);

	o->list = fake_calloc(n, sizeof(*o->list));
	for (size_t i = 0; i < n; i++)
		o->list[i] = fake_strdup(items[i]);
	o->nlist = n;
}

void
fake_host_set_map(struct fake_host *fh, const char *name,
    const char *const *keys, const char *const *values, size_t n)
{
	struct fake_opt *o = fake_opt_slot(fh, name, TROIKA_OPT_STRING_MAP);

	o->keys = fake_calloc(n, sizeof(*o->keys));
	o->vals = fake_calloc(n, sizeof(*o->vals));
	for (size_t i = 0; i < n; i++) {
		o->keys[i] = fake_strdup(keys[i]);
		o->vals[i] = fake_strdup(values[i]);
	}
	o->nmap = n;
}

void
fake_host_unset(struct fake_host *fh, const char *name)
{
	struct fake_opt *o = fake_opt_find(fh, name);
	size_t i;

	if (o == NULL)
		return;
	i = (size_t)(o - fh->opts);
	free(o->name);
	fake_opt_clear(o);
	memmove(&fh->opts[i], &fh->opts[i + 1],
	    (fh->nopts - i - 1) * sizeof(*fh->opts));
	fh->nopts--;
}

/* --- the host table: options --- */

static struct fake_host *
fake_from_inst(struct troika_instance *inst)
{
	return inst->fh;
}

/*
 * The value a getter of this type reads: the test's, else NULL (the caller
 * then uses the declared default). A getter of the wrong type, or for an
 * undeclared option, is a violation.
 */
static struct fake_opt *
fake_get(struct fake_host *fh, const char *name, enum troika_option_type type,
    const struct troika_option **ret_decl)
{
	const struct troika_option *d = fake_decl(fh, name);
	struct fake_opt *o = fake_opt_find(fh, name);

	*ret_decl = d;
	if (fh->decl != NULL && d == NULL)
		fake_violation(fh, "getter for undeclared option \"%s\"", name);
	else if (d != NULL && d->type != type)
		fake_violation(fh, "%s getter for option \"%s\", declared %s",
		    fake_type_name(type), name, fake_type_name(d->type));
	if (o != NULL && o->type != type)
		return NULL;
	return o;
}

static int
fake_opt_isset(struct troika_instance *inst, const char *name)
{
	struct fake_host *fh = fake_from_inst(inst);

	if (fh->decl != NULL && fake_decl(fh, name) == NULL)
		fake_violation(fh, "opt_isset for undeclared option \"%s\"",
		    name);
	return fake_opt_find(fh, name) != NULL;
}

static const char *
fake_opt_string(struct troika_instance *inst, const char *name)
{
	const struct troika_option *d;
	struct fake_opt *o = fake_get(fake_from_inst(inst), name,
	    TROIKA_OPT_STRING, &d);

	if (o != NULL)
		return o->str;
	return d != NULL ? d->default_value : NULL;
}

/* A declared default of a numeric type, parsed as the host would. */
static int64_t
fake_default_num(struct fake_host *fh, const struct troika_option *d)
{
	int64_t v = 0;
	int b = 0, r = 0;

	if (d == NULL || d->default_value == NULL)
		return 0;
	switch (d->type) {
	case TROIKA_OPT_INT:
		r = parse_int64(d->default_value, &v);
		break;
	case TROIKA_OPT_BOOL:
		r = parse_bool(d->default_value, &b);
		v = b;
		break;
	case TROIKA_OPT_DURATION:
		r = parse_duration_ms(d->default_value, &v);
		break;
	case TROIKA_OPT_SIZE:
		r = parse_size(d->default_value, &v);
		break;
	default:
		break;
	}
	if (r < 0)
		fake_violation(fh, "default \"%s\" of option \"%s\" does not "
		    "parse", d->default_value, d->name);
	return v;
}

static int64_t
fake_get_num(struct troika_instance *inst, const char *name,
    enum troika_option_type type)
{
	struct fake_host *fh = fake_from_inst(inst);
	const struct troika_option *d;
	struct fake_opt *o = fake_get(fh, name, type, &d);

	if (o != NULL)
		return o->num;
	return fake_default_num(fh, d);
}

static int64_t
fake_opt_int(struct troika_instance *inst, const char *name)
{
	return fake_get_num(inst, name, TROIKA_OPT_INT);
}

static int
fake_opt_bool(struct troika_instance *inst, const char *name)
{
	return (int)fake_get_num(inst, name, TROIKA_OPT_BOOL);
}

static int64_t
fake_opt_duration_ms(struct troika_instance *inst, const char *name)
{
	return fake_get_num(inst, name, TROIKA_OPT_DURATION);
}

static int64_t
fake_opt_size(struct troika_instance *inst, const char *name)
{
	return fake_get_num(inst, name, TROIKA_OPT_SIZE);
}

static size_t
fake_opt_list_len(struct troika_instance *inst, const char *name)
{
	const struct troika_option *d;
	struct fake_opt *o = fake_get(fake_from_inst(inst), name,
	    TROIKA_OPT_STRING_LIST, &d);

	return o != NULL ? o->nlist : 0;
}

static const char *
fake_opt_list_at(struct troika_instance *inst, const char *name, size_t i)
{
	struct fake_host *fh = fake_from_inst(inst);
	const struct troika_option *d;
	struct fake_opt *o = fake_get(fh, name, TROIKA_OPT_STRING_LIST, &d);

	if (o == NULL || i >= o->nlist) {
		fake_violation(fh, "opt_list_at(\"%s\", %zu) out of range",
		    name, i);
		return NULL;
	}
	return o->list[i];
}

static size_t
fake_opt_map_len(struct troika_instance *inst, const char *name)
{
	const struct troika_option *d;
	struct fake_opt *o = fake_get(fake_from_inst(inst), name,
	    TROIKA_OPT_STRING_MAP, &d);

	return o != NULL ? o->nmap : 0;
}

static const char *
fake_opt_map_entry(struct troika_instance *inst, const char *name, size_t i,
    int value)
{
	struct fake_host *fh = fake_from_inst(inst);
	const struct troika_option *d;
	struct fake_opt *o = fake_get(fh, name, TROIKA_OPT_STRING_MAP, &d);

	if (o == NULL || i >= o->nmap) {
		fake_violation(fh, "opt_map_%s(\"%s\", %zu) out of range",
		    value ? "value" : "key", name, i);
		return NULL;
	}
	return value ? o->vals[i] : o->keys[i];
}

static const char *
fake_opt_map_key(struct troika_instance *inst, const char *name, size_t i)
{
	return fake_opt_map_entry(inst, name, i, 0);
}

static const char *
fake_opt_map_value(struct troika_instance *inst, const char *name, size_t i)
{
	return fake_opt_map_entry(inst, name, i, 1);
}

/* --- the host table: the rest --- */

static void
fake_log(struct troika_instance *inst, enum troika_log_level level,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
fake_log(struct troika_instance *inst, enum troika_log_level level,
    const char *fmt, ...)
{
	struct fake_host *fh = fake_from_inst(inst);
	char **logs;
	char *line;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&line, fmt, ap) == -1)
		line = NULL;
	va_end(ap);
	if (line == NULL)
		return;
	fprintf(stderr, "fake_host: log %d: %s\n", (int)level, line);
	pthread_mutex_lock(&fh->lock);
	logs = realloc(fh->logs, (fh->nlogs + 1) * sizeof(*logs));
	if (logs == NULL) {
		pthread_mutex_unlock(&fh->lock);
		free(line);
		return;
	}
	fh->logs = logs;
	fh->logs[fh->nlogs++] = line;
	fh->last_level = (int)level;
	pthread_mutex_unlock(&fh->lock);
}

static struct event_base *
fake_event_base(struct troika_instance *inst)
{
	return fake_from_inst(inst)->base;
}

static const char *
fake_instance_name(struct troika_instance *inst)
{
	(void)inst;
	return "fake-check";
}

static int
fake_name_valid(const char *s, int metric)
{
	if (s == NULL || *s == '\0')
		return 0;
	for (const char *p = s; *p != '\0'; p++) {
		int alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    *p == '_' || (metric && *p == ':');
		int digit = *p >= '0' && *p <= '9';

		if (!alpha && !(digit && p != s))
			return 0;
	}
	return 1;
}

/* What the host would refuse in a sample, or NULL. */
static const char *
fake_sample_problem(const struct troika_sample *s)
{
	size_t n;

	if (!fake_name_valid(s->name, 1))
		return "invalid metric name";
	if (strncmp(s->name, "troika_check_", 13) == 0 ||
	    strncmp(s->name, "troika_plugin_", 14) == 0)
		return "reserved metric name";
	if (s->type != TROIKA_METRIC_GAUGE && s->type != TROIKA_METRIC_COUNTER)
		return "invalid metric type";
	n = strlen(s->name);
	if (s->type == TROIKA_METRIC_COUNTER &&
	    (n < 6 || strcmp(s->name + n - 6, "_total") != 0))
		return "counter name without _total";
	if (s->nlabels > 0 && s->labels == NULL)
		return "labels NULL";
	for (size_t i = 0; i < s->nlabels; i++) {
		const struct troika_label *l = &s->labels[i];

		if (!fake_name_valid(l->name, 0) ||
		    strncmp(l->name, "__", 2) == 0)
			return "invalid label name";
		if (strcmp(l->name, "check") == 0 ||
		    strcmp(l->name, "plugin") == 0)
			return "label reserved for the host";
		if (l->value == NULL)
			return "label value NULL";
	}
	return NULL;
}

static void
fake_copy_sample(struct fake_sample *d, const struct troika_sample *s)
{
	d->name = fake_strdup(s->name);
	d->help = fake_strdup(s->help);
	d->type = s->type;
	d->value = s->value;
	d->nlabels = s->nlabels;
	d->labels = fake_calloc(s->nlabels, sizeof(*d->labels));
	for (size_t i = 0; i < s->nlabels; i++) {
		d->labels[i].name = fake_strdup(s->labels[i].name);
		d->labels[i].value = fake_strdup(s->labels[i].value);
	}
}

static void
fake_result_clear(struct fake_result *r)
{
	free(r->message);
	for (size_t i = 0; i < r->nsamples; i++) {
		struct fake_sample *s = &r->samples[i];

		for (size_t j = 0; j < s->nlabels; j++) {
			free(s->labels[j].name);
			free(s->labels[j].value);
		}
		free(s->labels);
		free(s->name);
		free(s->help);
	}
	free(r->samples);
	for (size_t i = 0; i < r->nfields; i++) {
		free(r->fields[i].name);
		free(r->fields[i].value);
	}
	free(r->fields);
}

static void
fake_check_done(struct troika_task *task, const struct troika_result *res)
{
	struct fake_host *fh = task->fh;
	struct fake_result copy = { 0 }, *results;
	const struct troika_label *fields = NULL;
	size_t nfields = 0;
	const char *problem;

	if (res == NULL || res->size < offsetof(struct troika_result,
	    nsamples) + sizeof(res->nsamples)) {
		fake_violation(fh, "check_done() with a NULL or too small "
		    "result");
		return;
	}
	if (task->cancelled)
		fake_violation(fh, "check_done() after cancel()");
	if (task->done)
		fake_violation(fh, "check_done() twice for one task");
	if (fh->in_async_check)
		fake_violation(fh, "check_done() inside an async check()");
	if (res->status < TROIKA_STATUS_OK || res->status > TROIKA_STATUS_UNKNOWN)
		fake_violation(fh, "invalid status %d", (int)res->status);
	if (res->evidence < TROIKA_EVIDENCE_NONE ||
	    res->evidence > TROIKA_EVIDENCE_AMBIGUOUS)
		fake_violation(fh, "invalid evidence %d", (int)res->evidence);
	if (res->nsamples > 0 && res->samples == NULL) {
		fake_violation(fh, "samples NULL with nsamples %zu",
		    res->nsamples);
		return;
	}
	for (size_t i = 0; i < res->nsamples; i++)
		if ((problem = fake_sample_problem(&res->samples[i])) != NULL)
			fake_violation(fh, "sample %zu (%s): %s", i,
			    res->samples[i].name != NULL ?
			    res->samples[i].name : "(null)", problem);

	/* ABI 1.1 fields, when the plugin's result is large enough to have them. */
	if (res->size >= offsetof(struct troika_result, nfields) +
	    sizeof(res->nfields)) {
		nfields = res->nfields;
		fields = res->fields;
		if (nfields > 0 && fields == NULL) {
			fake_violation(fh, "fields NULL with nfields %zu",
			    nfields);
			nfields = 0;
		}
		if (nfields > 64)
			fake_violation(fh, "%zu fields, more than 64", nfields);
		for (size_t i = 0; i < nfields; i++)
			if (!fake_name_valid(fields[i].name, 0) ||
			    fields[i].value == NULL ||
			    strlen(fields[i].value) > 4096)
				fake_violation(fh, "field %zu: bad name or value",
				    i);
	}

	copy.task = task;
	copy.status = res->status;
	copy.evidence = res->evidence;
	copy.message = fake_strdup(res->message);
	copy.nsamples = res->nsamples;
	copy.samples = fake_calloc(res->nsamples, sizeof(*copy.samples));
	for (size_t i = 0; i < res->nsamples; i++)
		fake_copy_sample(&copy.samples[i], &res->samples[i]);
	copy.nfields = nfields;
	copy.fields = fake_calloc(nfields, sizeof(*copy.fields));
	for (size_t i = 0; i < nfields; i++) {
		copy.fields[i].name = fake_strdup(fields[i].name);
		copy.fields[i].value = fake_strdup(fields[i].value);
	}

	pthread_mutex_lock(&fh->lock);
	task->done = 1;
	results = realloc(fh->results, (fh->nresults + 1) * sizeof(*results));
	if (results == NULL) {
		pthread_mutex_unlock(&fh->lock);
		fake_result_clear(&copy);
		return;
	}
	fh->results = results;
	fh->results[fh->nresults++] = copy;
	pthread_mutex_unlock(&fh->lock);
}

static int64_t
fake_task_remaining_ms(struct troika_task *task)
{
	struct timespec now;
	int64_t ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (int64_t)(task->deadline.tv_sec - now.tv_sec) * 1000 +
	    (task->deadline.tv_nsec - now.tv_nsec) / 1000000;
	return ms > 0 ? ms : 0;
}

static void *
fake_spawn(struct troika_instance *inst, const char *const *argv,
    int64_t timeout_ms, size_t max_output, troika_spawn_done_cb done,
    void *arg)
{
	struct fake_host *fh = fake_from_inst(inst);

	if (fh->fail_spawn != 0) {
		errno = fh->fail_spawn;
		fh->fail_spawn = 0;
		return NULL;
	}
	fh->nspawn++;
	return spawn_start(fh->base, argv, timeout_ms, max_output, done, arg);
}

static void
fake_spawn_cancel(void *handle)
{
	if (fake_live != NULL)
		fake_live->nspawn_cancel++;
	spawn_cancel(handle);
}

static void
fake_transfer_unlink(struct fake_host *fh, struct fake_transfer *tr)
{
	for (struct fake_transfer **p = &fh->transfers; *p != NULL;
	    p = &(*p)->next) {
		if (*p == tr) {
			*p = tr->next;
			return;
		}
	}
}

static void
fake_curl_done(void *easy, int code, void *arg)
{
	struct fake_transfer *tr = arg;
	troika_curl_done_cb done = tr->done;
	void *done_arg = tr->arg;

	fake_transfer_unlink(tr->fh, tr);
	free(tr);
	done(easy, code, done_arg);
}

static int
fake_curl_add(struct troika_instance *inst, void *easy,
    troika_curl_done_cb done, void *arg)
{
	struct fake_host *fh = fake_from_inst(inst);
	struct fake_transfer *tr;
	int r;

	if (fh->fail_curl != 0) {
		r = fh->fail_curl;
		fh->fail_curl = 0;
		return r;
	}
	fh->ncurl_add++;
	if (!fh->curl_inited) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return -ENOMEM;
		fh->curl_inited = 1;
	}
	if (fh->curlm == NULL && (fh->curlm = curlm_new(fh->base)) == NULL)
		return -ENOMEM;
	if ((tr = calloc(1, sizeof(*tr))) == NULL)
		return -ENOMEM;
	tr->fh = fh;
	tr->easy = easy;
	tr->done = done;
	tr->arg = arg;
	if ((r = curlm_add(fh->curlm, easy, fake_curl_done, tr)) < 0) {
		free(tr);
		return r;
	}
	tr->next = fh->transfers;
	fh->transfers = tr;
	return 0;
}

static void
fake_curl_remove(void *easy)
{
	struct fake_host *fh = fake_live;
	struct fake_transfer *tr;

	if (fh == NULL)
		return;
	fh->ncurl_remove++;
	for (tr = fh->transfers; tr != NULL; tr = tr->next)
		if (tr->easy == easy)
			break;
	if (tr == NULL) {
		fake_violation(fh, "curl_remove() of a transfer not added");
		return;
	}
	curlm_remove(fh->curlm, easy);
	fake_transfer_unlink(fh, tr);
	free(tr);
}

static void
fake_service_unlink(struct fake_host *fh, struct fake_service_call *c)
{
	for (struct fake_service_call **p = &fh->service_calls; *p != NULL;
	    p = &(*p)->next) {
		if (*p == c) {
			*p = c->next;
			return;
		}
	}
}

static void
fake_service_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fake_service_call *c = arg;
	struct fake_host *fh = c->fh;
	troika_service_done_cb done = c->done;
	void *done_arg = c->arg;

	(void)fd;
	(void)what;
	fake_service_unlink(fh, c);
	event_free(c->ev);
	free(c);
	done(fh->service_ok, fh->service_message, done_arg);
}

static int
fake_service_control(struct troika_instance *inst, const char *op,
    int64_t timeout_ms, troika_service_done_cb done, void *arg)
{
	struct fake_host *fh = fake_from_inst(inst);
	struct timeval tv = { 0, 0 };
	struct fake_service_call *c;

	(void)timeout_ms;
	fh->nservice++;
	free(fh->service_op);
	fh->service_op = fake_strdup(op);
	if (!fh->service_set)
		return -ENOENT;
	c = fake_calloc(1, sizeof(*c));
	c->fh = fh;
	c->done = done;
	c->arg = arg;
	if ((c->ev = evtimer_new(fh->base, fake_service_cb, c)) == NULL ||
	    evtimer_add(c->ev, &tv) == -1) {
		if (c->ev != NULL)
			event_free(c->ev);
		free(c);
		return -ENOMEM;
	}
	c->next = fh->service_calls;
	fh->service_calls = c;
	return 0;
}

/* --- life cycle --- */

static void
fake_wait_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fake_host *fh = arg;

	(void)fd;
	(void)what;
	fh->wait_expired = 1;
	event_base_loopbreak(fh->base);
}

static void
fake_wait_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	/* Only wakes the loop, for results reported from other threads. */
	(void)fd;
	(void)what;
	(void)arg;
}

struct fake_host *
fake_host_new(const struct troika_option *decl)
{
	struct fake_host *fh;

	if (fake_live != NULL)
		fail_msg("fake_host: only one fake host at a time");
	fh = fake_calloc(1, sizeof(*fh));
	fh->host = (struct troika_host){
		.abi_major = TROIKA_PLUGIN_ABI_MAJOR,
		.abi_minor = TROIKA_PLUGIN_ABI_MINOR,
		.size = sizeof(struct troika_host),
		.log = fake_log,
		.event_base = fake_event_base,
		.instance_name = fake_instance_name,
		.opt_isset = fake_opt_isset,
		.opt_string = fake_opt_string,
		.opt_int = fake_opt_int,
		.opt_bool = fake_opt_bool,
		.opt_duration_ms = fake_opt_duration_ms,
		.opt_size = fake_opt_size,
		.opt_list_len = fake_opt_list_len,
		.opt_list_at = fake_opt_list_at,
		.opt_map_len = fake_opt_map_len,
		.opt_map_key = fake_opt_map_key,
		.opt_map_value = fake_opt_map_value,
		.check_done = fake_check_done,
		.task_remaining_ms = fake_task_remaining_ms,
		.spawn = fake_spawn,
		.spawn_cancel = fake_spawn_cancel,
		.curl_add = fake_curl_add,
		.curl_remove = fake_curl_remove,
		.service_control = fake_service_control,
	};
	fh->inst.fh = fh;
	fh->decl = decl;
	pthread_mutex_init(&fh->lock, NULL);
	if ((fh->base = event_base_new()) == NULL)
		fail_msg("fake_host: event_base_new failed");
	fh->wait_timer = evtimer_new(fh->base, fake_wait_timer_cb, fh);
	fh->wait_tick = event_new(fh->base, -1, EV_PERSIST, fake_wait_tick_cb,
	    fh);
	if (fh->wait_timer == NULL || fh->wait_tick == NULL)
		fail_msg("fake_host: evtimer_new failed");
	fake_live = fh;
	return fh;
}

void
fake_host_free(struct fake_host *fh)
{
	struct troika_task *task;

	if (fh == NULL)
		return;
	/* Without callbacks: the plugin's instance is gone by now. */
	curlm_free(fh->curlm);
	while (fh->transfers != NULL) {
		struct fake_transfer *tr = fh->transfers;

		fh->transfers = tr->next;
		free(tr);
	}
	if (fh->curl_inited)
		curl_global_cleanup();
	/* Children cancelled and not yet reaped hold events on our base. */
	spawn_shutdown();
	while (fh->service_calls != NULL) {
		struct fake_service_call *c = fh->service_calls;

		fh->service_calls = c->next;
		event_free(c->ev);
		free(c);
	}
	free(fh->service_message);
	free(fh->service_op);
	while ((task = fh->tasks) != NULL) {
		fh->tasks = task->next;
		free(task);
	}
	for (size_t i = 0; i < fh->nresults; i++)
		fake_result_clear(&fh->results[i]);
	free(fh->results);
	for (size_t i = 0; i < fh->nlogs; i++)
		free(fh->logs[i]);
	free(fh->logs);
	for (size_t i = 0; i < fh->nopts; i++) {
		free(fh->opts[i].name);
		fake_opt_clear(&fh->opts[i]);
	}
	free(fh->opts);
	event_free(fh->wait_timer);
	event_free(fh->wait_tick);
	event_base_free(fh->base);
	pthread_mutex_destroy(&fh->lock);
	if (fake_live == fh)
		fake_live = NULL;
	free(fh);
}

const struct troika_host *
fake_host_table(struct fake_host *fh)
{
	return &fh->host;
}

struct troika_instance *
fake_host_instance(struct fake_host *fh)
{
	return &fh->inst;
}

struct event_base *
fake_host_base(struct fake_host *fh)
{
	return fh->base;
}

int
fake_host_instance_new(struct fake_host *fh,
    const struct troika_plugin *plugin, void **ret_state)
{
	for (const struct troika_option *o = plugin->options;
	    o != NULL && o->name != NULL; o++)
		if (o->required && fake_opt_find(fh, o->name) == NULL)
			fail_msg("fake_host: required option \"%s\" not set; "
			    "the host would not call instance_new", o->name);
	return plugin->instance_new(&fh->host, &fh->inst, ret_state);
}

void
fake_host_task_set_deadline(struct troika_task *task, int64_t deadline_ms)
{
	clock_gettime(CLOCK_MONOTONIC, &task->deadline);
	task->deadline.tv_sec += deadline_ms / 1000;
	task->deadline.tv_nsec += (deadline_ms % 1000) * 1000000;
	if (task->deadline.tv_nsec >= 1000000000) {
		task->deadline.tv_sec++;
		task->deadline.tv_nsec -= 1000000000;
	}
}

struct troika_task *
fake_host_task(struct fake_host *fh, int64_t deadline_ms)
{
	struct troika_task *task = fake_calloc(1, sizeof(*task));

	task->fh = fh;
	fake_host_task_set_deadline(task, deadline_ms);
	task->next = fh->tasks;
	fh->tasks = task;
	return task;
}

void
fake_host_check(struct fake_host *fh, const struct troika_plugin *plugin,
    void *state, struct troika_task *task)
{
	fh->in_async_check = plugin->exec_model == TROIKA_EXEC_ASYNC;
	plugin->check(state, task);
	fh->in_async_check = 0;
}

void
fake_host_action(struct fake_host *fh, const struct troika_plugin *plugin,
    void *state, struct troika_task *task, const char *name,
    const char *const *argv, size_t argc)
{
	if (plugin->action == NULL)
		fail_msg("fake_host: plugin %s has no actions", plugin->name);
	fh->in_async_check = plugin->exec_model == TROIKA_EXEC_ASYNC;
	plugin->action(state, task, name, argv, argc);
	fh->in_async_check = 0;
}

void
fake_host_cancel(struct fake_host *fh, const struct troika_plugin *plugin,
    void *state, struct troika_task *task)
{
	(void)fh;
	if (plugin->cancel == NULL)
		fail_msg("fake_host: plugin %s has no cancel", plugin->name);
	plugin->cancel(state, task);
	task->cancelled = 1;
}

unsigned
fake_host_done_count(struct fake_host *fh)
{
	unsigned n;

	pthread_mutex_lock(&fh->lock);
	n = (unsigned)fh->nresults;
	pthread_mutex_unlock(&fh->lock);
	return n;
}

static void
fake_ms_to_tv(int ms, struct timeval *tv)
{
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
}

int
fake_host_wait_done(struct fake_host *fh, unsigned count, int timeout_ms)
{
	struct timeval tv, tick = { 0, 10 * 1000 };

	fh->wait_expired = 0;
	fake_ms_to_tv(timeout_ms, &tv);
	evtimer_add(fh->wait_timer, &tv);
	event_add(fh->wait_tick, &tick);
	while (fake_host_done_count(fh) < count && !fh->wait_expired)
		event_base_loop(fh->base, EVLOOP_ONCE);
	evtimer_del(fh->wait_timer);
	event_del(fh->wait_tick);
	return fake_host_done_count(fh) >= count ? 0 : -ETIMEDOUT;
}

void
fake_host_run_for(struct fake_host *fh, int ms)
{
	struct timeval tv;

	fh->wait_expired = 0;
	fake_ms_to_tv(ms, &tv);
	evtimer_add(fh->wait_timer, &tv);
	while (!fh->wait_expired)
		event_base_loop(fh->base, EVLOOP_ONCE);
	evtimer_del(fh->wait_timer);
}

const struct fake_result *
fake_host_last(struct fake_host *fh)
{
	const struct fake_result *r;

	pthread_mutex_lock(&fh->lock);
	r = fh->nresults > 0 ? &fh->results[fh->nresults - 1] : NULL;
	pthread_mutex_unlock(&fh->lock);
	return r;
}

const struct fake_sample *
fake_result_sample(const struct fake_result *res, const char *name,
    const char *label, const char *value)
{
	if (res == NULL)
		return NULL;
	for (size_t i = 0; i < res->nsamples; i++) {
		const struct fake_sample *s = &res->samples[i];
		const char *v;

		if (strcmp(s->name, name) != 0)
			continue;
		if (label == NULL)
			return s;
		v = fake_sample_label(s, label);
		if (v != NULL && value != NULL && strcmp(v, value) == 0)
			return s;
	}
	return NULL;
}

const char *
fake_sample_label(const struct fake_sample *s, const char *name)
{
	for (size_t i = 0; i < s->nlabels; i++)
		if (strcmp(s->labels[i].name, name) == 0)
			return s->labels[i].value;
	return NULL;
}

const char *
fake_result_field(const struct fake_result *res, const char *name)
{
	if (res == NULL)
		return NULL;
	for (size_t i = 0; i < res->nfields; i++)
		if (strcmp(res->fields[i].name, name) == 0)
			return res->fields[i].value;
	return NULL;
}

unsigned
fake_host_log_count(struct fake_host *fh)
{
	unsigned n;

	pthread_mutex_lock(&fh->lock);
	n = (unsigned)fh->nlogs;
	pthread_mutex_unlock(&fh->lock);
	return n;
}

const char *
fake_host_log_last(struct fake_host *fh)
{
	const char *s;

	pthread_mutex_lock(&fh->lock);
	s = fh->nlogs > 0 ? fh->logs[fh->nlogs - 1] : NULL;
	pthread_mutex_unlock(&fh->lock);
	return s;
}

int
fake_host_log_last_level(struct fake_host *fh)
{
	return fh->nlogs > 0 ? fh->last_level : -1;
}

int
fake_host_log_contains(struct fake_host *fh, const char *needle)
{
	int found = 0;

	pthread_mutex_lock(&fh->lock);
	for (size_t i = 0; i < fh->nlogs && !found; i++)
		found = strstr(fh->logs[i], needle) != NULL;
	pthread_mutex_unlock(&fh->lock);
	return found;
}

unsigned
fake_host_violations(struct fake_host *fh)
{
	return fh->violations;
}

const char *
fake_host_last_violation(struct fake_host *fh)
{
	return fh->violations > 0 ? fh->last_violation : NULL;
}

void
fake_host_set_service(struct fake_host *fh, int ok, const char *message)
{
	fh->service_set = 1;
	fh->service_ok = ok;
	free(fh->service_message);
	fh->service_message = fake_strdup(message);
}

unsigned
fake_host_service_calls(struct fake_host *fh)
{
	return fh->nservice;
}

const char *
fake_host_service_last_op(struct fake_host *fh)
{
	return fh->service_op;
}

void
fake_host_fail_next_spawn(struct fake_host *fh, int err)
{
	fh->fail_spawn = err;
}

void
fake_host_fail_next_curl_add(struct fake_host *fh, int err)
{
	fh->fail_curl = err;
}

unsigned
fake_host_spawns(struct fake_host *fh)
{
	return fh->nspawn;
}

unsigned
fake_host_spawn_cancels(struct fake_host *fh)
{
	return fh->nspawn_cancel;
}

unsigned
fake_host_curl_adds(struct fake_host *fh)
{
	return fh->ncurl_add;
}

unsigned
fake_host_curl_removes(struct fake_host *fh)
{
	return fh->ncurl_remove;
}

int
fake_host_events_pending(struct fake_host *fh)
{
	int n;

	/*
	 * The shared multi handle keeps its own timer; with no transfer
	 * left it is not the plugin's, so drop the handle (it comes back on
	 * the next curl_add).
	 */
	if (fh->transfers == NULL && fh->curlm != NULL) {
		curlm_free(fh->curlm);
		fh->curlm = NULL;
	}
	n = event_base_get_num_events(fh->base,
	    EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE);
	if (n > 0)
		event_base_dump_events(fh->base, stderr);
	return n;
}

int
fake_host_count_fds(void)
{
	DIR *d;
	struct dirent *de;
	int n = 0;

	if ((d = opendir("/proc/self/fd")) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory stream's own descriptor */
}

/* The checks the host makes on a descriptor's option declarations. */
static void
fake_check_decl(const struct troika_plugin *p)
{
	for (const struct troika_option *o = p->options; o->name != NULL; o++) {
		int numeric = o->type == TROIKA_OPT_INT ||
		    o->type == TROIKA_OPT_DURATION || o->type == TROIKA_OPT_SIZE;

		if (numeric && o->min > o->max)
			fail_msg("%s: option %s has no range", p->name, o->name);
		if (o->required && o->default_value != NULL)
			fail_msg("%s: option %s is required and has a default",
			    p->name, o->name);
		if (o->help == NULL)
			fail_msg("%s: option %s has no help", p->name, o->name);
		if (numeric && o->default_value != NULL) {
			int64_t v = 0;
			int r = o->type == TROIKA_OPT_INT ?
			    parse_int64(o->default_value, &v) :
			    o->type == TROIKA_OPT_DURATION ?
			    parse_duration_ms(o->default_value, &v) :
			    parse_size(o->default_value, &v);

			if (r < 0 || v < o->min || v > o->max)
				fail_msg("%s: default of option %s is bad",
				    p->name, o->name);
		}
	}
}

const struct troika_plugin *
fake_host_load_plugin(const char *path, void **ret_dl)
{
	troika_plugin_entry_fn entry;
	const struct troika_plugin *p;
	void *dl;

	if ((dl = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL)
		fail_msg("dlopen %s: %s", path, dlerror());
	*(void **)&entry = dlsym(dl, TROIKA_PLUGIN_ENTRY_NAME);
	if (entry == NULL)
		fail_msg("%s: no %s", path, TROIKA_PLUGIN_ENTRY_NAME);
	p = entry();
	if (p == NULL || p->abi_major != TROIKA_PLUGIN_ABI_MAJOR ||
	    p->size < sizeof(struct troika_plugin))
		fail_msg("%s: bad descriptor", path);
	if (p->name == NULL || p->version == NULL || p->description == NULL ||
	    p->options == NULL || p->instance_new == NULL ||
	    p->instance_free == NULL || p->check == NULL)
		fail_msg("%s: incomplete descriptor", path);
	if (p->exec_model != TROIKA_EXEC_ASYNC &&
	    p->exec_model != TROIKA_EXEC_BLOCKING)
		fail_msg("%s: bad exec model", path);
	if (p->exec_model == TROIKA_EXEC_BLOCKING && p->cancel != NULL)
		fail_msg("%s: cancel is for async plugins only", path);
	if (p->abi_minor >= 1 && p->actions != NULL && p->action == NULL)
		fail_msg("%s: actions without an action function", path);
	fake_check_decl(p);
	*ret_dl = dl;
	return p;
}
