/*
 * libFuzzer target: the gRPC server's request path, from HTTP/2 bytes to
 * handlers and back (grpc_conn.c, grpc_call.c on nghttp2), over a
 * bufferevent pair: a memory-only transport, no sockets. The handlers
 * answer like a small echo service so responses, trailers, resets and
 * flow control run too.
 *
 * Input: a mode byte (bit 0: the client preface and an empty SETTINGS go
 * first, so the fuzzer spends its time on frames), a byte giving the size
 * of the writes, then the bytes a client sends. Checked by the
 * sanitizers, by the handlers (close() exactly once per call, nothing
 * after it) and at the end (no call, connection or buffered byte left).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "grpc_server.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t fuzz_preface[] =
    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    "\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/* Per call: the count of messages, and a guard against use after close. */
struct fuzz_call {
	unsigned magic;
	unsigned nmsg;
};

#define FUZZ_MAGIC 0x67727063u

static unsigned fuzz_open;

static int
fuzz_start(struct grpc_call *call, void *arg)
{
	struct fuzz_call *fc = calloc(1, sizeof(*fc));

	(void)arg;
	if (fc == NULL)
		return -1;
	fc->magic = FUZZ_MAGIC;
	grpc_call_set_data(call, fc);
	fuzz_open++;
	return 0;
}

static struct fuzz_call *
fuzz_call(struct grpc_call *call)
{
	struct fuzz_call *fc = grpc_call_data(call);

	if (fc == NULL || fc->magic != FUZZ_MAGIC)
		abort();
	return fc;
}

static void
fuzz_close(struct grpc_call *call, int status)
{
	struct fuzz_call *fc = grpc_call_data(call);

	if (status < 0 || status > GRPC_STATUS_MAX)
		abort();
	if (fc == NULL) /* start() failed before making state */
		return;
	fuzz_call(call);
	fc->magic = 0;
	free(fc);
	fuzz_open--;
}

/* Unary: the message back. */
static void
fuzz_unary_message(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	fuzz_call(call)->nmsg++;
	if (grpc_call_send(call, msg, len) == 0)
		grpc_call_finish(call, GRPC_STATUS_OK, NULL);
}

/* Server streaming: len % 8 copies, then a status picked by the message. */
static void
fuzz_stream_message(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	int status = len > 0 ? msg[0] % (GRPC_STATUS_MAX + 1) : 0;

	fuzz_call(call)->nmsg++;
	for (size_t i = 0; i < len % 8; i++)
		if (grpc_call_send(call, msg, len) != 0)
			return;
	grpc_call_finish(call, status, "fuzz\n%status");
}

/* Client streaming and bidi: count (and echo), answer at half-close. */
static void
fuzz_chat_message(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	fuzz_call(call)->nmsg++;
	if (len > 0 && msg[0] == 'F')
		grpc_call_finish(call, GRPC_STATUS_ABORTED, "stop");
	else
		grpc_call_send(call, msg, len);
}

static void
fuzz_collect_message(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	(void)msg;
	(void)len;
	fuzz_call(call)->nmsg++;
}

static void
fuzz_half_close(struct grpc_call *call)
{
	struct fuzz_call *fc = fuzz_call(call);

	grpc_call_send(call, &fc->nmsg, sizeof(fc->nmsg));
	grpc_call_finish(call, GRPC_STATUS_OK, NULL);
}

static const struct grpc_handler fuzz_unary = {
	.start = fuzz_start,
	.message = fuzz_unary_message,
	.close = fuzz_close,
};
static const struct grpc_handler fuzz_stream = {
	.start = fuzz_start,
	.message = fuzz_stream_message,
	.close = fuzz_close,
};
static const struct grpc_handler fuzz_collect = {
	.start = fuzz_start,
	.message = fuzz_collect_message,
	.half_close = fuzz_half_close,
	.close = fuzz_close,
};
static const struct grpc_handler fuzz_chat = {
	.start = fuzz_start,
	.message = fuzz_chat_message,
	.half_close = fuzz_half_close,
	.close = fuzz_close,
};

/* The client end reads and forgets whatever the server says. */
static void
fuzz_client_read_cb(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);

	(void)arg;
	evbuffer_drain(in, evbuffer_get_length(in));
}

static void
fuzz_client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	(void)arg;
}

static void
fuzz_spin(struct event_base *base)
{
	for (int i = 0; i < 4; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct {
		const char *path;
		enum grpc_method_kind kind;
		const struct grpc_handler *h;
	} methods[] = {
		{ "/f.S/Unary", GRPC_METHOD_UNARY, &fuzz_unary },
		{ "/f.S/Stream", GRPC_METHOD_SERVER_STREAMING, &fuzz_stream },
		{ "/f.S/Collect", GRPC_METHOD_CLIENT_STREAMING, &fuzz_collect },
		{ "/f.S/Chat", GRPC_METHOD_BIDI_STREAMING, &fuzz_chat },
	};
	static int once;
	struct grpc_server_config cfg;
	struct event_base *base;
	struct grpc_server *srv;
	struct bufferevent *pair[2];
	size_t step;
	uint8_t mode;

	if (!once) {
		/* Quiet: the server logs every refused request. */
		log_init("fuzz_grpc_server", LOG_TARGET_STDERR, 3);
		once = 1;
	}
	if (size < 2)
		return 0;
	mode = data[0];
	step = 1 + (size_t)data[1] * 16;
	data += 2;
	size -= 2;

	grpc_server_config_default(&cfg);
	cfg.max_recv_message = 64 * 1024;
	cfg.max_send_message = 64 * 1024;
	cfg.call_output_cap = 128 * 1024;
	cfg.conn_output_cap = 256 * 1024;
	cfg.conn_input_cap = 256 * 1024;
	cfg.max_concurrent_streams = 16;
	if ((base = event_base_new()) == NULL ||
	    (srv = grpc_server_new(base, &cfg)) == NULL)
		abort();
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		struct grpc_method m = { methods[i].path, methods[i].kind,
			methods[i].h, NULL };

		if (grpc_server_add_method(srv, &m) != 0)
			abort();
	}
	if (bufferevent_pair_new(base, 0, pair) != 0 ||
	    grpc_server_adopt(srv, pair[0], "fuzz") != 0)
		abort();
	bufferevent_setcb(pair[1], fuzz_client_read_cb, NULL,
	    fuzz_client_event_cb, NULL);
	bufferevent_enable(pair[1], EV_READ | EV_WRITE);

	if (mode & 1)
		bufferevent_write(pair[1], fuzz_preface,
		    sizeof(fuzz_preface) - 1);
	for (size_t off = 0; off < size; off += step) {
		size_t n = size - off < step ? size - off : step;

		bufferevent_write(pair[1], data + off, n);
		fuzz_spin(base);
	}
	fuzz_spin(base);

	grpc_server_free(srv);
	if (fuzz_open != 0)
		abort(); /* a call never closed */
	bufferevent_free(pair[1]);
	fuzz_spin(base);
	event_base_free(base);
	return 0;
}
