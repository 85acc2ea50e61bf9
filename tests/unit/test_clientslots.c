/* test_clientslots.c - the client slot table: accept into free slots, refuse when full, reuse after close. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>
#include <glib.h>

#include "common/clientslots.h"
#include "common/fdsource.h"
#include "tests/lib/fdlimit.h"
#include "common/util.h"

struct client {
	int id;
	struct client_slot slot;
	int opened;
};

struct table {
	struct client clients[3];
	int refused;
	int evict_asked;
	bool evict_frees;
	int listen_fd;
	struct sockaddr_un addr;
};

static void on_open(struct client_slot *slot, void *opaque)
{
	struct client *c = container_of(slot, struct client, slot);

	(void)opaque;
	c->opened++;
}

static void on_refuse(int conn, void *opaque)
{
	struct table *t = opaque;

	assert_true(conn >= 0);
	t->refused++;
}

/* Every slot busy: give up client 0 if the test allows it. */
static bool on_evict(void *opaque)
{
	struct table *t = opaque;

	t->evict_asked++;
	if (!t->evict_frees)
		return false;
	client_slot_close(&t->clients[0].slot);
	return true;
}

static const struct client_slots_ops ops = { .open = on_open, .refuse = on_refuse };
static const struct client_slots_ops ops_quiet = { .open = on_open };
static const struct client_slots_ops ops_evict = { .open = on_open, .refuse = on_refuse,
						   .evict = on_evict };

/* A listening socket in the abstract namespace: nothing on disk, nothing routed. */
static int setup(void **state)
{
	struct table *t = g_new0(struct table, 1);

	t->addr.sun_family = AF_UNIX;
	snprintf(t->addr.sun_path + 1, sizeof(t->addr.sun_path) - 1, "clientslots-%d", getpid());
	t->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(t->listen_fd >= 0);
	assert_int_equal(bind(t->listen_fd, (struct sockaddr *)&t->addr, sizeof(t->addr)), 0);
	assert_int_equal(listen(t->listen_fd, 16), 0);
	for (int i = 0; i < 3; i++)
		t->clients[i].id = i;
	client_slots_init(&CLIENT_SLOTS(t->clients, slot));
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct table *t = *state;

	for (int i = 0; i < 3; i++)
		client_slot_close(&t->clients[i].slot);
	close(t->listen_fd);
	g_free(t);
	return 0;
}

static int dial(const struct table *t)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (const struct sockaddr *)&t->addr, sizeof(t->addr)), 0);
	return fd;
}

static void test_fill_refuse_reuse(void **state)
{
	struct table *t = *state;
	struct client_slots s = CLIENT_SLOTS(t->clients, slot);
	int c[5];
	char b;

	assert_int_equal(s.n, 3);
	assert_ptr_equal(client_slots_at(&s, 2), &t->clients[2].slot);
	for (int i = 0; i < 3; i++)
		assert_int_equal(t->clients[i].slot.fd, -1);

	/* Four waiting, three slots: the fourth waits for the next call, then is refused and closed. */
	for (int i = 0; i < 4; i++)
		c[i] = dial(t);
	assert_int_equal(client_slots_accept(&s, t->listen_fd, &ops, t), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(t->clients[i].opened, 1);
		assert_true(t->clients[i].slot.fd >= 0);
	}
	assert_int_equal(t->refused, 0);
	assert_int_equal(client_slots_accept(&s, t->listen_fd, &ops, t), 0);
	assert_int_equal(t->refused, 1);
	assert_int_equal(read(c[3], &b, 1), 0);

	/* A closed slot is free again; nothing waiting is a no-op. */
	client_slot_close(&t->clients[1].slot);
	assert_int_equal(t->clients[1].slot.fd, -1);
	client_slot_close(&t->clients[1].slot);
	assert_int_equal(client_slots_accept(&s, t->listen_fd, &ops, t), 0);
	c[4] = dial(t);
	assert_int_equal(client_slots_accept(&s, t->listen_fd, &ops_quiet, t), 0);
	assert_int_equal(t->clients[1].opened, 2);
	assert_int_equal(t->clients[0].opened, 1);
	assert_int_equal(t->refused, 1);
	for (int i = 0; i < 5; i++)
		close(c[i]);
}

