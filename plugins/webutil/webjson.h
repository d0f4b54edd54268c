/*
 * webjson: the few jansson helpers the JSON status-page plugins share
 * (elasticsearch, solr, phpfpm). Compiled into each; not a plugin.
 */
#ifndef TROIKA_WEBJSON_H
#define TROIKA_WEBJSON_H

#include <stddef.h>

#include <jansson.h>

/*
 * Parse a reply that must be one JSON object. Returns a new reference, or
 * NULL with a one-line reason (and an excerpt of the reply) in msg.
 */
json_t *webjson_object(const char *body, size_t len, char *msg,
    size_t msglen);

/*
 * The number member key of obj (integer or real) into *ret. Returns 0, or
 * -ENOENT when absent, -EINVAL when it is not a number.
 */
int webjson_number(const json_t *obj, const char *key, double *ret);

/* The string member key of obj, or NULL when absent or not a string. */
const char *webjson_string(const json_t *obj, const char *key);

#endif
