/* fuzz_control.c - libFuzzer target: the control protocol's control_handle_line() and its JSON parser. */

/*
 * Theory of operation
 *
 * One daemon-like struct daemon is built once, as daemon.c wires it but
 * without a backend: a config from options_parse() (--expose-address
 * 127.0.0.1, steering to 127.0.0.1:15001), a real netstack and the real
 * bridge, with three steered flows opened by guest SYNs so that list_flows
 * has something to print.  add_hostfwd makes libslirp bind() and listen(),
 * so the process first moves into a private, empty network namespace
 * (fuzz_private_netns(); without root it refuses to run).
 *
 * Input: request lines separated by '\n', as control.c's reader splits them
 * (empty lines skipped; a line of CONTROL_LINE_MAX bytes or more would end
 * the client, so it is skipped too).  Each line is handed to
 * control_handle_line() from an exact-size copy without a terminating NUL,
 * so ASan sees any read past the line.
 *
 * Checked for every answer: exactly one line, ending in '\n'; an object
 * starting with {"return": or {"error": {"desc": ; valid UTF-8 (JSON text
 * must be); and an error answer parses with common/json.c, its "desc" a
 * non-empty string (so whatever a request echoes back is escaped).
 * Checked after every line: the expose list has no host port twice, and
 * each of its ports is really listening on 127.0.0.1 (bind() fails with
 * EADDRINUSE); add_hostfwd answering {"return": {"id": N}} added exactly N.
 *
 * Reset after every input, so runs stay independent and bounded: every
 * forward the input added is removed with a remove_hostfwd request, which
 * must answer {"return": {}}, after which its port must be free again
 * (bind() succeeds) and the expose list empty.
 */

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <glib.h>

#include "common/json.h"
#include "daemon/control.h"
#include "daemon/daemon.h"
#include "tests/fuzz/fuzz_common.h"

static struct ms_config cfg;
static struct daemon d;

static int sink_tx_frame(uint8_t *frame, size_t len, void *opaque)
{
	(void)frame;
	(void)len;
	(void)opaque;
	return 0;
}

static void sink_tx_flush(void *opaque)
{
	(void)opaque;
}

static const struct netstack_ops sink_ops = {
	.tx_frame = sink_tx_frame,
	.tx_flush = sink_tx_flush,
};

/* Is 127.0.0.1:@port taken (a listening socket)?  Tries to bind it. */
static bool port_taken(uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				  .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int ret;

	FUZZ_CHECK(fd >= 0);
	ret = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	FUZZ_CHECK(ret == 0 || errno == EADDRINUSE);
	close(fd);
	return ret < 0;
}

static void check_expose_list(void)
{
	for (guint i = 0; i < cfg.expose->len; i++) {
		uint16_t port = g_array_index(cfg.expose, struct bridge_expose, i).host_port;

		for (guint j = 0; j < i; j++)
			FUZZ_CHECK(g_array_index(cfg.expose, struct bridge_expose, j).host_port != port);
		FUZZ_CHECK(port_taken(port));
	}
}

/* One answer: a single line holding one JSON object of the protocol's two shapes. */
static void check_answer(const GString *out)
{
	struct json_doc *doc;
	const struct json_node *err, *desc;

	FUZZ_CHECK(out->len >= 2 && out->str[out->len - 1] == '\n');
	FUZZ_CHECK(memchr(out->str, '\n', out->len) == out->str + out->len - 1);
	FUZZ_CHECK(g_utf8_validate(out->str, (gssize)out->len, NULL));
	if (g_str_has_prefix(out->str, "{\"return\": "))
		return;
	FUZZ_CHECK(g_str_has_prefix(out->str, "{\"error\": {\"desc\": "));
	doc = g_new(struct json_doc, 1);
	FUZZ_CHECK(json_parse(doc, out->str, out->len - 1) == 0);
	err = json_get(doc, &doc->nodes[0], "error");
	desc = json_get(doc, err, "desc");
	FUZZ_CHECK(desc && desc->type == JSON_STRING && desc->str[0]);
	g_free(doc);
}

static void handle(const char *line, size_t len, GString *out)
{
	char *copy = g_malloc(len ? len : 1);
	guint before = cfg.expose->len;
	unsigned int id;

	memcpy(copy, line, len);
	g_string_truncate(out, 0);
	control_handle_line(&d, copy, len, out);
	g_free(copy);
	check_answer(out);
	/* A forward added is reported with its id, the host port. */
	if (sscanf(out->str, "{\"return\": {\"id\": %u}}", &id) == 1) {
		FUZZ_CHECK(cfg.expose->len == before + 1);
		FUZZ_CHECK(g_array_index(cfg.expose, struct bridge_expose, before).host_port == id);
	} else {
		FUZZ_CHECK(cfg.expose->len <= before);
	}
	check_expose_list();
}

