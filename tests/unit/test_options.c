/* test_options.c - unit tests of command-line parsing: defaults, every option, every bad value. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>

#include <cmocka.h>
#include <glib.h>

#include "common/mainloop.h"
#include "daemon/options.h"

static int parse(struct ms_config *cfg, GError **err, ...)
{
	g_autoptr(GPtrArray) args = g_ptr_array_new();
	const char *a;
	va_list ap;

	g_ptr_array_add(args, "meshslirp");
	va_start(ap, err);
	while ((a = va_arg(ap, const char *)))
		g_ptr_array_add(args, (gpointer)a);
	va_end(ap);
	g_ptr_array_add(args, NULL);
	return options_parse((int)args->len - 1, (char **)args->pdata, cfg, err);
}

static void assert_addr(struct in_addr a, const char *want)
{
	char buf[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &a, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

static void test_defaults(void **state)
{
	struct ms_config cfg;
	g_autoptr(GError) err = NULL;

	(void)state;
	assert_int_equal(parse(&cfg, &err, "--socket", "/tmp/x.sock", NULL), 0);
	assert_string_equal(cfg.socket_path, "/tmp/x.sock");
	assert_null(cfg.tap_name);
	assert_addr(cfg.network, "10.0.2.0");
	assert_addr(cfg.netmask, "255.255.255.0");
	assert_addr(cfg.gateway, "10.0.2.2");
	assert_addr(cfg.dns, "10.0.2.3");
	assert_addr(cfg.guest, "10.0.2.15");
	assert_addr(cfg.expose_addr, "0.0.0.0");
	assert_int_equal(cfg.mtu, 65520);
	assert_int_equal(cfg.expose->len, 0);
	assert_int_equal(cfg.ready_fd, -1);
	assert_int_equal(cfg.log_level, LOG_LEVEL_INFO);
	assert_int_equal(cfg.max_flows, 16384);
	assert_int_equal(cfg.max_reass_segments, FLOW_REASS_TOTAL_DEFAULT);
	assert_int_equal(cfg.connect_timeout_ms, 10000);
	assert_int_equal(cfg.tcp_idle_timeout_ms, 3600000);
	assert_int_equal(cfg.busy_poll_us, 0);
	assert_false(cfg.busy_poll_adaptive);
	assert_false(cfg.busy_poll_always);
	/* The one address Istio ambient's capture leaves alone is denied unless told otherwise. */
	assert_int_equal(cfg.deny_cidrs->len, 1);
	assert_int_equal(g_array_index(cfg.deny_cidrs, struct policy_cidr, 0).net,
			 inet_addr("169.254.7.127"));
	assert_int_equal(g_array_index(cfg.deny_cidrs, struct policy_cidr, 0).mask, 0xffffffffu);
	ms_config_free(&cfg);
}

/* --deny-outbound-cidr: the first use replaces the default; lists add up; none empties. */
static void test_deny(void **state)
{
	static const struct {
		const char *v1, *v2;       /* one or two uses of the option */
		const char *want[4];       /* the list, as CIDRs */
	} cases[] = {
		{ "203.0.113.0/24", NULL, { "203.0.113.0/24" } },
		{ "198.51.100.7,203.0.113.0/24", NULL, { "198.51.100.7/32", "203.0.113.0/24" } },
		{ "198.51.100.7", "169.254.7.127", { "198.51.100.7/32", "169.254.7.127/32" } },
		{ "none", NULL, { NULL } },
		{ "198.51.100.7", "none", { NULL } },
		{ "none", "203.0.113.0/24", { "203.0.113.0/24" } },
		{ "*", NULL, { "0.0.0.0/0" } },
	};

	(void)state;
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		struct ms_config cfg;
		g_autoptr(GError) err = NULL;
		size_t n = 0;

		assert_int_equal(parse(&cfg, &err, "--socket", "a", "--deny-outbound-cidr", cases[i].v1,
				       cases[i].v2 ? "--deny-outbound-cidr" : NULL, cases[i].v2, NULL), 0);
		while (n < G_N_ELEMENTS(cases[i].want) && cases[i].want[n])
			n++;
		assert_int_equal(cfg.deny_cidrs->len, n);
		for (size_t j = 0; j < n; j++) {
			struct policy_cidr want;

			assert_int_equal(policy_cidr_parse(cases[i].want[j], &want), 0);
			assert_int_equal(g_array_index(cfg.deny_cidrs, struct policy_cidr, j).net, want.net);
			assert_int_equal(g_array_index(cfg.deny_cidrs, struct policy_cidr, j).mask, want.mask);
		}
		ms_config_free(&cfg);
	}
}

