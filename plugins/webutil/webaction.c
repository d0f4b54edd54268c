/*
 * webaction: start, stop, restart (service manager) and reload (the
 * configured command) for the web service plugins. See webaction.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "webaction.h"

/* Output kept from a reload command, for its first line in the message. */
#define WEBACTION_MAX_OUTPUT 4096

const struct troika_action webaction_actions[] = {
	{ .name = "start", .min_args = 0, .max_args = 0,
	    .help = "start the service through the service manager" },
	{ .name = "stop", .min_args = 0, .max_args = 0,
	    .help = "stop the service through the service manager" },
	{ .name = "restart", .min_args = 0, .max_args = 0,
	    .help = "restart the service through the service manager" },
	{ .name = "reload", .min_args = 0, .max_args = 0,
	    .help = "run reload_command" },
	{ .name = NULL },
};

/*
 * One service_control() call. The host offers no way to withdraw it, so
 * when its action is abandoned the call is only detached (wa = NULL, kept
 * on owner->detached) and frees itself when the host reports. The host
 * never reports for a freed check, so webaction_free() frees what is left.
 */
struct webaction_call {
	struct webaction *wa;    /* NULL once detached */
	struct webaction *owner;
	struct webaction_call *next; /* on owner->detached */
};

struct webaction {
	const struct troika_host *host;
	struct troika_instance *inst;
	char **reload_argv; /* NULL-terminated, or NULL */
	struct event *defer;

	/* The running action. */
	struct troika_task *task;
	char op[16];
	struct webaction_call *call;
	struct webaction_call *detached;
	void *spawn;
	enum troika_status dstatus; /* a result found inside run() */
	char dmsg[256];
};

static void webaction_defer_cb(evutil_socket_t fd, short what, void *arg);

void
webaction_free(struct webaction *wa)
{
	if (wa == NULL)
		return;
	webaction_cancel(wa, wa->task);
	while (wa->detached != NULL) {
		struct webaction_call *next = wa->detached->next;
		free(wa->detached);
		wa->detached = next;
	}
	if (wa->defer != NULL)
		event_free(wa->defer);
	if (wa->reload_argv != NULL)
		for (size_t i = 0; wa->reload_argv[i] != NULL; i++)
			free(wa->reload_argv[i]);
	free(wa->reload_argv);
	free(wa);
}

