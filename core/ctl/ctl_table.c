/*
 * Tables for people (see ctl_table.h). Cells are kept cleaned, with their
 * width, until ctl_table_write() knows every column's width.
 */
#include "ctl_table.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

/* Columns are this many spaces apart. */
#define CTL_TABLE_GAP 2

struct ctl_cell {
	char *text; /* cleaned; NULL is "" */
	size_t width;
	enum ctl_color color;
};

struct ctl_table {
	size_t ncols;
	struct ctl_cell *headers;
	enum ctl_align *align;
	struct ctl_cell *cells; /* nrows * ncols */
	size_t nrows;
	size_t cap;  /* rows allocated */
	size_t next; /* next column of the current row */
	int err;
};

/* Clean text into a new cell. */
static int
ctl_cell_set(struct ctl_cell *c, enum ctl_color color, const char *text)
{
	struct evbuffer *b;
	size_t len;
	int w;

	if ((b = evbuffer_new()) == NULL)
		return -ENOMEM;
	if ((w = ctl_fmt_clean(b, text)) < 0)
		goto fail;
	len = evbuffer_get_length(b);
	if ((c->text = malloc(len + 1)) == NULL)
		goto fail;
	evbuffer_remove(b, c->text, len);
	c->text[len] = '\0';
	c->width = (size_t)w;
	c->color = color;
	evbuffer_free(b);
	return 0;
fail:
	evbuffer_free(b);
	return -ENOMEM;
}

struct ctl_table *
ctl_table_new(const char *const *headers, size_t ncols)
{
	struct ctl_table *t;

	if (ncols == 0)
		return NULL;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->ncols = ncols;
	if ((t->headers = calloc(ncols, sizeof(*t->headers))) == NULL ||
	    (t->align = calloc(ncols, sizeof(*t->align))) == NULL)
		goto fail;
	for (size_t i = 0; i < ncols; i++)
		if (ctl_cell_set(&t->headers[i], CTL_COLOR_BOLD, headers[i]) !=
		    0)
			goto fail;
	return t;
fail:
	ctl_table_free(t);
	return NULL;
}

void
ctl_table_free(struct ctl_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; t->headers != NULL && i < t->ncols; i++)
		free(t->headers[i].text);
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i].text);
	free(t->headers);
	free(t->align);
	free(t->cells);
	free(t);
}

void
ctl_table_align(struct ctl_table *t, size_t col, enum ctl_align align)
{
	if (col >= t->ncols) {
		t->err = t->err != 0 ? t->err : -EINVAL;
		return;
	}
	t->align[col] = align;
}

void
ctl_table_row(struct ctl_table *t)
{
	if (t->err != 0)
		return;
	if (t->nrows == t->cap) {
		size_t cap = t->cap > 0 ? t->cap * 2 : 16;
		struct ctl_cell *c;

		if ((c = reallocarray(t->cells, cap * t->ncols, sizeof(*c))) ==
		    NULL) {
			t->err = -ENOMEM;
			return;
		}
		memset(c + t->cap * t->ncols, 0,
		    (cap - t->cap) * t->ncols * sizeof(*c));
		t->cells = c;
		t->cap = cap;
	}
	t->nrows++;
	t->next = 0;
}

void
ctl_table_cell(struct ctl_table *t, enum ctl_color color, const char *text)
{
	if (t->err != 0)
		return;
	if (t->nrows == 0 || t->next >= t->ncols) {
		t->err = -EINVAL;
		return;
	}
	if (ctl_cell_set(&t->cells[(t->nrows - 1) * t->ncols + t->next], color,
	        text) != 0) {
		t->err = -ENOMEM;
		return;
	}
	t->next++;
}

void
ctl_table_cellf(struct ctl_table *t, enum ctl_color color, const char *fmt, ...)
{
	char *s;
	va_list ap;
	int n;

	if (t->err != 0)
		return;
	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		t->err = -ENOMEM;
		return;
	}
	ctl_table_cell(t, color, s);
	free(s);
}

size_t
ctl_table_nrows(const struct ctl_table *t)
{
	return t->nrows;
}

static int
ctl_table_pad(struct evbuffer *out, size_t n)
{
	static const char spaces[] = "                                ";

	while (n > 0) {
		size_t k = n < sizeof(spaces) - 1 ? n : sizeof(spaces) - 1;

		if (evbuffer_add(out, spaces, k) != 0)
			return -ENOMEM;
		n -= k;
	}
	return 0;
}

static int
ctl_table_line(const struct ctl_table *t, const struct ctl_cell *cells,
    const size_t *widths, int color, struct evbuffer *out)
{
	size_t last = 0; /* one past the last non-empty cell */
	int r = 0;

	for (size_t i = 0; i < t->ncols; i++)
		if (cells[i].width > 0)
			last = i + 1;
	for (size_t i = 0; i < last && r == 0; i++) {
		const struct ctl_cell *c = &cells[i];
		size_t fill = widths[i] - c->width;
		const char *on = color ? ctl_color_on(c->color) : "";

		if (i > 0)
			r = ctl_table_pad(out, CTL_TABLE_GAP);
		if (r == 0 && t->align[i] == CTL_ALIGN_RIGHT)
			r = ctl_table_pad(out, fill);
		if (r == 0 && c->text != NULL &&
		    evbuffer_add_printf(out, "%s%s%s", on, c->text,
		        *on != '\0' ? CTL_COLOR_OFF : "") < 0)
			r = -ENOMEM;
		/* Left-aligned: pad, unless nothing follows. */
		if (r == 0 && t->align[i] == CTL_ALIGN_LEFT && i + 1 < last)
			r = ctl_table_pad(out, fill);
	}
	if (r == 0 && evbuffer_add(out, "\n", 1) != 0)
		r = -ENOMEM;
	return r;
}

int
ctl_table_write(const struct ctl_table *t, int color, struct evbuffer *out)
{
	size_t *widths;
	int r;

	if (t->err != 0)
		return t->err;
	if ((widths = calloc(t->ncols, sizeof(*widths))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < t->ncols; i++) {
		widths[i] = t->headers[i].width;
		for (size_t row = 0; row < t->nrows; row++)
			if (t->cells[row * t->ncols + i].width > widths[i])
				widths[i] = t->cells[row * t->ncols + i].width;
	}
	r = ctl_table_line(t, t->headers, widths, color, out);
	for (size_t row = 0; row < t->nrows && r == 0; row++)
		r = ctl_table_line(
		    t, &t->cells[row * t->ncols], widths, color, out);
	free(widths);
	return r;
}
