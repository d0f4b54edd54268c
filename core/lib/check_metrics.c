/* Exposition of the checks: troika_check_* and the plugins' samples. */
#include "check_host_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "metrics.h"

static const char *const check_result_names[CHECK_RESULT_COUNT] = {
	"ok", "warning", "critical", "unknown", "timeout",
};

struct sample_ref {
	const struct troika_instance *check;
	const struct sample_copy *sample;
	size_t order; /* keeps qsort stable */
};

static int
sample_ref_cmp(const void *a, const void *b)
{
	const struct sample_ref *x = a, *y = b;
	int r = strcmp(x->sample->name, y->sample->name);

	if (r != 0)
		return r;
	return x->order < y->order ? -1 : x->order > y->order;
}

static void
write_plugin_samples(const struct check_host *h, struct evbuffer *out)
{
	struct sample_ref *refs;
	size_t n = 0, total = 0;

	for (size_t i = 0; i < h->nchecks; i++)
		total += h->checks[i]->last.nsamples;
	if (total == 0)
		return;
	if ((refs = calloc(total, sizeof(*refs))) == NULL)
		return;
	for (size_t i = 0; i < h->nchecks; i++) {
		const struct troika_instance *c = h->checks[i];
		for (size_t j = 0; j < c->last.nsamples; j++) {
			refs[n].check = c;
			refs[n].sample = &c->last.samples[j];
			refs[n].order = n;
			n++;
		}
	}
	qsort(refs, n, sizeof(*refs), sample_ref_cmp);

	for (size_t i = 0; i < n;) {
		const struct sample_copy *first = refs[i].sample;
		const char *help = NULL;
		size_t end = i;

		while (end < n && strcmp(refs[end].sample->name, first->name) == 0) {
			if (help == NULL && refs[end].sample->help != NULL)
				help = refs[end].sample->help;
			end++;
		}
		metrics_family(out, first->name,
		    first->type == TROIKA_METRIC_COUNTER ? "counter" : "gauge",
		    help ? help : "Reported by a troika plugin.");
		for (; i < end; i++) {
			const struct sample_copy *s = refs[i].sample;
			struct troika_label labels[2 + RESULT_MAX_LABELS];

			/* One family has one type: samples that disagree are
			 * left out rather than make the page unparsable. */
			if (s->type != first->type)
				continue;
			labels[0].name = "check";
			labels[0].value = refs[i].check->name;
			labels[1].name = "plugin";
			labels[1].value = refs[i].check->plugin_name;
			if (s->nlabels > 0)
				memcpy(&labels[2], s->labels,
				    s->nlabels * sizeof(*s->labels));
			metrics_sample(out, s->name, labels, 2 + s->nlabels, NULL,
			    s->value);
		}
	}
	free(refs);
}

void
check_host_metrics(const struct check_host *h, struct evbuffer *out)
{
	metrics_family(out, "troika_checks_configured", "gauge",
	    "Checks in the running configuration.");
	metrics_sample(out, "troika_checks_configured", NULL, 0, NULL,
	    (double)h->nchecks);

	metrics_family(out, "troika_check_status", "gauge",
	    "Last status of a check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.");
	for (size_t i = 0; i < h->nchecks; i++) {
		const struct troika_instance *c = h->checks[i];
		const struct troika_label l[] = {
			{ "check", c->name }, { "plugin", c->plugin_name },
		};
		if (c->has_result)
			metrics_sample(out, "troika_check_status", l, 2, NULL,
			    (double)c->last.status);
	}

	metrics_family(out, "troika_check_runs_total", "counter",
	    "Completed runs of a check by result (timeout counted apart).");
	for (size_t i = 0; i < h->nchecks; i++) {
		const struct troika_instance *c = h->checks[i];
		for (int k = 0; k < CHECK_RESULT_COUNT; k++) {
			const struct troika_label l[] = {
				{ "check", c->name }, { "plugin", c->plugin_name },
				{ "result", check_result_names[k] },
			};
			metrics_sample(out, "troika_check_runs_total", l, 3, NULL,
			    (double)c->runs[k]);
		}
	}

	metrics_family(out, "troika_check_duration_seconds", "histogram",
	    "Duration of check runs, timeouts included.");
	for (size_t i = 0; i < h->nchecks; i++) {
		const struct troika_instance *c = h->checks[i];
		const struct troika_label l[] = {
			{ "check", c->name }, { "plugin", c->plugin_name },
		};
		metrics_histogram_write(out, "troika_check_duration_seconds", l, 2,
		    &c->duration);
	}

	metrics_family(out, "troika_check_overruns_total", "counter",
	    "Runs skipped because the previous run of the check was still out.");
	for (size_t i = 0; i < h->nchecks; i++) {
		const struct troika_instance *c = h->checks[i];
		const struct troika_label l[] = {
			{ "check", c->name }, { "plugin", c->plugin_name },
		};
		metrics_sample(out, "troika_check_overruns_total", l, 2, NULL,
		    (double)c->overruns);
	}

	metrics_family(out, "troika_check_rechecks_total", "counter",
	    "Runs outside the schedule: confirming a failure with certain "
	    "evidence, or after the service's main process exited.");
	for (size_t i = 0; i < h->nchecks; i++) {
		const struct troika_instance *c = h->checks[i];
		static const char *const reasons[CHECK_RECHECK_COUNT] = {
			[CHECK_RECHECK_CERTAIN] = "certain_failure",
			[CHECK_RECHECK_PROCESS_EXIT] = "process_exit",
		};

		for (int k = 0; k < CHECK_RECHECK_COUNT; k++) {
			const struct troika_label l[] = {
				{ "check", c->name }, { "plugin", c->plugin_name },
				{ "reason", reasons[k] },
			};
			metrics_sample(out, "troika_check_rechecks_total", l, 3,
			    NULL, (double)c->rechecks[k]);
		}
	}

	metrics_family(out, "troika_check_last_run_timestamp_seconds", "gauge",
	    "Wall-clock time the last run of a check ended.");
	for (size_t i = 0; i < h->nchecks; i++) {
		const struct troika_instance *c = h->checks[i];
		const struct troika_label l[] = {
			{ "check", c->name }, { "plugin", c->plugin_name },
		};
		if (c->has_result)
			metrics_sample(out, "troika_check_last_run_timestamp_seconds",
			    l, 2, NULL, c->last_run_time);
	}

	metrics_family(out, "troika_check_samples_dropped_total", "counter",
	    "Metric samples of a check's plugin refused by the host.");
	for (size_t i = 0; i < h->nchecks; i++) {
		const struct troika_instance *c = h->checks[i];
		const struct troika_label l[] = {
			{ "check", c->name }, { "plugin", c->plugin_name },
		};
		metrics_sample(out, "troika_check_samples_dropped_total", l, 2,
		    NULL, (double)c->samples_dropped);
	}

	write_plugin_samples(h, out);
}
