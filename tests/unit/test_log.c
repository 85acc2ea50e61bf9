/* test_log.c - unit tests of the log writer: a stderr nobody reads costs lines, never a wait. */

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <glib.h>

#include "common/log.h"

struct logtest {
	int saved_stderr;
	int rd;                        /* the pipe's read end; stderr is its write end */
	int shared;                    /* the write end as the test made it (another writer's view) */
	size_t cap;                    /* the pipe's size */
	char *dir;                     /* a FIFO's directory, or NULL */
};

enum logtest_pipe { LOGTEST_PIPE, LOGTEST_FIFO, LOGTEST_SOCKET };

/*
 * stderr becomes a pipe (or a FIFO, as a container runtime gives) of one
 * page, blocking, filled to the brim when @full; then log_init().
 */
static void logtest_setup(struct logtest *lt, enum logtest_pipe kind, bool full)
{
	int p[2];
	int cap;

	lt->dir = NULL;
	if (kind == LOGTEST_FIFO) {
		g_autofree char *path = NULL;

		lt->dir = g_dir_make_tmp("test-log-XXXXXX", NULL);
		assert_non_null(lt->dir);
		path = g_build_filename(lt->dir, "fifo", NULL);
		assert_int_equal(mkfifo(path, 0600), 0);
		p[0] = open(path, O_RDWR | O_CLOEXEC);    /* a reader, so the writer's open returns */
		p[1] = open(path, O_WRONLY | O_CLOEXEC);
		assert_true(p[0] >= 0 && p[1] >= 0);
	} else if (kind == LOGTEST_SOCKET) {
		int sz = 4096;

		/* A stream socket, as journald's: p[0] reads, p[1] is stderr. */
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p), 0);
		assert_int_equal(setsockopt(p[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)), 0);
		assert_int_equal(setsockopt(p[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz)), 0);
	} else {
		assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	}
	if (kind == LOGTEST_SOCKET) {
		char junk[512] = { 0 };
		ssize_t n;

		lt->cap = 0;
		while (full && (n = send(p[1], junk, sizeof(junk), MSG_DONTWAIT)) > 0)
			lt->cap += (size_t)n;
		assert_true(!full || lt->cap > 0);
		full = false;
	} else {
		cap = fcntl(p[1], F_SETPIPE_SZ, 4096);
		assert_true(cap >= 4096);
		lt->cap = (size_t)cap;
	}
	if (full) {
		g_autofree char *junk = g_malloc0(lt->cap);

		/* A blocking write end, as a launcher's pipe is: exactly its size fits. */
		assert_int_equal(write(p[1], junk, lt->cap), (ssize_t)lt->cap);
	}
	lt->saved_stderr = dup(STDERR_FILENO);
	assert_true(lt->saved_stderr >= 0);
	assert_int_equal(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
	lt->shared = p[1];
	lt->rd = p[0];
	log_init(LOG_LEVEL_INFO);
}

static void logtest_teardown(struct logtest *lt)
{
	alarm(0);
	dup2(lt->saved_stderr, STDERR_FILENO);
	close(lt->saved_stderr);
	close(lt->rd);
	close(lt->shared);
	if (lt->dir) {
		g_autofree char *path = g_build_filename(lt->dir, "fifo", NULL);

		unlink(path);
		rmdir(lt->dir);
		g_free(lt->dir);
	}
}

/* Read what the pipe holds (non-blocking), at most @size - 1 bytes, as a string. */
static size_t logtest_read(struct logtest *lt, char *buf, size_t size)
{
	size_t have = 0;
	ssize_t n;

	assert_int_equal(fcntl(lt->rd, F_SETFL, O_NONBLOCK), 0);
	while (have < size - 1 && (n = read(lt->rd, buf + have, size - 1 - have)) > 0)
		have += (size_t)n;
	buf[have] = 0;
	return have;
}

/*
 * A full pipe (or FIFO) nobody reads: each line returns at once, dropped
 * and counted (with a blocking write the first g_message() waits forever
 * and the alarm ends the test).  The description other writers share stays
 * blocking: the daemon writes through one of its own.  Once the reader
 * drains the pipe, the next line goes out after one that says how many
 * were dropped.
 */
