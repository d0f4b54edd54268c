/*
 * redis_info: split the text of an INFO reply into key:value pairs, and
 * the replica (slaveN) and keyspace (dbN) lines into their fields.
 *
 * The text comes from the network: every line may be missing, repeated,
 * malformed or absurdly long, and NUL bytes may appear anywhere. Nothing
 * here trusts it: lines are found with explicit lengths, numbers must be
 * whole, and the replica and keyspace tables are bounded.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "redis.h"

/* 1 if s is prefix followed by one or more digits and nothing else. */
static int
info_is_numbered(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);

	if (strncmp(s, prefix, n) != 0 || s[n] == '\0')
		return 0;
	for (s += n; *s != '\0'; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

static int
info_parse_int(const char *s, int64_t *ret)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0')
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -EINVAL;
	*ret = v;
	return 0;
}

/*
 * Split "a=1,b=2" (already copied, writable) and call back for each pair.
 * Pairs without '=' are skipped.
 */
static void
info_split_pairs(char *s, void (*pair)(void *, const char *, const char *),
    void *arg)
{
	while (s != NULL && *s != '\0') {
		char *next = strchr(s, ',');
		char *eq;

		if (next != NULL)
			*next++ = '\0';
		if ((eq = strchr(s, '=')) != NULL) {
			*eq = '\0';
			pair(arg, s, eq + 1);
		}
		s = next;
	}
}

static void
info_replica_pair(void *arg, const char *k, const char *v)
{
	struct redis_info_replica *r = arg;
	int64_t n;

	if (strcmp(k, "ip") == 0)
		r->ip = v;
	else if (strcmp(k, "port") == 0)
		r->port = v;
	else if (strcmp(k, "state") == 0)
		r->state = v;
	else if (strcmp(k, "offset") == 0 && info_parse_int(v, &n) == 0)
		r->offset = n;
	else if (strcmp(k, "lag") == 0 && info_parse_int(v, &n) == 0)
		r->lag = n;
}

static void
info_db_pair(void *arg, const char *k, const char *v)
{
	struct redis_info_db *d = arg;
	int64_t n;

	if (strcmp(k, "keys") == 0 && info_parse_int(v, &n) == 0)
		d->keys = n;
	else if (strcmp(k, "expires") == 0 && info_parse_int(v, &n) == 0)
		d->expires = n;
}

/* Copy value into the extra buffer at *off; returns the copy. */
static char *
info_extra_copy(struct redis_info *info, size_t *off, const char *value)
{
	size_t n = strlen(value) + 1;
	char *p = info->extra + *off;

	memcpy(p, value, n);
	*off += n;
	return p;
}

static void
info_add_replica(struct redis_info *info, size_t *off, const char *key,
    const char *value)
{
	struct redis_info_replica *r;

	if (info->nreplicas == REDIS_INFO_MAX_REPLICAS) {
		info->replicas_skipped++;
		return;
	}
	r = &info->replicas[info->nreplicas++];
	r->name = key;
	r->offset = -1;
	r->lag = -1;
	info_split_pairs(info_extra_copy(info, off, value), info_replica_pair,
	    r);
}

static void
info_add_db(struct redis_info *info, size_t *off, const char *key,
    const char *value)
{
	struct redis_info_db *d;

	if (info->ndbs == REDIS_INFO_MAX_DBS)
		return;
	d = &info->dbs[info->ndbs++];
	d->db = key;
	d->keys = -1;
	d->expires = -1;
	info_split_pairs(info_extra_copy(info, off, value), info_db_pair, d);
}

int
redis_info_parse(struct redis_info *info, const char *text, size_t len)
{
	size_t lines = 1, off = 0;
	char *p, *end;

	memset(info, 0, sizeof(*info));
	for (size_t i = 0; i < len; i++)
		if (text[i] == '\n')
			lines++;
	info->text = malloc(len + 1);
	/* The split values of replica and db lines never outgrow the text. */
	info->extra = malloc(len + 1);
	info->kv = calloc(lines, sizeof(*info->kv));
	if (info->text == NULL || info->extra == NULL || info->kv == NULL) {
		redis_info_clear(info);
		return -ENOMEM;
	}
	memcpy(info->text, text, len);
	info->text[len] = '\0';
	p = info->text;
	end = info->text + len;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *line = p, *colon;
		size_t n;

		if (nl != NULL) {
			*nl = '\0';
			p = nl + 1;
		} else {
			p = end;
		}
		/* A NUL inside the line ends it there. */
		n = strlen(line);
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		if ((colon = strchr(line, ':')) == NULL || colon == line)
			continue;
		*colon = '\0';
		info->kv[info->nkv].key = line;
		info->kv[info->nkv].value = colon + 1;
		info->nkv++;
		if (info_is_numbered(line, "slave"))
			info_add_replica(info, &off, line, colon + 1);
		else if (info_is_numbered(line, "db"))
			info_add_db(info, &off, line, colon + 1);
	}
	return 0;
}

void
redis_info_clear(struct redis_info *info)
{
	free(info->text);
	free(info->extra);
	free(info->kv);
	memset(info, 0, sizeof(*info));
}

const char *
redis_info_get(const struct redis_info *info, const char *key)
{
	for (size_t i = 0; i < info->nkv; i++)
		if (strcmp(info->kv[i].key, key) == 0)
			return info->kv[i].value;
	return NULL;
}

int
redis_info_double(const struct redis_info *info, const char *key, double *ret)
{
	const char *s = redis_info_get(info, key);
	char *end;
	double v;

	if (s == NULL)
		return -ENOENT;
	if (*s == '\0')
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !isfinite(v))
		return -EINVAL;
	*ret = v;
	return 0;
}

int
redis_info_int(const struct redis_info *info, const char *key, int64_t *ret)
{
	const char *s = redis_info_get(info, key);

	if (s == NULL)
		return -ENOENT;
	return info_parse_int(s, ret);
}
