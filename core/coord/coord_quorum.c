/*
 * coord_quorum: opinions shared through etcd, the leader key, and whether
 * this coordinator may take part in decisions (coord_quorum.h).
 *
 * Every FAILED opinion any coordinator holds is one key; OK is the key's
 * absence. The table here mirrors those keys (a range, then a watch), so
 * counting the opinions on (node, check) never asks etcd: it only costs a
 * scan of the few FAILED opinions that exist.
 */
#include "coord_quorum.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "coord.h"
#include "coord_conf.h"
#include "coord_leader.h"
#include "coord_opinion.h"
#include "etcd_client.h"
#include "log.h"
#include "metrics.h"

#define QUORUM_RETRY_MS 500
/* FAILED opinions kept from all coordinators; beyond it, refused. */
#define QUORUM_MAX_OPINIONS 65536

struct quorum_opinion {
	char *node;
	char *check;
	char *coord;
	char *reason;
	int certain;
};

struct coord_quorum {
	struct coord *c;
	const struct coord_quorum_handler *h;
	void *arg;
	int local;
	char *prefix;

	struct quorum_opinion *ops;
	size_t nops;

	int ok;
	char reason[256];
	int leader;
	int64_t token;

	/* store local */
	struct event *start_ev;

	/* store etcd */
	struct etcd_client *ec;
	struct coord_leader *cl;
	struct etcd_call *grant_call;
	struct etcd_lease *lease;
	int64_t lease_id;
	struct etcd_call *range_call;
	struct etcd_call *resync_call;
	int dirty;               /* a write failed: publish everything again */
	struct etcd_watch *watch;
	int synced;
	struct event *retry_ev;
	uint64_t published;
	uint64_t publish_errors;
};

static void quorum_retry(struct coord_quorum *q);

/* ---- keys ---- */

/* '/' and '%' %-escaped, so a name is one key segment. */
static void
quorum_escape(struct evbuffer *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '/' || *s == '%')
			evbuffer_add_printf(b, "%%%02X", (unsigned char)*s);
		else
			evbuffer_add(b, s, 1);
	}
}

