/* options.c - the daemon's command line: GNU long options into a validated config. */

#include "options.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/un.h>

#include "common/mainloop.h"

#define MS_OPTION_ERROR (g_quark_from_static_string("meshslirp-options"))

/* Fail option @name with a formatted reason; always returns FALSE. */
G_GNUC_PRINTF(3, 4)
static gboolean options_fail(GError **err, const char *name, const char *fmt, ...)
{
	g_autofree char *why = NULL;
	va_list ap;

	va_start(ap, fmt);
	why = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error(err, MS_OPTION_ERROR, EINVAL, "%s: %s", name, why);
	return FALSE;
}

/* One word a keyword option accepts, and the value it stands for. */
struct options_word {
	const char *word;
	int value;
};

/*
 * A keyword option (--offload, --steer-stack, --busy-poll-when, --sched):
 * *@out set to the value of the word @value is, else a failure naming every
 * word ("expected 'a', 'b' or 'c', got '...'").
 */
static gboolean options_parse_word(const char *name, const char *value,
				   const struct options_word *words, size_t n, int *out,
				   GError **err)
{
	g_autoptr(GString) expected = g_string_new("expected ");

	for (size_t i = 0; i < n; i++) {
		if (!strcmp(value, words[i].word)) {
			*out = words[i].value;
			return TRUE;
		}
	}
	for (size_t i = 0; i < n; i++)
		g_string_append_printf(expected, "%s'%s'", !i ? "" : i + 1 == n ? " or " : ", ",
				       words[i].word);
	return options_fail(err, name, "%s, got '%s'", expected->str, value);
}

