/*
 * The alert hooks (see alert.h): per hook a bounded queue of payloads,
 * one delivery at a time, retries with backoff, then a drop. HTTP goes
 * through a curl multi handle on the loop (curlm), exec hooks through the
 * spawn helper; neither ever blocks the loop.
 */
#include "alert.h"

#include <sys/queue.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "curlm.h"
#include "log.h"
#include "metrics.h"
#include "spawn.h"

/* The longest pause between two attempts, whatever the doubling says. */
#define ALERT_MAX_BACKOFF_MS (5 * 60 * 1000)

struct alert_item {
	TAILQ_ENTRY(alert_item) entry;
	char *body;
	size_t len;
	char **env; /* exec: "TROIKA_EVENT_...=..." strings, NULL-terminated */
	int attempts;
};

struct alert_hook {
	struct alert_hooks *ah;
	struct alert_hook_conf conf;
	struct alert_am *am; /* alertmanager */
	TAILQ_HEAD(, alert_item) queue;
	size_t nqueued;
	int busy;                     /* a delivery in flight */
	CURL *easy;
	struct curl_slist *headers;
	char errbuf[CURL_ERROR_SIZE];
	struct spawn *sp;
	struct event *retry;          /* backoff before the next attempt */
	struct event *resend;         /* alertmanager: every resend_ms */
	int failing;                  /* the last attempt failed (logged) */
	uint64_t ok, failed, dropped_full, dropped_retries;
};

struct alert_hooks {
	struct event_base *base;
	struct curlm *cm; /* NULL without HTTP hooks */
	struct alert_hook *hooks;
	size_t n;
	alert_sending_fn sending;
	void *arg;
	int was_sending;
};

static void alert_hook_kick(struct alert_hook *h);

void
alert_hook_conf_default(struct alert_hook_conf *hc)
{
	memset(hc, 0, sizeof(*hc));
	hc->min_severity = ALERT_WARNING;
	hc->timeout_ms = ALERT_DEFAULT_TIMEOUT_MS;
	hc->resend_ms = ALERT_DEFAULT_RESEND_MS;
	hc->queue = ALERT_DEFAULT_QUEUE;
	hc->retries = ALERT_DEFAULT_RETRIES;
	hc->backoff_ms = ALERT_DEFAULT_BACKOFF_MS;
}

