/*
 * troika-coord's etcd client (core/coord/etcd_client.c) without etcd:
 * request building (packed, then read back with etcd's message
 * descriptors), prefix ranges and lease arithmetic; then the client's
 * behaviour against fake etcd members made of our own gRPC server on
 * 127.0.1.1: moving to the next endpoint (refused, "no leader",
 * deadlines), pacing between rounds, lease keep-alive and its loss,
 * watches resumed from the last revision without repeats, compaction,
 * cancel, and frees from inside callbacks. Each test ends with everything
 * freed (ASan finds what is left).
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "etcd/etcd.pb-c.h"
#include "etcd_client.h"
#include "grpc_server.h"
#include "grpc_status.h"
#include "log.h"

#define HOST "127.0.1.1"

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- pure building blocks ---- */

static void
check_end(const char *prefix, size_t len, const char *want, size_t want_len)
{
	uint8_t *end;
	size_t n;

	assert_int_equal(etcd_prefix_end((const uint8_t *)prefix, len, &end,
	    &n), 0);
	assert_int_equal(n, want_len);
	assert_memory_equal(end, want, want_len);
	free(end);
}

static void
test_prefix_end(void **state)
{
	(void)state;
	check_end("/troika/", 8, "/troika0", 8);
	check_end("a", 1, "b", 1);
	check_end("a\xff", 2, "b", 1);
	check_end("ab\xff\xff", 4, "ac", 2);
	/* Nothing to increment: every key from the prefix on. */
	check_end("\xff\xff", 2, "\0", 1);
	check_end("", 0, "\0", 1);
}

static void
test_lease_arithmetic(void **state)
{
	(void)state;
	/* Counted from the send: etcd counts from its later receipt. */
	assert_int_equal(etcd_lease_expiry_ms(1000, 5, 100), 5900);
	assert_int_equal(etcd_lease_expiry_ms(1000, 1, 0), 2000);
	/* A margin larger than the TTL never goes before the send. */
	assert_int_equal(etcd_lease_expiry_ms(1000, 1, 5000), 1000);
	assert_int_equal(etcd_lease_renew_interval_ms(3), 1000);
	assert_int_equal(etcd_lease_renew_interval_ms(5), 1666);
	assert_int_equal(etcd_lease_renew_interval_ms(0), 100);
}

static void
test_pack_op(void **state)
{
	struct etcd_op put = { .type = ETCD_OP_PUT, .key = "/k", .value = "v\0w",
	    .value_len = 3, .lease = 77, .flags = ETCD_PREV_KV };
	struct etcd_op range = { .type = ETCD_OP_RANGE, .key = "/p/",
	    .flags = ETCD_PREFIX | ETCD_SERIALIZABLE | ETCD_KEYS_ONLY,
	    .limit = 10 };
	struct etcd_op from = { .type = ETCD_OP_DELETE, .key = "/a",
	    .flags = ETCD_FROM_KEY | ETCD_PREV_KV };
	Etcdserverpb__PutRequest *p;
	Etcdserverpb__RangeRequest *r;
	Etcdserverpb__DeleteRangeRequest *d;
	uint8_t *buf;
	size_t len;

	(void)state;
	assert_int_equal(etcd_pack_op(&put, &buf, &len), 0);
	p = etcdserverpb__put_request__unpack(NULL, len, buf);
	assert_non_null(p);
	assert_int_equal(p->key.len, 2);
	assert_memory_equal(p->key.data, "/k", 2);
	assert_int_equal(p->value.len, 3);
	assert_memory_equal(p->value.data, "v\0w", 3);
	assert_int_equal(p->lease, 77);
	assert_true(p->prev_kv);
	etcdserverpb__put_request__free_unpacked(p, NULL);
	free(buf);

	assert_int_equal(etcd_pack_op(&range, &buf, &len), 0);
	r = etcdserverpb__range_request__unpack(NULL, len, buf);
	assert_non_null(r);
	assert_memory_equal(r->key.data, "/p/", 3);
	assert_int_equal(r->range_end.len, 3);
	assert_memory_equal(r->range_end.data, "/p0", 3);
	assert_true(r->serializable);
	assert_true(r->keys_only);
	assert_false(r->count_only);
	assert_int_equal(r->limit, 10);
	etcdserverpb__range_request__free_unpacked(r, NULL);
	free(buf);

	assert_int_equal(etcd_pack_op(&from, &buf, &len), 0);
	d = etcdserverpb__delete_range_request__unpack(NULL, len, buf);
	assert_non_null(d);
	assert_int_equal(d->range_end.len, 1);
	assert_int_equal(d->range_end.data[0], 0);
	assert_true(d->prev_kv);
	etcdserverpb__delete_range_request__free_unpacked(d, NULL);
	free(buf);

	/* Refused: no key, a prefix put, an unknown type. */
	put.key = "";
	assert_int_equal(etcd_pack_op(&put, &buf, &len), -EINVAL);
	put.key = NULL;
	assert_int_equal(etcd_pack_op(&put, &buf, &len), -EINVAL);
	put.key = "/k";
	put.flags = ETCD_PREFIX;
	assert_int_equal(etcd_pack_op(&put, &buf, &len), -EINVAL);
	put.flags = 0;
	put.type = ETCD_OP_TXN;
	assert_int_equal(etcd_pack_op(&put, &buf, &len), -EINVAL);
}