static char *
quorum_unescape(const char *s, size_t len)
{
	char *out = malloc(len + 1), *o = out;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned v;

		if (s[i] == '%' && i + 2 < len &&
		    sscanf(s + i + 1, "%2X", &v) == 1) {
			*o++ = (char)v;
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

char *
coord_quorum_key(const struct coord_quorum *q, const char *kind, const char *a,
    const char *b, const char *c)
{
	struct evbuffer *buf = evbuffer_new();
	const char *parts[] = { a, b, c };
	char *key = NULL;
	size_t len;

	if (buf == NULL)
		return NULL;
	evbuffer_add_printf(buf, "%s/%s", q->prefix, kind);
	for (size_t i = 0; i < 3 && parts[i] != NULL; i++) {
		evbuffer_add(buf, "/", 1);
		quorum_escape(buf, parts[i]);
	}
	len = evbuffer_get_length(buf);
	if ((key = malloc(len + 1)) != NULL) {
		evbuffer_remove(buf, key, len);
		key[len] = '\0';
	}
	evbuffer_free(buf);
	return key;
}

/* "<prefix>/opinions/<coord>/<node>/<check>" -> its three names. */
static int
quorum_parse_key(const struct coord_quorum *q, const uint8_t *key, size_t len,
    char **node, char **check, char **coord)
{
	size_t plen = strlen(q->prefix) + strlen("/opinions/");
	const char *p = (const char *)key + plen, *end = (const char *)key + len;
	const char *s1, *s2;

	*node = *check = *coord = NULL;
	if (len <= plen)
		return -EINVAL;
	if ((s1 = memchr(p, '/', (size_t)(end - p))) == NULL ||
	    (s2 = memchr(s1 + 1, '/', (size_t)(end - s1 - 1))) == NULL ||
	    memchr(s2 + 1, '/', (size_t)(end - s2 - 1)) != NULL)
		return -EINVAL;
	*coord = quorum_unescape(p, (size_t)(s1 - p));
	*node = quorum_unescape(s1 + 1, (size_t)(s2 - s1 - 1));
	*check = quorum_unescape(s2 + 1, (size_t)(end - s2 - 1));
	if (*node == NULL || *check == NULL || *coord == NULL) {
		free(*node);
		free(*check);
		free(*coord);
		return -ENOMEM;
	}
	return 0;
}

/* ---- the table of FAILED opinions ---- */

static void
quorum_opinion_clear(struct quorum_opinion *o)
{
	free(o->node);
	free(o->check);
	free(o->coord);
	free(o->reason);
}

static struct quorum_opinion *
quorum_find(const struct coord_quorum *q, const char *node, const char *check,
    const char *coord)
{
	for (size_t i = 0; i < q->nops; i++) {
		struct quorum_opinion *o = &q->ops[i];

		if (strcmp(o->node, node) == 0 && strcmp(o->check, check) == 0 &&
		    strcmp(o->coord, coord) == 0)
			return o;
	}
	return NULL;
}

static void
quorum_notify(struct coord_quorum *q, const char *node, const char *check)
{
	if (q->h->opinions != NULL)
		q->h->opinions(node, strcmp(check, COORD_QUORUM_NODE_CHECK) == 0 ?
		    NULL : check, q->arg);
}

/* Takes node, check and coord (and reason); notifies. */
static void
quorum_set(struct coord_quorum *q, char *node, char *check, char *coord,
    int certain, char *reason)
{
	struct quorum_opinion *o = quorum_find(q, node, check, coord), *p;

	if (o == NULL) {
		if (q->nops >= QUORUM_MAX_OPINIONS || (p = realloc(q->ops,
		    (q->nops + 1) * sizeof(*p))) == NULL) {
			log_warnx("opinion of %s on %s/%s not kept: too many",
			    coord, node, check);
			goto drop;
		}
		q->ops = p;
		o = &q->ops[q->nops++];
		*o = (struct quorum_opinion){ .node = node, .check = check,
		    .coord = coord, .reason = reason, .certain = certain };
		quorum_notify(q, node, check);
		return;
	}
	free(o->reason);
	o->reason = reason;
	o->certain = certain;
	quorum_notify(q, o->node, o->check);
drop:
	if (o == NULL)
		free(reason);
	free(node);
	free(check);
	free(coord);
}

static void
quorum_unset(struct coord_quorum *q, const char *node, const char *check,
    const char *coord)
{
	struct quorum_opinion *o = quorum_find(q, node, check, coord);
	struct quorum_opinion gone;

	if (o == NULL)
		return;
	gone = *o;
	*o = q->ops[--q->nops];
	quorum_notify(q, gone.node, gone.check);
	quorum_opinion_clear(&gone);
}

/* Forget every opinion (a re-read follows); each key is notified. */
static void
quorum_clear_all(struct coord_quorum *q)
{
	struct quorum_opinion *ops = q->ops;
	size_t n = q->nops;

	q->ops = NULL;
	q->nops = 0;
	for (size_t i = 0; i < n; i++) {
		quorum_notify(q, ops[i].node, ops[i].check);
		quorum_opinion_clear(&ops[i]);
	}
	free(ops);
}

size_t
coord_quorum_failed(const struct coord_quorum *q, const char *node,
    const char *check, const char **coords, size_t max, int *certain)
{
	size_t n = 0;

	if (check == NULL)
		check = COORD_QUORUM_NODE_CHECK;
	if (certain != NULL)
		*certain = 1;
	for (size_t i = 0; i < q->nops; i++) {
		const struct quorum_opinion *o = &q->ops[i];

		if (strcmp(o->node, node) != 0 || strcmp(o->check, check) != 0)
			continue;
		if (n < max)
			coords[n] = o->coord;
		if (certain != NULL && !o->certain)
			*certain = 0;
		n++;
	}
	if (n == 0 && certain != NULL)
		*certain = 0;
	return n;
}

void
coord_quorum_foreach(const struct coord_quorum *q,
    void (*fn)(const char *node, const char *check, void *arg), void *arg)
{
	for (size_t i = 0; i < q->nops; i++) {
		const struct quorum_opinion *o = &q->ops[i];
		int seen = 0;

		for (size_t j = 0; j < i && !seen; j++)
			seen = strcmp(q->ops[j].node, o->node) == 0 &&
			    strcmp(q->ops[j].check, o->check) == 0;
		if (!seen)
			fn(o->node, strcmp(o->check, COORD_QUORUM_NODE_CHECK) ==
			    0 ? NULL : o->check, arg);
	}
}

const char *
coord_quorum_reason_of(const struct coord_quorum *q, const char *node,
    const char *check)
{
	if (check == NULL)
		check = COORD_QUORUM_NODE_CHECK;
	for (size_t i = 0; i < q->nops; i++)
		if (strcmp(q->ops[i].node, node) == 0 &&
		    strcmp(q->ops[i].check, check) == 0)
			return q->ops[i].reason;
	return "";
}

/* ---- state ---- */

static void
quorum_set_ok(struct coord_quorum *q, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
quorum_set_ok(struct coord_quorum *q, int ok, const char *fmt, ...)
{
	char reason[sizeof(q->reason)];
	va_list ap;
	int changed;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	changed = ok != q->ok || strcmp(reason, q->reason) != 0;
	q->ok = ok;
	snprintf(q->reason, sizeof(q->reason), "%s", reason);
	if (!changed)
		return;
	if (ok)
		log_info("quorum: taking part in decisions");
	else
		log_warnx("quorum: none: %s", reason);
	if (q->h->quorum != NULL)
		q->h->quorum(ok, reason, q->arg);
}

/* Quorum needs the lease (our opinions count) and the watch (we see). */
static void
quorum_update(struct coord_quorum *q)
{
	if (q->lease == NULL)
		quorum_set_ok(q, 0, "%s", q->reason[0] != '\0' ? q->reason :
		    "no etcd lease yet");
	else if (!q->synced)
		quorum_set_ok(q, 0, "not watching the opinions in etcd");
	else
		quorum_set_ok(q, 1, "%s", "");
}

/* ---- publishing ---- */

static void quorum_resync(struct coord_quorum *q);

static void
quorum_publish_cb(const struct etcd_result *r, void *arg)
{
	struct coord_quorum *q = arg;

	if (r->status == 0) {
		q->published++;
		return;
	}
	q->publish_errors++;
	log_warnx("publishing an opinion to etcd: %s; all of them again "
	    "shortly", r->message);
	q->dirty = 1;
	quorum_retry(q);
}

/* Ours, local: into the table directly. */
static void
quorum_local_publish(struct coord_quorum *q,
    const struct coord_opinion_change *ch, const char *check)
{
	char *n, *k, *co, *re;

	if (!ch->failed) {
		quorum_unset(q, ch->node, check, q->c->conf->name);
		return;
	}
	n = strdup(ch->node);
	k = strdup(check);
	co = strdup(q->c->conf->name);
	re = strdup(ch->reason != NULL ? ch->reason : "");
	if (n == NULL || k == NULL || co == NULL || re == NULL) {
		free(n);
		free(k);
		free(co);
		free(re);
		return;
	}
	quorum_set(q, n, k, co, ch->certain, re);
}

static char *
quorum_opinion_value(const struct coord_opinion_change *ch)
{
	char *value;

	if (asprintf(&value, "%c %s", ch->certain ? 'c' : 'a',
	    ch->reason != NULL ? ch->reason : "") < 0)
		return NULL;
	return value;
}

static void
quorum_publish_one(const struct coord_opinion_change *ch, void *arg)
{
	struct coord_quorum *q = arg;
	const char *check = ch->check != NULL ? ch->check :
	    COORD_QUORUM_NODE_CHECK;
	char *key, *value;

	if (q->local) {
		quorum_local_publish(q, ch, check);
		return;
	}
	/* Without a lease the opinion would outlive us: it waits for one. */
	if (q->lease == NULL || q->dirty)
		return;
	if ((key = coord_quorum_key(q, "opinions", q->c->conf->name, ch->node,
	    check)) == NULL)
		return;
	if (!ch->failed)
		(void)etcd_delete(q->ec, key, 0, quorum_publish_cb, q, NULL);
	else if ((value = quorum_opinion_value(ch)) != NULL) {
		(void)etcd_put(q->ec, key, value, strlen(value), q->lease_id, 0,
		    quorum_publish_cb, q, NULL);
		free(value);
	}
	free(key);
}

/*
 * All our opinions at once, in one transaction: what we think now is put
 * under the current lease, and every key of ours the mirrored table still
 * shows that we no longer hold is deleted (etcd refuses a transaction
 * whose delete range overlaps one of its puts, so no prefix delete).
 * Used on a new lease and after a failed write.
 */
struct quorum_resync_ops {
	struct coord_quorum *q;
	struct etcd_op *ops;
	char **strs;     /* keys and values to free */
	size_t nstrs;
	size_t n;
	size_t max;
};

static int
quorum_resync_keep(struct quorum_resync_ops *r, char *s)
{
	if (s == NULL)
		return -1;
	r->strs[r->nstrs++] = s;
	return 0;
}

static void
quorum_resync_add(const struct coord_opinion_change *ch, void *arg)
{
	struct quorum_resync_ops *r = arg;
	char *key, *value;

	if (r->n >= r->max)
		return;
	key = coord_quorum_key(r->q, "opinions", r->q->c->conf->name, ch->node,
	    ch->check != NULL ? ch->check : COORD_QUORUM_NODE_CHECK);
	value = quorum_opinion_value(ch);
	if (key == NULL || value == NULL) {
		free(key);
		free(value);
		return;
	}
	(void)quorum_resync_keep(r, key);
	(void)quorum_resync_keep(r, value);
	r->ops[r->n++] = (struct etcd_op){ .type = ETCD_OP_PUT, .key = key,
	    .value = value, .value_len = strlen(value),
	    .lease = r->q->lease_id };
}

static void
quorum_resync_cb(const struct etcd_result *r, void *arg)
{
	struct coord_quorum *q = arg;

	q->resync_call = NULL;
	if (r->status != 0) {
		q->publish_errors++;
		log_warnx("publishing the opinions to etcd: %s", r->message);
		q->dirty = 1;
		quorum_retry(q);
		return;
	}
	q->published++;
}

static void
quorum_resync(struct coord_quorum *q)
{
	/* etcd allows 128 operations per transaction (--max-txn-ops). */
	enum { MAX_OPS = 128 };
	struct etcd_op ops[MAX_OPS];
	char *strs[3 * MAX_OPS];
	struct quorum_resync_ops r = { .q = q, .ops = ops, .strs = strs,
	    .max = MAX_OPS };
	const char *me = q->c->conf->name;
	size_t nputs;

	if (q->lease == NULL || q->resync_call != NULL)
		return;
	if (q->c->opinions != NULL)
		coord_opinions_foreach_failed(q->c->opinions,
		    quorum_resync_add, &r);
	nputs = r.n;
	for (size_t i = 0; i < q->nops && r.n < r.max; i++) {
		const struct quorum_opinion *o = &q->ops[i];
		char *key;
		int kept = 0;

		if (strcmp(o->coord, me) != 0)
			continue;
		if ((key = coord_quorum_key(q, "opinions", me, o->node,
		    o->check)) == NULL)
			continue;
		for (size_t j = 0; j < nputs && !kept; j++)
			kept = strcmp(ops[j].key, key) == 0;
		if (kept) {
			free(key);
			continue;
		}
		(void)quorum_resync_keep(&r, key);
		ops[r.n++] = (struct etcd_op){ .type = ETCD_OP_DELETE,
		    .key = key };
	}
	q->dirty = 0;
	if (r.n > 0 && etcd_txn(q->ec, NULL, 0, ops, r.n, NULL, 0,
	    quorum_resync_cb, q, &q->resync_call) < 0) {
		q->resync_call = NULL;
		q->dirty = 1;
		quorum_retry(q);
	}
	for (size_t i = 0; i < r.nstrs; i++)
		free(strs[i]);
}

void
coord_quorum_publish(struct coord_quorum *q,
    const struct coord_opinion_change *ch)
{
	quorum_publish_one(ch, q);
}

void
coord_quorum_withdraw_stale(struct coord_quorum *q)
{
	const char *me = q->c->conf->name;

	if (q->c->opinions == NULL)
		return;
	for (size_t i = 0; i < q->nops; i++) {
		const struct quorum_opinion *o = &q->ops[i];
		const char *check = strcmp(o->check, COORD_QUORUM_NODE_CHECK) ==
		    0 ? NULL : o->check;
		struct coord_opinion_change ch = { .node = o->node,
		    .check = check, .failed = 0, .reason = "forgotten" };

		if (strcmp(o->coord, me) != 0 ||
		    coord_opinions_failed(q->c->opinions, o->node, check))
			continue;
		quorum_publish_one(&ch, q);
		/* Local: that removed ops[i] at once; look at i again. */
		if (q->local)
			i--;
	}
}

/* ---- etcd: the lease our opinions live under ---- */

static void
quorum_lease_lost(struct etcd_lease *l, const char *reason, void *arg)
{
	struct coord_quorum *q = arg;

	(void)l;
	etcd_lease_free(q->lease);
	q->lease = NULL;
	snprintf(q->reason, sizeof(q->reason), "lost the etcd lease: %s",
	    reason);
	quorum_update(q);
	quorum_retry(q);
}

static const struct etcd_lease_handler quorum_lease_handler = {
	.lost = quorum_lease_lost,
};

static void
quorum_grant_cb(const struct etcd_result *r, void *arg)
{
	struct coord_quorum *q = arg;

	q->grant_call = NULL;
	if (r->status != 0) {
		snprintf(q->reason, sizeof(q->reason), "etcd: %s", r->message);
		quorum_update(q);
		quorum_retry(q);
		return;
	}
	q->lease_id = r->lease_id;
	q->lease = etcd_lease_keepalive(q->ec, r->lease_id, r->lease_ttl,
	    r->issued_ms, &quorum_lease_handler, q);
	if (q->lease == NULL) {
		log_warn("keeping the etcd lease alive");
		quorum_retry(q);
		return;
	}
	log_info("etcd lease %lld granted (%lld s)", (long long)r->lease_id,
	    (long long)r->lease_ttl);
	/* What we think now goes under the new lease. */
	quorum_resync(q);
	quorum_update(q);
}

/* ---- etcd: everyone's opinions ---- */

static void
quorum_watch_event(struct etcd_watch *w, const struct etcd_event *ev,
    void *arg)
{
	struct coord_quorum *q = arg;
	char *node, *check, *coord;

	(void)w;
	if (quorum_parse_key(q, ev->kv.key, ev->kv.key_len, &node, &check,
	    &coord) < 0)
		return;
	if (ev->type == ETCD_EVENT_DELETE) {
		quorum_unset(q, node, check, coord);
		free(node);
		free(check);
		free(coord);
		return;
	}
	{
		const char *v = (const char *)ev->kv.value;
		size_t len = ev->kv.value_len;
		char *reason = malloc(len + 1);

		if (reason == NULL) {
			free(node);
			free(check);
			free(coord);
			return;
		}
		if (len >= 2) {
			memcpy(reason, v + 2, len - 2);
			reason[len - 2] = '\0';
		} else {
			reason[0] = '\0';
		}
		quorum_set(q, node, check, coord, len > 0 && v[0] == 'c',
		    reason);
	}
}

static void quorum_range(struct coord_quorum *q);

static void
quorum_watch_ended(struct etcd_watch *w, int64_t compact_revision,
    const char *reason, void *arg)
{
	struct coord_quorum *q = arg;

	(void)w;
	log_warnx("watch on the opinions ended (%s%s); reading them again",
	    reason, compact_revision > 0 ? ", compacted" : "");
	etcd_watch_free(q->watch);
	q->watch = NULL;
	q->synced = 0;
	quorum_update(q);
	quorum_retry(q);
}

static void
quorum_watch_synced(struct etcd_watch *w, int64_t revision, void *arg)
{
	struct coord_quorum *q = arg;

	(void)w;
	(void)revision;
	q->synced = 1;
	quorum_update(q);
}

static const struct etcd_watch_handler quorum_watch_handler = {
	.event = quorum_watch_event,
	.ended = quorum_watch_ended,
	.synced = quorum_watch_synced,
};

static void
quorum_range_cb(const struct etcd_result *r, void *arg)
{
	struct coord_quorum *q = arg;
	char *key;

	q->range_call = NULL;
	if (r->status != 0) {
		snprintf(q->reason, sizeof(q->reason), "etcd: %s", r->message);
		quorum_update(q);
		quorum_retry(q);
		return;
	}
	quorum_clear_all(q);
	for (size_t i = 0; i < r->nkvs; i++) {
		struct etcd_event ev = { .type = ETCD_EVENT_PUT, .kv = r->kvs[i],
		    .revision = r->kvs[i].mod_revision };

		quorum_watch_event(NULL, &ev, q);
	}
	if ((key = coord_quorum_key(q, "opinions", NULL, NULL, NULL)) == NULL)
		return;
	q->watch = etcd_watch(q->ec, key, ETCD_PREFIX, r->revision + 1,
	    &quorum_watch_handler, q);
	free(key);
	if (q->watch == NULL) {
		log_warn("watching the opinions");
		quorum_retry(q);
	}
}

static void
quorum_range(struct coord_quorum *q)
{
	char *key;

	if ((key = coord_quorum_key(q, "opinions", NULL, NULL, NULL)) == NULL)
		return;
	if (etcd_range(q->ec, key, ETCD_PREFIX, quorum_range_cb, q,
	    &q->range_call) < 0)
		q->range_call = NULL;
	free(key);
}

/* Whatever is missing (lease, watch) is asked for again. */
static void
quorum_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct coord_quorum *q = arg;

	(void)fd;
	(void)what;
	if (q->lease == NULL && q->grant_call == NULL &&
	    etcd_lease_grant(q->ec, q->c->conf->lease_ttl_ms / 1000,
	    quorum_grant_cb, q, &q->grant_call) < 0)
		q->grant_call = NULL;
	if (q->watch == NULL && q->range_call == NULL)
		quorum_range(q);
	if (q->dirty)
		quorum_resync(q);
}

static void
quorum_retry(struct coord_quorum *q)
{
	struct timeval tv = { 0, QUORUM_RETRY_MS * 1000 };

	if (!evtimer_pending(q->retry_ev, NULL))
		evtimer_add(q->retry_ev, &tv);
}

/* ---- the leader ---- */

static void
quorum_leader_cb(struct coord_leader *cl, enum coord_leader_state state,
    const char *reason, void *arg)
{
	struct coord_quorum *q = arg;
	int leader = state == COORD_LEADER_LEADER;

	(void)cl;
	if (leader == q->leader && coord_leader_token(cl) == q->token)
		return;
	q->leader = leader;
	q->token = leader ? coord_leader_token(cl) : 0;
	if (q->h->leader != NULL)
		q->h->leader(leader, q->token, reason, q->arg);
}

/* ---- store local ---- */

/*
 * The token of a local coordinator: one more than the file says, written
 * back (atomically) before it is used, so a restart never reuses one.
 */
static int64_t
quorum_local_token(const char *path)
{
	char buf[32], tmp[4096];
	long long prev = 0;
	ssize_t n;
	int fd;

	if (path == NULL)
		return 1;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		if ((n = read(fd, buf, sizeof(buf) - 1)) > 0) {
			buf[n] = '\0';
			prev = strtoll(buf, NULL, 10);
		}
		close(fd);
	}
	if (prev < 0)
		prev = 0;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	n = snprintf(buf, sizeof(buf), "%lld\n", prev + 1);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) < 0 || write(fd, buf, (size_t)n) != n || fsync(fd) < 0 ||
	    close(fd) < 0 || rename(tmp, path) < 0) {
		log_warn("state file %s: cannot record fencing token %lld",
		    path, prev + 1);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return prev + 1;
}

