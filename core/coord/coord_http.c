/*
 * The coordinator's HTTP endpoint for Prometheus: GET /metrics and
 * /healthz on libevent's evhttp. Scrapers send small requests, so the
 * limits are tight.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "coord.h"
#include "coord_conf.h"
#include "log.h"
#include "parse.h"

struct coord_http {
	struct coord *c;
	struct evhttp *http;
};

static void
coord_http_reply(struct evhttp_request *req, int code, const char *reason,
    const char *ctype, struct evbuffer *body)
{
	evhttp_add_header(
	    evhttp_request_get_output_headers(req), "Content-Type", ctype);
	evhttp_send_reply(req, code, reason, body);
}

static void
coord_http_cb(struct evhttp_request *req, void *arg)
{
	struct coord_http *h = arg;
	const char *uri = evhttp_request_get_uri(req);
	struct evbuffer *body;
	size_t plen = strcspn(uri, "?#");

	if ((body = evbuffer_new()) == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	if (plen == 8 && strncmp(uri, "/metrics", plen) == 0) {
		coord_metrics_write(h->c, body);
		coord_http_reply(req, 200, "OK",
		    "text/plain; version=0.0.4; charset=utf-8", body);
	} else if (plen == 8 && strncmp(uri, "/healthz", plen) == 0) {
		evbuffer_add_printf(body, "ok\n");
		coord_http_reply(
		    req, 200, "OK", "text/plain; charset=utf-8", body);
	} else {
		evbuffer_add_printf(body, "not found: /metrics, /healthz\n");
		coord_http_reply(
		    req, 404, "Not Found", "text/plain; charset=utf-8", body);
	}
	evbuffer_free(body);
}

struct coord_http *
coord_http_start(struct coord *c, const char *listen)
{
	struct coord_http *h;
	char host[256];
	int port;

	if (parse_hostport(listen, host, sizeof(host), 0, &port) < 0) {
		log_warnx("metrics listen '%s' is not host:port", listen);
		return NULL;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL ||
	    (h->http = evhttp_new(c->base)) == NULL) {
		log_warn("metrics endpoint");
		free(h);
		return NULL;
	}
	h->c = c;
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_max_headers_size(h->http, 8192);
	evhttp_set_max_body_size(h->http, 0);
	evhttp_set_timeout(h->http, 10);
	evhttp_set_gencb(h->http, coord_http_cb, h);
	if (evhttp_bind_socket(h->http, host, (unsigned short)port) < 0) {
		log_warn("cannot listen on %s for /metrics", listen);
		coord_http_free(h);
		return NULL;
	}
	log_info("serving /metrics and /healthz on http://%s/", listen);
	return h;
}

void
coord_http_free(struct coord_http *h)
{
	if (h == NULL)
		return;
	if (h->http != NULL)
		evhttp_free(h->http);
	free(h);
}
