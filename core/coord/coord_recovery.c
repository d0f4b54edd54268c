/*
 * coord_recovery: the leader's decisions and the action records
 * (coord_recovery.h has the rules).
 *
 * State kept here:
 *   recs    every action record known (mirrored from etcd, or written
 *           here with store local), sorted by id; ids are
 *           "<token>-<seq>" zero-padded, so id order is creation order;
 *   maint   maintenance entries, likewise;
 *   keys    the leader's per-(node, check) bookkeeping for the failure in
 *           progress: verdict announced, escalated, why it is held, a
 *           timer to look again (backoff, cooldown, hourly limit);
 *   flights the leader's deadline timers of RUNNING records.
 * Everything the leader decides comes from recs, so a new leader decides
 * exactly as the old one would have.
 */
#include "coord_recovery.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "coord.h"
#include "coord_conf.h"
#include "coord_events.h"
#include "coord_galera.h"
#include "coord_redis.h"
#include "coord_leader.h"
#include "coord_mirror.h"
#include "coord_nodeloss.h"
#include "coord_quorum.h"
#include "etcd_client.h"
#include "log.h"
#include "metrics.h"
#include "troika/v1/admin.pb-c.h"

/* Records kept; the leader deletes the oldest finished ones beyond. */
#define RECOVERY_KEEP 1000
#define RECOVERY_MAX_COORDS 16
#define NS_PER_MS 1000000ULL

enum recovery_hold {
	HOLD_NONE = 0,
	HOLD_NODE,          /* node loss: handled by cluster recovery */
	HOLD_MAINTENANCE,
	HOLD_COOLDOWN,
	HOLD_BACKOFF,
	HOLD_CONCURRENT,
	HOLD_HOURLY,
	HOLD_AGENT,         /* the node's agent has no stream to the leader */
	HOLD_CLUSTER,       /* its cluster's procedure decides */
	HOLD_MAX,
};

static const char *const recovery_hold_names[HOLD_MAX] = {
	[HOLD_NONE] = "none", [HOLD_NODE] = "node_down",
	[HOLD_MAINTENANCE] = "maintenance", [HOLD_COOLDOWN] = "cooldown",
	[HOLD_BACKOFF] = "backoff", [HOLD_CONCURRENT] = "max_concurrent",
	[HOLD_HOURLY] = "max_per_hour", [HOLD_AGENT] = "agent_unreachable",
	[HOLD_CLUSTER] = "cluster",
};

struct recovery_rec {
	char *id;
	uint8_t *bytes;
	size_t len;
	Troika__V1__ActionRecord *pb;
};

struct recovery_maint {
	char *key;
	Troika__V1__Maintenance *pb;
};

struct recovery_key {
	struct coord_recovery *r;
	char *node;
	char *check;            /* NULL: the node */
	int verdict;            /* the quorum's verdict was announced */
	uint64_t verdict_ns;    /* when (our clock) */
	int escalated;
	int starting;           /* a new record is being written */
	enum recovery_hold held;
	struct event *wake;
};

/* A cluster's procedure: one of the two, by the cluster's kind. */
struct recovery_proc {
	const struct coord_cluster *cl;
	struct coord_galera *galera;
	struct coord_redis *redis;
};

struct recovery_flight {
	struct coord_recovery *r;
	char *id;
	struct event *ev;
};

struct coord_recovery {
	struct coord *c;
	int leader;
	int64_t token;
	int quorum;
	int quorum_known;       /* quorum() was called once */
	uint64_t seq;           /* records started by this leadership */

	struct recovery_rec *recs;
	size_t nrecs;
	struct recovery_maint *maint;
	size_t nmaint;
	struct coord_mirror *recs_mirror;
	struct coord_mirror *maint_mirror;
	char *recs_prefix;
	char *maint_prefix;

	struct recovery_key **keys;
	size_t nkeys;
	struct recovery_flight **flights;
	size_t nflights;

	/* One per recovery.clusters entry, in its order. */
	struct recovery_proc *procs;
	size_t nprocs;
	struct coord_nodeloss *nodeloss;
	const Troika__V1__ActionRecord **pbs; /* coord_recovery_records() */

	uint64_t started;
	uint64_t escalations;
	uint64_t held[HOLD_MAX];
	uint64_t write_failures;
};

static void recovery_evaluate(struct coord_recovery *r, const char *node,
    const char *check);
static void recovery_evaluate_all(struct coord_recovery *r);

static uint64_t
recovery_now(void)
{
	return coord_now_ns();
}

static int
recovery_str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* The cluster procedure (node, check) is a member of; NULL: none. */
static struct recovery_proc *
recovery_proc_of(const struct coord_recovery *r, const char *node,
    const char *check)
{
	const struct coord_cluster *cl = coord_conf_cluster_of(r->c->conf,
	    node, check);

	for (size_t i = 0; cl != NULL && i < r->nprocs; i++)
		if (r->procs[i].cl == cl)
			return &r->procs[i];
	return NULL;
}

static void
recovery_proc_evaluate(struct recovery_proc *p)
{
	if (p->galera != NULL)
		coord_galera_evaluate(p->galera);
	else
		coord_redis_evaluate(p->redis);
}

static int
recovery_proc_holds(struct recovery_proc *p, const char *node,
    uint64_t verdict_ns, char *why, size_t len)
{
	return p->galera != NULL ? coord_galera_holds(p->galera, node,
	    verdict_ns, why, len) : coord_redis_holds(p->redis, node, why,
	    len);
}

/* ---- records ---- */

