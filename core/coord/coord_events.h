/*
 * Events: every state change the coordinator notices (a node connected or
 * disconnected, a check's status changed) gets a sequence number, is
 * logged, kept in a ring of the last COORD_EVENTS_KEEP, and streamed to
 * Admin/WatchEvents clients. One function, coord_events_emit(), does all
 * of it, so no change reaches one place and misses another.
 */
#ifndef TROIKA_COORD_EVENTS_H
#define TROIKA_COORD_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "troika/v1/admin.pb-c.h"

#define COORD_EVENTS_KEEP 1024
/* A watcher's queued bytes beyond which sending waits for drained(). */
#define COORD_EVENTS_QUEUE_MAX (64 * 1024)

struct coord;
struct coord_events;

struct coord_events *coord_events_new(void);
/* Not while watchers are open: free the gRPC server first. NULL is fine. */
void coord_events_free(struct coord_events *ev);

/*
 * Record an event and send it to the watchers that want it. node and
 * check may be NULL; fields are name, value pairs (nfields pairs).
 */
void coord_events_emit(struct coord *c, const char *kind,
    Troika__V1__Severity severity, const char *node, const char *check,
    const char *const *fields, size_t nfields, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));

/* Is s one of names (n of them)? Every name matches when n is 0: the
 * filters of WatchEvents and ListEvents. */
int coord_events_match(const char *const *names, size_t n, const char *s);

/* The last seq given out; 0 before the first event. */
uint64_t coord_events_last_seq(const struct coord_events *ev);

/* Register Admin/WatchEvents. */
int coord_events_register(struct coord *c);

/* Shutting down: end every watch with UNAVAILABLE now. */
void coord_events_shutdown(struct coord *c);

#endif