static int
webaction_read_reload(struct webaction *wa)
{
	const struct troika_host *host = wa->host;
	size_t n;

	if (!host->opt_isset(wa->inst, "reload_command"))
		return 0;
	n = host->opt_list_len(wa->inst, "reload_command");
	if (n == 0) {
		host->log(wa->inst, TROIKA_LOG_ERR, "reload_command must not "
		    "be empty");
		return -EINVAL;
	}
	if ((wa->reload_argv = calloc(n + 1, sizeof(char *))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const char *s = host->opt_list_at(wa->inst, "reload_command",
		    i);

		if ((wa->reload_argv[i] = strdup(s)) == NULL)
			return -ENOMEM;
	}
	/* No PATH search: the agent's PATH is not the operator's shell. */
	if (wa->reload_argv[0][0] != '/') {
		host->log(wa->inst, TROIKA_LOG_ERR, "reload_command: \"%s\" "
		    "is not an absolute path", wa->reload_argv[0]);
		return -EINVAL;
	}
	return 0;
}

int
webaction_new(const struct troika_host *host, struct troika_instance *inst,
    struct webaction **ret)
{
	struct webaction *wa;
	int r;

	*ret = NULL;
	if ((wa = calloc(1, sizeof(*wa))) == NULL)
		return -ENOMEM;
	wa->host = host;
	wa->inst = inst;
	if ((r = webaction_read_reload(wa)) < 0)
		goto fail;
	if ((wa->defer = event_new(host->event_base(inst), -1, 0,
	    webaction_defer_cb, wa)) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	*ret = wa;
	return 0;

fail:
	webaction_free(wa);
	return r;
}

static void
webaction_report(struct webaction *wa, enum troika_status status,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* End the running action and report it. */
static void
webaction_report(struct webaction *wa, enum troika_status status,
    const char *fmt, ...)
{
	struct troika_task *task = wa->task;
	struct troika_label fields[1] = { { "action", wa->op } };
	struct troika_result res = {
		.size = sizeof(res),
		.status = status,
		.fields = fields,
		.nfields = 1,
	};
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	res.message = msg;
	wa->task = NULL;
	wa->host->check_done(task, &res);
}

static void
webaction_defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct webaction *wa = arg;

	(void)fd;
	(void)what;
	webaction_report(wa, wa->dstatus, "%s", wa->dmsg);
}

/* Report from the loop: run() must return before check_done(). */
static void
webaction_defer(struct webaction *wa, enum troika_status status,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
webaction_defer(struct webaction *wa, enum troika_status status,
    const char *fmt, ...)
{
	va_list ap;

	wa->dstatus = status;
	va_start(ap, fmt);
	vsnprintf(wa->dmsg, sizeof(wa->dmsg), fmt, ap);
	va_end(ap);
	event_active(wa->defer, EV_TIMEOUT, 1);
}

static void
webaction_service_done_cb(int ok, const char *message, void *arg)
{
	struct webaction_call *call = arg;
	struct webaction *wa = call->wa;

	if (wa == NULL) {
		/* Abandoned: off the owner's detached list, and gone. */
		struct webaction_call **pp;
		for (pp = &call->owner->detached; *pp != NULL; pp = &(*pp)->next)
			if (*pp == call) {
				*pp = call->next;
				break;
			}
		free(call);
		return;
	}
	free(call);
	wa->call = NULL;
	webaction_report(wa, ok ? TROIKA_STATUS_OK : TROIKA_STATUS_CRITICAL,
	    "%s: %s", wa->op, message != NULL ? message : (ok ? "done" :
	    "failed"));
}

static void
webaction_service(struct webaction *wa)
{
	int64_t ms = wa->host->task_remaining_ms(wa->task);
	int r;

	if ((wa->call = calloc(1, sizeof(*wa->call))) == NULL) {
		webaction_defer(wa, TROIKA_STATUS_UNKNOWN, "%s: out of memory",
		    wa->op);
		return;
	}
	wa->call->wa = wa;
	wa->call->owner = wa;
	r = wa->host->service_control(wa->inst, wa->op, ms,
	    webaction_service_done_cb, wa->call);
	if (r == 0)
		return;
	free(wa->call);
	wa->call = NULL;
	if (r == -ENOENT)
		webaction_defer(wa, TROIKA_STATUS_CRITICAL, "no service "
		    "manager configured for this check");
	else
		webaction_defer(wa, TROIKA_STATUS_CRITICAL, "%s: the service "
		    "manager refused: %s", wa->op, strerror(-r));
}

/* The first line of a command's output, bounded, for a message. */
static void
webaction_first_line(const char *out, char *buf, size_t len)
{
	size_t n = out != NULL ? strcspn(out, "\r\n") : 0;

	if (n >= len)
		n = len - 1;
	memcpy(buf, out != NULL ? out : "", n);
	buf[n] = '\0';
}

static void
webaction_spawn_done_cb(const struct troika_spawn_result *res, void *arg)
{
	struct webaction *wa = arg;
	char line[200];

	wa->spawn = NULL;
	webaction_first_line(res->output, line, sizeof(line));
	if (res->spawn_errno != 0)
		webaction_report(wa, TROIKA_STATUS_CRITICAL, "reload: cannot "
		    "run %s: %s", wa->reload_argv[0],
		    strerror(res->spawn_errno));
	else if (res->timed_out)
		webaction_report(wa, TROIKA_STATUS_UNKNOWN, "reload: %s timed "
		    "out and was killed", wa->reload_argv[0]);
	else if (!res->exited)
		webaction_report(wa, TROIKA_STATUS_CRITICAL, "reload: %s was "
		    "killed by signal %d", wa->reload_argv[0], res->signal);
	else if (res->exit_code != 0)
		webaction_report(wa, TROIKA_STATUS_CRITICAL, "reload: %s "
		    "exited with %d: %s", wa->reload_argv[0], res->exit_code,
		    line);
	else
		webaction_report(wa, TROIKA_STATUS_OK, "reload: %s exited with "
		    "0", wa->reload_argv[0]);
}

static void
webaction_reload(struct webaction *wa)
{
	int64_t ms = wa->host->task_remaining_ms(wa->task);

	if (wa->reload_argv == NULL) {
		webaction_defer(wa, TROIKA_STATUS_CRITICAL, "reload: no "
		    "reload_command configured for this check");
		return;
	}
	wa->spawn = wa->host->spawn(wa->inst,
	    (const char *const *)wa->reload_argv, ms > 1 ? ms : 1,
	    WEBACTION_MAX_OUTPUT, webaction_spawn_done_cb, wa);
	if (wa->spawn == NULL)
		webaction_defer(wa, TROIKA_STATUS_CRITICAL, "reload: cannot "
		    "run %s: %s", wa->reload_argv[0], strerror(errno));
}

void
webaction_run(struct webaction *wa, struct troika_task *task,
    const char *name)
{
	wa->task = task;
	snprintf(wa->op, sizeof(wa->op), "%s", name);
	if (strcmp(name, "reload") == 0)
		webaction_reload(wa);
	else if (strcmp(name, "start") == 0 || strcmp(name, "stop") == 0 ||
	    strcmp(name, "restart") == 0)
		webaction_service(wa);
	else
		webaction_defer(wa, TROIKA_STATUS_UNKNOWN, "no action %s",
		    name);
}

void
webaction_cancel(struct webaction *wa, struct troika_task *task)
{
	if (wa == NULL || task == NULL || wa->task != task)
		return;
	if (wa->call != NULL) {
		wa->call->wa = NULL;
		wa->call->next = wa->detached;
		wa->detached = wa->call;
	}
	wa->call = NULL;
	if (wa->spawn != NULL)
		wa->host->spawn_cancel(wa->spawn);
	wa->spawn = NULL;
	event_del(wa->defer);
	wa->task = NULL;
}
