/*
 * A streaming JSON writer (see ctl_json.h). Written here rather than
 * taken from jansson: troikactl streams one event per line as it comes
 * (no tree to build per event), writes uint64 values exactly, and must
 * print what a coordinator sent even when it is not valid UTF-8, where
 * jansson refuses the whole string.
 */
#include "ctl_json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "ctl_fmt.h"

static void
ctl_json_fail(struct ctl_json *j, int err)
{
	if (j->err == 0)
		j->err = err;
}

static void
ctl_json_add(struct ctl_json *j, const char *s, size_t len)
{
	if (j->err == 0 && evbuffer_add(j->out, s, len) != 0)
		ctl_json_fail(j, -ENOMEM);
}

void
ctl_json_init(struct ctl_json *j, struct evbuffer *out)
{
	memset(j, 0, sizeof(*j));
	j->out = out;
}

/*
 * Before any value: the comma between items, and the checks that a value
 * may go here (after a key in an object, anywhere in an array, once at
 * the top).
 */
static int
ctl_json_value_start(struct ctl_json *j)
{
	if (j->err != 0)
		return -1;
	if (j->depth == 0) {
		if (j->done) {
			ctl_json_fail(j, -EINVAL);
			return -1;
		}
		return 0;
	}
	if (j->object[j->depth - 1]) {
		if (!j->want_value) {
			ctl_json_fail(j, -EINVAL);
			return -1;
		}
		j->want_value = 0;
		return 0;
	}
	if (j->items[j->depth - 1])
		ctl_json_add(j, ",", 1);
	j->items[j->depth - 1] = 1;
	return j->err != 0 ? -1 : 0;
}

/* After a value: a value at the top completes the document. */
static void
ctl_json_value_end(struct ctl_json *j)
{
	if (j->depth == 0)
		j->done = 1;
}

static void
ctl_json_begin(struct ctl_json *j, int object)
{
	if (ctl_json_value_start(j) != 0)
		return;
	if (j->depth == CTL_JSON_MAX_DEPTH) {
		ctl_json_fail(j, -EINVAL);
		return;
	}
	ctl_json_add(j, object ? "{" : "[", 1);
	j->object[j->depth] = (unsigned char)object;
	j->items[j->depth] = 0;
	j->depth++;
}

static void
ctl_json_end(struct ctl_json *j, int object)
{
	if (j->err != 0)
		return;
	if (j->depth == 0 || j->object[j->depth - 1] != object ||
	    j->want_value) {
		ctl_json_fail(j, -EINVAL);
		return;
	}
	j->depth--;
	ctl_json_add(j, object ? "}" : "]", 1);
	ctl_json_value_end(j);
}

void
ctl_json_begin_object(struct ctl_json *j)
{
	ctl_json_begin(j, 1);
}

void
ctl_json_end_object(struct ctl_json *j)
{
	ctl_json_end(j, 1);
}

void
ctl_json_begin_array(struct ctl_json *j)
{
	ctl_json_begin(j, 0);
}

void
ctl_json_end_array(struct ctl_json *j)
{
	ctl_json_end(j, 0);
}

/* A JSON string of len bytes of s, quoted. */
static void
ctl_json_quote(struct ctl_json *j, const char *s, size_t len)
{
	size_t i = 0;

	ctl_json_add(j, "\"", 1);
	while (i < len && j->err == 0) {
		uint32_t cp;
		size_t n = ctl_utf8_next(s + i, len - i, &cp);
		char esc[8];

		/*
		 * Plain text goes out as it is. DEL and the C1 controls are
		 * valid JSON, but escaped all the same: the output is often
		 * read on a terminal, and some obey U+009B as CSI.
		 */
		if (cp >= 0x20 && cp != '"' && cp != '\\' && cp != 0xfffd &&
		    cp != 0x7f && !(cp >= 0x80 && cp <= 0x9f)) {
			ctl_json_add(j, s + i, n);
			i += n;
			continue;
		}
		i += n;
		switch (cp) {
		case '"':
			ctl_json_add(j, "\\\"", 2);
			break;
		case '\\':
			ctl_json_add(j, "\\\\", 2);
			break;
		case '\n':
			ctl_json_add(j, "\\n", 2);
			break;
		case '\r':
			ctl_json_add(j, "\\r", 2);
			break;
		case '\t':
			ctl_json_add(j, "\\t", 2);
			break;
		case '\b':
			ctl_json_add(j, "\\b", 2);
			break;
		case '\f':
			ctl_json_add(j, "\\f", 2);
			break;
		default:
			/* Other controls, and U+FFFD (for bad bytes). */
			snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)cp);
			ctl_json_add(j, esc, 6);
			break;
		}
	}
	ctl_json_add(j, "\"", 1);
}

void
ctl_json_key(struct ctl_json *j, const char *key)
{
	if (j->err != 0)
		return;
	if (j->depth == 0 || !j->object[j->depth - 1] || j->want_value ||
	    key == NULL) {
		ctl_json_fail(j, -EINVAL);
		return;
	}
	if (j->items[j->depth - 1])
		ctl_json_add(j, ",", 1);
	j->items[j->depth - 1] = 1;
	ctl_json_quote(j, key, strlen(key));
	ctl_json_add(j, ":", 1);
	j->want_value = 1;
}

void
ctl_json_stringn(struct ctl_json *j, const char *s, size_t len)
{
	if (s == NULL) {
		ctl_json_null(j);
		return;
	}
	if (ctl_json_value_start(j) != 0)
		return;
	ctl_json_quote(j, s, len);
	ctl_json_value_end(j);
}

void
ctl_json_string(struct ctl_json *j, const char *s)
{
	ctl_json_stringn(j, s, s != NULL ? strlen(s) : 0);
}

static void
ctl_json_raw(struct ctl_json *j, const char *text)
{
	if (ctl_json_value_start(j) != 0)
		return;
	ctl_json_add(j, text, strlen(text));
	ctl_json_value_end(j);
}

void
ctl_json_uint(struct ctl_json *j, uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	ctl_json_raw(j, buf);
}

void
ctl_json_int(struct ctl_json *j, int64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRId64, v);
	ctl_json_raw(j, buf);
}

void
ctl_json_bool(struct ctl_json *j, int v)
{
	ctl_json_raw(j, v ? "true" : "false");
}

void
ctl_json_null(struct ctl_json *j)
{
	ctl_json_raw(j, "null");
}

void
ctl_json_time(struct ctl_json *j, const char *name, uint64_t unix_nano)
{
	char key[128], text[CTL_RFC3339_LEN];

	if ((size_t)snprintf(key, sizeof(key), "%s_unix_nano", name) >=
	    sizeof(key)) {
		ctl_json_fail(j, -EINVAL);
		return;
	}
	ctl_json_key(j, key);
	ctl_json_uint(j, unix_nano);
	ctl_json_key(j, name);
	if (unix_nano == 0)
		ctl_json_null(j);
	else
		ctl_json_string(j,
		    ctl_fmt_rfc3339(unix_nano, 9, text, sizeof(text)));
}

void
ctl_json_enum(struct ctl_json *j, const ProtobufCEnumDescriptor *desc,
    int value)
{
	const char *name = ctl_enum_name(desc, value);

	if (name != NULL)
		ctl_json_string(j, name);
	else
		ctl_json_int(j, value);
}

int
ctl_json_finish(struct ctl_json *j)
{
	if (j->err == 0 && (!j->done || j->depth != 0))
		j->err = -EINVAL;
	ctl_json_add(j, "\n", 1);
	return j->err;
}
