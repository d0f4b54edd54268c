/*
 * The process plugin, loaded from the build tree and driven through the
 * fake host against real processes: sleep(1) children started through
 * links with names unique to this test run (comm is taken from the name
 * the program was executed as), pidfiles in a mkdtemp directory, this
 * process itself, a reaped child and a zombie.
 */
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_host.h"
#include "procfs.h"

#define PROCESS_PLUGIN TEST_BUILD_PLUGIN_DIR "/troika-process.so"
#define MAX_CHILDREN 4

struct fixture {
	const struct troika_plugin *p;
	void *dl;
	struct fake_host *fh;
	void *state;
	char dir[64];
	char shortname[16];  /* <= 15 bytes: matched on comm */
	char longname[64];   /* > 15 bytes: matched on argv[0] */
	char shortlink[128];
	char longlink[128];
	pid_t children[MAX_CHILDREN];
	int nchildren;
};

static int
group_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->p = fake_host_load_plugin(PROCESS_PLUGIN, &f->dl);
	snprintf(f->dir, sizeof(f->dir), "/tmp/plugin_process_test.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	/* Unique per run, so other tests' processes never match. */
	snprintf(f->shortname, sizeof(f->shortname), "tkp%d", (int)getpid());
	snprintf(f->longname, sizeof(f->longname), "troika-long-sleeper-%d",
	    (int)getpid());
	snprintf(f->shortlink, sizeof(f->shortlink), "%s/%s", f->dir,
	    f->shortname);
	snprintf(f->longlink, sizeof(f->longlink), "%s/%s", f->dir,
	    f->longname);
	assert_int_equal(symlink("/bin/sleep", f->shortlink), 0);
	assert_int_equal(symlink("/bin/sleep", f->longlink), 0);
	*state = f;
	return 0;
}

static int
group_teardown(void **state)
{
	struct fixture *f = *state;
	char path[128];

	unlink(f->shortlink);
	unlink(f->longlink);
	snprintf(path, sizeof(path), "%s/test.pid", f->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/dir.pid", f->dir);
	rmdir(path);
	rmdir(f->dir);
	dlclose(f->dl);
	free(f);
	return 0;
}

static int
setup(void **state)
{
	struct fixture *f = *state;

	f->fh = fake_host_new(f->p->options);
	f->state = NULL;
	f->nchildren = 0;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < f->nchildren; i++) {
		kill(f->children[i], SIGKILL);
		waitpid(f->children[i], NULL, 0);
	}
	f->nchildren = 0;
	f->p->instance_free(f->state);
	f->state = NULL;
	assert_int_equal(fake_host_violations(f->fh), 0);
	fake_host_free(f->fh);
	f->fh = NULL;
	return 0;
}

/* Wait until pid's state is want (or, want 0, until it is not 'Z'). */
static void
wait_state(pid_t pid, char want)
{
	struct procfs_stats st;

	for (int i = 0; i < 200; i++) {
		if (procfs_stats(pid, &st) == 0 && st.state == want)
			return;
		usleep(10 * 1000);
	}
	fail_msg("process %d never reached state %c", (int)pid, want);
}

/* Start "sleep 30" as path, with argv[0] argv0; kept for teardown. */
static pid_t
start_child(struct fixture *f, const char *path, const char *argv0)
{
	char want[PATH_MAX];
	pid_t pid;

	assert_true(f->nchildren < MAX_CHILDREN);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl(path, argv0, "30", (char *)NULL);
		_exit(127);
	}
	f->children[f->nchildren++] = pid;
	/* Until the exec happened the child is a copy of this test. */
	assert_non_null(realpath("/bin/sleep", want));
	for (int i = 0; i < 400; i++) {
		char exe[PATH_MAX], p[64];
		ssize_t n;

		snprintf(p, sizeof(p), "/proc/%d/exe", (int)pid);
		if ((n = readlink(p, exe, sizeof(exe) - 1)) > 0) {
			exe[n] = '\0';
			if (strcmp(exe, want) == 0)
				return pid;
		}
		usleep(5 * 1000);
	}
	fail_msg("child %d did not exec %s", (int)pid, path);
	return -1;
}

static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

static void
set_pidfile_pid(struct fixture *f, pid_t pid)
{
	char path[128], text[32];

	snprintf(path, sizeof(path), "%s/test.pid", f->dir);
	snprintf(text, sizeof(text), "%d\n", (int)pid);
	write_file(path, text);
	fake_host_set_string(f->fh, "pidfile", path);
}

/* One run, as the worker pool would: check() reports before it returns. */
static const struct fake_result *
run_check(struct fixture *f)
{
	struct troika_task *task = fake_host_task(f->fh, 5000);
	unsigned before = fake_host_done_count(f->fh);
	const struct fake_result *r;

	fake_host_check(f->fh, f->p, f->state, task);
	assert_int_equal(fake_host_done_count(f->fh), before + 1);
	r = fake_host_last(f->fh);
	assert_ptr_equal(r->task, task);
	assert_non_null(r->message);
	assert_null(strchr(r->message, '\n'));
	assert_int_equal(fake_host_events_pending(f->fh), 0);
	return r;
}