/* Strict decimal: digits only, no sign, no spaces, within [min, max]. */
static int options_parse_uint(const char *s, unsigned long min,
			      unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!s || !g_ascii_isdigit(s[0]))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int options_parse_port(const char *s, bool allow_zero, uint16_t *port)
{
	unsigned long v;

	if (options_parse_uint(s, allow_zero ? 0 : 1, 65535, &v))
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

int options_parse_expose(const char *s, struct bridge_expose *out, const char **why)
{
	g_auto(GStrv) parts = g_strsplit(s, ":", 0);
	guint n = g_strv_length(parts);

	if (n < 2 || n > 3) {
		*why = "expected tcp:HOSTPORT[:GUESTPORT]";
		return -EINVAL;
	}
	if (strcmp(parts[0], "tcp")) {
		*why = "only the tcp protocol can be exposed";
		return -EINVAL;
	}
	if (options_parse_port(parts[1], false, &out->host_port)) {
		*why = "host port must be a number from 1 to 65535";
		return -EINVAL;
	}
	out->guest_port = out->host_port;
	if (n == 3 && options_parse_port(parts[2], false, &out->guest_port)) {
		*why = "guest port must be a number from 1 to 65535";
		return -EINVAL;
	}
	return 0;
}

int options_parse_unix_path(const char *path, const char **why)
{
	size_t len = strlen(path);

	if (path[0] != '/') {
		*why = "the unix socket path must be absolute";
		return -EINVAL;
	}
	/* sun_path holds 108 bytes with the NUL; no abstract names, no truncation. */
	if (len >= sizeof(((struct sockaddr_un *)NULL)->sun_path)) {
		*why = "the unix socket path is longer than 107 bytes";
		return -EINVAL;
	}
	if (strchr(path, ':')) {
		*why = "the unix socket path must not contain ':'";
		return -EINVAL;
	}
	return 0;
}

int options_parse_expose_unix(const char *s, struct ms_expose_unix *out, const char **why)
{
	const char *colon;
	g_autofree char *path = NULL;

	if (strncmp(s, "unix:", 5)) {
		*why = "expected unix:PATH:GUESTPORT";
		return -EINVAL;
	}
	s += 5;
	/* The guest port is required: a path has no port to default to. */
	colon = strrchr(s, ':');
	if (!colon) {
		*why = "expected unix:PATH:GUESTPORT (the guest port is required)";
		return -EINVAL;
	}
	path = g_strndup(s, (gsize)(colon - s));
	if (options_parse_unix_path(path, why))
		return -EINVAL;
	if (options_parse_port(colon + 1, false, &out->guest_port)) {
		*why = "guest port must be a number from 1 to 65535";
		return -EINVAL;
	}
	out->path = g_steal_pointer(&path);
	return 0;
}

static int options_parse_ipv4(const char *s, struct in_addr *addr)
{
	return inet_pton(AF_INET, s, addr) == 1 ? 0 : -EINVAL;
}

static gboolean opt_network(const gchar *name, const gchar *value,
			    gpointer data, GError **err)
{
	struct ms_config *cfg = data;
	g_auto(GStrv) parts = g_strsplit(value, "/", 2);
	unsigned long prefix;
	uint32_t mask, net;

	if (g_strv_length(parts) != 2 || options_parse_ipv4(parts[0], &cfg->network))
		return options_fail(err, name, "expected an IPv4 CIDR such as 10.0.2.0/24, got '%s'", value);
	/* /30 leaves two hosts; we need gateway, DNS and the guest. */
	if (options_parse_uint(parts[1], 1, 29, &prefix))
		return options_fail(err, name, "prefix length must be 1..29, got '%s'", parts[1]);

	mask = ~(0xffffffffu >> prefix);
	net = ntohl(cfg->network.s_addr);
	if (net & ~mask)
		return options_fail(err, name, "'%s' has host bits set (did you mean %s/%lu?)",
				    value, inet_ntoa((struct in_addr){ htonl(net & mask) }), prefix);
	cfg->prefix_len = (unsigned int)prefix;
	cfg->netmask.s_addr = htonl(mask);
	return TRUE;
}

static gboolean opt_addr(const char *name, const char *value, struct in_addr *out,
			 bool *set, GError **err)
{
	if (options_parse_ipv4(value, out))
		return options_fail(err, name, "expected an IPv4 address, got '%s'", value);
	if (set)
		*set = true;
	return TRUE;
}

static gboolean opt_gateway(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;

	return opt_addr(name, value, &cfg->gateway, &cfg->gateway_set, err);
}

static gboolean opt_dns(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;

	return opt_addr(name, value, &cfg->dns, &cfg->dns_set, err);
}

static gboolean opt_guest(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;

	return opt_addr(name, value, &cfg->guest, &cfg->guest_set, err);
}

static gboolean opt_expose_addr(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;

	return opt_addr(name, value, &cfg->expose_addr, NULL, err);
}

static gboolean opt_mtu(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;
	unsigned long v;

	if (options_parse_uint(value, MS_MTU_MIN, MS_MTU_MAX, &v))
		return options_fail(err, name, "expected a number from %d to %d, got '%s'",
				    MS_MTU_MIN, MS_MTU_MAX, value);
	cfg->mtu = (unsigned int)v;
	return TRUE;
}

static gboolean opt_offload(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	static const struct options_word words[] = { { "on", true }, { "off", false } };
	struct ms_config *cfg = data;
	int v;

	if (!options_parse_word(name, value, words, G_N_ELEMENTS(words), &v, err))
		return FALSE;
	cfg->offload = v;
	return TRUE;
}

static gboolean opt_steer_stack(const gchar *name, const gchar *value, gpointer data,
				GError **err)
{
	static const struct options_word words[] = {
		{ "auto", MS_STEER_AUTO }, { "kernel", MS_STEER_KERNEL }, { "slirp", MS_STEER_SLIRP },
	};
	struct ms_config *cfg = data;
	int v;

	if (!options_parse_word(name, value, words, G_N_ELEMENTS(words), &v, err))
		return FALSE;
	cfg->steer_stack = v;
	return TRUE;
}

static gboolean opt_expose(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;
	struct bridge_expose e;
	struct ms_expose_unix u;
	const char *why;

	if (cfg->expose->len + cfg->expose_unix->len >= MS_EXPOSE_MAX)
		return options_fail(err, name, "at most %d ports can be exposed", MS_EXPOSE_MAX);
	if (g_str_has_prefix(value, "unix:")) {
		if (options_parse_expose_unix(value, &u, &why))
			return options_fail(err, name, "%s, got '%s'", why, value);
		for (guint i = 0; i < cfg->expose_unix->len; i++) {
			if (!strcmp(g_array_index(cfg->expose_unix, struct ms_expose_unix, i).path,
				    u.path)) {
				g_autofree char *path = u.path;

				return options_fail(err, name, "unix socket %s is exposed twice", path);
			}
		}
		g_array_append_val(cfg->expose_unix, u);
		return TRUE;
	}
	if (options_parse_expose(value, &e, &why))
		return options_fail(err, name, "%s, got '%s'", why, value);
	for (guint i = 0; i < cfg->expose->len; i++) {
		if (g_array_index(cfg->expose, struct bridge_expose, i).host_port == e.host_port)
			return options_fail(err, name, "host port %u is exposed twice", e.host_port);
	}
	g_array_append_val(cfg->expose, e);
	return TRUE;
}

static gboolean opt_ready_fd(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;
	unsigned long v;

	if (options_parse_uint(value, 3, INT_MAX, &v))
		return options_fail(err, name, "expected a file descriptor number >= 3, got '%s'", value);
	cfg->ready_fd = (int)v;
	return TRUE;
}

static gboolean opt_log_level(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;

	if (log_level_parse(value, &cfg->log_level))
		return options_fail(err, name, "expected error, warning, info or debug, got '%s'", value);
	return TRUE;
}

static gboolean opt_string(const char *name, const char *value, char **out, GError **err)
{
	if (!*value)
		return options_fail(err, name, "must not be empty");
	g_free(*out);
	*out = g_strdup(value);
	return TRUE;
}

static gboolean opt_socket(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;

	/* sizeof(sockaddr_un.sun_path) is 108 on Linux, including the NUL. */
	if (strlen(value) >= 108)
		return options_fail(err, name, "path longer than 107 bytes cannot be a unix socket");
	return opt_string(name, value, &cfg->socket_path, err);
}

static gboolean opt_vhost_user(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;

	/* sizeof(sockaddr_un.sun_path) is 108 on Linux, including the NUL. */
	if (strlen(value) >= 108)
		return options_fail(err, name, "path longer than 107 bytes cannot be a unix socket");
	return opt_string(name, value, &cfg->vhost_user_path, err);
}

static gboolean opt_tap(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;

	if (strlen(value) >= 16 || strchr(value, '/'))
		return options_fail(err, name, "'%s' is not a valid interface name", value);
	return opt_string(name, value, &cfg->tap_name, err);
}

static gboolean opt_netns(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;

	return opt_string(name, value, &cfg->tap_netns, err);
}

/* "IPV4ADDR:PORT" with a port from 1 to 65535. */
static gboolean opt_addr_port(const char *name, const char *value, struct in_addr *addr,
			      uint16_t *port, GError **err)
{
	const char *colon = strrchr(value, ':');
	g_autofree char *host = colon ? g_strndup(value, (gsize)(colon - value)) : NULL;

	if (!colon || options_parse_ipv4(host, addr))
		return options_fail(err, name, "expected IPV4ADDR:PORT, got '%s'", value);
	if (options_parse_port(colon + 1, false, port))
		return options_fail(err, name, "port must be a number from 1 to 65535, got '%s'",
				    colon + 1);
	return TRUE;
}

/*
 * An address libslirp connects to: as opt_addr_port(), and a loopback one must
 * be 127.0.0.1, because libslirp reaches the pod's loopback only through its
 * gateway, which maps to exactly that address.
 */
static gboolean opt_host_port(const char *name, const char *value, struct in_addr *addr,
			      uint16_t *port, GError **err)
{
	char ip[INET_ADDRSTRLEN];

	if (!opt_addr_port(name, value, addr, port, err))
		return FALSE;
	inet_ntop(AF_INET, addr, ip, sizeof(ip));
	if ((ntohl(addr->s_addr) >> 24) == 127 && ntohl(addr->s_addr) != INADDR_LOOPBACK)
		return options_fail(err, name, "a loopback address must be 127.0.0.1, got '%s'", ip);
	if (addr->s_addr == INADDR_ANY)
		return options_fail(err, name, "0.0.0.0 is not an address to connect to");
	return TRUE;
}

static gboolean opt_outbound_proxy(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;

	const char *why;

	cfg->outbound_proxy_set = true;
	if (g_str_has_prefix(value, "unix:")) {
		if (options_parse_unix_path(value + 5, &why))
			return options_fail(err, name, "%s, got '%s'", why, value);
		g_free(cfg->outbound_proxy_unix);
		cfg->outbound_proxy_unix = g_strdup(value + 5);
		/*
		 * The virtual target libslirp believes it connects to: never
		 * connected (proxy-bridge/unixleg.c), but the sidecar's usual
		 * port keeps the egress rule refusing guests that aim at it.
		 */
		cfg->outbound_proxy_addr.s_addr = htonl(INADDR_LOOPBACK);
		cfg->outbound_proxy_port = 15001;
		return TRUE;
	}
	g_clear_pointer(&cfg->outbound_proxy_unix, g_free);
	return opt_host_port(name, value, &cfg->outbound_proxy_addr, &cfg->outbound_proxy_port, err);
}

static gboolean opt_dns_upstream(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;

	cfg->dns_upstream_set = true;
	return opt_host_port(name, value, &cfg->dns_upstream_addr, &cfg->dns_upstream_port, err);
}

static gboolean opt_proxy_protocol(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;

	if (!strcmp(value, "v2"))
		cfg->outbound_proxy_version = PROXY_V2;
	else if (!strcmp(value, "v1"))
		cfg->outbound_proxy_version = PROXY_V1;
	else
		return options_fail(err, name, "expected v2 or v1, got '%s'", value);
	return TRUE;
}

static gboolean opt_proxy_source(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;

	return opt_addr(name, value, &cfg->proxy_source, &cfg->proxy_source_set, err);
}

/* Istio's annotations are comma-separated lists; accept those and repetition. */
static gboolean opt_cidr_list(const char *name, const char *value, GArray *out, GError **err)
{
	g_auto(GStrv) items = g_strsplit(value, ",", 0);

	for (char **it = items; *it; it++) {
		struct policy_cidr c;
		char *item = g_strstrip(*it);

		if (!strcmp(item, "*")) {
			/* "everything": 0.0.0.0/0 */
			c.net = 0;
			c.mask = 0;
		} else if (policy_cidr_parse(item, &c)) {
			return options_fail(err, name, "'%s' is not an IPv4 CIDR (A.B.C.D/N, host bits clear)",
					    item);
		}
		g_array_append_val(out, c);
	}
	return TRUE;
}

/*
 * --include-outbound-cidr: an empty value is refused.  No list means "steer
 * everything" here, where Istio's empty includeOutboundIPRanges redirects
 * nothing: a launcher passing the annotation through would get the opposite.
 */
static gboolean opt_include(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;
	const char *v = value;

	while (g_ascii_isspace(*v))
		v++;
	if (!*v)
		return options_fail(err, name, "empty; give CIDRs, or * for all (to steer nothing, "
				    "leave out --outbound-proxy)");
	return opt_cidr_list(name, value, cfg->include_cidrs, err);
}

static gboolean opt_exclude(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;

	return opt_cidr_list(name, value, cfg->exclude_cidrs, err);
}

/*
 * --deny-outbound-cidr: destinations refused to the guest outright.  The first
 * use replaces the default (Istio ambient's probe address); "none" empties the
 * list given so far.
 */
static gboolean opt_deny(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;

	if (!cfg->deny_cidrs_set) {
		g_array_set_size(cfg->deny_cidrs, 0);
		cfg->deny_cidrs_set = true;
	}
	if (!strcmp(value, "none")) {
		g_array_set_size(cfg->deny_cidrs, 0);
		return TRUE;
	}
	/* An empty value would silently drop the default: say "none" for that. */
	if (!*value)
		return options_fail(err, name, "empty; give CIDRs, or none for no list");
	return opt_cidr_list(name, value, cfg->deny_cidrs, err);
}

static gboolean opt_exclude_port(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;
	g_auto(GStrv) items = g_strsplit(value, ",", 0);

	for (char **it = items; *it; it++) {
		char *item = g_strstrip(*it);
		char *dash = strchr(item, '-');
		uint16_t lo, hi;

		if (dash)
			*dash = 0;
		if (options_parse_port(item, false, &lo) ||
		    options_parse_port(dash ? dash + 1 : item, false, &hi) || hi < lo)
			return options_fail(err, name, "expected ports or ranges like 80,8000-8100, got '%s'",
					    value);
		for (unsigned int p = lo; p <= hi; p++)
			cfg->exclude_ports[p / 8] |= (uint8_t)(1u << (p % 8));
	}
	return TRUE;
}

static gboolean opt_max_flows(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;
	unsigned long v;

	if (options_parse_uint(value, 1, 1048576, &v))
		return options_fail(err, name, "expected a number from 1 to 1048576, got '%s'", value);
	cfg->max_flows = (unsigned int)v;
	cfg->max_flows_set = true;
	return TRUE;
}

static gboolean opt_max_inbound_flows(const gchar *name, const gchar *value, gpointer data,
				      GError **err)
{
	struct ms_config *cfg = data;
	unsigned long v;

	if (options_parse_uint(value, 1, 1048576, &v))
		return options_fail(err, name, "expected a number from 1 to 1048576, got '%s'", value);
	cfg->max_inbound_flows = (unsigned int)v;
	return TRUE;
}

static gboolean opt_max_reass(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;
	unsigned long v;

	/* At least one flow's worth (FLOW_REASS_MAX). */
	if (options_parse_uint(value, FLOW_REASS_MAX, 1048576, &v))
		return options_fail(err, name, "expected a number from " G_STRINGIFY(FLOW_REASS_MAX)
				    " to 1048576, got '%s'", value);
	cfg->max_reass_segments = (unsigned int)v;
	return TRUE;
}

/*
 * --busy-poll auto|USEC: the adaptive window up to MAINLOOP_AUTO_MAX_US, or
 * a fixed one of USEC microseconds, bare or with a "us" suffix (0: off;
 * common/mainloop.h).
 */
static gboolean opt_busy_poll(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;
	g_autofree char *num = g_strdup(value);
	size_t n = strlen(num);
	unsigned long v;

	if (!strcmp(value, "auto")) {
		cfg->busy_poll_us = MAINLOOP_AUTO_MAX_US;
		cfg->busy_poll_adaptive = true;
		return TRUE;
	}
	if (n > 2 && !strcmp(num + n - 2, "us"))
		num[n - 2] = 0;
	if (options_parse_uint(num, 0, MAINLOOP_POLL_MAX_US, &v))
		return options_fail(err, name, "expected 'auto', or microseconds from 0 (off) to "
				    G_STRINGIFY(MAINLOOP_POLL_MAX_US) " (e.g. 200), got '%s'", value);
	cfg->busy_poll_us = (unsigned int)v;
	cfg->busy_poll_adaptive = false;
	return TRUE;
}

/* --busy-poll-when idle|always: whether the guard (common/cpuload.h) may stop a window. */
static gboolean opt_busy_poll_when(const gchar *name, const gchar *value, gpointer data,
				   GError **err)
{
	static const struct options_word words[] = { { "idle", false }, { "always", true } };
	struct ms_config *cfg = data;
	int v;

	if (!options_parse_word(name, value, words, G_N_ELEMENTS(words), &v, err))
		return FALSE;
	cfg->busy_poll_always = v;
	return TRUE;
}

/* --sched auto|normal|batch: the data thread's scheduling policy (common/schedmode.h). */
static gboolean opt_sched(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	static const struct options_word words[] = {
		{ "auto", SCHEDMODE_AUTO }, { "normal", SCHEDMODE_NORMAL }, { "batch", SCHEDMODE_BATCH },
	};
	struct ms_config *cfg = data;
	int v;

	if (!options_parse_word(name, value, words, G_N_ELEMENTS(words), &v, err))
		return FALSE;
	cfg->sched = v;
	return TRUE;
}

static gboolean opt_metrics(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;
	uint16_t port;

	if (!opt_addr_port(name, value, &cfg->metrics_addr.sin_addr, &port, err))
		return FALSE;
	cfg->metrics_addr.sin_family = AF_INET;
	cfg->metrics_addr.sin_port = htons(port);
	cfg->metrics_set = true;
	return TRUE;
}

static gboolean opt_control(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;

	if (strlen(value) >= 108)
		return options_fail(err, name, "path longer than 107 bytes cannot be a unix socket");
	return opt_string(name, value, &cfg->control_path, err);
}

/*
 * --inbound-proxy-trusted: CIDRs plus the words "loopback" (127.0.0.0/8) and
 * "pod" (the pod's own addresses, as they are at the time); the first use
 * replaces the default of "loopback,pod".
 */
static gboolean opt_inbound_trusted(const gchar *name, const gchar *value, gpointer data,
				    GError **err)
{
	struct ms_config *cfg = data;
	g_auto(GStrv) items = g_strsplit(value, ",", 0);

	if (!cfg->inbound_trusted_set) {
		g_array_set_size(cfg->inbound_trusted, 0);
		cfg->inbound_trust_pod = false;
		cfg->inbound_trusted_set = true;
	}
	for (char **it = items; *it; it++) {
		struct policy_cidr c;
		char *item = g_strstrip(*it);

		if (!strcmp(item, "pod")) {
			cfg->inbound_trust_pod = true;
			continue;
		}
		if (!strcmp(item, "loopback"))
			policy_cidr_parse("127.0.0.0/8", &c);
		else if (policy_cidr_parse(item, &c))
			return options_fail(err, name, "'%s' is neither an IPv4 CIDR (A.B.C.D/N, host "
					    "bits clear) nor 'loopback' or 'pod'", item);
		g_array_append_val(cfg->inbound_trusted, c);
	}
	return TRUE;
}

static gboolean opt_allow_host_loopback(const gchar *name, const gchar *value, gpointer data,
					GError **err)
{
	struct ms_config *cfg = data;

	(void)name;
	(void)value;
	(void)err;
	cfg->allow_host_loopback = true;
	return TRUE;
}

static gboolean opt_inbound_mode(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;

	if (!strcmp(value, "off"))
		cfg->inbound_mode = BRIDGE_INBOUND_OFF;
	else if (!strcmp(value, "optional"))
		cfg->inbound_mode = BRIDGE_INBOUND_OPTIONAL;
	else if (!strcmp(value, "required"))
		cfg->inbound_mode = BRIDGE_INBOUND_REQUIRED;
	else
		return options_fail(err, name, "expected off, optional or required, got '%s'", value);
	return TRUE;
}

/*
 * A duration: "250ms", "3s", "5m", "1h" or bare seconds, from @min_ms to
 * @max_ms; 0 is also accepted when @zero_ok ("never").  0 or -EINVAL.
 */
static int options_parse_duration(const char *value, unsigned long min_ms, unsigned long max_ms,
				  bool zero_ok, unsigned int *out_ms)
{
	static const struct { const char *suffix; unsigned long ms; } units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
	};
	g_autofree char *num = g_strdup(value);
	unsigned long v, scale = 1000;
	size_t n = strlen(num);

	for (size_t i = 0; i < G_N_ELEMENTS(units); i++) {
		size_t sl = strlen(units[i].suffix);

		if (n > sl && !strcmp(num + n - sl, units[i].suffix)) {
			num[n - sl] = 0;
			scale = units[i].ms;
			break;
		}
	}
	if (options_parse_uint(num, 0, max_ms, &v) || v > max_ms / scale)
		return -EINVAL;
	v *= scale;
	if ((v || !zero_ok) && (v < min_ms || v > max_ms))
		return -EINVAL;
	*out_ms = (unsigned int)v;
	return 0;
}