static void
quorum_local_start_cb(evutil_socket_t fd, short what, void *arg)
{
	struct coord_quorum *q = arg;

	(void)fd;
	(void)what;
	if (q->h->quorum != NULL)
		q->h->quorum(1, q->reason, q->arg);
	if (q->h->leader != NULL)
		q->h->leader(1, q->token, "local store: always the leader",
		    q->arg);
}

/* ---- life ---- */

struct coord_quorum *
coord_quorum_new(struct coord *c, const struct coord_quorum_handler *h,
    void *arg)
{
	const struct coord_conf *conf = c->conf;
	struct coord_quorum *q;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->c = c;
	q->h = h;
	q->arg = arg;
	q->local = conf->store == COORD_STORE_LOCAL;
	if ((q->prefix = strdup(conf->etcd_prefix != NULL ? conf->etcd_prefix :
	    "/troika")) == NULL)
		goto fail;
	if (q->local) {
		if ((q->token = quorum_local_token(conf->state_file)) < 0)
			goto fail;
		q->ok = 1;
		q->leader = 1;
		snprintf(q->reason, sizeof(q->reason), "local store: one "
		    "coordinator, no quorum");
		log_warnx("store local: NO QUORUM: this coordinator decides "
		    "alone (fencing token %lld)", (long long)q->token);
		if ((q->start_ev = event_new(c->base, -1, 0,
		    quorum_local_start_cb, q)) == NULL)
			goto fail;
		event_active(q->start_ev, EV_TIMEOUT, 0);
		return q;
	}

	struct etcd_client_config ecfg;
	struct coord_leader_config lcfg;
	char *leader_key;

	etcd_client_config_default(&ecfg);
	ecfg.endpoints = (const char *const *)conf->etcd_endpoints;
	ecfg.nendpoints = conf->netcd_endpoints;
	ecfg.call_timeout_ms = conf->etcd_timeout_ms;
	snprintf(q->reason, sizeof(q->reason), "connecting to etcd");
	if ((q->retry_ev = evtimer_new(c->base, quorum_retry_cb, q)) == NULL ||
	    (q->ec = etcd_client_new(c->base, &ecfg)) == NULL)
		goto fail;
	if ((leader_key = coord_quorum_key(q, "leader", NULL, NULL,
	    NULL)) == NULL)
		goto fail;
	coord_leader_config_default(&lcfg);
	lcfg.key = leader_key;
	lcfg.value = conf->name;
	lcfg.ttl_s = conf->lease_ttl_ms / 1000;
	q->cl = coord_leader_new(q->ec, &lcfg, quorum_leader_cb, q);
	free(leader_key);
	if (q->cl == NULL)
		goto fail;
	/* Lease and opinions from the loop, at once. */
	event_active(q->retry_ev, EV_TIMEOUT, 0);
	return q;
fail:
	log_warn("store");
	coord_quorum_free(q);
	return NULL;
}

