/* test_cgquota.c - a cgroup CPU quota found over a process's cgroup, v1 and v2, in made-up trees and on this machine. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "common/cgquota.h"

/* One text a quota parser is given, and what it must say. */
struct parse_case {
	const char *text;
	int ret;
	bool limited;                 /* checked when ret is 0 */
};

/* Run @parse over @n cases; @limited starts as the opposite of the answer, so it must be set. */
static void check_parse(int (*parse)(const char *text, bool *limited),
			const struct parse_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		bool limited = !cases[i].limited;

		assert_int_equal(parse(cases[i].text, &limited), cases[i].ret);
		if (!cases[i].ret)
			assert_int_equal(limited, cases[i].limited);
	}
}

/* cpu.max as the kernel writes it; anything else is refused, not guessed at. */
static void test_parse_cpu_max(void **state)
{
	static const struct parse_case cases[] = {
		{ "max 100000\n", 0, false },
		{ "50000 100000\n", 0, true },
		{ "1000 1000", 0, true },
		{ "max", -EINVAL, false },
		{ "max 100000 7\n", -EINVAL, false },
		{ "50000  100000\n", -EINVAL, false },
		{ "-5 100000\n", -EINVAL, false },
		{ "MAX 100000\n", -EINVAL, false },
		{ "50000 max\n", -EINVAL, false },
		{ "", -EINVAL, false },
	};

	(void)state;
	check_parse(cgquota_parse_cpu_max, cases, G_N_ELEMENTS(cases));
}

/* cpu.cfs_quota_us: -1 (none) or a count. */
static void test_parse_cfs_quota(void **state)
{
	static const struct parse_case cases[] = {
		{ "-1\n", 0, false },
		{ "50000\n", 0, true },
		{ "1", 0, true },
		{ "-2\n", -EINVAL, false },
		{ "1x\n", -EINVAL, false },
		{ "", -EINVAL, false },
		{ "max\n", -EINVAL, false },
	};

	(void)state;
	check_parse(cgquota_parse_cfs_quota, cases, G_N_ELEMENTS(cases));
}

/* A made-up cgroup tree under a fresh temporary directory. */
struct tree {
	char *root;
};

static int tree_setup(void **state)
{
	struct tree *t = g_new0(struct tree, 1);

	t->root = g_dir_make_tmp("cgquota-XXXXXX", NULL);
	assert_non_null(t->root);
	*state = t;
	return 0;
}

static void tree_remove(const char *dir)
{
	g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
	const char *name;

	while (d && (name = g_dir_read_name(d))) {
		g_autofree char *p = g_build_filename(dir, name, NULL);

		if (g_file_test(p, G_FILE_TEST_IS_DIR))
			tree_remove(p);
		else
			g_unlink(p);
	}
	g_rmdir(dir);
}

static int tree_teardown(void **state)
{
	struct tree *t = *state;

	tree_remove(t->root);
	g_free(t->root);
	g_free(t);
	return 0;
}

/* Write @text to @rel (a path under the tree's root), making its directories. */
static void tree_put(const struct tree *t, const char *rel, const char *text)
{
	g_autofree char *path = g_build_filename(t->root, rel, NULL);
	g_autofree char *dir = g_path_get_dirname(path);

	assert_int_equal(g_mkdir_with_parents(dir, 0755), 0);
	assert_true(g_file_set_contents(path, text, -1, NULL));
}

static char *tree_path(const struct tree *t, const char *rel)
{
	return g_build_filename(t->root, rel, NULL);
}

/* A mountinfo line for a cgroup filesystem: @root shown at @dir, @fstype with @opts. */
static char *mountinfo_line(const char *root, const char *dir, const char *fstype,
			    const char *opts)
{
	return g_strdup_printf("35 24 0:30 %s %s rw,nosuid,nodev,noexec,relatime shared:9 - %s %s %s\n",
			       root, dir, fstype, fstype, opts);
}

