/*
 * webfetch: one bounded HTTP GET on the host's shared curl multi handle,
 * for the plugins that read a service's status page (elasticsearch, solr,
 * phpfpm, nginx). Compiled into each of them; not a plugin itself.
 *
 * A fetch always ends in exactly one done callback from the loop, also
 * when it could not even be started (never from inside webfetch_get(), so
 * a plugin's check() can call it and return), unless webfetch_abort() or
 * webfetch_free() comes first. Each fetch opens a fresh connection and
 * closes it afterwards, as the http plugin does: a health check must see a
 * refused or slow accept.
 */
#ifndef TROIKA_WEBFETCH_H
#define TROIKA_WEBFETCH_H

#include <stddef.h>
#include <stdint.h>

#include <troika/plugin.h>

struct webfetch;

/* How to reach the service; the strings are copied by webfetch_new(). */
struct webfetch_conf {
	const char *user;     /* basic auth user, or NULL for none */
	const char *password; /* with user; NULL means empty */
	int tls_verify;       /* verify the certificate chain and name */
	const char *ca_file;  /* PEM CA file, or NULL for the system store */
	size_t max_body;      /* a longer body fails the fetch */
};

typedef void (*webfetch_done_cb)(struct webfetch *wf, void *arg);

/*
 * The options every status-page plugin takes to reach its service, for
 * its option table; webfetch_from_options() reads them.
 */
#define WEBFETCH_OPTIONS(max_body_default) \
	{ .name = "user", .type = TROIKA_OPT_STRING, \
	    .help = "user for HTTP basic authentication" }, \
	{ .name = "password", .type = TROIKA_OPT_STRING, \
	    .help = "password for HTTP basic authentication (with user)" }, \
	{ .name = "tls_verify", .type = TROIKA_OPT_BOOL, \
	    .default_value = "true", \
	    .help = "verify the server's certificate and name" }, \
	{ .name = "ca_file", .type = TROIKA_OPT_STRING, \
	    .help = "PEM file of CA certificates to verify against" }, \
	{ .name = "max_body", .type = TROIKA_OPT_SIZE, \
	    .default_value = (max_body_default), .min = 64, \
	    .max = 64LL * 1024 * 1024, \
	    .help = "largest reply accepted; a longer one fails the check" }

/*
 * A webfetch set up from the WEBFETCH_OPTIONS of the instance. Returns 0,
 * or -EINVAL after logging why (password without user, unreadable
 * ca_file), or -ENOMEM.
 */
int webfetch_from_options(const struct troika_host *host,
    struct troika_instance *inst, struct webfetch **ret);

/* NULL when out of memory. */
struct webfetch *webfetch_new(const struct troika_host *host,
    struct troika_instance *inst, const struct webfetch_conf *conf);
/* Aborts a running fetch (done is not called). Accepts NULL. */
void webfetch_free(struct webfetch *wf);

/* GET url within timeout_ms; done(wf, arg) follows, see above. */
void webfetch_get(struct webfetch *wf, const char *url, int64_t timeout_ms,
    webfetch_done_cb done, void *arg);
/* Forget a running fetch; done is not called. Harmless when idle. */
void webfetch_abort(struct webfetch *wf);
/* 1 between webfetch_get() and done (or abort). */
int webfetch_running(const struct webfetch *wf);

/*
 * After done: whether a whole response arrived. When it did not, returns
 * CRITICAL (refused or reset connections with certain evidence; timeouts,
 * TLS and protocol errors, a body over max_body with ambiguous evidence)
 * or UNKNOWN (the fetch could not be set up, out of memory), and writes
 * the reason into msg. Returns OK when a response came, whatever its
 * HTTP status.
 */
enum troika_status webfetch_outcome(const struct webfetch *wf,
    enum troika_evidence *ret_evidence, char *msg, size_t msglen);

/* After a response: its HTTP status, body (NUL-terminated) and time. */
long webfetch_http_status(const struct webfetch *wf);
const char *webfetch_body(const struct webfetch *wf, size_t *ret_len);
double webfetch_seconds(const struct webfetch *wf);

/*
 * The budget of a run from the task's remaining time: a tenth (at most
 * 100 ms) is kept back, so the plugin's own timeout result normally comes
 * before the host gives up on the task.
 */
int64_t webfetch_budget_ms(int64_t remaining_ms);

/*
 * Check an option that must be an http:// or https:// URL; logs why not.
 * Returns 0 or -EINVAL (-ENOMEM).
 */
int webfetch_check_url(const struct troika_host *host,
    struct troika_instance *inst, const char *option, const char *url);

/*
 * A printable, bounded, one-line form of the start of s (len bytes, may
 * hold NULs), for messages about replies that are not what was expected.
 */
void webfetch_excerpt(const char *s, size_t len, char *out, size_t outlen);

#endif
