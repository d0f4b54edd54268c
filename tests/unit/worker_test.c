/*
 * worker pool: real threads on a fresh event base per test. Also run under
 * ThreadSanitizer (see the report of the loop engineer): the test itself
 * synchronises only through mutexes, condvars and atomics.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "worker.h"

/* Holds jobs in work() until opened; counts who got there. */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int open;
	int arrived;
};

struct job {
	struct gate *gate;     /* wait here in work(), if set */
	atomic_int *inflight;  /* concurrent work() calls, if set */
	atomic_int *max_inflight;
	int id;
	/* Written in work(), read in done: the pool must order them. */
	int worked;
	pthread_t work_thread;
	/* Loop thread only. */
	int done_calls;
	int cancelled;
	pthread_t done_thread;
	int done_order;
	struct test *t;
	struct job *resubmit; /* done submits this one */
};

struct test {
	struct event_base *base;
	struct worker_pool *pool;
	struct event *watchdog;
	int watchdog_fired;
	int done_count;
	int want;
};

static void
gate_init(struct gate *g)
{
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	g->open = 0;
	g->arrived = 0;
}

static void
gate_destroy(struct gate *g)
{
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->lock);
}

static void
gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->open = 1;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static void
gate_wait_arrived(struct gate *g, int n)
{
	pthread_mutex_lock(&g->lock);
	while (g->arrived < n)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

static void
job_work(void *arg)
{
	struct job *j = arg;
	int now;

	if (j->inflight != NULL) {
		now = atomic_fetch_add(j->inflight, 1) + 1;
		int max = atomic_load(j->max_inflight);
		while (now > max &&
		    !atomic_compare_exchange_weak(j->max_inflight, &max, now))
			;
	}
	if (j->gate != NULL) {
		pthread_mutex_lock(&j->gate->lock);
		j->gate->arrived++;
		pthread_cond_broadcast(&j->gate->cond);
		while (!j->gate->open)
			pthread_cond_wait(&j->gate->cond, &j->gate->lock);
		pthread_mutex_unlock(&j->gate->lock);
	} else {
		usleep((useconds_t)(j->id % 3) * 200);
	}
	j->worked++;
	j->work_thread = pthread_self();
	if (j->inflight != NULL)
		atomic_fetch_sub(j->inflight, 1);
}

static void
job_done(void *arg, int cancelled)
{
	struct job *j = arg;
	struct test *t = j->t;

	j->done_calls++;
	j->cancelled = cancelled;
	j->done_thread = pthread_self();
	j->done_order = ++t->done_count;
	if (j->resubmit != NULL)
		assert_int_equal(worker_pool_submit(t->pool, job_work,
		    job_done, j->resubmit), 0);
	if (t->done_count >= t->want)
		event_base_loopbreak(t->base);
}

static void
watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	struct test *t = arg;

	(void)fd;
	(void)what;
	t->watchdog_fired = 1;
	event_base_loopbreak(t->base);
}

static void
test_start(struct test *t, int nthreads, size_t max_queue)
{
	struct timeval tv = { 10, 0 };

	memset(t, 0, sizeof(*t));
	assert_non_null(t->base = event_base_new());
	assert_non_null(t->pool = worker_pool_new(t->base, nthreads,
	    max_queue));
	assert_int_equal(worker_pool_threads(t->pool), nthreads);
	assert_non_null(t->watchdog = evtimer_new(t->base, watchdog_cb, t));
	evtimer_add(t->watchdog, &tv);
}

/* Run the loop until want done callbacks happened in total. */
static void
test_run_until(struct test *t, int want)
{
	t->want = want;
	if (t->done_count < want)
		event_base_dispatch(t->base);
	assert_int_equal(t->watchdog_fired, 0);
	assert_int_equal(t->done_count, want);
}

/* Free the pool if still there; nothing may be left on the base. */
static void
test_end(struct test *t)
{
	worker_pool_free(t->pool);
	event_free(t->watchdog);
	assert_int_equal(event_base_get_num_events(t->base,
	    EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE), 0);
	event_base_free(t->base);
}

