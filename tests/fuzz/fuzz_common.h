/* fuzz_common.h - helpers shared by the libFuzzer targets: invariant checks, quiet logs, a private netns. */
#ifndef MESHSLIRP_FUZZ_COMMON_H
#define MESHSLIRP_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Both libFuzzer entry points, declared for -Wmissing-prototypes. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A violated invariant: name it and abort, so libFuzzer saves the input as crash-<sha1>. */
#define FUZZ_CHECK(cond)                                                              \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__,  \
				__LINE__, #cond);                                     \
			abort();                                                      \
		}                                                                     \
	} while (0)

/*
 * fuzz_quiet_logs() - install a GLib log writer that drops warnings and
 * below (guests choose how often those happen; printing them would slow the
 * fuzzer down) and aborts on g_critical()/g_error(), which only a
 * programming error triggers.  Call once, from LLVMFuzzerInitialize.
 */
void fuzz_quiet_logs(void);

/*
 * fuzz_private_netns() - move this process into a new, empty network
 * namespace with only `lo` up, so nothing the code under test sends can
 * leave the machine.  Needs root (CAP_SYS_ADMIN); without it, print why and
 * exit(1): these targets must never run in the host's namespace.
 */
void fuzz_private_netns(const char *target);

/* One's-complement sum of @len bytes as big-endian 16-bit words (odd tail padded). */
uint64_t fuzz_sum_be16(const uint8_t *p, size_t len);

/* An Internet checksum residual: the one's-complement sum of a region, modulo 0xffff. */
static inline uint32_t fuzz_residual(uint64_t sum)
{
	return (uint32_t)(sum % 0xffff);
}

#endif /* MESHSLIRP_FUZZ_COMMON_H */
