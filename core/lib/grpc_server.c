/*
 * The gRPC server object: configuration, the method table, listeners and
 * accepting (with the connection limit), graceful shutdown, counters and
 * their Prometheus families. Connections live in grpc_conn.c, calls in
 * grpc_call.c.
 */
#include "grpc_server_int.h"

#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "log.h"

/* Between the shutdown notice and the final GOAWAY: about one round trip. */
#define GRPC_SHUTDOWN_NOTICE_MS 200
/* After the grace period, calls get this long to deliver their status. */
#define GRPC_SHUTDOWN_FLUSH_MS 2000

/* Prometheus' default buckets, as go-grpc-prometheus uses them. */
static const double grpc_handling_bounds[] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

const char *
grpc_method_kind_str(enum grpc_method_kind kind)
{
	switch (kind) {
	case GRPC_METHOD_UNARY:
		return "unary";
	case GRPC_METHOD_SERVER_STREAMING:
		return "server_stream";
	case GRPC_METHOD_CLIENT_STREAMING:
		return "client_stream";
	case GRPC_METHOD_BIDI_STREAMING:
		return "bidi_stream";
	}
	return "invalid";
}

void
grpc_server_config_default(struct grpc_server_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->max_recv_message = GRPC_FRAME_MAX_DEFAULT;
	cfg->max_send_message = GRPC_FRAME_MAX_DEFAULT;
	cfg->call_output_cap = 8 * 1024 * 1024;
	cfg->conn_output_cap = 16 * 1024 * 1024;
	cfg->conn_input_cap = 16 * 1024 * 1024;
	cfg->server_buffer_cap = 256 * 1024 * 1024;
	cfg->max_concurrent_streams = 100;
	cfg->max_connections = 1024;
	cfg->stream_window = 1024 * 1024;
	cfg->conn_window = 4 * 1024 * 1024;
	cfg->max_header_list = 16 * 1024;
	cfg->handshake_timeout_ms = 10 * 1000;
	cfg->idle_timeout_ms = 5 * 60 * 1000;
	cfg->keepalive_ms = 60 * 1000;
	cfg->keepalive_timeout_ms = 20 * 1000;
}

static void grpc_server_shutdown_cb(evutil_socket_t fd, short what,
    void *arg);
static void grpc_server_done_ev_cb(evutil_socket_t fd, short what, void *arg);

struct grpc_server *
grpc_server_new(struct event_base *base, const struct grpc_server_config *cfg)
{
	struct grpc_server *srv;

	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return NULL;
	srv->base = base;
	if (cfg != NULL)
		srv->cfg = *cfg;
	else
		grpc_server_config_default(&srv->cfg);
	/* HTTP/2 windows are 31-bit. */
	if (srv->cfg.stream_window > 0x7fffffff)
		srv->cfg.stream_window = 0x7fffffff;
	if (srv->cfg.conn_window > 0x7fffffff)
		srv->cfg.conn_window = 0x7fffffff;
	SLIST_INIT(&srv->listeners);
	TAILQ_INIT(&srv->conns);
	srv->shutdown_ev = evtimer_new(base, grpc_server_shutdown_cb, srv);
	srv->done_ev = event_new(base, -1, 0, grpc_server_done_ev_cb, srv);
	if (srv->shutdown_ev == NULL || srv->done_ev == NULL) {
		grpc_server_free(srv);
		errno = ENOMEM;
		return NULL;
	}
	return srv;
}

static void
grpc_method_entry_free(struct grpc_method_entry *m)
{
	if (m == NULL)
		return;
	free(m->path);
	free(m->service);
	free(m->name);
	metrics_histogram_free(&m->handling);
	free(m);
}

