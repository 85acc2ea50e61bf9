/* fuzz_proxy_parse.c - libFuzzer target: proxy_parse() invariants on arbitrary bytes and their prefixes. */

/*
 * Build (clang with libFuzzer) and the short bounded run that `meson test` does:
 *
 *   CC=clang meson setup build-fuzz -Dfuzzing=true -Dtests=disabled
 *   ninja -C build-fuzz && meson test -C build-fuzz --suite fuzz
 *
 * A 5-minute run.  libFuzzer adds new inputs to its first corpus directory,
 * so run it on a writable copy of the seeds (or pass an empty temporary
 * directory first and the seed directory second, as tests/fuzz/run-fuzzer does):
 *
 *   cp -r tests/fuzz/corpus/proxy_parse /tmp/proxy_parse.corpus
 *   build-fuzz/tests/fuzz/fuzz_proxy_parse -max_total_time=300 /tmp/proxy_parse.corpus
 *
 * Every violated invariant abort()s, and libFuzzer saves the input as crash-<sha1>.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy-bridge/proxy_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                    \
	do {                                                                           \
		if (!(cond)) {                                                         \
			fprintf(stderr, "fuzz_proxy_parse: invariant violated: %s (line %d)\n", \
				#cond, __LINE__);                                      \
			abort();                                                       \
		}                                                                      \
	} while (0)

struct result {
	enum proxy_parse_status st;
	enum proxy_error err;
	struct proxy_header h;
};

/*
 * Parse the first @len bytes from an exact-size heap copy, so ASan catches a
 * read past @len even when @data goes on; check what holds for any result.
 */
static struct result parse_prefix(const uint8_t *data, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);
	struct result r;

	CHECK(copy);
	if (len)
		memcpy(copy, data, len);
	memset(&r, 0, sizeof(r));
	r.st = proxy_parse(copy, len, &r.h, &r.err);
	free(copy);

	switch (r.st) {
	case PROXY_PARSE_OK:
		CHECK(r.h.len > 0 && r.h.len <= len);
		CHECK(r.h.len <= PROXY_PARSE_MAX);
		CHECK(r.h.version == 1 || r.h.version == 2);
		if (r.h.version == 1)
			CHECK(r.h.len <= PROXY_V1_MAX);
		else
			CHECK(r.h.len >= 16 && r.h.tlv_len <= r.h.len - 16);
		break;
	case PROXY_PARSE_INVALID:
		CHECK(r.err > PROXY_ERR_NONE && r.err < PROXY_ERR_COUNT);
		break;
	case PROXY_PARSE_INCOMPLETE:
		/* Nothing is ever longer than PROXY_PARSE_MAX, so it cannot wait past it. */
		CHECK(len < PROXY_PARSE_MAX);
		break;
	case PROXY_PARSE_NOT_PROXY:
		CHECK(len > 0);
		break;
	default:
		CHECK(!"unknown status");
	}
	CHECK(proxy_error_str(r.err) && proxy_error_str(r.err)[0]);
	return r;
}

static bool same_header(const struct proxy_header *a, const struct proxy_header *b)
{
	return a->len == b->len && a->version == b->version && a->local == b->local &&
	       a->family == b->family && a->transport == b->transport &&
	       a->tlv_len == b->tlv_len && !memcmp(&a->src, &b->src, sizeof(a->src)) &&
	       !memcmp(&a->dst, &b->dst, sizeof(a->dst));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct result whole = parse_prefix(data, size);
	struct result half = parse_prefix(data, size / 2);
	struct result again = parse_prefix(data, size);

	/* Deterministic. */
	CHECK(again.st == whole.st && again.err == whole.err);
	if (whole.st == PROXY_PARSE_OK)
		CHECK(same_header(&again.h, &whole.h));

	/* More bytes never change a decision already taken on the first half. */
	switch (half.st) {
	case PROXY_PARSE_OK:
		CHECK(whole.st == PROXY_PARSE_OK && same_header(&whole.h, &half.h));
		break;
	case PROXY_PARSE_NOT_PROXY:
	case PROXY_PARSE_INVALID:
		CHECK(whole.st == half.st);
		break;
	case PROXY_PARSE_INCOMPLETE:
		break;
	}

	/* A header of length L: L - 1 bytes are a prefix of it, L bytes are it again. */
	if (whole.st == PROXY_PARSE_OK) {
		struct result exact = parse_prefix(data, whole.h.len);
		struct result shorter = parse_prefix(data, whole.h.len - 1);

		CHECK(exact.st == PROXY_PARSE_OK && same_header(&exact.h, &whole.h));
		CHECK(shorter.st == PROXY_PARSE_INCOMPLETE);
	}
	return 0;
}
