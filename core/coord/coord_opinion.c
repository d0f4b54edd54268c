/*
 * coord_opinion: this coordinator's own opinion of every (node, check) and
 * every node (coord_opinion.h says the rules).
 *
 * Results arrive for every check run of every agent (the benchmark sends
 * 100,000 a second), so the path of a result is kept cheap: the node by
 * binary search over a sorted array (with the last one remembered, since
 * results come in runs per stream), the check by an open-addressing hash
 * table per node, counters bumped, a time stamp stored. Nothing is
 * allocated for a result of a known check.
 *
 * Silence timers are lazy: a result only stores its time; the check's
 * timer, armed once, looks at that time when it fires and re-arms itself
 * for the rest. A steady flow of results thus costs no timer operations.
 */
#include "coord_opinion.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "coord_conf.h"
#include "coord_view.h" /* COORD_VIEW_MAX_NODES */
#include "log.h"
#include "metrics.h"
#include "parse.h"
#include "troika/v1/agent.pb-c.h"

/*
 * Checks a node may add beyond its Hello by sending results for them (an
 * agent reloaded and has not said Hello again): judged like the others,
 * but bounded, so that made-up names cannot grow the table without end.
 */
#define OPINION_MAX_EXTRA 1024
/* Counts stop here: "1000000 consecutive" says enough. */
#define OPINION_COUNT_MAX 1000000u
/* The message quoted in a reason is cut here. */
#define OPINION_MSG_MAX 256

struct opinion_node;

struct opinion_check {
	struct opinion_node *node;
	char *name;
	char *plugin;
	uint32_t hash;
	const struct coord_policy *pol;
	uint32_t crit;    /* consecutive CRITICAL */
	uint32_t certain; /* consecutive CRITICAL with certain evidence */
	int failed;
	int failed_certain;
	int in_hello;
	char *reason;        /* while failed */
	uint64_t changed_ns; /* wall clock of the last change */
	uint64_t last_ns;    /* monotonic: the last result, or the Hello */
	/* The agent's run counter and time, to know a re-sent result. */
	uint64_t last_run;
	uint64_t last_time;
	struct event *silence;
};

struct opinion_node {
	struct coord_opinions *o;
	char *name;
	int connected;
	int failed;
	char *reason; /* while failed */
	uint64_t changed_ns;
	struct event *down; /* the stream has been gone for node_down_after */
	struct opinion_check **checks;
	size_t nchecks;
	size_t capchecks;
	size_t nextra; /* checks not in the last Hello */
	/* Open addressing: index + 1 into checks; 0 is empty. */
	uint32_t *slots;
	size_t nslots; /* a power of two, at least twice nchecks */
};

struct coord_opinions {
	struct event_base *base;
	const struct coord_conf *conf;
	coord_opinion_cb cb;
	void *arg;
	struct opinion_node **nodes; /* sorted by name */
	size_t nnodes;
	struct opinion_node *last; /* the node of the last result */
	int withheld;
	size_t nopinions; /* nodes and checks */
	size_t nfailed;
	uint64_t changes_failed;
	uint64_t changes_ok;
	uint64_t ignored; /* results over the limits */
};

static uint64_t
opinion_clock(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t
opinion_mono_ns(void)
{
	return opinion_clock(CLOCK_MONOTONIC);
}

static uint64_t
opinion_wall_ns(void)
{
	return opinion_clock(CLOCK_REALTIME);
}

/* FNV-1a: short names, one pass, good enough spread for a table. */
static uint32_t
opinion_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

static void
opinion_timer_add(struct event *ev, int64_t ms)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	event_add(ev, &tv);
}

/* Report a change: counts, then the callback. */
static void
opinion_report(struct coord_opinions *o, const char *node,
    const struct opinion_check *chk, int failed, int certain,
    const char *reason, uint64_t now_ns)
{
	struct coord_opinion_change ch = {
	    .node = node,
	    .check = chk != NULL ? chk->name : NULL,
	    .plugin = chk != NULL ? chk->plugin : NULL,
	    .failed = failed,
	    .certain = certain,
	    .reason = reason,
	    .time_ns = now_ns,
	};

	if (failed) {
		o->nfailed++;
		o->changes_failed++;
	} else {
		o->nfailed--;
		o->changes_ok++;
	}
	if (o->cb != NULL)
		o->cb(&ch, o->arg);
}

