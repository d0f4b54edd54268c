/*
 * A small streaming JSON writer onto an evbuffer: compact output, strings
 * escaped (quote, backslash, control characters) and invalid UTF-8
 * replaced by U+FFFD, so the output is always valid JSON whatever a
 * coordinator sent. Integers are written exactly (uint64 as digits).
 *
 * As with ctl_table, calls never fail visibly: the first error (out of
 * memory; misuse such as a value without a key inside an object, a key
 * outside one, ending what was not begun, nesting beyond
 * CTL_JSON_MAX_DEPTH) is kept and returned by ctl_json_finish().
 */
#ifndef TROIKA_CTL_JSON_H
#define TROIKA_CTL_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

struct evbuffer;

#define CTL_JSON_MAX_DEPTH 32

struct ctl_json {
	struct evbuffer *out;
	int depth;
	int err;
	int want_value; /* a key was written: a value must follow */
	/* Per level: 1 in an object (0 array); 1 once it has an item. */
	unsigned char object[CTL_JSON_MAX_DEPTH];
	unsigned char items[CTL_JSON_MAX_DEPTH];
	int done; /* a complete top-level value was written */
};

void ctl_json_init(struct ctl_json *j, struct evbuffer *out);

void ctl_json_begin_object(struct ctl_json *j);
void ctl_json_end_object(struct ctl_json *j);
void ctl_json_begin_array(struct ctl_json *j);
void ctl_json_end_array(struct ctl_json *j);
/* The name of the next member, inside an object. */
void ctl_json_key(struct ctl_json *j, const char *key);

/* NULL is written as null. */
void ctl_json_string(struct ctl_json *j, const char *s);
void ctl_json_stringn(struct ctl_json *j, const char *s, size_t len);
void ctl_json_uint(struct ctl_json *j, uint64_t v);
void ctl_json_int(struct ctl_json *j, int64_t v);
void ctl_json_bool(struct ctl_json *j, int v);
void ctl_json_null(struct ctl_json *j);

/*
 * A time, the way troikactl shows every *_unix_nano field: two members,
 * "<name>_unix_nano": the raw nanoseconds, and "<name>": RFC 3339 UTC
 * with nine digits of fraction, or null when the time is 0 (unset).
 */
void ctl_json_time(struct ctl_json *j, const char *name, uint64_t unix_nano);

/*
 * An enum field as the proto3 JSON mapping has it: the value's name, or
 * the number when the proto does not know it.
 */
void ctl_json_enum(
    struct ctl_json *j, const ProtobufCEnumDescriptor *desc, int value);

/*
 * A whole protobuf-c message as a JSON object, by its descriptor: every
 * field under its proto name (snake_case), in the order of the .proto,
 * defaults included (proto3 has no presence; a proto3 `optional` field
 * that is absent and a oneof member that is not set are left out). Enums
 * as their names (ctl_json_enum), 64-bit integers exact, bytes in base64,
 * NaN and infinities as the strings of the proto3 JSON mapping. A
 * fixed64/uint64 field named *_unix_nano is a time: written by
 * ctl_json_time(), so "time_unix_nano" comes with "time". Being generic,
 * it shows fields a newer proto adds without a change here.
 */
void ctl_json_message(struct ctl_json *j, const ProtobufCMessage *m);

/*
 * 0 once exactly one complete value was written (and a newline after
 * it), else the first error, or -EINVAL for an unfinished document.
 */
int ctl_json_finish(struct ctl_json *j);

#endif
