/*
 * Leader election on etcd (coord_leader.h). One step in flight at a time
 * (lease grant, campaign transaction), each answered by a callback that
 * decides the next; the lease and the watch on the leader key run beside
 * them and can end leadership at any moment.
 */
#include "coord_leader.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "grpc_status.h"
#include "log.h"
#include "metrics.h"

struct coord_leader {
	struct etcd_client *ec;
	char *key;
	char *value;
	int64_t ttl_s;
	int64_t retry_ms;
	enum coord_leader_state state;
	int64_t token;             /* while leader */
	int64_t holder_token;
	char *holder;
	int64_t lease_id;          /* the lease we campaign with, 0: none */
	struct etcd_lease *lease;
	struct etcd_watch *watch;
	struct etcd_call *pending; /* grant or campaign txn */
	struct event *retry_ev;
	struct event_base *base;
	coord_leader_changed_cb changed;
	void *arg;
	uint64_t changes;
};

static void coord_leader_campaign(struct coord_leader *cl);

const char *
coord_leader_state_str(enum coord_leader_state state)
{
	switch (state) {
	case COORD_LEADER_CANDIDATE:
		return "candidate";
	case COORD_LEADER_FOLLOWER:
		return "follower";
	case COORD_LEADER_LEADER:
		return "leader";
	}
	return "invalid";
}

void
coord_leader_config_default(struct coord_leader_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->ttl_s = 5;
	cfg->retry_ms = 500;
}

static void
coord_leader_set(struct coord_leader *cl, enum coord_leader_state state,
    const char *reason)
{
	if (cl->state == state)
		return;
	if (state != COORD_LEADER_LEADER)
		cl->token = 0;
	cl->state = state;
	cl->changes++;
	log_info("leader: %s (%s)", coord_leader_state_str(state), reason);
	cl->changed(cl, state, reason, cl->arg);
}

static void
coord_leader_holder_set(struct coord_leader *cl, const uint8_t *v, size_t len,
    int64_t token)
{
	char *h = NULL;

	if (v != NULL && (h = malloc(len + 1)) != NULL) {
		memcpy(h, v, len);
		h[len] = '\0';
	}
	free(cl->holder);
	cl->holder = h;
	cl->holder_token = token;
}

static void
coord_leader_retry(struct coord_leader *cl)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(cl->retry_ms / 1000);
	tv.tv_usec = (suseconds_t)(cl->retry_ms % 1000) * 1000;
	evtimer_add(cl->retry_ev, &tv);
}

/* Leadership ends now, whatever the reason; the campaign goes on. */
static void
coord_leader_depose(struct coord_leader *cl, const char *reason)
{
	coord_leader_set(cl, COORD_LEADER_CANDIDATE, reason);
}

/* ---- the lease ---- */

static void
coord_leader_lease_lost(struct etcd_lease *l, const char *reason, void *arg)
{
	struct coord_leader *cl = arg;
	char why[256];

	etcd_lease_free(l);
	cl->lease = NULL;
	cl->lease_id = 0;
	snprintf(why, sizeof(why), "lease lost: %s", reason);
	if (cl->state == COORD_LEADER_LEADER)
		coord_leader_depose(cl, why);
	/* A follower needs a live lease only to campaign: get one now. */
	if (cl->pending == NULL && !evtimer_pending(cl->retry_ev, NULL))
		coord_leader_campaign(cl);
}

static const struct etcd_lease_handler coord_leader_lease_handler = {
	.lost = coord_leader_lease_lost,
};

/* ---- the watch on the leader key ---- */