static void
test_pack_txn(void **state)
{
	struct etcd_cmp cmps[] = {
		{ .key = "/leader", .target = ETCD_CMP_CREATE,
		    .result = ETCD_CMP_EQUAL, .number = 0 },
		{ .key = "/v", .target = ETCD_CMP_VALUE,
		    .result = ETCD_CMP_NOT_EQUAL, .value = "x", .value_len = 1 },
		{ .key = "/m", .target = ETCD_CMP_MOD,
		    .result = ETCD_CMP_LESS, .number = 9 },
		{ .key = "/n", .target = ETCD_CMP_VERSION,
		    .result = ETCD_CMP_GREATER, .number = 2 },
		{ .key = "/l", .target = ETCD_CMP_LEASE,
		    .result = ETCD_CMP_EQUAL, .number = 5 },
	};
	struct etcd_op ok[] = {
		{ .type = ETCD_OP_PUT, .key = "/leader", .value = "me",
		    .value_len = 2, .lease = 42 },
		{ .type = ETCD_OP_DELETE, .key = "/old/", .flags = ETCD_PREFIX },
	};
	struct etcd_op ko[] = {
		{ .type = ETCD_OP_RANGE, .key = "/leader" },
	};
	Etcdserverpb__TxnRequest *t;
	uint8_t *buf;
	size_t len;

	(void)state;
	assert_int_equal(etcd_pack_txn(cmps, 5, ok, 2, ko, 1, &buf, &len), 0);
	t = etcdserverpb__txn_request__unpack(NULL, len, buf);
	assert_non_null(t);
	assert_int_equal(t->n_compare, 5);
	assert_int_equal(t->compare[0]->target,
	    ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE);
	assert_int_equal(t->compare[0]->result,
	    ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL);
	/* create_revision 0 is sent: the oneof says which target. */
	assert_int_equal(t->compare[0]->target_union_case,
	    ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION);
	assert_int_equal(t->compare[0]->create_revision, 0);
	assert_int_equal(t->compare[1]->target_union_case,
	    ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE);
	assert_memory_equal(t->compare[1]->value.data, "x", 1);
	assert_int_equal(t->compare[1]->result,
	    ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL);
	assert_int_equal(t->compare[2]->mod_revision, 9);
	assert_int_equal(t->compare[2]->result,
	    ETCDSERVERPB__COMPARE__COMPARE_RESULT__LESS);
	assert_int_equal(t->compare[3]->version, 2);
	assert_int_equal(t->compare[4]->lease, 5);
	assert_int_equal(t->n_success, 2);
	assert_int_equal(t->success[0]->request_case,
	    ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT);
	assert_int_equal(t->success[0]->request_put->lease, 42);
	assert_int_equal(t->success[1]->request_case,
	    ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE);
	assert_memory_equal(t->success[1]->request_delete_range->range_end.data,
	    "/old0", 5);
	assert_int_equal(t->n_failure, 1);
	assert_int_equal(t->failure[0]->request_case,
	    ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE);
	etcdserverpb__txn_request__free_unpacked(t, NULL);
	free(buf);

	/* An empty transaction is a valid one. */
	assert_int_equal(etcd_pack_txn(NULL, 0, NULL, 0, NULL, 0, &buf, &len),
	    0);
	assert_int_equal(len, 0);
	free(buf);
	/* A bad compare or op anywhere refuses the whole. */
	cmps[3].target = (enum etcd_cmp_target)9;
	assert_int_equal(etcd_pack_txn(cmps, 5, ok, 2, ko, 1, &buf, &len),
	    -EINVAL);
	cmps[3].target = ETCD_CMP_VERSION;
	ko[0].key = "";
	assert_int_equal(etcd_pack_txn(cmps, 5, ok, 2, ko, 1, &buf, &len),
	    -EINVAL);
}

/* ---- a fake etcd member: our gRPC server with etcd's methods ---- */

enum fake_mode {
	FAKE_OK,
	FAKE_NO_LEADER,  /* every unary call: UNAVAILABLE no leader */
	FAKE_SILENT,     /* unary calls are never answered */
};

struct fake {
	struct grpc_server *srv;
	int port;
	enum fake_mode mode;
	int64_t rev;
	int unary;             /* unary calls answered or held */
	int with_leader_md;    /* ... carrying hasleader: true */
	int open_calls;
	/* LeaseKeepAlive */
	int ka_answer;
	int64_t ka_ttl;
	int ka_requests;
	/* Watch */
	struct grpc_call *watch;
	int64_t watch_start[8];
	int watch_creates;
	int watch_md;
	int64_t compact_on_create;
};

static int
fake_start(struct grpc_call *call, void *arg)
{
	struct fake *f = arg;
	const char *md = grpc_call_metadata(call, "hasleader");

	grpc_call_set_data(call, f);
	f->open_calls++;
	if (md != NULL && strcmp(md, "true") == 0) {
		if (strcmp(grpc_call_path(call), "/etcdserverpb.Watch/Watch") == 0)
			f->watch_md++;
		else if (strcmp(grpc_call_path(call),
		    "/etcdserverpb.Lease/LeaseKeepAlive") != 0)
			f->with_leader_md++;
	}
	return 0;
}

static void
fake_close(struct grpc_call *call, int status)
{
	struct fake *f = grpc_call_data(call);

	(void)status;
	f->open_calls--;
	if (call == f->watch)
		f->watch = NULL;
}

static void
fake_reply(struct grpc_call *call, const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(len + 1);

	assert_non_null(buf);
	protobuf_c_message_pack(m, buf);
	assert_int_equal(grpc_call_send(call, buf, len), 0);
	free(buf);
	grpc_call_finish(call, GRPC_STATUS_OK, NULL);
}