int
grpc_server_add_method(struct grpc_server *srv, const struct grpc_method *m)
{
	struct grpc_method_entry *e, **v;
	const char *slash;
	size_t slen;

	if (m->path == NULL || m->path[0] != '/' ||
	    (slash = strchr(m->path + 1, '/')) == NULL || slash == m->path + 1 ||
	    slash[1] == '\0' || strchr(slash + 1, '/') != NULL)
		return -EINVAL;
	if (m->handler == NULL || m->handler->start == NULL ||
	    m->handler->message == NULL || m->handler->close == NULL)
		return -EINVAL;
	if (m->kind < GRPC_METHOD_UNARY || m->kind > GRPC_METHOD_BIDI_STREAMING)
		return -EINVAL;
	if (grpc_server_find_method(srv, m->path) != NULL)
		return -EEXIST;

	if ((e = calloc(1, sizeof(*e))) == NULL)
		return -ENOMEM;
	slen = (size_t)(slash - (m->path + 1));
	e->path = strdup(m->path);
	e->service = strndup(m->path + 1, slen);
	e->name = strdup(slash + 1);
	e->kind = m->kind;
	e->handler = m->handler;
	e->arg = m->arg;
	if (e->path == NULL || e->service == NULL || e->name == NULL ||
	    metrics_histogram_init(&e->handling, grpc_handling_bounds,
		sizeof(grpc_handling_bounds) / sizeof(grpc_handling_bounds[0]))
		!= 0) {
		grpc_method_entry_free(e);
		return -ENOMEM;
	}
	v = realloc(srv->methods, (srv->nmethods + 1) * sizeof(*v));
	if (v == NULL) {
		grpc_method_entry_free(e);
		return -ENOMEM;
	}
	srv->methods = v;
	srv->methods[srv->nmethods++] = e;
	return 0;
}

struct grpc_method_entry *
grpc_server_find_method(struct grpc_server *srv, const char *path)
{
	/* A handful of methods: a scan beats a hash table here. */
	for (size_t i = 0; i < srv->nmethods; i++)
		if (strcmp(srv->methods[i]->path, path) == 0)
			return srv->methods[i];
	return NULL;
}

static int
grpc_server_full(const struct grpc_server *srv)
{
	return srv->shutting_down ||
	    srv->stats.conns_open >= srv->cfg.max_connections;
}

int
grpc_server_adopt(struct grpc_server *srv, struct bufferevent *bev,
    const char *peer)
{
	if (grpc_server_full(srv)) {
		srv->stats.conns_rejected++;
		bufferevent_free(bev);
		return -EBUSY;
	}
	if (grpc_conn_new(srv, bev, peer) == NULL)
		return -ENOMEM;
	return 0;
}

