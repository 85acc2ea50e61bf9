/* test_json.c - unit tests of the bounded JSON parser used by the control socket. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>

#include "common/json.h"

static struct json_doc doc;

static int parse(const char *s)
{
	return json_parse(&doc, s, strlen(s));
}

static void test_control_request(void **state)
{
	const struct json_node *root, *args, *n;

	(void)state;
	assert_int_equal(parse(" {\"execute\": \"add_hostfwd\", \"arguments\": {\"proto\": \"tcp\", "
			       "\"host_port\": 8080, \"guest_port\": 80, \"x\": [1, -2, true, false, null]}} "), 0);
	root = &doc.nodes[0];
	assert_int_equal(root->type, JSON_OBJECT);
	n = json_get(&doc, root, "execute");
	assert_non_null(n);
	assert_string_equal(n->str, "add_hostfwd");
	args = json_get(&doc, root, "arguments");
	assert_int_equal(args->type, JSON_OBJECT);
	assert_int_equal(json_get(&doc, args, "host_port")->num, 8080);
	assert_int_equal(json_get(&doc, args, "guest_port")->num, 80);
	n = json_get(&doc, args, "x");
	assert_int_equal(n->type, JSON_ARRAY);
	n = &doc.nodes[n->first_child];
	assert_int_equal(n->num, 1);
	n = &doc.nodes[n->next];
	assert_int_equal(n->num, -2);
	n = &doc.nodes[n->next];
	assert_int_equal(n->type, JSON_BOOL);
	assert_int_equal(n->num, 1);
	n = &doc.nodes[n->next];
	assert_int_equal(n->num, 0);
	n = &doc.nodes[n->next];
	assert_int_equal(n->type, JSON_NULL);
	assert_int_equal(n->next, -1);
	assert_null(json_get(&doc, root, "missing"));
	assert_null(json_get(&doc, json_get(&doc, root, "execute"), "x"));
}

static void test_strings(void **state)
{
	(void)state;
	assert_int_equal(parse("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u0041\""), 0);
	assert_string_equal(doc.nodes[0].str, "a\"b\\c/d\b\f\n\r\tA");
	assert_int_equal(parse("\"\""), 0);
	assert_string_equal(doc.nodes[0].str, "");
	assert_int_equal(parse("{}"), 0);
	assert_int_equal(doc.nodes[0].first_child, -1);
	assert_int_equal(parse("[]"), 0);
	assert_int_equal(parse("9223372036854775807"), 0);
	assert_int_equal(doc.nodes[0].num, INT64_MAX);
	assert_int_equal(parse("-0"), 0);
}

static void test_bad(void **state)
{
	static const char *const bad[] = {
		"", " ", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "[1,]", "[1 2]", "{a:1}",
		"{\"a\":1}x", "\"abc", "\"a\\x\"", "\"\\u00e9\"", "\"\\u0000\"", "\"\\u12\"",
		"1.5", "1e3", "01", "-", "--1", "9223372036854775808", "99999999999999999999",
		"tru", "nul", "falsey", "\"a\nb\"", "{\"a\":1,\"a\":2}", "[[[[[1]]]]]",
		"{\"a\":{\"b\":{\"c\":{\"d\":{}}}}}",
	};

	(void)state;
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		if (parse(bad[i]) != -EINVAL)
			fail_msg("accepted '%s'", bad[i]);
		assert_non_null(doc.error);
	}
	/* Depth 4 is fine, 5 is not (checked above). */
	assert_int_equal(parse("[[[[1]]]]"), 0);
}

/*
 * Strings are UTF-8: a request with other bytes is refused, so what an error
 * answer echoes back stays valid JSON (found by tests/fuzz/fuzz_control).
 */
static void test_utf8(void **state)
{
	static const char *const bad[] = {
		"\"\xff\"", "\"li\xff\xff\"", "\"\xc3\"", "\"\xc3(\"", "\"\xe2\x82\"",
		"\"\xed\xa0\x80\"" /* a surrogate */, "\"\xc0\xaf\"" /* overlong */,
		"{\"execute\": \"x\x80\"}", "{\"\xfe\": 1}",
	};

	(void)state;
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		if (parse(bad[i]) != -EINVAL)
			fail_msg("accepted bad UTF-8 #%zu", i);
		assert_string_equal(doc.error, "string is not valid UTF-8");
	}
	assert_int_equal(parse("\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""), 0);
	assert_string_equal(doc.nodes[0].str, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
}

static void test_limits(void **state)
{
	GString *s = g_string_new("[");

	(void)state;
	for (int i = 0; i < JSON_MAX_NODES; i++)
		g_string_append_printf(s, "%s%d", i ? "," : "", i);
	g_string_append(s, "]");
	assert_int_equal(parse(s->str), -EINVAL);
	assert_string_equal(doc.error, "too many values");
	g_string_assign(s, "\"");
	for (int i = 0; i < JSON_MAX_TEXT; i++)
		g_string_append_c(s, 'a');
	g_string_append(s, "\"");
	assert_int_equal(parse(s->str), -EINVAL);
	assert_string_equal(doc.error, "strings too long");
	g_string_free(s, TRUE);
}

/* Every strict prefix of a valid request is refused, never crashes. */
static void test_truncations(void **state)
{
	const char *req = "{\"execute\": \"remove_hostfwd\", \"arguments\": {\"id\": 8080, \"s\": \"\\u0041\"}}";

	(void)state;
	for (size_t n = 0; n < strlen(req); n++)
		assert_int_equal(json_parse(&doc, req, n), -EINVAL);
	assert_int_equal(json_parse(&doc, req, strlen(req)), 0);
}

static void test_escape_round_trip(void **state)
{
	const char *in = "quote\" back\\ nl\n tab\t ctl\x01 end";
	GString *out = g_string_new(NULL);

	(void)state;
	json_escape_append(out, in);
	assert_non_null(strstr(out->str, "\\u0001")); /* control characters are escaped */
	assert_int_equal(json_parse(&doc, out->str, out->len), 0);
	assert_string_equal(doc.nodes[0].str, in);
	g_string_free(out, TRUE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_control_request),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_escape_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
