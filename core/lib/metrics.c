#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "procfs.h"

/* Doubles hold every integer up to 2^53 exactly. */
#define METRICS_EXACT_INT 9007199254740992.0

static int
metrics_is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int
metrics_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int
metrics_name_valid(const char *name)
{
	if (name == NULL || *name == '\0')
		return 0;
	if (!metrics_is_alpha(*name) && *name != ':')
		return 0;
	for (name++; *name != '\0'; name++)
		if (!metrics_is_alpha(*name) && !metrics_is_digit(*name) &&
		    *name != ':')
			return 0;
	return 1;
}

int
metrics_label_name_valid(const char *name)
{
	if (name == NULL || !metrics_is_alpha(*name))
		return 0;
	/* Names starting with "__" are reserved for Prometheus itself. */
	if (name[0] == '_' && name[1] == '_')
		return 0;
	for (name++; *name != '\0'; name++)
		if (!metrics_is_alpha(*name) && !metrics_is_digit(*name))
			return 0;
	return 1;
}

/*
 * Copy s, with backslash and newline escaped, and the double quote too when
 * quote is set (label values; HELP text keeps its quotes). Runs without
 * special bytes go out in one piece.
 */
static void
metrics_escape(struct evbuffer *out, const char *s, int quote)
{
	const char *run = s;

	for (; *s != '\0'; s++) {
		const char *esc;

		if (*s == '\\')
			esc = "\\\\";
		else if (*s == '\n')
			esc = "\\n";
		else if (*s == '"' && quote)
			esc = "\\\"";
		else
			continue;
		if (s > run)
			evbuffer_add(out, run, (size_t)(s - run));
		evbuffer_add(out, esc, 2);
		run = s + 1;
	}
	if (s > run)
		evbuffer_add(out, run, (size_t)(s - run));
}

void
metrics_escape_label_value(struct evbuffer *out, const char *value)
{
	metrics_escape(out, value != NULL ? value : "", 1);
}

/*
 * HELP and TYPE are both optional in the format: a NULL help (samples
 * reported without one) or type leaves its line out.
 */
void
metrics_family(struct evbuffer *out, const char *name, const char *type,
    const char *help)
{
	if (help != NULL) {
		evbuffer_add_printf(out, "# HELP %s ", name);
		metrics_escape(out, help, 0);
		evbuffer_add(out, "\n", 1);
	}
	if (type != NULL)
		evbuffer_add_printf(out, "# TYPE %s %s\n", name, type);
}

char *
metrics_format_value(double v, char *buf, size_t len)
{
	if (len == 0)
		return buf;
	if (isnan(v)) {
		snprintf(buf, len, "NaN");
		return buf;
	}
	if (isinf(v)) {
		snprintf(buf, len, "%s", v > 0 ? "+Inf" : "-Inf");
		return buf;
	}
	/* Counters and most gauges: plain integers, no exponent. */
	if (v > -METRICS_EXACT_INT && v < METRICS_EXACT_INT &&
	    v == (double)(long long)v) {
		snprintf(buf, len, "%lld", (long long)v);
		return buf;
	}
	/*
	 * The fewest significant digits that read back as the same double;
	 * 17 always do.
	 */
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, len, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	return buf;
}

static void
metrics_label(struct evbuffer *out, const struct troika_label *l, int first)
{
	evbuffer_add_printf(out, "%s%s=\"", first ? "" : ",", l->name);
	metrics_escape_label_value(out, l->value);
	evbuffer_add(out, "\"", 1);
}

/* name + suffix, labels (and extra), value: one sample line. */
static void
metrics_sample_line(struct evbuffer *out, const char *name,
    const char *suffix, const struct troika_label *labels, size_t nlabels,
    const struct troika_label *extra, double value)
{
	char num[32];
	int first = 1;

	evbuffer_add_printf(out, "%s%s", name, suffix);
	if (nlabels > 0 || extra != NULL) {
		evbuffer_add(out, "{", 1);
		for (size_t i = 0; i < nlabels; i++) {
			if (labels[i].name == NULL)
				continue;
			metrics_label(out, &labels[i], first);
			first = 0;
		}
		if (extra != NULL && extra->name != NULL)
			metrics_label(out, extra, first);
		evbuffer_add(out, "}", 1);
	}
	evbuffer_add_printf(out, " %s\n",
	    metrics_format_value(value, num, sizeof(num)));
}