static void
fake_unary_message(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	struct fake *f = grpc_call_data(call);
	const char *path = grpc_call_path(call);
	Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;

	f->unary++;
	if (f->mode == FAKE_NO_LEADER) {
		grpc_call_finish(call, GRPC_STATUS_UNAVAILABLE,
		    "etcdserver: no leader");
		return;
	}
	if (f->mode == FAKE_SILENT)
		return;
	h.member_id = (uint64_t)f->port;
	if (strcmp(path, "/etcdserverpb.KV/Range") == 0) {
		Etcdserverpb__RangeRequest *q =
		    etcdserverpb__range_request__unpack(NULL, len, msg);
		Etcdserverpb__RangeResponse r = ETCDSERVERPB__RANGE_RESPONSE__INIT;
		Mvccpb__KeyValue kv = MVCCPB__KEY_VALUE__INIT, *kvs[1] = { &kv };

		assert_non_null(q);
		h.revision = f->rev;
		kv.key = q->key;
		kv.value.data = (uint8_t *)(uintptr_t)"value";
		kv.value.len = 5;
		kv.create_revision = 3;
		kv.mod_revision = f->rev;
		kv.version = 2;
		r.header = &h;
		r.n_kvs = 1;
		r.kvs = kvs;
		r.count = 1;
		fake_reply(call, &r.base);
		etcdserverpb__range_request__free_unpacked(q, NULL);
	} else if (strcmp(path, "/etcdserverpb.KV/Put") == 0) {
		Etcdserverpb__PutResponse r = ETCDSERVERPB__PUT_RESPONSE__INIT;

		h.revision = ++f->rev;
		r.header = &h;
		fake_reply(call, &r.base);
	} else if (strcmp(path, "/etcdserverpb.KV/Txn") == 0) {
		Etcdserverpb__TxnResponse r = ETCDSERVERPB__TXN_RESPONSE__INIT;

		h.revision = ++f->rev;
		r.header = &h;
		r.succeeded = 1;
		fake_reply(call, &r.base);
	} else if (strcmp(path, "/etcdserverpb.Lease/LeaseGrant") == 0) {
		Etcdserverpb__LeaseGrantRequest *q =
		    etcdserverpb__lease_grant_request__unpack(NULL, len, msg);
		Etcdserverpb__LeaseGrantResponse r =
		    ETCDSERVERPB__LEASE_GRANT_RESPONSE__INIT;

		assert_non_null(q);
		h.revision = f->rev;
		r.header = &h;
		r.id = 0x1234;
		r.ttl = q->ttl;
		fake_reply(call, &r.base);
		etcdserverpb__lease_grant_request__free_unpacked(q, NULL);
	} else {
		grpc_call_finish(call, GRPC_STATUS_UNIMPLEMENTED, "fake");
	}
}

static void
fake_keepalive_message(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	struct fake *f = grpc_call_data(call);
	Etcdserverpb__LeaseKeepAliveRequest *q =
	    etcdserverpb__lease_keep_alive_request__unpack(NULL, len, msg);
	Etcdserverpb__LeaseKeepAliveResponse r =
	    ETCDSERVERPB__LEASE_KEEP_ALIVE_RESPONSE__INIT;
	Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
	uint8_t buf[64];

	assert_non_null(q);
	f->ka_requests++;
	if (f->ka_answer) {
		h.revision = f->rev;
		r.header = &h;
		r.id = q->id;
		r.ttl = f->ka_ttl;
		grpc_call_send(call, buf,
		    etcdserverpb__lease_keep_alive_response__pack(&r, buf));
	}
	etcdserverpb__lease_keep_alive_request__free_unpacked(q, NULL);
}

static void
fake_watch_send(struct fake *f, const Etcdserverpb__WatchResponse *r)
{
	size_t len = etcdserverpb__watch_response__get_packed_size(r);
	uint8_t *buf = malloc(len + 1);

	assert_non_null(f->watch);
	assert_non_null(buf);
	etcdserverpb__watch_response__pack(r, buf);
	assert_int_equal(grpc_call_send(f->watch, buf, len), 0);
	free(buf);
}

static void
fake_watch_message(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	struct fake *f = grpc_call_data(call);
	Etcdserverpb__WatchRequest *q =
	    etcdserverpb__watch_request__unpack(NULL, len, msg);
	Etcdserverpb__WatchResponse r = ETCDSERVERPB__WATCH_RESPONSE__INIT;
	Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;

	assert_non_null(q);
	assert_int_equal(q->request_union_case,
	    ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST);
	if (f->watch_creates < 8)
		f->watch_start[f->watch_creates] =
		    q->create_request->start_revision;
	f->watch_creates++;
	f->watch = call;
	h.revision = f->rev;
	r.header = &h;
	r.watch_id = 7;
	r.created = 1;
	if (f->compact_on_create != 0) {
		r.canceled = 1;
		r.compact_revision = f->compact_on_create;
	}
	fake_watch_send(f, &r);
	etcdserverpb__watch_request__free_unpacked(q, NULL);
}

