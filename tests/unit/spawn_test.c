/*
 * spawn: real children (/bin/sh, true, sleep, cat) on a fresh event base per
 * test. Every test ends with no spawn alive, no event pending, and ASan
 * checking that everything was freed.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "spawn.h"

/* What done reported, copied, since the result dies with the callback. */
struct box {
	int calls;
	struct troika_spawn_result res;
	char *output;
	int64_t done_at_us;
	struct event_base *base; /* set: break the loop in done */
	const char *const *next_argv; /* set: start this from done */
	struct box *next_box;
};

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
box_done_cb(const struct troika_spawn_result *res, void *arg)
{
	struct box *b = arg;

	b->calls++;
	b->res = *res;
	b->done_at_us = now_us();
	assert_non_null(res->output);
	assert_int_equal(strlen(res->output), res->output_len);
	free(b->output);
	b->output = strdup(res->output);
	b->res.output = b->output;
	if (b->next_argv != NULL)
		assert_non_null(spawn_start(b->base, b->next_argv, 5000, 1024,
		    box_done_cb, b->next_box));
	else if (b->base != NULL)
		event_base_loopbreak(b->base);
}

static void
box_clear(struct box *b)
{
	free(b->output);
	memset(b, 0, sizeof(*b));
}

/* Nothing left: no child, no event; then free the base. */
static void
base_finish(struct event_base *base)
{
	assert_int_equal(spawn_active(), 0);
	assert_int_equal(event_base_get_num_events(base,
	    EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE), 0);
	event_base_free(base);
}

/* Start argv and run the loop until it has nothing left to do. */
static void
run_one(const char *const *argv, int64_t timeout_ms, size_t max_output,
    struct box *b)
{
	struct event_base *base = event_base_new();
	struct spawn *sp;

	assert_non_null(base);
	sp = spawn_start(base, argv, timeout_ms, max_output, box_done_cb, b);
	assert_non_null(sp);
	assert_int_equal(b->calls, 0); /* never from inside spawn_start() */
	assert_int_equal(event_base_dispatch(base), 1); /* 1: no events left */
	assert_int_equal(b->calls, 1);
	base_finish(base);
}

static void
test_exit_codes(void **state)
{
	const char *const av_true[] = { "true", NULL }; /* through PATH */
	const char *const av_false[] = { "/bin/false", NULL };
	struct box b = { 0 };

	(void)state;
	run_one(av_true, 5000, 1024, &b);
	assert_int_equal(b.res.exited, 1);
	assert_int_equal(b.res.exit_code, 0);
	assert_int_equal(b.res.signal, 0);
	assert_int_equal(b.res.timed_out, 0);
	assert_int_equal(b.res.spawn_errno, 0);
	assert_int_equal(b.res.output_len, 0);
	assert_string_equal(b.output, "");
	assert_int_equal(b.res.output_truncated, 0);
	box_clear(&b);

	run_one(av_false, 5000, 1024, &b);
	assert_int_equal(b.res.exited, 1);
	assert_int_equal(b.res.exit_code, 1);
	assert_int_equal(b.res.spawn_errno, 0);
	box_clear(&b);
}

static void
test_exit_by_signal(void **state)
{
	const char *const av[] = { "/bin/sh", "-c", "kill -KILL $$", NULL };
	struct box b = { 0 };

	(void)state;
	run_one(av, 5000, 1024, &b);
	assert_int_equal(b.res.exited, 0);
	assert_int_equal(b.res.signal, SIGKILL);
	assert_int_equal(b.res.timed_out, 0);
	box_clear(&b);
}

static void
test_missing_program(void **state)
{
	const char *const av_path[] = { "/nonexistent/troika-none", NULL };
	const char *const av_lookup[] = { "troika-no-such-program", NULL };
	struct box b = { 0 };

	(void)state;
	run_one(av_path, 5000, 1024, &b);
	assert_int_equal(b.res.spawn_errno, ENOENT);
	assert_int_equal(b.res.exited, 0);
	assert_int_equal(b.res.signal, 0);
	assert_int_equal(b.res.output_len, 0);
	assert_string_equal(b.output, "");
	box_clear(&b);

	run_one(av_lookup, 5000, 1024, &b);
	assert_int_equal(b.res.spawn_errno, ENOENT);
	assert_int_equal(b.res.exited, 0);
	box_clear(&b);
}

