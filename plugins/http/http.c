/*
 * http: one HTTP(S) request per run, judged by status code and body.
 * Async: a libcurl easy handle driven by the host's shared multi handle
 * (host->curl_add), so nothing blocks the loop; names are resolved by
 * libcurl's threaded resolver.
 *
 * Each run opens a fresh connection and closes it after: a health check
 * must see a refused or slow accept, and must not hold an idle connection
 * to the service between runs.
 *
 * Evidence: a refused or reset connection is certain; a timeout, a wrong
 * status or body, or any other failure is ambiguous (a 503 or a slow reply
 * may pass).
 */
#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>

#include <troika/plugin.h>

#define HTTP_MAX_BODY_MAX (256LL * 1024 * 1024)
#define HTTP_MAX_REDIRS 5L
/* Longest form of a configured text quoted in messages. */
#define HTTP_SHOWN_MAX 64

static const char *const http_methods[] = {
	"GET", "HEAD", "POST", "PUT", "DELETE",
};

struct http_check {
	const struct troika_host *host;
	struct troika_instance *inst;
	char *url;
	const char *method; /* one of http_methods */
	long expect_status;
	char *contains; /* body_contains, or NULL */
	char contains_shown[HTTP_SHOWN_MAX + 8];
	regex_t re;
	int has_re;
	char re_shown[HTTP_SHOWN_MAX + 8];
	int tls_verify;
	char *ca_file;
	struct curl_slist *headers;
	char *body; /* request body, or NULL */
	size_t max_body;
	int follow_redirects;
	struct event *defer; /* reports a failure inside check() */

	/* The current run. */
	struct troika_task *task;
	CURL *easy;
	int added; /* easy is in the host's multi handle */
	int64_t budget_ms;
	char *buf; /* response body, up to max_body bytes, NUL-terminated */
	size_t buflen;
	size_t bufcap;
	int cut;   /* the body went past max_body */
	int nomem; /* the body buffer could not grow */
	char errbuf[CURL_ERROR_SIZE];
	char msg[512]; /* a failure inside check(), for defer */
};

static const struct troika_option http_options[] = {
	{ .name = "url", .type = TROIKA_OPT_STRING, .required = 1,
	    .help = "http:// or https:// URL" },
	{ .name = "method", .type = TROIKA_OPT_STRING, .default_value = "GET",
	    .help = "GET, HEAD, POST, PUT or DELETE" },
	{ .name = "expect_status", .type = TROIKA_OPT_INT,
	    .default_value = "200", .min = 100, .max = 599,
	    .help = "status code that is OK" },
	{ .name = "body_contains", .type = TROIKA_OPT_STRING,
	    .help = "text the response body must contain" },
	{ .name = "body_regex", .type = TROIKA_OPT_STRING,
	    .help = "POSIX extended regular expression the body must match" },
	{ .name = "tls_verify", .type = TROIKA_OPT_BOOL,
	    .default_value = "true",
	    .help = "verify the server's certificate and name" },
	{ .name = "ca_file", .type = TROIKA_OPT_STRING,
	    .help = "PEM file of CA certificates to verify against" },
	{ .name = "headers", .type = TROIKA_OPT_STRING_MAP,
	    .help = "request headers, name: value" },
	{ .name = "body", .type = TROIKA_OPT_STRING,
	    .help = "request body (POST, PUT, DELETE)" },
	{ .name = "max_body", .type = TROIKA_OPT_SIZE, .default_value = "1MiB",
	    .min = 1, .max = HTTP_MAX_BODY_MAX,
	    .help = "most body bytes read; the check goes on with what came" },
	{ .name = "follow_redirects", .type = TROIKA_OPT_BOOL,
	    .default_value = "false",
	    .help = "follow up to 5 redirects (http and https only)" },
	{ .name = NULL },
};

/* A printable, bounded form of s for messages (one line). */
static void
http_show(const char *s, char *out, size_t outlen)
{
	size_t j = 0;

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		char tmp[8];

		if (c == '\\' || c == '"')
			snprintf(tmp, sizeof(tmp), "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			snprintf(tmp, sizeof(tmp), "\\x%02x", c);
		else
			snprintf(tmp, sizeof(tmp), "%c", c);
		if (j + strlen(tmp) + 4 > outlen) {
			snprintf(out + j, outlen - j, "...");
			return;
		}
		memcpy(out + j, tmp, strlen(tmp));
		j += strlen(tmp);
	}
	out[j] = '\0';
}

static void http_defer_cb(evutil_socket_t fd, short what, void *arg);

