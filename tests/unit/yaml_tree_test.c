/*
 * Unit tests of core/lib/yaml_tree.c: tree shape and positions, nulls,
 * and every refusal with its position and message.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "yaml_tree.h"

static struct yaml_tree_node *
parse_ok(const char *text)
{
	struct yaml_tree_node *root = NULL;
	struct yaml_tree_error err;
	int r;

	r = yaml_tree_parse_buf(text, strlen(text), &root, &err);
	if (r != 0)
		fail_msg("parse failed: %d:%d: %s", err.line, err.col, err.msg);
	return root;
}

/* Parse text that must fail with this errno, position and message. */
static void
parse_err(const char *text, size_t len, int want_r, int line, int col,
    const char *msg)
{
	struct yaml_tree_node *root = (struct yaml_tree_node *)&root;
	struct yaml_tree_error err;

	assert_int_equal(yaml_tree_parse_buf(text, len, &root, &err), want_r);
	assert_null(root);
	assert_string_equal(err.msg, msg);
	assert_int_equal(err.line, line);
	assert_int_equal(err.col, col);
}

static void
test_shape_and_positions(void **state)
{
	struct yaml_tree_node *root, *v;
	const struct yaml_tree_pair *p;

	(void)state;
	root = parse_ok("# comment\n"
			"name: web\n"
			"list:\n"
			"  - a\n"
			"  - \"b\"\n"
			"map: {x: 1, y: [2, 3]}\n");
	assert_non_null(root);
	assert_int_equal(root->kind, YAML_TREE_MAPPING);
	assert_int_equal(root->line, 2);
	assert_int_equal(root->col, 1);
	assert_int_equal(root->npairs, 3);

	assert_string_equal(root->pairs[0].key->str, "name");
	assert_int_equal(root->pairs[0].key->line, 2);
	assert_int_equal(root->pairs[0].key->col, 1);
	v = root->pairs[0].value;
	assert_int_equal(v->kind, YAML_TREE_SCALAR);
	assert_string_equal(v->str, "web");
	assert_int_equal(v->len, 3);
	assert_true(v->plain);
	assert_int_equal(v->line, 2);
	assert_int_equal(v->col, 7);

	v = root->pairs[1].value;
	assert_int_equal(v->kind, YAML_TREE_SEQUENCE);
	assert_int_equal(v->nitems, 2);
	assert_int_equal(v->line, 4);
	assert_int_equal(v->col, 3);
	assert_string_equal(v->items[0]->str, "a");
	assert_int_equal(v->items[0]->line, 4);
	assert_int_equal(v->items[0]->col, 5);
	assert_string_equal(v->items[1]->str, "b");
	assert_false(v->items[1]->plain);

	p = yaml_tree_find(root, "map");
	assert_non_null(p);
	assert_int_equal(p->key->line, 6);
	v = p->value;
	assert_int_equal(v->kind, YAML_TREE_MAPPING);
	assert_int_equal(v->col, 6);
	assert_int_equal(v->npairs, 2);
	assert_string_equal(v->pairs[0].key->str, "x");
	assert_int_equal(v->pairs[0].key->col, 7);
	assert_string_equal(v->pairs[0].value->str, "1");
	assert_int_equal(v->pairs[1].value->kind, YAML_TREE_SEQUENCE);
	assert_string_equal(v->pairs[1].value->items[1]->str, "3");
	assert_int_equal(v->pairs[1].value->items[1]->col, 20);

	assert_null(yaml_tree_find(root, "nam"));
	assert_null(yaml_tree_find(root, "names"));
	assert_null(yaml_tree_find(root->pairs[0].value, "x"));
	assert_null(yaml_tree_find(NULL, "x"));
	yaml_tree_free(root);
}

