/* tcpcc.h - an unpaced TCP congestion control for the daemon's loopback legs to the sidecar. */
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
 * Only our own outbound legs: the guest's TCP and the sidecar's keep
 * whatever the node chose.  Not the legs to the real network (direct
 * mode), where congestion control has a job, nor the inbound legs, where
 * it measured slower (docs/PERFORMANCE.md, "Tried and not kept").
 */

#define TCPCC_UNPACED "cubic"        /* Linux's default; built in on Debian */
#define TCPCC_UNPACED_FALLBACK "reno" /* always built in */

/*
 * tcpcc_set_unpaced() - give TCP socket @fd an unpaced congestion control
 * (TCPCC_UNPACED, else TCPCC_UNPACED_FALLBACK; once the fallback worked,
 * the first is not tried again).  Call before connect().  Single-threaded.
 * Returns 0, or the -errno of the last try, logged at debug level (the
 * socket then keeps the node's default: a failure costs only speed).
 */
int tcpcc_set_unpaced(int fd);

#endif
