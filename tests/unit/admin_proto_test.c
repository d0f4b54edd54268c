/* admin_proto: request tokens and reply values survive any bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "admin_proto.h"

static char *
drain(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = calloc(1, n + 1);

	evbuffer_remove(b, s, n);
	return s;
}

static void
test_split(void **state)
{
	char line[] = "action redis-main replicate 127.0.1.2 6379";
	char *argv[8];

	(void)state;
	assert_int_equal(admin_split(line, argv, 8), 5);
	assert_string_equal(argv[0], "action");
	assert_string_equal(argv[2], "replicate");
	assert_string_equal(argv[4], "6379");

	char enc[] = "action x echo a%20b%0Ac 100%25";
	assert_int_equal(admin_split(enc, argv, 8), 5);
	assert_string_equal(argv[3], "a b\nc");
	assert_string_equal(argv[4], "100%");
}

static void
test_split_rejects(void **state)
{
	char *argv[3];
	char empty[] = "", dbl[] = "a  b", trail[] = "a ", bad[] = "a %zz",
	    shorthex[] = "a %4", nul[] = "a %00", many[] = "a b c d";

	(void)state;
	assert_int_equal(admin_split(empty, argv, 3), -1);
	assert_int_equal(admin_split(dbl, argv, 3), -1);
	assert_int_equal(admin_split(trail, argv, 3), -1);
	assert_int_equal(admin_split(bad, argv, 3), -1);
	assert_int_equal(admin_split(shorthex, argv, 3), -1);
	assert_int_equal(admin_split(nul, argv, 3), -1);
	assert_int_equal(admin_split(many, argv, 3), -1);
}

static void
test_token_round_trip(void **state)
{
	struct evbuffer *b = evbuffer_new();
	const char *tok = "we ird\n%tok\xff" "en:/.@+=,-_";
	char *s, *argv[2];

	(void)state;
	admin_put_token(b, tok);
	s = drain(b);
	assert_null(strchr(s, ' '));
	assert_null(strchr(s, '\n'));
	assert_int_equal(admin_split(s, argv, 2), 1);
	assert_string_equal(argv[0], tok);
	free(s);
	evbuffer_free(b);
}

static void
test_value_round_trip(void **state)
{
	struct evbuffer *b = evbuffer_new();
	const char *v = "line1\nline2\\x\r";
	char *s;

	(void)state;
	admin_put_value(b, v);
	s = drain(b);
	assert_string_equal(s, "line1\\nline2\\\\x\\r");
	admin_unescape_value(s);
	assert_string_equal(s, v);
	free(s);
	evbuffer_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_split_rejects),
		cmocka_unit_test(test_token_round_trip),
		cmocka_unit_test(test_value_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
