/*
 * The agent configuration loader: YAML tree (yaml_tree.c) in, validated
 * struct agent_conf out, or every problem found as "file:line:col: what".
 *
 * Validation never stops at the first error: an operator fixing a config
 * wants the whole list at once. Errors are kept with their file and
 * position and sorted by them at the end, so the output reads top to
 * bottom however the checks were done internally.
 *
 * Relative paths (include, plugin_dirs) are relative to the directory of
 * the main file, like the include directives of most daemons, so that a
 * config means the same whatever the working directory of the agent.
 */
#include "conf.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "log.h"
#include "parse.h"
#include "yaml_tree.h"

#ifndef TROIKA_DEFAULT_PLUGIN_DIR
#define TROIKA_DEFAULT_PLUGIN_DIR "/usr/local/lib/troika/plugins"
#endif

#define CONF_DEFAULT_WORKERS 4
#define CONF_DEFAULT_LISTEN "127.0.0.1:9464"
#define CONF_DEFAULT_INTERVAL_MS (10 * 1000)
#define CONF_DEFAULT_TIMEOUT_MS (5 * 1000)
#define CONF_MIN_PERIOD_MS 100
/* Actions (restarts, bootstraps) have their own deadline. */
#define CONF_DEFAULT_ACTION_TIMEOUT_MS (2 * 60 * 1000)
#define CONF_MIN_ACTION_MS 1000
#define CONF_MAX_ACTION_MS (60 * 60 * 1000)
#define CONF_MAX_PERIOD_MS (7LL * 24 * 60 * 60 * 1000)
/* coordinators: */
#define CONF_MAX_COORDINATORS 16
#define CONF_DEFAULT_HEARTBEAT_MS (5 * 1000)
#define CONF_DEFAULT_QUEUED_SAMPLES 100000

/* Room for a user text quoted in an error message. */
#define CONF_EXCERPT 80

/* One error before it is sorted and formatted. */
struct conf_err {
	size_t file; /* index into conf->files */
	int line;    /* 0: no position */
	int col;
	size_t seq;  /* keeps errors at one position in the order found */
	char *msg;
};

/* A plugin looked up once per load, its option table checked once. */
struct conf_plugin {
	char *name;
	const struct troika_option *opts; /* NULL: no such plugin */
	size_t nopts;
	int bad; /* the option table itself is broken (reported) */
};

struct conf_loader {
	struct agent_conf *conf;
	conf_plugin_lookup_fn lookup;
	void *lookup_arg;
	int flags;
	struct conf_err *errs;
	size_t nerrs;
	int oom;
	struct conf_plugin *plugins;
	size_t nplugins;
};

static const char *const conf_main_keys[] = {
	"node", "plugin_dirs", "include", "workers", "metrics", "log",
	"defaults", "coordinators", "checks", NULL,
};

static const char *const conf_check_keys[] = {
	"name", "plugin", "interval", "timeout", "action_timeout", "service", NULL,
};

static const char *const conf_service_keys[] = {
	"manager", "start", "stop", "restart", "unit", "pidfile", NULL,
};

static void conf_err(struct conf_loader *ld, size_t file,
    const struct yaml_tree_node *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Arrays grow by doubling; the capacity is implied by the count. Returns
 * the array to use for one more element, or NULL (old array intact).
 */
static void *
conf_grow(void *arr, size_t n, size_t size)
{
	size_t cap;

	if (n != 0 && (n & (n - 1)) != 0)
		return arr;
	cap = n == 0 ? 1 : 2 * n;
	if (cap > SIZE_MAX / size)
		return NULL;
	return realloc(arr, cap * size);
}

static char *
conf_strdup(struct conf_loader *ld, const char *s)
{
	char *p;

	if ((p = strdup(s)) == NULL)
		ld->oom = 1;
	return p;
}

/* Record one problem at a node (NULL: the file as a whole). */
static void
conf_err(struct conf_loader *ld, size_t file, const struct yaml_tree_node *at,
    const char *fmt, ...)
{
	struct conf_err *errs, *e;
	va_list ap;
	char *msg;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0) {
		ld->oom = 1;
		return;
	}
	if ((errs = conf_grow(ld->errs, ld->nerrs, sizeof(*errs))) == NULL) {
		free(msg);
		ld->oom = 1;
		return;
	}
	ld->errs = errs;
	e = &errs[ld->nerrs];
	e->file = file;
	e->line = at != NULL ? at->line : 0;
	e->col = at != NULL ? at->col : 0;
	e->seq = ld->nerrs;
	e->msg = msg;
	ld->nerrs++;
}

