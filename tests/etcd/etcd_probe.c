/*
 * etcd_probe: core/coord/etcd_client.c (and coord_leader.c) as a command,
 * so that tests/system/test_etcd.py can drive them against real etcd
 * members. Commands come on stdin as JSON objects, one per line; results
 * and events go to stdout as JSON objects, one per line, flushed:
 *
 *   {"id":1,"cmd":"put","key":"k","value":"v"[,"lease":N][,"prev_kv":true]}
 *   {"id":2,"cmd":"get","key":"k"[,"prefix":true][,"serializable":true]}
 *   {"id":3,"cmd":"del","key":"k"[,"prefix":true][,"prev_kv":true]}
 *   {"id":4,"cmd":"txn","compare":[{"key":"k","target":"create",
 *        "result":"=","number":0}],"success":[{"op":"put","key":"k",
 *        "value":"v","lease":N}],"failure":[{"op":"get","key":"k"}]}
 *   {"id":5,"cmd":"grant","ttl":3}      {"id":6,"cmd":"revoke","lease":N}
 *   {"id":7,"cmd":"keepalive","lease":N,"ttl":S,"granted_ms":T}
 *   {"id":8,"cmd":"keepalive_stop","lease":N}
 *   {"id":9,"cmd":"watch","wid":"w1","key":"k"[,"prefix":true]
 *        [,"rev":R][,"prev_kv":true]}    {"cmd":"unwatch","wid":"w1"}
 *   {"cmd":"status"}  {"cmd":"metrics"}  {"cmd":"quit"}
 *
 * A result echoes "id" with status, code, message, elapsed_ms,
 * issued_ms, revision and what the operation returned. Events:
 * {"ev":"watch",...}, {"ev":"synced",...}, {"ev":"ended",...},
 * {"ev":"lease_lost",...}, {"ev":"renewed",...}. Times ("t_ms",
 * "issued_ms") are CLOCK_MONOTONIC milliseconds, the clock of Python's
 * time.monotonic(). Tests only, never installed.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>

#include "coord_leader.h"
#include "etcd_client.h"
#include "grpc_status.h"
#include "log.h"

#define PROBE_MAX 64

struct probe;

struct probe_lease {
	struct probe *p;
	struct etcd_lease *l;
	json_int_t id;
};

struct probe_watch {
	struct probe *p;
	struct etcd_watch *w;
	char *wid;
};

struct probe_leader {
	struct probe *p;
	struct coord_leader *cl;
	char *name;
};

struct probe {
	struct event_base *base;
	struct etcd_client *ec;
	struct bufferevent *in;
	struct probe_lease leases[PROBE_MAX];
	struct probe_watch watches[PROBE_MAX];
	struct probe_leader leaders[PROBE_MAX];
	int verbose;
};

static int64_t
probe_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
probe_emit(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);

	if (s != NULL) {
		printf("%s\n", s);
		fflush(stdout);
		free(s);
	}
	json_decref(o);
}

static json_t *
probe_str(const uint8_t *p, size_t len)
{
	/* An empty value comes as NULL from protobuf-c. */
	return json_stringn(p != NULL ? (const char *)p : "", len);
}

static json_t *
probe_kv(const struct etcd_kv *kv)
{
	return json_pack("{s:o,s:o,s:I,s:I,s:I,s:I}",
	    "key", probe_str(kv->key, kv->key_len),
	    "value", probe_str(kv->value, kv->value_len),
	    "create_revision", (json_int_t)kv->create_revision,
	    "mod_revision", (json_int_t)kv->mod_revision,
	    "version", (json_int_t)kv->version,
	    "lease", (json_int_t)kv->lease);
}

