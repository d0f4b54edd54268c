/*
 * Tables for people: a header line and rows, columns two spaces apart,
 * widths computed from the cells. Cells are cleaned (ctl_fmt_clean) when
 * added and may carry a colour, which never counts towards the width.
 * The last column is never padded and no line ends in a space.
 *
 * Adding cells never fails visibly: an error (out of memory, a cell
 * beyond the last column) is kept and returned by ctl_table_write(), so
 * the code that fills a table is not a wall of checks.
 */
#ifndef TROIKA_CTL_TABLE_H
#define TROIKA_CTL_TABLE_H

#include <stddef.h>

#include "ctl_fmt.h"

struct evbuffer;
struct ctl_table;

enum ctl_align {
	CTL_ALIGN_LEFT = 0,
	CTL_ALIGN_RIGHT, /* numbers */
};

/* A table with ncols columns and their headers (copied). NULL: ENOMEM. */
struct ctl_table *ctl_table_new(const char *const *headers, size_t ncols);
void ctl_table_free(struct ctl_table *t);

void ctl_table_align(struct ctl_table *t, size_t col, enum ctl_align align);

/* Start a row; its cells follow, in column order. Missing ones are "". */
void ctl_table_row(struct ctl_table *t);
/* The next cell of the current row. NULL text is "". */
void ctl_table_cell(
    struct ctl_table *t, enum ctl_color color, const char *text);
void ctl_table_cellf(struct ctl_table *t, enum ctl_color color, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

size_t ctl_table_nrows(const struct ctl_table *t);

/*
 * Append the header and every row to out; with color, the headers are
 * bold and the cells in their colours. Returns 0, or the first error
 * met while filling the table (-ENOMEM, -EINVAL).
 */
int ctl_table_write(const struct ctl_table *t, int color, struct evbuffer *out);

#endif
