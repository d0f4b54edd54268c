/*
 * Leader election (core/coord/coord_leader.c) against a fake etcd member
 * made of our own gRPC server on 127.0.1.1, which answers the campaign
 * transaction as the test says: winning gives the transaction's revision
 * as token; a lease answered with TTL 0 or a deleted leader key deposes
 * at once and the campaign goes on; a revoked lease is replaced without
 * waiting; a follower cannot write guarded; a leader revokes its lease
 * on the way out. Real etcd: tests/system/test_etcd.py.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "coord_leader.h"
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

/* ---- the fake member ---- */

struct fake {
	struct grpc_server *srv;
	int port;
	int64_t rev;
	int txn_win;            /* the campaign's compare holds */
	int txn_lease_gone;     /* answer the next txn NOT_FOUND lease */
	int txn_hold;           /* keep the next txn for fake_txn_answer() */
	struct grpc_call *held;
	int txns;
	int64_t txn_put_lease;  /* the lease of the last txn's put */
	int64_t txn_guard;      /* the create_revision the last txn compared */
	int grants;
	int64_t revoked;
	int64_t ka_ttl;
	struct grpc_call *watch;
	int watches;
};

static int
fake_start(struct grpc_call *call, void *arg)
{
	grpc_call_set_data(call, arg);
	return 0;
}

static void
fake_close(struct grpc_call *call, int status)
{
	struct fake *f = grpc_call_data(call);

	(void)status;
	if (call == f->watch)
		f->watch = NULL;
	if (call == f->held)
		f->held = NULL;
}

static void
fake_send(struct grpc_call *call, const ProtobufCMessage *m, int finish)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(len + 1);

	assert_non_null(buf);
	protobuf_c_message_pack(m, buf);
	assert_int_equal(grpc_call_send(call, buf, len), 0);
	free(buf);
	if (finish)
		grpc_call_finish(call, GRPC_STATUS_OK, NULL);
}

static void
fake_txn(struct fake *f, struct grpc_call *call, const uint8_t *msg,
    size_t len)
{
	Etcdserverpb__TxnRequest *q =
	    etcdserverpb__txn_request__unpack(NULL, len, msg);
	Etcdserverpb__TxnResponse r = ETCDSERVERPB__TXN_RESPONSE__INIT;
	Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
	Etcdserverpb__ResponseOp op = ETCDSERVERPB__RESPONSE_OP__INIT, *ops[1];
	Etcdserverpb__RangeResponse rr = ETCDSERVERPB__RANGE_RESPONSE__INIT;
	Mvccpb__KeyValue kv = MVCCPB__KEY_VALUE__INIT, *kvs[1] = { &kv };

	assert_non_null(q);
	assert_int_equal(q->n_compare, 1);
	f->txns++;
	f->txn_guard = q->compare[0]->create_revision;
	if (q->n_success > 0 && q->success[0]->request_case ==
	    ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT)
		f->txn_put_lease = q->success[0]->request_put->lease;
	etcdserverpb__txn_request__free_unpacked(q, NULL);
	if (f->txn_hold) {
		f->txn_hold = 0;
		f->held = call;
		return;
	}
	if (f->txn_lease_gone) {
		f->txn_lease_gone = 0;
		grpc_call_finish(call, GRPC_STATUS_NOT_FOUND,
		    "etcdserver: requested lease not found");
		return;
	}
	h.revision = ++f->rev;
	r.header = &h;
	r.succeeded = f->txn_win;
	if (!f->txn_win) {
		/* The failure branch reads the holder. */
		kv.key.data = (uint8_t *)(uintptr_t)"/leader";
		kv.key.len = 7;
		kv.value.data = (uint8_t *)(uintptr_t)"other";
		kv.value.len = 5;
		kv.create_revision = 3;
		kv.lease = 99;
		rr.n_kvs = 1;
		rr.kvs = kvs;
		op.response_case =
		    ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE;
		op.response_range = &rr;
		ops[0] = &op;
		r.n_responses = 1;
		r.responses = ops;
	}
	fake_send(call, &r.base, 1);
}

