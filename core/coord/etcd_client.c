/*
 * The etcd v3 client (etcd_client.h): one gRPC connection at a time to one
 * of the members, unary calls with their own deadlines, LeaseKeepAlive and
 * Watch streams that survive a change of connection.
 *
 * Objects and their lifetimes: the client owns its connection (a
 * grpc_client), its calls and the lists of leases and watches. A call,
 * lease or watch with a gRPC call open is only marked when its owner lets
 * go of it, and freed once that gRPC call has closed, because close()
 * always comes later and must find it. Owners may free leases and
 * watches from their own callbacks: `busy` defers the free until the
 * callback has returned.
 */
#include "etcd_client.h"

#include <sys/queue.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "etcd/etcd.pb-c.h"
#include "grpc_client.h"
#include "log.h"
#include "metrics.h"
#include "util/parse.h"

#define ETCD_PATH_RANGE        "/etcdserverpb.KV/Range"
#define ETCD_PATH_PUT          "/etcdserverpb.KV/Put"
#define ETCD_PATH_DELETE       "/etcdserverpb.KV/DeleteRange"
#define ETCD_PATH_TXN          "/etcdserverpb.KV/Txn"
#define ETCD_PATH_WATCH        "/etcdserverpb.Watch/Watch"
#define ETCD_PATH_LEASE_GRANT  "/etcdserverpb.Lease/LeaseGrant"
#define ETCD_PATH_LEASE_REVOKE "/etcdserverpb.Lease/LeaseRevoke"
#define ETCD_PATH_KEEPALIVE    "/etcdserverpb.Lease/LeaseKeepAlive"

/* clientv3's WithRequireLeader: fail at once on a member without one. */
#define ETCD_MD_REQUIRE_LEADER "hasleader"

/* Keep-alive requests in flight on one stream (their send times). */
#define ETCD_LEASE_INFLIGHT 8

struct etcd_endpoint {
	char *name;               /* as configured */
	char host[256];
	int port;
	char last_error[160];     /* why it was left last, "" if never */
};

struct etcd_stats {
	uint64_t requests[ETCD_OP_MAX][GRPC_STATUS_MAX + 1];
	uint64_t switches;
	uint64_t lease_renewals;
	uint64_t leases_lost;
	uint64_t watch_events;
	uint64_t watch_restarts;
	uint64_t watches_compacted;
};

struct etcd_call {
	struct etcd_client *ec;
	TAILQ_ENTRY(etcd_call) entry;  /* in ec->calls */
	enum etcd_op_type op;
	uint8_t *req;
	size_t req_len;
	int64_t issued_ms;
	int64_t deadline_ms;
	struct grpc_client_call *gc;   /* in flight, NULL while waiting */
	struct grpc_client *gcl;       /* the connection it went out on */
	struct event *timer;           /* deadline while waiting; or "fail now" */
	etcd_result_cb cb;
	void *arg;
	int cancelled;
	/*
	 * A serializable range is served by the member alone: it goes
	 * without require-leader, waits for a connection even between
	 * rounds, and its success says nothing about the member's leader.
	 */
	int serializable;
	uint8_t *reply;
	size_t reply_len;
	int got_reply;
	int local_status;              /* -1, or a verdict of ours */
	char local_message[1200];
};

struct etcd_lease {
	struct etcd_client *ec;
	TAILQ_ENTRY(etcd_lease) entry;
	int64_t id;
	int64_t ttl_s;
	const struct etcd_lease_handler *h;
	void *arg;
	struct grpc_client_call *gc;
	struct event *tick_ev;
	struct event *expire_ev;
	int64_t sent[ETCD_LEASE_INFLIGHT];
	size_t nsent;
	size_t late;                   /* of those, counted as late */
	struct event *late_ev;         /* the next one turns late */
	int64_t deadline_ms;
	int alive;
	int busy;
	int dead;                      /* the owner let go */
};

struct etcd_watch {
	struct etcd_client *ec;
	TAILQ_ENTRY(etcd_watch) entry;
	char *key;
	uint8_t *end;
	size_t end_len;
	int prev_kv;
	int64_t next_rev;              /* resume from; 0: "now" */
	int64_t floor;                 /* events below are repeats */
	int64_t watch_id;
	struct grpc_client_call *gc;
	int created;                   /* on the current stream */
	int opened_once;
	int ended;
	uint64_t restarts;
	const struct etcd_watch_handler *h;
	void *arg;
	int busy;
	int dead;
};

struct etcd_client {
	struct event_base *base;
	struct etcd_client_config cfg;
	struct grpc_client_config gcfg;
	struct etcd_endpoint *eps;
	size_t neps;
	size_t cur;
	/* Endpoints that failed in a row without serving a call. */
	size_t failed_in_round;
	uint64_t rounds_failed;        /* in a row, for logs */
	struct grpc_client *cl;
	uint64_t conn_gen;             /* counts connections */
	int served;                    /* this connection answered a call */
	int waiting;                   /* between rounds: calls fail at once */
	int switching;                 /* freeing cl on purpose */
	int freeing;
	/* Unary DEADLINE_EXCEEDED and late keep-alives, in a row. */
	unsigned deadlines;
	struct grpc_backoff backoff;
	struct event *connect_ev;
	struct event *switch_ev;
	uint64_t switch_gen;
	/* A switch is coming: nothing new goes on this connection. */
	int switch_pending;
	char switch_reason[160];
	struct event *attach_ev;
	int64_t revision;
	TAILQ_HEAD(, etcd_call) calls;
	TAILQ_HEAD(, etcd_lease) leases;
	TAILQ_HEAD(, etcd_watch) watches;
	struct etcd_stats stats;
	struct metrics_histogram latency[ETCD_OP_MAX];
};

/* 0.5 ms .. 5 s: a local member answers in about a millisecond. */
static const double etcd_latency_bounds[] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5,
};

static const char *const etcd_op_names[ETCD_OP_MAX] = {
	[ETCD_OP_RANGE] = "range",
	[ETCD_OP_PUT] = "put",
	[ETCD_OP_DELETE] = "delete",
	[ETCD_OP_TXN] = "txn",
	[ETCD_OP_LEASE_GRANT] = "lease_grant",
	[ETCD_OP_LEASE_REVOKE] = "lease_revoke",
};

static void etcd_attach_soon(struct etcd_client *ec, int64_t ms);
static void etcd_call_finish(struct etcd_call *call, int status,
    const char *message);
static void etcd_lease_maybe_free(struct etcd_lease *l);
static void etcd_watch_maybe_free(struct etcd_watch *w);

const char *
etcd_op_str(enum etcd_op_type op)
{
	if ((int)op < 0 || op >= ETCD_OP_MAX)
		return "invalid";
	return etcd_op_names[op];
}

static int64_t
etcd_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
etcd_timer_ms(struct event *ev, int64_t ms)
{
	struct timeval tv;

	if (ms < 0)
		ms = 0;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(ev, &tv);
}

/* ---- building blocks ---- */

int
etcd_prefix_end(const uint8_t *prefix, size_t len, uint8_t **ret_end,
    size_t *ret_len)
{
	uint8_t *end;
	size_t n = len;

	/* Trailing 0xff bytes cannot be incremented: drop them. */
	while (n > 0 && prefix[n - 1] == 0xff)
		n--;
	if ((end = malloc(n > 0 ? n : 1)) == NULL)
		return -ENOMEM;
	if (n == 0) {
		end[0] = 0;
		*ret_end = end;
		*ret_len = 1;
		return 0;
	}
	memcpy(end, prefix, n);
	end[n - 1]++;
	*ret_end = end;
	*ret_len = n;
	return 0;
}

int64_t
etcd_lease_expiry_ms(int64_t sent_ms, int64_t ttl_s, int64_t margin_ms)
{
	int64_t ms = ttl_s * 1000 - margin_ms;

	return sent_ms + (ms > 0 ? ms : 0);
}

int64_t
etcd_lease_renew_interval_ms(int64_t ttl_s)
{
	int64_t ms = ttl_s * 1000 / 3;

	return ms < 100 ? 100 : ms;
}

/*
 * The [key, range_end) of an operation's flags. The range_end buffer is
 * malloc'ed (NULL for a single key).
 */
static int
etcd_key_range(const char *key, int flags, uint8_t **ret_end,
    size_t *ret_len)
{
	*ret_end = NULL;
	*ret_len = 0;
	if (flags & ETCD_PREFIX)
		return etcd_prefix_end((const uint8_t *)key, strlen(key),
		    ret_end, ret_len);
	if (flags & ETCD_FROM_KEY) {
		if ((*ret_end = calloc(1, 1)) == NULL)
			return -ENOMEM;
		*ret_len = 1;
	}
	return 0;
}

static ProtobufCBinaryData
etcd_bytes(const void *p, size_t len)
{
	ProtobufCBinaryData b;

	b.data = (uint8_t *)(uintptr_t)p;
	b.len = len;
	return b;
}

