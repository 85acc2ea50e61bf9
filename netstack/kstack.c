/* kstack.c - a private network namespace with a tun device and one listener (see kstack.h). */

#include "kstack.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <linux/if_tun.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>

#include "backend/backend.h"
#include "proxy-bridge/knat.h"

/* What the child reports: the step that failed and its errno (0, 0 on success). */
struct kstack_report {
	int step;
	int err;
};

/* The set-up's steps, each with what a failure of it says (after "cannot "). */
#define KSTACK_STEPS(X)                                                                    \
	X(OK, "done")                                                                      \
	X(UNSHARE, "unshare a network namespace (CAP_SYS_ADMIN, or user namespaces)")     \
	X(IDMAP, "map our uid in the user namespace")                                      \
	X(TUN, "create the tun device")                                                    \
	X(LINK, "configure the tun device")                                                \
	X(LISTEN, "listen in the private namespace")                                       \
	X(SEND, "pass the descriptors back")

#define KSTACK_STEP_ENUM(name, text) KSTACK_STEP_##name,
#define KSTACK_STEP_TEXT(name, text) [KSTACK_STEP_##name] = text,
/*
 * The child killed by SIGSYS in that step: a seccomp filter the daemon runs
 * under (systemd's SystemCallFilter=, a container's profile) kills on a call
 * the step makes, where a refusal would have given an errno.
 */
#define KSTACK_STEP_SIGSYS(name, text)                                                     \
	[KSTACK_STEP_##name] = text " (its process was killed by SIGSYS: a seccomp filter "  \
				    "around the daemon forbids a call of this step)",

enum { KSTACK_STEPS(KSTACK_STEP_ENUM) KSTACK_STEP_COUNT };

static const char *const kstack_step_str[KSTACK_STEP_COUNT] = { KSTACK_STEPS(KSTACK_STEP_TEXT) };
static const char *const kstack_step_sigsys_str[KSTACK_STEP_COUNT] = {
	KSTACK_STEPS(KSTACK_STEP_SIGSYS)
};

/* The child's writes: plain system calls only (it is the fork of a threaded process). */
static int kstack_write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;
	int err;

	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	err = n < 0 ? -errno : 0;
	close(fd);
	return err;
}

/* "0 ID 1\n" into @buf (no stdio in the child). */
static void kstack_idmap_line(char *buf, unsigned int id)
{
	char digits[12];
	size_t n = 0, i = 0;

	do {
		digits[n++] = (char)('0' + id % 10);
		id /= 10;
	} while (id);
	buf[i++] = '0';
	buf[i++] = ' ';
	while (n)
		buf[i++] = digits[--n];
	memcpy(buf + i, " 1\n", 4);
}

/* Into a new network namespace, through a user namespace if need be; 0 or -errno with *@step. */
static int kstack_enter_namespace(uid_t uid, gid_t gid, int *step)
{
	char line[32];
	int err;

	*step = KSTACK_STEP_UNSHARE;
	if (!unshare(CLONE_NEWNET))
		return 0;
	if (errno != EPERM)
		return -errno;
	if (unshare(CLONE_NEWUSER | CLONE_NEWNET))
		return -errno;
	*step = KSTACK_STEP_IDMAP;
	kstack_idmap_line(line, uid);
	err = kstack_write_file("/proc/self/uid_map", line);
	if (!err)
		err = kstack_write_file("/proc/self/setgroups", "deny\n");
	if (!err) {
		kstack_idmap_line(line, gid);
		err = kstack_write_file("/proc/self/gid_map", line);
	}
	return err;
}

static int kstack_make_tun(void)
{
	struct ifreq ifr = { .ifr_flags = IFF_TUN | IFF_NO_PI | IFF_VNET_HDR };
	int hdr_len = 12, fd;

	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	memcpy(ifr.ifr_name, KSTACK_IFNAME, sizeof(KSTACK_IFNAME));
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETVNETHDRSZ, &hdr_len) < 0 ||
	    kstack_set_offloads(fd, 0)) {
		int err = -errno;

		close(fd);
		return err;
	}
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	{
		int le = 1;

		if (ioctl(fd, TUNSETVNETLE, &le) < 0) {
			int err = -errno;

			close(fd);
			return err;
		}
	}