static void
test_not_executable(void **state)
{
	const char *const av[] = { "/dev/null", NULL };
	struct box b = { 0 };

	(void)state;
	run_one(av, 5000, 1024, &b);
	assert_int_equal(b.res.spawn_errno, EACCES);
	box_clear(&b);
}

static void
test_invalid_args(void **state)
{
	struct event_base *base = event_base_new();
	const char *const av_ok[] = { "true", NULL };
	const char *const av_null[] = { NULL };
	const char *const av_empty[] = { "", NULL };
	struct box b = { 0 };

	(void)state;
	assert_non_null(base);
	errno = 0;
	assert_null(spawn_start(base, NULL, 1000, 10, box_done_cb, &b));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(spawn_start(base, av_null, 1000, 10, box_done_cb, &b));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(spawn_start(base, av_empty, 1000, 10, box_done_cb, &b));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(spawn_start(base, av_ok, 1000, 10, NULL, &b));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(spawn_start(NULL, av_ok, 1000, 10, box_done_cb, &b));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(b.calls, 0);
	spawn_cancel(NULL); /* accepted */
	base_finish(base);
}

static void
test_output_capture(void **state)
{
	const char *const av[] = { "/bin/sh", "-c",
	    "echo out; echo err >&2; exit 3", NULL };
	struct box b = { 0 };

	(void)state;
	run_one(av, 5000, 1024, &b);
	assert_int_equal(b.res.exited, 1);
	assert_int_equal(b.res.exit_code, 3);
	assert_string_equal(b.output, "out\nerr\n");
	assert_int_equal(b.res.output_len, 8);
	assert_int_equal(b.res.output_truncated, 0);
	box_clear(&b);
}

static void
test_output_truncated(void **state)
{
	const char *const av_yes[] = { "/bin/sh", "-c",
	    "yes | head -c 100000", NULL };
	const char *const av_abc[] = { "/bin/sh", "-c", "printf abc", NULL };
	const char *const av_hi[] = { "/bin/sh", "-c", "echo hi", NULL };
	struct box b = { 0 };

	(void)state;
	run_one(av_yes, 5000, 1000, &b);
	assert_int_equal(b.res.exited, 1);
	assert_int_equal(b.res.exit_code, 0); /* drained: no SIGPIPE */
	assert_int_equal(b.res.output_len, 1000);
	assert_int_equal(strlen(b.output), 1000);
	assert_int_equal(b.res.output_truncated, 1);
	for (size_t i = 0; i < 1000; i++)
		assert_int_equal(b.output[i], i % 2 == 0 ? 'y' : '\n');
	box_clear(&b);

	/* Larger than the first buffer, below the limit: all of it. */
	run_one(av_yes, 5000, 200000, &b);
	assert_int_equal(b.res.output_len, 100000);
	assert_int_equal(b.res.output_truncated, 0);
	box_clear(&b);

	/* Exactly the limit is not truncated. */
	run_one(av_abc, 5000, 3, &b);
	assert_string_equal(b.output, "abc");
	assert_int_equal(b.res.output_truncated, 0);
	box_clear(&b);

	/* A limit of 0 keeps nothing. */
	run_one(av_hi, 5000, 0, &b);
	assert_int_equal(b.res.output_len, 0);
	assert_string_equal(b.output, "");
	assert_int_equal(b.res.output_truncated, 1);
	assert_int_equal(b.res.exit_code, 0);
	box_clear(&b);
}