static gboolean opt_header_timeout(const gchar *name, const gchar *value, gpointer data,
				   GError **err)
{
	struct ms_config *cfg = data;

	if (options_parse_duration(value, 100, 60000, false, &cfg->inbound_header_timeout_ms))
		return options_fail(err, name, "expected a duration from 100ms to 60s (e.g. 3s, 500ms), got '%s'",
				    value);
	return TRUE;
}

static gboolean opt_connect_timeout(const gchar *name, const gchar *value, gpointer data,
				    GError **err)
{
	struct ms_config *cfg = data;

	if (options_parse_duration(value, 100, 600000, false, &cfg->connect_timeout_ms))
		return options_fail(err, name, "expected a duration from 100ms to 10m (e.g. 10s), got '%s'",
				    value);
	return TRUE;
}

static gboolean opt_tcp_idle(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;

	if (options_parse_duration(value, 1000, 7 * 24 * 3600000ul, true, &cfg->tcp_idle_timeout_ms))
		return options_fail(err, name, "expected 0 (never) or a duration from 1s to 168h (e.g. 1h), got '%s'",
				    value);
	return TRUE;
}

/*
 * --user USER[:GROUP]: only the shape is checked here (no I/O); main resolves
 * the names with sandbox_resolve_user() and exits 2 if they do not exist.
 */
