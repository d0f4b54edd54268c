/* The agent's HTTP endpoint: /metrics and /healthz, nothing else. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "agent.h"
#include "log.h"
#include "parse.h"

/* A scraper sends a short GET; anything bigger is not for us. */
#define HTTP_MAX_HEADERS 8192
#define HTTP_MAX_BODY 0
#define HTTP_TIMEOUT_S 10

struct agent_http {
	struct agent *agent;
	struct evhttp *http;
	char *listen;
};

static void
http_reply_text(struct evhttp_request *req, int code, const char *reason,
    const char *text)
{
	struct evbuffer *out = evbuffer_new();

	if (out == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	evbuffer_add(out, text, strlen(text));
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; charset=utf-8");
	evhttp_send_reply(req, code, reason, out);
	evbuffer_free(out);
}

static void
http_request_cb(struct evhttp_request *req, void *arg)
{
	struct agent_http *h = arg;
	const char *path;
	struct evhttp_uri *uri;
	struct evbuffer *out;

	uri = evhttp_uri_parse(evhttp_request_get_uri(req));
	path = uri ? evhttp_uri_get_path(uri) : NULL;
	if (path == NULL) {
		http_reply_text(req, 400, "Bad Request", "bad request\n");
		goto done;
	}
	if (strcmp(path, "/healthz") == 0) {
		http_reply_text(req, 200, "OK", "ok\n");
		goto done;
	}
	if (strcmp(path, "/metrics") != 0) {
		http_reply_text(req, 404, "Not Found",
		    "not found; try /metrics or /healthz\n");
		goto done;
	}
	if ((out = evbuffer_new()) == NULL) {
		evhttp_send_error(req, 500, NULL);
		goto done;
	}
	agent_metrics(h->agent, out);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
done:
	if (uri != NULL)
		evhttp_uri_free(uri);
}

struct agent_http *
agent_http_start(struct agent *a, const char *listen)
{
	struct agent_http *h;
	char host[256];
	int port;

	if (parse_hostport(listen, host, sizeof(host), 1, &port) < 0) {
		log_warnx("metrics listen address '%s' is not host:port", listen);
		return NULL;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL ||
	    (h->listen = strdup(listen)) == NULL ||
	    (h->http = evhttp_new(a->base)) == NULL) {
		log_warn("starting the HTTP endpoint");
		agent_http_free(h);
		return NULL;
	}
	h->agent = a;
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_max_headers_size(h->http, HTTP_MAX_HEADERS);
	evhttp_set_max_body_size(h->http, HTTP_MAX_BODY);
	evhttp_set_timeout(h->http, HTTP_TIMEOUT_S);
	evhttp_set_gencb(h->http, http_request_cb, h);
	if (evhttp_bind_socket(h->http, host, (ev_uint16_t)port) < 0) {
		log_warn("cannot listen on %s for /metrics", listen);
		agent_http_free(h);
		return NULL;
	}
	log_info("serving /metrics and /healthz on http://%s/", listen);
	return h;
}

const char *
agent_http_listen(const struct agent_http *h)
{
	return h->listen;
}

void
agent_http_free(struct agent_http *h)
{
	if (h == NULL)
		return;
	if (h->http != NULL)
		evhttp_free(h->http);
	free(h->listen);
	free(h);
}
