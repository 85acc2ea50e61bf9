/* json.c - a bounded JSON parser for one control-protocol line (pure, no allocation). */

#include "json.h"

#include <errno.h>
#include <string.h>

#include <glib.h>

struct json_parser {
	struct json_doc *doc;
	const char *p, *end;
	int depth;
};

static void json_ws(struct json_parser *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\r' ||
				   *ps->p == '\n'))
		ps->p++;
}

static int json_fail(struct json_parser *ps, const char *why)
{
	if (!ps->doc->error)
		ps->doc->error = why;
	return -1;
}

static int json_new(struct json_parser *ps, enum json_type type)
{
	struct json_node *n;

	if (ps->doc->n >= JSON_MAX_NODES)
		return json_fail(ps, "too many values");
	n = &ps->doc->nodes[ps->doc->n];
	memset(n, 0, sizeof(*n));
	n->type = type;
	n->first_child = -1;
	n->next = -1;
	return ps->doc->n++;
}

/* Parse a string literal into the arena; returns the arena pointer or NULL. */
static const char *json_string(struct json_parser *ps)
{
	char *out = ps->doc->text + ps->doc->text_len, *start = out;
	const char *limit = ps->doc->text + JSON_MAX_TEXT - 1;

	if (ps->p >= ps->end || *ps->p != '"')
		return json_fail(ps, "expected a string"), NULL;
	ps->p++;
	while (ps->p < ps->end && *ps->p != '"') {
		unsigned char c = (unsigned char)*ps->p++;

		if (out >= limit)
			return json_fail(ps, "strings too long"), NULL;
		if (c < 0x20)
			return json_fail(ps, "control character in a string"), NULL;
		if (c != '\\') {
			*out++ = (char)c;
			continue;
		}
		if (ps->p >= ps->end)
			break;
		switch (*ps->p++) {
		case '"': *out++ = '"'; break;
		case '\\': *out++ = '\\'; break;
		case '/': *out++ = '/'; break;
		case 'b': *out++ = '\b'; break;
		case 'f': *out++ = '\f'; break;
		case 'n': *out++ = '\n'; break;
		case 'r': *out++ = '\r'; break;
		case 't': *out++ = '\t'; break;
		case 'u': {
			unsigned int v = 0;

			if (ps->end - ps->p < 4)
				return json_fail(ps, "short \\u escape"), NULL;
			for (int i = 0; i < 4; i++) {
				int d = g_ascii_xdigit_value(*ps->p++);

				if (d < 0)
					return json_fail(ps, "bad \\u escape"), NULL;
				v = v << 4 | (unsigned int)d;
			}
			if (v == 0 || v > 0x7f)
				return json_fail(ps, "only ASCII \\u escapes are accepted"), NULL;
			*out++ = (char)v;
			break;
		}
		default:
			return json_fail(ps, "bad escape in a string"), NULL;
		}
	}
	if (ps->p >= ps->end)
		return json_fail(ps, "unterminated string"), NULL;
	/*
	 * JSON text is UTF-8 (RFC 8259, section 8.1).  Raw bytes above 0x7f are
	 * copied as they come, so check them here: the control socket echoes
	 * strings in its error answers, which must stay valid JSON.
	 */
	if (!g_utf8_validate(start, out - start, NULL))
		return json_fail(ps, "string is not valid UTF-8"), NULL;
	ps->p++;
	*out++ = 0;
	ps->doc->text_len = (size_t)(out - ps->doc->text);
	return start;
}

static int json_value(struct json_parser *ps);

