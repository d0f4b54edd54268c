/*
 * Text for troikactl's output: what a coordinator sends is foreign text
 * (check messages come from plugins and the programs they run), so it
 * reaches a terminal only through ctl_fmt_clean(): no control character,
 * no escape sequence, no invalid UTF-8. Times, ages, enum names and the
 * colours live here too, shared by the tables and the event lines.
 */
#ifndef TROIKA_CTL_FMT_H
#define TROIKA_CTL_FMT_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

struct evbuffer;

/* Append cp as UTF-8. 0 or -ENOMEM. */
int ctl_utf8_put(struct evbuffer *out, uint32_t cp);

/*
 * Append s for a terminal: C0 controls, DEL and C1 controls become \n,
 * \r, \t or \xNN (so an ESC is never sent), invalid UTF-8 becomes U+FFFD,
 * a backslash stays one. Returns the columns it takes (one per code
 * point; the rare double-width character is counted once), or -ENOMEM.
 * NULL is "".
 */
int ctl_fmt_clean(struct evbuffer *out, const char *s);

/* Buffer size for ctl_fmt_rfc3339(). */
#define CTL_RFC3339_LEN 40

/*
 * RFC 3339 in UTC with `digits` (0, 3, 6 or 9) of fraction, e.g.
 * "2023-11-14T22:13:20.123Z". Returns buf.
 */
char *ctl_fmt_rfc3339(uint64_t unix_nano, int digits, char *buf, size_t len);

/* Buffer size for ctl_fmt_age(). */
#define CTL_AGE_LEN 32

/*
 * How long ns is, for people: at most two units, truncated: "0s", "59s",
 * "3m12s", "5h3m", "2d4h". A negative age (clocks apart) is "in 3s".
 * Returns buf.
 */
char *ctl_fmt_age(int64_t ns, char *buf, size_t len);

/*
 * An enum value's name as the proto spells it ("CHECK_STATUS_OK"), NULL
 * for a number the proto does not have (a newer coordinator).
 */
const char *ctl_enum_name(const ProtobufCEnumDescriptor *desc, int value);

/*
 * The same without its prefix, e.g. ("CHECK_STATUS_") -> "OK"; lower-case
 * when lower is set; "?N" for an unknown number. Returns buf.
 */
char *ctl_enum_short(const ProtobufCEnumDescriptor *desc, int value,
    const char *prefix, int lower, char *buf, size_t len);

enum ctl_color {
	CTL_COLOR_NONE = 0,
	CTL_COLOR_GREEN,
	CTL_COLOR_YELLOW,
	CTL_COLOR_RED,
	CTL_COLOR_MAGENTA,
	CTL_COLOR_BOLD,
	CTL_COLOR_ALERT, /* bold red: what must not be missed */
};

/* The SGR sequence that starts a colour ("" for none), and the reset. */
const char *ctl_color_on(enum ctl_color c);
#define CTL_COLOR_OFF "\033[0m"

/* Colours of check statuses and event severities. */
enum ctl_color ctl_check_status_color(int status);
enum ctl_color ctl_severity_color(int severity);

#endif
