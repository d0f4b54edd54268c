/*
 * webjson: jansson helpers for the status-page plugins. See webjson.h.
 */
#include <errno.h>
#include <stdio.h>

#include "webfetch.h"
#include "webjson.h"

json_t *
webjson_object(const char *body, size_t len, char *msg, size_t msglen)
{
	json_error_t err;
	char excerpt[80];
	json_t *j;

	/*
	 * jansson bounds the nesting depth itself, so a hostile reply cannot
	 * exhaust the stack; the length is bounded by max_body already.
	 */
	j = json_loadb(body, len, 0, &err);
	if (j == NULL) {
		webfetch_excerpt(body, len, excerpt, sizeof(excerpt));
		snprintf(msg, msglen, "reply is not JSON (%s at byte %d): "
		    "\"%s\"", err.text, err.position, excerpt);
		return NULL;
	}
	if (!json_is_object(j)) {
		webfetch_excerpt(body, len, excerpt, sizeof(excerpt));
		snprintf(msg, msglen, "reply is JSON but not an object: \"%s\"",
		    excerpt);
		json_decref(j);
		return NULL;
	}
	return j;
}

int
webjson_number(const json_t *obj, const char *key, double *ret)
{
	const json_t *v = json_object_get(obj, key);

	if (v == NULL)
		return -ENOENT;
	if (!json_is_number(v))
		return -EINVAL;
	*ret = json_number_value(v);
	return 0;
}

const char *
webjson_string(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}
