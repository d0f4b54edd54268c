/*
 * Child processes without a shell and without blocking the loop: argv as
 * given, own process group, stdin from /dev/null, stdout+stderr captured
 * into one bounded buffer, a deadline after which the whole group gets
 * SIGTERM and, after a grace period, SIGKILL. Exits are learned through a
 * pidfd on the event loop, so no SIGCHLD handler and no blocking waitpid.
 */
#ifndef TROIKA_SPAWN_H
#define TROIKA_SPAWN_H

#include <stddef.h>
#include <stdint.h>

#include <troika/plugin.h> /* struct troika_spawn_result */

struct event_base;
struct spawn;

/* Grace period between SIGTERM and SIGKILL. */
#define SPAWN_KILL_GRACE_MS 1000

/*
 * Start argv[0] (looked up in PATH when it has no '/'). done is called on
 * the loop exactly once, after the process exited and its output pipe was
 * drained, unless spawn_cancel() came first. A failed exec is reported
 * through done with spawn_errno set (not as a return value), so callers
 * have one path. Returns NULL with errno set only when no process could be
 * set up at all (pipe, pidfd or fork failure).
 */
struct spawn *spawn_start(struct event_base *base, const char *const *argv,
    int64_t timeout_ms, size_t max_output, troika_spawn_done_cb done,
    void *arg);

/*
 * As spawn_start(), and: env (NULL-terminated "NAME=value" strings, or
 * NULL) is added to the inherited environment, replacing a variable of
 * the same name; input (input_len bytes, or NULL for /dev/null) is the
 * child's stdin, written into a pipe before the child starts, so it must
 * fit the pipe (at most 1 MiB; NULL with errno E2BIG otherwise). Both are
 * copied before it returns.
 */
struct spawn *spawn_start_input(struct event_base *base,
    const char *const *argv, const char *const *env, const char *input,
    size_t input_len, int64_t timeout_ms, size_t max_output,
    troika_spawn_done_cb done, void *arg);

/*
 * Forget a running spawn: done is not called. The process group is sent
 * SIGTERM then SIGKILL, and reaped in the background; the struct is freed
 * when the child has been reaped (or at spawn_shutdown()).
 */
void spawn_cancel(struct spawn *sp);

/* Number of children started and not yet reaped (cancelled ones included). */
size_t spawn_active(void);

/*
 * At exit: SIGKILL every remaining child group, reap them (blocking, bounded
 * to a few hundred ms) and free everything.
 */
void spawn_shutdown(void);

#endif
