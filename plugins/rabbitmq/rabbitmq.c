/*
 * rabbitmq: is the broker up and serving, are the configured queues there
 * and drained, and (with the management API) is the node free of alarms
 * and partitions.
 *
 * Blocking: librabbitmq has no event-loop interface, so the host runs
 * check() on its worker pool. Every step is bounded by the task's time
 * left (minus a margin, so the plugin's own timeout result arrives before
 * the host gives up): the connect, the AMQP handshake, each RPC and the
 * HTTP requests. Each run opens one AMQP connection and closes it: a check
 * must see a refused or slow accept, and no idle connection is held.
 *
 * Actions start, stop and restart: rabbitmq_action.c.
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <troika/plugin.h>

#include "rabbitmq.h"

/* AMQP short strings (vhost, queue names) hold at most 255 bytes. */
#define RABBITMQ_SHORTSTR_MAX 255
/* A result's message; longer ones are cut. */
#define RABBITMQ_MESSAGE_MAX 2048
/* Samples besides the per-queue ones. */
#define RABBITMQ_FIXED_SAMPLES 24

static const struct troika_option rabbitmq_options[] = {
	{ .name = "host", .type = TROIKA_OPT_STRING, .default_value = "127.0.0.1",
	    .help = "numeric IPv4 or IPv6 address of the broker" },
	{ .name = "port", .type = TROIKA_OPT_INT, .default_value = "5672",
	    .min = 1, .max = 65535, .help = "AMQP port" },
	{ .name = "vhost", .type = TROIKA_OPT_STRING, .default_value = "/",
	    .help = "virtual host to log in to" },
	{ .name = "user", .type = TROIKA_OPT_STRING, .default_value = "guest",
	    .help = "AMQP user (SASL PLAIN)" },
	{ .name = "password", .type = TROIKA_OPT_STRING, .default_value = "guest",
	    .help = "AMQP password" },
	{ .name = "queues", .type = TROIKA_OPT_STRING_LIST,
	    .help = "queues that must exist in vhost (passive queue.declare)" },
	{ .name = "max_messages", .type = TROIKA_OPT_INT, .min = 0,
	    .max = UINT32_MAX,
	    .help = "WARNING when a queue has more messages ready than this" },
	{ .name = "min_consumers", .type = TROIKA_OPT_INT, .default_value = "0",
	    .min = 0, .max = UINT32_MAX,
	    .help = "WARNING when a queue has fewer consumers than this" },
	{ .name = "heartbeat", .type = TROIKA_OPT_DURATION, .default_value = "10s",
	    .min = 0, .max = 65535 * 1000,
	    .help = "AMQP heartbeat asked for (whole seconds; 0: none)" },
	{ .name = "management_url", .type = TROIKA_OPT_STRING,
	    .help = "management API base, e.g. http://127.0.0.1:15672" },
	{ .name = "management_user", .type = TROIKA_OPT_STRING,
	    .help = "management API user (default: user)" },
	{ .name = "management_password", .type = TROIKA_OPT_STRING,
	    .help = "management API password (default: password)" },
	{ .name = "management_max_body", .type = TROIKA_OPT_SIZE,
	    .default_value = "1MiB", .min = 1024, .max = 64 * 1024 * 1024,
	    .help = "most bytes read of one management API reply" },
	{ .name = "management_tls_verify", .type = TROIKA_OPT_BOOL,
	    .default_value = "true",
	    .help = "verify the management API's certificate (https)" },
	{ .name = NULL },
};

/* ---- small helpers shared by the plugin's files ---- */

void
rabbitmq_text_add(struct rabbitmq_text *t, const char *fmt, ...)
{
	char *add, *grown;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&add, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((grown = realloc(t->s, t->len + (size_t)n + 1)) == NULL) {
		free(add);
		return;
	}
	memcpy(grown + t->len, add, (size_t)n + 1);
	t->s = grown;
	t->len += (size_t)n;
	free(add);
}

void
rabbitmq_text_sep(struct rabbitmq_text *t, const char *sep)
{
	if (t->len > 0)
		rabbitmq_text_add(t, "%s", sep);
}