/*
 * A RequestOp for op, its inner request allocated in one block with it.
 * The key range end goes to *ret_end for the caller to free.
 */
static int
etcd_request_op(const struct etcd_op *op, Etcdserverpb__RequestOp **ret,
    uint8_t **ret_end)
{
	Etcdserverpb__RequestOp *ro;
	size_t end_len;
	int rc;

	*ret = NULL;
	*ret_end = NULL;
	if (op->key == NULL || op->key[0] == '\0')
		return -EINVAL;
	if ((rc = etcd_key_range(op->key, op->flags, ret_end, &end_len)) != 0)
		return rc;
	switch (op->type) {
	case ETCD_OP_RANGE: {
		struct {
			Etcdserverpb__RequestOp ro;
			Etcdserverpb__RangeRequest r;
		} *b;

		if ((b = calloc(1, sizeof(*b))) == NULL)
			goto nomem;
		etcdserverpb__request_op__init(&b->ro);
		etcdserverpb__range_request__init(&b->r);
		b->r.key = etcd_bytes(op->key, strlen(op->key));
		b->r.range_end = etcd_bytes(*ret_end, end_len);
		b->r.limit = op->limit;
		b->r.serializable = (op->flags & ETCD_SERIALIZABLE) != 0;
		b->r.keys_only = (op->flags & ETCD_KEYS_ONLY) != 0;
		b->r.count_only = (op->flags & ETCD_COUNT_ONLY) != 0;
		b->ro.request_case =
		    ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
		b->ro.request_range = &b->r;
		ro = &b->ro;
		break;
	}
	case ETCD_OP_PUT: {
		struct {
			Etcdserverpb__RequestOp ro;
			Etcdserverpb__PutRequest r;
		} *b;

		if (op->flags & (ETCD_PREFIX | ETCD_FROM_KEY))
			goto inval;
		if ((b = calloc(1, sizeof(*b))) == NULL)
			goto nomem;
		etcdserverpb__request_op__init(&b->ro);
		etcdserverpb__put_request__init(&b->r);
		b->r.key = etcd_bytes(op->key, strlen(op->key));
		b->r.value = etcd_bytes(op->value, op->value_len);
		b->r.lease = op->lease;
		b->r.prev_kv = (op->flags & ETCD_PREV_KV) != 0;
		b->ro.request_case =
		    ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
		b->ro.request_put = &b->r;
		ro = &b->ro;
		break;
	}
	case ETCD_OP_DELETE: {
		struct {
			Etcdserverpb__RequestOp ro;
			Etcdserverpb__DeleteRangeRequest r;
		} *b;

		if ((b = calloc(1, sizeof(*b))) == NULL)
			goto nomem;
		etcdserverpb__request_op__init(&b->ro);
		etcdserverpb__delete_range_request__init(&b->r);
		b->r.key = etcd_bytes(op->key, strlen(op->key));
		b->r.range_end = etcd_bytes(*ret_end, end_len);
		b->r.prev_kv = (op->flags & ETCD_PREV_KV) != 0;
		b->ro.request_case =
		    ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
		b->ro.request_delete_range = &b->r;
		ro = &b->ro;
		break;
	}
	default:
		goto inval;
	}
	*ret = ro;
	return 0;
inval:
	free(*ret_end);
	*ret_end = NULL;
	return -EINVAL;
nomem:
	free(*ret_end);
	*ret_end = NULL;
	return -ENOMEM;
}

static int
etcd_pack(const ProtobufCMessage *m, uint8_t **ret_buf, size_t *ret_len)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf;

	/* An empty message packs to nothing; malloc(0) may say NULL. */
	if ((buf = malloc(len > 0 ? len : 1)) == NULL)
		return -ENOMEM;
	protobuf_c_message_pack(m, buf);
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

int
etcd_pack_op(const struct etcd_op *op, uint8_t **ret_buf, size_t *ret_len)
{
	Etcdserverpb__RequestOp *ro;
	uint8_t *end;
	int rc;

	if ((rc = etcd_request_op(op, &ro, &end)) != 0)
		return rc;
	switch (ro->request_case) {
	case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE:
		rc = etcd_pack(&ro->request_range->base, ret_buf, ret_len);
		break;
	case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
		rc = etcd_pack(&ro->request_put->base, ret_buf, ret_len);
		break;
	default:
		rc = etcd_pack(&ro->request_delete_range->base, ret_buf,
		    ret_len);
		break;
	}
	free(ro);
	free(end);
	return rc;
}

static const Etcdserverpb__Compare__CompareTarget etcd_cmp_targets[] = {
	[ETCD_CMP_VERSION] = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION,
	[ETCD_CMP_CREATE] = ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE,
	[ETCD_CMP_MOD] = ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD,
	[ETCD_CMP_VALUE] = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE,
	[ETCD_CMP_LEASE] = ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE,
};

static const Etcdserverpb__Compare__CompareResult etcd_cmp_results[] = {
	[ETCD_CMP_EQUAL] = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL,
	[ETCD_CMP_GREATER] = ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER,
	[ETCD_CMP_LESS] = ETCDSERVERPB__COMPARE__COMPARE_RESULT__LESS,
	[ETCD_CMP_NOT_EQUAL] = ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL,
};

static int
etcd_compare(const struct etcd_cmp *c, Etcdserverpb__Compare *m)
{
	etcdserverpb__compare__init(m);
	if (c->key == NULL || c->key[0] == '\0' ||
	    (int)c->target < 0 || c->target > ETCD_CMP_LEASE ||
	    (int)c->result < 0 || c->result > ETCD_CMP_NOT_EQUAL)
		return -EINVAL;
	m->key = etcd_bytes(c->key, strlen(c->key));
	m->target = etcd_cmp_targets[c->target];
	m->result = etcd_cmp_results[c->result];
	switch (c->target) {
	case ETCD_CMP_VERSION:
		m->target_union_case =
		    ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
		m->version = c->number;
		break;
	case ETCD_CMP_CREATE:
		m->target_union_case =
		    ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
		m->create_revision = c->number;
		break;
	case ETCD_CMP_MOD:
		m->target_union_case =
		    ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
		m->mod_revision = c->number;
		break;
	case ETCD_CMP_VALUE:
		m->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
		m->value = etcd_bytes(c->value, c->value_len);
		break;
	case ETCD_CMP_LEASE:
		m->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE;
		m->lease = c->number;
		break;
	}
	return 0;
}

int
etcd_pack_txn(const struct etcd_cmp *cmps, size_t ncmps,
    const struct etcd_op *success, size_t nsuccess,
    const struct etcd_op *failure, size_t nfailure, uint8_t **ret_buf,
    size_t *ret_len)
{
	Etcdserverpb__TxnRequest txn;
	Etcdserverpb__Compare *cm = NULL, **cmp = NULL;
	Etcdserverpb__RequestOp **ops = NULL;
	uint8_t **ends = NULL;
	size_t nops = nsuccess + nfailure, i;
	int rc = -ENOMEM;

	etcdserverpb__txn_request__init(&txn);
	if ((ncmps > 0 && ((cm = calloc(ncmps, sizeof(*cm))) == NULL ||
	    (cmp = calloc(ncmps, sizeof(*cmp))) == NULL)) ||
	    (nops > 0 && ((ops = calloc(nops, sizeof(*ops))) == NULL ||
	    (ends = calloc(nops, sizeof(*ends))) == NULL)))
		goto out;
	for (i = 0; i < ncmps; i++) {
		if ((rc = etcd_compare(&cmps[i], &cm[i])) != 0)
			goto out;
		cmp[i] = &cm[i];
	}
	for (i = 0; i < nops; i++) {
		const struct etcd_op *op = i < nsuccess ? &success[i] :
		    &failure[i - nsuccess];

		if ((rc = etcd_request_op(op, &ops[i], &ends[i])) != 0)
			goto out;
	}
	txn.n_compare = ncmps;
	txn.compare = cmp;
	txn.n_success = nsuccess;
	txn.success = ops;
	txn.n_failure = nfailure;
	txn.failure = nfailure > 0 ? ops + nsuccess : NULL;
	rc = etcd_pack(&txn.base, ret_buf, ret_len);
out:
	for (i = 0; ops != NULL && i < nops; i++) {
		free(ops[i]);
		free(ends[i]);
	}
	free(ops);
	free(ends);
	free(cmp);
	free(cm);
	return rc;
}

/* ---- results ---- */

/* A block of results, freed after the callback. */
struct etcd_result_mem {
	void **blocks;
	size_t n;
};

static void *
etcd_mem_alloc(struct etcd_result_mem *mem, size_t n, size_t size)
{
	void **b;
	void *p;

	if (n == 0)
		return NULL;
	if ((p = calloc(n, size)) == NULL)
		return NULL;
	if ((b = realloc(mem->blocks, (mem->n + 1) * sizeof(*b))) == NULL) {
		free(p);
		return NULL;
	}
	mem->blocks = b;
	mem->blocks[mem->n++] = p;
	return p;
}

