/*
 * grpc_client_probe: the core/lib gRPC client as a command, so that the
 * system tests (tests/system/test_grpc_client.py) can call servers written
 * by others (python3-grpcio) with it. Messages are given and printed in
 * hex: the test packs and unpacks them with its own protobuf modules.
 *
 *   grpc_client_probe [options] HOST PORT PATH [HEXMSG ...]
 *
 * Every call sends the messages (--repeat N: N times over), then
 * half-closes (--pingpong: one message per reply received, for bidi;
 * --no-half-close: the call stays open until the server, the deadline or
 * the connection ends it). Output, one line each, flushed:
 *   headers I
 *   message I HEX
 *   sent I MESSAGES_SENT SENDS_REFUSED_FOR_A_FULL_QUEUE
 *   status I CODE NAME MESSAGE
 *   down REASON
 * Exits 0 once every call is closed; 2 for bad usage, 1 for a setup error.
 * Tests only, never installed.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "grpc_client.h"
#include "grpc_server.h"
#include "log.h"

struct probe_call {
	struct probe *p;
	struct grpc_client_call *call;
	int index;
	size_t next;    /* next message to send */
	int eagain;     /* sends refused for a full queue */
	int closed;
};

struct probe {
	struct event_base *base;
	struct grpc_client *cl;
	uint8_t **msgs;
	size_t *lens;
	size_t nmsgs;
	size_t total;   /* nmsgs times --repeat */
	int pingpong;
	int no_half_close;
	int open;
};

static int
probe_hex(const char *s, uint8_t **ret, size_t *ret_len)
{
	size_t n = strlen(s);
	uint8_t *b;

	if (n % 2 != 0 || (b = malloc(n / 2 + 1)) == NULL)
		return -EINVAL;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1) {
			free(b);
			return -EINVAL;
		}
		b[i] = (uint8_t)v;
	}
	*ret = b;
	*ret_len = n / 2;
	return 0;
}

static void
probe_send_next(struct probe_call *pc)
{
	struct probe *p = pc->p;

	if (pc->next < p->total) {
		if (grpc_client_call_send(pc->call, p->msgs[pc->next % p->nmsgs],
		    p->lens[pc->next % p->nmsgs]) == 0)
			pc->next++;
	}
	if (pc->next == p->total && !p->no_half_close)
		grpc_client_call_half_close(pc->call);
}

static void
probe_headers(struct grpc_client_call *call, void *arg)
{
	struct probe_call *pc = arg;

	(void)call;
	printf("headers %d\n", pc->index);
	fflush(stdout);
}

static void
probe_message(struct grpc_client_call *call, const uint8_t *msg, size_t len,
    void *arg)
{
	struct probe_call *pc = arg;

	(void)call;
	printf("message %d ", pc->index);
	for (size_t i = 0; i < len; i++)
		printf("%02x", msg[i]);
	printf("\n");
	fflush(stdout);
	if (pc->p->pingpong && pc->next < pc->p->total)
		probe_send_next(pc);
}

static void
probe_drained(struct grpc_client_call *call, void *arg)
{
	struct probe_call *pc = arg;
	struct probe *p = pc->p;
	int rc = 0;

	(void)call;
	/* Send until the queue is full; drained() brings us back. */
	while (!p->pingpong && pc->next < p->total &&
	    (rc = grpc_client_call_send(pc->call, p->msgs[pc->next % p->nmsgs],
	    p->lens[pc->next % p->nmsgs])) == 0)
		pc->next++;
	if (rc == -EAGAIN)
		pc->eagain++;
	if (pc->next == p->total && !p->no_half_close)
		grpc_client_call_half_close(pc->call);
}

static void
probe_close(struct grpc_client_call *call, int status, const char *message,
    void *arg)
{
	struct probe_call *pc = arg;

	(void)call;
	printf("sent %d %zu %d\n", pc->index, pc->next, pc->eagain);
	printf("status %d %d %s %s\n", pc->index, status,
	    grpc_status_str(status), message);
	fflush(stdout);
	pc->closed = 1;
	pc->call = NULL;
	/* A client that is going down says so next: wait for that. */
	if (--pc->p->open == 0 && grpc_client_usable(pc->p->cl))
		event_base_loopbreak(pc->p->base);
}

static const struct grpc_client_handler probe_handler = {
	.headers = probe_headers,
	.message = probe_message,
	.drained = probe_drained,
	.close = probe_close,
};

static void
probe_down(struct grpc_client *cl, const char *reason, void *arg)
{
	struct probe *p = arg;

	(void)cl;
	printf("down %s\n", reason);
	fflush(stdout);
	if (p->open == 0)
		event_base_loopbreak(p->base);
}