/* Parse members or elements after '{' / '['; links them under node @idx. */
static int json_container(struct json_parser *ps, int idx, char close, bool object)
{
	int prev = -1;

	if (++ps->depth > JSON_MAX_DEPTH)
		return json_fail(ps, "nested too deeply");
	json_ws(ps);
	if (ps->p < ps->end && *ps->p == close) {
		ps->p++;
		ps->depth--;
		return 0;
	}
	for (;;) {
		const char *key = NULL;
		int child;

		json_ws(ps);
		if (object) {
			key = json_string(ps);
			if (!key)
				return -1;
			json_ws(ps);
			if (ps->p >= ps->end || *ps->p++ != ':')
				return json_fail(ps, "expected ':'");
			if (json_get(ps->doc, &ps->doc->nodes[idx], key))
				return json_fail(ps, "duplicate member");
		}
		child = json_value(ps);
		if (child < 0)
			return -1;
		ps->doc->nodes[child].key = key;
		if (prev < 0)
			ps->doc->nodes[idx].first_child = child;
		else
			ps->doc->nodes[prev].next = child;
		prev = child;
		json_ws(ps);
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p++;
			continue;
		}
		if (ps->p < ps->end && *ps->p == close) {
			ps->p++;
			ps->depth--;
			return 0;
		}
		return json_fail(ps, object ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

static int json_literal(struct json_parser *ps, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n))
		return json_fail(ps, "unexpected token");
	ps->p += n;
	return 0;
}

static int json_value(struct json_parser *ps)
{
	int idx;

	json_ws(ps);
	if (ps->p >= ps->end)
		return json_fail(ps, "unexpected end");
	switch (*ps->p) {
	case '{':
		ps->p++;
		idx = json_new(ps, JSON_OBJECT);
		return idx < 0 || json_container(ps, idx, '}', true) ? -1 : idx;
	case '[':
		ps->p++;
		idx = json_new(ps, JSON_ARRAY);
		return idx < 0 || json_container(ps, idx, ']', false) ? -1 : idx;
	case '"':
		idx = json_new(ps, JSON_STRING);
		if (idx < 0 || !(ps->doc->nodes[idx].str = json_string(ps)))
			return -1;
		return idx;
	case 't':
	case 'f': {
		bool truth = *ps->p == 't';

		idx = json_new(ps, JSON_BOOL);
		if (idx < 0 || json_literal(ps, truth ? "true" : "false"))
			return -1;
		ps->doc->nodes[idx].num = truth;
		return idx;
	}
	case 'n':
		idx = json_new(ps, JSON_NULL);
		return idx < 0 || json_literal(ps, "null") ? -1 : idx;
	default: {
		bool neg = *ps->p == '-';
		uint64_t v = 0;
		const char *digits;

		idx = json_new(ps, JSON_INT);
		if (idx < 0)
			return -1;
		if (neg)
			ps->p++;
		digits = ps->p;
		while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
			if (v > (UINT64_MAX - 9) / 10)
				return json_fail(ps, "number too large");
			v = v * 10 + (uint64_t)(*ps->p++ - '0');
		}
		if (ps->p == digits || (ps->p - digits > 1 && *digits == '0'))
			return json_fail(ps, "bad number");
		if (ps->p < ps->end && (*ps->p == '.' || *ps->p == 'e' || *ps->p == 'E'))
			return json_fail(ps, "only integers are accepted");
		if (v > (uint64_t)INT64_MAX)
			return json_fail(ps, "number too large");
		ps->doc->nodes[idx].num = neg ? -(int64_t)v : (int64_t)v;
		return idx;
	}
	}
}

int json_parse(struct json_doc *doc, const char *in, size_t len)
{
	struct json_parser ps = { .doc = doc, .p = in, .end = in + len };

	doc->n = 0;
	doc->text_len = 0;
	doc->error = NULL;
	if (json_value(&ps) < 0)
		return -EINVAL;
	json_ws(&ps);
	if (ps.p != ps.end) {
		doc->error = "trailing characters";
		return -EINVAL;
	}
	return 0;
}

const struct json_node *json_get(const struct json_doc *doc, const struct json_node *obj,
				 const char *key)
{
	if (!obj || obj->type != JSON_OBJECT)
		return NULL;
	for (int i = obj->first_child; i >= 0; i = doc->nodes[i].next) {
		if (doc->nodes[i].key && !strcmp(doc->nodes[i].key, key))
			return &doc->nodes[i];
	}
	return NULL;
}

void json_escape_append(GString *out, const char *s)
{
	g_string_append_c(out, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			g_string_append_printf(out, "\\%c", c);
		else if (c < 0x20)
			g_string_append_printf(out, "\\u%04x", c);
		else
			g_string_append_c(out, (char)c);
	}
	g_string_append_c(out, '"');
}