void
coord_quorum_free(struct coord_quorum *q)
{
	if (q == NULL)
		return;
	if (q->start_ev != NULL)
		event_free(q->start_ev);
	if (q->retry_ev != NULL)
		event_free(q->retry_ev);
	/* The leader revokes its own lease on the way out. */
	coord_leader_free(q->cl);
	etcd_watch_free(q->watch);
	etcd_lease_free(q->lease);
	if (q->range_call != NULL)
		etcd_call_cancel(q->range_call);
	if (q->resync_call != NULL)
		etcd_call_cancel(q->resync_call);
	if (q->grant_call != NULL)
		etcd_call_cancel(q->grant_call);
	etcd_client_free(q->ec);
	for (size_t i = 0; i < q->nops; i++)
		quorum_opinion_clear(&q->ops[i]);
	free(q->ops);
	free(q->prefix);
	free(q);
}

int
coord_quorum_ok(const struct coord_quorum *q)
{
	return q->ok;
}

const char *
coord_quorum_reason(const struct coord_quorum *q)
{
	return q->reason;
}

int
coord_quorum_is_leader(const struct coord_quorum *q)
{
	return q->leader && q->ok;
}

int64_t
coord_quorum_token(const struct coord_quorum *q)
{
	return q->leader ? q->token : 0;
}

