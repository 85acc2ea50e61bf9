/* testns.h - run a test process inside its own network namespace (no route out). */
#ifndef MESHSLIRP_TESTS_TESTNS_H
#define MESHSLIRP_TESTS_TESTNS_H

/*
 * The daemon under test must never open a socket in the machine's own
 * namespace: its direct flows would follow the machine's routes.  In-process
 * tests call testns_enter() before they start the daemon; it moves the whole
 * process into a new, empty network namespace with loopback up and, like a
 * pod, one more interface ("pod0", one end of a veth pair whose other end is down) holding TESTNS_POD_ADDRESS/32:
 * the pod address the egress tests aim at.  Nothing routes anywhere else.
 *
 * Without the privilege to create a namespace the test is skipped (exit 77),
 * unless CI=true, where a skip would hide a test: then it fails.
 */

#define TESTNS_POD_ADDRESS "198.18.0.2"

/* testns_enter() - once per process; later calls do nothing. */
void testns_enter(const char *who);

#endif /* MESHSLIRP_TESTS_TESTNS_H */
