/*
 * elasticsearch: cluster health of Elasticsearch or OpenSearch (same API)
 * from GET /_cluster/health, and, alongside, the node's banner (GET /:
 * cluster name, version, distribution). Two transfers on the host's
 * curl multi handle at once; the run ends when both did.
 *
 * green is OK, yellow WARNING, red CRITICAL; fewer nodes than
 * expected_nodes is a WARNING. Both colours come with ambiguous evidence:
 * a cluster is briefly red while it creates an index, so policies should
 * wait for a few results in a row.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <troika/plugin.h>

#include "webfetch.h"
#include "webjson.h"

/* At most this many samples: the health numbers, colours, up, info. */
#define ES_MAX_SAMPLES 24

static const struct troika_option es_options[] = {
	{ .name = "url", .type = TROIKA_OPT_STRING, .required = 1,
	    .help = "base URL of the node, e.g. http://127.0.0.1:9200" },
	{ .name = "expected_nodes", .type = TROIKA_OPT_INT,
	    .default_value = "0", .min = 0, .max = 10000,
	    .help = "WARNING below this many nodes (0: not checked)" },
	{ .name = "local", .type = TROIKA_OPT_BOOL, .default_value = "false",
	    .help = "ask for the node's own view of the cluster state "
		"instead of the master's" },
	WEBFETCH_OPTIONS("1MiB"),
	{ .name = NULL },
};

/* The numbers of the health reply, in exporter order, as metric names. */
static const struct {
	const char *key;
	const char *metric;
	const char *help;
} es_numbers[] = {
	{ "number_of_nodes", "elasticsearch_cluster_health_number_of_nodes",
	    "Nodes in the cluster" },
	{ "number_of_data_nodes",
	    "elasticsearch_cluster_health_number_of_data_nodes",
	    "Data nodes in the cluster" },
	{ "active_primary_shards",
	    "elasticsearch_cluster_health_active_primary_shards",
	    "Active primary shards" },
	{ "active_shards", "elasticsearch_cluster_health_active_shards",
	    "Active primary and replica shards" },
	{ "relocating_shards", "elasticsearch_cluster_health_relocating_shards",
	    "Shards moving from one node to another" },
	{ "initializing_shards",
	    "elasticsearch_cluster_health_initializing_shards",
	    "Shards being initialized" },
	{ "unassigned_shards", "elasticsearch_cluster_health_unassigned_shards",
	    "Shards not allocated to a node" },
	{ "delayed_unassigned_shards",
	    "elasticsearch_cluster_health_delayed_unassigned_shards",
	    "Unassigned shards whose allocation is delayed" },
	{ "number_of_pending_tasks",
	    "elasticsearch_cluster_health_number_of_pending_tasks",
	    "Cluster-level changes not yet executed" },
	{ "number_of_in_flight_fetch",
	    "elasticsearch_cluster_health_number_of_in_flight_fetch",
	    "Unfinished shard fetches" },
	{ "task_max_waiting_in_queue_millis",
	    "elasticsearch_cluster_health_task_max_waiting_in_queue_millis",
	    "Milliseconds the oldest pending task has waited" },
	{ "active_shards_percent_as_number",
	    "elasticsearch_cluster_health_active_shards_percent_as_number",
	    "Percentage of active shards" },
};

#define ES_NNUMBERS (sizeof(es_numbers) / sizeof(es_numbers[0]))

struct es_check {
	const struct troika_host *host;
	struct troika_instance *inst;
	char *health_url;
	char *info_url;
	int64_t expected_nodes;
	struct webfetch *health;
	struct webfetch *info;
	struct troika_task *task;
	int pending; /* transfers of the run still out */
};

static void
es_instance_free(void *state)
{
	struct es_check *e = state;

	if (e == NULL)
		return;
	webfetch_free(e->health);
	webfetch_free(e->info);
	free(e->health_url);
	free(e->info_url);
	free(e);
}