static void
etcd_mem_free(struct etcd_result_mem *mem)
{
	for (size_t i = 0; i < mem->n; i++)
		free(mem->blocks[i]);
	free(mem->blocks);
}

static void
etcd_kv_from(struct etcd_kv *kv, const Mvccpb__KeyValue *m)
{
	kv->key = m->key.data;
	kv->key_len = m->key.len;
	kv->value = m->value.data;
	kv->value_len = m->value.len;
	kv->create_revision = m->create_revision;
	kv->mod_revision = m->mod_revision;
	kv->version = m->version;
	kv->lease = m->lease;
}

static int
etcd_kvs_from(struct etcd_result_mem *mem, struct etcd_result *r,
    Mvccpb__KeyValue *const *kvs, size_t n)
{
	struct etcd_kv *out;

	if (n == 0)
		return 0;
	if ((out = etcd_mem_alloc(mem, n, sizeof(*out))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		etcd_kv_from(&out[i], kvs[i]);
	r->kvs = out;
	r->nkvs = n;
	return 0;
}

static void
etcd_header_from(struct etcd_result *r, const Etcdserverpb__ResponseHeader *h)
{
	if (h == NULL)
		return;
	r->revision = h->revision;
	r->member_id = h->member_id;
	r->raft_term = h->raft_term;
}

static int
etcd_range_from(struct etcd_result_mem *mem, struct etcd_result *r,
    const Etcdserverpb__RangeResponse *m)
{
	etcd_header_from(r, m->header);
	r->count = m->count;
	r->more = m->more;
	return etcd_kvs_from(mem, r, m->kvs, m->n_kvs);
}

static int
etcd_put_from(struct etcd_result_mem *mem, struct etcd_result *r,
    const Etcdserverpb__PutResponse *m)
{
	etcd_header_from(r, m->header);
	if (m->prev_kv == NULL)
		return 0;
	return etcd_kvs_from(mem, r, &m->prev_kv, 1);
}

static int
etcd_delete_from(struct etcd_result_mem *mem, struct etcd_result *r,
    const Etcdserverpb__DeleteRangeResponse *m)
{
	etcd_header_from(r, m->header);
	r->deleted = m->deleted;
	return etcd_kvs_from(mem, r, m->prev_kvs, m->n_prev_kvs);
}

static int
etcd_txn_from(struct etcd_result_mem *mem, struct etcd_result *r,
    const Etcdserverpb__TxnResponse *m)
{
	struct etcd_result *ops;
	int rc;

	etcd_header_from(r, m->header);
	r->succeeded = m->succeeded;
	if (m->n_responses == 0)
		return 0;
	if ((ops = etcd_mem_alloc(mem, m->n_responses, sizeof(*ops))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < m->n_responses; i++) {
		const Etcdserverpb__ResponseOp *ro = m->responses[i];
		struct etcd_result *o = &ops[i];

		o->status = 0;
		o->message = "";
		switch (ro->response_case) {
		case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE:
			o->op = ETCD_OP_RANGE;
			rc = etcd_range_from(mem, o, ro->response_range);
			break;
		case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT:
			o->op = ETCD_OP_PUT;
			rc = etcd_put_from(mem, o, ro->response_put);
			break;
		case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE:
			o->op = ETCD_OP_DELETE;
			rc = etcd_delete_from(mem, o, ro->response_delete_range);
			break;
		default:
			/* A nested txn: we never send one. */
			o->op = ETCD_OP_TXN;
			rc = 0;
			break;
		}
		if (rc != 0)
			return rc;
		/* Inner headers are empty: the txn's revision is theirs. */
		o->revision = r->revision;
		o->member_id = r->member_id;
		o->raft_term = r->raft_term;
	}
	r->ops = ops;
	r->nops = m->n_responses;
	return 0;
}

/* ---- connection ---- */

static void
etcd_served(struct etcd_client *ec)
{
	struct etcd_endpoint *ep = &ec->eps[ec->cur];

	if (ec->served)
		return;
	ec->served = 1;
	ec->failed_in_round = 0;
	grpc_backoff_reset(&ec->backoff);
	if (ec->rounds_failed > 0 || ep->last_error[0] != '\0')
		log_info("etcd: %s serves again", ep->name);
	ec->rounds_failed = 0;
	ep->last_error[0] = '\0';
}

static void
etcd_revision_seen(struct etcd_client *ec, int64_t rev)
{
	if (rev > ec->revision)
		ec->revision = rev;
}

/* "a: why; b: why" of the endpoints that failed, for errors. */
static void
etcd_summary(const struct etcd_client *ec, char *buf, size_t len)
{
	size_t off;

	off = (size_t)snprintf(buf, len, "no etcd endpoint usable:");
	for (size_t i = 0; i < ec->neps && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s %s: %s",
		    i == 0 ? "" : ";", ec->eps[i].name,
		    ec->eps[i].last_error[0] != '\0' ? ec->eps[i].last_error :
		    "not tried");
}

static void etcd_down_cb(struct grpc_client *cl, const char *reason,
    void *arg);

static void
etcd_connect(struct etcd_client *ec)
{
	struct etcd_endpoint *ep = &ec->eps[ec->cur];

	ec->served = 0;
	ec->deadlines = 0;
	ec->conn_gen++;
	/* A switch asked for on the previous connection is moot. */
	ec->switch_pending = 0;
	log_debug("etcd: connecting to %s", ep->name);
	ec->cl = grpc_client_connect(ec->base, ep->host, ep->port,
	    ec->cfg.tls, NULL, &ec->gcfg, etcd_down_cb, ec);
	if (ec->cl == NULL) {
		snprintf(ep->last_error, sizeof(ep->last_error),
		    "cannot make a client: %s", strerror(errno));
		/* Try again later, as if the round had failed. */
		etcd_timer_ms(ec->connect_ev, grpc_backoff_next(&ec->backoff));
		return;
	}
	etcd_attach_soon(ec, 0);
}

static void
etcd_connect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct etcd_client *ec = arg;

	(void)fd;
	(void)what;
	ec->waiting = 0;
	if (ec->cl == NULL)
		etcd_connect(ec);
}

/*
 * The current endpoint failed (its connection is gone already): the next
 * one at once, or, once every endpoint failed in turn, a pause during
 * which calls fail at once.
 */
static void
etcd_next_endpoint(struct etcd_client *ec)
{
	struct etcd_call *call, *tmp;
	char why[1024];

	ec->failed_in_round = ec->served ? 1 : ec->failed_in_round + 1;
	ec->served = 0;
	if (ec->neps > 1) {
		ec->stats.switches++;
		ec->cur = (ec->cur + 1) % ec->neps;
	}
	if (ec->failed_in_round < ec->neps) {
		event_active(ec->connect_ev, EV_TIMEOUT, 0);
		return;
	}
	ec->failed_in_round = 0;
	ec->waiting = 1;
	etcd_summary(ec, why, sizeof(why));
	if (ec->rounds_failed++ % 30 == 0)
		log_warnx("etcd: %s", why);
	etcd_timer_ms(ec->connect_ev, grpc_backoff_next(&ec->backoff));
	/* Calls waiting for a connection learn it now. */
	for (call = TAILQ_FIRST(&ec->calls); call != NULL; call = tmp) {
		tmp = TAILQ_NEXT(call, entry);
		if (call->gc == NULL && call->local_status < 0 &&
		    !call->serializable)
			etcd_call_finish(call, GRPC_STATUS_UNAVAILABLE, why);
	}
}

static void
etcd_down_cb(struct grpc_client *cl, const char *reason, void *arg)
{
	struct etcd_client *ec = arg;
	struct etcd_endpoint *ep = &ec->eps[ec->cur];

	snprintf(ep->last_error, sizeof(ep->last_error), "%s", reason);
	log_debug("etcd: %s: %s", ep->name, reason);
	grpc_client_free(cl);
	ec->cl = NULL;
	etcd_next_endpoint(ec);
}

static void
etcd_switch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct etcd_client *ec = arg;
	struct etcd_endpoint *ep = &ec->eps[ec->cur];
	struct grpc_client *cl = ec->cl;

	(void)fd;
	(void)what;
	ec->switch_pending = 0;
	/* Meant for a connection that is gone already. */
	if (cl == NULL || ec->switch_gen != ec->conn_gen)
		return;
	snprintf(ep->last_error, sizeof(ep->last_error), "%s",
	    ec->switch_reason);
	log_info("etcd: leaving %s: %s", ep->name, ec->switch_reason);
	ec->switching = 1;
	grpc_client_free(cl);
	ec->switching = 0;
	ec->cl = NULL;
	etcd_next_endpoint(ec);
}

/* Leave the current connection for the next endpoint, from the loop. */
static void
etcd_switch(struct etcd_client *ec, const char *reason)
{
	if (ec->cl == NULL)
		return;
	if (ec->switch_pending)
		return;
	ec->switch_pending = 1;
	ec->switch_gen = ec->conn_gen;
	snprintf(ec->switch_reason, sizeof(ec->switch_reason), "%s", reason);
	event_active(ec->switch_ev, EV_TIMEOUT, 0);
}

/*
 * A call ran out of time, or a keep-alive went unanswered as long: after
 * deadlines_to_switch in a row the member is left (a dead leader behind
 * it, or a connection that silently lost its peer).
 */
static void
etcd_late(struct etcd_client *ec)
{
	char why[96];

	if (ec->cfg.deadlines_to_switch == 0 ||
	    ++ec->deadlines < ec->cfg.deadlines_to_switch)
		return;
	snprintf(why, sizeof(why), "%u calls in a row exceeded their deadline",
	    ec->deadlines);
	etcd_switch(ec, why);
}

/* What a failed call says about the member it went to. */
static void
etcd_judge(struct etcd_client *ec, struct grpc_client *on, int status,
    const char *message)
{
	if (on != ec->cl)
		return;
	if (status == GRPC_STATUS_UNAVAILABLE &&
	    strstr(message, "no leader") != NULL && grpc_client_handshaken(on))
		etcd_switch(ec, message);
}

/* The connection takes new calls: up, and no switch coming. */
static int
etcd_usable(const struct etcd_client *ec)
{
	return !ec->switch_pending && grpc_client_usable(ec->cl);
}

static void etcd_call_send(struct etcd_call *call);
static void etcd_lease_open(struct etcd_lease *l);
static void etcd_watch_open(struct etcd_watch *w);

static void
etcd_attach_cb(evutil_socket_t fd, short what, void *arg)
{
	struct etcd_client *ec = arg;
	struct etcd_call *call, *ctmp;
	struct etcd_lease *l;
	struct etcd_watch *w;

	(void)fd;
	(void)what;
	if (!etcd_usable(ec))
		return;
	for (call = TAILQ_FIRST(&ec->calls); call != NULL; call = ctmp) {
		ctmp = TAILQ_NEXT(call, entry);
		if (call->gc == NULL && call->local_status < 0 &&
		    !call->cancelled)
			etcd_call_send(call);
	}
	TAILQ_FOREACH(l, &ec->leases, entry) {
		if (l->gc == NULL && l->alive && !l->dead)
			etcd_lease_open(l);
	}
	TAILQ_FOREACH(w, &ec->watches, entry) {
		if (w->gc == NULL && !w->ended && !w->dead)
			etcd_watch_open(w);
	}
}

/* Send waiting calls and open streams, now or after ms. */
static void
etcd_attach_soon(struct etcd_client *ec, int64_t ms)
{
	if (ms <= 0)
		event_active(ec->attach_ev, EV_TIMEOUT, 0);
	else if (!evtimer_pending(ec->attach_ev, NULL))
		etcd_timer_ms(ec->attach_ev, ms);
}

void
etcd_client_config_default(struct etcd_client_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->call_timeout_ms = 1000;
	cfg->connect_timeout_ms = 1000;
	cfg->keepalive_ms = 5000;
	cfg->keepalive_timeout_ms = 2000;
	cfg->backoff_initial_ms = 100;
	cfg->backoff_max_ms = 2000;
	cfg->deadlines_to_switch = 2;
	cfg->lease_margin_ms = 100;
}

struct etcd_client *
etcd_client_new(struct event_base *base, const struct etcd_client_config *cfg)
{
	struct etcd_client *ec;
	uint64_t seed;

	if (cfg == NULL || cfg->nendpoints == 0 || cfg->endpoints == NULL) {
		errno = EINVAL;
		return NULL;
	}
	if ((ec = calloc(1, sizeof(*ec))) == NULL)
		return NULL;
	ec->base = base;
	ec->cfg = *cfg;
	ec->cfg.endpoints = NULL;
	TAILQ_INIT(&ec->calls);
	TAILQ_INIT(&ec->leases);
	TAILQ_INIT(&ec->watches);
	grpc_client_config_default(&ec->gcfg);
	ec->gcfg.connect_timeout_ms = cfg->connect_timeout_ms;
	ec->gcfg.keepalive_ms = cfg->keepalive_ms;
	ec->gcfg.keepalive_timeout_ms = cfg->keepalive_timeout_ms;
	ec->gcfg.dns_base = cfg->dns_base;
	/* Coordinators started together still spread their attempts. */
	seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^
	    (uint64_t)(uintptr_t)ec;
	grpc_backoff_init(&ec->backoff, seed);
	ec->backoff.initial_ms = cfg->backoff_initial_ms > 0 ?
	    cfg->backoff_initial_ms : 100;
	ec->backoff.max_ms = cfg->backoff_max_ms >= ec->backoff.initial_ms ?
	    cfg->backoff_max_ms : ec->backoff.initial_ms;
	ec->backoff.multiplier = 2;
	grpc_backoff_reset(&ec->backoff);
	if ((ec->eps = calloc(cfg->nendpoints, sizeof(*ec->eps))) == NULL)
		goto nomem;
	ec->neps = cfg->nendpoints;
	for (size_t i = 0; i < ec->neps; i++) {
		struct etcd_endpoint *ep = &ec->eps[i];

		if (cfg->endpoints[i] == NULL ||
		    parse_hostport(cfg->endpoints[i], ep->host,
		    sizeof(ep->host), 1, &ep->port) != 0) {
			etcd_client_free(ec);
			errno = EINVAL;
			return NULL;
		}
		if ((ep->name = strdup(cfg->endpoints[i])) == NULL)
			goto nomem;
	}
	for (int op = 0; op < ETCD_OP_MAX; op++)
		if (metrics_histogram_init(&ec->latency[op],
		    etcd_latency_bounds, sizeof(etcd_latency_bounds) /
		    sizeof(etcd_latency_bounds[0])) != 0)
			goto nomem;
	if ((ec->connect_ev = evtimer_new(base, etcd_connect_cb, ec)) == NULL ||
	    (ec->switch_ev = evtimer_new(base, etcd_switch_cb, ec)) == NULL ||
	    (ec->attach_ev = evtimer_new(base, etcd_attach_cb, ec)) == NULL)
		goto nomem;
	/* The first attempt too comes from the loop. */
	event_active(ec->connect_ev, EV_TIMEOUT, 0);
	return ec;
nomem:
	etcd_client_free(ec);
	errno = ENOMEM;
	return NULL;
}

struct event_base *
etcd_client_base(const struct etcd_client *ec)
{
	return ec->base;
}

const char *
etcd_client_endpoint(const struct etcd_client *ec)
{
	return ec->eps[ec->cur].name;
}

int
etcd_client_connected(const struct etcd_client *ec)
{
	return ec->cl != NULL && ec->served && grpc_client_usable(ec->cl);
}

int64_t
etcd_client_revision(const struct etcd_client *ec)
{
	return ec->revision;
}

/* ---- unary calls ---- */

static const char *
etcd_op_path(enum etcd_op_type op)
{
	switch (op) {
	case ETCD_OP_RANGE:
		return ETCD_PATH_RANGE;
	case ETCD_OP_PUT:
		return ETCD_PATH_PUT;
	case ETCD_OP_DELETE:
		return ETCD_PATH_DELETE;
	case ETCD_OP_TXN:
		return ETCD_PATH_TXN;
	case ETCD_OP_LEASE_GRANT:
		return ETCD_PATH_LEASE_GRANT;
	default:
		return ETCD_PATH_LEASE_REVOKE;
	}
}

static void
etcd_call_free(struct etcd_call *call)
{
	if (call->timer != NULL)
		event_free(call->timer);
	free(call->req);
	free(call->reply);
	free(call);
}

/* The reply, unpacked into a result for the callback. */
static void
etcd_call_deliver(struct etcd_call *call, int status, const char *message)
{
	struct etcd_client *ec = call->ec;
	struct etcd_result_mem mem = { NULL, 0 };
	struct etcd_result r;
	ProtobufCMessage *m = NULL;
	int rc = 0;

	memset(&r, 0, sizeof(r));
	r.op = call->op;
	r.status = status;
	r.message = message;
	r.issued_ms = call->issued_ms;
	r.elapsed_ms = etcd_now_ms() - call->issued_ms;
	if (status == GRPC_STATUS_OK) {
		const ProtobufCMessageDescriptor *d;

		switch (call->op) {
		case ETCD_OP_RANGE:
			d = &etcdserverpb__range_response__descriptor;
			break;
		case ETCD_OP_PUT:
			d = &etcdserverpb__put_response__descriptor;
			break;
		case ETCD_OP_DELETE:
			d = &etcdserverpb__delete_range_response__descriptor;
			break;
		case ETCD_OP_TXN:
			d = &etcdserverpb__txn_response__descriptor;
			break;
		case ETCD_OP_LEASE_GRANT:
			d = &etcdserverpb__lease_grant_response__descriptor;
			break;
		default:
			d = &etcdserverpb__lease_revoke_response__descriptor;
			break;
		}
		m = protobuf_c_message_unpack(d, NULL, call->reply_len,
		    call->reply);
		if (m == NULL) {
			rc = -EBADMSG;
		} else {
			switch (call->op) {
			case ETCD_OP_RANGE:
				rc = etcd_range_from(&mem, &r, (void *)m);
				break;
			case ETCD_OP_PUT:
				rc = etcd_put_from(&mem, &r, (void *)m);
				break;
			case ETCD_OP_DELETE:
				rc = etcd_delete_from(&mem, &r, (void *)m);
				break;
			case ETCD_OP_TXN:
				rc = etcd_txn_from(&mem, &r, (void *)m);
				break;
			case ETCD_OP_LEASE_GRANT: {
				Etcdserverpb__LeaseGrantResponse *g =
				    (void *)m;

				etcd_header_from(&r, g->header);
				r.lease_id = g->id;
				r.lease_ttl = g->ttl;
				if (g->error != NULL && g->error[0] != '\0') {
					r.status = GRPC_STATUS_UNKNOWN;
					r.message = g->error;
				}
				break;
			}
			default:
				etcd_header_from(&r,
				    ((Etcdserverpb__LeaseRevokeResponse *)
				    (void *)m)->header);
				break;
			}
		}
		if (rc != 0) {
			etcd_mem_free(&mem);
			memset(&mem, 0, sizeof(mem));
			memset(&r, 0, sizeof(r));
			r.op = call->op;
			r.issued_ms = call->issued_ms;
			r.elapsed_ms = etcd_now_ms() - call->issued_ms;
			r.status = rc == -ENOMEM ? GRPC_STATUS_RESOURCE_EXHAUSTED :
			    GRPC_STATUS_INTERNAL;
			r.message = rc == -ENOMEM ? "out of memory" :
			    "cannot parse etcd's reply";
		}
		etcd_revision_seen(ec, r.revision);
	}
	ec->stats.requests[call->op][r.status]++;
	metrics_histogram_observe(&ec->latency[call->op],
	    (double)r.elapsed_ms / 1000.0);
	call->cb(&r, call->arg);
	etcd_mem_free(&mem);
	if (m != NULL)
		protobuf_c_message_free_unpacked(m, NULL);
}

static void
etcd_unary_message(struct grpc_client_call *gc, const uint8_t *msg,
    size_t len, void *arg)
{
	struct etcd_call *call = arg;

	(void)gc;
	if (call->got_reply)
		return;
	if ((call->reply = malloc(len > 0 ? len : 1)) == NULL)
		return;
	memcpy(call->reply, msg, len);
	call->reply_len = len;
	call->got_reply = 1;
}

static void
etcd_unary_close(struct grpc_client_call *gc, int status,
    const char *message, void *arg)
{
	struct etcd_call *call = arg;
	struct etcd_client *ec = call->ec;
	struct grpc_client *on = call->gcl;
	char buf[256];

	(void)gc;
	call->gc = NULL;
	call->gcl = NULL;
	if (call->cancelled) {
		TAILQ_REMOVE(&ec->calls, call, entry);
		etcd_call_free(call);
		return;
	}
	if (ec->freeing)
		return;
	/*
	 * The request never reached a member (its connection failed before
	 * the HTTP/2 handshake): send it again on the next endpoint.
	 */
	if ((status == GRPC_STATUS_UNAVAILABLE ||
	    (status == GRPC_STATUS_CANCELLED && ec->switching)) &&
	    !grpc_client_handshaken(on)) {
		int64_t left = call->deadline_ms - etcd_now_ms();

		if (left > 0) {
			free(call->reply);
			call->reply = NULL;
			call->got_reply = 0;
			etcd_timer_ms(call->timer, left);
			return;
		}
		status = GRPC_STATUS_DEADLINE_EXCEEDED;
		message = "deadline exceeded while connecting to etcd";
	}
	if (status == GRPC_STATUS_CANCELLED && ec->switching) {
		snprintf(buf, sizeof(buf), "left etcd member %s: %s",
		    ec->eps[ec->cur].name, ec->switch_reason);
		status = GRPC_STATUS_UNAVAILABLE;
		message = buf;
	}
	if (status == GRPC_STATUS_OK && !call->got_reply) {
		status = GRPC_STATUS_INTERNAL;
		message = "etcd sent no reply";
	}
	if (status == GRPC_STATUS_OK) {
		ec->deadlines = 0;
		if (on == ec->cl && !call->serializable)
			etcd_served(ec);
	} else if (status == GRPC_STATUS_DEADLINE_EXCEEDED && on == ec->cl) {
		etcd_late(ec);
	} else {
		etcd_judge(ec, on, status, message);
	}
	TAILQ_REMOVE(&ec->calls, call, entry);
	etcd_call_deliver(call, status, message);
	etcd_call_free(call);
}

static const struct grpc_client_handler etcd_unary_handler = {
	.message = etcd_unary_message,
	.close = etcd_unary_close,
};

/*
 * A verdict of ours: the callback runs from the call's timer, never from
 * inside the etcd_* function that got here.
 */
static void
etcd_call_finish(struct etcd_call *call, int status, const char *message)
{
	call->local_status = status;
	snprintf(call->local_message, sizeof(call->local_message), "%s",
	    message);
	evtimer_del(call->timer);
	event_active(call->timer, EV_TIMEOUT, 0);
}

static void
etcd_call_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct etcd_call *call = arg;
	struct etcd_client *ec = call->ec;

	(void)fd;
	(void)what;
	if (call->gc != NULL)
		return;
	if (call->cancelled) {
		TAILQ_REMOVE(&ec->calls, call, entry);
		etcd_call_free(call);
		return;
	}
	if (call->local_status < 0) {
		/* Its deadline passed while it waited for a connection. */
		char why[1024];

		etcd_summary(ec, why, sizeof(why));
		call->local_status = GRPC_STATUS_DEADLINE_EXCEEDED;
		snprintf(call->local_message, sizeof(call->local_message),
		    "deadline exceeded waiting for a connection (%s)", why);
	}
	TAILQ_REMOVE(&ec->calls, call, entry);
	etcd_call_deliver(call, call->local_status, call->local_message);
	etcd_call_free(call);
}