static void
test_scalar_styles(void **state)
{
	struct yaml_tree_node *root;

	(void)state;
	root = parse_ok("a: 'single ''q'''\n"
			"b: \"tab\\there\\u00e9\"\n"
			"c: |\n"
			"  line1\n"
			"  line2\n"
			"d: >-\n"
			"  folded\n"
			"  text\n"
			"e: ünï\n");
	assert_string_equal(root->pairs[0].value->str, "single 'q'");
	assert_string_equal(root->pairs[1].value->str, "tab\there\xc3\xa9");
	assert_string_equal(root->pairs[2].value->str, "line1\nline2\n");
	assert_false(root->pairs[2].value->plain);
	assert_string_equal(root->pairs[3].value->str, "folded text");
	assert_string_equal(root->pairs[4].value->str, "ünï");
	/* Columns count characters, not bytes. */
	yaml_tree_free(root);

	root = parse_ok("ü: [é, x]\n");
	assert_int_equal(root->pairs[0].value->items[1]->col, 8);
	yaml_tree_free(root);
}

static void
test_nulls(void **state)
{
	struct yaml_tree_node *root;

	(void)state;
	root = parse_ok("a:\nb: ~\nc: null\nd: NULL\ne: Null\nf: \"\"\n"
			"g: 'null'\nh: nULL\ni: x\nj: []\n");
	assert_true(yaml_tree_is_null(root->pairs[0].value));
	assert_true(yaml_tree_is_null(root->pairs[1].value));
	assert_true(yaml_tree_is_null(root->pairs[2].value));
	assert_true(yaml_tree_is_null(root->pairs[3].value));
	assert_true(yaml_tree_is_null(root->pairs[4].value));
	assert_false(yaml_tree_is_null(root->pairs[5].value));
	assert_false(yaml_tree_is_null(root->pairs[6].value));
	assert_false(yaml_tree_is_null(root->pairs[7].value));
	assert_false(yaml_tree_is_null(root->pairs[8].value));
	assert_false(yaml_tree_is_null(root->pairs[9].value));
	assert_false(yaml_tree_is_null(NULL));
	assert_string_equal(yaml_tree_what(root->pairs[0].value), "null");
	assert_string_equal(yaml_tree_what(root->pairs[5].value), "a scalar");
	assert_string_equal(yaml_tree_what(root->pairs[9].value), "a sequence");
	assert_string_equal(yaml_tree_what(root), "a mapping");
	assert_string_equal(yaml_tree_what(NULL), "null");
	yaml_tree_free(root);
}

static void
test_empty_documents(void **state)
{
	struct yaml_tree_node *root = (struct yaml_tree_node *)&root;
	struct yaml_tree_error err;

	(void)state;
	assert_int_equal(yaml_tree_parse_buf("", 0, &root, &err), 0);
	assert_null(root);
	root = (struct yaml_tree_node *)&root;
	assert_int_equal(yaml_tree_parse_buf("# only\n\n", 8, &root, &err), 0);
	assert_null(root);

	/* An explicit empty document is a null scalar. */
	root = parse_ok("---\n...\n");
	assert_non_null(root);
	assert_true(yaml_tree_is_null(root));
	yaml_tree_free(root);

	/* A top-level sequence or scalar is fine for the tree. */
	root = parse_ok("- 1\n- 2\n");
	assert_int_equal(root->kind, YAML_TREE_SEQUENCE);
	yaml_tree_free(root);
	yaml_tree_free(NULL);
}

static void
test_refuse_anchors_aliases(void **state)
{
	static const char alias[] = "a: x\nb: *x\n";
	static const char anchor[] = "a: &x 1\n";
	static const char seqanchor[] = "a: &l [1]\n";
	static const char mapanchor[] = "a:\n  b: &m {c: 1}\n";

	(void)state;
	/* libyaml does not resolve aliases: an undefined one still parses. */
	parse_err(alias, strlen(alias), -EINVAL, 2, 4,
	    "aliases are not supported");
	parse_err(anchor, strlen(anchor), -EINVAL, 1, 4,
	    "anchors and aliases are not supported");
	parse_err(seqanchor, strlen(seqanchor), -EINVAL, 1, 4,
	    "anchors and aliases are not supported");
	parse_err(mapanchor, strlen(mapanchor), -EINVAL, 2, 6,
	    "anchors and aliases are not supported");
}

