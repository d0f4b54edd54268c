/*
 * webfetch: one bounded HTTP GET on the host's curl multi handle. See
 * webfetch.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "webfetch.h"

struct webfetch {
	const struct troika_host *host;
	struct troika_instance *inst;
	char *user;
	char *password;
	int tls_verify;
	char *ca_file;
	size_t max_body;
	struct event *defer; /* reports a fetch that could not start */

	/* The current fetch. */
	webfetch_done_cb done;
	void *arg;
	int running;
	CURL *easy;
	int added;  /* easy is in the host's multi handle */
	int code;   /* CURLcode when done, or -1: could not start */
	int64_t timeout_ms;
	long os_errno;
	long http_status;
	double seconds;
	char *buf;  /* body, NUL-terminated */
	size_t buflen;
	size_t bufcap;
	int cut;    /* the body went past max_body */
	int nomem;
	char errbuf[CURL_ERROR_SIZE];
	char why[160]; /* why a fetch could not start */
};

static void webfetch_defer_cb(evutil_socket_t fd, short what, void *arg);

static char *
webfetch_strdup(const char *s, int *err)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		*err = 1;
	return d;
}

struct webfetch *
webfetch_new(const struct troika_host *host, struct troika_instance *inst,
    const struct webfetch_conf *conf)
{
	struct webfetch *wf;
	int err = 0;

	if ((wf = calloc(1, sizeof(*wf))) == NULL)
		return NULL;
	wf->host = host;
	wf->inst = inst;
	wf->user = webfetch_strdup(conf->user, &err);
	wf->password = webfetch_strdup(conf->user != NULL &&
	    conf->password == NULL ? "" : conf->password, &err);
	wf->ca_file = webfetch_strdup(conf->ca_file, &err);
	wf->tls_verify = conf->tls_verify;
	wf->max_body = conf->max_body;
	wf->defer = event_new(host->event_base(inst), -1, 0, webfetch_defer_cb,
	    wf);
	if (err || wf->defer == NULL) {
		webfetch_free(wf);
		return NULL;
	}
	return wf;
}

static const char *
webfetch_opt(const struct troika_host *host, struct troika_instance *inst,
    const char *name)
{
	return host->opt_isset(inst, name) ? host->opt_string(inst, name) :
	    NULL;
}

int
webfetch_from_options(const struct troika_host *host,
    struct troika_instance *inst, struct webfetch **ret)
{
	struct webfetch_conf conf = {
		.user = webfetch_opt(host, inst, "user"),
		.password = webfetch_opt(host, inst, "password"),
		.tls_verify = host->opt_bool(inst, "tls_verify"),
		.ca_file = webfetch_opt(host, inst, "ca_file"),
		.max_body = (size_t)host->opt_size(inst, "max_body"),
	};

	*ret = NULL;
	if (conf.password != NULL && conf.user == NULL) {
		host->log(inst, TROIKA_LOG_ERR, "password is set but user is "
		    "not");
		return -EINVAL;
	}
	if (conf.ca_file != NULL && access(conf.ca_file, R_OK) == -1) {
		host->log(inst, TROIKA_LOG_ERR, "ca_file %s: %s", conf.ca_file,
		    strerror(errno));
		return -EINVAL;
	}
	if ((*ret = webfetch_new(host, inst, &conf)) == NULL)
		return -ENOMEM;
	return 0;
}

/* Drop the current fetch's resources; the fetch is no longer running. */
static void
webfetch_end(struct webfetch *wf)
{
	if (wf->added)
		wf->host->curl_remove(wf->easy);
	wf->added = 0;
	if (wf->easy != NULL)
		curl_easy_cleanup(wf->easy);
	wf->easy = NULL;
	if (wf->defer != NULL)
		event_del(wf->defer);
	wf->running = 0;
}

void
webfetch_abort(struct webfetch *wf)
{
	if (wf != NULL && wf->running)
		webfetch_end(wf);
}

int
webfetch_running(const struct webfetch *wf)
{
	return wf->running;
}

void
webfetch_free(struct webfetch *wf)
{
	if (wf == NULL)
		return;
	webfetch_abort(wf);
	if (wf->defer != NULL)
		event_free(wf->defer);
	free(wf->buf);
	free(wf->user);
	free(wf->password);
	free(wf->ca_file);
	free(wf);
}

