/*
 * etcd_client: an asynchronous etcd v3 client on the coordinator's
 * libevent loop (issue 5: opinions, the leader lease, action records and
 * watches live in etcd).
 *
 * Transport decision: troika-coord speaks etcd's native gRPC API
 * (proto/etcd/, paths "/etcdserverpb.KV/Range", ...) with troika's own
 * gRPC client (core/lib/grpc_client.h), not the JSON gateway, because
 *  - one transport and one failure model for everything troika talks:
 *    deadlines, status codes, keepalive, GOAWAY, as for agents;
 *  - watches and lease keep-alives are long-lived bidi streams, which map
 *    onto gRPC calls directly instead of chunked JSON lines;
 *  - no base64 and JSON on hot paths (every key and value is base64 in
 *    the gateway, int64 come back as strings, zero fields are omitted);
 *  - require-leader is plain metadata, "hasleader: true";
 *  - etcd becomes a real-world interop peer of our client, as the issue
 *    asks.
 *
 * Connection: one HTTP/2 connection at a time, to one of the endpoints
 * ("host:port", the local member first). The client moves on to the next
 * endpoint when the connection fails (refused, lost, keepalive PING
 * unanswered), when the member answers "etcdserver: no leader", and after
 * `deadlines_to_switch` unary calls in a row ran out of time (a lease
 * keep-alive unanswered for call_timeout_ms counts as one). Once every
 * endpoint failed in turn without serving a single call, it waits a
 * jittered backoff (backoff_initial_ms doubling towards backoff_max_ms)
 * before the next round; a successful reply ends the round.
 *
 * Unary calls (range, put, delete, txn, lease grant and revoke) carry
 * their own deadline (call_timeout_ms, 1 s by default) and the metadata
 * "hasleader: true", so a member without a leader answers UNAVAILABLE
 * "etcdserver: no leader" at once (TESTENV.md: 16 ms instead of etcd's
 * 7 s request timeout). Every call ends exactly once with a gRPC status
 * and message; it is never retried silently, except that a request which
 * never reached a server (its connection failed before the HTTP/2
 * handshake) is sent again on the next endpoint within its deadline.
 * While the client waits between rounds, new calls fail at once with
 * UNAVAILABLE and a summary of what every endpoint said last.
 * Serializable ranges are the exception: served by a member alone, they
 * go without "hasleader", wait for the next connection within their
 * deadline, and their success does not count as the member serving.
 *
 * Leases: etcd_lease_keepalive() renews a granted lease on a
 * LeaseKeepAlive stream every TTL/3 and tells its owner it lost the lease
 * (etcd answered TTL 0, or no renewal was answered in time) no later than
 * etcd would let it expire: the expiry is counted from the moment the
 * last answered request was *sent*, minus lease_margin_ms.
 *
 * Watches: etcd_watch() delivers events in revision order; a broken
 * stream (connection lost, endpoint switched, member without a leader) is
 * re-created from the last delivered revision + 1, so no event is lost
 * and none is delivered twice. A watch whose revision was compacted ends
 * with the compact revision: its owner must read afresh.
 *
 * Every callback runs from the loop, never from inside an etcd_* call.
 * Results point into the reply and are valid during the callback only.
 */
#ifndef TROIKA_ETCD_CLIENT_H
#define TROIKA_ETCD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
struct etcd_client;
struct etcd_call;
struct etcd_lease;
struct etcd_watch;

struct etcd_client_config {
	/* "host:port" ("[v6]:port"), the local member first; copied. */
	const char *const *endpoints;
	size_t nendpoints;
	int64_t call_timeout_ms;      /* each unary call; default 1000 */
	int64_t connect_timeout_ms;   /* TCP + HTTP/2 SETTINGS; default 1000 */
	/*
	 * PING after this much silence while calls are open; default 5000.
	 * etcd (grpc-go) answers PINGs more frequent than every 5 s with
	 * GOAWAY too_many_pings.
	 */
	int64_t keepalive_ms;
	int64_t keepalive_timeout_ms; /* default 2000 */
	int64_t backoff_initial_ms;   /* default 100 */
	int64_t backoff_max_ms;       /* default 2000 */
	/*
	 * Unary DEADLINE_EXCEEDED (or keep-alives as late) in a row that make
	 * it switch; default 2, 0 never.
	 */
	unsigned deadlines_to_switch;
	/* A lease is given up this long before etcd would expire it; 100. */
	int64_t lease_margin_ms;
	void *tls;       /* SSL_CTX * (grpc_tls_client_ctx()), NULL for h2c */
	void *dns_base;  /* struct evdns_base *, as grpc_client_config */
};

