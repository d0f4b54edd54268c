/*
 * A bounded pool of worker threads for blocking plugin code. Jobs are
 * queued up to a limit; each job's work() runs on a worker thread and its
 * done() runs afterwards on the loop thread (woken through an eventfd).
 */
#ifndef TROIKA_WORKER_H
#define TROIKA_WORKER_H

#include <stddef.h>

struct event_base;
struct worker_pool;

typedef void (*worker_work_fn)(void *arg);
/* cancelled: the job was dropped from the queue without running. */
typedef void (*worker_done_fn)(void *arg, int cancelled);

struct worker_pool *worker_pool_new(struct event_base *base, int nthreads,
    size_t max_queue);

/* Queue a job. Returns 0, or -EAGAIN when the queue is full. */
int worker_pool_submit(struct worker_pool *pool, worker_work_fn work,
    worker_done_fn done, void *arg);

/* Jobs queued and running. */
size_t worker_pool_pending(const struct worker_pool *pool);
int worker_pool_threads(const struct worker_pool *pool);

/*
 * Stop: queued jobs get done(arg, 1); running jobs are waited for and get
 * done(arg, 0); threads are joined. Accepts NULL.
 */
void worker_pool_free(struct worker_pool *pool);

#endif