/*
 * Keep up to max_body bytes; past that, stop the transfer (returning less
 * than was given ends it with CURLE_WRITE_ERROR), so a huge or endless
 * reply costs no more than max_body.
 */
static size_t
webfetch_write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct webfetch *wf = arg;
	size_t n = size * nmemb;
	size_t want;

	if (n > wf->max_body - wf->buflen) {
		wf->cut = 1;
		return 0;
	}
	want = wf->buflen + n + 1;
	if (want > wf->bufcap) {
		size_t cap = wf->bufcap > 0 ? wf->bufcap : 4096;
		char *p;

		while (cap < want)
			cap *= 2;
		if (cap > wf->max_body + 1)
			cap = wf->max_body + 1;
		if ((p = realloc(wf->buf, cap)) == NULL) {
			wf->nomem = 1;
			return 0;
		}
		wf->buf = p;
		wf->bufcap = cap;
	}
	memcpy(wf->buf + wf->buflen, ptr, n);
	wf->buflen += n;
	wf->buf[wf->buflen] = '\0';
	return n;
}

static void
webfetch_finish(struct webfetch *wf)
{
	webfetch_done_cb done = wf->done;

	webfetch_end(wf);
	done(wf, wf->arg);
}

static void
webfetch_curl_done_cb(void *easy, int code, void *arg)
{
	struct webfetch *wf = arg;
	curl_off_t us = 0;

	(void)easy;
	wf->added = 0; /* the host handed it back */
	wf->code = code;
	curl_easy_getinfo(wf->easy, CURLINFO_OS_ERRNO, &wf->os_errno);
	curl_easy_getinfo(wf->easy, CURLINFO_RESPONSE_CODE, &wf->http_status);
	curl_easy_getinfo(wf->easy, CURLINFO_TOTAL_TIME_T, &us);
	wf->seconds = (double)us / 1e6;
	webfetch_finish(wf);
}

static void
webfetch_defer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	webfetch_finish(arg);
}

static CURLcode
webfetch_setup(struct webfetch *wf, const char *url)
{
	CURL *c = wf->easy;
	CURLcode rc;

	if ((rc = curl_easy_setopt(c, CURLOPT_URL, url)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR,
	    "http,https")) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION,
	    0L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
	    (long)wf->timeout_ms)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER,
	    wf->tls_verify ? 1L : 0L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST,
	    wf->tls_verify ? 2L : 0L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_USERAGENT,
	    "troika/" TROIKA_VERSION)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_HTTPGET, 1L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_WRITEFUNCTION,
	    webfetch_write_cb)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_WRITEDATA, wf)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_ERRORBUFFER,
	    wf->errbuf)) != CURLE_OK)
		return rc;
	if (wf->ca_file != NULL &&
	    (rc = curl_easy_setopt(c, CURLOPT_CAINFO, wf->ca_file)) != CURLE_OK)
		return rc;
	if (wf->user != NULL &&
	    ((rc = curl_easy_setopt(c, CURLOPT_HTTPAUTH,
	    (long)CURLAUTH_BASIC)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_USERNAME,
	    wf->user)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_PASSWORD,
	    wf->password)) != CURLE_OK))
		return rc;
	return CURLE_OK;
}

void
webfetch_get(struct webfetch *wf, const char *url, int64_t timeout_ms,
    webfetch_done_cb done, void *arg)
{
	CURLcode rc;
	int r;

	webfetch_abort(wf);
	wf->done = done;
	wf->arg = arg;
	wf->running = 1;
	wf->code = -1;
	wf->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
	wf->os_errno = 0;
	wf->http_status = 0;
	wf->seconds = 0;
	wf->buflen = 0;
	if (wf->buf != NULL)
		wf->buf[0] = '\0';
	wf->cut = wf->nomem = 0;
	wf->errbuf[0] = '\0';
	wf->why[0] = '\0';
	if ((wf->easy = curl_easy_init()) == NULL) {
		snprintf(wf->why, sizeof(wf->why), "cannot create a curl "
		    "handle");
		goto defer;
	}
	if ((rc = webfetch_setup(wf, url)) != CURLE_OK) {
		snprintf(wf->why, sizeof(wf->why), "cannot set up the request: "
		    "%s", curl_easy_strerror(rc));
		goto defer;
	}
	if ((r = wf->host->curl_add(wf->inst, wf->easy, webfetch_curl_done_cb,
	    wf)) < 0) {
		snprintf(wf->why, sizeof(wf->why), "cannot start the request: "
		    "%s", strerror(-r));
		goto defer;
	}
	wf->added = 1;
	return;

defer:
	event_active(wf->defer, EV_TIMEOUT, 1);
}