void
rabbitmq_text_free(struct rabbitmq_text *t)
{
	free(t->s);
	t->s = NULL;
	t->len = 0;
}

const char *
rabbitmq_text_str(const struct rabbitmq_text *t)
{
	return t->s != NULL ? t->s : "";
}

int64_t
rabbitmq_left_ms(const struct timespec *deadline)
{
	struct timespec now;
	int64_t ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (int64_t)(deadline->tv_sec - now.tv_sec) * 1000 +
	    (deadline->tv_nsec - now.tv_nsec) / 1000000;
	return ms > 0 ? ms : 0;
}

double
rabbitmq_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) +
	    (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* The task's time left minus a margin (a tenth, at most 100 ms). */
int64_t
rabbitmq_budget_ms(int64_t remaining)
{
	int64_t margin = remaining / 10;

	if (margin > 100)
		margin = 100;
	return remaining - margin > 1 ? remaining - margin : 1;
}

void
rabbitmq_deadline(int64_t ms, struct timespec *ret)
{
	clock_gettime(CLOCK_MONOTONIC, ret);
	ret->tv_sec += (time_t)(ms / 1000);
	ret->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ret->tv_nsec >= 1000000000) {
		ret->tv_sec++;
		ret->tv_nsec -= 1000000000;
	}
}

/* ---- instances ---- */

static void
rabbitmq_instance_free(void *state)
{
	struct rabbitmq *rq = state;
	struct rabbitmq_conf *c;

	if (rq == NULL)
		return;
	/* The host calls no done for a freed check: drop what waits for one. */
	rabbitmq_calls_free(rq);
	c = &rq->conf;
	free(c->host);
	free(c->vhost);
	free(c->user);
	free(c->password);
	for (size_t i = 0; i < c->nqueues; i++)
		free(c->queues[i]);
	free(c->queues);
	free(c->mgmt_url);
	free(c->mgmt_user);
	free(c->mgmt_password);
	if (rq->curl_inited)
		curl_global_cleanup();
	free(rq);
}

/*
 * The numeric address of host (IPv4, IPv6, or IPv6 in brackets) and port.
 * Names are refused: resolving one could block past the check's deadline.
 */
static int
rabbitmq_parse_addr(const char *host, int port, struct rabbitmq_conf *c)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&c->addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&c->addr;
	char buf[INET6_ADDRSTRLEN + 2];
	size_t len = strlen(host);

	memset(&c->addr, 0, sizeof(c->addr));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		c->addrlen = sizeof(*sin);
		return 0;
	}
	if (len >= 2 && len < sizeof(buf) && host[0] == '[' &&
	    host[len - 1] == ']') {
		memcpy(buf, host + 1, len - 2);
		buf[len - 2] = '\0';
		host = buf;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		c->addrlen = sizeof(*sin6);
		return 0;
	}
	return -EINVAL;
}

static char *
rabbitmq_opt_dup(struct rabbitmq *rq, const char *name, const char *fallback)
{
	const char *s = rq->host->opt_isset(rq->inst, name) ?
	    rq->host->opt_string(rq->inst, name) : fallback;

	if (s == NULL)
		s = fallback != NULL ? fallback : "";
	return strdup(s);
}

static int
rabbitmq_instance_new(const struct troika_host *host,
    struct troika_instance *inst, void **ret_state)
{
	struct rabbitmq *rq;
	struct rabbitmq_conf *c;
	const char *url;
	int r = -ENOMEM;