/* One WatchResponse with events at these revisions (negative: DELETE). */
static void
fake_watch_events(struct fake *f, const int64_t *revs, size_t n)
{
	Etcdserverpb__WatchResponse r = ETCDSERVERPB__WATCH_RESPONSE__INIT;
	Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
	Mvccpb__Event ev[8], *evp[8];
	Mvccpb__KeyValue kv[8];

	assert_true(n <= 8);
	for (size_t i = 0; i < n; i++) {
		int64_t rev = revs[i] < 0 ? -revs[i] : revs[i];

		mvccpb__event__init(&ev[i]);
		mvccpb__key_value__init(&kv[i]);
		kv[i].key.data = (uint8_t *)(uintptr_t)"/w/k";
		kv[i].key.len = 4;
		kv[i].mod_revision = rev;
		ev[i].type = revs[i] < 0 ? MVCCPB__EVENT__EVENT_TYPE__DELETE :
		    MVCCPB__EVENT__EVENT_TYPE__PUT;
		ev[i].kv = &kv[i];
		evp[i] = &ev[i];
		if (rev > f->rev)
			f->rev = rev;
	}
	h.revision = f->rev;
	r.header = &h;
	r.watch_id = 7;
	r.n_events = n;
	r.events = evp;
	fake_watch_send(f, &r);
}

static const struct grpc_handler fake_unary = {
	.start = fake_start,
	.message = fake_unary_message,
	.close = fake_close,
};

static const struct grpc_handler fake_keepalive = {
	.start = fake_start,
	.message = fake_keepalive_message,
	.close = fake_close,
};

static const struct grpc_handler fake_watch = {
	.start = fake_start,
	.message = fake_watch_message,
	.close = fake_close,
};

/* A port nothing listens on (bound, then closed). */
static int
dead_port(void)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, HOST, &sin.sin_addr);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &slen), 0);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static void
fake_listen(struct fake *f, struct event_base *base, int port)
{
	static const char *const unary_paths[] = {
		"/etcdserverpb.KV/Range", "/etcdserverpb.KV/Put",
		"/etcdserverpb.KV/DeleteRange", "/etcdserverpb.KV/Txn",
		"/etcdserverpb.Lease/LeaseGrant",
		"/etcdserverpb.Lease/LeaseRevoke",
	};
	struct grpc_method m;

	assert_non_null(f->srv = grpc_server_new(base, NULL));
	for (size_t i = 0; i < sizeof(unary_paths) / sizeof(unary_paths[0]);
	    i++) {
		m.path = unary_paths[i];
		m.kind = GRPC_METHOD_UNARY;
		m.handler = &fake_unary;
		m.arg = f;
		assert_int_equal(grpc_server_add_method(f->srv, &m), 0);
	}
	m.path = "/etcdserverpb.Lease/LeaseKeepAlive";
	m.kind = GRPC_METHOD_BIDI_STREAMING;
	m.handler = &fake_keepalive;
	assert_int_equal(grpc_server_add_method(f->srv, &m), 0);
	m.path = "/etcdserverpb.Watch/Watch";
	m.handler = &fake_watch;
	assert_int_equal(grpc_server_add_method(f->srv, &m), 0);
	assert_int_equal(grpc_server_listen(f->srv, HOST, port, NULL,
	    &f->port), 0);
}

static void
fake_free(struct fake *f)
{
	grpc_server_free(f->srv);
	f->srv = NULL;
}

/* ---- the client side ---- */

struct ctx {
	struct event_base *base;
	struct event *tick;
	struct fake fa;
	struct fake fb;
	struct etcd_client *ec;
	char eps[3][64];
	const char *epp[3];
	/* results */
	int done;
	int status[16];
	char message[16][512];
	int64_t elapsed[16];
	int64_t revision[16];
	char endpoint[16][64];
	/* lease */
	int lost;
	char lost_reason[256];
	int64_t lost_at;
	int renewed;
	int64_t renewed_at;
	struct etcd_lease *lease;
	int free_in_cb;
	/* watch */
	int64_t ev_rev[32];
	int ev_type[32];
	int nev;
	int synced;
	int64_t synced_rev;
	int ended;
	int64_t ended_compact;
	struct etcd_watch *watch;
};

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static int
setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	struct timeval tv = { 0, 10000 };

	assert_non_null(c);
	assert_non_null(c->base = event_base_new());
	/* EVLOOP_ONCE never blocks for long: a tick every 10 ms. */
	c->tick = event_new(c->base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(c->tick, &tv);
	*state = c;
	return 0;
}

static int
teardown(void **state)
{
	struct ctx *c = *state;

	etcd_client_free(c->ec);
	fake_free(&c->fa);
	fake_free(&c->fb);
	/* What the frees scheduled runs now; nothing may be left. */
	event_free(c->tick);
	event_base_loop(c->base, EVLOOP_NONBLOCK);
	event_base_free(c->base);
	free(c);
	return 0;
}

static int
run_until(struct ctx *c, int (*cond)(struct ctx *), int ms)
{
	int64_t t0 = now_ms();

	while (!cond(c)) {
		if (now_ms() - t0 > ms)
			return 0;
		event_base_loop(c->base, EVLOOP_ONCE);
	}
	return 1;
}

static void
run_for(struct ctx *c, int ms)
{
	int64_t t0 = now_ms();

	while (now_ms() - t0 < ms)
		event_base_loop(c->base, EVLOOP_ONCE);
}

static int
done1(struct ctx *c)
{
	return c->done >= 1;
}

static int
done2(struct ctx *c)
{
	return c->done >= 2;
}

static int
done3(struct ctx *c)
{
	return c->done >= 3;
}