static void
test_many_jobs(void **state)
{
	enum { NJOBS = 200, NTHREADS = 3 };
	struct job *jobs = calloc(NJOBS, sizeof(*jobs));
	atomic_int inflight = 0, max_inflight = 0;
	pthread_t self = pthread_self();
	struct test t;

	(void)state;
	assert_non_null(jobs);
	test_start(&t, NTHREADS, NJOBS);
	for (int i = 0; i < NJOBS; i++) {
		jobs[i].id = i;
		jobs[i].t = &t;
		jobs[i].inflight = &inflight;
		jobs[i].max_inflight = &max_inflight;
		assert_int_equal(worker_pool_submit(t.pool, job_work, job_done,
		    &jobs[i]), 0);
	}
	assert_int_equal(worker_pool_pending(t.pool), NJOBS);
	test_run_until(&t, NJOBS);
	assert_int_equal(worker_pool_pending(t.pool), 0);
	for (int i = 0; i < NJOBS; i++) {
		assert_int_equal(jobs[i].worked, 1);
		assert_int_equal(jobs[i].done_calls, 1);
		assert_int_equal(jobs[i].cancelled, 0);
		assert_true(pthread_equal(jobs[i].done_thread, self));
		assert_false(pthread_equal(jobs[i].work_thread, self));
	}
	assert_true(atomic_load(&max_inflight) >= 1);
	assert_true(atomic_load(&max_inflight) <= NTHREADS);
	test_end(&t);
	free(jobs);
}

static void
test_queue_full(void **state)
{
	struct job jobs[6], late;
	struct gate gate;
	struct test t;

	(void)state;
	gate_init(&gate);
	test_start(&t, 2, 3);
	memset(jobs, 0, sizeof(jobs));
	for (int i = 0; i < 6; i++) {
		jobs[i].t = &t;
		jobs[i].gate = &gate;
	}
	/* Two running plus three waiting fit; the sixth does not. */
	for (int i = 0; i < 5; i++)
		assert_int_equal(worker_pool_submit(t.pool, job_work, job_done,
		    &jobs[i]), 0);
	assert_int_equal(worker_pool_submit(t.pool, job_work, job_done,
	    &jobs[5]), -EAGAIN);
	gate_wait_arrived(&gate, 2);
	assert_int_equal(worker_pool_submit(t.pool, job_work, job_done,
	    &jobs[5]), -EAGAIN);
	assert_int_equal(worker_pool_pending(t.pool), 5);

	gate_open(&gate);
	test_run_until(&t, 5);
	assert_int_equal(jobs[5].done_calls, 0);
	assert_int_equal(jobs[5].worked, 0);
	assert_int_equal(worker_pool_pending(t.pool), 0);

	/* Room again. */
	memset(&late, 0, sizeof(late));
	late.t = &t;
	assert_int_equal(worker_pool_submit(t.pool, job_work, job_done, &late),
	    0);
	test_run_until(&t, 6);
	assert_int_equal(late.worked, 1);
	test_end(&t);
	gate_destroy(&gate);
}

static void
test_no_queue(void **state)
{
	struct job a, b;
	struct gate gate;
	struct test t;

	(void)state;
	gate_init(&gate);
	test_start(&t, 1, 0);
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.t = b.t = &t;
	a.gate = &gate;
	assert_int_equal(worker_pool_submit(t.pool, job_work, job_done, &a),
	    0);
	assert_int_equal(worker_pool_submit(t.pool, job_work, job_done, &b),
	    -EAGAIN);
	gate_open(&gate);
	test_run_until(&t, 1);
	test_end(&t);
	assert_int_equal(b.done_calls, 0);
	gate_destroy(&gate);
}

static void *
open_later_main(void *arg)
{
	usleep(100000);
	gate_open(arg);
	return NULL;
}