static void
etcd_call_send(struct etcd_call *call)
{
	struct etcd_client *ec = call->ec;
	int64_t left = call->deadline_ms - etcd_now_ms();
	struct grpc_client_call *gc;

	if (left <= 0) {
		etcd_call_finish(call, GRPC_STATUS_DEADLINE_EXCEEDED,
		    "deadline exceeded");
		return;
	}
	gc = grpc_client_call_open(ec->cl, etcd_op_path(call->op), left,
	    &etcd_unary_handler, call);
	if (gc == NULL) {
		/* Stay queued: the next connection picks it up. */
		return;
	}
	evtimer_del(call->timer);
	call->gc = gc;
	call->gcl = ec->cl;
	/*
	 * Before the first loop turn these cannot fail but for memory;
	 * a failure shows up as the call's own error.
	 */
	if ((!call->serializable && grpc_client_call_metadata(gc,
	    ETCD_MD_REQUIRE_LEADER, "true") != 0) ||
	    grpc_client_call_send(gc, call->req, call->req_len) != 0 ||
	    grpc_client_call_half_close(gc) != 0)
		grpc_client_call_cancel(gc);
}

static int
etcd_call_start(struct etcd_client *ec, enum etcd_op_type op, int flags,
    uint8_t *req, size_t req_len, etcd_result_cb cb, void *arg,
    struct etcd_call **ret_call)
{
	struct etcd_call *call;

