/*
 * coord_history: recovery events in etcd (coord_history.h). Writes are
 * fire-and-forget: a lost write loses one history line, never a decision
 * (the records of actions are written, guarded, by coord_recovery.c).
 */
#include "coord_history.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord.h"
#include "coord_conf.h"
#include "coord_events.h"
#include "coord_mirror.h"
#include "coord_quorum.h"
#include "etcd_client.h"
#include "log.h"
#include "troika/v1/admin.pb-c.h"

struct history_event {
	char *key;
	Troika__V1__Event *pb;
};

struct coord_history {
	struct coord *c;
	struct coord_mirror *mirror;
	char *prefix;        /* <prefix>/events/ */
	char *mine;          /* <prefix>/events/<me>/ */
	struct history_event *evs;
	size_t nevs;
	uint64_t write_errors;
};

static const char *const history_kinds[] = {
	"opinion", "verdict", "action_started", "action_accepted",
	"action_done", "action_locked", "action_acknowledged",
	"recovery_held", "recovery_escalated", "leader_changed",
	"quorum_lost", "quorum_regained", "maintenance_on",
	"maintenance_off", "tilt", "tilt_ended", "node_lost",
	"node_returned", "cluster_held", "primary_changed", NULL,
};

int
coord_history_wants(const char *kind)
{
	for (size_t i = 0; history_kinds[i] != NULL; i++)
		if (strcmp(history_kinds[i], kind) == 0)
			return 1;
	return 0;
}

static void
history_remove(struct coord_history *h, const char *key)
{
	for (size_t i = 0; i < h->nevs; i++) {
		if (strcmp(h->evs[i].key, key) != 0)
			continue;
		free(h->evs[i].key);
		troika__v1__event__free_unpacked(h->evs[i].pb, NULL);
		h->evs[i] = h->evs[--h->nevs];
		return;
	}
}

static void
history_changed(const char *key, const uint8_t *value, size_t len, void *arg)
{
	struct coord_history *h = arg;
	struct history_event *p;
	Troika__V1__Event *pb;
	char *k;

	history_remove(h, key);
	if (value == NULL)
		return;
	if ((pb = troika__v1__event__unpack(NULL, len, value)) == NULL)
		return;
	if ((k = strdup(key)) == NULL ||
	    (p = realloc(h->evs, (h->nevs + 1) * sizeof(*p))) == NULL) {
		free(k);
		troika__v1__event__free_unpacked(pb, NULL);
		return;
	}
	h->evs = p;
	p[h->nevs++] = (struct history_event){ .key = k, .pb = pb };
}

static void
history_reset(void *arg)
{
	struct coord_history *h = arg;

	while (h->nevs > 0)
		history_remove(h, h->evs[0].key);
}

static const struct coord_mirror_handler history_handler = {
	.changed = history_changed,
	.reset = history_reset,
};

struct coord_history *
coord_history_new(struct coord *c)
{
	struct etcd_client *ec = coord_quorum_etcd(c->quorum);
	struct coord_history *h;
	char *me;

	if (ec == NULL)
		return NULL;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	h->c = c;
	me = coord_quorum_key(c->quorum, "events", c->conf->name, NULL, NULL);
	h->prefix = coord_quorum_key(c->quorum, "events/", NULL, NULL, NULL);
	if (me == NULL || h->prefix == NULL ||
	    asprintf(&h->mine, "%s/", me) < 0) {
		h->mine = NULL;
		free(me);
		coord_history_free(h);
		return NULL;
	}
	free(me);
	if ((h->mirror = coord_mirror_new(ec, h->prefix, &history_handler,
	    h)) == NULL) {
		coord_history_free(h);
		return NULL;
	}
	return h;
}

void
coord_history_free(struct coord_history *h)
{
	if (h == NULL)
		return;
	coord_mirror_free(h->mirror);
	history_reset(h);
	free(h->evs);
	free(h->prefix);
	free(h->mine);
	free(h);
}

static void
history_put_cb(const struct etcd_result *r, void *arg)
{
	struct coord_history *h = arg;

	if (r->status != 0 && h->write_errors++ % 100 == 0)
		log_warnx("keeping an event in etcd: %s (one line in 100 "
		    "logged)", r->message);
}

void
coord_history_record(struct coord_history *h, uint64_t seq,
    const uint8_t *packed, size_t len)
{
	struct etcd_client *ec = coord_quorum_etcd(h->c->quorum);
	size_t mlen = strlen(h->mine), n = 0;
	const char *oldest = NULL;
	char key[512];

	/* The time first: keys sort in time order across our restarts. */
	if (snprintf(key, sizeof(key), "%s%020llu-%llu", h->mine,
	    (unsigned long long)coord_now_ns(), (unsigned long long)seq) >=
	    (int)sizeof(key))
		return;
	(void)etcd_put(ec, key, packed, len, 0, 0, history_put_cb, h, NULL);
	/* Bounded: beyond COORD_HISTORY_KEEP of ours, our oldest goes. */
	for (size_t i = 0; i < h->nevs; i++) {
		if (strncmp(h->evs[i].key, h->mine, mlen) != 0)
			continue;
		n++;
		if (oldest == NULL || strcmp(h->evs[i].key, oldest) < 0)
			oldest = h->evs[i].key;
	}
	if (n >= COORD_HISTORY_KEEP && oldest != NULL)
		(void)etcd_delete(ec, oldest, 0, history_put_cb, h, NULL);
}

static int
history_newest_first(const void *a, const void *b)
{
	const Troika__V1__Event *x = *(const Troika__V1__Event *const *)a;
	const Troika__V1__Event *y = *(const Troika__V1__Event *const *)b;

	return x->time_unix_nano > y->time_unix_nano ? -1 :
	    x->time_unix_nano < y->time_unix_nano;
}

size_t
coord_history_list(const struct coord_history *h, const char *const *nodes,
    size_t nnodes, const char *const *kinds, size_t nkinds,
    const Troika__V1__Event **out, size_t max)
{
	const Troika__V1__Event **all;
	size_t n = 0;

	if (h->nevs == 0 || (all = calloc(h->nevs, sizeof(*all))) == NULL)
		return 0;
	for (size_t i = 0; i < h->nevs; i++) {
		const Troika__V1__Event *e = h->evs[i].pb;

		if (coord_events_match(nodes, nnodes, e->node) &&
		    coord_events_match(kinds, nkinds, e->kind))
			all[n++] = e;
	}
	qsort(all, n, sizeof(*all), history_newest_first);
	if (n > max)
		n = max;
	memcpy(out, all, n * sizeof(*out));
	free(all);
	return n;
}