static void
test_free_with_queued(void **state)
{
	struct job running, queued[3];
	pthread_t self = pthread_self();
	struct gate gate;
	pthread_t opener;
	struct test t;

	(void)state;
	gate_init(&gate);
	test_start(&t, 1, 10);
	memset(&running, 0, sizeof(running));
	memset(queued, 0, sizeof(queued));
	running.t = &t;
	running.gate = &gate;
	assert_int_equal(worker_pool_submit(t.pool, job_work, job_done,
	    &running), 0);
	gate_wait_arrived(&gate, 1);
	for (int i = 0; i < 3; i++) {
		queued[i].t = &t;
		assert_int_equal(worker_pool_submit(t.pool, job_work, job_done,
		    &queued[i]), 0);
	}
	assert_int_equal(worker_pool_pending(t.pool), 4);

	/*
	 * The running job is released only while free() already waits for
	 * it, so the queued ones cannot have been picked up.
	 */
	assert_int_equal(pthread_create(&opener, NULL, open_later_main, &gate),
	    0);
	worker_pool_free(t.pool);
	t.pool = NULL;
	pthread_join(opener, NULL);

	assert_int_equal(running.done_calls, 1);
	assert_int_equal(running.cancelled, 0);
	assert_int_equal(running.worked, 1);
	assert_int_equal(running.done_order, 1);
	assert_true(pthread_equal(running.done_thread, self));
	for (int i = 0; i < 3; i++) {
		assert_int_equal(queued[i].done_calls, 1);
		assert_int_equal(queued[i].cancelled, 1);
		assert_int_equal(queued[i].worked, 0);
		assert_int_equal(queued[i].done_order, 2 + i);
		assert_true(pthread_equal(queued[i].done_thread, self));
	}
	test_end(&t);
	gate_destroy(&gate);
}

static void
test_free_undelivered(void **state)
{
	struct job j;
	struct gate gate;
	struct test t;

	(void)state;
	gate_init(&gate);
	gate_open(&gate);
	test_start(&t, 2, 2);
	memset(&j, 0, sizeof(j));
	j.t = &t;
	j.gate = &gate;
	assert_int_equal(worker_pool_submit(t.pool, job_work, job_done, &j),
	    0);
	gate_wait_arrived(&gate, 1);
	/*
	 * It ran (or is finishing) on its thread, and the loop never ran to
	 * deliver it: free() must wait for it and deliver done(arg, 0).
	 */
	worker_pool_free(t.pool);
	t.pool = NULL;
	assert_int_equal(j.done_calls, 1);
	assert_int_equal(j.cancelled, 0);
	assert_int_equal(j.worked, 1);
	test_end(&t);
	gate_destroy(&gate);
}

static void
test_submit_from_done(void **state)
{
	enum { CHAIN = 10 };
	struct job jobs[CHAIN];
	struct test t;

	(void)state;
	test_start(&t, 2, 1);
	memset(jobs, 0, sizeof(jobs));
	for (int i = 0; i < CHAIN; i++) {
		jobs[i].t = &t;
		jobs[i].id = i;
		jobs[i].resubmit = i + 1 < CHAIN ? &jobs[i + 1] : NULL;
	}
	assert_int_equal(worker_pool_submit(t.pool, job_work, job_done,
	    &jobs[0]), 0);
	test_run_until(&t, CHAIN);
	for (int i = 0; i < CHAIN; i++) {
		assert_int_equal(jobs[i].worked, 1);
		assert_int_equal(jobs[i].done_order, i + 1);
	}
	test_end(&t);
}

static void
test_errors(void **state)
{
	struct event_base *base = event_base_new();
	struct worker_pool *pool;

	(void)state;
	assert_non_null(base);
	errno = 0;
	assert_null(worker_pool_new(NULL, 1, 1));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(worker_pool_new(base, 0, 1));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(worker_pool_new(base, -3, 1));
	assert_int_equal(errno, EINVAL);

	assert_non_null(pool = worker_pool_new(base, 1, 1));
	assert_int_equal(worker_pool_submit(pool, NULL, job_done, NULL),
	    -EINVAL);
	assert_int_equal(worker_pool_submit(pool, job_work, NULL, NULL),
	    -EINVAL);
	assert_int_equal(worker_pool_submit(NULL, job_work, job_done, NULL),
	    -EINVAL);
	assert_int_equal(worker_pool_pending(pool), 0);
	assert_int_equal(worker_pool_pending(NULL), 0);
	assert_int_equal(worker_pool_threads(NULL), 0);
	worker_pool_free(pool);
	worker_pool_free(NULL);
	assert_int_equal(event_base_get_num_events(base,
	    EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE), 0);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_many_jobs),
		cmocka_unit_test(test_queue_full),
		cmocka_unit_test(test_no_queue),
		cmocka_unit_test(test_free_with_queued),
		cmocka_unit_test(test_free_undelivered),
		cmocka_unit_test(test_submit_from_done),
		cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
