#include "plugin_set.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "emit.h"
#include "log.h"
#include "metrics.h"

/*
 * The smallest descriptor we accept: everything up to and including the
 * check callback. cancel came with ABI 1.0 too, but is optional and read
 * only when the plugin's size says it is there.
 */
#define PLUGIN_DESC_MIN_SIZE \
	(offsetof(struct troika_plugin, check) + sizeof(((struct troika_plugin *)0)->check))

void
plugin_set_init(struct plugin_set *ps, uid_t owner_uid)
{
	memset(ps, 0, sizeof(*ps));
	ps->owner_uid = owner_uid;
}

static int
plugin_name_valid(const char *name)
{
	if (name == NULL || *name == '\0' || strlen(name) > 64)
		return 0;
	for (const char *c = name; *c != '\0'; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
		    *c == '_' || *c == '-'))
			return 0;
	return 1;
}

static int
option_type_valid(enum troika_option_type t)
{
	return t >= TROIKA_OPT_STRING && t <= TROIKA_OPT_STRING_MAP;
}

/* Host keys of a check; a plugin option must not shadow them. */
static const char *const host_keys[] = { "name", "plugin", "interval", "timeout" };

int
plugin_desc_validate(const struct troika_plugin *desc, const char **ret_reason)
{
	if (desc == NULL) {
		*ret_reason = "entry function returned NULL";
		return -EINVAL;
	}
	if (desc->abi_major != TROIKA_PLUGIN_ABI_MAJOR) {
		*ret_reason = "ABI major mismatch";
		return -EINVAL;
	}
	if (desc->size < PLUGIN_DESC_MIN_SIZE) {
		*ret_reason = "descriptor too small for ABI 1";
		return -EINVAL;
	}
	if (!plugin_name_valid(desc->name)) {
		*ret_reason = "invalid plugin name (expected [a-z0-9_-]{1,64})";
		return -EINVAL;
	}
	if (desc->exec_model != TROIKA_EXEC_ASYNC &&
	    desc->exec_model != TROIKA_EXEC_BLOCKING) {
		*ret_reason = "invalid exec_model";
		return -EINVAL;
	}
	if (desc->instance_new == NULL || desc->instance_free == NULL ||
	    desc->check == NULL) {
		*ret_reason = "instance_new, instance_free and check are required";
		return -EINVAL;
	}
	if (desc->size >= offsetof(struct troika_plugin, action) + sizeof(desc->action) &&
	    desc->actions != NULL) {
		if (desc->action == NULL) {
			*ret_reason = "actions declared without an action callback";
			return -EINVAL;
		}
		for (const struct troika_action *a = desc->actions; a->name; a++) {
			if (!plugin_name_valid(a->name) || a->min_args < 0 ||
			    a->max_args < a->min_args || a->max_args > 16) {
				*ret_reason = "invalid action (name [a-z0-9_-]+, "
				    "0 <= min_args <= max_args <= 16)";
				return -EINVAL;
			}
			for (const struct troika_action *b = desc->actions; b != a; b++) {
				if (strcmp(a->name, b->name) == 0) {
					*ret_reason = "action declared twice";
					return -EINVAL;
				}
			}
		}
	}
	for (const struct troika_option *o = desc->options; o && o->name; o++) {
		if (!option_type_valid(o->type)) {
			*ret_reason = "option with an invalid type";
			return -EINVAL;
		}
		for (size_t k = 0; k < sizeof(host_keys) / sizeof(host_keys[0]); k++) {
			if (strcmp(o->name, host_keys[k]) == 0) {
				*ret_reason = "option shadows a host key (name, plugin, interval, timeout)";
				return -EINVAL;
			}
		}
		for (const struct troika_option *p = desc->options; p != o; p++) {
			if (strcmp(o->name, p->name) == 0) {
				*ret_reason = "option declared twice";
				return -EINVAL;
			}
		}
	}
	return 0;
}

static void
plugin_refuse(struct plugin_set *ps, const char *path, const char *reason)
{
	struct plugin_refusal *r;
	struct troika_event ev = {
		.kind = EVENT_PLUGIN_REFUSED, .old_status = -1, .new_status = -1,
	};
	char msg[1024];

	snprintf(msg, sizeof(msg), "refused %s: %s", path, reason);
	ev.message = msg;
	event_emit(&ev);

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return;
	r->path = strdup(path);
	r->reason = strdup(reason);
	if (r->path == NULL || r->reason == NULL) {
		free(r->path);
		free(r->reason);
		free(r);
		return;
	}
	r->next = ps->refused;
	ps->refused = r;
}