static gboolean opt_user(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;
	const char *colon = strchr(value, ':');

	if (!*value || colon == value || (colon && (!colon[1] || strchr(colon + 1, ':'))))
		return options_fail(err, name, "expected USER or USER:GROUP, got '%s'", value);
	return opt_string(name, value, &cfg->user, err);
}

static gboolean opt_seccomp(const gchar *name, const gchar *value, gpointer data, GError **err)
{
	struct ms_config *cfg = data;

	(void)name;
	(void)value;
	(void)err;
	cfg->seccomp = true;
	return TRUE;
}

#define CB(fn) G_OPTION_ARG_CALLBACK, (gpointer)(fn)

static const GOptionEntry options_entries[] = {
	{ "socket", 0, 0, CB(opt_socket),
	  "Serve QEMU's -netdev stream on unix socket PATH", "PATH" },
	{ "vhost-user", 0, 0, CB(opt_vhost_user),
	  "Serve QEMU's -netdev vhost-user on unix socket PATH (the guest's rings in shared memory)", "PATH" },
	{ "tap", 0, 0, CB(opt_tap),
	  "Serve tap device IFNAME instead (created if missing)", "IFNAME" },
	{ "netns", 0, 0, CB(opt_netns),
	  "Network namespace holding the tap (e.g. /run/netns/NAME)", "PATH" },
	{ "network", 0, 0, CB(opt_network),
	  "Guest network (default 10.0.2.0/24)", "CIDR" },
	{ "gateway", 0, 0, CB(opt_gateway),
	  "Gateway address seen by the guest (default network + 2)", "ADDR" },
	{ "dns", 0, 0, CB(opt_dns),
	  "DNS address seen by the guest (default network + 3)", "ADDR" },
	{ "guest-address", 0, 0, CB(opt_guest),
	  "Address leased to the guest (default network + 15)", "ADDR" },
	{ "mtu", 0, 0, CB(opt_mtu),
	  "The guest link's MTU, 576..65520 (default 65520, whatever the pod's: TCP ends here); "
	  "DHCP tells the guest", "N" },
	{ "offload", 0, 0, CB(opt_offload),
	  "Checksum and TCP segmentation offloads with the guest (vhost-user, tap): on (default) "
	  "or off", "on|off" },
	{ "steer-stack", 0, 0, CB(opt_steer_stack),
	  "Which TCP ends the guest's TCP to other hosts, steered and direct: kernel (the "
	  "kernel's, in a private namespace; needs CAP_SYS_ADMIN or user namespaces, and "
	  "/dev/net/tun), slirp (libslirp's), or auto (default: kernel where it can be set up "
	  "at start, else slirp)",
	  "auto|kernel|slirp" },
	{ "busy-poll", 0, 0, CB(opt_busy_poll),
	  "Keep polling after the last event before sleeping, for lower request/response "
	  "latency, for up to a CPU while traffic flows: auto (a window that follows the gaps "
	  "between events, up to " G_STRINGIFY(MAINLOOP_AUTO_MAX_US) " us; none under a cgroup "
	  "CPU quota), a fixed window of USEC microseconds (1.." G_STRINGIFY(MAINLOOP_POLL_MAX_US)
	  ", e.g. 200 or 200us), or 0 (off, the default)",
	  "auto|USEC" },
	{ "busy-poll-when", 0, 0, CB(opt_busy_poll_when),
	  "With --busy-poll: poll only while no other task waits for a CPU (idle, the default: "
	  "a machine with no spare CPU keeps its throughput) or whatever the load (always: for a "
	  "CPU set aside for the daemon)", "idle|always" },
	{ "sched", 0, 0, CB(opt_sched),
	  "The data thread's scheduling policy: auto (the default: on the kernel path, "
	  "SCHED_BATCH while the guest's traffic runs at bulk rates, so its wake-ups do not cut "
	  "the sidecar's and the VM's batches short; SCHED_OTHER otherwise, for latency), normal "
	  "(always SCHED_OTHER) or batch (always SCHED_BATCH).  A daemon started under another "
	  "policy keeps it", "auto|normal|batch" },
	{ "expose", 0, 0, CB(opt_expose),
	  "Forward a host TCP port, or a unix socket (the sidecar's leg, with a PROXY header), "
	  "to the guest (repeatable)", "tcp:HOSTPORT[:GUESTPORT]|unix:PATH:GUESTPORT" },
	{ "inbound-proxy-protocol", 0, 0, CB(opt_inbound_mode),
	  "PROXY header on exposed ports: off (default), optional or required", "MODE" },
	{ "inbound-header-timeout", 0, 0, CB(opt_header_timeout),
	  "Close a connection whose header is not complete by then (default 3s)", "DURATION" },
	{ "inbound-proxy-trusted", 0, 0, CB(opt_inbound_trusted),
	  "Believe PROXY headers only from these peers (default loopback,pod)",
	  "CIDR|loopback|pod[,...]" },
	{ "expose-address", 0, 0, CB(opt_expose_addr),
	  "Address exposed ports listen on (default 0.0.0.0)", "ADDR" },
	{ "outbound-proxy", 0, 0, CB(opt_outbound_proxy),
	  "Steer guest TCP into the sidecar's outbound port (e.g. 127.0.0.1:15001), or its unix "
	  "socket", "ADDR:PORT|unix:PATH" },
	{ "outbound-proxy-protocol", 0, 0, CB(opt_proxy_protocol),
	  "PROXY header version for steered flows: v2 (default) or v1", "v2|v1" },
	{ "proxy-source", 0, 0, CB(opt_proxy_source),
	  "Source address in the PROXY header (default: the namespace's primary IPv4)", "ADDR" },
	{ "include-outbound-cidr", 0, 0, CB(opt_include),
	  "Steer only these destinations (repeatable, comma lists, * = all)", "CIDR[,CIDR...]" },
	{ "exclude-outbound-cidr", 0, 0, CB(opt_exclude),
	  "Never steer these destinations (repeatable, comma lists)", "CIDR[,CIDR...]" },
	{ "exclude-outbound-port", 0, 0, CB(opt_exclude_port),
	  "Never steer these destination ports (repeatable, comma lists, ranges)", "PORT[-PORT][,...]" },
	{ "deny-outbound-cidr", 0, 0, CB(opt_deny),
	  "Refuse these destinations to the guest (repeatable, comma lists; none: no list). "
	  "Default " EGRESS_AMBIENT_PROBE_CIDR ", the probe address Istio ambient's capture "
	  "leaves alone", "CIDR[,CIDR...]|none" },
	{ "allow-host-loopback", 0, G_OPTION_FLAG_NO_ARG, CB(opt_allow_host_loopback),
	  "Let the guest reach the pod's 127.0.0.1 through the gateway address, except the "
	  "sidecar's ports (off: not for a mesh pod)", NULL },
	{ "dns-upstream", 0, 0, CB(opt_dns_upstream),
	  "Send guest DNS (UDP and TCP to the --dns address) to this server", "ADDR:PORT" },
	{ "max-flows", 0, 0, CB(opt_max_flows),
	  "Most guest flows at once, direct ones included (default "
	  G_STRINGIFY(BRIDGE_DEFAULT_MAX_FLOWS) "); the kernel path (--steer-stack) has a table of "
	  "its own this size too", "N" },
	{ "max-inbound-flows", 0, 0, CB(opt_max_inbound_flows),
	  "Most exposed-port connections at once, of the --max-flows table (default half of it: "
	  "the rest stays the guest's own)", "N" },
	{ "max-reass-segments", 0, 0, CB(opt_max_reass),
	  "Most guest TCP segments libslirp may hold out of order, over all flows; more are "
	  "dropped (default " G_STRINGIFY(FLOW_REASS_TOTAL_DEFAULT) ", each up to 64 KiB of memory)",
	  "N" },
	{ "connect-timeout", 0, 0, CB(opt_connect_timeout),
	  "Reset a flow whose upstream has not answered by then (default "
	  G_STRINGIFY(BRIDGE_DEFAULT_CONNECT_TIMEOUT_S) "s)", "DURATION" },
	{ "tcp-idle-timeout", 0, 0, CB(opt_tcp_idle),
	  "Reset a TCP flow idle this long; 0: never (default "
	  G_STRINGIFY(BRIDGE_DEFAULT_TCP_IDLE_S) "s)", "DURATION" },
	{ "control", 0, 0, CB(opt_control),
	  "Control socket: JSON lines to list flows and add/remove exposed ports", "PATH" },
	{ "metrics", 0, 0, CB(opt_metrics),
	  "Serve Prometheus metrics on http://ADDR:PORT/metrics", "ADDR:PORT" },
	{ "user", 0, 0, CB(opt_user),
	  "Started as root: become USER after set-up, with no capability but "
	  "CAP_NET_BIND_SERVICE for a low --expose port", "USER[:GROUP]" },
	{ "seccomp", 0, G_OPTION_FLAG_NO_ARG, CB(opt_seccomp),
	  "After set-up, allow only the system calls the daemon needs (others kill it)", NULL },
	{ "ready-fd", 0, 0, CB(opt_ready_fd),
	  "Write \"READY\\n\" to fd N and close it once serving", "N" },
	{ "log-level", 0, 0, CB(opt_log_level),
	  "error, warning, info (default) or debug", "LEVEL" },
	{ "version", 'V', 0, G_OPTION_ARG_NONE, NULL,
	  "Print the version and exit", NULL },
	{ NULL, 0, 0, 0, NULL, NULL, NULL },
};