static json_t *
probe_result(const struct etcd_result *r)
{
	json_t *o, *kvs, *ops;

	o = json_pack("{s:s,s:i,s:s,s:s,s:I,s:I,s:I}",
	    "op", etcd_op_str(r->op), "status", r->status,
	    "code", grpc_status_str(r->status), "message", r->message,
	    "elapsed_ms", (json_int_t)r->elapsed_ms,
	    "issued_ms", (json_int_t)r->issued_ms,
	    "revision", (json_int_t)r->revision);
	kvs = json_array();
	for (size_t i = 0; i < r->nkvs; i++)
		json_array_append_new(kvs, probe_kv(&r->kvs[i]));
	json_object_set_new(o, "kvs", kvs);
	json_object_set_new(o, "count", json_integer(r->count));
	json_object_set_new(o, "deleted", json_integer(r->deleted));
	json_object_set_new(o, "succeeded", json_boolean(r->succeeded));
	json_object_set_new(o, "lease_id", json_integer(r->lease_id));
	json_object_set_new(o, "ttl", json_integer(r->lease_ttl));
	ops = json_array();
	for (size_t i = 0; i < r->nops; i++)
		json_array_append_new(ops, probe_result(&r->ops[i]));
	json_object_set_new(o, "ops", ops);
	return o;
}

static void
probe_result_cb(const struct etcd_result *r, void *arg)
{
	json_t *o = probe_result(r);

	json_object_set_new(o, "id", json_integer((json_int_t)(intptr_t)arg));
	probe_emit(o);
}

static void
probe_error(json_int_t id, const char *what, int rc)
{
	probe_emit(json_pack("{s:I,s:s,s:i,s:s}", "id", id, "error", what,
	    "errno", -rc, "code", "LOCAL"));
}

static int
probe_flags(json_t *o)
{
	int flags = 0;

	if (json_is_true(json_object_get(o, "prefix")))
		flags |= ETCD_PREFIX;
	if (json_is_true(json_object_get(o, "serializable")))
		flags |= ETCD_SERIALIZABLE;
	if (json_is_true(json_object_get(o, "prev_kv")))
		flags |= ETCD_PREV_KV;
	if (json_is_true(json_object_get(o, "keys_only")))
		flags |= ETCD_KEYS_ONLY;
	if (json_is_true(json_object_get(o, "count_only")))
		flags |= ETCD_COUNT_ONLY;
	return flags;
}

static const char *
probe_s(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s != NULL ? s : "";
}

static int
probe_op(json_t *o, struct etcd_op *op)
{
	const char *kind = probe_s(o, "op");

	memset(op, 0, sizeof(*op));
	if (strcmp(kind, "put") == 0)
		op->type = ETCD_OP_PUT;
	else if (strcmp(kind, "get") == 0)
		op->type = ETCD_OP_RANGE;
	else if (strcmp(kind, "del") == 0)
		op->type = ETCD_OP_DELETE;
	else
		return -EINVAL;
	op->key = probe_s(o, "key");
	op->value = probe_s(o, "value");
	op->value_len = strlen(op->value);
	op->lease = json_integer_value(json_object_get(o, "lease"));
	op->flags = probe_flags(o);
	return 0;
}

static int
probe_cmp(json_t *o, struct etcd_cmp *c)
{
	const char *t = probe_s(o, "target"), *r = probe_s(o, "result");

	memset(c, 0, sizeof(*c));
	c->key = probe_s(o, "key");
	if (strcmp(t, "version") == 0)
		c->target = ETCD_CMP_VERSION;
	else if (strcmp(t, "create") == 0)
		c->target = ETCD_CMP_CREATE;
	else if (strcmp(t, "mod") == 0)
		c->target = ETCD_CMP_MOD;
	else if (strcmp(t, "value") == 0)
		c->target = ETCD_CMP_VALUE;
	else if (strcmp(t, "lease") == 0)
		c->target = ETCD_CMP_LEASE;
	else
		return -EINVAL;
	if (strcmp(r, "=") == 0)
		c->result = ETCD_CMP_EQUAL;
	else if (strcmp(r, ">") == 0)
		c->result = ETCD_CMP_GREATER;
	else if (strcmp(r, "<") == 0)
		c->result = ETCD_CMP_LESS;
	else if (strcmp(r, "!=") == 0)
		c->result = ETCD_CMP_NOT_EQUAL;
	else
		return -EINVAL;
	c->number = json_integer_value(json_object_get(o, "number"));
	c->value = probe_s(o, "value");
	c->value_len = strlen(c->value);
	return 0;
}

