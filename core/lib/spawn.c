#include "spawn.h"

#include <sys/queue.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

/* The C library's: core/lib is an -iquote directory, so "spawn.h" above is
 * ours and <spawn.h> is posix_spawn's. */
#include <spawn.h>

#include "log.h"

extern char **environ;

/*
 * Once the child has exited, a grandchild may still hold the output pipe
 * open (a daemon it started, "cmd &"). Its output is not ours to wait for:
 * give the pipe this long to reach EOF, then stop reading.
 */
#define SPAWN_PIPE_LINGER_MS 100

/* Output is read in chunks of this size; also the first buffer size. */
#define SPAWN_READ_CHUNK 4096

/*
 * Reads per readiness callback: a child that writes without pause must not
 * keep the loop in our callback forever.
 */
#define SPAWN_READS_PER_CB 16

/* Exit polling interval where pidfd_open is not available. */
#define SPAWN_POLL_MS 10

/* How long spawn_shutdown() waits for killed children to be reapable. */
#define SPAWN_SHUTDOWN_WAIT_MS 500

struct spawn {
	TAILQ_ENTRY(spawn) entry;
	int linked; /* on spawn_live */
	struct event_base *base;

	pid_t pid;   /* also the process group id; -1 if never started */
	int pidfd;   /* -1 once reaped */
	int outfd;   /* read end of the output pipe; -1 after EOF */
	struct event *ev_proc;  /* pidfd readable: the child exited */
	struct event *ev_out;   /* output to read */
	struct event *ev_kill;  /* deadline, then the TERM->KILL grace */
	struct event *ev_finish; /* pipe linger, or the failed-exec report */

	char *buf;
	size_t len;
	size_t cap;
	size_t max_output;
	int truncated;

	int reaped;
	int term_sent;
	int kill_sent;
	int timed_out;
	int cancelled;
	int spawn_errno;
	siginfo_t status;

	struct timespec start;
	int64_t duration_us;

	troika_spawn_done_cb done;
	void *arg;
};

/*
 * Every spawn from start until it is freed, so spawn_shutdown() can find
 * them. Only the loop thread touches it, like the rest of this module.
 */
static TAILQ_HEAD(spawn_list, spawn) spawn_live =
    TAILQ_HEAD_INITIALIZER(spawn_live);

static void spawn_proc_cb(evutil_socket_t, short, void *);
static void spawn_out_cb(evutil_socket_t, short, void *);
static void spawn_kill_cb(evutil_socket_t, short, void *);
static void spawn_finish_cb(evutil_socket_t, short, void *);

static int64_t
spawn_elapsed_us(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(now.tv_sec - since->tv_sec) * 1000000 +
	    (now.tv_nsec - since->tv_nsec) / 1000;
}

static void
spawn_ms_to_tv(int64_t ms, struct timeval *tv)
{
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
}

/* Signal the child's whole process group; its id is the child's pid. */
static void
spawn_signal_group(struct spawn *sp, int sig)
{
	if (sp->pid <= 0)
		return;
	if (kill(-sp->pid, sig) == -1 && errno != ESRCH)
		log_warn("spawn: kill(-%d, %d)", (int)sp->pid, sig);
	if (sig == SIGKILL)
		sp->kill_sent = 1;
	else if (sig == SIGTERM)
		sp->term_sent = 1;
}

/* Send SIGTERM to the group now and SIGKILL after the grace period. */
static void
spawn_terminate(struct spawn *sp)
{
	struct timeval tv;

	if (sp->term_sent)
		return;
	spawn_signal_group(sp, SIGTERM);
	spawn_ms_to_tv(SPAWN_KILL_GRACE_MS, &tv);
	evtimer_add(sp->ev_kill, &tv);
}

static void
spawn_close_output(struct spawn *sp)
{
	if (sp->outfd == -1)
		return;
	event_del(sp->ev_out);
	close(sp->outfd);
	sp->outfd = -1;
}

