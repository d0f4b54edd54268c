/*
 * Unit tests of core/ctl/ctl_table.c: widths from headers and cells,
 * alignment, empty tables and cells, no trailing spaces, foreign text
 * cleaned and measured in code points, colours that take no width, and
 * misuse reported by ctl_table_write().
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "ctl_table.h"

/* The table's output as a string (freed by the caller). */
static char *
render(const struct ctl_table *t, int color, int expect)
{
	struct evbuffer *b = evbuffer_new();
	size_t len;
	char *s;

	assert_non_null(b);
	assert_int_equal(ctl_table_write(t, color, b), expect);
	len = evbuffer_get_length(b);
	s = malloc(len + 1);
	assert_non_null(s);
	evbuffer_remove(b, s, len);
	s[len] = '\0';
	evbuffer_free(b);
	return s;
}

static void
test_widths_and_alignment(void **state)
{
	static const char *const h[] = {"NODE", "STATUS", "RUNS", "MESSAGE"};
	struct ctl_table *t = ctl_table_new(h, 4);
	char *s;

	(void)state;
	assert_non_null(t);
	ctl_table_align(t, 2, CTL_ALIGN_RIGHT);
	ctl_table_row(t);
	ctl_table_cell(t, CTL_COLOR_NONE, "node-1");
	ctl_table_cell(t, CTL_COLOR_GREEN, "OK");
	ctl_table_cellf(t, CTL_COLOR_NONE, "%d", 7);
	ctl_table_cell(t, CTL_COLOR_NONE, "fine");
	ctl_table_row(t);
	ctl_table_cell(t, CTL_COLOR_NONE, "n2");
	ctl_table_cell(t, CTL_COLOR_RED, "CRITICAL");
	ctl_table_cellf(t, CTL_COLOR_NONE, "%d", 12345);
	ctl_table_cell(t, CTL_COLOR_NONE, "connection refused");
	assert_int_equal(ctl_table_nrows(t), 2);
	s = render(t, 0, 0);
	assert_string_equal(s,
	    "NODE    STATUS     RUNS  MESSAGE\n"
	    "node-1  OK            7  fine\n"
	    "n2      CRITICAL  12345  connection refused\n");
	free(s);
	ctl_table_free(t);
}

static void
test_empty_table_and_cells(void **state)
{
	static const char *const h[] = {"A", "LONGER", "C"};
	struct ctl_table *t = ctl_table_new(h, 3);
	char *s;

	(void)state;
	assert_non_null(t);
	/* No rows: the header alone. */
	s = render(t, 0, 0);
	assert_string_equal(s, "A  LONGER  C\n");
	free(s);
	/* Empty and missing cells: padded where something follows, and no
	 * line ends in a space. */
	ctl_table_row(t);
	ctl_table_cell(t, CTL_COLOR_NONE, "x");
	ctl_table_cell(t, CTL_COLOR_NONE, "");
	ctl_table_cell(t, CTL_COLOR_NONE, "z");
	ctl_table_row(t);
	ctl_table_cell(t, CTL_COLOR_NONE, "x");
	ctl_table_cell(t, CTL_COLOR_NONE, NULL);
	ctl_table_row(t);
	ctl_table_row(t);
	ctl_table_cell(t, CTL_COLOR_NONE, "");
	ctl_table_cell(t, CTL_COLOR_NONE, "y");
	s = render(t, 0, 0);
	assert_string_equal(s,
	    "A  LONGER  C\n"
	    "x          z\n"
	    "x\n"
	    "\n"
	    "   y\n");
	free(s);
	ctl_table_free(t);
}