static int
probe_txn(struct probe *p, json_t *o, void *arg)
{
	json_t *cj = json_object_get(o, "compare");
	json_t *sj = json_object_get(o, "success");
	json_t *fj = json_object_get(o, "failure");
	struct etcd_cmp cmps[16];
	struct etcd_op ok[16], ko[16];
	size_t nc = json_array_size(cj), ns = json_array_size(sj);
	size_t nf = json_array_size(fj);
	int rc;

	if (nc > 16 || ns > 16 || nf > 16)
		return -E2BIG;
	for (size_t i = 0; i < nc; i++)
		if ((rc = probe_cmp(json_array_get(cj, i), &cmps[i])) != 0)
			return rc;
	for (size_t i = 0; i < ns; i++)
		if ((rc = probe_op(json_array_get(sj, i), &ok[i])) != 0)
			return rc;
	for (size_t i = 0; i < nf; i++)
		if ((rc = probe_op(json_array_get(fj, i), &ko[i])) != 0)
			return rc;
	return etcd_txn(p->ec, cmps, nc, ok, ns, ko, nf, probe_result_cb, arg,
	    NULL);
}

/* ---- leases ---- */

static void
probe_lease_lost(struct etcd_lease *l, const char *reason, void *arg)
{
	struct probe_lease *pl = arg;

	probe_emit(json_pack("{s:s,s:I,s:s,s:I,s:I}", "ev", "lease_lost",
	    "lease", pl->id, "reason", reason, "t_ms",
	    (json_int_t)probe_now_ms(), "deadline_ms",
	    (json_int_t)etcd_lease_deadline_ms(l)));
}

static void
probe_lease_renewed(struct etcd_lease *l, int64_t ttl, void *arg)
{
	struct probe_lease *pl = arg;

	if (!pl->p->verbose)
		return;
	probe_emit(json_pack("{s:s,s:I,s:I,s:I,s:I}", "ev", "renewed",
	    "lease", pl->id, "ttl", (json_int_t)ttl, "t_ms",
	    (json_int_t)probe_now_ms(), "deadline_ms",
	    (json_int_t)etcd_lease_deadline_ms(l)));
}

static const struct etcd_lease_handler probe_lease_handler = {
	.lost = probe_lease_lost,
	.renewed = probe_lease_renewed,
};

/* ---- watches ---- */

static void
probe_watch_event(struct etcd_watch *w, const struct etcd_event *ev,
    void *arg)
{
	struct probe_watch *pw = arg;
	json_t *o;

	(void)w;
	o = json_pack("{s:s,s:s,s:s,s:o,s:o,s:I,s:I,s:I}", "ev", "watch",
	    "wid", pw->wid,
	    "type", ev->type == ETCD_EVENT_DELETE ? "DELETE" : "PUT",
	    "key", probe_str(ev->kv.key, ev->kv.key_len),
	    "value", probe_str(ev->kv.value, ev->kv.value_len),
	    "rev", (json_int_t)ev->revision,
	    "create_revision", (json_int_t)ev->kv.create_revision,
	    "t_ms", (json_int_t)probe_now_ms());
	if (ev->prev_kv != NULL)
		json_object_set_new(o, "prev_value", probe_str(
		    ev->prev_kv->value, ev->prev_kv->value_len));
	probe_emit(o);
}

static void
probe_watch_ended(struct etcd_watch *w, int64_t compact, const char *reason,
    void *arg)
{
	struct probe_watch *pw = arg;

	(void)w;
	probe_emit(json_pack("{s:s,s:s,s:I,s:s}", "ev", "ended", "wid",
	    pw->wid, "compact_revision", (json_int_t)compact, "reason",
	    reason));
}

static void
probe_watch_synced(struct etcd_watch *w, int64_t rev, void *arg)
{
	struct probe_watch *pw = arg;

	probe_emit(json_pack("{s:s,s:s,s:I,s:I,s:I}", "ev", "synced", "wid",
	    pw->wid, "rev", (json_int_t)rev, "restarts",
	    (json_int_t)etcd_watch_restarts(w), "t_ms",
	    (json_int_t)probe_now_ms()));
}

static const struct etcd_watch_handler probe_watch_handler = {
	.event = probe_watch_event,
	.ended = probe_watch_ended,
	.synced = probe_watch_synced,
};

