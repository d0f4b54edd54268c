/*
 * Actions of the mysql plugin: the facts and moves a Galera recovery is
 * made of. The coordinator decides; these only do what they are told,
 * and refuse what would be unsafe.
 *
 *   position   cluster uuid and seqno: from the running server; when it
 *              is down, from datadir/grastate.dat, and when that says -1
 *              (a crash), from `mariadbd --wsrep-recover`.
 *   bootstrap  only when the server is down: find the position as above,
 *              set safe_to_bootstrap: 1 in grastate.dat, and run
 *              bootstrap_command with --wsrep-new-cluster
 *              --wsrep_start_position=<uuid>:<seqno> appended; then wait
 *              until the server is Primary and ready.
 *              `bootstrap in-place` is the other case: only a running
 *              non-Primary server, made Primary where it stands with
 *              pc.bootstrap=YES (its members stay connected to it, so a
 *              restart would only lose them); never a restart.
 *   desync     on|off: SET GLOBAL wsrep_desync.
 *   start, restart, stop
 *              through host->service_control() (the check's `service:`),
 *              start and restart then wait until the server answers;
 *              `start nowait` does not (a member of a cluster with no
 *              Primary does not answer until one forms, which may need
 *              the next member started too).
 *              Before a start (or the restart of a server that is down)
 *              after a crash, the recovered position is written into
 *              grastate.dat, so the node starts from it and rejoins by
 *              IST, not SST: a service manager cannot pass
 *              --wsrep_start_position, but Galera reads its starting
 *              position from grastate.dat.
 *
 * "Down" is decided by the datadir, not by the network: a server that does
 * not answer may still be running (hung, or starting). InnoDB holds a lock
 * on ibdata1 for as long as a mariadbd uses the datadir, so a datadir
 * nobody holds has no server, and is safe to read, recover and bootstrap.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>

#include "mysql_plugin.h"

/* Output kept of a --wsrep-recover run or of bootstrap_command. */
#define RECOVER_OUTPUT_MAX (256 * 1024)
#define COMMAND_OUTPUT_MAX (16 * 1024)
/* The probe of a running server takes at most this much of the budget. */
#define PROBE_MAX_MS 3000
/* Bootstrap: between two looks at the starting server. */
#define POLL_INTERVAL_MS 250

const struct troika_action mysql_actions[] = {
	{ .name = "position", .min_args = 0, .max_args = 0,
	    .help = "cluster uuid and seqno: from the server, or from "
	    "grastate.dat / --wsrep-recover when it is down" },
	{ .name = "bootstrap", .usage = "[in-place]", .min_args = 0,
	    .max_args = 1,
	    .help = "start this node as a new cluster at its position; only "
	    "when the server is down (in-place: only a running non-Primary "
	    "server, made Primary with pc.bootstrap=YES)" },
	{ .name = "desync", .usage = "on|off", .min_args = 1, .max_args = 1,
	    .help = "SET GLOBAL wsrep_desync" },
	{ .name = "start", .usage = "[nowait]", .min_args = 0, .max_args = 1,
	    .help = "start through the service manager, at the recovered "
	    "position after a crash; nowait: do not wait for it to answer" },
	{ .name = "stop", .min_args = 0, .max_args = 0,
	    .help = "stop through the service manager" },
	{ .name = "restart", .min_args = 0, .max_args = 0,
	    .help = "restart through the service manager" },
	{ .name = NULL },
};

static void mysql_after_position(struct mysql_run *run);

static const char *
mysql_job_op(enum mysql_job job)
{
	switch (job) {
	case MYSQL_JOB_START:
		return "start";
	case MYSQL_JOB_STOP:
		return "stop";
	case MYSQL_JOB_RESTART:
		return "restart";
	case MYSQL_JOB_POSITION:
		return "position";
	case MYSQL_JOB_BOOTSTRAP:
		return "bootstrap";
	case MYSQL_JOB_DESYNC:
		return "desync";
	case MYSQL_JOB_CHECK:
		break;
	}
	return "check";
}

