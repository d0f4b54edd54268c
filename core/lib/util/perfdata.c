#include "perfdata.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/*
 * Plugin output is untrusted: a broken or hostile plugin may print anything.
 * Every scan below is bounded by an end pointer, and the number of items
 * kept is capped so one check cannot flood the metrics.
 */
#define PERFDATA_MAX_ITEMS 1024
/* Longer numbers than this are not measurements anyone prints. */
#define PERFDATA_NUMBER_MAX 64

static const struct {
	const char *uom;
	enum perfdata_unit unit;
	double mul; /* value * mul / div is the base unit */
	double div;
} perfdata_units[] = {
	{ "s", PERFDATA_UNIT_SECONDS, 1, 1 },
	{ "ms", PERFDATA_UNIT_SECONDS, 1, 1e3 },
	{ "us", PERFDATA_UNIT_SECONDS, 1, 1e6 },
	{ "%", PERFDATA_UNIT_PERCENT, 1, 1 },
	{ "B", PERFDATA_UNIT_BYTES, 1, 1 },
	{ "KB", PERFDATA_UNIT_BYTES, 1024.0, 1 },
	{ "MB", PERFDATA_UNIT_BYTES, 1024.0 * 1024, 1 },
	{ "GB", PERFDATA_UNIT_BYTES, 1024.0 * 1024 * 1024, 1 },
	{ "TB", PERFDATA_UNIT_BYTES, 1024.0 * 1024 * 1024 * 1024, 1 },
	{ "c", PERFDATA_UNIT_COUNTER, 1, 1 },
};

#define PERFDATA_NUNITS (sizeof(perfdata_units) / sizeof(perfdata_units[0]))

/* A bounded span of the output. */
struct perfdata_span {
	const char *p;
	const char *end;
};

static int
perfdata_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
	    c == '\f';
}