/* Durations: ms, s, m, h or bare seconds; each option's own range; 0 only for the idle timeout. */
static void test_durations(void **state)
{
	static const struct {
		const char *opt, *value;
		unsigned int want_ms;      /* 0: must be refused (unless zero_ok below) */
		bool ok;
	} cases[] = {
		{ "--connect-timeout", "250ms", 250, true },
		{ "--connect-timeout", "10s", 10000, true },
		{ "--connect-timeout", "3", 3000, true },
		{ "--connect-timeout", "10m", 600000, true },
		{ "--connect-timeout", "11m", 0, false },
		{ "--connect-timeout", "99ms", 0, false },
		{ "--connect-timeout", "0", 0, false },
		{ "--connect-timeout", "1h", 0, false },
		{ "--connect-timeout", "s", 0, false },
		{ "--connect-timeout", "10x", 0, false },
		{ "--connect-timeout", "-1s", 0, false },
		{ "--connect-timeout", "99999999999999999999h", 0, false },
		{ "--tcp-idle-timeout", "0", 0, true },
		{ "--tcp-idle-timeout", "1s", 1000, true },
		{ "--tcp-idle-timeout", "90m", 5400000, true },
		{ "--tcp-idle-timeout", "168h", 604800000, true },
		{ "--tcp-idle-timeout", "169h", 0, false },
		{ "--tcp-idle-timeout", "999ms", 0, false },
		{ "--inbound-header-timeout", "100ms", 100, true },
		{ "--inbound-header-timeout", "1m", 60000, true },
	};

	(void)state;
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		struct ms_config cfg;
		g_autoptr(GError) err = NULL;
		int ret = parse(&cfg, &err, "--socket", "a", cases[i].opt, cases[i].value, NULL);
		unsigned int got = !strcmp(cases[i].opt, "--connect-timeout") ? cfg.connect_timeout_ms
				   : !strcmp(cases[i].opt, "--tcp-idle-timeout") ? cfg.tcp_idle_timeout_ms
				   : cfg.inbound_header_timeout_ms;

		if (cases[i].ok) {
			assert_int_equal(ret, 0);
			assert_int_equal(got, cases[i].want_ms);
		} else {
			assert_int_not_equal(ret, 0);
			assert_non_null(strstr(err->message, cases[i].opt));
		}
		ms_config_free(&cfg);
	}
}