static void
spawn_free(struct spawn *sp)
{
	if (sp == NULL)
		return;
	if (sp->linked)
		TAILQ_REMOVE(&spawn_live, sp, entry);
	/* event_free() deletes a pending event first. */
	if (sp->ev_proc != NULL)
		event_free(sp->ev_proc);
	if (sp->ev_out != NULL)
		event_free(sp->ev_out);
	if (sp->ev_kill != NULL)
		event_free(sp->ev_kill);
	if (sp->ev_finish != NULL)
		event_free(sp->ev_finish);
	if (sp->pidfd != -1)
		close(sp->pidfd);
	if (sp->outfd != -1)
		close(sp->outfd);
	free(sp->buf);
	free(sp);
}

/* Report to the caller (unless cancelled) and free. */
static void
spawn_report(struct spawn *sp)
{
	struct troika_spawn_result res;

	if (sp->cancelled || sp->done == NULL) {
		spawn_free(sp);
		return;
	}

	memset(&res, 0, sizeof(res));
	if (sp->spawn_errno != 0) {
		res.spawn_errno = sp->spawn_errno;
	} else if (sp->status.si_code == CLD_EXITED) {
		res.exited = 1;
		res.exit_code = sp->status.si_status;
	} else if (sp->status.si_code == CLD_KILLED ||
	    sp->status.si_code == CLD_DUMPED) {
		res.signal = sp->status.si_status;
	}
	res.timed_out = sp->timed_out;
	res.output = sp->buf != NULL ? sp->buf : "";
	res.output_len = sp->len;
	res.output_truncated = sp->truncated;
	res.duration_us = sp->duration_us;

	/*
	 * Stop every event and leave the live list before the callback: it
	 * may start new spawns, run the loop or even call spawn_shutdown(),
	 * and must find nothing of this one left behind. The output buffer
	 * stays until done returns.
	 */
	TAILQ_REMOVE(&spawn_live, sp, entry);
	sp->linked = 0;
	event_del(sp->ev_kill);
	event_del(sp->ev_finish);
	spawn_close_output(sp);
	sp->done(&res, sp->arg);
	spawn_free(sp);
}

static void
spawn_maybe_report(struct spawn *sp)
{
	if (sp->reaped && sp->outfd == -1)
		spawn_report(sp);
}

static void
spawn_proc_cb(evutil_socket_t fd, short what, void *arg)
{
	struct spawn *sp = arg;
	siginfo_t si;
	struct timeval tv;

	(void)fd;
	(void)what;

	/*
	 * A group that was told to terminate gets its SIGKILL now, while the
	 * zombie still holds the group id: nobody enforces the deadline on
	 * the rest of the group once we stop watching.
	 */
	if (sp->term_sent && !sp->kill_sent)
		spawn_signal_group(sp, SIGKILL);

	memset(&si, 0, sizeof(si));
	if (waitid(sp->pidfd != -1 ? P_PIDFD : P_PID,
	    sp->pidfd != -1 ? (id_t)sp->pidfd : (id_t)sp->pid, &si,
	    WEXITED | WNOHANG) == -1) {
		if (errno == EINTR)
			return; /* still readable: we come back */
		/*
		 * ECHILD: someone else reaped it (SIGCHLD set to SIG_IGN, or a
		 * waitpid(-1) elsewhere). The exit status is lost.
		 */
		log_warn("spawn: waitid for pid %d", (int)sp->pid);
		memset(&si, 0, sizeof(si));
	} else if (si.si_pid == 0) {
		return; /* not exited after all */
	}

	sp->duration_us = spawn_elapsed_us(&sp->start);
	sp->status = si;
	sp->reaped = 1;
	event_del(sp->ev_proc);
	if (sp->pidfd != -1)
		close(sp->pidfd);
	sp->pidfd = -1;
	event_del(sp->ev_kill);

	if (sp->cancelled) {
		spawn_free(sp);
		return;
	}
	if (sp->outfd != -1) {
		spawn_ms_to_tv(SPAWN_PIPE_LINGER_MS, &tv);
		evtimer_add(sp->ev_finish, &tv);
	}
	spawn_maybe_report(sp);
}

