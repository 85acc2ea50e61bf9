/* daemon.c - wiring of backend, netstack and exposed ports, shared by main and tests. */

#include "daemon.h"

#include <errno.h>
#include <arpa/inet.h>

#include <glib.h>

static void daemon_rx_frame(const uint8_t *frame, size_t len, void *opaque)
{
	struct daemon *d = opaque;

	netstack_input(d->ns, frame, len);
}

static void daemon_set_congested(bool congested, void *opaque)
{
	struct daemon *d = opaque;

	netstack_set_throttle(d->ns, congested);
}

static int daemon_tx_frame(const void *frame, size_t len, void *opaque)
{
	struct daemon *d = opaque;

	return d->be ? backend_send(d->be, frame, len) : -ENOTCONN;
}

static void daemon_tx_flush(void *opaque)
{
	struct daemon *d = opaque;

	if (d->be)
		backend_flush(d->be);
}

static const struct backend_callbacks daemon_backend_cb = {
	.rx_frame = daemon_rx_frame,
	.set_congested = daemon_set_congested,
};

static const struct netstack_ops daemon_netstack_ops = {
	.tx_frame = daemon_tx_frame,
	.tx_flush = daemon_tx_flush,
};

static int daemon_setup_expose(struct daemon *d)
{
	char host[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &d->cfg->expose_addr, host, sizeof(host));
	for (guint i = 0; i < d->cfg->expose->len; i++) {
		const struct ms_expose *e = &g_array_index(d->cfg->expose, struct ms_expose, i);
		int ret = netstack_expose_tcp(d->ns, d->cfg->expose_addr, e->host_port,
					      e->guest_port);

		if (ret) {
			g_printerr("meshslirp: --expose tcp:%u:%u: cannot listen on %s:%u: %s\n",
				   e->host_port, e->guest_port, host, e->host_port,
				   g_strerror(-ret));
			return ret;
		}
		g_message("exposing %s:%u -> guest port %u", host, e->host_port,
			  e->guest_port);
	}
	return 0;
}

static int daemon_setup_backend(struct daemon *d)
{
	int ret;

	if (d->cfg->socket_path) {
		ret = stream_backend_new(d->cfg->socket_path, d->cfg->mtu,
					 &daemon_backend_cb, d, &d->be);
		if (ret == -EADDRINUSE)
			g_printerr("meshslirp: --socket %s: another process is serving this socket\n",
				   d->cfg->socket_path);
		else if (ret)
			g_printerr("meshslirp: --socket %s: %s\n", d->cfg->socket_path,
				   g_strerror(-ret));
		else
			g_message("listening for QEMU on %s", d->cfg->socket_path);
		return ret;
	}

	ret = tap_backend_new(d->cfg->tap_name, d->cfg->tap_netns, d->cfg->mtu,
			      &daemon_backend_cb, d, &d->be);
	if (ret)
		g_printerr("meshslirp: --tap %s%s%s: %s\n", d->cfg->tap_name,
			   d->cfg->tap_netns ? " --netns " : "",
			   d->cfg->tap_netns ? d->cfg->tap_netns : "", g_strerror(-ret));
	return ret;
}

void daemon_log_summary(const struct daemon *d)
{
	const struct netstack_stats *ns = netstack_stats(d->ns);
	const struct backend_stats *bs = &d->be->stats;

	g_message("frames guest->stack %" G_GUINT64_FORMAT ", stack->guest %" G_GUINT64_FORMAT
		  ", dropped to guest %" G_GUINT64_FORMAT " (no peer %" G_GUINT64_FORMAT
		  ", queue full %" G_GUINT64_FORMAT "), bad frames from guest %" G_GUINT64_FORMAT
		  ", QEMU connections %" G_GUINT64_FORMAT " (refused %" G_GUINT64_FORMAT ")",
		  ns->rx_frames, ns->tx_frames, ns->tx_dropped, bs->tx_no_peer, bs->tx_full,
		  bs->rx_runts + bs->rx_oversize + bs->rx_bad_prefix, bs->peers_accepted,
		  bs->peers_refused);
}

int daemon_start(struct daemon *d, const struct ms_config *cfg)
{
	struct netstack_config nc = {
		.network = cfg->network,
		.netmask = cfg->netmask,
		.gateway = cfg->gateway,
		.dns = cfg->dns,
		.guest = cfg->guest,
		.mtu = cfg->mtu,
	};
	int ret;

	d->cfg = cfg;
	d->ns = NULL;
	d->be = NULL;
	ret = netstack_new(&nc, &daemon_netstack_ops, d, &d->ns);
	if (ret) {
		g_printerr("meshslirp: cannot create the network stack: %s\n",
			   g_strerror(-ret));
		return ret;
	}
	ret = daemon_setup_expose(d);
	if (!ret)
		ret = daemon_setup_backend(d);
	if (ret)
		daemon_stop(d);
	return ret;
}

void daemon_stop(struct daemon *d)
{
	backend_free(d->be);
	d->be = NULL;
	netstack_free(d->ns);
	d->ns = NULL;
}
