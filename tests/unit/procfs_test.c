/*
 * procfs against real processes: the test process itself, and children it
 * forks (a sleep with a chosen comm and argv[0], a zombie, one whose comm
 * holds spaces and parentheses).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "procfs.h"

#define MAX_CHILDREN 8

static pid_t children[MAX_CHILDREN];
static size_t nchildren;
static char tmpdir[64];

static void
child_add(pid_t pid)
{
	assert_true(nchildren < MAX_CHILDREN);
	children[nchildren++] = pid;
}

/* Kill and reap every child of the test, even after a failed assertion. */
static int
children_teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < nchildren; i++) {
		kill(children[i], SIGKILL);
		waitpid(children[i], NULL, 0);
	}
	nchildren = 0;
	return 0;
}

static int
tmpdir_setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/procfs_test.XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
tmpdir_teardown(void **state)
{
	char cmd[128];

	(void)state;
	children_teardown(NULL);
	/* Only files this test wrote live there. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/*
 * Fork and exec path with argv; returns once the exec happened (the pipe,
 * close-on-exec, reads EOF), so the child's comm is already the new one.
 */
static pid_t
spawn_exec(const char *path, char *const argv[])
{
	int pfd[2], err = 0;
	ssize_t n;
	pid_t pid;

	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execv(path, argv);
		err = errno;
		(void)write(pfd[1], &err, sizeof(err));
		_exit(127);
	}
	child_add(pid);
	close(pfd[1]);
	n = read(pfd[0], &err, sizeof(err));
	close(pfd[0]);
	assert_int_equal(n, 0);
	return pid;
}

/*
 * Fork a child that renames itself (prctl) and then either waits for the
 * parent to kill it or exits at once. Returns after the rename.
 */
static pid_t
spawn_named(const char *comm, int exit_at_once)
{
	int pfd[2];
	char c;
	pid_t pid;

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		prctl(PR_SET_NAME, comm, 0, 0, 0);
		(void)write(pfd[1], "x", 1);
		if (exit_at_once)
			_exit(0);
		for (;;)
			pause();
	}
	child_add(pid);
	close(pfd[1]);
	assert_int_equal(read(pfd[0], &c, 1), 1);
	close(pfd[0]);
	return pid;
}

static void
test_stats_self(void **state)
{
	struct procfs_stats st, st2;
	struct rlimit rl;
	struct timespec now;

	(void)state;
	assert_int_equal(procfs_stats(0, &st), 0);
	assert_string_equal(st.comm, "procfs_test");
	assert_int_equal(st.state, 'R');
	assert_true(st.rss_bytes > 0);
	assert_true(st.rss_bytes % (uint64_t)sysconf(_SC_PAGESIZE) == 0);
	assert_true(st.vsize_bytes >= st.rss_bytes);
	assert_true(st.cpu_seconds >= 0.0);
	assert_true(st.cpu_seconds < 60.0);
	/* stdin, stdout, stderr at least. */
	assert_true(st.open_fds >= 3);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_int_equal(st.max_fds, rl.rlim_cur);

	/* Started in the last minutes; boot time + ticks is to 1/HZ. */
	clock_gettime(CLOCK_REALTIME, &now);
	assert_true(st.start_time_seconds <= (double)now.tv_sec + 1.0);
	assert_true(st.start_time_seconds > (double)now.tv_sec - 120.0);

	/* By explicit PID: the same process. */
	assert_int_equal(procfs_stats(getpid(), &st2), 0);
	assert_string_equal(st2.comm, st.comm);
	assert_true(st2.start_time_seconds == st.start_time_seconds);
	assert_int_equal(st2.open_fds, st.open_fds);
}

static void
test_stats_fds_grow(void **state)
{
	struct procfs_stats before, during, after;
	int fds[5];

	(void)state;
	assert_int_equal(procfs_stats(0, &before), 0);
	for (size_t i = 0; i < 5; i++)
		assert_true((fds[i] = open("/dev/null", O_RDONLY)) >= 0);
	assert_int_equal(procfs_stats(0, &during), 0);
	for (size_t i = 0; i < 5; i++)
		close(fds[i]);
	assert_int_equal(procfs_stats(0, &after), 0);
	assert_int_equal(during.open_fds, before.open_fds + 5);
	assert_int_equal(after.open_fds, before.open_fds);
}

static void
test_stats_max_fds_follows_limit(void **state)
{
	struct procfs_stats st;
	struct rlimit rl, low;

	(void)state;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	low = rl;
	low.rlim_cur = rl.rlim_cur > 100 ? 100 : rl.rlim_cur;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	assert_int_equal(procfs_stats(0, &st), 0);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_int_equal(st.max_fds, low.rlim_cur);
}