/* The check's opinion is now failed (1) or OK (0), for reason. */
static void
opinion_check_set(
    struct opinion_check *chk, int failed, int certain, const char *reason)
{
	struct coord_opinions *o = chk->node->o;
	uint64_t now = opinion_wall_ns();
	char *kept = NULL;

	/* A kept reason is only for foreach_failed; without it, go on. */
	if (failed && (kept = strdup(reason)) == NULL)
		log_warnx("opinion of %s on %s: out of memory for its reason",
		    chk->name, chk->node->name);
	free(chk->reason);
	chk->reason = kept;
	chk->failed = failed;
	chk->failed_certain = failed ? certain : 0;
	chk->changed_ns = now;
	opinion_report(o, chk->node->name, chk, failed, certain, reason, now);
}

static void
opinion_node_set(
    struct opinion_node *n, int failed, int certain, const char *reason)
{
	uint64_t now = opinion_wall_ns();
	char *kept = NULL;

	if (failed && (kept = strdup(reason)) == NULL)
		log_warnx("opinion of node %s: out of memory for its reason",
		    n->name);
	free(n->reason);
	n->reason = kept;
	n->failed = failed;
	n->changed_ns = now;
	opinion_report(n->o, n->name, NULL, failed, certain, reason, now);
}

/* Arm the silence timer if it should run and does not. */
static void
opinion_check_arm(struct opinion_check *chk)
{
	if (chk->node->connected && !chk->node->o->withheld && !chk->failed &&
	    !event_pending(chk->silence, EV_TIMEOUT, NULL))
		opinion_timer_add(chk->silence, chk->pol->down_after_ms);
}

static void
opinion_silence_cb(evutil_socket_t fd, short what, void *arg)
{
	struct opinion_check *chk = arg;
	int64_t down = chk->pol->down_after_ms;
	int64_t quiet;
	char d[32], reason[64];

	(void)fd;
	(void)what;
	/* Withheld: the end of TILT arms every timer afresh. */
	if (!chk->node->connected || chk->node->o->withheld || chk->failed)
		return;
	quiet = (int64_t)((opinion_mono_ns() - chk->last_ns) / 1000000);
	if (quiet < down) {
		/* A result came since it was armed: wait for the rest. */
		opinion_timer_add(chk->silence, down - quiet);
		return;
	}
	snprintf(reason, sizeof(reason), "no result for %s",
	    format_duration_ms(down, d, sizeof(d)));
	chk->crit = 0;
	chk->certain = 0;
	opinion_check_set(chk, 1, 0, reason);
}

static void
opinion_down_cb(evutil_socket_t fd, short what, void *arg)
{
	struct opinion_node *n = arg;
	char d[32], reason[64];

	(void)fd;
	(void)what;
	if (n->connected || n->failed || n->o->withheld)
		return;
	snprintf(reason, sizeof(reason), "agent stream gone for %s",
	    format_duration_ms(n->o->conf->node_down_after_ms, d, sizeof(d)));
	opinion_node_set(n, 1, 0, reason);
}

static void
opinion_check_free(struct opinion_check *chk)
{
	if (chk == NULL)
		return;
	if (chk->silence != NULL)
		event_free(chk->silence);
	free(chk->name);
	free(chk->plugin);
	free(chk->reason);
	free(chk);
}

