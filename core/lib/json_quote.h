/*
 * One JSON string, quoted and escaped: the single escaping routine behind
 * troikactl's --json output and the alert hooks' bodies. What goes in is
 * often foreign text (check messages from plugins and the programs they
 * run), so what comes out is always valid JSON and valid UTF-8:
 *
 *   - quote and backslash escaped; \n \r \t \b \f in their short forms;
 *   - every other C0 control, DEL and the C1 controls as \u00XX (valid
 *     JSON unescaped, but the output is often read on a terminal, and
 *     some obey U+009B as CSI);
 *   - each byte that is not part of valid UTF-8 (RFC 3629: no overlong
 *     form, surrogate or code point beyond U+10FFFF) as \ufffd.
 */
#ifndef TROIKA_JSON_QUOTE_H
#define TROIKA_JSON_QUOTE_H

#include <stddef.h>

struct evbuffer;

/* Append len bytes of s as a JSON string. 0, or -ENOMEM. */
int json_quote(struct evbuffer *out, const char *s, size_t len);

#endif
