/* fuzz_options.c - libFuzzer target: options_parse() on any command line yields a valid config or one error. */

/*
 * Theory of operation
 *
 * Input: the arguments after argv[0] ("meshslirp"), separated by NUL bytes
 * (at most 64 of them).  Arguments that would make GOption print help and
 * exit(0) are left out: any argument starting with "--help" (--help,
 * --help-all, --help-GROUP) and any short-option cluster ("-x...", not
 * "--") containing 'h' or '?'.  Nothing else in options.c exits; --version
 * only sets a flag.
 *
 * Checked:
 *   - options_parse() returns 0 with no error, or -EINVAL with one
 *     non-empty message; ms_config_free() always (LSan sees any leak,
 *     on success and on every error path);
 *   - argv is not modified (its pointers and strings), as options.h
 *     promises;
 *   - the same argv parses the same way twice (same result and message);
 *   - a config that parsed (and is not --version) satisfies every rule
 *     options.h and the README state: exactly one backend (--socket,
 *     --tap or --vhost-user), --netns only with --tap, --proxy-source
 *     only with --outbound-proxy, a known --steer-stack, a contiguous
 *     netmask of /1../29 with the network's host bits clear, gateway, DNS
 *     and guest inside it, distinct, neither network nor broadcast address,
 *     MTU, ports, timeouts, --max-flows and --busy-poll in range, exposed host ports and
 *     exposed unix paths unique, unix paths absolute, under 108 bytes and
 *     free of ':', an --outbound-proxy unix:PATH standing for the virtual
 *     target 127.0.0.1:15001, every CIDR list with host bits clear,
 *     connect targets neither 0.0.0.0 nor a loopback address other than
 *     127.0.0.1, --user as USER or USER:GROUP, the trusted-peer and deny
 *     lists at their defaults until given.
 *
 * Keep this list in step with options.c: an option the rules do not know
 * reads as a broken rule (CI's fuzz pass once failed on --vhost-user, a
 * backend added after the harness, as "two backends or none").
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>

#include <glib.h>

#include "common/mainloop.h"
#include "daemon/options.h"
#include "tests/fuzz/fuzz_common.h"

#define ARGS_MAX 64

/* Would GOption print help and exit for @arg? */
static bool is_help(const char *arg)
{
	if (g_str_has_prefix(arg, "--help"))
		return true;
	return arg[0] == '-' && arg[1] != '-' && (strchr(arg, 'h') || strchr(arg, '?'));
}

static bool in_net(const struct ms_config *c, struct in_addr a)
{
	return (a.s_addr & c->netmask.s_addr) == c->network.s_addr;
}

static void check_target(bool set, struct in_addr a, uint16_t port)
{
	uint32_t h = ntohl(a.s_addr);

	if (!set)
		return;
	FUZZ_CHECK(a.s_addr != INADDR_ANY && port != 0);
	FUZZ_CHECK(h >> 24 != 127 || h == INADDR_LOOPBACK);
}

/* A path options_parse_unix_path() accepted. */
static void check_unix_path(const char *path)
{
	FUZZ_CHECK(path && path[0] == '/' && strlen(path) < 108 && !strchr(path, ':'));
}

/* A path for bind() or connect(): non-empty, fits sun_path with its NUL. */
static void check_socket_path(const char *path)
{
	FUZZ_CHECK(!path || (path[0] && strlen(path) < 108));
}

static void check_cidrs(const GArray *a)
{
	for (guint i = 0; i < a->len; i++) {
		const struct policy_cidr *c = &g_array_index(a, struct policy_cidr, i);

		FUZZ_CHECK((c->net & ~c->mask) == 0);
	}
}