static void test_all_options(void **state)
{
	struct ms_config cfg;
	g_autoptr(GError) err = NULL;
	const struct bridge_expose *e;

	(void)state;
	assert_int_equal(parse(&cfg, &err, "--tap", "tap0", "--netns", "/run/netns/g",
			       "--network", "192.168.100.0/22", "--gateway", "192.168.101.1",
			       "--dns=192.168.100.53", "--guest-address", "192.168.102.7",
			       "--mtu", "65520", "--expose", "tcp:8080", "--expose",
			       "tcp:2222:22", "--expose-address", "127.0.0.1",
			       "--ready-fd", "5", "--log-level", "debug", NULL), 0);
	assert_null(err);
	assert_string_equal(cfg.tap_name, "tap0");
	assert_string_equal(cfg.tap_netns, "/run/netns/g");
	assert_int_equal(cfg.prefix_len, 22);
	assert_addr(cfg.netmask, "255.255.252.0");
	assert_addr(cfg.gateway, "192.168.101.1");
	assert_addr(cfg.dns, "192.168.100.53");
	assert_addr(cfg.guest, "192.168.102.7");
	assert_addr(cfg.expose_addr, "127.0.0.1");
	assert_int_equal(cfg.mtu, 65520);
	assert_int_equal(cfg.expose->len, 2);
	e = &g_array_index(cfg.expose, struct bridge_expose, 0);
	assert_int_equal(e->host_port, 8080);
	assert_int_equal(e->guest_port, 8080);
	e = &g_array_index(cfg.expose, struct bridge_expose, 1);
	assert_int_equal(e->host_port, 2222);
	assert_int_equal(e->guest_port, 22);
	assert_int_equal(cfg.ready_fd, 5);
	assert_int_equal(cfg.log_level, LOG_LEVEL_DEBUG);
	ms_config_free(&cfg);
}

static void test_derived_addresses_follow_network(void **state)
{
	struct ms_config cfg;
	g_autoptr(GError) err = NULL;

	(void)state;
	assert_int_equal(parse(&cfg, &err, "--socket", "s", "--network", "10.9.0.0/16", NULL), 0);
	assert_addr(cfg.gateway, "10.9.0.2");
	assert_addr(cfg.dns, "10.9.0.3");
	assert_addr(cfg.guest, "10.9.0.15");
	ms_config_free(&cfg);
}

static void test_version(void **state)
{
	struct ms_config cfg;
	g_autoptr(GError) err = NULL;

	(void)state;
	assert_int_equal(parse(&cfg, &err, "--version", NULL), 0);
	assert_true(cfg.show_version);
	ms_config_free(&cfg);
}

static void test_vhost_user(void **state)
{
	struct ms_config cfg;
	g_autoptr(GError) err = NULL;

	(void)state;
	assert_int_equal(parse(&cfg, &err, "--vhost-user", "/run/vm1/vhost.sock", "--mtu", "9000",
			       NULL), 0);
	assert_string_equal(cfg.vhost_user_path, "/run/vm1/vhost.sock");
	assert_null(cfg.socket_path);
	assert_null(cfg.tap_name);
	assert_int_equal(cfg.mtu, 9000);
	ms_config_free(&cfg);
	assert_null(cfg.vhost_user_path);
}

/* Each bad command line fails with a message that names the culprit. */
static void test_steer_stack(void **state)
{
	struct ms_config cfg;
	g_autoptr(GError) err = NULL;

	(void)state;
	assert_int_equal(parse(&cfg, &err, "--socket", "a", "--outbound-proxy", "127.0.0.1:15001",
			       NULL), 0);
	assert_int_equal(cfg.steer_stack, MS_STEER_AUTO);
	ms_config_free(&cfg);
	assert_int_equal(parse(&cfg, &err, "--socket", "a", "--outbound-proxy", "127.0.0.1:15001",
			       "--steer-stack", "kernel", NULL), 0);
	assert_int_equal(cfg.steer_stack, MS_STEER_KERNEL);
	ms_config_free(&cfg);
	assert_int_equal(parse(&cfg, &err, "--socket", "a", "--outbound-proxy", "127.0.0.1:15001",
			       "--steer-stack", "kernel", "--steer-stack", "slirp", NULL), 0);
	assert_int_equal(cfg.steer_stack, MS_STEER_SLIRP);
	ms_config_free(&cfg);
	assert_int_equal(parse(&cfg, &err, "--socket", "a", "--outbound-proxy", "127.0.0.1:15001",
			       "--steer-stack", "slirp", "--steer-stack", "auto", NULL), 0);
	assert_int_equal(cfg.steer_stack, MS_STEER_AUTO);
	ms_config_free(&cfg);
	/* Without a sidecar every flow to another host is direct, on either stack. */
	assert_int_equal(parse(&cfg, &err, "--socket", "a", "--steer-stack", "auto", NULL), 0);
	assert_int_equal(cfg.steer_stack, MS_STEER_AUTO);
	ms_config_free(&cfg);
	assert_int_equal(parse(&cfg, &err, "--socket", "a", "--steer-stack", "kernel", NULL), 0);
	assert_int_equal(cfg.steer_stack, MS_STEER_KERNEL);
	ms_config_free(&cfg);
}

