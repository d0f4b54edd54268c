/*
 * Loading plugins: every *.so of the configured directories, each checked
 * before dlopen (owner root or the agent's user, not writable by group or
 * others, the directory likewise) and after (entry symbol, ABI major,
 * descriptor size, name, callbacks, option declarations). A refused file
 * costs one log line and an EVENT_PLUGIN_REFUSED; the rest still load.
 */
#ifndef TROIKA_PLUGIN_SET_H
#define TROIKA_PLUGIN_SET_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include <troika/plugin.h>

struct plugin {
	char *path;
	const struct troika_plugin *desc;
	void *dl;
	/* File identity at load time: a change means "reload this plugin". */
	dev_t dev;
	ino_t ino;
	struct timespec mtime;
	off_t fsize;
	/*
	 * References: the set holds one, every check using the plugin one,
	 * and so does a blocking task still running after its check is gone.
	 * The object is dlclose()d when the last reference goes, so code of
	 * an unloaded plugin is never called.
	 */
	int refs;
	struct plugin *next;
};

/* A file that was not loaded, and why. */
struct plugin_refusal {
	char *path;
	char *reason;
	struct plugin_refusal *next;
};

/* A vetted plugin that no check used, released to save its memory. */
struct plugin_parked {
	char *path;
	dev_t dev;
	ino_t ino;
	struct timespec mtime;
	off_t fsize;
	struct plugin_parked *next;
};

struct plugin_set {
	struct plugin *plugins;       /* in load order */
	struct plugin_refusal *refused;
	struct plugin_parked *parked;
	size_t nplugins;
	uid_t owner_uid;              /* besides root, who may own plugins */
};

void plugin_set_init(struct plugin_set *ps, uid_t owner_uid);

/*
 * Load every acceptable *.so of dirs (in name order within each directory)
 * that is not loaded yet. Refusals are logged, emitted and remembered (the
 * list is rebuilt on each call). Returns the number of plugins loaded by
 * this call.
 */
size_t plugin_set_load_dirs(struct plugin_set *ps, char *const *dirs,
    size_t ndirs);

/*
 * Before a reload: is this loaded plugin's file gone, changed on disk, or
 * outside dirs? Such a plugin must be unloaded (after its checks are freed)
 * so the next plugin_set_load_dirs() loads the file anew.
 */
int plugin_set_is_stale(const struct plugin *p, char *const *dirs,
    size_t ndirs);

/* Take one plugin out of the set and drop the set's reference. */
void plugin_set_unload(struct plugin_set *ps, struct plugin *p);

void plugin_ref(struct plugin *p);
/* Drop a reference; the last one dlclose()s and frees. Accepts NULL. */
void plugin_unref(struct plugin *p);

struct plugin *plugin_set_find(const struct plugin_set *ps, const char *name);

/* A conf_plugin_lookup_fn: arg is the struct plugin_set. */
const struct troika_option *plugin_set_options(const char *name, void *arg);

/*
 * Release every plugin for which in_use() says no: each costs its own
 * code and its client libraries in memory. A later plugin_set_load_dirs()
 * (a reload) loads it again to read its options, quietly when the file
 * is unchanged.
 */
void plugin_set_release_unused(struct plugin_set *ps,
    int (*in_use)(const struct plugin *p, void *arg), void *arg);

/* Drop the set's reference to every plugin. */
void plugin_set_free(struct plugin_set *ps);

/* troika_plugin_loaded and troika_plugin_refused families. */
struct evbuffer;
void plugin_set_metrics(const struct plugin_set *ps, struct evbuffer *out);

/*
 * Check one descriptor as the host would (exposed for unit tests). Returns
 * 0, or -EINVAL with a static reason in *ret_reason.
 */
int plugin_desc_validate(const struct troika_plugin *desc,
    const char **ret_reason);

/*
 * A plugin's actions (ABI 1.1), NULL-terminated; NULL when its descriptor
 * predates actions or it declares none.
 */
const struct troika_action *plugin_actions(const struct troika_plugin *desc);

#endif