#endif
	return fd;
}

static int kstack_set_link(void)
{
	struct ifreq ifr = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
	int sock, err = 0;

	sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return -errno;
	memcpy(ifr.ifr_name, KSTACK_IFNAME, sizeof(KSTACK_IFNAME));
	ifr.ifr_mtu = KSTACK_MTU;
	if (ioctl(sock, SIOCSIFMTU, &ifr) < 0)
		err = -errno;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(KNAT_LISTEN_ADDR);
	if (!err && ioctl(sock, SIOCSIFADDR, &ifr) < 0)
		err = -errno;
	sin->sin_addr.s_addr = htonl(0xff000000u);
	if (!err && ioctl(sock, SIOCSIFNETMASK, &ifr) < 0)
		err = -errno;
	if (!err && ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
		err = -errno;
	ifr.ifr_flags |= IFF_UP;
	if (!err && ioctl(sock, SIOCSIFFLAGS, &ifr) < 0)
		err = -errno;
	close(sock);
	return err;
}

/*
 * The tun's root qdisc replaced with noqueue (RTM_NEWQDISC, TCA_KIND
 * "noqueue"; the child's plain system calls: one netlink request and its
 * acknowledgement).  Why: a tun takes every packet its queue has room for
 * and drops the rest itself, so a qdisc in front of it only adds a lock,
 * an enqueue and a dequeue per packet; and where the node's
 * net.core.default_qdisc is fq, fq would pace the private stack's
 * sockets, which tcpcc.h keeps unpaced.  Returns 0 or -errno.
 */
static int kstack_set_noqueue(void)
{
	struct {
		struct nlmsghdr nh;
		struct tcmsg tc;
		struct rtattr kind;
		char name[8];
	} req = {
		.nh = { .nlmsg_len = sizeof(req), .nlmsg_type = RTM_NEWQDISC,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE },
		.tc = { .tcm_family = AF_UNSPEC, .tcm_parent = TC_H_ROOT },
		.kind = { .rta_len = RTA_LENGTH(sizeof("noqueue")), .rta_type = TCA_KIND },
		.name = "noqueue",
	};
	struct {
		struct nlmsghdr nh;
		struct nlmsgerr err;
	} ack;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	ssize_t n;
	int sock, err;

	req.tc.tcm_ifindex = (int)if_nametoindex(KSTACK_IFNAME);
	if (!req.tc.tcm_ifindex)
		return -errno;
	sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (sock < 0)
		return -errno;
	if (sendto(sock, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
		err = -errno;
	} else {
		n = recv(sock, &ack, sizeof(ack), 0);
		if (n < 0)
			err = -errno;
		else if ((size_t)n < sizeof(ack) || ack.nh.nlmsg_type != NLMSG_ERROR)
			err = -EPROTO;
		else
			err = ack.err.error;
	}
	close(sock);
	return err;
}

static int kstack_make_listener(void)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_port = htons(KNAT_LISTEN_PORT),
		.sin_addr.s_addr = htonl(KNAT_LISTEN_ADDR),
	};
	int one = 1, fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, KSTACK_BACKLOG) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static int kstack_send_fds(int chan, const struct kstack_report *r, const int *fds, int nfds)
{
	char cbuf[CMSG_SPACE(2 * sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = (void *)r, .iov_len = sizeof(*r) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;

	if (nfds) {
		msg.msg_control = cbuf;
		msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	return sendmsg(chan, &msg, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/*
 * The child: build everything, send it, exit.  Never returns.  @step, in
 * memory shared with the parent, names the step under way, so the parent
 * can name it should the child die without a report (the parent reads it
 * after waitpid(): no other ordering is needed).
 */
static void kstack_child(int chan, uid_t uid, gid_t gid, int *step)
{
	struct kstack_report r = { 0 };
	int fds[2] = { -1, -1 }, ret;

	ret = kstack_enter_namespace(uid, gid, step);
	if (ret < 0)
		goto fail;
	*step = KSTACK_STEP_TUN;
	/* IPv4 only: no IPv6 link-local, router or listener traffic out of the tun. */
	(void)kstack_write_file("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1\n");
	(void)kstack_write_file("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1\n");
	ret = fds[0] = kstack_make_tun();
	if (ret < 0)
		goto fail;
	*step = KSTACK_STEP_LINK;
	ret = kstack_set_link();
	if (ret)
		goto fail;
	/* Best effort: without it the tun keeps the node's default qdisc, which costs speed only. */
	(void)kstack_set_noqueue();
	/* Best effort: without it a slot's next flow may meet a TIME_WAIT and wait for the guest's retry. */
	(void)kstack_write_file("/proc/sys/net/ipv4/tcp_max_tw_buckets", "0\n");
	*step = KSTACK_STEP_LISTEN;
	ret = fds[1] = kstack_make_listener();
	if (ret < 0)
		goto fail;
	*step = KSTACK_STEP_SEND;
	if (kstack_send_fds(chan, &r, fds, 2))
		_exit(1);
	_exit(0);
fail:
	r = (struct kstack_report){ *step, -ret };
	if (kstack_send_fds(chan, &r, NULL, 0))
		_exit(1);
	_exit(0);
}

/*
 * No report from the child: killed by a signal (SIGSYS from a seccomp
 * filter, or the OOM killer) in the step @step names, or a protocol error.
 * Sets *@why; returns the -errno to report.
 */
static int kstack_no_report(int status, int step, const char **why)
{
	/* It exited without a report: its report itself failed. */
	if (!WIFSIGNALED(status) || step <= KSTACK_STEP_OK || step >= KSTACK_STEP_COUNT)
		step = KSTACK_STEP_SEND;
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS) {
		*why = kstack_step_sigsys_str[step];
		return -EPERM;
	}
	*why = kstack_step_str[step];
	return WIFSIGNALED(status) ? -EINTR : -EPROTO;
}

int kstack_open(struct kstack *ks, const char **why)
{
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct kstack_report r = { KSTACK_STEP_SEND, EPROTO };
	struct iovec iov = { .iov_base = &r, .iov_len = sizeof(r) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	int *step;
	int chan[2], status = 0, ret = 0;
	ssize_t n;
	pid_t pid;

	ks->tun = ks->listener = -1;
	*why = kstack_step_str[KSTACK_STEP_UNSHARE];
	step = mmap(NULL, sizeof(*step), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (step == MAP_FAILED)
		return -errno;
	*step = KSTACK_STEP_UNSHARE;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan) < 0) {
		ret = -errno;
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		ret = -errno;
		close(chan[0]);
		close(chan[1]);
		goto out;
	}
	if (pid == 0) {
		close(chan[0]);
		kstack_child(chan[1], getuid(), getgid(), step);
	}
	close(chan[1]);
	do {
		n = recvmsg(chan[0], &msg, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	close(chan[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(r)) {
		ret = kstack_no_report(status, *step, why);
		goto out;
	}
	if (r.step != KSTACK_STEP_OK) {
		*why = kstack_step_str[r.step > 0 && r.step < KSTACK_STEP_COUNT ? r.step
										  : KSTACK_STEP_SEND];
		ret = r.err ? -r.err : -EPROTO;
		goto out;
	}
	c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(2 * sizeof(int))) {
		*why = kstack_step_str[KSTACK_STEP_SEND];
		ret = -EPROTO;
		goto out;
	}
	memcpy(&ks->tun, CMSG_DATA(c), sizeof(int));
	memcpy(&ks->listener, CMSG_DATA(c) + sizeof(int), sizeof(int));
	*why = kstack_step_str[KSTACK_STEP_OK];
out:
	munmap(step, sizeof(*step));
	return ret;
}

int kstack_set_offloads(int tun, uint32_t offloads)
{
	unsigned int flags = 0;

	if (offloads & BACKEND_OFFLOAD_CSUM) {
		flags |= TUN_F_CSUM;
		if (offloads & BACKEND_OFFLOAD_TSO4)
			flags |= TUN_F_TSO4;
	}
	return ioctl(tun, TUNSETOFFLOAD, flags) < 0 ? -errno : 0;
}

void kstack_close(struct kstack *ks)
{
	if (ks->tun >= 0)
		close(ks->tun);
	if (ks->listener >= 0)
		close(ks->listener);
	ks->tun = ks->listener = -1;
}
