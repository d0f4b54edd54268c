/*
 * The agent's streams to its coordinators (troika.v1.Agent/Connect): one
 * kept-up connection per configured target (grpc_reconnect: jittered
 * exponential backoff), one Connect call on it.
 *
 * What is sent, in this order of priority:
 *   - Hello, first on every stream and again after a reload;
 *   - check results. A result is never queued: every check's latest
 *     result stays in the check host, numbered by the host's result seq.
 *     A peer remembers up to which seq it has sent in order (sent_upto);
 *     when a stream blocks or is new, it re-sends every check whose latest
 *     result is newer, oldest first. So state is never lost, a check that
 *     ran twice while the coordinator was away is sent once (the earlier
 *     result is counted as superseded), and the memory this takes does not
 *     grow with the outage;
 *   - metric batches: one MetricBatch per check run, packed once and
 *     shared by every peer's queue. A queue holds at most
 *     max_queued_samples samples; beyond that the oldest batches go, and
 *     their samples are counted (per peer, and in the next batch sent);
 *   - heartbeats, when nothing else was sent for the heartbeat interval.
 * Heartbeats from the coordinator are never answered (agent.proto); a
 * coordinator silent for the timeout is left and reconnected to.
 *
 * Commands go to agent_command.c (fencing, deadlines, ids run once), and
 * their answers come back on the stream the command came on.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "agent.h"
#include "check_host.h"
#include "conf.h"
#include "grpc_client.h"
#include "grpc_server.h" /* grpc_tls_ctx_free */
#include "log.h"
#include "metrics.h"
#include "parse.h"
#include "troika/v1/agent.pb-c.h"

#define UPLINK_PATH "/troika.v1.Agent/Connect"
#define UPLINK_BACKOFF_MAX_MS 5000

/* One check run's samples, packed as a MetricBatch without field 3. */
struct uplink_batch {
	int refs;
	size_t nsamples;
	size_t len;
	uint8_t bytes[];
};

struct uplink_qitem {
	struct uplink_batch *batch;
	struct uplink_qitem *next;
};

struct uplink_peer {
	struct agent_uplink *up;
	char *target;
	struct grpc_reconnect *rc;
	struct grpc_client *cl;          /* the current attempt's client */
	struct grpc_client_call *call;   /* NULL: no stream */
	struct event *tick;
	int welcomed;
	int freeing;                     /* being freed: no reconnecting */
	char coordinator[128];           /* Welcome's name */
	int64_t heartbeat_ms;            /* in force on this stream */
	int64_t timeout_ms;
	int64_t last_sent_ms;            /* monotonic */
	int64_t last_recv_ms;
	uint64_t heartbeat_seq;

	/* Results: everything up to sent_upto went out in order. */
	uint64_t sent_upto;
	int backlog;                     /* newer results wait for room */

	struct uplink_qitem *qhead, *qtail;
	size_t queued_samples;
	uint64_t dropped_unreported;     /* for the next batch's field 3 */

	/* Counters for /metrics. */
	uint64_t streams;
	uint64_t results_sent;
	uint64_t results_superseded;
	uint64_t batches_sent;
	uint64_t samples_sent;
	uint64_t samples_dropped;
	uint64_t heartbeats_sent;
	uint64_t messages_received;
	uint64_t silences;
};

struct agent_uplink {
	struct agent *agent;
	struct uplink_peer *peers;
	size_t npeers;
	void *tls;                       /* SSL_CTX *, or NULL for h2c */
	/*
	 * The agent's: the highest fencing token seen must outlive streams
	 * and reloads, or a stale leader could act after one.
	 */
	struct agent_commands *commands;
};

static void uplink_pump(struct uplink_peer *p);

static int64_t
uplink_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t
uplink_unix_nano(double seconds)
{
	return seconds <= 0 ? 0 : (uint64_t)(seconds * 1e9);
}

