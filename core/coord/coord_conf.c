/*
 * troika-coord's configuration loader. Mirrors the agent's (core/lib/conf.c)
 * in its habits: strict keys, "file:line:col: what" for every problem,
 * all problems at once: in file order (the walk is), then the checks that
 * concern several keys.
 */
#include "coord_conf.h"

#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "conf.h" /* conf_strv_free */
#include "parse.h"
#include "yaml_tree.h"

#define COORD_CONF_EXCERPT 80

/* Defaults (coord_conf.h says what each means). */
#define COORD_CONF_FAIL_AFTER 3
#define COORD_CONF_CERTAIN_AFTER 2
#define COORD_CONF_DOWN_AFTER_MS (30 * 1000)
#define COORD_CONF_MAX_ATTEMPTS 3
#define COORD_CONF_WINDOW_MS (60 * 60 * 1000)
#define COORD_CONF_BACKOFF_MS (10 * 1000)
#define COORD_CONF_COOLDOWN_MS (5 * 60 * 1000)
#define COORD_CONF_ACTION_TIMEOUT_MS (2 * 60 * 1000)
#define COORD_CONF_ETCD_PREFIX "/troika"
#define COORD_CONF_ETCD_TIMEOUT_MS 1000
#define COORD_CONF_LEASE_TTL_MS 5000
#define COORD_CONF_ETCD_QUORUM 2
#define COORD_CONF_NODE_DOWN_AFTER_MS (10 * 1000)
#define COORD_CONF_MAX_CONCURRENT 1
#define COORD_CONF_MAX_PER_HOUR 10
#define COORD_CONF_TILT_STALL_MS 2000
#define COORD_CONF_TILT_JUMP_MS 5000
#define COORD_CONF_TILT_GRACE_MS (30 * 1000)
#define COORD_CONF_CLUSTER_TIMEOUT_MS (10 * 60 * 1000)
#define COORD_CONF_CLUSTER_RETRY_MS (10 * 1000)
#define COORD_CONF_FAILOVER_AFTER_MS (10 * 1000)

#define COORD_CONF_SECOND 1000
#define COORD_CONF_MINUTE (60 * COORD_CONF_SECOND)
#define COORD_CONF_HOUR (60 * COORD_CONF_MINUTE)
#define COORD_CONF_DAY (24 * (int64_t)COORD_CONF_HOUR)

static const char *const coord_conf_default_ladder[] = {
    "restart", "restart", "alert"};

/* Where a policy was written, for the checks made after the walk. */
struct coord_conf_policy_pos {
	const struct yaml_tree_node *at;       /* the policy's mapping */
	const struct yaml_tree_node *match_at; /* NULL: no match given */
	int certain_set;                       /* certain_after was written */
};

struct coord_conf_loader {
	const char *fname;
	struct evbuffer *errs;
	int nerrs;
	/* Keys that other keys depend on; NULL when absent. */
	const struct yaml_tree_node *store_at;
	const struct yaml_tree_node *etcd_at;
	const struct yaml_tree_node *endpoints_at;
	const struct yaml_tree_node *state_file_at;
	const struct yaml_tree_node *quorum_at;
	int store_bad; /* store had a bad value: skip what depends on it */
	struct coord_conf_policy_pos *pols; /* one per explicit policy */
};

static void coord_conf_err(struct coord_conf_loader *ld,
    const struct yaml_tree_node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
coord_conf_err(struct coord_conf_loader *ld, const struct yaml_tree_node *at,
    const char *fmt, ...)
{
	va_list ap;

	if (at != NULL)
		evbuffer_add_printf(
		    ld->errs, "%s:%d:%d: ", ld->fname, at->line, at->col);
	else
		evbuffer_add_printf(ld->errs, "%s: ", ld->fname);
	va_start(ap, fmt);
	evbuffer_add_vprintf(ld->errs, fmt, ap);
	va_end(ap);
	evbuffer_add(ld->errs, "\n", 1);
	ld->nerrs++;
}

/* Whether key is one of keys[] (NULL-terminated). */
static int
coord_conf_key_in(const char *key, const char *const *keys)
{
	for (size_t k = 0; keys[k] != NULL; k++)
		if (strcmp(keys[k], key) == 0)
			return 1;
	return 0;
}

/*
 * The newer sections report an unknown key where it is and still check
 * the known ones, so that every problem shows in file order.
 */
static int
coord_conf_section(struct coord_conf_loader *ld,
    const struct yaml_tree_node *map, const char *what)
{
	if (map->kind == YAML_TREE_MAPPING)
		return 0;
	coord_conf_err(ld, map, "%s: expected a mapping, got %s", what,
	    yaml_tree_what(map));
	return -EINVAL;
}

static void
coord_conf_unknown(struct coord_conf_loader *ld,
    const struct yaml_tree_node *key, const char *what)
{
	char ex[COORD_CONF_EXCERPT];

	coord_conf_err(ld, key, "unknown key '%s' in %s",
	    yaml_tree_excerpt(key->str, ex, sizeof(ex)), what);
}

/* What a value was, for "got ...": its text quoted, or its kind. */
static const char *
coord_conf_got(const struct yaml_tree_node *n, char *buf, size_t len)
{
	char ex[COORD_CONF_EXCERPT];

	if (n->kind != YAML_TREE_SCALAR || yaml_tree_is_null(n))
		return yaml_tree_what(n);
	snprintf(buf, len, "'%s'", yaml_tree_excerpt(n->str, ex, sizeof(ex)));
	return buf;
}

/* A non-empty scalar, copied into *ret. */
static int
coord_conf_string(
    struct coord_conf_loader *ld, const struct yaml_tree_pair *p, char **ret)
{
	if (p->value->kind != YAML_TREE_SCALAR || yaml_tree_is_null(p->value) ||
	    p->value->len == 0) {
		char ex[COORD_CONF_EXCERPT + 2];

		coord_conf_err(ld, p->value,
		    "%s: expected a non-empty string, "
		    "got %s",
		    p->key->str, coord_conf_got(p->value, ex, sizeof(ex)));
		return -EINVAL;
	}
	free(*ret);
	if ((*ret = strdup(p->value->str)) == NULL)
		return -ENOMEM;
	return 0;
}

/* The coordinator's name: shown in logs, metrics and status, one line. */
static void
coord_conf_name(
    struct coord_conf_loader *ld, const struct yaml_tree_pair *p, char **ret)
{
	if (coord_conf_string(ld, p, ret) < 0)
		return;
	for (const char *s = *ret; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f) {
			coord_conf_err(ld, p->value,
			    "%s: control characters "
			    "are not allowed",
			    p->key->str);
			return;
		}
	}
}

/*
 * A mapping (called what in errors) whose keys are all in keys[];
 * complains about the others.
 */
static int
coord_conf_mapping_node(struct coord_conf_loader *ld,
    const struct yaml_tree_node *map, const char *what, const char *const *keys)
{
	char ex[COORD_CONF_EXCERPT];
	int bad = 0;

	if (map->kind != YAML_TREE_MAPPING) {
		coord_conf_err(ld, map, "%s: expected a mapping, got %s", what,
		    yaml_tree_what(map));
		return -EINVAL;
	}
	for (size_t i = 0; i < map->npairs; i++) {
		size_t k;

		for (k = 0; keys[k] != NULL; k++)
			if (strcmp(keys[k], map->pairs[i].key->str) == 0)
				break;
		if (keys[k] == NULL) {
			coord_conf_err(ld, map->pairs[i].key,
			    "unknown key '%s' in %s",
			    yaml_tree_excerpt(
			        map->pairs[i].key->str, ex, sizeof(ex)),
			    what);
			bad = 1;
		}
	}
	return bad ? -EINVAL : 0;
}

/* The value of p: a mapping whose keys are all in keys[]. */
static int
coord_conf_mapping(struct coord_conf_loader *ld, const struct yaml_tree_pair *p,
    const char *const *keys)
{
	return coord_conf_mapping_node(ld, p->value, p->key->str, keys);
}

static void
coord_conf_listen(struct coord_conf_loader *ld, const struct yaml_tree_pair *p,
    char **ret, char **ret_host, int *ret_port, int allow_zero)
{
	char host[256], ex[COORD_CONF_EXCERPT];
	int port;

	if (coord_conf_string(ld, p, ret) < 0)
		return;
	if (parse_hostport(
	        *ret, host, sizeof(host), allow_zero ? 0 : 1, &port) < 0) {
		coord_conf_err(ld, p->value, "%s: '%s' is not host:port",
		    p->key->str, yaml_tree_excerpt(*ret, ex, sizeof(ex)));
		return;
	}
	if (ret_host != NULL) {
		free(*ret_host);
		if ((*ret_host = strdup(host)) == NULL)
			coord_conf_err(ld, NULL, "out of memory");
		*ret_port = port;
	}
}

