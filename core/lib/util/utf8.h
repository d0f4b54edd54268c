/*
 * Strict UTF-8 decoding (RFC 3629), for every place that turns bytes a
 * peer sent into text: troikactl's tables and event lines, and the JSON
 * that troikactl and the alert hooks write.
 */
#ifndef TROIKA_UTF8_H
#define TROIKA_UTF8_H

#include <stddef.h>
#include <stdint.h>

/*
 * Decode one sequence of s (len > 0 bytes left). Returns the bytes it
 * takes; an invalid, overlong, surrogate or truncated sequence takes one
 * byte and gives U+FFFD in *ret_cp.
 */
size_t utf8_next(const char *s, size_t len, uint32_t *ret_cp);

#endif