static struct opinion_check *
opinion_check_new(struct opinion_node *n, const char *name, const char *plugin)
{
	struct opinion_check *chk;

	if ((chk = calloc(1, sizeof(*chk))) == NULL)
		return NULL;
	chk->node = n;
	if ((chk->name = strdup(name)) == NULL ||
	    (chk->plugin = strdup(plugin != NULL ? plugin : "")) == NULL ||
	    (chk->silence = event_new(
	         n->o->base, -1, 0, opinion_silence_cb, chk)) == NULL) {
		opinion_check_free(chk);
		return NULL;
	}
	chk->hash = opinion_hash(name);
	chk->pol = coord_conf_policy(n->o->conf, name);
	chk->last_ns = opinion_mono_ns();
	return chk;
}

/* Put every check of n in slots (nslots, a power of two, all empty). */
static void
opinion_node_fill(struct opinion_node *n, uint32_t *slots, size_t nslots)
{
	for (size_t i = 0; i < n->nchecks; i++) {
		size_t s = n->checks[i]->hash & (nslots - 1);

		while (slots[s] != 0)
			s = (s + 1) & (nslots - 1);
		slots[s] = (uint32_t)(i + 1);
	}
}

/* Index all of n->checks in a new table of nslots. */
static int
opinion_node_index(struct opinion_node *n, size_t nslots)
{
	uint32_t *slots;

	if ((slots = calloc(nslots, sizeof(*slots))) == NULL)
		return -ENOMEM;
	opinion_node_fill(n, slots, nslots);
	free(n->slots);
	n->slots = slots;
	n->nslots = nslots;
	return 0;
}

static struct opinion_check *
opinion_node_find(const struct opinion_node *n, const char *name)
{
	uint32_t h;
	size_t s;

	if (n->nslots == 0)
		return NULL;
	h = opinion_hash(name);
	for (s = h & (n->nslots - 1); n->slots[s] != 0;
	     s = (s + 1) & (n->nslots - 1)) {
		struct opinion_check *chk = n->checks[n->slots[s] - 1];

		if (chk->hash == h && strcmp(chk->name, name) == 0)
			return chk;
	}
	return NULL;
}

/* Append a check (owned from now on) and index it. */
static int
opinion_node_append(struct opinion_node *n, struct opinion_check *chk)
{
	if (n->nchecks == n->capchecks) {
		size_t cap = n->capchecks ? n->capchecks * 2 : 8;
		struct opinion_check **v;

		if ((v = realloc(n->checks, cap * sizeof(*v))) == NULL)
			return -ENOMEM;
		n->checks = v;
		n->capchecks = cap;
	}
	n->checks[n->nchecks++] = chk;
	/* Keep the table at most half full. */
	if (2 * n->nchecks > n->nslots) {
		size_t nslots = n->nslots ? n->nslots : 16;

		while (2 * n->nchecks > nslots)
			nslots *= 2;
		if (opinion_node_index(n, nslots) < 0) {
			n->nchecks--;
			return -ENOMEM;
		}
	} else {
		size_t s = chk->hash & (n->nslots - 1);

		while (n->slots[s] != 0)
			s = (s + 1) & (n->nslots - 1);
		n->slots[s] = (uint32_t)n->nchecks;
	}
	n->o->nopinions++;
	return 0;
}

static void
opinion_node_free(struct opinion_node *n)
{
	if (n == NULL)
		return;
	for (size_t i = 0; i < n->nchecks; i++)
		opinion_check_free(n->checks[i]);
	free(n->checks);
	free(n->slots);
	if (n->down != NULL)
		event_free(n->down);
	free(n->reason);
	free(n->name);
	free(n);
}

/* Binary search: the node, or NULL with *ret_pos where it would go. */
static struct opinion_node *
opinion_find_node(
    const struct coord_opinions *o, const char *name, size_t *ret_pos)
{
	size_t lo = 0, hi = o->nnodes;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, o->nodes[mid]->name);

		if (c == 0)
			return o->nodes[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (ret_pos != NULL)
		*ret_pos = lo;
	return NULL;
}