static void
grpc_format_peer(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(buf, len, "%s:%d", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 =
		    (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(buf, len, "[%s]:%d", host, port);
	} else
		snprintf(buf, len, "unknown");
}

static void
grpc_server_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct grpc_listener *l = arg;
	struct grpc_server *srv = l->srv;
	struct bufferevent *bev;
	char peer[64];
	int one = 1;

	(void)lev;
	(void)salen;
	if (grpc_server_full(srv)) {
		srv->stats.conns_rejected++;
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	grpc_format_peer(sa, peer, sizeof(peer));
	if (l->tls != NULL) {
		SSL *ssl = SSL_new(l->tls);

		if (ssl == NULL) {
			close(fd);
			return;
		}
		bev = bufferevent_openssl_socket_new(srv->base, fd, ssl,
		    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
		if (bev == NULL)
			SSL_free(ssl);
	} else
		bev = bufferevent_socket_new(srv->base, fd,
		    BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		log_warnx("grpc %s: out of memory", peer);
		close(fd);
		return;
	}
	if (grpc_conn_new(srv, bev, peer) == NULL)
		log_warnx("grpc %s: cannot set up the connection", peer);
}

static void
grpc_listener_free(struct grpc_listener *l)
{
	if (l == NULL)
		return;
	if (l->lev != NULL)
		evconnlistener_free(l->lev);
	if (l->tls != NULL)
		SSL_CTX_free(l->tls);
	free(l);
}

int
grpc_server_listen(struct grpc_server *srv, const char *host, int port,
    void *tls, int *ret_port)
{
	struct addrinfo hints, *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct grpc_listener *l = NULL;
	char portstr[16];
	int r;

	if (port < 0 || port > 65535)
		return -EINVAL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	snprintf(portstr, sizeof(portstr), "%d", port);
	if (getaddrinfo(host, portstr, &hints, &ai) != 0 || ai == NULL) {
		r = -EINVAL;
		goto fail;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	l->srv = srv;
	l->lev = evconnlistener_new_bind(srv->base, grpc_server_accept_cb, l,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    1024, ai->ai_addr, (int)ai->ai_addrlen);
	if (l->lev == NULL) {
		r = errno != 0 ? -errno : -EADDRINUSE;
		goto fail;
	}
	if (tls != NULL) {
		SSL_CTX_up_ref(tls);
		l->tls = tls;
	}
	if (ret_port != NULL) {
		if (getsockname(evconnlistener_get_fd(l->lev),
		    (struct sockaddr *)&ss, &sslen) != 0) {
			r = -errno;
			goto fail;
		}
		*ret_port = ss.ss_family == AF_INET6 ?
		    ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) :
		    ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	SLIST_INSERT_HEAD(&srv->listeners, l, entry);
	freeaddrinfo(ai);
	return 0;
fail:
	grpc_listener_free(l);
	if (ai != NULL)
		freeaddrinfo(ai);
	return r;
}

void
grpc_server_conn_gone(struct grpc_server *srv, struct grpc_conn *conn)
{
	TAILQ_REMOVE(&srv->conns, conn, entry);
	srv->stats.conns_open--;
	if (srv->shutting_down && TAILQ_EMPTY(&srv->conns) && srv->done_ev)
		event_active(srv->done_ev, EV_TIMEOUT, 0);
}

static void
grpc_server_done_ev_cb(evutil_socket_t fd, short what, void *arg)
{
	struct grpc_server *srv = arg;
	grpc_server_done_cb done = srv->done;

	(void)fd;
	(void)what;
	if (done == NULL || !TAILQ_EMPTY(&srv->conns))
		return;
	srv->done = NULL;
	evtimer_del(srv->shutdown_ev);
	done(srv->done_arg); /* may free srv */
}

static void
grpc_server_timer_ms(struct event *ev, int64_t ms)
{
	struct timeval tv;

	if (ms < 0)
		ms = 0;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(ev, &tv);
}

/* Stages: 1 final GOAWAY, 2 fail the calls left, 3 close what is left. */
static void
grpc_server_shutdown_cb(evutil_socket_t fd, short what, void *arg)
{
	struct grpc_server *srv = arg;
	struct grpc_conn *conn;
	int stage = ++srv->shutdown_stage;

	(void)fd;
	(void)what;
	switch (stage) {
	case 1:
	case 2:
		TAILQ_FOREACH(conn, &srv->conns, entry)
			grpc_conn_shutdown_stage(conn, stage);
		if (stage == 1)
			grpc_server_timer_ms(srv->shutdown_ev,
			    srv->grace_ms - GRPC_SHUTDOWN_NOTICE_MS);
		else
			grpc_server_timer_ms(srv->shutdown_ev,
			    GRPC_SHUTDOWN_FLUSH_MS);
		break;
	default:
		while ((conn = TAILQ_FIRST(&srv->conns)) != NULL)
			grpc_conn_free(conn);
		break;
	}
}

void
grpc_server_shutdown(struct grpc_server *srv, int64_t grace_ms,
    grpc_server_done_cb done, void *arg)
{
	struct grpc_listener *l;
	struct grpc_conn *conn;

	if (srv->shutting_down)
		return;
	srv->shutting_down = 1;
	srv->done = done;
	srv->done_arg = arg;
	srv->grace_ms = grace_ms < GRPC_SHUTDOWN_NOTICE_MS ?
	    GRPC_SHUTDOWN_NOTICE_MS : grace_ms;
	while ((l = SLIST_FIRST(&srv->listeners)) != NULL) {
		SLIST_REMOVE_HEAD(&srv->listeners, entry);
		grpc_listener_free(l);
	}
	TAILQ_FOREACH(conn, &srv->conns, entry)
		grpc_conn_shutdown_stage(conn, 0);
	srv->shutdown_stage = 0;
	grpc_server_timer_ms(srv->shutdown_ev, GRPC_SHUTDOWN_NOTICE_MS);
	if (TAILQ_EMPTY(&srv->conns))
		event_active(srv->done_ev, EV_TIMEOUT, 0);
}

void
grpc_server_free(struct grpc_server *srv)
{
	struct grpc_listener *l;
	struct grpc_conn *conn;

	if (srv == NULL)
		return;
	srv->done = NULL;
	while ((l = SLIST_FIRST(&srv->listeners)) != NULL) {
		SLIST_REMOVE_HEAD(&srv->listeners, entry);
		grpc_listener_free(l);
	}
	while ((conn = TAILQ_FIRST(&srv->conns)) != NULL)
		grpc_conn_free(conn);
	for (size_t i = 0; i < srv->nmethods; i++)
		grpc_method_entry_free(srv->methods[i]);
	free(srv->methods);
	if (srv->shutdown_ev != NULL)
		event_free(srv->shutdown_ev);
	if (srv->done_ev != NULL)
		event_free(srv->done_ev);
	free(srv);
}

const struct grpc_server_stats *
grpc_server_stats(const struct grpc_server *srv)
{
	return &srv->stats;
}

/* ---- metrics ---- */

static void
grpc_metric_simple(struct evbuffer *out, const char *name, const char *type,
    const char *help, double value)
{
	metrics_family(out, name, type, help);
	metrics_sample(out, name, NULL, 0, NULL, value);
}

static void
grpc_method_labels(const struct grpc_method_entry *m, struct troika_label *l)
{
	l[0].name = "grpc_type";
	l[0].value = grpc_method_kind_str(m->kind);
	l[1].name = "grpc_service";
	l[1].value = m->service;
	l[2].name = "grpc_method";
	l[2].value = m->name;
}

/* One family of per-method counters; field picks the counter. */
static void
grpc_metric_methods(const struct grpc_server *srv, struct evbuffer *out,
    const char *name, const char *help, size_t offset)
{
	struct troika_label l[3];

	metrics_family(out, name, "counter", help);
	for (size_t i = 0; i < srv->nmethods; i++) {
		const struct grpc_method_entry *m = srv->methods[i];
		uint64_t v;

		memcpy(&v, (const char *)m + offset, sizeof(v));
		grpc_method_labels(m, l);
		metrics_sample(out, name, l, 3, NULL, (double)v);
	}
}

void
grpc_server_write_metrics(const struct grpc_server *srv, struct evbuffer *out)
{
	const struct grpc_server_stats *st = &srv->stats;
	struct troika_label l[4];

	grpc_metric_methods(srv, out, "grpc_server_started_total",
	    "RPCs started on the server.",
	    offsetof(struct grpc_method_entry, started));
	metrics_family(out, "grpc_server_handled_total", "counter",
	    "RPCs completed on the server, regardless of success or failure.");
	for (size_t i = 0; i < srv->nmethods; i++) {
		const struct grpc_method_entry *m = srv->methods[i];

		grpc_method_labels(m, l);
		l[3].name = "grpc_code";
		for (int c = 0; c <= GRPC_STATUS_MAX; c++) {
			/* OK always, so the series exists from the start. */
			if (m->handled[c] == 0 && c != GRPC_STATUS_OK)
				continue;
			l[3].value = grpc_status_str(c);
			metrics_sample(out, "grpc_server_handled_total", l, 4,
			    NULL, (double)m->handled[c]);
		}
	}
	grpc_metric_methods(srv, out, "grpc_server_msg_received_total",
	    "RPC stream messages received on the server.",
	    offsetof(struct grpc_method_entry, msgs_received));
	grpc_metric_methods(srv, out, "grpc_server_msg_sent_total",
	    "gRPC stream messages sent by the server.",
	    offsetof(struct grpc_method_entry, msgs_sent));
	metrics_family(out, "grpc_server_handling_seconds", "histogram",
	    "Response latency (seconds) of gRPC that had been application-"
	    "level handled by the server.");
	for (size_t i = 0; i < srv->nmethods; i++) {
		const struct grpc_method_entry *m = srv->methods[i];

		grpc_method_labels(m, l);
		metrics_histogram_write(out, "grpc_server_handling_seconds", l,
		    3, &m->handling);
	}

	metrics_family(out, "troika_grpc_server_calls_handled_total", "counter",
	    "Calls ended, unknown methods and refused requests included, "
	    "by status.");
	l[0].name = "grpc_code";
	for (int c = 0; c <= GRPC_STATUS_MAX; c++) {
		if (st->handled[c] == 0 && c != GRPC_STATUS_OK)
			continue;
		l[0].value = grpc_status_str(c);
		metrics_sample(out, "troika_grpc_server_calls_handled_total", l,
		    1, NULL, (double)st->handled[c]);
	}
	grpc_metric_simple(out, "troika_grpc_server_calls", "gauge",
	    "Calls open now.", (double)st->calls_open);
	metrics_family(out, "troika_grpc_server_calls_reset_total", "counter",
	    "Calls ended by RST_STREAM: by the peer, or by us because an "
	    "output cap was reached.");
	l[0].name = "reason";
	l[0].value = "peer";
	metrics_sample(out, "troika_grpc_server_calls_reset_total", l, 1, NULL,
	    (double)st->calls_reset_by_peer);
	l[0].value = "output_cap";
	metrics_sample(out, "troika_grpc_server_calls_reset_total", l, 1, NULL,
	    (double)st->calls_output_overflow);
	grpc_metric_simple(out, "troika_grpc_server_connections", "gauge",
	    "HTTP/2 connections open now.", (double)st->conns_open);
	grpc_metric_simple(out, "troika_grpc_server_connections_accepted_total",
	    "counter", "HTTP/2 connections accepted.",
	    (double)st->conns_accepted);
	grpc_metric_simple(out, "troika_grpc_server_connections_rejected_total",
	    "counter", "Connections refused: over the limit or shutting down.",
	    (double)st->conns_rejected);
	metrics_family(out, "troika_grpc_server_connections_closed_total",
	    "counter", "Connections closed by the server, by reason.");
	l[0].value = "protocol_error";
	metrics_sample(out, "troika_grpc_server_connections_closed_total", l, 1,
	    NULL, (double)st->conns_protocol_error);
	l[0].value = "idle";
	metrics_sample(out, "troika_grpc_server_connections_closed_total", l, 1,
	    NULL, (double)st->conns_idle_closed);
	l[0].value = "keepalive";
	metrics_sample(out, "troika_grpc_server_connections_closed_total", l, 1,
	    NULL, (double)st->conns_keepalive_closed);
	grpc_metric_simple(out, "troika_grpc_server_received_bytes_total",
	    "counter", "HTTP/2 bytes received.", (double)st->bytes_received);
	grpc_metric_simple(out, "troika_grpc_server_sent_bytes_total",
	    "counter", "HTTP/2 bytes sent.", (double)st->bytes_sent);
	grpc_metric_simple(out, "troika_grpc_server_buffered_bytes", "gauge",
	    "Request and response bytes held for calls now.",
	    (double)st->buffered);
}
