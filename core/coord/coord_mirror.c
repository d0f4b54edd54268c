/*
 * coord_mirror: an etcd prefix in memory (coord_mirror.h). The entries are
 * a sorted array: prefixes mirrored here hold few keys (action records
 * and maintenance), and a sorted array keeps listing them in key order
 * free.
 */
#include "coord_mirror.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "etcd_client.h"
#include "log.h"

#define MIRROR_RETRY_MS 500

struct coord_mirror {
	struct etcd_client *ec;
	char *prefix;
	const struct coord_mirror_handler *h;
	void *arg;
	struct coord_mirror_entry *entries;
	size_t n;
	struct etcd_call *range_call;
	struct etcd_watch *watch;
	struct event *retry_ev;
	int synced;
};

static void mirror_read(struct coord_mirror *m);

/* Index of key, or where it would go (*found 0). */
static size_t
mirror_search(const struct coord_mirror *m, const char *key, int *found)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = strcmp(m->entries[mid].key, key);

		if (r == 0) {
			*found = 1;
			return mid;
		}
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return lo;
}

static void
mirror_entry_clear(struct coord_mirror_entry *e)
{
	free(e->key);
	free(e->value);
}

static void
mirror_put(struct coord_mirror *m, const struct etcd_kv *kv)
{
	char *key = malloc(kv->key_len + 1);
	uint8_t *value = malloc(kv->value_len > 0 ? kv->value_len : 1);
	struct coord_mirror_entry *e, *p;
	size_t i;
	int found;

	if (key == NULL || value == NULL) {
		free(key);
		free(value);
		log_warnx("mirror %s: out of memory", m->prefix);
		return;
	}
	memcpy(key, kv->key, kv->key_len);
	key[kv->key_len] = '\0';
	memcpy(value, kv->value, kv->value_len);
	i = mirror_search(m, key, &found);
	if (!found) {
		if ((p = realloc(m->entries, (m->n + 1) * sizeof(*p))) == NULL) {
			free(key);
			free(value);
			return;
		}
		m->entries = p;
		memmove(&p[i + 1], &p[i], (m->n - i) * sizeof(*p));
		m->n++;
		e = &p[i];
	} else {
		e = &m->entries[i];
		mirror_entry_clear(e);
	}
	*e = (struct coord_mirror_entry){ .key = key, .value = value,
	    .len = kv->value_len, .mod_revision = kv->mod_revision };
	m->h->changed(e->key, e->value, e->len, m->arg);
}

static void
mirror_delete(struct coord_mirror *m, const uint8_t *k, size_t klen)
{
	char *key = malloc(klen + 1);
	struct coord_mirror_entry gone;
	size_t i;
	int found;

	if (key == NULL)
		return;
	memcpy(key, k, klen);
	key[klen] = '\0';
	i = mirror_search(m, key, &found);
	if (found) {
		gone = m->entries[i];
		memmove(&m->entries[i], &m->entries[i + 1],
		    (m->n - i - 1) * sizeof(*m->entries));
		m->n--;
		m->h->changed(key, NULL, 0, m->arg);
		mirror_entry_clear(&gone);
	}
	free(key);
}

static void
mirror_clear(struct coord_mirror *m)
{
	for (size_t i = 0; i < m->n; i++)
		mirror_entry_clear(&m->entries[i]);
	free(m->entries);
	m->entries = NULL;
	m->n = 0;
}

static void
mirror_set_synced(struct coord_mirror *m, int synced)
{
	if (m->synced == synced)
		return;
	m->synced = synced;
	if (m->h->synced != NULL)
		m->h->synced(synced, m->arg);
}

static void
mirror_event(struct etcd_watch *w, const struct etcd_event *ev, void *arg)
{
	struct coord_mirror *m = arg;

	(void)w;
	if (ev->type == ETCD_EVENT_DELETE)
		mirror_delete(m, ev->kv.key, ev->kv.key_len);
	else
		mirror_put(m, &ev->kv);
}

static void
mirror_retry(struct coord_mirror *m)
{
	struct timeval tv = { 0, MIRROR_RETRY_MS * 1000 };

	if (!evtimer_pending(m->retry_ev, NULL))
		evtimer_add(m->retry_ev, &tv);
}

static void
mirror_ended(struct etcd_watch *w, int64_t compact_revision,
    const char *reason, void *arg)
{
	struct coord_mirror *m = arg;

	(void)w;
	(void)compact_revision;
	log_warnx("watch on %s ended (%s); reading it again", m->prefix,
	    reason);
	etcd_watch_free(m->watch);
	m->watch = NULL;
	mirror_set_synced(m, 0);
	mirror_retry(m);
}

static const struct etcd_watch_handler mirror_watch_handler = {
	.event = mirror_event,
	.ended = mirror_ended,
};

static void
mirror_range_cb(const struct etcd_result *r, void *arg)
{
	struct coord_mirror *m = arg;

	m->range_call = NULL;
	if (r->status != 0) {
		log_debug("reading %s: %s", m->prefix, r->message);
		mirror_retry(m);
		return;
	}
	if (m->h->reset != NULL)
		m->h->reset(m->arg);
	mirror_clear(m);
	for (size_t i = 0; i < r->nkvs; i++)
		mirror_put(m, &r->kvs[i]);
	m->watch = etcd_watch(m->ec, m->prefix, ETCD_PREFIX, r->revision + 1,
	    &mirror_watch_handler, m);
	if (m->watch == NULL) {
		log_warn("watching %s", m->prefix);
		mirror_retry(m);
		return;
	}
	mirror_set_synced(m, 1);
}

static void
mirror_read(struct coord_mirror *m)
{
	if (m->range_call != NULL || m->watch != NULL)
		return;
	if (etcd_range(m->ec, m->prefix, ETCD_PREFIX, mirror_range_cb, m,
	    &m->range_call) < 0) {
		m->range_call = NULL;
		mirror_retry(m);
	}
}

static void
mirror_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	mirror_read(arg);
}

struct coord_mirror *
coord_mirror_new(struct etcd_client *ec, const char *prefix,
    const struct coord_mirror_handler *h, void *arg)
{
	struct coord_mirror *m;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	m->ec = ec;
	m->h = h;
	m->arg = arg;
	if ((m->prefix = strdup(prefix)) == NULL ||
	    (m->retry_ev = evtimer_new(etcd_client_base(ec), mirror_retry_cb,
	    m)) == NULL) {
		coord_mirror_free(m);
		return NULL;
	}
	mirror_read(m);
	return m;
}

void
coord_mirror_free(struct coord_mirror *m)
{
	if (m == NULL)
		return;
	if (m->range_call != NULL)
		etcd_call_cancel(m->range_call);
	etcd_watch_free(m->watch);
	if (m->retry_ev != NULL)
		event_free(m->retry_ev);
	mirror_clear(m);
	free(m->prefix);
	free(m);
}

const struct coord_mirror_entry *
coord_mirror_entries(const struct coord_mirror *m, size_t *ret_n)
{
	*ret_n = m->n;
	return m->entries;
}

int
coord_mirror_synced(const struct coord_mirror *m)
{
	return m->synced;
}