/* The mountinfo of a v2 host: cgroup2 at the tree's "v2", its root the hierarchy's. */
static char *mountinfo_v2(const struct tree *t)
{
	g_autofree char *dir = tree_path(t, "v2");
	g_autofree char *line = mountinfo_line("/", dir, "cgroup2", "rw,nsdelegate");

	return g_strconcat("22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n", line, NULL);
}

/* v2: a quota set on an ancestor binds the cgroup below it; the deepest quota is named. */
static void test_v2_ancestor_quota(void **state)
{
	struct tree *t = *state;
	g_autofree char *mi = mountinfo_v2(t);
	g_autofree char *want = tree_path(t, "v2/kubepods/pod1/cpu.max: 200000 100000");
	char where[512];

	tree_put(t, "v2/cpu.max", "max 100000\n");
	tree_put(t, "v2/kubepods/cpu.max", "max 100000\n");
	tree_put(t, "v2/kubepods/pod1/cpu.max", "200000 100000\n");
	tree_put(t, "v2/kubepods/pod1/compute/cpu.max", "max 100000\n");
	assert_int_equal(cgquota_find_in("0::/kubepods/pod1/compute\n", mi, where, sizeof(where)), 1);
	assert_string_equal(where, want);
}

/* v2 with "max" all the way up: none, and @where left alone. */
static void test_v2_no_quota(void **state)
{
	struct tree *t = *state;
	g_autofree char *mi = mountinfo_v2(t);
	char where[512] = "";

	tree_put(t, "v2/cpu.max", "max 100000\n");
	tree_put(t, "v2/a/cpu.max", "max 100000\n");
	assert_int_equal(cgquota_find_in("0::/a\n", mi, where, sizeof(where)), 0);
	assert_string_equal(where, "");
	/* A cgroup whose directory is gone (" (deleted)"): its parent is read. */
	assert_int_equal(cgquota_find_in("0::/a/b (deleted)\n", mi, where, sizeof(where)), 0);
}

/*
 * A container given only its own subtree (cgroup v1 without a cgroup
 * namespace): the mount's root is the container's cgroup, which
 * /proc/self/cgroup names in full.  That prefix is taken off: a quota on a
 * cgroup below it is found, and the mount's root itself is read.
 */
static void test_mount_rooted_deeper(void **state)
{
	struct tree *t = *state;
	g_autofree char *dir = tree_path(t, "cpu");
	g_autofree char *mi = mountinfo_line("/docker/abc", dir, "cgroup", "rw,cpu,cpuacct");
	char where[512];

	tree_put(t, "cpu/cpu.cfs_quota_us", "-1\n");
	tree_put(t, "cpu/sub/cpu.cfs_quota_us", "50000\n");
	assert_int_equal(cgquota_find_in("4:cpu,cpuacct:/docker/abc/sub\n", mi, where, sizeof(where)),
			 1);
	assert_non_null(strstr(where, "/cpu/sub/cpu.cfs_quota_us: 50000"));
	assert_int_equal(cgquota_find_in("4:cpu,cpuacct:/docker/abc\n", mi, where, sizeof(where)), 0);
	tree_put(t, "cpu/cpu.cfs_quota_us", "20000\n");
	assert_int_equal(cgquota_find_in("4:cpu,cpuacct:/docker/abc\n", mi, where, sizeof(where)), 1);
	/* A path outside the mount's root ("/docker/abcd" is not below "/docker/abc"): not in view. */
	assert_int_equal(cgquota_find_in("4:cpu,cpuacct:/docker/abcd\n", mi, where, sizeof(where)),
			 -ENOENT);
}

/*
 * v1: the cpu controller's mount serves the cpu line (other controllers'
 * mounts and lines are passed over), its mount point unescaped.
 */