/* A duration from min to max, in *ret_ms. */
static int
coord_conf_duration_in(struct coord_conf_loader *ld,
    const struct yaml_tree_pair *p, int64_t min, int64_t max, int64_t *ret_ms)
{
	char ex[COORD_CONF_EXCERPT + 2], lo[32], hi[32];
	int64_t ms;

	if (p->value->kind != YAML_TREE_SCALAR ||
	    parse_duration_ms(p->value->str, &ms) < 0) {
		coord_conf_err(ld, p->value,
		    "%s: expected a duration such as "
		    "5s or 500ms, got %s",
		    p->key->str, coord_conf_got(p->value, ex, sizeof(ex)));
		return -EINVAL;
	}
	if (ms < min || ms > max) {
		coord_conf_err(ld, p->value,
		    "%s: %s is out of range (%s to %s)", p->key->str,
		    yaml_tree_excerpt(p->value->str, ex, sizeof(ex)),
		    format_duration_ms(min, lo, sizeof(lo)),
		    format_duration_ms(max, hi, sizeof(hi)));
		return -EINVAL;
	}
	*ret_ms = ms;
	return 0;
}

/* A duration within the heartbeat bounds, in *ret_ms. */
static void
coord_conf_duration(struct coord_conf_loader *ld,
    const struct yaml_tree_pair *p, int64_t *ret_ms)
{
	coord_conf_duration_in(ld, p, COORD_CONF_MIN_HEARTBEAT_MS,
	    COORD_CONF_MAX_HEARTBEAT_MS, ret_ms);
}

/* An integer from min to max, in *ret. */
static int
coord_conf_int(struct coord_conf_loader *ld, const struct yaml_tree_pair *p,
    int min, int max, int *ret)
{
	char ex[COORD_CONF_EXCERPT + 2];
	int64_t v;

	if (p->value->kind != YAML_TREE_SCALAR ||
	    parse_int64(p->value->str, &v) < 0 || v < min || v > max) {
		coord_conf_err(ld, p->value,
		    "%s: expected an integer from %d to %d, got %s",
		    p->key->str, min, max,
		    coord_conf_got(p->value, ex, sizeof(ex)));
		return -EINVAL;
	}
	*ret = (int)v;
	return 0;
}

/* A string without control characters (it shows in logs and keys). */
static int
coord_conf_line(
    struct coord_conf_loader *ld, const struct yaml_tree_pair *p, char **ret)
{
	int r;

	if ((r = coord_conf_string(ld, p, ret)) < 0) {
		if (r == -ENOMEM)
			coord_conf_err(ld, NULL, "out of memory");
		return r;
	}
	for (const char *s = *ret; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f) {
			coord_conf_err(ld, p->value,
			    "%s: control characters "
			    "are not allowed",
			    p->key->str);
			return -EINVAL;
		}
	}
	return 0;
}

/* etcd.endpoints: 1 to 16 host:port, none twice. */
static void
coord_conf_endpoints(struct coord_conf_loader *ld,
    const struct yaml_tree_pair *p, struct coord_conf *c)
{
	const struct yaml_tree_node *seq = p->value;
	char host[256], ex[COORD_CONF_EXCERPT + 2];
	int port;

	if (seq->kind != YAML_TREE_SEQUENCE) {
		coord_conf_err(ld, seq,
		    "endpoints: expected a list of host:port, got %s",
		    coord_conf_got(seq, ex, sizeof(ex)));
		return;
	}
	if (seq->nitems == 0 || seq->nitems > COORD_CONF_MAX_ENDPOINTS) {
		coord_conf_err(ld, seq,
		    "endpoints: expected 1 to %d host:port, got %zu",
		    COORD_CONF_MAX_ENDPOINTS, seq->nitems);
		return;
	}
	if ((c->etcd_endpoints = calloc(seq->nitems, sizeof(char *))) == NULL) {
		coord_conf_err(ld, NULL, "out of memory");
		return;
	}
	for (size_t i = 0; i < seq->nitems; i++) {
		const struct yaml_tree_node *it = seq->items[i];
		size_t k;

		if (it->kind != YAML_TREE_SCALAR || yaml_tree_is_null(it) ||
		    parse_hostport(it->str, host, sizeof(host), 1, &port) < 0) {
			coord_conf_err(ld, it,
			    "endpoints: expected host:port, got %s",
			    coord_conf_got(it, ex, sizeof(ex)));
			continue;
		}
		for (k = 0; k < c->netcd_endpoints; k++)
			if (strcmp(c->etcd_endpoints[k], it->str) == 0)
				break;
		if (k < c->netcd_endpoints) {
			coord_conf_err(ld, it, "endpoints: %s is listed twice",
			    coord_conf_got(it, ex, sizeof(ex)));
			continue;
		}
		if ((c->etcd_endpoints[c->netcd_endpoints] = strdup(it->str)) ==
		    NULL) {
			coord_conf_err(ld, NULL, "out of memory");
			return;
		}
		c->netcd_endpoints++;
	}
}

static void
coord_conf_etcd(struct coord_conf_loader *ld, const struct yaml_tree_pair *p,
    struct coord_conf *c)
{
	static const char *const etcd_keys[] = {
	    "endpoints", "prefix", "timeout", "lease_ttl", NULL};
	const struct yaml_tree_node *m = p->value;

	ld->etcd_at = p->key;
	if (coord_conf_section(ld, p->value, "etcd") < 0)
		return;
	for (size_t i = 0; i < m->npairs; i++) {
		const struct yaml_tree_pair *q = &m->pairs[i];
		const char *k = q->key->str;
		size_t n;

		if (!coord_conf_key_in(k, etcd_keys)) {
			coord_conf_unknown(ld, q->key, "etcd");
			continue;
		}
		if (strcmp(k, "endpoints") == 0) {
			ld->endpoints_at = q->key;
			coord_conf_endpoints(ld, q, c);
		} else if (strcmp(k, "prefix") == 0) {
			if (coord_conf_line(ld, q, &c->etcd_prefix) < 0)
				continue;
			n = strlen(c->etcd_prefix);
			/* Keys are prefix + "/...": "/" alone would give "//".
			 */
			if (c->etcd_prefix[0] != '/' ||
			    c->etcd_prefix[n - 1] == '/' ||
			    strchr(c->etcd_prefix, ' ') != NULL)
				coord_conf_err(ld, q->value,
				    "prefix: expected a key prefix such as "
				    "/troika (a leading '/', no trailing "
				    "'/', no spaces)");
		} else if (strcmp(k, "timeout") == 0) {
			coord_conf_duration_in(ld, q, 100,
			    10 * COORD_CONF_SECOND, &c->etcd_timeout_ms);
		} else if (coord_conf_duration_in(ld, q, 2 * COORD_CONF_SECOND,
		               COORD_CONF_MINUTE, &c->lease_ttl_ms) == 0 &&
		    c->lease_ttl_ms % COORD_CONF_SECOND != 0) {
			/* etcd grants leases in whole seconds. */
			coord_conf_err(ld, q->value,
			    "lease_ttl: etcd leases are whole seconds, "
			    "got %s",
			    q->value->str);
		}
	}
}

/* A policy with every default. Returns 0 or -ENOMEM. */
static int
coord_conf_policy_init(struct coord_policy *pol, const char *match)
{
	size_t n = sizeof(coord_conf_default_ladder) /
	    sizeof(coord_conf_default_ladder[0]);

	memset(pol, 0, sizeof(*pol));
	pol->fail_after = COORD_CONF_FAIL_AFTER;
	pol->certain_after = COORD_CONF_CERTAIN_AFTER;
	pol->down_after_ms = COORD_CONF_DOWN_AFTER_MS;
	pol->max_attempts = COORD_CONF_MAX_ATTEMPTS;
	pol->window_ms = COORD_CONF_WINDOW_MS;
	pol->backoff_ms = COORD_CONF_BACKOFF_MS;
	pol->cooldown_ms = COORD_CONF_COOLDOWN_MS;
	pol->action_timeout_ms = COORD_CONF_ACTION_TIMEOUT_MS;
	if (match != NULL && (pol->match = strdup(match)) == NULL)
		return -ENOMEM;
	if ((pol->ladder = calloc(n, sizeof(char *))) == NULL)
		return -ENOMEM;
	for (; pol->nladder < n; pol->nladder++)
		if ((pol->ladder[pol->nladder] = strdup(
		         coord_conf_default_ladder[pol->nladder])) == NULL)
			return -ENOMEM;
	return 0;
}

static void
coord_conf_policy_clear(struct coord_policy *pol)
{
	free(pol->match);
	conf_strv_free(pol->ladder, pol->nladder);
}

/* An action name: what plugins and the host call their actions. */
static int
coord_conf_action_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > COORD_CONF_MAX_ACTION_NAME)
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

/* ladder: 1 to 32 action names, replacing the default. */
static void
coord_conf_ladder(struct coord_conf_loader *ld, const struct yaml_tree_pair *p,
    struct coord_policy *pol)
{
	const struct yaml_tree_node *seq = p->value;
	char ex[COORD_CONF_EXCERPT + 2];
	char **v;