/*
 * --busy-poll: auto (adaptive, up to MAINLOOP_AUTO_MAX_US), or a fixed window in
 * microseconds, bare or with "us", 0 (off) up to MAINLOOP_POLL_MAX_US;
 * the last one given wins, auto after a number too.
 */
static void test_busy_poll(void **state)
{
	static const struct {
		const char *arg;
		unsigned int want;
		bool adaptive;
	} ok[] = {
		{ "200", 200, false }, { "200us", 200, false }, { "0", 0, false },
		{ "0us", 0, false },   { "10000", 10000, false }, { "auto", MAINLOOP_AUTO_MAX_US, true },
	};
	/* A number after auto is a fixed window again, 0 off. */
	static const struct { const char *arg; unsigned int want; } after_auto[] = {
		{ "30", 30 }, { "0", 0 },
	};
	struct ms_config cfg;
	g_autoptr(GError) err = NULL;

	(void)state;
	for (size_t i = 0; i < G_N_ELEMENTS(ok); i++) {
		assert_int_equal(parse(&cfg, &err, "--socket", "a", "--busy-poll", ok[i].arg, NULL), 0);
		assert_int_equal(cfg.busy_poll_us, ok[i].want);
		assert_int_equal(cfg.busy_poll_adaptive, ok[i].adaptive);
		assert_false(cfg.busy_poll_always);
		ms_config_free(&cfg);
	}
	assert_int_equal(parse(&cfg, &err, "--socket", "a", "--busy-poll", "50", "--busy-poll",
			       "auto", NULL), 0);
	assert_int_equal(cfg.busy_poll_us, MAINLOOP_AUTO_MAX_US);
	assert_true(cfg.busy_poll_adaptive);
	ms_config_free(&cfg);
	for (size_t i = 0; i < G_N_ELEMENTS(after_auto); i++) {
		assert_int_equal(parse(&cfg, &err, "--socket", "a", "--busy-poll", "auto",
				       "--busy-poll", after_auto[i].arg, NULL), 0);
		assert_int_equal(cfg.busy_poll_us, after_auto[i].want);
		assert_false(cfg.busy_poll_adaptive);
		ms_config_free(&cfg);
	}
}

/* --busy-poll-when: idle (the default: the guard may stop a window) or always. */
static void test_busy_poll_when(void **state)
{
	struct ms_config cfg;
	g_autoptr(GError) err = NULL;

	(void)state;
	assert_int_equal(parse(&cfg, &err, "--socket", "a", "--busy-poll", "200",
			       "--busy-poll-when", "always", NULL), 0);
	assert_true(cfg.busy_poll_always);
	ms_config_free(&cfg);
	assert_int_equal(parse(&cfg, &err, "--socket", "a", "--busy-poll-when", "always",
			       "--busy-poll-when", "idle", NULL), 0);
	assert_false(cfg.busy_poll_always);
	ms_config_free(&cfg);
}