static int
conf_err_cmp(const void *a, const void *b)
{
	const struct conf_err *x = a, *y = b;

	if (x->file != y->file)
		return x->file < y->file ? -1 : 1;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int
conf_errors_add(struct conf_errors *errs, char *msg)
{
	char **msgs;

	if ((msgs = conf_grow(errs->msgs, errs->n, sizeof(*msgs))) == NULL)
		return -ENOMEM;
	errs->msgs = msgs;
	msgs[errs->n++] = msg;
	return 0;
}

/*
 * Hand the loader's errors to the caller as "file:line:col: message",
 * sorted by position.
 */
static void
conf_errors_flush(struct conf_loader *ld, struct conf_errors *errs)
{
	char *msg;

	if (ld->nerrs > 1)
		qsort(ld->errs, ld->nerrs, sizeof(*ld->errs), conf_err_cmp);
	for (size_t i = 0; i < ld->nerrs; i++) {
		struct conf_err *e = &ld->errs[i];
		const char *file = e->file < ld->conf->nfiles ?
		    ld->conf->files[e->file] : ld->conf->path;
		char name[PATH_MAX];
		int r;

		yaml_tree_excerpt(file != NULL ? file : "?", name,
		    sizeof(name));
		if (e->line > 0)
			r = asprintf(&msg, "%s:%d:%d: %s", name, e->line,
			    e->col, e->msg);
		else
			r = asprintf(&msg, "%s: %s", name, e->msg);
		if (r < 0 || conf_errors_add(errs, msg) < 0) {
			if (r >= 0)
				free(msg);
			ld->oom = 1;
		}
		free(e->msg);
	}
	free(ld->errs);
	ld->errs = NULL;
	ld->nerrs = 0;
	if (ld->oom) {
		/* Best effort: without memory even this may fail. */
		if ((msg = strdup("out of memory while loading the "
		    "configuration")) != NULL &&
		    conf_errors_add(errs, msg) < 0)
			free(msg);
	}
}

void
conf_errors_clear(struct conf_errors *errs)
{
	if (errs == NULL)
		return;
	for (size_t i = 0; i < errs->n; i++)
		free(errs->msgs[i]);
	free(errs->msgs);
	errs->msgs = NULL;
	errs->n = 0;
}

void
conf_strv_free(char **v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void
conf_value_clear(struct conf_value *v)
{
	free(v->name);
	free(v->str);
	conf_strv_free(v->list, v->nlist);
	conf_strv_free(v->keys, v->nmap);
	conf_strv_free(v->vals, v->nmap);
}

static void
conf_check_clear(struct conf_check *c)
{
	free(c->name);
	free(c->plugin);
	for (size_t i = 0; i < c->nopts; i++)
		conf_value_clear(&c->opts[i]);
	free(c->opts);
	free(c->canonical);
	conf_strv_free(c->service.start, c->service.nstart);
	conf_strv_free(c->service.stop, c->service.nstop);
	conf_strv_free(c->service.restart, c->service.nrestart);
	free(c->service.unit);
	free(c->service.pidfile);
}

void
conf_free(struct agent_conf *conf)
{
	if (conf == NULL)
		return;
	free(conf->path);
	free(conf->node);
	conf_strv_free(conf->plugin_dirs, conf->nplugin_dirs);
	free(conf->include_dir);
	free(conf->metrics_listen);
	conf_strv_free(conf->uplink.targets, conf->uplink.ntargets);
	free(conf->uplink.tls_ca);
	free(conf->uplink.tls_cert);
	free(conf->uplink.tls_key);
	for (size_t i = 0; i < conf->nchecks; i++)
		conf_check_clear(&conf->checks[i]);
	free(conf->checks);
	conf_strv_free(conf->files, conf->nfiles);
	free(conf);
}

/* Remember a file as read; its index names it in errors and positions. */
static int
conf_add_file(struct conf_loader *ld, const char *path, size_t *ret_idx)
{
	struct agent_conf *conf = ld->conf;
	char **files, *p;

	if ((p = conf_strdup(ld, path)) == NULL)
		return -ENOMEM;
	if ((files = conf_grow(conf->files, conf->nfiles, sizeof(*files))) ==
	    NULL) {
		free(p);
		ld->oom = 1;
		return -ENOMEM;
	}
	conf->files = files;
	files[conf->nfiles] = p;
	*ret_idx = conf->nfiles++;
	return 0;
}

static struct conf_pos
conf_pos_of(struct conf_loader *ld, size_t file,
    const struct yaml_tree_node *n)
{
	struct conf_pos pos;

	pos.file = ld->conf->files[file];
	pos.line = n->line;
	pos.col = n->col;
	return pos;
}

/* Parse one file into a tree, reporting why not. NULL root: empty file. */
static int
conf_parse_file(struct conf_loader *ld, const char *path, size_t *ret_file,
    struct yaml_tree_node **ret_root)
{
	struct yaml_tree_error yerr;
	struct yaml_tree_node pos;
	int r;

	*ret_root = NULL;
	if ((r = conf_add_file(ld, path, ret_file)) < 0)
		return r;
	if ((r = yaml_tree_parse_file(path, ret_root, &yerr)) < 0) {
		memset(&pos, 0, sizeof(pos));
		pos.line = yerr.line;
		pos.col = yerr.col;
		conf_err(ld, *ret_file, &pos, "%s", yerr.msg);
		return r;
	}
	return 0;
}

/*
 * A path from the config, relative to the directory of the main file.
 * Trailing slashes go, so that file names built from it stay clean.
 */
static char *
conf_resolve(struct conf_loader *ld, const char *rel)
{
	const char *mainpath = ld->conf->path, *slash;
	size_t len = strlen(rel);
	char *p;
	int r;

	while (len > 1 && rel[len - 1] == '/')
		len--;
	slash = strrchr(mainpath, '/');
	if (rel[0] == '/' || slash == NULL)
		r = asprintf(&p, "%.*s", (int)len, rel);
	else
		r = asprintf(&p, "%.*s/%.*s", (int)(slash - mainpath), mainpath,
		    (int)len, rel);
	if (r < 0) {
		ld->oom = 1;
		return NULL;
	}
	return p;
}

/*
 * Conversions of scalar text, shared by the config's own keys, plugin
 * options and plugin defaults.
 */

static const char *
conf_type_str(enum troika_option_type type)
{
	switch (type) {
	case TROIKA_OPT_STRING:
		return "a string";
	case TROIKA_OPT_INT:
		return "an integer";
	case TROIKA_OPT_BOOL:
		return "a boolean";
	case TROIKA_OPT_DURATION:
		return "a duration";
	case TROIKA_OPT_SIZE:
		return "a size";
	case TROIKA_OPT_STRING_LIST:
		return "a sequence of strings";
	case TROIKA_OPT_STRING_MAP:
		return "a mapping of strings";
	}
	return "an unknown type";
}

static int
conf_type_is_scalar(enum troika_option_type type)
{
	return type >= TROIKA_OPT_STRING && type <= TROIKA_OPT_SIZE;
}

static void
conf_format_num(enum troika_option_type type, int64_t v, char *buf,
    size_t len)
{
	if (type == TROIKA_OPT_DURATION)
		format_duration_ms(v, buf, len);
	else if (type == TROIKA_OPT_SIZE)
		format_size(v, buf, len);
	else
		snprintf(buf, len, "%lld", (long long)v);
}

/*
 * Convert text to the option's type and check its range. Returns 0, or
 * -EINVAL with the reason in msg ("invalid duration 'x' for 'interval'
 * (expected e.g. 500ms, 5s, 1m)").
 */
static int
conf_convert(const struct troika_option *o, const char *text,
    int64_t *ret_num, char *msg, size_t msglen)
{
	char ex[CONF_EXCERPT], lo[32], hi[32];
	int64_t v = 0;
	int b, r;

	yaml_tree_excerpt(text, ex, sizeof(ex));
	switch (o->type) {
	case TROIKA_OPT_STRING:
		*ret_num = 0;
		return 0;
	case TROIKA_OPT_BOOL:
		if (parse_bool(text, &b) < 0) {
			snprintf(msg, msglen, "invalid boolean '%s' for '%s' "
			    "(expected true or false)", ex, o->name);
			return -EINVAL;
		}
		*ret_num = b;
		return 0;
	case TROIKA_OPT_INT:
		r = parse_int64(text, &v);
		if (r == -EINVAL) {
			snprintf(msg, msglen, "invalid integer '%s' for '%s'",
			    ex, o->name);
			return -EINVAL;
		}
		break;
	case TROIKA_OPT_DURATION:
		r = parse_duration_ms(text, &v);
		if (r == -EINVAL) {
			snprintf(msg, msglen, "invalid duration '%s' for '%s' "
			    "(expected e.g. 500ms, 5s, 1m)", ex, o->name);
			return -EINVAL;
		}
		break;
	case TROIKA_OPT_SIZE:
		r = parse_size(text, &v);
		if (r == -EINVAL) {
			snprintf(msg, msglen, "invalid size '%s' for '%s' "
			    "(expected e.g. 512, 64KiB, 1MB)", ex, o->name);
			return -EINVAL;
		}
		break;
	default:
		snprintf(msg, msglen, "'%s' is not a scalar option", o->name);
		return -EINVAL;
	}

	/* A number: r is 0 or -ERANGE (it did not fit in 64 bits). */
	if (o->min <= o->max && (r < 0 || v < o->min || v > o->max)) {
		conf_format_num(o->type, o->min, lo, sizeof(lo));
		conf_format_num(o->type, o->max, hi, sizeof(hi));
		snprintf(msg, msglen, "'%s' out of range: %s (expected %s..%s)",
		    o->name, ex, lo, hi);
		return -EINVAL;
	}
	if (r < 0) {
		snprintf(msg, msglen, "'%s' out of range: %s (too large)",
		    o->name, ex);
		return -EINVAL;
	}
	*ret_num = v;
	return 0;
}

/*
 * The text of a scalar value, or NULL after reporting why there is none:
 * a sequence or mapping where a scalar belongs, or a null.
 */
static const char *
conf_scalar(struct conf_loader *ld, size_t file,
    const struct yaml_tree_node *v, const char *key,
    enum troika_option_type type)
{
	if (yaml_tree_is_null(v)) {
		conf_err(ld, file, v, "missing value for '%s' (expected %s)",
		    key, conf_type_str(type));
		return NULL;
	}
	if (v->kind != YAML_TREE_SCALAR) {
		conf_err(ld, file, v, "expected %s for '%s' (got %s)",
		    conf_type_str(type), key, yaml_tree_what(v));
		return NULL;
	}
	return v->str;
}

/* A scalar value converted to type within min..max. -1 after reporting. */
static int
conf_number(struct conf_loader *ld, size_t file,
    const struct yaml_tree_node *v, const char *key,
    enum troika_option_type type, int64_t min, int64_t max,
    int64_t *ret)
{
	struct troika_option o = {
		.name = key, .type = type, .min = min, .max = max,
	};
	const char *text;
	char msg[512];

	if ((text = conf_scalar(ld, file, v, key, type)) == NULL)
		return -1;
	if (conf_convert(&o, text, ret, msg, sizeof(msg)) < 0) {
		conf_err(ld, file, v, "%s", msg);
		return -1;
	}
	return 0;
}

/* 1: a mapping; 0: a null (an empty section); -1 after reporting. */
static int
conf_section(struct conf_loader *ld, size_t file,
    const struct yaml_tree_node *v, const char *key)
{
	if (yaml_tree_is_null(v))
		return 0;
	if (v->kind != YAML_TREE_MAPPING) {
		conf_err(ld, file, v, "expected a mapping for '%s' (got %s)",
		    key, yaml_tree_what(v));
		return -1;
	}
	return 1;
}

/* ", "-joined names for "expected one of: ..." messages. */
static char *
conf_join(struct conf_loader *ld, const char *const *fixed,
    const struct troika_option *opts)
{
	struct evbuffer *b;
	const char *sep = "";
	char *s = NULL;
	size_t len;

	if ((b = evbuffer_new()) == NULL)
		goto nomem;
	for (size_t i = 0; fixed != NULL && fixed[i] != NULL; i++) {
		evbuffer_add_printf(b, "%s%s", sep, fixed[i]);
		sep = ", ";
	}
	for (size_t i = 0; opts != NULL && opts[i].name != NULL; i++) {
		evbuffer_add_printf(b, "%s%s", sep, opts[i].name);
		sep = ", ";
	}
	len = evbuffer_get_length(b);
	if ((s = malloc(len + 1)) == NULL)
		goto nomem;
	evbuffer_remove(b, s, len);
	s[len] = '\0';
	evbuffer_free(b);
	return s;

nomem:
	evbuffer_free(b);
	ld->oom = 1;
	return NULL;
}

static int
conf_in_list(const char *const *list, const char *s)
{
	for (size_t i = 0; list[i] != NULL; i++)
		if (strcmp(list[i], s) == 0)
			return 1;
	return 0;
}

static void
conf_unknown_key(struct conf_loader *ld, size_t file,
    const struct yaml_tree_node *key, const char *where,
    const char *const *fixed, const struct troika_option *opts)
{
	char ex[CONF_EXCERPT];
	char *expected = conf_join(ld, fixed, opts);

	conf_err(ld, file, key, "unknown key '%s'%s (expected one of: %s)",
	    yaml_tree_excerpt(key->str, ex, sizeof(ex)), where,
	    expected != NULL ? expected : "?");
	free(expected);
}

/* A non-empty string value, copied; NULL after reporting. */
static char *
conf_string(struct conf_loader *ld, size_t file,
    const struct yaml_tree_node *v, const char *key)
{
	const char *text;

	if ((text = conf_scalar(ld, file, v, key, TROIKA_OPT_STRING)) == NULL)
		return NULL;
	if (*text == '\0') {
		conf_err(ld, file, v, "'%s' must not be empty", key);
		return NULL;
	}
	return conf_strdup(ld, text);
}

/*
 * plugin_dirs: a non-empty sequence of directories, resolved against the
 * main file's directory. Returns 0 with the array set, -1 after reporting.
 */
static int
conf_dirs(struct conf_loader *ld, size_t file, const struct yaml_tree_node *v,
    char ***ret_dirs, size_t *ret_n)
{
	char **dirs = NULL, **p;
	size_t n = 0;
	int bad = 0;

	if (yaml_tree_is_null(v) || v->kind != YAML_TREE_SEQUENCE) {
		conf_err(ld, file, v, "expected a sequence of directories for "
		    "'plugin_dirs' (got %s)", yaml_tree_what(v));
		return -1;
	}
	if (v->nitems == 0) {
		conf_err(ld, file, v, "'plugin_dirs' must not be empty");
		return -1;
	}
	for (size_t i = 0; i < v->nitems; i++) {
		const struct yaml_tree_node *item = v->items[i];
		const char *text;
		char *dir;

		text = conf_scalar(ld, file, item, "plugin_dirs",
		    TROIKA_OPT_STRING);
		if (text == NULL) {
			bad = 1;
			continue;
		}
		if (*text == '\0') {
			conf_err(ld, file, item,
			    "'plugin_dirs' entries must not be empty");
			bad = 1;
			continue;
		}
		if ((dir = conf_resolve(ld, text)) == NULL)
			continue;
		if ((p = conf_grow(dirs, n, sizeof(*dirs))) == NULL) {
			free(dir);
			ld->oom = 1;
			continue;
		}
		dirs = p;
		dirs[n++] = dir;
	}
	if (bad || ld->oom) {
		conf_strv_free(dirs, n);
		return -1;
	}
	*ret_dirs = dirs;
	*ret_n = n;
	return 0;
}

/*
 * "host:port" with a port 1..65535; an IPv6 host goes in brackets
 * ("[::1]:9464"); "" disables. Returns 0 or -1 with a reason in msg.
 */
static int
conf_check_listen(const char *s, char *msg, size_t msglen)
{
	char ex[CONF_EXCERPT], host[256];
	int port, r;

	if (*s == '\0')
		return 0;
	yaml_tree_excerpt(s, ex, sizeof(ex));
	if ((r = parse_hostport(s, host, sizeof(host), 1, &port)) == -ERANGE) {
		snprintf(msg, msglen, "port out of range in 'listen': '%s' "
		    "(expected 1..65535)", ex);
		return -1;
	}
	if (r == 0)
		return 0;
	snprintf(msg, msglen, "invalid address '%s' for 'listen' (expected "
	    "host:port, e.g. 127.0.0.1:9464 or [::1]:9464, or \"\" to "
	    "disable)", ex);
	return -1;
}

static void
conf_metrics(struct conf_loader *ld, size_t file,
    const struct yaml_tree_node *v)
{
	const struct yaml_tree_node *val;
	const char *text;
	char msg[512];

	if (conf_section(ld, file, v, "metrics") <= 0)
		return;
	for (size_t i = 0; i < v->npairs; i++) {
		static const char *const keys[] = { "listen", NULL };

		if (strcmp(v->pairs[i].key->str, "listen") != 0) {
			conf_unknown_key(ld, file, v->pairs[i].key,
			    " in 'metrics'", keys, NULL);
			continue;
		}
		val = v->pairs[i].value;
		text = conf_scalar(ld, file, val, "listen", TROIKA_OPT_STRING);
		if (text == NULL)
			continue;
		if (conf_check_listen(text, msg, sizeof(msg)) < 0) {
			conf_err(ld, file, val, "%s", msg);
			continue;
		}
		free(ld->conf->metrics_listen);
		ld->conf->metrics_listen = conf_strdup(ld, text);
	}
}

static void
conf_log(struct conf_loader *ld, size_t file, const struct yaml_tree_node *v)
{
	static const char *const keys[] = { "level", "target", NULL };
	char ex[CONF_EXCERPT];

	if (conf_section(ld, file, v, "log") <= 0)
		return;
	for (size_t i = 0; i < v->npairs; i++) {
		const char *key = v->pairs[i].key->str;
		const struct yaml_tree_node *val = v->pairs[i].value;
		const char *text;
		int level;

		if (!conf_in_list(keys, key)) {
			conf_unknown_key(ld, file, v->pairs[i].key, " in 'log'",
			    keys, NULL);
			continue;
		}
		if ((text = conf_scalar(ld, file, val, key,
		    TROIKA_OPT_STRING)) == NULL)
			continue;
		yaml_tree_excerpt(text, ex, sizeof(ex));
		if (strcmp(key, "level") == 0) {
			if ((level = log_level_from_str(text)) < 0)
				conf_err(ld, file, val, "invalid log level "
				    "'%s' (expected one of: err, warning, "
				    "info, debug)", ex);
			else
				ld->conf->log_level = level;
		} else if (strcmp(text, "stderr") == 0) {
			ld->conf->log_syslog = 0;
		} else if (strcmp(text, "syslog") == 0) {
			ld->conf->log_syslog = 1;
		} else {
			conf_err(ld, file, val, "invalid log target '%s' "
			    "(expected one of: stderr, syslog)", ex);
		}
	}
}

static void
conf_defaults(struct conf_loader *ld, size_t file,
    const struct yaml_tree_node *v)
{
	static const char *const keys[] = { "interval", "timeout",
	    "action_timeout", NULL };
	const struct yaml_tree_node *tnode = NULL;
	struct agent_conf *conf = ld->conf;
	int64_t ms;

	if (conf_section(ld, file, v, "defaults") <= 0)
		return;
	for (size_t i = 0; i < v->npairs; i++) {
		const char *key = v->pairs[i].key->str;
		const struct yaml_tree_node *val = v->pairs[i].value;

		if (!conf_in_list(keys, key)) {
			conf_unknown_key(ld, file, v->pairs[i].key,
			    " in 'defaults'", keys, NULL);
			continue;
		}
		if (strcmp(key, "action_timeout") == 0) {
			if (conf_number(ld, file, val, key, TROIKA_OPT_DURATION,
			    CONF_MIN_ACTION_MS, CONF_MAX_ACTION_MS, &ms) == 0)
				conf->default_action_timeout_ms = ms;
			continue;
		}
		if (conf_number(ld, file, val, key, TROIKA_OPT_DURATION,
		    CONF_MIN_PERIOD_MS, CONF_MAX_PERIOD_MS, &ms) < 0)
			continue;
		if (strcmp(key, "interval") == 0) {
			conf->default_interval_ms = ms;
		} else {
			conf->default_timeout_ms = ms;
			tnode = val;
		}
	}
	if (conf->default_timeout_ms > conf->default_interval_ms) {
		char t[32], iv[32];

		/* As in a check: only a timeout written here is an error. */
		format_duration_ms(conf->default_timeout_ms, t, sizeof(t));
		format_duration_ms(conf->default_interval_ms, iv, sizeof(iv));
		if (tnode != NULL)
			conf_err(ld, file, tnode, "'timeout' %s is longer than "
			    "'interval' %s in 'defaults'", t, iv);
		conf->default_timeout_ms = conf->default_interval_ms;
	}
}

/* coordinators.targets: 1..16 distinct "host:port" (a port is required). */
static void
conf_targets(struct conf_loader *ld, size_t file,
    const struct yaml_tree_node *v, struct conf_uplink *u)
{
	char ex[CONF_EXCERPT], host[256];
	char **targets = NULL, **p;
	size_t n = 0;
	int port, r;

	if (yaml_tree_is_null(v) || v->kind != YAML_TREE_SEQUENCE ||
	    v->nitems == 0 || v->nitems > CONF_MAX_COORDINATORS) {
		conf_err(ld, file, v, "expected a sequence of 1 to %d "
		    "coordinator addresses (host:port) for 'targets' (got %s)",
		    CONF_MAX_COORDINATORS, yaml_tree_is_null(v) ||
		    v->kind != YAML_TREE_SEQUENCE ? yaml_tree_what(v) :
		    v->nitems == 0 ? "an empty sequence" : "too many");
		return;
	}
	for (size_t i = 0; i < v->nitems; i++) {
		const struct yaml_tree_node *item = v->items[i];
		const char *text;
		int dup = 0;

		text = conf_scalar(ld, file, item, "targets",
		    TROIKA_OPT_STRING);
		if (text == NULL)
			continue;
		yaml_tree_excerpt(text, ex, sizeof(ex));
		if ((r = parse_hostport(text, host, sizeof(host), 1,
		    &port)) != 0) {
			if (r == -ERANGE)
				conf_err(ld, file, item, "port out of range in "
				    "coordinator address '%s' (expected "
				    "1..65535)", ex);
			else
				conf_err(ld, file, item, "invalid coordinator "
				    "address '%s' (expected host:port, e.g. "
				    "127.0.0.1:7443 or [::1]:7443)", ex);
			continue;
		}
		for (size_t j = 0; j < n; j++)
			dup |= strcmp(targets[j], text) == 0;
		if (dup) {
			conf_err(ld, file, item, "coordinator '%s' is listed "
			    "twice", ex);
			continue;
		}
		if ((p = conf_grow(targets, n, sizeof(*targets))) == NULL) {
			ld->oom = 1;
			break;
		}
		targets = p;
		if ((targets[n] = conf_strdup(ld, text)) != NULL)
			n++;
	}
	conf_strv_free(u->targets, u->ntargets);
	u->targets = targets;
	u->ntargets = n;
}

static void
conf_uplink_tls(struct conf_loader *ld, size_t file,
    const struct yaml_tree_node *v, struct conf_uplink *u)
{
	static const char *const keys[] = { "ca", "cert", "key", NULL };
	const struct yaml_tree_node *cert = NULL, *key = NULL;

	if (conf_section(ld, file, v, "tls") < 0)
		return;
	u->tls = 1;
	for (size_t i = 0; v->kind == YAML_TREE_MAPPING && i < v->npairs; i++) {
		const char *name = v->pairs[i].key->str;
		const struct yaml_tree_node *val = v->pairs[i].value;
		char *s, **dst;

		if (!conf_in_list(keys, name)) {
			conf_unknown_key(ld, file, v->pairs[i].key,
			    " in 'coordinators.tls'", keys, NULL);
			continue;
		}
		if ((s = conf_string(ld, file, val, name)) == NULL)
			continue;
		if (strcmp(name, "ca") == 0) {
			dst = &u->tls_ca;
		} else if (strcmp(name, "cert") == 0) {
			dst = &u->tls_cert;
			cert = val;
		} else {
			dst = &u->tls_key;
			key = val;
		}
		free(*dst);
		*dst = conf_resolve(ld, s);
		free(s);
	}
	if ((cert == NULL) != (key == NULL))
		conf_err(ld, file, cert != NULL ? cert : key, "'cert' and "
		    "'key' go together in 'coordinators.tls' (mutual TLS)");
}

static void
conf_coordinators(struct conf_loader *ld, size_t file,
    const struct yaml_tree_node *v)
{
	static const char *const keys[] = { "targets", "heartbeat",
	    "timeout", "max_queued_samples", "tls", NULL };
	struct conf_uplink *u = &ld->conf->uplink;
	const struct yaml_tree_node *tnode = NULL, *targets = NULL;
	int64_t num;

	if (conf_section(ld, file, v, "coordinators") <= 0)
		return;
	for (size_t i = 0; i < v->npairs; i++) {
		const char *key = v->pairs[i].key->str;
		const struct yaml_tree_node *val = v->pairs[i].value;

		if (!conf_in_list(keys, key)) {
			conf_unknown_key(ld, file, v->pairs[i].key,
			    " in 'coordinators'", keys, NULL);
		} else if (strcmp(key, "targets") == 0) {
			targets = val;
			conf_targets(ld, file, val, u);
		} else if (strcmp(key, "tls") == 0) {
			conf_uplink_tls(ld, file, val, u);
		} else if (strcmp(key, "max_queued_samples") == 0) {
			if (conf_number(ld, file, val, key, TROIKA_OPT_INT,
			    1000, 100000000, &num) == 0)
				u->max_queued_samples = num;
		} else if (conf_number(ld, file, val, key, TROIKA_OPT_DURATION,
		    CONF_MIN_PERIOD_MS, 60 * 60 * 1000, &num) == 0) {
			if (strcmp(key, "heartbeat") == 0) {
				u->heartbeat_ms = num;
			} else {
				u->timeout_ms = num;
				tnode = val;
			}
		}
	}
	if (targets == NULL)
		conf_err(ld, file, v, "'coordinators' needs 'targets' (a "
		    "sequence of host:port)");
	if (tnode == NULL)
		u->timeout_ms = 3 * u->heartbeat_ms;
	else if (u->timeout_ms <= u->heartbeat_ms) {
		char t[32], h[32];

		conf_err(ld, file, tnode, "'timeout' %s must be longer than "
		    "'heartbeat' %s in 'coordinators'",
		    format_duration_ms(u->timeout_ms, t, sizeof(t)),
		    format_duration_ms(u->heartbeat_ms, h, sizeof(h)));
	}
}

static int
conf_str_equal(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

int
conf_uplink_equal(const struct conf_uplink *a, const struct conf_uplink *b)
{
	if (a->ntargets != b->ntargets || a->heartbeat_ms != b->heartbeat_ms ||
	    a->timeout_ms != b->timeout_ms ||
	    a->max_queued_samples != b->max_queued_samples ||
	    a->tls != b->tls || !conf_str_equal(a->tls_ca, b->tls_ca) ||
	    !conf_str_equal(a->tls_cert, b->tls_cert) ||
	    !conf_str_equal(a->tls_key, b->tls_key))
		return 0;
	for (size_t i = 0; i < a->ntargets; i++)
		if (strcmp(a->targets[i], b->targets[i]) != 0)
			return 0;
	return 1;
}

/*
 * Plugins and their option tables. A table is checked once per load (the
 * first check using the plugin is where its problems are reported), since
 * a broken table is the plugin's fault, not each check's.
 */

static int
conf_check_table(struct conf_loader *ld, size_t file,
    const struct yaml_tree_node *at, const char *plugin,
    const struct troika_option *opts)
{
	char msg[512], ex[CONF_EXCERPT];
	int bad = 0;

	yaml_tree_excerpt(plugin, ex, sizeof(ex));
	for (size_t i = 0; opts[i].name != NULL; i++) {
		const struct troika_option *o = &opts[i];
		int64_t num;

		if (o->name[0] == '\0' ||
		    conf_in_list(conf_check_keys, o->name)) {
			conf_err(ld, file, at, "plugin '%s' declares option "
			    "'%s', a name reserved for the host", ex, o->name);
			bad = 1;
			continue;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(opts[j].name, o->name) == 0) {
				conf_err(ld, file, at, "plugin '%s' declares "
				    "option '%s' twice", ex, o->name);
				bad = 1;
				break;
			}
		}
		if (o->type < TROIKA_OPT_STRING ||
		    o->type > TROIKA_OPT_STRING_MAP) {
			conf_err(ld, file, at, "plugin '%s' declares option "
			    "'%s' with unknown type %d", ex, o->name,
			    (int)o->type);
			bad = 1;
			continue;
		}
		if (o->default_value == NULL || !conf_type_is_scalar(o->type))
			continue;
		if (conf_convert(o, o->default_value, &num, msg,
		    sizeof(msg)) < 0) {
			conf_err(ld, file, at, "plugin '%s' has a bad default: "
			    "%s", ex, msg);
			bad = 1;
		}
	}
	return bad ? -1 : 0;
}

/* The plugin of a check, looked up (and its table checked) once. */
static const struct conf_plugin *
conf_plugin_get(struct conf_loader *ld, size_t file,
    const struct yaml_tree_node *at, const char *name)
{
	struct conf_plugin *p;

	for (size_t i = 0; i < ld->nplugins; i++)
		if (strcmp(ld->plugins[i].name, name) == 0)
			return &ld->plugins[i];
	if ((p = conf_grow(ld->plugins, ld->nplugins, sizeof(*p))) == NULL) {
		ld->oom = 1;
		return NULL;
	}
	ld->plugins = p;
	p = &ld->plugins[ld->nplugins];
	memset(p, 0, sizeof(*p));
	if ((p->name = conf_strdup(ld, name)) == NULL)
		return NULL;
	ld->nplugins++;
	p->opts = ld->lookup != NULL ? ld->lookup(name, ld->lookup_arg) : NULL;
	if (p->opts != NULL) {
		while (p->opts[p->nopts].name != NULL)
			p->nopts++;
		if (conf_check_table(ld, file, at, name, p->opts) < 0)
			p->bad = 1;
	}
	return p;
}

static void
conf_plugins_free(struct conf_loader *ld)
{
	for (size_t i = 0; i < ld->nplugins; i++)
		free(ld->plugins[i].name);
	free(ld->plugins);
	ld->plugins = NULL;
	ld->nplugins = 0;
}

/* A sequence of scalars (STRING_LIST), copied into val. */
static void
conf_opt_list(struct conf_loader *ld, size_t file,
    const struct yaml_tree_node *v, struct conf_value *val)
{
	if (v->nitems > 0 &&
	    (val->list = calloc(v->nitems, sizeof(*val->list))) == NULL) {
		ld->oom = 1;
		return;
	}
	for (size_t i = 0; i < v->nitems; i++) {
		const char *text = conf_scalar(ld, file, v->items[i],
		    val->name, TROIKA_OPT_STRING);

		if (text != NULL && (val->list[val->nlist] =
		    conf_strdup(ld, text)) != NULL)
			val->nlist++;
	}
}

/* A mapping of scalars (STRING_MAP), copied into val in file order. */
static void
conf_opt_map(struct conf_loader *ld, size_t file,
    const struct yaml_tree_node *v, struct conf_value *val)
{
	if (v->npairs > 0 &&
	    ((val->keys = calloc(v->npairs, sizeof(*val->keys))) == NULL ||
	    (val->vals = calloc(v->npairs, sizeof(*val->vals))) == NULL)) {
		ld->oom = 1;
		return;
	}
	for (size_t i = 0; i < v->npairs; i++) {
		char ex[CONF_EXCERPT];
		const char *text = conf_scalar(ld, file, v->pairs[i].value,
		    yaml_tree_excerpt(v->pairs[i].key->str, ex, sizeof(ex)),
		    TROIKA_OPT_STRING);
		char *k, *s;

		if (text == NULL)
			continue;
		k = conf_strdup(ld, v->pairs[i].key->str);
		s = conf_strdup(ld, text);
		if (k == NULL || s == NULL) {
			free(k);
			free(s);
			continue;
		}
		val->keys[val->nmap] = k;
		val->vals[val->nmap] = s;
		val->nmap++;
	}
}

/* A plugin option given in a check. */
static void
conf_opt_set(struct conf_loader *ld, size_t file,
    const struct troika_option *o, const struct yaml_tree_node *v,
    struct conf_value *val)
{
	const char *text;
	char msg[512];

	val->isset = 1;
	val->hasvalue = 1;
	val->pos = conf_pos_of(ld, file, v);
	if (conf_type_is_scalar(o->type)) {
		if ((text = conf_scalar(ld, file, v, o->name, o->type)) == NULL)
			return;
		if (conf_convert(o, text, &val->num, msg, sizeof(msg)) < 0) {
			conf_err(ld, file, v, "%s", msg);
			return;
		}
		val->str = conf_strdup(ld, text);
		return;
	}
	if (o->type == TROIKA_OPT_STRING_LIST) {
		if (yaml_tree_is_null(v) || v->kind != YAML_TREE_SEQUENCE)
			conf_err(ld, file, v, "expected %s for '%s' (got %s)",
			    conf_type_str(o->type), o->name,
			    yaml_tree_what(v));
		else
			conf_opt_list(ld, file, v, val);
		return;
	}
	if (yaml_tree_is_null(v) || v->kind != YAML_TREE_MAPPING)
		conf_err(ld, file, v, "expected %s for '%s' (got %s)",
		    conf_type_str(o->type), o->name, yaml_tree_what(v));
	else
		conf_opt_map(ld, file, v, val);
}

/*
 * Text output shared by conf_print() and the canonical form: a string is
 * written plain when YAML cannot take it for anything else (a number, a
 * boolean, a null, a flow or block indicator), and double-quoted with
 * escapes otherwise.
 */

static int
conf_plain_ok(const char *s)
{
	static const char *const words[] = {
		"true", "True", "TRUE", "false", "False", "FALSE", "yes", "Yes",
		"YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF",
		"y", "Y", "n", "N", "null", "Null", "NULL", NULL,
	};

	if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
	    *s == '_' || *s == '/'))
		return 0;
	for (const char *c = s; *c != '\0'; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || *c == '_' || *c == '.' ||
		    *c == '/' || *c == '-'))
			return 0;
	return !conf_in_list(words, s);
}

