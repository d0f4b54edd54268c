#include "worker.h"

#include <sys/eventfd.h>
#include <sys/queue.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"

struct worker_job {
	TAILQ_ENTRY(worker_job) entry;
	worker_work_fn work;
	worker_done_fn done;
	void *arg;
};

TAILQ_HEAD(worker_job_list, worker_job);

/*
 * Threads see only the fields under lock. The loop thread owns base, ev,
 * efd, threads and outstanding.
 */
struct worker_pool {
	struct event_base *base;
	struct event *ev;
	int efd;

	pthread_t *threads;
	int nthreads;   /* started */
	size_t max_queue;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct worker_job_list queue;    /* waiting for a thread */
	struct worker_job_list finished; /* done() not yet run */
	size_t nqueued;
	size_t nrunning;
	int stopping;

	/* Submitted, done() not run yet. Loop thread only. */
	size_t outstanding;
};

/* Wake the loop thread; a full counter still leaves the fd readable. */
static void
worker_wake(struct worker_pool *pool)
{
	uint64_t one = 1;

	while (write(pool->efd, &one, sizeof(one)) == -1 && errno == EINTR)
		;
}

static void *
worker_main(void *arg)
{
	struct worker_pool *pool = arg;
	struct worker_job *job;

	pthread_mutex_lock(&pool->lock);
	for (;;) {
		while (!pool->stopping && TAILQ_EMPTY(&pool->queue))
			pthread_cond_wait(&pool->cond, &pool->lock);
		/* worker_pool_free() emptied the queue before stopping. */
		if ((job = TAILQ_FIRST(&pool->queue)) == NULL)
			break;
		TAILQ_REMOVE(&pool->queue, job, entry);
		pool->nqueued--;
		pool->nrunning++;
		pthread_mutex_unlock(&pool->lock);

		job->work(job->arg);

		pthread_mutex_lock(&pool->lock);
		pool->nrunning--;
		TAILQ_INSERT_TAIL(&pool->finished, job, entry);
		worker_wake(pool);
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

/* Run done() of every finished job, in the order they finished. */
static void
worker_run_finished(struct worker_pool *pool)
{
	struct worker_job *job;

	for (;;) {
		/*
		 * One at a time under the lock: a done() may submit again,
		 * and threads keep adding to the list meanwhile.
		 */
		pthread_mutex_lock(&pool->lock);
		if ((job = TAILQ_FIRST(&pool->finished)) != NULL)
			TAILQ_REMOVE(&pool->finished, job, entry);
		pthread_mutex_unlock(&pool->lock);
		if (job == NULL)
			break;
		pool->outstanding--;
		job->done(job->arg, 0);
		free(job);
	}
}

static void
worker_pool_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker_pool *pool = arg;
	uint64_t count;

	(void)what;
	/* Reset the counter first, so a wake-up after this is not lost. */
	if (read(fd, &count, sizeof(count)) == -1 && errno != EAGAIN &&
	    errno != EINTR)
		log_warn("worker: read eventfd");
	worker_run_finished(pool);
}

/* Stop and join the started threads; the queue must be empty. */
static void
worker_pool_join(struct worker_pool *pool)
{
	pthread_mutex_lock(&pool->lock);
	pool->stopping = 1;
	pthread_cond_broadcast(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	for (int i = 0; i < pool->nthreads; i++)
		pthread_join(pool->threads[i], NULL);
	pool->nthreads = 0;
}

static void
worker_pool_destroy(struct worker_pool *pool)
{
	if (pool->ev != NULL)
		event_free(pool->ev);
	if (pool->efd != -1)
		close(pool->efd);
	pthread_cond_destroy(&pool->cond);
	pthread_mutex_destroy(&pool->lock);
	free(pool->threads);
	free(pool);
}

struct worker_pool *
worker_pool_new(struct event_base *base, int nthreads, size_t max_queue)
{
	struct worker_pool *pool;
	sigset_t all, old;
	int r;

	if (base == NULL || nthreads <= 0) {
		errno = EINVAL;
		return NULL;
	}
	if ((pool = calloc(1, sizeof(*pool))) == NULL)
		return NULL;
	pool->base = base;
	pool->efd = -1;
	pool->max_queue = max_queue;
	TAILQ_INIT(&pool->queue);
	TAILQ_INIT(&pool->finished);
	if ((r = pthread_mutex_init(&pool->lock, NULL)) != 0) {
		free(pool);
		errno = r;
		return NULL;
	}
	if ((r = pthread_cond_init(&pool->cond, NULL)) != 0) {
		pthread_mutex_destroy(&pool->lock);
		free(pool);
		errno = r;
		return NULL;
	}

	if ((pool->threads = calloc((size_t)nthreads,
	    sizeof(*pool->threads))) == NULL)
		goto fail;
	if ((pool->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		goto fail;
	if ((pool->ev = event_new(base, pool->efd, EV_READ | EV_PERSIST,
	    worker_pool_wake_cb, pool)) == NULL ||
	    event_add(pool->ev, NULL) == -1) {
		errno = ENOMEM;
		goto fail;
	}

	/*
	 * Threads start with every signal blocked (they inherit the mask),
	 * so signals meant for the daemon are handled on the loop thread.
	 */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int i = 0; i < nthreads; i++) {
		if ((r = pthread_create(&pool->threads[i], NULL, worker_main,
		    pool)) != 0) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			errno = r;
			goto fail;
		}
		pool->nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return pool;

fail:
	r = errno;
	worker_pool_join(pool);
	worker_pool_destroy(pool);
	errno = r;
	return NULL;
}

/*
 * A job waits in the queue only while every thread is busy, and at most
 * max_queue of them wait: running plus queued never exceeds
 * nthreads + max_queue.
 */
int
worker_pool_submit(struct worker_pool *pool, worker_work_fn work,
    worker_done_fn done, void *arg)
{
	struct worker_job *job;

	if (pool == NULL || work == NULL || done == NULL)
		return -EINVAL;
	if ((job = calloc(1, sizeof(*job))) == NULL)
		return -ENOMEM;
	job->work = work;
	job->done = done;
	job->arg = arg;

	pthread_mutex_lock(&pool->lock);
	if (pool->stopping || pool->nqueued + pool->nrunning >=
	    (size_t)pool->nthreads + pool->max_queue) {
		pthread_mutex_unlock(&pool->lock);
		free(job);
		return -EAGAIN;
	}
	TAILQ_INSERT_TAIL(&pool->queue, job, entry);
	pool->nqueued++;
	pthread_cond_signal(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	pool->outstanding++;
	return 0;
}

/*
 * Counted until done() ran, so a job that finished but whose completion the
 * loop has not delivered yet still counts: callers see it as not finished.
 */
size_t
worker_pool_pending(const struct worker_pool *pool)
{
	return pool != NULL ? pool->outstanding : 0;
}

int
worker_pool_threads(const struct worker_pool *pool)
{
	return pool != NULL ? pool->nthreads : 0;
}

/* Must not be called from one of the pool's own done() callbacks. */
void
worker_pool_free(struct worker_pool *pool)
{
	struct worker_job_list cancelled;
	struct worker_job *job;

	if (pool == NULL)
		return;

	/* Take the queued jobs away before the threads see "stopping". */
	TAILQ_INIT(&cancelled);
	pthread_mutex_lock(&pool->lock);
	TAILQ_CONCAT(&cancelled, &pool->queue, entry);
	pool->nqueued = 0;
	pthread_mutex_unlock(&pool->lock);

	worker_pool_join(pool);

	/* Completed first (they were submitted earlier), then the dropped. */
	worker_run_finished(pool);
	while ((job = TAILQ_FIRST(&cancelled)) != NULL) {
		TAILQ_REMOVE(&cancelled, job, entry);
		pool->outstanding--;
		job->done(job->arg, 1);
		free(job);
	}
	worker_pool_destroy(pool);
}
