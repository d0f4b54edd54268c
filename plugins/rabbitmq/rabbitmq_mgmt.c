/*
 * The management HTTP API side of a run: GET /api/overview (which node
 * answered: "this" node) and GET /api/nodes (running, alarms, partitions,
 * resource figures of every cluster node), with `columns` so a big
 * cluster's reply stays small.
 *
 * The plugin is blocking, so this is a plain curl easy handle performed
 * on the worker thread, bounded by the time left; replies are read up to
 * management_max_body and parsed with jansson.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "rabbitmq.h"

#define RABBITMQ_NODE_COLUMNS "name,running,mem_alarm,disk_free_alarm," \
	"partitions,mem_used,mem_limit,disk_free,disk_free_limit,fd_used," \
	"fd_total,sockets_used,sockets_total,proc_used,proc_total"

/* Names kept of the API's strings (result fields hold at most 4 KiB). */
#define RABBITMQ_JSON_STR_MAX 1024

/* A reply being read. */
struct rabbitmq_body {
	char *buf;
	size_t len;
	size_t max;
	int too_big;
};

static void
rabbitmq_mgmt_fail(struct rabbitmq_mgmt *m, enum troika_evidence evidence,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
rabbitmq_mgmt_fail(struct rabbitmq_mgmt *m, enum troika_evidence evidence,
    const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (m->error.len > 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	rabbitmq_text_add(&m->error, "management API: %s", buf);
	m->evidence = evidence;
}

static size_t
rabbitmq_body_cb(char *data, size_t size, size_t n, void *arg)
{
	struct rabbitmq_body *b = arg;
	size_t len = size * n;
	char *grown;

	if (len > b->max - b->len) {
		/* Returning less than given makes curl stop: CURLE_WRITE_ERROR. */
		b->too_big = 1;
		return 0;
	}
	if ((grown = realloc(b->buf, b->len + len + 1)) == NULL)
		return 0;
	b->buf = grown;
	memcpy(b->buf + b->len, data, len);
	b->len += len;
	b->buf[b->len] = '\0';
	return len;
}

/*
 * GET conf->mgmt_url + path; the parsed JSON reply of a 200, or NULL after
 * recording why on m.
 */
static json_t *
rabbitmq_get(const struct rabbitmq_conf *c, const struct timespec *deadline,
    const char *path, struct rabbitmq_mgmt *m)
{
	struct rabbitmq_body body = { .max = (size_t)c->mgmt_max_body };
	char errbuf[CURL_ERROR_SIZE] = "", *url = NULL;
	json_t *json = NULL;
	json_error_t jerr;
	int64_t left = rabbitmq_left_ms(deadline);
	long code = 0;
	CURLcode rc;
	CURL *easy;

	if (left == 0) {
		rabbitmq_mgmt_fail(m, TROIKA_EVIDENCE_AMBIGUOUS, "%s: no time "
		    "left", path);
		return NULL;
	}
	if ((easy = curl_easy_init()) == NULL ||
	    asprintf(&url, "%s%s", c->mgmt_url, path) == -1) {
		url = NULL;
		rabbitmq_mgmt_fail(m, TROIKA_EVIDENCE_NONE, "out of memory");
		goto done;
	}
	if ((rc = curl_easy_setopt(easy, CURLOPT_URL, url)) != CURLE_OK ||
	    (rc = curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR,
	    "http,https")) != CURLE_OK ||
	    (rc = curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS,
	    (long)left)) != CURLE_OK ||
	    (rc = curl_easy_setopt(easy, CURLOPT_USERNAME,
	    c->mgmt_user)) != CURLE_OK ||
	    (rc = curl_easy_setopt(easy, CURLOPT_PASSWORD,
	    c->mgmt_password)) != CURLE_OK ||
	    (rc = curl_easy_setopt(easy, CURLOPT_HTTPAUTH,
	    (long)CURLAUTH_BASIC)) != CURLE_OK ||
	    (rc = curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER,
	    c->mgmt_tls_verify ? 1L : 0L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST,
	    c->mgmt_tls_verify ? 2L : 0L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(easy, CURLOPT_USERAGENT,
	    "troika/" TROIKA_VERSION)) != CURLE_OK ||
	    (rc = curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION,
	    rabbitmq_body_cb)) != CURLE_OK ||
	    (rc = curl_easy_setopt(easy, CURLOPT_WRITEDATA, &body)) != CURLE_OK ||
	    (rc = curl_easy_setopt(easy, CURLOPT_ERRORBUFFER,
	    errbuf)) != CURLE_OK) {
		rabbitmq_mgmt_fail(m, TROIKA_EVIDENCE_NONE, "cannot set up the "
		    "request: %s", curl_easy_strerror(rc));
		goto done;
	}
	rc = curl_easy_perform(easy);
	if (rc != CURLE_OK) {
		if (body.too_big)
			rabbitmq_mgmt_fail(m, TROIKA_EVIDENCE_AMBIGUOUS, "%s: reply "
			    "larger than management_max_body (%zu bytes)", path,
			    body.max);
		else if (rc == CURLE_OPERATION_TIMEDOUT)
			rabbitmq_mgmt_fail(m, TROIKA_EVIDENCE_AMBIGUOUS, "%s timed "
			    "out", path);
		else
			rabbitmq_mgmt_fail(m, TROIKA_EVIDENCE_AMBIGUOUS, "%s: %s",
			    path, errbuf[0] != '\0' ? errbuf :
			    curl_easy_strerror(rc));
		goto done;
	}
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	if (code == 401) {
		rabbitmq_mgmt_fail(m, TROIKA_EVIDENCE_AMBIGUOUS, "%s: credentials "
		    "of user \"%s\" refused (HTTP 401)", path, c->mgmt_user);
		goto done;
	}
	if (code != 200) {
		rabbitmq_mgmt_fail(m, TROIKA_EVIDENCE_AMBIGUOUS, "%s: HTTP %ld",
		    path, code);
		goto done;
	}
	json = json_loadb(body.buf != NULL ? body.buf : "", body.len, 0, &jerr);
	if (json == NULL)
		rabbitmq_mgmt_fail(m, TROIKA_EVIDENCE_AMBIGUOUS, "%s: not JSON: "
		    "%s (line %d, column %d)", path, jerr.text, jerr.line,
		    jerr.column);