static void
assert_contains(const char *haystack, const char *needle)
{
	if (haystack == NULL || strstr(haystack, needle) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"",
		    haystack != NULL ? haystack : "(null)", needle);
}

static double
sample_value(const struct fake_result *r, const char *name)
{
	const struct fake_sample *s = fake_result_sample(r, name, NULL, NULL);

	if (s == NULL)
		fail_msg("no sample %s", name);
	return s->value;
}

static void
test_descriptor(void **state)
{
	struct fixture *f = *state;

	assert_string_equal(f->p->name, "process");
	assert_int_equal(f->p->exec_model, TROIKA_EXEC_BLOCKING);
	assert_null(f->p->cancel);
	/* procfs is linked in statically but not exported. */
	assert_null(dlsym(f->dl, "procfs_stats"));
	assert_null(dlsym(f->dl, "procfs_find_by_name"));
}

static void
test_name_found(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	const struct fake_sample *s;
	char want[64];

	start_child(f, f->shortlink, f->shortname);
	start_child(f, f->shortlink, f->shortname);
	fake_host_set_string(f->fh, "process_name", f->shortname);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	snprintf(want, sizeof(want), "2 processes named %s, ", f->shortname);
	assert_contains(r->message, want);
	assert_contains(r->message, " MiB resident");
	assert_int_equal(r->nsamples, 5);
	assert_true(sample_value(r, "troika_process_up") == 1);
	assert_true(sample_value(r, "troika_process_num_procs") == 2);
	assert_true(sample_value(r, "troika_process_resident_memory_bytes") >
	    4096);
	/* stdin, stdout, stderr at least, in each of the two */
	assert_true(sample_value(r, "troika_process_open_fds") >= 6);
	s = fake_result_sample(r, "troika_process_cpu_seconds_total", NULL,
	    NULL);
	assert_non_null(s);
	assert_int_equal(s->type, TROIKA_METRIC_COUNTER);
	assert_true(s->value >= 0);
}

static void
test_name_below_min_count(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char want[96];

	start_child(f, f->shortlink, f->shortname);
	start_child(f, f->shortlink, f->shortname);
	fake_host_set_string(f->fh, "process_name", f->shortname);
	fake_host_set_int(f->fh, "min_count", 3);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	snprintf(want, sizeof(want),
	    "2 processes named %s, fewer than min_count 3", f->shortname);
	assert_string_equal(r->message, want);
	assert_true(sample_value(r, "troika_process_num_procs") == 2);
}

static void
test_name_none(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char want[64];

	fake_host_set_string(f->fh, "process_name", f->shortname);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	snprintf(want, sizeof(want), "no process named %s", f->shortname);
	assert_string_equal(r->message, want);
	assert_int_equal(r->nsamples, 2);
	assert_true(sample_value(r, "troika_process_up") == 0);
	assert_true(sample_value(r, "troika_process_num_procs") == 0);
}

static void
test_name_none_min_count_zero(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	fake_host_set_string(f->fh, "process_name", f->shortname);
	fake_host_set_int(f->fh, "min_count", 0);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_contains(r->message, "0 processes named");
	assert_true(sample_value(r, "troika_process_up") == 0);
}

static void
test_name_by_argv0(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char argv0[32], want[96];
	pid_t pid;

	/* comm is the link's name; argv[0] is another one. */
	snprintf(argv0, sizeof(argv0), "tka%d", (int)getpid());
	pid = start_child(f, f->shortlink, argv0);
	fake_host_set_string(f->fh, "process_name", argv0);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	snprintf(want, sizeof(want), "1 process named %s (pid %d), ", argv0,
	    (int)pid);
	assert_contains(r->message, want);
	assert_true(sample_value(r, "troika_process_num_procs") == 1);
}

static void
test_name_by_comm_and_argv0_counted_once(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	/* Both scans find this child: it must count once. */
	start_child(f, f->shortlink, f->shortname);
	fake_host_set_string(f->fh, "process_name", f->shortname);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_true(sample_value(r, "troika_process_num_procs") == 1);
}

static void
test_name_long(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	start_child(f, f->longlink, f->longlink);
	fake_host_set_string(f->fh, "process_name", f->longname);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_true(sample_value(r, "troika_process_num_procs") == 1);
}

static void
test_pidfile_self(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char want[160];

	set_pidfile_pid(f, getpid());
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	snprintf(want, sizeof(want), "1 process from %s/test.pid (pid %d), ",
	    f->dir, (int)getpid());
	assert_contains(r->message, want);
	assert_true(sample_value(r, "troika_process_up") == 1);
	assert_true(sample_value(r, "troika_process_num_procs") == 1);
	assert_true(sample_value(r, "troika_process_resident_memory_bytes") >
	    1024 * 1024);
	assert_true(sample_value(r, "troika_process_open_fds") >= 3);
	assert_true(sample_value(r, "troika_process_cpu_seconds_total") >= 0);
}

