/*
 * Prometheus text exposition format 0.0.4, written into growing buffers
 * (evbuffer). The caller groups samples by family: metrics_family() once,
 * then every sample of that family, as the format requires.
 */
#ifndef TROIKA_METRICS_H
#define TROIKA_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <troika/plugin.h> /* struct troika_label */

struct evbuffer;

/* [a-zA-Z_:][a-zA-Z0-9_:]* */
int metrics_name_valid(const char *name);
/* [a-zA-Z_][a-zA-Z0-9_]*, and not starting with "__" */
int metrics_label_name_valid(const char *name);

/* "# HELP name help\n# TYPE name type\n"; help escaped (\\ and \n). */
void metrics_family(struct evbuffer *out, const char *name, const char *type,
    const char *help);

/*
 * name{l1="v1",...} value\n. Label values escaped (\\, \", \n); the value as
 * the shortest text that reads back exactly ("%.17g" trimmed), +Inf, -Inf,
 * NaN. nlabels may be 0. extra, when not NULL, is one more label appended
 * after labels (histograms use it for "le").
 */
void metrics_sample(struct evbuffer *out, const char *name,
    const struct troika_label *labels, size_t nlabels,
    const struct troika_label *extra, double value);

/* Escape a label value as it appears between the quotes. */
void metrics_escape_label_value(struct evbuffer *out, const char *value);

/* A value in exposition form; buf of at least 32 bytes. Returns buf. */
char *metrics_format_value(double v, char *buf, size_t len);

/*
 * A cumulative histogram with fixed upper bounds (ascending, +Inf implied).
 * Not thread-safe: observe and write on the loop thread.
 */
struct metrics_histogram {
	const double *bounds; /* not owned; usually a static array */
	size_t nbounds;
	uint64_t *counts;     /* nbounds + 1 buckets, non-cumulative */
	double sum;
	uint64_t count;
};

int metrics_histogram_init(struct metrics_histogram *h, const double *bounds,
    size_t nbounds);
void metrics_histogram_observe(struct metrics_histogram *h, double v);
/* Writes name_bucket{...,le="..."} (cumulative), name_sum, name_count. */
void metrics_histogram_write(struct evbuffer *out, const char *name,
    const struct troika_label *labels, size_t nlabels,
    const struct metrics_histogram *h);
void metrics_histogram_free(struct metrics_histogram *h);

/*
 * Standard process metrics of the calling process (process_cpu_seconds_total,
 * process_resident_memory_bytes, process_virtual_memory_bytes,
 * process_open_fds, process_max_fds, process_start_time_seconds), with
 * their HELP and TYPE lines. Returns 0 or a negative errno (nothing written).
 */
int metrics_write_process(struct evbuffer *out);

#endif