/* --sched: auto by default, the last word wins. */
static void test_sched(void **state)
{
	static const struct {
		const char *arg;
		enum schedmode_policy want;
	} ok[] = { { "auto", SCHEDMODE_AUTO }, { "normal", SCHEDMODE_NORMAL },
		   { "batch", SCHEDMODE_BATCH } };
	struct ms_config cfg;
	g_autoptr(GError) err = NULL;

	(void)state;
	assert_int_equal(parse(&cfg, &err, "--socket", "a", NULL), 0);
	assert_int_equal(cfg.sched, SCHEDMODE_AUTO);
	ms_config_free(&cfg);
	for (size_t i = 0; i < G_N_ELEMENTS(ok); i++) {
		assert_int_equal(parse(&cfg, &err, "--socket", "a", "--sched", "batch", "--sched",
				       ok[i].arg, NULL), 0);
		assert_int_equal(cfg.sched, ok[i].want);
		ms_config_free(&cfg);
	}
}

static void test_bad(void **state)
{
	static const struct {
		const char *args[6];
		const char *needle;
	} cases[] = {
		{ { NULL }, "exactly one of --socket" },
		{ { "--socket", "a", "--tap", "t0" }, "exactly one of --socket" },
		{ { "--socket", "a", "--vhost-user", "b" }, "--vhost-user PATH is required" },
		{ { "--vhost-user", "a", "--tap", "t0" }, "--vhost-user: exactly one of" },
		{ { "--vhost-user", "a", "--netns", "/x" }, "--netns" },
		{ { "--vhost-user", "" }, "--vhost-user" },
		{ { "--vhost-user",
		    "/a-very-long-directory-name-that-goes-on/and-on-and-on/until-it-cannot-be-a-unix-socket/any-more/no/vhost.sock" },
		  "longer than 107" },
		{ { "--socket", "a", "--netns", "/x" }, "--netns" },
		{ { "--socket", "a", "--steer-stack", "fast" }, "--steer-stack" },
		{ { "--socket", "a", "--mtu", "575" }, "--mtu" },
		{ { "--socket", "a", "--mtu", "65521" }, "--mtu" },
		{ { "--socket", "a", "--mtu", "15o0" }, "--mtu" },
		{ { "--socket", "a", "--mtu", "-1500" }, "--mtu" },
		{ { "--socket", "a", "--mtu", "" }, "--mtu" },
		{ { "--socket", "a", "--mtu", "99999999999999999999" }, "--mtu" },
		{ { "--socket", "a", "--network", "10.0.2.0" }, "--network" },
		{ { "--socket", "a", "--network", "10.0.2.1/24" }, "host bits" },
		{ { "--socket", "a", "--network", "10.0.2.0/30" }, "--network" },
		{ { "--socket", "a", "--network", "10.0.2.0/x" }, "--network" },
		{ { "--socket", "a", "--network", "10.0.2/24" }, "--network" },
		{ { "--socket", "a", "--gateway", "10.0.3.2" }, "--gateway" },
		{ { "--socket", "a", "--gateway", "banana" }, "--gateway" },
		{ { "--socket", "a", "--dns", "10.0.2.2" }, "--dns" },
		{ { "--socket", "a", "--guest-address", "10.0.2.255" }, "--guest-address" },
		{ { "--socket", "a", "--guest-address", "10.0.2.0" }, "--guest-address" },
		{ { "--socket", "a", "--expose", "udp:53" }, "--expose" },
		{ { "--socket", "a", "--expose", "tcp:0" }, "--expose" },
		{ { "--socket", "a", "--expose", "tcp:65536" }, "--expose" },
		{ { "--socket", "a", "--expose", "tcp:80:0" }, "--expose" },
		{ { "--socket", "a", "--expose", "tcp:80:81:82" }, "--expose" },
		{ { "--socket", "a", "--expose", "tcp:" }, "--expose" },
		{ { "--socket", "a", "--expose", "tcp:80", "--expose", "tcp:80:81" }, "twice" },
		{ { "--socket", "a", "--expose-address", "::1" }, "--expose-address" },
		{ { "--socket", "a", "--ready-fd", "1" }, "--ready-fd" },
		{ { "--socket", "a", "--log-level", "loud" }, "--log-level" },
		{ { "--socket", "a", "--metrics", "localhost:9090" }, "--metrics" },
		{ { "--socket", "a", "--metrics", "127.0.0.1" }, "--metrics" },
		{ { "--socket", "a", "--metrics", "127.0.0.1:0" }, "--metrics" },
		{ { "--socket", "a", "--inbound-proxy-protocol", "yes" }, "--inbound-proxy-protocol" },
		{ { "--socket", "a", "--inbound-header-timeout", "50ms" }, "--inbound-header-timeout" },
		{ { "--socket", "a", "--inbound-header-timeout", "2m" }, "--inbound-header-timeout" },
		{ { "--socket", "a", "--outbound-proxy", "127.0.0.2:15001" }, "--outbound-proxy" },
		{ { "--socket", "a", "--outbound-proxy", "0.0.0.0:15001" }, "--outbound-proxy" },
		{ { "--socket", "a", "--outbound-proxy-protocol", "v3" }, "--outbound-proxy-protocol" },
		{ { "--socket", "a", "--exclude-outbound-cidr", "10.0.0.1/8" }, "--exclude-outbound-cidr" },
		{ { "--socket", "a", "--exclude-outbound-port", "90-80" }, "--exclude-outbound-port" },
		{ { "--socket", "a", "--deny-outbound-cidr", "169.254.7.127/8" }, "--deny-outbound-cidr" },
		{ { "--socket", "a", "--deny-outbound-cidr", "none,10.0.0.0/8" }, "--deny-outbound-cidr" },
		{ { "--socket", "a", "--deny-outbound-cidr", "" }, "--deny-outbound-cidr" },
		{ { "--socket", "a", "--include-outbound-cidr", "" }, "leave out --outbound-proxy" },
		{ { "--socket", "a", "--include-outbound-cidr", " " }, "--include-outbound-cidr" },
		{ { "--socket", "a", "--max-flows", "0" }, "--max-flows" },
		{ { "--socket", "a", "--max-reass-segments", "63" }, "--max-reass-segments" },
		{ { "--socket", "a", "--busy-poll", "10001" }, "--busy-poll" },
		{ { "--socket", "a", "--busy-poll", "1ms" }, "--busy-poll" },
		{ { "--socket", "a", "--busy-poll", "us" }, "--busy-poll" },
		{ { "--socket", "a", "--busy-poll", "Auto" }, "--busy-poll" },
		{ { "--socket", "a", "--sched", "fifo" }, "expected 'auto', 'normal' or 'batch'" },
		{ { "--socket", "a", "--sched", "" }, "--sched" },
		{ { "--socket", "a", "--busy-poll", "auto:100" }, "--busy-poll" },
		{ { "--socket", "a", "--busy-poll", "-5" }, "--busy-poll" },
		{ { "--socket", "a", "--busy-poll-when", "never" }, "--busy-poll-when" },
		{ { "--socket", "a", "--busy-poll-when", "" }, "--busy-poll-when" },
		{ { "--socket", "a", "--busy-poll", "" }, "--busy-poll" },
		{ { "--socket", "a", "--busy-poll", "99999999999999999999" }, "--busy-poll" },
		{ { "--socket", "a", "--proxy-source", "10.0.0.1" }, "--proxy-source" },
		{ { "--socket", "" }, "--socket" },
		{ { "--tap", "this-name-is-too-long" }, "--tap" },
		{ { "--tap", "a/b" }, "--tap" },
		{ { "--socket", "a", "extra" }, "unexpected argument 'extra'" },
		{ { "--socket", "a", "--bogus" }, "--bogus" },
		{ { "--socket" }, "--socket" },
	};

	(void)state;
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		struct ms_config cfg;
		g_autoptr(GError) err = NULL;
		const char *const *a = cases[i].args;
		int ret = parse(&cfg, &err, a[0], a[1], a[2], a[3], a[4], a[5], NULL);

		if (ret != -EINVAL || !err || !strstr(err->message, cases[i].needle))
			fail_msg("case %zu (%s %s %s %s): ret %d, message '%s', wanted '%s'",
				 i, a[0], a[1], a[2], a[3], ret, err ? err->message : "(none)",
				 cases[i].needle);
		/* One line: no newline inside the message. */
		assert_null(strchr(err->message, '\n'));
		ms_config_free(&cfg);
	}
}