	if (ret_call != NULL)
		*ret_call = NULL;
	if (cb == NULL) {
		free(req);
		return -EINVAL;
	}
	if ((call = calloc(1, sizeof(*call))) == NULL) {
		free(req);
		return -ENOMEM;
	}
	call->ec = ec;
	call->op = op;
	call->req = req;
	call->req_len = req_len;
	call->cb = cb;
	call->arg = arg;
	call->local_status = -1;
	call->serializable = op == ETCD_OP_RANGE &&
	    (flags & ETCD_SERIALIZABLE) != 0;
	call->issued_ms = etcd_now_ms();
	call->deadline_ms = call->issued_ms + ec->cfg.call_timeout_ms;
	if ((call->timer = evtimer_new(ec->base, etcd_call_timer_cb,
	    call)) == NULL) {
		etcd_call_free(call);
		return -ENOMEM;
	}
	TAILQ_INSERT_TAIL(&ec->calls, call, entry);
	etcd_timer_ms(call->timer, ec->cfg.call_timeout_ms);
	if (ec->waiting && !call->serializable) {
		char why[1024];

		etcd_summary(ec, why, sizeof(why));
		etcd_call_finish(call, GRPC_STATUS_UNAVAILABLE, why);
	} else if (etcd_usable(ec)) {
		etcd_call_send(call);
	}
	if (ret_call != NULL)
		*ret_call = call;
	return 0;
}