static void
test_timeout_term(void **state)
{
	const char *const av[] = { "sleep", "30", NULL };
	struct box b = { 0 };
	int64_t t0 = now_us();

	(void)state;
	run_one(av, 200, 1024, &b);
	assert_int_equal(b.res.timed_out, 1);
	assert_int_equal(b.res.exited, 0);
	assert_int_equal(b.res.signal, SIGTERM);
	assert_true(b.done_at_us - t0 >= 190000);
	assert_true(b.done_at_us - t0 < 1000000);
	box_clear(&b);
}

static void
test_timeout_kill(void **state)
{
	/* The shell and its sleep both ignore TERM: only KILL ends them. */
	const char *const av[] = { "/bin/sh", "-c",
	    "trap '' TERM; sleep 30", NULL };
	struct box b = { 0 };
	int64_t t0 = now_us();

	(void)state;
	run_one(av, 200, 1024, &b);
	assert_int_equal(b.res.timed_out, 1);
	assert_int_equal(b.res.exited, 0);
	assert_int_equal(b.res.signal, SIGKILL);
	assert_true(b.done_at_us - t0 >= 200000 + SPAWN_KILL_GRACE_MS * 1000 -
	    10000);
	assert_true(b.done_at_us - t0 < 2500000);
	assert_true(b.res.duration_us >= 1000000);
	box_clear(&b);
}

/* 1 if pid is gone or a zombie (orphans are reaped late by PID 1 here). */
static int
pid_dead(pid_t pid)
{
	char path[64], buf[512];
	const char *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if ((p = strrchr(buf, ')')) == NULL)
		return 1;
	return p[1] == ' ' && p[2] == 'Z';
}

static void
test_timeout_kills_group(void **state)
{
	/*
	 * The leader dies at the TERM; a grandchild that ignores TERM and
	 * holds the pipe must still be killed, not left running.
	 */
	char pidfile[] = "/tmp/troika-spawn-test.XXXXXX";
	char cmd[256];
	const char *const av[] = { "/bin/sh", "-c", cmd, NULL };
	struct box b = { 0 };
	int64_t t0 = now_us();
	long pid = 0;
	FILE *f;
	int fd;

	(void)state;
	assert_true((fd = mkstemp(pidfile)) >= 0);
	close(fd);
	snprintf(cmd, sizeof(cmd),
	    "sh -c 'trap \"\" TERM; echo $$ > %s; exec sleep 30' & wait",
	    pidfile);
	run_one(av, 300, 1024, &b);
	assert_int_equal(b.res.timed_out, 1);
	assert_int_equal(b.res.signal, SIGTERM);
	assert_true(b.done_at_us - t0 < 1000000);
	assert_non_null(f = fopen(pidfile, "r"));
	assert_int_equal(fscanf(f, "%ld", &pid), 1);
	fclose(f);
	unlink(pidfile);
	assert_true(pid > 1);
	assert_true(pid_dead((pid_t)pid));
	box_clear(&b);
}

static void
test_grandchild_holds_pipe(void **state)
{
	const char *const av[] = { "/bin/sh", "-c", "sleep 30 & echo hi $$",
	    NULL };
	struct box b = { 0 };
	int64_t t0 = now_us();
	long pgid;

	(void)state;
	run_one(av, 10000, 1024, &b);
	assert_true(b.done_at_us - t0 < 1000000);
	assert_int_equal(b.res.exited, 1);
	assert_int_equal(b.res.exit_code, 0);
	assert_int_equal(b.res.timed_out, 0);
	assert_int_equal(sscanf(b.output, "hi %ld", &pgid), 1);
	assert_true(pgid > 1);
	/* The sleep is still there, in the child's group: end it. */
	assert_int_equal(kill(-(pid_t)pgid, SIGKILL), 0);
	box_clear(&b);
}

struct cancel_ctx {
	struct spawn *sp;
	const char *pidfile;
	pid_t pid;
	struct event *ev;
	int ticks;
};

/* Cancel once the child wrote its pid (it is then surely running). */
static void
cancel_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cancel_ctx *c = arg;
	FILE *f;
	long pid;

	(void)fd;
	(void)what;
	assert_true(++c->ticks < 500);
	if ((f = fopen(c->pidfile, "r")) == NULL)
		return;
	if (fscanf(f, "%ld", &pid) == 1) {
		c->pid = (pid_t)pid;
		spawn_cancel(c->sp);
		event_del(c->ev);
	}
	fclose(f);
}

