/*
 * Output of Nagios/monitoring-plugins programs:
 *   TEXT [| PERFDATA]\n[LONG TEXT LINES...][| PERFDATA LINES...]
 * PERFDATA is space-separated 'label'=value[UOM];[warn];[crit];[min];[max],
 * labels optionally single-quoted ('' for a quote inside).
 * (monitoring-plugins development guidelines, "Performance data".)
 */
#ifndef TROIKA_PERFDATA_H
#define TROIKA_PERFDATA_H

#include <stddef.h>

enum perfdata_unit {
	PERFDATA_UNIT_NONE = 0,
	PERFDATA_UNIT_SECONDS,  /* s, ms, us: converted to seconds */
	PERFDATA_UNIT_PERCENT,  /* % */
	PERFDATA_UNIT_BYTES,    /* B, KB, MB, GB, TB: converted to bytes (1024) */
	PERFDATA_UNIT_COUNTER,  /* c */
};

struct perfdata_item {
	char *label;
	double value;           /* converted to the base unit */
	enum perfdata_unit unit;
	/* warn/crit/min/max, NAN when absent (ranges keep only the number
	 * when the threshold is a plain number) */
	double warn, crit, min, max;
};

struct perfdata {
	char *text;              /* first line before '|', trimmed */
	struct perfdata_item *items;
	size_t nitems;
	size_t nbad;             /* items that did not parse and were skipped */
};

/*
 * Parse len bytes of plugin output (need not be NUL-terminated). Never
 * fails on odd input: bad items are counted in nbad and skipped. Returns 0,
 * or -ENOMEM.
 */
int perfdata_parse(const char *output, size_t len, struct perfdata *ret);
void perfdata_free(struct perfdata *pd);

/*
 * A Prometheus-safe metric name fragment from a label: lower case,
 * [a-z0-9_], runs of other bytes become one '_', no leading digit
 * (prefixed '_'). Always NUL-terminated; returns buf.
 */
char *perfdata_label_to_metric(const char *label, char *buf, size_t len);

#endif