	if ((rq = calloc(1, sizeof(*rq))) == NULL)
		return -ENOMEM;
	rq->host = host;
	rq->inst = inst;
	rq->base = host->event_base(inst);
	c = &rq->conf;
	c->port = (int)host->opt_int(inst, "port");
	if ((c->host = rabbitmq_opt_dup(rq, "host", "127.0.0.1")) == NULL ||
	    (c->vhost = rabbitmq_opt_dup(rq, "vhost", "/")) == NULL ||
	    (c->user = rabbitmq_opt_dup(rq, "user", "guest")) == NULL ||
	    (c->password = rabbitmq_opt_dup(rq, "password", "guest")) == NULL)
		goto fail;
	if (rabbitmq_parse_addr(c->host, c->port, c) < 0) {
		host->log(inst, TROIKA_LOG_ERR, "host \"%s\" is not a numeric "
		    "IPv4 or IPv6 address (names are not resolved)", c->host);
		r = -EINVAL;
		goto fail;
	}
	if (c->vhost[0] == '\0' || strlen(c->vhost) > RABBITMQ_SHORTSTR_MAX) {
		host->log(inst, TROIKA_LOG_ERR, "vhost must have 1 to %d bytes",
		    RABBITMQ_SHORTSTR_MAX);
		r = -EINVAL;
		goto fail;
	}
	c->nqueues = host->opt_list_len(inst, "queues");
	if (c->nqueues > 0 &&
	    (c->queues = calloc(c->nqueues, sizeof(*c->queues))) == NULL) {
		c->nqueues = 0;
		goto fail;
	}
	for (size_t i = 0; i < c->nqueues; i++) {
		const char *q = host->opt_list_at(inst, "queues", i);

		if (q == NULL || q[0] == '\0' ||
		    strlen(q) > RABBITMQ_SHORTSTR_MAX) {
			host->log(inst, TROIKA_LOG_ERR, "queues: entry %zu must "
			    "have 1 to %d bytes", i, RABBITMQ_SHORTSTR_MAX);
			r = -EINVAL;
			goto fail;
		}
		if ((c->queues[i] = strdup(q)) == NULL)
			goto fail;
	}
	c->max_messages = host->opt_isset(inst, "max_messages") ?
	    host->opt_int(inst, "max_messages") : -1;
	c->min_consumers = host->opt_int(inst, "min_consumers");
	/* AMQP negotiates whole seconds; round a part of one up. */
	c->heartbeat_s = (int)((host->opt_duration_ms(inst, "heartbeat") + 999) /
	    1000);