void
etcd_call_cancel(struct etcd_call *call)
{
	if (call == NULL || call->cancelled)
		return;
	call->cancelled = 1;
	if (call->gc != NULL) {
		grpc_client_call_cancel(call->gc);
		return;
	}
	/* Freed from its timer, from the loop. */
	evtimer_del(call->timer);
	event_active(call->timer, EV_TIMEOUT, 0);
}

int
etcd_do(struct etcd_client *ec, const struct etcd_op *op, etcd_result_cb cb,
    void *arg, struct etcd_call **ret_call)
{
	uint8_t *buf;
	size_t len;
	int rc;

	if (op == NULL || (op->type != ETCD_OP_RANGE && op->type != ETCD_OP_PUT &&
	    op->type != ETCD_OP_DELETE))
		return -EINVAL;
	if ((rc = etcd_pack_op(op, &buf, &len)) != 0)
		return rc;
	return etcd_call_start(ec, op->type, op->flags, buf, len, cb, arg,
	    ret_call);
}

int
etcd_range(struct etcd_client *ec, const char *key, int flags,
    etcd_result_cb cb, void *arg, struct etcd_call **ret_call)
{
	struct etcd_op op = { .type = ETCD_OP_RANGE, .key = key,
	    .flags = flags };

	return etcd_do(ec, &op, cb, arg, ret_call);
}

int
etcd_put(struct etcd_client *ec, const char *key, const void *value,
    size_t value_len, int64_t lease, int flags, etcd_result_cb cb, void *arg,
    struct etcd_call **ret_call)
{
	struct etcd_op op = { .type = ETCD_OP_PUT, .key = key, .flags = flags,
	    .value = value, .value_len = value_len, .lease = lease };

	return etcd_do(ec, &op, cb, arg, ret_call);
}

int
etcd_delete(struct etcd_client *ec, const char *key, int flags,
    etcd_result_cb cb, void *arg, struct etcd_call **ret_call)
{
	struct etcd_op op = { .type = ETCD_OP_DELETE, .key = key,
	    .flags = flags };

	return etcd_do(ec, &op, cb, arg, ret_call);
}

int
etcd_txn(struct etcd_client *ec, const struct etcd_cmp *cmps, size_t ncmps,
    const struct etcd_op *success, size_t nsuccess,
    const struct etcd_op *failure, size_t nfailure, etcd_result_cb cb,
    void *arg, struct etcd_call **ret_call)
{
	uint8_t *buf;
	size_t len;
	int rc;

	if ((rc = etcd_pack_txn(cmps, ncmps, success, nsuccess, failure,
	    nfailure, &buf, &len)) != 0)
		return rc;
	return etcd_call_start(ec, ETCD_OP_TXN, 0, buf, len, cb, arg,
	    ret_call);
}

int
etcd_lease_grant(struct etcd_client *ec, int64_t ttl_s, etcd_result_cb cb,
    void *arg, struct etcd_call **ret_call)
{
	Etcdserverpb__LeaseGrantRequest m;
	uint8_t *buf;
	size_t len;
	int rc;

	if (ttl_s <= 0)
		return -EINVAL;
	etcdserverpb__lease_grant_request__init(&m);
	m.ttl = ttl_s;
	if ((rc = etcd_pack(&m.base, &buf, &len)) != 0)
		return rc;
	return etcd_call_start(ec, ETCD_OP_LEASE_GRANT, 0, buf, len, cb, arg,
	    ret_call);
}

int
etcd_lease_revoke(struct etcd_client *ec, int64_t id, etcd_result_cb cb,
    void *arg, struct etcd_call **ret_call)
{
	Etcdserverpb__LeaseRevokeRequest m;
	uint8_t *buf;
	size_t len;
	int rc;

	if (id == 0)
		return -EINVAL;
	etcdserverpb__lease_revoke_request__init(&m);
	m.id = id;
	if ((rc = etcd_pack(&m.base, &buf, &len)) != 0)
		return rc;
	return etcd_call_start(ec, ETCD_OP_LEASE_REVOKE, 0, buf, len, cb, arg,
	    ret_call);
}

/* ---- lease keep-alive ---- */

static void
etcd_lease_send(struct etcd_lease *l)
{
	Etcdserverpb__LeaseKeepAliveRequest m;
	uint8_t buf[16];
	size_t len;

	if (l->gc == NULL || l->nsent == ETCD_LEASE_INFLIGHT)
		return;
	etcdserverpb__lease_keep_alive_request__init(&m);
	m.id = l->id;
	len = etcdserverpb__lease_keep_alive_request__pack(&m, buf);
	if (grpc_client_call_send(l->gc, buf, len) == 0) {
		l->sent[l->nsent++] = etcd_now_ms();
		if (!evtimer_pending(l->late_ev, NULL))
			etcd_timer_ms(l->late_ev, l->ec->cfg.call_timeout_ms);
	}
}

/*
 * Keep-alives unanswered for a unary call's deadline count as late calls
 * of the connection, so a member that stopped answering is left before
 * the lease runs out.
 */
static void
etcd_lease_late_cb(evutil_socket_t fd, short what, void *arg)
{
	struct etcd_lease *l = arg;
	struct etcd_client *ec = l->ec;
	int64_t now = etcd_now_ms();

	(void)fd;
	(void)what;
	if (l->gc == NULL || !l->alive)
		return;
	while (l->late < l->nsent &&
	    now - l->sent[l->late] >= ec->cfg.call_timeout_ms) {
		l->late++;
		log_debug("etcd: keep-alive of lease %llx unanswered for %lld ms",
		    (unsigned long long)l->id,
		    (long long)(now - l->sent[l->late - 1]));
		etcd_late(ec);
	}
	if (l->late < l->nsent)
		etcd_timer_ms(l->late_ev,
		    l->sent[l->late] + ec->cfg.call_timeout_ms - now);
}

/* The keep-alive stops; the owner hears why, once. */
static void
etcd_lease_lose(struct etcd_lease *l, const char *reason)
{
	if (!l->alive)
		return;
	l->alive = 0;
	l->ec->stats.leases_lost++;
	evtimer_del(l->tick_ev);
	evtimer_del(l->expire_ev);
	evtimer_del(l->late_ev);
	if (l->gc != NULL)
		grpc_client_call_cancel(l->gc);
	log_warnx("etcd: lease %llx lost: %s", (unsigned long long)l->id,
	    reason);
	if (l->dead)
		return;
	l->busy++;
	l->h->lost(l, reason, l->arg);
	l->busy--;
	etcd_lease_maybe_free(l);
}

static void
etcd_lease_message(struct grpc_client_call *gc, const uint8_t *msg,
    size_t len, void *arg)
{
	struct etcd_lease *l = arg;
	Etcdserverpb__LeaseKeepAliveResponse *m;
	int64_t sent, deadline;

	(void)gc;
	if (!l->alive || l->dead)
		return;
	if ((m = etcdserverpb__lease_keep_alive_response__unpack(NULL, len,
	    msg)) == NULL) {
		grpc_client_call_cancel(gc);
		return;
	}
	if (l->nsent == 0) {
		/* An answer to no request of ours: nothing to learn. */
		etcdserverpb__lease_keep_alive_response__free_unpacked(m, NULL);
		return;
	}
	sent = l->sent[0];
	memmove(l->sent, l->sent + 1, --l->nsent * sizeof(l->sent[0]));
	if (l->late > 0)
		l->late--;
	else
		l->ec->deadlines = 0;
	if (m->header != NULL)
		etcd_revision_seen(l->ec, m->header->revision);
	if (gc != NULL && l->ec->cl != NULL)
		etcd_served(l->ec);
	if (m->ttl <= 0) {
		etcdserverpb__lease_keep_alive_response__free_unpacked(m, NULL);
		etcd_lease_lose(l, "etcd answered TTL 0: the lease is gone");
		return;
	}
	l->ec->stats.lease_renewals++;
	deadline = etcd_lease_expiry_ms(sent, m->ttl, l->ec->cfg.lease_margin_ms);
	if (deadline > l->deadline_ms) {
		l->deadline_ms = deadline;
		etcd_timer_ms(l->expire_ev, deadline - etcd_now_ms());
	}
	l->busy++;
	if (l->h->renewed != NULL)
		l->h->renewed(l, m->ttl, l->arg);
	l->busy--;
	etcdserverpb__lease_keep_alive_response__free_unpacked(m, NULL);
	etcd_lease_maybe_free(l);
}

static void
etcd_lease_close(struct grpc_client_call *gc, int status,
    const char *message, void *arg)
{
	struct etcd_lease *l = arg;
	struct etcd_client *ec = l->ec;
	struct grpc_client *on = ec->cl;

	(void)gc;
	l->gc = NULL;
	/* Requests unanswered may have renewed it or not: assume not. */
	l->nsent = 0;
	l->late = 0;
	evtimer_del(l->late_ev);
	if (l->dead || ec->freeing) {
		etcd_lease_maybe_free(l);
		return;
	}
	if (!l->alive)
		return;
	log_debug("etcd: keep-alive stream of lease %llx ended: %s %s",
	    (unsigned long long)l->id, grpc_status_str(status), message);
	if (!ec->switching)
		etcd_judge(ec, on, status, message);
	/* On the same connection after a pause; on a new one at once. */
	etcd_attach_soon(ec, grpc_client_usable(on) && !ec->switching ?
	    ec->cfg.backoff_initial_ms : 0);
}

