/*
 * The service manager: start, stop or restart the service behind a check.
 * Backends: exec (argv lists from the configuration, run without a shell
 * through spawn.c) and systemd (unit jobs over D-Bus, svc_systemd.c).
 * Never blocks the loop; the result says what happened.
 */
#ifndef TROIKA_SVC_H
#define TROIKA_SVC_H

#include <stddef.h>
#include <stdint.h>

struct event_base;

enum svc_backend {
	SVC_NONE = 0,
	SVC_EXEC,
	SVC_SYSTEMD,
};

struct svc_spec {
	enum svc_backend backend;
	char **start;   /* argv, NULL-terminated not required: nstart items */
	size_t nstart;
	char **stop;
	size_t nstop;
	char **restart; /* optional: without it, restart is stop then start */
	size_t nrestart;
	char *unit;     /* SVC_SYSTEMD */
};

/* ok: 1 if the manager did what was asked. message: one line, always set. */
typedef void (*svc_done_fn)(int ok, const char *message, void *arg);

struct svc_op;

/*
 * Run op ("start", "stop" or "restart") within timeout_ms (for restart
 * without its own command: the whole stop+start). done is called on the
 * loop exactly once unless svc_op_cancel() comes first. Returns the
 * operation, or NULL with *ret_err = -ENOENT (no such command configured),
 * -EINVAL (unknown op) or another negative errno.
 */
struct svc_op *svc_control(struct event_base *base, const struct svc_spec *spec,
    const char *op, int64_t timeout_ms, svc_done_fn done, void *arg,
    int *ret_err);

/* Forget an operation: done is not called; a running command is killed. */
void svc_op_cancel(struct svc_op *op);

#endif