/*
 * Characters that written raw would not read back as themselves: C1
 * controls (refused by the YAML reader), line breaks YAML folds even
 * inside quotes (U+0085, U+2028, U+2029), the byte order mark and the
 * non-characters U+FFFE and U+FFFF. Writes the escape to esc and returns
 * the length in bytes of the UTF-8 sequence at c, or 0 if it is fine.
 */
static size_t
conf_unicode_escape(const char *c, char *esc, size_t len)
{
	const unsigned char *u = (const unsigned char *)c;

	if (u[0] == 0xc2 && u[1] >= 0x80 && u[1] <= 0x9f) {
		snprintf(esc, len, "\\x%02x", u[1]);
		return 2;
	}
	if (u[0] == 0xe2 && u[1] == 0x80 && (u[2] == 0xa8 || u[2] == 0xa9)) {
		snprintf(esc, len, "\\u%04x", 0x2000 + (u[2] & 0x3f));
		return 3;
	}
	if ((u[0] == 0xef && u[1] == 0xbb && u[2] == 0xbf) ||
	    (u[0] == 0xef && u[1] == 0xbf && (u[2] == 0xbe || u[2] == 0xbf))) {
		snprintf(esc, len, "\\u%02X%02X", ((u[0] & 0x0f) << 4) |
		    ((u[1] >> 2) & 0x0f), ((u[1] & 0x03) << 6) | (u[2] & 0x3f));
		return 3;
	}
	return 0;
}

