/*
 * The systemd backend of the service manager: StartUnit, StopUnit or
 * RestartUnit over D-Bus (sd-bus, no fork of systemctl), then the job's
 * JobRemoved signal says how it went ("done", or "failed", "timeout", ...).
 *
 * Each operation opens its own connection to the system bus
 * (DBUS_SYSTEM_BUS_ADDRESS if set), driven by the event loop: sd-bus says
 * which fd events and which timeout it waits for, libevent wakes it.
 * Operations are rare (one recovery action at a time), so a connection per
 * operation keeps the state simple and a dead bus harmless.
 */
#include "svc_systemd.h"

#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <systemd/sd-bus.h>

#include "log.h"

#define SYSTEMD_DEST "org.freedesktop.systemd1"
#define SYSTEMD_PATH "/org/freedesktop/systemd1"
#define SYSTEMD_MANAGER "org.freedesktop.systemd1.Manager"

struct svc_systemd_op {
	sd_bus *bus;
	sd_bus_slot *match;
	sd_bus_slot *call;
	struct event *io;
	struct event *timer;    /* sd-bus's own timeouts */
	struct event *deadline; /* the operation's */
	char *job;              /* object path of our job, once known */
	char *unit;
	char op[16];
	/* JobRemoved may overtake the method reply: remember the result. */
	char *early_job;
	char *early_result;
	int finished;
	svc_systemd_done_fn done;
	void *arg;
};

/*
 * libsystemd is opened on the first systemd operation, not linked: it and
 * what it pulls in (libgcrypt, liblzma, liblz4, ...) cost every agent
 * ~0.7 MiB of resident memory, and most checks never use systemd
 * (docs/benchmarks.md).
 */
static struct {
	void *dl;
	__typeof__(sd_bus_call_method_async) *call_method_async;
	__typeof__(sd_bus_flush_close_unref) *flush_close_unref;
	__typeof__(sd_bus_get_events) *get_events;
	__typeof__(sd_bus_get_timeout) *get_timeout;
	__typeof__(sd_bus_match_signal_async) *match_signal_async;
	__typeof__(sd_bus_message_get_error) *message_get_error;
	__typeof__(sd_bus_message_read) *message_read;
	__typeof__(sd_bus_open_system) *open_system;
	__typeof__(sd_bus_process) *process;
	__typeof__(sd_bus_slot_unref) *slot_unref;
	__typeof__(sd_bus_get_fd) *get_fd;
} sd;

static int
sd_load(void)
{
	void *dl;

	if (sd.dl != NULL)
		return 0;
	if ((dl = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL)) == NULL) {
		log_warnx("systemd service manager: %s", dlerror());
		return -ENOTSUP;
	}
	*(void **)&sd.call_method_async = dlsym(dl, "sd_bus_call_method_async");
	*(void **)&sd.flush_close_unref = dlsym(dl, "sd_bus_flush_close_unref");
	*(void **)&sd.get_events = dlsym(dl, "sd_bus_get_events");
	*(void **)&sd.get_timeout = dlsym(dl, "sd_bus_get_timeout");
	*(void **)&sd.match_signal_async = dlsym(dl, "sd_bus_match_signal_async");
	*(void **)&sd.message_get_error = dlsym(dl, "sd_bus_message_get_error");
	*(void **)&sd.message_read = dlsym(dl, "sd_bus_message_read");
	*(void **)&sd.open_system = dlsym(dl, "sd_bus_open_system");
	*(void **)&sd.process = dlsym(dl, "sd_bus_process");
	*(void **)&sd.slot_unref = dlsym(dl, "sd_bus_slot_unref");
	*(void **)&sd.get_fd = dlsym(dl, "sd_bus_get_fd");
	if (sd.call_method_async == NULL ||
	    sd.flush_close_unref == NULL ||
	    sd.get_events == NULL ||
	    sd.get_timeout == NULL ||
	    sd.match_signal_async == NULL ||
	    sd.message_get_error == NULL ||
	    sd.message_read == NULL ||
	    sd.open_system == NULL ||
	    sd.process == NULL ||
	    sd.slot_unref == NULL ||
	    sd.get_fd == NULL) {
		log_warnx("systemd service manager: libsystemd.so.0 lacks sd-bus");
		dlclose(dl);
		memset(&sd, 0, sizeof(sd));
		return -ENOTSUP;
	}
	sd.dl = dl;
	return 0;
}