/* End the current run: the transfer is no longer in the multi handle. */
static void
http_run_end(struct http_check *h)
{
	if (h->easy != NULL)
		curl_easy_cleanup(h->easy);
	h->easy = NULL;
	h->added = 0;
	free(h->buf);
	h->buf = NULL;
	h->buflen = h->bufcap = 0;
	h->cut = h->nomem = 0;
	if (h->defer != NULL)
		event_del(h->defer);
	h->task = NULL;
}

static void
http_instance_free(void *state)
{
	struct http_check *h = state;

	if (h == NULL)
		return;
	/* The host cancels a running task first; this is a safety net. */
	if (h->added)
		h->host->curl_remove(h->easy);
	http_run_end(h);
	if (h->defer != NULL)
		event_free(h->defer);
	if (h->has_re)
		regfree(&h->re);
	curl_slist_free_all(h->headers);
	free(h->url);
	free(h->contains);
	free(h->ca_file);
	free(h->body);
	free(h);
}

/* Check the URL parses and is http or https: other schemes are refused. */
static int
http_check_url(struct http_check *h, const char *url)
{
	CURLU *u;
	char *scheme = NULL;
	int r = 0;

	if ((u = curl_url()) == NULL)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
		h->host->log(h->inst, TROIKA_LOG_ERR, "url \"%s\" is not a "
		    "valid absolute URL", url);
		r = -EINVAL;
	} else if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
		h->host->log(h->inst, TROIKA_LOG_ERR, "url \"%s\": scheme %s "
		    "is not http or https", url, scheme);
		r = -EINVAL;
	}
	curl_free(scheme);
	curl_url_cleanup(u);
	return r;
}

static int
http_parse_method(struct http_check *h, const char *s)
{
	for (size_t i = 0; i < sizeof(http_methods) / sizeof(http_methods[0]);
	    i++) {
		if (strcasecmp(s, http_methods[i]) == 0) {
			h->method = http_methods[i];
			return 0;
		}
	}
	h->host->log(h->inst, TROIKA_LOG_ERR, "method \"%s\" is not one of "
	    "GET, HEAD, POST, PUT, DELETE", s);
	return -EINVAL;
}

/* A header field name is an HTTP token: no separators, no controls. */
static int
http_token_valid(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f ||
		    strchr("()<>@,;:\\\"/[]?={}", *s) != NULL)
			return 0;
	return 1;
}

static int
http_build_headers(struct http_check *h)
{
	size_t n = h->host->opt_map_len(h->inst, "headers");

	for (size_t i = 0; i < n; i++) {
		const char *k = h->host->opt_map_key(h->inst, "headers", i);
		const char *v = h->host->opt_map_value(h->inst, "headers", i);
		struct curl_slist *l;
		char *line;

		if (!http_token_valid(k)) {
			h->host->log(h->inst, TROIKA_LOG_ERR, "headers: \"%s\" "
			    "is not a valid header name", k);
			return -EINVAL;
		}
		/* A line break would smuggle in a header of its own. */
		if (strpbrk(v, "\r\n") != NULL) {
			h->host->log(h->inst, TROIKA_LOG_ERR, "headers: the "
			    "value of %s holds a line break", k);
			return -EINVAL;
		}
		/* "Name;" is libcurl's way to send a header with no value. */
		if (asprintf(&line, *v == '\0' ? "%s;" : "%s: %s", k, v) == -1)
			return -ENOMEM;
		l = curl_slist_append(h->headers, line);
		free(line);
		if (l == NULL)
			return -ENOMEM;
		h->headers = l;
	}
	return 0;
}

static int
http_opt_strdup(struct http_check *h, const char *name, char **ret)
{
	const char *s;

	*ret = NULL;
	if (!h->host->opt_isset(h->inst, name) ||
	    (s = h->host->opt_string(h->inst, name)) == NULL)
		return 0;
	if ((*ret = strdup(s)) == NULL)
		return -ENOMEM;
	return 0;
}

static int
http_compile_regex(struct http_check *h)
{
	const char *pattern;
	char err[256];
	int rc;

	if (!h->host->opt_isset(h->inst, "body_regex"))
		return 0;
	pattern = h->host->opt_string(h->inst, "body_regex");
	if ((rc = regcomp(&h->re, pattern, REG_EXTENDED | REG_NOSUB)) != 0) {
		regerror(rc, &h->re, err, sizeof(err));
		h->host->log(h->inst, TROIKA_LOG_ERR, "body_regex \"%s\" is not "
		    "a valid POSIX extended regular expression: %s", pattern,
		    err);
		return rc == REG_ESPACE ? -ENOMEM : -EINVAL;
	}
	h->has_re = 1;
	http_show(pattern, h->re_shown, sizeof(h->re_shown));
	return 0;
}