static void
client(struct ctx *c, int n, const int *ports, int64_t timeout_ms)
{
	struct etcd_client_config cfg;

	for (int i = 0; i < n; i++) {
		snprintf(c->eps[i], sizeof(c->eps[i]), HOST ":%d", ports[i]);
		c->epp[i] = c->eps[i];
	}
	etcd_client_config_default(&cfg);
	cfg.endpoints = c->epp;
	cfg.nendpoints = (size_t)n;
	if (timeout_ms > 0)
		cfg.call_timeout_ms = timeout_ms;
	assert_non_null(c->ec = etcd_client_new(c->base, &cfg));
}

static void
result_cb(const struct etcd_result *r, void *arg)
{
	struct ctx *c = arg;
	int i = c->done++;

	assert_true(i < 16);
	c->status[i] = r->status;
	snprintf(c->message[i], sizeof(c->message[i]), "%s", r->message);
	c->elapsed[i] = r->elapsed_ms;
	c->revision[i] = r->revision;
	snprintf(c->endpoint[i], sizeof(c->endpoint[i]), "%s",
	    etcd_client_endpoint(c->ec));
}

static void
put(struct ctx *c)
{
	assert_int_equal(etcd_put(c->ec, "/k", "v", 1, 0, 0, result_cb, c,
	    NULL), 0);
}

static void
test_refused_endpoint_is_skipped(void **state)
{
	struct ctx *c = *state;
	int ports[2];
	struct evbuffer *out;
	char *text;

	fake_listen(&c->fb, c->base, 0);
	c->fb.rev = 10;
	ports[0] = dead_port();
	ports[1] = c->fb.port;
	client(c, 2, ports, 0);
	put(c);
	assert_true(run_until(c, done1, 2000));
	assert_int_equal(c->status[0], GRPC_STATUS_OK);
	assert_int_equal(c->revision[0], 11);
	/* Sent again on the next endpoint, unseen by the caller. */
	assert_true(c->elapsed[0] < 500);
	assert_string_equal(etcd_client_endpoint(c->ec), c->eps[1]);
	assert_true(etcd_client_connected(c->ec));
	assert_int_equal(c->fb.unary, 1);
	assert_int_equal(c->fb.with_leader_md, 1);
	assert_int_equal(etcd_client_revision(c->ec), 11);

	/* A range: the record as the member sent it. */
	assert_int_equal(etcd_range(c->ec, "/r", ETCD_SERIALIZABLE, result_cb,
	    c, NULL), 0);
	assert_true(run_until(c, done2, 2000));
	assert_int_equal(c->status[1], GRPC_STATUS_OK);
	/* Serializable: without require-leader. */
	assert_int_equal(c->fb.with_leader_md, 1);
	assert_int_equal(c->fb.unary, 2);

	assert_non_null(out = evbuffer_new());
	etcd_client_write_metrics(c->ec, out);
	evbuffer_add(out, "", 1);
	text = (char *)evbuffer_pullup(out, -1);
	assert_non_null(strstr(text, "troika_coord_etcd_requests_total"
	    "{op=\"put\",grpc_code=\"OK\"} 1\n"));
	assert_non_null(strstr(text, "troika_coord_etcd_requests_total"
	    "{op=\"range\",grpc_code=\"OK\"} 1\n"));
	assert_non_null(strstr(text, "troika_coord_etcd_endpoint_switches_total"
	    " 1\n"));
	assert_non_null(strstr(text,
	    "troika_coord_etcd_request_duration_seconds_count{op=\"put\"} 1\n"));
	assert_non_null(strstr(text, "troika_coord_etcd_revision 11\n"));
	evbuffer_free(out);
}

static void
test_all_endpoints_down_fail_fast_then_recover(void **state)
{
	struct ctx *c = *state;
	int ports[2] = { dead_port(), dead_port() };

	client(c, 2, ports, 0);
	put(c);
	assert_true(run_until(c, done1, 2000));
	assert_int_equal(c->status[0], GRPC_STATUS_UNAVAILABLE);
	assert_true(c->elapsed[0] < 200);
	/* Says what each endpoint said. */
	assert_non_null(strstr(c->message[0], c->eps[0]));
	assert_non_null(strstr(c->message[0], c->eps[1]));
	assert_non_null(strstr(c->message[0], "refused"));
	/* Between rounds a call fails at once, with the same summary. */
	put(c);
	assert_true(run_until(c, done2, 2000));
	assert_int_equal(c->status[1], GRPC_STATUS_UNAVAILABLE);
	assert_true(c->elapsed[1] <= 5);
	/* A member comes up on the second port: the next round finds it. */
	fake_listen(&c->fb, c->base, ports[1]);
	run_for(c, 700);
	put(c);
	assert_true(run_until(c, done3, 2000));
	assert_int_equal(c->status[2], GRPC_STATUS_OK);
	assert_string_equal(etcd_client_endpoint(c->ec), c->eps[1]);
}

static void
test_no_leader_reported_and_switched(void **state)
{
	struct ctx *c = *state;
	int ports[2];

	fake_listen(&c->fa, c->base, 0);
	fake_listen(&c->fb, c->base, 0);
	c->fa.mode = FAKE_NO_LEADER;
	ports[0] = c->fa.port;
	ports[1] = c->fb.port;
	client(c, 2, ports, 0);
	put(c);
	assert_true(run_until(c, done1, 2000));
	/* Reported as it is, at once, never retried behind the caller. */
	assert_int_equal(c->status[0], GRPC_STATUS_UNAVAILABLE);
	assert_string_equal(c->message[0], "etcdserver: no leader");
	assert_true(c->elapsed[0] < 200);
	assert_int_equal(c->fa.unary, 1);
	assert_int_equal(c->fa.with_leader_md, 1);
	/* The next call goes to the other member, also when made at once. */
	put(c);
	assert_true(run_until(c, done2, 2000));
	assert_int_equal(c->status[1], GRPC_STATUS_OK);
	assert_string_equal(c->endpoint[1], c->eps[1]);
	assert_int_equal(c->fa.unary, 1);
	assert_int_equal(c->fb.unary, 1);
}

