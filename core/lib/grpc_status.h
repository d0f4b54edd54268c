/*
 * gRPC status codes with their names, the mapping of HTTP/2 and HTTP
 * errors to them, the grpc-timeout header and the percent-encoding of
 * grpc-message, as the gRPC over HTTP/2 protocol specifies them. Shared by
 * the server (grpc_server.c, grpc_conn.c) and the client.
 */
#ifndef TROIKA_GRPC_STATUS_H
#define TROIKA_GRPC_STATUS_H

#include <stddef.h>
#include <stdint.h>

/* The codes of the gRPC spec (statuscodes.md); numbers are wire values. */
enum grpc_status {
	GRPC_STATUS_OK = 0,
	GRPC_STATUS_CANCELLED = 1,
	GRPC_STATUS_UNKNOWN = 2,
	GRPC_STATUS_INVALID_ARGUMENT = 3,
	GRPC_STATUS_DEADLINE_EXCEEDED = 4,
	GRPC_STATUS_NOT_FOUND = 5,
	GRPC_STATUS_ALREADY_EXISTS = 6,
	GRPC_STATUS_PERMISSION_DENIED = 7,
	GRPC_STATUS_RESOURCE_EXHAUSTED = 8,
	GRPC_STATUS_FAILED_PRECONDITION = 9,
	GRPC_STATUS_ABORTED = 10,
	GRPC_STATUS_OUT_OF_RANGE = 11,
	GRPC_STATUS_UNIMPLEMENTED = 12,
	GRPC_STATUS_INTERNAL = 13,
	GRPC_STATUS_UNAVAILABLE = 14,
	GRPC_STATUS_DATA_LOSS = 15,
	GRPC_STATUS_UNAUTHENTICATED = 16,
};

/* The highest code; tables indexed by code have GRPC_STATUS_MAX + 1 rows. */
#define GRPC_STATUS_MAX GRPC_STATUS_UNAUTHENTICATED

/* "OK", "CANCELLED", ... as in the spec; "INVALID" for anything else. */
const char *grpc_status_str(int code);
/* Inverse of grpc_status_str(); -1 if unknown. */
int grpc_status_from_str(const char *s);

/*
 * The value of a grpc-status header (decimal, no sign, no spaces).
 * Returns the code, GRPC_STATUS_UNKNOWN for a well-formed number that is
 * no known code (the spec says so), or -EINVAL when it is no number.
 */
int grpc_status_parse(const char *s, size_t len);

/* The status for a stream reset with this HTTP/2 error code (RST_STREAM). */
int grpc_status_from_http2_error(uint32_t error_code);
/* The status for a reply whose HTTP :status is not 200. */
int grpc_status_from_http_status(int http_status);

/*
 * grpc-timeout: 1 to 8 ASCII digits and a unit, H (hours), M (minutes),
 * S (seconds), m (milliseconds), u (microseconds), n (nanoseconds).
 * Stores nanoseconds, saturated at UINT64_MAX (99999999H does not fit),
 * and returns 0, or -EINVAL (with *ret_ns untouched) for anything else.
 */
int grpc_timeout_parse(const char *s, size_t len, uint64_t *ret_ns);

/* A grpc-timeout text needs at most this many bytes with its NUL. */
#define GRPC_TIMEOUT_BUFLEN 10

/*
 * Format a timeout for the header: the finest unit whose value has at
 * most 8 digits, rounded up so a deadline is never shortened. buf has
 * GRPC_TIMEOUT_BUFLEN bytes. Returns the length written.
 */
size_t grpc_timeout_format(uint64_t ns, char *buf);

/*
 * Percent-encode a grpc-message value: bytes outside 0x20-0x7e and '%'
 * become %XX. At most max_in bytes of msg are taken, cut back to the
 * start of a UTF-8 sequence so the peer decodes valid text. Returns a
 * malloc'ed NUL-terminated string, or NULL when out of memory.
 */
char *grpc_message_encode(const char *msg, size_t max_in);

/*
 * Percent-decode a grpc-message value in place (the result is never
 * longer). A '%' not followed by two hex digits stays as it is, as the
 * spec asks of receivers. s has room for len + 1 bytes; it is
 * NUL-terminated at the new length, which is returned.
 */
size_t grpc_message_decode(char *s, size_t len);

#endif