static void
run_cancel(const char *script, int64_t min_us, int64_t max_us)
{
	struct event_base *base = event_base_new();
	char pidfile[] = "/tmp/troika-spawn-test.XXXXXX";
	char cmd[256];
	const char *av[] = { "/bin/sh", "-c", cmd, NULL };
	struct timeval tick = { 0, 10000 };
	struct cancel_ctx c = { 0 };
	struct box b = { 0 };
	int64_t t0;
	int fd;

	assert_non_null(base);
	assert_true((fd = mkstemp(pidfile)) >= 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), script, pidfile);
	c.pidfile = pidfile;
	c.ev = event_new(base, -1, EV_PERSIST, cancel_poll_cb, &c);
	assert_non_null(c.ev);
	c.sp = spawn_start(base, av, 10000, 1024, box_done_cb, &b);
	assert_non_null(c.sp);
	assert_int_equal(spawn_active(), 1);
	event_add(c.ev, &tick);
	t0 = now_us();
	event_base_dispatch(base);
	assert_true(now_us() - t0 >= min_us);
	assert_true(now_us() - t0 < max_us);
	assert_int_equal(b.calls, 0);
	assert_true(c.pid > 1);
	/* Reaped by spawn, so not even a zombie is left. */
	assert_int_equal(kill(c.pid, 0), -1);
	assert_int_equal(errno, ESRCH);
	event_free(c.ev);
	unlink(pidfile);
	base_finish(base);
}

static void
test_cancel(void **state)
{
	(void)state;
	run_cancel("echo $$ > %s; exec sleep 30", 0, 1000000);
}

static void
test_cancel_ignoring_term(void **state)
{
	(void)state;
	/* Dies only at the KILL after the grace period. */
	run_cancel("trap '' TERM; echo $$ > %s; sleep 30",
	    SPAWN_KILL_GRACE_MS * 1000 - 10000, 2500000);
}

static void
test_cancel_at_once(void **state)
{
	struct event_base *base = event_base_new();
	const char *const av[] = { "sleep", "30", NULL };
	const char *const av_missing[] = { "/nonexistent/x", NULL };
	struct box b = { 0 };
	struct spawn *sp;

	(void)state;
	assert_non_null(base);
	/* Before the loop ever ran. */
	assert_non_null(sp = spawn_start(base, av, 10000, 10, box_done_cb,
	    &b));
	spawn_cancel(sp);
	assert_int_equal(spawn_active(), 1); /* until reaped */
	/* A failed exec cancelled before its report: gone at once. */
	assert_non_null(sp = spawn_start(base, av_missing, 10000, 10,
	    box_done_cb, &b));
	spawn_cancel(sp);
	event_base_dispatch(base);
	assert_int_equal(b.calls, 0);
	base_finish(base);
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	int *ticks = arg;

	(void)fd;
	(void)what;
	(*ticks)++;
}

static void
test_loop_not_blocked(void **state)
{
	struct event_base *base = event_base_new();
	const char *const av[] = { "sleep", "0.5", NULL };
	struct timeval tv = { 0, 10000 };
	struct box b = { 0 };
	struct event *ev;
	int ticks = 0;

	(void)state;
	assert_non_null(base);
	b.base = base;
	ev = event_new(base, -1, EV_PERSIST, tick_cb, &ticks);
	assert_non_null(ev);
	event_add(ev, &tv);
	assert_non_null(spawn_start(base, av, 5000, 100, box_done_cb, &b));
	event_base_dispatch(base);
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.res.exit_code, 0);
	/* 50 expected; a blocked loop would give 0 or 1. */
	assert_true(ticks >= 25);
	assert_true(b.res.duration_us >= 450000);
	event_free(ev);
	box_clear(&b);
	base_finish(base);
}

static unsigned long long
status_mask(const char *status, const char *field)
{
	const char *p = strstr(status, field);

	assert_non_null(p);
	return strtoull(p + strlen(field), NULL, 16);
}