static void
test_deadlines_in_a_row_switch(void **state)
{
	struct ctx *c = *state;
	int ports[2];
	int64_t t0;

	fake_listen(&c->fa, c->base, 0);
	fake_listen(&c->fb, c->base, 0);
	c->fa.mode = FAKE_SILENT;
	ports[0] = c->fa.port;
	ports[1] = c->fb.port;
	client(c, 2, ports, 200);
	t0 = now_ms();
	put(c);
	assert_true(run_until(c, done1, 2000));
	assert_int_equal(c->status[0], GRPC_STATUS_DEADLINE_EXCEEDED);
	assert_true(c->elapsed[0] >= 190 && c->elapsed[0] < 400);
	assert_true(now_ms() - t0 < 400);
	assert_string_equal(etcd_client_endpoint(c->ec), c->eps[0]);
	put(c);
	assert_true(run_until(c, done2, 2000));
	assert_int_equal(c->status[1], GRPC_STATUS_DEADLINE_EXCEEDED);
	/* Two in a row: the member is left for the next. */
	put(c);
	assert_true(run_until(c, done3, 2000));
	assert_int_equal(c->status[2], GRPC_STATUS_OK);
	assert_string_equal(c->endpoint[2], c->eps[1]);
	assert_int_equal(c->fa.unary, 2);
}

static void
test_cancel(void **state)
{
	struct ctx *c = *state;
	struct etcd_call *call;
	int ports[1];

	fake_listen(&c->fa, c->base, 0);
	c->fa.mode = FAKE_SILENT;
	ports[0] = c->fa.port;
	client(c, 1, ports, 300);
	/* Cancelled before it went out, and after. */
	assert_int_equal(etcd_put(c->ec, "/k", "v", 1, 0, 0, result_cb, c,
	    &call), 0);
	etcd_call_cancel(call);
	assert_int_equal(etcd_put(c->ec, "/k", "v", 1, 0, 0, result_cb, c,
	    &call), 0);
	run_for(c, 100);
	assert_int_equal(c->fa.unary, 1);
	etcd_call_cancel(call);
	run_for(c, 500);
	assert_int_equal(c->done, 0);
	assert_int_equal(c->fa.open_calls, 0);
	/* One left pending when the client is freed: no callback either. */
	assert_int_equal(etcd_put(c->ec, "/k", "v", 1, 0, 0, result_cb, c,
	    NULL), 0);
	run_for(c, 50);
	etcd_client_free(c->ec);
	c->ec = NULL;
	run_for(c, 50);
	assert_int_equal(c->done, 0);
	/* Bad arguments. */
	client(c, 1, ports, 300);
	assert_int_equal(etcd_put(c->ec, "", "v", 1, 0, 0, result_cb, c, NULL),
	    -EINVAL);
	assert_int_equal(etcd_put(c->ec, "/k", "v", 1, 0, 0, NULL, c, NULL),
	    -EINVAL);
	assert_int_equal(etcd_lease_grant(c->ec, 0, result_cb, c, NULL),
	    -EINVAL);
	assert_int_equal(etcd_lease_revoke(c->ec, 0, result_cb, c, NULL),
	    -EINVAL);
}

static void
test_bad_config(void **state)
{
	struct ctx *c = *state;
	struct etcd_client_config cfg;
	const char *bad[] = { "127.0.1.1" };

	etcd_client_config_default(&cfg);
	errno = 0;
	assert_null(etcd_client_new(c->base, &cfg));
	assert_int_equal(errno, EINVAL);
	cfg.endpoints = bad;
	cfg.nendpoints = 1;
	assert_null(etcd_client_new(c->base, &cfg));
	assert_int_equal(errno, EINVAL);
}

/* ---- leases ---- */

static void
lease_lost(struct etcd_lease *l, const char *reason, void *arg)
{
	struct ctx *c = arg;

	c->lost++;
	c->lost_at = now_ms();
	snprintf(c->lost_reason, sizeof(c->lost_reason), "%s", reason);
	assert_false(etcd_lease_alive(l));
	if (c->free_in_cb) {
		etcd_lease_free(l);
		c->lease = NULL;
	}
}

static void
lease_renewed(struct etcd_lease *l, int64_t ttl, void *arg)
{
	struct ctx *c = arg;

	(void)l;
	assert_true(ttl == c->fa.ka_ttl || ttl == c->fb.ka_ttl);
	c->renewed++;
	c->renewed_at = now_ms();
}

static const struct etcd_lease_handler lease_handler = {
	.lost = lease_lost,
	.renewed = lease_renewed,
};

static int
lost1(struct ctx *c)
{
	return c->lost >= 1;
}

static int
lost2(struct ctx *c)
{
	return c->lost >= 2;
}

static int
lost3(struct ctx *c)
{
	return c->lost >= 3;
}