static bool options_in_network(const struct ms_config *cfg, struct in_addr a)
{
	return (a.s_addr & cfg->netmask.s_addr) == cfg->network.s_addr;
}

/* Host part of the network: network + @n. */
static struct in_addr options_host(const struct ms_config *cfg, uint32_t n)
{
	return (struct in_addr){ htonl(ntohl(cfg->network.s_addr) + n) };
}

/* Cross-option checks once every option is known. */
static int options_validate(struct ms_config *cfg, GError **err)
{
	const struct { const char *name; struct in_addr a; } addrs[] = {
		{ "--gateway", cfg->gateway },
		{ "--dns", cfg->dns },
		{ "--guest-address", cfg->guest },
	};
	uint32_t bcast = ntohl(cfg->network.s_addr | ~cfg->netmask.s_addr);

	if (!!cfg->socket_path + !!cfg->tap_name + !!cfg->vhost_user_path != 1)
		return options_fail(err, cfg->socket_path ? "--socket" :
				    cfg->vhost_user_path ? "--vhost-user" : "--tap",
				    "exactly one of --socket PATH, --tap IFNAME or --vhost-user PATH "
				    "is required"), -EINVAL;
	if (cfg->tap_netns && !cfg->tap_name)
		return options_fail(err, "--netns", "only applies with --tap"), -EINVAL;
	if (!cfg->outbound_proxy_set && cfg->proxy_source_set)
		return options_fail(err, "--proxy-source", "only applies with --outbound-proxy"), -EINVAL;
	if (cfg->outbound_proxy_unix && cfg->dns_upstream_set &&
	    cfg->dns_upstream_addr.s_addr == htonl(INADDR_LOOPBACK) && cfg->dns_upstream_port == 15001)
		return options_fail(err, "--dns-upstream", "127.0.0.1:15001 is the virtual target of "
				    "--outbound-proxy unix:PATH"), -EINVAL;
	if (!cfg->outbound_proxy_unix && cfg->outbound_proxy_set && cfg->dns_upstream_set &&
	    cfg->outbound_proxy_addr.s_addr == cfg->dns_upstream_addr.s_addr &&
	    cfg->outbound_proxy_port == cfg->dns_upstream_port)
		return options_fail(err, "--dns-upstream", "is the same address as --outbound-proxy"), -EINVAL;

	for (size_t i = 0; i < G_N_ELEMENTS(addrs); i++) {
		uint32_t h = ntohl(addrs[i].a.s_addr);

		if (!options_in_network(cfg, addrs[i].a))
			return options_fail(err, addrs[i].name, "%s is outside the guest network",
					    inet_ntoa(addrs[i].a)), -EINVAL;
		if (addrs[i].a.s_addr == cfg->network.s_addr || h == bcast)
			return options_fail(err, addrs[i].name,
					    "%s is the network or broadcast address",
					    inet_ntoa(addrs[i].a)), -EINVAL;
		for (size_t j = 0; j < i; j++) {
			if (addrs[i].a.s_addr == addrs[j].a.s_addr)
				return options_fail(err, addrs[i].name, "%s is also %s",
						    inet_ntoa(addrs[i].a), addrs[j].name), -EINVAL;
		}
	}
	return 0;
}