static void
test_stats_errors(void **state)
{
	struct procfs_stats st;
	pid_t pid;

	(void)state;
	assert_int_equal(procfs_stats(-1, &st), -EINVAL);
	assert_int_equal(procfs_stats(0, NULL), -EINVAL);
	/* Above any pid_max (at most 2^22). */
	assert_int_equal(procfs_stats(INT_MAX, &st), -ENOENT);

	/* A child that existed and is gone (reaped). */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	assert_int_equal(procfs_stats(pid, &st), -ENOENT);
}

/* comm may hold spaces and parentheses; fields count from the last ')'. */
static void
test_stats_odd_comm(void **state)
{
	struct procfs_stats self, st;
	pid_t pid;

	(void)state;
	pid = spawn_named("a) b (c) d", 0);
	assert_int_equal(procfs_stats(pid, &st), 0);
	assert_string_equal(st.comm, "a) b (c) d");
	assert_true(st.state == 'S' || st.state == 'R');
	assert_true(st.rss_bytes > 0);
	assert_int_equal(procfs_stats(0, &self), 0);
	assert_true(st.start_time_seconds >= self.start_time_seconds);
	/* A forked child inherits the parent's limit. */
	assert_int_equal(st.max_fds, self.max_fds);

	pid = spawn_named(") 1 2 3 4 5 6)", 0);
	assert_int_equal(procfs_stats(pid, &st), 0);
	assert_string_equal(st.comm, ") 1 2 3 4 5 6)");
	assert_true(st.state == 'S' || st.state == 'R');
}

static void
test_find_self(void **state)
{
	pid_t pids[64];
	int n, seen = 0;

	(void)state;
	n = procfs_find_by_name("procfs_test", 0, pids, 64);
	assert_true(n >= 1);
	for (int i = 0; i < n && i < 64; i++)
		if (pids[i] == getpid())
			seen = 1;
	assert_true(seen);

	/* argv[0] of the test is a path ending in procfs_test. */
	n = procfs_find_by_name("procfs_test", 1, pids, 64);
	assert_true(n >= 1);
	seen = 0;
	for (int i = 0; i < n && i < 64; i++)
		if (pids[i] == getpid())
			seen = 1;
	assert_true(seen);
}

static void
test_find_child(void **state)
{
	char link[128], comm[16], argv0[128], base[64];
	pid_t pids[4] = { 0, 0, 0, 0 };
	pid_t pid;

	(void)state;
	/* comm comes from the exec'd file name: a link with a unique name. */
	snprintf(comm, sizeof(comm), "tk%ld", (long)getpid());
	snprintf(link, sizeof(link), "%s/%s", tmpdir, comm);
	assert_int_equal(symlink("/bin/sleep", link), 0);
	/* argv[0] is free; make it longer than comm allows. */
	snprintf(base, sizeof(base), "troika-sleeper-%ld", (long)getpid());
	snprintf(argv0, sizeof(argv0), "/nonexistent/dir/%s", base);
	assert_true(strlen(base) > 15);
	pid = spawn_exec(link, (char *[]){ argv0, "30", NULL });

	/* By comm. */
	assert_int_equal(procfs_find_by_name(comm, 0, pids, 4), 1);
	assert_int_equal(pids[0], pid);
	/* By argv[0] basename, asked for... */
	pids[0] = 0;
	assert_int_equal(procfs_find_by_name(base, 1, pids, 4), 1);
	assert_int_equal(pids[0], pid);
	/* ...or implied by a name longer than comm. */
	pids[0] = 0;
	assert_int_equal(procfs_find_by_name(base, 0, pids, 4), 1);
	assert_int_equal(pids[0], pid);
	/* The cmdline match compares argv[0]'s basename, not comm... */
	assert_int_equal(procfs_find_by_name(comm, 1, pids, 4), 0);
	/* ...and not the whole path. */
	assert_int_equal(procfs_find_by_name(argv0, 1, pids, 4), 0);
	/* A prefix is not a match. */
	assert_int_equal(procfs_find_by_name("tk", 0, pids, 4), 0);

	/* Counting only. */
	assert_int_equal(procfs_find_by_name(comm, 0, NULL, 0), 1);
}

static void
test_find_more_than_max(void **state)
{
	char name[16];
	pid_t pids[2] = { 0, -7 };
	pid_t a, b;

	(void)state;
	snprintf(name, sizeof(name), "tm%ld", (long)getpid());
	a = spawn_named(name, 0);
	b = spawn_named(name, 0);
	/* Two found, one slot filled, the next one untouched. */
	assert_int_equal(procfs_find_by_name(name, 0, pids, 1), 2);
	assert_true(pids[0] == a || pids[0] == b);
	assert_int_equal(pids[1], -7);
}

