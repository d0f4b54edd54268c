/*
 * troikactl's calls to coordinators (see ctl_rpc.h).
 */
#include "ctl_rpc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "grpc_client.h"
#include "grpc_server.h"
#include "parse.h"
#include "troika/v1/admin.pb-c.h"

static void
ctl_rpc_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct ctl_rpc *r = arg;

	(void)sig;
	(void)what;
	r->interrupted = 1;
	ctl_rpc_stop(r);
}

int
ctl_rpc_init(struct ctl_rpc *r, const struct ctl_opts *o)
{
	memset(r, 0, sizeof(*r));
	r->o = o;
	/* A coordinator that closes mid-write must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	if ((r->base = event_base_new()) == NULL) {
		fprintf(stderr, "troikactl: cannot make an event loop\n");
		return -1;
	}
	if (o->tls &&
	    (r->tls = grpc_tls_client_ctx(
	         o->tls_ca, o->tls_cert, o->tls_key)) == NULL) {
		/* grpc_tls_client_ctx() logged which file and why. */
		fprintf(stderr, "troikactl: cannot set up TLS\n");
		return -1;
	}
	if ((r->sigint = evsignal_new(r->base, SIGINT, ctl_rpc_signal_cb, r)) ==
	        NULL ||
	    (r->sigterm = evsignal_new(
	         r->base, SIGTERM, ctl_rpc_signal_cb, r)) == NULL ||
	    evsignal_add(r->sigint, NULL) != 0 ||
	    evsignal_add(r->sigterm, NULL) != 0) {
		fprintf(stderr, "troikactl: cannot handle signals\n");
		return -1;
	}
	return 0;
}

void
ctl_rpc_cleanup(struct ctl_rpc *r)
{
	grpc_client_free(r->cl);
	r->cl = NULL;
	if (r->sigint != NULL)
		event_free(r->sigint);
	if (r->sigterm != NULL)
		event_free(r->sigterm);
	r->sigint = r->sigterm = NULL;
	grpc_tls_ctx_free(r->tls);
	r->tls = NULL;
	if (r->base != NULL)
		event_base_free(r->base);
	r->base = NULL;
}

static void
ctl_rpc_headers_cb(struct grpc_client_call *call, void *arg)
{
	struct ctl_rpc *r = arg;

	(void)call;
	r->responded = 1;
}

static void
ctl_rpc_message_cb(
    struct grpc_client_call *call, const uint8_t *msg, size_t len, void *arg)
{
	struct ctl_rpc *r = arg;
	int e;

	r->responded = 1;
	if (r->stopped || r->message[0] != '\0')
		return; /* ending: close() follows */
	if ((e = r->handler->message(msg, len, r->arg)) < 0) {
		snprintf(r->message, sizeof(r->message), "%s",
		    e == -EBADMSG ? "cannot parse the coordinator's answer"
		                  : strerror(-e));
		grpc_client_call_cancel(call);
	}
}

static void
ctl_rpc_close_cb(
    struct grpc_client_call *call, int status, const char *message, void *arg)
{
	struct ctl_rpc *r = arg;

	(void)call;
	/* Our own verdict (a bad answer) wins over the CANCELLED it made. */
	if (r->message[0] != '\0' && !r->stopped)
		r->status = GRPC_STATUS_INTERNAL;
	else {
		r->status = status;
		snprintf(r->message, sizeof(r->message), "%s", message);
	}
	r->call = NULL;
	r->done = 1;
}

static const struct grpc_client_handler ctl_rpc_client_handler = {
    .headers = ctl_rpc_headers_cb,
    .message = ctl_rpc_message_cb,
    .close = ctl_rpc_close_cb,
};

/* Open the call on the current target and run it to its end. */
static void
ctl_rpc_run(struct ctl_rpc *r, const char *path, const uint8_t *req, size_t len,
    int64_t timeout_ms)
{
	const struct ctl_target *t = &r->o->targets[r->target];

	r->responded = r->done = r->stopped = 0;
	r->status = GRPC_STATUS_UNAVAILABLE;
	r->message[0] = '\0';
	if (r->cl == NULL || !grpc_client_usable(r->cl)) {
		struct grpc_client_config cfg;

		grpc_client_free(r->cl);
		grpc_client_config_default(&cfg);
		/* The call's deadline covers the set-up; else --timeout. */
		cfg.connect_timeout_ms = timeout_ms > 0 ? 0 : r->o->timeout_ms;
		r->cl = grpc_client_connect(
		    r->base, t->host, t->port, r->tls, NULL, &cfg, NULL, NULL);
		if (r->cl == NULL) {
			snprintf(r->message, sizeof(r->message),
			    "cannot connect: %s", strerror(errno));
			return;
		}
	}
	r->call = grpc_client_call_open(
	    r->cl, path, timeout_ms, &ctl_rpc_client_handler, r);
	if (r->call == NULL) {
		snprintf(r->message, sizeof(r->message),
		    "cannot open a call: %s", strerror(errno));
		return;
	}
	if (grpc_client_call_send(r->call, req, len) != 0 ||
	    grpc_client_call_half_close(r->call) != 0) {
		snprintf(
		    r->message, sizeof(r->message), "cannot send the request");
		grpc_client_call_cancel(r->call);
	}
	/* A signal that came before the loop ran stops the call at once. */
	if (r->interrupted)
		ctl_rpc_stop(r);
	while (!r->done)
		if (event_base_loop(r->base, EVLOOP_ONCE) < 0) {
			/* Broken loop: no call can end; give up on it. */
			grpc_client_free(r->cl);
			r->cl = NULL;
			break;
		}
}