	if (!host->opt_isset(inst, "management_url")) {
		if (host->opt_isset(inst, "management_user") ||
		    host->opt_isset(inst, "management_password")) {
			host->log(inst, TROIKA_LOG_ERR, "management_user and "
			    "management_password need management_url");
			r = -EINVAL;
			goto fail;
		}
		*ret_state = rq;
		return 0;
	}
	url = host->opt_string(inst, "management_url");
	if (url == NULL || (strncmp(url, "http://", 7) != 0 &&
	    strncmp(url, "https://", 8) != 0)) {
		host->log(inst, TROIKA_LOG_ERR, "management_url \"%s\" must "
		    "start with http:// or https://", url != NULL ? url : "");
		r = -EINVAL;
		goto fail;
	}
	if ((c->mgmt_url = strdup(url)) == NULL ||
	    (c->mgmt_user = rabbitmq_opt_dup(rq, "management_user",
	    c->user)) == NULL ||
	    (c->mgmt_password = rabbitmq_opt_dup(rq, "management_password",
	    c->password)) == NULL)
		goto fail;
	/* The paths asked for start with '/'. */
	for (size_t n = strlen(c->mgmt_url); n > 0 && c->mgmt_url[n - 1] == '/';
	    n--)
		c->mgmt_url[n - 1] = '\0';
	c->mgmt_max_body = host->opt_size(inst, "management_max_body");
	c->mgmt_tls_verify = host->opt_bool(inst, "management_tls_verify");
	/* On the loop thread, before any worker uses curl. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		host->log(inst, TROIKA_LOG_ERR, "curl_global_init failed");
		goto fail;
	}
	rq->curl_inited = 1;
	*ret_state = rq;
	return 0;

fail:
	rabbitmq_instance_free(rq);
	return r;
}

/* ---- a run's result ---- */

struct rabbitmq_report {
	struct troika_sample *samples;
	struct troika_label *labels; /* one per sample, for queue samples */
	size_t nsamples;
	size_t cap;
	struct troika_label fields[4];
	size_t nfields;
	struct rabbitmq_text crit;
	struct rabbitmq_text warn;
	enum troika_evidence crit_ev;
	enum troika_evidence warn_ev;
};

static int
rabbitmq_report_init(struct rabbitmq_report *rep, size_t nqueues)
{
	memset(rep, 0, sizeof(*rep));
	rep->cap = RABBITMQ_FIXED_SAMPLES + 3 * nqueues;
	rep->samples = calloc(rep->cap, sizeof(*rep->samples));
	rep->labels = calloc(rep->cap, sizeof(*rep->labels));
	if (rep->samples == NULL || rep->labels == NULL)
		return -ENOMEM;
	return 0;
}

static void
rabbitmq_report_free(struct rabbitmq_report *rep)
{
	free(rep->samples);
	free(rep->labels);
	rabbitmq_text_free(&rep->crit);
	rabbitmq_text_free(&rep->warn);
}

/* A sample; queue is its label value, or NULL. NaN values are left out. */
static void
rabbitmq_sample(struct rabbitmq_report *rep, const char *name, const char *help,
    double value, const char *queue)
{
	struct troika_sample *s;

	if (isnan(value) || rep->nsamples == rep->cap)
		return;
	s = &rep->samples[rep->nsamples];
	s->name = name;
	s->help = help;
	s->type = TROIKA_METRIC_GAUGE;
	s->value = value;
	if (queue != NULL) {
		rep->labels[rep->nsamples].name = "queue";
		rep->labels[rep->nsamples].value = queue;
		s->labels = &rep->labels[rep->nsamples];
		s->nlabels = 1;
	}
	rep->nsamples++;
}

static void
rabbitmq_field(struct rabbitmq_report *rep, const char *name, const char *value)
{
	if (value == NULL || rep->nfields == sizeof(rep->fields) /
	    sizeof(rep->fields[0]))
		return;
	rep->fields[rep->nfields].name = name;
	rep->fields[rep->nfields].value = value;
	rep->nfields++;
}

/* Keep the strongest evidence: certain over ambiguous over none. */
static void
rabbitmq_evidence(enum troika_evidence *have, enum troika_evidence e)
{
	if (e == TROIKA_EVIDENCE_CERTAIN ||
	    (e == TROIKA_EVIDENCE_AMBIGUOUS && *have == TROIKA_EVIDENCE_NONE))
		*have = e;
}

static void
rabbitmq_problem(struct rabbitmq_report *rep, int critical,
    enum troika_evidence evidence, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
rabbitmq_problem(struct rabbitmq_report *rep, int critical,
    enum troika_evidence evidence, const char *fmt, ...)
{
	struct rabbitmq_text *t = critical ? &rep->crit : &rep->warn;
	char *text;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	rabbitmq_text_sep(t, "; ");
	rabbitmq_text_add(t, "%s", text);
	free(text);
	rabbitmq_evidence(critical ? &rep->crit_ev : &rep->warn_ev, evidence);
}

static void
rabbitmq_judge_queues(const struct rabbitmq_conf *c,
    const struct rabbitmq_amqp *a, struct rabbitmq_report *rep)
{
	for (size_t i = 0; i < c->nqueues; i++) {
		const struct rabbitmq_queue_stat *qs = &a->queues[i];
		const char *q = c->queues[i];

		switch (qs->state) {
		case RABBITMQ_QUEUE_UNKNOWN:
			continue;
		case RABBITMQ_QUEUE_MISSING:
			rabbitmq_sample(rep, "troika_rabbitmq_queue_exists",
			    "1 if the configured queue exists", 0, q);
			rabbitmq_problem(rep, 1, TROIKA_EVIDENCE_CERTAIN,
			    "queue \"%s\" not found in vhost \"%s\"", q,
			    c->vhost);
			continue;
		case RABBITMQ_QUEUE_REFUSED:
			rabbitmq_sample(rep, "troika_rabbitmq_queue_exists",
			    "1 if the configured queue exists", 1, q);
			rabbitmq_problem(rep, 1, TROIKA_EVIDENCE_CERTAIN,
			    "queue \"%s\": %s", q, qs->error != NULL ?
			    qs->error : "refused");
			continue;
		case RABBITMQ_QUEUE_FOUND:
			break;
		}
		rabbitmq_sample(rep, "troika_rabbitmq_queue_exists",
		    "1 if the configured queue exists", 1, q);
		rabbitmq_sample(rep, "rabbitmq_queue_messages_ready",
		    "Messages ready to be delivered to consumers",
		    qs->messages_ready, q);
		rabbitmq_sample(rep, "rabbitmq_queue_consumers",
		    "Consumers on a queue", qs->consumers, q);
		if (c->max_messages >= 0 &&
		    qs->messages_ready > (uint64_t)c->max_messages)
			rabbitmq_problem(rep, 0, TROIKA_EVIDENCE_CERTAIN,
			    "queue \"%s\": %u messages ready, above "
			    "max_messages %lld", q, qs->messages_ready,
			    (long long)c->max_messages);
		if (qs->consumers < (uint64_t)c->min_consumers)
			rabbitmq_problem(rep, 0, TROIKA_EVIDENCE_CERTAIN,
			    "queue \"%s\": %u consumer%s, below min_consumers "
			    "%lld", q, qs->consumers, qs->consumers == 1 ?
			    "" : "s", (long long)c->min_consumers);
	}
}

static void
rabbitmq_judge_mgmt(const struct rabbitmq_mgmt *m, struct rabbitmq_report *rep)
{
	const struct rabbitmq_node_stat *l = m->local;
	size_t running = 0;

	rabbitmq_sample(rep, "troika_rabbitmq_management_up",
	    "1 if the management API answered", m->ok, NULL);
	if (!m->ok) {
		/* The broker serves; only the extra facts are missing. */
		rabbitmq_problem(rep, 0, m->evidence, "%s",
		    rabbitmq_text_str(&m->error));
		return;
	}
	for (size_t i = 0; i < m->nnodes; i++) {
		const struct rabbitmq_node_stat *n = &m->nodes[i];

		running += n->running != 0;
		if (!n->running)
			rabbitmq_problem(rep, 0, TROIKA_EVIDENCE_CERTAIN,
			    "cluster node %s is not running", n->name);
		/* An alarm on any node blocks publishers in the whole cluster. */
		if (n->mem_alarm)
			rabbitmq_problem(rep, 1, TROIKA_EVIDENCE_CERTAIN,
			    "memory alarm on %s", n->name);
		if (n->disk_alarm)
			rabbitmq_problem(rep, 1, TROIKA_EVIDENCE_CERTAIN,
			    "disk alarm on %s", n->name);
		if (n->npartitions > 0)
			rabbitmq_problem(rep, 1, TROIKA_EVIDENCE_CERTAIN,
			    "%s is partitioned from %s", n->name,
			    rabbitmq_text_str(&n->partitions));
	}
	rabbitmq_sample(rep, "troika_rabbitmq_cluster_nodes",
	    "Nodes in the cluster, as the management API lists them",
	    (double)m->nnodes, NULL);
	rabbitmq_sample(rep, "troika_rabbitmq_cluster_nodes_running",
	    "Cluster nodes the management API reports running",
	    (double)running, NULL);
	if (l == NULL) {
		rabbitmq_problem(rep, 0, TROIKA_EVIDENCE_AMBIGUOUS,
		    "management API: node %s is not in /api/nodes", m->node);
		return;
	}
	rabbitmq_sample(rep, "rabbitmq_alarms_memory_used_watermark",
	    "1 if the memory alarm is in effect", l->mem_alarm, NULL);
	rabbitmq_sample(rep, "rabbitmq_alarms_free_disk_space_watermark",
	    "1 if the free disk space alarm is in effect", l->disk_alarm, NULL);
	rabbitmq_sample(rep, "troika_rabbitmq_partitions",
	    "Nodes this node is partitioned from", (double)l->npartitions,
	    NULL);
	rabbitmq_sample(rep, "rabbitmq_process_resident_memory_bytes",
	    "Memory used, as the node computes it", l->mem_used, NULL);
	rabbitmq_sample(rep, "rabbitmq_resident_memory_limit_bytes",
	    "Memory high watermark in bytes", l->mem_limit, NULL);
	rabbitmq_sample(rep, "rabbitmq_disk_space_available_bytes",
	    "Disk space available", l->disk_free, NULL);
	rabbitmq_sample(rep, "rabbitmq_disk_space_available_limit_bytes",
	    "Free disk space low watermark in bytes", l->disk_free_limit, NULL);
	rabbitmq_sample(rep, "rabbitmq_process_open_fds", "Open file descriptors",
	    l->fd_used, NULL);
	rabbitmq_sample(rep, "rabbitmq_process_max_fds",
	    "Open file descriptors limit", l->fd_total, NULL);
	rabbitmq_sample(rep, "rabbitmq_process_open_tcp_sockets",
	    "Open TCP sockets", l->sockets_used, NULL);
	rabbitmq_sample(rep, "rabbitmq_process_max_tcp_sockets",
	    "Open TCP sockets limit", l->sockets_total, NULL);
	rabbitmq_sample(rep, "rabbitmq_erlang_processes_used",
	    "Erlang processes used", l->proc_used, NULL);
	rabbitmq_sample(rep, "rabbitmq_erlang_processes_limit",
	    "Erlang processes limit", l->proc_total, NULL);
}

/*
 * A copy of message fit for a result: one line (control bytes, which
 * server-supplied texts may hold, become spaces) and at most
 * RABBITMQ_MESSAGE_MAX bytes, cut between UTF-8 sequences.
 */
static char *
rabbitmq_one_line(const char *message)
{
	static const char more[] = " (cut)";
	size_t len = strlen(message);
	char *out;

	if (len > RABBITMQ_MESSAGE_MAX) {
		len = RABBITMQ_MESSAGE_MAX - (sizeof(more) - 1);
		while (len > 0 && ((unsigned char)message[len] & 0xc0) == 0x80)
			len--;
	}
	if ((out = malloc(len + sizeof(more))) == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)message[i];

		out[i] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
	}
	out[len] = '\0';
	if (len < strlen(message))
		memcpy(out + len, more, sizeof(more));
	return out;
}

static void
rabbitmq_done(struct rabbitmq *rq, struct troika_task *task,
    enum troika_status status, enum troika_evidence evidence,
    const char *message, const struct rabbitmq_report *rep)
{
	char *line = rabbitmq_one_line(message);
	struct troika_result res = {
		.size = sizeof(res),
		.status = status,
		.evidence = evidence,
		.message = line != NULL ? line : "out of memory",
	};

	if (rep != NULL) {
		res.samples = rep->samples;
		res.nsamples = rep->nsamples;
		res.fields = rep->fields;
		res.nfields = rep->nfields;
	}
	rq->host->check_done(task, &res);
	free(line);
}

void
rabbitmq_report(struct rabbitmq *rq, struct troika_task *task,
    enum troika_status status, const char *message)
{
	rabbitmq_done(rq, task, status, TROIKA_EVIDENCE_NONE, message, NULL);
}

/* OK: what was seen, in one line. */
static void
rabbitmq_summary(const struct rabbitmq_conf *c, const struct rabbitmq_amqp *a,
    struct rabbitmq_text *t)
{
	uint64_t ready = 0, consumers = 0;

