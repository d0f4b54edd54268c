/* The systemd backend of svc.c: unit jobs over D-Bus (sd-bus). */
#ifndef TROIKA_SVC_SYSTEMD_H
#define TROIKA_SVC_SYSTEMD_H

#include <stdint.h>

struct event_base;
struct svc_systemd_op;

typedef void (*svc_systemd_done_fn)(int ok, const char *message, void *arg);

/*
 * Start, stop or restart unit; done is called on the loop exactly once
 * (job result "done" is ok; any other result, a D-Bus error or the
 * deadline is not) unless svc_systemd_cancel() comes first. Returns NULL
 * with *ret_err set when the bus cannot even be reached.
 */
struct svc_systemd_op *svc_systemd_control(struct event_base *base,
    const char *unit, const char *op, int64_t timeout_ms,
    svc_systemd_done_fn done, void *arg, int *ret_err);

/* Forget an operation (the job, if started, goes on in systemd). */
void svc_systemd_cancel(struct svc_systemd_op *op);

#endif