static void
coord_leader_watch_event(struct etcd_watch *w, const struct etcd_event *ev,
    void *arg)
{
	struct coord_leader *cl = arg;

	(void)w;
	if (ev->type == ETCD_EVENT_DELETE) {
		coord_leader_holder_set(cl, NULL, 0, 0);
		if (cl->state == COORD_LEADER_LEADER)
			coord_leader_depose(cl, "the leader key was deleted");
		else
			coord_leader_set(cl, COORD_LEADER_CANDIDATE,
			    "the leader key was deleted");
		if (cl->pending == NULL)
			coord_leader_campaign(cl);
		return;
	}
	/* A put: the holder changed its value, or a new holder. */
	coord_leader_holder_set(cl, ev->kv.value, ev->kv.value_len,
	    ev->kv.create_revision);
	if (cl->state == COORD_LEADER_LEADER &&
	    ev->kv.create_revision != cl->token)
		coord_leader_depose(cl, "the leader key was re-created by "
		    "someone else");
}

static void
coord_leader_watch_ended(struct etcd_watch *w, int64_t compact,
    const char *reason, void *arg)
{
	struct coord_leader *cl = arg;

	(void)compact;
	log_info("leader: watch ended (%s); reading the key again", reason);
	etcd_watch_free(w);
	cl->watch = NULL;
	/* The campaign transaction reads the key and watches anew. */
	if (cl->pending == NULL)
		coord_leader_campaign(cl);
}

static const struct etcd_watch_handler coord_leader_watch_handler = {
	.event = coord_leader_watch_event,
	.ended = coord_leader_watch_ended,
};

static void
coord_leader_watch_from(struct coord_leader *cl, int64_t rev)
{
	etcd_watch_free(cl->watch);
	cl->watch = etcd_watch(cl->ec, cl->key, 0, rev,
	    &coord_leader_watch_handler, cl);
	if (cl->watch == NULL) {
		log_warn("leader: cannot watch %s", cl->key);
		coord_leader_retry(cl);
	}
}

/* ---- the campaign ---- */

static void
coord_leader_txn_cb(const struct etcd_result *r, void *arg)
{
	struct coord_leader *cl = arg;
	const struct etcd_kv *kv = NULL;

	cl->pending = NULL;
	if (r->status == GRPC_STATUS_NOT_FOUND &&
	    strstr(r->message, "lease not found") != NULL) {
		/*
		 * Our lease was revoked and the keep-alive has not heard yet
		 * (it asks every TTL/3): a new lease now, not after retries.
		 */
		log_info("leader: campaign: our lease is gone; a new one");
		etcd_lease_free(cl->lease);
		cl->lease = NULL;
		cl->lease_id = 0;
		coord_leader_campaign(cl);
		return;
	}
	if (r->status != GRPC_STATUS_OK) {
		log_debug("leader: campaign: %s %s",
		    grpc_status_str(r->status), r->message);
		coord_leader_retry(cl);
		return;
	}
	if (r->succeeded && (cl->lease == NULL ||
	    !etcd_lease_alive(cl->lease))) {
		/*
		 * Created with a lease we have given up meanwhile: never lead
		 * on it. The key goes with that lease; the watch sees it go.
		 */
		log_info("leader: created the key with a lease since lost; "
		    "not leading on it");
		coord_leader_holder_set(cl, (const uint8_t *)cl->value,
		    strlen(cl->value), r->revision);
		coord_leader_watch_from(cl, r->revision + 1);
		coord_leader_campaign(cl);
		return;
	}
	if (r->succeeded) {
		coord_leader_holder_set(cl, (const uint8_t *)cl->value,
		    strlen(cl->value), r->revision);
		cl->token = r->revision;
		coord_leader_watch_from(cl, r->revision + 1);
		coord_leader_set(cl, COORD_LEADER_LEADER,
		    "created the leader key");
		return;
	}
	if (r->nops > 0 && r->ops[0].nkvs > 0)
		kv = &r->ops[0].kvs[0];
	if (kv == NULL) {
		/* Deleted between compare and read: cannot be, try again. */
		coord_leader_retry(cl);
		return;
	}
	coord_leader_holder_set(cl, kv->value, kv->value_len,
	    kv->create_revision);
	coord_leader_watch_from(cl, r->revision + 1);
	if (cl->lease_id != 0 && kv->lease == cl->lease_id) {
		/*
		 * Ours: an earlier attempt created it and its answer was lost
		 * (a connection cut after etcd applied it).
		 */
		cl->token = kv->create_revision;
		coord_leader_set(cl, COORD_LEADER_LEADER,
		    "the leader key holds our lease");
		return;
	}
	if (cl->state == COORD_LEADER_LEADER)
		coord_leader_depose(cl, "someone else holds the leader key");
	coord_leader_set(cl, COORD_LEADER_FOLLOWER, "another coordinator "
	    "holds the leader key");
}