static const struct grpc_client_handler etcd_lease_handler = {
	.message = etcd_lease_message,
	.close = etcd_lease_close,
};

static void
etcd_lease_open(struct etcd_lease *l)
{
	struct etcd_client *ec = l->ec;

	l->gc = grpc_client_call_open(ec->cl, ETCD_PATH_KEEPALIVE, 0,
	    &etcd_lease_handler, l);
	if (l->gc == NULL)
		return;
	l->nsent = 0;
	l->late = 0;
	if (grpc_client_call_metadata(l->gc, ETCD_MD_REQUIRE_LEADER,
	    "true") != 0) {
		grpc_client_call_cancel(l->gc);
		return;
	}
	/* A new stream renews at once: the old one may have lost some. */
	etcd_lease_send(l);
}

static void
etcd_lease_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct etcd_lease *l = arg;

	(void)fd;
	(void)what;
	etcd_lease_send(l);
}

static void
etcd_lease_expire_cb(evutil_socket_t fd, short what, void *arg)
{
	struct etcd_lease *l = arg;
	char why[160];

	(void)fd;
	(void)what;
	snprintf(why, sizeof(why), "no keep-alive answered within the TTL "
	    "(%llds)", (long long)l->ttl_s);
	etcd_lease_lose(l, why);
}

