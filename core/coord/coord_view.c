/*
 * The coordinator's view of every node (see coord_view.h). Nodes are few
 * (a cluster has three to a few dozen), so they sit in a sorted array;
 * samples are many, so each node keeps them in a hash table keyed by name
 * and labels, grown as it fills.
 */
#include "coord_view.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "metrics.h"

#define COORD_VIEW_MIN_BUCKETS 64

struct coord_view *
coord_view_new(void)
{
	return calloc(1, sizeof(struct coord_view));
}

static void
coord_sample_free(struct coord_sample *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < 2 * s->nlabels; i++)
		free(s->labels[i]);
	free(s->labels);
	free(s->key);
	free(s->name);
	free(s->help);
	free(s);
}

static void
coord_node_clear_samples(struct coord_node *n)
{
	for (size_t b = 0; b < n->nbuckets; b++) {
		struct coord_sample *s = n->buckets[b], *next;

		for (; s != NULL; s = next) {
			next = s->next;
			coord_sample_free(s);
		}
	}
	free(n->buckets);
	n->buckets = NULL;
	n->nbuckets = 0;
	n->nsamples = 0;
}

static void
coord_checks_free(struct coord_check *checks, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(checks[i].name);
		free(checks[i].plugin);
		if (checks[i].last != NULL)
			troika__v1__check_result__free_unpacked(
			    checks[i].last, NULL);
	}
	free(checks);
}

static void
coord_node_free(struct coord_node *n)
{
	if (n == NULL)
		return;
	coord_checks_free(n->checks, n->nchecks);
	coord_node_clear_samples(n);
	if (n->hello != NULL)
		troika__v1__hello__free_unpacked(n->hello, NULL);
	free(n->name);
	free(n);
}

void
coord_view_free(struct coord_view *v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < v->nnodes; i++)
		coord_node_free(v->nodes[i]);
	free(v->nodes);
	free(v);
}

/* Index of name, or where it would go (*found 0). */
static size_t
coord_view_search(const struct coord_view *v, const char *name, int *found)
{
	size_t lo = 0, hi = v->nnodes;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(v->nodes[mid]->name, name);

		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return lo;
}

struct coord_node *
coord_view_node(const struct coord_view *v, const char *name)
{
	int found;
	size_t i = coord_view_search(v, name, &found);

	return found ? v->nodes[i] : NULL;
}

/* The node's current stream is stream; -ENOENT or -ESTALE otherwise. */
static int
coord_view_owned(const struct coord_view *v, uint64_t stream, const char *name,
    struct coord_node **ret)
{
	struct coord_node *n = coord_view_node(v, name);

	if (n == NULL)
		return -ENOENT;
	if (n->stream != stream)
		return -ESTALE;
	*ret = n;
	return 0;
}

/* The checks of a Hello, keeping the results of those already known. */
static int
coord_view_checks(struct coord_node *n, const Troika__V1__Hello *h,
    struct coord_check **ret, size_t *ret_n)
{
	struct coord_check *cs;