done:
	free(body.buf);
	free(url);
	curl_easy_cleanup(easy);
	return json;
}

/* A string of obj, at most RABBITMQ_JSON_STR_MAX bytes of it. */
static char *
rabbitmq_json_strdup(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s != NULL ? strndup(s, RABBITMQ_JSON_STR_MAX) : NULL;
}

/* A number of obj, or NAN when it is missing or not a number. */
static double
rabbitmq_json_num(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	return json_is_number(v) ? json_number_value(v) : NAN;
}

static int
rabbitmq_node_parse(const json_t *obj, struct rabbitmq_node_stat *n)
{
	const json_t *parts = json_object_get(obj, "partitions");
	size_t i;
	json_t *p;

	n->mem_used = n->mem_limit = n->disk_free = n->disk_free_limit = NAN;
	n->fd_used = n->fd_total = n->sockets_used = n->sockets_total = NAN;
	n->proc_used = n->proc_total = NAN;
	if (!json_is_object(obj) ||
	    !json_is_string(json_object_get(obj, "name")))
		return -EINVAL;
	if ((n->name = rabbitmq_json_strdup(obj, "name")) == NULL)
		return -ENOMEM;
	n->running = json_is_true(json_object_get(obj, "running"));
	n->mem_alarm = json_is_true(json_object_get(obj, "mem_alarm"));
	n->disk_alarm = json_is_true(json_object_get(obj, "disk_free_alarm"));
	json_array_foreach(parts, i, p) {
		rabbitmq_text_sep(&n->partitions, ", ");
		rabbitmq_text_add(&n->partitions, "%s",
		    json_is_string(p) ? json_string_value(p) : "?");
		n->npartitions++;
	}
	n->mem_used = rabbitmq_json_num(obj, "mem_used");
	n->mem_limit = rabbitmq_json_num(obj, "mem_limit");
	n->disk_free = rabbitmq_json_num(obj, "disk_free");
	n->disk_free_limit = rabbitmq_json_num(obj, "disk_free_limit");
	n->fd_used = rabbitmq_json_num(obj, "fd_used");
	n->fd_total = rabbitmq_json_num(obj, "fd_total");
	n->sockets_used = rabbitmq_json_num(obj, "sockets_used");
	n->sockets_total = rabbitmq_json_num(obj, "sockets_total");
	n->proc_used = rabbitmq_json_num(obj, "proc_used");
	n->proc_total = rabbitmq_json_num(obj, "proc_total");
	return 0;
}