static void
usage(void)
{
	fprintf(stderr, "usage: grpc_client_probe [--timeout-ms N] "
	    "[--max-recv N] [--calls N] [--repeat N] [--pingpong] "
	    "[--no-half-close] "
	    "[--keepalive-ms N] [--metadata K=V] "
	    "[--tls-ca F [--tls-cert F --tls-key F] [--authority A]] "
	    "HOST PORT PATH [HEXMSG ...]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct grpc_client_config cfg;
	struct probe p;
	struct probe_call *calls = NULL;
	const char *ca = NULL, *cert = NULL, *key = NULL, *authority = NULL;
	const char *md = NULL;
	long timeout_ms = 0, repeat = 1;
	int ncalls = 1, i, rc = 1;
	void *tls = NULL;

	/* A peer that closes mid-write must not kill us (as in daemons). */
	signal(SIGPIPE, SIG_IGN);
	memset(&p, 0, sizeof(p));
	grpc_client_config_default(&cfg);
	log_init("grpc_client_probe", LOG_TARGET_STDERR, 7);
	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		const char *o = argv[i];

		if (strcmp(o, "--pingpong") == 0) {
			p.pingpong = 1;
			continue;
		}
		if (strcmp(o, "--no-half-close") == 0) {
			p.no_half_close = 1;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		if (strcmp(o, "--timeout-ms") == 0)
			timeout_ms = atol(argv[++i]);
		else if (strcmp(o, "--keepalive-ms") == 0)
			cfg.keepalive_ms = atol(argv[++i]);
		else if (strcmp(o, "--max-recv") == 0)
			cfg.max_recv_message = (size_t)atol(argv[++i]);
		else if (strcmp(o, "--repeat") == 0)
			repeat = atol(argv[++i]);
		else if (strcmp(o, "--calls") == 0)
			ncalls = atoi(argv[++i]);
		else if (strcmp(o, "--metadata") == 0)
			md = argv[++i];
		else if (strcmp(o, "--tls-ca") == 0)
			ca = argv[++i];
		else if (strcmp(o, "--tls-cert") == 0)
			cert = argv[++i];
		else if (strcmp(o, "--tls-key") == 0)
			key = argv[++i];
		else if (strcmp(o, "--authority") == 0)
			authority = argv[++i];
		else
			usage();
	}
	if (argc - i < 3 || ncalls < 1 || repeat < 1)
		usage();
	p.nmsgs = (size_t)(argc - i - 3);
	p.total = p.nmsgs * (size_t)repeat;
	p.msgs = calloc(p.nmsgs + 1, sizeof(*p.msgs));
	p.lens = calloc(p.nmsgs + 1, sizeof(*p.lens));
	calls = calloc((size_t)ncalls, sizeof(*calls));
	if (p.msgs == NULL || p.lens == NULL || calls == NULL)
		goto out;
	for (size_t m = 0; m < p.nmsgs; m++)
		if (probe_hex(argv[i + 3 + (int)m], &p.msgs[m], &p.lens[m]) != 0)
			usage();
	if ((p.base = event_base_new()) == NULL)
		goto out;
	if (ca != NULL && (tls = grpc_tls_client_ctx(ca, cert, key)) == NULL)
		goto out;
	if ((p.cl = grpc_client_connect(p.base, argv[i], atoi(argv[i + 1]),
	    tls, authority, &cfg, probe_down, &p)) == NULL) {
		fprintf(stderr, "grpc_client_connect: %s\n", strerror(errno));
		goto out;
	}
	for (int c = 0; c < ncalls; c++) {
		struct probe_call *pc = &calls[c];

		pc->p = &p;
		pc->index = c;
		if ((pc->call = grpc_client_call_open(p.cl, argv[i + 2],
		    timeout_ms, &probe_handler, pc)) == NULL) {
			printf("open %d failed: %s\n", c, strerror(errno));
			continue;
		}
		p.open++;
		if (md != NULL) {
			char name[128];
			const char *eq = strchr(md, '=');

			if (eq == NULL || (size_t)(eq - md) >= sizeof(name))
				usage();
			snprintf(name, sizeof(name), "%.*s", (int)(eq - md), md);
			grpc_client_call_metadata(pc->call, name, eq + 1);
		}
		if (p.pingpong && p.total > 0)
			probe_send_next(pc);
		else
			probe_drained(pc->call, pc);
	}
	if (p.open > 0)
		event_base_dispatch(p.base);
	rc = 0;
out:
	grpc_client_free(p.cl);
	grpc_tls_ctx_free(tls);
	if (p.base != NULL)
		event_base_free(p.base);
	for (size_t m = 0; m < p.nmsgs; m++)
		free(p.msgs[m]);
	free(p.msgs);
	free(p.lens);
	free(calls);
	return rc;
}