/* Answer the held campaign transaction: it won. */
static void
fake_txn_answer(struct fake *f)
{
	Etcdserverpb__TxnResponse r = ETCDSERVERPB__TXN_RESPONSE__INIT;
	Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;

	assert_non_null(f->held);
	h.revision = ++f->rev;
	r.header = &h;
	r.succeeded = 1;
	fake_send(f->held, &r.base, 1);
}

static void
fake_unary_message(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	struct fake *f = grpc_call_data(call);
	const char *path = grpc_call_path(call);
	Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;

	h.revision = f->rev;
	if (strcmp(path, "/etcdserverpb.KV/Txn") == 0) {
		fake_txn(f, call, msg, len);
	} else if (strcmp(path, "/etcdserverpb.Lease/LeaseGrant") == 0) {
		Etcdserverpb__LeaseGrantRequest *q =
		    etcdserverpb__lease_grant_request__unpack(NULL, len, msg);
		Etcdserverpb__LeaseGrantResponse r =
		    ETCDSERVERPB__LEASE_GRANT_RESPONSE__INIT;

		assert_non_null(q);
		r.header = &h;
		r.id = 100 + ++f->grants;
		r.ttl = q->ttl;
		fake_send(call, &r.base, 1);
		etcdserverpb__lease_grant_request__free_unpacked(q, NULL);
	} else if (strcmp(path, "/etcdserverpb.Lease/LeaseRevoke") == 0) {
		Etcdserverpb__LeaseRevokeRequest *q =
		    etcdserverpb__lease_revoke_request__unpack(NULL, len, msg);
		Etcdserverpb__LeaseRevokeResponse r =
		    ETCDSERVERPB__LEASE_REVOKE_RESPONSE__INIT;

		assert_non_null(q);
		f->revoked = q->id;
		r.header = &h;
		fake_send(call, &r.base, 1);
		etcdserverpb__lease_revoke_request__free_unpacked(q, NULL);
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

	assert_non_null(q);
	r.id = q->id;
	r.ttl = f->ka_ttl;
	fake_send(call, &r.base, 0);
	etcdserverpb__lease_keep_alive_request__free_unpacked(q, NULL);
}

static void
fake_watch_message(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	struct fake *f = grpc_call_data(call);
	Etcdserverpb__WatchResponse r = ETCDSERVERPB__WATCH_RESPONSE__INIT;
	Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;

	(void)msg;
	(void)len;
	f->watch = call;
	f->watches++;
	h.revision = f->rev;
	r.header = &h;
	r.created = 1;
	fake_send(call, &r.base, 0);
}

/* The leader key is deleted (a revoked or expired lease, elsewhere). */
static void
fake_delete_leader_key(struct fake *f)
{
	Etcdserverpb__WatchResponse r = ETCDSERVERPB__WATCH_RESPONSE__INIT;
	Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
	Mvccpb__Event ev = MVCCPB__EVENT__INIT, *evs[1] = { &ev };
	Mvccpb__KeyValue kv = MVCCPB__KEY_VALUE__INIT;

	assert_non_null(f->watch);
	kv.key.data = (uint8_t *)(uintptr_t)"/leader";
	kv.key.len = 7;
	kv.mod_revision = ++f->rev;
	ev.type = MVCCPB__EVENT__EVENT_TYPE__DELETE;
	ev.kv = &kv;
	h.revision = f->rev;
	r.header = &h;
	r.n_events = 1;
	r.events = evs;
	fake_send(f->watch, &r.base, 0);
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

static void
fake_listen(struct fake *f, struct event_base *base)
{
	static const char *const unary[] = {
		"/etcdserverpb.KV/Txn", "/etcdserverpb.Lease/LeaseGrant",
		"/etcdserverpb.Lease/LeaseRevoke",
	};
	struct grpc_method m = { .kind = GRPC_METHOD_UNARY,
	    .handler = &fake_unary, .arg = f };

	assert_non_null(f->srv = grpc_server_new(base, NULL));
	for (size_t i = 0; i < sizeof(unary) / sizeof(unary[0]); i++) {
		m.path = unary[i];
		assert_int_equal(grpc_server_add_method(f->srv, &m), 0);
	}
	m.kind = GRPC_METHOD_BIDI_STREAMING;
	m.path = "/etcdserverpb.Lease/LeaseKeepAlive";
	m.handler = &fake_keepalive;
	assert_int_equal(grpc_server_add_method(f->srv, &m), 0);
	m.path = "/etcdserverpb.Watch/Watch";
	m.handler = &fake_watch;
	assert_int_equal(grpc_server_add_method(f->srv, &m), 0);
	assert_int_equal(grpc_server_listen(f->srv, HOST, 0, NULL, &f->port),
	    0);
}

/* ---- the candidate ---- */

struct ctx {
	struct event_base *base;
	struct event *tick;
	struct fake f;
	struct etcd_client *ec;
	struct coord_leader *cl;
	char ep[64];
	const char *epp[1];
	enum coord_leader_state states[16];
	char reasons[16][256];
	int64_t tokens[16];
	int nchanges;
	int done;
	int status;
	int succeeded;
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
	struct etcd_client_config cfg;
	struct timeval tv = { 0, 10000 };

	assert_non_null(c);
	assert_non_null(c->base = event_base_new());
	c->tick = event_new(c->base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(c->tick, &tv);
	fake_listen(&c->f, c->base);
	c->f.rev = 20;
	c->f.ka_ttl = 3;
	snprintf(c->ep, sizeof(c->ep), HOST ":%d", c->f.port);
	c->epp[0] = c->ep;
	etcd_client_config_default(&cfg);
	cfg.endpoints = c->epp;
	cfg.nendpoints = 1;
	assert_non_null(c->ec = etcd_client_new(c->base, &cfg));
	*state = c;
	return 0;
}

static int
teardown(void **state)
{
	struct ctx *c = *state;

	coord_leader_free(c->cl);
	etcd_client_free(c->ec);
	grpc_server_free(c->f.srv);
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
changed(struct coord_leader *cl, enum coord_leader_state state,
    const char *reason, void *arg)
{
	struct ctx *c = arg;
	int i = c->nchanges++;

	assert_true(i < 16);
	assert_int_equal(coord_leader_state(cl), state);
	c->states[i] = state;
	c->tokens[i] = coord_leader_token(cl);
	snprintf(c->reasons[i], sizeof(c->reasons[i]), "%s", reason);
}

static void
campaign(struct ctx *c, int64_t ttl_s)
{
	struct coord_leader_config cfg;

	coord_leader_config_default(&cfg);
	cfg.key = "/leader";
	cfg.value = "me";
	cfg.ttl_s = ttl_s;
	assert_non_null(c->cl = coord_leader_new(c->ec, &cfg, changed, c));
	assert_int_equal(coord_leader_state(c->cl), COORD_LEADER_CANDIDATE);
}

static int
changes1(struct ctx *c)
{
	return c->nchanges >= 1;
}

static int
changes2(struct ctx *c)
{
	return c->nchanges >= 2;
}

static int
changes3(struct ctx *c)
{
	return c->nchanges >= 3;
}

static int
changes5(struct ctx *c)
{
	return c->nchanges >= 5;
}

static int
watching(struct ctx *c)
{
	return c->f.watch != NULL;
}

static int
watching_again(struct ctx *c)
{
	return c->f.watches >= 2 && c->f.watch != NULL;
}

static int
done1(struct ctx *c)
{
	return c->done >= 1;
}

static int
revoked(struct ctx *c)
{
	return c->f.revoked != 0;
}

static void
result_cb(const struct etcd_result *r, void *arg)
{
	struct ctx *c = arg;

	c->done++;
	c->status = r->status;
	c->succeeded = r->succeeded;
}

static void
test_wins_then_loses_its_lease(void **state)
{
	struct ctx *c = *state;
	struct etcd_op op = { .type = ETCD_OP_PUT, .key = "/actions/1",
	    .value = "restart", .value_len = 7 };
	struct evbuffer *out;
	char *text;

	c->f.txn_win = 1;
	campaign(c, 3);
	assert_true(run_until(c, changes1, 2000));
	assert_int_equal(c->states[0], COORD_LEADER_LEADER);
	/* The token is the revision that created the key. */
	assert_int_equal(c->tokens[0], 21);
	assert_int_equal(coord_leader_token(c->cl), 21);
	assert_string_equal(coord_leader_holder(c->cl), "me");
	assert_int_equal(c->f.grants, 1);
	assert_int_equal(c->f.txn_put_lease, 101);
	assert_int_equal(c->f.txn_guard, 0);

	/* A guarded write compares the key's create_revision with it. */
	assert_int_equal(coord_leader_guarded(c->cl, 0, &op, 1, result_cb, c,
	    NULL), 0);
	assert_true(run_until(c, done1, 2000));
	assert_int_equal(c->status, GRPC_STATUS_OK);
	assert_int_equal(c->f.txn_guard, 21);

	assert_non_null(out = evbuffer_new());
	coord_leader_write_metrics(c->cl, out);
	evbuffer_add(out, "", 1);
	text = (char *)evbuffer_pullup(out, -1);
	assert_non_null(strstr(text, "troika_coord_leader{state=\"leader\"} 1\n"));
	assert_non_null(strstr(text,
	    "troika_coord_leader{state=\"follower\"} 0\n"));
	assert_non_null(strstr(text, "troika_coord_leader_token 21\n"));
	assert_non_null(strstr(text, "troika_coord_leader_changes_total 1\n"));
	evbuffer_free(out);

	/* etcd answers the next renewal with TTL 0: deposed at once. */
	c->f.ka_ttl = 0;
	assert_true(run_until(c, changes2, 3000));
	assert_int_equal(c->states[1], COORD_LEADER_CANDIDATE);
	assert_int_equal(c->tokens[1], 0);
	assert_non_null(strstr(c->reasons[1], "lease lost"));
	assert_int_equal(coord_leader_token(c->cl), 0);
	/* ... and campaigns again with a new lease. */
	c->f.ka_ttl = 3;
	assert_true(run_until(c, changes3, 3000));
	assert_int_equal(c->states[2], COORD_LEADER_LEADER);
	assert_int_equal(c->f.grants, 2);
	assert_int_equal(c->f.txn_put_lease, 102);
	assert_true(c->tokens[2] > 21);
}

static void
test_follows_until_the_key_is_deleted(void **state)
{
	struct ctx *c = *state;
	struct etcd_op op = { .type = ETCD_OP_PUT, .key = "/actions/1",
	    .value = "x", .value_len = 1 };

	c->f.txn_win = 0;
	campaign(c, 3);
	assert_true(run_until(c, changes1, 2000));
	assert_int_equal(c->states[0], COORD_LEADER_FOLLOWER);
	assert_string_equal(coord_leader_holder(c->cl), "other");
	assert_int_equal(coord_leader_holder_token(c->cl), 3);
	assert_int_equal(coord_leader_token(c->cl), 0);
	/* No token of its own to write with; a stale one goes to etcd. */
	assert_int_equal(coord_leader_guarded(c->cl, 0, &op, 1, result_cb, c,
	    NULL), -EPERM);
	assert_int_equal(coord_leader_guarded(c->cl, 3, NULL, 0, result_cb, c,
	    NULL), -EINVAL);
	/* The holder's key is deleted: campaign at once, and win. */
	c->f.txn_win = 1;
	assert_true(run_until(c, watching, 2000));
	fake_delete_leader_key(&c->f);
	assert_true(run_until(c, changes3, 2000));
	assert_int_equal(c->states[1], COORD_LEADER_CANDIDATE);
	assert_non_null(strstr(c->reasons[1], "deleted"));
	assert_int_equal(c->states[2], COORD_LEADER_LEADER);
	/* Still the first lease: a follower keeps it alive. */
	assert_int_equal(c->f.grants, 1);
	assert_int_equal(c->f.txns, 2);

	/* Its own key deleted under it: deposed at once. */
	assert_true(run_until(c, watching_again, 2000));
	c->f.txn_win = 0;
	fake_delete_leader_key(&c->f);
	assert_true(run_until(c, changes5, 2000));
	assert_int_equal(c->states[3], COORD_LEADER_CANDIDATE);
	assert_int_equal(c->states[4], COORD_LEADER_FOLLOWER);
}

static void
test_revoked_lease_replaced_at_once(void **state)
{
	struct ctx *c = *state;
	int64_t t0;

	c->f.txn_win = 1;
	c->f.txn_lease_gone = 1;
	t0 = now_ms();
	campaign(c, 3);
	assert_true(run_until(c, changes1, 2000));
	assert_int_equal(c->states[0], COORD_LEADER_LEADER);
	/* A second lease at once, not after retry_ms (500). */
	assert_true(now_ms() - t0 < 400);
	assert_int_equal(c->f.grants, 2);
	assert_int_equal(c->f.txn_put_lease, 102);
}

static int
held(struct ctx *c)
{
	return c->f.held != NULL;
}

static int
never(struct ctx *c)
{
	(void)c;
	return 0;
}

static void
test_never_leads_on_a_lost_lease(void **state)
{
	struct ctx *c = *state;
	struct etcd_op op = { .type = ETCD_OP_PUT, .key = "/x", .value = "x",
	    .value_len = 1 };

	/* The campaign's answer is late; the lease is lost meanwhile. */
	c->f.txn_win = 1;
	c->f.txn_hold = 1;
	c->f.ka_ttl = 0;
	campaign(c, 3);
	assert_true(run_until(c, held, 2000));
	/* The first renewal, sent at once, is answered TTL 0. */
	run_until(c, never, 200);
	assert_int_equal(c->f.grants, 1);
	c->f.txn_win = 0;
	fake_txn_answer(&c->f);
	assert_true(run_until(c, changes1, 2000));
	assert_int_equal(c->f.grants, 2);
	/* It won with the old lease, yet follows until that key is gone. */
	assert_int_equal(c->states[0], COORD_LEADER_FOLLOWER);
	assert_int_equal(coord_leader_token(c->cl), 0);
	assert_int_equal(coord_leader_guarded(c->cl, 0, &op, 1, result_cb, c,
	    NULL), -EPERM);
}

static void
test_leader_revokes_on_the_way_out(void **state)
{
	struct ctx *c = *state;

	c->f.txn_win = 1;
	campaign(c, 3);
	assert_true(run_until(c, changes1, 2000));
	coord_leader_free(c->cl);
	c->cl = NULL;
	assert_true(run_until(c, revoked, 2000));
	assert_int_equal(c->f.revoked, 101);
	/* No callback after free. */
	assert_int_equal(c->nchanges, 1);
}

static void
test_bad_config(void **state)
{
	struct ctx *c = *state;
	struct coord_leader_config cfg;

	coord_leader_config_default(&cfg);
	assert_null(coord_leader_new(c->ec, &cfg, changed, c));
	assert_int_equal(errno, EINVAL);
	cfg.key = "/leader";
	cfg.value = "me";
	assert_null(coord_leader_new(c->ec, &cfg, NULL, c));
	cfg.ttl_s = 0;
	assert_null(coord_leader_new(c->ec, &cfg, changed, c));
	assert_string_equal(coord_leader_state_str(COORD_LEADER_FOLLOWER),
	    "follower");
	coord_leader_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_wins_then_loses_its_lease,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_follows_until_the_key_is_deleted, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_revoked_lease_replaced_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_never_leads_on_a_lost_lease, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_leader_revokes_on_the_way_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_config, setup,
		    teardown),
	};

	log_init("coord_leader_test", LOG_TARGET_STDERR, 4);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
