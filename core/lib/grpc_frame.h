/*
 * gRPC message framing ("Length-Prefixed-Message" of the gRPC over HTTP/2
 * spec): a 1-byte compressed flag, a 4-byte big-endian length, then the
 * message. The decoder is incremental (bytes arrive in any split) and
 * never holds more than one message of at most its configured maximum.
 * Shared by the server and the client.
 */
#ifndef TROIKA_GRPC_FRAME_H
#define TROIKA_GRPC_FRAME_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

#define GRPC_FRAME_HEADER_LEN 5
/* Default largest message accepted (as gRPC's own default). */
#define GRPC_FRAME_MAX_DEFAULT (4u * 1024 * 1024)

/* Write the 5-byte prefix of a message of len bytes. */
void grpc_frame_header(uint8_t *hdr, int compressed, uint32_t len);

/*
 * Append msg as one uncompressed framed message. Returns 0, -EMSGSIZE
 * (longer than 4 GiB - 1) or -ENOMEM; nothing is appended on error.
 */
int grpc_frame_append(struct evbuffer *out, const void *msg, size_t len);

struct grpc_frame_decoder {
	size_t max_len;       /* largest message accepted */
	int allow_compressed; /* 0: a set compressed flag is an error */
	int error;            /* sticky: the first error returned */
	uint8_t hdr[GRPC_FRAME_HEADER_LEN];
	size_t hdr_have;      /* header bytes seen of the current message */
	int compressed;       /* flag of the current message */
	uint32_t msg_len;     /* its length, once the header is complete */
	uint8_t *buf;         /* held body bytes of the current message */
	size_t buf_have;
	size_t buf_cap;
};

/* A decoder for messages of at most max_len bytes; nothing allocated yet. */
void grpc_frame_decoder_init(struct grpc_frame_decoder *d, size_t max_len);
/*
 * Free what the decoder holds (pending is 0 afterwards); it can be
 * initialised again. NULL is fine.
 */
void grpc_frame_decoder_free(struct grpc_frame_decoder *d);

/*
 * Decode from data[0..len). Stores in *ret_used how many bytes it took.
 * Returns:
 *   1 a message is complete: *ret_msg, *ret_len (and *ret_compressed if
 *     not NULL) describe it. It points into data or into the decoder, and
 *     stays valid until the next call. Call again with the rest of data.
 *   0 all of data was taken and no message is complete yet.
 *  <0 the input is bad, and stays bad for every later call:
 *     -EMSGSIZE the prefix announces more than max_len bytes,
 *     -ENOTSUP  the compressed flag is set and allow_compressed is 0,
 *     -EPROTO   the flag byte is neither 0 nor 1,
 *     -ENOMEM.
 * Memory held never exceeds the announced length, and grows only as the
 * message's bytes arrive: a lying length costs nothing up front.
 */
int grpc_frame_decode(struct grpc_frame_decoder *d, const uint8_t *data,
    size_t len, size_t *ret_used, const uint8_t **ret_msg, size_t *ret_len,
    int *ret_compressed);

/* Bytes of an incomplete message held (header included); 0 between. */
size_t grpc_frame_decoder_pending(const struct grpc_frame_decoder *d);

/*
 * The gRPC status a decoder error is reported with: RESOURCE_EXHAUSTED for
 * -EMSGSIZE and -ENOMEM, INTERNAL for a compressed message nobody
 * negotiated (-ENOTSUP) and for a bad flag (-EPROTO).
 */
int grpc_frame_error_status(int err);

#endif
