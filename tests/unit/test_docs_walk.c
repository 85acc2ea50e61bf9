/* test_docs_walk.c - docs/ARCHITECTURE.md's data-path walk names only files and functions that exist. */

/*
 * The walk ("## The data path") is how a reader finds the code: each step
 * names a file and the functions a frame passes through.  A rename that
 * forgets the walk would send the reader nowhere, so every `dir/file.[ch]`
 * it names must exist, and every `name()` must be defined in one of our
 * sources (static inline ones in headers too), or be libslirp's public API (declared in libslirp.h).
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>

static const char *const docs_walk_dirs[] = {
	"backend", "daemon", "netstack", "proxy-bridge", "common",
};

/* The source root, from meson (MESHSLIRP_SOURCE_ROOT). */
static const char *source_root(void)
{
	const char *root = g_getenv("MESHSLIRP_SOURCE_ROOT");

	assert_non_null(root);
	return root;
}

/* The text of "## The data path" up to the next second-level heading; caller frees. */
static char *walk_section(void)
{
	g_autofree char *path = g_build_filename(source_root(), "docs", "ARCHITECTURE.md", NULL);
	g_autofree char *doc = NULL;
	const char *start, *end;

	assert_true(g_file_get_contents(path, &doc, NULL, NULL));
	start = strstr(doc, "\n## The data path\n");
	assert_non_null(start);
	start++;
	end = strstr(start + 3, "\n## ");
	assert_non_null(end);
	return g_strndup(start, (gsize)(end - start));
}

/* Every .c and .h file of ours, concatenated (a few hundred KiB); caller frees. */
static char *all_sources(void)
{
	GString *all = g_string_new(NULL);

	for (size_t i = 0; i < G_N_ELEMENTS(docs_walk_dirs); i++) {
		g_autofree char *dir = g_build_filename(source_root(), docs_walk_dirs[i], NULL);
		g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
		const char *name;

		assert_non_null(d);
		while ((name = g_dir_read_name(d))) {
			g_autofree char *path = NULL, *text = NULL;

			if (!g_str_has_suffix(name, ".c") && !g_str_has_suffix(name, ".h"))
				continue;
			path = g_build_filename(dir, name, NULL);
			assert_true(g_file_get_contents(path, &text, NULL, NULL));
			g_string_append(all, text);
			g_string_append_c(all, '\n');
		}
	}
	return g_string_free(all, FALSE);
}

/* Is @fn defined in @sources: a line starting with its type, then "fn(" and no ';'? */
static bool defined_in(const char *sources, const char *fn)
{
	g_autofree char *pattern = g_strdup_printf("^[a-z][^;\\n(]*[ *]%s\\([^;]*$", fn);

	return g_regex_match_simple(pattern, sources, G_REGEX_MULTILINE, 0);
}

static void test_walk_files_exist(void **state)
{
	g_autofree char *walk = walk_section();
	g_autoptr(GRegex) re = g_regex_new("`([a-z-]+/[a-z_]+\\.[ch])`", 0, 0, NULL);
	g_autoptr(GMatchInfo) m = NULL;
	int named = 0;

	(void)state;
	for (g_regex_match(re, walk, 0, &m); g_match_info_matches(m); g_match_info_next(m, NULL)) {
		g_autofree char *rel = g_match_info_fetch(m, 1);
		g_autofree char *path = g_build_filename(source_root(), rel, NULL);

		if (!g_file_test(path, G_FILE_TEST_IS_REGULAR))
			fail_msg("the walk names %s, which does not exist", rel);
		named++;
	}
	assert_true(named >= 10);
}

static void test_walk_functions_exist(void **state)
{
	g_autofree char *walk = walk_section();
	g_autofree char *sources = all_sources();
	g_autofree char *slirp_h = NULL;
	g_autoptr(GRegex) re = g_regex_new("`([a-z_][a-z0-9_]*)\\(\\)`", 0, 0, NULL);
	g_autoptr(GMatchInfo) m = NULL;
	int named = 0;

	(void)state;
	assert_true(g_file_get_contents("/usr/include/slirp/libslirp.h", &slirp_h, NULL, NULL));
	for (g_regex_match(re, walk, 0, &m); g_match_info_matches(m); g_match_info_next(m, NULL)) {
		g_autofree char *fn = g_match_info_fetch(m, 1);
		g_autofree char *decl = g_strdup_printf(" %s(", fn);

		named++;
		if (defined_in(sources, fn))
			continue;
		if (g_str_has_prefix(fn, "slirp_") && strstr(slirp_h, decl))
			continue;
		fail_msg("the walk names %s(), which no source defines", fn);
	}
	assert_true(named >= 30);
}

/* The check itself can fail: a name no source defines is not found. */
static void test_check_catches_a_stale_name(void **state)
{
	g_autofree char *sources = all_sources();

	(void)state;
	assert_true(defined_in(sources, "bridge_guest_frame"));
	assert_false(defined_in(sources, "bridge_inbound_registered"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_walk_files_exist),
		cmocka_unit_test(test_walk_functions_exist),
		cmocka_unit_test(test_check_catches_a_stale_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