static void
coord_leader_txn(struct coord_leader *cl)
{
	struct etcd_cmp absent = {
		.key = cl->key,
		.target = ETCD_CMP_CREATE,
		.result = ETCD_CMP_EQUAL,
		.number = 0,
	};
	struct etcd_op put = {
		.type = ETCD_OP_PUT,
		.key = cl->key,
		.value = cl->value,
		.value_len = strlen(cl->value),
		.lease = cl->lease_id,
	};
	struct etcd_op get = { .type = ETCD_OP_RANGE, .key = cl->key };
	int rc;

	rc = etcd_txn(cl->ec, &absent, 1, &put, 1, &get, 1,
	    coord_leader_txn_cb, cl, &cl->pending);
	if (rc != 0) {
		log_warnx("leader: campaign: %s", strerror(-rc));
		coord_leader_retry(cl);
	}
}

static void
coord_leader_grant_cb(const struct etcd_result *r, void *arg)
{
	struct coord_leader *cl = arg;

	cl->pending = NULL;
	if (r->status != GRPC_STATUS_OK) {
		log_debug("leader: lease grant: %s %s",
		    grpc_status_str(r->status), r->message);
		coord_leader_retry(cl);
		return;
	}
	cl->lease = etcd_lease_keepalive(cl->ec, r->lease_id, r->lease_ttl,
	    r->issued_ms, &coord_leader_lease_handler, cl);
	if (cl->lease == NULL) {
		log_warn("leader: keep-alive");
		coord_leader_retry(cl);
		return;
	}
	cl->lease_id = r->lease_id;
	coord_leader_txn(cl);
}

/* The next step: a lease if we have none alive, then the transaction. */
static void
coord_leader_campaign(struct coord_leader *cl)
{
	int rc;

	if (cl->pending != NULL)
		return;
	evtimer_del(cl->retry_ev);
	if (cl->lease == NULL || !etcd_lease_alive(cl->lease)) {
		etcd_lease_free(cl->lease);
		cl->lease = NULL;
		cl->lease_id = 0;
		rc = etcd_lease_grant(cl->ec, cl->ttl_s, coord_leader_grant_cb,
		    cl, &cl->pending);
		if (rc != 0) {
			log_warnx("leader: lease grant: %s", strerror(-rc));
			coord_leader_retry(cl);
		}
		return;
	}
	coord_leader_txn(cl);
}

static void
coord_leader_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	coord_leader_campaign(arg);
}

struct coord_leader *
coord_leader_new(struct etcd_client *ec, const struct coord_leader_config *cfg,
    coord_leader_changed_cb changed, void *arg)
{
	struct coord_leader *cl;

	if (ec == NULL || cfg == NULL || cfg->key == NULL ||
	    cfg->key[0] == '\0' || cfg->value == NULL || changed == NULL ||
	    cfg->ttl_s <= 0 || cfg->retry_ms <= 0) {
		errno = EINVAL;
		return NULL;
	}
	if ((cl = calloc(1, sizeof(*cl))) == NULL)
		return NULL;
	cl->ec = ec;
	cl->ttl_s = cfg->ttl_s;
	cl->retry_ms = cfg->retry_ms;
	cl->changed = changed;
	cl->arg = arg;
	cl->state = COORD_LEADER_CANDIDATE;
	cl->base = etcd_client_base(ec);
	if ((cl->key = strdup(cfg->key)) == NULL ||
	    (cl->value = strdup(cfg->value)) == NULL ||
	    (cl->retry_ev = evtimer_new(cl->base, coord_leader_retry_cb,
	    cl)) == NULL) {
		coord_leader_free(cl);
		errno = ENOMEM;
		return NULL;
	}
	/* The first step from the loop, like every later one. */
	event_active(cl->retry_ev, EV_TIMEOUT, 0);
	return cl;
}

