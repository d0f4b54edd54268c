/*
 * The coordinator's view: the latest of everything agents said on their
 * Connect streams. Per node: the Hello (version, plugins, checks), whether
 * a stream is open and since when, when it was last heard, the latest
 * CheckResult of every check (in the Hello's order) and the latest value
 * of every metric sample. A node whose stream ends stays, marked
 * disconnected, with its last state: that is exactly what an operator
 * needs to see after an agent or its machine died.
 *
 * Streams are referred to by an id (never a pointer): when an agent
 * reconnects before its old stream is noticed dead, the newer stream owns
 * the node, and the old one's end changes nothing.
 *
 * Times are nanoseconds since the Unix epoch, given by the caller (tests
 * pass their own clock).
 */
#ifndef TROIKA_COORD_VIEW_H
#define TROIKA_COORD_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "troika/v1/agent.pb-c.h"

/*
 * Nodes kept, connected or not: a cluster has a few dozen, and a client
 * making up node names must not grow the view without bound.
 */
#define COORD_VIEW_MAX_NODES 1024
/* Samples kept per node; more are dropped and counted. */
#define COORD_VIEW_MAX_SAMPLES 100000

struct evbuffer;

struct coord_check {
	char *name;
	char *plugin;
	Troika__V1__CheckResult *last; /* NULL until the first result */
	uint64_t last_ns;              /* when it came (our clock) */
};

struct coord_sample {
	struct coord_sample *next; /* hash chain */
	char *key;                 /* name and labels, the identity */
	char *name;
	char **labels;  /* name, value, name, value, ... */
	size_t nlabels; /* pairs */
	double value;
	int type;   /* Troika__V1__MetricType */
	char *help; /* NULL if never sent */
};

struct coord_node {
	char *name;
	uint64_t stream;          /* owning stream; 0 when disconnected */
	uint64_t connected_ns;    /* when the owning stream said Hello */
	uint64_t disconnected_ns; /* 0 while connected */
	uint64_t last_seen_ns;
	Troika__V1__Hello *hello; /* owned */
	struct coord_check *checks;
	size_t nchecks;
	struct coord_sample **buckets;
	size_t nbuckets;
	size_t nsamples;
	uint64_t agent_dropped; /* samples the agent said it dropped */
};

/* Why samples of a batch were not kept. */
struct coord_view_drops {
	/*
	 * A bad metric or label name, a node, le or quantile label, an
	 * unknown type, or a name promtool's lint refuses for its type.
	 */
	uint64_t invalid;
	uint64_t limit; /* over COORD_VIEW_MAX_SAMPLES */
};

struct coord_view {
	struct coord_node **nodes; /* sorted by name */
	size_t nnodes;
};

struct coord_view *coord_view_new(void);
void coord_view_free(struct coord_view *v);

/* The node of that name; NULL if never heard of. */
struct coord_node *coord_view_node(
    const struct coord_view *v, const char *name);

/*
 * A Hello on stream: the node (created if new) belongs to this stream from
 * now on, its checks are the Hello's (earlier results of checks still
 * configured are kept), and, for a new agent process (another
 * start_time), earlier samples are forgotten. Takes ownership of hello on
 * success. Returns 0, -EINVAL (empty node name, or a check name empty or
 * repeated), -ENOSPC (a new node over COORD_VIEW_MAX_NODES), -ENOMEM.
 */
int coord_view_hello(struct coord_view *v, uint64_t stream,
    Troika__V1__Hello *hello, uint64_t now_ns);

/*
 * A result on stream for node. Takes ownership of res on success. A check
 * missing from the Hello is added after the others. Returns 0, -EINVAL
 * (empty check name), -ESTALE (the node belongs to another stream), -ENOENT
 * (no such node), -ENOMEM.
 */
int coord_view_result(struct coord_view *v, uint64_t stream, const char *node,
    Troika__V1__CheckResult *res, uint64_t now_ns);

/*
 * A metric batch: every valid sample's value is kept (the batch is not
 * owned). Returns 0 (drops counted in *drops), -ESTALE, -ENOENT, -ENOMEM.
 */
int coord_view_samples(struct coord_view *v, uint64_t stream, const char *node,
    const Troika__V1__MetricBatch *batch, uint64_t now_ns,
    struct coord_view_drops *drops);

/* Anything else heard on stream (a heartbeat): the node was seen. */
void coord_view_seen(
    struct coord_view *v, uint64_t stream, const char *node, uint64_t now_ns);

/* The stream ended: its node, if it still owns it, is disconnected. */
void coord_view_disconnect(
    struct coord_view *v, uint64_t stream, const char *node, uint64_t now_ns);

/* Nodes with a stream open. */
size_t coord_view_connected(const struct coord_view *v);

/*
 * Prometheus text of the view: troika_check_status{node,check,plugin}
 * (0 OK .. 3 UNKNOWN, as the agent's), troika_coord_node_connected{node},
 * troika_coord_agent_dropped_samples_total{node}, and every kept sample
 * with a node label, grouped by family. Samples whose names the
 * coordinator writes itself are left out (counted in *ret_skipped if not
 * NULL).
 */
void coord_view_write_metrics(
    const struct coord_view *v, struct evbuffer *out, uint64_t *ret_skipped);

#endif
