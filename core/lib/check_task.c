/*
 * Tasks: one run of a check or one action, with its deadline; async
 * plugins on the loop, blocking ones on the worker pool.
 */
#include "check_host_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <syslog.h>

#include <event2/event.h>

#include "conf.h"
#include "emit.h"
#include "log.h"
#include "plugin_set.h"
#include "worker.h"

static atomic_size_t tasks_alive;

static int task_begin(struct troika_instance *c, struct troika_task *t);

void
check_task_done(struct troika_task *t, const struct troika_result *res)
{
	if (t->blocking) {
		/* Worker thread: keep it until the job's done callback. */
		if (!t->has_result) {
			check_result_copy(&t->result, res);
			t->has_result = 1;
		}
		return;
	}
	if (t->state == TASK_ABANDONED) {
		/* A late end of a timed-out run of a plugin without cancel(). */
		if (t->check != NULL && t->check->task == t)
			t->check->task = NULL;
		check_task_free(t);
		return;
	}
	struct result_copy r;
	check_result_copy(&r, res);
	check_task_finish(t, &r, 0);
}

int64_t
check_task_remaining_ms(struct troika_task *t)
{
	int64_t left = t->deadline_us - check_now_us();

	return left > 0 ? (left + 999) / 1000 : 0;
}

void
check_task_free(struct troika_task *t)
{
	if (t == NULL)
		return;
	if (t->deadline != NULL)
		event_free(t->deadline);
	check_result_clear(&t->result);
	free(t->action);
	conf_strv_free(t->argv, t->argc);
	free(t);
	atomic_fetch_sub(&tasks_alive, 1);
}

/* Tell an action's requester how it went, once. */
void
check_action_report(struct troika_task *t, const struct result_copy *r, int timed_out)
{
	struct troika_instance *c = t->check;
	check_action_done_fn done = t->done;
	struct action_outcome o = {
		.status = r->status,
		.message = r->message,
		.fields = r->fields,
		.nfields = r->nfields,
		.timed_out = timed_out,
		.duration = (double)(check_now_us() - t->started_us) / 1e6,
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

/* The instance is free again: start an action that waited for it. */
static void
check_task_ended(struct troika_instance *c)
{
	struct troika_task *next = c->pending_action;

	if (next == NULL || c->task != NULL) {
		check_recheck_if_pending(c);
		return;
	}
	c->pending_action = NULL;
	task_begin(c, next);
}

void
check_task_finish(struct troika_task *t, struct result_copy *r, int timed_out)
{
	struct troika_instance *c = t->check;
	double duration = (double)(check_now_us() - t->started_us) / 1e6;

	if (t->is_action)
		check_action_report(t, r, timed_out);
	if (c != NULL) {
		if (c->task == t)
			c->task = NULL;
		if (!t->is_action)
			check_record(c, r, timed_out, duration);
	}
	check_result_clear(r);
	check_task_free(t);
	if (c != NULL)
		check_task_ended(c);
}

int
check_plugin_has_cancel(const struct troika_plugin *d)
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
		check_action_report(t, &r, 1);
	} else {
		struct troika_event ev = {
			.kind = EVENT_CHECK_TIMEOUT, .check = c->name,
			.plugin = c->plugin_name, .old_status = -1,
			.new_status = -1, .message = msg,
		};
		event_emit(&ev);
		check_record(c, &r, 1, (double)(check_now_us() - t->started_us) / 1e6);
	}
	check_result_clear(&r);

	if (t->builtin_service) {
		check_service_cancel_arg(c, t);
		c->task = NULL;
		check_task_free(t);
		check_task_ended(c);
		return;
	}
	if (!t->blocking && check_plugin_has_cancel(d)) {
		d->cancel(c->state, t);
		c->task = NULL;
		check_task_free(t);
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
	check_task_finish(t, &r, 0);
}

static void
task_run_plugin(struct troika_task *t)
{
	const struct troika_plugin *d = t->orphan_plugin->desc;

	if (t->builtin_service) {
		int r = check_service_control(t->check, t->action, t->timeout_ms,
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
			check_task_finish(t, &rc, 0);
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
		check_task_free(t);
		return;
	}
	if (t->state == TASK_ABANDONED || cancelled) {
		if (c->task == t)
			c->task = NULL;
		if (cancelled && t->is_action) {
			struct result_copy r = { .status = TROIKA_STATUS_UNKNOWN };
			r.message = strdup("agent stopping");
			check_action_report(t, &r, 0);
			check_result_clear(&r);
		}
		check_task_free(t);
		check_task_ended(c);
		return;
	}
	if (!t->has_result) {
		t->result.status = TROIKA_STATUS_UNKNOWN;
		t->result.message = strdup("plugin returned without reporting a result");
	}
	struct result_copy r = t->result;
	memset(&t->result, 0, sizeof(t->result));
	check_task_finish(t, &r, 0);
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
		check_task_free(t);
		return NULL;
	}
	return t;
}

/* Hand a task to its plugin; the instance must be idle. */
static int
task_begin(struct troika_instance *c, struct troika_task *t)
{
	struct timeval plain;

	t->started_us = check_now_us();
	t->deadline_us = t->started_us + t->timeout_ms * 1000;
	evtimer_add(t->deadline, check_host_timeout(c->host, t->timeout_ms, &plain));
	c->task = t;
	if (!t->blocking) {
		task_run_plugin(t);
		return 0;
	}
	if (worker_pool_submit(c->host->pool, task_work, task_work_done, t) < 0) {
		struct result_copy r = { .status = TROIKA_STATUS_UNKNOWN };
		r.message = strdup("worker queue full; not run");
		check_task_finish(t, &r, 0);
		return -EAGAIN;
	}
	return 0;
}

int
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
	const struct troika_action *a = plugin_actions(d);

	for (; a != NULL && a->name != NULL; a++)
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
		check_task_free(t);
		*ret_error = "out of memory";
		return -ENOMEM;
	}
	for (size_t i = 0; i < argc; i++, t->argc++)
		if ((t->argv[i] = strdup(argv[i])) == NULL) {
			check_task_free(t);
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

size_t
check_host_tasks_alive(void)
{
	return atomic_load(&tasks_alive);
}