/* The node of that name, created (connected) if new; NULL over limits. */
static struct opinion_node *
opinion_node_get(struct coord_opinions *o, const char *name)
{
	struct opinion_node *n, **v;
	size_t pos = 0;

	if (o->last != NULL && strcmp(o->last->name, name) == 0)
		return o->last;
	if ((n = opinion_find_node(o, name, &pos)) != NULL)
		return o->last = n;
	if (o->nnodes >= COORD_VIEW_MAX_NODES)
		return NULL;
	if ((v = realloc(o->nodes, (o->nnodes + 1) * sizeof(*v))) == NULL)
		return NULL;
	o->nodes = v;
	if ((n = calloc(1, sizeof(*n))) == NULL)
		return NULL;
	n->o = o;
	n->connected = 1;
	if ((n->name = strdup(name)) == NULL ||
	    (n->down = event_new(o->base, -1, 0, opinion_down_cb, n)) == NULL) {
		opinion_node_free(n);
		return NULL;
	}
	memmove(
	    &o->nodes[pos + 1], &o->nodes[pos], (o->nnodes - pos) * sizeof(*v));
	o->nodes[pos] = n;
	o->nnodes++;
	o->nopinions++;
	return o->last = n;
}

struct coord_opinions *
coord_opinions_new(struct event_base *base, const struct coord_conf *conf,
    coord_opinion_cb cb, void *arg)
{
	struct coord_opinions *o;

	if ((o = calloc(1, sizeof(*o))) == NULL)
		return NULL;
	o->base = base;
	o->conf = conf;
	o->cb = cb;
	o->arg = arg;
	return o;
}

void
coord_opinions_free(struct coord_opinions *o)
{
	if (o == NULL)
		return;
	for (size_t i = 0; i < o->nnodes; i++)
		opinion_node_free(o->nodes[i]);
	free(o->nodes);
	free(o);
}

/* "N consecutive CRITICAL results: msg" and the like. */
static void
opinion_reason(char *buf, size_t len, const char *what, const char *msg)
{
	if (msg != NULL && *msg != '\0')
		snprintf(buf, len, "%s: %.*s", what, OPINION_MSG_MAX, msg);
	else
		snprintf(buf, len, "%s", what);
}

void
coord_opinions_result(struct coord_opinions *o, const char *node,
    const struct Troika__V1__CheckResult *res)
{
	struct opinion_node *n;
	struct opinion_check *chk;
	char what[64], reason[OPINION_MSG_MAX + 80];

	if (res->check == NULL || res->check[0] == '\0' ||
	    (n = opinion_node_get(o, node)) == NULL) {
		o->ignored++;
		return;
	}
	if ((chk = opinion_node_find(n, res->check)) == NULL) {
		/* Not in the Hello: the agent may have reloaded. */
		if (n->nextra >= OPINION_MAX_EXTRA ||
		    (chk = opinion_check_new(n, res->check, res->plugin)) ==
		        NULL) {
			o->ignored++;
			return;
		}
		if (opinion_node_append(n, chk) < 0) {
			opinion_check_free(chk);
			o->ignored++;
			return;
		}
		n->nextra++;
	}
	chk->last_ns = opinion_mono_ns();
	/* The same run again (re-sent after a reconnect) is no news. */
	if (res->run != 0 && res->run == chk->last_run &&
	    res->time_unix_nano == chk->last_time)
		return;
	chk->last_run = res->run;
	chk->last_time = res->time_unix_nano;
	opinion_check_arm(chk);
	/* TILT: results neither count nor clear; the end starts afresh. */
	if (o->withheld)
		return;
	switch (res->status) {
	case TROIKA__V1__CHECK_STATUS__CHECK_STATUS_OK:
		chk->crit = 0;
		chk->certain = 0;
		if (chk->failed) {
			opinion_reason(
			    reason, sizeof(reason), "OK", res->message);
			opinion_check_set(chk, 0, 0, reason);
			opinion_check_arm(chk);
		}
		break;
	case TROIKA__V1__CHECK_STATUS__CHECK_STATUS_CRITICAL:
		if (chk->crit < OPINION_COUNT_MAX)
			chk->crit++;
		if (res->evidence == TROIKA__V1__EVIDENCE__EVIDENCE_CERTAIN) {
			if (chk->certain < OPINION_COUNT_MAX)
				chk->certain++;
		} else {
			chk->certain = 0;
		}
		if (chk->failed)
			break;
		if (chk->certain >= (uint32_t)chk->pol->certain_after) {
			snprintf(what, sizeof(what), "%u certain CRITICAL %s",
			    chk->certain,
			    chk->certain == 1 ? "result" : "results");
			opinion_reason(
			    reason, sizeof(reason), what, res->message);
			opinion_check_set(chk, 1, 1, reason);
		} else if (chk->crit >= (uint32_t)chk->pol->fail_after) {
			snprintf(what, sizeof(what),
			    "%u consecutive CRITICAL %s", chk->crit,
			    chk->crit == 1 ? "result" : "results");
			opinion_reason(
			    reason, sizeof(reason), what, res->message);
			opinion_check_set(chk, 1, 0, reason);
		}
		break;
	default:
		/* WARNING, UNKNOWN (timeouts too): neither confirm nor clear.
		 */
		break;
	}
}