/* Take what the pipe has; returns 1 at EOF (or a read error). */
static int
spawn_read_output(struct spawn *sp)
{
	char scratch[SPAWN_READ_CHUNK];

	for (int i = 0; i < SPAWN_READS_PER_CB; i++) {
		char *dst = scratch;
		size_t room = sizeof(scratch);
		ssize_t n;

		if (sp->len < sp->max_output) {
			/* Grow towards max_output + 1 (the NUL) as output comes. */
			if (sp->cap - sp->len - 1 < SPAWN_READ_CHUNK &&
			    sp->cap < sp->max_output + 1) {
				size_t ncap = sp->cap * 2;
				char *nbuf;

				if (ncap > sp->max_output + 1)
					ncap = sp->max_output + 1;
				if ((nbuf = realloc(sp->buf, ncap)) != NULL) {
					sp->buf = nbuf;
					sp->cap = ncap;
				}
			}
			if (sp->cap - sp->len - 1 > 0) {
				dst = sp->buf + sp->len;
				room = sp->cap - sp->len - 1;
			}
		}

		n = read(sp->outfd, dst, room);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			log_warn("spawn: reading output of pid %d",
			    (int)sp->pid);
			return 1;
		}
		if (n == 0)
			return 1;
		if (dst == scratch) {
			/* Beyond max_output (or out of memory): drain, drop. */
			sp->truncated = 1;
			continue;
		}
		sp->len += (size_t)n;
		sp->buf[sp->len] = '\0';
	}
	return 0;
}

static void
spawn_out_cb(evutil_socket_t fd, short what, void *arg)
{
	struct spawn *sp = arg;

	(void)fd;
	(void)what;
	if (!spawn_read_output(sp))
		return;
	spawn_close_output(sp);
	event_del(sp->ev_finish);
	spawn_maybe_report(sp);
}

static void
spawn_kill_cb(evutil_socket_t fd, short what, void *arg)
{
	struct spawn *sp = arg;

	(void)fd;
	(void)what;
	if (!sp->term_sent) {
		/* The deadline. */
		if (!sp->cancelled)
			sp->timed_out = 1;
		spawn_terminate(sp);
	} else {
		spawn_signal_group(sp, SIGKILL);
	}
}

/*
 * Either the pipe lingered too long after the exit, or the exec failed and
 * this is its asynchronous report.
 */
static void
spawn_finish_cb(evutil_socket_t fd, short what, void *arg)
{
	struct spawn *sp = arg;

	(void)fd;
	(void)what;
	if (sp->outfd != -1) {
		/* Keep what arrived until now. */
		(void)spawn_read_output(sp);
		spawn_close_output(sp);
	}
	spawn_report(sp);
}

/*
 * Keep the pipe's ends off descriptors 0-2: if the agent runs with one of
 * them closed, the file actions below would otherwise clobber the pipe.
 */
static int
spawn_fd_above_stdio(int fd)
{
	int nfd;

	if (fd > STDERR_FILENO)
		return fd;
	if ((nfd = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1)) == -1)
		return -1;
	close(fd);
	return nfd;
}

static int
spawn_make_pipe(int ret_fds[2])
{
	int fds[2];
	int flags;

	if (pipe2(fds, O_CLOEXEC) == -1)
		return -errno;
	for (int i = 0; i < 2; i++) {
		int nfd = spawn_fd_above_stdio(fds[i]);

		if (nfd == -1) {
			int r = -errno;

			close(fds[0]);
			close(fds[1]);
			return r;
		}
		fds[i] = nfd;
	}
	if ((flags = fcntl(fds[0], F_GETFL)) == -1 ||
	    fcntl(fds[0], F_SETFL, flags | O_NONBLOCK) == -1) {
		int r = -errno;

		close(fds[0]);
		close(fds[1]);
		return r;
	}
	ret_fds[0] = fds[0];
	ret_fds[1] = fds[1];
	return 0;
}

/*
 * Run posix_spawn(p) for argv with stdout/stderr on wfd. Returns its result:
 * 0, or an errno value, which for glibc includes a failed exec (the child
 * is then already reaped by glibc).
 */
