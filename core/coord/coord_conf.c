/*
 * troika-coord's configuration loader. Mirrors the agent's (core/lib/conf.c)
 * in its habits: strict keys, "file:line:col: what" for every problem,
 * all problems at once: in file order (the walk is), then the checks that
 * concern several keys.
 */
#include "coord_conf.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "parse.h"
#include "yaml_tree.h"

#define COORD_CONF_EXCERPT 80

struct coord_conf_loader {
	const char *fname;
	struct evbuffer *errs;
	int nerrs;
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

/* A non-empty scalar, copied into *ret. */
static int
coord_conf_string(
    struct coord_conf_loader *ld, const struct yaml_tree_pair *p, char **ret)
{
	if (p->value->kind != YAML_TREE_SCALAR || yaml_tree_is_null(p->value) ||
	    p->value->len == 0) {
		coord_conf_err(ld, p->value,
		    "%s: expected a non-empty string, "
		    "got %s",
		    p->key->str, yaml_tree_what(p->value));
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

/* A mapping whose keys are all in keys[]; complains about the others. */
static int
coord_conf_mapping(struct coord_conf_loader *ld, const struct yaml_tree_pair *p,
    const char *const *keys)
{
	const struct yaml_tree_node *map = p->value;
	char ex[COORD_CONF_EXCERPT];
	int bad = 0;

	if (map->kind != YAML_TREE_MAPPING) {
		coord_conf_err(ld, map, "%s: expected a mapping, got %s",
		    p->key->str, yaml_tree_what(map));
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
			    p->key->str);
			bad = 1;
		}
	}
	return bad ? -EINVAL : 0;
}

static void
coord_conf_listen(struct coord_conf_loader *ld, const struct yaml_tree_pair *p,
    char **ret, char **ret_host, int *ret_port, int allow_zero)
{
	char host[256], ex[COORD_CONF_EXCERPT];
	int port;

	if (coord_conf_string(ld, p, ret) < 0)
		return;
	if (parse_hostport(*ret, host, sizeof(host), allow_zero ? 0 : 1,
	    &port) < 0) {
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

/* A duration within the heartbeat bounds, in *ret_ms. */
static void
coord_conf_duration(struct coord_conf_loader *ld,
    const struct yaml_tree_pair *p, int64_t *ret_ms)
{
	char ex[COORD_CONF_EXCERPT], lo[32], hi[32];
	const char *v = p->value->kind == YAML_TREE_SCALAR ? p->value->str : "";
	int64_t ms;

	if (parse_duration_ms(v, &ms) < 0) {
		coord_conf_err(ld, p->value,
		    "%s: expected a duration such as "
		    "5s or 500ms, got '%s'",
		    p->key->str, yaml_tree_excerpt(v, ex, sizeof(ex)));
		return;
	}
	if (ms < COORD_CONF_MIN_HEARTBEAT_MS ||
	    ms > COORD_CONF_MAX_HEARTBEAT_MS) {
		coord_conf_err(ld, p->value,
		    "%s: %s is out of range (%s to %s)", p->key->str,
		    yaml_tree_excerpt(v, ex, sizeof(ex)),
		    format_duration_ms(
		        COORD_CONF_MIN_HEARTBEAT_MS, lo, sizeof(lo)),
		    format_duration_ms(
		        COORD_CONF_MAX_HEARTBEAT_MS, hi, sizeof(hi)));
		return;
	}
	*ret_ms = ms;
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
}

void
coord_conf_free(struct coord_conf *c)
{
	if (c == NULL)
		return;
	free(c->name);
	free(c->listen);
	free(c->listen_host);
	free(c->metrics_listen);
	free(c->tls_cert);
	free(c->tls_key);
	free(c->tls_ca);
	free(c);
}