int options_parse(int argc, char **argv, struct ms_config *cfg, GError **err)
{
	g_autoptr(GOptionContext) ctx = g_option_context_new("- VM networking for a service mesh");
	g_autofree char **args = g_new0(char *, argc + 1);
	GOptionGroup *group;
	GOptionEntry entries[G_N_ELEMENTS(options_entries)];
	int nargs = argc;

	memset(cfg, 0, sizeof(*cfg));
	cfg->expose = g_array_new(FALSE, FALSE, sizeof(struct bridge_expose));
	cfg->expose_unix = g_array_new(FALSE, FALSE, sizeof(struct ms_expose_unix));
	cfg->include_cidrs = g_array_new(FALSE, FALSE, sizeof(struct policy_cidr));
	cfg->exclude_cidrs = g_array_new(FALSE, FALSE, sizeof(struct policy_cidr));
	cfg->inbound_trusted = g_array_new(FALSE, FALSE, sizeof(struct policy_cidr));
	cfg->deny_cidrs = g_array_new(FALSE, FALSE, sizeof(struct policy_cidr));
	{
		struct policy_cidr lo, probe;

		policy_cidr_parse("127.0.0.0/8", &lo);
		g_array_append_val(cfg->inbound_trusted, lo);
		cfg->inbound_trust_pod = true;
		policy_cidr_parse(EGRESS_AMBIENT_PROBE_CIDR, &probe);
		g_array_append_val(cfg->deny_cidrs, probe);
	}
	cfg->outbound_proxy_version = PROXY_V2;
	cfg->max_flows = BRIDGE_DEFAULT_MAX_FLOWS;
	cfg->max_reass_segments = FLOW_REASS_TOTAL_DEFAULT;
	cfg->inbound_mode = BRIDGE_INBOUND_OFF;
	cfg->inbound_header_timeout_ms = 3000;
	cfg->connect_timeout_ms = BRIDGE_DEFAULT_CONNECT_TIMEOUT_S * 1000;
	cfg->tcp_idle_timeout_ms = BRIDGE_DEFAULT_TCP_IDLE_S * 1000;
	cfg->mtu = MS_DEFAULT_MTU;
	cfg->offload = true;
	cfg->steer_stack = MS_STEER_AUTO;
	cfg->sched = SCHEDMODE_AUTO;
	cfg->ready_fd = -1;
	cfg->log_level = LOG_LEVEL_INFO;
	inet_pton(AF_INET, "10.0.2.0", &cfg->network);
	inet_pton(AF_INET, "255.255.255.0", &cfg->netmask);
	cfg->prefix_len = 24;
	cfg->expose_addr.s_addr = htonl(INADDR_ANY);

	memcpy(entries, options_entries, sizeof(entries));
	for (size_t i = 0; i < G_N_ELEMENTS(entries); i++) {
		if (entries[i].long_name && !strcmp(entries[i].long_name, "version"))
			entries[i].arg_data = &cfg->show_version;
	}

	group = g_option_group_new("meshslirp", "meshslirp options", "Show meshslirp options",
				   cfg, NULL);
	g_option_group_add_entries(group, entries);
	g_option_context_set_main_group(ctx, group);
	g_option_context_set_summary(ctx,
		"Terminates a QEMU guest's network in userspace (libslirp; TCP to other hosts\n"
		"in a private kernel stack where it can) and connects it to the host and to a\n"
		"service mesh sidecar.");
	g_option_context_set_description(ctx,
		"QEMU: -netdev stream,id=n0,server=off,addr.type=unix,addr.path=PATH\n"
		"      -device virtio-net-pci,netdev=n0\n"
		"vhost-user (--vhost-user PATH; guest RAM must be shared):\n"
		"      -object memory-backend-memfd,id=mem,size=SIZE,share=on -machine memory-backend=mem\n"
		"      -chardev socket,id=c0,path=PATH -netdev vhost-user,id=n0,chardev=c0\n"
		"      -device virtio-net-pci,netdev=n0\n");

	/* GOption rewrites its argv; keep the caller's intact. */
	memcpy(args, argv, sizeof(char *) * argc);
	if (!g_option_context_parse(ctx, &nargs, (char ***)&args, err))
		return -EINVAL;
	if (nargs > 1) {
		g_set_error(err, MS_OPTION_ERROR, EINVAL, "unexpected argument '%s'", args[1]);
		return -EINVAL;
	}
	if (cfg->show_version)
		return 0;

	if (!cfg->gateway_set)
		cfg->gateway = options_host(cfg, 2);
	if (!cfg->dns_set)
		cfg->dns = options_host(cfg, 3);
	if (!cfg->guest_set)
		cfg->guest = options_host(cfg, 15);
	return options_validate(cfg, err);
}

void ms_config_free(struct ms_config *cfg)
{
	g_clear_pointer(&cfg->socket_path, g_free);
	g_clear_pointer(&cfg->tap_name, g_free);
	g_clear_pointer(&cfg->tap_netns, g_free);
	g_clear_pointer(&cfg->vhost_user_path, g_free);
	g_clear_pointer(&cfg->control_path, g_free);
	g_clear_pointer(&cfg->user, g_free);
	g_clear_pointer(&cfg->expose, g_array_unref);
	for (guint i = 0; cfg->expose_unix && i < cfg->expose_unix->len; i++)
		g_free(g_array_index(cfg->expose_unix, struct ms_expose_unix, i).path);
	g_clear_pointer(&cfg->expose_unix, g_array_unref);
	g_clear_pointer(&cfg->outbound_proxy_unix, g_free);
	g_clear_pointer(&cfg->include_cidrs, g_array_unref);
	g_clear_pointer(&cfg->exclude_cidrs, g_array_unref);
	g_clear_pointer(&cfg->inbound_trusted, g_array_unref);
	g_clear_pointer(&cfg->deny_cidrs, g_array_unref);
}