static int
es_instance_new(const struct troika_host *host, struct troika_instance *inst,
    void **ret_state)
{
	struct es_check *e;
	const char *url = host->opt_string(inst, "url");
	size_t len = strlen(url);
	int r;

	if ((e = calloc(1, sizeof(*e))) == NULL)
		return -ENOMEM;
	e->host = host;
	e->inst = inst;
	e->expected_nodes = host->opt_int(inst, "expected_nodes");
	if ((r = webfetch_check_url(host, inst, "url", url)) < 0)
		goto fail;
	if (strpbrk(url, "?#") != NULL) {
		host->log(inst, TROIKA_LOG_ERR, "url \"%s\" must be the node's "
		    "base URL, without a query", url);
		r = -EINVAL;
		goto fail;
	}
	/* The base URL may or may not end in a slash. */
	while (len > 0 && url[len - 1] == '/')
		len--;
	if (asprintf(&e->health_url, "%.*s/_cluster/health%s", (int)len, url,
	    host->opt_bool(inst, "local") ? "?local=true" : "") < 0) {
		e->health_url = NULL;
		r = -ENOMEM;
		goto fail;
	}
	if (asprintf(&e->info_url, "%.*s/", (int)len, url) < 0) {
		e->info_url = NULL;
		r = -ENOMEM;
		goto fail;
	}
	if ((r = webfetch_from_options(host, inst, &e->health)) < 0 ||
	    (r = webfetch_from_options(host, inst, &e->info)) < 0)
		goto fail;
	*ret_state = e;
	return 0;

fail:
	es_instance_free(e);
	return r;
}

static void
es_report(struct es_check *e, enum troika_status status,
    enum troika_evidence evidence, const struct troika_sample *samples,
    size_t nsamples, const struct troika_label *fields, size_t nfields,
    const char *fmt, ...) __attribute__((format(printf, 8, 9)));

