/* options.h - the daemon's command line: GNU long options into a validated config. */
#ifndef MESHSLIRP_DAEMON_OPTIONS_H
#define MESHSLIRP_DAEMON_OPTIONS_H

/*
 * options_parse() turns argv into a struct ms_config whose every field is
 * checked: addresses inside the guest network, ports in range, exactly one
 * backend.  It performs no I/O except what GOption does for --help.  On a
 * bad value it fails with one message that names the option and what is
 * wrong; main prints it and exits 2.
 *
 * Ownership: the config owns its strings and arrays; ms_config_free().
 */

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>

#include <glib.h>

#include "common/log.h"
#include "common/schedmode.h"
#include "proxy-bridge/bridge.h"
#include "proxy-bridge/policy.h"
#include "proxy-bridge/proxy_proto.h"

/*
 * The guest link's MTU.  meshslirp terminates TCP, so this need not be the
 * pod network's: 65520 lets one frame carry 64 KiB whatever the pod's MTU.
 */
#define MS_DEFAULT_MTU 65520
#define MS_MTU_MIN 576
#define MS_MTU_MAX 65520

/*
 * Exposed ports at once, TCP and unix (each unix one has a loopback relay
 * port), given at start or added on the control socket: each is a listener
 * libslirp walks on every loop turn, and the descriptor budget keeps room
 * for all of them (daemon_flow_budget()).
 */
#define MS_EXPOSE_MAX 1024

/*
 * --steer-stack: which TCP ends the guest's TCP to other hosts, steered
 * (with --outbound-proxy) and direct alike; DNS, UDP, inbound flows and
 * the guest network's own hosts are always libslirp's.
 */
enum ms_steer_stack {
	MS_STEER_AUTO,              /* the kernel's where it can be set up at start, else libslirp's (default) */
	MS_STEER_SLIRP,             /* libslirp's (netstack.h) */
	MS_STEER_KERNEL,            /* the kernel's, in a private namespace (ksteer.h); no fallback */
};

/* --expose unix:PATH:GUESTPORT: a unix listener whose clients reach the guest port. */
struct ms_expose_unix {
	char *path;                 /* owned */
	uint16_t guest_port;
};

struct ms_config {
	char *socket_path;          /* --socket: QEMU stream backend */
	char *tap_name;             /* --tap: tap backend */
	char *tap_netns;            /* --netns, for --tap */
	char *vhost_user_path;      /* --vhost-user: vhost-user backend (we listen) */

	struct in_addr network;     /* --network (address part) */
	struct in_addr netmask;
	unsigned int prefix_len;
	struct in_addr gateway;     /* --gateway, default network + 2 */
	struct in_addr dns;         /* --dns, default network + 3 */
	struct in_addr guest;       /* --guest-address, default network + 15 */
	unsigned int mtu;           /* --mtu */
	bool offload;               /* --offload on|off: negotiate virtio-net offloads */
	enum ms_steer_stack steer_stack; /* --steer-stack: which TCP ends steered flows */
	unsigned int busy_poll_us;  /* --busy-poll: polling window before the loop sleeps, 0: none */
	bool busy_poll_adaptive;    /* --busy-poll auto: the window adapts, busy_poll_us its ceiling */
	bool busy_poll_always;      /* --busy-poll-when always: poll even while a task waits for a CPU */
	enum schedmode_policy sched; /* --sched: the data thread's policy (common/schedmode.h) */

	GArray *expose;             /* struct bridge_expose, --expose (repeatable) */
	GArray *expose_unix;        /* struct ms_expose_unix, --expose unix:PATH:GUESTPORT */
	struct in_addr expose_addr; /* --expose-address, default 0.0.0.0 */

