/*
 * A small YAML document tree for configuration files, built from libyaml's
 * event parser: scalars, sequences and mappings, each node with its 1-based
 * line and column, so that every later complaint can point at the text.
 *
 * Deliberately strict, because a config file that means something other
 * than it seems to is worse than one that is refused: anchors and aliases,
 * duplicate keys, non-scalar keys, several documents, input over 1 MiB and
 * nesting deeper than 64 levels are errors with a position. Scalars stay
 * text: what "80" or "true" means is up to the caller.
 */
#ifndef TROIKA_YAML_TREE_H
#define TROIKA_YAML_TREE_H

#include <stddef.h>

#define YAML_TREE_MAX_SIZE (1024 * 1024) /* bytes of input */
#define YAML_TREE_MAX_DEPTH 64           /* nested sequences and mappings */

enum yaml_tree_kind {
	YAML_TREE_SCALAR = 1,
	YAML_TREE_SEQUENCE = 2,
	YAML_TREE_MAPPING = 3,
};

struct yaml_tree_node;

/* One mapping entry. The key is always a scalar with its own position. */
struct yaml_tree_pair {
	struct yaml_tree_node *key;
	struct yaml_tree_node *value;
};

struct yaml_tree_node {
	enum yaml_tree_kind kind;
	int line; /* 1-based */
	int col;  /* 1-based, in characters */

	/* SCALAR: the text, NUL-terminated; it never contains a NUL byte. */
	char *str;
	size_t len;
	int plain; /* written unquoted: only a plain scalar can be null */

	/* SEQUENCE */
	struct yaml_tree_node **items;
	size_t nitems;

	/* MAPPING, in file order, keys unique */
	struct yaml_tree_pair *pairs;
	size_t npairs;
};

struct yaml_tree_error {
	int line; /* 1-based; 0 when the problem has no position (I/O) */
	int col;
	char msg[256];
};

/*
 * Parse YAML text. Returns 0 with *ret_root set (NULL for a stream without
 * a document, e.g. an empty file or only comments), or a negative errno
 * with err filled: -EINVAL for anything wrong with the text, -EFBIG for
 * input over YAML_TREE_MAX_SIZE, -ENOMEM. The tree is the caller's; free
 * it with yaml_tree_free().
 */
int yaml_tree_parse_buf(const char *buf, size_t len,
    struct yaml_tree_node **ret_root, struct yaml_tree_error *err);

/* Read and parse a file; as above, plus -errno when it cannot be read. */
int yaml_tree_parse_file(const char *path, struct yaml_tree_node **ret_root,
    struct yaml_tree_error *err);

void yaml_tree_free(struct yaml_tree_node *node);

/* The entry of a mapping with this key; NULL if none or not a mapping. */
const struct yaml_tree_pair *yaml_tree_find(const struct yaml_tree_node *map,
    const char *key);

/* A plain scalar "", "~" or "null" (any case): the YAML null. */
int yaml_tree_is_null(const struct yaml_tree_node *node);

/* "a scalar", "a sequence", "a mapping" or "null", for error messages. */
const char *yaml_tree_what(const struct yaml_tree_node *node);

/*
 * Printable excerpt of a text for an error message: control bytes escaped
 * as \n, \t or \xNN, cut to fit len with "..." at the end. Returns buf.
 */
char *yaml_tree_excerpt(const char *s, char *buf, size_t len);

#endif