static void
coord_leader_revoked_cb(const struct etcd_result *r, void *arg)
{
	(void)arg;
	if (r->status != GRPC_STATUS_OK)
		log_warnx("leader: revoking the lease on the way out: %s",
		    r->message);
}

void
coord_leader_free(struct coord_leader *cl)
{
	if (cl == NULL)
		return;
	etcd_call_cancel(cl->pending);
	if (cl->state == COORD_LEADER_LEADER && cl->lease_id != 0)
		(void)etcd_lease_revoke(cl->ec, cl->lease_id,
		    coord_leader_revoked_cb, NULL, NULL);
	etcd_lease_free(cl->lease);
	etcd_watch_free(cl->watch);
	if (cl->retry_ev != NULL)
		event_free(cl->retry_ev);
	free(cl->holder);
	free(cl->key);
	free(cl->value);
	free(cl);
}

enum coord_leader_state
coord_leader_state(const struct coord_leader *cl)
{
	return cl->state;
}

int64_t
coord_leader_token(const struct coord_leader *cl)
{
	return cl->state == COORD_LEADER_LEADER ? cl->token : 0;
}

const char *
coord_leader_holder(const struct coord_leader *cl)
{
	return cl->holder;
}

int64_t
coord_leader_holder_token(const struct coord_leader *cl)
{
	return cl->holder_token;
}

int
coord_leader_guarded(struct coord_leader *cl, int64_t token,
    const struct etcd_op *ops, size_t nops, etcd_result_cb cb, void *arg,
    struct etcd_call **ret_call)
{
	struct etcd_cmp mine = {
		.key = cl->key,
		.target = ETCD_CMP_CREATE,
		.result = ETCD_CMP_EQUAL,
	};
	struct etcd_op holder = { .type = ETCD_OP_RANGE, .key = cl->key };

	if (token == 0) {
		if (cl->state != COORD_LEADER_LEADER)
			return -EPERM;
		token = cl->token;
	}
	if (token < 0 || nops == 0)
		return -EINVAL;
	mine.number = token;
	return etcd_txn(cl->ec, &mine, 1, ops, nops, &holder, 1, cb, arg,
	    ret_call);
}

void
coord_leader_write_metrics(const struct coord_leader *cl, struct evbuffer *out)
{
	static const enum coord_leader_state states[] = {
		COORD_LEADER_CANDIDATE, COORD_LEADER_FOLLOWER,
		COORD_LEADER_LEADER,
	};
	struct troika_label l = { "state", NULL };

	metrics_family(out, "troika_coord_leader", "gauge",
	    "1 for the coordinator's current election state.");
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
		l.value = coord_leader_state_str(states[i]);
		metrics_sample(out, "troika_coord_leader", &l, 1, NULL,
		    cl->state == states[i] ? 1 : 0);
	}
	metrics_family(out, "troika_coord_leader_token", "gauge",
	    "The fencing token (the leader key's create revision) while "
	    "leader, else 0.");
	metrics_sample(out, "troika_coord_leader_token", NULL, 0, NULL,
	    (double)coord_leader_token(cl));
	metrics_family(out, "troika_coord_leader_changes_total", "counter",
	    "Changes of election state.");
	metrics_sample(out, "troika_coord_leader_changes_total", NULL, 0, NULL,
	    (double)cl->changes);
}