static void check_full_stderr_drops_lines(enum logtest_pipe kind)
{
	struct logtest lt;
	uint64_t before = log_dropped_lines();
	g_autofree char *junk = NULL;
	char out[1024];

	logtest_setup(&lt, kind, true);
	alarm(20);
	g_message("one");
	g_message("two");
	alarm(0);
	assert_int_equal(log_dropped_lines() - before, 2);
	assert_false(fcntl(lt.shared, F_GETFL) & O_NONBLOCK);

	junk = g_malloc(lt.cap);
	for (size_t have = 0; have < lt.cap;) {
		ssize_t n = read(lt.rd, junk + have, lt.cap - have);

		assert_true(n > 0);
		have += (size_t)n;
	}
	g_message("three");
	logtest_read(&lt, out, sizeof(out));
	assert_non_null(strstr(out, "warning: 2 log line(s) dropped: stderr was not being read\n"));
	assert_non_null(strstr(out, "info: three\n"));
	assert_true(strstr(out, "dropped") < strstr(out, "three"));
	assert_null(strstr(out, "one"));
	assert_int_equal(log_dropped_lines() - before, 2);
	/* Said once: the next line comes alone. */
	g_message("four");
	logtest_read(&lt, out, sizeof(out));
	assert_null(strstr(out, "dropped"));
	assert_non_null(strstr(out, "info: four\n"));
	logtest_teardown(&lt);
}

static void test_full_pipe_drops_lines(void **state)
{
	(void)state;
	check_full_stderr_drops_lines(LOGTEST_PIPE);
}

/* A FIFO, as a container runtime gives: only a description of the daemon's own keeps it from blocking. */
static void test_full_fifo_drops_lines(void **state)
{
	(void)state;
	check_full_stderr_drops_lines(LOGTEST_FIFO);
}

/* A stream socket (journald's) full: sent to with MSG_DONTWAIT, never waited for. */
static void test_full_socket_drops_lines(void **state)
{
	(void)state;
	check_full_stderr_drops_lines(LOGTEST_SOCKET);
}

/* A message longer than a line is cut to LOG_LINE_MAX bytes, still ending in a newline. */
static void test_long_message_cut(void **state)
{
	struct logtest lt;
	g_autofree char *msg = g_malloc(3 * LOG_LINE_MAX);
	g_autofree char *out = g_malloc(4 * LOG_LINE_MAX);
	size_t n;
	int cap;

	(void)state;
	logtest_setup(&lt, LOGTEST_PIPE, false);
	cap = fcntl(STDERR_FILENO, F_SETPIPE_SZ, 4 * LOG_LINE_MAX);
	assert_true(cap >= 4 * LOG_LINE_MAX);
	memset(msg, 'm', 3 * LOG_LINE_MAX - 1);
	msg[3 * LOG_LINE_MAX - 1] = 0;
	g_message("%s", msg);
	n = logtest_read(&lt, out, 4 * LOG_LINE_MAX);
	assert_int_equal(n, LOG_LINE_MAX - 1);
	assert_int_equal(out[n - 1], '\n');
	assert_int_equal(out[n - 2], 'm');
	logtest_teardown(&lt);
}

/*
 * A FIFO whose reader went away before log_init(): the daemon cannot open
 * a description of its own (ENXIO), so each line asks poll() for room
 * first.  No reader: dropped, no SIGPIPE; a reader with a full FIFO:
 * dropped, no wait; room again: the line goes out after the count (the
 * mode's own warning, said at log_init(), was the first drop).  Four
 * pages: poll() counts a pipe's free pages, and a one-page pipe with a
 * line in it has none.
 */
static void test_unreopenable_fifo_polls_for_room(void **state)
{
	char *dir = g_dir_make_tmp("test-log-XXXXXX", NULL); /* lt's: logtest_teardown() frees it */
	g_autofree char *path = NULL;
	g_autofree char *junk = NULL;
	uint64_t before = log_dropped_lines();
	struct logtest lt = { .dir = dir };
	char out[1024];
	int filler, cap;

	(void)state;
	assert_non_null(dir);
	path = g_build_filename(dir, "fifo", NULL);
	assert_int_equal(mkfifo(path, 0600), 0);
	lt.rd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	lt.shared = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(lt.rd >= 0 && lt.shared >= 0);
	close(lt.rd);                  /* no reader: a reopen for writing says ENXIO */
	lt.saved_stderr = dup(STDERR_FILENO);
	assert_true(lt.saved_stderr >= 0);
	assert_int_equal(dup2(lt.shared, STDERR_FILENO), STDERR_FILENO);
	alarm(20);
	log_init(LOG_LEVEL_INFO);
	g_message("one");
	assert_int_equal(log_dropped_lines() - before, 2);

	/* A reader, and the FIFO full to the brim through another writer's description. */
	lt.rd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	filler = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	assert_true(lt.rd >= 0 && filler >= 0);
	cap = fcntl(filler, F_SETPIPE_SZ, 4 * 4096);
	assert_true(cap >= 4 * 4096);
	junk = g_malloc0((size_t)cap);
	assert_int_equal(write(filler, junk, (size_t)cap), cap);
	g_message("two");
	assert_int_equal(log_dropped_lines() - before, 3);
	assert_false(fcntl(lt.shared, F_GETFL) & O_NONBLOCK);

	for (ssize_t have = 0; have < cap;) {
		ssize_t n = read(lt.rd, junk + have, (size_t)(cap - have));

		assert_true(n > 0);
		have += n;
	}
	g_message("three");
	alarm(0);
	logtest_read(&lt, out, sizeof(out));
	assert_non_null(strstr(out, "warning: 3 log line(s) dropped: stderr was not being read\n"));
	assert_non_null(strstr(out, "info: three\n"));
	assert_null(strstr(out, "two"));
	close(filler);
	logtest_teardown(&lt);
}