struct etcd_lease *
etcd_lease_keepalive(struct etcd_client *ec, int64_t id, int64_t ttl_s,
    int64_t granted_ms, const struct etcd_lease_handler *h, void *arg)
{
	struct etcd_lease *l;
	struct timeval tv;
	int64_t every;

	if (id == 0 || ttl_s <= 0 || h == NULL || h->lost == NULL) {
		errno = EINVAL;
		return NULL;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->ec = ec;
	l->id = id;
	l->ttl_s = ttl_s;
	l->h = h;
	l->arg = arg;
	l->alive = 1;
	if ((l->tick_ev = event_new(ec->base, -1, EV_PERSIST,
	    etcd_lease_tick_cb, l)) == NULL ||
	    (l->expire_ev = evtimer_new(ec->base, etcd_lease_expire_cb,
	    l)) == NULL ||
	    (l->late_ev = evtimer_new(ec->base, etcd_lease_late_cb,
	    l)) == NULL) {
		if (l->tick_ev != NULL)
			event_free(l->tick_ev);
		if (l->expire_ev != NULL)
			event_free(l->expire_ev);
		free(l);
		errno = ENOMEM;
		return NULL;
	}
	TAILQ_INSERT_TAIL(&ec->leases, l, entry);
	every = etcd_lease_renew_interval_ms(ttl_s);
	tv.tv_sec = (time_t)(every / 1000);
	tv.tv_usec = (suseconds_t)(every % 1000) * 1000;
	event_add(l->tick_ev, &tv);
	l->deadline_ms = etcd_lease_expiry_ms(granted_ms, ttl_s,
	    ec->cfg.lease_margin_ms);
	etcd_timer_ms(l->expire_ev, l->deadline_ms - etcd_now_ms());
	etcd_attach_soon(ec, 0);
	return l;
}

int64_t
etcd_lease_id(const struct etcd_lease *l)
{
	return l->id;
}

int
etcd_lease_alive(const struct etcd_lease *l)
{
	return l->alive;
}

int64_t
etcd_lease_deadline_ms(const struct etcd_lease *l)
{
	return l->deadline_ms;
}

static void
etcd_lease_maybe_free(struct etcd_lease *l)
{
	if (!l->dead || l->busy > 0 || l->gc != NULL)
		return;
	TAILQ_REMOVE(&l->ec->leases, l, entry);
	event_free(l->tick_ev);
	event_free(l->expire_ev);
	event_free(l->late_ev);
	free(l);
}

void
etcd_lease_free(struct etcd_lease *l)
{
	if (l == NULL || l->dead)
		return;
	l->dead = 1;
	evtimer_del(l->tick_ev);
	evtimer_del(l->expire_ev);
	evtimer_del(l->late_ev);
	if (l->gc != NULL)
		grpc_client_call_cancel(l->gc);
	etcd_lease_maybe_free(l);
}

/* ---- watches ---- */

static void
etcd_watch_end(struct etcd_watch *w, int64_t compact_revision,
    const char *reason)
{
	if (w->ended)
		return;
	w->ended = 1;
	if (compact_revision > 0)
		w->ec->stats.watches_compacted++;
	if (w->gc != NULL)
		grpc_client_call_cancel(w->gc);
	log_info("etcd: watch on %s ended: %s", w->key, reason);
	if (w->dead)
		return;
	w->busy++;
	w->h->ended(w, compact_revision, reason, w->arg);
	w->busy--;
}

static void
etcd_watch_message(struct grpc_client_call *gc, const uint8_t *msg,
    size_t len, void *arg)
{
	struct etcd_watch *w = arg;
	struct etcd_client *ec = w->ec;
	Etcdserverpb__WatchResponse *m;
	int64_t hrev;

	if (w->ended || w->dead)
		return;
	if ((m = etcdserverpb__watch_response__unpack(NULL, len, msg)) ==
	    NULL) {
		grpc_client_call_cancel(gc);
		return;
	}
	hrev = m->header != NULL ? m->header->revision : 0;
	etcd_revision_seen(ec, hrev);
	if (ec->cl != NULL)
		etcd_served(ec);
	w->busy++;
	if (m->compact_revision != 0) {
		char why[96];

		snprintf(why, sizeof(why), "revision %lld was compacted "
		    "(compact revision %lld)", (long long)w->next_rev,
		    (long long)m->compact_revision);
		etcd_watch_end(w, m->compact_revision, why);
		goto out;
	}
	if (m->created) {
		w->created = 1;
		w->watch_id = m->watch_id;
		if (w->next_rev == 0) {
			w->next_rev = hrev + 1;
			w->floor = w->next_rev;
		}
		if (!m->canceled && w->h->synced != NULL && !w->dead)
			w->h->synced(w, hrev, w->arg);
	}
	if (m->canceled) {
		etcd_watch_end(w, 0, m->cancel_reason != NULL &&
		    m->cancel_reason[0] != '\0' ? m->cancel_reason :
		    "cancelled by etcd");
		goto out;
	}
	for (size_t i = 0; i < m->n_events && !w->dead && !w->ended; i++) {
		const Mvccpb__Event *e = m->events[i];
		struct etcd_event ev;
		struct etcd_kv prev;

		if (e->kv == NULL)
			continue;
		memset(&ev, 0, sizeof(ev));
		etcd_kv_from(&ev.kv, e->kv);
		ev.revision = e->kv->mod_revision;
		/* Already delivered before the stream was re-created. */
		if (ev.revision < w->floor)
			continue;
		ev.type = e->type == MVCCPB__EVENT__EVENT_TYPE__DELETE ?
		    ETCD_EVENT_DELETE : ETCD_EVENT_PUT;
		if (e->prev_kv != NULL) {
			etcd_kv_from(&prev, e->prev_kv);
			ev.prev_kv = &prev;
		}
		ec->stats.watch_events++;
		if (ev.revision + 1 > w->next_rev)
			w->next_rev = ev.revision + 1;
		w->h->event(w, &ev, w->arg);
	}
out:
	w->busy--;
	etcdserverpb__watch_response__free_unpacked(m, NULL);
	etcd_watch_maybe_free(w);
}

static void
etcd_watch_close(struct grpc_client_call *gc, int status,
    const char *message, void *arg)
{
	struct etcd_watch *w = arg;
	struct etcd_client *ec = w->ec;
	struct grpc_client *on = ec->cl;

	(void)gc;
	w->gc = NULL;
	w->created = 0;
	if (w->dead || ec->freeing) {
		etcd_watch_maybe_free(w);
		return;
	}
	if (w->ended)
		return;
	log_debug("etcd: watch stream on %s ended: %s %s; resuming at %lld",
	    w->key, grpc_status_str(status), message,
	    (long long)w->next_rev);
	if (!ec->switching)
		etcd_judge(ec, on, status, message);
	etcd_attach_soon(ec, grpc_client_usable(on) && !ec->switching ?
	    ec->cfg.backoff_initial_ms : 0);
}

static const struct grpc_client_handler etcd_watch_handler = {
	.message = etcd_watch_message,
	.close = etcd_watch_close,
};

static void
etcd_watch_open(struct etcd_watch *w)
{
	struct etcd_client *ec = w->ec;
	Etcdserverpb__WatchRequest req;
	Etcdserverpb__WatchCreateRequest cr;
	uint8_t *buf;
	size_t len;

	w->gc = grpc_client_call_open(ec->cl, ETCD_PATH_WATCH, 0,
	    &etcd_watch_handler, w);
	if (w->gc == NULL)
		return;
	if (w->opened_once) {
		w->restarts++;
		ec->stats.watch_restarts++;
	}
	w->opened_once = 1;
	w->created = 0;
	w->floor = w->next_rev;
	etcdserverpb__watch_request__init(&req);
	etcdserverpb__watch_create_request__init(&cr);
	cr.key = etcd_bytes(w->key, strlen(w->key));
	cr.range_end = etcd_bytes(w->end, w->end_len);
	cr.start_revision = w->next_rev;
	cr.prev_kv = w->prev_kv;
	req.request_union_case =
	    ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
	req.create_request = &cr;
	/* No half-close: etcd ends a watch stream whose client did. */
	if (grpc_client_call_metadata(w->gc, ETCD_MD_REQUIRE_LEADER,
	    "true") != 0 || etcd_pack(&req.base, &buf, &len) != 0) {
		grpc_client_call_cancel(w->gc);
		return;
	}
	if (grpc_client_call_send(w->gc, buf, len) != 0)
		grpc_client_call_cancel(w->gc);
	free(buf);
}

struct etcd_watch *
etcd_watch(struct etcd_client *ec, const char *key, int flags,
    int64_t start_revision, const struct etcd_watch_handler *h, void *arg)
{
	struct etcd_watch *w;

	if (key == NULL || key[0] == '\0' || h == NULL || h->event == NULL ||
	    h->ended == NULL || start_revision < 0 ||
	    (flags & ~(ETCD_PREFIX | ETCD_FROM_KEY | ETCD_PREV_KV)) != 0) {
		errno = EINVAL;
		return NULL;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->ec = ec;
	w->h = h;
	w->arg = arg;
	w->prev_kv = (flags & ETCD_PREV_KV) != 0;
	w->next_rev = start_revision;
	w->floor = start_revision;
	if ((w->key = strdup(key)) == NULL ||
	    etcd_key_range(key, flags, &w->end, &w->end_len) != 0) {
		free(w->key);
		free(w);
		errno = ENOMEM;
		return NULL;
	}
	TAILQ_INSERT_TAIL(&ec->watches, w, entry);
	etcd_attach_soon(ec, 0);
	return w;
}

int64_t
etcd_watch_next_revision(const struct etcd_watch *w)
{
	return w->next_rev;
}

uint64_t
etcd_watch_restarts(const struct etcd_watch *w)
{
	return w->restarts;
}

static void
etcd_watch_maybe_free(struct etcd_watch *w)
{
	if (!w->dead || w->busy > 0 || w->gc != NULL)
		return;
	TAILQ_REMOVE(&w->ec->watches, w, entry);
	free(w->key);
	free(w->end);
	free(w);
}

void
etcd_watch_free(struct etcd_watch *w)
{
	if (w == NULL || w->dead)
		return;
	w->dead = 1;
	if (w->gc != NULL)
		grpc_client_call_cancel(w->gc);
	etcd_watch_maybe_free(w);
}

/* ---- teardown ---- */

void
etcd_client_free(struct etcd_client *ec)
{
	struct etcd_call *call;
	struct etcd_lease *l;
	struct etcd_watch *w;

	if (ec == NULL)
		return;
	ec->freeing = 1;
	/* Closes every gRPC call: their close() only lets go of them. */
	grpc_client_free(ec->cl);
	ec->cl = NULL;
	while ((call = TAILQ_FIRST(&ec->calls)) != NULL) {
		TAILQ_REMOVE(&ec->calls, call, entry);
		etcd_call_free(call);
	}
	while ((l = TAILQ_FIRST(&ec->leases)) != NULL) {
		l->dead = 1;
		l->busy = 0;
		etcd_lease_maybe_free(l);
	}
	while ((w = TAILQ_FIRST(&ec->watches)) != NULL) {
		w->dead = 1;
		w->busy = 0;
		etcd_watch_maybe_free(w);
	}
	for (int op = 0; op < ETCD_OP_MAX; op++)
		metrics_histogram_free(&ec->latency[op]);
	if (ec->connect_ev != NULL)
		event_free(ec->connect_ev);
	if (ec->switch_ev != NULL)
		event_free(ec->switch_ev);
	if (ec->attach_ev != NULL)
		event_free(ec->attach_ev);
	for (size_t i = 0; ec->eps != NULL && i < ec->neps; i++)
		free(ec->eps[i].name);
	free(ec->eps);
	free(ec);
}

/* ---- metrics ---- */

static void
etcd_counter(struct evbuffer *out, const char *name, const char *help,
    uint64_t v)
{
	metrics_family(out, name, "counter", help);
	metrics_sample(out, name, NULL, 0, NULL, (double)v);
}

void
etcd_client_write_metrics(const struct etcd_client *ec, struct evbuffer *out)
{
	const struct etcd_lease *l;
	const struct etcd_watch *w;
	size_t leases = 0, active = 0, resuming = 0;
	struct troika_label lb[2];

	metrics_family(out, "troika_coord_etcd_requests_total", "counter",
	    "etcd calls ended, by operation and gRPC status.");
	for (int op = 0; op < ETCD_OP_MAX; op++) {
		lb[0].name = "op";
		lb[0].value = etcd_op_names[op];
		lb[1].name = "grpc_code";
		for (int c = 0; c <= GRPC_STATUS_MAX; c++) {
			/* OK always, so every series exists from the start. */
			if (ec->stats.requests[op][c] == 0 && c != 0)
				continue;
			lb[1].value = grpc_status_str(c);
			metrics_sample(out, "troika_coord_etcd_requests_total",
			    lb, 2, NULL, (double)ec->stats.requests[op][c]);
		}
	}
	metrics_family(out, "troika_coord_etcd_request_duration_seconds",
	    "histogram", "Time from an etcd call to its result.");
	for (int op = 0; op < ETCD_OP_MAX; op++) {
		lb[0].name = "op";
		lb[0].value = etcd_op_names[op];
		metrics_histogram_write(out,
		    "troika_coord_etcd_request_duration_seconds", lb, 1,
		    &ec->latency[op]);
	}
	metrics_family(out, "troika_coord_etcd_connected", "gauge",
	    "1 for the etcd endpoint in use while it serves calls.");
	for (size_t i = 0; i < ec->neps; i++) {
		lb[0].name = "endpoint";
		lb[0].value = ec->eps[i].name;
		metrics_sample(out, "troika_coord_etcd_connected", lb, 1, NULL,
		    i == ec->cur && etcd_client_connected(ec) ? 1 : 0);
	}
	etcd_counter(out, "troika_coord_etcd_endpoint_switches_total",
	    "Moves to the next etcd endpoint after a failure.",
	    ec->stats.switches);
	metrics_family(out, "troika_coord_etcd_revision", "gauge",
	    "The highest etcd store revision seen.");
	metrics_sample(out, "troika_coord_etcd_revision", NULL, 0, NULL,
	    (double)ec->revision);
	TAILQ_FOREACH(l, &ec->leases, entry)
		if (l->alive && !l->dead)
			leases++;
	metrics_family(out, "troika_coord_etcd_leases", "gauge",
	    "etcd leases kept alive now.");
	metrics_sample(out, "troika_coord_etcd_leases", NULL, 0, NULL,
	    (double)leases);
	etcd_counter(out, "troika_coord_etcd_lease_renewals_total",
	    "Lease keep-alives etcd answered.", ec->stats.lease_renewals);
	etcd_counter(out, "troika_coord_etcd_leases_lost_total",
	    "Leases given up: etcd said TTL 0, or no renewal in time.",
	    ec->stats.leases_lost);
	TAILQ_FOREACH(w, &ec->watches, entry) {
		if (w->dead || w->ended)
			continue;
		if (w->created)
			active++;
		else
			resuming++;
	}
	metrics_family(out, "troika_coord_etcd_watches", "gauge",
	    "etcd watches: active (created at etcd) or waiting (being "
	    "created or re-created).");
	lb[0].name = "state";
	lb[0].value = "active";
	metrics_sample(out, "troika_coord_etcd_watches", lb, 1, NULL,
	    (double)active);
	lb[0].value = "waiting";
	metrics_sample(out, "troika_coord_etcd_watches", lb, 1, NULL,
	    (double)resuming);
	etcd_counter(out, "troika_coord_etcd_watch_events_total",
	    "Watch events delivered.", ec->stats.watch_events);
	etcd_counter(out, "troika_coord_etcd_watch_restarts_total",
	    "Watch streams re-created after a break.",
	    ec->stats.watch_restarts);
	etcd_counter(out, "troika_coord_etcd_watches_compacted_total",
	    "Watches ended because their revision was compacted.",
	    ec->stats.watches_compacted);
}
