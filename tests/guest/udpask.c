/* udpask.c - in the test guest: send one UDP datagram and print how many bytes came back. */

/*
 * busybox's nc has no UDP, so trust_guest.sh compiles this statically at
 * test time (never committed as a binary) and puts it into the guest:
 *   udpask ADDR PORT  ->  "BYTES n" (0 when nothing came within 3 s)
 * The guest kernel reassembles a fragmented answer before recv() sees it, so
 * n is the whole datagram or nothing.
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	static char buf[65536];
	struct sockaddr_in to = { .sin_family = AF_INET };
	struct pollfd p;
	ssize_t n = 0;
	int fd;

	if (argc != 3 || inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) {
		fprintf(stderr, "usage: udpask ADDR PORT\n");
		return 2;
	}
	to.sin_port = htons((unsigned short)atoi(argv[2]));
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || sendto(fd, "query", 5, 0, (struct sockaddr *)&to, sizeof(to)) != 5) {
		perror("udpask");
		return 1;
	}
	p.fd = fd;
	p.events = POLLIN;
	if (poll(&p, 1, 3000) == 1)
		n = recv(fd, buf, sizeof(buf), 0);
	printf("BYTES %zd\n", n < 0 ? 0 : n);
	return 0;
}
