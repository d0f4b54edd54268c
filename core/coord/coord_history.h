/*
 * coord_history: the cluster's recovery history in etcd (issue 5: "every
 * opinion change, verdict and action is an event kept in etcd (bounded
 * history) and visible through the Admin gRPC service"). Each
 * coordinator puts those of its events at
 * <prefix>/events/<coordinator>/<time ns, 20 digits>-<seq> and keeps its
 * newest COORD_HISTORY_KEEP there; every coordinator mirrors the whole prefix,
 * so Admin/ListEvents on any of them shows every coordinator's history,
 * also after restarts. With store local there is no history beyond the
 * coordinator's own ring (ListEvents answers from the ring then).
 */
#ifndef TROIKA_COORD_HISTORY_H
#define TROIKA_COORD_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#define COORD_HISTORY_KEEP 1000

struct coord;
struct coord_history;
struct Troika__V1__Event;

/* NULL with store local (nothing to do), or on failure (logged). */
struct coord_history *coord_history_new(struct coord *c);
void coord_history_free(struct coord_history *h);

/* Is this kind of event part of the history? */
int coord_history_wants(const char *kind);

/* Keep one packed event (Troika__V1__Event) of this coordinator's. */
void coord_history_record(struct coord_history *h, uint64_t seq,
    const uint8_t *packed, size_t len);

/*
 * Events of every coordinator, newest first (by time), filtered by nodes
 * and kinds (none: all); up to max. Pointers valid until the next change.
 */
size_t coord_history_list(const struct coord_history *h,
    const char *const *nodes, size_t nnodes, const char *const *kinds,
    size_t nkinds, const struct Troika__V1__Event **out, size_t max);

#endif