static void
test_pidfile_max_rss(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;

	set_pidfile_pid(f, getpid());
	fake_host_set_size(f->fh, "max_rss", 1024);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_WARNING);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_contains(r->message, "resident, above max_rss 0.0 MiB");
	assert_int_equal(r->nsamples, 5);
	f->p->instance_free(f->state);
	f->state = NULL;

	/* Far above what a test uses: OK again. */
	fake_host_set_size(f->fh, "max_rss", 64LL << 30);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_OK);
}

static void
test_pidfile_missing(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char path[128], want[160];

	snprintf(path, sizeof(path), "%s/missing.pid", f->dir);
	fake_host_set_string(f->fh, "pidfile", path);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	snprintf(want, sizeof(want), "pidfile %s does not exist", path);
	assert_string_equal(r->message, want);
	assert_int_equal(r->nsamples, 2);
	assert_true(sample_value(r, "troika_process_up") == 0);
}

static void
test_pidfile_garbage(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char path[128];

	snprintf(path, sizeof(path), "%s/test.pid", f->dir);
	write_file(path, "not a pid\n");
	fake_host_set_string(f->fh, "pidfile", path);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_NONE);
	assert_contains(r->message, "does not hold a PID");
}

static void
test_pidfile_unreadable(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char path[128];

	/* A directory: even root cannot read(2) it. */
	snprintf(path, sizeof(path), "%s/dir.pid", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	fake_host_set_string(f->fh, "pidfile", path);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f);
	rmdir(path);
	assert_int_equal(r->status, TROIKA_STATUS_UNKNOWN);
	assert_contains(r->message, "cannot read pidfile ");
	assert_contains(r->message, "Is a directory");
}

static void
test_pidfile_dead(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	char want[160];
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	set_pidfile_pid(f, pid);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	snprintf(want, sizeof(want), "process %d from %s/test.pid is not "
	    "running", (int)pid, f->dir);
	assert_string_equal(r->message, want);
	assert_true(sample_value(r, "troika_process_up") == 0);
}

static void
test_pidfile_zombie(void **state)
{
	struct fixture *f = *state;
	const struct fake_result *r;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	/* Not reaped yet: a zombie, which kill -0 would call alive. */
	wait_state(pid, 'Z');
	set_pidfile_pid(f, pid);
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	r = run_check(f);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	assert_int_equal(r->status, TROIKA_STATUS_CRITICAL);
	assert_int_equal(r->evidence, TROIKA_EVIDENCE_CERTAIN);
	assert_contains(r->message, "has exited (state Z)");
	assert_true(sample_value(r, "troika_process_num_procs") == 0);
}

struct worker_arg {
	const struct troika_plugin *p;
	void *state;
	struct troika_task *task;
};

static void *
worker_main(void *arg)
{
	struct worker_arg *w = arg;

	w->p->check(w->state, w->task);
	return NULL;
}

static void
test_check_on_worker_thread(void **state)
{
	struct fixture *f = *state;
	struct worker_arg w;
	pthread_t th;

	/* As the host runs it: on another thread, reporting from there. */
	set_pidfile_pid(f, getpid());
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state), 0);
	w.p = f->p;
	w.state = f->state;
	w.task = fake_host_task(f->fh, 5000);
	assert_int_equal(pthread_create(&th, NULL, worker_main, &w), 0);
	assert_int_equal(fake_host_wait_done(f->fh, 1, 5000), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(fake_host_last(f->fh)->status, TROIKA_STATUS_OK);
}

static void
test_both_or_neither(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_int_equal(fake_host_log_last_level(f->fh), TROIKA_LOG_ERR);
	assert_string_equal(fake_host_log_last(f->fh),
	    "exactly one of pidfile and name must be set, found neither");
	fake_host_set_string(f->fh, "process_name", "sshd");
	fake_host_set_string(f->fh, "pidfile", "/run/sshd.pid");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_string_equal(fake_host_log_last(f->fh),
	    "exactly one of pidfile and name must be set, not both");
	assert_null(f->state);
}

static void
test_bad_values(void **state)
{
	struct fixture *f = *state;

	fake_host_set_string(f->fh, "pidfile", "run/sshd.pid");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_contains(fake_host_log_last(f->fh), "is not an absolute path");
	fake_host_unset(f->fh, "pidfile");

	fake_host_set_string(f->fh, "process_name", "/usr/sbin/sshd");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_contains(fake_host_log_last(f->fh), "without '/'");
	fake_host_set_string(f->fh, "process_name", "");
	assert_int_equal(fake_host_instance_new(f->fh, f->p, &f->state),
	    -EINVAL);
	assert_int_equal(fake_host_log_count(f->fh), 3);
	assert_null(f->state);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_descriptor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_name_found, setup, teardown),
		cmocka_unit_test_setup_teardown(test_name_below_min_count, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_name_none, setup, teardown),
		cmocka_unit_test_setup_teardown(test_name_none_min_count_zero,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_name_by_argv0, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_name_by_comm_and_argv0_counted_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_name_long, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pidfile_self, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_pidfile_max_rss, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_pidfile_missing, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_pidfile_garbage, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_pidfile_unreadable, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_pidfile_dead, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_pidfile_zombie, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_check_on_worker_thread,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_both_or_neither, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