void
metrics_sample(struct evbuffer *out, const char *name,
    const struct troika_label *labels, size_t nlabels,
    const struct troika_label *extra, double value)
{
	metrics_sample_line(out, name, "", labels, nlabels, extra, value);
}

int
metrics_histogram_init(struct metrics_histogram *h, const double *bounds,
    size_t nbounds)
{
	memset(h, 0, sizeof(*h));
	if (nbounds > 0 && bounds == NULL)
		return -EINVAL;
	/* +Inf is implied; the others must be finite and strictly rising. */
	for (size_t i = 0; i < nbounds; i++) {
		if (!isfinite(bounds[i]))
			return -EINVAL;
		if (i > 0 && !(bounds[i] > bounds[i - 1]))
			return -EINVAL;
	}
	if ((h->counts = calloc(nbounds + 1, sizeof(*h->counts))) == NULL)
		return -ENOMEM;
	h->bounds = bounds;
	h->nbounds = nbounds;
	return 0;
}

void
metrics_histogram_observe(struct metrics_histogram *h, double v)
{
	size_t lo = 0, hi = h->nbounds;

	if (h->counts == NULL)
		return;
	/*
	 * The first bucket whose bound is >= v ("le": a value equal to a
	 * bound belongs to it). NaN is below no bound: +Inf.
	 */
	if (isnan(v))
		lo = h->nbounds;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v <= h->bounds[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	h->counts[lo]++;
	h->sum += v;
	h->count++;
}

void
metrics_histogram_write(struct evbuffer *out, const char *name,
    const struct troika_label *labels, size_t nlabels,
    const struct metrics_histogram *h)
{
	struct troika_label le = { "le", NULL };
	uint64_t cumulative = 0;
	char num[32];

	if (h->counts == NULL)
		return;
	for (size_t i = 0; i < h->nbounds; i++) {
		cumulative += h->counts[i];
		le.value = metrics_format_value(h->bounds[i], num, sizeof(num));
		metrics_sample_line(out, name, "_bucket", labels, nlabels, &le,
		    (double)cumulative);
	}
	cumulative += h->counts[h->nbounds];
	le.value = "+Inf";
	metrics_sample_line(out, name, "_bucket", labels, nlabels, &le,
	    (double)cumulative);
	metrics_sample_line(out, name, "_sum", labels, nlabels, NULL, h->sum);
	metrics_sample_line(out, name, "_count", labels, nlabels, NULL,
	    (double)h->count);
}

void
metrics_histogram_free(struct metrics_histogram *h)
{
	if (h == NULL)
		return;
	free(h->counts);
	memset(h, 0, sizeof(*h));
}

int
metrics_write_process(struct evbuffer *out)
{
	struct procfs_stats st;
	int r;

	if (out == NULL)
		return -EINVAL;
	if ((r = procfs_stats(0, &st)) < 0)
		return r;

	metrics_family(out, "process_cpu_seconds_total", "counter",
	    "Total user and system CPU time spent in seconds.");
	metrics_sample(out, "process_cpu_seconds_total", NULL, 0, NULL,
	    st.cpu_seconds);
	metrics_family(out, "process_resident_memory_bytes", "gauge",
	    "Resident memory size in bytes.");
	metrics_sample(out, "process_resident_memory_bytes", NULL, 0, NULL,
	    (double)st.rss_bytes);
	metrics_family(out, "process_virtual_memory_bytes", "gauge",
	    "Virtual memory size in bytes.");
	metrics_sample(out, "process_virtual_memory_bytes", NULL, 0, NULL,
	    (double)st.vsize_bytes);
	metrics_family(out, "process_open_fds", "gauge",
	    "Number of open file descriptors.");
	metrics_sample(out, "process_open_fds", NULL, 0, NULL,
	    (double)st.open_fds);
	metrics_family(out, "process_max_fds", "gauge",
	    "Maximum number of open file descriptors.");
	metrics_sample(out, "process_max_fds", NULL, 0, NULL,
	    (double)st.max_fds);
	metrics_family(out, "process_start_time_seconds", "gauge",
	    "Start time of the process since unix epoch in seconds.");
	metrics_sample(out, "process_start_time_seconds", NULL, 0, NULL,
	    st.start_time_seconds);
	return 0;
}