void etcd_client_config_default(struct etcd_client_config *cfg);

/*
 * A client; it connects to the first endpoint from the loop at once.
 * Returns NULL with errno EINVAL (no endpoint, or one that is not
 * host:port) or ENOMEM.
 */
struct etcd_client *etcd_client_new(struct event_base *base,
    const struct etcd_client_config *cfg);

/*
 * Close everything. Pending calls end without their callback; leases and
 * watches still open are freed too (their owners must not use them
 * afterwards). Not from inside a callback of this client. NULL is fine.
 */
void etcd_client_free(struct etcd_client *ec);

/* The loop the client runs on. */
struct event_base *etcd_client_base(const struct etcd_client *ec);

/* The endpoint in use ("host:port") and 1 once it answered a call. */
const char *etcd_client_endpoint(const struct etcd_client *ec);
int etcd_client_connected(const struct etcd_client *ec);
/* The highest header revision seen in any reply or event; 0 before. */
int64_t etcd_client_revision(const struct etcd_client *ec);

/* ---- requests and results ---- */

/* Flags of ranges, puts and deletes. */
#define ETCD_PREFIX        0x01 /* every key starting with key */
#define ETCD_SERIALIZABLE  0x02 /* range: member-local read (stale, no leader needed) */
#define ETCD_KEYS_ONLY     0x04 /* range */
#define ETCD_COUNT_ONLY    0x08 /* range */
#define ETCD_PREV_KV       0x10 /* put, delete: return what was replaced */
#define ETCD_FROM_KEY      0x20 /* every key >= key (range_end "\0") */

enum etcd_op_type {
	ETCD_OP_RANGE,
	ETCD_OP_PUT,
	ETCD_OP_DELETE,
	ETCD_OP_TXN,
	ETCD_OP_LEASE_GRANT,
	ETCD_OP_LEASE_REVOKE,
	ETCD_OP_MAX,
};

/* "range", "put", "delete", "txn", "lease_grant", "lease_revoke". */
const char *etcd_op_str(enum etcd_op_type op);

/* One operation: alone, or inside a transaction (RANGE, PUT, DELETE). */
struct etcd_op {
	enum etcd_op_type type;
	const char *key;         /* text; etcd keys are bytes, ours are text */
	int flags;               /* ETCD_* above */
	const void *value;       /* put */
	size_t value_len;
	int64_t lease;           /* put: 0 for none */
	int64_t limit;           /* range: 0 for no limit */
};

enum etcd_cmp_target {
	ETCD_CMP_VERSION,
	ETCD_CMP_CREATE,         /* create_revision */
	ETCD_CMP_MOD,            /* mod_revision */
	ETCD_CMP_VALUE,
	ETCD_CMP_LEASE,
};

enum etcd_cmp_result {
	ETCD_CMP_EQUAL,
	ETCD_CMP_GREATER,
	ETCD_CMP_LESS,
	ETCD_CMP_NOT_EQUAL,
};

/* key's target compared with number (or value): "key.target result arg". */
struct etcd_cmp {
	const char *key;
	enum etcd_cmp_target target;
	enum etcd_cmp_result result;
	int64_t number;          /* version, create/mod revision, lease */
	const void *value;       /* ETCD_CMP_VALUE */
	size_t value_len;
};

/* A record as etcd keeps it; pointers into the reply. */
struct etcd_kv {
	const uint8_t *key;
	size_t key_len;
	const uint8_t *value;
	size_t value_len;
	int64_t create_revision;
	int64_t mod_revision;
	int64_t version;
	int64_t lease;
};

/*
 * The outcome of a call, or of one operation of a transaction (ops[]).
 * Everything but status and message is zero unless status is OK.
 */