static void
conf_put_quoted(struct evbuffer *out, const char *s)
{
	evbuffer_add(out, "\"", 1);
	for (const char *c = s; *c != '\0'; c++) {
		unsigned char u = (unsigned char)*c;
		char esc[16];
		size_t n;

		if (u == '"' || u == '\\')
			evbuffer_add_printf(out, "\\%c", u);
		else if (u == '\n')
			evbuffer_add(out, "\\n", 2);
		else if (u == '\r')
			evbuffer_add(out, "\\r", 2);
		else if (u == '\t')
			evbuffer_add(out, "\\t", 2);
		else if (u < 0x20 || u == 0x7f)
			evbuffer_add_printf(out, "\\x%02x", u);
		else if ((n = conf_unicode_escape(c, esc, sizeof(esc))) > 0) {
			evbuffer_add_printf(out, "%s", esc);
			c += n - 1;
		} else
			evbuffer_add(out, c, 1);
	}
	evbuffer_add(out, "\"", 1);
}

static void
conf_put_str(struct evbuffer *out, const char *s)
{
	if (conf_plain_ok(s))
		evbuffer_add(out, s, strlen(s));
	else
		conf_put_quoted(out, s);
}

/* The effective value of a scalar option as --print shows it. */
static void
conf_put_scalar(struct evbuffer *out, const struct conf_value *v)
{
	char buf[64];

	switch (v->type) {
	case TROIKA_OPT_STRING:
		conf_put_str(out, v->str);
		break;
	case TROIKA_OPT_BOOL:
		evbuffer_add_printf(out, "%s", v->num ? "true" : "false");
		break;
	case TROIKA_OPT_INT:
		evbuffer_add_printf(out, "%lld", (long long)v->num);
		break;
	default:
		conf_format_num(v->type, v->num, buf, sizeof(buf));
		evbuffer_add_printf(out, "%s", buf);
		break;
	}
}

