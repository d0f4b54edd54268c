/*
 * redis: health, replication and persistence of one Redis server, and the
 * actions a failover or a backup needs (promote, replicate, bgsave, backup,
 * role, start/stop/restart). Async: hiredis on the host's event base
 * (redis_link.c); INFO is parsed by redis_info.c. A backup's copying and
 * hashing run in troika-backup, a process of its own.
 *
 * One connection per check, kept open across runs and actions and made
 * again when it breaks. A health check every second costs a PING and an
 * INFO instead of a TCP handshake, an AUTH and a new client in the
 * server's books each time; and a reset or close of a connection that was
 * working is certain evidence that the server went away. A connection
 * closed while idle (server restart, client timeout) is simply made again
 * at the next run: only what that run sees counts.
 *
 * Names are not resolved (a blocking resolver would stall the loop):
 * `host` must be a numeric address.
 */
#include <sys/socket.h>
#include <netdb.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include <troika/plugin.h>

#include "redis.h"

#define REDIS_MAX_REPLY_MAX (64LL * 1024 * 1024)
/* Between two looks at INFO while an action waits for its effect. */
#define REDIS_POLL_MS 50
#define REDIS_BGSAVE_POLL_MS 100
/* Between two tries to reach Redis after a start. */
#define REDIS_WAKE_POLL_MS 100
/* Longest server error text quoted in a message. */
#define REDIS_SHOWN_MAX 160

enum redis_want {
	REDIS_WANT_ANY = 0,
	REDIS_WANT_MASTER,
	REDIS_WANT_REPLICA,
};

/* What the current task does. */
enum redis_job {
	REDIS_JOB_NONE = 0,
	REDIS_JOB_CHECK,
	REDIS_JOB_ROLE,
	REDIS_JOB_PROMOTE,
	REDIS_JOB_REPLICATE,
	REDIS_JOB_HANDOVER,
	REDIS_JOB_BGSAVE,
	REDIS_JOB_BACKUP, /* BGSAVE, the RDB's path, then troika-backup */
	REDIS_JOB_SERVICE,
	REDIS_JOB_WAKE, /* after start/restart: until Redis answers PING */
};

/* What the task waits for. */
enum redis_step {
	REDIS_STEP_NONE = 0,
	REDIS_STEP_CONNECT,
	REDIS_STEP_AUTH,
	REDIS_STEP_PING,
	REDIS_STEP_INFO,
	REDIS_STEP_REPLICAOF,
	REDIS_STEP_FAILOVER,
	REDIS_STEP_BGSAVE,
	REDIS_STEP_CONFIG,  /* CONFIG GET dir, then dbfilename */
	REDIS_STEP_STORE,   /* troika-backup store runs */
	REDIS_STEP_PAUSE,   /* the poll timer, between two INFOs */
	REDIS_STEP_SERVICE, /* host->service_control() */
};

static const char *const redis_step_names[] = {
	[REDIS_STEP_NONE] = "nothing",
	[REDIS_STEP_CONNECT] = "connect",
	[REDIS_STEP_AUTH] = "AUTH",
	[REDIS_STEP_PING] = "PING",
	[REDIS_STEP_INFO] = "INFO",
	[REDIS_STEP_REPLICAOF] = "REPLICAOF",
	[REDIS_STEP_FAILOVER] = "FAILOVER",
	[REDIS_STEP_BGSAVE] = "BGSAVE",
	[REDIS_STEP_CONFIG] = "CONFIG GET",
	[REDIS_STEP_STORE] = "troika-backup",
	[REDIS_STEP_PAUSE] = "INFO",
	[REDIS_STEP_SERVICE] = "the service manager",
};

struct redis_check;

/*
 * One host->service_control() call. The host calls done exactly once, even
 * after the task was cancelled, unless the check is freed first (then
 * never): so a call outlives a cancelled task, and the instance frees the
 * calls still out when it goes.
 */
struct redis_service_call {
	struct redis_check *r;
	int abandoned; /* its task was cancelled: nobody waits for it */
	struct redis_service_call *next;
};

struct redis_check {
	const struct troika_host *host;
	struct troika_instance *inst;
	struct event_base *base;
	char ip[NI_MAXHOST];
	int port;
	char peer[NI_MAXHOST + 16]; /* "127.0.1.1:6379", "[::1]:6379" */
	char *username;
	char *password;
	enum redis_want want;
	int64_t max_lag_ms;   /* 0: off */
	int64_t min_replicas; /* 0: off */
	int64_t memory_pct;   /* 0: off */
	size_t max_reply;
	struct event *timer; /* the task's own deadline */
	struct event *poll;  /* the pause between two INFOs of an action */
	struct event *defer; /* reports from the loop, never from a callback */

	/* The connection; see the top of the file. */
	struct redis_link *link;
	int ready; /* connected and authenticated */
	int lost;  /* over: free it at the next chance */

	/* The current task. */
	struct troika_task *task;
	enum redis_job job;
	enum redis_step step;
	int finished;
	int effect_sent; /* an action's command went out: its outcome matters */
	int64_t budget_ms;
	struct timespec start;
	struct timespec ping_start;
	double ping_s; /* < 0: not measured */
	int loading;   /* PING said LOADING */
	char target_host[256]; /* replicate, handover */
	int target_port;
	int64_t handover_ms;   /* handover: FAILOVER's TIMEOUT at most */
	int already_running; /* bgsave: one was in progress already */
	/* backup: the options, and the current run's RDB and set */
	char *backup_dir;
	int64_t backup_keep;
	char *backup_program;
	char *rdb_check;     /* NULL: no check of the copy */
	char *rdb_file;      /* NULL: ask CONFIG GET */
	char rdb_dir[2048];  /* CONFIG GET dir's answer */
	char rdb_path[4096];
	char backup_set[4096]; /* "DIR/NAME" once stored */
	void *spawn;           /* troika-backup, while it runs */
	char op[16];         /* start, stop, restart */
	struct redis_service_call *svc;   /* the task's, or NULL */
	struct redis_service_call *calls; /* all still out */
	char svc_msg[256];   /* what the service manager said */
	char wake_last[192]; /* why the last PING after a start failed */
	struct redis_info info;
	int have_info;

	/* The result, once decided. */
	enum troika_status status;
	enum troika_evidence evidence;
	char msg[1024];
};

static const struct troika_option redis_options[] = {
	{ .name = "host", .type = TROIKA_OPT_STRING, .required = 1,
	    .help = "numeric IPv4 or IPv6 address; names are not resolved" },
	{ .name = "port", .type = TROIKA_OPT_INT, .default_value = "6379",
	    .min = 1, .max = 65535, .help = "TCP port" },
	{ .name = "password", .type = TROIKA_OPT_STRING,
	    .help = "AUTH password (requirepass, or the ACL user's)" },
	{ .name = "username", .type = TROIKA_OPT_STRING,
	    .help = "ACL user (Redis 6+); needs password" },
	{ .name = "expected_role", .type = TROIKA_OPT_STRING,
	    .default_value = "any",
	    .help = "master, replica or any; another role is CRITICAL" },
	{ .name = "max_replication_lag", .type = TROIKA_OPT_DURATION,
	    .default_value = "30s", .min = 0, .max = 86400000,
	    .help = "WARNING above: a replica's silence from its master, a "
	    "master's oldest replica ack; 0 is off" },
	{ .name = "min_replicas", .type = TROIKA_OPT_INT, .default_value = "0",
	    .min = 0, .max = 1000,
	    .help = "a master with fewer online replicas is WARNING; "
	    "0 is off" },
	{ .name = "memory_warning", .type = TROIKA_OPT_INT,
	    .default_value = "90", .min = 0, .max = 100,
	    .help = "WARNING at this percentage of maxmemory; 0 is off" },
	{ .name = "max_reply", .type = TROIKA_OPT_SIZE,
	    .default_value = "1MiB", .min = 4096, .max = REDIS_MAX_REPLY_MAX,
	    .help = "largest reply read; a larger one is CRITICAL" },
	{ .name = "backup_dir", .type = TROIKA_OPT_STRING,
	    .help = "absolute path: where the backup action stores its sets; "
	    "without it, backup is refused" },
	{ .name = "backup_keep", .type = TROIKA_OPT_INT, .default_value = "4",
	    .min = 1, .max = 10000,
	    .help = "sets kept after a verified backup (the newest)" },
	{ .name = "backup_program", .type = TROIKA_OPT_STRING,
	    .default_value = TROIKA_BACKUP_PROGRAM,
	    .help = "the troika-backup program" },
	{ .name = "rdb_check_program", .type = TROIKA_OPT_STRING,
	    .default_value = "/usr/bin/redis-check-rdb",
	    .help = "run on the stored copy of the RDB, must exit 0; none: "
	    "no check" },
	{ .name = "rdb_file", .type = TROIKA_OPT_STRING,
	    .help = "absolute path of the RDB file; by default CONFIG GET dir "
	    "and dbfilename" },
	{ .name = NULL },
};

