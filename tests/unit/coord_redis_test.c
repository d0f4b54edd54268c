/*
 * Unit tests of the pure parts of core/coord/coord_redis.c that the
 * planned switchover decides with: the address a member reports split for
 * the replicate and handover actions, whether a role record follows the
 * primary, and which replica a switchover without a target picks. The
 * procedure itself runs against real servers in
 * tests/system/test_redis_switchover.py.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coord_redis.h"
#include "troika/v1/admin.pb-c.h"

#define MAX_FIELDS 8

/* A role record: state, then name/value pairs, NULL-terminated. */
struct rec {
	Troika__V1__ActionRecord pb;
	Troika__V1__Label labels[MAX_FIELDS];
	Troika__V1__Label *fields[MAX_FIELDS];
};

static void
rec_init(struct rec *r, int state, ...)
{
	va_list ap;
	const char *name;

	memset(r, 0, sizeof(*r));
	troika__v1__action_record__init(&r->pb);
	r->pb.action = (char *)(uintptr_t)"role";
	r->pb.state = state;
	va_start(ap, state);
	while ((name = va_arg(ap, const char *)) != NULL) {
		size_t i = r->pb.n_fields++;

		assert_true(i < MAX_FIELDS);
		troika__v1__label__init(&r->labels[i]);
		r->labels[i].name = (char *)(uintptr_t)name;
		r->labels[i].value = (char *)(uintptr_t)va_arg(ap, const char *);
		r->fields[i] = &r->labels[i];
	}
	va_end(ap);
	r->pb.fields = r->fields;
}

#define OK TROIKA__V1__ACTION_STATE__ACTION_STATE_SUCCEEDED
#define FAILED TROIKA__V1__ACTION_STATE__ACTION_STATE_FAILED

static void
test_split_address(void **state)
{
	char host[16], port[8];

	(void)state;
	assert_int_equal(coord_redis_split_address("127.0.1.2:6390", host,
	    sizeof(host), port, sizeof(port)), 0);
	assert_string_equal(host, "127.0.1.2");
	assert_string_equal(port, "6390");
	assert_int_equal(coord_redis_split_address("[::1]:6379", host,
	    sizeof(host), port, sizeof(port)), 0);
	assert_string_equal(host, "::1");
	assert_string_equal(port, "6379");
	/* No port, no host, or more than the buffers hold. */
	assert_int_equal(coord_redis_split_address("127.0.1.2", host,
	    sizeof(host), port, sizeof(port)), -EINVAL);
	assert_int_equal(coord_redis_split_address("127.0.1.2:", host,
	    sizeof(host), port, sizeof(port)), -EINVAL);
	assert_int_equal(coord_redis_split_address(":6379", host,
	    sizeof(host), port, sizeof(port)), -EINVAL);
	assert_int_equal(coord_redis_split_address("[]:6379", host,
	    sizeof(host), port, sizeof(port)), -EINVAL);
	assert_int_equal(coord_redis_split_address("a-very-long-host-name:1",
	    host, sizeof(host), port, sizeof(port)), -EINVAL);
	assert_int_equal(coord_redis_split_address("h:123456789", host,
	    sizeof(host), port, sizeof(port)), -EINVAL);
}

static void
test_follows(void **state)
{
	struct rec r;

	(void)state;
	rec_init(&r, OK, "role", "replica", "master_host", "127.0.1.1",
	    "master_port", "6390", "master_link_status", "up", NULL);
	assert_true(coord_redis_follows(&r.pb, "127.0.1.1", "6390"));
	/* Another master, another port. */
	assert_false(coord_redis_follows(&r.pb, "127.0.1.2", "6390"));
	assert_false(coord_redis_follows(&r.pb, "127.0.1.1", "6379"));
	/* The link down. */
	rec_init(&r, OK, "role", "replica", "master_host", "127.0.1.1",
	    "master_port", "6390", "master_link_status", "down", NULL);
	assert_false(coord_redis_follows(&r.pb, "127.0.1.1", "6390"));
	/* A master, and a replica whose answer lacks the link. */
	rec_init(&r, OK, "role", "master", NULL);
	assert_false(coord_redis_follows(&r.pb, "127.0.1.1", "6390"));
	rec_init(&r, OK, "role", "replica", "master_host", "127.0.1.1",
	    "master_port", "6390", NULL);
	assert_false(coord_redis_follows(&r.pb, "127.0.1.1", "6390"));
}

static void
test_pick(void **state)
{
	struct rec a, b, c;
	const Troika__V1__ActionRecord *roles[3] = { &a.pb, &b.pb, &c.pb };

	(void)state;
	rec_init(&a, OK, "role", "master", "master_repl_offset", "900", NULL);
	rec_init(&b, OK, "role", "replica", "slave_repl_offset", "800", NULL);
	rec_init(&c, OK, "role", "replica", "slave_repl_offset", "850", NULL);
	assert_int_equal(coord_redis_pick(roles, 3, 0), 2);
	/* A tie: the first in the list. */
	rec_init(&c, OK, "role", "replica", "slave_repl_offset", "800", NULL);
	assert_int_equal(coord_redis_pick(roles, 3, 0), 1);
	/* The member skipped (the primary) never, even as a replica. */
	rec_init(&a, OK, "role", "replica", "slave_repl_offset", "999", NULL);
	assert_int_equal(coord_redis_pick(roles, 3, 0), 1);
	assert_int_equal(coord_redis_pick(roles, 3, -1), 0);
	/* A failed answer, a master, a bad or missing offset: not picked. */
	rec_init(&b, FAILED, "role", "replica", "slave_repl_offset", "5000",
	    NULL);
	rec_init(&c, OK, "role", "master", "slave_repl_offset", "6000", NULL);
	assert_int_equal(coord_redis_pick(roles, 3, 0), -1);
	rec_init(&b, OK, "role", "replica", "slave_repl_offset", "12x", NULL);
	rec_init(&c, OK, "role", "replica", NULL);
	assert_int_equal(coord_redis_pick(roles, 3, 0), -1);
	rec_init(&c, OK, "role", "replica", "slave_repl_offset", "0", NULL);
	assert_int_equal(coord_redis_pick(roles, 3, 0), 2);
	/* No answer at all. */
	roles[2] = NULL;
	assert_int_equal(coord_redis_pick(roles, 3, 0), -1);
	assert_int_equal(coord_redis_pick(roles, 0, -1), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_address),
		cmocka_unit_test(test_follows),
		cmocka_unit_test(test_pick),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