static int
spawn_exec(pid_t *ret_pid, const char *const *argv, int wfd, int infd,
    char *const *envp)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	char *const *cargv;
	int r;

	if ((r = posix_spawn_file_actions_init(&fa)) != 0)
		return r;
	if ((r = posix_spawnattr_init(&attr)) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return r;
	}

	sigemptyset(&none);
	sigfillset(&all);
	/*
	 * Own process group, so the deadline can kill everything it starts.
	 * Empty signal mask and default dispositions: the agent ignores
	 * SIGPIPE and a child must not inherit that.
	 */
	if ((r = infd != -1
	    ? posix_spawn_file_actions_adddup2(&fa, infd, STDIN_FILENO)
	    : posix_spawn_file_actions_addopen(&fa, STDIN_FILENO,
	    "/dev/null", O_RDONLY, 0)) != 0 ||
	    (r = posix_spawn_file_actions_adddup2(&fa, wfd,
	    STDOUT_FILENO)) != 0 ||
	    (r = posix_spawn_file_actions_adddup2(&fa, wfd,
	    STDERR_FILENO)) != 0 ||
	    (r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
	    POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)) != 0 ||
	    (r = posix_spawnattr_setpgroup(&attr, 0)) != 0 ||
	    (r = posix_spawnattr_setsigmask(&attr, &none)) != 0 ||
	    (r = posix_spawnattr_setsigdefault(&attr, &all)) != 0)
		goto out;

	/*
	 * posix_spawn() takes char *const argv[] for historical reasons; it
	 * does not write to the strings.
	 */
	cargv = (char *const *)(uintptr_t)argv;
	if (strchr(argv[0], '/') != NULL)
		r = posix_spawn(ret_pid, argv[0], &fa, &attr, cargv, envp);
	else
		r = posix_spawnp(ret_pid, argv[0], &fa, &attr, cargv, envp);
out:
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	return r;
}

/*
 * The environment for a child: ours, with every NAME=value of env
 * replacing ours of the same NAME. Only the array is allocated.
 */
static char **
spawn_make_env(const char *const *env)
{
	size_t n = 0, m = 0, k = 0;
	char **envp;

	while (environ[n] != NULL)
		n++;
	while (env[m] != NULL)
		m++;
	if ((envp = calloc(n + m + 1, sizeof(*envp))) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		size_t j;

		for (j = 0; j < m; j++) {
			size_t len = strcspn(env[j], "=");

			if (strncmp(environ[i], env[j], len) == 0 &&
			    environ[i][len] == '=')
				break;
		}
		if (j == m)
			envp[k++] = environ[i];
	}
	for (size_t j = 0; j < m; j++)
		envp[k++] = (char *)(uintptr_t)env[j];
	envp[k] = NULL;
	return envp;
}

/*
 * The child's stdin: a pipe already holding all of input and closed for
 * writing, so nothing waits on the child reading it. Input that does not
 * fit the pipe's buffer (64 KiB, raised up to 1 MiB) is refused: E2BIG.
 */
static int
spawn_input_pipe(const char *input, size_t len, int *ret_fd)
{
	int fds[2], r;
	size_t off = 0;

	if (pipe2(fds, O_CLOEXEC) == -1)
		return -errno;
	for (int i = 0; i < 2; i++) {
		int nfd = spawn_fd_above_stdio(fds[i]);

		if (nfd == -1) {
			r = -errno;
			close(fds[0]);
			close(fds[1]);
			return r;
		}
		fds[i] = nfd;
	}
	if (len > 65536 && (len > 1024 * 1024 ||
	    fcntl(fds[1], F_SETPIPE_SZ, (int)len) == -1)) {
		r = -E2BIG;
		goto fail;
	}
	if (fcntl(fds[1], F_SETFL, O_NONBLOCK) == -1) {
		r = -errno;
		goto fail;
	}
	while (off < len) {
		ssize_t n = write(fds[1], input + off, len - off);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			r = errno == EAGAIN ? -E2BIG : -errno;
			goto fail;
		}
		off += (size_t)n;
	}
	close(fds[1]);
	*ret_fd = fds[0];
	return 0;