/* A raw tree value, for the canonical form of an unvalidated check. */
static void
conf_put_node(struct evbuffer *out, const struct yaml_tree_node *n)
{
	switch (n->kind) {
	case YAML_TREE_SCALAR:
		if (yaml_tree_is_null(n))
			evbuffer_add(out, "~", 1);
		else
			conf_put_quoted(out, n->str);
		break;
	case YAML_TREE_SEQUENCE:
		evbuffer_add(out, "[", 1);
		for (size_t i = 0; i < n->nitems; i++) {
			if (i > 0)
				evbuffer_add(out, ", ", 2);
			conf_put_node(out, n->items[i]);
		}
		evbuffer_add(out, "]", 1);
		break;
	case YAML_TREE_MAPPING:
		evbuffer_add(out, "{", 1);
		for (size_t i = 0; i < n->npairs; i++) {
			if (i > 0)
				evbuffer_add(out, ", ", 2);
			conf_put_quoted(out, n->pairs[i].key->str);
			evbuffer_add(out, ": ", 2);
			conf_put_node(out, n->pairs[i].value);
		}
		evbuffer_add(out, "}", 1);
		break;
	}
}

static char *
conf_evbuffer_str(struct conf_loader *ld, struct evbuffer *b)
{
	size_t len = evbuffer_get_length(b);
	char *s;

	if ((s = malloc(len + 1)) == NULL) {
		ld->oom = 1;
		return NULL;
	}
	evbuffer_remove(b, s, len);
	s[len] = '\0';
	return s;
}

/*
 * The canonical text of a check: plugin, interval, timeout and every
 * option with a value, normalised (5s and 5000ms agree; a value equal to
 * the default agrees with the default) and quoted so that different
 * definitions never produce the same text. The name is not part of it:
 * it is the key the canonical text is compared under.
 */
static void
conf_canonical(struct conf_loader *ld, struct conf_check *c,
    const struct yaml_tree_node *item)
{
	struct evbuffer *b;

	if ((b = evbuffer_new()) == NULL) {
		ld->oom = 1;
		return;
	}
	evbuffer_add_printf(b, "plugin ");
	conf_put_quoted(b, c->plugin != NULL ? c->plugin : "");
	evbuffer_add_printf(b, "\ninterval %lld\ntimeout %lld\naction_timeout %lld\n",
	    (long long)c->interval_ms, (long long)c->timeout_ms,
	    (long long)c->action_timeout_ms);
	for (size_t i = 0; i < c->nopts; i++) {
		const struct conf_value *v = &c->opts[i];

		if (!v->hasvalue)
			continue;
		evbuffer_add_printf(b, "opt %s ", v->name);
		if (v->type == TROIKA_OPT_STRING) {
			conf_put_quoted(b, v->str != NULL ? v->str : "");
		} else if (conf_type_is_scalar(v->type)) {
			evbuffer_add_printf(b, "%lld", (long long)v->num);
		} else if (v->type == TROIKA_OPT_STRING_LIST) {
			evbuffer_add(b, "[", 1);
			for (size_t j = 0; j < v->nlist; j++) {
				if (j > 0)
					evbuffer_add(b, ", ", 2);
				conf_put_quoted(b, v->list[j]);
			}
			evbuffer_add(b, "]", 1);
		} else {
			evbuffer_add(b, "{", 1);
			for (size_t j = 0; j < v->nmap; j++) {
				if (j > 0)
					evbuffer_add(b, ", ", 2);
				conf_put_quoted(b, v->keys[j]);
				evbuffer_add(b, ": ", 2);
				conf_put_quoted(b, v->vals[j]);
			}
			evbuffer_add(b, "}", 1);
		}
		evbuffer_add(b, "\n", 1);
	}
	if (c->service.pidfile != NULL) {
		evbuffer_add_printf(b, "service pidfile ");
		conf_put_quoted(b, c->service.pidfile);
		evbuffer_add(b, "\n", 1);
	}
	if (c->service.manager != CONF_SERVICE_NONE) {
		char **lists[] = { c->service.start, c->service.stop, c->service.restart };
		size_t counts[] = { c->service.nstart, c->service.nstop, c->service.nrestart };
		static const char *const names[] = { "start", "stop", "restart" };

		evbuffer_add_printf(b, "service %s\n",
		    c->service.manager == CONF_SERVICE_SYSTEMD ? "systemd" : "exec");
		if (c->service.unit != NULL) {
			evbuffer_add_printf(b, "service unit ");
			conf_put_quoted(b, c->service.unit);
			evbuffer_add(b, "\n", 1);
		}
		for (size_t k = 0; k < 3; k++) {
			evbuffer_add_printf(b, "service %s [", names[k]);
			for (size_t j = 0; j < counts[k]; j++) {
				if (j > 0)
					evbuffer_add(b, ", ", 2);
				conf_put_quoted(b, lists[k][j]);
			}
			evbuffer_add(b, "]\n", 2);
		}
	}
	/* Without the plugin's table the raw keys are all there is. */
	if (c->plugin_missing) {
		for (size_t i = 0; i < item->npairs; i++) {
			const char *key = item->pairs[i].key->str;

			if (conf_in_list(conf_check_keys, key))
				continue;
			evbuffer_add_printf(b, "raw ");
			conf_put_quoted(b, key);
			evbuffer_add(b, " ", 1);
			conf_put_node(b, item->pairs[i].value);
			evbuffer_add(b, "\n", 1);
		}
	}
	c->canonical = conf_evbuffer_str(ld, b);
	evbuffer_free(b);
}

static int
conf_name_ok(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '_' || *s == '.' ||
		    *s == '-'))
			return 0;
	return 1;
}

/* The options of a check whose plugin is known, by declaration. */
static void
conf_check_opts(struct conf_loader *ld, size_t file,
    const struct yaml_tree_node *item, struct conf_check *c,
    const struct conf_plugin *p, const char *where)
{
	char ex[CONF_EXCERPT];

	if (p->nopts > 0 &&
	    (c->opts = calloc(p->nopts, sizeof(*c->opts))) == NULL) {
		ld->oom = 1;
		return;
	}
	for (size_t i = 0; i < p->nopts; i++) {
		c->opts[i].type = p->opts[i].type;
		c->opts[i].pos = c->pos;
		if ((c->opts[i].name = conf_strdup(ld, p->opts[i].name)) ==
		    NULL)
			return;
		c->nopts++;
	}

	for (size_t i = 0; i < item->npairs; i++) {
		const struct yaml_tree_node *key = item->pairs[i].key;
		size_t j;

		if (conf_in_list(conf_check_keys, key->str))
			continue;
		for (j = 0; j < p->nopts; j++)
			if (strcmp(p->opts[j].name, key->str) == 0)
				break;
		if (j == p->nopts) {
			conf_unknown_key(ld, file, key, where, conf_check_keys,
			    p->opts);
			continue;
		}
		conf_opt_set(ld, file, &p->opts[j], item->pairs[i].value,
		    &c->opts[j]);
	}

	yaml_tree_excerpt(c->plugin, ex, sizeof(ex));
	for (size_t i = 0; i < c->nopts; i++) {
		const struct troika_option *o = &p->opts[i];
		struct conf_value *v = &c->opts[i];
		char msg[512];

		if (v->isset)
			continue;
		if (o->required) {
			conf_err(ld, file, item, "missing required key '%s' "
			    "for plugin '%s'", o->name, ex);
			continue;
		}
		if (o->default_value == NULL || !conf_type_is_scalar(o->type))
			continue;
		/* Checked with the table; a bad default was reported there. */
		if (conf_convert(o, o->default_value, &v->num, msg,
		    sizeof(msg)) < 0)
			continue;
		v->str = conf_strdup(ld, o->default_value);
		v->hasvalue = 1;
	}
}