static const struct troika_action redis_actions[] = {
	{ .name = "role", .min_args = 0, .max_args = 0,
	    .help = "report the role and replication offsets as fields" },
	{ .name = "promote", .min_args = 0, .max_args = 0,
	    .help = "REPLICAOF NO ONE, then wait for role:master" },
	{ .name = "replicate", .usage = "<host> <port>", .min_args = 2,
	    .max_args = 2,
	    .help = "REPLICAOF host port, then wait for the link to be up" },
	{ .name = "handover", .usage = "<host> <port> <timeout_ms>",
	    .min_args = 3, .max_args = 3,
	    .help = "FAILOVER TO host port TIMEOUT ms (Redis 6.2+), then wait "
	    "until this master is a replica of host:port" },
	{ .name = "bgsave", .min_args = 0, .max_args = 0,
	    .help = "BGSAVE, then wait for it to end; reports its status" },
	{ .name = "backup", .min_args = 0, .max_args = 0,
	    .help = "BGSAVE, then troika-backup stores the RDB in backup_dir "
	    "(verified, then the newest backup_keep sets kept)" },
	{ .name = "start", .min_args = 0, .max_args = 0,
	    .help = "start the service through the service manager" },
	{ .name = "stop", .min_args = 0, .max_args = 0,
	    .help = "stop the service through the service manager" },
	{ .name = "restart", .min_args = 0, .max_args = 0,
	    .help = "restart the service through the service manager" },
	{ .name = NULL },
};

static void redis_instance_free(void *state);
static void redis_timer_cb(evutil_socket_t fd, short what, void *arg);
static void redis_poll_cb(evutil_socket_t fd, short what, void *arg);
static void redis_defer_cb(evutil_socket_t fd, short what, void *arg);
static void redis_go(struct redis_check *r);

/* ---- configuration ---- */

static int
redis_parse_addr(struct redis_check *r, const char *host, int64_t port)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
	};
	struct addrinfo *ai = NULL;
	char name[NI_MAXHOST];
	size_t len = strlen(host);
	int rc;

	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		host++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(name)) {
		r->host->log(r->inst, TROIKA_LOG_ERR, "host \"%s\" is not a "
		    "numeric IPv4 or IPv6 address", host);
		return -EINVAL;
	}
	memcpy(name, host, len);
	name[len] = '\0';
	if ((rc = getaddrinfo(name, "6379", &hints, &ai)) != 0) {
		r->host->log(r->inst, TROIKA_LOG_ERR, "host \"%s\" is not a "
		    "numeric IPv4 or IPv6 address: names are not resolved, as "
		    "a blocking resolver would stall the event loop", name);
		return rc == EAI_MEMORY ? -ENOMEM : -EINVAL;
	}
	if (getnameinfo(ai->ai_addr, ai->ai_addrlen, r->ip, sizeof(r->ip),
	    NULL, 0, NI_NUMERICHOST) != 0)
		snprintf(r->ip, sizeof(r->ip), "%s", name);
	snprintf(r->peer, sizeof(r->peer), ai->ai_family == AF_INET6 ?
	    "[%s]:%lld" : "%s:%lld", r->ip, (long long)port);
	r->port = (int)port;
	freeaddrinfo(ai);
	return 0;
}

/*
 * A path option, copied if set: it must be absolute (the agent's working
 * directory is nobody's business); rdb_check_program may also be "none".
 */
static int
redis_opt_path(struct redis_check *r, const char *name, char **ret)
{
	const char *v;

	*ret = NULL;
	/* NULL: not set, and no default. */
	if ((v = r->host->opt_string(r->inst, name)) == NULL)
		return 0;
	if (strcmp(name, "rdb_check_program") == 0 && strcmp(v, "none") == 0)
		return 0;
	if (v[0] != '/') {
		r->host->log(r->inst, TROIKA_LOG_ERR, "%s \"%s\": expected an "
		    "absolute path", name, v);
		return -EINVAL;
	}
	if ((*ret = strdup(v)) == NULL)
		return -ENOMEM;
	return 0;
}