static void
alert_strv_free(char **v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void
alert_hook_conf_clear(struct alert_hook_conf *hc)
{
	if (hc == NULL)
		return;
	free(hc->name);
	free(hc->url);
	alert_strv_free(hc->argv, hc->nargv);
	alert_strv_free(hc->kinds, hc->nkinds);
	alert_strv_free(hc->headers, hc->nheaders);
	memset(hc, 0, sizeof(*hc));
}

/* A copy of v (n strings) with a NULL after them; -ENOMEM. */
static int
alert_strv_dup(char *const *v, size_t n, char ***ret)
{
	char **c;

	*ret = NULL;
	if (v == NULL)
		return 0;
	if ((c = calloc(n + 1, sizeof(*c))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if ((c[i] = strdup(v[i])) == NULL) {
			alert_strv_free(c, i);
			return -ENOMEM;
		}
	}
	*ret = c;
	return 0;
}

static int
alert_hook_conf_copy(struct alert_hook_conf *dst,
    const struct alert_hook_conf *src)
{
	*dst = *src;
	dst->name = dst->url = NULL;
	dst->argv = dst->kinds = dst->headers = NULL;
	if ((dst->name = strdup(src->name)) == NULL ||
	    (src->url != NULL && (dst->url = strdup(src->url)) == NULL) ||
	    alert_strv_dup(src->argv, src->nargv, &dst->argv) < 0 ||
	    alert_strv_dup(src->kinds, src->nkinds, &dst->kinds) < 0 ||
	    alert_strv_dup(src->headers, src->nheaders, &dst->headers) < 0) {
		alert_hook_conf_clear(dst);
		return -ENOMEM;
	}
	return 0;
}

static uint64_t
alert_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
alert_item_free(struct alert_item *it)
{
	if (it == NULL)
		return;
	free(it->body);
	if (it->env != NULL)
		for (size_t i = 0; it->env[i] != NULL; i++)
			free(it->env[i]);
	free(it->env);
	free(it);
}

/* Drop the payload at the head of the queue. */
static void
alert_hook_pop(struct alert_hook *h)
{
	struct alert_item *it = TAILQ_FIRST(&h->queue);

	if (it == NULL)
		return;
	TAILQ_REMOVE(&h->queue, it, entry);
	h->nqueued--;
	alert_item_free(it);
}

/*
 * The next payload from the loop, not from here: a long run of payloads
 * that fail at once (no memory, a refused exec) must not recurse.
 */
static void
alert_hook_next(struct alert_hook *h)
{
	struct timeval now = {0, 0};

	evtimer_add(h->retry, &now);
}

/* The outcome of one attempt at the head of the queue. */
static void
alert_hook_done(struct alert_hook *h, int ok, const char *why)
{
	struct alert_item *it = TAILQ_FIRST(&h->queue);
	struct timeval tv;
	int64_t ms;

	h->busy = 0;
	if (ok) {
		h->ok++;
		if (h->failing)
			log_info("alert hook %s: delivering again", h->conf.name);
		h->failing = 0;
		alert_hook_pop(h);
		alert_hook_next(h);
		return;
	}
	h->failed++;
	/* One line when a hook starts failing, the rest at debug level. */
	log_msg(h->failing ? LOG_DEBUG : LOG_WARNING,
	    "alert hook %s: delivery failed: %s", h->conf.name, why);
	h->failing = 1;
	if (it == NULL)
		return;
	if (++it->attempts > h->conf.retries) {
		h->dropped_retries++;
		log_msg(LOG_WARNING, "alert hook %s: dropped a payload after "
		    "%d attempts", h->conf.name, it->attempts);
		alert_hook_pop(h);
		alert_hook_next(h);
		return;
	}
	ms = h->conf.backoff_ms;
	for (int i = 1; i < it->attempts && ms < ALERT_MAX_BACKOFF_MS; i++)
		ms *= 2;
	if (ms > ALERT_MAX_BACKOFF_MS)
		ms = ALERT_MAX_BACKOFF_MS;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(h->retry, &tv);
}

static size_t
alert_discard_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	(void)ptr;
	(void)arg;
	return size * nmemb;
}

static void
alert_http_done_cb(void *easy, int code, void *arg)
{
	struct alert_hook *h = arg;
	long status = 0;
	char why[CURL_ERROR_SIZE + 64];

	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	if (code != CURLE_OK)
		snprintf(why, sizeof(why), "%s", h->errbuf[0] != '\0' ?
		    h->errbuf : curl_easy_strerror((CURLcode)code));
	else
		snprintf(why, sizeof(why), "HTTP status %ld", status);
	curl_easy_cleanup(easy);
	h->easy = NULL;
	alert_hook_done(h, code == CURLE_OK && status >= 200 && status < 300,
	    why);
}

static int
alert_http_start(struct alert_hook *h, const struct alert_item *it)
{
	CURL *c;
	int r;

	if ((c = curl_easy_init()) == NULL)
		return -ENOMEM;
	h->errbuf[0] = '\0';
	if (curl_easy_setopt(c, CURLOPT_URL, h->conf.url) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") !=
	    CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_POST, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_POSTFIELDS, it->body) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
	    (curl_off_t)it->len) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h->headers) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
	    (long)h->conf.timeout_ms) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_USERAGENT, "troika/" TROIKA_VERSION) !=
	    CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, alert_discard_cb) !=
	    CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf) != CURLE_OK) {
		curl_easy_cleanup(c);
		return -EINVAL;
	}
	if ((r = curlm_add(h->ah->cm, c, alert_http_done_cb, h)) < 0) {
		curl_easy_cleanup(c);
		return r;
	}
	h->easy = c;
	return 0;
}