/* One item of a checks: sequence. idx counts from 1 within its file. */
/* One argv list of a service: a non-empty sequence of non-empty strings. */
static void
conf_service_argv(struct conf_loader *ld, size_t file,
    const struct yaml_tree_node *v, const char *name, char ***ret, size_t *ret_n)
{
	struct conf_value tmp = { .name = (char *)(uintptr_t)name };

	if (v->kind != YAML_TREE_SEQUENCE || v->nitems == 0) {
		conf_err(ld, file, v, "expected a non-empty list (an argv, run "
		    "without a shell) for '%s' (got %s)", name,
		    v->kind == YAML_TREE_SEQUENCE ? "an empty list" :
		    yaml_tree_what(v));
		return;
	}
	conf_opt_list(ld, file, v, &tmp);
	for (size_t i = 0; i < tmp.nlist; i++) {
		if (tmp.list[i][0] == '\0') {
			conf_err(ld, file, v->items[i], "empty argument in '%s'", name);
			break;
		}
	}
	if (tmp.list != NULL && tmp.list[0][0] != '/') {
		conf_err(ld, file, v->items[0], "'%s' must start with an absolute "
		    "path (no PATH lookup for service commands)", name);
	}
	*ret = tmp.list;
	*ret_n = tmp.nlist;
}

/* An absolute path: the agent's working directory is no anchor. */
static void
conf_service_pidfile(struct conf_loader *ld, size_t file,
    const struct yaml_tree_node *v, struct conf_check *c)
{
	char *s;

	if ((s = conf_string(ld, file, v, "pidfile")) == NULL)
		return;
	if (s[0] != '/') {
		conf_err(ld, file, v, "'pidfile' must be an absolute path");
		free(s);
		return;
	}
	free(c->service.pidfile);
	c->service.pidfile = s;
}

static void
conf_service(struct conf_loader *ld, size_t file,
    const struct yaml_tree_node *v, struct conf_check *c, const char *where)
{
	const struct yaml_tree_pair *pm;

	if (v->kind != YAML_TREE_MAPPING) {
		conf_err(ld, file, v, "expected a mapping for 'service'%s (got %s)",
		    where, yaml_tree_what(v));
		return;
	}
	for (size_t i = 0; i < v->npairs; i++) {
		const struct yaml_tree_pair *pr = &v->pairs[i];
		const char *key = pr->key->str;

		if (strcmp(key, "start") == 0)
			conf_service_argv(ld, file, pr->value, "start",
			    &c->service.start, &c->service.nstart);
		else if (strcmp(key, "stop") == 0)
			conf_service_argv(ld, file, pr->value, "stop",
			    &c->service.stop, &c->service.nstop);
		else if (strcmp(key, "restart") == 0)
			conf_service_argv(ld, file, pr->value, "restart",
			    &c->service.restart, &c->service.nrestart);
		else if (strcmp(key, "pidfile") == 0)
			conf_service_pidfile(ld, file, pr->value, c);
		else if (strcmp(key, "manager") != 0 && strcmp(key, "unit") != 0)
			conf_unknown_key(ld, file, pr->key, " in 'service'",
			    conf_service_keys, NULL);
	}
	/* A watched process alone needs no manager. */
	if (v->npairs == 1 && yaml_tree_find(v, "pidfile") != NULL)
		return;
	if ((pm = yaml_tree_find(v, "manager")) == NULL) {
		conf_err(ld, file, v, "missing required key 'manager' in "
		    "'service'%s (expected exec or systemd)", where);
		return;
	}
	const char *m = conf_scalar(ld, file, pm->value, "manager", TROIKA_OPT_STRING);
	const struct yaml_tree_pair *pu = yaml_tree_find(v, "unit");
	if (m == NULL)
		return;
	if (strcmp(m, "exec") == 0) {
		c->service.manager = CONF_SERVICE_EXEC;
		if (pu != NULL)
			conf_err(ld, file, pu->key, "'unit' is for manager "
			    "systemd; exec takes start, stop, restart");
		if (c->service.nstart == 0 && c->service.nstop == 0 &&
		    c->service.nrestart == 0)
			conf_err(ld, file, v, "'service'%s has none of start, "
			    "stop, restart", where);
	} else if (strcmp(m, "systemd") == 0) {
		c->service.manager = CONF_SERVICE_SYSTEMD;
		if (c->service.nstart > 0 || c->service.nstop > 0 ||
		    c->service.nrestart > 0)
			conf_err(ld, file, v, "start, stop and restart are for "
			    "manager exec; systemd takes 'unit'%s", where);
		if (pu == NULL)
			conf_err(ld, file, v, "missing required key 'unit' in "
			    "'service'%s (e.g. nginx.service)", where);
		else if ((c->service.unit = conf_string(ld, file, pu->value,
		    "unit")) != NULL && (strlen(c->service.unit) > 255 ||
		    strchr(c->service.unit, '/') != NULL ||
		    strchr(c->service.unit, '.') == NULL))
			conf_err(ld, file, pu->value, "invalid unit name "
			    "(expected e.g. nginx.service)");
	} else {
		char ex[CONF_EXCERPT];
		conf_err(ld, file, pm->value, "unknown service manager '%s' "
		    "(expected exec or systemd)", yaml_tree_excerpt(m, ex, sizeof(ex)));
	}
}

static void
conf_check(struct conf_loader *ld, size_t file,
    const struct yaml_tree_node *item, size_t idx)
{
	struct agent_conf *conf = ld->conf;
	const struct yaml_tree_pair *pname, *pplugin, *pint, *ptmo, *psvc, *pat;
	const struct conf_plugin *p = NULL;
	struct conf_check *c;
	char where[CONF_EXCERPT + 32], label[CONF_EXCERPT + 16];
	int interval_ok = 1, timeout_ok = 1;

	if (item->kind != YAML_TREE_MAPPING) {
		conf_err(ld, file, item, "expected a mapping for each check "
		    "(got %s)", yaml_tree_what(item));
		return;
	}
	if ((c = conf_grow(conf->checks, conf->nchecks, sizeof(*c))) == NULL) {
		ld->oom = 1;
		return;
	}
	conf->checks = c;
	c = &conf->checks[conf->nchecks++];
	memset(c, 0, sizeof(*c));
	c->pos = conf_pos_of(ld, file, item);

	snprintf(label, sizeof(label), "check #%zu", idx);
	if ((pname = yaml_tree_find(item, "name")) == NULL) {
		conf_err(ld, file, item, "missing required key 'name' in %s",
		    label);
	} else if ((c->name = conf_string(ld, file, pname->value, "name")) !=
	    NULL) {
		char ex[CONF_EXCERPT];

		yaml_tree_excerpt(c->name, ex, sizeof(ex));
		if (conf_name_ok(c->name))
			snprintf(label, sizeof(label), "check '%s'", ex);
		else
			conf_err(ld, file, pname->value, "invalid check name "
			    "'%s' (expected letters, digits, '_', '.', '-')",
			    ex);
	}
	snprintf(where, sizeof(where), " in %s", label);

	if ((pplugin = yaml_tree_find(item, "plugin")) == NULL) {
		conf_err(ld, file, item, "missing required key 'plugin' in %s",
		    label);
	} else if ((c->plugin = conf_string(ld, file, pplugin->value,
	    "plugin")) != NULL) {
		c->plugin_pos = conf_pos_of(ld, file, pplugin->value);
		p = conf_plugin_get(ld, file, pplugin->value, c->plugin);
	}

	c->interval_ms = conf->default_interval_ms;
	c->timeout_ms = conf->default_timeout_ms;
	c->action_timeout_ms = conf->default_action_timeout_ms;
	if ((pat = yaml_tree_find(item, "action_timeout")) != NULL)
		conf_number(ld, file, pat->value, "action_timeout",
		    TROIKA_OPT_DURATION, CONF_MIN_ACTION_MS, CONF_MAX_ACTION_MS,
		    &c->action_timeout_ms);
	if ((pint = yaml_tree_find(item, "interval")) != NULL &&
	    conf_number(ld, file, pint->value, "interval", TROIKA_OPT_DURATION,
	    CONF_MIN_PERIOD_MS, CONF_MAX_PERIOD_MS, &c->interval_ms) < 0)
		interval_ok = 0;
	if ((ptmo = yaml_tree_find(item, "timeout")) != NULL &&
	    conf_number(ld, file, ptmo->value, "timeout", TROIKA_OPT_DURATION,
	    CONF_MIN_PERIOD_MS, CONF_MAX_PERIOD_MS, &c->timeout_ms) < 0)
		timeout_ok = 0;
	if (interval_ok && timeout_ok && c->timeout_ms > c->interval_ms) {
		if (ptmo != NULL) {
			char t[32], iv[32];

			format_duration_ms(c->timeout_ms, t, sizeof(t));
			format_duration_ms(c->interval_ms, iv, sizeof(iv));
			conf_err(ld, file, ptmo->value, "'timeout' %s is "
			    "longer than 'interval' %s%s", t, iv, where);
		} else {
			/*
			 * Only the inherited default is too long for this
			 * short interval: a check run every second cannot
			 * wait five, so it gets its interval as timeout.
			 */
			c->timeout_ms = c->interval_ms;
		}
	}

	if (p != NULL && p->opts == NULL) {
		char ex[CONF_EXCERPT];

		if (ld->flags & CONF_STRICT_PLUGINS)
			conf_err(ld, file, pplugin->value, "unknown plugin "
			    "'%s'%s", yaml_tree_excerpt(c->plugin, ex,
			    sizeof(ex)), where);
		else
			c->plugin_missing = 1;
	} else if (p != NULL && !p->bad) {
		conf_check_opts(ld, file, item, c, p, where);
	}
	if ((psvc = yaml_tree_find(item, "service")) != NULL)
		conf_service(ld, file, psvc->value, c, where);
	conf_canonical(ld, c, item);
}

