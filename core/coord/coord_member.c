/*
 * coord_member: one member's facts for the cluster procedures
 * (coord_member.h).
 */
#include "coord_member.h"

#include <string.h>

#include "coord.h"
#include "coord_conf.h"
#include "coord_nodeloss.h"
#include "coord_quorum.h"
#include "coord_view.h"

#define MEMBER_MAX_COORDS 16

/* The check as the view keeps it, connected or not. */
static const struct coord_check *
member_check(const struct coord *c, const char *node, const char *check)
{
	const struct coord_node *n = coord_view_node(c->view, node);

	if (n == NULL)
		return NULL;
	for (size_t i = 0; i < n->nchecks; i++)
		if (strcmp(n->checks[i].name, check) == 0)
			return &n->checks[i];
	return NULL;
}

const Troika__V1__CheckResult *
coord_member_result(const struct coord *c, const char *node,
    const char *check)
{
	const struct coord_check *k = member_check(c, node, check);

	return k != NULL ? k->last : NULL;
}

uint64_t
coord_member_result_at(const struct coord *c, const char *node,
    const char *check)
{
	const struct coord_check *k = member_check(c, node, check);

	return k != NULL && k->last != NULL ? k->last_ns : 0;
}

int
coord_member_connected(const struct coord *c, const char *node)
{
	const struct coord_node *n = coord_view_node(c->view, node);

	return n != NULL && n->stream != 0;
}

int
coord_member_ok(const struct coord *c, const char *node, const char *check)
{
	const Troika__V1__CheckResult *res = coord_member_result(c, node,
	    check);

	return res != NULL && coord_member_connected(c, node) &&
	    res->status == TROIKA__V1__CHECK_STATUS__CHECK_STATUS_OK;
}

int
coord_member_failed(const struct coord *c, const char *node,
    const char *check)
{
	const char *coords[MEMBER_MAX_COORDS];

	/* A lost node's services are counted out, whatever their checks
	 * said last. */
	return coord_quorum_failed(c->quorum, node, check, coords,
	    MEMBER_MAX_COORDS, NULL) >= (size_t)c->conf->quorum ||
	    coord_nodeloss_lost(c, node);
}

const char *
coord_member_field(Troika__V1__Label *const *fields, size_t n,
    const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(fields[i]->name, name) == 0)
			return fields[i]->value;
	return NULL;
}