struct etcd_result {
	enum etcd_op_type op;
	int status;              /* GRPC_STATUS_* */
	const char *message;     /* "" when OK */
	int64_t revision;        /* the header's: the store's revision */
	uint64_t member_id;
	uint64_t raft_term;
	int64_t elapsed_ms;      /* from the request to this result */
	int64_t issued_ms;       /* monotonic ms when the request was made */
	/* range: the records; put: prev_kv (0 or 1); delete: prev_kvs. */
	const struct etcd_kv *kvs;
	size_t nkvs;
	int64_t count;           /* range */
	int more;                /* range */
	int64_t deleted;         /* delete */
	int succeeded;           /* txn: the compares held */
	const struct etcd_result *ops; /* txn: the branch's results */
	size_t nops;
	int64_t lease_id;        /* lease grant */
	int64_t lease_ttl;       /* lease grant: seconds, as etcd chose */
};

typedef void (*etcd_result_cb)(const struct etcd_result *r, void *arg);

/*
 * Start one operation (RANGE, PUT or DELETE). cb is called exactly once,
 * from the loop, unless the call is cancelled. ret_call (may be NULL)
 * receives a handle for etcd_call_cancel(), valid until cb runs. Returns
 * 0, -EINVAL (no key, a bad type or flags) or -ENOMEM.
 */
int etcd_do(struct etcd_client *ec, const struct etcd_op *op,
    etcd_result_cb cb, void *arg, struct etcd_call **ret_call);

/* Shorthands for etcd_do(). */
int etcd_range(struct etcd_client *ec, const char *key, int flags,
    etcd_result_cb cb, void *arg, struct etcd_call **ret_call);
int etcd_put(struct etcd_client *ec, const char *key, const void *value,
    size_t value_len, int64_t lease, int flags, etcd_result_cb cb, void *arg,
    struct etcd_call **ret_call);
int etcd_delete(struct etcd_client *ec, const char *key, int flags,
    etcd_result_cb cb, void *arg, struct etcd_call **ret_call);

/*
 * If every compare holds, run success[] in order, else failure[]; the
 * result's succeeded says which, ops[] holds their results. Returns as
 * etcd_do().
 */
int etcd_txn(struct etcd_client *ec, const struct etcd_cmp *cmps,
    size_t ncmps, const struct etcd_op *success, size_t nsuccess,
    const struct etcd_op *failure, size_t nfailure, etcd_result_cb cb,
    void *arg, struct etcd_call **ret_call);

/* A lease of ttl_s seconds (etcd may raise it to its minimum, 3 s here). */
int etcd_lease_grant(struct etcd_client *ec, int64_t ttl_s,
    etcd_result_cb cb, void *arg, struct etcd_call **ret_call);
/* Revoke: every key attached to it is deleted. */
int etcd_lease_revoke(struct etcd_client *ec, int64_t id, etcd_result_cb cb,
    void *arg, struct etcd_call **ret_call);

/*
 * Forget a call: its callback will not run. The request may still take
 * effect at etcd.
 */
void etcd_call_cancel(struct etcd_call *call);

/* ---- lease keep-alive ---- */

struct etcd_lease_handler {
	/*
	 * The lease is lost or about to be: etcd answered TTL 0, or no
	 * renewal was answered in time. Called once; the keep-alive has
	 * stopped, the owner frees the object (here or later).
	 */
	void (*lost)(struct etcd_lease *l, const char *reason, void *arg);
	/* Optional: a renewal was answered; ttl_s as etcd said. */
	void (*renewed)(struct etcd_lease *l, int64_t ttl_s, void *arg);
};

/*
 * Keep lease id (granted for ttl_s seconds by a request issued at
 * granted_ms, the result's issued_ms) alive on a LeaseKeepAlive stream,
 * renewing every TTL/3. handler must outlive the object. Returns NULL
 * with errno EINVAL or ENOMEM.
 */
struct etcd_lease *etcd_lease_keepalive(struct etcd_client *ec, int64_t id,
    int64_t ttl_s, int64_t granted_ms, const struct etcd_lease_handler *h,
    void *arg);

int64_t etcd_lease_id(const struct etcd_lease *l);
/* 1 until lost. */
int etcd_lease_alive(const struct etcd_lease *l);
/* Monotonic ms by which the lease is given up without a renewal. */
int64_t etcd_lease_deadline_ms(const struct etcd_lease *l);

/*
 * Stop renewing (the lease then expires at etcd after its TTL; revoke it
 * first to end it at once). Also from inside its own callbacks. NULL is
 * fine.
 */
void etcd_lease_free(struct etcd_lease *l);

/* ---- watches ---- */

enum etcd_event_type {
	ETCD_EVENT_PUT = 0,
	ETCD_EVENT_DELETE = 1,
};

