/*
 * Text helpers for troikactl's output (see ctl_fmt.h).
 */
#include "ctl_fmt.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pwd.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "ctl.h"
#include "utf8.h"
#include "troika/v1/admin.pb-c.h"

int
ctl_utf8_put(struct evbuffer *out, uint32_t cp)
{
	unsigned char b[4];
	size_t n;

	if (cp < 0x80) {
		b[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (unsigned char)(0xc0 | (cp >> 6));
		b[1] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (unsigned char)(0xe0 | (cp >> 12));
		b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (unsigned char)(0xf0 | (cp >> 18));
		b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return evbuffer_add(out, b, n) == 0 ? 0 : -ENOMEM;
}

int
ctl_fmt_clean(struct evbuffer *out, const char *s)
{
	size_t len = s != NULL ? strlen(s) : 0, i = 0;
	int width = 0;

	while (i < len) {
		uint32_t cp;
		size_t n = utf8_next(s + i, len - i, &cp);
		char esc[8];

		i += n;
		if (cp == '\n' || cp == '\r' || cp == '\t') {
			snprintf(esc, sizeof(esc), "\\%c",
			    cp == '\n'       ? 'n'
			        : cp == '\r' ? 'r'
			                     : 't');
		} else if (cp < 0x20 || cp == 0x7f ||
		    (cp >= 0x80 && cp <= 0x9f)) {
			/* C1 controls too: some terminals obey 0x9b as CSI. */
			snprintf(esc, sizeof(esc), "\\x%02x", (unsigned)cp);
		} else {
			if (ctl_utf8_put(out, cp) != 0)
				return -ENOMEM;
			width++;
			continue;
		}
		if (evbuffer_add(out, esc, strlen(esc)) != 0)
			return -ENOMEM;
		width += (int)strlen(esc);
	}
	return width;
}

char *
ctl_fmt_rfc3339(uint64_t unix_nano, int digits, char *buf, size_t len)
{
	time_t sec = (time_t)(unix_nano / 1000000000u);
	uint32_t frac = (uint32_t)(unix_nano % 1000000000u);
	char date[32];
	struct tm tm;

	if (gmtime_r(&sec, &tm) == NULL) {
		snprintf(buf, len, "?");
		return buf;
	}
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	switch (digits) {
	case 3:
		snprintf(buf, len, "%s.%03uZ", date, frac / 1000000u);
		break;
	case 6:
		snprintf(buf, len, "%s.%06uZ", date, frac / 1000u);
		break;
	case 9:
		snprintf(buf, len, "%s.%09uZ", date, frac);
		break;
	default:
		snprintf(buf, len, "%sZ", date);
		break;
	}
	return buf;
}

char *
ctl_fmt_age(int64_t ns, char *buf, size_t len)
{
	static const struct {
		char unit;
		uint64_t s;
	} units[] = {
	    {'d', 86400},
	    {'h', 3600},
	    {'m', 60},
	    {'s', 1},
	};
	const char *pre = "";
	uint64_t s;
	size_t u;

	if (ns < 0) {
		pre = "in ";
		/* -ns, without overflowing at INT64_MIN */
		s = ((uint64_t)(-(ns + 1)) + 1) / 1000000000u;
	} else
		s = (uint64_t)ns / 1000000000u;
	/* The largest unit that fits; seconds below a minute. */
	for (u = 0; u < 3 && s < units[u].s; u++)
		;
	if (u == 3 || s % units[u].s / units[u + 1].s == 0)
		snprintf(buf, len, "%s%llu%c", pre,
		    (unsigned long long)(s / units[u].s), units[u].unit);
	else
		snprintf(buf, len, "%s%llu%c%llu%c", pre,
		    (unsigned long long)(s / units[u].s), units[u].unit,
		    (unsigned long long)(s % units[u].s / units[u + 1].s),
		    units[u + 1].unit);
	return buf;
}

const char *
ctl_enum_name(const ProtobufCEnumDescriptor *desc, int value)
{
	const ProtobufCEnumValue *v =
	    protobuf_c_enum_descriptor_get_value(desc, value);

	return v != NULL ? v->name : NULL;
}

char *
ctl_enum_short(const ProtobufCEnumDescriptor *desc, int value,
    const char *prefix, int lower, char *buf, size_t len)
{
	const char *name = ctl_enum_name(desc, value);
	size_t plen = strlen(prefix);

	if (name == NULL) {
		snprintf(buf, len, "?%d", value);
		return buf;
	}
	if (strncmp(name, prefix, plen) == 0)
		name += plen;
	snprintf(buf, len, "%s", name);
	for (char *p = buf; lower && *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return buf;
}

const char *
ctl_color_on(enum ctl_color c)
{
	switch (c) {
	case CTL_COLOR_GREEN:
		return "\033[32m";
	case CTL_COLOR_YELLOW:
		return "\033[33m";
	case CTL_COLOR_RED:
		return "\033[31m";
	case CTL_COLOR_MAGENTA:
		return "\033[35m";
	case CTL_COLOR_BOLD:
		return "\033[1m";
	case CTL_COLOR_ALERT:
		return "\033[1;31m";
	case CTL_COLOR_NONE:
		break;
	}
	return "";
}

enum ctl_color
ctl_check_status_color(int status)
{
	switch (status) {
	case TROIKA__V1__CHECK_STATUS__CHECK_STATUS_OK:
		return CTL_COLOR_GREEN;
	case TROIKA__V1__CHECK_STATUS__CHECK_STATUS_WARNING:
		return CTL_COLOR_YELLOW;
	case TROIKA__V1__CHECK_STATUS__CHECK_STATUS_CRITICAL:
		return CTL_COLOR_RED;
	default:
		return CTL_COLOR_MAGENTA;
	}
}

enum ctl_color
ctl_severity_color(int severity)
{
	switch (severity) {
	case TROIKA__V1__SEVERITY__SEVERITY_INFO:
		return CTL_COLOR_NONE;
	case TROIKA__V1__SEVERITY__SEVERITY_WARNING:
		return CTL_COLOR_YELLOW;
	case TROIKA__V1__SEVERITY__SEVERITY_CRITICAL:
		return CTL_COLOR_RED;
	default:
		return CTL_COLOR_MAGENTA;
	}
}

void
ctl_whoami(char *buf, size_t len)
{
	const struct passwd *pw = getpwuid(geteuid());
	const char *user = getenv("SUDO_USER");
	char host[256];

	/* Who ran sudo, rather than root. */
	if (user == NULL || *user == '\0')
		user = pw != NULL ? pw->pw_name : "unknown";
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	snprintf(buf, len, "%s@%s", user, host);
}