static void
es_report(struct es_check *e, enum troika_status status,
    enum troika_evidence evidence, const struct troika_sample *samples,
    size_t nsamples, const struct troika_label *fields, size_t nfields,
    const char *fmt, ...)
{
	struct troika_task *task = e->task;
	struct troika_result res = {
		.size = sizeof(res),
		.status = status,
		.evidence = evidence,
		.samples = samples,
		.nsamples = nsamples,
		.fields = fields,
		.nfields = nfields,
	};
	char msg[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	res.message = msg;
	e->task = NULL;
	e->host->check_done(task, &res);
}

static const struct troika_sample es_down = {
	.name = "elasticsearch_cluster_health_up",
	.help = "Whether the cluster health was read",
	.type = TROIKA_METRIC_GAUGE,
	.value = 0,
};

/* What the banner (GET /) says, when it came. */
struct es_info {
	const char *distribution; /* "elasticsearch" or "opensearch" */
	const char *version;
	const char *node;
	const char *cluster;
};

static void
es_read_info(struct es_check *e, json_t **ret_json, struct es_info *info)
{
	enum troika_evidence ev;
	const json_t *version;
	const char *body;
	size_t len;
	char msg[200];
	json_t *j;

	memset(info, 0, sizeof(*info));
	*ret_json = NULL;
	if (webfetch_outcome(e->info, &ev, msg, sizeof(msg)) !=
	    TROIKA_STATUS_OK || webfetch_http_status(e->info) != 200)
		return;
	body = webfetch_body(e->info, &len);
	if ((j = webjson_object(body, len, msg, sizeof(msg))) == NULL)
		return;
	version = json_object_get(j, "version");
	info->version = webjson_string(version, "number");
	/* Only OpenSearch says; Elasticsearch has build_flavor instead. */
	info->distribution = webjson_string(version, "distribution");
	if (info->distribution == NULL && info->version != NULL)
		info->distribution = "elasticsearch";
	info->node = webjson_string(j, "name");
	info->cluster = webjson_string(j, "cluster_name");
	*ret_json = j;
}

/* A reply other than 200: ES and OpenSearch explain errors in JSON. */
static void
es_http_error(struct es_check *e, long http, const char *body, size_t len)
{
	const json_t *err;
	const char *type = NULL, *reason = NULL;
	char msg[200], excerpt[100];
	json_t *j;

	if (http == 401 || http == 403) {
		/* It answered, so it is up; a restart would not help. */
		es_report(e, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE,
		    &es_down, 1, NULL, 0, "HTTP %ld: user and password were "
		    "refused, or the user lacks the monitor privilege", http);
		return;
	}
	if ((j = webjson_object(body, len, msg, sizeof(msg))) != NULL) {
		err = json_object_get(j, "error");
		type = webjson_string(err, "type");
		reason = webjson_string(err, "reason");
		if (type == NULL && json_is_string(err))
			type = json_string_value(err);
	}
	if (type != NULL)
		es_report(e, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_AMBIGUOUS,
		    &es_down, 1, NULL, 0, "HTTP %ld: %s%s%s", http, type,
		    reason != NULL ? ": " : "", reason != NULL ? reason : "");
	else {
		webfetch_excerpt(body, len, excerpt, sizeof(excerpt));
		es_report(e, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_AMBIGUOUS,
		    &es_down, 1, NULL, 0, "HTTP %ld: \"%s\"", http, excerpt);
	}
	json_decref(j);
}

static void
es_judge(struct es_check *e, const json_t *h, const struct es_info *info)
{
	static const char *const colors[] = { "green", "yellow", "red" };
	struct troika_sample s[ES_MAX_SAMPLES];
	struct troika_label color_labels[3][2];
	struct troika_label cluster_label[1];
	struct troika_label info_labels[3];
	struct troika_label fields[5];
	const char *status = webjson_string(h, "status");
	const char *cluster = webjson_string(h, "cluster_name");
	double v[ES_NNUMBERS];
	int have[ES_NNUMBERS];
	size_t n = 0, nf = 0;
	enum troika_status st;
	char prefix[160], nodes_warn[120] = "";
	const json_t *timed_out = json_object_get(h, "timed_out");
	double nodes, active, total, extra;

	if (status == NULL || (strcmp(status, "green") != 0 &&
	    strcmp(status, "yellow") != 0 && strcmp(status, "red") != 0) ||
	    webjson_number(h, "number_of_nodes", &nodes) < 0) {
		char excerpt[100];
		char *text = json_dumps(h, JSON_COMPACT);

		webfetch_excerpt(text != NULL ? text : "", text != NULL ?
		    strlen(text) : 0, excerpt, sizeof(excerpt));
		free(text);
		es_report(e, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_AMBIGUOUS,
		    &es_down, 1, NULL, 0, "not a cluster health reply: %s",
		    excerpt);
		return;
	}
	if (cluster == NULL)
		cluster = info->cluster != NULL ? info->cluster : "";
	cluster_label[0] = (struct troika_label){ "cluster", cluster };

	s[n++] = (struct troika_sample){ .name =
	    "elasticsearch_cluster_health_up", .help = "Whether the cluster "
	    "health was read", .type = TROIKA_METRIC_GAUGE, .value = 1,
	    .labels = cluster_label, .nlabels = 1 };
	for (size_t i = 0; i < 3; i++) {
		color_labels[i][0] = cluster_label[0];
		color_labels[i][1] = (struct troika_label){ "color",
		    colors[i] };
		s[n++] = (struct troika_sample){ .name =
		    "elasticsearch_cluster_health_status", .help = "1 for the "
		    "cluster's current colour, 0 for the others",
		    .type = TROIKA_METRIC_GAUGE,
		    .value = strcmp(status, colors[i]) == 0,
		    .labels = color_labels[i], .nlabels = 2 };
	}
	for (size_t i = 0; i < ES_NNUMBERS; i++) {
		have[i] = webjson_number(h, es_numbers[i].key, &v[i]) == 0;
		if (have[i])
			s[n++] = (struct troika_sample){ .name =
			    es_numbers[i].metric, .help = es_numbers[i].help,
			    .type = TROIKA_METRIC_GAUGE, .value = v[i],
			    .labels = cluster_label, .nlabels = 1 };
	}
	if (json_is_boolean(timed_out))
		s[n++] = (struct troika_sample){ .name =
		    "elasticsearch_cluster_health_timed_out", .help = "Whether "
		    "the health request timed out on the cluster",
		    .type = TROIKA_METRIC_GAUGE,
		    .value = json_is_true(timed_out), .labels = cluster_label,
		    .nlabels = 1 };
	if (info->version != NULL) {
		info_labels[0] = cluster_label[0];
		info_labels[1] = (struct troika_label){ "distribution",
		    info->distribution };
		info_labels[2] = (struct troika_label){ "version",
		    info->version };
		s[n++] = (struct troika_sample){ .name =
		    "elasticsearch_clusterinfo_version_info", .help = "The "
		    "node's distribution and version", .type =
		    TROIKA_METRIC_GAUGE, .value = 1, .labels = info_labels,
		    .nlabels = 3 };
		fields[nf++] = (struct troika_label){ "distribution",
		    info->distribution };
		fields[nf++] = (struct troika_label){ "version",
		    info->version };
	}
	if (info->node != NULL)
		fields[nf++] = (struct troika_label){ "node", info->node };
	fields[nf++] = (struct troika_label){ "cluster", cluster };
	fields[nf++] = (struct troika_label){ "color", status };

	if (info->version != NULL)
		snprintf(prefix, sizeof(prefix), "%s %s cluster %s",
		    strcmp(info->distribution, "opensearch") == 0 ?
		    "OpenSearch" : strcmp(info->distribution,
		    "elasticsearch") == 0 ? "Elasticsearch" :
		    info->distribution,
		    info->version, cluster);
	else
		snprintf(prefix, sizeof(prefix), "cluster %s", cluster);
	if (e->expected_nodes > 0 && nodes < (double)e->expected_nodes)
		snprintf(nodes_warn, sizeof(nodes_warn), ", fewer than the "
		    "%lld expected", (long long)e->expected_nodes);

	st = strcmp(status, "red") == 0 ? TROIKA_STATUS_CRITICAL :
	    strcmp(status, "yellow") == 0 || nodes_warn[0] != '\0' ?
	    TROIKA_STATUS_WARNING : TROIKA_STATUS_OK;
	/* Relocating shards count as active; initializing ones do not. */
	if (webjson_number(h, "active_shards", &active) < 0)
		active = 0;
	total = active;
	if (webjson_number(h, "initializing_shards", &extra) == 0)
		total += extra;
	if (webjson_number(h, "unassigned_shards", &extra) == 0)
		total += extra;
	es_report(e, st, st == TROIKA_STATUS_OK ? TROIKA_EVIDENCE_NONE :
	    TROIKA_EVIDENCE_AMBIGUOUS, s, n, fields, nf, "%s is %s: %.0f "
	    "nodes%s, %.0f of %.0f shards active", prefix, status, nodes,
	    nodes_warn, active, total);
}

/* Both transfers ended: judge the health reply, with the banner's help. */
static void
es_judge_run(struct es_check *e)
{
	enum troika_evidence ev;
	enum troika_status status;
	struct es_info info;
	json_t *info_json, *h;
	const char *body;
	size_t len;
	long http;
	char msg[400];

	status = webfetch_outcome(e->health, &ev, msg, sizeof(msg));
	if (status != TROIKA_STATUS_OK) {
		es_report(e, status, ev, &es_down, 1, NULL, 0, "%s", msg);
		return;
	}
	http = webfetch_http_status(e->health);
	body = webfetch_body(e->health, &len);
	if (http != 200) {
		es_http_error(e, http, body, len);
		return;
	}
	if ((h = webjson_object(body, len, msg, sizeof(msg))) == NULL) {
		es_report(e, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_AMBIGUOUS,
		    &es_down, 1, NULL, 0, "%s", msg);
		return;
	}
	es_read_info(e, &info_json, &info);
	es_judge(e, h, &info);
	json_decref(info_json);
	json_decref(h);
}

static void
es_fetch_done_cb(struct webfetch *wf, void *arg)
{
	struct es_check *e = arg;

	(void)wf;
	if (--e->pending == 0)
		es_judge_run(e);
}

static void
es_check(void *state, struct troika_task *task)
{
	struct es_check *e = state;
	int64_t ms = webfetch_budget_ms(e->host->task_remaining_ms(task));

	e->task = task;
	e->pending = 2;
	webfetch_get(e->health, e->health_url, ms, es_fetch_done_cb, e);
	webfetch_get(e->info, e->info_url, ms, es_fetch_done_cb, e);
}

static void
es_cancel(void *state, struct troika_task *task)
{
	struct es_check *e = state;

	if (e->task != task)
		return;
	webfetch_abort(e->health);
	webfetch_abort(e->info);
	e->pending = 0;
	e->task = NULL;
}

static const struct troika_plugin es_plugin = {
	.abi_major = TROIKA_PLUGIN_ABI_MAJOR,
	.abi_minor = TROIKA_PLUGIN_ABI_MINOR,
	.size = sizeof(struct troika_plugin),
	.name = "elasticsearch",
	.version = TROIKA_VERSION,
	.description = "Elasticsearch/OpenSearch cluster health",
	.exec_model = TROIKA_EXEC_ASYNC,
	.options = es_options,
	.instance_new = es_instance_new,
	.instance_free = es_instance_free,
	.check = es_check,
	.cancel = es_cancel,
};

__attribute__((visibility("default"))) const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void);

const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void)
{
	return &es_plugin;
}
