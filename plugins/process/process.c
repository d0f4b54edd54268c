/*
 * process: is a process running, found through its pidfile or by name;
 * how many, and what they use (memory, CPU, descriptors) from /proc.
 *
 * Blocking: reading /proc is file I/O that can stall (a process in D
 * state holds its /proc entries' locks), so the host runs check() on its
 * worker pool; check() reports before it returns.
 *
 * Evidence: no process, a dead PID in the pidfile or a zombie is certain;
 * so is memory above max_rss (a measured fact, not a timing).
 */
#include <sys/types.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <troika/plugin.h>

#include "procfs.h"

/* PIDs looked at first; more are fetched when there are more matches. */
#define PROCESS_PIDS_START 64

struct process_check {
	const struct troika_host *host;
	struct troika_instance *inst;
	char *pidfile; /* exactly one of pidfile and name is set */
	char *name;
	int64_t min_count;
	int64_t max_rss; /* 0: no limit */
};

/* Sums over the matched processes. */
struct process_totals {
	size_t count;
	uint64_t rss_bytes;
	double cpu_seconds;
	uint64_t open_fds;
	pid_t first_pid;
};

static const struct troika_option process_options[] = {
	{ .name = "pidfile", .type = TROIKA_OPT_STRING,
	    .help = "absolute path of a file holding the PID (or use name)" },
	{ .name = "process_name", .type = TROIKA_OPT_STRING,
	    .help = "process name: comm, or argv[0] without its directory" },
	{ .name = "min_count", .type = TROIKA_OPT_INT, .default_value = "1",
	    .min = 0, .max = 100000,
	    .help = "fewest matching processes that are OK" },
	{ .name = "max_rss", .type = TROIKA_OPT_SIZE, .min = 1,
	    .max = INT64_MAX,
	    .help = "WARNING when the resident memory of all matches is above" },
	{ .name = NULL },
};

static void
process_instance_free(void *state)
{
	struct process_check *p = state;

	if (p == NULL)
		return;
	free(p->pidfile);
	free(p->name);
	free(p);
}

static int
process_instance_new(const struct troika_host *host,
    struct troika_instance *inst, void **ret_state)
{
	struct process_check *p;
	int has_pidfile = host->opt_isset(inst, "pidfile");
	int has_name = host->opt_isset(inst, "process_name");
	int r;