static void
test_refuse_duplicates(void **state)
{
	static const char dup[] = "a: 1\nb:\n  x: 1\n  y: 2\n  x: 3\n";
	static const char flow[] = "{a: 1, \"a\": 2}";
	static const char nested_ok[] = "a: {x: 1}\nb: {x: 1}\n";
	struct yaml_tree_node *root;
	char *big;
	size_t off = 0;

	(void)state;
	parse_err(dup, strlen(dup), -EINVAL, 5, 3,
	    "duplicate key 'x' (first at 3:3)");
	parse_err(flow, strlen(flow), -EINVAL, 1, 8,
	    "duplicate key 'a' (first at 1:2)");
	root = parse_ok(nested_ok);
	yaml_tree_free(root);

	/* Many keys: the key index grows and still finds the duplicate. */
	assert_non_null(big = malloc(100000));
	for (int i = 0; i < 1000; i++)
		off += (size_t)snprintf(big + off, 100000 - off, "k%d: %d\n",
		    i, i);
	off += (size_t)snprintf(big + off, 100000 - off, "k517: again\n");
	parse_err(big, off, -EINVAL, 1001, 1,
	    "duplicate key 'k517' (first at 518:1)");
	/* Without it, all 1000 keys are there in order. */
	root = parse_ok("");
	assert_null(root);
	off -= strlen("k517: again\n");
	big[off] = '\0';
	root = parse_ok(big);
	assert_int_equal(root->npairs, 1000);
	assert_string_equal(root->pairs[999].key->str, "k999");
	yaml_tree_free(root);
	free(big);
}

static void
test_refuse_structure(void **state)
{
	static const char seqkey[] = "? [a]\n: 1\n";
	static const char mapkey[] = "{{a: 1}: 2}\n";
	static const char docs[] = "a: 1\n---\nb: 2\n";
	static const char nul[] = "a: \"x\\0y\"\n";

	(void)state;
	parse_err(seqkey, strlen(seqkey), -EINVAL, 1, 3,
	    "mapping keys must be scalars, not a sequence");
	parse_err(mapkey, strlen(mapkey), -EINVAL, 1, 2,
	    "mapping keys must be scalars, not a mapping");
	parse_err(docs, strlen(docs), -EINVAL, 2, 1,
	    "multiple documents are not supported");
	parse_err(nul, strlen(nul), -EINVAL, 1, 4,
	    "NUL bytes in scalars are not supported");
}

static void
test_syntax_errors(void **state)
{
	static const char flow[] = "a: [1, 2\nb: 3\n";
	static const char indent[] = "a:\n  b: 1\n c: 2\n";
	static const char tab[] = "a:\n\tb: 1\n";
	static const char utf8[] = "a: 1\nbb: x\xff\n";
	static const char ctl[] = "a: \x01\n";
	static const char nulbyte[] = "a: x\0y\n";

	(void)state;
	parse_err(flow, strlen(flow), -EINVAL, 2, 2,
	    "syntax error: did not find expected ',' or ']' "
	    "(while parsing a flow sequence at 1:4)");
	parse_err(indent, strlen(indent), -EINVAL, 3, 2,
	    "syntax error: did not find expected key "
	    "(while parsing a block mapping at 1:1)");
	parse_err(tab, strlen(tab), -EINVAL, 2, 1,
	    "syntax error: found character that cannot start any token "
	    "(while scanning for the next token at 2:1)");
	/* Reader errors have an offset only; the position is computed. */
	parse_err(utf8, strlen(utf8), -EINVAL, 2, 6,
	    "invalid input: invalid leading UTF-8 octet");
	parse_err(ctl, strlen(ctl), -EINVAL, 1, 4,
	    "invalid input: control characters are not allowed");
	parse_err(nulbyte, sizeof(nulbyte) - 1, -EINVAL, 1, 5,
	    "invalid input: control characters are not allowed");
}

