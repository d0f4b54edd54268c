/*
 * Actions start, stop and restart: the host's service manager does the
 * work, then the plugin checks that it took. A service manager's "done"
 * says a command ran; for a broker that takes 8-20 s to boot, what the
 * coordinator needs to know is whether clients can log in again (start,
 * restart) or whether the port is closed (stop). So after the manager's
 * success the action polls the broker until then, within the deadline.
 *
 * host->service_control() belongs to the loop thread and action() runs on
 * a worker (the plugin is blocking), so the call is handed to the loop
 * with event_base_once() (the agent's libevent is thread-enabled) and the
 * worker waits for the answer until the deadline.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "rabbitmq.h"

/* Pause between two probes of the broker after the service manager's answer. */
#define RABBITMQ_PROBE_PAUSE_MS 200

const struct troika_action rabbitmq_actions[] = {
	{ .name = "start", .min_args = 0, .max_args = 0,
	    .help = "start the broker, then wait until it accepts a login" },
	{ .name = "stop", .min_args = 0, .max_args = 0,
	    .help = "stop the broker, then wait until its port refuses" },
	{ .name = "restart", .min_args = 0, .max_args = 0,
	    .help = "restart the broker, then wait until it accepts a login" },
	{ .name = NULL },
};

/*
 * One service_control() call, shared by the waiting worker and the loop
 * side; the last of the two to let go frees it.
 */
struct rabbitmq_svc_call {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int refs;
	int abandoned; /* the worker stopped waiting */
	int finished;
	int ret;       /* service_control()'s return, when negative */
	int ok;
	char *message;
	struct rabbitmq *rq;
	const char *op;
	int64_t timeout_ms;
	struct rabbitmq_svc_call *next; /* in rq->calls while done is due */
};

static void
rabbitmq_svc_unref(struct rabbitmq_svc_call *call)
{
	int last;

	pthread_mutex_lock(&call->lock);
	last = --call->refs == 0;
	pthread_mutex_unlock(&call->lock);
	if (!last)
		return;
	pthread_mutex_destroy(&call->lock);
	pthread_cond_destroy(&call->cond);
	free(call->message);
	free(call);
}

static void
rabbitmq_svc_finish(struct rabbitmq_svc_call *call, int ret, int ok,
    const char *message)
{
	pthread_mutex_lock(&call->lock);
	call->finished = 1;
	call->ret = ret;
	call->ok = ok;
	call->message = message != NULL ? strdup(message) : NULL;
	pthread_cond_signal(&call->cond);
	pthread_mutex_unlock(&call->lock);
}

/* Loop thread. */
static void
rabbitmq_svc_unlink(struct rabbitmq *rq, struct rabbitmq_svc_call *call)
{
	for (struct rabbitmq_svc_call **p = &rq->calls; *p != NULL;
	    p = &(*p)->next) {
		if (*p == call) {
			*p = call->next;
			return;
		}
	}
}

/* Loop thread: the service manager's answer. */
static void
rabbitmq_svc_done_cb(int ok, const char *message, void *arg)
{
	struct rabbitmq_svc_call *call = arg;

	rabbitmq_svc_unlink(call->rq, call);
	rabbitmq_svc_finish(call, 0, ok, message);
	rabbitmq_svc_unref(call);
}

/* Loop thread: ask the service manager, unless the worker gave up. */
static void
rabbitmq_svc_start_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rabbitmq_svc_call *call = arg;
	struct rabbitmq *rq;
	int abandoned, r;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&call->lock);
	abandoned = call->abandoned;
	pthread_mutex_unlock(&call->lock);
	if (abandoned) {
		/* The instance may be gone already: touch nothing of it. */
		rabbitmq_svc_unref(call);
		return;
	}
	/*
	 * Listed first, in case done comes before service_control returns;
	 * from here on done owns the loop side's reference.
	 */
	rq = call->rq;
	call->next = rq->calls;
	rq->calls = call;
	r = rq->host->service_control(rq->inst, call->op, call->timeout_ms,
	    rabbitmq_svc_done_cb, call);
	if (r < 0) {
		rabbitmq_svc_unlink(rq, call);
		rabbitmq_svc_finish(call, r, 0, NULL);
		rabbitmq_svc_unref(call);
	}
}

void
rabbitmq_calls_free(struct rabbitmq *rq)
{
	/* The workers have returned: each call holds only the loop's ref. */
	while (rq->calls != NULL) {
		struct rabbitmq_svc_call *call = rq->calls;

		rq->calls = call->next;
		rabbitmq_svc_unref(call);
	}
}

/*
 * Have the loop run service_control(op) and wait for the answer until
 * deadline. Returns the call (the caller unrefs it), with *ret_finished
 * 0 when the deadline came first (then only unref it: the loop side may
 * still write to it); NULL when the request could not be handed over.
 */