/* ---- leaders (coord_leader.c) ---- */

static void
probe_leader_changed(struct coord_leader *cl, enum coord_leader_state state,
    const char *reason, void *arg)
{
	struct probe_leader *pl = arg;

	probe_emit(json_pack("{s:s,s:s,s:s,s:I,s:s,s:I}", "ev", "leader",
	    "name", pl->name, "state", coord_leader_state_str(state),
	    "token", (json_int_t)coord_leader_token(cl), "reason", reason,
	    "t_ms", (json_int_t)probe_now_ms()));
}

static struct probe_leader *
probe_leader_find(struct probe *p, const char *name)
{
	for (int i = 0; i < PROBE_MAX; i++)
		if (p->leaders[i].name != NULL &&
		    strcmp(p->leaders[i].name, name) == 0)
			return &p->leaders[i];
	return NULL;
}

static int
probe_leader_cmd(struct probe *p, const char *cmd, json_t *o, void *arg)
{
	const char *name = probe_s(o, "name");
	struct probe_leader *pl = probe_leader_find(p, name);

	if (strcmp(cmd, "campaign") == 0) {
		struct coord_leader_config cfg;

		if (pl != NULL)
			return -EEXIST;
		for (int i = 0; i < PROBE_MAX && pl == NULL; i++)
			if (p->leaders[i].name == NULL)
				pl = &p->leaders[i];
		if (pl == NULL)
			return -ENOSPC;
		coord_leader_config_default(&cfg);
		cfg.key = probe_s(o, "key");
		cfg.value = probe_s(o, "value");
		if (json_integer_value(json_object_get(o, "ttl")) > 0)
			cfg.ttl_s = json_integer_value(json_object_get(o,
			    "ttl"));
		pl->p = p;
		if ((pl->name = strdup(name)) == NULL)
			return -ENOMEM;
		pl->cl = coord_leader_new(p->ec, &cfg, probe_leader_changed,
		    pl);
		if (pl->cl == NULL) {
			free(pl->name);
			pl->name = NULL;
			return -errno;
		}
		probe_emit(json_pack("{s:I,s:s}", "id",
		    (json_int_t)(intptr_t)arg, "code", "OK"));
		return 0;
	}
	if (pl == NULL)
		return -ENOENT;
	if (strcmp(cmd, "resign") == 0) {
		coord_leader_free(pl->cl);
		free(pl->name);
		memset(pl, 0, sizeof(*pl));
		probe_emit(json_pack("{s:I,s:s}", "id",
		    (json_int_t)(intptr_t)arg, "code", "OK"));
		return 0;
	}
	if (strcmp(cmd, "guarded_put") == 0) {
		const char *v = probe_s(o, "value");
		struct etcd_op op = { .type = ETCD_OP_PUT,
		    .key = probe_s(o, "key"), .value = v,
		    .value_len = strlen(v) };
		int64_t token = json_integer_value(json_object_get(o,
		    "token"));

		return coord_leader_guarded(pl->cl, token, &op, 1,
		    probe_result_cb, arg, NULL);
	}
	if (strcmp(cmd, "leader_status") == 0) {
		probe_emit(json_pack("{s:I,s:s,s:s,s:I}", "id",
		    (json_int_t)(intptr_t)arg, "code", "OK", "state",
		    coord_leader_state_str(coord_leader_state(pl->cl)),
		    "token", (json_int_t)coord_leader_token(pl->cl)));
		return 0;
	}
	return -EINVAL;
}

/* ---- commands ---- */

