/*
 * Fast on certainty (ARCHITECTURE.md): a check re-runs at once, outside its
 * schedule, when there is certain evidence of a failure.
 *   - The service's main process exited: the check's `service.pidfile`
 *     names it, and a pidfd for it becomes readable the moment it exits.
 *     The pidfile is read again after every result, so a restarted
 *     service is watched again by its next run.
 *   - A result turned CRITICAL with certain evidence (refused, reset, the
 *     process gone): one confirming re-check follows at once, so the
 *     coordinators get two certain results within milliseconds instead of
 *     one interval apart.
 * A re-check waits for a run or action in progress and then starts, and is
 * not counted as an overrun. Without pidfd_open (kernels before 5.3,
 * valgrind 3.19) the pidfile is not watched, said once in the log.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <event2/event.h>

#include "check_host_int.h"
#include "emit.h"
#include "log.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

static int check_watch_no_pidfd; /* pidfd_open said ENOSYS once */

static void
check_recheck_cb(evutil_socket_t fd, short what, void *arg)
{
	struct troika_instance *c = arg;

	(void)fd;
	(void)what;
	if (c->task != NULL || c->pending_action != NULL) {
		/* check_task_ended() calls us again once it is free. */
		c->recheck_pending = 1;
		return;
	}
	c->recheck_pending = 0;
	(void)check_start(c);
}

void
check_recheck_soon(struct troika_instance *c, enum check_recheck_reason why)
{
	if (c->recheck_ev == NULL || !c->runnable)
		return;
	c->rechecks[why]++;
	/* From the loop, after whatever called us has finished. */
	event_active(c->recheck_ev, EV_TIMEOUT, 0);
}

void
check_recheck_if_pending(struct troika_instance *c)
{
	if (c->recheck_pending && c->task == NULL && c->pending_action == NULL)
		event_active(c->recheck_ev, EV_TIMEOUT, 0);
}

static void
check_watch_close(struct troika_instance *c)
{
	if (c->watch_ev != NULL) {
		event_free(c->watch_ev);
		c->watch_ev = NULL;
	}
	if (c->watch_fd >= 0) {
		close(c->watch_fd);
		c->watch_fd = -1;
	}
	c->watch_pid = 0;
}

static void
check_watch_exit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct troika_instance *c = arg;
	char msg[PATH_MAX + 64];
	struct troika_event ev = {
		.kind = EVENT_PROCESS_EXITED, .check = c->name,
		.plugin = c->plugin_name, .old_status = -1, .new_status = -1,
		.message = msg,
	};

	(void)fd;
	(void)what;
	snprintf(msg, sizeof(msg), "main process %ld (%s) exited",
	    (long)c->watch_pid, c->pidfile);
	/*
	 * Until its parent reaps it, the process is a zombie whose pidfd is
	 * readable at once, and the stale pidfile still names it: never
	 * watch it again, or every re-check would fire another.
	 */
	c->exited_pid = c->watch_pid;
	check_watch_close(c);
	event_emit(&ev);
	check_recheck_soon(c, CHECK_RECHECK_PROCESS_EXIT);
}

/* The pid in a pidfile: one decimal number, optional newline. 0 if none. */
static pid_t
check_watch_read_pid(const char *path)
{
	char buf[32];
	ssize_t n;
	char *end;
	long v;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno != 0 || end == buf || v <= 1 || v > 4194304 ||
	    (*end != '\0' && *end != '\n'))
		return 0;
	return (pid_t)v;
}

void
check_watch_rearm(struct troika_instance *c)
{
	pid_t pid;
	int fd;

	if (c->pidfile == NULL || check_watch_no_pidfd)
		return;
	pid = check_watch_read_pid(c->pidfile);
	if (pid == c->watch_pid && c->watch_fd >= 0)
		return;
	check_watch_close(c);
	if (pid == 0 || pid == c->exited_pid)
		return; /* not running, or no pidfile yet: the check says so */
	if ((fd = (int)syscall(SYS_pidfd_open, pid, 0)) < 0) {
		if (errno == ENOSYS) {
			check_watch_no_pidfd = 1;
			log_warnx("pidfd_open is not available: service "
			    "pidfiles are not watched; checks run on their "
			    "schedule only");
		}
		return; /* ESRCH: gone already; the next result re-reads */
	}
	if ((c->watch_ev = event_new(c->host->base, fd, EV_READ,
	    check_watch_exit_cb, c)) == NULL || event_add(c->watch_ev,
	    NULL) < 0) {
		log_warnx("check=%s: cannot watch process %ld", c->name,
		    (long)pid);
		close(fd);
		if (c->watch_ev != NULL)
			event_free(c->watch_ev);
		c->watch_ev = NULL;
		return;
	}
	c->watch_fd = fd;
	c->watch_pid = pid;
	log_debug("check=%s: watching main process %ld", c->name, (long)pid);
}

int
check_watch_init(struct troika_instance *c, const char *pidfile)
{
	c->watch_fd = -1;
	if ((c->recheck_ev = event_new(c->host->base, -1, 0, check_recheck_cb,
	    c)) == NULL)
		return -ENOMEM;
	if (pidfile != NULL && (c->pidfile = strdup(pidfile)) == NULL)
		return -ENOMEM;
	return 0;
}

void
check_watch_free(struct troika_instance *c)
{
	check_watch_close(c);
	if (c->recheck_ev != NULL)
		event_free(c->recheck_ev);
	c->recheck_ev = NULL;
	free(c->pidfile);
	c->pidfile = NULL;
}
