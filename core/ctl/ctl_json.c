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
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "ctl_fmt.h"
#include "json_quote.h"

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

/* A JSON string of len bytes of s, quoted (json_quote.h says how). */
static void
ctl_json_quote(struct ctl_json *j, const char *s, size_t len)
{
	if (j->err == 0 && json_quote(j->out, s, len) != 0)
		ctl_json_fail(j, -ENOMEM);
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
		ctl_json_string(
		    j, ctl_fmt_rfc3339(unix_nano, 9, text, sizeof(text)));
}

void
ctl_json_enum(
    struct ctl_json *j, const ProtobufCEnumDescriptor *desc, int value)
{
	const char *name = ctl_enum_name(desc, value);

	if (name != NULL)
		ctl_json_string(j, name);
	else
		ctl_json_int(j, value);
}

static void
ctl_json_base64(struct ctl_json *j, const uint8_t *p, size_t len)
{
	static const char abc[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

	if (ctl_json_value_start(j) != 0)
		return;
	ctl_json_add(j, "\"", 1);
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		char q[4];

		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		q[0] = abc[v >> 18];
		q[1] = abc[(v >> 12) & 63];
		q[2] = i + 1 < len ? abc[(v >> 6) & 63] : '=';
		q[3] = i + 2 < len ? abc[v & 63] : '=';
		ctl_json_add(j, q, 4);
	}
	ctl_json_add(j, "\"", 1);
	ctl_json_value_end(j);
}

static void
ctl_json_double(struct ctl_json *j, double v)
{
	char buf[32];

	if (isnan(v))
		ctl_json_string(j, "NaN");
	else if (isinf(v))
		ctl_json_string(j, v > 0 ? "Infinity" : "-Infinity");
	else {
		/* Enough digits to read the same double back. */
		snprintf(buf, sizeof(buf), "%.17g", v);
		ctl_json_raw(j, buf);
	}
}

/* Bytes one value of a field takes in a protobuf-c struct (or array). */
static size_t
ctl_json_type_size(ProtobufCType type)
{
	switch (type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return sizeof(uint32_t);
	case PROTOBUF_C_TYPE_ENUM:
		return sizeof(int);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return sizeof(uint64_t);
	case PROTOBUF_C_TYPE_FLOAT:
		return sizeof(float);
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	}
	return 0;
}

/* One value of field f, stored at p. */
static void
ctl_json_value(
    struct ctl_json *j, const ProtobufCFieldDescriptor *f, const void *p)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		ctl_json_int(j, *(const int32_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		ctl_json_uint(j, *(const uint32_t *)p);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		ctl_json_int(j, *(const int64_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		ctl_json_uint(j, *(const uint64_t *)p);
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		ctl_json_double(j, *(const float *)p);
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		ctl_json_double(j, *(const double *)p);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		ctl_json_bool(j, *(const protobuf_c_boolean *)p);
		break;
	case PROTOBUF_C_TYPE_ENUM:
		ctl_json_enum(j, f->descriptor, *(const int *)p);
		break;
	case PROTOBUF_C_TYPE_STRING:
		ctl_json_string(j, *(char *const *)p);
		break;
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *b = p;

		ctl_json_base64(j, b->data, b->len);
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;

		if (m == NULL)
			ctl_json_null(j);
		else
			ctl_json_message(j, m);
		break;
	}
	}
}

/* A time field: fixed64 or uint64 whose name ends in _unix_nano. */
static int
ctl_json_is_time(const ProtobufCFieldDescriptor *f, char *base, size_t len)
{
	static const char suffix[] = "_unix_nano";
	size_t n = strlen(f->name), s = sizeof(suffix) - 1;

	if ((f->type != PROTOBUF_C_TYPE_FIXED64 &&
	        f->type != PROTOBUF_C_TYPE_UINT64) ||
	    f->label == PROTOBUF_C_LABEL_REPEATED || n <= s ||
	    strcmp(f->name + n - s, suffix) != 0 || n - s >= len)
		return 0;
	memcpy(base, f->name, n - s);
	base[n - s] = '\0';
	return 1;
}

void
ctl_json_message(struct ctl_json *j, const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *msg = (const char *)m;

	ctl_json_begin_object(j);
	for (unsigned i = 0; i < d->n_fields && j->err == 0; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const void *p = msg + f->offset;
		char base[128];

		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			if (*(const uint32_t *)(const void *)(msg +
			        f->quantifier_offset) != f->id)
				continue;
		} else if (f->label == PROTOBUF_C_LABEL_OPTIONAL &&
		    f->type != PROTOBUF_C_TYPE_MESSAGE &&
		    f->type != PROTOBUF_C_TYPE_STRING &&
		    !*(const protobuf_c_boolean *)(const void *)(msg +
		        f->quantifier_offset))
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(const void *)(msg +
			    f->quantifier_offset);
			const char *a = *(const char *const *)p;
			size_t size = ctl_json_type_size(f->type);

			ctl_json_key(j, f->name);
			ctl_json_begin_array(j);
			for (size_t k = 0; k < n; k++)
				ctl_json_value(j, f, a + k * size);
			ctl_json_end_array(j);
		} else if (ctl_json_is_time(f, base, sizeof(base)))
			ctl_json_time(j, base, *(const uint64_t *)p);
		else {
			ctl_json_key(j, f->name);
			ctl_json_value(j, f, p);
		}
	}
	ctl_json_end_object(j);
}

int
ctl_json_finish(struct ctl_json *j)
{
	if (j->err == 0 && (!j->done || j->depth != 0))
		j->err = -EINVAL;
	ctl_json_add(j, "\n", 1);
	return j->err;
}
