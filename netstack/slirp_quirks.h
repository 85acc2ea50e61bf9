/* slirp_quirks.h - the libslirp 4.7 behaviours meshslirp relies on, each with a name and a test. */
#ifndef MESHSLIRP_SLIRP_QUIRKS_H
#define MESHSLIRP_SLIRP_QUIRKS_H

/*
 * Theory of operation.  meshslirp runs an unmodified libslirp and leans on
 * behaviours no API promises: when a callback runs, what a buffer is, how a
 * socket is set up.  Each one is listed here once, by name, with what it is,
 * why we depend on it, where, and what breaks if a libslirp upgrade changes
 * it.  The code that relies on one says "slirp quirk NAME" and keeps only the
 * local explanation its reader needs; tests/inproc/test_slirp_quirks.c has one
 * test per quirk, test_quirk_NAME, that drives a real libslirp and asserts the
 * behaviour itself, so an upgrade that changes it fails a named test instead
 * of a user.
 *
 * At start-up slirp_quirks_check_version() compares the libslirp we run on
 * with the one these quirks were checked against and warns on a difference:
 * cheap, and the one check that can be made without traffic.  The behaviours
 * themselves are checked by the tests, not at run time.
 */

#include <stdbool.h>

/* The libslirp release whose behaviour the quirks and their tests describe. */
#define SLIRP_QUIRKS_TESTED_VERSION "4.7.0"

enum slirp_quirk {
	SLIRP_QUIRK_REGISTER_IN_INPUT,       /* register_poll_fd inside slirp_input, before connect() */
	SLIRP_QUIRK_SYNACK_AFTER_POLLOUT,    /* the guest's SYN is answered only once the socket connects */
	SLIRP_QUIRK_CONNECT_PROBE,           /* a zero-byte send() decides whether the connect worked */
	SLIRP_QUIRK_SEND_PACKET_PRIVATE_COPY, /* send_packet's buffer is a private copy, ours to rewrite */
	SLIRP_QUIRK_HOSTFWD_BACKLOG_1,       /* hostfwd listens with a backlog of 1 */
	SLIRP_QUIRK_HOSTFWD_NOT_REGISTERED,  /* hostfwd listening sockets never reach register_poll_fd */
	SLIRP_QUIRK_ACCEPT_THEN_SYN,         /* accept, register_poll_fd, SYN to the guest: one call */
	SLIRP_QUIRK_LOOPBACK_CLIENT_AS_GATEWAY, /* a loopback hostfwd client appears as the gateway */
	SLIRP_QUIRK_GATEWAY_TO_LOOPBACK,     /* the gateway address is connected as 127.0.0.1 */
	SLIRP_QUIRK_BROADCAST_TO_LOOPBACK,   /* 255.255.255.255 is connected as 127.0.0.1 */
	SLIRP_QUIRK_IP_REASS_CRASH,          /* a lone last fragment crashes ip_reass (Debian 12 build) */
	SLIRP_QUIRK_MBUF_MTU_SIZED,          /* every mbuf, a held fragment's too, is as large as the MTU */
	SLIRP_QUIRK_NO_WINDOW_SCALING,       /* no window scale option: a 64 KiB window */
	SLIRP_QUIRK_MAXSEG_32K,              /* segments to the guest never exceed TCP_MAXSEG_MAX (32768) */
	SLIRP_QUIRK_CHECKSUMS_VERIFIED,      /* every checksum is verified in software; bad ones dropped */
	SLIRP_QUIRK_GUEST_ICMP_ERRORS_FREED, /* ICMP errors from the guest are freed unread */
	SLIRP_QUIRK_DHCP_NO_MTU_OPTION,      /* DHCP replies carry no Interface MTU (option 26) */
	SLIRP_QUIRK_NO_WINDOW_UPDATE,        /* a window reopened after closing is never announced */
	SLIRP_QUIRK_URGENT_POINTER_TRUSTED,  /* a guest's urgent pointer past its data: heap sent, count wraps */
	SLIRP_QUIRK_READ_ON_ERROR,           /* an error or hang-up makes it read a full buffer: abort */
	SLIRP_QUIRK_REASS_WRAPS_TO_ZERO,     /* reassembly ending on sequence 0 reads past its queue: crash */
	SLIRP_QUIRK_DHCP_EXHAUSTED_LEAK,     /* 16 leases held: 64 KiB leaked per DISCOVER of a new client */
	SLIRP_QUIRK_SYN_OPTIONS_OVERREAD,    /* an MSS option in a SYN's last bytes: its value read past them */
	SLIRP_QUIRK_SYN_MSS_RESETS_BUFFERS,  /* an MSS option on a SYN once connected empties both buffers */
	SLIRP_QUIRK_RESET_ANSWERED,          /* a reset for no connection is answered with a reset */
	SLIRP_QUIRK_COUNT
};

struct slirp_quirk_info {
	const char *name;      /* as in "slirp quirk NAME" comments and test_quirk_NAME */
	const char *what;      /* the behaviour, with libslirp's function */
	const char *why;       /* why meshslirp depends on it */
	const char *where;     /* our code that relies on it */
	const char *breaks;    /* what goes wrong if it changes */
};

/* slirp_quirk_info() - the static description of @q (never NULL for a valid @q). */
const struct slirp_quirk_info *slirp_quirk_info(enum slirp_quirk q);

/**
 * slirp_quirks_check_version() - compare the running libslirp with the tested one
 * @running:	slirp_version_string() of the library we run on
 *
 * Logs a warning naming both versions when they differ (the quirks may no
 * longer hold: run tests/inproc/test_slirp_quirks against it), a debug line
 * otherwise.  Start-up goes on either way.
 *
 * Return: true if @running is SLIRP_QUIRKS_TESTED_VERSION.
 */
bool slirp_quirks_check_version(const char *running);

#endif /* MESHSLIRP_SLIRP_QUIRKS_H */