enum troika_status
webfetch_outcome(const struct webfetch *wf, enum troika_evidence *ret_evidence,
    char *msg, size_t msglen)
{
	const char *why = wf->errbuf[0] != '\0' ? wf->errbuf :
	    wf->code >= 0 ? curl_easy_strerror((CURLcode)wf->code) : wf->why;

	*ret_evidence = TROIKA_EVIDENCE_AMBIGUOUS;
	msg[0] = '\0';
	if (wf->code < 0) {
		*ret_evidence = TROIKA_EVIDENCE_NONE;
		snprintf(msg, msglen, "%s", wf->why);
		return TROIKA_STATUS_UNKNOWN;
	}
	if (wf->nomem || wf->code == CURLE_OUT_OF_MEMORY) {
		*ret_evidence = TROIKA_EVIDENCE_NONE;
		snprintf(msg, msglen, "out of memory for the reply");
		return TROIKA_STATUS_UNKNOWN;
	}
	if (wf->cut) {
		snprintf(msg, msglen, "reply larger than max_body (%zu bytes)",
		    wf->max_body);
		return TROIKA_STATUS_CRITICAL;
	}
	switch (wf->code) {
	case CURLE_OK:
		*ret_evidence = TROIKA_EVIDENCE_NONE;
		return TROIKA_STATUS_OK;
	case CURLE_OPERATION_TIMEDOUT:
		snprintf(msg, msglen, "timed out after %lld ms: %s",
		    (long long)wf->timeout_ms, why);
		return TROIKA_STATUS_CRITICAL;
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
		if (wf->os_errno == ECONNREFUSED) {
			*ret_evidence = TROIKA_EVIDENCE_CERTAIN;
			snprintf(msg, msglen, "connection refused: %s", why);
		} else if (wf->os_errno == ECONNRESET) {
			*ret_evidence = TROIKA_EVIDENCE_CERTAIN;
			snprintf(msg, msglen, "connection reset: %s", why);
		} else {
			snprintf(msg, msglen, "%s", why);
		}
		return TROIKA_STATUS_CRITICAL;
	default:
		snprintf(msg, msglen, "%s", why);
		return TROIKA_STATUS_CRITICAL;
	}
}

long
webfetch_http_status(const struct webfetch *wf)
{
	return wf->http_status;
}

const char *
webfetch_body(const struct webfetch *wf, size_t *ret_len)
{
	*ret_len = wf->buflen;
	return wf->buf != NULL ? wf->buf : "";
}

double
webfetch_seconds(const struct webfetch *wf)
{
	return wf->seconds;
}

int64_t
webfetch_budget_ms(int64_t remaining)
{
	int64_t margin = remaining / 10;

	if (margin > 100)
		margin = 100;
	return remaining - margin > 1 ? remaining - margin : 1;
}

int
webfetch_check_url(const struct troika_host *host, struct troika_instance *inst,
    const char *option, const char *url)
{
	CURLU *u;
	char *scheme = NULL;
	int r = 0;

	if ((u = curl_url()) == NULL)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
		host->log(inst, TROIKA_LOG_ERR, "%s \"%s\" is not a valid "
		    "absolute URL", option, url);
		r = -EINVAL;
	} else if (strcmp(scheme, "http") != 0 &&
	    strcmp(scheme, "https") != 0) {
		host->log(inst, TROIKA_LOG_ERR, "%s \"%s\": scheme %s is not "
		    "http or https", option, url, scheme);
		r = -EINVAL;
	}
	curl_free(scheme);
	curl_url_cleanup(u);
	return r;
}

void
webfetch_excerpt(const char *s, size_t len, char *out, size_t outlen)
{
	size_t j = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char tmp[8];
		size_t n;

		if (c < 0x20 || c >= 0x7f)
			n = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", c);
		else
			n = (size_t)snprintf(tmp, sizeof(tmp), "%c", c);
		if (j + n + 4 > outlen) {
			snprintf(out + j, outlen - j, "...");
			return;
		}
		memcpy(out + j, tmp, n);
		j += n;
	}
	out[j] = '\0';
}
