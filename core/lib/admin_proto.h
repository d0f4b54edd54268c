/*
 * The line protocol of the agent's admin socket, shared by the agent and
 * its client mode: requests are tokens separated by one space, each
 * percent-encoded so arguments may hold any byte; reply values escape
 * backslash and newline so a value always stays on its line.
 */
#ifndef TROIKA_ADMIN_PROTO_H
#define TROIKA_ADMIN_PROTO_H

#include <stddef.h>

struct evbuffer;

/*
 * Split a request line in place into at most max tokens, decoding each.
 * Returns the number of tokens, or -1 for bad encoding (a '%' not followed
 * by two hex digits, an encoded NUL), an empty token or too many tokens.
 */
int admin_split(char *line, char **argv, int max);

/* Append one percent-encoded token (bytes other than [A-Za-z0-9._:/@+=,-]). */
void admin_put_token(struct evbuffer *out, const char *token);

/* Append a reply value: "\\" for a backslash, "\n" for a newline, "\r" for CR. */
void admin_put_value(struct evbuffer *out, const char *value);

/* Undo admin_put_value in place. */
void admin_unescape_value(char *value);

#endif