static char *
perfdata_strndup(const char *s, size_t n)
{
	char *d;

	if ((d = malloc(n + 1)) == NULL)
		return NULL;
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

/*
 * A decimal number filling [p, end) exactly or a prefix of it: optional
 * sign, digits with an optional fraction, optional exponent. No "inf",
 * "nan" or hex, which strtod would take. Returns the end of the number,
 * or NULL if there is none or it is not finite.
 */
static const char *
perfdata_number(const char *p, const char *end, double *ret)
{
	char buf[PERFDATA_NUMBER_MAX];
	const char *s = p;
	size_t ndigits = 0;
	double v;

	if (s < end && (*s == '-' || *s == '+'))
		s++;
	for (; s < end && *s >= '0' && *s <= '9'; s++)
		ndigits++;
	if (s < end && *s == '.')
		for (s++; s < end && *s >= '0' && *s <= '9'; s++)
			ndigits++;
	if (ndigits == 0)
		return NULL;
	if (s < end && (*s == 'e' || *s == 'E')) {
		const char *e = s + 1;

		if (e < end && (*e == '-' || *e == '+'))
			e++;
		if (e < end && *e >= '0' && *e <= '9') {
			while (e < end && *e >= '0' && *e <= '9')
				e++;
			s = e;
		}
	}
	if ((size_t)(s - p) >= sizeof(buf))
		return NULL;
	/* strtod needs a terminated string; the output is not one. */
	memcpy(buf, p, (size_t)(s - p));
	buf[s - p] = '\0';
	v = strtod(buf, NULL);
	if (!isfinite(v))
		return NULL;
	*ret = v;
	return s;
}

/*
 * warn, crit, min or max: the number when the field is one plain number,
 * NAN when empty, a range ("10:20", "~:5", "@10:20") or anything else.
 */
static double
perfdata_threshold(const char *p, const char *end, double mul, double div)
{
	double v;

	if (perfdata_number(p, end, &v) != end)
		return NAN;
	v = v * mul / div;
	return isfinite(v) ? v : NAN;
}

/* Split [p, end) at the first ';'; *ret_next is after it, or end. */
static const char *
perfdata_field(const char *p, const char *end, const char **ret_next)
{
	const char *semi = memchr(p, ';', (size_t)(end - p));

	if (semi == NULL) {
		*ret_next = end;
		return end;
	}
	*ret_next = semi + 1;
	return semi;
}

/*
 * value[UOM];[warn];[crit];[min];[max] in [p, end). Fields after max are
 * ignored. Returns 0, or -EINVAL when the value is missing, "U" (unknown)
 * or not a number.
 */
static int
perfdata_parse_values(const char *p, const char *end,
    struct perfdata_item *ret)
{
	const char *fend, *next, *num;
	double v, mul = 1, div = 1;
	double *thr[4] = { &ret->warn, &ret->crit, &ret->min, &ret->max };
	size_t i, n;

	fend = perfdata_field(p, end, &next);
	if ((num = perfdata_number(p, fend, &v)) == NULL)
		return -EINVAL; /* also "U", the plugin could not measure */
	ret->unit = PERFDATA_UNIT_NONE;
	n = (size_t)(fend - num);
	/* "1.2.3", "1,5", "0x10": a broken number, not a unit. */
	for (i = 0; i < n; i++)
		if ((num[i] >= '0' && num[i] <= '9') || num[i] == '.' ||
		    num[i] == ',' || num[i] == '+' || num[i] == '-')
			return -EINVAL;
	for (i = 0; i < PERFDATA_NUNITS; i++) {
		if (strlen(perfdata_units[i].uom) == n &&
		    memcmp(perfdata_units[i].uom, num, n) == 0) {
			ret->unit = perfdata_units[i].unit;
			mul = perfdata_units[i].mul;
			div = perfdata_units[i].div;
			break;
		}
	}
	ret->value = v * mul / div;
	if (!isfinite(ret->value))
		return -EINVAL;

	/* An absent field and an empty one both read as NAN. */
	for (i = 0; i < 4; i++) {
		*thr[i] = NAN;
		if (next >= end)
			continue;
		p = next;
		fend = perfdata_field(p, end, &next);
		*thr[i] = perfdata_threshold(p, fend, mul, div);
	}
	return 0;
}

/*
 * The label at the start of a token: 'quoted' ('' is a quote inside) or
 * bare up to '='. On success *ret_start and *ret_len give the label as
 * written (without the outer quotes) and the return value points after the
 * '='. Returns NULL when the token is not label=..., with *ret_resume set
 * to where scanning should continue.
 */
static const char *
perfdata_label(const char *p, const char *end, const char **ret_start,
    size_t *ret_len, int *ret_quoted, const char **ret_resume)
{
	const char *s;

	*ret_quoted = 0;
	if (*p == '\'') {
		for (s = p + 1; s < end; s++) {
			if (*s != '\'')
				continue;
			if (s + 1 < end && s[1] == '\'') {
				s++;
				continue;
			}
			break;
		}
		if (s >= end || s + 1 >= end || s[1] != '=' || s == p + 1) {
			/*
			 * No closing quote, no '=' after it, or ''=: resume
			 * at the next blank after the opening quote, so one
			 * stray quote costs one item, not the rest.
			 */
			for (s = p; s < end && !perfdata_is_space(*s); s++)
				;
			*ret_resume = s;
			return NULL;
		}
		*ret_start = p + 1;
		*ret_len = (size_t)(s - p - 1);
		*ret_quoted = 1;
		return s + 2;
	}
	for (s = p; s < end && *s != '=' && !perfdata_is_space(*s); s++)
		;
	if (s >= end || *s != '=' || s == p) {
		for (; s < end && !perfdata_is_space(*s); s++)
			;
		*ret_resume = s;
		return NULL;
	}
	*ret_start = p;
	*ret_len = (size_t)(s - p);
	return s + 1;
}

/* A copy of the label with '' turned into ' when it was quoted. */
static char *
perfdata_label_copy(const char *s, size_t n, int quoted)
{
	char *d, *o;

	if ((d = malloc(n + 1)) == NULL)
		return NULL;
	o = d;
	for (size_t i = 0; i < n; i++) {
		*o++ = s[i];
		if (quoted && s[i] == '\'' && i + 1 < n && s[i + 1] == '\'')
			i++;
	}
	*o = '\0';
	return d;
}

static int
perfdata_add(struct perfdata *pd, size_t *cap, const struct perfdata_item *it,
    const char *label, size_t label_len, int quoted)
{
	struct perfdata_item *items;
	char *copy;

	if (pd->nitems == *cap) {
		size_t ncap = *cap == 0 ? 8 : *cap * 2;

		if (ncap > PERFDATA_MAX_ITEMS)
			ncap = PERFDATA_MAX_ITEMS;
		items = realloc(pd->items, ncap * sizeof(*items));
		if (items == NULL)
			return -ENOMEM;
		pd->items = items;
		*cap = ncap;
	}
	if ((copy = perfdata_label_copy(label, label_len, quoted)) == NULL)
		return -ENOMEM;
	pd->items[pd->nitems] = *it;
	pd->items[pd->nitems].label = copy;
	pd->nitems++;
	return 0;
}

/* Every label=values token of a span; blanks (newlines too) separate them. */
static int
perfdata_parse_span(struct perfdata *pd, size_t *cap, struct perfdata_span sp)
{
	const char *p = sp.p, *end = sp.end;
	int r;

	for (;;) {
		struct perfdata_item it;
		const char *label, *vals, *tok_end, *resume;
		size_t label_len;
		int quoted;

		while (p < end && perfdata_is_space(*p))
			p++;
		if (p >= end)
			return 0;
		vals = perfdata_label(p, end, &label, &label_len, &quoted,
		    &resume);
		if (vals == NULL) {
			pd->nbad++;
			p = resume;
			continue;
		}
		tok_end = vals;
		while (tok_end < end && !perfdata_is_space(*tok_end))
			tok_end++;
		p = tok_end;
		memset(&it, 0, sizeof(it));
		if (perfdata_parse_values(vals, tok_end, &it) < 0) {
			pd->nbad++;
			continue;
		}
		/* Past the cap, items are counted, not kept. */
		if (pd->nitems >= PERFDATA_MAX_ITEMS) {
			pd->nbad++;
			continue;
		}
		if ((r = perfdata_add(pd, cap, &it, label, label_len,
		    quoted)) < 0)
			return r;
	}
}

int
perfdata_parse(const char *output, size_t len, struct perfdata *ret)
{
	struct perfdata pd;
	struct perfdata_span first = { NULL, NULL }, later = { NULL, NULL };
	const char *end, *nl, *bar, *t, *tend;
	size_t cap = 0;
	int r;

	if (ret == NULL)
		return -EINVAL;
	memset(&pd, 0, sizeof(pd));
	memset(ret, 0, sizeof(*ret));
	if (output == NULL || len == 0) {
		output = "";
		len = 0;
	}
	/*
	 * The output ends at the first NUL: that is what a C string consumer
	 * of the same output (a log line, the check message) sees.
	 */
	if ((end = memchr(output, '\0', len)) != NULL)
		len = (size_t)(end - output);
	end = output + len;

	/* First line: TEXT [| PERFDATA]. */
	if ((nl = memchr(output, '\n', len)) == NULL)
		nl = end;
	tend = nl;
	if ((bar = memchr(output, '|', (size_t)(nl - output))) != NULL) {
		tend = bar;
		first.p = bar + 1;
		first.end = nl;
	}
	t = output;
	while (t < tend && perfdata_is_space(*t))
		t++;
	while (tend > t && perfdata_is_space(tend[-1]))
		tend--;
	if ((pd.text = perfdata_strndup(t, (size_t)(tend - t))) == NULL) {
		r = -ENOMEM;
		goto fail;
	}

	/*
	 * Later lines are long text up to the first '|'; everything after it,
	 * over any number of lines, is more perfdata.
	 */
	if (nl < end &&
	    (bar = memchr(nl + 1, '|', (size_t)(end - nl - 1))) != NULL) {
		later.p = bar + 1;
		later.end = end;
	}

	if (first.p != NULL && (r = perfdata_parse_span(&pd, &cap, first)) < 0)
		goto fail;
	if (later.p != NULL && (r = perfdata_parse_span(&pd, &cap, later)) < 0)
		goto fail;
	*ret = pd;
	return 0;

fail:
	perfdata_free(&pd);
	return r;
}

void
perfdata_free(struct perfdata *pd)
{
	if (pd == NULL)
		return;
	for (size_t i = 0; i < pd->nitems; i++)
		free(pd->items[i].label);
	free(pd->items);
	free(pd->text);
	memset(pd, 0, sizeof(*pd));
}

char *
perfdata_label_to_metric(const char *label, char *buf, size_t len)
{
	size_t o = 0;
	int in_run = 0;

	if (len == 0)
		return buf;
	if (label == NULL)
		label = "";
	for (const char *s = label; *s != '\0' && o + 1 < len; s++) {
		char c = *s;

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '_') {
			if (o == 0 && c >= '0' && c <= '9') {
				buf[o++] = '_';
				if (o + 1 >= len)
					break;
			}
			buf[o++] = c;
			in_run = 0;
		} else if (!in_run) {
			buf[o++] = '_';
			in_run = 1;
		}
	}
	buf[o] = '\0';
	return buf;
}