static void test_socket_path_too_long(void **state)
{
	struct ms_config cfg;
	g_autoptr(GError) err = NULL;
	char path[120];

	(void)state;
	memset(path, 'a', sizeof(path) - 1);
	path[sizeof(path) - 1] = 0;
	assert_int_equal(parse(&cfg, &err, "--socket", path, NULL), -EINVAL);
	assert_non_null(strstr(err->message, "107 bytes"));
	ms_config_free(&cfg);
}

static void test_port_and_expose_helpers(void **state)
{
	struct bridge_expose e;
	const char *why;
	uint16_t p;

	(void)state;
	assert_int_equal(options_parse_port("0", true, &p), 0);
	assert_int_equal(p, 0);
	assert_int_equal(options_parse_port("0", false, &p), -EINVAL);
	assert_int_equal(options_parse_port("65535", false, &p), 0);
	assert_int_equal(options_parse_port("+80", false, &p), -EINVAL);
	assert_int_equal(options_parse_port(" 80", false, &p), -EINVAL);
	assert_int_equal(options_parse_expose("tcp:1:65535", &e, &why), 0);
	assert_int_equal(e.host_port, 1);
	assert_int_equal(e.guest_port, 65535);
}

/*
 * At most MS_EXPOSE_MAX exposed ports, TCP and unix together; the next
 * --expose of either kind is refused, naming the bound.
 */