static uint64_t
uplink_wall_nano(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void
uplink_batch_unref(struct uplink_batch *b)
{
	if (b != NULL && --b->refs == 0)
		free(b);
}

/* Send one packed AgentMessage: 0, or -EAGAIN (nothing taken), or < 0. */
static int
uplink_send_bytes(struct uplink_peer *p, const void *buf, size_t len)
{
	int r;

	if (p->call == NULL)
		return -ENOTCONN;
	if ((r = grpc_client_call_send(p->call, buf, len)) == 0)
		p->last_sent_ms = uplink_now_ms();
	return r;
}

static int
uplink_send(struct uplink_peer *p, const Troika__V1__AgentMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(&m->base);
	uint8_t *buf;
	int r;

	if ((buf = malloc(len > 0 ? len : 1)) == NULL)
		return -ENOMEM;
	protobuf_c_message_pack(&m->base, buf);
	r = uplink_send_bytes(p, buf, len);
	free(buf);
	return r;
}

/* ---- Hello ---- */

/* The actions a check offers: its plugin's, and the service manager's. */
static size_t
uplink_check_actions(const struct conf_check *cc, const struct plugin *pl,
    char **names, size_t max)
{
	static const char *const builtin[] = { "start", "stop", "restart" };
	const struct troika_action *acts = pl != NULL ?
	    plugin_actions(pl->desc) : NULL;
	size_t n = 0;

	for (size_t i = 0; acts != NULL && acts[i].name != NULL && n < max; i++)
		names[n++] = (char *)(uintptr_t)acts[i].name;
	if (cc->service.manager == CONF_SERVICE_NONE)
		return n;
	for (size_t b = 0; b < 3 && n < max; b++) {
		int dup = 0;

		for (size_t i = 0; i < n; i++)
			dup |= strcmp(names[i], builtin[b]) == 0;
		if (!dup)
			names[n++] = (char *)(uintptr_t)builtin[b];
	}
	return n;
}

static const struct plugin *
uplink_plugin(const struct agent *a, const char *name)
{
	for (const struct plugin *pl = a->plugins.plugins; pl != NULL;
	    pl = pl->next)
		if (strcmp(pl->desc->name, name) == 0)
			return pl;
	return NULL;
}

/*
 * Build and send Hello from the running configuration and plugins. The
 * protobuf-c structs point into agent memory (cast from const: protobuf-c
 * declares char *, and only reads while packing).
 */
static int
uplink_send_hello(struct uplink_peer *p)
{
	struct agent *a = p->up->agent;
	const struct agent_conf *conf = a->conf;
	Troika__V1__AgentMessage m = TROIKA__V1__AGENT_MESSAGE__INIT;
	Troika__V1__Hello hello = TROIKA__V1__HELLO__INIT;
	Troika__V1__Plugin *plugins = NULL, **pluginp = NULL;
	Troika__V1__Action *actions = NULL, **actionp = NULL;
	Troika__V1__Check *checks = NULL, **checkp = NULL;
	char **names = NULL;
	size_t np = 0, na = 0, nact = 0, k = 0;
	int r = -ENOMEM;

	for (const struct plugin *pl = a->plugins.plugins; pl != NULL;
	    pl = pl->next) {
		np++;
		for (const struct troika_action *x = plugin_actions(pl->desc);
		    x != NULL && x->name != NULL; x++)
			nact++;
	}
	/* Each check: its plugin's actions and three built-ins at most. */
	na = nact + 3;
	plugins = calloc(np + 1, sizeof(*plugins));
	pluginp = calloc(np + 1, sizeof(*pluginp));
	actions = calloc(nact + 1, sizeof(*actions));
	actionp = calloc(nact + 1, sizeof(*actionp));
	checks = calloc(conf->nchecks + 1, sizeof(*checks));
	checkp = calloc(conf->nchecks + 1, sizeof(*checkp));
	names = calloc(conf->nchecks * na + 1, sizeof(*names));
	if (plugins == NULL || pluginp == NULL || actions == NULL ||
	    actionp == NULL || checks == NULL || checkp == NULL || names == NULL)
		goto done;

	np = 0;
	for (const struct plugin *pl = a->plugins.plugins; pl != NULL;
	    pl = pl->next) {
		Troika__V1__Plugin *tp = &plugins[np];
		size_t first = k;

		troika__v1__plugin__init(tp);
		tp->name = (char *)(uintptr_t)pl->desc->name;
		tp->version = (char *)(uintptr_t)(pl->desc->version != NULL ?
		    pl->desc->version : "");
		tp->description = (char *)(uintptr_t)(pl->desc->description !=
		    NULL ? pl->desc->description : "");
		for (const struct troika_action *x = plugin_actions(pl->desc);
		    x != NULL && x->name != NULL; x++) {
			Troika__V1__Action *ta = &actions[k];

			troika__v1__action__init(ta);
			ta->name = (char *)(uintptr_t)x->name;
			ta->usage = (char *)(uintptr_t)(x->usage != NULL ?
			    x->usage : "");
			ta->min_args = x->min_args < 0 ? 0 :
			    (uint32_t)x->min_args;
			ta->max_args = x->max_args < 0 ? 0 :
			    (uint32_t)x->max_args;
			ta->help = (char *)(uintptr_t)(x->help != NULL ?
			    x->help : "");
			actionp[k++] = ta;
		}
		tp->actions = &actionp[first];
		tp->n_actions = k - first;
		pluginp[np++] = tp;
	}
	for (size_t i = 0; i < conf->nchecks; i++) {
		const struct conf_check *cc = &conf->checks[i];
		Troika__V1__Check *tc = &checks[i];

		troika__v1__check__init(tc);
		tc->name = cc->name;
		tc->plugin = cc->plugin;
		tc->interval_nano = (uint64_t)cc->interval_ms * 1000000;
		tc->timeout_nano = (uint64_t)cc->timeout_ms * 1000000;
		tc->actions = &names[i * na];
		tc->n_actions = uplink_check_actions(cc,
		    uplink_plugin(a, cc->plugin), &names[i * na], na);
		checkp[i] = tc;
	}
	hello.node = conf->node;
	hello.version = (char *)(uintptr_t)TROIKA_VERSION;
	hello.plugins = pluginp;
	hello.n_plugins = np;
	hello.checks = checkp;
	hello.n_checks = conf->nchecks;
	hello.start_time_unix_nano = uplink_unix_nano(a->start_time);
	hello.fencing_token = agent_commands_token(p->up->commands);
	m.body_case = TROIKA__V1__AGENT_MESSAGE__BODY_HELLO;
	m.hello = &hello;
	r = uplink_send(p, &m);
done:
	free(plugins);
	free(pluginp);
	free(actions);
	free(actionp);
	free(checks);
	free(checkp);
	free(names);
	return r;
}

/* ---- check results ---- */

static int
uplink_send_result(struct uplink_peer *p, const struct check_report *rep)
{
	Troika__V1__AgentMessage m = TROIKA__V1__AGENT_MESSAGE__INIT;
	Troika__V1__CheckResult res = TROIKA__V1__CHECK_RESULT__INIT;
	Troika__V1__Label *fields = NULL, **fieldp = NULL;
	int r;

	if (rep->nfields > 0) {
		fields = calloc(rep->nfields, sizeof(*fields));
		fieldp = calloc(rep->nfields, sizeof(*fieldp));
		if (fields == NULL || fieldp == NULL) {
			r = -ENOMEM;
			goto done;
		}
	}
	for (size_t i = 0; i < rep->nfields; i++) {
		troika__v1__label__init(&fields[i]);
		fields[i].name = (char *)(uintptr_t)rep->fields[i].name;
		fields[i].value = (char *)(uintptr_t)rep->fields[i].value;
		fieldp[i] = &fields[i];
	}
	res.check = (char *)(uintptr_t)rep->check;
	res.plugin = (char *)(uintptr_t)rep->plugin;
	res.status = (Troika__V1__CheckStatus)(rep->status + 1);
	res.evidence = (Troika__V1__Evidence)rep->evidence;
	res.message = (char *)(uintptr_t)rep->message;
	res.duration_nano = rep->duration > 0 ?
	    (uint64_t)(rep->duration * 1e9) : 0;
	res.fields = fieldp;
	res.n_fields = rep->nfields;
	res.time_unix_nano = uplink_unix_nano(rep->time);
	res.run = rep->run;
	res.timed_out = rep->timed_out != 0;
	m.body_case = TROIKA__V1__AGENT_MESSAGE__BODY_CHECK_RESULT;
	m.check_result = &res;
	if ((r = uplink_send(p, &m)) == 0)
		p->results_sent++;
done:
	free(fields);
	free(fieldp);
	return r;
}

static int
uplink_report_seq_cmp(const void *x, const void *y)
{
	const struct check_report *a = x, *b = y;

	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/*
 * Send, oldest first, every check whose latest result is newer than
 * sent_upto. Returns 0 when all went out, -EAGAIN when the stream is full
 * (drained() resumes), another negative errno on failure.
 */
static int
uplink_resync(struct uplink_peer *p)
{
	struct check_host *h = p->up->agent->checks;
	size_t n = check_host_count(h), k = 0;
	struct check_report *reps;
	int r = 0;

	if (n == 0) {
		p->backlog = 0;
		return 0;
	}
	if ((reps = calloc(n, sizeof(*reps))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (check_report_get(check_host_at(h, i), &reps[k]) == 0 &&
		    reps[k].seq > p->sent_upto)
			k++;
	qsort(reps, k, sizeof(*reps), uplink_report_seq_cmp);
	for (size_t i = 0; i < k; i++) {
		if ((r = uplink_send_result(p, &reps[i])) < 0)
			break;
		p->sent_upto = reps[i].seq;
	}
	if (r == 0)
		p->backlog = 0;
	free(reps);
	return r;
}

/* ---- metric batches ---- */

/*
 * Pack one run's samples as a MetricBatch, once for every peer. The
 * agent adds check and plugin labels (the coordinator adds node); HELP
 * goes with the first sample of each name in the batch.
 */
static struct uplink_batch *
uplink_batch_new(const struct troika_instance *c, const struct check_report *rep)
{
	Troika__V1__MetricBatch mb = TROIKA__V1__METRIC_BATCH__INIT;
	Troika__V1__Sample *samples, **samplep;
	Troika__V1__Label *labels = NULL, **labelp = NULL;
	struct uplink_batch *b = NULL;
	size_t nlabels = 0, l = 0, len;

	samples = calloc(rep->nsamples, sizeof(*samples));
	samplep = calloc(rep->nsamples, sizeof(*samplep));
	if (samples == NULL || samplep == NULL)
		goto done;
	for (size_t i = 0; i < rep->nsamples; i++) {
		struct troika_sample s;

		check_report_sample(c, i, &s);
		nlabels += 2 + s.nlabels;
	}
	labels = calloc(nlabels, sizeof(*labels));
	labelp = calloc(nlabels, sizeof(*labelp));
	if (labels == NULL || labelp == NULL)
		goto done;
	for (size_t i = 0; i < rep->nsamples; i++) {
		Troika__V1__Sample *ts = &samples[i];
		struct troika_sample s, prev;
		size_t first = l;

		check_report_sample(c, i, &s);
		troika__v1__sample__init(ts);
		ts->name = (char *)(uintptr_t)s.name;
		ts->value = s.value;
		ts->type = (Troika__V1__MetricType)s.type;
		if (i > 0)
			check_report_sample(c, i - 1, &prev);
		if (s.help != NULL && (i == 0 || strcmp(prev.name, s.name) != 0))
			ts->help = (char *)(uintptr_t)s.help;
		troika__v1__label__init(&labels[l]);
		labels[l].name = (char *)(uintptr_t)"check";
		labels[l].value = (char *)(uintptr_t)rep->check;
		labelp[l] = &labels[l];
		l++;
		troika__v1__label__init(&labels[l]);
		labels[l].name = (char *)(uintptr_t)"plugin";
		labels[l].value = (char *)(uintptr_t)rep->plugin;
		labelp[l] = &labels[l];
		l++;
		for (size_t j = 0; j < s.nlabels; j++) {
			troika__v1__label__init(&labels[l]);
			labels[l].name = (char *)(uintptr_t)s.labels[j].name;
			labels[l].value = (char *)(uintptr_t)s.labels[j].value;
			labelp[l] = &labels[l];
			l++;
		}
		ts->labels = &labelp[first];
		ts->n_labels = l - first;
		samplep[i] = ts;
	}
	mb.samples = samplep;
	mb.n_samples = rep->nsamples;
	mb.time_unix_nano = uplink_unix_nano(rep->time);
	len = protobuf_c_message_get_packed_size(&mb.base);
	if ((b = malloc(sizeof(*b) + len)) == NULL)
		goto done;
	b->refs = 1;
	b->nsamples = rep->nsamples;
	b->len = protobuf_c_message_pack(&mb.base, b->bytes);
done:
	free(samples);
	free(samplep);
	free(labels);
	free(labelp);
	return b;
}

static size_t
uplink_varint(uint8_t *out, uint64_t v)
{
	size_t n = 0;

	do {
		out[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v != 0)
			out[n] |= 0x80;
		n++;
	} while (v != 0);
	return n;
}

/*
 * The batch as an AgentMessage, with dropped_samples appended. Written by
 * hand because the batch is packed once for all peers and only field 3
 * differs between them; protobuf allows fields in any order, so appending
 * it to the packed batch is a valid encoding (AgentMessage.metric_batch is
 * field 3, MetricBatch.dropped_samples field 3, both as in agent.proto).
 */
static int
uplink_send_batch(struct uplink_peer *p, const struct uplink_batch *b)
{
	uint8_t tail[12], head[12];
	size_t ntail = 0, nhead, blen;
	uint8_t *buf;
	int r;

	if (p->dropped_unreported > 0) {
		tail[ntail++] = (3 << 3) | 0; /* field 3, varint */
		ntail += uplink_varint(&tail[ntail], p->dropped_unreported);
	}
	blen = b->len + ntail;
	head[0] = (3 << 3) | 2; /* field 3, length-delimited */
	nhead = 1 + uplink_varint(&head[1], blen);
	if ((buf = malloc(nhead + blen)) == NULL)
		return -ENOMEM;
	memcpy(buf, head, nhead);
	memcpy(buf + nhead, b->bytes, b->len);
	memcpy(buf + nhead + b->len, tail, ntail);
	r = uplink_send_bytes(p, buf, nhead + blen);
	free(buf);
	if (r == 0) {
		p->batches_sent++;
		p->samples_sent += b->nsamples;
		p->dropped_unreported = 0;
	}
	return r;
}

static void
uplink_queue_pop(struct uplink_peer *p)
{
	struct uplink_qitem *q = p->qhead;

	p->qhead = q->next;
	if (p->qhead == NULL)
		p->qtail = NULL;
	p->queued_samples -= q->batch->nsamples;
	uplink_batch_unref(q->batch);
	free(q);
}

/* Queue a batch, dropping the oldest ones beyond max_queued_samples. */
static void
uplink_queue_push(struct uplink_peer *p, struct uplink_batch *b)
{
	size_t max = (size_t)p->up->agent->conf->uplink.max_queued_samples;
	struct uplink_qitem *q;

	while (p->qhead != NULL && p->queued_samples + b->nsamples > max) {
		p->samples_dropped += p->qhead->batch->nsamples;
		p->dropped_unreported += p->qhead->batch->nsamples;
		uplink_queue_pop(p);
	}
	if (b->nsamples > max || (q = malloc(sizeof(*q))) == NULL) {
		p->samples_dropped += b->nsamples;
		p->dropped_unreported += b->nsamples;
		return;
	}
	b->refs++;
	q->batch = b;
	q->next = NULL;
	if (p->qtail != NULL)
		p->qtail->next = q;
	else
		p->qhead = q;
	p->qtail = q;
	p->queued_samples += b->nsamples;
}

static void
uplink_queue_clear(struct uplink_peer *p)
{
	while (p->qhead != NULL)
		uplink_queue_pop(p);
}

/* ---- the stream ---- */

/* Results first (state), then batches, as long as the stream takes them. */
static void
uplink_pump(struct uplink_peer *p)
{
	int r = 0;

	/* Nothing before the Welcome: the stream is not there until then. */
	if (p->call == NULL || !p->welcomed)
		return;
	if (p->backlog && (r = uplink_resync(p)) < 0)
		goto out;
	while (p->qhead != NULL) {
		if ((r = uplink_send_batch(p, p->qhead->batch)) < 0)
			goto out;
		uplink_queue_pop(p);
	}
	return;
out:
	if (r != -EAGAIN)
		log_warnx("coordinator %s: sending: %s", p->target,
		    strerror(-r));
}


/* Four ticks per heartbeat keep both deadlines within a quarter of it. */
static void
uplink_tick_arm(struct uplink_peer *p)
{
	int64_t ms = p->heartbeat_ms / 4 > 0 ? p->heartbeat_ms / 4 : 1;
	struct timeval tv;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	event_add(p->tick, &tv);
}

static void
uplink_on_message(struct grpc_client_call *call, const uint8_t *msg, size_t len,
    void *arg)
{
	struct uplink_peer *p = arg;
	Troika__V1__CoordinatorMessage *cm;

	(void)call;
	p->last_recv_ms = uplink_now_ms();
	p->messages_received++;
	if ((cm = troika__v1__coordinator_message__unpack(NULL, len,
	    msg)) == NULL) {
		log_warnx("coordinator %s: cannot parse CoordinatorMessage "
		    "(%zu bytes); ignored", p->target, len);
		return;
	}
	switch (cm->body_case) {
	case TROIKA__V1__COORDINATOR_MESSAGE__BODY_WELCOME: {
		const Troika__V1__Welcome *w = cm->welcome;

		if (!p->welcomed) {
			log_info("coordinator %s: welcomed by %s (version %s)",
			    p->target, w->coordinator, w->version);
			p->streams++;
			/*
			 * A new stream knows nothing: every check's latest
			 * result again (reset only now, so that results
			 * replaced while connecting count as superseded).
			 */
			p->sent_upto = 0;
			p->backlog = 1;
		}
		p->welcomed = 1;
		snprintf(p->coordinator, sizeof(p->coordinator), "%s",
		    w->coordinator);
		if (w->heartbeat_interval_nano >= 100 * 1000000ULL &&
		    w->heartbeat_interval_nano <= 3600 * 1000000000ULL) {
			p->heartbeat_ms =
			    (int64_t)(w->heartbeat_interval_nano / 1000000);
			if (p->timeout_ms < 3 * p->heartbeat_ms)
				p->timeout_ms = 3 * p->heartbeat_ms;
			uplink_tick_arm(p);
		}
		agent_commands_see_token(p->up->commands, w->fencing_token);
		uplink_pump(p);
		break;
	}
	case TROIKA__V1__COORDINATOR_MESSAGE__BODY_COMMAND:
		agent_commands_handle(p->up->commands, p, p->target,
		    cm->command);
		break;
	case TROIKA__V1__COORDINATOR_MESSAGE__BODY_HEARTBEAT:
		break;
	default:
		/* A newer coordinator's kind of message: nothing to do. */
		break;
	}
	troika__v1__coordinator_message__free_unpacked(cm, NULL);
}

static void
uplink_on_drained(struct grpc_client_call *call, void *arg)
{
	(void)call;
	uplink_pump(arg);
}

static void
uplink_on_close(struct grpc_client_call *call, int status, const char *message,
    void *arg)
{
	struct uplink_peer *p = arg;

	(void)call;
	p->call = NULL;
	p->backlog = 1;
	/* An attempt that never got through is the down() line's to log. */
	if (status != GRPC_STATUS_CANCELLED && p->welcomed)
		log_warnx("coordinator %s: stream ended: %s%s%s", p->target,
		    grpc_status_str(status), *message != '\0' ? ": " : "",
		    message);
	p->welcomed = 0;
	/*
	 * A stream only ends when something is wrong: leave the connection,
	 * so the next attempt comes after the backoff, not in a loop.
	 */
	if (!p->freeing && p->cl != NULL && grpc_client_usable(p->cl))
		grpc_client_shutdown(p->cl);
}

static const struct grpc_client_handler uplink_handler = {
	.message = uplink_on_message,
	.drained = uplink_on_drained,
	.close = uplink_on_close,
};

static void
uplink_on_attempt(struct grpc_reconnect *r, struct grpc_client *cl, void *arg)
{
	struct uplink_peer *p = arg;
	const struct conf_uplink *cu = &p->up->agent->conf->uplink;

	(void)r;
	p->cl = cl;
	p->call = grpc_client_call_open(cl, UPLINK_PATH, 0, &uplink_handler, p);
	if (p->call == NULL) {
		log_warn("coordinator %s: opening the stream", p->target);
		grpc_client_shutdown(cl);
		return;
	}
	p->welcomed = 0;
	p->heartbeat_ms = cu->heartbeat_ms;
	p->timeout_ms = cu->timeout_ms;
	uplink_tick_arm(p);
	p->last_recv_ms = p->last_sent_ms = uplink_now_ms();
	p->heartbeat_seq = 0;
	p->backlog = 1;
	if (uplink_send_hello(p) < 0) {
		log_warnx("coordinator %s: cannot send Hello", p->target);
		grpc_client_call_cancel(p->call);
		return;
	}
	uplink_pump(p);
}

static void
uplink_on_down(struct grpc_reconnect *r, const char *reason, int64_t next_ms,
    void *arg)
{
	struct uplink_peer *p = arg;

	(void)r;
	p->cl = NULL;
	p->call = NULL;
	log_info("coordinator %s: %s; next attempt in %lld ms", p->target,
	    reason, (long long)next_ms);
}

static void
uplink_heartbeat(struct uplink_peer *p)
{
	Troika__V1__AgentMessage m = TROIKA__V1__AGENT_MESSAGE__INIT;
	Troika__V1__Heartbeat hb = TROIKA__V1__HEARTBEAT__INIT;

	hb.time_unix_nano = uplink_wall_nano();
	hb.seq = p->heartbeat_seq + 1;
	m.body_case = TROIKA__V1__AGENT_MESSAGE__BODY_HEARTBEAT;
	m.heartbeat = &hb;
	/* -EAGAIN: data is waiting to go, so we are not silent anyway. */
	if (uplink_send(p, &m) == 0) {
		p->heartbeat_seq++;
		p->heartbeats_sent++;
	}
}

static void
uplink_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct uplink_peer *p = arg;
	int64_t now = uplink_now_ms();

	(void)fd;
	(void)what;
	if (p->call == NULL)
		return;
	if (now - p->last_recv_ms >= p->timeout_ms) {
		log_warnx("coordinator %s: silent for %lld ms; reconnecting",
		    p->target, (long long)(now - p->last_recv_ms));
		p->silences++;
		grpc_client_call_cancel(p->call);
		return;
	}
	if (now - p->last_sent_ms >= p->heartbeat_ms)
		uplink_heartbeat(p);
}

/* ---- the check host's results ---- */

static void
uplink_on_result(const struct troika_instance *c, uint64_t prev_seq, void *arg)
{
	struct agent_uplink *up = arg;
	struct uplink_batch *b = NULL;
	struct check_report rep;

	if (check_report_get(c, &rep) < 0)
		return;
	if (rep.nsamples > 0 && (b = uplink_batch_new(c, &rep)) == NULL)
		log_warnx("check %s: out of memory packing samples",
		    rep.check);
	for (size_t i = 0; i < up->npeers; i++) {
		struct uplink_peer *p = &up->peers[i];

		if (p->call != NULL && p->welcomed && !p->backlog) {
			int r = uplink_send_result(p, &rep);

			if (r == 0)
				p->sent_upto = rep.seq;
			else
				p->backlog = 1;
		} else if (prev_seq > p->sent_upto) {
			/* The previous result never went out: now it never will. */
			p->results_superseded++;
		}
		if (b != NULL)
			uplink_queue_push(p, b);
		else if (rep.nsamples > 0) {
			p->samples_dropped += rep.nsamples;
			p->dropped_unreported += rep.nsamples;
		}
		uplink_pump(p);
	}
	uplink_batch_unref(b);
}

/* ---- life ---- */

/* Answers to commands go back on the stream the command came on. */
int
agent_uplink_send(void *sender, const void *msg, size_t len)
{
	return uplink_send_bytes(sender, msg, len);
}

static void
uplink_peer_free(struct uplink_peer *p)
{
	if (p->up->commands != NULL)
		agent_commands_sender_gone(p->up->commands, p);
	if (p->tick != NULL)
		event_free(p->tick);
	p->freeing = 1;
	/* Cancels the call: its close() runs with CANCELLED, quietly. */
	grpc_reconnect_free(p->rc);
	uplink_queue_clear(p);
	free(p->target);
}

struct agent_uplink *
agent_uplink_start(struct agent *a)
{
	const struct conf_uplink *cu = &a->conf->uplink;
	struct grpc_client_config cfg;
	struct grpc_backoff backoff;
	struct agent_uplink *up;

	if (cu->ntargets == 0)
		return NULL;
	if ((up = calloc(1, sizeof(*up))) == NULL ||
	    (up->peers = calloc(cu->ntargets, sizeof(*up->peers))) == NULL) {
		log_warn("coordinators");
		free(up);
		return NULL;
	}
	up->agent = a;
	up->commands = a->commands;
	if (cu->tls && (up->tls = grpc_tls_client_ctx(cu->tls_ca,
	    cu->tls_cert, cu->tls_key)) == NULL)
		goto fail;
	grpc_client_config_default(&cfg);
	/*
	 * An agent waits at most 5 s (+-20 %) for its next attempt, where
	 * gRPC's default is 120 s: a restarted coordinator must have every
	 * node's state within seconds, and a cluster has a handful of
	 * agents, not thousands, so the attempts cost nothing.
	 */
	grpc_backoff_init(&backoff, 0);
	backoff.max_ms = UPLINK_BACKOFF_MAX_MS;
	for (size_t i = 0; i < cu->ntargets; i++) {
		struct uplink_peer *p = &up->peers[i];
		char host[256];
		int port;

		p->up = up;
		up->npeers++;
		p->backlog = 1;
		if ((p->target = strdup(cu->targets[i])) == NULL ||
		    parse_hostport(p->target, host, sizeof(host), 1,
		    &port) != 0)
			goto fail;
		p->heartbeat_ms = cu->heartbeat_ms;
		if ((p->tick = event_new(a->base, -1, EV_PERSIST,
		    uplink_tick_cb, p)) == NULL)
			goto fail;
		uplink_tick_arm(p);
		p->rc = grpc_reconnect_new(a->base, host, port, up->tls, NULL,
		    &cfg, &backoff, uplink_on_attempt, uplink_on_down, p);
		if (p->rc == NULL) {
			log_warn("coordinator %s", p->target);
			goto fail;
		}
	}
	check_host_set_result_hook(a->checks, uplink_on_result, up);
	log_info("reporting to %zu coordinator%s", up->npeers,
	    up->npeers == 1 ? "" : "s");
	return up;
fail:
	agent_uplink_free(up);
	return NULL;
}

void
agent_uplink_hello(struct agent_uplink *up)
{
	for (size_t i = 0; up != NULL && i < up->npeers; i++) {
		struct uplink_peer *p = &up->peers[i];

		if (p->call == NULL)
			continue;
		/* The coordinator replaces what it knew: tell it all again. */
		if (uplink_send_hello(p) < 0) {
			grpc_client_call_cancel(p->call);
			continue;
		}
		p->sent_upto = 0;
		p->backlog = 1;
		uplink_pump(p);
	}
}

void
agent_uplink_free(struct agent_uplink *up)
{
	if (up == NULL)
		return;
	if (up->agent->checks != NULL)
		check_host_set_result_hook(up->agent->checks, NULL, NULL);
	for (size_t i = 0; i < up->npeers; i++)
		uplink_peer_free(&up->peers[i]);
	free(up->peers);
	grpc_tls_ctx_free(up->tls);
	free(up);
}

static void
uplink_counter(struct evbuffer *out, const struct agent_uplink *up,
    const char *name, const char *help, size_t off)
{
	metrics_family(out, name, "counter", help);
	for (size_t i = 0; i < up->npeers; i++) {
		const struct uplink_peer *p = &up->peers[i];
		struct troika_label l = { "coordinator", p->target };

		metrics_sample(out, name, &l, 1, NULL,
		    (double)*(const uint64_t *)(const void *)
		    ((const char *)p + off));
	}
}

void
agent_uplink_metrics(const struct agent_uplink *up, struct evbuffer *out)
{
	struct grpc_reconnect *rcs[64];
	size_t n = 0;

	if (up == NULL)
		return;
	metrics_family(out, "troika_agent_coordinator_connected", "gauge",
	    "1 while the Connect stream to the coordinator is open and "
	    "welcomed.");
	for (size_t i = 0; i < up->npeers; i++) {
		struct troika_label l = { "coordinator", up->peers[i].target };

		metrics_sample(out, "troika_agent_coordinator_connected", &l, 1,
		    NULL, up->peers[i].call != NULL && up->peers[i].welcomed);
	}
	metrics_family(out, "troika_agent_coordinator_queued_samples", "gauge",
	    "Metric samples waiting to be sent to the coordinator.");
	for (size_t i = 0; i < up->npeers; i++) {
		struct troika_label l = { "coordinator", up->peers[i].target };

		metrics_sample(out, "troika_agent_coordinator_queued_samples",
		    &l, 1, NULL, (double)up->peers[i].queued_samples);
	}
	uplink_counter(out, up, "troika_agent_coordinator_streams_total",
	    "Connect streams the coordinator welcomed.",
	    offsetof(struct uplink_peer, streams));
	uplink_counter(out, up, "troika_agent_coordinator_results_sent_total",
	    "Check results sent (re-sent ones included).",
	    offsetof(struct uplink_peer, results_sent));
	uplink_counter(out, up,
	    "troika_agent_coordinator_results_superseded_total",
	    "Check results never sent because a newer result of the same "
	    "check replaced them while the stream was away or full.",
	    offsetof(struct uplink_peer, results_superseded));
	uplink_counter(out, up, "troika_agent_coordinator_batches_sent_total",
	    "Metric batches sent.", offsetof(struct uplink_peer, batches_sent));
	uplink_counter(out, up, "troika_agent_coordinator_samples_sent_total",
	    "Metric samples sent.", offsetof(struct uplink_peer, samples_sent));
	uplink_counter(out, up,
	    "troika_agent_coordinator_samples_dropped_total",
	    "Metric samples dropped, oldest first, because the queue for the "
	    "coordinator was full.",
	    offsetof(struct uplink_peer, samples_dropped));
	uplink_counter(out, up,
	    "troika_agent_coordinator_heartbeats_sent_total",
	    "Heartbeats sent on silent streams.",
	    offsetof(struct uplink_peer, heartbeats_sent));
	uplink_counter(out, up,
	    "troika_agent_coordinator_messages_received_total",
	    "Messages received from the coordinator.",
	    offsetof(struct uplink_peer, messages_received));
	uplink_counter(out, up,
	    "troika_agent_coordinator_silences_total",
	    "Streams left because the coordinator was silent for the "
	    "timeout.", offsetof(struct uplink_peer, silences));
	for (size_t i = 0; i < up->npeers && n < 64; i++)
		rcs[n++] = up->peers[i].rc;
	grpc_reconnect_write_metrics(rcs, n, out);
}