static int
redis_instance_new(const struct troika_host *host, struct troika_instance *inst,
    void **ret_state)
{
	struct redis_check *r;
	const char *s;
	int rc;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return -ENOMEM;
	r->host = host;
	r->inst = inst;
	r->base = host->event_base(inst);
	if ((rc = redis_parse_addr(r, host->opt_string(inst, "host"),
	    host->opt_int(inst, "port"))) < 0)
		goto fail;
	if (host->opt_isset(inst, "password") &&
	    (r->password = strdup(host->opt_string(inst, "password"))) ==
	    NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	if (host->opt_isset(inst, "username")) {
		if (r->password == NULL) {
			host->log(inst, TROIKA_LOG_ERR, "username needs a "
			    "password (AUTH <username> <password>)");
			rc = -EINVAL;
			goto fail;
		}
		if ((r->username = strdup(host->opt_string(inst,
		    "username"))) == NULL) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	s = host->opt_string(inst, "expected_role");
	if (s == NULL || strcmp(s, "any") == 0)
		r->want = REDIS_WANT_ANY;
	else if (strcmp(s, "master") == 0)
		r->want = REDIS_WANT_MASTER;
	else if (strcmp(s, "replica") == 0)
		r->want = REDIS_WANT_REPLICA;
	else {
		host->log(inst, TROIKA_LOG_ERR, "expected_role \"%s\": "
		    "expected master, replica or any", s);
		rc = -EINVAL;
		goto fail;
	}
	r->max_lag_ms = host->opt_duration_ms(inst, "max_replication_lag");
	r->min_replicas = host->opt_int(inst, "min_replicas");
	r->memory_pct = host->opt_int(inst, "memory_warning");
	r->max_reply = (size_t)host->opt_size(inst, "max_reply");
	r->backup_keep = host->opt_int(inst, "backup_keep");
	if ((rc = redis_opt_path(r, "backup_dir", &r->backup_dir)) < 0 ||
	    (rc = redis_opt_path(r, "backup_program",
	    &r->backup_program)) < 0 ||
	    (rc = redis_opt_path(r, "rdb_check_program", &r->rdb_check)) < 0 ||
	    (rc = redis_opt_path(r, "rdb_file", &r->rdb_file)) < 0)
		goto fail;
	r->timer = evtimer_new(r->base, redis_timer_cb, r);
	r->poll = evtimer_new(r->base, redis_poll_cb, r);
	r->defer = event_new(r->base, -1, 0, redis_defer_cb, r);
	if (r->timer == NULL || r->poll == NULL || r->defer == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	*ret_state = r;
	return 0;

fail:
	redis_instance_free(r);
	return rc;
}

/* ---- the connection ---- */

/* Close and forget the connection; never inside a link callback. */
static void
redis_link_close(struct redis_check *r)
{
	redis_link_free(r->link);
	r->link = NULL;
	r->ready = 0;
	r->lost = 0;
}

/* The connection is no longer usable; it is freed from the loop. */
static void
redis_link_discard(struct redis_check *r)
{
	r->ready = 0;
	r->lost = 1;
}

/* ---- ending a task ---- */

/* Stop the task's timers and forget what it gathered. */
static void
redis_task_clear(struct redis_check *r)
{
	if (r->timer != NULL)
		evtimer_del(r->timer);
	if (r->poll != NULL)
		evtimer_del(r->poll);
	if (r->defer != NULL)
		event_del(r->defer);
	if (r->svc != NULL) {
		r->svc->abandoned = 1; /* its done callback frees it */
		r->svc = NULL;
	}
	if (r->spawn != NULL) {
		/* TERM, then KILL: a .partial it leaves goes at the next. */
		r->host->spawn_cancel(r->spawn);
		r->spawn = NULL;
	}
	redis_info_clear(&r->info);
	r->have_info = 0;
	r->task = NULL;
	r->job = REDIS_JOB_NONE;
	r->step = REDIS_STEP_NONE;
	r->finished = 0;
}

static void
redis_finish(struct redis_check *r, enum troika_status status,
    enum troika_evidence evidence, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Decide the task's result; it is reported from the loop (defer), so that
 * check_done() never runs inside check() or a hiredis callback.
 */
static void
redis_finish(struct redis_check *r, enum troika_status status,
    enum troika_evidence evidence, const char *fmt, ...)
{
	va_list ap;

	if (r->task == NULL || r->finished)
		return;
	r->finished = 1;
	r->status = status;
	r->evidence = evidence;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	va_end(ap);
	evtimer_del(r->timer);
	evtimer_del(r->poll);
	event_active(r->defer, EV_TIMEOUT, 1);
}

static double
redis_elapsed_s(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) +
	    (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

/* An error reply, quoted in one bounded line. */
static const char *
redis_shown(const redisReply *reply, char *buf, size_t len)
{
	size_t j = 0;

	buf[0] = '\0';
	if (reply->str == NULL)
		return buf;
	for (size_t i = 0; i < (size_t)reply->len && j + 4 < len &&
	    i < REDIS_SHOWN_MAX; i++) {
		unsigned char c = (unsigned char)reply->str[i];

		buf[j++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	if ((size_t)reply->len > REDIS_SHOWN_MAX && j + 4 < len) {
		memcpy(buf + j, "...", 3);
		j += 3;
	}
	buf[j] = '\0';
	return buf;
}

/* 1 if an error reply starts with the error code code ("NOAUTH"). */
static int
redis_error_is(const redisReply *reply, const char *code)
{
	size_t n = strlen(code);

	return reply->type == REDIS_REPLY_ERROR && reply->str != NULL &&
	    (size_t)reply->len >= n && strncmp(reply->str, code, n) == 0 &&
	    ((size_t)reply->len == n || reply->str[n] == ' ');
}

/* ---- results: samples and fields ---- */

struct redis_out {
	struct troika_sample *samples;
	struct troika_label *labels;
	size_t nsamples, cap, nlabels, labcap;
	struct troika_label fields[64];
	size_t nfields;
};

static void
redis_sample(struct redis_out *o, const char *name, const char *help,
    enum troika_metric_type type, double value)
{
	if (o->nsamples == o->cap)
		return;
	o->samples[o->nsamples++] = (struct troika_sample){
		.name = name, .help = help, .type = type, .value = value,
	};
}

/* Add a label to the sample added last. */
static void
redis_label(struct redis_out *o, const char *name, const char *value)
{
	struct troika_sample *s;

	if (o->nsamples == 0 || o->nlabels == o->labcap || value == NULL)
		return;
	s = &o->samples[o->nsamples - 1];
	if (s->nlabels == 0)
		s->labels = &o->labels[o->nlabels];
	else if (s->labels + s->nlabels != &o->labels[o->nlabels])
		return; /* labels of one sample are contiguous */
	o->labels[o->nlabels++] = (struct troika_label){ name, value };
	s->nlabels++;
}

static void
redis_field(struct redis_out *o, const char *name, const char *value)
{
	if (value == NULL || o->nfields == sizeof(o->fields) /
	    sizeof(o->fields[0]))
		return;
	o->fields[o->nfields++] = (struct troika_label){ name, value };
}

/* INFO fields exported as they are, under redis_exporter's names. */
static const struct {
	const char *key;
	const char *name;
	enum troika_metric_type type;
	const char *help;
} redis_plain_metrics[] = {
	{ "uptime_in_seconds", "redis_uptime_in_seconds", TROIKA_METRIC_GAUGE,
	    "Seconds since the server started" },
	{ "connected_clients", "redis_connected_clients", TROIKA_METRIC_GAUGE,
	    "Client connections" },
	{ "blocked_clients", "redis_blocked_clients", TROIKA_METRIC_GAUGE,
	    "Clients in a blocking call" },
	{ "maxclients", "redis_config_maxclients", TROIKA_METRIC_GAUGE,
	    "Configured maxclients" },
	{ "used_memory", "redis_memory_used_bytes", TROIKA_METRIC_GAUGE,
	    "Memory allocated by Redis" },
	{ "used_memory_rss", "redis_memory_used_rss_bytes",
	    TROIKA_METRIC_GAUGE, "Resident set size of the server" },
	{ "used_memory_peak", "redis_memory_used_peak_bytes",
	    TROIKA_METRIC_GAUGE, "Peak of used_memory" },
	{ "maxmemory", "redis_memory_max_bytes", TROIKA_METRIC_GAUGE,
	    "Configured maxmemory; 0 is unlimited" },
	{ "mem_fragmentation_ratio", "redis_mem_fragmentation_ratio",
	    TROIKA_METRIC_GAUGE, "RSS divided by used memory" },
	{ "loading", "redis_loading_dump_file", TROIKA_METRIC_GAUGE,
	    "1 while the dataset is being loaded" },
	{ "rdb_changes_since_last_save", "redis_rdb_changes_since_last_save",
	    TROIKA_METRIC_GAUGE, "Writes since the last RDB save" },
	{ "rdb_bgsave_in_progress", "redis_rdb_bgsave_in_progress",
	    TROIKA_METRIC_GAUGE, "1 while a BGSAVE runs" },
	{ "rdb_last_save_time", "redis_rdb_last_save_timestamp_seconds",
	    TROIKA_METRIC_GAUGE, "Time of the last successful RDB save" },
	/* redis_exporter says _sec; promtool wants no abbreviated units. */
	{ "rdb_last_bgsave_time_sec", "redis_rdb_last_bgsave_duration_seconds",
	    TROIKA_METRIC_GAUGE, "Duration of the last BGSAVE; -1 if none" },
	{ "aof_enabled", "redis_aof_enabled", TROIKA_METRIC_GAUGE,
	    "1 if the append-only file is on" },
	{ "aof_rewrite_in_progress", "redis_aof_rewrite_in_progress",
	    TROIKA_METRIC_GAUGE, "1 while an AOF rewrite runs" },
	{ "connected_slaves", "redis_connected_slaves", TROIKA_METRIC_GAUGE,
	    "Replicas connected to this server" },
	{ "master_repl_offset", "redis_master_repl_offset",
	    TROIKA_METRIC_GAUGE, "Replication offset of this server" },
	{ "slave_repl_offset", "redis_slave_repl_offset", TROIKA_METRIC_GAUGE,
	    "Replication offset a replica has processed" },
	{ "master_last_io_seconds_ago", "redis_master_last_io_seconds_ago",
	    TROIKA_METRIC_GAUGE, "Seconds since a replica heard its master" },
	{ "master_sync_in_progress", "redis_master_sync_in_progress",
	    TROIKA_METRIC_GAUGE, "1 while a replica syncs from its master" },
	{ "total_connections_received", "redis_connections_received_total",
	    TROIKA_METRIC_COUNTER, "Connections accepted" },
	{ "rejected_connections", "redis_rejected_connections_total",
	    TROIKA_METRIC_COUNTER, "Connections refused (maxclients)" },
	{ "total_commands_processed", "redis_commands_processed_total",
	    TROIKA_METRIC_COUNTER, "Commands processed" },
	{ "total_net_input_bytes", "redis_net_input_bytes_total",
	    TROIKA_METRIC_COUNTER, "Bytes read from the network" },
	{ "total_net_output_bytes", "redis_net_output_bytes_total",
	    TROIKA_METRIC_COUNTER, "Bytes written to the network" },
	{ "expired_keys", "redis_expired_keys_total", TROIKA_METRIC_COUNTER,
	    "Keys expired" },
	{ "evicted_keys", "redis_evicted_keys_total", TROIKA_METRIC_COUNTER,
	    "Keys evicted for maxmemory" },
	{ "keyspace_hits", "redis_keyspace_hits_total", TROIKA_METRIC_COUNTER,
	    "Successful key lookups" },
	{ "keyspace_misses", "redis_keyspace_misses_total",
	    TROIKA_METRIC_COUNTER, "Failed key lookups" },
};

/* INFO fields that say ok/err (up/down), as 1/0. */
static const struct {
	const char *key;
	const char *good;
	const char *name;
	const char *help;
} redis_flag_metrics[] = {
	{ "rdb_last_bgsave_status", "ok", "redis_rdb_last_bgsave_status",
	    "1 if the last BGSAVE succeeded" },
	{ "aof_last_bgrewrite_status", "ok", "redis_aof_last_bgrewrite_status",
	    "1 if the last AOF rewrite succeeded" },
	{ "aof_last_write_status", "ok", "redis_aof_last_write_status",
	    "1 if the last AOF write succeeded" },
	{ "master_link_status", "up", "redis_master_link_up",
	    "1 if a replica's link to its master is up" },
};

static const char *
redis_role_word(const char *raw)
{
	if (raw != NULL && strcmp(raw, "slave") == 0)
		return "replica";
	return raw;
}

static void
redis_info_samples(const struct redis_info *in, struct redis_out *o)
{
	const char *role = redis_info_get(in, "role");
	double v;

	redis_sample(o, "redis_instance_info", "Role and version; always 1",
	    TROIKA_METRIC_GAUGE, 1);
	redis_label(o, "role", role);
	redis_label(o, "redis_version", redis_info_get(in, "redis_version"));
	redis_label(o, "redis_mode", redis_info_get(in, "redis_mode"));
	for (size_t i = 0; i < sizeof(redis_plain_metrics) /
	    sizeof(redis_plain_metrics[0]); i++)
		if (redis_info_double(in, redis_plain_metrics[i].key, &v) == 0)
			redis_sample(o, redis_plain_metrics[i].name,
			    redis_plain_metrics[i].help,
			    redis_plain_metrics[i].type, v);
	for (size_t i = 0; i < sizeof(redis_flag_metrics) /
	    sizeof(redis_flag_metrics[0]); i++) {
		const char *s = redis_info_get(in, redis_flag_metrics[i].key);

		if (s != NULL)
			redis_sample(o, redis_flag_metrics[i].name,
			    redis_flag_metrics[i].help, TROIKA_METRIC_GAUGE,
			    strcmp(s, redis_flag_metrics[i].good) == 0);
	}
	if (role != NULL && strcmp(role, "slave") == 0) {
		redis_sample(o, "redis_slave_info", "A replica's master; "
		    "always 1", TROIKA_METRIC_GAUGE, 1);
		redis_label(o, "master_host",
		    redis_info_get(in, "master_host"));
		redis_label(o, "master_port",
		    redis_info_get(in, "master_port"));
		redis_label(o, "read_only",
		    redis_info_get(in, "slave_read_only"));
	}
	for (size_t i = 0; i < in->nreplicas; i++) {
		const struct redis_info_replica *rp = &in->replicas[i];

		if (rp->ip == NULL || rp->port == NULL)
			continue;
		if (rp->offset >= 0) {
			redis_sample(o, "redis_connected_slave_offset_bytes",
			    "Replication offset a replica acknowledged",
			    TROIKA_METRIC_GAUGE, (double)rp->offset);
			redis_label(o, "slave_ip", rp->ip);
			redis_label(o, "slave_port", rp->port);
			redis_label(o, "slave_state", rp->state ? rp->state :
			    "");
		}
		if (rp->lag >= 0) {
			redis_sample(o, "redis_connected_slave_lag_seconds",
			    "Seconds since a replica's last acknowledgement",
			    TROIKA_METRIC_GAUGE, (double)rp->lag);
			redis_label(o, "slave_ip", rp->ip);
			redis_label(o, "slave_port", rp->port);
			redis_label(o, "slave_state", rp->state ? rp->state :
			    "");
		}
	}
	for (size_t i = 0; i < in->ndbs; i++) {
		const struct redis_info_db *d = &in->dbs[i];

		if (d->keys >= 0) {
			redis_sample(o, "redis_db_keys", "Keys in a database",
			    TROIKA_METRIC_GAUGE, (double)d->keys);
			redis_label(o, "db", d->db);
		}
		if (d->expires >= 0) {
			redis_sample(o, "redis_db_keys_expiring",
			    "Keys with an expiry in a database",
			    TROIKA_METRIC_GAUGE, (double)d->expires);
			redis_label(o, "db", d->db);
		}
	}
}

static void
redis_info_fields(const struct redis_info *in, enum redis_job job,
    struct redis_out *o)
{
	static const char *const keys[] = {
		"master_host", "master_port", "master_link_status",
		"master_replid", "master_repl_offset", "slave_repl_offset",
		"slave_priority", "connected_slaves", "rdb_last_bgsave_status",
		"rdb_last_bgsave_time_sec", "rdb_changes_since_last_save",
		"rdb_saves",
	};

	redis_field(o, "role", redis_role_word(redis_info_get(in, "role")));
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		redis_field(o, keys[i], redis_info_get(in, keys[i]));
	redis_field(o, "lastsave", redis_info_get(in, "rdb_last_save_time"));
	if (job != REDIS_JOB_CHECK)
		for (size_t i = 0; i < in->nreplicas; i++)
			redis_field(o, in->replicas[i].name,
			    redis_info_get(in, in->replicas[i].name));
}

static void
redis_defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct redis_check *r = arg;
	struct troika_task *task = r->task;
	enum redis_job job = r->job;
	struct redis_info info = r->info;
	int have_info = r->have_info;
	double ping_s = r->ping_s;
	struct redis_out o = { 0 };
	struct troika_result res = {
		.size = sizeof(res),
		.status = r->status,
		.evidence = r->evidence,
	};
	char msg[sizeof(r->msg)];

	(void)fd;
	(void)what;
	if (task == NULL)
		return;
	if (r->lost)
		redis_link_close(r);
	/*
	 * The task ends before check_done(), which may start the next one;
	 * what the result points to is kept aside until it returns.
	 */
	memset(&r->info, 0, sizeof(r->info));
	memcpy(msg, r->msg, sizeof(msg));
	redis_task_clear(r);
	if (job == REDIS_JOB_CHECK) {
		o.cap = 64 + 2 * REDIS_INFO_MAX_REPLICAS +
		    2 * REDIS_INFO_MAX_DBS;
		o.labcap = 3 * o.cap;
		o.samples = calloc(o.cap, sizeof(*o.samples));
		o.labels = calloc(o.labcap, sizeof(*o.labels));
		if (o.samples == NULL || o.labels == NULL)
			o.cap = o.labcap = 0;
		redis_sample(&o, "redis_up", "1 if INFO could be read",
		    TROIKA_METRIC_GAUGE, have_info);
		if (ping_s >= 0)
			redis_sample(&o, "troika_redis_ping_seconds",
			    "Round trip of PING", TROIKA_METRIC_GAUGE, ping_s);
		if (have_info)
			redis_info_samples(&info, &o);
	}
	if (have_info)
		redis_info_fields(&info, job, &o);
	/* Always, up or down: a failover repoints replicas to it. */
	redis_field(&o, "address", r->peer);
	if (job == REDIS_JOB_BACKUP && r->backup_set[0] != '\0')
		redis_field(&o, "backup_set", r->backup_set);
	res.message = msg;
	res.samples = o.samples;
	res.nsamples = o.nsamples;
	res.fields = o.fields;
	res.nfields = o.nfields;
	r->host->check_done(task, &res);
	free(o.samples);
	free(o.labels);
	redis_info_clear(&info);
}

/* ---- judging a check's INFO ---- */

struct redis_verdict {
	enum troika_status status;
	enum troika_evidence evidence;
	char text[768];
	size_t len;
};

static void
redis_problem(struct redis_verdict *v, enum troika_status status,
    enum troika_evidence evidence, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
redis_problem(struct redis_verdict *v, enum troika_status status,
    enum troika_evidence evidence, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (status > v->status) {
		v->status = status;
		v->evidence = evidence;
	}
	if (v->len > 0 && v->len + 2 < sizeof(v->text)) {
		memcpy(v->text + v->len, "; ", 3);
		v->len += 2;
	}
	if (v->len + 1 >= sizeof(v->text))
		return;
	va_start(ap, fmt);
	n = vsnprintf(v->text + v->len, sizeof(v->text) - v->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		v->len += (size_t)n;
	if (v->len >= sizeof(v->text))
		v->len = sizeof(v->text) - 1;
}

static void
redis_human_bytes(double b, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	size_t u = 0;

	while (b >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		b /= 1024;
		u++;
	}
	snprintf(buf, len, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
}

static int64_t
redis_get_int(const struct redis_info *in, const char *key, int64_t dflt)
{
	int64_t v;

	return redis_info_int(in, key, &v) == 0 ? v : dflt;
}

static void
redis_judge_replica(struct redis_check *r, struct redis_verdict *v,
    char *summary, size_t slen)
{
	const struct redis_info *in = &r->info;
	const char *mh = redis_info_get(in, "master_host");
	const char *mp = redis_info_get(in, "master_port");
	const char *link = redis_info_get(in, "master_link_status");
	int64_t io = redis_get_int(in, "master_last_io_seconds_ago", -1);
	int64_t down = redis_get_int(in, "master_link_down_since_seconds", -1);
	int64_t off = redis_get_int(in, "slave_repl_offset", -1);

	if (mh == NULL)
		mh = "?";
	if (mp == NULL)
		mp = "?";
	if (link == NULL || strcmp(link, "up") != 0) {
		if (redis_get_int(in, "master_sync_in_progress", 0) == 1)
			redis_problem(v, TROIKA_STATUS_WARNING,
			    TROIKA_EVIDENCE_NONE, "full sync from master "
			    "%s:%s in progress", mh, mp);
		else if (down >= 0)
			redis_problem(v, TROIKA_STATUS_CRITICAL,
			    TROIKA_EVIDENCE_CERTAIN, "link to master %s:%s "
			    "down for %lld s", mh, mp, (long long)down);
		else
			redis_problem(v, TROIKA_STATUS_CRITICAL,
			    TROIKA_EVIDENCE_CERTAIN, "link to master %s:%s "
			    "down", mh, mp);
	} else if (r->max_lag_ms > 0 && io >= 0 && io * 1000 > r->max_lag_ms) {
		redis_problem(v, TROIKA_STATUS_WARNING, TROIKA_EVIDENCE_NONE,
		    "nothing from master %s:%s for %lld s (max_replication_lag "
		    "%.3g s)", mh, mp, (long long)io,
		    (double)r->max_lag_ms / 1000);
	}
	snprintf(summary, slen, "replica of %s:%s, link %s, offset %lld", mh,
	    mp, link != NULL ? link : "?", (long long)off);
}

static void
redis_judge_master(struct redis_check *r, struct redis_verdict *v,
    char *summary, size_t slen)
{
	const struct redis_info *in = &r->info;
	int64_t online = 0, off = redis_get_int(in, "master_repl_offset", -1);

	for (size_t i = 0; i < in->nreplicas; i++) {
		const struct redis_info_replica *rp = &in->replicas[i];

		if (rp->state == NULL || strcmp(rp->state, "online") != 0)
			continue;
		online++;
		if (r->max_lag_ms > 0 && rp->lag >= 0 &&
		    rp->lag * 1000 > r->max_lag_ms)
			redis_problem(v, TROIKA_STATUS_WARNING,
			    TROIKA_EVIDENCE_NONE, "replica %s:%s silent for "
			    "%lld s (max_replication_lag %.3g s)",
			    rp->ip ? rp->ip : "?", rp->port ? rp->port : "?",
			    (long long)rp->lag, (double)r->max_lag_ms / 1000);
	}
	/* Replicas past the table are counted by connected_slaves only. */
	online += (int64_t)in->replicas_skipped;
	if (r->min_replicas > 0 && online < r->min_replicas)
		redis_problem(v, TROIKA_STATUS_WARNING, TROIKA_EVIDENCE_NONE,
		    "%lld replica%s online, min_replicas %lld",
		    (long long)online, online == 1 ? "" : "s",
		    (long long)r->min_replicas);
	snprintf(summary, slen, "master, %lld replica%s online, offset %lld",
	    (long long)online, online == 1 ? "" : "s", (long long)off);
}

/* Turn the INFO of a check run into its result. */
static void
redis_judge(struct redis_check *r)
{
	const struct redis_info *in = &r->info;
	const char *role = redis_info_get(in, "role");
	const char *s;
	struct redis_verdict v = { .status = TROIKA_STATUS_OK };
	char summary[256] = "", mem[96] = "";
	double used, max, pct;

	if (role == NULL) {
		redis_finish(r, TROIKA_STATUS_CRITICAL,
		    TROIKA_EVIDENCE_AMBIGUOUS, "%s: INFO has no role line "
		    "(not a Redis server?)", r->peer);
		return;
	}
	if (r->loading || redis_get_int(in, "loading", 0) == 1) {
		double done = 0;

		redis_info_double(in, "loading_loaded_perc", &done);
		redis_problem(&v, TROIKA_STATUS_WARNING, TROIKA_EVIDENCE_NONE,
		    "loading the dataset (%.1f%% done)", done);
	}
	if ((r->want == REDIS_WANT_MASTER && strcmp(role, "master") != 0) ||
	    (r->want == REDIS_WANT_REPLICA && strcmp(role, "slave") != 0))
		redis_problem(&v, TROIKA_STATUS_CRITICAL,
		    TROIKA_EVIDENCE_CERTAIN, "role is %s, expected %s",
		    redis_role_word(role), r->want == REDIS_WANT_MASTER ?
		    "master" : "replica");
	if (strcmp(role, "slave") == 0)
		redis_judge_replica(r, &v, summary, sizeof(summary));
	else if (strcmp(role, "master") == 0)
		redis_judge_master(r, &v, summary, sizeof(summary));
	else
		snprintf(summary, sizeof(summary), "role %s", role);
	if ((s = redis_info_get(in, "rdb_last_bgsave_status")) != NULL &&
	    strcmp(s, "ok") != 0)
		redis_problem(&v, TROIKA_STATUS_WARNING, TROIKA_EVIDENCE_NONE,
		    "last bgsave failed (rdb_last_bgsave_status:%s)", s);
	if ((s = redis_info_get(in, "aof_last_write_status")) != NULL &&
	    strcmp(s, "ok") != 0)
		redis_problem(&v, TROIKA_STATUS_WARNING, TROIKA_EVIDENCE_NONE,
		    "AOF write error (aof_last_write_status:%s)", s);
	if ((s = redis_info_get(in, "aof_last_bgrewrite_status")) != NULL &&
	    strcmp(s, "ok") != 0)
		redis_problem(&v, TROIKA_STATUS_WARNING, TROIKA_EVIDENCE_NONE,
		    "last AOF rewrite failed (aof_last_bgrewrite_status:%s)",
		    s);
	if (redis_info_double(in, "used_memory", &used) == 0) {
		char u[32], m[32];

		redis_human_bytes(used, u, sizeof(u));
		if (redis_info_double(in, "maxmemory", &max) == 0 && max > 0) {
			pct = used * 100 / max;
			redis_human_bytes(max, m, sizeof(m));
			snprintf(mem, sizeof(mem), ", memory %s of %s (%.0f%%)",
			    u, m, pct);
			if (r->memory_pct > 0 && pct >= (double)r->memory_pct)
				redis_problem(&v, TROIKA_STATUS_WARNING,
				    TROIKA_EVIDENCE_NONE, "memory at %.0f%% of "
				    "maxmemory (memory_warning %lld%%)", pct,
				    (long long)r->memory_pct);
		} else {
			snprintf(mem, sizeof(mem), ", memory %s", u);
		}
	}
	if (v.len > 0)
		redis_finish(r, v.status, v.evidence, "%s (%s%s)", v.text,
		    summary, mem);
	else
		redis_finish(r, v.status, v.evidence, "%s%s", summary, mem);
}

/* ---- sending and receiving ---- */

static void
redis_send(struct redis_check *r, enum redis_step step, int argc,
    const char **argv)
{
	int rc;

	r->step = step;
	if ((rc = redis_link_command(r->link, argc, argv)) < 0) {
		redis_link_discard(r);
		redis_finish(r, r->effect_sent ? TROIKA_STATUS_UNKNOWN :
		    TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_AMBIGUOUS,
		    "%s: cannot send %s: %s", r->peer, argv[0],
		    strerror(-rc));
	}
}

static void
redis_send_info(struct redis_check *r, const char *section)
{
	const char *argv[] = { "INFO", section };

	redis_send(r, REDIS_STEP_INFO, section != NULL ? 2 : 1, argv);
}

/* Does the task wait for a BGSAVE (INFO persistence, not replication)? */
static int
redis_saves(const struct redis_check *r)
{
	return r->job == REDIS_JOB_BGSAVE || r->job == REDIS_JOB_BACKUP;
}

/* Look at INFO again after ms (actions waiting for their effect). */
static void
redis_pause(struct redis_check *r, int64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000),
		(suseconds_t)(ms % 1000) * 1000 };

	r->step = REDIS_STEP_PAUSE;
	evtimer_add(r->poll, &tv);
}

static void redis_connect(struct redis_check *r);

/* After a start, a failed try is made again until the deadline. */
static int
redis_wake_retry(struct redis_check *r, const char *why)
{
	if (r->job != REDIS_JOB_WAKE || r->task == NULL || r->finished)
		return 0;
	snprintf(r->wake_last, sizeof(r->wake_last), "%s", why);
	redis_link_discard(r);
	redis_pause(r, REDIS_WAKE_POLL_MS);
	return 1;
}

static void
redis_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct redis_check *r = arg;

	(void)fd;
	(void)what;
	if (r->task == NULL || r->finished)
		return;
	if (r->job == REDIS_JOB_WAKE) {
		redis_connect(r);
		return;
	}
	redis_send_info(r, redis_saves(r) ? "persistence" : "replication");
}

/* A reply other than the expected one: the stream is not trusted. */
static void
redis_unexpected(struct redis_check *r, const redisReply *reply)
{
	redis_link_discard(r);
	redis_finish(r, r->effect_sent ? TROIKA_STATUS_UNKNOWN :
	    TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_AMBIGUOUS,
	    "%s: unexpected reply to %s (type %d)", r->peer,
	    redis_step_names[r->step], reply->type);
}

/*
 * An error reply. Authentication and permission errors say the server is
 * up but will not talk to this check: CRITICAL, with no evidence either
 * way about the service (a restart would not help).
 */
static void
redis_error(struct redis_check *r, const redisReply *reply)
{
	char shown[REDIS_SHOWN_MAX + 8];
	const char *cmd = redis_step_names[r->step];

	redis_shown(reply, shown, sizeof(shown));
	if (redis_error_is(reply, "NOAUTH")) {
		redis_link_discard(r);
		redis_finish(r, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_NONE,
		    "%s: authentication required, and %s: %s", r->peer,
		    r->password == NULL ? "no password is configured for this "
		    "check" : "the server did not accept AUTH", shown);
	} else if (r->step == REDIS_STEP_AUTH) {
		redis_link_discard(r);
		redis_finish(r, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_NONE,
		    "%s: authentication failed%s%s: %s", r->peer,
		    r->username != NULL ? " for user " : "",
		    r->username != NULL ? r->username : "", shown);
	} else if (redis_error_is(reply, "NOPERM")) {
		redis_finish(r, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_NONE,
		    "%s: %s refused: %s", r->peer, cmd, shown);
	} else {
		redis_finish(r, r->effect_sent ? TROIKA_STATUS_UNKNOWN :
		    TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_AMBIGUOUS,
		    "%s: %s failed: %s", r->peer, cmd, shown);
	}
}

/* Keep an INFO reply for the result. Returns 0, or finished the task. */
static int
redis_take_info(struct redis_check *r, const redisReply *reply)
{
	if (reply->type != REDIS_REPLY_STRING) {
		redis_unexpected(r, reply);
		return -EPROTO;
	}
	redis_info_clear(&r->info);
	r->have_info = 0;
	if (redis_info_parse(&r->info, reply->str, (size_t)reply->len) < 0) {
		redis_finish(r, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "out of memory for INFO");
		return -ENOMEM;
	}
	r->have_info = 1;
	return 0;
}

static double
redis_elapsed_ms(const struct redis_check *r)
{
	return redis_elapsed_s(&r->start) * 1e3;
}

static void
redis_promote_info(struct redis_check *r)
{
	const char *role = redis_info_get(&r->info, "role");
	const char *argv[] = { "REPLICAOF", "NO", "ONE" };

	if (role != NULL && strcmp(role, "master") == 0) {
		redis_finish(r, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE,
		    r->effect_sent ? "%s promoted: master after %.0f ms" :
		    "%s is a master already", r->peer, redis_elapsed_ms(r));
		return;
	}
	if (role == NULL || strcmp(role, "slave") != 0) {
		redis_finish(r, r->effect_sent ? TROIKA_STATUS_UNKNOWN :
		    TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_NONE,
		    "%s: role %s", r->peer, role != NULL ? role : "missing");
		return;
	}
	if (!r->effect_sent) {
		r->effect_sent = 1;
		redis_send(r, REDIS_STEP_REPLICAOF, 3, argv);
		return;
	}
	redis_pause(r, REDIS_POLL_MS);
}

static void
redis_replicate_info(struct redis_check *r)
{
	const struct redis_info *in = &r->info;
	const char *role = redis_info_get(in, "role");
	const char *mh = redis_info_get(in, "master_host");
	const char *link = redis_info_get(in, "master_link_status");
	int64_t mp = redis_get_int(in, "master_port", -1);

	if (role != NULL && strcmp(role, "slave") == 0 && mh != NULL &&
	    strcmp(mh, r->target_host) == 0 && mp == r->target_port &&
	    link != NULL && strcmp(link, "up") == 0) {
		redis_finish(r, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE,
		    "%s is a replica of %s:%d, link up after %.0f ms", r->peer,
		    r->target_host, r->target_port, redis_elapsed_ms(r));
		return;
	}
	redis_pause(r, REDIS_POLL_MS);
}

/*
 * A planned switchover: Redis' own FAILOVER (6.2+) pauses writes here,
 * waits until the target has every write, and swaps the roles; or, at
 * its TIMEOUT, gives up and stays the master. Writes are never lost and
 * there are never two writable masters, which REPLICAOF NO ONE on the
 * target plus REPLICAOF here could not promise.
 */
static void
redis_handover_info(struct redis_check *r)
{
	const struct redis_info *in = &r->info;
	const char *role = redis_info_get(in, "role");
	const char *state = redis_info_get(in, "master_failover_state");
	const char *mh = redis_info_get(in, "master_host");
	int64_t mp = redis_get_int(in, "master_port", -1);
	int64_t tmo = r->budget_ms - (int64_t)redis_elapsed_ms(r) -
	    4 * REDIS_POLL_MS;
	char port[16], ms[24];
	const char *argv[] = { "FAILOVER", "TO", r->target_host, port,
	    "TIMEOUT", ms };

	if (!r->effect_sent) {
		if (role == NULL || strcmp(role, "master") != 0) {
			redis_finish(r, TROIKA_STATUS_CRITICAL,
			    TROIKA_EVIDENCE_NONE, "%s is not a master (role "
			    "%s): nothing to hand over", r->peer,
			    role != NULL ? redis_role_word(role) : "missing");
			return;
		}
		/* Redis' own end (done or given up) must come before ours. */
		if (tmo > r->handover_ms)
			tmo = r->handover_ms;
		if (tmo < 1) {
			redis_finish(r, TROIKA_STATUS_CRITICAL,
			    TROIKA_EVIDENCE_NONE, "%s: no time left for "
			    "FAILOVER within the action's %lld ms", r->peer,
			    (long long)r->budget_ms);
			return;
		}
		snprintf(port, sizeof(port), "%d", r->target_port);
		snprintf(ms, sizeof(ms), "%lld", (long long)tmo);
		r->handover_ms = tmo;
		r->effect_sent = 1;
		redis_send(r, REDIS_STEP_FAILOVER, 6, argv);
		return;
	}
	if (state != NULL && strcmp(state, "no-failover") != 0) {
		redis_pause(r, REDIS_POLL_MS);
		return;
	}
	if (role != NULL && strcmp(role, "slave") == 0 && mh != NULL &&
	    strcmp(mh, r->target_host) == 0 && mp == r->target_port) {
		redis_finish(r, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE,
		    "%s handed over to %s:%d after %.0f ms: now its replica",
		    r->peer, r->target_host, r->target_port,
		    redis_elapsed_ms(r));
		return;
	}
	if (role != NULL && strcmp(role, "master") == 0) {
		redis_finish(r, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_NONE,
		    "%s: FAILOVER TO %s %d gave up, still the master: the "
		    "target did not catch up or answer within %lld ms",
		    r->peer, r->target_host, r->target_port,
		    (long long)r->handover_ms);
		return;
	}
	redis_finish(r, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
	    "%s: after FAILOVER TO %s %d, role %s of %s:%lld", r->peer,
	    r->target_host, r->target_port, role != NULL ?
	    redis_role_word(role) : "missing", mh != NULL ? mh : "?",
	    (long long)mp);
}

/* ---- backup: after the BGSAVE ---- */

/* The last non-empty line of text, at most len - 1 bytes of it. */
static void
redis_last_line(const char *text, char *out, size_t len)
{
	const char *end = text + strlen(text), *start;

	while (end > text && (end[-1] == '\n' || end[-1] == '\r'))
		end--;
	for (start = end; start > text && start[-1] != '\n'; start--)
		;
	snprintf(out, len, "%.*s", (int)(end - start), start);
}

static void
redis_backup_done(const struct troika_spawn_result *res, void *arg)
{
	struct redis_check *r = arg;
	char line[768];
	const char *colon;

	r->spawn = NULL;
	if (r->task == NULL || r->finished)
		return;
	redis_last_line(res->output != NULL ? res->output : "", line,
	    sizeof(line));
	if (res->spawn_errno != 0)
		redis_finish(r, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_NONE,
		    "cannot run %s: %s", r->backup_program,
		    strerror(res->spawn_errno));
	else if ((!res->exited || res->exit_code != 0) && line[0] != '\0')
		redis_finish(r, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_NONE,
		    "backup of %s failed: %s", r->rdb_path, line);
	else if (!res->exited || res->exit_code != 0)
		redis_finish(r, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_NONE,
		    "backup of %s failed: %s %s %d, and said nothing",
		    r->rdb_path, r->backup_program, res->exited ? "exit" :
		    "killed by signal", res->exited ? res->exit_code :
		    res->signal);
	else {
		/* "stored DIR/NAME: 1 file, ..." */
		if (strncmp(line, "stored ", 7) == 0 &&
		    (colon = strstr(line, ": ")) != NULL)
			snprintf(r->backup_set, sizeof(r->backup_set), "%.*s",
			    (int)(colon - line - 7), line + 7);
		redis_finish(r, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE,
		    "%s: backup done after %.0f ms; %s", r->peer,
		    redis_elapsed_ms(r), line);
	}
}

/* The RDB is written: hand it to troika-backup. */
static void
redis_backup_store(struct redis_check *r)
{
	char keep[24];
	const char *argv[10];
	int n = 0;

	snprintf(keep, sizeof(keep), "%lld", (long long)r->backup_keep);
	argv[n++] = r->backup_program;
	argv[n++] = "store";
	argv[n++] = "--keep";
	argv[n++] = keep;
	if (r->rdb_check != NULL) {
		argv[n++] = "--check";
		argv[n++] = r->rdb_check;
	}
	argv[n++] = r->backup_dir;
	argv[n++] = r->rdb_path;
	argv[n] = NULL;
	r->step = REDIS_STEP_STORE;
	/* The task's timer ends it first (and cancels the spawn), with a
	 * message that says what it waited for. */
	r->spawn = r->host->spawn(r->inst, argv,
	    r->host->task_remaining_ms(r->task), 16384, redis_backup_done, r);
	if (r->spawn == NULL)
		redis_finish(r, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_NONE,
		    "cannot run %s: %s", r->backup_program, strerror(errno));
}

static void
redis_backup_saved(struct redis_check *r)
{
	const char *argv[] = { "CONFIG", "GET", "dir" };

	if (r->rdb_file != NULL) {
		snprintf(r->rdb_path, sizeof(r->rdb_path), "%s", r->rdb_file);
		redis_backup_store(r);
		return;
	}
	r->rdb_dir[0] = '\0';
	redis_send(r, REDIS_STEP_CONFIG, 3, argv);
}

/* A reply to CONFIG GET dir, then to CONFIG GET dbfilename. */
static void
redis_backup_config(struct redis_check *r, const redisReply *reply)
{
	const char *argv[] = { "CONFIG", "GET", "dbfilename" };
	const redisReply *v;

	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
	    (v = reply->element[1])->type != REDIS_REPLY_STRING ||
	    v->len == 0 || memchr(v->str, '\0', v->len) != NULL) {
		redis_unexpected(r, reply);
		return;
	}
	if (r->rdb_dir[0] == '\0') {
		if (v->str[0] != '/' || v->len >= sizeof(r->rdb_dir)) {
			redis_finish(r, TROIKA_STATUS_CRITICAL,
			    TROIKA_EVIDENCE_NONE, "%s: CONFIG GET dir is not "
			    "an absolute path; set rdb_file", r->peer);
			return;
		}
		memcpy(r->rdb_dir, v->str, v->len + 1);
		redis_send(r, REDIS_STEP_CONFIG, 3, argv);
		return;
	}
	if (strchr(v->str, '/') != NULL || (size_t)snprintf(r->rdb_path,
	    sizeof(r->rdb_path), "%s/%s", r->rdb_dir, v->str) >=
	    sizeof(r->rdb_path)) {
		redis_finish(r, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_NONE,
		    "%s: CONFIG GET dbfilename is not a plain file name; set "
		    "rdb_file", r->peer);
		return;
	}
	redis_backup_store(r);
}

static void
redis_bgsave_info(struct redis_check *r)
{
	const struct redis_info *in = &r->info;
	const char *st = redis_info_get(in, "rdb_last_bgsave_status");
	const char *argv[] = { "BGSAVE" };

	if (!r->effect_sent) {
		r->effect_sent = 1;
		redis_send(r, REDIS_STEP_BGSAVE, 1, argv);
		return;
	}
	if (redis_get_int(in, "rdb_bgsave_in_progress", -1) != 0) {
		redis_pause(r, REDIS_BGSAVE_POLL_MS);
		return;
	}
	if (st != NULL && strcmp(st, "ok") == 0 && r->job == REDIS_JOB_BACKUP)
		redis_backup_saved(r);
	else if (st != NULL && strcmp(st, "ok") == 0)
		redis_finish(r, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE,
		    "%sbgsave done after %.0f ms, lastsave %lld",
		    r->already_running ? "a running " : "",
		    redis_elapsed_ms(r),
		    (long long)redis_get_int(in, "rdb_last_save_time", -1));
	else
		redis_finish(r, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_NONE,
		    "%sbgsave failed (rdb_last_bgsave_status:%s)",
		    r->already_running ? "a running " : "",
		    st != NULL ? st : "missing");
}

static void
redis_got_info(struct redis_check *r)
{
	switch (r->job) {
	case REDIS_JOB_CHECK:
		redis_judge(r);
		break;
	case REDIS_JOB_ROLE:
		if (redis_info_get(&r->info, "role") == NULL)
			redis_finish(r, TROIKA_STATUS_CRITICAL,
			    TROIKA_EVIDENCE_AMBIGUOUS, "%s: INFO has no role "
			    "line", r->peer);
		else
			redis_finish(r, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE,
			    "%s: %s", r->peer, redis_role_word(
			    redis_info_get(&r->info, "role")));
		break;
	case REDIS_JOB_PROMOTE:
		redis_promote_info(r);
		break;
	case REDIS_JOB_REPLICATE:
		redis_replicate_info(r);
		break;
	case REDIS_JOB_HANDOVER:
		redis_handover_info(r);
		break;
	case REDIS_JOB_BGSAVE:
	case REDIS_JOB_BACKUP:
		redis_bgsave_info(r);
		break;
	default:
		break;
	}
}

static void
redis_reply(void *arg, const struct redisReply *reply)
{
	struct redis_check *r = arg;

	if (r->task == NULL || r->finished)
		return;
	if (reply->type == REDIS_REPLY_ERROR && r->job == REDIS_JOB_WAKE) {
		char shown[REDIS_SHOWN_MAX + 8];

		redis_shown(reply, shown, sizeof(shown));
		if (redis_error_is(reply, "LOADING")) {
			/* Up, not ready: ask again on this connection. */
			snprintf(r->wake_last, sizeof(r->wake_last), "%s",
			    shown);
			redis_pause(r, REDIS_WAKE_POLL_MS);
			return;
		}
		redis_link_discard(r);
		redis_finish(r, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_NONE,
		    "%s; then %s: %s", r->svc_msg, redis_step_names[r->step],
		    shown);
		return;
	}
	if (reply->type == REDIS_REPLY_ERROR) {
		if (r->step == REDIS_STEP_PING && redis_error_is(reply,
		    "LOADING")) {
			/* INFO answers while loading; it says how far. */
			r->loading = 1;
			redis_send_info(r, NULL);
			return;
		}
		if (r->step == REDIS_STEP_BGSAVE && reply->str != NULL &&
		    strstr(reply->str, "already in progress") != NULL) {
			r->already_running = 1;
			redis_pause(r, REDIS_BGSAVE_POLL_MS);
			return;
		}
		if (r->step == REDIS_STEP_CONFIG) {
			char shown[REDIS_SHOWN_MAX + 8];

			/* The RDB is saved; only its path is not known (a
			 * renamed CONFIG, NOPERM): the backup failed. */
			redis_shown(reply, shown, sizeof(shown));
			redis_finish(r, TROIKA_STATUS_CRITICAL,
			    TROIKA_EVIDENCE_NONE, "%s: CONFIG GET %s refused: "
			    "%s; set rdb_file", r->peer, r->rdb_dir[0] != '\0' ?
			    "dbfilename" : "dir", shown);
			return;
		}
		if (r->step == REDIS_STEP_FAILOVER) {
			char shown[REDIS_SHOWN_MAX + 8];

			/* Refused before anything changed (not a master, no
			 * such replica, a failover running already). */
			redis_shown(reply, shown, sizeof(shown));
			redis_finish(r, TROIKA_STATUS_CRITICAL,
			    TROIKA_EVIDENCE_NONE, "%s: FAILOVER TO %s %d "
			    "refused: %s", r->peer, r->target_host,
			    r->target_port, shown);
			return;
		}
		redis_error(r, reply);
		return;
	}
	switch (r->step) {
	case REDIS_STEP_AUTH:
		if (reply->type != REDIS_REPLY_STATUS) {
			redis_unexpected(r, reply);
			return;
		}
		r->ready = 1;
		redis_go(r);
		break;
	case REDIS_STEP_PING:
		if (reply->type != REDIS_REPLY_STATUS || reply->str == NULL ||
		    strcmp(reply->str, "PONG") != 0) {
			redis_unexpected(r, reply);
			return;
		}
		r->ping_s = redis_elapsed_s(&r->ping_start);
		if (r->job == REDIS_JOB_WAKE) {
			redis_finish(r, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE,
			    "%s; %s answers PING after %.0f ms", r->svc_msg,
			    r->peer, redis_elapsed_ms(r));
			return;
		}
		redis_send_info(r, NULL);
		break;
	case REDIS_STEP_INFO:
		if (redis_take_info(r, reply) == 0)
			redis_got_info(r);
		break;
	case REDIS_STEP_REPLICAOF:
	case REDIS_STEP_FAILOVER:
	case REDIS_STEP_BGSAVE:
		if (reply->type != REDIS_REPLY_STATUS) {
			redis_unexpected(r, reply);
			return;
		}
		redis_send_info(r, redis_saves(r) ? "persistence" :
		    "replication");
		break;
	case REDIS_STEP_CONFIG:
		redis_backup_config(r, reply);
		break;
	default:
		redis_unexpected(r, reply);
		break;
	}
}

static void
redis_connected(void *arg)
{
	struct redis_check *r = arg;
	const char *argv[3];
	int argc = 0;

	if (r->task == NULL || r->finished)
		return;
	if (r->password == NULL) {
		r->ready = 1;
		redis_go(r);
		return;
	}
	argv[argc++] = "AUTH";
	if (r->username != NULL)
		argv[argc++] = r->username;
	argv[argc++] = r->password;
	redis_send(r, REDIS_STEP_AUTH, argc, argv);
}

static void
redis_lost(void *arg, enum redis_loss loss, const char *why)
{
	struct redis_check *r = arg;
	enum troika_evidence ev = redis_loss_is_certain(loss) ?
	    TROIKA_EVIDENCE_CERTAIN : TROIKA_EVIDENCE_AMBIGUOUS;

	redis_link_discard(r);
	if (redis_wake_retry(r, loss == REDIS_LOSS_REFUSED ?
	    "connection refused" : why))
		return;
	/* Stopping the service closes its connections: no news. */
	if (r->task == NULL || r->finished || r->step == REDIS_STEP_SERVICE) {
		r->host->log(r->inst, TROIKA_LOG_DEBUG, "connection to %s "
		    "ended while idle (%s); it is made again at the next run",
		    r->peer, why);
		return;
	}
	if (r->step == REDIS_STEP_CONNECT && loss == REDIS_LOSS_REFUSED)
		redis_finish(r, TROIKA_STATUS_CRITICAL, ev, "connection to %s "
		    "refused", r->peer);
	else if (r->step == REDIS_STEP_CONNECT)
		redis_finish(r, TROIKA_STATUS_CRITICAL, ev, "connect to %s "
		    "failed: %s", r->peer, why);
	else
		redis_finish(r, r->effect_sent ? TROIKA_STATUS_UNKNOWN :
		    TROIKA_STATUS_CRITICAL, ev, "%s: %s (waiting for the reply "
		    "to %s)", r->peer, why, redis_step_names[r->step]);
}

static const struct redis_link_ops redis_link_ops = {
	.connected = redis_connected,
	.reply = redis_reply,
	.lost = redis_lost,
};

/* ---- running a task ---- */

/* The connection is ready: send the task's first command. */
static void
redis_go(struct redis_check *r)
{
	const char *argv[3];

	switch (r->job) {
	case REDIS_JOB_CHECK:
	case REDIS_JOB_WAKE:
		argv[0] = "PING";
		clock_gettime(CLOCK_MONOTONIC, &r->ping_start);
		redis_send(r, REDIS_STEP_PING, 1, argv);
		break;
	case REDIS_JOB_ROLE:
	case REDIS_JOB_PROMOTE:
	case REDIS_JOB_HANDOVER:
		redis_send_info(r, "replication");
		break;
	case REDIS_JOB_BGSAVE:
	case REDIS_JOB_BACKUP:
		redis_send_info(r, "persistence");
		break;
	case REDIS_JOB_REPLICATE: {
		char port[16];

		snprintf(port, sizeof(port), "%d", r->target_port);
		argv[0] = "REPLICAOF";
		argv[1] = r->target_host;
		argv[2] = port;
		r->effect_sent = 1;
		redis_send(r, REDIS_STEP_REPLICAOF, 3, argv);
		break;
	}
	default:
		break;
	}
}

/* Use the open connection, or open one. */
static void
redis_connect(struct redis_check *r)
{
	char why[160];
	int rc;

	if (r->link != NULL && !r->lost && r->ready &&
	    redis_link_usable(r->link)) {
		redis_go(r);
		return;
	}
	/* Inside check() or a timer: no link callback is running. */
	redis_link_close(r);
	r->step = REDIS_STEP_CONNECT;
	rc = redis_link_open(r->base, r->ip, r->port, r->max_reply,
	    &redis_link_ops, r, &r->link, why, sizeof(why));
	if (rc < 0 && rc != -ENOMEM && redis_wake_retry(r, rc == -ECONNREFUSED ?
	    "connection refused" : why))
		return;
	if (rc == -ECONNREFUSED)
		redis_finish(r, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_CERTAIN,
		    "connection to %s refused", r->peer);
	else if (rc == -ENOMEM)
		redis_finish(r, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "out of memory");
	else if (rc < 0)
		redis_finish(r, TROIKA_STATUS_CRITICAL,
		    TROIKA_EVIDENCE_AMBIGUOUS, "connect to %s failed: %s",
		    r->peer, why);
}

/*
 * The time a task may take: what the host allows minus a margin, so the
 * plugin's own, more telling timeout result normally arrives first.
 */
static int64_t
redis_budget_ms(int64_t remaining)
{
	int64_t margin = remaining / 10;

	if (margin > 100)
		margin = 100;
	return remaining - margin > 1 ? remaining - margin : 1;
}

static int
redis_task_begin(struct redis_check *r, struct troika_task *task,
    enum redis_job job)
{
	struct timeval tv;

	r->task = task;
	r->job = job;
	r->step = REDIS_STEP_NONE;
	r->finished = 0;
	r->effect_sent = 0;
	r->ping_s = -1;
	r->loading = 0;
	r->already_running = 0;
	r->have_info = 0;
	r->backup_set[0] = '\0';
	clock_gettime(CLOCK_MONOTONIC, &r->start);
	r->budget_ms = redis_budget_ms(r->host->task_remaining_ms(task));
	tv.tv_sec = r->budget_ms / 1000;
	tv.tv_usec = (r->budget_ms % 1000) * 1000;
	if (evtimer_add(r->timer, &tv) == -1) {
		redis_finish(r, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "cannot add a timer");
		return -ENOMEM;
	}
	return 0;
}

static void
redis_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct redis_check *r = arg;
	long long ms = (long long)r->budget_ms;
	enum redis_step step = r->step;

	(void)fd;
	(void)what;
	if (r->task == NULL || r->finished)
		return;
	/* A reply may still come: this connection is out of step. */
	if (step != REDIS_STEP_PAUSE && step != REDIS_STEP_SERVICE &&
	    step != REDIS_STEP_STORE)
		redis_link_close(r);
	if (step == REDIS_STEP_CONNECT)
		redis_finish(r, TROIKA_STATUS_CRITICAL,
		    TROIKA_EVIDENCE_AMBIGUOUS, "connect to %s timed out after "
		    "%lld ms", r->peer, ms);
	else if (r->job == REDIS_JOB_PROMOTE && r->effect_sent)
		redis_finish(r, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "%s: REPLICAOF NO ONE sent, but no role:master within "
		    "%lld ms", r->peer, ms);
	else if (r->job == REDIS_JOB_REPLICATE && r->effect_sent)
		redis_finish(r, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "%s: REPLICAOF %s %d sent, but the link is not up within "
		    "%lld ms", r->peer, r->target_host, r->target_port, ms);
	else if (r->job == REDIS_JOB_HANDOVER && r->effect_sent)
		redis_finish(r, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "%s: FAILOVER TO %s %d sent, but it had not ended within "
		    "%lld ms", r->peer, r->target_host, r->target_port, ms);
	else if (r->job == REDIS_JOB_BACKUP && step == REDIS_STEP_STORE)
		redis_finish(r, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "%s had not ended after %lld ms; stopped",
		    r->backup_program, ms);
	else if (redis_saves(r) && r->effect_sent &&
	    step != REDIS_STEP_CONFIG)
		redis_finish(r, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "%s: bgsave still running after %lld ms", r->peer, ms);
	else if (r->job == REDIS_JOB_WAKE)
		redis_finish(r, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "%s, but %s did not answer PING within %lld ms (last: %s)",
		    r->svc_msg, r->peer, ms, r->wake_last);
	else if (step == REDIS_STEP_SERVICE)
		redis_finish(r, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "%s: the service manager did not answer within %lld ms",
		    r->op, ms);
	else
		redis_finish(r, r->effect_sent ? TROIKA_STATUS_UNKNOWN :
		    TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_AMBIGUOUS,
		    "no reply to %s from %s within %lld ms",
		    redis_step_names[step], r->peer, ms);
}

static void
redis_check(void *state, struct troika_task *task)
{
	struct redis_check *r = state;

	if (redis_task_begin(r, task, REDIS_JOB_CHECK) == 0)
		redis_connect(r);
}

/* ---- actions ---- */

static void
redis_call_unlink(struct redis_service_call *call)
{
	struct redis_service_call **pp;

	for (pp = &call->r->calls; *pp != NULL; pp = &(*pp)->next)
		if (*pp == call) {
			*pp = call->next;
			return;
		}
}

static void
redis_service_done(int ok, const char *message, void *arg)
{
	struct redis_service_call *call = arg;
	struct redis_check *r = call->r;
	int abandoned = call->abandoned;
	struct timeval now = { 0, 0 };

	redis_call_unlink(call);
	free(call);
	if (abandoned)
		return; /* the task was cancelled */
	r->svc = NULL;
	/* The host's messages name the operation already ("start: ..."). */
	if (message != NULL && *message != '\0')
		snprintf(r->svc_msg, sizeof(r->svc_msg), "%s", message);
	else
		snprintf(r->svc_msg, sizeof(r->svc_msg), "%s: %s", r->op,
		    ok ? "done" : "failed");
	/* Whatever happened, the old connection is of no use now. */
	redis_link_close(r);
	if (!ok || strcmp(r->op, "stop") == 0) {
		redis_finish(r, ok ? TROIKA_STATUS_OK : TROIKA_STATUS_CRITICAL,
		    TROIKA_EVIDENCE_NONE, "%s", r->svc_msg);
		return;
	}
	/*
	 * Started: done once Redis answers. A service manager's "ok" may
	 * only mean that a daemonizing command returned.
	 */
	r->job = REDIS_JOB_WAKE;
	snprintf(r->wake_last, sizeof(r->wake_last), "no answer yet");
	r->step = REDIS_STEP_PAUSE;
	evtimer_add(r->poll, &now);
}

static void
redis_service(struct redis_check *r, const char *op)
{
	struct redis_service_call *call;
	int rc;

	snprintf(r->op, sizeof(r->op), "%s", op);
	if ((call = calloc(1, sizeof(*call))) == NULL) {
		redis_finish(r, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    "out of memory");
		return;
	}
	call->r = r;
	r->step = REDIS_STEP_SERVICE;
	rc = r->host->service_control(r->inst, op, r->budget_ms,
	    redis_service_done, call);
	if (rc < 0) {
		/* done will not be called. */
		free(call);
		if (rc == -ENOENT)
			redis_finish(r, TROIKA_STATUS_CRITICAL,
			    TROIKA_EVIDENCE_NONE, "no service manager "
			    "configured for this check");
		else
			redis_finish(r, TROIKA_STATUS_CRITICAL,
			    TROIKA_EVIDENCE_NONE, "%s: the service manager "
			    "refused: %s", op, strerror(-rc));
		return;
	}
	call->next = r->calls;
	r->calls = call;
	r->svc = call;
}

/* A replicate target: a host Redis can use (it resolves names itself). */
static int
redis_parse_target(struct redis_check *r, const char *host, const char *port)
{
	char *end;
	long p;

	if (*host == '\0' || strlen(host) >= sizeof(r->target_host) ||
	    strcasecmp(host, "no") == 0)
		return -EINVAL;
	for (const char *s = host; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return -EINVAL;
	errno = 0;
	p = strtol(port, &end, 10);
	if (errno != 0 || *port == '\0' || *end != '\0' || p < 1 || p > 65535)
		return -EINVAL;
	snprintf(r->target_host, sizeof(r->target_host), "%s", host);
	r->target_port = (int)p;
	return 0;
}

/* handover's timeout_ms: 1 ms to an hour. */
static int
redis_parse_ms(const char *s, int64_t *ret)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || v < 1 ||
	    v > 3600000)
		return -EINVAL;
	*ret = v;
	return 0;
}

static void
redis_action(void *state, struct troika_task *task, const char *name,
    const char *const *argv, size_t argc)
{
	struct redis_check *r = state;
	enum redis_job job;

	if (strcmp(name, "role") == 0)
		job = REDIS_JOB_ROLE;
	else if (strcmp(name, "promote") == 0)
		job = REDIS_JOB_PROMOTE;
	else if (strcmp(name, "replicate") == 0)
		job = REDIS_JOB_REPLICATE;
	else if (strcmp(name, "handover") == 0)
		job = REDIS_JOB_HANDOVER;
	else if (strcmp(name, "bgsave") == 0)
		job = REDIS_JOB_BGSAVE;
	else if (strcmp(name, "backup") == 0)
		job = REDIS_JOB_BACKUP;
	else
		job = REDIS_JOB_SERVICE;
	if (redis_task_begin(r, task, job) < 0)
		return;
	if (job == REDIS_JOB_SERVICE) {
		if (strcmp(name, "start") != 0 && strcmp(name, "stop") != 0 &&
		    strcmp(name, "restart") != 0) {
			redis_finish(r, TROIKA_STATUS_CRITICAL,
			    TROIKA_EVIDENCE_NONE, "unknown action %s", name);
			return;
		}
		redis_service(r, name);
		return;
	}
	if (job == REDIS_JOB_BACKUP && r->backup_dir == NULL) {
		redis_finish(r, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_NONE,
		    "backup: no backup_dir configured for this check");
		return;
	}
	if (job == REDIS_JOB_REPLICATE && (argc != 2 ||
	    redis_parse_target(r, argv[0], argv[1]) < 0)) {
		redis_finish(r, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_NONE,
		    "replicate: expected <host> <port> (port 1..65535; use "
		    "promote for NO ONE)");
		return;
	}
	if (job == REDIS_JOB_HANDOVER && (argc != 3 ||
	    redis_parse_target(r, argv[0], argv[1]) < 0 ||
	    redis_parse_ms(argv[2], &r->handover_ms) < 0)) {
		redis_finish(r, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_NONE,
		    "handover: expected <host> <port> <timeout_ms> (port "
		    "1..65535, timeout_ms 1..3600000)");
		return;
	}
	redis_connect(r);
}

/* ---- cancel and teardown ---- */

static void
redis_cancel(void *state, struct troika_task *task)
{
	struct redis_check *r = state;

	if (r->task != task)
		return;
	/* A reply still due would arrive out of step: start afresh. */
	if (r->lost || !r->ready || redis_link_busy(r->link))
		redis_link_close(r);
	redis_task_clear(r);
}

static void
redis_instance_free(void *state)
{
	struct redis_check *r = state;

	if (r == NULL)
		return;
	redis_task_clear(r);
	redis_link_close(r);
	/* The host never calls done for a freed check. */
	while (r->calls != NULL) {
		struct redis_service_call *call = r->calls;

		r->calls = call->next;
		free(call);
	}
	if (r->timer != NULL)
		event_free(r->timer);
	if (r->poll != NULL)
		event_free(r->poll);
	if (r->defer != NULL)
		event_free(r->defer);
	free(r->username);
	free(r->password);
	free(r->backup_dir);
	free(r->backup_program);
	free(r->rdb_check);
	free(r->rdb_file);
	free(r);
}

static const struct troika_plugin redis_plugin = {
	.abi_major = TROIKA_PLUGIN_ABI_MAJOR,
	.abi_minor = TROIKA_PLUGIN_ABI_MINOR,
	.size = sizeof(struct troika_plugin),
	.name = "redis",
	.version = TROIKA_VERSION,
	.description = "Redis health, replication and persistence; failover "
	    "and backup actions",
	.exec_model = TROIKA_EXEC_ASYNC,
	.options = redis_options,
	.instance_new = redis_instance_new,
	.instance_free = redis_instance_free,
	.check = redis_check,
	.cancel = redis_cancel,
	.actions = redis_actions,
	.action = redis_action,
};

__attribute__((visibility("default"))) const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void);

const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void)
{
	return &redis_plugin;
}