	/* Refuse before taking anything from the node. */
	for (size_t i = 0; i < h->n_checks; i++) {
		if (h->checks[i]->name[0] == '\0')
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (strcmp(h->checks[j]->name, h->checks[i]->name) == 0)
				return -EINVAL;
	}
	if ((cs = calloc(h->n_checks + 1, sizeof(*cs))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < h->n_checks; i++) {
		if ((cs[i].name = strdup(h->checks[i]->name)) == NULL ||
		    (cs[i].plugin = strdup(h->checks[i]->plugin)) == NULL) {
			coord_checks_free(cs, i + 1);
			return -ENOMEM;
		}
	}
	/* Nothing can fail from here: move the known results over. */
	for (size_t i = 0; i < h->n_checks; i++) {
		for (size_t j = 0; j < n->nchecks; j++) {
			if (n->checks[j].last != NULL &&
			    strcmp(n->checks[j].name, cs[i].name) == 0) {
				cs[i].last = n->checks[j].last;
				cs[i].last_ns = n->checks[j].last_ns;
				n->checks[j].last = NULL;
				break;
			}
		}
	}
	*ret = cs;
	*ret_n = h->n_checks;
	return 0;
}

int
coord_view_hello(struct coord_view *v, uint64_t stream,
    Troika__V1__Hello *hello, uint64_t now_ns)
{
	struct coord_node *n;
	struct coord_check *cs;
	size_t ncs, i;
	int found, r, fresh = 0;

	if (hello->node[0] == '\0')
		return -EINVAL;
	i = coord_view_search(v, hello->node, &found);
	if (found) {
		n = v->nodes[i];
	} else {
		struct coord_node **nn;

		if (v->nnodes >= COORD_VIEW_MAX_NODES)
			return -ENOSPC;
		if ((n = calloc(1, sizeof(*n))) == NULL ||
		    (n->name = strdup(hello->node)) == NULL ||
		    (nn = realloc(v->nodes, (v->nnodes + 1) * sizeof(*nn))) ==
		        NULL) {
			coord_node_free(n);
			return -ENOMEM;
		}
		v->nodes = nn;
		fresh = 1;
	}
	if ((r = coord_view_checks(n, hello, &cs, &ncs)) < 0) {
		if (fresh)
			coord_node_free(n);
		return r;
	}
	if (fresh) {
		memmove(&v->nodes[i + 1], &v->nodes[i],
		    (v->nnodes - i) * sizeof(*v->nodes));
		v->nodes[i] = n;
		v->nnodes++;
	}
	coord_checks_free(n->checks, n->nchecks);
	n->checks = cs;
	n->nchecks = ncs;
	/* Another agent process: its counters and gauges started again. */
	if (n->hello != NULL &&
	    n->hello->start_time_unix_nano != hello->start_time_unix_nano)
		coord_node_clear_samples(n);
	if (n->hello != NULL)
		troika__v1__hello__free_unpacked(n->hello, NULL);
	n->hello = hello;
	if (n->stream != stream)
		n->connected_ns = now_ns;
	n->stream = stream;
	n->disconnected_ns = 0;
	n->last_seen_ns = now_ns;
	return 0;
}

int
coord_view_result(struct coord_view *v, uint64_t stream, const char *node,
    Troika__V1__CheckResult *res, uint64_t now_ns)
{
	struct coord_node *n;
	struct coord_check *c = NULL;
	int r;

	if ((r = coord_view_owned(v, stream, node, &n)) < 0)
		return r;
	if (res->check[0] == '\0')
		return -EINVAL;
	for (size_t i = 0; i < n->nchecks; i++)
		if (strcmp(n->checks[i].name, res->check) == 0)
			c = &n->checks[i];
	if (c == NULL) {
		/* Not in the Hello: keep it anyway, after the others. */
		struct coord_check *cs;

		cs = realloc(n->checks, (n->nchecks + 1) * sizeof(*cs));
		if (cs == NULL)
			return -ENOMEM;
		n->checks = cs;
		c = &cs[n->nchecks];
		memset(c, 0, sizeof(*c));
		if ((c->name = strdup(res->check)) == NULL ||
		    (c->plugin = strdup(res->plugin)) == NULL) {
			free(c->name);
			return -ENOMEM;
		}
		n->nchecks++;
	}
	if (c->last != NULL)
		troika__v1__check_result__free_unpacked(c->last, NULL);
	c->last = res;
	c->last_ns = now_ns;
	n->last_seen_ns = now_ns;
	return 0;
}

static uint64_t
coord_view_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

/*
 * The identity of a sample: name, then each label as name=value, with
 * separators no valid name contains and values escaped as in the
 * exposition, so that two different samples never share a key.
 */
static char *
coord_view_key(const Troika__V1__Sample *s)
{
	struct evbuffer *b = evbuffer_new();
	char *key = NULL;
	size_t len;

	if (b == NULL)
		return NULL;
	evbuffer_add_printf(b, "%s{", s->name);
	for (size_t i = 0; i < s->n_labels; i++) {
		evbuffer_add_printf(b, "%s=\"", s->labels[i]->name);
		metrics_escape_label_value(b, s->labels[i]->value);
		evbuffer_add(b, "\",", 2);
	}
	len = evbuffer_get_length(b);
	if ((key = malloc(len + 1)) != NULL) {
		evbuffer_remove(b, key, len);
		key[len] = '\0';
	}
	evbuffer_free(b);
	return key;
}

static int
coord_view_suffix(const char *name, const char *suffix)
{
	size_t n = strlen(name), m = strlen(suffix);

	return n >= m && strcmp(name + n - m, suffix) == 0;
}

/*
 * The page must pass `promtool check metrics`, whatever an agent sends:
 * besides the exposition format's own rules, its lint rules (counters end
 * in _total, gauges do not end in _total, _count, _sum or _bucket nor carry
 * le or quantile, names are snake_case) are enforced here.
 */
static int
coord_view_sample_valid(const Troika__V1__Sample *s)
{
	static const char *const gauge_suffixes[] = {
	    "_total",
	    "_count",
	    "_sum",
	    "_bucket",
	};
	int gauge = s->type == TROIKA__V1__METRIC_TYPE__METRIC_TYPE_GAUGE;

	if (!metrics_name_valid(s->name))
		return 0;
	if (!gauge && s->type != TROIKA__V1__METRIC_TYPE__METRIC_TYPE_COUNTER)
		return 0;
	if (!gauge && !coord_view_suffix(s->name, "_total"))
		return 0;
	for (size_t i = 0;
	     gauge && i < sizeof(gauge_suffixes) / sizeof(gauge_suffixes[0]);
	     i++)
		if (coord_view_suffix(s->name, gauge_suffixes[i]))
			return 0;
	for (const char *c = s->name; c[0] != '\0' && c[1] != '\0'; c++)
		if (c[0] >= 'a' && c[0] <= 'z' && c[1] >= 'A' && c[1] <= 'Z')
			return 0;
	for (size_t i = 0; i < s->n_labels; i++) {
		const char *ln = s->labels[i]->name;

		/* node is ours to add. */
		if (!metrics_label_name_valid(ln) || strcmp(ln, "node") == 0 ||
		    strcmp(ln, "le") == 0 || strcmp(ln, "quantile") == 0)
			return 0;
		for (size_t j = 0; j < i; j++)
			if (strcmp(s->labels[j]->name, ln) == 0)
				return 0;
	}
	return 1;
}

static int
coord_view_grow(struct coord_node *n)
{
	size_t nb = n->nbuckets ? n->nbuckets * 2 : COORD_VIEW_MIN_BUCKETS;
	struct coord_sample **b;

	if ((b = calloc(nb, sizeof(*b))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n->nbuckets; i++) {
		struct coord_sample *s = n->buckets[i], *next;

		for (; s != NULL; s = next) {
			size_t h = (size_t)(coord_view_hash(s->key) % nb);

			next = s->next;
			s->next = b[h];
			b[h] = s;
		}
	}
	free(n->buckets);
	n->buckets = b;
	n->nbuckets = nb;
	return 0;
}

static struct coord_sample *
coord_view_sample_new(const Troika__V1__Sample *in, char *key)
{
	struct coord_sample *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->key = key;
	if ((s->name = strdup(in->name)) == NULL ||
	    (in->n_labels > 0 &&
	        (s->labels = calloc(2 * in->n_labels, sizeof(*s->labels))) ==
	            NULL))
		goto fail;
	s->nlabels = in->n_labels;
	for (size_t i = 0; i < in->n_labels; i++)
		if ((s->labels[2 * i] = strdup(in->labels[i]->name)) == NULL ||
		    (s->labels[2 * i + 1] = strdup(in->labels[i]->value)) ==
		        NULL)
			goto fail;
	s->type = (int)in->type;
	return s;
fail:
	coord_sample_free(s);
	return NULL;
}

int
coord_view_samples(struct coord_view *v, uint64_t stream, const char *node,
    const Troika__V1__MetricBatch *batch, uint64_t now_ns,
    struct coord_view_drops *drops)
{
	struct coord_node *n;
	int r;

	if ((r = coord_view_owned(v, stream, node, &n)) < 0)
		return r;
	n->last_seen_ns = now_ns;
	n->agent_dropped += batch->dropped_samples;
	for (size_t i = 0; i < batch->n_samples; i++) {
		const Troika__V1__Sample *in = batch->samples[i];
		struct coord_sample *s;
		char *key;
		size_t h;

		if (!coord_view_sample_valid(in)) {
			drops->invalid++;
			continue;
		}
		if ((key = coord_view_key(in)) == NULL)
			return -ENOMEM;
		if (n->nbuckets == 0 && (r = coord_view_grow(n)) < 0) {
			free(key);
			return r;
		}
		h = (size_t)(coord_view_hash(key) % n->nbuckets);
		for (s = n->buckets[h]; s != NULL; s = s->next)
			if (strcmp(s->key, key) == 0)
				break;
		if (s != NULL) {
			free(key);
		} else {
			if (n->nsamples >= COORD_VIEW_MAX_SAMPLES) {
				free(key);
				drops->limit++;
				continue;
			}
			if (n->nsamples >= n->nbuckets * 2) {
				if ((r = coord_view_grow(n)) < 0) {
					free(key);
					return r;
				}
				h = (size_t)(coord_view_hash(key) %
				    n->nbuckets);
			}
			if ((s = coord_view_sample_new(in, key)) == NULL) {
				free(key);
				return -ENOMEM;
			}
			s->next = n->buckets[h];
			n->buckets[h] = s;
			n->nsamples++;
		}
		s->value = in->value;
		if (in->help[0] != '\0' &&
		    (s->help == NULL || strcmp(s->help, in->help) != 0)) {
			char *help = strdup(in->help);

			if (help == NULL)
				return -ENOMEM;
			free(s->help);
			s->help = help;
		}
	}
	return 0;
}

void
coord_view_seen(
    struct coord_view *v, uint64_t stream, const char *node, uint64_t now_ns)
{
	struct coord_node *n;

	if (coord_view_owned(v, stream, node, &n) == 0)
		n->last_seen_ns = now_ns;
}

void
coord_view_disconnect(
    struct coord_view *v, uint64_t stream, const char *node, uint64_t now_ns)
{
	struct coord_node *n;

	if (coord_view_owned(v, stream, node, &n) < 0)
		return;
	n->stream = 0;
	n->disconnected_ns = now_ns;
}

size_t
coord_view_connected(const struct coord_view *v)
{
	size_t c = 0;

	for (size_t i = 0; i < v->nnodes; i++)
		if (v->nodes[i]->stream != 0)
			c++;
	return c;
}

/* Names the coordinator writes itself: an agent's sample never shadows them. */
static int
coord_view_reserved(const char *name)
{
	static const char *const prefixes[] = {
	    "grpc_server_",
	    "troika_grpc_server_",
	    "troika_coord_",
	    "process_",
	};

	if (strcmp(name, "troika_check_status") == 0)
		return 1;
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0)
			return 1;
	return 0;
}

struct coord_view_ref {
	const struct coord_node *node;
	const struct coord_sample *s;
};

static int
coord_view_ref_cmp(const void *a, const void *b)
{
	const struct coord_view_ref *x = a, *y = b;
	int c;

	if ((c = strcmp(x->s->name, y->s->name)) != 0)
		return c;
	if ((c = strcmp(x->node->name, y->node->name)) != 0)
		return c;
	return strcmp(x->s->key, y->s->key);
}

static void
coord_view_write_sample(struct evbuffer *out, const struct coord_view_ref *r,
    struct troika_label *l)
{
	const struct coord_sample *s = r->s;