static void
test_lease_keepalive_and_loss(void **state)
{
	struct ctx *c = *state;
	int ports[1];
	int64_t granted, last_sent_bound;

	fake_listen(&c->fa, c->base, 0);
	c->fa.ka_answer = 1;
	c->fa.ka_ttl = 1;
	ports[0] = c->fa.port;
	client(c, 1, ports, 0);
	granted = now_ms();
	c->lease = etcd_lease_keepalive(c->ec, 0x1234, 1, granted,
	    &lease_handler, c);
	assert_non_null(c->lease);
	assert_int_equal(etcd_lease_deadline_ms(c->lease), granted + 900);
	/* Renewed every 333 ms, well past its 1 s TTL. */
	run_for(c, 1500);
	assert_int_equal(c->lost, 0);
	assert_true(c->renewed >= 4);
	assert_true(etcd_lease_alive(c->lease));
	assert_true(etcd_lease_deadline_ms(c->lease) > now_ms() + 400);
	/* The member stops answering: lost one TTL after the last send. */
	c->fa.ka_answer = 0;
	last_sent_bound = c->renewed_at;
	assert_true(run_until(c, lost1, 2000));
	assert_non_null(strstr(c->lost_reason, "no keep-alive answered"));
	assert_true(c->lost_at - last_sent_bound <= 1000);
	assert_true(c->lost_at - last_sent_bound >= 500);
	assert_false(etcd_lease_alive(c->lease));
	run_for(c, 400);
	assert_int_equal(c->lost, 1);
	etcd_lease_free(c->lease);
	c->lease = NULL;

	/* etcd says TTL 0: lost at once; freed from its own callback. */
	c->fa.ka_answer = 1;
	c->fa.ka_ttl = 0;
	c->free_in_cb = 1;
	c->lease = etcd_lease_keepalive(c->ec, 0x1235, 5, now_ms(),
	    &lease_handler, c);
	assert_non_null(c->lease);
	assert_true(run_until(c, lost2, 1000));
	assert_non_null(strstr(c->lost_reason, "TTL 0"));
	assert_null(c->lease);
	run_for(c, 100);
	assert_int_equal(c->fa.open_calls, 0);

	/* A grant that is already past its TTL is lost at once. */
	c->free_in_cb = 0;
	c->lease = etcd_lease_keepalive(c->ec, 0x1236, 1, now_ms() - 5000,
	    &lease_handler, c);
	assert_true(run_until(c, lost3, 1000));
	etcd_lease_free(c->lease);
	c->lease = NULL;
	assert_null(etcd_lease_keepalive(c->ec, 0, 1, 0, &lease_handler, c));
	assert_null(etcd_lease_keepalive(c->ec, 1, 0, 0, &lease_handler, c));
}

static void
test_lease_stream_reopened_on_next_member(void **state)
{
	struct ctx *c = *state;
	int ports[2];

	fake_listen(&c->fa, c->base, 0);
	fake_listen(&c->fb, c->base, 0);
	c->fa.ka_answer = c->fb.ka_answer = 1;
	c->fa.ka_ttl = c->fb.ka_ttl = 2;
	ports[0] = c->fa.port;
	ports[1] = c->fb.port;
	client(c, 2, ports, 0);
	c->lease = etcd_lease_keepalive(c->ec, 0x1234, 2, now_ms(),
	    &lease_handler, c);
	run_for(c, 800);
	assert_true(c->fa.ka_requests >= 2);
	/* The member goes away: the keep-alive goes on with the other. */
	fake_free(&c->fa);
	run_for(c, 1500);
	assert_int_equal(c->lost, 0);
	assert_true(c->fb.ka_requests >= 2);
	assert_string_equal(etcd_client_endpoint(c->ec), c->eps[1]);
	etcd_lease_free(c->lease);
	c->lease = NULL;
	run_for(c, 50);
	assert_int_equal(c->fb.open_calls, 0);
}

static void
test_unanswered_keepalives_leave_the_member(void **state)
{
	struct ctx *c = *state;
	int ports[2];
	int64_t t0 = now_ms();

	fake_listen(&c->fa, c->base, 0);
	fake_listen(&c->fb, c->base, 0);
	/* A answers unary calls but never a keep-alive (a leader gone). */
	c->fa.ka_answer = 0;
	c->fb.ka_answer = 1;
	c->fb.ka_ttl = 3;
	ports[0] = c->fa.port;
	ports[1] = c->fb.port;
	client(c, 2, ports, 300);
	c->lease = etcd_lease_keepalive(c->ec, 0x1234, 3, t0, &lease_handler,
	    c);
	/* Two keep-alives late by 300 ms: left for B, renewed there. */
	run_for(c, 2000);
	assert_string_equal(etcd_client_endpoint(c->ec), c->eps[1]);
	assert_int_equal(c->fa.ka_requests, 2);
	assert_true(c->fb.ka_requests >= 1);
	assert_true(c->renewed >= 1);
	assert_int_equal(c->lost, 0);
	assert_true(etcd_lease_deadline_ms(c->lease) > t0 + 3000);
	etcd_lease_free(c->lease);
	c->lease = NULL;
}

/* ---- watches ---- */

static void
watch_event(struct etcd_watch *w, const struct etcd_event *ev, void *arg)
{
	struct ctx *c = arg;

	assert_true(c->nev < 32);
	assert_int_equal(ev->kv.key_len, 4);
	c->ev_rev[c->nev] = ev->revision;
	c->ev_type[c->nev] = ev->type;
	c->nev++;
	if (c->free_in_cb) {
		etcd_watch_free(w);
		c->watch = NULL;
	}
}

