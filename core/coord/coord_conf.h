/*
 * troika-coord's configuration: a YAML file (core/lib/yaml_tree) with
 *   node:    { name: coord-1 }          default: the host name
 *   listen:  "127.0.0.1:7443"           gRPC, host:port (required)
 *   metrics: { listen: "127.0.0.1:9465" }  /metrics and /healthz; optional
 *   log:     { level: info, target: stderr|syslog }
 *   agents:  { heartbeat: 5s, timeout: 15s }  heartbeat: told to agents in
 *            Welcome, and sent by the coordinator on a stream it had
 *            nothing else to send on for that long; timeout: a stream
 *            silent that long is ended (UNAVAILABLE), its node disconnected;
 *            default three heartbeats
 *   tls:     { cert: FILE, key: FILE, ca: FILE }  optional; ca: mutual TLS
 *   store:   local | etcd               where opinions, the leader and
 *            action records live (local: this coordinator alone, no quorum)
 *   etcd:    { endpoints: [host:port, ...], prefix: /troika, timeout: 1s,
 *              lease_ttl: 5s }          store etcd only
 *   state_file: FILE                    store local only; default: memory
 *   quorum:  2                          opinions that must agree
 *   recovery: { max_concurrent: 1, max_per_hour: 10,
 *               nodes: { down_after: 10s }, policies: [ ... ],
 *               clusters: [ ... ] }
 *   tilt:    { stall: 2s, clock_jump: 5s, grace: 30s }
 *   alerts:  { hooks: [ {name, kind, url | argv, ...} ] }  (alert.h)
 * The fields below say each key's default and range.
 * Unknown keys and bad values are errors "file:line:col: what"; every
 * problem is reported, not only the first.
 */
#ifndef TROIKA_COORD_CONF_H
#define TROIKA_COORD_CONF_H

#include <stdint.h>
#include <stdio.h>

#include "alert.h"
#include "log.h"

#define COORD_CONF_HEARTBEAT_MS 5000
#define COORD_CONF_MIN_HEARTBEAT_MS 100
#define COORD_CONF_MAX_HEARTBEAT_MS (60 * 60 * 1000)

/*
 * Policy limits that are not in the field comments: at most this many
 * policies, ladder steps and etcd endpoints, and this long an action name.
 */
#define COORD_CONF_MAX_POLICIES 256
#define COORD_CONF_MAX_LADDER 32
#define COORD_CONF_MAX_ACTION_NAME 64
#define COORD_CONF_MAX_ENDPOINTS 16
#define COORD_CONF_MAX_CLUSTERS 64
#define COORD_CONF_MAX_MEMBERS 16
#define COORD_CONF_MAX_HOOKS 32

enum coord_store_kind { COORD_STORE_LOCAL = 0, COORD_STORE_ETCD = 1 };

/* "local", "etcd". */
const char *coord_store_kind_str(enum coord_store_kind kind);

/* How one kind of check is judged and recovered; first match wins. */
struct coord_policy {
	char *match;    /* fnmatch(3) glob on the check name; "*" all */
	int fail_after; /* consecutive CRITICAL; default 3, 1..100 */
	/*
	 * Consecutive certain CRITICAL; default 2 (or fail_after if that is
	 * lower), 1..100, <= fail_after.
	 */
	int certain_after;
	int64_t down_after_ms; /* no result this long = FAILED; 30s; 1s..1d */
	/*
	 * Action names in order, [a-z0-9_-]+; "alert" means: no action,
	 * alert only. Default: restart, restart, alert.
	 */
	char **ladder;
	size_t nladder;
	int max_attempts;    /* actions per window; 3, 0..100 (0: never act) */
	int64_t window_ms;   /* default 1h; 1m..7d */
	int64_t backoff_ms;  /* between two attempts; default 10s; 0..1h */
	int64_t cooldown_ms; /* after a success, nothing this long; 5m; 0..1d */
	/* Then the record stays locked until acknowledged; 2m; 1s..1h. */
	int64_t action_timeout_ms;
};

/*
 * recovery.clusters: services whose recovery is a cluster's, not one
 * node's (issue 6). A cluster's members are the check `check` on each of
 * `nodes`. galera: when every member has failed (no Primary anywhere),
 * the leader bootstraps it (coord_galera.c) instead of restarting
 * members. redis: when the primary has failed for failover_after, the
 * leader promotes the replica with the highest offset (coord_redis.c).
 */
enum coord_cluster_kind { COORD_CLUSTER_GALERA = 1, COORD_CLUSTER_REDIS };

/* "galera", "redis". */
const char *coord_cluster_kind_str(enum coord_cluster_kind kind);