static int
http_instance_new(const struct troika_host *host,
    struct troika_instance *inst, void **ret_state)
{
	struct http_check *h;
	int r;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return -ENOMEM;
	h->host = host;
	h->inst = inst;
	if ((r = http_check_url(h, host->opt_string(inst, "url"))) < 0)
		goto fail;
	if ((h->url = strdup(host->opt_string(inst, "url"))) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	if ((r = http_parse_method(h, host->opt_string(inst, "method"))) < 0)
		goto fail;
	h->expect_status = (long)host->opt_int(inst, "expect_status");
	if ((r = http_opt_strdup(h, "body_contains", &h->contains)) < 0)
		goto fail;
	if (h->contains != NULL && h->contains[0] == '\0') {
		/* It would match anything: surely not what was meant. */
		host->log(inst, TROIKA_LOG_ERR, "body_contains must not be "
		    "empty");
		r = -EINVAL;
		goto fail;
	}
	if (h->contains != NULL)
		http_show(h->contains, h->contains_shown,
		    sizeof(h->contains_shown));
	if ((r = http_compile_regex(h)) < 0)
		goto fail;
	h->tls_verify = host->opt_bool(inst, "tls_verify");
	if ((r = http_opt_strdup(h, "ca_file", &h->ca_file)) < 0)
		goto fail;
	if (h->ca_file != NULL && access(h->ca_file, R_OK) == -1) {
		host->log(inst, TROIKA_LOG_ERR, "ca_file %s: %s", h->ca_file,
		    strerror(errno));
		r = -EINVAL;
		goto fail;
	}
	if ((r = http_build_headers(h)) < 0)
		goto fail;
	if ((r = http_opt_strdup(h, "body", &h->body)) < 0)
		goto fail;
	if (h->body != NULL && (strcmp(h->method, "GET") == 0 ||
	    strcmp(h->method, "HEAD") == 0)) {
		host->log(inst, TROIKA_LOG_ERR, "body is not sent with %s; use "
		    "POST, PUT or DELETE", h->method);
		r = -EINVAL;
		goto fail;
	}
	h->max_body = (size_t)host->opt_size(inst, "max_body");
	h->follow_redirects = host->opt_bool(inst, "follow_redirects");
	if ((h->defer = event_new(host->event_base(inst), -1, 0, http_defer_cb,
	    h)) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	*ret_state = h;
	return 0;

fail:
	http_instance_free(h);
	return r;
}

/*
 * Keep up to max_body bytes. Past that, stop the transfer (returning less
 * than was given makes libcurl end it with CURLE_WRITE_ERROR): the check
 * goes on with the part that came, and a huge or endless body costs no
 * more than max_body.
 */
static size_t
http_write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct http_check *h = arg;
	size_t n = size * nmemb;
	size_t keep = n, want;

	if (h->buflen + keep > h->max_body) {
		keep = h->max_body - h->buflen;
		h->cut = 1;
	}
	/* One byte more for a NUL: regexec() implementations may look. */
	want = h->buflen + keep + 1;
	if (want > h->bufcap) {
		size_t cap = h->bufcap > 0 ? h->bufcap : 4096;
		char *p;

		while (cap < want)
			cap *= 2;
		if (cap > h->max_body + 1)
			cap = h->max_body + 1;
		if ((p = realloc(h->buf, cap)) == NULL) {
			h->nomem = 1;
			return 0;
		}
		h->buf = p;
		h->bufcap = cap;
	}
	memcpy(h->buf + h->buflen, ptr, keep);
	h->buflen += keep;
	h->buf[h->buflen] = '\0';
	return h->cut ? 0 : n;
}

static void
http_report(struct http_check *h, enum troika_status status,
    enum troika_evidence evidence, const struct troika_sample *samples,
    size_t nsamples, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* End the run and report. */
static void
http_report(struct http_check *h, enum troika_status status,
    enum troika_evidence evidence, const struct troika_sample *samples,
    size_t nsamples, const char *fmt, ...)
{
	struct troika_task *task = h->task;
	struct troika_result res = {
		.size = sizeof(res),
		.status = status,
		.evidence = evidence,
		.samples = samples,
		.nsamples = nsamples,
	};
	char msg[sizeof(h->msg) + 128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	res.message = msg;
	http_run_end(h);
	h->host->check_done(task, &res);
}

static int
http_body_matches(struct http_check *h)
{
	regmatch_t m = { .rm_so = 0, .rm_eo = (regoff_t)h->buflen };
	static const char empty[] = "";

	/* REG_STARTEND: the body need not end in NUL, and may hold NULs. */
	return regexec(&h->re, h->buf != NULL ? h->buf : empty, 1, &m,
	    REG_STARTEND) == 0;
}

/* The transfer completed (or was cut at max_body): judge the reply. */
static void
http_judge(struct http_check *h)
{
	struct troika_sample samples[3];
	curl_off_t total_us = 0;
	long status = 0;
	char cut[64] = "";

	curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(h->easy, CURLINFO_TOTAL_TIME_T, &total_us);
	samples[0] = (struct troika_sample){
		.name = "troika_http_response_seconds",
		.help = "Time of the whole request",
		.type = TROIKA_METRIC_GAUGE,
		.value = (double)total_us / 1e6,
	};
	samples[1] = (struct troika_sample){
		.name = "troika_http_status_code",
		.help = "HTTP status code of the response",
		.type = TROIKA_METRIC_GAUGE,
		.value = (double)status,
	};
	samples[2] = (struct troika_sample){
		.name = "troika_http_body_bytes",
		.help = "Body bytes read (at most max_body)",
		.type = TROIKA_METRIC_GAUGE,
		.value = (double)h->buflen,
	};
	if (h->cut)
		snprintf(cut, sizeof(cut), " (cut at max_body)");
	if (status != h->expect_status)
		http_report(h, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_AMBIGUOUS,
		    samples, 3, "HTTP %ld, expected %ld", status,
		    h->expect_status);
	else if (h->contains != NULL && (h->buf == NULL ||
	    memmem(h->buf, h->buflen, h->contains, strlen(h->contains)) ==
	    NULL))
		http_report(h, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_AMBIGUOUS,
		    samples, 3, "HTTP %ld, but the body (%zu bytes%s) does not "
		    "contain \"%s\"", status, h->buflen, cut,
		    h->contains_shown);
	else if (h->has_re && !http_body_matches(h))
		http_report(h, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_AMBIGUOUS,
		    samples, 3, "HTTP %ld, but the body (%zu bytes%s) does not "
		    "match /%s/", status, h->buflen, cut, h->re_shown);
	else
		http_report(h, TROIKA_STATUS_OK, TROIKA_EVIDENCE_NONE, samples,
		    3, "HTTP %ld in %.3f s, %zu bytes%s", status,
		    (double)total_us / 1e6, h->buflen, cut);
}

static void
http_done_cb(void *easy, int code, void *arg)
{
	struct http_check *h = arg;
	const char *why;
	long os_errno = 0;

	(void)easy;
	h->added = 0; /* the host handed it back */
	curl_easy_getinfo(h->easy, CURLINFO_OS_ERRNO, &os_errno);
	why = h->errbuf[0] != '\0' ? h->errbuf :
	    curl_easy_strerror((CURLcode)code);
	if (h->nomem) {
		http_report(h, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE, NULL,
		    0, "out of memory for the response body");
		return;
	}
	switch (code) {
	case CURLE_OK:
		http_judge(h);
		break;
	case CURLE_WRITE_ERROR:
		if (h->cut) {
			http_judge(h);
			break;
		}
		http_report(h, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE, NULL,
		    0, "%s", why);
		break;
	case CURLE_OPERATION_TIMEDOUT:
		http_report(h, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_AMBIGUOUS,
		    NULL, 0, "timed out after %lld ms: %s",
		    (long long)h->budget_ms, why);
		break;
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
		if (os_errno == ECONNREFUSED)
			http_report(h, TROIKA_STATUS_CRITICAL,
			    TROIKA_EVIDENCE_CERTAIN, NULL, 0,
			    "connection refused: %s", why);
		else if (os_errno == ECONNRESET)
			http_report(h, TROIKA_STATUS_CRITICAL,
			    TROIKA_EVIDENCE_CERTAIN, NULL, 0,
			    "connection reset: %s", why);
		else
			http_report(h, TROIKA_STATUS_CRITICAL,
			    TROIKA_EVIDENCE_AMBIGUOUS, NULL, 0, "%s", why);
		break;
	case CURLE_OUT_OF_MEMORY:
		http_report(h, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE, NULL,
		    0, "%s", why);
		break;
	default:
		http_report(h, TROIKA_STATUS_CRITICAL, TROIKA_EVIDENCE_AMBIGUOUS,
		    NULL, 0, "%s", why);
		break;
	}
}

static void
http_defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_check *h = arg;

	(void)fd;
	(void)what;
	http_report(h, TROIKA_STATUS_UNKNOWN, TROIKA_EVIDENCE_NONE, NULL, 0,
	    "%s", h->msg);
}

/*
 * The time this run may take: what the host allows minus a margin, so the
 * plugin's own timeout result normally arrives before the host gives up.
 */
static int64_t
http_budget_ms(int64_t remaining)
{
	int64_t margin = remaining / 10;

	if (margin > 100)
		margin = 100;
	return remaining - margin > 1 ? remaining - margin : 1;
}

/* Everything about the request; a CURLcode. */
static CURLcode
http_setup(struct http_check *h)
{
	CURL *c = h->easy;
	CURLcode rc;

	if ((rc = curl_easy_setopt(c, CURLOPT_URL, h->url)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR,
	    "http,https")) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR,
	    "http,https")) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION,
	    h->follow_redirects ? 1L : 0L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_MAXREDIRS,
	    HTTP_MAX_REDIRS)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
	    (long)h->budget_ms)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER,
	    h->tls_verify ? 1L : 0L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST,
	    h->tls_verify ? 2L : 0L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_USERAGENT,
	    "troika/" TROIKA_VERSION)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_WRITEFUNCTION,
	    http_write_cb)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_WRITEDATA, h)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_ERRORBUFFER,
	    h->errbuf)) != CURLE_OK)
		return rc;
	if (h->ca_file != NULL &&
	    (rc = curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file)) != CURLE_OK)
		return rc;
	if (h->headers != NULL && (rc = curl_easy_setopt(c, CURLOPT_HTTPHEADER,
	    h->headers)) != CURLE_OK)
		return rc;

	if (strcmp(h->method, "GET") == 0)
		return curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	if (strcmp(h->method, "HEAD") == 0)
		return curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	if (strcmp(h->method, "POST") != 0 &&
	    (rc = curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST,
	    h->method)) != CURLE_OK)
		return rc;
	/* POST and PUT always send a body (maybe empty); DELETE if given. */
	if (h->body == NULL && strcmp(h->method, "DELETE") == 0)
		return CURLE_OK;
	if ((rc = curl_easy_setopt(c, CURLOPT_POSTFIELDS,
	    h->body != NULL ? h->body : "")) != CURLE_OK)
		return rc;
	return curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
	    (curl_off_t)(h->body != NULL ? strlen(h->body) : 0));
}