static void
refusals_free(struct plugin_set *ps)
{
	struct plugin_refusal *r, *next;

	for (r = ps->refused; r != NULL; r = next) {
		next = r->next;
		free(r->path);
		free(r->reason);
		free(r);
	}
	ps->refused = NULL;
}

/* Owner and mode rules shared by files and directories. */
static const char *
plugin_owner_problem(const struct plugin_set *ps, const struct stat *st)
{
	if (st->st_uid != 0 && st->st_uid != ps->owner_uid)
		return "owned by neither root nor the agent's user";
	if (st->st_mode & (S_IWGRP | S_IWOTH))
		return "writable by group or others";
	return NULL;
}

static struct plugin *
plugin_find_path(const struct plugin_set *ps, const char *path)
{
	for (struct plugin *p = ps->plugins; p != NULL; p = p->next)
		if (strcmp(p->path, path) == 0)
			return p;
	return NULL;
}

struct plugin *
plugin_set_find(const struct plugin_set *ps, const char *name)
{
	for (struct plugin *p = ps->plugins; p != NULL; p = p->next)
		if (strcmp(p->desc->name, name) == 0)
			return p;
	return NULL;
}

const struct troika_option *
plugin_set_options(const char *name, void *arg)
{
	static const struct troika_option none[] = { { .name = NULL } };
	struct plugin *p = plugin_set_find(arg, name);

	if (p == NULL)
		return NULL;
	return p->desc->options ? p->desc->options : none;
}

static void
plugin_append(struct plugin_set *ps, struct plugin *p)
{
	struct plugin **tail = &ps->plugins;

	while (*tail != NULL)
		tail = &(*tail)->next;
	*tail = p;
	ps->nplugins++;
}

/* Was p released unchanged before? Forgets the record either way. */
static int
plugin_unpark(struct plugin_set *ps, const struct plugin *p)
{
	struct plugin_parked **pp, *k;

	for (pp = &ps->parked; (k = *pp) != NULL; pp = &k->next) {
		if (strcmp(k->path, p->path) != 0)
			continue;
		*pp = k->next;
		int same = k->dev == p->dev && k->ino == p->ino &&
		    k->fsize == p->fsize && k->mtime.tv_sec == p->mtime.tv_sec &&
		    k->mtime.tv_nsec == p->mtime.tv_nsec;
		free(k->path);
		free(k);
		return same;
	}
	return 0;
}

static void
parked_free(struct plugin_set *ps)
{
	struct plugin_parked *k, *next;

	for (k = ps->parked; k != NULL; k = next) {
		next = k->next;
		free(k->path);
		free(k);
	}
	ps->parked = NULL;
}

