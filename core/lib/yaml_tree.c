#include "yaml_tree.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

/* One open sequence or mapping while its events arrive. */
struct yaml_tree_frame {
	struct yaml_tree_node *node;
	/*
	 * Mappings only: an open-addressing index of the keys seen so far
	 * (slot = pair index + 1, 0 = empty), so that duplicate keys are
	 * found in document order without a quadratic scan.
	 */
	size_t *slots;
	size_t nslots;
};

struct yaml_tree_builder {
	struct yaml_tree_node *root;
	struct yaml_tree_frame stack[YAML_TREE_MAX_DEPTH];
	int depth;
	struct yaml_tree_error *err;
};

static void yaml_tree_seterr(struct yaml_tree_error *err, int line, int col,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
yaml_tree_seterr(struct yaml_tree_error *err, int line, int col,
    const char *fmt, ...)
{
	va_list ap;

	err->line = line;
	err->col = col;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

/* The escaped form of the character at s, and how many bytes it spans. */
static size_t
yaml_tree_excerpt_unit(const char *s, char *esc, size_t esclen)
{
	unsigned char c = (unsigned char)*s;
	size_t n = 1;

	if (c == '\n')
		snprintf(esc, esclen, "\\n");
	else if (c == '\t')
		snprintf(esc, esclen, "\\t");
	else if (c < 0x20 || c == 0x7f)
		snprintf(esc, esclen, "\\x%02x", c);
	else if (c == 0xc2 && (unsigned char)s[1] >= 0x80 &&
	    (unsigned char)s[1] <= 0x9f) {
		/*
		 * C1 controls (NEL ends a line, CSI starts a terminal escape)
		 * and LS, PS: an error message stays one inert line.
		 */
		snprintf(esc, esclen, "\\u%04x", (unsigned char)s[1]);
		return 2;
	} else if (c == 0xe2 && (unsigned char)s[1] == 0x80 &&
	    ((unsigned char)s[2] == 0xa8 || (unsigned char)s[2] == 0xa9)) {
		snprintf(esc, esclen, "\\u%04x",
		    0x2000 + ((unsigned char)s[2] & 0x3f));
		return 3;
	} else {
		/* A UTF-8 sequence is kept whole, never cut in the middle. */
		if (c >= 0xf0)
			n = 4;
		else if (c >= 0xe0)
			n = 3;
		else if (c >= 0xc0)
			n = 2;
		for (size_t i = 1; i < n; i++)
			if (s[i] == '\0')
				n = i;
		memcpy(esc, s, n);
		esc[n] = '\0';
		return n;
	}
	return 1;
}

char *
yaml_tree_excerpt(const char *s, char *buf, size_t len)
{
	static const char dots[] = "...";
	size_t full = 0, off = 0, limit;
	char esc[8];

	if (len == 0)
		return buf;
	buf[0] = '\0';
	/* Does all of it fit? Otherwise keep room for the dots. */
	for (const char *p = s; *p != '\0';) {
		p += yaml_tree_excerpt_unit(p, esc, sizeof(esc));
		full += strlen(esc);
	}
	if (full < len)
		limit = full;
	else
		limit = len > sizeof(dots) ? len - sizeof(dots) : 0;
	while (*s != '\0') {
		size_t step = yaml_tree_excerpt_unit(s, esc, sizeof(esc));
		size_t n = strlen(esc);

		if (off + n > limit)
			break;
		memcpy(buf + off, esc, n + 1);
		off += n;
		s += step;
	}
	if (full >= len && len >= sizeof(dots))
		memcpy(buf + off, dots, sizeof(dots));
	return buf;
}

static struct yaml_tree_node *
yaml_tree_node_new(enum yaml_tree_kind kind, const yaml_mark_t *mark)
{
	struct yaml_tree_node *n;

	if ((n = calloc(1, sizeof(*n))) == NULL)
		return NULL;
	n->kind = kind;
	/* libyaml marks are 0-based; people count from 1. */
	n->line = mark->line >= INT32_MAX ? INT32_MAX : (int)mark->line + 1;
	n->col = mark->column >= INT32_MAX ? INT32_MAX : (int)mark->column + 1;
	return n;
}

void
yaml_tree_free(struct yaml_tree_node *node)
{
	if (node == NULL)
		return;
	free(node->str);
	for (size_t i = 0; i < node->nitems; i++)
		yaml_tree_free(node->items[i]);
	free(node->items);
	for (size_t i = 0; i < node->npairs; i++) {
		yaml_tree_free(node->pairs[i].key);
		yaml_tree_free(node->pairs[i].value);
	}
	free(node->pairs);
	free(node);
}

/*
 * Arrays grow by doubling; the capacity is implied by the count (the next
 * power of two), so a node needs no capacity field. Returns the array to
 * use for one more element, or NULL (the old array intact).
 */
static void *
yaml_tree_grow(void *arr, size_t n, size_t size)
{
	size_t cap;

	if (n != 0 && (n & (n - 1)) != 0)
		return arr;
	cap = n == 0 ? 1 : 2 * n;
	if (cap > SIZE_MAX / size)
		return NULL;
	return realloc(arr, cap * size);
}

static size_t
yaml_tree_hash(const char *s, size_t len)
{
	uint64_t h = 14695981039346656037ULL; /* FNV-1a */

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

/* Index of an earlier pair with key k in the mapping of f, or -1. */
static ssize_t
yaml_tree_key_lookup(const struct yaml_tree_frame *f,
    const struct yaml_tree_node *k)
{
	const struct yaml_tree_node *map = f->node;
	size_t mask = f->nslots - 1;

	if (f->nslots == 0)
		return -1;
	for (size_t i = yaml_tree_hash(k->str, k->len) & mask;;
	     i = (i + 1) & mask) {
		const struct yaml_tree_node *other;

		if (f->slots[i] == 0)
			return -1;
		other = map->pairs[f->slots[i] - 1].key;
		if (other->len == k->len &&
		    memcmp(other->str, k->str, k->len) == 0)
			return (ssize_t)(f->slots[i] - 1);
	}
}

/* Put pair idx of the frame's mapping into its key index (has room). */
static void
yaml_tree_slot_put(struct yaml_tree_frame *f, size_t idx)
{
	const struct yaml_tree_node *k = f->node->pairs[idx].key;
	size_t mask = f->nslots - 1;

	for (size_t i = yaml_tree_hash(k->str, k->len) & mask;;
	     i = (i + 1) & mask) {
		if (f->slots[i] == 0) {
			f->slots[i] = idx + 1;
			return;
		}
	}
}

/* Add pair idx to the key index, growing it to keep the load under 1/2. */
static int
yaml_tree_key_insert(struct yaml_tree_frame *f, size_t idx)
{
	if ((idx + 1) * 2 > f->nslots) {
		size_t n = f->nslots == 0 ? 16 : 2 * f->nslots;
		size_t *slots;

		if (n > SIZE_MAX / sizeof(*slots) ||
		    (slots = calloc(n, sizeof(*slots))) == NULL)
			return -ENOMEM;
		free(f->slots);
		f->slots = slots;
		f->nslots = n;
		for (size_t j = 0; j < idx; j++)
			yaml_tree_slot_put(f, j);
	}
	yaml_tree_slot_put(f, idx);
	return 0;
}

/*
 * Hang a new node into the tree: as the root, a sequence item, a mapping
 * key or a mapping value. On failure the node is still the caller's.
 */
static int
yaml_tree_attach(struct yaml_tree_builder *b, struct yaml_tree_node *n)
{
	struct yaml_tree_frame *f;
	struct yaml_tree_node *parent, **items;
	struct yaml_tree_pair *pairs;
	char key[64];
	ssize_t dup;

	if (b->depth == 0) {
		b->root = n;
		return 0;
	}
	f = &b->stack[b->depth - 1];
	parent = f->node;
	if (parent->kind == YAML_TREE_SEQUENCE) {
		items = yaml_tree_grow(parent->items, parent->nitems,
		    sizeof(*items));
		if (items == NULL)
			goto nomem;
		parent->items = items;
		items[parent->nitems++] = n;
		return 0;
	}

	/* A mapping: the value of the last key, or the next key. */
	if (parent->npairs > 0 &&
	    parent->pairs[parent->npairs - 1].value == NULL) {
		parent->pairs[parent->npairs - 1].value = n;
		return 0;
	}
	if (n->kind != YAML_TREE_SCALAR) {
		yaml_tree_seterr(b->err, n->line, n->col,
		    "mapping keys must be scalars, not %s", yaml_tree_what(n));
		return -EINVAL;
	}
	if ((dup = yaml_tree_key_lookup(f, n)) >= 0) {
		const struct yaml_tree_node *first = parent->pairs[dup].key;

		yaml_tree_seterr(b->err, n->line, n->col,
		    "duplicate key '%s' (first at %d:%d)",
		    yaml_tree_excerpt(n->str, key, sizeof(key)), first->line,
		    first->col);
		return -EINVAL;
	}
	pairs = yaml_tree_grow(parent->pairs, parent->npairs, sizeof(*pairs));
	if (pairs == NULL)
		goto nomem;
	parent->pairs = pairs;
	pairs[parent->npairs].key = n;
	pairs[parent->npairs].value = NULL;
	parent->npairs++;
	if (yaml_tree_key_insert(f, parent->npairs - 1) < 0) {
		/* Detach again: the caller still owns n on failure. */
		parent->npairs--;
		goto nomem;
	}
	return 0;

nomem:
	yaml_tree_seterr(b->err, n->line, n->col, "out of memory");
	return -ENOMEM;
}

static int
yaml_tree_scalar(struct yaml_tree_builder *b, const yaml_event_t *ev)
{
	struct yaml_tree_node *n;
	int r;

	if ((n = yaml_tree_node_new(YAML_TREE_SCALAR, &ev->start_mark)) == NULL)
		goto nomem;
	/* Config text is handled as C strings: a NUL would cut it silently. */
	if (memchr(ev->data.scalar.value, '\0',
	    ev->data.scalar.length) != NULL) {
		yaml_tree_seterr(b->err, n->line, n->col,
		    "NUL bytes in scalars are not supported");
		free(n);
		return -EINVAL;
	}
	if ((n->str = malloc(ev->data.scalar.length + 1)) == NULL) {
		free(n);
		goto nomem;
	}
	memcpy(n->str, ev->data.scalar.value, ev->data.scalar.length);
	n->str[ev->data.scalar.length] = '\0';
	n->len = ev->data.scalar.length;
	n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	if ((r = yaml_tree_attach(b, n)) < 0)
		yaml_tree_free(n);
	return r;

nomem:
	yaml_tree_seterr(b->err, (int)ev->start_mark.line + 1,
	    (int)ev->start_mark.column + 1, "out of memory");
	return -ENOMEM;
}

static int
yaml_tree_open(struct yaml_tree_builder *b, const yaml_event_t *ev,
    enum yaml_tree_kind kind)
{
	struct yaml_tree_node *n;
	int r;

	if (b->depth == YAML_TREE_MAX_DEPTH) {
		yaml_tree_seterr(b->err, (int)ev->start_mark.line + 1,
		    (int)ev->start_mark.column + 1,
		    "nesting deeper than %d levels", YAML_TREE_MAX_DEPTH);
		return -EINVAL;
	}
	if ((n = yaml_tree_node_new(kind, &ev->start_mark)) == NULL) {
		yaml_tree_seterr(b->err, (int)ev->start_mark.line + 1,
		    (int)ev->start_mark.column + 1, "out of memory");
		return -ENOMEM;
	}
	if ((r = yaml_tree_attach(b, n)) < 0) {
		yaml_tree_free(n);
		return r;
	}
	b->stack[b->depth].node = n;
	b->stack[b->depth].slots = NULL;
	b->stack[b->depth].nslots = 0;
	b->depth++;
	return 0;
}

static void
yaml_tree_close(struct yaml_tree_builder *b)
{
	if (b->depth == 0)
		return; /* libyaml pairs start and end events; not reached */
	b->depth--;
	free(b->stack[b->depth].slots);
	b->stack[b->depth].slots = NULL;
}

/* Line and column of a byte offset, for reader errors that have no mark. */
static void
yaml_tree_offset_pos(const char *buf, size_t len, size_t off, int *ret_line,
    int *ret_col)
{
	int line = 1, col = 1;

	for (size_t i = 0; i < off && i < len; i++) {
		if (buf[i] == '\n') {
			line++;
			col = 1;
		} else if (((unsigned char)buf[i] & 0xc0) != 0x80) {
			/* Characters, not UTF-8 continuation bytes. */
			col++;
		}
	}
	*ret_line = line;
	*ret_col = col;
}

static int
yaml_tree_parser_error(const yaml_parser_t *p, const char *buf, size_t len,
    struct yaml_tree_error *err)
{
	const char *problem = p->problem != NULL ? p->problem : "unknown error";
	int line, col;

	switch (p->error) {
	case YAML_MEMORY_ERROR:
		yaml_tree_seterr(err, 0, 0, "out of memory");
		return -ENOMEM;
	case YAML_READER_ERROR:
		yaml_tree_offset_pos(buf, len, p->problem_offset, &line, &col);
		yaml_tree_seterr(err, line, col, "invalid input: %s", problem);
		return -EINVAL;
	default:
		line = (int)p->problem_mark.line + 1;
		col = (int)p->problem_mark.column + 1;
		if (p->context != NULL)
			yaml_tree_seterr(err, line, col,
			    "syntax error: %s (%s at %d:%d)", problem,
			    p->context, (int)p->context_mark.line + 1,
			    (int)p->context_mark.column + 1);
		else
			yaml_tree_seterr(err, line, col, "syntax error: %s",
			    problem);
		return -EINVAL;
	}
}

/* Anchors are refused where they are defined, aliases where they are used. */
static const yaml_char_t *
yaml_tree_event_anchor(const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		return ev->data.scalar.anchor;
	case YAML_SEQUENCE_START_EVENT:
		return ev->data.sequence_start.anchor;
	case YAML_MAPPING_START_EVENT:
		return ev->data.mapping_start.anchor;
	default:
		return NULL;
	}
}

int
yaml_tree_parse_buf(const char *buf, size_t len,
    struct yaml_tree_node **ret_root, struct yaml_tree_error *err)
{
	struct yaml_tree_builder b;
	yaml_parser_t parser;
	yaml_event_t ev;
	int ndocs = 0, done = 0, r = 0;

	*ret_root = NULL;
	memset(err, 0, sizeof(*err));
	memset(&b, 0, sizeof(b));
	b.err = err;
	if (len > YAML_TREE_MAX_SIZE) {
		yaml_tree_seterr(err, 0, 0, "file too large (over %d MiB)",
		    YAML_TREE_MAX_SIZE / (1024 * 1024));
		return -EFBIG;
	}
	if (!yaml_parser_initialize(&parser)) {
		yaml_tree_seterr(err, 0, 0, "out of memory");
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);

	while (!done && r == 0) {
		int line, col;

		if (!yaml_parser_parse(&parser, &ev)) {
			r = yaml_tree_parser_error(&parser, buf, len, err);
			break;
		}
		line = (int)ev.start_mark.line + 1;
		col = (int)ev.start_mark.column + 1;
		if (yaml_tree_event_anchor(&ev) != NULL) {
			yaml_tree_seterr(err, line, col,
			    "anchors and aliases are not supported");
			r = -EINVAL;
			yaml_event_delete(&ev);
			break;
		}
		switch (ev.type) {
		case YAML_DOCUMENT_START_EVENT:
			if (++ndocs > 1) {
				yaml_tree_seterr(err, line, col,
				    "multiple documents are not supported");
				r = -EINVAL;
			}
			break;
		case YAML_SCALAR_EVENT:
			r = yaml_tree_scalar(&b, &ev);
			break;
		case YAML_SEQUENCE_START_EVENT:
			r = yaml_tree_open(&b, &ev, YAML_TREE_SEQUENCE);
			break;
		case YAML_MAPPING_START_EVENT:
			r = yaml_tree_open(&b, &ev, YAML_TREE_MAPPING);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			yaml_tree_close(&b);
			break;
		case YAML_ALIAS_EVENT:
			yaml_tree_seterr(err, line, col,
			    "aliases are not supported");
			r = -EINVAL;
			break;
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		default:
			break; /* stream start, document end */
		}
		yaml_event_delete(&ev);
	}

	yaml_parser_delete(&parser);
	while (b.depth > 0)
		yaml_tree_close(&b);
	if (r < 0) {
		yaml_tree_free(b.root);
		return r;
	}
	*ret_root = b.root;
	return 0;
}

int
yaml_tree_parse_file(const char *path, struct yaml_tree_node **ret_root,
    struct yaml_tree_error *err)
{
	char *buf = NULL, *p;
	size_t len = 0, cap = 0;
	int fd, r;

	*ret_root = NULL;
	memset(err, 0, sizeof(*err));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		r = -errno;
		yaml_tree_seterr(err, 0, 0, "cannot open: %s", strerror(-r));
		return r;
	}
	/* Read at most one byte past the limit: enough to know it is over. */
	for (;;) {
		ssize_t n;

		if (len == cap) {
			if (cap > YAML_TREE_MAX_SIZE) {
				yaml_tree_seterr(err, 0, 0,
				    "file too large (over %d MiB)",
				    YAML_TREE_MAX_SIZE / (1024 * 1024));
				r = -EFBIG;
				goto out;
			}
			cap = cap == 0 ? 16384 : 2 * cap;
			if (cap > YAML_TREE_MAX_SIZE + 1)
				cap = YAML_TREE_MAX_SIZE + 1;
			if ((p = realloc(buf, cap)) == NULL) {
				yaml_tree_seterr(err, 0, 0, "out of memory");
				r = -ENOMEM;
				goto out;
			}
			buf = p;
		}
		if ((n = read(fd, buf + len, cap - len)) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			yaml_tree_seterr(err, 0, 0, "cannot read: %s",
			    strerror(-r));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	r = yaml_tree_parse_buf(buf != NULL ? buf : "", len, ret_root, err);

out:
	close(fd);
	free(buf);
	return r;
}

const struct yaml_tree_pair *
yaml_tree_find(const struct yaml_tree_node *map, const char *key)
{
	size_t len = strlen(key);

	if (map == NULL || map->kind != YAML_TREE_MAPPING)
		return NULL;
	for (size_t i = 0; i < map->npairs; i++) {
		const struct yaml_tree_node *k = map->pairs[i].key;
		if (k->len == len && memcmp(k->str, key, len) == 0)
			return &map->pairs[i];
	}
	return NULL;
}

int
yaml_tree_is_null(const struct yaml_tree_node *node)
{
	return node != NULL && node->kind == YAML_TREE_SCALAR && node->plain &&
	    (node->len == 0 || strcmp(node->str, "~") == 0 ||
		strcmp(node->str, "null") == 0 ||
		strcmp(node->str, "Null") == 0 ||
		strcmp(node->str, "NULL") == 0);
}

const char *
yaml_tree_what(const struct yaml_tree_node *node)
{
	if (node == NULL || yaml_tree_is_null(node))
		return "null";
	switch (node->kind) {
	case YAML_TREE_SCALAR:
		return "a scalar";
	case YAML_TREE_SEQUENCE:
		return "a sequence";
	case YAML_TREE_MAPPING:
		return "a mapping";
	}
	return "an unknown node";
}