static void
http_check(void *state, struct troika_task *task)
{
	struct http_check *h = state;
	CURLcode rc;
	int r;

	h->task = task;
	h->errbuf[0] = '\0';
	h->budget_ms = http_budget_ms(h->host->task_remaining_ms(task));
	if ((h->easy = curl_easy_init()) == NULL) {
		snprintf(h->msg, sizeof(h->msg), "cannot create a curl handle");
		goto defer;
	}
	if ((rc = http_setup(h)) != CURLE_OK) {
		snprintf(h->msg, sizeof(h->msg), "cannot set up the request: "
		    "%s", curl_easy_strerror(rc));
		goto defer;
	}
	if ((r = h->host->curl_add(h->inst, h->easy, http_done_cb, h)) < 0) {
		snprintf(h->msg, sizeof(h->msg), "cannot start the request: %s",
		    strerror(-r));
		goto defer;
	}
	h->added = 1;
	return;

defer:
	/* check() must return before the plugin calls check_done(). */
	event_active(h->defer, EV_TIMEOUT, 1);
}

static void
http_cancel(void *state, struct troika_task *task)
{
	struct http_check *h = state;

	if (h->task != task)
		return;
	if (h->added)
		h->host->curl_remove(h->easy);
	http_run_end(h);
}

static const struct troika_plugin http_plugin = {
	.abi_major = TROIKA_PLUGIN_ABI_MAJOR,
	.abi_minor = TROIKA_PLUGIN_ABI_MINOR,
	.size = sizeof(struct troika_plugin),
	.name = "http",
	.version = TROIKA_VERSION,
	.description = "HTTP(S) request: status code and body",
	.exec_model = TROIKA_EXEC_ASYNC,
	.options = http_options,
	.instance_new = http_instance_new,
	.instance_free = http_instance_free,
	.check = http_check,
	.cancel = http_cancel,
};

__attribute__((visibility("default"))) const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void);

const struct troika_plugin *
TROIKA_PLUGIN_ENTRY(void)
{
	return &http_plugin;
}