static int
ctl_rpc_reply_message(const uint8_t *msg, size_t len, void *arg)
{
	struct ctl_rpc_reply *rp = arg;

	if (rp->msg != NULL)
		return -EBADMSG; /* a unary call has one answer */
	rp->msg = protobuf_c_message_unpack(rp->desc, NULL, len, msg);
	return rp->msg != NULL ? 0 : -EBADMSG;
}

const struct ctl_rpc_handler ctl_rpc_reply_handler = {
	.message = ctl_rpc_reply_message,
};

int
ctl_rpc_call(struct ctl_rpc *r, const char *path, const ProtobufCMessage *req,
    int64_t timeout_ms, const struct ctl_rpc_handler *h, void *arg)
{
	size_t len = protobuf_c_message_get_packed_size(req);
	uint8_t *buf;

	if ((buf = malloc(len > 0 ? len : 1)) == NULL) {
		fprintf(stderr, "troikactl: out of memory\n");
		return CTL_RPC_NO_ANSWER;
	}
	protobuf_c_message_pack(req, buf);
	r->handler = h;
	r->arg = arg;
	for (;;) {
		const struct ctl_target *t = &r->o->targets[r->target];

		ctl_rpc_run(r, path, buf, len, timeout_ms);
		/*
		 * It answered: anything came back, or a status that is not
		 * about reaching it. Or we stopped; or it is the target that
		 * answered before, which is not left for another.
		 */
		if (r->responded || r->stopped || r->interrupted ||
		    r->answered ||
		    (r->status != GRPC_STATUS_UNAVAILABLE &&
		        r->status != GRPC_STATUS_DEADLINE_EXCEEDED)) {
			if (!r->stopped && !r->interrupted)
				r->answered = 1;
			if (r->interrupted) {
				r->stopped = 1;
				r->status = GRPC_STATUS_CANCELLED;
			}
			break;
		}
		if (r->status == GRPC_STATUS_DEADLINE_EXCEEDED) {
			char d[32];

			fprintf(stderr,
			    "troikactl: %s: DEADLINE_EXCEEDED: "
			    "no answer within %s\n",
			    t->text,
			    format_duration_ms(timeout_ms, d, sizeof(d)));
		} else
			fprintf(stderr, "troikactl: %s: %s: %s\n", t->text,
			    grpc_status_str(r->status), r->message);
		grpc_client_free(r->cl);
		r->cl = NULL;
		r->nfailed++;
		if (r->target + 1 == r->o->ntargets) {
			if (r->o->ntargets > 1 && r->nfailed == r->o->ntargets)
				fprintf(stderr,
				    "troikactl: none of the %zu "
				    "coordinators answered\n",
				    r->o->ntargets);
			r->status = CTL_RPC_NO_ANSWER;
			break;
		}
		r->target++;
	}
	free(buf);
	return r->status;
}

struct ctl_rpc_leader {
	int got;
	int leader;
	char name[256]; /* the leader it names */
};

static int
ctl_rpc_leader_message(const uint8_t *msg, size_t len, void *arg)
{
	struct ctl_rpc_leader *l = arg;
	Troika__V1__GetStatusResponse *rep;

	if ((rep = troika__v1__get_status_response__unpack(NULL, len, msg)) ==
	    NULL)
		return -EBADMSG;
	l->got = 1;
	l->leader = rep->leader;
	snprintf(l->name, sizeof(l->name), "%s", rep->leader_name);
	troika__v1__get_status_response__free_unpacked(rep, NULL);
	return 0;
}

static const struct ctl_rpc_handler ctl_rpc_leader_handler = {
    .message = ctl_rpc_leader_message,
};

int
ctl_rpc_find_leader(struct ctl_rpc *r)
{
	Troika__V1__GetStatusRequest req = TROIKA__V1__GET_STATUS_REQUEST__INIT;
	/* No node has an empty name: the answer carries no nodes. */
	char *none[] = {(char *)(uintptr_t) ""};
	char named[256] = "";
	size_t next = 0;
	int asked = 0;

	req.nodes = none;
	req.n_nodes = 1;
	while (next < r->o->ntargets) {
		struct ctl_rpc_leader l = {0, 0, ""};
		int st;

		grpc_client_free(r->cl);
		r->cl = NULL;
		r->target = next;
		r->answered = 0;
		st = ctl_rpc_call(r, "/troika.v1.Admin/GetStatus", &req.base,
		    r->o->timeout_ms, &ctl_rpc_leader_handler, &l);
		if (r->stopped)
			return -1;
		if (st == CTL_RPC_NO_ANSWER)
			break;
		if (st == GRPC_STATUS_OK && l.got && l.leader)
			return 0;
		if (st != GRPC_STATUS_OK)
			fprintf(stderr, "troikactl: %s: %s: %s\n",
			    ctl_rpc_target(r), grpc_status_str(st), r->message);
		else if (l.name[0] != '\0')
			snprintf(named, sizeof(named), "%s", l.name);
		asked = 1;
		next = r->target + 1;
	}
	if (asked)
		fprintf(stderr,
		    "troikactl: none of the coordinators asked "
		    "leads%s%s%s\n",
		    named[0] != '\0' ? "; they name " : "", named,
		    named[0] != '\0' ? ": add it with --coordinator" : "");
	return -1;
}

void
ctl_rpc_stop(struct ctl_rpc *r)
{
	if (r->call == NULL || r->done || r->stopped)
		return;
	r->stopped = 1;
	grpc_client_call_cancel(r->call);
}

int
ctl_rpc_connected(const struct ctl_rpc *r)
{
	return r->cl != NULL && grpc_client_handshaken(r->cl);
}

const char *
ctl_rpc_target(const struct ctl_rpc *r)
{
	return r->o->targets[r->target].text;
}