static void test_expose_bound(void **state)
{
	const char *const extra[] = { "tcp:65000:80", "unix:/run/one-more.sock:80" };

	(void)state;
	for (size_t k = 0; k < G_N_ELEMENTS(extra); k++) {
		g_autoptr(GPtrArray) args = g_ptr_array_new_with_free_func(g_free);
		g_autoptr(GError) err = NULL;
		struct ms_config cfg;

		g_ptr_array_add(args, g_strdup("meshslirp"));
		g_ptr_array_add(args, g_strdup("--socket"));
		g_ptr_array_add(args, g_strdup("q"));
		for (int i = 0; i < MS_EXPOSE_MAX; i++) {
			g_ptr_array_add(args, g_strdup("--expose"));
			g_ptr_array_add(args, i % 2 ? g_strdup_printf("tcp:%d:80", 20000 + i)
					            : g_strdup_printf("unix:/run/in%d.sock:80", i));
		}
		assert_int_equal(options_parse((int)args->len, (char **)args->pdata, &cfg, &err), 0);
		assert_int_equal(cfg.expose->len + cfg.expose_unix->len, MS_EXPOSE_MAX);
		ms_config_free(&cfg);

		g_ptr_array_add(args, g_strdup("--expose"));
		g_ptr_array_add(args, g_strdup(extra[k]));
		assert_int_equal(options_parse((int)args->len, (char **)args->pdata, &cfg, &err),
				 -EINVAL);
		assert_non_null(err);
		assert_non_null(strstr(err->message, "at most 1024 ports can be exposed"));
		ms_config_free(&cfg);
	}
}