static void op_update(struct svc_systemd_op *o);

static void
op_free(struct svc_systemd_op *o)
{
	if (o == NULL)
		return;
	if (o->io != NULL)
		event_free(o->io);
	if (o->timer != NULL)
		event_free(o->timer);
	if (o->deadline != NULL)
		event_free(o->deadline);
	sd.slot_unref(o->match);
	sd.slot_unref(o->call);
	if (o->bus != NULL)
		sd.flush_close_unref(o->bus);
	free(o->job);
	free(o->unit);
	free(o->early_job);
	free(o->early_result);
	free(o);
}

/* Report once; the struct is freed from the loop, not from inside sd-bus. */
static void
op_finish(struct svc_systemd_op *o, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
op_finish(struct svc_systemd_op *o, int ok, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	struct timeval now = { 0, 0 };

	if (o->finished)
		return;
	o->finished = 1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	o->done(ok, msg, o->arg);
	/* Free on the next loop turn: we may be inside sd.process(). */
	event_del(o->deadline);
	event_add(o->deadline, &now);
}

static void
op_job_result(struct svc_systemd_op *o, const char *result)
{
	op_finish(o, strcmp(result, "done") == 0, "%s %s: job %s", o->op,
	    o->unit, result);
}

static int
job_removed_cb(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
	struct svc_systemd_op *o = userdata;
	const char *job, *unit, *result;
	uint32_t id;

	(void)err;
	if (sd.message_read(m, "uoss", &id, &job, &unit, &result) < 0)
		return 0;
	if (o->job != NULL) {
		if (strcmp(job, o->job) == 0)
			op_job_result(o, result);
		return 0;
	}
	/* Not known yet: it may be ours, overtaking the method reply. */
	if (strcmp(unit, o->unit) == 0) {
		free(o->early_job);
		free(o->early_result);
		o->early_job = strdup(job);
		o->early_result = strdup(result);
	}
	return 0;
}

static int
call_reply_cb(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
	struct svc_systemd_op *o = userdata;
	const sd_bus_error *e = sd.message_get_error(m);
	const char *job;

	(void)err;
	if (e != NULL) {
		op_finish(o, 0, "%s %s: %s", o->op, o->unit,
		    e->message ? e->message : e->name);
		return 0;
	}
	if (sd.message_read(m, "o", &job) < 0 ||
	    (o->job = strdup(job)) == NULL) {
		op_finish(o, 0, "%s %s: unreadable reply from systemd", o->op,
		    o->unit);
		return 0;
	}
	if (o->early_job != NULL && strcmp(o->early_job, o->job) == 0)
		op_job_result(o, o->early_result);
	return 0;
}

static void
op_process(struct svc_systemd_op *o)
{
	int r;

	while ((r = sd.process(o->bus, NULL)) > 0 && !o->finished)
		;
	if (r < 0 && !o->finished)
		op_finish(o, 0, "%s %s: D-Bus: %s", o->op, o->unit, strerror(-r));
	if (!o->finished)
		op_update(o);
}

static void
op_io_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	op_process(arg);
}

static void
op_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct svc_systemd_op *o = arg;

	(void)fd;
	(void)what;
	if (!o->finished) {
		o->finished = 1;
		o->done(0, o->job ? "timed out waiting for the job" :
		    "timed out waiting for systemd", o->arg);
	}
	op_free(o);
}