	l[0].name = "node";
	l[0].value = r->node->name;
	for (size_t i = 0; i < s->nlabels; i++) {
		l[i + 1].name = s->labels[2 * i];
		l[i + 1].value = s->labels[2 * i + 1];
	}
	metrics_sample(out, s->name, l, s->nlabels + 1, NULL, s->value);
}

static void
coord_view_write_samples(
    const struct coord_view *v, struct evbuffer *out, uint64_t *skipped)
{
	struct coord_view_ref *refs;
	struct troika_label *l = NULL;
	size_t total = 0, n = 0, maxl = 0;

	for (size_t i = 0; i < v->nnodes; i++)
		total += v->nodes[i]->nsamples;
	if (total == 0)
		return;
	if ((refs = calloc(total, sizeof(*refs))) == NULL)
		return;
	for (size_t i = 0; i < v->nnodes; i++) {
		const struct coord_node *node = v->nodes[i];

		for (size_t b = 0; b < node->nbuckets; b++) {
			const struct coord_sample *s;

			for (s = node->buckets[b]; s != NULL; s = s->next) {
				if (coord_view_reserved(s->name)) {
					(*skipped)++;
					continue;
				}
				if (s->nlabels > maxl)
					maxl = s->nlabels;
				refs[n].node = node;
				refs[n].s = s;
				n++;
			}
		}
	}
	qsort(refs, n, sizeof(*refs), coord_view_ref_cmp);
	if (n > 0 && (l = calloc(maxl + 1, sizeof(*l))) == NULL)
		goto out;
	for (size_t i = 0; i < n;) {
		const char *name = refs[i].s->name, *help = NULL;
		int type = refs[i].s->type;
		size_t end;

		for (end = i; end < n && strcmp(refs[end].s->name, name) == 0;
		     end++)
			if (help == NULL && refs[end].s->help != NULL)
				help = refs[end].s->help;
		metrics_family(out, name,
		    type == TROIKA__V1__METRIC_TYPE__METRIC_TYPE_COUNTER
		        ? "counter"
		        : "gauge",
		    help != NULL ? help : "Re-exported from agents.");
		/*
		 * One type per family: coord_view_sample_valid() let no
		 * counter without _total nor gauge with it in.
		 */
		for (; i < end; i++)
			coord_view_write_sample(out, &refs[i], l);
	}
out:
	free(l);
	free(refs);
}

void
coord_view_write_metrics(
    const struct coord_view *v, struct evbuffer *out, uint64_t *ret_skipped)
{
	uint64_t skipped = 0;

	metrics_family(out, "troika_check_status", "gauge",
	    "Latest status of a check as its node's agent reported it: "
	    "0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.");
	for (size_t i = 0; i < v->nnodes; i++) {
		const struct coord_node *n = v->nodes[i];

		for (size_t j = 0; j < n->nchecks; j++) {
			const struct coord_check *c = &n->checks[j];
			const struct troika_label l[] = {
			    {"node", n->name},
			    {"check", c->name},
			    {"plugin", c->plugin},
			};

			/* UNSPECIFIED (0) or an unknown number: nothing. */
			if (c->last == NULL || c->last->status < 1 ||
			    c->last->status > 4)
				continue;
			metrics_sample(out, "troika_check_status", l, 3, NULL,
			    (double)(c->last->status - 1));
		}
	}
	metrics_family(out, "troika_coord_node_connected", "gauge",
	    "1 while the node's agent has a stream open to this coordinator.");
	for (size_t i = 0; i < v->nnodes; i++) {
		const struct troika_label l = {"node", v->nodes[i]->name};

		metrics_sample(out, "troika_coord_node_connected", &l, 1, NULL,
		    v->nodes[i]->stream != 0 ? 1 : 0);
	}
	metrics_family(out, "troika_coord_node_last_seen_timestamp_seconds",
	    "gauge", "When the node's agent was last heard.");
	for (size_t i = 0; i < v->nnodes; i++) {
		const struct troika_label l = {"node", v->nodes[i]->name};

		metrics_sample(out,
		    "troika_coord_node_last_seen_timestamp_seconds", &l, 1,
		    NULL, (double)v->nodes[i]->last_seen_ns / 1e9);
	}
	metrics_family(out, "troika_coord_agent_dropped_samples_total",
	    "counter",
	    "Metric samples the node's agent reported it dropped "
	    "before sending (its queue was full).");
	for (size_t i = 0; i < v->nnodes; i++) {
		const struct troika_label l = {"node", v->nodes[i]->name};

		metrics_sample(out, "troika_coord_agent_dropped_samples_total",
		    &l, 1, NULL, (double)v->nodes[i]->agent_dropped);
	}
	coord_view_write_samples(v, out, &skipped);
	if (ret_skipped != NULL)
		*ret_skipped = skipped;
}