void
coord_opinions_hello(struct coord_opinions *o, const char *node,
    const char *const *checks, const char *const *plugins, size_t nchecks)
{
	struct opinion_node *n;
	size_t kept = 0;

	if ((n = opinion_node_get(o, node)) == NULL) {
		log_warnx("opinions: node %s not kept (limit or memory)", node);
		return;
	}
	n->connected = 1;
	event_del(n->down);
	for (size_t i = 0; i < n->nchecks; i++)
		n->checks[i]->in_hello = 0;
	for (size_t i = 0; i < nchecks; i++) {
		struct opinion_check *chk = opinion_node_find(n, checks[i]);

		if (chk == NULL) {
			chk = opinion_check_new(
			    n, checks[i], plugins != NULL ? plugins[i] : NULL);
			if (chk == NULL || opinion_node_append(n, chk) < 0) {
				opinion_check_free(chk);
				log_warnx("opinions: check %s of %s not kept "
				          "(out of memory)",
				    checks[i], node);
				continue;
			}
		} else if (plugins != NULL && plugins[i] != NULL &&
		    strcmp(chk->plugin, plugins[i]) != 0) {
			char *p = strdup(plugins[i]);

			if (p != NULL) {
				free(chk->plugin);
				chk->plugin = p;
			}
		}
		chk->in_hello = 1;
	}
	/* Checks the agent no longer has are forgotten, silently. */
	for (size_t i = 0; i < n->nchecks; i++) {
		struct opinion_check *chk = n->checks[i];

		if (!chk->in_hello) {
			if (chk->failed)
				o->nfailed--;
			o->nopinions--;
			opinion_check_free(chk);
			continue;
		}
		n->checks[kept++] = chk;
	}
	if (kept != n->nchecks) {
		/* Fewer checks: the table they had is big enough. */
		n->nchecks = kept;
		memset(n->slots, 0, n->nslots * sizeof(*n->slots));
		opinion_node_fill(n, n->slots, n->nslots);
	}
	n->nextra = 0;
	/* The stream is up: silence is measured from now. */
	for (size_t i = 0; i < n->nchecks; i++) {
		n->checks[i]->last_ns = opinion_mono_ns();
		opinion_check_arm(n->checks[i]);
	}
	if (n->failed && !o->withheld)
		opinion_node_set(n, 0, 1, "agent back");
}

void
coord_opinions_disconnected(struct coord_opinions *o, const char *node)
{
	struct opinion_node *n;

	if ((n = opinion_find_node(o, node, NULL)) == NULL || !n->connected)
		return;
	n->connected = 0;
	/* The node's opinion covers its checks while it is gone. */
	for (size_t i = 0; i < n->nchecks; i++)
		event_del(n->checks[i]->silence);
	if (!n->failed && !o->withheld)
		opinion_timer_add(n->down, o->conf->node_down_after_ms);
}