	rabbitmq_text_add(t, "%s %s", a->product != NULL ? a->product :
	    "AMQP server", a->version != NULL ? a->version : "");
	if (c->nqueues == 0) {
		rabbitmq_text_add(t, ": logged in to vhost \"%s\"", c->vhost);
		return;
	}
	for (size_t i = 0; i < c->nqueues; i++) {
		ready += a->queues[i].messages_ready;
		consumers += a->queues[i].consumers;
	}
	rabbitmq_text_add(t, ": %zu queue%s, %llu message%s ready, %llu "
	    "consumer%s", c->nqueues, c->nqueues == 1 ? "" : "s",
	    (unsigned long long)ready, ready == 1 ? "" : "s",
	    (unsigned long long)consumers, consumers == 1 ? "" : "s");
}

static void
rabbitmq_check(void *state, struct troika_task *task)
{
	struct rabbitmq *rq = state;
	const struct rabbitmq_conf *c = &rq->conf;
	struct rabbitmq_amqp a = { 0 };
	struct rabbitmq_mgmt m = { 0 };
	struct rabbitmq_report rep;
	struct rabbitmq_text msg = { 0 };
	struct timespec deadline;
	enum troika_status status;
	enum troika_evidence evidence;
	int up;

	rabbitmq_deadline(rabbitmq_budget_ms(rq->host->task_remaining_ms(task)),
	    &deadline);
	if (rabbitmq_report_init(&rep, c->nqueues) < 0 ||
	    rabbitmq_amqp_run(c, &deadline, &a) < 0) {
		rabbitmq_done(rq, task, TROIKA_STATUS_UNKNOWN,
		    TROIKA_EVIDENCE_NONE, "out of memory", NULL);
		goto done;
	}
	up = a.logged_in && a.error.len == 0;
	rabbitmq_sample(&rep, "rabbitmq_up",
	    "1 if the broker accepted a login and answered every request",
	    up, NULL);
	if (!a.logged_in) {
		rabbitmq_done(rq, task, TROIKA_STATUS_CRITICAL, a.evidence,
		    rabbitmq_text_str(&a.error), &rep);
		goto done;
	}
	rabbitmq_sample(&rep, "troika_rabbitmq_connect_seconds",
	    "Time to connect and complete the AMQP handshake",
	    a.connect_seconds, NULL);
	rabbitmq_field(&rep, "product", a.product);
	rabbitmq_field(&rep, "version", a.version);
	rabbitmq_field(&rep, "cluster_name", a.cluster_name);
	if (!up)
		rabbitmq_problem(&rep, 1, a.evidence, "%s",
		    rabbitmq_text_str(&a.error));
	rabbitmq_judge_queues(c, &a, &rep);

	/* A session that broke half-way leaves no time worth spending. */
	if (c->mgmt_url != NULL && up) {
		if (rabbitmq_mgmt_run(c, &deadline, &m) < 0) {
			rabbitmq_done(rq, task, TROIKA_STATUS_UNKNOWN,
			    TROIKA_EVIDENCE_NONE, "out of memory", NULL);
			goto done;
		}
		rabbitmq_field(&rep, "node", m.node);
		rabbitmq_judge_mgmt(&m, &rep);
	}

	if (rep.crit.len > 0) {
		status = TROIKA_STATUS_CRITICAL;
		evidence = rep.crit_ev;
		rabbitmq_text_add(&msg, "%s", rabbitmq_text_str(&rep.crit));
		if (rep.warn.len > 0)
			rabbitmq_text_add(&msg, "; %s",
			    rabbitmq_text_str(&rep.warn));
	} else if (rep.warn.len > 0) {
		status = TROIKA_STATUS_WARNING;
		evidence = rep.warn_ev;
		rabbitmq_text_add(&msg, "%s", rabbitmq_text_str(&rep.warn));
	} else {
		status = TROIKA_STATUS_OK;
		evidence = TROIKA_EVIDENCE_NONE;
		rabbitmq_summary(c, &a, &msg);
	}
	rabbitmq_done(rq, task, status, evidence, rabbitmq_text_str(&msg), &rep);

done:
	rabbitmq_text_free(&msg);
	rabbitmq_mgmt_clear(&m);
	rabbitmq_amqp_clear(&a);
	rabbitmq_report_free(&rep);
}

static const struct troika_plugin rabbitmq_plugin = {
	.abi_major = TROIKA_PLUGIN_ABI_MAJOR,
	.abi_minor = TROIKA_PLUGIN_ABI_MINOR,
	.size = sizeof(struct troika_plugin),
	.name = "rabbitmq",
	.version = TROIKA_VERSION,
	.description = "RabbitMQ: AMQP login, queue depth and consumers, "
	    "alarms and partitions",
	.exec_model = TROIKA_EXEC_BLOCKING,
	.options = rabbitmq_options,
	.instance_new = rabbitmq_instance_new,
	.instance_free = rabbitmq_instance_free,
	.check = rabbitmq_check,
	.cancel = NULL,
	.actions = rabbitmq_actions,
	.action = rabbitmq_action,
};

__attribute__((visibility("default"))) const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void);

const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void)
{
	return &rabbitmq_plugin;
}
