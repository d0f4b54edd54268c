/*
 * A gRPC target kept connected (grpc_client.h, "a connection kept up"):
 * a client per attempt, freed when it goes down, the next one after a
 * jittered exponential backoff. Jitter matters here: after a coordinator
 * restart every agent of the cluster reconnects, and they must not all
 * come back in the same millisecond.
 */
#include "grpc_client.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "log.h"
#include "metrics.h"

struct grpc_reconnect {
	struct event_base *base;
	char *host;
	int port;
	void *tls;             /* SSL_CTX *, referenced */
	char *authority;
	struct grpc_client_config cfg;
	struct grpc_backoff backoff;
	struct grpc_client *cl;
	struct event *retry_ev;
	uint64_t attempts;
	char target[300];      /* host:port, the metrics' label */
	/* Counters of the clients already gone (the current one is live). */
	struct grpc_client_stats past;
	grpc_reconnect_attempt_cb attempt;
	grpc_reconnect_down_cb down;
	void *arg;
};

static void grpc_reconnect_retry_cb(evutil_socket_t fd, short what,
    void *arg);

/* Add what a client counted to dst (gauges left alone). */
static void
grpc_reconnect_add(struct grpc_client_stats *dst,
    const struct grpc_client_stats *st)
{
	dst->calls_started += st->calls_started;
	dst->msgs_sent += st->msgs_sent;
	dst->msgs_received += st->msgs_received;
	dst->bytes_sent += st->bytes_sent;
	dst->bytes_received += st->bytes_received;
	dst->pings_sent += st->pings_sent;
	for (int c = 0; c <= GRPC_STATUS_MAX; c++)
		dst->handled[c] += st->handled[c];
}

static void
grpc_reconnect_account(struct grpc_reconnect *r, struct grpc_client *cl)
{
	grpc_reconnect_add(&r->past, grpc_client_stats(cl));
}

static void
grpc_reconnect_schedule(struct grpc_reconnect *r, const char *reason)
{
	int64_t ms = grpc_backoff_next(&r->backoff);
	struct timeval tv;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(r->retry_ev, &tv);
	log_debug("grpc %s:%d: %s; next attempt in %lld ms", r->host, r->port,
	    reason, (long long)ms);
	if (r->down != NULL)
		r->down(r, reason, ms, r->arg);
}

/* From the client's own down event: freeing it here is allowed. */
static void
grpc_reconnect_client_down_cb(struct grpc_client *cl, const char *reason,
    void *arg)
{
	struct grpc_reconnect *r = arg;
	char why[128];

	/* A connection that worked starts the backoff over. */
	if (grpc_client_handshaken(cl))
		grpc_backoff_reset(&r->backoff);
	/* As gRPC clients do: the server's patience is not ours to test. */
	if (grpc_client_too_many_pings(cl) && r->cfg.keepalive_ms > 0 &&
	    r->cfg.keepalive_ms < INT64_MAX / 2) {
		r->cfg.keepalive_ms *= 2;
		log_info("grpc %s:%d: too many pings, keepalive now %lld ms",
		    r->host, r->port, (long long)r->cfg.keepalive_ms);
	}
	snprintf(why, sizeof(why), "%s", reason);
	grpc_reconnect_account(r, cl);
	grpc_client_free(cl);
	r->cl = NULL;
	grpc_reconnect_schedule(r, why);
}

static void
grpc_reconnect_try(struct grpc_reconnect *r)
{
	r->attempts++;
	r->cl = grpc_client_connect(r->base, r->host, r->port, r->tls,
	    r->authority, &r->cfg, grpc_reconnect_client_down_cb, r);
	if (r->cl == NULL) {
		grpc_reconnect_schedule(r, "cannot make a client");
		return;
	}
	if (r->attempt != NULL)
		r->attempt(r, r->cl, r->arg);
}

static void
grpc_reconnect_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	grpc_reconnect_try(arg);
}

struct grpc_reconnect *
grpc_reconnect_new(struct event_base *base, const char *host, int port,
    void *tls, const char *authority, const struct grpc_client_config *cfg,
    const struct grpc_backoff *backoff, grpc_reconnect_attempt_cb attempt,
    grpc_reconnect_down_cb down, void *arg)
{
	struct grpc_reconnect *r;
	uint64_t seed;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->base = base;
	r->port = port;
	r->attempt = attempt;
	r->down = down;
	r->arg = arg;
	if (cfg != NULL)
		r->cfg = *cfg;
	else
		grpc_client_config_default(&r->cfg);
	/* Agents started together still spread their attempts. */
	seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^
	    (uint64_t)(uintptr_t)r;
	grpc_backoff_init(&r->backoff, seed);
	if (backoff != NULL) {
		uint64_t rng = r->backoff.rng;

		r->backoff = *backoff;
		r->backoff.rng = rng;
		grpc_backoff_reset(&r->backoff);
	}
	snprintf(r->target, sizeof(r->target), strchr(host, ':') != NULL ?
	    "[%s]:%d" : "%s:%d", host, port);
	if ((r->host = strdup(host)) == NULL ||
	    (authority != NULL && (r->authority = strdup(authority)) == NULL) ||
	    (r->retry_ev = evtimer_new(base, grpc_reconnect_retry_cb,
	    r)) == NULL) {
		grpc_reconnect_free(r);
		errno = ENOMEM;
		return NULL;
	}
	if (tls != NULL) {
		SSL_CTX_up_ref(tls);
		r->tls = tls;
	}
	/* The first attempt too comes from the loop, never from in here. */
	event_active(r->retry_ev, EV_TIMEOUT, 0);
	return r;
}

