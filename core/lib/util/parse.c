#include "parse.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define NUNITS(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Accumulate one decimal number at *p, at most max; -EINVAL if none,
 * -ERANGE above max.
 */
static int
parse_digits_max(const char **p, uint64_t max, uint64_t *ret)
{
	const char *s = *p;
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	while (*s >= '0' && *s <= '9') {
		unsigned d = (unsigned)(*s - '0');
		if (v > (max - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
		s++;
	}
	*p = s;
	*ret = v;
	return 0;
}

static int
parse_digits(const char **p, int64_t *ret)
{
	uint64_t v;
	int r;

	if ((r = parse_digits_max(p, INT64_MAX, &v)) < 0)
		return r;
	*ret = (int64_t)v;
	return 0;
}

static int
mul_add(int64_t *acc, int64_t v, int64_t unit)
{
	if (v > INT64_MAX / unit)
		return -ERANGE;
	v *= unit;
	if (*acc > INT64_MAX - v)
		return -ERANGE;
	*acc += v;
	return 0;
}

static const struct {
	const char *suffix;
	int64_t ms;
} duration_units[] = {
	/* Longest suffix first where one is a prefix of another ("ms", "m"). */
	{ "ms", 1 },
	{ "s", 1000 },
	{ "m", 60 * 1000 },
	{ "h", 60 * 60 * 1000 },
	{ "d", 24 * 60 * 60 * 1000 },
};

int
parse_duration_ms(const char *s, int64_t *ret_ms)
{
	int64_t total = 0;
	int64_t last_unit = INT64_MAX;
	int r;

	if (s == NULL || *s == '\0')
		return -EINVAL;
	while (*s != '\0') {
		int64_t v;
		size_t i;

		if ((r = parse_digits(&s, &v)) < 0)
			return r;
		for (i = 0; i < NUNITS(duration_units); i++) {
			size_t n = strlen(duration_units[i].suffix);
			if (strncmp(s, duration_units[i].suffix, n) == 0 &&
			    (s[n] == '\0' || (s[n] >= '0' && s[n] <= '9')))
				break;
		}
		if (i == NUNITS(duration_units))
			return -EINVAL; /* missing or unknown unit */
		/* Components go from the largest unit down, each unit once. */
		if (duration_units[i].ms >= last_unit)
			return -EINVAL;
		last_unit = duration_units[i].ms;
		if ((r = mul_add(&total, v, duration_units[i].ms)) < 0)
			return r;
		s += strlen(duration_units[i].suffix);
	}
	*ret_ms = total;
	return 0;
}

static const struct {
	const char *suffix;
	int64_t bytes;
} size_units[] = {
	{ "", 1 },
	{ "B", 1 },
	{ "KB", 1000LL },
	{ "MB", 1000LL * 1000 },
	{ "GB", 1000LL * 1000 * 1000 },
	{ "TB", 1000LL * 1000 * 1000 * 1000 },
	{ "KiB", 1LL << 10 },
	{ "MiB", 1LL << 20 },
	{ "GiB", 1LL << 30 },
	{ "TiB", 1LL << 40 },
};

int
parse_size(const char *s, int64_t *ret_bytes)
{
	int64_t v, total = 0;
	int r;

	if (s == NULL)
		return -EINVAL;
	if ((r = parse_digits(&s, &v)) < 0)
		return r;
	for (size_t i = 0; i < NUNITS(size_units); i++) {
		if (strcmp(s, size_units[i].suffix) == 0) {
			if ((r = mul_add(&total, v, size_units[i].bytes)) < 0)
				return r;
			*ret_bytes = total;
			return 0;
		}
	}
	return -EINVAL;
}

int
parse_int64(const char *s, int64_t *ret)
{
	uint64_t max = INT64_MAX, v;
	int neg = 0;
	int r;

	if (s == NULL)
		return -EINVAL;
	if (*s == '-') {
		/* The magnitude of INT64_MIN is one more than INT64_MAX. */
		neg = 1;
		max = (uint64_t)INT64_MAX + 1;
		s++;
	}
	if ((r = parse_digits_max(&s, max, &v)) < 0)
		return r;
	if (*s != '\0')
		return -EINVAL;
	if (!neg)
		*ret = (int64_t)v;
	else if (v == (uint64_t)INT64_MAX + 1)
		*ret = INT64_MIN;
	else
		*ret = -(int64_t)v;
	return 0;
}

int
parse_bool(const char *s, int *ret)
{
	static const char *const yes[] = { "true", "yes", "on" };
	static const char *const no[] = { "false", "no", "off" };

	if (s == NULL)
		return -EINVAL;
	for (size_t i = 0; i < 3; i++) {
		if (strcmp(s, yes[i]) == 0) {
			*ret = 1;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*ret = 0;
			return 0;
		}
	}
	return -EINVAL;
}

int
parse_hostport(const char *s, char *host, size_t hostlen, int min_port,
    int *ret_port)
{
	const char *h, *hend, *port;
	long v = 0;

	if (*s == '[') {
		h = s + 1;
		if ((hend = strchr(h, ']')) == NULL || hend[1] != ':' ||
		    memchr(h, ':', (size_t)(hend - h)) == NULL)
			return -EINVAL;
		port = hend + 2;
	} else {
		h = s;
		/* No port, or an IPv6 address without brackets. */
		if ((hend = strchr(s, ':')) == NULL || strchr(hend + 1, ':') != NULL)
			return -EINVAL;
		port = hend + 1;
	}
	if (hend == h || (size_t)(hend - h) >= hostlen || *port == '\0')
		return -EINVAL;
	for (const char *c = h; c < hend; c++)
		if ((unsigned char)*c <= ' ' || *c == '/' || *c == '[' || *c == ']')
			return -EINVAL;
	for (const char *c = port; *c != '\0'; c++) {
		if (*c < '0' || *c > '9')
			return -EINVAL;
		if (v <= 65535)
			v = v * 10 + (*c - '0');
	}
	if (v < min_port || v > 65535)
		return -ERANGE;
	memcpy(host, h, (size_t)(hend - h));
	host[hend - h] = '\0';
	*ret_port = (int)v;
	return 0;
}

char *
format_duration_ms(int64_t ms, char *buf, size_t len)
{
	size_t off = 0;

	if (len == 0)
		return buf;
	buf[0] = '\0';
	if (ms <= 0) {
		snprintf(buf, len, "%s", ms == 0 ? "0s" : "-");
		return buf;
	}
	for (size_t i = NUNITS(duration_units); i-- > 0;) {
		int64_t unit = duration_units[i].ms;
		if (ms >= unit) {
			int n = snprintf(buf + off, len - off, "%lld%s",
			    (long long)(ms / unit), duration_units[i].suffix);
			if (n < 0 || (size_t)n >= len - off) {
				/* Cut at a component: "1m3" would mislead. */
				buf[off] = '\0';
				return buf;
			}
			off += (size_t)n;
			ms %= unit;
		}
	}
	return buf;
}

char *
format_size(int64_t bytes, char *buf, size_t len)
{
	static const char *const bin[] = { "TiB", "GiB", "MiB", "KiB" };
	static const int shift[] = { 40, 30, 20, 10 };

	if (bytes > 0) {
		for (size_t i = 0; i < 4; i++) {
			int64_t unit = 1LL << shift[i];
			if (bytes % unit == 0) {
				snprintf(buf, len, "%lld%s",
				    (long long)(bytes / unit), bin[i]);
				return buf;
			}
		}
	}
	snprintf(buf, len, "%lld", (long long)bytes);
	return buf;
}