int
rabbitmq_mgmt_run(const struct rabbitmq_conf *c, const struct timespec *deadline,
    struct rabbitmq_mgmt *m)
{
	json_t *overview = NULL, *nodes = NULL, *n;
	size_t i;
	int r = 0;

	memset(m, 0, sizeof(*m));
	if ((overview = rabbitmq_get(c, deadline, "/api/overview?columns=node,"
	    "cluster_name,rabbitmq_version", m)) == NULL)
		goto done;
	if (!json_is_string(json_object_get(overview, "node"))) {
		rabbitmq_mgmt_fail(m, TROIKA_EVIDENCE_AMBIGUOUS, "/api/overview "
		    "names no node");
		goto done;
	}
	m->node = rabbitmq_json_strdup(overview, "node");
	m->cluster_name = rabbitmq_json_strdup(overview, "cluster_name");
	m->version = rabbitmq_json_strdup(overview, "rabbitmq_version");
	if (m->node == NULL) {
		r = -ENOMEM;
		goto done;
	}
	if ((nodes = rabbitmq_get(c, deadline,
	    "/api/nodes?columns=" RABBITMQ_NODE_COLUMNS, m)) == NULL)
		goto done;
	if (!json_is_array(nodes)) {
		rabbitmq_mgmt_fail(m, TROIKA_EVIDENCE_AMBIGUOUS, "/api/nodes is "
		    "not a list");
		goto done;
	}
	if ((m->nodes = calloc(json_array_size(nodes) + 1,
	    sizeof(*m->nodes))) == NULL) {
		r = -ENOMEM;
		goto done;
	}
	json_array_foreach(nodes, i, n) {
		struct rabbitmq_node_stat *ns = &m->nodes[m->nnodes];

		if ((r = rabbitmq_node_parse(n, ns)) < 0) {
			rabbitmq_text_free(&ns->partitions);
			if (r == -ENOMEM)
				goto done;
			r = 0;
			rabbitmq_mgmt_fail(m, TROIKA_EVIDENCE_AMBIGUOUS,
			    "/api/nodes: entry %zu is not a node", i);
			goto done;
		}
		m->nnodes++;
		if (strcmp(ns->name, m->node) == 0)
			m->local = ns;
	}
	m->ok = 1;

done:
	json_decref(overview);
	json_decref(nodes);
	return r;
}

void
rabbitmq_mgmt_clear(struct rabbitmq_mgmt *m)
{
	if (m == NULL)
		return;
	rabbitmq_text_free(&m->error);
	free(m->node);
	free(m->cluster_name);
	free(m->version);
	for (size_t i = 0; i < m->nnodes; i++) {
		free(m->nodes[i].name);
		rabbitmq_text_free(&m->nodes[i].partitions);
	}
	free(m->nodes);
	memset(m, 0, sizeof(*m));
}