struct grpc_client *
grpc_reconnect_client(const struct grpc_reconnect *r)
{
	return r->cl;
}

int64_t
grpc_reconnect_keepalive_ms(const struct grpc_reconnect *r)
{
	return r->cfg.keepalive_ms;
}

uint64_t
grpc_reconnect_attempts(const struct grpc_reconnect *r)
{
	return r->attempts;
}

static void
grpc_reconnect_family(struct evbuffer *out, struct grpc_reconnect *const *rs,
    size_t n, const char *name, const char *type, const char *help,
    size_t offset)
{
	struct troika_label l = { "target", NULL };

	metrics_family(out, name, type, help);
	for (size_t i = 0; i < n; i++) {
		struct grpc_client_stats st = rs[i]->past;

		if (rs[i]->cl != NULL)
			grpc_reconnect_add(&st, grpc_client_stats(rs[i]->cl));
		l.value = rs[i]->target;
		metrics_sample(out, name, &l, 1, NULL,
		    (double)*(const uint64_t *)(const void *)
		    ((const char *)&st + offset));
	}
}

void
grpc_reconnect_write_metrics(struct grpc_reconnect *const *rs, size_t n,
    struct evbuffer *out)
{
	struct troika_label l[2] = { { "target", NULL }, { "grpc_code", NULL } };

	if (n == 0)
		return;
	metrics_family(out, "troika_grpc_client_connected", "gauge",
	    "1 while the connection to the target completed its handshake "
	    "and is up.");
	for (size_t i = 0; i < n; i++) {
		const struct grpc_client *cl = rs[i]->cl;

		l[0].value = rs[i]->target;
		metrics_sample(out, "troika_grpc_client_connected", l, 1, NULL,
		    cl != NULL && grpc_client_handshaken(cl) &&
		    grpc_client_usable(cl) ? 1 : 0);
	}
	metrics_family(out, "troika_grpc_client_connect_attempts_total",
	    "counter", "Connection attempts, the first included.");
	for (size_t i = 0; i < n; i++) {
		l[0].value = rs[i]->target;
		metrics_sample(out, "troika_grpc_client_connect_attempts_total",
		    l, 1, NULL, (double)rs[i]->attempts);
	}
	grpc_reconnect_family(out, rs, n, "troika_grpc_client_calls_started_total",
	    "counter", "Calls opened.",
	    offsetof(struct grpc_client_stats, calls_started));
	metrics_family(out, "troika_grpc_client_calls_handled_total", "counter",
	    "Calls ended, by final status.");
	for (size_t i = 0; i < n; i++) {
		struct grpc_client_stats st = rs[i]->past;

		if (rs[i]->cl != NULL)
			grpc_reconnect_add(&st, grpc_client_stats(rs[i]->cl));
		l[0].value = rs[i]->target;
		for (int c = 0; c <= GRPC_STATUS_MAX; c++) {
			/* OK always, so the series exists from the start. */
			if (st.handled[c] == 0 && c != GRPC_STATUS_OK)
				continue;
			l[1].value = grpc_status_str(c);
			metrics_sample(out,
			    "troika_grpc_client_calls_handled_total", l, 2, NULL,
			    (double)st.handled[c]);
		}
	}
	grpc_reconnect_family(out, rs, n, "troika_grpc_client_msg_sent_total",
	    "counter", "Request messages queued.",
	    offsetof(struct grpc_client_stats, msgs_sent));
	grpc_reconnect_family(out, rs, n,
	    "troika_grpc_client_msg_received_total", "counter",
	    "Response messages received.",
	    offsetof(struct grpc_client_stats, msgs_received));
	grpc_reconnect_family(out, rs, n, "troika_grpc_client_sent_bytes_total",
	    "counter", "HTTP/2 bytes sent, framing included.",
	    offsetof(struct grpc_client_stats, bytes_sent));
	grpc_reconnect_family(out, rs, n,
	    "troika_grpc_client_received_bytes_total", "counter",
	    "HTTP/2 bytes received, framing included.",
	    offsetof(struct grpc_client_stats, bytes_received));
	grpc_reconnect_family(out, rs, n,
	    "troika_grpc_client_keepalive_pings_total", "counter",
	    "Keepalive PINGs sent.",
	    offsetof(struct grpc_client_stats, pings_sent));
}

void
grpc_reconnect_free(struct grpc_reconnect *r)
{
	if (r == NULL)
		return;
	grpc_client_free(r->cl);
	if (r->retry_ev != NULL)
		event_free(r->retry_ev);
	if (r->tls != NULL)
		SSL_CTX_free(r->tls);
	free(r->host);
	free(r->authority);
	free(r);
}
