/*
 * Parsers and formatters for the units used in configuration: durations
 * ("500ms", "5s", "1m30s", "6h", "2d") and sizes ("512", "64KiB", "64MiB",
 * "1GB"). Plain numbers and a trailing unit only; no signs, no spaces.
 */
#ifndef TROIKA_PARSE_H
#define TROIKA_PARSE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Duration to milliseconds. Units: ms, s, m, h, d; components may be
 * chained from the largest unit down ("1h30m", "1s500ms"). A bare number is
 * refused: a unit is required, so "5" never silently means 5 ms.
 * Returns 0, -EINVAL (syntax) or -ERANGE (overflows int64 ms).
 */
int parse_duration_ms(const char *s, int64_t *ret_ms);

/*
 * Size to bytes. Units: none (bytes), B, KB/MB/GB/TB (powers of 1000),
 * KiB/MiB/GiB/TiB (powers of 1024). Returns 0, -EINVAL or -ERANGE.
 */
int parse_size(const char *s, int64_t *ret_bytes);

/* Decimal int64 with optional leading '-'. Returns 0, -EINVAL or -ERANGE. */
int parse_int64(const char *s, int64_t *ret);

/* "true"/"false" (also yes/no, on/off) to 1/0. Returns 0 or -EINVAL. */
int parse_bool(const char *s, int *ret);

/*
 * "host:port" or "[v6]:port" (listen and connect addresses). Copies the
 * host (without brackets) into host; the port must be min_port..65535.
 * Returns 0, -ERANGE (port out of range) or -EINVAL (anything else: no
 * port, an IPv6 address without brackets, spaces or '/' in the host, a
 * host that does not fit).
 */
int parse_hostport(const char *s, char *host, size_t hostlen, int min_port,
    int *ret_port);

/*
 * Canonical text of a duration, the form --print shows: the largest units
 * that divide it exactly, e.g. 5000 -> "5s", 90000 -> "1m30s", 1500 ->
 * "1s500ms", 0 -> "0s". Always NUL-terminated; returns buf.
 */
char *format_duration_ms(int64_t ms, char *buf, size_t len);

/* Canonical text of a size: "64MiB" when exact in a binary unit, else bytes. */
char *format_size(int64_t bytes, char *buf, size_t len);

#endif