/* Fail the action now: the result goes out from the loop. */
static void
mysql_fail(struct mysql_run *run, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
mysql_fail(struct mysql_run *run, const char *fmt, ...)
{
	va_list ap;

	run->out.status = TROIKA_STATUS_CRITICAL;
	run->out.evidence = TROIKA_EVIDENCE_NONE;
	va_start(ap, fmt);
	vsnprintf(run->out.msg, sizeof(run->out.msg), fmt, ap);
	va_end(ap);
	mysql_report_later(run);
}

static void
mysql_position_fields(struct mysql_run *run)
{
	mysql_field(run, "cluster_uuid", "%s", run->pos.uuid);
	mysql_field(run, "seqno", "%" PRId64, run->pos.seqno);
	mysql_field(run, "source", "%s", run->pos_source);
	if (run->pos.safe_to_bootstrap >= 0)
		mysql_field(run, "safe_to_bootstrap", "%d",
		    run->pos.safe_to_bootstrap);
}

/* ---- service manager ---- */

static void mysql_wait_up(struct mysql_run *run);

static void
mysql_service_done(int ok, const char *message, void *arg)
{
	struct mysql_ticket *ticket = arg;
	struct mysql_run *run = ticket->run;

	for (struct mysql_ticket **pp = &ticket->m->tickets; *pp != NULL;
	    pp = &(*pp)->next)
		if (*pp == ticket) {
			*pp = ticket->next;
			break;
		}
	free(ticket);
	if (run == NULL)
		return; /* the run was cancelled meanwhile */
	run->ticket = NULL;
	if (message == NULL)
		message = ok ? "done" : "failed";
	if (!ok || run->job == MYSQL_JOB_STOP) {
		mysql_set_result(run, ok ? TROIKA_STATUS_OK :
		    TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_NONE, "%s: %s",
		    mysql_job_op(run->job), message);
		mysql_report(run);
		return;
	}
	if (run->nowait) {
		mysql_set_result(run, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE,
		    "%s: %s; not waiting for the server to answer",
		    mysql_job_op(run->job), message);
		mysql_report(run);
		return;
	}
	/* Started: done once the server answers. */
	snprintf(run->service_msg, sizeof(run->service_msg), "%s", message);
	mysql_wait_up(run);
}

static void
mysql_service(struct mysql_run *run, const char *op)
{
	struct mysql_check *m = run->m;
	struct mysql_ticket *ticket;
	int r;

	if ((ticket = calloc(1, sizeof(*ticket))) == NULL) {
		mysql_fail(run, "out of memory");
		return;
	}
	ticket->m = m;
	ticket->run = run;
	ticket->next = m->tickets;
	m->tickets = ticket;
	run->ticket = ticket;
	r = m->host->service_control(m->inst, op, mysql_run_left_ms(run),
	    mysql_service_done, ticket);
	if (r < 0) {
		m->tickets = ticket->next;
		run->ticket = NULL;
		free(ticket);
		if (r == -ENOENT)
			mysql_fail(run, "no service manager configured for "
			    "this check");
		else
			mysql_fail(run, "service manager: %s", strerror(-r));
	}
}

/* ---- the position of a stopped server ---- */

/* A temporary file mariadbd (running as the datadir's owner) can write. */
static int
mysql_recover_log(struct mysql_run *run)
{
	const char *tmp = getenv("TMPDIR");
	struct stat st;
	int fd, n;

	if (tmp == NULL || tmp[0] != '/')
		tmp = "/tmp";
	n = snprintf(run->recover_log, sizeof(run->recover_log),
	    "%s/troika-wsrep-recover-XXXXXX.log", tmp);
	if (n < 0 || (size_t)n >= sizeof(run->recover_log)) {
		run->recover_log[0] = '\0';
		return -ENAMETOOLONG;
	}
	/* With an extension: mariadbd appends ".err" to a name without. */
	if ((fd = mkostemps(run->recover_log, 4, O_CLOEXEC)) == -1) {
		run->recover_log[0] = '\0';
		return -errno;
	}
	if (stat(run->m->datadir, &st) == 0 &&
	    fchown(fd, st.st_uid, st.st_gid) == -1 && errno != EPERM) {
		n = -errno;
		close(fd);
		unlink(run->recover_log);
		run->recover_log[0] = '\0';
		return n;
	}
	close(fd);
	return 0;
}

/* The recovery log, bounded; NULL if it cannot be read. */
static char *
mysql_read_log(const char *path, size_t *ret_len)
{
	char *buf;
	size_t len = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return NULL;
	if ((buf = malloc(RECOVER_OUTPUT_MAX + 1)) == NULL) {
		close(fd);
		return NULL;
	}
	while (len < RECOVER_OUTPUT_MAX) {
		n = read(fd, buf + len, RECOVER_OUTPUT_MAX - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	*ret_len = len;
	return buf;
}

static void
mysql_recover_done(const struct troika_spawn_result *res, void *arg)
{
	struct mysql_run *run = arg;
	struct mysql_check *m = run->m;
	struct galera_state rec;
	char *log = NULL, why[200] = "";
	size_t loglen = 0;
	int found = -ENOENT;

	run->spawn = NULL;
	if (run->recover_log[0] != '\0') {
		log = mysql_read_log(run->recover_log, &loglen);
		unlink(run->recover_log);
		run->recover_log[0] = '\0';
	}
	/* The log file, or stderr when mariadbd could not open the file. */
	if (log != NULL)
		found = galera_parse_recovered(log, loglen, &rec);
	if (found < 0 && res->output != NULL)
		found = galera_parse_recovered(res->output, res->output_len,
		    &rec);
	if (log != NULL)
		galera_last_error(log, loglen, why, sizeof(why));
	if (why[0] == '\0' && res->output != NULL)
		galera_last_error(res->output, res->output_len, why,
		    sizeof(why));
	free(log);
	if (res->spawn_errno != 0) {
		mysql_fail(run, "cannot run %s: %s", m->mariadbd,
		    strerror(res->spawn_errno));
		return;
	}
	if (res->timed_out) {
		mysql_fail(run, "%s --wsrep-recover did not finish within "
		    "%.0f ms", m->mariadbd, (double)res->duration_us / 1000);
		return;
	}
	if (found < 0) {
		if (res->exited)
			mysql_fail(run, "%s --wsrep-recover found no position "
			    "(exit %d)%s%s", m->mariadbd, res->exit_code,
			    why[0] != '\0' ? ": " : "", why);
		else
			mysql_fail(run, "%s --wsrep-recover was killed by "
			    "signal %d%s%s", m->mariadbd, res->signal,
			    why[0] != '\0' ? ": " : "", why);
		return;
	}
	memcpy(run->pos.uuid, rec.uuid, sizeof(run->pos.uuid));
	run->pos.seqno = rec.seqno;
	run->pos_source = "wsrep-recover";
	mysql_after_position(run);
}

static void
mysql_recover(struct mysql_run *run)
{
	struct mysql_check *m = run->m;
	char defaults[4200], logopt[300];
	const char *argv[6];
	int r;

	if (m->defaults_file == NULL) {
		mysql_fail(run, "grastate.dat says seqno -1 (the server "
		    "crashed), and no defaults_file is configured to run "
		    "--wsrep-recover with");
		return;
	}
	if ((r = mysql_recover_log(run)) < 0) {
		mysql_fail(run, "cannot create a file for the recovery log: %s",
		    strerror(-r));
		return;
	}
	/* --defaults-file must come first, or mariadbd ignores it. */
	snprintf(defaults, sizeof(defaults), "--defaults-file=%s",
	    m->defaults_file);
	snprintf(logopt, sizeof(logopt), "--log-error=%s", run->recover_log);
	argv[0] = m->mariadbd;
	argv[1] = defaults;
	argv[2] = "--wsrep-recover";
	argv[3] = logopt;
	argv[4] = NULL;
	run->spawn = m->host->spawn(m->inst, argv, mysql_run_left_ms(run),
	    RECOVER_OUTPUT_MAX, mysql_recover_done, run);
	if (run->spawn == NULL)
		mysql_fail(run, "cannot run %s: %s", m->mariadbd,
		    strerror(errno));
}

/*
 * The server does not answer: decide from the datadir whether it is down,
 * and if so find its position (grastate.dat, then --wsrep-recover), then
 * go on with mysql_after_position().
 */
static void
mysql_offline(struct mysql_run *run)
{
	struct mysql_check *m = run->m;
	const char *op = mysql_job_op(run->job);
	int service = run->job == MYSQL_JOB_START ||
	    run->job == MYSQL_JOB_RESTART;
	char err[300] = "";
	pid_t pid;
	int r;

	if (m->datadir == NULL) {
		mysql_fail(run, "%s: %s does not answer (%s), and no datadir "
		    "is configured to find the position in", op, m->where,
		    run->conn_out.message);
		return;
	}
	r = galera_datadir_locked(m->datadir, &pid);
	if (r == 1 && run->job == MYSQL_JOB_RESTART) {
		/* Not answering, but there: what a restart is for. */
		mysql_service(run, "restart");
		return;
	}
	if (r == 1) {
		char who[32] = "";

		if (pid > 0)
			snprintf(who, sizeof(who), " (pid %ld)", (long)pid);
		mysql_fail(run, "%s: a mariadbd%s holds %s, but %s does not "
		    "answer (%s)", op, who, m->datadir, m->where,
		    run->conn_out.message);
		return;
	}
	if (r == -ENOENT && service) {
		mysql_service(run, op); /* no data yet: nothing to recover */
		return;
	}
	if (r < 0) {
		mysql_fail(run, "%s: no position: cannot open %s/ibdata1: %s",
		    op, m->datadir, strerror(-r));
		return;
	}
	r = galera_grastate_read(m->datadir, &run->pos, err, sizeof(err));
	if (r < 0 && service) {
		/* A joiner without state, or a state Galera will judge. */
		m->host->log(m->inst, TROIKA_LOG_WARNING, "%s: starting "
		    "without a recovered position: %s", op, err);
		mysql_service(run, op);
		return;
	}
	if (r < 0) {
		mysql_fail(run, "%s: no position: %s", op, err);
		return;
	}
	if (run->pos.seqno != GALERA_SEQNO_UNDEFINED) {
		run->pos_source = "grastate";
		mysql_after_position(run);
		return;
	}
	mysql_recover(run);
}

/* ---- waiting for a started server ---- */

/*
 * Whether the server is up as the job needs it: a bootstrapped node must
 * be Primary and ready, a started one just answer (a joiner may take a
 * while to be Synced, and the check says how it is).
 */
static int
mysql_is_up(const struct mysql_run *run, const struct myconn_outcome *o)
{
	const struct mysql_facts *f = &run->facts;

	if (!o->ok)
		return 0;
	if (run->job != MYSQL_JOB_BOOTSTRAP)
		return 1;
	return strcmp(f->cluster_status, "Primary") == 0 && f->ready == 1;
}

static void
mysql_up_result(struct mysql_run *run)
{
	const struct mysql_facts *f = &run->facts;
	const char *state = f->local_state_comment[0] != '\0' ?
	    f->local_state_comment : "no wsrep status";

	if (f->cluster_status[0] != '\0')
		mysql_field(run, "wsrep_cluster_status", "%s",
		    f->cluster_status);
	if (f->local_state_comment[0] != '\0')
		mysql_field(run, "wsrep_local_state_comment", "%s",
		    f->local_state_comment);
	if (run->job == MYSQL_JOB_BOOTSTRAP)
		mysql_set_result(run, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE,
		    "bootstrapped %sat %s:%" PRId64 ": %s, %s, cluster size "
		    "%lld", run->in_place ? "in place " : "", run->pos.uuid,
		    run->pos.seqno, f->cluster_status, state,
		    (long long)f->cluster_size);
	else if (f->cluster_status[0] != '\0')
		mysql_set_result(run, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE,
		    "%s: %s; the server answers (%s, %s)",
		    mysql_job_op(run->job), run->service_msg, f->cluster_status,
		    state);
	else
		mysql_set_result(run, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE,
		    "%s: %s; the server answers", mysql_job_op(run->job),
		    run->service_msg);
}

static void
mysql_wait_up_done(void *arg, struct myconn *c, const struct myconn_outcome *o)
{
	struct mysql_run *run = arg;
	const struct mysql_facts *f = &run->facts;
	struct timeval tv = { 0, POLL_INTERVAL_MS * 1000 };

	run->conn_out = *o;
	myconn_free(c); /* o was inside c */
	run->conn = NULL;
	o = &run->conn_out;
	if (mysql_is_up(run, o)) {
		mysql_up_result(run);
		mysql_report(run);
		return;
	}
	if (mysql_run_left_ms(run) <= POLL_INTERVAL_MS) {
		const char *last = o->ok ? (f->cluster_status[0] != '\0' ?
		    f->cluster_status : "no wsrep status") : o->message;

		if (run->in_place)
			mysql_set_result(run, TROIKA_STATUS_UNKNOWN,
			    TROIKA_EVIDENCE_NONE, "bootstrap in-place: "
			    "pc.bootstrap=YES was set at %s:%" PRId64 ", but the "
			    "server was not Primary and ready in time (last "
			    "look: %s)", run->pos.uuid, run->pos.seqno, last);
		else if (run->job == MYSQL_JOB_BOOTSTRAP)
			mysql_set_result(run, TROIKA_STATUS_UNKNOWN,
			    TROIKA_EVIDENCE_NONE, "bootstrap_command started "
			    "the server at %s:%" PRId64 ", but it was not "
			    "Primary and ready in time (last look: %s)",
			    run->pos.uuid, run->pos.seqno, last);
		else
			mysql_set_result(run, TROIKA_STATUS_UNKNOWN,
			    TROIKA_EVIDENCE_NONE, "%s: %s; but the server did "
			    "not answer in time (last look: %s)",
			    mysql_job_op(run->job), run->service_msg, last);
		mysql_report(run);
		return;
	}
	if (evtimer_add(run->m->poll, &tv) == -1) {
		mysql_set_result(run, TROIKA_STATUS_UNKNOWN,
		    TROIKA_EVIDENCE_NONE, "cannot add a timer");
		mysql_report(run);
	}
}

/* Look at the server until it is up (mysql_is_up) or time runs out. */
static void
mysql_wait_up(struct mysql_run *run)
{
	const char *q[1] = { mysql_q_status };
	int64_t left = mysql_run_left_ms(run);
	int r;

	run->polls++;
	r = mysql_connect(run, q, 1, left < 1000 ? (left > 0 ? left : 1) : 1000,
	    mysql_wait_up_done);
	if (r < 0) {
		mysql_set_result(run, TROIKA_STATUS_UNKNOWN,
		    TROIKA_EVIDENCE_NONE, "cannot start a connection: %s",
		    strerror(-r));
		mysql_report_later(run);
	}
}

void
mysql_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mysql_check *m = arg;

	(void)fd;
	(void)what;
	if (m->run != NULL)
		mysql_wait_up(m->run);
}

/* ---- bootstrap ---- */

/* The first line of a command's output, for a message. */
static void
mysql_first_line(const struct troika_spawn_result *res, char *out,
    size_t outlen)
{
	size_t n = 0;

	out[0] = '\0';
	if (res->output == NULL)
		return;
	while (n + 1 < outlen && n < res->output_len &&
	    res->output[n] != '\n') {
		unsigned char ch = (unsigned char)res->output[n];

		out[n] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
		n++;
	}
	out[n] = '\0';
}

static void
mysql_bootstrap_command_done(const struct troika_spawn_result *res, void *arg)
{
	struct mysql_run *run = arg;
	char line[200];

	run->spawn = NULL;
	mysql_first_line(res, line, sizeof(line));
	if (res->spawn_errno != 0) {
		mysql_fail(run, "cannot run bootstrap_command: %s",
		    strerror(res->spawn_errno));
		return;
	}
	if (res->timed_out) {
		/* It may well have started the server: not a plain failure. */
		mysql_set_result(run, TROIKA_STATUS_UNKNOWN,
		    TROIKA_EVIDENCE_NONE, "bootstrap_command did not return "
		    "in time; it must start the server in the background and "
		    "exit");
		mysql_report_later(run);
		return;
	}
	if (!res->exited || res->exit_code != 0) {
		if (res->exited)
			mysql_fail(run, "bootstrap_command failed (exit %d)%s%s",
			    res->exit_code, line[0] != '\0' ? ": " : "", line);
		else
			mysql_fail(run, "bootstrap_command was killed by "
			    "signal %d", res->signal);
		return;
	}
	mysql_wait_up(run);
}

static void
mysql_bootstrap_start(struct mysql_run *run)
{
	struct mysql_check *m = run->m;
	const struct troika_host *h = m->host;
	char pos[GALERA_UUID_LEN + 64], err[300];
	const char **argv;
	size_t n = m->bootstrap_argc;
	int r;

	if (galera_uuid_nil(run->pos.uuid) || run->pos.seqno < 0) {
		mysql_fail(run, "refusing to bootstrap: no position (%s:%"
		    PRId64 " from %s); a bootstrap now would start a new "
		    "history and force a full state transfer on every other "
		    "node", run->pos.uuid, run->pos.seqno, run->pos_source);
		return;
	}
	if ((r = galera_grastate_update(m->datadir, NULL, NULL, 1, err,
	    sizeof(err))) < 0) {
		mysql_fail(run, "bootstrap: cannot set safe_to_bootstrap: %s",
		    err);
		return;
	}
	run->pos.safe_to_bootstrap = 1;
	mysql_field(run, "safe_to_bootstrap", "1");
	if ((argv = calloc(n + 3, sizeof(*argv))) == NULL) {
		mysql_fail(run, "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++)
		argv[i] = h->opt_list_at(m->inst, "bootstrap_command", i);
	snprintf(pos, sizeof(pos), "--wsrep_start_position=%s:%" PRId64,
	    run->pos.uuid, run->pos.seqno);
	argv[n] = "--wsrep-new-cluster";
	argv[n + 1] = pos;
	argv[n + 2] = NULL;
	h->log(m->inst, TROIKA_LOG_INFO, "bootstrap: starting a new cluster "
	    "at %s:%" PRId64 " (position from %s)", run->pos.uuid,
	    run->pos.seqno, run->pos_source);
	run->spawn = h->spawn(m->inst, argv, mysql_run_left_ms(run),
	    COMMAND_OUTPUT_MAX, mysql_bootstrap_command_done, run);
	if (run->spawn == NULL)
		mysql_fail(run, "cannot run bootstrap_command: %s",
		    strerror(errno));
	free(argv);
}

/* ---- after the position of a stopped server is known ---- */

static void
mysql_after_position(struct mysql_run *run)
{
	struct mysql_check *m = run->m;
	char err[300];

	mysql_position_fields(run);
	switch (run->job) {
	case MYSQL_JOB_POSITION:
		mysql_set_result(run, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE,
		    "%s:%" PRId64 " from %s (server down)", run->pos.uuid,
		    run->pos.seqno, run->pos_source);
		mysql_report_later(run);
		return;
	case MYSQL_JOB_BOOTSTRAP:
		mysql_bootstrap_start(run);
		return;
	case MYSQL_JOB_START:
	case MYSQL_JOB_RESTART:
		/*
		 * After a crash: keep the recovered position in grastate.dat,
		 * where Galera reads its starting position, so the node asks
		 * for IST from there instead of a full SST.
		 */
		if (strcmp(run->pos_source, "wsrep-recover") == 0 &&
		    run->pos.seqno >= 0 && !galera_uuid_nil(run->pos.uuid)) {
			if (galera_grastate_update(m->datadir, run->pos.uuid,
			    &run->pos.seqno, -1, err, sizeof(err)) < 0) {
				mysql_fail(run, "%s: cannot record the recovered "
				    "position: %s", mysql_job_op(run->job), err);
				return;
			}
			m->host->log(m->inst, TROIKA_LOG_INFO, "%s: recorded "
			    "the recovered position %s:%" PRId64 " in "
			    "grastate.dat", mysql_job_op(run->job),
			    run->pos.uuid, run->pos.seqno);
		}
		mysql_service(run, mysql_job_op(run->job));
		return;
	case MYSQL_JOB_CHECK:
	case MYSQL_JOB_DESYNC:
	case MYSQL_JOB_STOP:
		break;
	}
	mysql_fail(run, "internal error: no step after the position");
}

/* ---- probing the server first ---- */

/* The position the running server reports; -1 (failed) without one. */
static int
mysql_server_position(struct mysql_run *run, const char *op)
{
	const struct mysql_facts *f = &run->facts;
	struct galera_state gs;
	char err[300];

	if (f->local_state_uuid[0] == '\0' || f->last_committed < 0 ||
	    !galera_uuid_valid(f->local_state_uuid) ||
	    strlen(f->local_state_uuid) != GALERA_UUID_LEN) {
		mysql_fail(run, "%s: the server at %s reports no wsrep "
		    "position (not a Galera node?)", op, run->m->where);
		return -1;
	}
	memcpy(run->pos.uuid, f->local_state_uuid, GALERA_UUID_LEN);
	run->pos.uuid[GALERA_UUID_LEN] = '\0';
	run->pos.seqno = f->last_committed;
	run->pos_source = "server";
	if (run->m->datadir != NULL &&
	    galera_grastate_read(run->m->datadir, &gs, err, sizeof(err)) == 0)
		run->pos.safe_to_bootstrap = gs.safe_to_bootstrap;
	mysql_position_fields(run);
	return 0;
}

static void
mysql_position_from_server(struct mysql_run *run)
{
	const struct mysql_facts *f = &run->facts;

	if (mysql_server_position(run, "position") < 0)
		return;
	mysql_field(run, "wsrep_cluster_status", "%s", f->cluster_status);
	mysql_field(run, "wsrep_local_state_comment", "%s",
	    f->local_state_comment);
	mysql_set_result(run, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE,
	    "%s:%" PRId64 " from the running server (%s, %s)", run->pos.uuid,
	    run->pos.seqno, f->cluster_status, f->local_state_comment);
	mysql_report_later(run);
}

static void
mysql_in_place_done(void *arg, struct myconn *c, const struct myconn_outcome *o)
{
	struct mysql_run *run = arg;

	run->conn_out = *o;
	myconn_free(c); /* o was inside c */
	run->conn = NULL;
	o = &run->conn_out;
	if (!o->ok) {
		mysql_fail(run, "bootstrap in-place: %s: %s", run->m->where,
		    o->message);
		return;
	}
	run->m->host->log(run->m->inst, TROIKA_LOG_INFO, "bootstrap in-place: "
	    "pc.bootstrap=YES at %s:%" PRId64, run->pos.uuid, run->pos.seqno);
	mysql_wait_up(run);
}

/*
 * A running server that is not Primary becomes the Primary component
 * where it stands: the members connected to it join it, nothing restarts.
 */
static void
mysql_bootstrap_in_place(struct mysql_run *run)
{
	static const char set[] =
	    "SET GLOBAL wsrep_provider_options = 'pc.bootstrap=YES'";
	const struct mysql_facts *f = &run->facts;
	const char *q[2];
	int r;

	if (mysql_server_position(run, "bootstrap in-place") < 0)
		return;
	if (strcmp(f->cluster_status, "Primary") == 0) {
		/* Formed meanwhile: a second bootstrap is never wanted. */
		mysql_field(run, "wsrep_cluster_status", "%s",
		    f->cluster_status);
		mysql_set_result(run, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE,
		    "bootstrap in-place: %s is Primary already (cluster size "
		    "%lld): nothing done", run->m->where,
		    (long long)f->cluster_size);
		mysql_report_later(run);
		return;
	}
	q[0] = set;
	q[1] = mysql_q_status;
	if ((r = mysql_connect(run, q, 2, mysql_run_left_ms(run),
	    mysql_in_place_done)) < 0)
		mysql_fail(run, "cannot start a connection: %s", strerror(-r));
}

static void
mysql_probe_done(void *arg, struct myconn *c, const struct myconn_outcome *o)
{
	struct mysql_run *run = arg;
	const struct mysql_facts *f = &run->facts;
	const char *where = run->m->where;

	run->conn_out = *o;
	myconn_free(c); /* o was inside c */
	run->conn = NULL;
	o = &run->conn_out;
	if (run->in_place && !o->ok) {
		mysql_fail(run, "refusing to bootstrap in place: the server at "
		    "%s does not answer (%s)", where, o->message);
		return;
	}
	if (run->in_place) {
		mysql_bootstrap_in_place(run);
		return;
	}
	if (!mysql_server_answered(o)) {
		mysql_offline(run);
		return;
	}
	switch (run->job) {
	case MYSQL_JOB_POSITION:
		if (o->ok)
			mysql_position_from_server(run);
		else
			mysql_fail(run, "position: the server at %s answers, "
			    "but: %s", where, o->message);
		return;
	case MYSQL_JOB_BOOTSTRAP:
		if (o->ok)
			mysql_fail(run, "refusing to bootstrap: the server at "
			    "%s is running (%s, %s)", where,
			    f->cluster_status[0] != '\0' ? f->cluster_status :
			    "no wsrep status", f->local_state_comment);
		else
			mysql_fail(run, "refusing to bootstrap: a server "
			    "answers at %s (%s)", where, o->message);
		return;
	case MYSQL_JOB_START:
		mysql_set_result(run, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE,
		    "start: already running at %s%s%s", where,
		    o->ok ? "" : " (", o->ok ? "" : o->message);
		if (!o->ok)
			strncat(run->out.msg, ")", sizeof(run->out.msg) -
			    strlen(run->out.msg) - 1);
		mysql_report_later(run);
		return;
	case MYSQL_JOB_RESTART:
		mysql_service(run, "restart");
		return;
	case MYSQL_JOB_CHECK:
	case MYSQL_JOB_DESYNC:
	case MYSQL_JOB_STOP:
		break;
	}
	mysql_fail(run, "internal error: no step after the probe");
}

/* Is the server there? mysql_probe_done() takes it from the answer. */
static void
mysql_probe(struct mysql_run *run)
{
	const char *q[1] = { mysql_q_status };
	int64_t left = mysql_run_left_ms(run);
	int64_t t = left / 3 < PROBE_MAX_MS ? left / 3 : PROBE_MAX_MS;
	int r;

	if ((r = mysql_connect(run, q, 1, t > 0 ? t : 1,
	    mysql_probe_done)) < 0)
		mysql_fail(run, "cannot start a connection: %s", strerror(-r));
}

/* ---- desync ---- */

static void
mysql_desync_done(void *arg, struct myconn *c, const struct myconn_outcome *o)
{
	struct mysql_run *run = arg;
	const struct mysql_facts *f = &run->facts;

	run->conn_out = *o;
	myconn_free(c); /* o was inside c */
	run->conn = NULL;
	o = &run->conn_out;
	if (!o->ok) {
		mysql_fail(run, "desync %s: %s: %s", run->desync_on ? "on" :
		    "off", run->m->where, o->message);
		return;
	}
	if (f->local_state_comment[0] != '\0')
		mysql_field(run, "wsrep_local_state_comment", "%s",
		    f->local_state_comment);
	mysql_set_result(run, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE,
	    "wsrep_desync %s: local state %s", run->desync_on ? "ON" : "OFF",
	    f->local_state_comment[0] != '\0' ? f->local_state_comment :
	    "unknown");
	mysql_report(run);
}

static void
mysql_desync(struct mysql_run *run, const char *arg)
{
	static const char on[] = "SET GLOBAL wsrep_desync = ON";
	static const char off[] = "SET GLOBAL wsrep_desync = OFF";
	const char *q[2];
	int r;

	if (strcasecmp(arg, "on") == 0)
		run->desync_on = 1;
	else if (strcasecmp(arg, "off") != 0) {
		mysql_fail(run, "usage: desync on|off");
		return;
	}
	q[0] = run->desync_on ? on : off;
	q[1] = mysql_q_status;
	if ((r = mysql_connect(run, q, 2, mysql_run_left_ms(run),
	    mysql_desync_done)) < 0)
		mysql_fail(run, "cannot start a connection: %s", strerror(-r));
}

/* ---- entry ---- */

void
mysql_action(void *state, struct troika_task *task, const char *name,
    const char *const *argv, size_t argc)
{
	struct mysql_check *m = state;
	struct mysql_run *run;
	enum mysql_job job;

	if (strcmp(name, "position") == 0)
		job = MYSQL_JOB_POSITION;
	else if (strcmp(name, "bootstrap") == 0)
		job = MYSQL_JOB_BOOTSTRAP;
	else if (strcmp(name, "desync") == 0)
		job = MYSQL_JOB_DESYNC;
	else if (strcmp(name, "start") == 0)
		job = MYSQL_JOB_START;
	else if (strcmp(name, "stop") == 0)
		job = MYSQL_JOB_STOP;
	else if (strcmp(name, "restart") == 0)
		job = MYSQL_JOB_RESTART;
	else
		job = MYSQL_JOB_CHECK;
	if ((run = mysql_run_new(m, task, job)) == NULL)
		return;
	if (job == MYSQL_JOB_BOOTSTRAP && argc > 0) {
		if (strcmp(argv[0], "in-place") != 0) {
			mysql_fail(run, "usage: bootstrap [in-place]");
			return;
		}
		run->in_place = 1;
		mysql_probe(run);
		return;
	}
	if (job == MYSQL_JOB_START && argc > 0) {
		if (strcmp(argv[0], "nowait") != 0) {
			mysql_fail(run, "usage: start [nowait]");
			return;
		}
		run->nowait = 1;
	}
	switch (job) {
	case MYSQL_JOB_POSITION:
		mysql_probe(run);
		break;
	case MYSQL_JOB_BOOTSTRAP:
		if (m->bootstrap_argc == 0 || m->datadir == NULL)
			mysql_fail(run, "bootstrap needs %s configured",
			    m->datadir == NULL ? "datadir" : "bootstrap_command");
		else
			mysql_probe(run);
		break;
	case MYSQL_JOB_DESYNC:
		mysql_desync(run, argc > 0 ? argv[0] : "");
		break;
	case MYSQL_JOB_START:
	case MYSQL_JOB_RESTART:
		if (m->datadir != NULL)
			mysql_probe(run);
		else
			mysql_service(run, name);
		break;
	case MYSQL_JOB_STOP:
		mysql_service(run, "stop");
		break;
	case MYSQL_JOB_CHECK:
		mysql_fail(run, "unknown action %s", name);
		break;
	}
}