/* "[[...]]" nested n deep. */
static char *
nested(int n)
{
	char *s = malloc((size_t)(2 * n + 2));

	assert_non_null(s);
	memset(s, '[', (size_t)n);
	memset(s + n, ']', (size_t)n);
	s[2 * n] = '\n';
	s[2 * n + 1] = '\0';
	return s;
}

static void
test_depth_limit(void **state)
{
	struct yaml_tree_node *root, *n;
	char *s;
	int depth = 0;

	(void)state;
	s = nested(YAML_TREE_MAX_DEPTH);
	root = parse_ok(s);
	for (n = root; n->kind == YAML_TREE_SEQUENCE && n->nitems > 0;
	     n = n->items[0])
		depth++;
	assert_int_equal(depth + 1, YAML_TREE_MAX_DEPTH);
	yaml_tree_free(root);
	free(s);

	s = nested(YAML_TREE_MAX_DEPTH + 1);
	parse_err(s, strlen(s), -EINVAL, 1, YAML_TREE_MAX_DEPTH + 1,
	    "nesting deeper than 64 levels");
	free(s);
}

static void
test_size_limit(void **state)
{
	struct yaml_tree_node *root;
	char *s;

	(void)state;
	/* Exactly at the limit is fine: a long comment. */
	assert_non_null(s = malloc(YAML_TREE_MAX_SIZE + 2));
	memset(s, ' ', YAML_TREE_MAX_SIZE + 1);
	memcpy(s, "a: 1 #", 6);
	s[YAML_TREE_MAX_SIZE - 1] = '\n';
	s[YAML_TREE_MAX_SIZE] = '\0';
	root = parse_ok(s);
	assert_string_equal(root->pairs[0].value->str, "1");
	yaml_tree_free(root);

	s[YAML_TREE_MAX_SIZE] = '\n';
	parse_err(s, YAML_TREE_MAX_SIZE + 1, -EFBIG, 0, 0,
	    "file too large (over 1 MiB)");
	free(s);
}

static char tmpdir[64];