static void test_v1(void **state)
{
	struct tree *t = *state;
	g_autofree char *mem = tree_path(t, "memory");
	g_autofree char *cpu = tree_path(t, "cpu\\040acct");
	g_autofree char *l1 = mountinfo_line("/", mem, "cgroup", "rw,memory");
	g_autofree char *l2 = mountinfo_line("/", cpu, "cgroup", "rw,cpu,cpuacct");
	g_autofree char *mi = g_strconcat(l1, l2, NULL);
	const char *text = "9:name=systemd:/\n4:memory:/pod\n2:cpu,cpuacct:/pod/vm\n1:cpuset:/\n";
	char where[512];

	tree_put(t, "memory/pod/cpu.cfs_quota_us", "1000\n"); /* not the cpu controller's */
	tree_put(t, "cpu acct/cpu.cfs_quota_us", "-1\n");
	tree_put(t, "cpu acct/pod/cpu.cfs_quota_us", "-1\n");
	tree_put(t, "cpu acct/pod/vm/cpu.cfs_quota_us", "-1\n");
	assert_int_equal(cgquota_find_in(text, mi, where, sizeof(where)), 0);
	tree_put(t, "cpu acct/pod/cpu.cfs_quota_us", "150000\n");
	assert_int_equal(cgquota_find_in(text, mi, where, sizeof(where)), 1);
	assert_non_null(strstr(where, "/cpu acct/pod/cpu.cfs_quota_us: 150000"));
	/* "cpuacct" alone is not the cpu controller: nothing to read. */
	assert_int_equal(cgquota_find_in("2:cpuacct:/pod/vm\n", mi, where, sizeof(where)), -ENOENT);
}

/* Nothing to look at, malformed lines and quota files: errors, never a guess. */
static void test_errors(void **state)
{
	struct tree *t = *state;
	g_autofree char *mi = mountinfo_v2(t);
	g_autofree char *bad = tree_path(t, "v2/a/cpu.max");
	char where[512];

	/* No cgroup filesystem mounted (as under ip netns exec). */
	assert_int_equal(cgquota_find_in("0::/a\n", "22 1 8:1 / / rw - ext4 /dev/vda1 rw\n", where,
					 sizeof(where)),
			 -ENOENT);
	assert_int_equal(cgquota_find_in("", mi, where, sizeof(where)), -ENOENT);
	assert_int_equal(cgquota_find_in("garbage\n", mi, where, sizeof(where)), -EINVAL);
	assert_int_equal(cgquota_find_in("0::relative\n", mi, where, sizeof(where)), -EINVAL);
	assert_int_equal(cgquota_find_in("0::/a/../../etc\n", mi, where, sizeof(where)), -EINVAL);
	tree_put(t, "v2/a/cpu.max", "lots\n");
	assert_int_equal(cgquota_find_in("0::/a\n", mi, where, sizeof(where)), -EINVAL);
	assert_string_equal(where, bad);
	/* A quota file that exists but cannot be read: its error, not "absent". */
	tree_put(t, "v2/b/cpu.max/x", "");
	assert_int_equal(cgquota_find_in("0::/b\n", mi, where, sizeof(where)), -EISDIR);
}

/* This machine's own cgroup: an answer, not an error (procfs and sysfs are there). */
static void test_this_machine(void **state)
{
	char where[512] = "";
	int ret;

	(void)state;
	ret = cgquota_find(where, sizeof(where));
	print_message("cgquota_find() on this machine: %d %s\n", ret, where);
	assert_true(ret == 0 || ret == 1 || ret == -ENOENT);
	if (ret == 1)
		assert_non_null(strstr(where, ": "));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_cpu_max),
		cmocka_unit_test(test_parse_cfs_quota),
		cmocka_unit_test_setup_teardown(test_v2_ancestor_quota, tree_setup, tree_teardown),
		cmocka_unit_test_setup_teardown(test_v2_no_quota, tree_setup, tree_teardown),
		cmocka_unit_test_setup_teardown(test_mount_rooted_deeper, tree_setup, tree_teardown),
		cmocka_unit_test_setup_teardown(test_v1, tree_setup, tree_teardown),
		cmocka_unit_test_setup_teardown(test_errors, tree_setup, tree_teardown),
		cmocka_unit_test(test_this_machine),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