struct etcd_event {
	enum etcd_event_type type;
	/* DELETE: the key, mod_revision = the revision of the delete. */
	struct etcd_kv kv;
	const struct etcd_kv *prev_kv; /* NULL unless asked for and known */
	int64_t revision;              /* kv.mod_revision */
};

struct etcd_watch_handler {
	/* One event; events come in revision order, each once. */
	void (*event)(struct etcd_watch *w, const struct etcd_event *ev,
	    void *arg);
	/*
	 * The watch ended and will not resume: compact_revision > 0 when the
	 * revision to resume from was compacted (read afresh, then watch from
	 * the read's revision + 1), else etcd cancelled it (reason). The
	 * owner frees the object.
	 */
	void (*ended)(struct etcd_watch *w, int64_t compact_revision,
	    const char *reason, void *arg);
	/*
	 * Optional: the watch is (re-)established at etcd; revision is the
	 * store's revision then. Events after it will come.
	 */
	void (*synced)(struct etcd_watch *w, int64_t revision, void *arg);
};

/*
 * Watch key (flags ETCD_PREFIX or ETCD_FROM_KEY for a range, ETCD_PREV_KV
 * for the previous records) from start_revision (inclusive; 0: from
 * now). handler must outlive the object. Returns NULL with errno EINVAL
 * or ENOMEM.
 */
struct etcd_watch *etcd_watch(struct etcd_client *ec, const char *key,
    int flags, int64_t start_revision, const struct etcd_watch_handler *h,
    void *arg);

/* The revision the watch resumes from if its stream breaks now. */
int64_t etcd_watch_next_revision(const struct etcd_watch *w);
/* Times the stream was re-created after a break. */
uint64_t etcd_watch_restarts(const struct etcd_watch *w);

/* Stop watching. Also from inside its own callbacks. NULL is fine. */
void etcd_watch_free(struct etcd_watch *w);

/* ---- metrics ---- */

/*
 * Prometheus families for coord_metrics.c:
 * troika_coord_etcd_requests_total{op,grpc_code},
 * troika_coord_etcd_request_duration_seconds{op} (histogram),
 * troika_coord_etcd_connected{endpoint},
 * troika_coord_etcd_endpoint_switches_total,
 * troika_coord_etcd_revision, troika_coord_etcd_leases,
 * troika_coord_etcd_lease_renewals_total,
 * troika_coord_etcd_leases_lost_total, troika_coord_etcd_watches{state},
 * troika_coord_etcd_watch_events_total,
 * troika_coord_etcd_watch_restarts_total,
 * troika_coord_etcd_watches_compacted_total.
 */
void etcd_client_write_metrics(const struct etcd_client *ec,
    struct evbuffer *out);

/* ---- building blocks, public for the unit tests ---- */

/*
 * The range_end that makes [key, range_end) the keys with this prefix:
 * the prefix with its last byte below 0xff incremented and what follows
 * dropped; "\0" (every key >= prefix) when all bytes are 0xff or the
 * prefix is empty. Stores a malloc'ed buffer. Returns 0 or -ENOMEM.
 */
int etcd_prefix_end(const uint8_t *prefix, size_t len, uint8_t **ret_end,
    size_t *ret_len);

/*
 * Pack an operation, or a transaction, as etcd's request message
 * (RangeRequest, PutRequest, DeleteRangeRequest, TxnRequest). Stores a
 * malloc'ed buffer. Returns 0, -EINVAL or -ENOMEM.
 */
int etcd_pack_op(const struct etcd_op *op, uint8_t **ret_buf,
    size_t *ret_len);
int etcd_pack_txn(const struct etcd_cmp *cmps, size_t ncmps,
    const struct etcd_op *success, size_t nsuccess,
    const struct etcd_op *failure, size_t nfailure, uint8_t **ret_buf,
    size_t *ret_len);

/*
 * When a lease renewed by a request sent at sent_ms, with etcd's answer
 * ttl_s, is to be given up: sent_ms + ttl_s s - margin_ms (never before
 * sent_ms). etcd counts the TTL from when it received the request, which
 * is later than sent_ms: the estimate never outlives the real lease.
 */
int64_t etcd_lease_expiry_ms(int64_t sent_ms, int64_t ttl_s,
    int64_t margin_ms);

/* Renew every TTL/3, at least every 100 ms apart; in ms. */
int64_t etcd_lease_renew_interval_ms(int64_t ttl_s);

#endif