void
coord_opinions_withhold(struct coord_opinions *o, int on)
{
	on = on != 0;
	if (o->withheld == on)
		return;
	o->withheld = on;
	if (on)
		return;
	/*
	 * The end of TILT: nothing measured during it is trusted. Counts
	 * start again, silence and absence are timed from now, and a node
	 * whose agent came back meanwhile is OK again.
	 */
	for (size_t i = 0; i < o->nnodes; i++) {
		struct opinion_node *n = o->nodes[i];
		uint64_t now = opinion_mono_ns();

		for (size_t j = 0; j < n->nchecks; j++) {
			struct opinion_check *chk = n->checks[j];

			chk->crit = 0;
			chk->certain = 0;
			chk->last_ns = now;
			event_del(chk->silence);
			opinion_check_arm(chk);
		}
		if (n->connected && n->failed) {
			opinion_node_set(n, 0, 1, "agent back");
		} else if (!n->connected && !n->failed) {
			event_del(n->down);
			opinion_timer_add(n->down, o->conf->node_down_after_ms);
		}
	}
}

int
coord_opinions_failed(
    const struct coord_opinions *o, const char *node, const char *check)
{
	const struct opinion_node *n;
	const struct opinion_check *chk;

	if ((n = opinion_find_node(o, node, NULL)) == NULL)
		return 0;
	if (check == NULL)
		return n->failed;
	return (chk = opinion_node_find(n, check)) != NULL && chk->failed;
}

void
coord_opinions_foreach_failed(
    const struct coord_opinions *o, coord_opinion_cb cb, void *arg)
{
	for (size_t i = 0; i < o->nnodes; i++) {
		const struct opinion_node *n = o->nodes[i];

		if (n->failed) {
			struct coord_opinion_change ch = {
			    .node = n->name,
			    .failed = 1,
			    .reason = n->reason != NULL ? n->reason : "",
			    .time_ns = n->changed_ns,
			};

			cb(&ch, arg);
		}
		for (size_t j = 0; j < n->nchecks; j++) {
			const struct opinion_check *chk = n->checks[j];
			struct coord_opinion_change ch = {
			    .node = n->name,
			    .check = chk->name,
			    .plugin = chk->plugin,
			    .failed = 1,
			    .certain = chk->failed_certain,
			    .reason = chk->reason != NULL ? chk->reason : "",
			    .time_ns = chk->changed_ns,
			};

			if (chk->failed)
				cb(&ch, arg);
		}
	}
}

void
coord_opinions_write_metrics(
    const struct coord_opinions *o, struct evbuffer *out)
{
	struct troika_label l;

	metrics_family(out, "troika_coord_opinions", "gauge",
	    "This coordinator's opinions of nodes and checks now, by state.");
	l.name = "state";
	l.value = "failed";
	metrics_sample(
	    out, "troika_coord_opinions", &l, 1, NULL, (double)o->nfailed);
	l.value = "ok";
	metrics_sample(out, "troika_coord_opinions", &l, 1, NULL,
	    (double)(o->nopinions - o->nfailed));
	metrics_family(out, "troika_coord_opinion_changes_total", "counter",
	    "Changes of this coordinator's opinions, by the new state.");
	l.name = "to";
	l.value = "failed";
	metrics_sample(out, "troika_coord_opinion_changes_total", &l, 1, NULL,
	    (double)o->changes_failed);
	l.value = "ok";
	metrics_sample(out, "troika_coord_opinion_changes_total", &l, 1, NULL,
	    (double)o->changes_ok);
	metrics_family(out, "troika_coord_opinions_withheld", "gauge",
	    "1 while opinions are withheld (TILT).");
	metrics_sample(out, "troika_coord_opinions_withheld", NULL, 0, NULL,
	    o->withheld ? 1 : 0);
	metrics_family(out, "troika_coord_opinion_results_ignored_total",
	    "counter",
	    "Results not judged: no check name, over 1024 nodes, or over 1024 "
	    "checks a node had not announced in its Hello.");
	metrics_sample(out, "troika_coord_opinion_results_ignored_total", NULL,
	    0, NULL, (double)o->ignored);
}