static void
test_signals_reset(void **state)
{
	const char *const av_status[] = { "cat", "/proc/self/status", NULL };
	const char *const av_pipe[] = { "/bin/sh", "-c",
	    "kill -PIPE $$; echo alive", NULL };
	struct sigaction sa, old_sa;
	sigset_t block, old_mask;
	struct box b = { 0 };

	(void)state;
	/* What the agent does, and what the children must not inherit. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	assert_int_equal(sigaction(SIGPIPE, &sa, &old_sa), 0);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	assert_int_equal(sigprocmask(SIG_BLOCK, &block, &old_mask), 0);

	run_one(av_status, 5000, 65536, &b);
	assert_int_equal(b.res.exit_code, 0);
	assert_int_equal(status_mask(b.output, "\nSigBlk:"), 0);
	/*
	 * glibc's posix_spawn leaves its two internal signals (32 and 33,
	 * below SIGRTMIN) ignored; everything else must be at its default.
	 */
	assert_int_equal(status_mask(b.output, "\nSigIgn:") &
	    ~(3ULL << 31), 0);
	box_clear(&b);

	run_one(av_pipe, 5000, 1024, &b);
	assert_int_equal(b.res.exited, 0);
	assert_int_equal(b.res.signal, SIGPIPE);
	assert_string_equal(b.output, "");
	box_clear(&b);

	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	sigaction(SIGPIPE, &old_sa, NULL);
}

static void
test_group_and_stdin(void **state)
{
	const char *const av_stat[] = { "cat", "/proc/self/stat", NULL };
	const char *const av_stdin[] = { "readlink", "/proc/self/fd/0",
	    NULL };
	struct box b = { 0 };
	long pid, ppid, pgrp;
	const char *p;

	(void)state;
	run_one(av_stat, 5000, 4096, &b);
	/* "pid (comm) state ppid pgrp ..." */
	assert_int_equal(sscanf(b.output, "%ld", &pid), 1);
	assert_non_null(p = strrchr(b.output, ')'));
	assert_int_equal(sscanf(p + 1, " %*c %ld %ld", &ppid, &pgrp), 2);
	assert_int_equal(ppid, (long)getpid());
	assert_int_equal(pgrp, pid);
	box_clear(&b);

	run_one(av_stdin, 5000, 4096, &b);
	assert_string_equal(b.output, "/dev/null\n");
	box_clear(&b);
}

/* spawn_start_input: stdin from a buffer, variables added and replaced. */
static void
test_input_and_env(void **state)
{
	const char *const av[] = { "/bin/sh", "-c",
	    "cat; echo \"[$SPAWN_T1][$HOME]\"", NULL };
	const char *const env[] = { "SPAWN_T1=a b=c", "HOME=/nowhere", NULL };
	static const char input[] = "line 1\nline \"2\"\n";
	struct event_base *base = event_base_new();
	struct box b = { 0 };
	char *big;

	(void)state;
	assert_non_null(spawn_start_input(base, av, env, input,
	    sizeof(input) - 1, 5000, 4096, box_done_cb, &b));
	assert_int_equal(event_base_dispatch(base), 1);
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.res.exit_code, 0);
	assert_string_equal(b.output,
	    "line 1\nline \"2\"\n[a b=c][/nowhere]\n");
	box_clear(&b);
	/* Empty input: stdin at EOF at once, not /dev/null. */
	assert_non_null(spawn_start_input(base, av, NULL, "", 0, 5000, 4096,
	    box_done_cb, &b));
	assert_int_equal(event_base_dispatch(base), 1);
	{
		char want[512];

		snprintf(want, sizeof(want), "[][%s]\n",
		    getenv("HOME") != NULL ? getenv("HOME") : "");
		assert_string_equal(b.output, want);
	}
	box_clear(&b);
	/* More than a pipe can hold: refused before anything starts. */
	assert_non_null(big = calloc(1, 2 * 1024 * 1024));
	errno = 0;
	assert_null(spawn_start_input(base, av, NULL, big, 2 * 1024 * 1024,
	    5000, 4096, box_done_cb, &b));
	assert_int_equal(errno, E2BIG);
	free(big);
	base_finish(base);
}