static void
alert_exec_done_cb(const struct troika_spawn_result *res, void *arg)
{
	struct alert_hook *h = arg;
	char why[256];
	int n;

	h->sp = NULL;
	if (res->spawn_errno != 0)
		snprintf(why, sizeof(why), "cannot run %s: %s", h->conf.argv[0],
		    strerror(res->spawn_errno));
	else if (res->timed_out)
		snprintf(why, sizeof(why), "timed out after %lld ms",
		    (long long)h->conf.timeout_ms);
	else if (!res->exited)
		snprintf(why, sizeof(why), "killed by signal %d", res->signal);
	else {
		/* The first line of its output says why, if anything does. */
		n = (int)strcspn(res->output, "\n");
		snprintf(why, sizeof(why), "exit status %d%s%.*s",
		    res->exit_code, n > 0 ? ": " : "", n > 160 ? 160 : n,
		    res->output);
	}
	alert_hook_done(h, res->exited && res->exit_code == 0, why);
}

static void
alert_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	alert_hook_kick(arg);
}

/* Start delivering the head of the queue, unless busy or backing off. */
static void
alert_hook_kick(struct alert_hook *h)
{
	struct alert_item *it;
	int r;

	while (!h->busy && !evtimer_pending(h->retry, NULL) &&
	    (it = TAILQ_FIRST(&h->queue)) != NULL) {
		if (h->conf.kind == ALERT_EXEC) {
			h->sp = spawn_start_input(h->ah->base,
			    (const char *const *)h->conf.argv,
			    (const char *const *)it->env, it->body, it->len,
			    h->conf.timeout_ms, ALERT_EXEC_MAX_OUTPUT,
			    alert_exec_done_cb, h);
			r = h->sp == NULL ? -errno : 0;
		} else {
			r = alert_http_start(h, it);
		}
		if (r == 0) {
			h->busy = 1;
			return;
		}
		/* Could not even start: as a failed attempt (it retries). */
		h->busy = 1;
		alert_hook_done(h, 0, strerror(-r));
		return;
	}
}

/* Queue a payload (body taken over); env as well, for exec. */
static void
alert_hook_queue(struct alert_hook *h, char *body, size_t len, char **env)
{
	struct alert_item *it;

	if (h->nqueued >= (size_t)h->conf.queue ||
	    (it = calloc(1, sizeof(*it))) == NULL) {
		h->dropped_full++;
		log_msg(h->failing ? LOG_DEBUG : LOG_WARNING,
		    "alert hook %s: queue full (%zu), payload dropped",
		    h->conf.name, h->nqueued);
		free(body);
		if (env != NULL)
			for (size_t i = 0; env[i] != NULL; i++)
				free(env[i]);
		free(env);
		return;
	}
	it->body = body;
	it->len = len;
	it->env = env;
	TAILQ_INSERT_TAIL(&h->queue, it, entry);
	h->nqueued++;
	alert_hook_kick(h);
}

static char *
alert_take(struct evbuffer *b, size_t *ret_len)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);

	if (s == NULL)
		return NULL;
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	*ret_len = n;
	return s;
}

/* "NAME=value" as a new string. */
static char *
alert_env_var(const char *name, const char *value)
{
	size_t n = strlen(name) + strlen(value) + 2;
	char *s = malloc(n);

	if (s != NULL)
		snprintf(s, n, "%s=%s", name, value);
	return s;
}

/*
 * The environment of an exec hook: TROIKA_EVENT_SEQ, _TIME (RFC 3339),
 * _TIME_UNIX_NANO, _KIND, _SEVERITY, _NODE, _CHECK, _MESSAGE,
 * _COORDINATOR, TROIKA_HOOK, and TROIKA_EVENT_FIELD_<NAME> per field (the
 * name upper-cased, other bytes than [A-Z0-9_] as '_').
 */