fail:
	close(fds[0]);
	close(fds[1]);
	return r;
}

struct spawn *
spawn_start(struct event_base *base, const char *const *argv,
    int64_t timeout_ms, size_t max_output, troika_spawn_done_cb done,
    void *arg)
{
	return spawn_start_input(base, argv, NULL, NULL, 0, timeout_ms,
	    max_output, done, arg);
}

/* A timeout_ms of 0 or less means no deadline. */
struct spawn *
spawn_start_input(struct event_base *base, const char *const *argv,
    const char *const *env, const char *input, size_t input_len,
    int64_t timeout_ms, size_t max_output, troika_spawn_done_cb done,
    void *arg)
{
	struct spawn *sp = NULL;
	int fds[2] = { -1, -1 };
	int infd = -1;
	char **envp = NULL;
	struct timeval tv;
	int r;

	if (base == NULL || argv == NULL || argv[0] == NULL ||
	    argv[0][0] == '\0' || done == NULL) {
		errno = EINVAL;
		return NULL;
	}

	if ((sp = calloc(1, sizeof(*sp))) == NULL)
		return NULL;
	sp->base = base;
	sp->pid = -1;
	sp->pidfd = -1;
	sp->outfd = -1;
	sp->done = done;
	sp->arg = arg;
	TAILQ_INSERT_TAIL(&spawn_live, sp, entry);
	sp->linked = 1;

	/* "Unlimited" still has to leave room for the NUL without overflow. */
	if (max_output > SIZE_MAX / 2)
		max_output = SIZE_MAX / 2;
	sp->max_output = max_output;
	sp->cap = max_output + 1 < SPAWN_READ_CHUNK ? max_output + 1 :
	    SPAWN_READ_CHUNK;
	if ((sp->buf = malloc(sp->cap)) == NULL)
		goto fail;
	sp->buf[0] = '\0';

	/* Everything that can fail without a child to clean up comes first. */
	if ((r = spawn_make_pipe(fds)) < 0) {
		errno = -r;
		goto fail;
	}
	sp->outfd = fds[0];
	if ((sp->ev_out = event_new(base, sp->outfd, EV_READ | EV_PERSIST,
	    spawn_out_cb, sp)) == NULL ||
	    (sp->ev_kill = evtimer_new(base, spawn_kill_cb, sp)) == NULL ||
	    (sp->ev_finish = evtimer_new(base, spawn_finish_cb, sp)) == NULL) {
		errno = ENOMEM;
		goto fail;
	}

	if (env != NULL && (envp = spawn_make_env(env)) == NULL) {
		errno = ENOMEM;
		goto fail;
	}
	if (input != NULL &&
	    (r = spawn_input_pipe(input, input_len, &infd)) < 0) {
		errno = -r;
		goto fail;
	}

	clock_gettime(CLOCK_MONOTONIC, &sp->start);
	r = spawn_exec(&sp->pid, argv, fds[1], infd,
	    envp != NULL ? envp : environ);
	close(fds[1]);
	fds[1] = -1;
	if (infd != -1)
		close(infd);
	infd = -1;
	free(envp);
	envp = NULL;
	if (r != 0) {
		/*
		 * glibc cannot tell a failed clone from a failed exec here;
		 * both are reported through done, from the loop, so the caller
		 * never sees done before spawn_start() returned.
		 */
		sp->pid = -1;
		sp->spawn_errno = r;
		sp->duration_us = spawn_elapsed_us(&sp->start);
		sp->reaped = 1;
		spawn_close_output(sp);
		evutil_timerclear(&tv);
		if (evtimer_add(sp->ev_finish, &tv) == -1) {
			errno = ENOMEM;
			goto fail;
		}
		return sp;
	}

	/*
	 * Without pidfd_open (valgrind 3.19 does not know the syscall;
	 * kernels before 5.3 lack it) the exit is polled with waitid every
	 * SPAWN_POLL_MS instead: slower to notice, never blocking.
	 */
	sp->pidfd = (int)syscall(SYS_pidfd_open, sp->pid, 0);
	if (sp->pidfd == -1 && errno != ENOSYS)
		goto fail_child;
	if (sp->pidfd != -1)
		sp->ev_proc = event_new(base, sp->pidfd, EV_READ | EV_PERSIST,
		    spawn_proc_cb, sp);
	else
		sp->ev_proc = event_new(base, -1, EV_PERSIST, spawn_proc_cb, sp);
	if (sp->ev_proc == NULL) {
		errno = ENOMEM;
		goto fail_child;
	}
	spawn_ms_to_tv(SPAWN_POLL_MS, &tv);
	if (event_add(sp->ev_proc, sp->pidfd != -1 ? NULL : &tv) == -1 ||
	    event_add(sp->ev_out, NULL) == -1) {
		errno = ENOMEM;
		goto fail_child;
	}
	if (timeout_ms > 0) {
		spawn_ms_to_tv(timeout_ms, &tv);
		if (evtimer_add(sp->ev_kill, &tv) == -1) {
			errno = ENOMEM;
			goto fail_child;
		}
	}
	return sp;

fail_child:
	/*
	 * The child runs but cannot be watched. It has done nothing useful
	 * yet; SIGKILL is immediate, so this wait is short.
	 */
	r = errno;
	log_warn("spawn: cannot watch pid %d, killing it", (int)sp->pid);
	kill(-sp->pid, SIGKILL);
	while (waitpid(sp->pid, NULL, 0) == -1 && errno == EINTR)
		;
	errno = r;
fail:
	r = errno;
	if (fds[1] != -1)
		close(fds[1]);
	if (infd != -1)
		close(infd);
	free(envp);
	spawn_free(sp);
	errno = r;
	return NULL;
}