static void
test_foreign_text(void **state)
{
	static const char *const h[] = {"WHO", "MSG", "END"};
	struct ctl_table *t = ctl_table_new(h, 3);
	char *s;

	(void)state;
	assert_non_null(t);
	ctl_table_row(t);
	/* Two code points, four bytes: two columns. */
	ctl_table_cell(t, CTL_COLOR_NONE, "\xc3\xa9\xc3\xa9");
	/* ESC, a newline, a lone 0xff: escaped or replaced. */
	ctl_table_cell(t, CTL_COLOR_NONE, "a\033[31mb\nc\xff");
	ctl_table_cell(t, CTL_COLOR_NONE, "|");
	ctl_table_row(t);
	ctl_table_cell(t, CTL_COLOR_NONE, "abcd");
	ctl_table_cell(t, CTL_COLOR_NONE, "-");
	ctl_table_cell(t, CTL_COLOR_NONE, "|");
	s = render(t, 0, 0);
	assert_string_equal(s,
	    "WHO   MSG"
	    "             "
	    "END\n"
	    "\xc3\xa9\xc3\xa9    a\\x1b[31mb\\nc\xef\xbf\xbd  |\n"
	    "abcd  -"
	    "               "
	    "|\n");
	free(s);
	ctl_table_free(t);
}

static void
test_colors_take_no_width(void **state)
{
	static const char *const h[] = {"S", "X"};
	struct ctl_table *t = ctl_table_new(h, 2);
	char *s;

	(void)state;
	assert_non_null(t);
	ctl_table_row(t);
	ctl_table_cell(t, CTL_COLOR_RED, "CRIT");
	ctl_table_cell(t, CTL_COLOR_NONE, "x");
	ctl_table_row(t);
	ctl_table_cell(t, CTL_COLOR_GREEN, "OK");
	ctl_table_cell(t, CTL_COLOR_NONE, "y");
	s = render(t, 1, 0);
	assert_string_equal(s,
	    "\033[1mS\033[0m     \033[1mX\033[0m\n"
	    "\033[31mCRIT\033[0m  x\n"
	    "\033[32mOK\033[0m    y\n");
	free(s);
	s = render(t, 0, 0);
	assert_string_equal(s, "S     X\nCRIT  x\nOK    y\n");
	free(s);
	ctl_table_free(t);
}

static void
test_many_rows_and_wide_cells(void **state)
{
	static const char *const h[] = {"N", "TEXT"};
	struct ctl_table *t = ctl_table_new(h, 2);
	char wide[101];
	char *s, *line;
	size_t lines = 0;

	(void)state;
	assert_non_null(t);
	memset(wide, 'w', 100);
	wide[100] = '\0';
	for (int i = 0; i < 1000; i++) {
		ctl_table_row(t);
		ctl_table_cellf(t, CTL_COLOR_NONE, "%d", i);
		ctl_table_cell(t, CTL_COLOR_NONE, i == 500 ? wide : "t");
	}
	s = render(t, 0, 0);
	/* Every line: the first column is 3 wide, then two spaces. */
	for (line = s; *line != '\0'; line = strchr(line, '\n') + 1) {
		assert_true(line[3] == ' ' && line[4] == ' ' && line[5] != ' ');
		lines++;
	}
	assert_int_equal(lines, 1001);
	assert_non_null(strstr(s,
	    "500  "
	    "wwww"));
	free(s);
	ctl_table_free(t);
}

static void
test_misuse(void **state)
{
	static const char *const h[] = {"A"};
	struct ctl_table *t;
	char *s;

	(void)state;
	assert_null(ctl_table_new(h, 0));
	/* A cell before any row. */
	t = ctl_table_new(h, 1);
	assert_non_null(t);
	ctl_table_cell(t, CTL_COLOR_NONE, "x");
	s = render(t, 0, -EINVAL);
	assert_string_equal(s, "");
	free(s);
	ctl_table_free(t);
	/* One cell too many. */
	t = ctl_table_new(h, 1);
	assert_non_null(t);
	ctl_table_row(t);
	ctl_table_cell(t, CTL_COLOR_NONE, "x");
	ctl_table_cell(t, CTL_COLOR_NONE, "y");
	free(render(t, 0, -EINVAL));
	ctl_table_free(t);
	/* A column that does not exist. */
	t = ctl_table_new(h, 1);
	assert_non_null(t);
	ctl_table_align(t, 1, CTL_ALIGN_RIGHT);
	free(render(t, 0, -EINVAL));
	ctl_table_free(t);
	ctl_table_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_widths_and_alignment),
	    cmocka_unit_test(test_empty_table_and_cells),
	    cmocka_unit_test(test_foreign_text),
	    cmocka_unit_test(test_colors_take_no_width),
	    cmocka_unit_test(test_many_rows_and_wide_cells),
	    cmocka_unit_test(test_misuse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