static struct recovery_rec *
recovery_rec_find(const struct coord_recovery *r, const char *id)
{
	size_t lo = 0, hi = r->nrecs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(r->recs[mid].id, id);

		if (c == 0)
			return &r->recs[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void
recovery_rec_clear(struct recovery_rec *e)
{
	free(e->id);
	free(e->bytes);
	if (e->pb != NULL)
		troika__v1__action_record__free_unpacked(e->pb, NULL);
}

/* A record as stored (packed); replaces the one with its id. */
static int
recovery_rec_apply(struct coord_recovery *r, const uint8_t *bytes, size_t len)
{
	Troika__V1__ActionRecord *pb;
	struct recovery_rec *e, *p;
	uint8_t *copy;
	size_t i;

	if ((pb = troika__v1__action_record__unpack(NULL, len, bytes)) == NULL)
		return -EINVAL;
	if (pb->id[0] == '\0' || (copy = malloc(len > 0 ? len : 1)) == NULL) {
		troika__v1__action_record__free_unpacked(pb, NULL);
		return -EINVAL;
	}
	memcpy(copy, bytes, len);
	if ((e = recovery_rec_find(r, pb->id)) != NULL) {
		free(e->bytes);
		troika__v1__action_record__free_unpacked(e->pb, NULL);
		e->bytes = copy;
		e->len = len;
		e->pb = pb;
		return 0;
	}
	if ((p = realloc(r->recs, (r->nrecs + 1) * sizeof(*p))) == NULL)
		goto nomem;
	r->recs = p;
	for (i = r->nrecs; i > 0 && strcmp(p[i - 1].id, pb->id) > 0; i--)
		p[i] = p[i - 1];
	p[i] = (struct recovery_rec){ .bytes = copy, .len = len, .pb = pb };
	if ((p[i].id = strdup(pb->id)) == NULL) {
		memmove(&p[i], &p[i + 1], (r->nrecs - i) * sizeof(*p));
		goto nomem;
	}
	r->nrecs++;
	return 0;
nomem:
	free(copy);
	troika__v1__action_record__free_unpacked(pb, NULL);
	return -ENOMEM;
}

static void
recovery_rec_remove(struct coord_recovery *r, const char *id)
{
	struct recovery_rec *e = recovery_rec_find(r, id);
	size_t i;

	if (e == NULL)
		return;
	i = (size_t)(e - r->recs);
	recovery_rec_clear(e);
	memmove(&r->recs[i], &r->recs[i + 1], (r->nrecs - i - 1) *
	    sizeof(*r->recs));
	r->nrecs--;
}

static int
recovery_rec_open(const Troika__V1__ActionRecord *pb)
{
	return pb->state == TROIKA__V1__ACTION_STATE__ACTION_STATE_RUNNING ||
	    pb->state == TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED;
}

static const char *
recovery_state_str(Troika__V1__ActionState s)
{
	switch (s) {
	case TROIKA__V1__ACTION_STATE__ACTION_STATE_RUNNING:
		return "running";
	case TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED:
		return "succeeded";
	case TROIKA__V1__ACTION_STATE__ACTION_STATE_FAILED:
		return "failed";
	case TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED:
		return "locked";
	case TROIKA__V1__ACTION_STATE__ACTION_STATE_ACKNOWLEDGED:
		return "acknowledged";
	default:
		return "unspecified";
	}
}

/* What the records of (node, check) say about the policy's limits. */
struct recovery_history {
	/* The RUNNING or LOCKED one; NULL: none. */
	const Troika__V1__ActionRecord *open;
	unsigned attempts;        /* started within the window */
	uint64_t last_success;    /* end of the last success, 0: none */
	uint64_t last_attempt;    /* end (or start) of the last attempt */
};

static void
recovery_history(const struct coord_recovery *r, const char *node,
    const char *check, uint64_t window_ns, uint64_t now,
    struct recovery_history *h)
{
	memset(h, 0, sizeof(*h));
	for (size_t i = 0; i < r->nrecs; i++) {
		const Troika__V1__ActionRecord *pb = r->recs[i].pb;
		uint64_t end = pb->ended_unix_nano != 0 ? pb->ended_unix_nano :
		    pb->started_unix_nano;

		/* A procedure's steps are its own, not the service's. */
		if (strcmp(pb->node, node) != 0 ||
		    strcmp(pb->check, check) != 0 || pb->procedure[0] != '\0')
			continue;
		if (recovery_rec_open(pb))
			h->open = pb;
		if (pb->started_unix_nano + window_ns >= now)
			h->attempts++;
		if (end > h->last_attempt)
			h->last_attempt = end;
		if (pb->state == TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED &&
		    end > h->last_success)
			h->last_success = end;
	}
}

/* RUNNING in the cluster, and started within the last hour (oldest). */
static void
recovery_cluster(const struct coord_recovery *r, uint64_t now,
    unsigned *running, unsigned *hourly, uint64_t *oldest)
{
	const uint64_t hour = 3600ULL * 1000000000ULL;

	*running = *hourly = 0;
	*oldest = 0;
	for (size_t i = 0; i < r->nrecs; i++) {
		const Troika__V1__ActionRecord *pb = r->recs[i].pb;

		/* A procedure counts once, not each of its steps. */
		if (pb->procedure[0] != '\0')
			continue;
		if (pb->state == TROIKA__V1__ACTION_STATE__ACTION_STATE_RUNNING)
			(*running)++;
		if (pb->started_unix_nano + hour >= now) {
			(*hourly)++;
			if (*oldest == 0 || pb->started_unix_nano < *oldest)
				*oldest = pb->started_unix_nano;
		}
	}
}

/* ---- maintenance ---- */

static int
recovery_maint_covers(const Troika__V1__Maintenance *m, const char *node,
    const char *check, uint64_t now)
{
	if (m->until_unix_nano <= now)
		return 0;
	if (m->node[0] != '\0' && strcmp(m->node, node) != 0)
		return 0;
	if (m->check[0] != '\0' && (check == NULL || strcmp(m->check,
	    check) != 0))
		return 0;
	return 1;
}

static const Troika__V1__Maintenance *
recovery_in_maintenance(const struct coord_recovery *r, const char *node,
    const char *check, uint64_t now)
{
	for (size_t i = 0; i < r->nmaint; i++)
		if (recovery_maint_covers(r->maint[i].pb, node, check, now))
			return r->maint[i].pb;
	return NULL;
}

static void
recovery_maint_remove(struct coord_recovery *r, const char *key)
{
	for (size_t i = 0; i < r->nmaint; i++) {
		if (strcmp(r->maint[i].key, key) != 0)
			continue;
		free(r->maint[i].key);
		troika__v1__maintenance__free_unpacked(r->maint[i].pb, NULL);
		r->maint[i] = r->maint[--r->nmaint];
		return;
	}
}

static void
recovery_maint_apply(struct coord_recovery *r, const char *key,
    const uint8_t *bytes, size_t len)
{
	Troika__V1__Maintenance *pb;
	struct recovery_maint *p;
	char *k;

	recovery_maint_remove(r, key);
	if (bytes == NULL)
		return;
	if ((pb = troika__v1__maintenance__unpack(NULL, len, bytes)) == NULL)
		return;
	if ((k = strdup(key)) == NULL ||
	    (p = realloc(r->maint, (r->nmaint + 1) * sizeof(*p))) == NULL) {
		free(k);
		troika__v1__maintenance__free_unpacked(pb, NULL);
		return;
	}
	r->maint = p;
	p[r->nmaint++] = (struct recovery_maint){ .key = k, .pb = pb };
}

/* ---- the leader's bookkeeping ---- */

static void
recovery_key_free(struct recovery_key *k)
{
	if (k == NULL)
		return;
	if (k->wake != NULL)
		event_free(k->wake);
	free(k->node);
	free(k->check);
	free(k);
}

static void
recovery_key_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct recovery_key *k = arg;

	(void)fd;
	(void)what;
	recovery_evaluate(k->r, k->node, k->check);
}

static struct recovery_key *
recovery_key_get(struct coord_recovery *r, const char *node, const char *check)
{
	struct recovery_key *k, **p;

	for (size_t i = 0; i < r->nkeys; i++)
		if (strcmp(r->keys[i]->node, node) == 0 &&
		    recovery_str_eq(r->keys[i]->check, check))
			return r->keys[i];
	if ((k = calloc(1, sizeof(*k))) == NULL)
		return NULL;
	k->r = r;
	if ((k->node = strdup(node)) == NULL ||
	    (check != NULL && (k->check = strdup(check)) == NULL) ||
	    (k->wake = evtimer_new(r->c->base, recovery_key_wake_cb,
	    k)) == NULL ||
	    (p = realloc(r->keys, (r->nkeys + 1) * sizeof(*p))) == NULL) {
		recovery_key_free(k);
		return NULL;
	}
	r->keys = p;
	p[r->nkeys++] = k;
	return k;
}

static void
recovery_key_wake_at(struct recovery_key *k, uint64_t when)
{
	uint64_t now = recovery_now();
	uint64_t ns = when > now ? when - now : 0;
	struct timeval tv;

	/* A little after, so the limit has really passed. */
	ns += 10 * NS_PER_MS;
	tv.tv_sec = (time_t)(ns / 1000000000ULL);
	tv.tv_usec = (suseconds_t)(ns % 1000000000ULL / 1000);
	evtimer_add(k->wake, &tv);
}

/* Say once per reason why a confirmed failure waits. */
static void
recovery_hold(struct recovery_key *k, enum recovery_hold why, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

static void
recovery_hold(struct recovery_key *k, enum recovery_hold why, const char *fmt,
    ...)
{
	char msg[256];
	va_list ap;
	const char *const f[] = { "reason", recovery_hold_names[why] };

	if (k->held == why)
		return;
	k->held = why;
	k->r->held[why]++;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	coord_events_emit(k->r->c, "recovery_held",
	    TROIKA__V1__SEVERITY__SEVERITY_WARNING, k->node, k->check, f, 1,
	    "%s", msg);
}

static void
recovery_flight_free(struct recovery_flight *f)
{
	if (f == NULL)
		return;
	if (f->ev != NULL)
		event_free(f->ev);
	free(f->id);
	free(f);
}

static void
recovery_flight_end(struct coord_recovery *r, const char *id)
{
	for (size_t i = 0; i < r->nflights; i++) {
		if (strcmp(r->flights[i]->id, id) != 0)
			continue;
		recovery_flight_free(r->flights[i]);
		r->flights[i] = r->flights[--r->nflights];
		return;
	}
}

/* Forget everything only a leader keeps. */
static void
recovery_drop_leadership(struct coord_recovery *r)
{
	for (size_t i = 0; i < r->nflights; i++)
		recovery_flight_free(r->flights[i]);
	free(r->flights);
	r->flights = NULL;
	r->nflights = 0;
	for (size_t i = 0; i < r->nkeys; i++)
		recovery_key_free(r->keys[i]);
	free(r->keys);
	r->keys = NULL;
	r->nkeys = 0;
	for (size_t i = 0; i < r->nprocs; i++) {
		if (r->procs[i].galera != NULL)
			coord_galera_reset(r->procs[i].galera);
		else
			coord_redis_reset(r->procs[i].redis);
	}
	if (r->nodeloss != NULL)
		coord_nodeloss_reset(r->nodeloss);
}

/* ---- writing records (leader) ---- */

struct recovery_write {
	struct coord_recovery *r;
	uint8_t *bytes;
	size_t len;
	char *id;
	void (*done)(struct recovery_write *w, int ok, const char *message);
	/* Whatever the caller needs back. */
	void *arg;
	coord_recovery_done_fn user_done;
	void *user_arg;
};

static void
recovery_write_free(struct recovery_write *w)
{
	free(w->bytes);
	free(w->id);
	free(w);
}

static void
recovery_write_cb(const struct etcd_result *res, void *arg)
{
	struct recovery_write *w = arg;
	char msg[256];
	int ok = res->status == 0 && res->succeeded;

	if (res->status != 0)
		snprintf(msg, sizeof(msg), "etcd: %s", res->message);
	else if (!res->succeeded)
		snprintf(msg, sizeof(msg), "not the leader any more (the "
		    "leader key moved on)");
	else
		msg[0] = '\0';
	if (ok)
		(void)recovery_rec_apply(w->r, w->bytes, w->len);
	else
		w->r->write_failures++;
	w->done(w, ok, msg);
	recovery_write_free(w);
}

/*
 * Write a record in a transaction guarded by our leader key. done() runs
 * once, from the loop (or at once with store local); the record is in
 * recs before done() when the write succeeded.
 */
static int
recovery_write(struct coord_recovery *r, const Troika__V1__ActionRecord *rec,
    void (*done)(struct recovery_write *, int, const char *), void *arg,
    coord_recovery_done_fn user_done, void *user_arg)
{
	struct recovery_write *w;
	struct coord_quorum *q = r->c->quorum;
	struct etcd_op op;
	char *key;
	int rc;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return -ENOMEM;
	w->r = r;
	w->done = done;
	w->arg = arg;
	w->user_done = user_done;
	w->user_arg = user_arg;
	w->len = protobuf_c_message_get_packed_size(&rec->base);
	if ((w->bytes = malloc(w->len > 0 ? w->len : 1)) == NULL ||
	    (w->id = strdup(rec->id)) == NULL) {
		recovery_write_free(w);
		return -ENOMEM;
	}
	protobuf_c_message_pack(&rec->base, w->bytes);
	if (coord_quorum_etcd(q) == NULL) {
		/* store local: the table is the store. */
		if ((rc = recovery_rec_apply(r, w->bytes, w->len)) < 0) {
			recovery_write_free(w);
			return rc;
		}
		w->done(w, 1, "");
		recovery_write_free(w);
		return 0;
	}
	if ((key = coord_quorum_key(q, "actions", rec->id, NULL, NULL)) == NULL) {
		recovery_write_free(w);
		return -ENOMEM;
	}
	op = (struct etcd_op){ .type = ETCD_OP_PUT, .key = key,
	    .value = w->bytes, .value_len = w->len };
	rc = coord_leader_guarded(coord_quorum_leader(q), 0, &op, 1,
	    recovery_write_cb, w, NULL);
	free(key);
	if (rc < 0)
		recovery_write_free(w);
	return rc;
}

/* The oldest finished records beyond RECOVERY_KEEP go (leader). */
static void
recovery_trim(struct coord_recovery *r)
{
	struct coord_quorum *q = r->c->quorum;
	size_t excess = r->nrecs > RECOVERY_KEEP ? r->nrecs - RECOVERY_KEEP : 0;

	for (size_t i = 0; i < r->nrecs && excess > 0; i++) {
		char *key;

		if (recovery_rec_open(r->recs[i].pb))
			continue;
		excess--;
		if (coord_quorum_etcd(q) == NULL) {
			recovery_rec_remove(r, r->recs[i].id);
			i--;
			continue;
		}
		if ((key = coord_quorum_key(q, "actions", r->recs[i].id, NULL,
		    NULL)) != NULL) {
			struct etcd_op op = { .type = ETCD_OP_DELETE,
			    .key = key };

			(void)coord_leader_guarded(coord_quorum_leader(q), 0,
			    &op, 1, NULL, NULL, NULL);
			free(key);
		}
	}
}

/* ---- commands ---- */

static int
recovery_send_command(struct coord_recovery *r,
    const Troika__V1__ActionRecord *rec, uint64_t timeout_ns)
{
	Troika__V1__Command cmd = TROIKA__V1__COMMAND__INIT;

	cmd.id = rec->id;
	cmd.fencing_token = (uint64_t)r->token;
	cmd.check = rec->check;
	cmd.action = rec->action;
	cmd.args = rec->args;
	cmd.n_args = rec->n_args;
	cmd.deadline_unix_nano = rec->deadline_unix_nano;
	cmd.timeout_nano = timeout_ns;
	cmd.coordinator = (char *)(uintptr_t)r->c->conf->name;
	return coord_agent_command(r->c, rec->node, &cmd);
}

static void recovery_lock(struct coord_recovery *r, const char *id,
    const char *why);

static void
recovery_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct recovery_flight *f = arg;
	struct coord_recovery *r = f->r;
	char *id = strdup(f->id);

	(void)fd;
	(void)what;
	recovery_flight_end(r, f->id);
	if (id == NULL)
		return;
	recovery_lock(r, id, "no outcome before the action timeout: look at "
	    "the service, then acknowledge the record");
	free(id);
}

static void
recovery_flight_start(struct coord_recovery *r, const char *id,
    uint64_t deadline)
{
	struct recovery_flight *f, **p;
	uint64_t now = recovery_now(), ns = deadline > now ? deadline - now : 0;
	struct timeval tv;

	recovery_flight_end(r, id);
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return;
	f->r = r;
	if ((f->id = strdup(id)) == NULL ||
	    (f->ev = evtimer_new(r->c->base, recovery_deadline_cb, f)) == NULL ||
	    (p = realloc(r->flights, (r->nflights + 1) * sizeof(*p))) == NULL) {
		recovery_flight_free(f);
		return;
	}
	r->flights = p;
	p[r->nflights++] = f;
	tv.tv_sec = (time_t)(ns / 1000000000ULL);
	tv.tv_usec = (suseconds_t)(ns % 1000000000ULL / 1000);
	evtimer_add(f->ev, &tv);
}

/* ---- updating a record (leader) ---- */

struct recovery_update {
	Troika__V1__ActionState state;
	Troika__V1__CommandOutcome outcome;
	const char *message;
	const char *acknowledged_by;
	const Troika__V1__CommandResult *cr; /* fields, duration */
};

static void
recovery_updated(struct recovery_write *w, int ok, const char *message)
{
	struct coord_recovery *r = w->r;
	struct recovery_rec *e = recovery_rec_find(r, w->id);
	const Troika__V1__ActionRecord *pb = e != NULL ? e->pb : NULL;

	if (!ok) {
		log_warnx("action %s: record not updated: %s", w->id, message);
		if (w->user_done != NULL)
			w->user_done(14 /* UNAVAILABLE */, message, NULL,
			    w->user_arg);
		return;
	}
	if (w->user_done != NULL)
		w->user_done(0, "", pb, w->user_arg);
	if (pb == NULL)
		return;
	if (!recovery_rec_open(pb) ||
	    pb->state == TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED)
		recovery_flight_end(r, pb->id);
	{
		const ProtobufCEnumValue *ov =
		    protobuf_c_enum_descriptor_get_value(
		    &troika__v1__command_outcome__descriptor, (int)pb->outcome);
		const char *const f[] = {
			"id", pb->id, "action", pb->action,
			"state", recovery_state_str(pb->state),
			"outcome", ov != NULL ? ov->name : "?",
		};
		int locked = pb->state ==
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED;
		int acked = pb->state ==
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_ACKNOWLEDGED;

		coord_events_emit(r->c, locked ? "action_locked" : acked ?
		    "action_acknowledged" : "action_done", locked ?
		    TROIKA__V1__SEVERITY__SEVERITY_CRITICAL : pb->state ==
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED || acked ?
		    TROIKA__V1__SEVERITY__SEVERITY_INFO :
		    TROIKA__V1__SEVERITY__SEVERITY_WARNING,
		    pb->node[0] != '\0' ? pb->node : NULL, pb->check, f, 4,
		    "%s %s on %s: %s%s%s", pb->action, pb->id,
		    pb->node[0] != '\0' ? pb->node : pb->cluster,
		    recovery_state_str(pb->state), pb->message[0] != '\0' ?
		    ": " : "", pb->message);
	}
	recovery_trim(r);
	/* An action ended: limits and locks may have freed others. */
	recovery_evaluate_all(r);
}

static int
recovery_update(struct coord_recovery *r, const char *id,
    const struct recovery_update *u, coord_recovery_done_fn done, void *arg)
{
	struct recovery_rec *e = recovery_rec_find(r, id);
	Troika__V1__ActionRecord rec;

	if (e == NULL)
		return -ENOENT;
	/* A shallow copy: it only points into the kept record. */
	rec = *e->pb;
	rec.state = u->state;
	if (u->outcome != 0)
		rec.outcome = u->outcome;
	if (u->message != NULL)
		rec.message = (char *)(uintptr_t)u->message;
	if (u->acknowledged_by != NULL)
		rec.acknowledged_by = (char *)(uintptr_t)u->acknowledged_by;
	if (u->cr != NULL) {
		rec.fields = u->cr->fields;
		rec.n_fields = u->cr->n_fields;
		rec.duration_nano = u->cr->duration_nano;
	}
	if (u->state != TROIKA__V1__ACTION_STATE__ACTION_STATE_RUNNING &&
	    rec.ended_unix_nano == 0)
		rec.ended_unix_nano = recovery_now();
	rec.finished_by = r->c->conf->name;
	return recovery_write(r, &rec, recovery_updated, NULL, done, arg);
}

static void
recovery_lock(struct coord_recovery *r, const char *id, const char *why)
{
	struct recovery_update u = {
		.state = TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED,
		.message = why,
	};

	if (!r->leader)
		return;
	if (recovery_update(r, id, &u, NULL, NULL) < 0)
		log_warnx("action %s: cannot lock its record", id);
}

/* ---- starting an action (leader) ---- */

struct recovery_start {
	struct recovery_key *k;
	uint64_t timeout_ns;
};

/* The record is written: say so, arm its deadline, send its command. */
static void
recovery_launch(struct coord_recovery *r, struct recovery_rec *e,
    uint64_t timeout_ns)
{
	int rc;

	r->started++;
	{
		char tok[24], att[12];

		snprintf(tok, sizeof(tok), "%llu",
		    (unsigned long long)e->pb->fencing_token);
		snprintf(att, sizeof(att), "%u", e->pb->attempt);
		const char *const f[] = {
			"id", e->pb->id, "action", e->pb->action,
			"fencing_token", tok, "attempt", att,
		};
		coord_events_emit(r->c, "action_started",
		    TROIKA__V1__SEVERITY__SEVERITY_WARNING,
		    e->pb->node[0] != '\0' ? e->pb->node : NULL,
		    e->pb->check, f, 4, "%s of %s on %s (attempt %u, token "
		    "%s): %s", e->pb->action, e->pb->check,
		    e->pb->node[0] != '\0' ? e->pb->node : e->pb->cluster,
		    e->pb->attempt, tok, e->pb->reason);
	}
	recovery_flight_start(r, e->pb->id, e->pb->deadline_unix_nano);
	if (e->pb->node[0] == '\0')
		return; /* a procedure: its steps are the commands */
	if ((rc = recovery_send_command(r, e->pb, timeout_ns)) < 0)
		log_warnx("action %s: command not sent (%s); the record "
		    "locks at its deadline unless the agent answers a "
		    "repeat", e->pb->id, strerror(-rc));
}

static void
recovery_started(struct recovery_write *w, int ok, const char *message)
{
	struct coord_recovery *r = w->r;
	struct recovery_start *s = w->arg;
	struct recovery_key *k = s->k;
	struct recovery_rec *e;
	uint64_t timeout_ns = s->timeout_ns;

	free(s);
	k->starting = 0;
	if (!ok) {
		log_warnx("action %s not started: %s", w->id, message);
		return;
	}
	if ((e = recovery_rec_find(r, w->id)) == NULL)
		return;
	k->held = HOLD_NONE;
	recovery_launch(r, e, timeout_ns);
}

static void
recovery_start(struct coord_recovery *r, struct recovery_key *k,
    const struct coord_policy *pol, const char *action, unsigned attempt,
    const char **coords, size_t ncoords, const char *reason)
{
	Troika__V1__ActionRecord rec = TROIKA__V1__ACTION_RECORD__INIT;
	struct recovery_start *s;
	uint64_t now = recovery_now();
	char id[64], why[512];

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return;
	s->k = k;
	s->timeout_ns = (uint64_t)pol->action_timeout_ms * NS_PER_MS;
	snprintf(id, sizeof(id), "%012lld-%06llu", (long long)r->token,
	    (unsigned long long)++r->seq);
	snprintf(why, sizeof(why), "%zu coordinators (quorum %d): %s", ncoords,
	    r->c->conf->quorum, reason);
	rec.id = id;
	rec.node = k->node;
	rec.check = k->check;
	rec.action = (char *)(uintptr_t)action;
	rec.state = TROIKA__V1__ACTION_STATE__ACTION_STATE_RUNNING;
	rec.fencing_token = (uint64_t)r->token;
	rec.coordinator = (char *)(uintptr_t)r->c->conf->name;
	rec.reason = why;
	rec.opinions = (char **)(uintptr_t)coords;
	rec.n_opinions = ncoords;
	rec.started_unix_nano = now;
	rec.attempt = attempt;
	rec.deadline_unix_nano = now + s->timeout_ns;
	k->starting = 1;
	if (recovery_write(r, &rec, recovery_started, s, NULL, NULL) < 0) {
		k->starting = 0;
		free(s);
		log_warnx("action on %s/%s: cannot write its record", k->node,
		    k->check);
	}
}

/* ---- deciding ---- */

static void
recovery_escalate(struct coord_recovery *r, struct recovery_key *k,
    const char *why)
{
	const char *const f[] = { "reason", why };

	if (k->escalated)
		return;
	k->escalated = 1;
	r->escalations++;
	coord_events_emit(r->c, "recovery_escalated",
	    TROIKA__V1__SEVERITY__SEVERITY_CRITICAL, k->node, k->check, f, 1,
	    "%s on %s stays failed and troika will not act: %s; an operator "
	    "is needed", k->check != NULL ? k->check : "the node", k->node,
	    why);
}

static void
recovery_evaluate(struct coord_recovery *r, const char *node,
    const char *check)
{
	const struct coord_conf *conf = r->c->conf;
	const char *coords[RECOVERY_MAX_COORDS];
	const struct coord_policy *pol;
	const Troika__V1__Maintenance *m;
	struct recovery_history h;
	struct recovery_key *k;
	unsigned running, hourly;
	uint64_t now = recovery_now(), oldest;
	struct recovery_proc *cp;
	char why[512];
	size_t n;
	int certain;

	if (!r->leader || !r->quorum)
		return;
	n = coord_quorum_failed(r->c->quorum, node, check, coords,
	    RECOVERY_MAX_COORDS, &certain);
	if (n < (size_t)conf->quorum) {
		/* Not (or no longer) confirmed: the episode ends. */
		for (size_t i = 0; i < r->nkeys; i++) {
			k = r->keys[i];
			if (strcmp(k->node, node) != 0 ||
			    !recovery_str_eq(k->check, check))
				continue;
			if (check == NULL && k->verdict)
				coord_events_emit(r->c, "node_returned",
				    TROIKA__V1__SEVERITY__SEVERITY_INFO, node,
				    NULL, NULL, 0, "node %s is back: no quorum "
				    "of coordinators holds it down any more",
				    node);
			k->verdict = k->escalated = 0;
			k->held = HOLD_NONE;
			evtimer_del(k->wake);
		}
		return;
	}
	if (n > RECOVERY_MAX_COORDS)
		n = RECOVERY_MAX_COORDS;
	if ((k = recovery_key_get(r, node, check)) == NULL)
		return;
	if (!k->verdict) {
		char list[256] = "";
		const char *const f[] = { "opinions", list,
		    "evidence", certain ? "certain" : "ambiguous" };

		for (size_t i = 0; i < n; i++)
			snprintf(list + strlen(list), sizeof(list) -
			    strlen(list), "%s%s", i > 0 ? "," : "", coords[i]);
		k->verdict = 1;
		k->verdict_ns = now;
		coord_events_emit(r->c, "verdict",
		    TROIKA__V1__SEVERITY__SEVERITY_CRITICAL, node, check, f, 2,
		    "%s on %s failed, confirmed by %zu coordinators (quorum %d) "
		    "(%s): %s", check != NULL ? check : "the node", node, n,
		    conf->quorum, list, coord_quorum_reason_of(r->c->quorum,
		    node, check));
	}
	if (check == NULL) {
		if (k->held != HOLD_NODE)
			coord_events_emit(r->c, "node_lost",
			    TROIKA__V1__SEVERITY__SEVERITY_CRITICAL, node, NULL,
			    NULL, 0, "node %s is lost: its agent has had no "
			    "stream to %zu coordinators for %lld ms; its "
			    "services are counted out%s", node, n,
			    (long long)conf->node_down_after_ms,
			    conf->lb_check != NULL ? " and it leaves the load "
			    "balancer's rotation" : "");
		recovery_hold(k, HOLD_NODE, "node %s is down: its services "
		    "are counted out; no per-service recovery", node);
		return;
	}
	if ((m = recovery_in_maintenance(r, node, check, now)) != NULL) {
		recovery_hold(k, HOLD_MAINTENANCE, "in maintenance (%s%s%s): "
		    "nothing automated", m->node[0] != '\0' ? m->node :
		    "cluster", m->check[0] != '\0' ? "/" : "", m->check);
		recovery_key_wake_at(k, m->until_unix_nano);
		return;
	}
	if ((cp = recovery_proc_of(r, node, check)) != NULL &&
	    recovery_proc_holds(cp, node, k->verdict_ns, why, sizeof(why))) {
		recovery_hold(k, HOLD_CLUSTER, "%s", why);
		/* What holds it (another member's next result) brings no
		 * opinion change: look again. */
		recovery_key_wake_at(k, now + 1000 * NS_PER_MS);
		return;
	}
	if (k->starting)
		return;
	pol = coord_conf_policy(conf, check);
	recovery_history(r, node, check, (uint64_t)pol->window_ms * NS_PER_MS,
	    now, &h);
	if (h.open != NULL)
		return; /* RUNNING or LOCKED: its end brings us back */
	if (h.last_success != 0 && now < h.last_success +
	    (uint64_t)pol->cooldown_ms * NS_PER_MS) {
		recovery_hold(k, HOLD_COOLDOWN, "cooldown after the last "
		    "successful action");
		recovery_key_wake_at(k, h.last_success +
		    (uint64_t)pol->cooldown_ms * NS_PER_MS);
		return;
	}
	if (h.last_attempt != 0 && now < h.last_attempt +
	    (uint64_t)pol->backoff_ms * NS_PER_MS) {
		recovery_hold(k, HOLD_BACKOFF, "backoff after the last attempt");
		recovery_key_wake_at(k, h.last_attempt +
		    (uint64_t)pol->backoff_ms * NS_PER_MS);
		return;
	}
	if (pol->max_attempts == 0) {
		recovery_escalate(r, k, "its policy allows no action");
		return;
	}
	if (h.attempts >= (unsigned)pol->max_attempts) {
		recovery_escalate(r, k, "max_attempts reached in the window");
		return;
	}
	if (h.attempts >= pol->nladder ||
	    strcmp(pol->ladder[h.attempts], "alert") == 0) {
		recovery_escalate(r, k, "the ladder says alert only");
		return;
	}
	recovery_cluster(r, now, &running, &hourly, &oldest);
	/* Records still being written count: they are actions too (two
	 * keys decided in one turn once both started). */
	for (size_t i = 0; i < r->nkeys; i++)
		if (r->keys[i]->starting) {
			running++;
			hourly++;
		}
	if (running >= (unsigned)conf->max_concurrent) {
		recovery_hold(k, HOLD_CONCURRENT, "another recovery is "
		    "running in the cluster (max_concurrent %d)",
		    conf->max_concurrent);
		return;
	}
	if (hourly >= (unsigned)conf->max_per_hour) {
		recovery_hold(k, HOLD_HOURLY, "%u recoveries in the last hour "
		    "(max_per_hour %d)", hourly, conf->max_per_hour);
		recovery_key_wake_at(k, oldest + 3600ULL * 1000000000ULL);
		return;
	}
	if (!coord_agent_connected(r->c, node)) {
		recovery_hold(k, HOLD_AGENT, "node %s's agent has no stream "
		    "to the leader", node);
		return;
	}
	recovery_start(r, k, pol, pol->ladder[h.attempts], h.attempts + 1,
	    coords, n, coord_quorum_reason_of(r->c->quorum, node, check));
}

static void
recovery_evaluate_one(const char *node, const char *check, void *arg)
{
	recovery_evaluate(arg, node, check);
}

static void
recovery_evaluate_all(struct coord_recovery *r)
{
	if (!r->leader || !r->quorum)
		return;
	coord_quorum_foreach(r->c->quorum, recovery_evaluate_one, r);
	for (size_t i = 0; i < r->nprocs; i++)
		recovery_proc_evaluate(&r->procs[i]);
	coord_nodeloss_evaluate(r->nodeloss);
}

/* ---- inputs ---- */

void
coord_recovery_opinions(struct coord_recovery *r, const char *node,
    const char *check)
{
	struct recovery_proc *p = recovery_proc_of(r, node, check);

	/* A node's verdict concerns every procedure (its members are
	 * counted out) and the load balancer. */
	if (check == NULL) {
		recovery_evaluate_all(r);
		return;
	}
	recovery_evaluate(r, node, check);
	/* A member's verdict may start, advance or end its procedure. */
	if (p != NULL)
		recovery_proc_evaluate(p);
}

void
coord_recovery_result(struct coord_recovery *r, const char *node,
    const char *check)
{
	struct recovery_proc *p;

	if (!r->leader || !r->quorum)
		return;
	if ((p = recovery_proc_of(r, node, check)) != NULL)
		recovery_proc_evaluate(p);
}

/* A new leader picks up what the old one left running. */
static void
recovery_take_over(struct coord_recovery *r)
{
	uint64_t now = recovery_now();
	char **ids = NULL;
	size_t n = 0;

	/* Collected first: locking rewrites recs as we go. */
	for (size_t i = 0; i < r->nrecs; i++)
		if (r->recs[i].pb->state ==
		    TROIKA__V1__ACTION_STATE__ACTION_STATE_RUNNING) {
			char **p = realloc(ids, (n + 1) * sizeof(*p));

			if (p == NULL)
				break;
			ids = p;
			if ((ids[n] = strdup(r->recs[i].id)) != NULL)
				n++;
		}
	for (size_t i = 0; i < n; i++) {
		struct recovery_rec *e = recovery_rec_find(r, ids[i]);

		if (e == NULL)
			continue;
		if (e->pb->deadline_unix_nano <= now) {
			recovery_lock(r, ids[i], "no outcome before the action "
			    "timeout (taken over from another leader)");
			continue;
		}
		/*
		 * Same id, our token: an agent that ran it answers with the
		 * outcome it kept, one that never got it runs it now.
		 */
		recovery_flight_start(r, ids[i], e->pb->deadline_unix_nano);
		if (e->pb->node[0] == '\0')
			continue; /* a procedure: its steps are asked again */
		log_info("action %s: taken over from %s; asking its agent "
		    "again", ids[i], e->pb->coordinator);
		(void)recovery_send_command(r, e->pb,
		    e->pb->deadline_unix_nano - now);
	}
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

void
coord_recovery_leader(struct coord_recovery *r, int leader, int64_t token,
    const char *reason)
{
	char tok[24];
	const char *const f[] = { "fencing_token", tok };

	snprintf(tok, sizeof(tok), "%lld", (long long)token);
	if (leader == r->leader && token == r->token)
		return;
	recovery_drop_leadership(r);
	r->leader = leader;
	r->token = leader ? token : 0;
	r->seq = 0;
	coord_events_emit(r->c, "leader_changed", leader ?
	    TROIKA__V1__SEVERITY__SEVERITY_INFO :
	    TROIKA__V1__SEVERITY__SEVERITY_WARNING, NULL, NULL, f, 1,
	    "%s %s the leader%s%s", r->c->conf->name, leader ? "is now" :
	    "is no longer", reason != NULL && *reason != '\0' ? ": " : "",
	    reason != NULL ? reason : "");
	if (!leader)
		return;
	coord_agent_fencing(r->c, (uint64_t)token);
	recovery_take_over(r);
	recovery_evaluate_all(r);
}

void
coord_recovery_quorum(struct coord_recovery *r, int ok, const char *reason)
{
	int first = !r->quorum_known;

	if (ok == r->quorum && !first)
		return;
	r->quorum = ok;
	r->quorum_known = 1;
	/* Having quorum from the start is no news; lacking it is. */
	if (first && ok) {
		recovery_evaluate_all(r);
		return;
	}
	coord_events_emit(r->c, ok ? "quorum_regained" : "quorum_lost", ok ?
	    TROIKA__V1__SEVERITY__SEVERITY_INFO :
	    TROIKA__V1__SEVERITY__SEVERITY_CRITICAL, NULL, NULL, NULL, 0,
	    "%s", ok ? "quorum regained: taking part in decisions again" :
	    reason);
	if (ok)
		recovery_evaluate_all(r);
}

void
coord_recovery_command_result(struct coord_recovery *r, const char *node,
    const Troika__V1__CommandResult *cr)
{
	struct recovery_rec *e = recovery_rec_find(r, cr->id);
	struct recovery_update u = { .cr = cr, .outcome = cr->outcome,
	    .message = cr->message };

	if (e == NULL || strcmp(e->pb->node, node) != 0) {
		log_warnx("node %s answered command %s, which is not a "
		    "record here", node, cr->id);
		return;
	}
	switch (cr->outcome) {
	case TROIKA__V1__COMMAND_OUTCOME__COMMAND_OUTCOME_ACCEPTED: {
		const char *const f[] = { "id", cr->id };

		coord_events_emit(r->c, "action_accepted",
		    TROIKA__V1__SEVERITY__SEVERITY_INFO, node, e->pb->check, f,
		    1, "%s of %s on %s: the agent started it", e->pb->action,
		    e->pb->check, node);
		return;
	}
	case TROIKA__V1__COMMAND_OUTCOME__COMMAND_OUTCOME_SUCCEEDED:
		u.state = TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED;
		break;
	case TROIKA__V1__COMMAND_OUTCOME__COMMAND_OUTCOME_INDETERMINATE:
		u.state = TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED;
		break;
	default:
		/* FAILED, and every refusal. */
		u.state = TROIKA__V1__ACTION_STATE__ACTION_STATE_FAILED;
		break;
	}
	/* A finished record keeps its outcome; a repeat answer is no news. */
	if (e->pb->state != TROIKA__V1__ACTION_STATE__ACTION_STATE_RUNNING &&
	    e->pb->state != TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED)
		return;
	if (e->pb->state == TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED &&
	    u.state == TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED)
		return;
	if (!r->leader) {
		log_warnx("command %s answered (%s), but this coordinator is "
		    "not the leader: the leader asks again", cr->id,
		    cr->message);
		return;
	}
	if (recovery_update(r, cr->id, &u, NULL, NULL) < 0)
		log_warnx("action %s: cannot record its outcome", cr->id);
}

void
coord_recovery_node_connected(struct coord_recovery *r, const char *node)
{
	uint64_t now = recovery_now();

	if (!r->leader)
		return;
	/* Commands in flight to it are asked again (same ids). */
	for (size_t i = 0; i < r->nrecs; i++) {
		const Troika__V1__ActionRecord *pb = r->recs[i].pb;

		if (pb->state == TROIKA__V1__ACTION_STATE__ACTION_STATE_RUNNING &&
		    strcmp(pb->node, node) == 0 && pb->deadline_unix_nano > now)
			(void)recovery_send_command(r, pb,
			    pb->deadline_unix_nano - now);
	}
	for (size_t i = 0; i < r->nkeys; i++)
		if (strcmp(r->keys[i]->node, node) == 0 &&
		    r->keys[i]->held == HOLD_AGENT)
			r->keys[i]->held = HOLD_NONE;
	recovery_evaluate_all(r);
}

/* ---- for cluster procedures ---- */

int
coord_recovery_record_open(const Troika__V1__ActionRecord *pb)
{
	return recovery_rec_open(pb);
}

int
coord_recovery_deciding(const struct coord_recovery *r)
{
	return r->leader && r->quorum;
}

int
coord_recovery_node_settled(struct coord_recovery *r, const char *node)
{
	for (size_t i = 0; i < r->nrecs; i++)
		if (strcmp(r->recs[i].pb->node, node) == 0 &&
		    recovery_rec_open(r->recs[i].pb))
			return 0;
	for (size_t i = 0; i < r->nprocs; i++)
		if (r->procs[i].redis != NULL &&
		    !coord_redis_settled(r->procs[i].redis, node))
			return 0;
	return 1;
}

const Troika__V1__ActionRecord *
coord_recovery_open_own(const struct coord_recovery *r, const char *node,
    const char *check)
{
	struct recovery_history h;

	recovery_history(r, node, check, 0, recovery_now(), &h);
	return h.open;
}

int
coord_recovery_busy(const struct coord_recovery *r, const char *node,
    const char *check)
{
	for (size_t i = 0; i < r->nkeys; i++)
		if (r->keys[i]->starting && strcmp(r->keys[i]->node, node) == 0 &&
		    recovery_str_eq(r->keys[i]->check, check))
			return 1;
	return coord_recovery_open_own(r, node, check) != NULL;
}

struct coord_redis *
coord_recovery_redis(struct coord_recovery *r, const char *cluster)
{
	for (size_t i = 0; i < r->nprocs; i++)
		if (r->procs[i].redis != NULL &&
		    strcmp(r->procs[i].cl->name, cluster) == 0)
			return r->procs[i].redis;
	return NULL;
}

size_t
coord_recovery_clusters(struct coord_recovery *r,
    Troika__V1__ClusterStatus *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < r->nprocs && n < max; i++, n++) {
		troika__v1__cluster_status__init(&out[n]);
		if (r->procs[i].redis != NULL) {
			coord_redis_status(r->procs[i].redis, &out[n]);
			continue;
		}
		coord_galera_status(r->procs[i].galera, &out[n]);
	}
	return n;
}

int
coord_recovery_in_maintenance(const struct coord_recovery *r,
    const char *node, const char *check)
{
	return recovery_in_maintenance(r, node, check, recovery_now()) != NULL;
}

size_t
coord_recovery_records(struct coord_recovery *r,
    const Troika__V1__ActionRecord ***out)
{
	const Troika__V1__ActionRecord **p;

	if (r->nrecs == 0 || (p = realloc(r->pbs, r->nrecs *
	    sizeof(*p))) == NULL) {
		*out = NULL;
		return 0;
	}
	r->pbs = p;
	for (size_t i = 0; i < r->nrecs; i++)
		p[i] = r->recs[i].pb;
	*out = p;
	return r->nrecs;
}

struct recovery_begin {
	coord_recovery_begun_fn done;
	void *arg;
	uint64_t timeout_ns;
};

static void
recovery_begun(struct recovery_write *w, int ok, const char *message)
{
	struct recovery_begin *b = w->arg;
	struct recovery_rec *e = ok ? recovery_rec_find(w->r, w->id) : NULL;

	if (!ok)
		log_warnx("record %s not written: %s", w->id, message);
	b->done(e != NULL, b->arg);
	if (e != NULL)
		recovery_launch(w->r, e, b->timeout_ns);
	free(b);
}

int
coord_recovery_begin(struct coord_recovery *r,
    const struct coord_recovery_step *s, coord_recovery_begun_fn done,
    void *arg)
{
	Troika__V1__ActionRecord rec = TROIKA__V1__ACTION_RECORD__INIT;
	struct recovery_begin *b;
	uint64_t now = recovery_now();
	char id[64];
	int rc;

	if (!r->leader || !r->quorum)
		return -EPERM;
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return -ENOMEM;
	b->done = done;
	b->arg = arg;
	b->timeout_ns = s->timeout_ns;
	snprintf(id, sizeof(id), "%012lld-%06llu", (long long)r->token,
	    (unsigned long long)++r->seq);
	if (s->ret_id != NULL)
		snprintf(s->ret_id, s->ret_id_len, "%s", id);
	rec.id = id;
	rec.node = (char *)(uintptr_t)s->node;
	rec.check = (char *)(uintptr_t)s->check;
	rec.action = (char *)(uintptr_t)s->action;
	rec.args = (char **)(uintptr_t)s->args;
	rec.n_args = s->nargs;
	rec.procedure = (char *)(uintptr_t)s->procedure;
	rec.cluster = (char *)(uintptr_t)s->cluster;
	rec.reason = (char *)(uintptr_t)s->reason;
	rec.state = TROIKA__V1__ACTION_STATE__ACTION_STATE_RUNNING;
	rec.fencing_token = (uint64_t)r->token;
	rec.coordinator = (char *)(uintptr_t)r->c->conf->name;
	rec.started_unix_nano = now;
	rec.attempt = 1;
	rec.deadline_unix_nano = now + s->timeout_ns;
	if ((rc = recovery_write(r, &rec, recovery_begun, b, NULL, NULL)) < 0)
		free(b);
	return rc;
}

struct recovery_finish {
	coord_recovery_begun_fn done;
	void *arg;
};

static void
recovery_finished(int status, const char *message,
    const Troika__V1__ActionRecord *rec, void *arg)
{
	struct recovery_finish *f = arg;

	(void)message;
	(void)rec;
	f->done(status == 0, f->arg);
	free(f);
}

int
coord_recovery_finish(struct coord_recovery *r, const char *id, int state,
    const char *message, Troika__V1__Label **fields, size_t nfields,
    coord_recovery_begun_fn done, void *arg)
{
	Troika__V1__CommandResult cr = TROIKA__V1__COMMAND_RESULT__INIT;
	struct recovery_update u = { .state = state, .message = message,
	    .cr = &cr };
	struct recovery_finish *f;
	int rc;

	if (!r->leader || !r->quorum)
		return -EPERM;
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return -ENOMEM;
	f->done = done;
	f->arg = arg;
	cr.fields = fields;
	cr.n_fields = nfields;
	if ((rc = recovery_update(r, id, &u, recovery_finished, f)) < 0)
		free(f);
	return rc;
}

/* ---- Admin ---- */

size_t
coord_recovery_actions(const struct coord_recovery *r, const char *const *nodes,
    size_t nnodes, const Troika__V1__ActionRecord **out, size_t max)
{
	size_t n = 0;

	for (size_t i = r->nrecs; i > 0 && n < max; i--) {
		const Troika__V1__ActionRecord *pb = r->recs[i - 1].pb;
		int want = nnodes == 0;

		for (size_t j = 0; j < nnodes && !want; j++)
			want = strcmp(nodes[j], pb->node) == 0;
		if (want)
			out[n++] = pb;
	}
	return n;
}

int
coord_recovery_acknowledge(struct coord_recovery *r, const char *id,
    const char *by, coord_recovery_done_fn done, void *arg)
{
	struct recovery_rec *e = recovery_rec_find(r, id);
	struct recovery_update u = {
		.state = TROIKA__V1__ACTION_STATE__ACTION_STATE_ACKNOWLEDGED,
		.acknowledged_by = by != NULL && *by != '\0' ? by : "operator",
	};

	if (!r->leader)
		return -EPERM;
	if (e == NULL)
		return -ENOENT;
	if (e->pb->state != TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED)
		return -EINVAL;
	return recovery_update(r, id, &u, done, arg);
}

struct recovery_maint_write {
	struct coord_recovery *r;
	coord_recovery_maint_fn done;
	void *arg;
	char *key;
	uint8_t *bytes;
	size_t len;
};

static void
recovery_maint_cb(const struct etcd_result *res, void *arg)
{
	struct recovery_maint_write *w = arg;

	if (res->status == 0)
		recovery_maint_apply(w->r, w->key, w->bytes, w->len);
	w->done(res->status, res->message, w->arg);
	if (res->status == 0)
		recovery_evaluate_all(w->r);
	free(w->key);
	free(w->bytes);
	free(w);
}

int
coord_recovery_set_maintenance(struct coord_recovery *r,
    const Troika__V1__Maintenance *m, int clear, coord_recovery_maint_fn done,
    void *arg)
{
	struct coord_quorum *q = r->c->quorum;
	struct recovery_maint_write *w;
	char until[32];
	int rc;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return -ENOMEM;
	w->r = r;
	w->done = done;
	w->arg = arg;
	w->key = coord_quorum_key(q, "maintenance", m->node[0] != '\0' ?
	    m->node : "*", m->check[0] != '\0' ? m->check : "*", NULL);
	if (w->key == NULL)
		goto nomem;
	if (!clear) {
		w->len = protobuf_c_message_get_packed_size(&m->base);
		if ((w->bytes = malloc(w->len > 0 ? w->len : 1)) == NULL)
			goto nomem;
		protobuf_c_message_pack(&m->base, w->bytes);
	}
	snprintf(until, sizeof(until), "%llu",
	    (unsigned long long)m->until_unix_nano);
	const char *const ff[] = { "until_unix_nano", until };
	coord_events_emit(r->c, clear ? "maintenance_off" : "maintenance_on",
	    TROIKA__V1__SEVERITY__SEVERITY_INFO, m->node[0] != '\0' ? m->node :
	    NULL, m->check[0] != '\0' ? m->check : NULL, ff, clear ? 0 : 1,
	    "maintenance %s for %s%s%s%s%s", clear ? "ended" : "started",
	    m->node[0] != '\0' ? m->node : "the cluster",
	    m->check[0] != '\0' ? "/" : "", m->check,
	    m->reason[0] != '\0' ? ": " : "", m->reason);
	if (coord_quorum_etcd(q) == NULL) {
		struct etcd_result res = { .status = 0, .message = "" };

		recovery_maint_cb(&res, w);
		return 0;
	}
	if (clear)
		rc = etcd_delete(coord_quorum_etcd(q), w->key, 0,
		    recovery_maint_cb, w, NULL);
	else
		rc = etcd_put(coord_quorum_etcd(q), w->key, w->bytes, w->len, 0,
		    0, recovery_maint_cb, w, NULL);
	if (rc < 0) {
		free(w->key);
		free(w->bytes);
		free(w);
	}
	return rc;
nomem:
	free(w->key);
	free(w->bytes);
	free(w);
	return -ENOMEM;
}

size_t
coord_recovery_maintenance(const struct coord_recovery *r,
    const Troika__V1__Maintenance **out, size_t max)
{
	uint64_t now = recovery_now();
	size_t n = 0;

	for (size_t i = 0; i < r->nmaint && n < max; i++)
		if (r->maint[i].pb->until_unix_nano > now)
			out[n++] = r->maint[i].pb;
	return n;
}

/* ---- mirrors ---- */

static void
recovery_recs_changed(const char *key, const uint8_t *value, size_t len,
    void *arg)
{
	struct coord_recovery *r = arg;
	const char *id = strrchr(key, '/');

	if (id == NULL)
		return;
	if (value == NULL) {
		recovery_rec_remove(r, id + 1);
		return;
	}
	if (recovery_rec_apply(r, value, len) < 0)
		log_warnx("action record %s: cannot parse it; ignored", key);
}

static void
recovery_recs_reset(void *arg)
{
	struct coord_recovery *r = arg;

	for (size_t i = 0; i < r->nrecs; i++)
		recovery_rec_clear(&r->recs[i]);
	free(r->recs);
	r->recs = NULL;
	r->nrecs = 0;
}

static const struct coord_mirror_handler recovery_recs_handler = {
	.changed = recovery_recs_changed,
	.reset = recovery_recs_reset,
};

static void
recovery_maint_changed(const char *key, const uint8_t *value, size_t len,
    void *arg)
{
	struct coord_recovery *r = arg;

	recovery_maint_apply(r, key, value, len);
	recovery_evaluate_all(r);
}

static void
recovery_maint_reset(void *arg)
{
	struct coord_recovery *r = arg;

	while (r->nmaint > 0)
		recovery_maint_remove(r, r->maint[0].key);
}

static const struct coord_mirror_handler recovery_maint_handler = {
	.changed = recovery_maint_changed,
	.reset = recovery_maint_reset,
};

/* ---- life ---- */

struct coord_recovery *
coord_recovery_new(struct coord *c)
{
	struct coord_recovery *r;
	struct etcd_client *ec = coord_quorum_etcd(c->quorum);

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->c = c;
	if (c->conf->nclusters > 0 && (r->procs = calloc(c->conf->nclusters,
	    sizeof(*r->procs))) == NULL) {
		free(r);
		return NULL;
	}
	for (size_t i = 0; i < c->conf->nclusters; i++) {
		const struct coord_cluster *cl = &c->conf->clusters[i];
		struct recovery_proc *p = &r->procs[r->nprocs];

		p->cl = cl;
		if (cl->kind == COORD_CLUSTER_GALERA)
			p->galera = coord_galera_new(c, r, cl);
		else
			p->redis = coord_redis_new(c, r, cl);
		if (p->galera == NULL && p->redis == NULL) {
			coord_recovery_free(r);
			return NULL;
		}
		r->nprocs++;
	}
	if ((r->nodeloss = coord_nodeloss_new(c, r)) == NULL) {
		coord_recovery_free(r);
		return NULL;
	}
	if (ec == NULL)
		return r;
	if ((r->recs_prefix = coord_quorum_key(c->quorum, "actions/", NULL,
	    NULL, NULL)) == NULL ||
	    (r->maint_prefix = coord_quorum_key(c->quorum, "maintenance/",
	    NULL, NULL, NULL)) == NULL ||
	    (r->recs_mirror = coord_mirror_new(ec, r->recs_prefix,
	    &recovery_recs_handler, r)) == NULL ||
	    (r->maint_mirror = coord_mirror_new(ec, r->maint_prefix,
	    &recovery_maint_handler, r)) == NULL) {
		coord_recovery_free(r);
		return NULL;
	}
	return r;
}

void
coord_recovery_free(struct coord_recovery *r)
{
	if (r == NULL)
		return;
	recovery_drop_leadership(r);
	for (size_t i = 0; i < r->nprocs; i++) {
		coord_galera_free(r->procs[i].galera);
		coord_redis_free(r->procs[i].redis);
	}
	free(r->procs);
	coord_nodeloss_free(r->nodeloss);
	free(r->pbs);
	coord_mirror_free(r->recs_mirror);
	coord_mirror_free(r->maint_mirror);
	recovery_recs_reset(r);
	recovery_maint_reset(r);
	free(r->maint);
	free(r->recs_prefix);
	free(r->maint_prefix);
	free(r);
}

void
coord_recovery_write_metrics(const struct coord_recovery *r,
    struct evbuffer *out)
{
	static const Troika__V1__ActionState states[] = {
		TROIKA__V1__ACTION_STATE__ACTION_STATE_RUNNING,
		TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED,
		TROIKA__V1__ACTION_STATE__ACTION_STATE_FAILED,
		TROIKA__V1__ACTION_STATE__ACTION_STATE_LOCKED,
		TROIKA__V1__ACTION_STATE__ACTION_STATE_ACKNOWLEDGED,
	};
	const Troika__V1__Maintenance *m[64];

	metrics_family(out, "troika_coord_actions", "gauge",
	    "Action records kept, by state.");
	for (size_t s = 0; s < sizeof(states) / sizeof(states[0]); s++) {
		struct troika_label l = { "state", recovery_state_str(states[s]) };
		size_t n = 0;

		for (size_t i = 0; i < r->nrecs; i++)
			n += r->recs[i].pb->state == states[s];
		metrics_sample(out, "troika_coord_actions", &l, 1, NULL,
		    (double)n);
	}
	metrics_family(out, "troika_coord_actions_started_total", "counter",
	    "Actions this coordinator started as leader.");
	metrics_sample(out, "troika_coord_actions_started_total", NULL, 0, NULL,
	    (double)r->started);
	metrics_family(out, "troika_coord_recovery_escalations_total",
	    "counter", "Confirmed failures left to an operator (ladder, "
	    "attempts or policy).");
	metrics_sample(out, "troika_coord_recovery_escalations_total", NULL, 0,
	    NULL, (double)r->escalations);
	metrics_family(out, "troika_coord_recovery_held_total", "counter",
	    "Confirmed failures held back, by reason (counted once per "
	    "failure and reason).");
	for (int h = HOLD_NODE; h < HOLD_MAX; h++) {
		struct troika_label l = { "reason", recovery_hold_names[h] };

		metrics_sample(out, "troika_coord_recovery_held_total", &l, 1,
		    NULL, (double)r->held[h]);
	}
	metrics_family(out, "troika_coord_record_write_failures_total",
	    "counter", "Action record writes that failed (etcd, or the "
	    "leader key moved on).");
	metrics_sample(out, "troika_coord_record_write_failures_total", NULL,
	    0, NULL, (double)r->write_failures);
	metrics_family(out, "troika_coord_maintenance", "gauge",
	    "Maintenance scopes in force.");
	metrics_sample(out, "troika_coord_maintenance", NULL, 0, NULL,
	    (double)coord_recovery_maintenance(r, m, 64));
}
