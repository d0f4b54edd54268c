#include "svc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "spawn.h"
#include "svc_systemd.h"

/* What a command may print that we keep for the message. */
#define SVC_MAX_OUTPUT 4096

struct svc_op {
	struct event_base *base;
	char *op;
	/* Steps: one command, or stop then start for a plain restart. */
	char **steps[2];
	size_t nsteps_argv[2];
	const char *step_names[2];
	int nsteps;
	int step;
	int64_t deadline_ms; /* monotonic */
	struct spawn *running;
	struct svc_systemd_op *systemd;
	char message[600];
	size_t message_len;
	int ok;
	svc_done_fn done;
	void *arg;
};

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
svc_op_free(struct svc_op *o)
{
	if (o == NULL)
		return;
	free(o->op);
	free(o);
}

static void
svc_note(struct svc_op *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Append to the message, "; " between steps. */
static void
svc_note(struct svc_op *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->message_len >= sizeof(o->message) - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->message + o->message_len,
	    sizeof(o->message) - o->message_len, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->message_len += (size_t)n;
	if (o->message_len >= sizeof(o->message))
		o->message_len = sizeof(o->message) - 1;
}

static int svc_next_step(struct svc_op *o);

static void
svc_step_done_cb(const struct troika_spawn_result *res, void *arg)
{
	struct svc_op *o = arg;
	const char *name = o->step_names[o->step];
	char first[160];
	size_t n;

	o->running = NULL;
	n = res->output ? strcspn(res->output, "\n") : 0;
	if (n >= sizeof(first))
		n = sizeof(first) - 1;
	memcpy(first, res->output ? res->output : "", n);
	first[n] = '\0';

	if (o->step > 0)
		svc_note(o, "; ");
	if (res->spawn_errno != 0) {
		svc_note(o, "%s: could not run %s: %s", name,
		    o->steps[o->step][0], strerror(res->spawn_errno));
		o->ok = 0;
	} else if (res->timed_out) {
		svc_note(o, "%s: timed out", name);
		o->ok = 0;
	} else if (!res->exited) {
		svc_note(o, "%s: killed by signal %d", name, res->signal);
		o->ok = 0;
	} else if (res->exit_code != 0) {
		svc_note(o, "%s: exited %d%s%s", name, res->exit_code,
		    first[0] ? ": " : "", first);
		o->ok = 0;
	} else {
		svc_note(o, "%s: done in %.2fs", name,
		    (double)res->duration_us / 1e6);
		o->ok = 1;
	}
	/*
	 * A plain restart starts even when stop failed (the service may have
	 * been down already); the result is the start's.
	 */
	o->step++;
	if (o->step < o->nsteps && svc_next_step(o) == 0)
		return;
	if (o->step < o->nsteps) {
		svc_note(o, "; %s: could not run %s: %s", o->step_names[o->step],
		    o->steps[o->step][0], strerror(errno));
		o->ok = 0;
	}
	o->done(o->ok, o->message, o->arg);
	svc_op_free(o);
}

/* Start the current step. Returns 0, or -1 with errno set. */
static int
svc_next_step(struct svc_op *o)
{
	int64_t left = o->deadline_ms - mono_ms();
	char *argv[65];
	size_t n = o->nsteps_argv[o->step];

	if (left < 1)
		left = 1;
	if (n > 64)
		n = 64;
	for (size_t i = 0; i < n; i++)
		argv[i] = o->steps[o->step][i];
	argv[n] = NULL;
	o->running = spawn_start(o->base, (const char *const *)argv, left,
	    SVC_MAX_OUTPUT, svc_step_done_cb, o);
	return o->running != NULL ? 0 : -1;
}

static void
svc_systemd_done_cb(int ok, const char *message, void *arg)
{
	struct svc_op *o = arg;

	o->systemd = NULL; /* svc_systemd.c frees its own */
	o->done(ok, message, o->arg);
	svc_op_free(o);
}

struct svc_op *
svc_control(struct event_base *base, const struct svc_spec *spec,
    const char *op, int64_t timeout_ms, svc_done_fn done, void *arg,
    int *ret_err)
{
	struct svc_op *o;

	*ret_err = 0;
	if (spec == NULL || spec->backend == SVC_NONE) {
		*ret_err = -ENOENT;
		return NULL;
	}
	if (strcmp(op, "start") != 0 && strcmp(op, "stop") != 0 &&
	    strcmp(op, "restart") != 0) {
		*ret_err = -EINVAL;
		return NULL;
	}
	if ((o = calloc(1, sizeof(*o))) == NULL || (o->op = strdup(op)) == NULL) {
		free(o);
		*ret_err = -ENOMEM;
		return NULL;
	}
	o->base = base;
	o->done = done;
	o->arg = arg;
	if (spec->backend == SVC_SYSTEMD) {
		o->systemd = svc_systemd_control(base, spec->unit, op, timeout_ms,
		    svc_systemd_done_cb, o, ret_err);
		if (o->systemd == NULL) {
			svc_op_free(o);
			return NULL;
		}
		return o;
	}
	o->deadline_ms = mono_ms() + timeout_ms;
	if (strcmp(op, "start") == 0 && spec->nstart > 0) {
		o->steps[0] = spec->start;
		o->nsteps_argv[0] = spec->nstart;
		o->step_names[0] = "start";
		o->nsteps = 1;
	} else if (strcmp(op, "stop") == 0 && spec->nstop > 0) {
		o->steps[0] = spec->stop;
		o->nsteps_argv[0] = spec->nstop;
		o->step_names[0] = "stop";
		o->nsteps = 1;
	} else if (strcmp(op, "restart") == 0 && spec->nrestart > 0) {
		o->steps[0] = spec->restart;
		o->nsteps_argv[0] = spec->nrestart;
		o->step_names[0] = "restart";
		o->nsteps = 1;
	} else if (strcmp(op, "restart") == 0 && spec->nstop > 0 &&
	    spec->nstart > 0) {
		o->steps[0] = spec->stop;
		o->nsteps_argv[0] = spec->nstop;
		o->step_names[0] = "stop";
		o->steps[1] = spec->start;
		o->nsteps_argv[1] = spec->nstart;
		o->step_names[1] = "start";
		o->nsteps = 2;
	} else {
		svc_op_free(o);
		*ret_err = -ENOENT;
		return NULL;
	}
	if (svc_next_step(o) < 0) {
		*ret_err = -errno;
		svc_op_free(o);
		return NULL;
	}
	return o;
}

void
svc_op_cancel(struct svc_op *o)
{
	if (o == NULL)
		return;
	spawn_cancel(o->running);
	svc_systemd_cancel(o->systemd);
	svc_op_free(o);
}