/* One call accepts at most as many connections as there are slots. */
static void test_accept_bounded(void **state)
{
	struct table *t = *state;
	struct client_slots s = CLIENT_SLOTS(t->clients, slot);
	int c[8];

	for (int i = 0; i < 8; i++)
		c[i] = dial(t);
	assert_int_equal(client_slots_accept(&s, t->listen_fd, &ops, t), 0);
	assert_int_equal(t->refused, 0);
	assert_int_equal(client_slots_accept(&s, t->listen_fd, &ops, t), 0);
	assert_int_equal(t->refused, 3);
	assert_int_equal(client_slots_accept(&s, t->listen_fd, &ops, t), 0);
	assert_int_equal(t->refused, 5);
	for (int i = 0; i < 8; i++)
		close(c[i]);
}

/* Every slot busy: the owner is asked to give one up, and the newcomer takes it if it did. */
static void test_evict(void **state)
{
	struct table *t = *state;
	struct client_slots s = CLIENT_SLOTS(t->clients, slot);
	int c[5];
	char b;

	for (int i = 0; i < 4; i++)
		c[i] = dial(t);
	assert_int_equal(client_slots_accept(&s, t->listen_fd, &ops_evict, t), 0);
	assert_int_equal(t->evict_asked, 0);
	/* The owner keeps everyone: refused as without the callback. */
	assert_int_equal(client_slots_accept(&s, t->listen_fd, &ops_evict, t), 0);
	assert_int_equal(t->evict_asked, 1);
	assert_int_equal(t->refused, 1);
	assert_int_equal(read(c[3], &b, 1), 0);
	/* The owner gives client 0 up: its peer sees the close, the newcomer has its slot. */
	t->evict_frees = true;
	c[4] = dial(t);
	assert_int_equal(client_slots_accept(&s, t->listen_fd, &ops_evict, t), 0);
	assert_int_equal(t->evict_asked, 2);
	assert_int_equal(t->refused, 1);
	assert_int_equal(t->clients[0].opened, 2);
	assert_true(t->clients[0].slot.fd >= 0);
	assert_int_equal(read(c[0], &b, 1), 0);
	for (int i = 0; i < 5; i++)
		close(c[i]);
}

static int accept_calls;
static struct client_backoff listener_backoff;

/* The listener's watch, as the metrics and control servers have it. */
static gboolean on_listener(int fd, GIOCondition ready, void *opaque)
{
	struct table *t = opaque;
	struct client_backoff *b = &listener_backoff;

	(void)ready;
	(void)fd;
	accept_calls++;
	if (client_slots_accept(&CLIENT_SLOTS(t->clients, slot), t->listen_fd, &ops, t))
		client_backoff_start(b);
	return G_SOURCE_CONTINUE;
}

/*
 * Out of descriptors, accept() fails and the connection stays queued: the
 * listener is readable on every turn.  Without the back-off the loop would
 * call its watch on each of them (a busy loop); with it, once per pause.
 */
static void test_backoff_out_of_fds(void **state)
{
	struct table *t = *state;
	struct client_backoff *b = &listener_backoff;
	GSource *src;
	int c;

	/* memcheck keeps its own descriptor table and limit: RLIMIT_NOFILE does not bind there. */
	if (getenv("MESHSLIRP_UNDER_VALGRIND")) {
		print_message("skipped under valgrind: its descriptor limit is its own\n");
		skip();
	}
	src = fdsource_new(t->listen_fd, G_IO_IN, on_listener, t);
	b->listener = src;
	c = dial(t);
	accept_calls = 0;
	assert_int_equal(test_iterate_without_fds(100), 0);
	assert_int_equal(accept_calls, 1);
	assert_int_equal(b->count, 1);
	assert_true(b->timer != 0);
	assert_int_equal(t->clients[0].opened, 0);
	/* Descriptors back: after the pause the queued connection is accepted. */
	for (int i = 0; i < 300 && !t->clients[0].opened; i++)
		g_main_context_iteration(NULL, TRUE);
	assert_int_equal(t->clients[0].opened, 1);
	assert_int_equal(b->timer, 0);
	client_backoff_stop(b);
	fdsource_clear(&src);
	close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fill_refuse_reuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_accept_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_evict, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backoff_out_of_fds, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