static char **
alert_exec_env(const struct alert_hook *h, const struct alert_event *ev)
{
	char seq[32], ns[32], tm[64], name[128];
	struct evbuffer *b;
	size_t n = 0, len;
	char **env, *t;

	if ((env = calloc(11 + ev->nfields, sizeof(*env))) == NULL)
		return NULL;
	snprintf(seq, sizeof(seq), "%llu", (unsigned long long)ev->seq);
	snprintf(ns, sizeof(ns), "%llu", (unsigned long long)ev->time_ns);
	tm[0] = '\0';
	if ((b = evbuffer_new()) != NULL) {
		alert_json_time(b, ev->time_ns);
		if ((t = alert_take(b, &len)) != NULL && len >= 2) {
			/* Without the JSON quotes. */
			snprintf(tm, sizeof(tm), "%.*s", (int)(len - 2), t + 1);
		}
		free(t);
		evbuffer_free(b);
	}
	const char *const vars[][2] = {
		{"TROIKA_EVENT_SEQ", seq},
		{"TROIKA_EVENT_TIME", tm},
		{"TROIKA_EVENT_TIME_UNIX_NANO", ns},
		{"TROIKA_EVENT_KIND", ev->kind},
		{"TROIKA_EVENT_SEVERITY", alert_severity_str(ev->severity)},
		{"TROIKA_EVENT_NODE", ev->node},
		{"TROIKA_EVENT_CHECK", ev->check},
		{"TROIKA_EVENT_MESSAGE", ev->message},
		{"TROIKA_EVENT_COORDINATOR", ev->coordinator},
		{"TROIKA_HOOK", h->conf.name},
	};
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		if ((env[n++] = alert_env_var(vars[i][0], vars[i][1] != NULL ?
		    vars[i][1] : "")) == NULL)
			goto fail;
	for (size_t i = 0; i < ev->nfields; i++) {
		size_t k = (size_t)snprintf(name, sizeof(name),
		    "TROIKA_EVENT_FIELD_");

		for (const char *p = ev->fields[i].name;
		    *p != '\0' && k + 1 < sizeof(name); p++) {
			char c = (char)toupper((unsigned char)*p);

			name[k++] = (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') ? c : '_';
		}
		name[k] = '\0';
		if ((env[n++] = alert_env_var(name, ev->fields[i].value != NULL ?
		    ev->fields[i].value : "")) == NULL)
			goto fail;
	}
	return env;
fail:
	for (size_t i = 0; i < n; i++)
		free(env[i]);
	free(env);
	return NULL;
}

static int
alert_hook_wants(const struct alert_hook *h, const struct alert_event *ev)
{
	if (ev->severity < h->conf.min_severity)
		return 0;
	if (h->conf.nkinds == 0)
		return 1;
	for (size_t i = 0; i < h->conf.nkinds; i++)
		if (strcmp(h->conf.kinds[i], ev->kind) == 0)
			return 1;
	return 0;
}

/* Alertmanager: every active alert, with a fresh endsAt. */
static void
alert_hook_resend(struct alert_hook *h)
{
	struct evbuffer *b;
	char *body;
	size_t len;

	if ((b = evbuffer_new()) == NULL)
		return;
	if (alert_am_resend(h->am, alert_now_ns(), b) == 1 &&
	    (body = alert_take(b, &len)) != NULL)
		alert_hook_queue(h, body, len, NULL);
	evbuffer_free(b);
}

static int
alert_hooks_sending(struct alert_hooks *ah)
{
	int s = ah->sending == NULL || ah->sending(ah->arg);

	/* Just became the sender: what is active goes out now. */
	if (s && !ah->was_sending)
		for (size_t i = 0; i < ah->n; i++)
			if (ah->hooks[i].am != NULL)
				alert_hook_resend(&ah->hooks[i]);
	ah->was_sending = s;
	return s;
}

static void
alert_resend_cb(evutil_socket_t fd, short what, void *arg)
{
	struct alert_hook *h = arg;
	int was = h->ah->was_sending;

	(void)fd;
	(void)what;
	/* Having just become the sender resent every hook's already. */
	if (alert_hooks_sending(h->ah) && was)
		alert_hook_resend(h);
}

void
alert_hooks_emit(struct alert_hooks *ah, const struct alert_event *ev)
{
	struct evbuffer *b;
	int sending;

	if (ah == NULL || ah->n == 0 || (b = evbuffer_new()) == NULL)
		return;
	sending = alert_hooks_sending(ah);
	for (size_t i = 0; i < ah->n; i++) {
		struct alert_hook *h = &ah->hooks[i];
		int wants = alert_hook_wants(h, ev);
		char *body;
		size_t len;
		char **env = NULL;

		evbuffer_drain(b, evbuffer_get_length(b));
		if (h->am != NULL) {
			/* The active set follows every event, sent or not. */
			if (alert_am_event(h->am, ev, wants, ev->time_ns,
			    b) != 1 || !sending)
				continue;
		} else {
			if (!wants || !sending)
				continue;
			alert_json_event(b, ev);
			evbuffer_add(b, "\n", 1);
			if (h->conf.kind == ALERT_EXEC &&
			    (env = alert_exec_env(h, ev)) == NULL) {
				h->dropped_full++;
				continue;
			}
		}
		if ((body = alert_take(b, &len)) == NULL) {
			h->dropped_full++;
			if (env != NULL)
				for (size_t k = 0; env[k] != NULL; k++)
					free(env[k]);
			free(env);
			continue;
		}
		alert_hook_queue(h, body, len, env);
	}
	evbuffer_free(b);
}

static int
alert_hook_init(struct alert_hooks *ah, struct alert_hook *h,
    const struct alert_hook_conf *conf)
{
	struct timeval tv;
	struct curl_slist *l;

	h->ah = ah;
	TAILQ_INIT(&h->queue);
	if (alert_hook_conf_copy(&h->conf, conf) < 0)
		return -ENOMEM;
	if ((h->retry = evtimer_new(ah->base, alert_retry_cb, h)) == NULL)
		return -ENOMEM;
	if (conf->kind == ALERT_EXEC)
		return conf->nargv > 0 ? 0 : -EINVAL;
	if (conf->url == NULL)
		return -EINVAL;
	if ((l = curl_slist_append(NULL,
	    "Content-Type: application/json")) == NULL)
		return -ENOMEM;
	h->headers = l;
	for (size_t i = 0; i < conf->nheaders; i++) {
		if ((l = curl_slist_append(h->headers,
		    conf->headers[i])) == NULL)
			return -ENOMEM;
		h->headers = l;
	}
	if (conf->kind != ALERT_ALERTMANAGER)
		return 0;
	{
		/* The url is Alertmanager's base: the API is below it. */
		size_t n = strlen(conf->url);
		char *u;

		while (n > 0 && conf->url[n - 1] == '/')
			n--;
		if ((u = malloc(n + sizeof("/api/v2/alerts"))) == NULL)
			return -ENOMEM;
		snprintf(u, n + sizeof("/api/v2/alerts"), "%.*s/api/v2/alerts",
		    (int)n, conf->url);
		free(h->conf.url);
		h->conf.url = u;
	}
	if ((h->am = alert_am_new(conf->resend_ms)) == NULL ||
	    (h->resend = event_new(ah->base, -1, EV_PERSIST, alert_resend_cb,
	    h)) == NULL)
		return -ENOMEM;
	tv.tv_sec = conf->resend_ms / 1000;
	tv.tv_usec = (conf->resend_ms % 1000) * 1000;
	return evtimer_add(h->resend, &tv) == 0 ? 0 : -ENOMEM;
}

static void
alert_hook_clear(struct alert_hook *h)
{
	if (h->easy != NULL) {
		curlm_remove(h->ah->cm, h->easy);
		curl_easy_cleanup(h->easy);
	}
	spawn_cancel(h->sp);
	while (!TAILQ_EMPTY(&h->queue))
		alert_hook_pop(h);
	if (h->retry != NULL)
		event_free(h->retry);
	if (h->resend != NULL)
		event_free(h->resend);
	curl_slist_free_all(h->headers);
	alert_am_free(h->am);
	alert_hook_conf_clear(&h->conf);
}

struct alert_hooks *
alert_hooks_new(struct event_base *base, const struct alert_hook_conf *confs,
    size_t n, alert_sending_fn sending, void *arg)
{
	struct alert_hooks *ah;
	int r = -ENOMEM;

	if ((ah = calloc(1, sizeof(*ah))) == NULL)
		return NULL;
	ah->base = base;
	ah->sending = sending;
	ah->arg = arg;
	/* Nothing is active yet: no resend at the first event. */
	ah->was_sending = 1;
	if (n > 0 && (ah->hooks = calloc(n, sizeof(*ah->hooks))) == NULL)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if (confs[i].kind != ALERT_EXEC && ah->cm == NULL &&
		    (ah->cm = curlm_new(base)) == NULL)
			goto fail;
	for (size_t i = 0; i < n; i++) {
		ah->n++;
		if ((r = alert_hook_init(ah, &ah->hooks[i], &confs[i])) < 0)
			goto fail;
	}
	return ah;
fail:
	alert_hooks_free(ah);
	errno = -r;
	return NULL;
}

void
alert_hooks_free(struct alert_hooks *ah)
{
	if (ah == NULL)
		return;
	for (size_t i = 0; i < ah->n; i++)
		alert_hook_clear(&ah->hooks[i]);
	free(ah->hooks);
	curlm_free(ah->cm);
	free(ah);
}

size_t
alert_hooks_pending(const struct alert_hooks *ah)
{
	size_t n = 0;

	for (size_t i = 0; ah != NULL && i < ah->n; i++)
		n += ah->hooks[i].nqueued;
	return n;
}

void
alert_hooks_write_metrics(const struct alert_hooks *ah, struct evbuffer *out)
{
	if (ah == NULL || ah->n == 0)
		return;
	metrics_family(out, "troika_alert_sending", "gauge",
	    "1 when this coordinator sends alerts (it leads, or knows of no "
	    "leader).");
	metrics_sample(out, "troika_alert_sending", NULL, 0, NULL,
	    ah->sending == NULL || ah->sending(ah->arg) ? 1 : 0);
	metrics_family(out, "troika_alert_deliveries_total", "counter",
	    "Delivery attempts of alert hooks, by result.");
	for (size_t i = 0; i < ah->n; i++) {
		const struct alert_hook *h = &ah->hooks[i];
		struct troika_label l[] = {
			{"hook", h->conf.name},
			{"kind", alert_kind_str(h->conf.kind)},
			{"result", "ok"},
		};

		metrics_sample(out, "troika_alert_deliveries_total", l, 3, NULL,
		    (double)h->ok);
		l[2].value = "failed";
		metrics_sample(out, "troika_alert_deliveries_total", l, 3, NULL,
		    (double)h->failed);
	}
	metrics_family(out, "troika_alert_dropped_total", "counter",
	    "Alert payloads given up: the queue was full, or every retry "
	    "failed.");
	for (size_t i = 0; i < ah->n; i++) {
		const struct alert_hook *h = &ah->hooks[i];
		struct troika_label l[] = {
			{"hook", h->conf.name},
			{"reason", "queue_full"},
		};

		metrics_sample(out, "troika_alert_dropped_total", l, 2, NULL,
		    (double)h->dropped_full);
		l[1].value = "retries";
		metrics_sample(out, "troika_alert_dropped_total", l, 2, NULL,
		    (double)h->dropped_retries);
	}
	metrics_family(out, "troika_alert_queue_length", "gauge",
	    "Alert payloads waiting or in flight, per hook.");
	for (size_t i = 0; i < ah->n; i++) {
		const struct troika_label l = {"hook", ah->hooks[i].conf.name};

		metrics_sample(out, "troika_alert_queue_length", &l, 1, NULL,
		    (double)ah->hooks[i].nqueued);
	}
	metrics_family(out, "troika_alert_active", "gauge",
	    "Alerts an alertmanager hook keeps firing (re-sent every "
	    "resend).");
	for (size_t i = 0; i < ah->n; i++) {
		const struct troika_label l = {"hook", ah->hooks[i].conf.name};

		if (ah->hooks[i].am != NULL)
			metrics_sample(out, "troika_alert_active", &l, 1, NULL,
			    (double)alert_am_active(ah->hooks[i].am));
	}
}