static int
probe_command(struct probe *p, json_t *o)
{
	const char *cmd = probe_s(o, "cmd");
	json_int_t id = json_integer_value(json_object_get(o, "id"));
	void *arg = (void *)(intptr_t)id;
	int flags = probe_flags(o);
	int rc = -EINVAL;

	if (strcmp(cmd, "quit") == 0) {
		event_base_loopbreak(p->base);
		return 0;
	}
	if (strcmp(cmd, "put") == 0) {
		const char *v = probe_s(o, "value");

		rc = etcd_put(p->ec, probe_s(o, "key"), v, strlen(v),
		    json_integer_value(json_object_get(o, "lease")), flags,
		    probe_result_cb, arg, NULL);
	} else if (strcmp(cmd, "get") == 0) {
		rc = etcd_range(p->ec, probe_s(o, "key"), flags,
		    probe_result_cb, arg, NULL);
	} else if (strcmp(cmd, "del") == 0) {
		rc = etcd_delete(p->ec, probe_s(o, "key"), flags,
		    probe_result_cb, arg, NULL);
	} else if (strcmp(cmd, "txn") == 0) {
		rc = probe_txn(p, o, arg);
	} else if (strcmp(cmd, "grant") == 0) {
		rc = etcd_lease_grant(p->ec,
		    json_integer_value(json_object_get(o, "ttl")),
		    probe_result_cb, arg, NULL);
	} else if (strcmp(cmd, "revoke") == 0) {
		rc = etcd_lease_revoke(p->ec,
		    json_integer_value(json_object_get(o, "lease")),
		    probe_result_cb, arg, NULL);
	} else if (strcmp(cmd, "keepalive") == 0) {
		struct probe_lease *pl = NULL;

		for (int i = 0; i < PROBE_MAX && pl == NULL; i++)
			if (p->leases[i].l == NULL)
				pl = &p->leases[i];
		if (pl == NULL)
			return -ENOSPC;
		pl->p = p;
		pl->id = json_integer_value(json_object_get(o, "lease"));
		pl->l = etcd_lease_keepalive(p->ec, pl->id,
		    json_integer_value(json_object_get(o, "ttl")),
		    json_integer_value(json_object_get(o, "granted_ms")),
		    &probe_lease_handler, pl);
		if (pl->l == NULL)
			return -errno;
		probe_emit(json_pack("{s:I,s:s,s:I}", "id", id, "code", "OK",
		    "deadline_ms", (json_int_t)etcd_lease_deadline_ms(pl->l)));
		rc = 0;
	} else if (strcmp(cmd, "keepalive_stop") == 0) {
		json_int_t lid = json_integer_value(json_object_get(o,
		    "lease"));

		rc = -ENOENT;
		for (int i = 0; i < PROBE_MAX; i++) {
			if (p->leases[i].l != NULL && p->leases[i].id == lid) {
				etcd_lease_free(p->leases[i].l);
				p->leases[i].l = NULL;
				rc = 0;
			}
		}
		if (rc == 0)
			probe_emit(json_pack("{s:I,s:s}", "id", id, "code",
			    "OK"));
	} else if (strcmp(cmd, "watch") == 0) {
		struct probe_watch *pw = NULL;

		for (int i = 0; i < PROBE_MAX && pw == NULL; i++)
			if (p->watches[i].w == NULL)
				pw = &p->watches[i];
		if (pw == NULL)
			return -ENOSPC;
		pw->p = p;
		free(pw->wid);
		if ((pw->wid = strdup(probe_s(o, "wid"))) == NULL)
			return -ENOMEM;
		pw->w = etcd_watch(p->ec, probe_s(o, "key"),
		    flags & (ETCD_PREFIX | ETCD_PREV_KV),
		    json_integer_value(json_object_get(o, "rev")),
		    &probe_watch_handler, pw);
		if (pw->w == NULL)
			return -errno;
		probe_emit(json_pack("{s:I,s:s}", "id", id, "code", "OK"));
		rc = 0;
	} else if (strcmp(cmd, "unwatch") == 0) {
		rc = -ENOENT;
		for (int i = 0; i < PROBE_MAX; i++) {
			if (p->watches[i].w != NULL &&
			    strcmp(p->watches[i].wid, probe_s(o, "wid")) == 0) {
				etcd_watch_free(p->watches[i].w);
				p->watches[i].w = NULL;
				rc = 0;
			}
		}
		if (rc == 0)
			probe_emit(json_pack("{s:I,s:s}", "id", id, "code",
			    "OK"));
	} else if (strcmp(cmd, "status") == 0) {
		probe_emit(json_pack("{s:I,s:s,s:s,s:b,s:I,s:I}", "id", id,
		    "code", "OK", "endpoint", etcd_client_endpoint(p->ec),
		    "connected", etcd_client_connected(p->ec), "revision",
		    (json_int_t)etcd_client_revision(p->ec), "t_ms",
		    (json_int_t)probe_now_ms()));
		rc = 0;
	} else if (strcmp(cmd, "metrics") == 0) {
		struct evbuffer *out = evbuffer_new();
		size_t len;
		json_t *text;

		if (out == NULL)
			return -ENOMEM;
		etcd_client_write_metrics(p->ec, out);
		for (int i = 0; i < PROBE_MAX; i++)
			if (p->leaders[i].cl != NULL) {
				coord_leader_write_metrics(p->leaders[i].cl,
				    out);
				break;
			}
		len = evbuffer_get_length(out);
		text = json_stringn((const char *)evbuffer_pullup(out,
		    (ssize_t)len), len);
		evbuffer_free(out);
		probe_emit(json_pack("{s:I,s:s,s:o}", "id", id, "code", "OK",
		    "text", text));
		rc = 0;
	} else {
		rc = probe_leader_cmd(p, cmd, o, arg);
	}
	return rc;
}

