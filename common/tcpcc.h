/* tcpcc.h - an unpaced TCP congestion control for the daemon's own legs: to the sidecar, to the guest. */
#ifndef MESHSLIRP_COMMON_TCPCC_H
#define MESHSLIRP_COMMON_TCPCC_H

/*
 * Why: a TCP leg to the sidecar is a loopback hop, with no link and no
 * queue that congestion control could protect.  On a node whose default
 * (net.ipv4.tcp_congestion_control) is BBR, every such socket paces its
 * sends at BBR's bandwidth estimate, which on loopback it builds from the
 * sidecar's app-limited reads: the estimate, not the sidecar nor the
 * daemon, then sets how fast the guest's bytes leave (docs/PERFORMANCE.md,
 * "The sidecar leg, unpaced": 7.43 against 11.2 Gbit/s out on one flow).
 * Cubic and Reno leave pacing to an fq qdisc, which loopback has not.
 *
 * The same holds for the kernel path's private stack, whose sockets send
 * to the guest through a tun: each write is a copy into the guest's
 * memory.  There BBR's hrtimer paced every 64 KiB segment of every flow
 * *in* (docs/PERFORMANCE.md, "The private stack, unpaced": four flows 10.8
 * against 13.3 Gbit/s).
 *
 * Only our own legs of a steered flow: the guest's TCP and the sidecar's
 * keep whatever the node chose.  Not the legs to the real network (direct
 * mode), where congestion control has a job, nor libslirp's inbound legs,
 * where it measured slower (docs/PERFORMANCE.md, "Tried and not kept").
 */

#define TCPCC_UNPACED "cubic"        /* Linux's default; built in on Debian */
#define TCPCC_UNPACED_FALLBACK "reno" /* always built in */

/*
 * tcpcc_set_unpaced() - give TCP socket @fd an unpaced congestion control
 * (TCPCC_UNPACED, else TCPCC_UNPACED_FALLBACK; once the fallback worked,
 * the first is not tried again).  Call before connect(), or on a listener
 * before its connections arrive (accepted sockets inherit a congestion
 * control set on their listener).  Single-threaded.
 * Returns 0, or the -errno of the last try, logged at debug level (the
 * socket then keeps the node's default: a failure costs only speed).
 */
int tcpcc_set_unpaced(int fd);

#endif
