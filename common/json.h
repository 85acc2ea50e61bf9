/* json.h - a bounded JSON parser for one control-protocol line (pure, no allocation). */
#ifndef MESHSLIRP_COMMON_JSON_H
#define MESHSLIRP_COMMON_JSON_H

/*
 * The control socket speaks one JSON object per line.  This parser reads a
 * line into a caller-provided document: a fixed pool of JSON_MAX_NODES nodes
 * and a string arena of JSON_MAX_TEXT bytes, so untrusted input can cost
 * neither unbounded memory nor unbounded recursion (JSON_MAX_DEPTH).  It
 * accepts RFC 8259 JSON with these limits: numbers must be integers that fit
 * an int64 (no fraction or exponent), and \u escapes must encode ASCII.
 * Strings must be valid UTF-8, as RFC 8259 requires.  Anything else is
 * refused with a reason.
 *
 * Why hand-written: the project's dependencies are fixed (GLib, libslirp,
 * OpenSSL) and none of them parses JSON.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_NODES 64
#define JSON_MAX_TEXT 4096
#define JSON_MAX_DEPTH 4

enum json_type {
	JSON_NULL,
	JSON_BOOL,
	JSON_INT,
	JSON_STRING,
	JSON_ARRAY,
	JSON_OBJECT,
};

struct json_node {
	enum json_type type;
	const char *key;           /* member name inside an object, else NULL */
	const char *str;           /* JSON_STRING, NUL-terminated in the arena */
	int64_t num;               /* JSON_INT; JSON_BOOL: 0 or 1 */
	int first_child;           /* JSON_ARRAY/OBJECT: index, -1 if empty */
	int next;                  /* next sibling, -1 if last */
};

struct json_doc {
	struct json_node nodes[JSON_MAX_NODES];
	int n;
	char text[JSON_MAX_TEXT];
	size_t text_len;
	const char *error;         /* static reason after a failed parse */
};

/**
 * json_parse() - parse @len bytes of @in as one JSON value
 *
 * Return: 0 with doc->nodes[0] the root, or -EINVAL with doc->error set.
 */
int json_parse(struct json_doc *doc, const char *in, size_t len);

/* json_get() - member @key of object node @obj, or NULL. */
const struct json_node *json_get(const struct json_doc *doc, const struct json_node *obj,
				 const char *key);

/* json_escape_append() - append @s as a JSON string literal (quotes included) to @out. */
struct _GString;
void json_escape_append(struct _GString *out, const char *s);

#endif /* MESHSLIRP_COMMON_JSON_H */
