#include "grpc_frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "grpc_status.h"

/* First allocation for a message body that arrives in pieces. */
#define GRPC_FRAME_MIN_ALLOC 4096
/* A buffer larger than this is given back once its message is out. */
#define GRPC_FRAME_KEEP_ALLOC (64 * 1024)

void
grpc_frame_header(uint8_t *hdr, int compressed, uint32_t len)
{
	hdr[0] = compressed ? 1 : 0;
	hdr[1] = (uint8_t)(len >> 24);
	hdr[2] = (uint8_t)(len >> 16);
	hdr[3] = (uint8_t)(len >> 8);
	hdr[4] = (uint8_t)len;
}

int
grpc_frame_append(struct evbuffer *out, const void *msg, size_t len)
{
	struct evbuffer_iovec vec;

	if (len > UINT32_MAX)
		return -EMSGSIZE;
	/* One extent, committed whole or not at all. */
	if (evbuffer_reserve_space(out, (ev_ssize_t)(GRPC_FRAME_HEADER_LEN + len),
	    &vec, 1) != 1)
		return -ENOMEM;
	grpc_frame_header(vec.iov_base, 0, (uint32_t)len);
	if (len > 0)
		memcpy((uint8_t *)vec.iov_base + GRPC_FRAME_HEADER_LEN, msg, len);
	vec.iov_len = GRPC_FRAME_HEADER_LEN + len;
	if (evbuffer_commit_space(out, &vec, 1) != 0)
		return -ENOMEM;
	return 0;
}

void
grpc_frame_decoder_init(struct grpc_frame_decoder *d, size_t max_len)
{
	memset(d, 0, sizeof(*d));
	d->max_len = max_len;
}

void
grpc_frame_decoder_free(struct grpc_frame_decoder *d)
{
	if (d == NULL)
		return;
	free(d->buf);
	d->buf = NULL;
	d->buf_have = d->buf_cap = 0;
	d->hdr_have = 0;
}

size_t
grpc_frame_decoder_pending(const struct grpc_frame_decoder *d)
{
	return d->hdr_have + d->buf_have;
}

/* Make room for need body bytes, doubling up to the message's length. */
static int
grpc_frame_reserve(struct grpc_frame_decoder *d, size_t need)
{
	size_t cap;
	uint8_t *p;

	if (need <= d->buf_cap)
		return 0;
	cap = d->buf_cap < GRPC_FRAME_MIN_ALLOC ? GRPC_FRAME_MIN_ALLOC :
						    d->buf_cap;
	while (cap < need)
		cap *= 2;
	if (cap > d->msg_len)
		cap = d->msg_len;
	if ((p = realloc(d->buf, cap)) == NULL)
		return -ENOMEM;
	d->buf = p;
	d->buf_cap = cap;
	return 0;
}

/* The current message is complete: hand it out, reset for the next. */
static int
grpc_frame_deliver(struct grpc_frame_decoder *d, const uint8_t *msg,
    const uint8_t **ret_msg, size_t *ret_len, int *ret_compressed)
{
	*ret_msg = msg;
	*ret_len = d->msg_len;
	if (ret_compressed != NULL)
		*ret_compressed = d->compressed;
	d->hdr_have = 0;
	d->buf_have = 0;
	return 1;
}

int
grpc_frame_decode(struct grpc_frame_decoder *d, const uint8_t *data,
    size_t len, size_t *ret_used, const uint8_t **ret_msg, size_t *ret_len,
    int *ret_compressed)
{
	size_t used = 0, take;

	*ret_used = 0;
	if (d->error != 0)
		return d->error;

	if (d->hdr_have < GRPC_FRAME_HEADER_LEN) {
		take = GRPC_FRAME_HEADER_LEN - d->hdr_have;
		if (take > len)
			take = len;
		memcpy(d->hdr + d->hdr_have, data, take);
		d->hdr_have += take;
		used += take;
		/* The flag is known from the first byte on: fail early. */
		if (d->hdr_have > 0 && d->hdr[0] > 1)
			return d->error = -EPROTO;
		if (d->hdr_have > 0 && d->hdr[0] == 1 && !d->allow_compressed)
			return d->error = -ENOTSUP;
		if (d->hdr_have < GRPC_FRAME_HEADER_LEN) {
			*ret_used = used;
			return 0;
		}
		d->compressed = d->hdr[0];
		d->msg_len = (uint32_t)d->hdr[1] << 24 |
		    (uint32_t)d->hdr[2] << 16 | (uint32_t)d->hdr[3] << 8 |
		    (uint32_t)d->hdr[4];
		if (d->msg_len > d->max_len)
			return d->error = -EMSGSIZE;
		/*
		 * Keep a small buffer for the next split message, but do
		 * not hold on to the memory of a big one that is done.
		 */
		if (d->buf_cap > GRPC_FRAME_KEEP_ALLOC) {
			free(d->buf);
			d->buf = NULL;
			d->buf_cap = 0;
		}
	}

	/* The whole body is in data and nothing is held: no copy. */
	if (d->buf_have == 0 && len - used >= d->msg_len) {
		*ret_used = used + d->msg_len;
		return grpc_frame_deliver(d, data + used, ret_msg, ret_len,
		    ret_compressed);
	}

	take = d->msg_len - d->buf_have;
	if (take > len - used)
		take = len - used;
	if (take > 0) {
		int r;

		if ((r = grpc_frame_reserve(d, d->buf_have + take)) != 0)
			return d->error = r;
		memcpy(d->buf + d->buf_have, data + used, take);
		d->buf_have += take;
		used += take;
	}
	*ret_used = used;
	if (d->buf_have < d->msg_len)
		return 0;
	return grpc_frame_deliver(d, d->buf, ret_msg, ret_len, ret_compressed);
}

int
grpc_frame_error_status(int err)
{
	switch (err) {
	case -EMSGSIZE:
	case -ENOMEM:
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	default:
		return GRPC_STATUS_INTERNAL;
	}
}