/* Every rule a parsed config must satisfy. */
static void check_config(const struct ms_config *c)
{
	uint32_t mask = ntohl(c->netmask.s_addr);
	uint32_t bcast = c->network.s_addr | ~c->netmask.s_addr;
	const struct in_addr addrs[] = { c->gateway, c->dns, c->guest };

	FUZZ_CHECK(!!c->socket_path + !!c->tap_name + !!c->vhost_user_path == 1);
	check_socket_path(c->socket_path);
	check_socket_path(c->vhost_user_path);
	FUZZ_CHECK(!c->tap_name || (c->tap_name[0] && strlen(c->tap_name) < 16 &&
				    !strchr(c->tap_name, '/')));
	FUZZ_CHECK(!c->tap_netns || (c->tap_name && c->tap_netns[0]));
	FUZZ_CHECK(!c->proxy_source_set || c->outbound_proxy_set);
	FUZZ_CHECK(c->steer_stack == MS_STEER_AUTO || c->steer_stack == MS_STEER_SLIRP ||
		   c->steer_stack == MS_STEER_KERNEL);
	FUZZ_CHECK(c->busy_poll_us <= MAINLOOP_POLL_MAX_US);
	FUZZ_CHECK(!c->busy_poll_adaptive || c->busy_poll_us == MAINLOOP_AUTO_MAX_US);

	FUZZ_CHECK(c->prefix_len >= 1 && c->prefix_len <= 29);
	FUZZ_CHECK(mask == ~(0xffffffffu >> c->prefix_len));
	FUZZ_CHECK((c->network.s_addr & ~c->netmask.s_addr) == 0);
	for (size_t i = 0; i < G_N_ELEMENTS(addrs); i++) {
		FUZZ_CHECK(in_net(c, addrs[i]));
		FUZZ_CHECK(addrs[i].s_addr != c->network.s_addr && addrs[i].s_addr != bcast);
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(addrs[i].s_addr != addrs[j].s_addr);
	}

	FUZZ_CHECK(c->mtu >= MS_MTU_MIN && c->mtu <= MS_MTU_MAX);
	for (guint i = 0; i < c->expose->len; i++) {
		const struct bridge_expose *e = &g_array_index(c->expose, struct bridge_expose, i);

		FUZZ_CHECK(e->host_port && e->guest_port);
		for (guint j = 0; j < i; j++)
			FUZZ_CHECK(g_array_index(c->expose, struct bridge_expose, j).host_port !=
				   e->host_port);
	}
	for (guint i = 0; i < c->expose_unix->len; i++) {
		const struct ms_expose_unix *u = &g_array_index(c->expose_unix, struct ms_expose_unix, i);

		check_unix_path(u->path);
		FUZZ_CHECK(u->guest_port);
		for (guint j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(g_array_index(c->expose_unix, struct ms_expose_unix, j).path,
					  u->path));
	}
	if (c->outbound_proxy_unix) {
		check_unix_path(c->outbound_proxy_unix);
		FUZZ_CHECK(c->outbound_proxy_set &&
			   c->outbound_proxy_addr.s_addr == htonl(INADDR_LOOPBACK) &&
			   c->outbound_proxy_port == 15001);
	}
	check_target(c->outbound_proxy_set, c->outbound_proxy_addr, c->outbound_proxy_port);
	check_target(c->dns_upstream_set, c->dns_upstream_addr, c->dns_upstream_port);
	FUZZ_CHECK(!(c->outbound_proxy_set && c->dns_upstream_set &&
		     c->outbound_proxy_addr.s_addr == c->dns_upstream_addr.s_addr &&
		     c->outbound_proxy_port == c->dns_upstream_port));
	FUZZ_CHECK(c->outbound_proxy_version == PROXY_V1 || c->outbound_proxy_version == PROXY_V2);
	check_cidrs(c->include_cidrs);
	check_cidrs(c->exclude_cidrs);
	check_cidrs(c->deny_cidrs);
	check_cidrs(c->inbound_trusted);
	/* The defaults (loopback,pod; the ambient probe) stand until the option is given. */
	FUZZ_CHECK(c->inbound_trusted_set || (c->inbound_trust_pod && c->inbound_trusted->len == 1));
	FUZZ_CHECK(c->deny_cidrs_set || c->deny_cidrs->len == 1);
	FUZZ_CHECK(!(c->exclude_ports[0] & 1)); /* port 0 is never a port */
	FUZZ_CHECK(c->max_flows >= 1 && c->max_flows <= 1048576);
	FUZZ_CHECK(c->inbound_mode == BRIDGE_INBOUND_OFF ||
		   c->inbound_mode == BRIDGE_INBOUND_OPTIONAL ||
		   c->inbound_mode == BRIDGE_INBOUND_REQUIRED);
	FUZZ_CHECK(c->inbound_header_timeout_ms >= 100 && c->inbound_header_timeout_ms <= 60000);
	FUZZ_CHECK(c->connect_timeout_ms >= 100 && c->connect_timeout_ms <= 600000);
	FUZZ_CHECK(c->tcp_idle_timeout_ms == 0 || (c->tcp_idle_timeout_ms >= 1000 &&
						   c->tcp_idle_timeout_ms <= 7 * 24 * 3600000u));
	check_socket_path(c->control_path);
	if (c->user) {
		const char *colon = strchr(c->user, ':');

		FUZZ_CHECK(c->user[0] && colon != c->user);
		FUZZ_CHECK(!colon || (colon[1] && !strchr(colon + 1, ':')));
	}
	FUZZ_CHECK(!c->metrics_set || (c->metrics_addr.sin_family == AF_INET &&
				       c->metrics_addr.sin_port != 0));
	FUZZ_CHECK(c->ready_fd == -1 || c->ready_fd >= 3);
	FUZZ_CHECK(c->log_level >= LOG_LEVEL_ERROR && c->log_level <= LOG_LEVEL_DEBUG);
}