/* Remove every forward through the protocol; each port must be free afterwards. */
static void reset(GString *out)
{
	while (cfg.expose->len) {
		uint16_t port = g_array_index(cfg.expose, struct bridge_expose, 0).host_port;
		g_autofree char *req = g_strdup_printf(
			"{\"execute\": \"remove_hostfwd\", \"arguments\": {\"id\": %u}}", port);

		handle(req, strlen(req), out);
		FUZZ_CHECK(!strcmp(out->str, "{\"return\": {}}\n"));
		FUZZ_CHECK(!port_taken(port));
	}
}

/* A guest SYN from 10.0.2.15:@sport to 198.18.0.@host:@dport, checksums included. */
static void guest_syn(uint16_t sport, uint8_t host, uint16_t dport)
{
	uint8_t f[54] = {
		0x52, 0x55, 0x0a, 0x00, 0x02, 0x02, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x00,
		0x45, 0x00, 0x00, 0x28, 0x00, 0x01, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00,
		10, 0, 2, 15, 198, 18, 0, host,
	};
	uint8_t *ip = f + 14, *tcp = ip + 20;
	uint64_t sum;

	tcp[0] = (uint8_t)(sport >> 8);
	tcp[1] = (uint8_t)sport;
	tcp[2] = (uint8_t)(dport >> 8);
	tcp[3] = (uint8_t)dport;
	tcp[7] = 1;             /* seq 1 */
	tcp[12] = 5 << 4;
	tcp[13] = 0x02;         /* SYN */
	tcp[14] = 0xff;
	tcp[15] = 0xff;
	sum = fuzz_sum_be16(ip, 20);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	ip[10] = (uint8_t)(~sum >> 8);
	ip[11] = (uint8_t)~sum;
	sum = fuzz_sum_be16(ip + 12, 8) + IPPROTO_TCP + 20 + fuzz_sum_be16(tcp, 20);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	tcp[16] = (uint8_t)(~sum >> 8);
	tcp[17] = (uint8_t)~sum;
	netstack_input(d.ns, f, sizeof(f));
}

static void setup_daemon(void)
{
	char *argv[] = { "meshslirp", "--socket", "/nonexistent/net.sock",
			 "--expose-address", "127.0.0.1",
			 "--outbound-proxy", "127.0.0.1:15001", "--proxy-source", "10.1.2.3", NULL };
	struct netstack_config nc;
	struct bridge_config bc;
	g_autoptr(GError) err = NULL;

	FUZZ_CHECK(options_parse((int)G_N_ELEMENTS(argv) - 1, argv, &cfg, &err) == 0);
	nc = (struct netstack_config){
		.network = cfg.network, .netmask = cfg.netmask, .gateway = cfg.gateway,
		.dns = cfg.dns, .guest = cfg.guest, .mtu = cfg.mtu,
	};
	bc = (struct bridge_config){
		.policy = {
			.network = cfg.network, .netmask = cfg.netmask,
			.gateway = cfg.gateway, .dns = cfg.dns,
			.steer = true,
			.proxy_addr = cfg.outbound_proxy_addr, .proxy_port = cfg.outbound_proxy_port,
			.include = cfg.include_cidrs, .exclude = cfg.exclude_cidrs,
		},
		.version = cfg.outbound_proxy_version,
		.proxy_source = cfg.proxy_source,
		.max_flows = 16,
		.guest = cfg.guest,
		.inbound_mode = cfg.inbound_mode,
		.header_timeout_us = (int64_t)cfg.inbound_header_timeout_ms * 1000,
		.expose = cfg.expose,
	};
	d.cfg = &cfg;
	FUZZ_CHECK(netstack_new(&nc, &sink_ops, &d, &d.ns) == 0);
	FUZZ_CHECK(bridge_new(&bc, d.ns, &d.br) == 0);
	/* Flows for list_flows; the main loop never runs, so they stay as they are. */
	guest_syn(40000, 1, 80);
	guest_syn(40001, 2, 443);
	guest_syn(40002, 3, 8080);
	FUZZ_CHECK(bridge_flow_count(d.br, FLOW_FREE) == 16 - 3);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet_logs();
	fuzz_private_netns("fuzz_control");
	/* As daemon/main.c: libslirp send()s on host sockets without MSG_NOSIGNAL. */
	signal(SIGPIPE, SIG_IGN);
	setup_daemon();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	GString *out = g_string_new(NULL);

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl ? nl : end) - p);

		if (len && len < CONTROL_LINE_MAX)
			handle(p, len, out);
		p += len + 1;
	}
	reset(out);
	FUZZ_CHECK(cfg.expose->len == 0);
	g_string_free(out, TRUE);
	return 0;
}
