/* What a plugin reports, copied and bounded before the host keeps it. */
#include "check_host_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

void
check_result_clear(struct result_copy *r)
{
	free(r->message);
	for (size_t i = 0; i < r->nsamples; i++) {
		struct sample_copy *s = &r->samples[i];
		free(s->name);
		free(s->help);
		for (size_t j = 0; j < s->nlabels; j++) {
			free((char *)(uintptr_t)s->labels[j].name);
			free((char *)(uintptr_t)s->labels[j].value);
		}
		free(s->labels);
	}
	free(r->samples);
	for (size_t i = 0; i < r->nfields; i++) {
		free((char *)(uintptr_t)r->fields[i].name);
		free((char *)(uintptr_t)r->fields[i].value);
	}
	free(r->fields);
	memset(r, 0, sizeof(*r));
}

static int
sample_name_allowed(const char *name)
{
	return name != NULL && metrics_name_valid(name) &&
	    strncmp(name, "troika_check_", 13) != 0 &&
	    strncmp(name, "troika_plugin_", 14) != 0;
}

static int
sample_labels_allowed(const struct troika_sample *s)
{
	if (s->nlabels > RESULT_MAX_LABELS || (s->nlabels > 0 && s->labels == NULL))
		return 0;
	for (size_t i = 0; i < s->nlabels; i++) {
		const char *n = s->labels[i].name;
		if (n == NULL || s->labels[i].value == NULL ||
		    !metrics_label_name_valid(n) || strcmp(n, "check") == 0 ||
		    strcmp(n, "plugin") == 0)
			return 0;
		for (size_t j = 0; j < i; j++)
			if (strcmp(n, s->labels[j].name) == 0)
				return 0;
	}
	return s->type == TROIKA_METRIC_GAUGE || s->type == TROIKA_METRIC_COUNTER;
}

/* The first line of a message, at most RESULT_MAX_MESSAGE bytes. */
static char *
message_copy(const char *m)
{
	size_t n;

	if (m == NULL)
		return NULL;
	n = strcspn(m, "\r\n");
	if (n > RESULT_MAX_MESSAGE)
		n = RESULT_MAX_MESSAGE;
	return strndup(m, n);
}

/* Text facts of a result; bad or excess fields are dropped and counted. */
static int
result_copy_fields(struct result_copy *r, const struct troika_label *f, size_t n)
{
	if (n > RESULT_MAX_FIELDS) {
		r->ndropped += n - RESULT_MAX_FIELDS;
		n = RESULT_MAX_FIELDS;
	}
	if ((r->fields = calloc(n, sizeof(*r->fields))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct troika_label *d = &r->fields[r->nfields];

		if (f[i].name == NULL || f[i].value == NULL ||
		    !metrics_label_name_valid(f[i].name)) {
			r->ndropped++;
			continue;
		}
		d->name = strdup(f[i].name);
		d->value = strndup(f[i].value, RESULT_MAX_FIELD_VALUE);
		r->nfields++;
		if (d->name == NULL || d->value == NULL)
			return -ENOMEM;
	}
	return 0;
}

/*
 * Copy a plugin's result. Reads only the fields the plugin's struct has.
 * Safe on any thread. Returns 0 or -ENOMEM (r then holds what was copied).
 */
int
check_result_copy(struct result_copy *r, const struct troika_result *res)
{
	size_t have = res != NULL ? res->size : 0;

	memset(r, 0, sizeof(*r));
	if (res == NULL || have < offsetof(struct troika_result, message) +
	    sizeof(res->message)) {
		r->status = TROIKA_STATUS_UNKNOWN;
		r->message = strdup("plugin returned an unreadable result");
		return r->message != NULL ? 0 : -ENOMEM;
	}
	r->status = res->status;
	if (r->status < TROIKA_STATUS_OK || r->status > TROIKA_STATUS_UNKNOWN)
		r->status = TROIKA_STATUS_UNKNOWN;
	r->evidence = res->evidence;
	if (r->evidence < TROIKA_EVIDENCE_NONE ||
	    r->evidence > TROIKA_EVIDENCE_AMBIGUOUS)
		r->evidence = TROIKA_EVIDENCE_NONE;
	if (res->message != NULL && (r->message = message_copy(res->message)) == NULL)
		return -ENOMEM;
	if (have >= offsetof(struct troika_result, nfields) + sizeof(res->nfields) &&
	    res->nfields > 0 && res->fields != NULL) {
		int r0 = result_copy_fields(r, res->fields, res->nfields);
		if (r0 < 0)
			return r0;
	}
	if (have < offsetof(struct troika_result, nsamples) + sizeof(res->nsamples) ||
	    res->nsamples == 0 || res->samples == NULL)
		return 0;

	size_t n = res->nsamples;
	if (n > RESULT_MAX_SAMPLES) {
		r->ndropped += n - RESULT_MAX_SAMPLES;
		n = RESULT_MAX_SAMPLES;
	}
	if ((r->samples = calloc(n, sizeof(*r->samples))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct troika_sample *s = &res->samples[i];
		struct sample_copy *d = &r->samples[r->nsamples];

		if (!sample_name_allowed(s->name) || !sample_labels_allowed(s)) {
			r->ndropped++;
			continue;
		}
		d->type = s->type;
		d->value = s->value;
		if ((d->name = strdup(s->name)) == NULL)
			return -ENOMEM;
		r->nsamples++;
		if (s->help != NULL && (d->help = message_copy(s->help)) == NULL)
			return -ENOMEM;
		if (s->nlabels == 0)
			continue;
		if ((d->labels = calloc(s->nlabels, sizeof(*d->labels))) == NULL)
			return -ENOMEM;
		for (size_t j = 0; j < s->nlabels; j++) {
			d->labels[j].name = strdup(s->labels[j].name);
			d->labels[j].value = strdup(s->labels[j].value);
			d->nlabels++;
			if (d->labels[j].name == NULL || d->labels[j].value == NULL)
				return -ENOMEM;
		}
	}
	return 0;
}