void
spawn_cancel(struct spawn *sp)
{
	if (sp == NULL)
		return;
	sp->cancelled = 1;
	sp->done = NULL;
	if (sp->reaped) {
		/* Failed exec, or only the pipe was still being read. */
		spawn_free(sp);
		return;
	}
	/* Its output no longer matters; a write now gets EPIPE/SIGPIPE. */
	spawn_close_output(sp);
	if (!sp->term_sent) {
		/* Replace the deadline by the TERM->KILL sequence. */
		event_del(sp->ev_kill);
		spawn_terminate(sp);
	}
}

size_t
spawn_active(void)
{
	struct spawn *sp;
	size_t n = 0;

	TAILQ_FOREACH(sp, &spawn_live, entry)
		if (sp->pid > 0 && !sp->reaped)
			n++;
	return n;
}

/*
 * Frees events, so it must run before the event bases they belong to are
 * freed. Blocks for at most SPAWN_SHUTDOWN_WAIT_MS: SIGKILL cannot be
 * ignored, so only a child stuck in the kernel (D state) stays behind.
 */
void
spawn_shutdown(void)
{
	struct spawn *sp;
	struct timespec start;

	TAILQ_FOREACH(sp, &spawn_live, entry) {
		if (sp->pid > 0 && !sp->reaped)
			spawn_signal_group(sp, SIGKILL);
	}

	/* Reap what we can within a bounded time, polling. */
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		int left = 0;

		TAILQ_FOREACH(sp, &spawn_live, entry) {
			if (sp->pid <= 0 || sp->reaped)
				continue;
			if (waitpid(sp->pid, NULL, WNOHANG) != 0)
				sp->reaped = 1; /* reaped, or not ours (-1) */
			else
				left++;
		}
		if (left == 0)
			break;
		if (spawn_elapsed_us(&start) > SPAWN_SHUTDOWN_WAIT_MS * 1000) {
			log_warnx("spawn: %d children not reaped at shutdown",
			    left);
			break;
		}
		usleep(5000);
	}

	while ((sp = TAILQ_FIRST(&spawn_live)) != NULL)
		spawn_free(sp);
}