/* The unix legs: --outbound-proxy unix:PATH and --expose unix:PATH:GUESTPORT. */
static void test_unix_legs(void **state)
{
	static const struct {
		const char *args[4];
		const char *needle;
	} bad[] = {
		{ { "--outbound-proxy", "unix:" }, "absolute" },
		{ { "--outbound-proxy", "unix:relative/s" }, "absolute" },
		{ { "--outbound-proxy", "unix:/a:b" }, "':'" },
		{ { "--outbound-proxy",
		    "unix:/a-very-long-directory-name-that-goes-on/and-on-and-on/until-it-cannot-be-a-unix-socket/any-more/no/not-at-all.sock" },
		  "longer than 107" },
		{ { "--expose", "unix:/run/s" }, "guest port is required" },
		{ { "--expose", "unix:/run/s:0" }, "guest port" },
		{ { "--expose", "unix:/run/s:65536" }, "guest port" },
		{ { "--expose", "unix::80" }, "absolute" },
		{ { "--expose", "unix:run/s:80" }, "absolute" },
		{ { "--expose", "unix:/run/s:80", "--expose", "unix:/run/s:81" }, "exposed twice" },
		{ { "--outbound-proxy", "unix:/run/s", "--dns-upstream", "127.0.0.1:15001" },
		  "virtual target" },
	};
	struct ms_config cfg;
	struct ms_expose_unix u;
	const char *why;

	(void)state;
	assert_int_equal(parse(&cfg, NULL, "--socket", "q", "--outbound-proxy", "unix:/run/envoy.sock",
			       "--expose", "unix:/run/in.sock:8080", "--expose", "tcp:9090",
			       "--expose", "unix:/run/in2.sock:22", NULL), 0);
	assert_true(cfg.outbound_proxy_set);
	assert_string_equal(cfg.outbound_proxy_unix, "/run/envoy.sock");
	/* The virtual target: never connected, but refused to the guest like the sidecar. */
	assert_addr(cfg.outbound_proxy_addr, "127.0.0.1");
	assert_int_equal(cfg.outbound_proxy_port, 15001);
	assert_int_equal(cfg.expose_unix->len, 2);
	assert_string_equal(g_array_index(cfg.expose_unix, struct ms_expose_unix, 0).path,
			    "/run/in.sock");
	assert_int_equal(g_array_index(cfg.expose_unix, struct ms_expose_unix, 0).guest_port, 8080);
	assert_int_equal(g_array_index(cfg.expose_unix, struct ms_expose_unix, 1).guest_port, 22);
	assert_int_equal(cfg.expose->len, 1); /* the tcp one only */
	ms_config_free(&cfg);

	/* The last --outbound-proxy wins, TCP after unix clears the path. */
	assert_int_equal(parse(&cfg, NULL, "--socket", "q", "--outbound-proxy", "unix:/run/e.sock",
			       "--outbound-proxy", "127.0.0.1:15002", NULL), 0);
	assert_null(cfg.outbound_proxy_unix);
	assert_int_equal(cfg.outbound_proxy_port, 15002);
	ms_config_free(&cfg);

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(GError) err = NULL;
		const char *a[4] = { 0 };

		for (size_t j = 0; j < 4; j++)
			a[j] = bad[i].args[j];
		assert_int_equal(parse(&cfg, &err, "--socket", "q", a[0], a[1], a[2], a[3], NULL),
				 -EINVAL);
		assert_non_null(err);
		if (!strstr(err->message, bad[i].needle))
			fail_msg("case %zu: '%s' lacks '%s'", i, err->message, bad[i].needle);
		ms_config_free(&cfg);
	}

	assert_int_equal(options_parse_expose_unix("unix:/a/b:1", &u, &why), 0);
	assert_string_equal(u.path, "/a/b");
	assert_int_equal(u.guest_port, 1);
	g_free(u.path);
	assert_int_equal(options_parse_expose_unix("tcp:1", &u, &why), -EINVAL);
	assert_int_equal(options_parse_unix_path("/ok", &why), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_deny),
		cmocka_unit_test(test_vhost_user),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_all_options),
		cmocka_unit_test(test_derived_addresses_follow_network),
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_steer_stack),
		cmocka_unit_test(test_busy_poll),
		cmocka_unit_test(test_busy_poll_when),
		cmocka_unit_test(test_sched),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_socket_path_too_long),
		cmocka_unit_test(test_port_and_expose_helpers),
		cmocka_unit_test(test_expose_bound),
		cmocka_unit_test(test_unix_legs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