	if (has_pidfile == has_name) {
		host->log(inst, TROIKA_LOG_ERR, "exactly one of pidfile and name "
		    "must be set, %s", has_name ? "not both" : "found neither");
		return -EINVAL;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return -ENOMEM;
	p->host = host;
	p->inst = inst;
	if (has_pidfile) {
		const char *s = host->opt_string(inst, "pidfile");

		/* The agent's working directory is nothing to rely on. */
		if (s == NULL || s[0] != '/') {
			host->log(inst, TROIKA_LOG_ERR, "pidfile \"%s\" is not "
			    "an absolute path", s != NULL ? s : "");
			r = -EINVAL;
			goto fail;
		}
		if ((p->pidfile = strdup(s)) == NULL) {
			r = -ENOMEM;
			goto fail;
		}
	} else {
		const char *s = host->opt_string(inst, "process_name");

		if (s == NULL || s[0] == '\0' || strchr(s, '/') != NULL) {
			host->log(inst, TROIKA_LOG_ERR, "process_name \"%s\" must be a "
			    "process name without '/' (comm, or argv[0] "
			    "without its directory)", s != NULL ? s : "");
			r = -EINVAL;
			goto fail;
		}
		if ((p->name = strdup(s)) == NULL) {
			r = -ENOMEM;
			goto fail;
		}
	}
	p->min_count = host->opt_int(inst, "min_count");
	if (host->opt_isset(inst, "max_rss"))
		p->max_rss = host->opt_size(inst, "max_rss");
	*ret_state = p;
	return 0;

fail:
	process_instance_free(p);
	return r;
}

static void
process_report(struct process_check *p, struct troika_task *task,
    const struct process_totals *tot, enum troika_status status,
    enum troika_evidence evidence, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Report a result with the samples of tot. */
static void
process_report(struct process_check *p, struct troika_task *task,
    const struct process_totals *tot, enum troika_status status,
    enum troika_evidence evidence, const char *fmt, ...)
{
	struct troika_sample samples[5] = {
		{ .name = "troika_process_up",
		    .help = "1 if at least one matching process runs",
		    .type = TROIKA_METRIC_GAUGE,
		    .value = tot->count > 0 ? 1 : 0 },
		{ .name = "troika_process_num_procs",
		    .help = "Matching processes",
		    .type = TROIKA_METRIC_GAUGE,
		    .value = (double)tot->count },
		{ .name = "troika_process_resident_memory_bytes",
		    .help = "Resident memory of the matching processes",
		    .type = TROIKA_METRIC_GAUGE,
		    .value = (double)tot->rss_bytes },
		{ .name = "troika_process_cpu_seconds_total",
		    .help = "User and system CPU time of the matching processes",
		    .type = TROIKA_METRIC_COUNTER,
		    .value = tot->cpu_seconds },
		{ .name = "troika_process_open_fds",
		    .help = "Open descriptors of the matching processes",
		    .type = TROIKA_METRIC_GAUGE,
		    .value = (double)tot->open_fds },
	};
	struct troika_result res = {
		.size = sizeof(res),
		.status = status,
		.evidence = evidence,
		.samples = samples,
		/* Usage figures only exist when something was found. */
		.nsamples = tot->count > 0 ? 5 : 2,
	};
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	res.message = msg;
	p->host->check_done(task, &res);
}

/*
 * Add one PID to the totals. A process that exited meanwhile, or is a
 * zombie, is not counted; any other error is returned.
 */
static int
process_add(struct process_totals *tot, pid_t pid, char *ret_state)
{
	struct procfs_stats st;
	int r;

	*ret_state = '\0';
	if ((r = procfs_stats(pid, &st)) < 0)
		return r == -ESRCH ? -ENOENT : r;
	*ret_state = st.state;
	if (st.state == 'Z' || st.state == 'X')
		return 0;
	if (tot->count == 0)
		tot->first_pid = pid;
	tot->count++;
	tot->rss_bytes += st.rss_bytes;
	tot->cpu_seconds += st.cpu_seconds;
	tot->open_fds += st.open_fds;
	return 0;
}

static double
process_mib(uint64_t bytes)
{
	return (double)bytes / (1024.0 * 1024.0);
}

/* The verdict on totals found: count, then memory. */
static void
process_judge(struct process_check *p, struct troika_task *task,
    const struct process_totals *tot, const char *what)
{
	if (tot->count < (size_t)p->min_count) {
		if (tot->count == 0)
			process_report(p, task, tot, TROIKA_STATUS_CRITICAL,
			    TROIKA_EVIDENCE_CERTAIN, "no process %s", what);
		else
			process_report(p, task, tot, TROIKA_STATUS_CRITICAL,
			    TROIKA_EVIDENCE_CERTAIN, "%zu process%s %s, fewer "
			    "than min_count %lld", tot->count,
			    tot->count == 1 ? "" : "es", what,
			    (long long)p->min_count);
		return;
	}
	if (p->max_rss > 0 && tot->rss_bytes > (uint64_t)p->max_rss) {
		process_report(p, task, tot, TROIKA_STATUS_WARNING,
		    TROIKA_EVIDENCE_CERTAIN, "%zu process%s %s use %.1f MiB "
		    "resident, above max_rss %.1f MiB", tot->count,
		    tot->count == 1 ? "" : "es", what,
		    process_mib(tot->rss_bytes),
		    process_mib((uint64_t)p->max_rss));
		return;
	}
	if (tot->count == 1)
		process_report(p, task, tot, TROIKA_STATUS_OK,
		    TROIKA_EVIDENCE_NONE, "1 process %s (pid %d), %.1f MiB "
		    "resident", what, (int)tot->first_pid,
		    process_mib(tot->rss_bytes));
	else
		process_report(p, task, tot, TROIKA_STATUS_OK,
		    TROIKA_EVIDENCE_NONE, "%zu processes %s, %.1f MiB resident",
		    tot->count, what, process_mib(tot->rss_bytes));
}

static void
process_check_pidfile(struct process_check *p, struct troika_task *task)
{
	struct process_totals tot = { 0 };
	char what[600], state;
	pid_t pid;
	int r;

	if ((r = procfs_read_pidfile(p->pidfile, &pid)) < 0) {
		if (r == -ENOENT)
			process_report(p, task, &tot, TROIKA_STATUS_CRITICAL,
			    TROIKA_EVIDENCE_CERTAIN, "pidfile %s does not exist",
			    p->pidfile);
		else if (r == -EINVAL)
			process_report(p, task, &tot, TROIKA_STATUS_UNKNOWN,
			    TROIKA_EVIDENCE_NONE, "pidfile %s does not hold a "
			    "PID", p->pidfile);
		else
			process_report(p, task, &tot, TROIKA_STATUS_UNKNOWN,
			    TROIKA_EVIDENCE_NONE, "cannot read pidfile %s: %s",
			    p->pidfile, strerror(-r));
		return;
	}
	if ((r = process_add(&tot, pid, &state)) < 0) {
		if (r == -ENOENT)
			process_report(p, task, &tot, TROIKA_STATUS_CRITICAL,
			    TROIKA_EVIDENCE_CERTAIN, "process %d from %s is not "
			    "running", (int)pid, p->pidfile);
		else
			process_report(p, task, &tot, TROIKA_STATUS_UNKNOWN,
			    TROIKA_EVIDENCE_NONE, "cannot read /proc/%d: %s",
			    (int)pid, strerror(-r));
		return;
	}
	if (tot.count == 0) {
		/* It exited and its parent has not reaped it (yet). */
		process_report(p, task, &tot, TROIKA_STATUS_CRITICAL,
		    TROIKA_EVIDENCE_CERTAIN, "process %d from %s has exited "
		    "(state %c)", (int)pid, p->pidfile, state);
		return;
	}
	snprintf(what, sizeof(what), "from %s", p->pidfile);
	process_judge(p, task, &tot, what);
}

static int
process_pid_cmp(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	return (x > y) - (x < y);
}

/*
 * Append the PIDs matching name (by comm, or by argv[0] when cmdline) to
 * *pids, growing it as needed. Returns 0 or a negative errno.
 */
static int
process_find(const char *name, int cmdline, pid_t **pids, size_t *n,
    size_t *cap)
{
	for (;;) {
		int found = procfs_find_by_name(name, cmdline, *pids + *n,
		    *cap - *n);
		pid_t *grown;

		if (found < 0)
			return found;
		if ((size_t)found <= *cap - *n) {
			*n += (size_t)found;
			return 0;
		}
		/* More than room: grow with some slack and scan again. */
		if ((grown = realloc(*pids, (*n + (size_t)found + 16) *
		    sizeof(**pids))) == NULL)
			return -ENOMEM;
		*pids = grown;
		*cap = *n + (size_t)found + 16;
	}
}

static void
process_check_name(struct process_check *p, struct troika_task *task)
{
	struct process_totals tot = { 0 };
	size_t n = 0, cap = PROCESS_PIDS_START, i;
	pid_t *pids;
	char what[300], state;
	int r;

	if ((pids = malloc(cap * sizeof(*pids))) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	/*
	 * comm first; then argv[0], for programs that rename their thread
	 * or are started through a link. A name longer than comm holds is
	 * matched on argv[0] already by the first scan.
	 */
	if ((r = process_find(p->name, 0, &pids, &n, &cap)) < 0)
		goto fail;
	if (strlen(p->name) <= 15 &&
	    (r = process_find(p->name, 1, &pids, &n, &cap)) < 0)
		goto fail;
	qsort(pids, n, sizeof(*pids), process_pid_cmp);
	for (i = 0; i < n; i++) {
		if (i > 0 && pids[i] == pids[i - 1])
			continue;
		r = process_add(&tot, pids[i], &state);
		if (r == -ENOENT)
			continue; /* it exited since the scan */
		if (r < 0)
			goto fail;
	}
	free(pids);
	snprintf(what, sizeof(what), "named %s", p->name);
	process_judge(p, task, &tot, what);
	return;

fail:
	free(pids);
	memset(&tot, 0, sizeof(tot));
	process_report(p, task, &tot, TROIKA_STATUS_UNKNOWN,
	    TROIKA_EVIDENCE_NONE, "cannot scan /proc for %s: %s", p->name,
	    strerror(-r));
}

static void
process_check(void *state, struct troika_task *task)
{
	struct process_check *p = state;

	if (p->pidfile != NULL)
		process_check_pidfile(p, task);
	else
		process_check_name(p, task);
}

static const struct troika_plugin process_plugin = {
	.abi_major = TROIKA_PLUGIN_ABI_MAJOR,
	.abi_minor = TROIKA_PLUGIN_ABI_MINOR,
	.size = sizeof(struct troika_plugin),
	.name = "process",
	.version = TROIKA_VERSION,
	.description = "process by pidfile or name: count, memory, CPU, fds",
	.exec_model = TROIKA_EXEC_BLOCKING,
	.options = process_options,
	.instance_new = process_instance_new,
	.instance_free = process_instance_free,
	.check = process_check,
	.cancel = NULL,
};

__attribute__((visibility("default"))) const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void);

const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void)
{
	return &process_plugin;
}