const char *
coord_quorum_leader_name(const struct coord_quorum *q)
{
	const char *h;

	if (q->local)
		return q->c->conf->name;
	h = coord_leader_holder(q->cl);
	return h != NULL ? h : "";
}

int64_t
coord_quorum_leader_token(const struct coord_quorum *q)
{
	return q->local ? q->token : coord_leader_holder_token(q->cl);
}

struct etcd_client *
coord_quorum_etcd(struct coord_quorum *q)
{
	return q->ec;
}

struct coord_leader *
coord_quorum_leader(struct coord_quorum *q)
{
	return q->cl;
}

void
coord_quorum_write_metrics(const struct coord_quorum *q, struct evbuffer *out)
{
	const struct troika_label store[] = {
		{ "store", q->local ? "local" : "etcd" },
	};

	metrics_family(out, "troika_coord_quorum", "gauge",
	    "1 while this coordinator may take part in decisions (etcd "
	    "lease alive and opinions watched; always 1 with store local, "
	    "which has no quorum at all: see the store label).");
	metrics_sample(out, "troika_coord_quorum", store, 1, NULL, q->ok);
	metrics_family(out, "troika_coord_opinions_seen", "gauge",
	    "FAILED opinions of every coordinator, as kept in the store.");
	metrics_sample(out, "troika_coord_opinions_seen", NULL, 0, NULL,
	    (double)q->nops);
	if (q->local)
		return;
	metrics_family(out, "troika_coord_opinions_published_total",
	    "counter", "Opinion writes to etcd that succeeded.");
	metrics_sample(out, "troika_coord_opinions_published_total", NULL, 0,
	    NULL, (double)q->published);
	metrics_family(out, "troika_coord_opinion_publish_errors_total",
	    "counter", "Opinion writes to etcd that failed.");
	metrics_sample(out, "troika_coord_opinion_publish_errors_total", NULL,
	    0, NULL, (double)q->publish_errors);
	etcd_client_write_metrics(q->ec, out);
	coord_leader_write_metrics(q->cl, out);
}