static void
conf_checks(struct conf_loader *ld, size_t file,
    const struct yaml_tree_node *v)
{
	if (yaml_tree_is_null(v))
		return;
	if (v->kind != YAML_TREE_SEQUENCE) {
		conf_err(ld, file, v, "expected a sequence for 'checks' "
		    "(got %s)", yaml_tree_what(v));
		return;
	}
	for (size_t i = 0; i < v->nitems; i++)
		conf_check(ld, file, v->items[i], i + 1);
}

/* The top of a file must be a mapping (or nothing at all). */
static int
conf_top(struct conf_loader *ld, size_t file,
    const struct yaml_tree_node *root)
{
	if (root == NULL || yaml_tree_is_null(root))
		return 0;
	if (root->kind != YAML_TREE_MAPPING) {
		conf_err(ld, file, root, "expected a mapping at the top of "
		    "the file (got %s)", yaml_tree_what(root));
		return -1;
	}
	return 1;
}

/* A drop-in file: only checks. */
static void
conf_dropin(struct conf_loader *ld, const char *path)
{
	static const char *const keys[] = { "checks", NULL };
	struct yaml_tree_node *root;
	size_t file;

	if (conf_parse_file(ld, path, &file, &root) < 0)
		return;
	if (conf_top(ld, file, root) > 0) {
		for (size_t i = 0; i < root->npairs; i++) {
			const struct yaml_tree_node *key = root->pairs[i].key;
			char ex[CONF_EXCERPT];

			if (strcmp(key->str, "checks") == 0)
				conf_checks(ld, file, root->pairs[i].value);
			else if (conf_in_list(conf_main_keys, key->str))
				conf_err(ld, file, key, "'%s' is only allowed "
				    "in the main file (drop-in files hold "
				    "only 'checks')", yaml_tree_excerpt(
				    key->str, ex, sizeof(ex)));
			else
				conf_unknown_key(ld, file, key, "", keys, NULL);
		}
	}
	yaml_tree_free(root);
}

static int
conf_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every *.yaml regular file of the include directory, in name order. */
static void
conf_include(struct conf_loader *ld, size_t file,
    const struct yaml_tree_node *at)
{
	const char *dir = ld->conf->include_dir;
	char **names = NULL, **p, ex[CONF_EXCERPT];
	struct stat mainst;
	size_t n = 0;
	struct dirent *de;
	DIR *d;

	/* "include: ." beside the main file must not read it twice. */
	if (stat(ld->conf->path, &mainst) < 0)
		memset(&mainst, 0, sizeof(mainst));

	yaml_tree_excerpt(dir, ex, sizeof(ex));
	if ((d = opendir(dir)) == NULL) {
		conf_err(ld, file, at, "cannot open include directory '%s': "
		    "%s", ex, strerror(errno));
		return;
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		char *name;

		if (de->d_name[0] == '.' || len <= 5 ||
		    strcmp(de->d_name + len - 5, ".yaml") != 0)
			continue;
		if ((p = conf_grow(names, n, sizeof(*names))) == NULL ||
		    (name = strdup(de->d_name)) == NULL) {
			if (p != NULL)
				names = p;
			ld->oom = 1;
			break;
		}
		names = p;
		names[n++] = name;
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(*names), conf_name_cmp);

	for (size_t i = 0; i < n; i++) {
		struct stat st;
		char *path;

		if (asprintf(&path, "%s/%s", dir, names[i]) < 0) {
			ld->oom = 1;
			continue;
		}
		/* stat, not lstat: a symlink to a file is a file here. */
		if (stat(path, &st) < 0) {
			yaml_tree_excerpt(path, ex, sizeof(ex));
			conf_err(ld, file, at, "cannot read '%s': %s", ex,
			    strerror(errno));
		} else if (S_ISREG(st.st_mode) && (st.st_dev != mainst.st_dev ||
		    st.st_ino != mainst.st_ino)) {
			conf_dropin(ld, path);
		}
		free(path);
	}
	conf_strv_free(names, n);
}

/* Main file keys other than checks. */
static void
conf_main_key(struct conf_loader *ld, size_t file,
    const struct yaml_tree_pair *pair, const struct yaml_tree_node **ret_inc)
{
	struct agent_conf *conf = ld->conf;
	const char *key = pair->key->str;
	const struct yaml_tree_node *v = pair->value;
	int64_t num;
	char *s;

	if (strcmp(key, "node") == 0) {
		if ((s = conf_string(ld, file, v, "node")) != NULL) {
			free(conf->node);
			conf->node = s;
		}
	} else if (strcmp(key, "plugin_dirs") == 0) {
		char **dirs;
		size_t n;

		if (conf_dirs(ld, file, v, &dirs, &n) == 0) {
			conf_strv_free(conf->plugin_dirs, conf->nplugin_dirs);
			conf->plugin_dirs = dirs;
			conf->nplugin_dirs = n;
		}
	} else if (strcmp(key, "include") == 0) {
		if ((s = conf_string(ld, file, v, "include")) != NULL) {
			conf->include_dir = conf_resolve(ld, s);
			free(s);
			*ret_inc = v;
		}
	} else if (strcmp(key, "workers") == 0) {
		if (conf_number(ld, file, v, "workers", TROIKA_OPT_INT, 1, 256,
		    &num) == 0)
			conf->workers = (int)num;
	} else if (strcmp(key, "metrics") == 0) {
		conf_metrics(ld, file, v);
	} else if (strcmp(key, "log") == 0) {
		conf_log(ld, file, v);
	} else if (strcmp(key, "defaults") == 0) {
		conf_defaults(ld, file, v);
	} else if (strcmp(key, "coordinators") == 0) {
		conf_coordinators(ld, file, v);
	} else {
		conf_unknown_key(ld, file, pair->key, "", conf_main_keys, NULL);
	}
}

/* Checks by name, then by load order (their order in one array). */
static int
conf_check_ptr_cmp(const void *a, const void *b)
{
	const struct conf_check *x = *(const struct conf_check *const *)a;
	const struct conf_check *y = *(const struct conf_check *const *)b;
	int r = strcmp(x->name, y->name);

	if (r != 0)
		return r;
	return x < y ? -1 : x > y;
}

/*
 * Every check whose name an earlier one has, reported against the first.
 * Sorted rather than compared pairwise: a generated config may have
 * thousands of checks.
 */
static void
conf_duplicates(struct conf_loader *ld)
{
	struct agent_conf *conf = ld->conf;
	const struct conf_check **v;
	size_t n = 0, first = 0;

	if (conf->nchecks < 2)
		return;
	if ((v = calloc(conf->nchecks, sizeof(*v))) == NULL) {
		ld->oom = 1;
		return;
	}
	for (size_t i = 0; i < conf->nchecks; i++)
		if (conf->checks[i].name != NULL)
			v[n++] = &conf->checks[i];
	qsort(v, n, sizeof(*v), conf_check_ptr_cmp);

	for (size_t i = 1; i < n; i++) {
		const struct conf_check *c = v[i], *f = v[first];
		struct yaml_tree_node at;
		size_t file = 0;
		char ex[CONF_EXCERPT], fx[PATH_MAX];

		if (strcmp(f->name, c->name) != 0) {
			first = i;
			continue;
		}
		for (size_t j = 0; j < conf->nfiles; j++)
			if (conf->files[j] == c->pos.file)
				file = j;
		memset(&at, 0, sizeof(at));
		at.line = c->pos.line;
		at.col = c->pos.col;
		conf_err(ld, file, &at, "check '%s' already defined at "
		    "%s:%d:%d", yaml_tree_excerpt(c->name, ex, sizeof(ex)),
		    yaml_tree_excerpt(f->pos.file, fx, sizeof(fx)),
		    f->pos.line, f->pos.col);
	}
	free(v);
}

static struct agent_conf *
conf_new(struct conf_loader *ld, const char *path)
{
	struct agent_conf *conf;

	if ((conf = calloc(1, sizeof(*conf))) == NULL)
		return NULL;
	ld->conf = conf;
	conf->workers = CONF_DEFAULT_WORKERS;
	conf->log_level = LOG_INFO;
	conf->default_interval_ms = CONF_DEFAULT_INTERVAL_MS;
	conf->default_timeout_ms = CONF_DEFAULT_TIMEOUT_MS;
	conf->default_action_timeout_ms = CONF_DEFAULT_ACTION_TIMEOUT_MS;
	conf->uplink.heartbeat_ms = CONF_DEFAULT_HEARTBEAT_MS;
	conf->uplink.max_queued_samples = CONF_DEFAULT_QUEUED_SAMPLES;
	if ((conf->path = strdup(path)) == NULL ||
	    (conf->metrics_listen = strdup(CONF_DEFAULT_LISTEN)) == NULL) {
		conf_free(conf);
		ld->conf = NULL;
		return NULL;
	}
	return conf;
}

/* The defaults that only apply once the file had nothing to say. */
static void
conf_finish(struct conf_loader *ld, size_t file)
{
	struct agent_conf *conf = ld->conf;
	char host[256];

	if (conf->plugin_dirs == NULL) {
		if ((conf->plugin_dirs = calloc(1, sizeof(char *))) == NULL ||
		    (conf->plugin_dirs[0] = conf_strdup(ld,
		    TROIKA_DEFAULT_PLUGIN_DIR)) == NULL)
			ld->oom = 1;
		else
			conf->nplugin_dirs = 1;
	}
	if (conf->node == NULL) {
		if (gethostname(host, sizeof(host)) < 0) {
			conf_err(ld, file, NULL, "cannot find the host name "
			    "for 'node' (%s): set it", strerror(errno));
			return;
		}
		host[sizeof(host) - 1] = '\0';
		conf->node = conf_strdup(ld, host);
	}
}

