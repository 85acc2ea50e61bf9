/* test_tcpcc.c - tcpcc_set_unpaced(): what a TCP socket gets, and the errors on anything else. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "common/tcpcc.h"

/* A TCP socket ends on one of the two unpaced names, whatever the namespace's default. */
static void test_tcp_socket(void **state)
{
	char cc[32] = "";
	socklen_t len = sizeof(cc);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(tcpcc_set_unpaced(fd), 0);
	assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, &len), 0);
	assert_true(!strcmp(cc, TCPCC_UNPACED) || !strcmp(cc, TCPCC_UNPACED_FALLBACK));
	close(fd);
}

/* Neither a UDP socket, a unix one nor a closed descriptor passes for TCP. */
static void test_not_tcp(void **state)
{
	int udp = socket(AF_INET, SOCK_DGRAM, 0), unx = socket(AF_UNIX, SOCK_STREAM, 0);

	(void)state;
	assert_true(udp >= 0 && unx >= 0);
	assert_int_equal(tcpcc_set_unpaced(udp), -ENOPROTOOPT);
	assert_true(tcpcc_set_unpaced(unx) < 0);
	close(udp);
	close(unx);
	assert_int_equal(tcpcc_set_unpaced(udp), -EBADF);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tcp_socket),
		cmocka_unit_test(test_not_tcp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