/* Arm the fd event and timer for what sd-bus waits for now. */
static void
op_update(struct svc_systemd_op *o)
{
	struct event_base *base = event_get_base(o->deadline);
	int fd = sd.get_fd(o->bus), events = sd.get_events(o->bus);
	short what = 0;
	uint64_t usec;

	if (events < 0 || fd < 0) {
		op_finish(o, 0, "%s %s: lost the D-Bus connection", o->op, o->unit);
		return;
	}
	if (events & POLLIN)
		what |= EV_READ;
	if (events & POLLOUT)
		what |= EV_WRITE;
	if (o->io != NULL)
		event_free(o->io);
	o->io = event_new(base, fd, what, op_io_cb, o);
	if (o->io == NULL || event_add(o->io, NULL) < 0) {
		op_finish(o, 0, "%s %s: out of memory", o->op, o->unit);
		return;
	}
	event_del(o->timer);
	if (sd.get_timeout(o->bus, &usec) >= 0 && usec != UINT64_MAX) {
		struct timespec ts;
		uint64_t now;
		struct timeval tv = { 0, 0 };

		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
		if (usec > now) {
			tv.tv_sec = (time_t)((usec - now) / 1000000);
			tv.tv_usec = (suseconds_t)((usec - now) % 1000000);
		}
		event_add(o->timer, &tv);
	}
}

static const char *
method_for(const char *op)
{
	if (strcmp(op, "start") == 0)
		return "StartUnit";
	if (strcmp(op, "stop") == 0)
		return "StopUnit";
	if (strcmp(op, "restart") == 0)
		return "RestartUnit";
	return NULL;
}

struct svc_systemd_op *
svc_systemd_control(struct event_base *base, const char *unit, const char *op,
    int64_t timeout_ms, svc_systemd_done_fn done, void *arg, int *ret_err)
{
	struct svc_systemd_op *o;
	const char *method = method_for(op);
	struct timeval tv;
	int r;

	*ret_err = 0;
	if (method == NULL) {
		*ret_err = -EINVAL;
		return NULL;
	}
	if ((*ret_err = sd_load()) < 0)
		return NULL;
	if ((o = calloc(1, sizeof(*o))) == NULL || (o->unit = strdup(unit)) == NULL) {
		free(o);
		*ret_err = -ENOMEM;
		return NULL;
	}
	snprintf(o->op, sizeof(o->op), "%s", op);
	o->done = done;
	o->arg = arg;
	o->deadline = evtimer_new(base, op_deadline_cb, o);
	o->timer = evtimer_new(base, op_io_cb, o);
	if (o->deadline == NULL || o->timer == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	if ((r = sd.open_system(&o->bus)) < 0)
		goto fail;
	/* Subscribe first, so no JobRemoved can slip by. */
	if ((r = sd.match_signal_async(o->bus, &o->match, SYSTEMD_DEST,
	    SYSTEMD_PATH, SYSTEMD_MANAGER, "JobRemoved", job_removed_cb, NULL,
	    o)) < 0)
		goto fail;
	if ((r = sd.call_method_async(o->bus, NULL, SYSTEMD_DEST,
	    SYSTEMD_PATH, SYSTEMD_MANAGER, "Subscribe", NULL, NULL, "")) < 0)
		goto fail;
	if ((r = sd.call_method_async(o->bus, &o->call, SYSTEMD_DEST,
	    SYSTEMD_PATH, SYSTEMD_MANAGER, method, call_reply_cb, o, "ss",
	    unit, "replace")) < 0)
		goto fail;
	tv.tv_sec = (time_t)(timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000;
	event_add(o->deadline, &tv);
	/* First processing from the loop, so done never runs before we return. */
	tv.tv_sec = 0;
	tv.tv_usec = 0;
	event_add(o->timer, &tv);
	return o;
fail:
	*ret_err = r;
	op_free(o);
	return NULL;
}

void
svc_systemd_cancel(struct svc_systemd_op *o)
{
	op_free(o);
}
