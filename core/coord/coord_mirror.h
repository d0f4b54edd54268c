/*
 * coord_mirror: a prefix of etcd kept in memory — a range, then a watch
 * from the range's revision + 1, read afresh when the watch ends
 * (compaction, cancellation) — so every coordinator knows the action
 * records and the maintenance in force without asking etcd each time.
 * The owner sees every change through one callback, in revision order.
 */
#ifndef TROIKA_COORD_MIRROR_H
#define TROIKA_COORD_MIRROR_H

#include <stddef.h>
#include <stdint.h>

struct etcd_client;
struct coord_mirror;

struct coord_mirror_entry {
	char *key;       /* the whole key */
	uint8_t *value;
	size_t len;
	int64_t mod_revision;
};

/*
 * A key was put (value non-NULL) or deleted (value NULL). "reset" is
 * called before a re-read replaces everything (the owner drops what it
 * derived), then every key of the re-read comes as a put.
 */
struct coord_mirror_handler {
	void (*changed)(const char *key, const uint8_t *value, size_t len,
	    void *arg);
	void (*reset)(void *arg);
	/* Optional: 1 once the first read is in (and after each re-read). */
	void (*synced)(int synced, void *arg);
};

struct coord_mirror *coord_mirror_new(struct etcd_client *ec,
    const char *prefix, const struct coord_mirror_handler *h, void *arg);
void coord_mirror_free(struct coord_mirror *m);

/* Every key now, in key order; valid until the next change. */
const struct coord_mirror_entry *coord_mirror_entries(
    const struct coord_mirror *m, size_t *ret_n);
int coord_mirror_synced(const struct coord_mirror *m);

#endif
