#include "grpc_status.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

static const char *const grpc_status_names[GRPC_STATUS_MAX + 1] = {
	[GRPC_STATUS_OK] = "OK",
	[GRPC_STATUS_CANCELLED] = "CANCELLED",
	[GRPC_STATUS_UNKNOWN] = "UNKNOWN",
	[GRPC_STATUS_INVALID_ARGUMENT] = "INVALID_ARGUMENT",
	[GRPC_STATUS_DEADLINE_EXCEEDED] = "DEADLINE_EXCEEDED",
	[GRPC_STATUS_NOT_FOUND] = "NOT_FOUND",
	[GRPC_STATUS_ALREADY_EXISTS] = "ALREADY_EXISTS",
	[GRPC_STATUS_PERMISSION_DENIED] = "PERMISSION_DENIED",
	[GRPC_STATUS_RESOURCE_EXHAUSTED] = "RESOURCE_EXHAUSTED",
	[GRPC_STATUS_FAILED_PRECONDITION] = "FAILED_PRECONDITION",
	[GRPC_STATUS_ABORTED] = "ABORTED",
	[GRPC_STATUS_OUT_OF_RANGE] = "OUT_OF_RANGE",
	[GRPC_STATUS_UNIMPLEMENTED] = "UNIMPLEMENTED",
	[GRPC_STATUS_INTERNAL] = "INTERNAL",
	[GRPC_STATUS_UNAVAILABLE] = "UNAVAILABLE",
	[GRPC_STATUS_DATA_LOSS] = "DATA_LOSS",
	[GRPC_STATUS_UNAUTHENTICATED] = "UNAUTHENTICATED",
};

const char *
grpc_status_str(int code)
{
	if (code < 0 || code > GRPC_STATUS_MAX)
		return "INVALID";
	return grpc_status_names[code];
}

int
grpc_status_from_str(const char *s)
{
	for (int i = 0; i <= GRPC_STATUS_MAX; i++)
		if (strcmp(s, grpc_status_names[i]) == 0)
			return i;
	return -1;
}

int
grpc_status_parse(const char *s, size_t len)
{
	unsigned v = 0;

	/* Ten digits could overflow; no code has more than two anyway. */
	if (len == 0 || len > 9)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > GRPC_STATUS_MAX)
		return GRPC_STATUS_UNKNOWN;
	return (int)v;
}

/* The table of the spec's PROTOCOL-HTTP2.md, "Errors". */
int
grpc_status_from_http2_error(uint32_t error_code)
{
	switch (error_code) {
	case NGHTTP2_NO_ERROR:
	case NGHTTP2_PROTOCOL_ERROR:
	case NGHTTP2_INTERNAL_ERROR:
	case NGHTTP2_FLOW_CONTROL_ERROR:
	case NGHTTP2_SETTINGS_TIMEOUT:
	case NGHTTP2_FRAME_SIZE_ERROR:
	case NGHTTP2_COMPRESSION_ERROR:
	case NGHTTP2_CONNECT_ERROR:
		return GRPC_STATUS_INTERNAL;
	case NGHTTP2_REFUSED_STREAM:
		return GRPC_STATUS_UNAVAILABLE;
	case NGHTTP2_CANCEL:
		return GRPC_STATUS_CANCELLED;
	case NGHTTP2_ENHANCE_YOUR_CALM:
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	case NGHTTP2_INADEQUATE_SECURITY:
		return GRPC_STATUS_PERMISSION_DENIED;
	default:
		return GRPC_STATUS_UNKNOWN;
	}
}

/* http-grpc-status-mapping.md */
int
grpc_status_from_http_status(int http_status)
{
	switch (http_status) {
	case 200:
		return GRPC_STATUS_OK;
	case 400:
		return GRPC_STATUS_INTERNAL;
	case 401:
		return GRPC_STATUS_UNAUTHENTICATED;
	case 403:
		return GRPC_STATUS_PERMISSION_DENIED;
	case 404:
		return GRPC_STATUS_UNIMPLEMENTED;
	case 429:
	case 502:
	case 503:
	case 504:
		return GRPC_STATUS_UNAVAILABLE;
	default:
		return GRPC_STATUS_UNKNOWN;
	}
}

int
grpc_timeout_parse(const char *s, size_t len, uint64_t *ret_ns)
{
	uint64_t v = 0, mult;

	if (len < 2 || len > 9)
		return -EINVAL;
	for (size_t i = 0; i < len - 1; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	switch (s[len - 1]) {
	case 'H':
		mult = 3600ULL * 1000000000ULL;
		break;
	case 'M':
		mult = 60ULL * 1000000000ULL;
		break;
	case 'S':
		mult = 1000000000ULL;
		break;
	case 'm':
		mult = 1000000ULL;
		break;
	case 'u':
		mult = 1000ULL;
		break;
	case 'n':
		mult = 1;
		break;
	default:
		return -EINVAL;
	}
	if (v != 0 && mult > UINT64_MAX / v)
		*ret_ns = UINT64_MAX;
	else
		*ret_ns = v * mult;
	return 0;
}

size_t
grpc_timeout_format(uint64_t ns, char *buf)
{
	static const struct {
		char unit;
		uint64_t ns;
	} units[] = {
		{ 'n', 1 },
		{ 'u', 1000ULL },
		{ 'm', 1000000ULL },
		{ 'S', 1000000000ULL },
		{ 'M', 60ULL * 1000000000ULL },
		{ 'H', 3600ULL * 1000000000ULL },
	};
	const uint64_t max = 99999999;
	uint64_t v = max;
	char unit = 'H';
	int n;

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		/* Round up: a deadline sent must never be earlier. */
		uint64_t q = ns / units[i].ns + (ns % units[i].ns != 0);

		if (q <= max) {
			v = q;
			unit = units[i].unit;
			break;
		}
	}
	n = snprintf(buf, GRPC_TIMEOUT_BUFLEN, "%llu%c", (unsigned long long)v,
	    unit);
	return (size_t)n;
}

char *
grpc_message_encode(const char *msg, size_t max_in)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len = strlen(msg), n = 0;
	char *out;

	if (len > max_in) {
		len = max_in;
		/* Back to the first byte of a UTF-8 sequence (not 10xxxxxx). */
		while (len > 0 && ((unsigned char)msg[len] & 0xc0) == 0x80)
			len--;
	}
	if ((out = malloc(len * 3 + 1)) == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)msg[i];

		if (c < 0x20 || c > 0x7e || c == '%') {
			out[n++] = '%';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 0xf];
		} else
			out[n++] = (char)c;
	}
	out[n] = '\0';
	return out;
}

static int
grpc_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

size_t
grpc_message_decode(char *s, size_t len)
{
	size_t r = 0, w = 0;

	while (r < len) {
		int hi, lo;

		if (s[r] == '%' && len - r >= 3 &&
		    (hi = grpc_hexval(s[r + 1])) >= 0 &&
		    (lo = grpc_hexval(s[r + 2])) >= 0) {
			s[w++] = (char)(hi << 4 | lo);
			r += 3;
		} else
			s[w++] = s[r++];
	}
	s[w] = '\0';
	return w;
}