struct coord_cluster {
	char *name;                 /* [a-z0-9_-]+, unique (required) */
	enum coord_cluster_kind kind; /* kind: galera (required) */
	char *check;                /* the members' check (required) */
	char **nodes;               /* 2..16 distinct node names (required) */
	size_t nnodes;
	/* The whole procedure; then its record locks. 10m; 1m..1d. */
	int64_t timeout_ms;
	/* A member whose facts could not be had is asked again after this
	 * long. 10s; 1s..1h. */
	int64_t retry_ms;
	/* redis only: the primary failed by quorum this long (its own
	 * recovery had that long) before a failover. 10s; 0..1h. */
	int64_t failover_after_ms;
};

struct coord_conf {
	char *name;
	char *listen;
	char *listen_host;
	int listen_port;
	char *metrics_listen; /* NULL: no HTTP endpoint */
	int64_t heartbeat_ms;
	int64_t agent_timeout_ms;
	int log_level;
	enum log_target log_target;
	char *tls_cert; /* all NULL: h2c */
	char *tls_key;
	char *tls_ca;
	enum coord_store_kind store; /* store: local (default) | etcd */
	/*
	 * etcd.endpoints: host:port list, required with store etcd, 1..16,
	 * no duplicates.
	 */
	char **etcd_endpoints;
	size_t netcd_endpoints;
	/* etcd.prefix: default "/troika"; starts with '/', no trailing '/'. */
	char *etcd_prefix;
	int64_t etcd_timeout_ms; /* etcd.timeout: default 1s; 100ms..10s */
	/* etcd.lease_ttl: default 5s; 2s..60s, whole seconds. */
	int64_t lease_ttl_ms;
	char *state_file; /* state_file: store local only; NULL: memory */
	/*
	 * quorum: opinions that must agree; default 2 (etcd) or 1 (local);
	 * 1..16; store local allows only 1.
	 */
	int quorum;
	/*
	 * recovery.policies in file order, then an implicit "*" with every
	 * default (last, always there: npolicies counts it).
	 */
	struct coord_policy *policies;
	size_t npolicies;
	/* recovery.nodes.down_after: default 10s; 1s..1d. */
	int64_t node_down_after_ms;
	/*
	 * recovery.nodes.load_balancer: the check (NULL: none) on each of
	 * lb_nodes (1..16) whose actions `disable <node>` and `enable
	 * <node>` take a lost node out of rotation and put it back.
	 */
	char *lb_check;
	char **lb_nodes;
	size_t nlb_nodes;
	int max_concurrent;    /* recovery.max_concurrent: default 1; 1..100 */
	int max_per_hour;      /* recovery.max_per_hour: default 10; 0..10000 */
	/* recovery.clusters in file order; no (node, check) in two. */
	struct coord_cluster *clusters;
	size_t nclusters;
	int64_t tilt_stall_ms; /* tilt.stall: default 2s; 100ms..1m */
	int64_t tilt_jump_ms;  /* tilt.clock_jump: default 5s; 100ms..1h */
	int64_t tilt_grace_ms; /* tilt.grace: default 30s; 0..1h */
	/*
	 * alerts.hooks in file order, at most 32: name [a-z0-9_-]+ unique;
	 * kind webhook | alertmanager (url http(s)://) | exec (argv, a list);
	 * min_severity info|warning|critical; kinds [a-z_]+ list; headers
	 * {Name: value} (HTTP); timeout 5s (100ms..5m); resend 1m (1s..1h,
	 * alertmanager); queue 256 (1..100000); retries 3 (0..100); backoff
	 * 1s (10ms..5m).
	 */
	struct alert_hook_conf *alert_hooks;
	size_t nalert_hooks;
};

/*
 * Parse a config text; fname names it in errors. Returns 0 with *ret_conf
 * set, or a negative errno: -EINVAL with every problem in *ret_errors
 * (lines "fname:line:col: what\n", the caller frees it), -ENOMEM.
 */
int coord_conf_parse(const char *buf, size_t len, const char *fname,
    struct coord_conf **ret_conf, char **ret_errors);

/* Read and parse a file; as above, and -errno when it cannot be read. */
int coord_conf_load(
    const char *path, struct coord_conf **ret_conf, char **ret_errors);

/* The effective configuration, as YAML that loads back to the same. */
void coord_conf_print(const struct coord_conf *conf, FILE *out);

void coord_conf_free(struct coord_conf *conf);

/* The policy for a check: the first whose match fits (never NULL). */
const struct coord_policy *coord_conf_policy(
    const struct coord_conf *c, const char *check);

/* The cluster whose member (node, check) is; NULL: none. */
const struct coord_cluster *coord_conf_cluster_of(
    const struct coord_conf *c, const char *node, const char *check);

#endif