struct agent_conf *
conf_load(const char *path, conf_plugin_lookup_fn lookup, void *lookup_arg,
    int flags, struct conf_errors *errs)
{
	struct conf_loader ld;
	struct yaml_tree_node *root = NULL;
	const struct yaml_tree_node *checks = NULL, *inc = NULL;
	size_t file;

	memset(&ld, 0, sizeof(ld));
	ld.lookup = lookup;
	ld.lookup_arg = lookup_arg;
	ld.flags = flags;
	if (conf_new(&ld, path) == NULL) {
		char *msg = strdup("out of memory while loading the "
		    "configuration");

		if (msg != NULL && conf_errors_add(errs, msg) < 0)
			free(msg);
		return NULL;
	}

	if (conf_parse_file(&ld, path, &file, &root) == 0 &&
	    conf_top(&ld, file, root) > 0) {
		/* Checks last: they inherit defaults: wherever it is. */
		for (size_t i = 0; i < root->npairs; i++) {
			if (strcmp(root->pairs[i].key->str, "checks") == 0)
				checks = root->pairs[i].value;
			else
				conf_main_key(&ld, file, &root->pairs[i], &inc);
		}
		if (checks != NULL)
			conf_checks(&ld, file, checks);
		if (ld.conf->include_dir != NULL)
			conf_include(&ld, file, inc);
		conf_duplicates(&ld);
	}
	if (ld.nerrs == 0)
		conf_finish(&ld, 0);
	yaml_tree_free(root);
	conf_plugins_free(&ld);

	if (ld.nerrs > 0 || ld.oom) {
		conf_errors_flush(&ld, errs);
		conf_free(ld.conf);
		return NULL;
	}
	return ld.conf;
}

char **
conf_plugin_dirs(const char *path, size_t *ret_n, struct conf_errors *errs)
{
	struct conf_loader ld;
	struct yaml_tree_node *root = NULL;
	const struct yaml_tree_pair *pair;
	char **dirs = NULL;
	size_t file, n = 0;

	memset(&ld, 0, sizeof(ld));
	*ret_n = 0;
	if (conf_new(&ld, path) == NULL) {
		char *msg = strdup("out of memory while loading the "
		    "configuration");

		if (msg != NULL && conf_errors_add(errs, msg) < 0)
			free(msg);
		return NULL;
	}
	if (conf_parse_file(&ld, path, &file, &root) == 0 &&
	    conf_top(&ld, file, root) > 0 &&
	    (pair = yaml_tree_find(root, "plugin_dirs")) != NULL)
		conf_dirs(&ld, file, pair->value, &dirs, &n);
	if (dirs == NULL && ld.nerrs == 0 && !ld.oom) {
		if ((dirs = calloc(1, sizeof(*dirs))) == NULL ||
		    (dirs[0] = strdup(TROIKA_DEFAULT_PLUGIN_DIR)) == NULL)
			ld.oom = 1;
		else
			n = 1;
	}
	yaml_tree_free(root);
	if (ld.nerrs > 0 || ld.oom) {
		conf_strv_free(dirs, n);
		conf_errors_flush(&ld, errs);
		conf_free(ld.conf);
		return NULL;
	}
	conf_free(ld.conf);
	*ret_n = n;
	return dirs;
}

const struct conf_value *
conf_check_opt(const struct conf_check *check, const char *name)
{
	for (size_t i = 0; i < check->nopts; i++)
		if (strcmp(check->opts[i].name, name) == 0)
			return &check->opts[i];
	return NULL;
}

/* An option value in block style, at the indentation of a check's keys. */
static void
conf_print_value(struct evbuffer *out, const struct conf_value *v)
{
	evbuffer_add_printf(out, "    ");
	conf_put_str(out, v->name);
	evbuffer_add(out, ":", 1);
	if (conf_type_is_scalar(v->type)) {
		evbuffer_add(out, " ", 1);
		conf_put_scalar(out, v);
	} else if (v->type == TROIKA_OPT_STRING_LIST) {
		if (v->nlist == 0)
			evbuffer_add_printf(out, " []");
		for (size_t i = 0; i < v->nlist; i++) {
			evbuffer_add_printf(out, "\n      - ");
			conf_put_str(out, v->list[i]);
		}
	} else {
		if (v->nmap == 0)
			evbuffer_add_printf(out, " {}");
		for (size_t i = 0; i < v->nmap; i++) {
			evbuffer_add_printf(out, "\n      ");
			conf_put_str(out, v->keys[i]);
			evbuffer_add(out, ": ", 2);
			conf_put_str(out, v->vals[i]);
		}
	}
	evbuffer_add(out, "\n", 1);
}

static void
conf_print_uplink(const struct conf_uplink *u, struct evbuffer *out)
{
	char a[32];

	evbuffer_add_printf(out, "coordinators:\n  targets:\n");
	for (size_t i = 0; i < u->ntargets; i++) {
		evbuffer_add_printf(out, "    - ");
		conf_put_str(out, u->targets[i]);
		evbuffer_add(out, "\n", 1);
	}
	evbuffer_add_printf(out, "  heartbeat: %s\n",
	    format_duration_ms(u->heartbeat_ms, a, sizeof(a)));
	evbuffer_add_printf(out, "  timeout: %s\n",
	    format_duration_ms(u->timeout_ms, a, sizeof(a)));
	evbuffer_add_printf(out, "  max_queued_samples: %lld\n",
	    (long long)u->max_queued_samples);
	if (!u->tls)
		return;
	evbuffer_add_printf(out, "  tls:%s\n", u->tls_ca == NULL &&
	    u->tls_cert == NULL ? " {}" : "");
	if (u->tls_ca != NULL) {
		evbuffer_add_printf(out, "    ca: ");
		conf_put_str(out, u->tls_ca);
		evbuffer_add(out, "\n", 1);
	}
	if (u->tls_cert != NULL && u->tls_key != NULL) {
		evbuffer_add_printf(out, "    cert: ");
		conf_put_str(out, u->tls_cert);
		evbuffer_add_printf(out, "\n    key: ");
		conf_put_str(out, u->tls_key);
		evbuffer_add(out, "\n", 1);
	}
}

void
conf_print(const struct agent_conf *conf, struct evbuffer *out)
{
	char a[32], b[32], ex[PATH_MAX];

	evbuffer_add_printf(out, "node: ");
	conf_put_str(out, conf->node != NULL ? conf->node : "");
	evbuffer_add_printf(out, "\nplugin_dirs:\n");
	for (size_t i = 0; i < conf->nplugin_dirs; i++) {
		evbuffer_add_printf(out, "  - ");
		conf_put_str(out, conf->plugin_dirs[i]);
		evbuffer_add(out, "\n", 1);
	}
	if (conf->include_dir != NULL) {
		evbuffer_add_printf(out, "include: ");
		conf_put_str(out, conf->include_dir);
		evbuffer_add(out, "\n", 1);
	}
	evbuffer_add_printf(out, "workers: %d\nmetrics:\n  listen: ",
	    conf->workers);
	conf_put_str(out, conf->metrics_listen != NULL ?
	    conf->metrics_listen : "");
	evbuffer_add_printf(out, "\nlog:\n  level: %s\n  target: %s\n",
	    log_level_str(conf->log_level),
	    conf->log_syslog ? "syslog" : "stderr");
	evbuffer_add_printf(out, "defaults:\n  interval: %s\n  timeout: %s\n",
	    format_duration_ms(conf->default_interval_ms, a, sizeof(a)),
	    format_duration_ms(conf->default_timeout_ms, b, sizeof(b)));
	evbuffer_add_printf(out, "  action_timeout: %s\n",
	    format_duration_ms(conf->default_action_timeout_ms, a, sizeof(a)));

	if (conf->uplink.ntargets > 0)
		conf_print_uplink(&conf->uplink, out);
	evbuffer_add_printf(out, "checks:%s\n",
	    conf->nchecks == 0 ? " []" : "");
	for (size_t i = 0; i < conf->nchecks; i++) {
		const struct conf_check *c = &conf->checks[i];

		evbuffer_add_printf(out, "  # %s:%d\n  - name: ",
		    yaml_tree_excerpt(c->pos.file != NULL ? c->pos.file : "?",
		    ex, sizeof(ex)), c->pos.line);
		conf_put_str(out, c->name != NULL ? c->name : "");
		evbuffer_add_printf(out, "\n    plugin: ");
		conf_put_str(out, c->plugin != NULL ? c->plugin : "");
		evbuffer_add_printf(out,
		    "\n    interval: %s\n    timeout: %s\n",
		    format_duration_ms(c->interval_ms, a, sizeof(a)),
		    format_duration_ms(c->timeout_ms, b, sizeof(b)));
		evbuffer_add_printf(out, "    action_timeout: %s\n",
		    format_duration_ms(c->action_timeout_ms, a, sizeof(a)));
		if (c->plugin_missing)
			evbuffer_add_printf(out, "    # plugin not found: "
			    "options not validated, not shown\n");
		if (c->service.manager == CONF_SERVICE_NONE &&
		    c->service.pidfile != NULL)
			evbuffer_add_printf(out, "    service:\n");
		if (c->service.manager == CONF_SERVICE_SYSTEMD) {
			evbuffer_add_printf(out, "    service:\n      manager: "
			    "systemd\n      unit: ");
			conf_put_str(out, c->service.unit ? c->service.unit : "");
			evbuffer_add(out, "\n", 1);
		}
		if (c->service.manager == CONF_SERVICE_EXEC) {
			char **lists[] = { c->service.start, c->service.stop,
			    c->service.restart };
			size_t counts[] = { c->service.nstart, c->service.nstop,
			    c->service.nrestart };
			static const char *const names[] = { "start", "stop",
			    "restart" };

			evbuffer_add_printf(out, "    service:\n      manager: exec\n");
			for (size_t k = 0; k < 3; k++) {
				if (counts[k] == 0)
					continue;
				evbuffer_add_printf(out, "      %s:\n", names[k]);
				for (size_t j = 0; j < counts[k]; j++) {
					evbuffer_add_printf(out, "        - ");
					conf_put_str(out, lists[k][j]);
					evbuffer_add(out, "\n", 1);
				}
			}
		}
		if (c->service.pidfile != NULL) {
			evbuffer_add_printf(out, "      pidfile: ");
			conf_put_str(out, c->service.pidfile);
			evbuffer_add(out, "\n", 1);
		}
		for (size_t j = 0; j < c->nopts; j++)
			if (c->opts[j].hasvalue)
				conf_print_value(out, &c->opts[j]);
	}
}