/* Returns 1 if loaded, 0 if refused or failed (already logged). */
static int
plugin_load_file(struct plugin_set *ps, const char *path, const struct stat *st)
{
	const struct troika_plugin *desc;
	troika_plugin_entry_fn entry;
	const char *why, *reason;
	struct plugin *p, *other;
	void *dl;
	char msg[4600];

	if (!S_ISREG(st->st_mode)) {
		plugin_refuse(ps, path, "not a regular file");
		return 0;
	}
	if ((why = plugin_owner_problem(ps, st)) != NULL) {
		plugin_refuse(ps, path, why);
		return 0;
	}
	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (dl == NULL) {
		snprintf(msg, sizeof(msg), "dlopen failed: %s", dlerror());
		plugin_refuse(ps, path, msg);
		return 0;
	}
	*(void **)&entry = dlsym(dl, TROIKA_PLUGIN_ENTRY_NAME);
	if (entry == NULL) {
		plugin_refuse(ps, path, "no entry symbol " TROIKA_PLUGIN_ENTRY_NAME
		    " (not a troika plugin, or built for another ABI major)");
		goto refused;
	}
	desc = entry();
	if (plugin_desc_validate(desc, &reason) < 0) {
		if (desc != NULL && desc->abi_major != TROIKA_PLUGIN_ABI_MAJOR)
			snprintf(msg, sizeof(msg), "%s: plugin has %u, host has %u",
			    reason, desc->abi_major, TROIKA_PLUGIN_ABI_MAJOR);
		else if (desc != NULL && desc->size < PLUGIN_DESC_MIN_SIZE)
			snprintf(msg, sizeof(msg), "%s: %zu bytes, need at least %zu",
			    reason, desc->size, PLUGIN_DESC_MIN_SIZE);
		else
			snprintf(msg, sizeof(msg), "%s", reason);
		plugin_refuse(ps, path, msg);
		goto refused;
	}
	if ((other = plugin_set_find(ps, desc->name)) != NULL) {
		snprintf(msg, sizeof(msg), "plugin name '%s' already provided by %s",
		    desc->name, other->path);
		plugin_refuse(ps, path, msg);
		goto refused;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->path = strdup(path)) == NULL) {
		log_warn("loading %s", path);
		free(p);
		goto refused;
	}
	p->desc = desc;
	p->dl = dl;
	p->dev = st->st_dev;
	p->ino = st->st_ino;
	p->mtime = st->st_mtim;
	p->fsize = st->st_size;
	p->refs = 1;
	plugin_append(ps, p);

	struct troika_event ev = {
		.kind = EVENT_PLUGIN_LOADED, .plugin = desc->name,
		.old_status = -1, .new_status = -1, .message = msg,
	};
	snprintf(msg, sizeof(msg), "%s version %s ABI %u.%u (%s)", path,
	    desc->version ? desc->version : "?", desc->abi_major,
	    desc->abi_minor,
	    desc->exec_model == TROIKA_EXEC_ASYNC ? "async" : "blocking");
	/* Back after a release, unchanged: nothing new to announce. */
	if (plugin_unpark(ps, p))
		log_debug("plugin %s loaded again to read its options", path);
	else
		event_emit(&ev);
	return 1;

refused:
	dlclose(dl);
	return 0;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
has_so_suffix(const char *name)
{
	size_t n = strlen(name);

	return n > 3 && strcmp(name + n - 3, ".so") == 0 && name[0] != '.';
}

static size_t
plugin_load_dir(struct plugin_set *ps, const char *dir)
{
	struct dirent *de;
	struct stat st;
	char **names = NULL, path[4096];
	size_t n = 0, cap = 0, loaded = 0;
	const char *why;
	DIR *d;

	if (stat(dir, &st) < 0) {
		log_warn("plugin directory %s", dir);
		return 0;
	}
	if (!S_ISDIR(st.st_mode)) {
		plugin_refuse(ps, dir, "plugin directory is not a directory");
		return 0;
	}
	if ((why = plugin_owner_problem(ps, &st)) != NULL) {
		char msg[256];
		snprintf(msg, sizeof(msg), "plugin directory %s; none of its "
		    "plugins is loaded", why);
		plugin_refuse(ps, dir, msg);
		return 0;
	}
	if ((d = opendir(dir)) == NULL) {
		log_warn("plugin directory %s", dir);
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		if (!has_so_suffix(de->d_name))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char **nn = realloc(names, ncap * sizeof(*names));
			if (nn == NULL)
				break;
			names = nn;
			cap = ncap;
		}
		if ((names[n] = strdup(de->d_name)) == NULL)
			break;
		n++;
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		free(names[i]);
		if (plugin_find_path(ps, path) != NULL)
			continue; /* loaded before, unchanged */
		/* lstat: a symlink is judged by its own owner, then the target's. */
		if (lstat(path, &st) < 0) {
			log_warn("plugin %s", path);
			continue;
		}
		if (S_ISLNK(st.st_mode)) {
			if ((why = plugin_owner_problem(ps, &st)) != NULL) {
				plugin_refuse(ps, path, why);
				continue;
			}
			if (stat(path, &st) < 0) {
				log_warn("plugin %s", path);
				continue;
			}
		}
		loaded += (size_t)plugin_load_file(ps, path, &st);
	}
	free(names);
	return loaded;
}

size_t
plugin_set_load_dirs(struct plugin_set *ps, char *const *dirs, size_t ndirs)
{
	size_t loaded = 0;

	refusals_free(ps);
	for (size_t i = 0; i < ndirs; i++)
		loaded += plugin_load_dir(ps, dirs[i]);
	return loaded;
}