static int
setup_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/yaml_tree_test.XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown_dir(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void
test_files(void **state)
{
	struct yaml_tree_node *root = (struct yaml_tree_node *)&root;
	struct yaml_tree_error err;
	char path[128], *big;

	(void)state;
	snprintf(path, sizeof(path), "%s/ok.yaml", tmpdir);
	write_file(path, "a: [1, 2]\n", 10);
	assert_int_equal(yaml_tree_parse_file(path, &root, &err), 0);
	assert_int_equal(root->pairs[0].value->nitems, 2);
	yaml_tree_free(root);

	/* Bigger than the first read buffer, still under the limit. */
	assert_non_null(big = malloc(YAML_TREE_MAX_SIZE + 1));
	memset(big, '#', YAML_TREE_MAX_SIZE + 1);
	memcpy(big, "b: 2\n", 5);
	big[YAML_TREE_MAX_SIZE - 1] = '\n';
	snprintf(path, sizeof(path), "%s/max.yaml", tmpdir);
	write_file(path, big, YAML_TREE_MAX_SIZE);
	assert_int_equal(yaml_tree_parse_file(path, &root, &err), 0);
	assert_string_equal(root->pairs[0].key->str, "b");
	yaml_tree_free(root);

	snprintf(path, sizeof(path), "%s/big.yaml", tmpdir);
	write_file(path, big, YAML_TREE_MAX_SIZE + 1);
	free(big);
	root = (struct yaml_tree_node *)&root;
	assert_int_equal(yaml_tree_parse_file(path, &root, &err), -EFBIG);
	assert_null(root);
	assert_int_equal(err.line, 0);
	assert_string_equal(err.msg, "file too large (over 1 MiB)");

	snprintf(path, sizeof(path), "%s/missing.yaml", tmpdir);
	root = (struct yaml_tree_node *)&root;
	assert_int_equal(yaml_tree_parse_file(path, &root, &err), -ENOENT);
	assert_null(root);
	assert_int_equal(err.line, 0);
	assert_string_equal(err.msg, "cannot open: No such file or directory");

	/* A directory opens but cannot be read. */
	assert_int_equal(yaml_tree_parse_file(tmpdir, &root, &err), -EISDIR);
	assert_string_equal(err.msg, "cannot read: Is a directory");

	snprintf(path, sizeof(path), "%s/empty.yaml", tmpdir);
	write_file(path, "", 0);
	root = (struct yaml_tree_node *)&root;
	assert_int_equal(yaml_tree_parse_file(path, &root, &err), 0);
	assert_null(root);

	snprintf(path, sizeof(path), "%s/bad.yaml", tmpdir);
	write_file(path, "a: 1\na: 2\n", 10);
	assert_int_equal(yaml_tree_parse_file(path, &root, &err), -EINVAL);
	assert_int_equal(err.line, 2);
	assert_string_equal(err.msg, "duplicate key 'a' (first at 1:1)");
}

static void
test_excerpt(void **state)
{
	char buf[16], tiny[4], none[1] = { 'x' };

	(void)state;
	assert_string_equal(yaml_tree_excerpt("plain", buf, sizeof(buf)),
	    "plain");
	assert_string_equal(yaml_tree_excerpt("a\nb\tc\x01\x7f", buf,
	    sizeof(buf)), "a\\nb\\tc\\x01\\x7f");
	/* 15 characters fit exactly; 16 do not. */
	assert_string_equal(yaml_tree_excerpt("123456789012345", buf,
	    sizeof(buf)), "123456789012345");
	assert_string_equal(yaml_tree_excerpt("1234567890123456", buf,
	    sizeof(buf)), "123456789012...");
	/* An escape is never cut in half. */
	assert_string_equal(yaml_tree_excerpt("12345678901\n3456", buf,
	    sizeof(buf)), "12345678901...");
	/* Nor a UTF-8 sequence: é is two bytes. */
	assert_string_equal(yaml_tree_excerpt("12345678901\xc3\xa9zzzz", buf,
	    sizeof(buf)), "12345678901...");
	assert_string_equal(yaml_tree_excerpt("1234567890\xc3\xa9zzzz", buf,
	    sizeof(buf)), "1234567890\xc3\xa9...");
	/* Unicode line breaks would split an error line too. */
	assert_string_equal(yaml_tree_excerpt("a\xc2\x85" "b\xe2\x80\xa8" "c",
	    buf, sizeof(buf)), "a\\u0085b\\u2028c");
	assert_string_equal(yaml_tree_excerpt("\xe2\x80\xa9", buf,
	    sizeof(buf)), "\\u2029");
	assert_string_equal(yaml_tree_excerpt("\xc2\x9b" "1m\xc2\xa0", buf,
	    sizeof(buf)), "\\u009b1m\xc2\xa0");
	assert_string_equal(yaml_tree_excerpt("abcdef", tiny, sizeof(tiny)),
	    "...");
	assert_string_equal(yaml_tree_excerpt("abc", tiny, sizeof(tiny)),
	    "abc");
	assert_ptr_equal(yaml_tree_excerpt("abc", none, 0), none);
	assert_int_equal(none[0], 'x');
	assert_string_equal(yaml_tree_excerpt("abc", none, 1), "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shape_and_positions),
		cmocka_unit_test(test_scalar_styles),
		cmocka_unit_test(test_nulls),
		cmocka_unit_test(test_empty_documents),
		cmocka_unit_test(test_refuse_anchors_aliases),
		cmocka_unit_test(test_refuse_duplicates),
		cmocka_unit_test(test_refuse_structure),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_excerpt),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