static void
test_find_skips_zombies(void **state)
{
	struct procfs_stats st;
	char name[16];
	siginfo_t si;
	pid_t pids[2];
	pid_t pid;

	(void)state;
	snprintf(name, sizeof(name), "tz%ld", (long)getpid());
	pid = spawn_named(name, 1);
	/* Wait until it exited, without reaping it: now it is a zombie. */
	memset(&si, 0, sizeof(si));
	assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
	assert_int_equal(procfs_stats(pid, &st), 0);
	assert_int_equal(st.state, 'Z');
	assert_string_equal(st.comm, name);
	assert_int_equal(procfs_find_by_name(name, 0, pids, 2), 0);
	assert_int_equal(procfs_find_by_name(name, 1, pids, 2), 0);
}

static void
test_find_errors(void **state)
{
	pid_t pids[1];

	(void)state;
	assert_int_equal(procfs_find_by_name(NULL, 0, pids, 1), -EINVAL);
	assert_int_equal(procfs_find_by_name("", 0, pids, 1), -EINVAL);
	assert_int_equal(procfs_find_by_name("x", 0, NULL, 1), -EINVAL);
	/* Nothing has this name. */
	assert_int_equal(procfs_find_by_name("no such process!", 0, pids, 1),
	    0);
}

static void
write_file(const char *path, const char *data, size_t len)
{
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void
test_pidfile(void **state)
{
	static const struct {
		const char *data;
		size_t len; /* 0: strlen(data) */
		int r;
		pid_t pid;
	} cases[] = {
		{ "1234\n", 0, 0, 1234 },
		{ "1234", 0, 0, 1234 },          /* RabbitMQ: no newline */
		{ "  42 \t\n", 0, 0, 42 },
		{ "1234\r\n", 0, 0, 1234 },
		{ "1", 0, 0, 1 },
		{ "2147483647", 0, 0, INT_MAX },
		{ "", 0, -EINVAL, 0 },
		{ "\n", 0, -EINVAL, 0 },
		{ "0\n", 0, -EINVAL, 0 },
		{ "000", 0, -EINVAL, 0 },
		{ "-5\n", 0, -EINVAL, 0 },
		{ "+5\n", 0, -EINVAL, 0 },
		{ "12ab\n", 0, -EINVAL, 0 },
		{ "abc\n", 0, -EINVAL, 0 },
		{ "12 34\n", 0, -EINVAL, 0 },
		{ "1234\n5678\n", 0, -EINVAL, 0 },
		{ "0x10\n", 0, -EINVAL, 0 },
		{ "2147483648\n", 0, -EINVAL, 0 },
		{ "99999999999999999999999999\n", 0, -EINVAL, 0 },
		{ "12\0\n", 4, -EINVAL, 0 },
		{ "\0" "12", 3, -EINVAL, 0 },
		/* Longer than any pidfile, even if it would parse. */
		{ "                                                         "
		  "       12\n", 0, -EINVAL, 0 },
	};
	char path[128];

	(void)state;
	snprintf(path, sizeof(path), "%s/pid", tmpdir);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *data = cases[i].data;
		size_t len = cases[i].len ? cases[i].len : strlen(data);
		pid_t pid = -1;
		int r;

		write_file(path, data, len);
		r = procfs_read_pidfile(path, &pid);
		if (r != cases[i].r)
			fail_msg("case %zu: got %d, want %d", i, r, cases[i].r);
		if (r == 0 && pid != cases[i].pid)
			fail_msg("case %zu: pid %ld", i, (long)pid);
		if (r != 0 && pid != -1)
			fail_msg("case %zu: pid written on error", i);
	}
}

static void
test_pidfile_errors(void **state)
{
	char path[128];
	pid_t pid;

	(void)state;
	snprintf(path, sizeof(path), "%s/missing.pid", tmpdir);
	assert_int_equal(procfs_read_pidfile(path, &pid), -ENOENT);
	/* A directory opens but does not read. */
	assert_int_equal(procfs_read_pidfile(tmpdir, &pid), -EISDIR);
	assert_int_equal(procfs_read_pidfile(NULL, &pid), -EINVAL);
	assert_int_equal(procfs_read_pidfile(path, NULL), -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stats_self),
		cmocka_unit_test(test_stats_fds_grow),
		cmocka_unit_test(test_stats_max_fds_follows_limit),
		cmocka_unit_test_teardown(test_stats_errors, children_teardown),
		cmocka_unit_test_teardown(test_stats_odd_comm,
		    children_teardown),
		cmocka_unit_test(test_find_self),
		cmocka_unit_test_teardown(test_find_child, children_teardown),
		cmocka_unit_test_teardown(test_find_more_than_max,
		    children_teardown),
		cmocka_unit_test_teardown(test_find_skips_zombies,
		    children_teardown),
		cmocka_unit_test(test_find_errors),
		cmocka_unit_test(test_pidfile),
		cmocka_unit_test(test_pidfile_errors),
	};

	return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