static struct rabbitmq_svc_call *
rabbitmq_svc_run(struct rabbitmq *rq, const char *op, int64_t budget,
    const struct timespec *deadline, int *ret_finished)
{
	const struct timeval now = { 0, 0 };
	struct rabbitmq_svc_call *call;
	pthread_condattr_t attr;

	if ((call = calloc(1, sizeof(*call))) == NULL)
		return NULL;
	pthread_mutex_init(&call->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&call->cond, &attr);
	pthread_condattr_destroy(&attr);
	call->refs = 2; /* this worker, and the loop side */
	call->rq = rq;
	call->op = op; /* one of rabbitmq_actions' names: static */
	call->timeout_ms = budget;
	if (event_base_once(rq->base, -1, EV_TIMEOUT, rabbitmq_svc_start_cb,
	    call, &now) == -1) {
		call->refs = 1;
		rabbitmq_svc_unref(call);
		return NULL;
	}
	pthread_mutex_lock(&call->lock);
	while (!call->finished) {
		if (pthread_cond_timedwait(&call->cond, &call->lock,
		    deadline) == ETIMEDOUT && !call->finished) {
			call->abandoned = 1;
			break;
		}
	}
	/* Once finished, the loop side writes nothing more to call. */
	*ret_finished = call->finished;
	pthread_mutex_unlock(&call->lock);
	return call;
}

static void
rabbitmq_pause(const struct timespec *deadline)
{
	int64_t ms = rabbitmq_left_ms(deadline);
	struct timespec ts;

	if (ms > RABBITMQ_PROBE_PAUSE_MS)
		ms = RABBITMQ_PROBE_PAUSE_MS;
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/*
 * After the service manager's success: wait until the broker accepts a
 * login (want_up) or refuses connections (!want_up). 1 when it did, 0
 * when the deadline came first (ret_last then says what was seen last).
 */
static int
rabbitmq_settle(struct rabbitmq *rq, int want_up, const struct timespec *deadline,
    struct rabbitmq_text *ret_last, double *ret_seconds)
{
	struct rabbitmq_conf probe = rq->conf;
	struct timespec start;

	/* A login is the question; the queues are the checks' business. */
	probe.nqueues = 0;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		struct rabbitmq_amqp a;
		int done;

		if (rabbitmq_amqp_run(&probe, deadline, &a) < 0)
			return 0;
		done = want_up ? a.logged_in && a.error.len == 0 : a.refused;
		rabbitmq_text_free(ret_last);
		if (!done && a.error.len > 0)
			rabbitmq_text_add(ret_last, "%s", rabbitmq_text_str(&a.error));
		rabbitmq_amqp_clear(&a);
		if (done) {
			*ret_seconds = rabbitmq_since(&start);
			return 1;
		}
		if (rabbitmq_left_ms(deadline) == 0)
			return 0;
		rabbitmq_pause(deadline);
		/* Keep the last real answer rather than a "no time left". */
		if (rabbitmq_left_ms(deadline) == 0)
			return 0;
	}
}

void
rabbitmq_action(void *state, struct troika_task *task, const char *name,
    const char *const *argv, size_t argc)
{
	struct rabbitmq *rq = state;
	struct rabbitmq_svc_call *call;
	struct rabbitmq_text msg = { 0 }, last = { 0 };
	struct timespec deadline;
	enum troika_status status;
	int64_t budget;
	double seconds = 0;
	int want_up = strcmp(name, "stop") != 0, finished;

	(void)argv;
	(void)argc;
	budget = rabbitmq_budget_ms(rq->host->task_remaining_ms(task));
	rabbitmq_deadline(budget, &deadline);
	call = rabbitmq_svc_run(rq, name, budget, &deadline, &finished);
	if (call == NULL) {
		rabbitmq_report(rq, task, TROIKA_STATUS_CRITICAL, "cannot hand "
		    "the request to the agent's loop");
		return;
	}
	if (!finished) {
		status = TROIKA_STATUS_UNKNOWN;
		rabbitmq_text_add(&msg, "the service manager did not answer in "
		    "time; the operation may still complete");
	} else if (call->ret == -ENOENT) {
		status = TROIKA_STATUS_CRITICAL;
		rabbitmq_text_add(&msg, "no service manager configured for this "
		    "check");
	} else if (call->ret < 0) {
		status = TROIKA_STATUS_CRITICAL;
		rabbitmq_text_add(&msg, "service manager: %s",
		    strerror(-call->ret));
	} else if (!call->ok) {
		status = TROIKA_STATUS_CRITICAL;
		rabbitmq_text_add(&msg, "%s", call->message != NULL ?
		    call->message : "failed");
	} else {
		rabbitmq_text_add(&msg, "%s; ", call->message != NULL ?
		    call->message : "done");
		if (rabbitmq_settle(rq, want_up, &deadline, &last, &seconds)) {
			status = TROIKA_STATUS_OK;
			rabbitmq_text_add(&msg, "the broker %s after %.1f s",
			    want_up ? "accepts logins" : "refuses connections",
			    seconds);
		} else {
			/* It may still be booting or shutting down. */
			status = TROIKA_STATUS_UNKNOWN;
			if (want_up)
				rabbitmq_text_add(&msg, "the broker accepted no "
				    "login in time: %s", last.len > 0 ?
				    rabbitmq_text_str(&last) : "no answer");
			else
				rabbitmq_text_add(&msg, "the broker still "
				    "accepts connections");
		}
	}
	rabbitmq_report(rq, task, status, rabbitmq_text_str(&msg));
	rabbitmq_text_free(&msg);
	rabbitmq_text_free(&last);
	rabbitmq_svc_unref(call);
}