	if (seq->kind != YAML_TREE_SEQUENCE) {
		coord_conf_err(ld, seq,
		    "ladder: expected a list of actions such as [restart, "
		    "alert], got %s",
		    coord_conf_got(seq, ex, sizeof(ex)));
		return;
	}
	if (seq->nitems == 0 || seq->nitems > COORD_CONF_MAX_LADDER) {
		coord_conf_err(ld, seq,
		    "ladder: expected 1 to %d actions ([alert]: alert "
		    "only), got %zu",
		    COORD_CONF_MAX_LADDER, seq->nitems);
		return;
	}
	if ((v = calloc(seq->nitems, sizeof(char *))) == NULL) {
		coord_conf_err(ld, NULL, "out of memory");
		return;
	}
	conf_strv_free(pol->ladder, pol->nladder);
	pol->ladder = v;
	pol->nladder = 0;
	for (size_t i = 0; i < seq->nitems; i++) {
		const struct yaml_tree_node *it = seq->items[i];

		if (it->kind != YAML_TREE_SCALAR || yaml_tree_is_null(it) ||
		    !coord_conf_action_name(it->str)) {
			coord_conf_err(ld, it,
			    "ladder: expected an action name "
			    "([a-z0-9_-], at most %d), got %s",
			    COORD_CONF_MAX_ACTION_NAME,
			    coord_conf_got(it, ex, sizeof(ex)));
			continue;
		}
		if ((pol->ladder[pol->nladder] = strdup(it->str)) == NULL) {
			coord_conf_err(ld, NULL, "out of memory");
			return;
		}
		pol->nladder++;
	}
}

/* One entry of recovery.policies. */
static void
coord_conf_policy_item(struct coord_conf_loader *ld,
    const struct yaml_tree_node *m, struct coord_policy *pol,
    struct coord_conf_policy_pos *pos)
{
	static const char *const policy_keys[] = {"match", "fail_after",
	    "certain_after", "down_after", "ladder", "max_attempts", "window",
	    "backoff", "cooldown", "action_timeout", NULL};

	pos->at = m;
	if (coord_conf_section(ld, m, "policy") < 0)
		return;
	for (size_t i = 0; i < m->npairs; i++) {
		const struct yaml_tree_pair *q = &m->pairs[i];
		const char *k = q->key->str;

		if (!coord_conf_key_in(k, policy_keys)) {
			coord_conf_unknown(ld, q->key, "policy");
			continue;
		}
		if (strcmp(k, "match") == 0) {
			if (coord_conf_line(ld, q, &pol->match) == 0)
				pos->match_at = q->value;
		} else if (strcmp(k, "fail_after") == 0) {
			coord_conf_int(ld, q, 1, 100, &pol->fail_after);
		} else if (strcmp(k, "certain_after") == 0) {
			pos->certain_set = 1;
			coord_conf_int(ld, q, 1, 100, &pol->certain_after);
		} else if (strcmp(k, "down_after") == 0) {
			coord_conf_duration_in(ld, q, COORD_CONF_SECOND,
			    COORD_CONF_DAY, &pol->down_after_ms);
		} else if (strcmp(k, "ladder") == 0) {
			coord_conf_ladder(ld, q, pol);
		} else if (strcmp(k, "max_attempts") == 0) {
			coord_conf_int(ld, q, 0, 100, &pol->max_attempts);
		} else if (strcmp(k, "window") == 0) {
			coord_conf_duration_in(ld, q, COORD_CONF_MINUTE,
			    7 * COORD_CONF_DAY, &pol->window_ms);
		} else if (strcmp(k, "backoff") == 0) {
			coord_conf_duration_in(
			    ld, q, 0, COORD_CONF_HOUR, &pol->backoff_ms);
		} else if (strcmp(k, "cooldown") == 0) {
			coord_conf_duration_in(
			    ld, q, 0, COORD_CONF_DAY, &pol->cooldown_ms);
		} else {
			coord_conf_duration_in(ld, q, COORD_CONF_SECOND,
			    COORD_CONF_HOUR, &pol->action_timeout_ms);
		}
	}
	if (yaml_tree_find(m, "match") == NULL)
		coord_conf_err(ld, m,
		    "policy: 'match' (a glob on check names, \"*\" for "
		    "all) is required");
}

static void
coord_conf_policies(struct coord_conf_loader *ld,
    const struct yaml_tree_pair *p, struct coord_conf *c)
{
	const struct yaml_tree_node *seq = p->value;
	char ex[COORD_CONF_EXCERPT + 2];

	if (seq->kind != YAML_TREE_SEQUENCE) {
		coord_conf_err(ld, seq,
		    "policies: expected a list of policies, got %s",
		    coord_conf_got(seq, ex, sizeof(ex)));
		return;
	}
	if (seq->nitems > COORD_CONF_MAX_POLICIES) {
		coord_conf_err(ld, seq,
		    "policies: at most %d policies, got %zu",
		    COORD_CONF_MAX_POLICIES, seq->nitems);
		return;
	}
	/* Room for the implicit "*" after them. */
	if ((c->policies = calloc(seq->nitems + 1, sizeof(*c->policies))) ==
	        NULL ||
	    (ld->pols = calloc(seq->nitems + 1, sizeof(*ld->pols))) == NULL) {
		coord_conf_err(ld, NULL, "out of memory");
		return;
	}
	for (size_t i = 0; i < seq->nitems; i++) {
		struct coord_policy *pol = &c->policies[c->npolicies];

		/* Counted at once, so that coord_conf_free frees it. */
		c->npolicies++;
		if (coord_conf_policy_init(pol, NULL) < 0) {
			coord_conf_err(ld, NULL, "out of memory");
			return;
		}
		coord_conf_policy_item(
		    ld, seq->items[i], pol, &ld->pols[c->npolicies - 1]);
	}
}