static void
watch_ended(struct etcd_watch *w, int64_t compact, const char *reason,
    void *arg)
{
	struct ctx *c = arg;

	(void)w;
	(void)reason;
	c->ended++;
	c->ended_compact = compact;
}

static void
watch_synced(struct etcd_watch *w, int64_t rev, void *arg)
{
	struct ctx *c = arg;

	(void)w;
	c->synced++;
	c->synced_rev = rev;
}

static const struct etcd_watch_handler watch_handler = {
	.event = watch_event,
	.ended = watch_ended,
	.synced = watch_synced,
};

static int
synced1(struct ctx *c)
{
	return c->synced >= 1;
}

static int
synced2(struct ctx *c)
{
	return c->synced >= 2;
}

static int
ev2(struct ctx *c)
{
	return c->nev >= 2;
}

static int
ev3(struct ctx *c)
{
	return c->nev >= 3;
}

static int
ev4(struct ctx *c)
{
	return c->nev >= 4;
}

static int
ended1(struct ctx *c)
{
	return c->ended >= 1;
}

static void
test_watch_resumes_without_loss_or_repeat(void **state)
{
	struct ctx *c = *state;
	int ports[1];
	int64_t first[] = { 11, -12 };
	int64_t again[] = { 12, 13 };

	fake_listen(&c->fa, c->base, 0);
	c->fa.rev = 10;
	ports[0] = c->fa.port;
	client(c, 1, ports, 0);
	c->watch = etcd_watch(c->ec, "/w/", ETCD_PREFIX, 0, &watch_handler, c);
	assert_non_null(c->watch);
	assert_true(run_until(c, synced1, 2000));
	assert_int_equal(c->synced_rev, 10);
	assert_int_equal(c->fa.watch_start[0], 0);
	assert_int_equal(c->fa.watch_md, 1);
	assert_int_equal(etcd_watch_next_revision(c->watch), 11);
	fake_watch_events(&c->fa, first, 2);
	assert_true(run_until(c, ev2, 2000));
	assert_int_equal(c->ev_rev[0], 11);
	assert_int_equal(c->ev_type[0], ETCD_EVENT_PUT);
	assert_int_equal(c->ev_rev[1], 12);
	assert_int_equal(c->ev_type[1], ETCD_EVENT_DELETE);
	/* The stream breaks: re-created from the last revision + 1. */
	grpc_call_finish(c->fa.watch, GRPC_STATUS_UNAVAILABLE, "broken");
	assert_true(run_until(c, synced2, 2000));
	assert_int_equal(c->fa.watch_creates, 2);
	assert_int_equal(c->fa.watch_start[1], 13);
	assert_int_equal(etcd_watch_restarts(c->watch), 1);
	/* A repeat of 12 is not delivered again; 13 is. */
	fake_watch_events(&c->fa, again, 2);
	assert_true(run_until(c, ev3, 2000));
	run_for(c, 50);
	assert_int_equal(c->nev, 3);
	assert_int_equal(c->ev_rev[2], 13);
	assert_int_equal(etcd_watch_next_revision(c->watch), 14);
	/* Freed from inside its own event callback. */
	c->free_in_cb = 1;
	again[0] = 14;
	fake_watch_events(&c->fa, again, 1);
	assert_true(run_until(c, ev4, 2000));
	assert_null(c->watch);
	run_for(c, 100);
	assert_int_equal(c->fa.open_calls, 0);
}

static void
test_watch_compacted(void **state)
{
	struct ctx *c = *state;
	int ports[1];

	fake_listen(&c->fa, c->base, 0);
	c->fa.rev = 50;
	c->fa.compact_on_create = 40;
	ports[0] = c->fa.port;
	client(c, 1, ports, 0);
	c->watch = etcd_watch(c->ec, "/w/", ETCD_PREFIX, 5, &watch_handler, c);
	assert_true(run_until(c, ended1, 2000));
	assert_int_equal(c->ended_compact, 40);
	assert_int_equal(c->fa.watch_start[0], 5);
	assert_int_equal(c->synced, 0);
	assert_int_equal(c->nev, 0);
	/* Ended for good: no re-creation. */
	run_for(c, 300);
	assert_int_equal(c->fa.watch_creates, 1);
	assert_int_equal(c->fa.open_calls, 0);
	etcd_watch_free(c->watch);
	c->watch = NULL;
	assert_null(etcd_watch(c->ec, "", 0, 0, &watch_handler, c));
	assert_null(etcd_watch(c->ec, "/k", ETCD_SERIALIZABLE, 0,
	    &watch_handler, c));
	assert_null(etcd_watch(c->ec, "/k", 0, -1, &watch_handler, c));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prefix_end),
		cmocka_unit_test(test_lease_arithmetic),
		cmocka_unit_test(test_pack_op),
		cmocka_unit_test(test_pack_txn),
		cmocka_unit_test_setup_teardown(test_refused_endpoint_is_skipped,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_all_endpoints_down_fail_fast_then_recover, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_no_leader_reported_and_switched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadlines_in_a_row_switch,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_config, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_lease_keepalive_and_loss,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_lease_stream_reopened_on_next_member, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_unanswered_keepalives_leave_the_member, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_watch_resumes_without_loss_or_repeat, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_compacted, setup,
		    teardown),
	};

	log_init("coord_etcd_test", LOG_TARGET_STDERR, 4);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