/* Read all @fd holds (non-blocking) into @buf (@size bytes at most); the count. */
static size_t logtest_drain(int fd, char *buf, size_t size)
{
	size_t have = 0;
	ssize_t n;

	while (have < size && (n = recv(fd, buf + have, size - have, MSG_DONTWAIT)) > 0)
		have += (size_t)n;
	return have;
}

/*
 * A stream socket with room for part of a line takes that part: the rest
 * goes out first with the next line, so the reader sees every line whole
 * and none counted as dropped; while the socket stays full, the next line
 * is dropped and counted, and the rest still comes first.  How much a
 * unix socket takes depends on the kernel's accounting, so the socket is
 * filled to a few levels in turn until one takes part of the line.
 */
static void test_socket_takes_part_of_a_line(void **state)
{
	g_autofree char *msg = g_malloc(LOG_LINE_MAX);
	g_autofree char *buf = g_malloc(8 * LOG_LINE_MAX);
	bool partial = false;

	(void)state;
	memset(msg, 'p', LOG_LINE_MAX);
	msg[LOG_LINE_MAX - 200] = 0;
	for (size_t fill = 0; fill <= 16384 && !partial; fill += 256) {
		g_autofree char *line = g_strdup_printf("meshslirp[%d]: info: %s\n", (int)getpid(), msg);
		g_autofree char *all = NULL;
		char junk[256] = { 0 };
		size_t put = 0, have, n;
		uint64_t before;
		struct logtest lt;
		int inq = 0, one = 1;

		logtest_setup(&lt, LOGTEST_SOCKET, false);
		/* The least send buffer: the kernel sends the line in two pieces. */
		assert_int_equal(setsockopt(lt.shared, SOL_SOCKET, SO_SNDBUF, &one, sizeof(one)), 0);
		while (put < fill && send(lt.shared, junk, sizeof(junk), MSG_DONTWAIT) > 0)
			put += sizeof(junk);
		before = log_dropped_lines();
		alarm(20);
		g_message("%s", msg);
		assert_int_equal(ioctl(lt.rd, FIONREAD, &inq), 0);
		if (log_dropped_lines() != before || (size_t)inq <= put ||
		    (size_t)inq - put >= strlen(line)) {
			alarm(0);
			logtest_teardown(&lt);
			continue;
		}
		partial = true;
		/* Nothing read: still full, the next line is dropped and the rest kept. */
		g_message("dropped");
		assert_int_equal(log_dropped_lines() - before, 1);
		have = logtest_drain(lt.rd, buf, 8 * LOG_LINE_MAX);
		g_message("after");
		alarm(0);
		n = logtest_drain(lt.rd, buf + have, 8 * LOG_LINE_MAX - have);
		assert_true(have + n > put);
		all = g_strndup(buf + put, have + n - put);
		/* The line whole and first, then the count, then the next line: nothing else. */
		assert_true(g_str_has_prefix(all, line));
		assert_non_null(strstr(all + strlen(line), "warning: 1 log line(s) dropped"));
		assert_true(g_str_has_suffix(all, "info: after\n"));
		assert_null(strstr(all, "info: dropped"));
		assert_int_equal(log_dropped_lines() - before, 1);
		logtest_teardown(&lt);
	}
	assert_true(partial);
}

/* log_enabled() follows the level log_init() was given: what a line per flow asks first. */
static void test_log_enabled(void **state)
{
	(void)state;
	log_init(LOG_LEVEL_INFO);
	assert_true(log_enabled(LOG_LEVEL_WARNING));
	assert_true(log_enabled(LOG_LEVEL_INFO));
	assert_false(log_enabled(LOG_LEVEL_DEBUG));
	log_init(LOG_LEVEL_DEBUG);
	assert_true(log_enabled(LOG_LEVEL_DEBUG));
	log_init(LOG_LEVEL_ERROR);
	assert_false(log_enabled(LOG_LEVEL_WARNING));
	assert_true(log_enabled(LOG_LEVEL_ERROR));
	log_init(LOG_LEVEL_INFO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_pipe_drops_lines),
		cmocka_unit_test(test_full_fifo_drops_lines),
		cmocka_unit_test(test_full_socket_drops_lines),
		cmocka_unit_test(test_long_message_cut),
		cmocka_unit_test(test_unreopenable_fifo_polls_for_room),
		cmocka_unit_test(test_socket_takes_part_of_a_line),
		cmocka_unit_test(test_log_enabled),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