/* A scalar with no control characters, not empty (node and check names). */
static int
coord_conf_plain_name(const struct yaml_tree_node *it)
{
	if (it->kind != YAML_TREE_SCALAR || yaml_tree_is_null(it) ||
	    it->str[0] == '\0')
		return 0;
	for (const char *s = it->str; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/* nodes: min to 16 distinct node names, into *ret (*nret of them). */
static void
coord_conf_members(struct coord_conf_loader *ld,
    const struct yaml_tree_pair *p, size_t min, char ***ret, size_t *nret)
{
	const struct yaml_tree_node *seq = p->value;
	char ex[COORD_CONF_EXCERPT + 2];
	char **nodes;
	size_t n = 0;

	if (seq->kind != YAML_TREE_SEQUENCE || seq->nitems < min ||
	    seq->nitems > COORD_CONF_MAX_MEMBERS) {
		coord_conf_err(ld, seq,
		    "nodes: expected a list of %zu to %d node names, got %s",
		    min, COORD_CONF_MAX_MEMBERS,
		    coord_conf_got(seq, ex, sizeof(ex)));
		return;
	}
	if ((nodes = calloc(seq->nitems, sizeof(char *))) == NULL) {
		coord_conf_err(ld, NULL, "out of memory");
		return;
	}
	*ret = nodes;
	for (size_t i = 0; i < seq->nitems; i++) {
		const struct yaml_tree_node *it = seq->items[i];
		size_t k;

		if (!coord_conf_plain_name(it)) {
			coord_conf_err(ld, it, "nodes: expected a node name, "
			    "got %s", coord_conf_got(it, ex, sizeof(ex)));
			continue;
		}
		for (k = 0; k < n; k++)
			if (strcmp(nodes[k], it->str) == 0)
				break;
		if (k < n) {
			coord_conf_err(ld, it, "nodes: %s is listed twice",
			    it->str);
			continue;
		}
		if ((nodes[n] = strdup(it->str)) == NULL) {
			coord_conf_err(ld, NULL, "out of memory");
			return;
		}
		n++;
		*nret = n;
	}
}

/*
 * recovery.nodes.load_balancer: {check, nodes}: the load balancer's check
 * on each of nodes, whose disable/enable actions take a node's server
 * (named as the node) out of rotation and back.
 */
static void
coord_conf_load_balancer(struct coord_conf_loader *ld,
    const struct yaml_tree_pair *p, struct coord_conf *c)
{
	static const char *const lb_keys[] = {"check", "nodes", NULL};
	const struct yaml_tree_node *m = p->value;
	char ex[COORD_CONF_EXCERPT + 2];

	if (coord_conf_section(ld, m, "load_balancer") < 0)
		return;
	for (size_t i = 0; i < m->npairs; i++) {
		const struct yaml_tree_pair *q = &m->pairs[i];

		if (!coord_conf_key_in(q->key->str, lb_keys)) {
			coord_conf_unknown(ld, q->key, "load_balancer");
		} else if (strcmp(q->key->str, "nodes") == 0) {
			coord_conf_members(ld, q, 1, &c->lb_nodes,
			    &c->nlb_nodes);
		} else if (!coord_conf_plain_name(q->value)) {
			coord_conf_err(ld, q->value, "check: expected a check "
			    "name, got %s", coord_conf_got(q->value, ex,
			    sizeof(ex)));
		} else if ((c->lb_check = strdup(q->value->str)) == NULL) {
			coord_conf_err(ld, NULL, "out of memory");
		}
	}
	if (yaml_tree_find(m, "check") == NULL)
		coord_conf_err(ld, m, "load_balancer: 'check' is required");
	if (yaml_tree_find(m, "nodes") == NULL)
		coord_conf_err(ld, m, "load_balancer: 'nodes' is required");
}

/* One entry of recovery.clusters. */
static void
coord_conf_cluster_item(struct coord_conf_loader *ld,
    const struct yaml_tree_node *m, struct coord_conf *c,
    struct coord_cluster *cl)
{
	static const char *const cluster_keys[] = {"name", "kind", "check",
	    "nodes", "timeout", "retry", "failover_after", NULL};
	static const char *const required[] = {"name", "kind", "check",
	    "nodes", NULL};
	const struct yaml_tree_node *failover_at = NULL;
	char ex[COORD_CONF_EXCERPT + 2];

	if (coord_conf_section(ld, m, "cluster") < 0)
		return;
	for (size_t i = 0; i < m->npairs; i++) {
		const struct yaml_tree_pair *q = &m->pairs[i];
		const char *k = q->key->str;

		if (!coord_conf_key_in(k, cluster_keys)) {
			coord_conf_unknown(ld, q->key, "cluster");
		} else if (strcmp(k, "name") == 0) {
			if (coord_conf_line(ld, q, &cl->name) < 0)
				continue;
			if (!coord_conf_action_name(cl->name)) {
				coord_conf_err(ld, q->value, "name: expected "
				    "[a-z0-9_-], at most %d characters, got %s",
				    COORD_CONF_MAX_ACTION_NAME,
				    coord_conf_got(q->value, ex, sizeof(ex)));
				continue;
			}
			for (size_t j = 0; j + 1 < c->nclusters; j++)
				if (c->clusters[j].name != NULL &&
				    strcmp(c->clusters[j].name, cl->name) == 0)
					coord_conf_err(ld, q->value, "name: "
					    "cluster %s is defined twice",
					    cl->name);
		} else if (strcmp(k, "kind") == 0) {
			int ok = q->value->kind == YAML_TREE_SCALAR &&
			    !yaml_tree_is_null(q->value);

			if (ok && strcmp(q->value->str, "galera") == 0)
				cl->kind = COORD_CLUSTER_GALERA;
			else if (ok && strcmp(q->value->str, "redis") == 0)
				cl->kind = COORD_CLUSTER_REDIS;
			else
				coord_conf_err(ld, q->value, "kind: expected "
				    "galera or redis, got %s", coord_conf_got(
				    q->value, ex, sizeof(ex)));
		} else if (strcmp(k, "check") == 0) {
			if (!coord_conf_plain_name(q->value)) {
				coord_conf_err(ld, q->value, "check: expected "
				    "a check name, got %s", coord_conf_got(
				    q->value, ex, sizeof(ex)));
				continue;
			}
			if ((cl->check = strdup(q->value->str)) == NULL)
				coord_conf_err(ld, NULL, "out of memory");
		} else if (strcmp(k, "nodes") == 0) {
			coord_conf_members(ld, q, 2, &cl->nodes, &cl->nnodes);
		} else if (strcmp(k, "timeout") == 0) {
			coord_conf_duration_in(ld, q, COORD_CONF_MINUTE,
			    COORD_CONF_DAY, &cl->timeout_ms);
		} else if (strcmp(k, "failover_after") == 0) {
			failover_at = q->key;
			coord_conf_duration_in(ld, q, 0, COORD_CONF_HOUR,
			    &cl->failover_after_ms);
		} else {
			coord_conf_duration_in(ld, q, COORD_CONF_SECOND,
			    COORD_CONF_HOUR, &cl->retry_ms);
		}
	}
	for (size_t i = 0; required[i] != NULL; i++)
		if (yaml_tree_find(m, required[i]) == NULL)
			coord_conf_err(ld, m, "cluster: '%s' is required",
			    required[i]);
	if (failover_at != NULL && cl->kind == COORD_CLUSTER_GALERA)
		coord_conf_err(ld, failover_at, "failover_after: only a redis "
		    "cluster fails over");
	/* A member of two clusters would have two procedures at once. */
	if (cl->check == NULL)
		return;
	for (size_t j = 0; j + 1 < c->nclusters; j++) {
		const struct coord_cluster *o = &c->clusters[j];

		if (o->check == NULL || strcmp(o->check, cl->check) != 0)
			continue;
		for (size_t a = 0; a < cl->nnodes; a++)
			for (size_t b = 0; b < o->nnodes; b++)
				if (strcmp(cl->nodes[a], o->nodes[b]) == 0)
					coord_conf_err(ld, m, "cluster: %s/%s "
					    "is already a member of cluster %s",
					    cl->nodes[a], cl->check,
					    o->name != NULL ? o->name : "?");
	}
}

static void
coord_conf_clusters(struct coord_conf_loader *ld,
    const struct yaml_tree_pair *p, struct coord_conf *c)
{
	const struct yaml_tree_node *seq = p->value;
	char ex[COORD_CONF_EXCERPT + 2];

	if (seq->kind != YAML_TREE_SEQUENCE ||
	    seq->nitems > COORD_CONF_MAX_CLUSTERS) {
		coord_conf_err(ld, seq, "clusters: expected a list of at most "
		    "%d clusters, got %s", COORD_CONF_MAX_CLUSTERS,
		    coord_conf_got(seq, ex, sizeof(ex)));
		return;
	}
	if (seq->nitems == 0)
		return;
	if ((c->clusters = calloc(seq->nitems, sizeof(*c->clusters))) == NULL) {
		coord_conf_err(ld, NULL, "out of memory");
		return;
	}
	for (size_t i = 0; i < seq->nitems; i++) {
		struct coord_cluster *cl = &c->clusters[c->nclusters++];

		cl->timeout_ms = COORD_CONF_CLUSTER_TIMEOUT_MS;
		cl->retry_ms = COORD_CONF_CLUSTER_RETRY_MS;
		cl->failover_after_ms = COORD_CONF_FAILOVER_AFTER_MS;
		coord_conf_cluster_item(ld, seq->items[i], c, cl);
	}
}

static void
coord_conf_recovery(struct coord_conf_loader *ld,
    const struct yaml_tree_pair *p, struct coord_conf *c)
{
	static const char *const recovery_keys[] = {
	    "max_concurrent", "max_per_hour", "nodes", "policies", "clusters",
	    NULL};
	static const char *const nodes_keys[] = {"down_after", "load_balancer",
	    NULL};
	const struct yaml_tree_node *m = p->value;

	if (coord_conf_section(ld, p->value, "recovery") < 0)
		return;
	for (size_t i = 0; i < m->npairs; i++) {
		const struct yaml_tree_pair *q = &m->pairs[i];
		const char *k = q->key->str;

		if (!coord_conf_key_in(k, recovery_keys)) {
			coord_conf_unknown(ld, q->key, "recovery");
			continue;
		}
		if (strcmp(k, "max_concurrent") == 0) {
			coord_conf_int(ld, q, 1, 100, &c->max_concurrent);
		} else if (strcmp(k, "max_per_hour") == 0) {
			coord_conf_int(ld, q, 0, 10000, &c->max_per_hour);
		} else if (strcmp(k, "nodes") == 0) {
			if (coord_conf_section(ld, q->value, "nodes") < 0)
				continue;
			for (size_t j = 0; j < q->value->npairs; j++) {
				const struct yaml_tree_pair *n =
				    &q->value->pairs[j];

				if (!coord_conf_key_in(n->key->str, nodes_keys))
					coord_conf_unknown(ld, n->key, "nodes");
				else if (strcmp(n->key->str,
				    "load_balancer") == 0)
					coord_conf_load_balancer(ld, n, c);
				else
					coord_conf_duration_in(ld, n,
					    COORD_CONF_SECOND, COORD_CONF_DAY,
					    &c->node_down_after_ms);
			}
		} else if (strcmp(k, "clusters") == 0) {
			coord_conf_clusters(ld, q, c);
		} else {
			coord_conf_policies(ld, q, c);
		}
	}
}

static void
coord_conf_tilt(struct coord_conf_loader *ld, const struct yaml_tree_pair *p,
    struct coord_conf *c)
{
	static const char *const tilt_keys[] = {
	    "stall", "clock_jump", "grace", NULL};
	const struct yaml_tree_node *m = p->value;

	if (coord_conf_section(ld, p->value, "tilt") < 0)
		return;
	for (size_t i = 0; i < m->npairs; i++) {
		const struct yaml_tree_pair *q = &m->pairs[i];
		const char *k = q->key->str;

		if (!coord_conf_key_in(k, tilt_keys)) {
			coord_conf_unknown(ld, q->key, "tilt");
			continue;
		}
		if (strcmp(k, "stall") == 0)
			coord_conf_duration_in(
			    ld, q, 100, COORD_CONF_MINUTE, &c->tilt_stall_ms);
		else if (strcmp(k, "clock_jump") == 0)
			coord_conf_duration_in(
			    ld, q, 100, COORD_CONF_HOUR, &c->tilt_jump_ms);
		else
			coord_conf_duration_in(
			    ld, q, 0, COORD_CONF_HOUR, &c->tilt_grace_ms);
	}
}

/* A list of 1 to max non-empty one-line strings, into *ret (*nret). */
static int
coord_conf_strlist(struct coord_conf_loader *ld,
    const struct yaml_tree_pair *p, size_t max, char ***ret, size_t *nret)
{
	const struct yaml_tree_node *seq = p->value;
	char ex[COORD_CONF_EXCERPT + 2];

	if (seq->kind != YAML_TREE_SEQUENCE || seq->nitems == 0 ||
	    seq->nitems > max) {
		coord_conf_err(ld, seq, "%s: expected a list of 1 to %zu "
		    "strings, got %s", p->key->str, max,
		    coord_conf_got(seq, ex, sizeof(ex)));
		return -EINVAL;
	}
	if ((*ret = calloc(seq->nitems + 1, sizeof(char *))) == NULL) {
		coord_conf_err(ld, NULL, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < seq->nitems; i++) {
		const struct yaml_tree_node *it = seq->items[i];

		if (!coord_conf_plain_name(it)) {
			coord_conf_err(ld, it, "%s: expected a non-empty "
			    "string without control characters, got %s",
			    p->key->str, coord_conf_got(it, ex, sizeof(ex)));
			return -EINVAL;
		}
		if (((*ret)[i] = strdup(it->str)) == NULL) {
			coord_conf_err(ld, NULL, "out of memory");
			return -ENOMEM;
		}
		*nret = i + 1;
	}
	return 0;
}

/* headers: {Name: value}, as "Name: value" lines. */
static void
coord_conf_headers(struct coord_conf_loader *ld,
    const struct yaml_tree_pair *p, struct alert_hook_conf *hc)
{
	const struct yaml_tree_node *m = p->value;
	char ex[COORD_CONF_EXCERPT + 2];

	if (coord_conf_section(ld, m, "headers") < 0 || m->npairs == 0)
		return;
	if ((hc->headers = calloc(m->npairs, sizeof(char *))) == NULL) {
		coord_conf_err(ld, NULL, "out of memory");
		return;
	}
	for (size_t i = 0; i < m->npairs; i++) {
		const struct yaml_tree_node *k = m->pairs[i].key;
		const struct yaml_tree_node *v = m->pairs[i].value;
		size_t n;

		/* RFC 9110 token characters: no ':', no space, no control. */
		if (k->len == 0 || strspn(k->str, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~") !=
		    k->len || strcasecmp(k->str, "Content-Type") == 0 ||
		    strcasecmp(k->str, "Content-Length") == 0) {
			coord_conf_err(ld, k, "headers: '%s' is not a header "
			    "name one may set", yaml_tree_excerpt(k->str, ex,
			    sizeof(ex)));
			continue;
		}
		if (v->kind != YAML_TREE_SCALAR || !coord_conf_plain_name(v)) {
			coord_conf_err(ld, v, "headers: %s: expected a "
			    "one-line value, got %s", k->str,
			    coord_conf_got(v, ex, sizeof(ex)));
			continue;
		}
		n = k->len + v->len + 3;
		if ((hc->headers[hc->nheaders] = malloc(n)) == NULL) {
			coord_conf_err(ld, NULL, "out of memory");
			return;
		}
		snprintf(hc->headers[hc->nheaders++], n, "%s: %s", k->str,
		    v->str);
	}
}

/* One entry of alerts.hooks. */
static void
coord_conf_hook_item(struct coord_conf_loader *ld,
    const struct yaml_tree_node *m, struct coord_conf *c,
    struct alert_hook_conf *hc)
{
	static const char *const hook_keys[] = {"name", "kind", "url", "argv",
	    "min_severity", "kinds", "headers", "timeout", "resend", "queue",
	    "retries", "backoff", NULL};
	const struct yaml_tree_node *url_at = NULL, *argv_at = NULL;
	const struct yaml_tree_node *headers_at = NULL, *resend_at = NULL;
	char ex[COORD_CONF_EXCERPT + 2];

	if (coord_conf_section(ld, m, "hook") < 0)
		return;
	for (size_t i = 0; i < m->npairs; i++) {
		const struct yaml_tree_pair *q = &m->pairs[i];
		const char *k = q->key->str;

		if (!coord_conf_key_in(k, hook_keys)) {
			coord_conf_unknown(ld, q->key, "hook");
		} else if (strcmp(k, "name") == 0) {
			if (coord_conf_line(ld, q, &hc->name) < 0)
				continue;
			if (!coord_conf_action_name(hc->name)) {
				coord_conf_err(ld, q->value, "name: expected "
				    "[a-z0-9_-], at most %d characters, got %s",
				    COORD_CONF_MAX_ACTION_NAME,
				    coord_conf_got(q->value, ex, sizeof(ex)));
				continue;
			}
			for (size_t j = 0; j + 1 < c->nalert_hooks; j++)
				if (c->alert_hooks[j].name != NULL &&
				    strcmp(c->alert_hooks[j].name,
				    hc->name) == 0)
					coord_conf_err(ld, q->value, "name: "
					    "hook %s is defined twice",
					    hc->name);
		} else if (strcmp(k, "kind") == 0) {
			const char *v = q->value->kind == YAML_TREE_SCALAR ?
			    q->value->str : "";

			if (strcmp(v, "webhook") == 0)
				hc->kind = ALERT_WEBHOOK;
			else if (strcmp(v, "alertmanager") == 0)
				hc->kind = ALERT_ALERTMANAGER;
			else if (strcmp(v, "exec") == 0)
				hc->kind = ALERT_EXEC;
			else
				coord_conf_err(ld, q->value, "kind: expected "
				    "webhook, alertmanager or exec, got %s",
				    coord_conf_got(q->value, ex, sizeof(ex)));
		} else if (strcmp(k, "url") == 0) {
			url_at = q->key;
			if (coord_conf_line(ld, q, &hc->url) < 0)
				continue;
			if (strncmp(hc->url, "http://", 7) != 0 &&
			    strncmp(hc->url, "https://", 8) != 0)
				coord_conf_err(ld, q->value, "url: expected "
				    "http:// or https://, got %s",
				    coord_conf_got(q->value, ex, sizeof(ex)));
		} else if (strcmp(k, "argv") == 0) {
			argv_at = q->key;
			coord_conf_strlist(ld, q, 256, &hc->argv, &hc->nargv);
		} else if (strcmp(k, "min_severity") == 0) {
			int sev = q->value->kind == YAML_TREE_SCALAR ?
			    alert_severity_from_str(q->value->str) : -1;

			if (sev < 0)
				coord_conf_err(ld, q->value, "min_severity: "
				    "expected info, warning or critical, got %s",
				    coord_conf_got(q->value, ex, sizeof(ex)));
			else
				hc->min_severity = sev;
		} else if (strcmp(k, "kinds") == 0) {
			if (coord_conf_strlist(ld, q, 64, &hc->kinds,
			    &hc->nkinds) < 0)
				continue;
			for (size_t j = 0; j < hc->nkinds; j++)
				if (strspn(hc->kinds[j],
				    "abcdefghijklmnopqrstuvwxyz_") !=
				    strlen(hc->kinds[j]))
					coord_conf_err(ld, q->value->items[j],
					    "kinds: expected an event kind "
					    "([a-z_]), got '%s'", yaml_tree_excerpt(
					    hc->kinds[j], ex, sizeof(ex)));
		} else if (strcmp(k, "headers") == 0) {
			headers_at = q->key;
			coord_conf_headers(ld, q, hc);
		} else if (strcmp(k, "timeout") == 0) {
			coord_conf_duration_in(ld, q, 100, 5 * COORD_CONF_MINUTE,
			    &hc->timeout_ms);
		} else if (strcmp(k, "resend") == 0) {
			resend_at = q->key;
			coord_conf_duration_in(ld, q, COORD_CONF_SECOND,
			    COORD_CONF_HOUR, &hc->resend_ms);
		} else if (strcmp(k, "queue") == 0) {
			coord_conf_int(ld, q, 1, 100000, &hc->queue);
		} else if (strcmp(k, "retries") == 0) {
			coord_conf_int(ld, q, 0, 100, &hc->retries);
		} else {
			coord_conf_duration_in(ld, q, 10, 5 * COORD_CONF_MINUTE,
			    &hc->backoff_ms);
		}
	}
	if (yaml_tree_find(m, "name") == NULL)
		coord_conf_err(ld, m, "hook: 'name' is required");
	if (yaml_tree_find(m, "kind") == NULL) {
		coord_conf_err(ld, m, "hook: 'kind' is required");
		return;
	}
	if (hc->kind == ALERT_EXEC) {
		if (argv_at == NULL)
			coord_conf_err(ld, m, "hook: exec needs 'argv'");
		if (url_at != NULL)
			coord_conf_err(ld, url_at, "url: only for webhook and "
			    "alertmanager hooks");
		if (headers_at != NULL)
			coord_conf_err(ld, headers_at, "headers: only for "
			    "webhook and alertmanager hooks");
	} else if (hc->kind != 0) {
		if (url_at == NULL)
			coord_conf_err(ld, m, "hook: %s needs 'url'",
			    alert_kind_str(hc->kind));
		if (argv_at != NULL)
			coord_conf_err(ld, argv_at, "argv: only for exec hooks");
	}
	if (resend_at != NULL && hc->kind != 0 && hc->kind != ALERT_ALERTMANAGER)
		coord_conf_err(ld, resend_at, "resend: only for alertmanager "
		    "hooks");
}

static void
coord_conf_alerts(struct coord_conf_loader *ld, const struct yaml_tree_pair *p,
    struct coord_conf *c)
{
	static const char *const alerts_keys[] = {"hooks", NULL};
	const struct yaml_tree_node *m = p->value, *seq;
	char ex[COORD_CONF_EXCERPT + 2];

	if (coord_conf_mapping(ld, p, alerts_keys) < 0)
		return;
	if (m->npairs == 0)
		return;
	seq = m->pairs[0].value;
	if (seq->kind != YAML_TREE_SEQUENCE ||
	    seq->nitems > COORD_CONF_MAX_HOOKS) {
		coord_conf_err(ld, seq, "hooks: expected a list of at most %d "
		    "hooks, got %s", COORD_CONF_MAX_HOOKS,
		    coord_conf_got(seq, ex, sizeof(ex)));
		return;
	}
	if (seq->nitems == 0)
		return;
	if ((c->alert_hooks = calloc(seq->nitems,
	    sizeof(*c->alert_hooks))) == NULL) {
		coord_conf_err(ld, NULL, "out of memory");
		return;
	}
	for (size_t i = 0; i < seq->nitems; i++) {
		struct alert_hook_conf *hc = &c->alert_hooks[c->nalert_hooks++];

		alert_hook_conf_default(hc);
		coord_conf_hook_item(ld, seq->items[i], c, hc);
	}
}

/* The checks that concern several keys, after the walk. */
static void
coord_conf_cross(struct coord_conf_loader *ld, struct coord_conf *c)
{
	for (size_t i = 0; ld->pols != NULL && i < c->npolicies; i++) {
		struct coord_policy *pol = &c->policies[i];
		const struct coord_conf_policy_pos *pos = &ld->pols[i];

		if (pos->at == NULL)
			continue;
		if (pol->certain_after > pol->fail_after) {
			/*
			 * Certain evidence is meant to be quicker: unless
			 * written, its threshold follows a lower fail_after.
			 */
			if (pos->certain_set)
				coord_conf_err(ld, pos->at,
				    "policy: certain_after (%d) must not "
				    "exceed fail_after (%d)",
				    pol->certain_after, pol->fail_after);
			else
				pol->certain_after = pol->fail_after;
		}
		if (pos->match_at == NULL)
			continue;
		for (size_t j = 0; j < i; j++) {
			const struct coord_conf_policy_pos *e = &ld->pols[j];

			if (e->match_at == NULL)
				continue;
			if (strcmp(c->policies[j].match, "*") == 0 ||
			    strcmp(c->policies[j].match, pol->match) == 0) {
				coord_conf_err(ld, pos->match_at,
				    "match: this policy never applies: the "
				    "one at %d:%d (match '%s') comes first",
				    e->match_at->line, e->match_at->col,
				    c->policies[j].match);
				break;
			}
		}
	}
	if (ld->store_bad)
		return;
	if (c->store == COORD_STORE_ETCD) {
		if (ld->endpoints_at == NULL)
			coord_conf_err(ld, ld->store_at,
			    "store etcd needs etcd.endpoints");
		if (ld->state_file_at != NULL)
			coord_conf_err(ld, ld->state_file_at,
			    "state_file: only with store local (etcd keeps "
			    "the state)");
		if (ld->quorum_at == NULL)
			c->quorum = COORD_CONF_ETCD_QUORUM;
	} else {
		if (ld->etcd_at != NULL)
			coord_conf_err(ld, ld->etcd_at,
			    "etcd: only with store etcd (store is local)");
		/* One coordinator alone: its own opinion is all there is. */
		if (ld->quorum_at != NULL && c->quorum != 1)
			coord_conf_err(ld, ld->quorum_at,
			    "quorum: store local is one coordinator alone: "
			    "quorum must be 1");
		c->quorum = 1;
	}
}

static void
coord_conf_walk(struct coord_conf_loader *ld, const struct yaml_tree_node *root,
    struct coord_conf *c)
{
	static const char *const node_keys[] = {"name", NULL};
	static const char *const metrics_keys[] = {"listen", NULL};
	static const char *const log_keys[] = {"level", "target", NULL};
	static const char *const tls_keys[] = {"cert", "key", "ca", NULL};
	static const char *const agents_keys[] = {"heartbeat", "timeout", NULL};
	const struct yaml_tree_node *tls_at = NULL, *agents_at = NULL;
	char ex[COORD_CONF_EXCERPT];
	int has_listen = 0;

	if (root == NULL) {
		coord_conf_err(ld, NULL,
		    "empty configuration: 'listen' is "
		    "required");
		return;
	}
	if (root->kind != YAML_TREE_MAPPING) {
		coord_conf_err(ld, root,
		    "expected a mapping at the top, got %s",
		    yaml_tree_what(root));
		return;
	}
	for (size_t i = 0; i < root->npairs; i++) {
		const struct yaml_tree_pair *p = &root->pairs[i];
		const char *key = p->key->str;
		const struct yaml_tree_node *m = p->value;

		if (strcmp(key, "listen") == 0) {
			has_listen = 1;
			coord_conf_listen(ld, p, &c->listen, &c->listen_host,
			    &c->listen_port, 1);
		} else if (strcmp(key, "node") == 0) {
			if (coord_conf_mapping(ld, p, node_keys) < 0)
				continue;
			for (size_t j = 0; j < m->npairs; j++)
				coord_conf_name(ld, &m->pairs[j], &c->name);
		} else if (strcmp(key, "metrics") == 0) {
			if (coord_conf_mapping(ld, p, metrics_keys) < 0)
				continue;
			for (size_t j = 0; j < m->npairs; j++)
				coord_conf_listen(ld, &m->pairs[j],
				    &c->metrics_listen, NULL, NULL, 0);
		} else if (strcmp(key, "log") == 0) {
			if (coord_conf_mapping(ld, p, log_keys) < 0)
				continue;
			for (size_t j = 0; j < m->npairs; j++) {
				const struct yaml_tree_pair *q = &m->pairs[j];
				const char *v =
				    q->value->kind == YAML_TREE_SCALAR
				    ? q->value->str
				    : "";
				int lvl;

				if (strcmp(q->key->str, "level") == 0) {
					if ((lvl = log_level_from_str(v)) < 0)
						coord_conf_err(ld, q->value,
						    "level: expected err, "
						    "warning, info or debug, "
						    "got '%s'",
						    yaml_tree_excerpt(
						        v, ex, sizeof(ex)));
					else
						c->log_level = lvl;
				} else if (strcmp(v, "stderr") == 0) {
					c->log_target = LOG_TARGET_STDERR;
				} else if (strcmp(v, "syslog") == 0) {
					c->log_target = LOG_TARGET_SYSLOG;
				} else {
					coord_conf_err(ld, q->value,
					    "target: "
					    "expected stderr or syslog, got "
					    "'%s'",
					    yaml_tree_excerpt(
					        v, ex, sizeof(ex)));
				}
			}
		} else if (strcmp(key, "agents") == 0) {
			agents_at = p->key;
			if (coord_conf_mapping(ld, p, agents_keys) < 0)
				continue;
			for (size_t j = 0; j < m->npairs; j++) {
				const struct yaml_tree_pair *q = &m->pairs[j];

				coord_conf_duration(ld, q,
				    strcmp(q->key->str, "heartbeat") == 0
				        ? &c->heartbeat_ms
				        : &c->agent_timeout_ms);
			}
		} else if (strcmp(key, "tls") == 0) {
			tls_at = p->key;
			if (coord_conf_mapping(ld, p, tls_keys) < 0)
				continue;
			for (size_t j = 0; j < m->npairs; j++) {
				const struct yaml_tree_pair *q = &m->pairs[j];
				char **dst = strcmp(q->key->str, "cert") == 0
				    ? &c->tls_cert
				    : strcmp(q->key->str, "key") == 0
				    ? &c->tls_key
				    : &c->tls_ca;

				coord_conf_string(ld, q, dst);
			}
		} else if (strcmp(key, "store") == 0) {
			const char *v =
			    m->kind == YAML_TREE_SCALAR ? m->str : "";

			ld->store_at = p->key;
			if (strcmp(v, "local") == 0)
				c->store = COORD_STORE_LOCAL;
			else if (strcmp(v, "etcd") == 0)
				c->store = COORD_STORE_ETCD;
			else {
				ld->store_bad = 1;
				coord_conf_err(ld, m,
				    "store: expected local or etcd, got %s",
				    coord_conf_got(m, ex, sizeof(ex)));
			}
		} else if (strcmp(key, "etcd") == 0) {
			coord_conf_etcd(ld, p, c);
		} else if (strcmp(key, "state_file") == 0) {
			ld->state_file_at = p->key;
			coord_conf_line(ld, p, &c->state_file);
		} else if (strcmp(key, "quorum") == 0) {
			ld->quorum_at = p->key;
			coord_conf_int(ld, p, 1, 16, &c->quorum);
		} else if (strcmp(key, "recovery") == 0) {
			coord_conf_recovery(ld, p, c);
		} else if (strcmp(key, "tilt") == 0) {
			coord_conf_tilt(ld, p, c);
		} else if (strcmp(key, "alerts") == 0) {
			coord_conf_alerts(ld, p, c);
		} else {
			coord_conf_err(ld, p->key, "unknown key '%s'",
			    yaml_tree_excerpt(key, ex, sizeof(ex)));
		}
	}
	if (!has_listen)
		coord_conf_err(ld, root,
		    "'listen' (the gRPC host:port) is "
		    "required");
	if (tls_at != NULL && (c->tls_cert == NULL) != (c->tls_key == NULL))
		coord_conf_err(ld, tls_at, "tls: cert and key go together");
	/* Unset: three heartbeats missed. */
	if (c->agent_timeout_ms == 0)
		c->agent_timeout_ms = 3 * c->heartbeat_ms;
	else if (c->agent_timeout_ms <= c->heartbeat_ms)
		coord_conf_err(ld, agents_at,
		    "agents: timeout must be longer "
		    "than heartbeat");
	if (tls_at != NULL && c->tls_ca != NULL && c->tls_cert == NULL)
		coord_conf_err(ld, tls_at,
		    "tls: ca (client certificates) "
		    "needs cert and key");
	coord_conf_cross(ld, c);
}

int
coord_conf_parse(const char *buf, size_t len, const char *fname,
    struct coord_conf **ret_conf, char **ret_errors)
{
	struct coord_conf_loader ld = {.fname = fname};
	struct yaml_tree_node *root = NULL;
	struct yaml_tree_error yerr;
	struct coord_conf *c = NULL;
	char host[HOST_NAME_MAX + 1];
	int r;

	*ret_conf = NULL;
	*ret_errors = NULL;
	if ((ld.errs = evbuffer_new()) == NULL)
		return -ENOMEM;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	c->heartbeat_ms = COORD_CONF_HEARTBEAT_MS;
	c->log_level = LOG_INFO;
	c->log_target = LOG_TARGET_STDERR;
	c->store = COORD_STORE_LOCAL;
	c->etcd_timeout_ms = COORD_CONF_ETCD_TIMEOUT_MS;
	c->lease_ttl_ms = COORD_CONF_LEASE_TTL_MS;
	c->quorum = 1;
	c->node_down_after_ms = COORD_CONF_NODE_DOWN_AFTER_MS;
	c->max_concurrent = COORD_CONF_MAX_CONCURRENT;
	c->max_per_hour = COORD_CONF_MAX_PER_HOUR;
	c->tilt_stall_ms = COORD_CONF_TILT_STALL_MS;
	c->tilt_jump_ms = COORD_CONF_TILT_JUMP_MS;
	c->tilt_grace_ms = COORD_CONF_TILT_GRACE_MS;
	if ((c->etcd_prefix = strdup(COORD_CONF_ETCD_PREFIX)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = yaml_tree_parse_buf(buf, len, &root, &yerr)) < 0) {
		if (r == -ENOMEM)
			goto out;
		if (yerr.line > 0)
			evbuffer_add_printf(ld.errs, "%s:%d:%d: %s\n", fname,
			    yerr.line, yerr.col, yerr.msg);
		else
			evbuffer_add_printf(
			    ld.errs, "%s: %s\n", fname, yerr.msg);
		ld.nerrs++;
	} else {
		coord_conf_walk(&ld, root, c);
	}
	/* Last, for every check no policy above matches. */
	if (c->policies == NULL &&
	    (c->policies = calloc(1, sizeof(*c->policies))) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	c->npolicies++;
	if (coord_conf_policy_init(&c->policies[c->npolicies - 1], "*") < 0) {
		r = -ENOMEM;
		goto out;
	}
	if (ld.nerrs == 0 && c->name == NULL) {
		/* The host name is what an operator would call this node. */
		if (gethostname(host, sizeof(host)) < 0)
			strcpy(host, "coord");
		host[sizeof(host) - 1] = '\0';
		if ((c->name = strdup(host)) == NULL) {
			r = -ENOMEM;
			goto out;
		}
	}
	if (ld.nerrs > 0) {
		size_t n = evbuffer_get_length(ld.errs);

		if ((*ret_errors = malloc(n + 1)) == NULL) {
			r = -ENOMEM;
			goto out;
		}
		evbuffer_remove(ld.errs, *ret_errors, n);
		(*ret_errors)[n] = '\0';
		r = -EINVAL;
		goto out;
	}
	*ret_conf = c;
	c = NULL;
	r = 0;
out:
	coord_conf_free(c);
	yaml_tree_free(root);
	evbuffer_free(ld.errs);
	free(ld.pols);
	return r;
}

int
coord_conf_load(
    const char *path, struct coord_conf **ret_conf, char **ret_errors)
{
	FILE *f;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int r;

	*ret_conf = NULL;
	*ret_errors = NULL;
	if ((f = fopen(path, "r")) == NULL)
		return -errno;
	for (;;) {
		size_t n;

		if (len + 4096 > cap) {
			char *nb;

			/* yaml_tree refuses more than its maximum anyway. */
			if (cap > YAML_TREE_MAX_SIZE) {
				r = -EFBIG;
				goto out;
			}
			cap = cap ? cap * 2 : 8192;
			if ((nb = realloc(buf, cap)) == NULL) {
				r = -ENOMEM;
				goto out;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		r = -EIO;
		goto out;
	}
	r = coord_conf_parse(buf, len, path, ret_conf, ret_errors);
out:
	free(buf);
	fclose(f);
	return r;
}

/* A YAML double-quoted string. */
static void
coord_conf_print_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(out, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			fprintf(out, "\\x%02x", ch);
		else
			fputc(ch, out);
	}
	fputc('"', out);
}

/* A list of strings in flow style: ["a", "b"]. */
static void
coord_conf_print_strv(FILE *out, char *const *v, size_t n, int quote)
{
	fputc('[', out);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			fputs(", ", out);
		if (quote)
			coord_conf_print_str(out, v[i]);
		else
			fputs(v[i], out);
	}
	fputc(']', out);
}

/* One policy as an item of recovery.policies, each line after lead. */
static void
coord_conf_print_policy(
    FILE *out, const struct coord_policy *pol, const char *lead)
{
	char d[32];

	fprintf(out, "%s- match: ", lead);
	coord_conf_print_str(out, pol->match);
	fprintf(out, "\n%s  fail_after: %d\n", lead, pol->fail_after);
	fprintf(out, "%s  certain_after: %d\n", lead, pol->certain_after);
	fprintf(out, "%s  down_after: %s\n", lead,
	    format_duration_ms(pol->down_after_ms, d, sizeof(d)));
	fprintf(out, "%s  ladder: ", lead);
	/* Action names are [a-z0-9_-]+: nothing to quote. */
	coord_conf_print_strv(out, pol->ladder, pol->nladder, 0);
	fprintf(out, "\n%s  max_attempts: %d\n", lead, pol->max_attempts);
	fprintf(out, "%s  window: %s\n", lead,
	    format_duration_ms(pol->window_ms, d, sizeof(d)));
	fprintf(out, "%s  backoff: %s\n", lead,
	    format_duration_ms(pol->backoff_ms, d, sizeof(d)));
	fprintf(out, "%s  cooldown: %s\n", lead,
	    format_duration_ms(pol->cooldown_ms, d, sizeof(d)));
	fprintf(out, "%s  action_timeout: %s\n", lead,
	    format_duration_ms(pol->action_timeout_ms, d, sizeof(d)));
}

static void
coord_conf_print_recovery(const struct coord_conf *c, FILE *out)
{
	char d1[32], d2[32], d3[32];

	fprintf(out, "store: %s\n", coord_store_kind_str(c->store));
	if (c->store == COORD_STORE_ETCD) {
		fputs("etcd:\n  endpoints: ", out);
		coord_conf_print_strv(
		    out, c->etcd_endpoints, c->netcd_endpoints, 1);
		fputs("\n  prefix: ", out);
		coord_conf_print_str(out, c->etcd_prefix);
		fprintf(out, "\n  timeout: %s\n  lease_ttl: %s\n",
		    format_duration_ms(c->etcd_timeout_ms, d1, sizeof(d1)),
		    format_duration_ms(c->lease_ttl_ms, d2, sizeof(d2)));
	}
	if (c->state_file != NULL) {
		fputs("state_file: ", out);
		coord_conf_print_str(out, c->state_file);
		fputc('\n', out);
	}
	fprintf(out, "quorum: %d\n", c->quorum);
	fprintf(out,
	    "recovery:\n  max_concurrent: %d\n  max_per_hour: %d\n"
	    "  nodes:\n    down_after: %s\n",
	    c->max_concurrent, c->max_per_hour,
	    format_duration_ms(c->node_down_after_ms, d1, sizeof(d1)));
	if (c->lb_check != NULL) {
		fputs("    load_balancer:\n      check: ", out);
		coord_conf_print_str(out, c->lb_check);
		fputs("\n      nodes: ", out);
		coord_conf_print_strv(out, c->lb_nodes, c->nlb_nodes, 1);
		fputc('\n', out);
	}
	fputs(c->npolicies > 1 ? "  policies:\n" : "  policies: []\n", out);
	for (size_t i = 0; i + 1 < c->npolicies; i++)
		coord_conf_print_policy(out, &c->policies[i], "    ");
	/*
	 * The implicit last policy as a comment: shown, yet what is printed
	 * loads back to the same (it would be added again).
	 */
	fputs(
	    "    # implicit, last: every check no policy above matches\n", out);
	coord_conf_print_policy(out, &c->policies[c->npolicies - 1], "    #");
	if (c->nclusters > 0)
		fputs("  clusters:\n", out);
	for (size_t i = 0; i < c->nclusters; i++) {
		const struct coord_cluster *cl = &c->clusters[i];

		/* name and kind are [a-z0-9_-]: nothing to quote. */
		fprintf(out, "    - name: %s\n      kind: %s\n      check: ",
		    cl->name, coord_cluster_kind_str(cl->kind));
		coord_conf_print_str(out, cl->check);
		fputs("\n      nodes: ", out);
		coord_conf_print_strv(out, cl->nodes, cl->nnodes, 1);
		fprintf(out, "\n      timeout: %s\n      retry: %s\n",
		    format_duration_ms(cl->timeout_ms, d1, sizeof(d1)),
		    format_duration_ms(cl->retry_ms, d2, sizeof(d2)));
		if (cl->kind == COORD_CLUSTER_REDIS)
			fprintf(out, "      failover_after: %s\n",
			    format_duration_ms(cl->failover_after_ms, d1,
			    sizeof(d1)));
	}
	fprintf(out, "tilt:\n  stall: %s\n  clock_jump: %s\n  grace: %s\n",
	    format_duration_ms(c->tilt_stall_ms, d1, sizeof(d1)),
	    format_duration_ms(c->tilt_jump_ms, d2, sizeof(d2)),
	    format_duration_ms(c->tilt_grace_ms, d3, sizeof(d3)));
}

static void
coord_conf_print_alerts(const struct coord_conf *c, FILE *out)
{
	char d[32];

	if (c->nalert_hooks == 0)
		return;
	fputs("alerts:\n  hooks:\n", out);
	for (size_t i = 0; i < c->nalert_hooks; i++) {
		const struct alert_hook_conf *hc = &c->alert_hooks[i];

		/* name and kinds are [a-z0-9_-]: nothing to quote. */
		fprintf(out, "    - name: %s\n      kind: %s\n", hc->name,
		    alert_kind_str(hc->kind));
		if (hc->url != NULL) {
			fputs("      url: ", out);
			coord_conf_print_str(out, hc->url);
			fputc('\n', out);
		}
		if (hc->nargv > 0) {
			fputs("      argv: ", out);
			coord_conf_print_strv(out, hc->argv, hc->nargv, 1);
			fputc('\n', out);
		}
		fprintf(out, "      min_severity: %s\n",
		    alert_severity_str(hc->min_severity));
		if (hc->nkinds > 0) {
			fputs("      kinds: ", out);
			coord_conf_print_strv(out, hc->kinds, hc->nkinds, 0);
			fputc('\n', out);
		}
		if (hc->nheaders > 0)
			fputs("      headers:\n", out);
		for (size_t j = 0; j < hc->nheaders; j++) {
			const char *colon = strchr(hc->headers[j], ':');

			char *name = strndup(hc->headers[j],
			    (size_t)(colon - hc->headers[j]));

			fputs("        ", out);
			coord_conf_print_str(out, name != NULL ? name : "?");
			fputs(": ", out);
			free(name);
			coord_conf_print_str(out, colon + 2);
			fputc('\n', out);
		}
		fprintf(out, "      timeout: %s\n",
		    format_duration_ms(hc->timeout_ms, d, sizeof(d)));
		if (hc->kind == ALERT_ALERTMANAGER)
			fprintf(out, "      resend: %s\n",
			    format_duration_ms(hc->resend_ms, d, sizeof(d)));
		fprintf(out, "      queue: %d\n      retries: %d\n"
		    "      backoff: %s\n", hc->queue, hc->retries,
		    format_duration_ms(hc->backoff_ms, d, sizeof(d)));
	}
}

void
coord_conf_print(const struct coord_conf *c, FILE *out)
{
	char d1[32], d2[32];

	fputs("node:\n  name: ", out);
	coord_conf_print_str(out, c->name);
	fputs("\nlisten: ", out);
	coord_conf_print_str(out, c->listen);
	fputc('\n', out);
	if (c->metrics_listen != NULL) {
		fputs("metrics:\n  listen: ", out);
		coord_conf_print_str(out, c->metrics_listen);
		fputc('\n', out);
	}
	fprintf(out, "agents:\n  heartbeat: %s\n  timeout: %s\n",
	    format_duration_ms(c->heartbeat_ms, d1, sizeof(d1)),
	    format_duration_ms(c->agent_timeout_ms, d2, sizeof(d2)));
	fprintf(out, "log:\n  level: %s\n  target: %s\n",
	    log_level_str(c->log_level),
	    c->log_target == LOG_TARGET_SYSLOG ? "syslog" : "stderr");
	if (c->tls_cert != NULL) {
		fputs("tls:\n  cert: ", out);
		coord_conf_print_str(out, c->tls_cert);
		fputs("\n  key: ", out);
		coord_conf_print_str(out, c->tls_key);
		fputc('\n', out);
		if (c->tls_ca != NULL) {
			fputs("  ca: ", out);
			coord_conf_print_str(out, c->tls_ca);
			fputc('\n', out);
		}
	}
	coord_conf_print_recovery(c, out);
	coord_conf_print_alerts(c, out);
}

const char *
coord_store_kind_str(enum coord_store_kind kind)
{
	return kind == COORD_STORE_ETCD ? "etcd" : "local";
}

const char *
coord_cluster_kind_str(enum coord_cluster_kind kind)
{
	return kind == COORD_CLUSTER_GALERA ? "galera" :
	    kind == COORD_CLUSTER_REDIS ? "redis" : "?";
}

const struct coord_cluster *
coord_conf_cluster_of(const struct coord_conf *c, const char *node,
    const char *check)
{
	if (node == NULL || check == NULL)
		return NULL;
	for (size_t i = 0; i < c->nclusters; i++) {
		const struct coord_cluster *cl = &c->clusters[i];

		if (strcmp(cl->check, check) != 0)
			continue;
		for (size_t j = 0; j < cl->nnodes; j++)
			if (strcmp(cl->nodes[j], node) == 0)
				return cl;
	}
	return NULL;
}

const struct coord_policy *
coord_conf_policy(const struct coord_conf *c, const char *check)
{
	for (size_t i = 0; i + 1 < c->npolicies; i++)
		if (fnmatch(c->policies[i].match, check, 0) == 0)
			return &c->policies[i];
	/* The implicit "*": every check. */
	return &c->policies[c->npolicies - 1];
}

void
coord_conf_free(struct coord_conf *c)
{
	if (c == NULL)
		return;
	conf_strv_free(c->etcd_endpoints, c->netcd_endpoints);
	free(c->etcd_prefix);
	free(c->state_file);
	for (size_t i = 0; i < c->npolicies; i++)
		coord_conf_policy_clear(&c->policies[i]);
	free(c->policies);
	for (size_t i = 0; i < c->nclusters; i++) {
		free(c->clusters[i].name);
		free(c->clusters[i].check);
		conf_strv_free(c->clusters[i].nodes, c->clusters[i].nnodes);
	}
	free(c->clusters);
	for (size_t i = 0; i < c->nalert_hooks; i++)
		alert_hook_conf_clear(&c->alert_hooks[i]);
	free(c->alert_hooks);
	free(c->lb_check);
	conf_strv_free(c->lb_nodes, c->nlb_nodes);
	free(c->name);
	free(c->listen);
	free(c->listen_host);
	free(c->metrics_listen);
	free(c->tls_cert);
	free(c->tls_key);
	free(c->tls_ca);
	free(c);
}