int
plugin_set_is_stale(const struct plugin *p, char *const *dirs, size_t ndirs)
{
	struct stat st;
	int inside = 0;

	for (size_t i = 0; i < ndirs; i++) {
		size_t n = strlen(dirs[i]);
		if (strncmp(p->path, dirs[i], n) == 0 && p->path[n] == '/' &&
		    strchr(p->path + n + 1, '/') == NULL)
			inside = 1;
	}
	if (!inside || stat(p->path, &st) < 0)
		return 1;
	return st.st_dev != p->dev || st.st_ino != p->ino ||
	    st.st_size != p->fsize || st.st_mtim.tv_sec != p->mtime.tv_sec ||
	    st.st_mtim.tv_nsec != p->mtime.tv_nsec;
}

void
plugin_ref(struct plugin *p)
{
	p->refs++;
}

void
plugin_unref(struct plugin *p)
{
	if (p == NULL || --p->refs > 0)
		return;
	if (p->dl != NULL)
		dlclose(p->dl);
	free(p->path);
	free(p);
}

void
plugin_set_unload(struct plugin_set *ps, struct plugin *p)
{
	struct plugin **pp;

	for (pp = &ps->plugins; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == p) {
			struct troika_event ev = {
				.kind = EVENT_PLUGIN_UNLOADED,
				.plugin = p->desc->name, .old_status = -1,
				.new_status = -1, .message = p->path,
			};
			event_emit(&ev);
			*pp = p->next;
			p->next = NULL;
			ps->nplugins--;
			plugin_unref(p);
			return;
		}
	}
}

void
plugin_set_release_unused(struct plugin_set *ps,
    int (*in_use)(const struct plugin *p, void *arg), void *arg)
{
	struct plugin **pp = &ps->plugins, *p;

	while ((p = *pp) != NULL) {
		struct plugin_parked *k;

		if (in_use(p, arg)) {
			pp = &p->next;
			continue;
		}
		if ((k = calloc(1, sizeof(*k))) == NULL ||
		    (k->path = strdup(p->path)) == NULL) {
			free(k); /* keep it loaded: only memory is at stake */
			pp = &p->next;
			continue;
		}
		k->dev = p->dev;
		k->ino = p->ino;
		k->mtime = p->mtime;
		k->fsize = p->fsize;
		k->next = ps->parked;
		ps->parked = k;
		log_debug("plugin %s released: no check uses it", p->path);
		*pp = p->next;
		p->next = NULL;
		ps->nplugins--;
		plugin_unref(p);
	}
}

void
plugin_set_free(struct plugin_set *ps)
{
	struct plugin *p, *next;

	for (p = ps->plugins; p != NULL; p = next) {
		next = p->next;
		p->next = NULL;
		plugin_unref(p);
	}
	ps->plugins = NULL;
	ps->nplugins = 0;
	refusals_free(ps);
	parked_free(ps);
}

void
plugin_set_metrics(const struct plugin_set *ps, struct evbuffer *out)
{
	metrics_family(out, "troika_plugin_loaded", "gauge",
	    "Plugins loaded, one sample per plugin (always 1).");
	for (const struct plugin *p = ps->plugins; p != NULL; p = p->next) {
		const struct troika_label labels[] = {
			{ "plugin", p->desc->name },
			{ "version", p->desc->version ? p->desc->version : "" },
			{ "file", p->path },
		};
		metrics_sample(out, "troika_plugin_loaded", labels, 3, NULL, 1);
	}
	metrics_family(out, "troika_plugin_refused", "gauge",
	    "Plugin files refused at the last (re)load, with the reason (always 1).");
	for (const struct plugin_refusal *r = ps->refused; r != NULL; r = r->next) {
		const struct troika_label labels[] = {
			{ "file", r->path },
			{ "reason", r->reason },
		};
		metrics_sample(out, "troika_plugin_refused", labels, 2, NULL, 1);
	}
}

const struct troika_action *
plugin_actions(const struct troika_plugin *desc)
{
	if (desc->size < offsetof(struct troika_plugin, action) +
	    sizeof(desc->action) || desc->action == NULL)
		return NULL;
	return desc->actions;
}