static void
test_duration(void **state)
{
	const char *const av[] = { "sleep", "0.2", NULL };
	struct box b = { 0 };

	(void)state;
	run_one(av, 5000, 10, &b);
	assert_true(b.res.duration_us >= 190000);
	assert_true(b.res.duration_us < 1500000);
	box_clear(&b);
}

static void
test_many_and_from_done(void **state)
{
	struct event_base *base = event_base_new();
	const char *const av_next[] = { "/bin/sh", "-c", "echo next", NULL };
	struct box boxes[20];
	struct box next = { 0 };
	char scripts[20][32];

	(void)state;
	assert_non_null(base);
	memset(boxes, 0, sizeof(boxes));
	for (int i = 0; i < 20; i++) {
		const char *av[] = { "/bin/sh", "-c", scripts[i], NULL };

		snprintf(scripts[i], sizeof(scripts[i]), "echo %d", i);
		if (i == 7) {
			/* Its done starts another spawn on the same base. */
			boxes[i].base = base;
			boxes[i].next_argv = av_next;
			boxes[i].next_box = &next;
		}
		assert_non_null(spawn_start(base, av, 5000, 64, box_done_cb,
		    &boxes[i]));
	}
	assert_int_equal(spawn_active(), 20);
	event_base_dispatch(base);
	for (int i = 0; i < 20; i++) {
		char want[32];

		snprintf(want, sizeof(want), "%d\n", i);
		assert_int_equal(boxes[i].calls, 1);
		assert_string_equal(boxes[i].output, want);
		box_clear(&boxes[i]);
	}
	assert_int_equal(next.calls, 1);
	assert_string_equal(next.output, "next\n");
	box_clear(&next);
	base_finish(base);
}

static void
test_shutdown(void **state)
{
	struct event_base *base = event_base_new();
	const char *const av[] = { "sleep", "30", NULL };
	const char *const av_term[] = { "/bin/sh", "-c",
	    "trap '' TERM; sleep 30", NULL };
	const char *const av_missing[] = { "/nonexistent/x", NULL };
	struct box b = { 0 };
	struct spawn *sp;
	int64_t t0;

	(void)state;
	assert_non_null(base);
	assert_non_null(spawn_start(base, av, 10000, 10, box_done_cb, &b));
	assert_non_null(spawn_start(base, av_term, 10000, 10, box_done_cb,
	    &b));
	assert_non_null(spawn_start(base, av_missing, 10000, 10, box_done_cb,
	    &b));
	assert_non_null(sp = spawn_start(base, av, 10000, 10, box_done_cb,
	    &b));
	spawn_cancel(sp);
	assert_int_equal(spawn_active(), 3);
	t0 = now_us();
	spawn_shutdown();
	assert_true(now_us() - t0 < 600000);
	assert_int_equal(spawn_active(), 0);
	assert_int_equal(b.calls, 0);
	base_finish(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exit_codes),
		cmocka_unit_test(test_exit_by_signal),
		cmocka_unit_test(test_missing_program),
		cmocka_unit_test(test_not_executable),
		cmocka_unit_test(test_invalid_args),
		cmocka_unit_test(test_output_capture),
		cmocka_unit_test(test_output_truncated),
		cmocka_unit_test(test_timeout_term),
		cmocka_unit_test(test_timeout_kill),
		cmocka_unit_test(test_timeout_kills_group),
		cmocka_unit_test(test_grandchild_holds_pipe),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_cancel_ignoring_term),
		cmocka_unit_test(test_cancel_at_once),
		cmocka_unit_test(test_loop_not_blocked),
		cmocka_unit_test(test_signals_reset),
		cmocka_unit_test(test_group_and_stdin),
		cmocka_unit_test(test_input_and_env),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_many_and_from_done),
		cmocka_unit_test(test_shutdown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
