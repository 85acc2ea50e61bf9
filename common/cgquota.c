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

/* One cgroup hierarchy's mount, from a /proc/self/mountinfo line. */
struct cgquota_mount {
	char *root;                   /* the cgroup shown at the mount point */
	char *dir;                    /* the mount point */
	bool v2;                      /* cgroup2; else v1 with the cpu controller */
};

static void cgquota_mount_clear(gpointer p)
{
	struct cgquota_mount *m = p;

	g_free(m->root);
	g_free(m->dir);
}

/* Undo mountinfo's octal escapes (\040 for a space, \134 for a backslash) in place. */
static void cgquota_unescape(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = 0;
}

/* Whether the comma-separated @list names @item ("cpu" in v1's "rw,cpu,cpuacct"). */
static bool cgquota_list_has(const char *list, const char *item)
{
	g_auto(GStrv) c = g_strsplit(list, ",", -1);

	return g_strv_contains((const gchar *const *)c, item);
}

/*
 * The cgroup v2 and v1-cpu mounts in @text, in order; lines of other
 * filesystems and lines that do not parse are left out.  The caller owns
 * the array (g_array_unref()).
 */
static GArray *cgquota_parse_mounts(const char *text)
{
	GArray *mounts = g_array_new(FALSE, TRUE, sizeof(struct cgquota_mount));
	g_auto(GStrv) lines = g_strsplit(text, "\n", -1);

	g_array_set_clear_func(mounts, cgquota_mount_clear);
	for (char **l = lines; *l; l++) {
		const char *sep = strstr(*l, " - ");
		g_autofree char *head = NULL;
		g_auto(GStrv) pre = NULL, post = NULL;
		struct cgquota_mount m = { 0 };

		if (!sep)
			continue;
		head = g_strndup(*l, (gsize)(sep - *l));
		pre = g_strsplit(head, " ", -1);
		post = g_strsplit(sep + 3, " ", -1);
		if (g_strv_length(pre) < 5 || g_strv_length(post) < 3)
			continue;
		if (!strcmp(post[0], "cgroup2"))
			m.v2 = true;
		else if (strcmp(post[0], "cgroup") || !cgquota_list_has(post[2], "cpu"))
			continue;
		m.root = g_strdup(pre[3]);
		m.dir = g_strdup(pre[4]);
		cgquota_unescape(m.root);
		cgquota_unescape(m.dir);
		g_array_append_val(mounts, m);
	}
	return mounts;
}

/*
 * @path relative to @root ("/" for the root itself), or NULL when @path is
 * not @root or below it.  Points into @path.
 */
static const char *cgquota_below(const char *path, const char *root)
{
	size_t n = strlen(root);

	if (!strcmp(root, "/"))
		return path;
	if (strncmp(path, root, n) || (path[n] && path[n] != '/'))
		return NULL;
	return path[n] ? path + n : "/";
}

/*
 * g_file_get_contents() of @name into *@text (the caller's): 0, or -errno
 * for the failures the walk tells apart (-ENOENT, -ENOTDIR, -EISDIR,
 * -EACCES), -EIO for any other.
 */
static int cgquota_slurp(const char *name, char **text)
{
	g_autoptr(GError) err = NULL;

	if (g_file_get_contents(name, text, NULL, &err))
		return 0;
	switch (err->code) {
	case G_FILE_ERROR_NOENT:
		return -ENOENT;
	case G_FILE_ERROR_NOTDIR:
		return -ENOTDIR;
	case G_FILE_ERROR_ISDIR:
		return -EISDIR;
	case G_FILE_ERROR_ACCES:
		return -EACCES;
	default:
		return -EIO;
	}
}

/*
 * Read @file in @dir + @rel and in each ancestor up to @dir.  Returns 1 (a
 * quota: @where says which), 0 (none in any that exists), -EINVAL (a file
 * that does not parse, named in @where) or -errno (one that cannot be read).
 */
static int cgquota_walk(const char *dir, const char *rel, const char *file,
			int (*parse)(const char *text, bool *limited), char *where, size_t where_len)
{
	g_autofree char *at = g_strdup(rel);

	for (;;) {
		g_autofree char *name = g_build_filename(dir, at, file, NULL);
		g_autofree char *text = NULL;
		int ret = cgquota_slurp(name, &text);
		char *slash;
		bool limited;

		if (!ret) {
			if (parse(text, &limited)) {
				g_snprintf(where, where_len, "%s", name);
				return -EINVAL;
			}
			if (limited) {
				g_snprintf(where, where_len, "%s: %s", name, g_strstrip(text));
				return 1;
			}
		} else if (ret != -ENOENT && ret != -ENOTDIR) {
			return ret;
		}
		if (!strcmp(at, "/"))
			return 0;
		slash = strrchr(at, '/');
		slash[slash == at] = 0; /* "/a/b" -> "/a", "/a" -> "/" */
	}
}

/* Whether @path has a ".." component (it would lead the walk out of the mount). */
static bool cgquota_has_dotdot(const char *path)
{
	g_auto(GStrv) parts = g_strsplit(path, "/", -1);

	return g_strv_contains((const gchar *const *)parts, "..");
}

int cgquota_find_in(const char *cgroup_text, const char *mountinfo_text, char *where,
		    size_t where_len)
{
	g_autoptr(GArray) mounts = cgquota_parse_mounts(mountinfo_text);
	g_auto(GStrv) lines = g_strsplit(cgroup_text, "\n", -1);
	bool seen = false;

	for (char **l = lines; *l; l++) {
		g_auto(GStrv) f = NULL;
		bool v2;

		if (!**l)
			continue;
		f = g_strsplit(*l, ":", 3);
		if (g_strv_length(f) != 3 || f[2][0] != '/' || cgquota_has_dotdot(f[2]))
			return -EINVAL;
		v2 = !strcmp(f[0], "0") && !f[1][0];
		if (!v2 && !cgquota_list_has(f[1], "cpu"))
			continue;
		for (guint i = 0; i < mounts->len; i++) {
			const struct cgquota_mount *m = &g_array_index(mounts, struct cgquota_mount, i);
			const char *rel = m->v2 == v2 ? cgquota_below(f[2], m->root) : NULL;
			int ret;

			if (!rel)
				continue;
			seen = true;
			ret = v2 ? cgquota_walk(m->dir, rel, "cpu.max", cgquota_parse_cpu_max, where,
						where_len)
				 : cgquota_walk(m->dir, rel, "cpu.cfs_quota_us", cgquota_parse_cfs_quota,
						where, where_len);
			if (ret)
				return ret;
			break; /* one mount per hierarchy: bind mounts show the same files */
		}
	}
	return seen ? 0 : -ENOENT;
}

int cgquota_find(char *where, size_t where_len)
{
	g_autofree char *cgroup = NULL, *mountinfo = NULL;
	int ret;

	ret = cgquota_slurp("/proc/self/cgroup", &cgroup);
	if (!ret)
		ret = cgquota_slurp("/proc/self/mountinfo", &mountinfo);
	if (ret)
		return ret;
	return cgquota_find_in(cgroup, mountinfo, where, where_len);
}
