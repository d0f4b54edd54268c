/*
 * coord_member: what the cluster procedures (coord_galera.c,
 * coord_redis.c) ask about one member, a (node, check) pair: its latest
 * result as this coordinator sees it, and the quorum's verdict.
 */
#ifndef TROIKA_COORD_MEMBER_H
#define TROIKA_COORD_MEMBER_H

#include <stddef.h>
#include <stdint.h>

#include "troika/v1/agent.pb-c.h"

struct coord;

/*
 * The latest result of the check on node, connected or not (its facts,
 * e.g. an address, outlive the stream); NULL: none.
 */
const Troika__V1__CheckResult *coord_member_result(const struct coord *c,
    const char *node, const char *check);

/* When the latest result came (this coordinator's clock); 0: none. */
uint64_t coord_member_result_at(const struct coord *c, const char *node,
    const char *check);

/* The node's agent has a stream to this coordinator. */
int coord_member_connected(const struct coord *c, const char *node);

/* Its agent is connected and its latest result is OK. */
int coord_member_ok(const struct coord *c, const char *node,
    const char *check);

/* At least `quorum` coordinators hold it FAILED, or its node lost. */
int coord_member_failed(const struct coord *c, const char *node,
    const char *check);

/* The value of a fact (a result or record field); NULL: none. */
const char *coord_member_field(Troika__V1__Label *const *fields, size_t n,
    const char *name);

#endif