	/* Outbound steering (proxy-bridge). */
	bool outbound_proxy_set;    /* --outbound-proxy HOST:PORT */
	struct in_addr outbound_proxy_addr;
	uint16_t outbound_proxy_port;
	char *outbound_proxy_unix;  /* --outbound-proxy unix:PATH; then addr:port is the virtual target */
	enum proxy_version outbound_proxy_version; /* --outbound-proxy-protocol */
	bool proxy_source_set;      /* --proxy-source */
	struct in_addr proxy_source;
	GArray *include_cidrs;      /* struct policy_cidr, --include-outbound-cidr */
	GArray *exclude_cidrs;      /* struct policy_cidr, --exclude-outbound-cidr */
	uint8_t exclude_ports[65536 / 8]; /* --exclude-outbound-port */
	bool dns_upstream_set;      /* --dns-upstream HOST:PORT */
	struct in_addr dns_upstream_addr;
	uint16_t dns_upstream_port;
	unsigned int max_flows;     /* --max-flows */
	bool max_flows_set;         /* ... given, not the default */
	unsigned int max_inbound_flows; /* --max-inbound-flows; 0: half the table */
	unsigned int max_reass_segments; /* --max-reass-segments */
	unsigned int connect_timeout_ms;  /* --connect-timeout */
	unsigned int tcp_idle_timeout_ms; /* --tcp-idle-timeout, 0: never */

	/* Inbound PROXY headers on exposed ports. */
	enum bridge_inbound_mode inbound_mode; /* --inbound-proxy-protocol */
	unsigned int inbound_header_timeout_ms; /* --inbound-header-timeout */
	GArray *inbound_trusted;    /* struct policy_cidr, --inbound-proxy-trusted */
	bool inbound_trust_pod;     /* "pod" in --inbound-proxy-trusted (default) */
	bool inbound_trusted_set;   /* the option was given: its list replaces the default */

	bool allow_host_loopback;   /* --allow-host-loopback */
	GArray *deny_cidrs;         /* struct policy_cidr, --deny-outbound-cidr */
	bool deny_cidrs_set;        /* the option was given: its list replaces the default */

	char *control_path;         /* --control PATH */
	bool metrics_set;           /* --metrics ADDR:PORT */
	struct sockaddr_in metrics_addr;

	/* Least privilege (daemon/sandbox.c). */
	char *user;                 /* --user USER[:GROUP], resolved by main */
	bool seccomp;               /* --seccomp */

	int ready_fd;               /* --ready-fd, -1 if unset */
	enum log_level log_level;   /* --log-level */
	bool show_version;          /* --version */

	/* Which of the derived addresses were given explicitly. */
	bool gateway_set, dns_set, guest_set;
};

/**
 * options_parse() - parse and validate the command line
 * @argc, @argv:	as given to main (not modified)
 * @cfg:		filled in; free with ms_config_free() even on error
 * @err:		set on failure to a one-line message naming the option
 *
 * --help prints usage and exits 0 (GOption's behaviour).
 *
 * Return: 0, or -EINVAL with @err set.
 */
int options_parse(int argc, char **argv, struct ms_config *cfg, GError **err);

/* ms_config_free() - release what options_parse() allocated in @cfg. */
void ms_config_free(struct ms_config *cfg);

/**
 * options_parse_host_port() - parse "PORT" (0 allowed only if @allow_zero)
 *
 * Return: 0 and *port set, or -EINVAL.
 */
int options_parse_port(const char *s, bool allow_zero, uint16_t *port);

/**
 * options_parse_expose() - parse "tcp:HOSTPORT[:GUESTPORT]"
 *
 * Return: 0, or -EINVAL with @why set to a static explanation.
 */
int options_parse_expose(const char *s, struct bridge_expose *out, const char **why);

/**
 * options_parse_unix_path() - check a unix socket path given after "unix:"
 *
 * Absolute, non-empty, fits sockaddr_un's sun_path with its NUL (107 bytes
 * at most), no ':' (the --expose syntax separates with it).
 *
 * Return: 0, or -EINVAL with @why set to a static explanation.
 */
int options_parse_unix_path(const char *path, const char **why);

/**
 * options_parse_expose_unix() - parse "unix:PATH:GUESTPORT"
 *
 * Return: 0 with @out->path a new string (the caller g_free()s it), or
 * -EINVAL with @why set to a static explanation and nothing allocated.
 */
int options_parse_expose_unix(const char *s, struct ms_expose_unix *out, const char **why);

#endif /* MESHSLIRP_DAEMON_OPTIONS_H */
