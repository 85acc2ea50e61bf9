/* cgquota.c - whether a cgroup CPU quota applies to this process (see cgquota.h). */

#include "cgquota.h"

#include <errno.h>
#include <string.h>

#include <glib.h>

/* Whether @s is a decimal count (no sign, no space), as the kernel writes them. */
static bool cgquota_is_count(const char *s)
{
	return g_ascii_string_to_unsigned(s, 10, 0, G_MAXUINT64, NULL, NULL);
}

int cgquota_parse_cpu_max(const char *text, bool *limited)
{
	g_autofree char *copy = g_strstrip(g_strdup(text));
	g_auto(GStrv) f = g_strsplit(copy, " ", -1);

	if (g_strv_length(f) != 2 || !cgquota_is_count(f[1]))
		return -EINVAL;
	if (!strcmp(f[0], "max")) {
		*limited = false;
		return 0;
	}
	if (!cgquota_is_count(f[0]))
		return -EINVAL;
	*limited = true;
	return 0;
}

int cgquota_parse_cfs_quota(const char *text, bool *limited)
{
	g_autofree char *copy = g_strstrip(g_strdup(text));

	if (!strcmp(copy, "-1")) {
		*limited = false;
		return 0;
	}
	if (!cgquota_is_count(copy))
		return -EINVAL;
	*limited = true;
	return 0;
}

/*
 * Read @file under @root at @path and each of its ancestors, deepest
 * first.  Returns 1 (a quota: @where says which), 0 (none in any that
 * exists), -EINVAL (a file that does not parse).
 */
static int cgquota_walk(const char *root, const char *path, const char *file,
			int (*parse)(const char *text, bool *limited), char *where, size_t where_len)
{
	g_autofree char *dir = g_strdup(path);

	for (;;) {
		g_autofree char *name = g_build_filename(root, dir, file, NULL);
		g_autofree char *text = NULL;
		char *slash;
		bool limited;

		if (g_file_get_contents(name, &text, NULL, NULL)) {
			if (parse(text, &limited))
				return -EINVAL;
			if (limited) {
				g_snprintf(where, where_len, "%s: %s", name, g_strstrip(text));
				return 1;
			}
		}
		if (!strcmp(dir, "/"))
			return 0;
		slash = strrchr(dir, '/');
		slash[slash == dir] = 0; /* "/a/b" -> "/a", "/a" -> "/" */
	}
}

/* Whether the comma-separated @controllers name "cpu" (v1's "cpu,cpuacct"). */
static bool cgquota_has_cpu(const char *controllers)
{
	g_auto(GStrv) c = g_strsplit(controllers, ",", -1);

	return g_strv_contains((const gchar *const *)c, "cpu");
}

int cgquota_find_in(const char *cgroup_text, const char *v2_root, const char *const *v1_roots,
		    char *where, size_t where_len)
{
	g_auto(GStrv) lines = g_strsplit(cgroup_text, "\n", -1);
	bool named = false;

	for (char **l = lines; *l; l++) {
		g_auto(GStrv) f = NULL;
		int ret = 0;

		if (!**l)
			continue;
		f = g_strsplit(*l, ":", 3);
		if (g_strv_length(f) != 3 || f[2][0] != '/')
			return -EINVAL;
		if (!strcmp(f[0], "0") && !f[1][0]) {
			if (!v2_root)
				continue;
			named = true;
			ret = cgquota_walk(v2_root, f[2], "cpu.max", cgquota_parse_cpu_max, where,
					   where_len);
		} else if (cgquota_has_cpu(f[1])) {
			const char *const *r = v1_roots;

			while (r && *r && !g_file_test(*r, G_FILE_TEST_IS_DIR))
				r++;
			if (!r || !*r)
				continue;
			named = true;
			ret = cgquota_walk(*r, f[2], "cpu.cfs_quota_us", cgquota_parse_cfs_quota,
					   where, where_len);
		}
		if (ret)
			return ret;
	}
	return named ? 0 : -ENOENT;
}

int cgquota_find(char *where, size_t where_len)
{
	static const char *const v1_roots[] = { "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu",
						NULL };
	g_autofree char *text = NULL;
	g_autoptr(GError) err = NULL;
	bool unified = g_file_test("/sys/fs/cgroup/cgroup.controllers", G_FILE_TEST_EXISTS);

	if (!g_file_get_contents("/proc/self/cgroup", &text, NULL, &err))
		return err->domain == G_FILE_ERROR && err->code == G_FILE_ERROR_NOENT ? -ENOENT
										  : -EIO;
	return cgquota_find_in(text, unified ? "/sys/fs/cgroup" : NULL, v1_roots, where,
			       where_len);
}