static void
probe_read_cb(struct bufferevent *bev, void *arg)
{
	struct probe *p = arg;
	char *line;
	size_t n;

	while ((line = evbuffer_readln(bufferevent_get_input(bev), &n,
	    EVBUFFER_EOL_LF)) != NULL) {
		json_error_t err;
		json_t *o = json_loads(line, 0, &err);
		int rc;

		if (o == NULL) {
			probe_emit(json_pack("{s:s,s:s}", "error", "bad json",
			    "line", line));
		} else {
			if ((rc = probe_command(p, o)) != 0)
				probe_error(json_integer_value(json_object_get(
				    o, "id")), probe_s(o, "cmd"), rc);
			json_decref(o);
		}
		free(line);
	}
}

static void
probe_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct probe *p = arg;

	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		event_base_loopbreak(p->base);
}

static void
usage(void)
{
	fprintf(stderr, "usage: etcd_probe [-v] [--timeout-ms N] "
	    "[--margin-ms N] ENDPOINT...\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct etcd_client_config cfg;
	struct probe p;
	const char *eps[8];
	size_t neps = 0;
	int rc = 1;

	signal(SIGPIPE, SIG_IGN);
	memset(&p, 0, sizeof(p));
	log_init("etcd_probe", LOG_TARGET_STDERR, 7);
	etcd_client_config_default(&cfg);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-v") == 0)
			p.verbose = 1;
		else if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc)
			cfg.call_timeout_ms = atol(argv[++i]);
		else if (strcmp(argv[i], "--margin-ms") == 0 && i + 1 < argc)
			cfg.lease_margin_ms = atol(argv[++i]);
		else if (argv[i][0] == '-' || neps == 8)
			usage();
		else
			eps[neps++] = argv[i];
	}
	if (neps == 0)
		usage();
	cfg.endpoints = eps;
	cfg.nendpoints = neps;
	if ((p.base = event_base_new()) == NULL)
		goto out;
	if ((p.ec = etcd_client_new(p.base, &cfg)) == NULL) {
		log_warn("etcd_client_new");
		goto out;
	}
	if ((p.in = bufferevent_socket_new(p.base, STDIN_FILENO, 0)) == NULL)
		goto out;
	bufferevent_setcb(p.in, probe_read_cb, NULL, probe_event_cb, &p);
	bufferevent_enable(p.in, EV_READ);
	probe_emit(json_pack("{s:s,s:I}", "ev", "ready", "t_ms",
	    (json_int_t)probe_now_ms()));
	event_base_dispatch(p.base);
	rc = 0;
out:
	for (int i = 0; i < PROBE_MAX; i++) {
		coord_leader_free(p.leaders[i].cl);
		free(p.leaders[i].name);
		etcd_lease_free(p.leases[i].l);
		etcd_watch_free(p.watches[i].w);
		free(p.watches[i].wid);
	}
	etcd_client_free(p.ec);
	if (p.in != NULL)
		bufferevent_free(p.in);
	if (p.base != NULL) {
		/* Deferred bufferevent frees finish (see coord_main.c). */
		event_base_loop(p.base, EVLOOP_NONBLOCK);
		event_base_free(p.base);
	}
	return rc;
}