struct outcome {
	int ret;
	char *message;             /* NULL on success */
	bool version;
};

static void parse(int argc, char **argv, struct outcome *o)
{
	char **copy = g_memdup2(argv, sizeof(char *) * (size_t)(argc + 1));
	GStrv strings = g_strdupv(argv);
	g_autoptr(GError) err = NULL;
	struct ms_config cfg;

	o->ret = options_parse(argc, argv, &cfg, &err);
	FUZZ_CHECK(o->ret == 0 || o->ret == -EINVAL);
	FUZZ_CHECK((o->ret == 0) == (err == NULL));
	if (err)
		FUZZ_CHECK(err->message && err->message[0]);
	o->message = err ? g_strdup(err->message) : NULL;
	o->version = !o->ret && cfg.show_version;
	if (!o->ret && !cfg.show_version)
		check_config(&cfg);
	ms_config_free(&cfg);

	/* The caller's argv is left alone. */
	for (int i = 0; i <= argc; i++) {
		FUZZ_CHECK(argv[i] == copy[i]);
		FUZZ_CHECK(!argv[i] || !strcmp(argv[i], strings[i]));
	}
	g_strfreev(strings);
	g_free(copy);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet_logs();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A NUL-terminated copy: the last argument ends at the input's end. */
	char *text = g_malloc(size + 1);
	char *argv[ARGS_MAX + 2];
	struct outcome a, b;
	int argc = 0;
	size_t pos = 0;

	memcpy(text, data, size);
	text[size] = 0;
	argv[argc++] = "meshslirp";
	while (pos < size && argc <= ARGS_MAX) {
		char *arg = text + pos;

		pos += strlen(arg) + 1;
		if (!is_help(arg))
			argv[argc++] = arg;
	}
	argv[argc] = NULL;

	parse(argc, argv, &a);
	parse(argc, argv, &b);
	FUZZ_CHECK(a.ret == b.ret && a.version == b.version);
	FUZZ_CHECK(!a.message == !b.message && (!a.message || !strcmp(a.message, b.message)));
	g_free(a.message);
	g_free(b.message);
	g_free(text);
	return 0;
}
