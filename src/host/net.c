/* net: bridge, NAT, pinned netns and veth plumbing for jobs; see net.h. */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sched.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "xalloc.h"

#define SELF_NETNS "/proc/thread-self/ns/net"

/* One rtnetlink socket, which acts on the netns it was opened in for its
 * whole life, plus the request being built for it. */
struct nl {
    struct mnl_socket *sock;
    unsigned int portid, seq;
    int ifindex;      /* ifi_index of the last RTM_NEWLINK received */
    char extack[160]; /* the kernel's own reason for the last error, if any */
    char req[1024] __attribute__((aligned(8)));
};

static void nl_close(struct nl *nl)
{
    if (nl->sock)
        mnl_socket_close(nl->sock);
    nl->sock = NULL;
}

#define cleanup_nl __attribute__((cleanup(nl_close)))

static int nl_open(struct nl *nl, struct err **err)
{
    nl->sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
    if (!nl->sock)
        return err_make(err, errno, "open rtnetlink socket");
    /* Extended acks carry a reason ("Master device not found") that errno
     * alone loses; capped acks spare us our own request echoed back. Both
     * are best effort: old kernels just ignore them. */
    int one = 1;
    mnl_socket_setsockopt(nl->sock, NETLINK_EXT_ACK, &one, sizeof(one));
    mnl_socket_setsockopt(nl->sock, NETLINK_CAP_ACK, &one, sizeof(one));
    if (mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
        int e = errno;
        nl_close(nl);
        return err_make(err, e, "bind rtnetlink socket");
    }
    nl->portid = mnl_socket_get_portid(nl->sock);
    return 0;
}

static struct nlmsghdr *nl_msg(struct nl *nl, uint16_t type, uint16_t flags)
{
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(nl->req);
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    nlh->nlmsg_seq = ++nl->seq;
    return nlh;
}

static struct nlmsghdr *link_msg(struct nl *nl, uint16_t type, uint16_t flags,
                                 const char *ifname, int up)
{
    struct nlmsghdr *nlh = nl_msg(nl, type, flags);
    struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
    ifi->ifi_family = AF_UNSPEC;
    if (up)
        ifi->ifi_flags = ifi->ifi_change = IFF_UP;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, ifname);
    return nlh;
}

static int nl_err_cb(const struct nlmsghdr *nlh, void *data)
{
    struct nl *nl = data;
    const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
    if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*e)) {
        errno = EBADMSG;
        return MNL_CB_ERROR;
    }
    if (e->error == 0)
        return MNL_CB_STOP;
    if (nlh->nlmsg_flags & NLM_F_ACK_TLVS) {
        size_t off = sizeof(*e);
        if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
            off += e->msg.nlmsg_len - sizeof(e->msg);
        struct nlattr *a;
        mnl_attr_for_each(a, nlh, off)
            if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG &&
                mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
                snprintf(nl->extack, sizeof(nl->extack), "%s", mnl_attr_get_str(a));
    }
    errno = e->error < 0 ? -e->error : e->error;
    return MNL_CB_ERROR;
}

static int nl_data_cb(const struct nlmsghdr *nlh, void *data)
{
    struct nl *nl = data;
    if (nlh->nlmsg_type == RTM_NEWLINK &&
        mnl_nlmsg_get_payload_len(nlh) >= sizeof(struct ifinfomsg))
        nl->ifindex = ((const struct ifinfomsg *)mnl_nlmsg_get_payload(nlh))->ifi_index;
    return MNL_CB_OK;
}

/* Sends nl->req and waits for its ack; returns 0 or -errno. */
static int nl_talk(struct nl *nl)
{
    static mnl_cb_t ctl[NLMSG_ERROR + 1] = {[NLMSG_ERROR] = nl_err_cb};
    char buf[8192] __attribute__((aligned(8)));
    const struct nlmsghdr *req = (const struct nlmsghdr *)nl->req;
    nl->extack[0] = '\0';
    if (mnl_socket_sendto(nl->sock, req, req->nlmsg_len) < 0)
        return -errno;
    int ret;
    do {
        ssize_t n = mnl_socket_recvfrom(nl->sock, buf, sizeof(buf));
        if (n < 0)
            return -errno;
        ret = mnl_cb_run2(buf, n, req->nlmsg_seq, nl->portid, nl_data_cb, nl, ctl,
                          ARRAY_SIZE(ctl));
    } while (ret > MNL_CB_STOP);
    return ret < 0 ? -errno : 0;
}

/* err_make for a failed nl_talk (ret = -errno), adding the kernel's reason. */
__attribute__((format(printf, 4, 5))) static int nl_fail(struct nl *nl, int ret,
                                                         struct err **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cleanup_free char *what = xvasprintf(fmt, ap);
    va_end(ap);
    if (nl->extack[0])
        return err_make(err, -ret, "%s (%s)", what, nl->extack);
    return err_make(err, -ret, "%s", what);
}

/* Returns the index of ifname in nl's netns, or -errno (-ENODEV: none). */
static int link_index(struct nl *nl, const char *ifname)
{
    link_msg(nl, RTM_GETLINK, 0, ifname, 0);
    nl->ifindex = 0;
    int ret = nl_talk(nl);
    if (ret < 0)
        return ret;
    return nl->ifindex > 0 ? nl->ifindex : -ENODEV;
}

static int link_delete(struct nl *nl, const char *ifname, struct err **err)
{
    link_msg(nl, RTM_DELLINK, 0, ifname, 0);
    int ret = nl_talk(nl);
    if (ret < 0 && ret != -ENODEV && ret != -ENOENT)
        return nl_fail(nl, ret, err, "delete link '%s'", ifname);
    return 0;
}

/* Adds addr/plen (spelled cidr, for messages) to ifindex; an address that
 * is already there counts as added, which keeps bridge setup idempotent. */
static int add_addr(struct nl *nl, const char *ifname, int ifindex, const char *cidr,
                    struct in_addr addr, int plen, struct err **err)
{
    struct nlmsghdr *nlh = nl_msg(nl, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
    struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = plen;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    ifa->ifa_index = ifindex;
    mnl_attr_put(nlh, IFA_LOCAL, sizeof(addr), &addr);
    mnl_attr_put(nlh, IFA_ADDRESS, sizeof(addr), &addr);
    if (plen < 31) {
        struct in_addr brd = {addr.s_addr | htonl(0xffffffffu >> plen)};
        mnl_attr_put(nlh, IFA_BROADCAST, sizeof(brd), &brd);
    }
    int ret = nl_talk(nl);
    if (ret < 0 && ret != -EEXIST)
        return nl_fail(nl, ret, err, "add address %s to '%s'", cidr, ifname);
    return 0;
}

/* Names also go into an nft script, so only the usual characters. */
static int check_ifname(const char *name, struct err **err)
{
    size_t n = strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-");
    if (n == 0 || name[n] || n >= IFNAMSIZ)
        return err_makex(err, EINVAL, "bad interface name '%s'", name);
    return 0;
}

/* Parses "a.b.c.d/len", or a bare "a.b.c.d" when plen is NULL. */
static int parse_ip(const char *s, struct in_addr *addr, int *plen, struct err **err)
{
    char buf[INET_ADDRSTRLEN];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (!slash != !plen || n >= sizeof(buf))
        goto bad;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (inet_pton(AF_INET, buf, addr) != 1)
        goto bad;
    if (plen) {
        char *end;
        long l = strtol(slash + 1, &end, 10);
        if (slash[1] < '0' || slash[1] > '9' || *end || l > 32)
            goto bad;
        *plen = (int)l;
    }
    return 0;
bad:
    return err_makex(err, EINVAL, "bad IPv4 %s '%s'", plen ? "cidr" : "address", s);
}

/* Failing to get back would leave the daemon configuring some job's
 * network as if it were the host's, so that is fatal. */
static void restore_netns(int self)
{
    if (setns(self, CLONE_NEWNET) < 0)
        BUG("setns back to own netns: %s", strerror(errno));
}

int net_bridge_setup(const char *name, const char *gw_cidr, int mtu, struct err **err)
{
    cleanup_nl struct nl nl = {0};
    struct in_addr gw;
    int plen;
    if (check_ifname(name, err) < 0 || parse_ip(gw_cidr, &gw, &plen, err) < 0 ||
        nl_open(&nl, err) < 0)
        return -1;
    /* CREATE without EXCL creates or updates in one request. The empty
     * IFLA_INFO_DATA makes the kernel refuse (EOPNOTSUPP) a same-named
     * device of another kind instead of silently adopting it. */
    struct nlmsghdr *nlh = link_msg(&nl, RTM_NEWLINK, NLM_F_CREATE, name, 1);
    if (mtu > 0)
        mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
    /* A bridge whose address nobody set takes the lowest address of its
     * ports, so it changes whenever a job's veth with a lower one joins or
     * the lowest one leaves (seen on a cluster: 22:35:.. -> 16:a9:.. and
     * back while scaling). The kernel's gratuitous ARP then updates the
     * jobs' entry for the gateway, but what a job sends to the host at the
     * moment of the change goes to the old address and is lost. A fixed,
     * locally administered address (02:46 and the gateway's IPv4 address)
     * never moves, as Docker and libvirt pin theirs. */
    uint8_t mac[6] = {0x02, 0x46};
    memcpy(mac + 2, &gw.s_addr, 4);
    mnl_attr_put(nlh, IFLA_ADDRESS, sizeof(mac), mac);
    struct nlattr *li = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
    mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bridge");
    mnl_attr_nest_end(nlh, mnl_attr_nest_start(nlh, IFLA_INFO_DATA));
    mnl_attr_nest_end(nlh, li);
    int ret = nl_talk(&nl);
    if (ret < 0)
        return nl_fail(&nl, ret, err, "set up bridge '%s'", name);
    int idx = link_index(&nl, name);
    if (idx < 0)
        return nl_fail(&nl, idx, err, "find bridge '%s'", name);
    /* A packet to a job whose veth is not up yet leaves an unresolved
     * neighbour entry that the kernel asks about again only after
     * retrans_time (1 s by default): a health check or the router would wait
     * that long for a job that started in 50 ms. Ask every 100 ms instead. */
    char path[128];
    snprintf(path, sizeof(path), "/proc/sys/net/ipv4/neigh/%s/retrans_time_ms", name);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (write(fd, "100", 3) != 3)
            log_warn("net: cannot set %s: %s", path, strerror(errno));
        close(fd);
    }
    return add_addr(&nl, name, idx, gw_cidr, gw, plen, err);
}

/* Runs `nft -f -` on script, with nft's complaints in the error. */
static int run_nft(const char *script, struct err **err)
{
    cleanup_close int in_r = -1, in_w = -1, out_r = -1, out_w = -1;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return err_make(err, errno, "pipe for nft");
    in_r = p[0], in_w = p[1];
    if (pipe2(p, O_CLOEXEC) < 0)
        return err_make(err, errno, "pipe for nft");
    out_r = p[0], out_w = p[1];
    /* The script is far below a pipe's capacity: writing it all before
     * nft starts can neither block nor meet a dead reader (SIGPIPE). */
    size_t len = strlen(script);
    if (write(in_w, script, len) != (ssize_t)len)
        return err_make(err, errno, "write nft script");
    close(fd_take(&in_w));

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_r, 0);
    posix_spawn_file_actions_adddup2(&fa, out_w, 1);
    posix_spawn_file_actions_adddup2(&fa, out_w, 2);
    char *argv[] = {"nft", "-f", "-", NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, "nft", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc)
        return err_make(err, rc, "run nft");
    close(fd_take(&out_w));

    char msg[512];
    size_t n = 0;
    for (;;) { /* drain to EOF so nft never blocks on a full pipe */
        char chunk[256];
        ssize_t r = read(out_r, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        size_t k = (size_t)r < sizeof(msg) - 1 - n ? (size_t)r : sizeof(msg) - 1 - n;
        memcpy(msg + n, chunk, k);
        n += k;
    }
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        n--;
    msg[n] = '\0';
    for (char *c = msg; *c; c++)
        if (*c == '\n')
            *c = ' ';
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return err_make(err, errno, "wait for nft");
    if (!WIFEXITED(status) || WEXITSTATUS(status))
        return err_makex(err, 0, "nft failed (wait status %d): %s", status, msg);
    return 0;
}

int net_nat_setup(const char *subnet_cidr, const char *bridge, struct err **err)
{
    struct in_addr net;
    int plen;
    if (parse_ip(subnet_cidr, &net, &plen, err) < 0 || check_ifname(bridge, err) < 0)
        return -1;
    cleanup_close int fd = open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "1\n", 2) != 2)
        return err_make(err, errno, "enable /proc/sys/net/ipv4/ip_forward");
    /* Printed back from the parsed value (host bits cleared, so the rule
     * reads as the subnet): nothing the caller wrote reaches nft verbatim. */
    net.s_addr &= plen ? htonl(0xffffffffu << (32 - plen)) : 0;
    char addr[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &net, addr, sizeof(addr));
    /* One table per bridge, so several daemons (a cluster and its tests)
     * never touch each other's rules. add + flush + define: a re-run
     * replaces our rules instead of stacking duplicates, and nft applies
     * the script as one transaction. */
    char table[32];
    snprintf(table, sizeof(table), "flynn_%s", bridge);
    for (char *p = table; *p; p++)
        if (*p == '-' || *p == '.')
            *p = '_';
    cleanup_free char *script = xasprintf(
        "add table ip %s\n"
        "flush table ip %s\n"
        "table ip %s {\n"
        "  chain postrouting {\n"
        "    type nat hook postrouting priority srcnat; policy accept;\n"
        "    ip saddr %s/%d oifname != \"%s\" masquerade\n"
        "  }\n"
        "}\n",
        table, table, table, addr, plen, bridge);
    if (run_nft(script, err) < 0)
        return err_wrap(err, "masquerade %s", subnet_cidr);
    return 0;
}

int net_netns_create(const char *path, struct err **err)
{
    cleanup_close int self = open(SELF_NETNS, O_RDONLY | O_CLOEXEC);
    if (self < 0)
        return err_make(err, errno, "open %s", SELF_NETNS);
    /* O_EXCL: never bind a namespace over a file somebody else owns. */
    int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    if (fd < 0)
        return err_make(err, errno, "create netns file '%s'", path);
    close(fd);
    /* unshare(CLONE_NEWNET) moves only the calling thread, so this works in
     * a threaded daemon too, as long as the thread comes back. */
    if (unshare(CLONE_NEWNET) < 0) {
        int e = errno;
        unlink(path);
        return err_make(err, e, "unshare netns for '%s'", path);
    }
    int ret = mount(SELF_NETNS, path, NULL, MS_BIND, NULL) < 0 ? errno : 0;
    restore_netns(self);
    if (ret) {
        unlink(path);
        return err_make(err, ret, "bind netns on '%s'", path);
    }
    return 0;
}

int net_netns_delete(const char *path, struct err **err)
{
    /* MNT_DETACH: the namespace lives on while any process or fd holds it;
     * nothing here needs to wait for that. EINVAL: not mounted (a
     * half-made pin), still remove the file. */
    if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
        return err_make(err, errno, "unmount netns '%s'", path);
    if (unlink(path) < 0 && errno != ENOENT)
        return err_make(err, errno, "remove netns file '%s'", path);
    return 0;
}

int net_job_attach(const char *netns_path, const char *bridge, const char *host_if,
                   const char *addr_cidr, const char *gw, int mtu, struct err **err)
{
    cleanup_nl struct nl host = {0}, ns = {0};
    cleanup_close int nsfd = -1, self = -1;
    struct in_addr addr, gwa;
    int plen, ret;
    if (check_ifname(bridge, err) < 0 || check_ifname(host_if, err) < 0 ||
        parse_ip(addr_cidr, &addr, &plen, err) < 0 || parse_ip(gw, &gwa, NULL, err) < 0)
        return -1;
    nsfd = open(netns_path, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0)
        return err_make(err, errno, "open netns '%s'", netns_path);
    if (nl_open(&host, err) < 0)
        return -1;
    int br = link_index(&host, bridge);
    if (br < 0)
        return nl_fail(&host, br, err, "find bridge '%s'", bridge);

    /* One request makes both ends, creates the peer directly inside the
     * job's netns as eth0 (no move, no rename), enslaves host_if and
     * brings it up; if enslaving fails the kernel drops the pair. The peer
     * cannot be brought up here: the kernel configures it before linking
     * the two ends, and veth_open then fails with ENOTCONN. */
    /* host_if is named after the job's address, which the daemon gave out
     * as free: a link of that name is a leftover (a job whose namespace
     * outlived it, e.g. across a daemon crash) and goes first. */
    struct err *stale = NULL;
    if (link_delete(&host, host_if, &stale) < 0) {
        log_warn("net: %s", stale->msg);
        err_free(stale);
    }
    /* The host may still remember the address at an earlier job's MAC (the
     * address was used before): an entry that points nowhere would delay
     * every packet to the new job by seconds (STALE, then probes). */
    struct nlmsghdr *nm = nl_msg(&host, RTM_DELNEIGH, 0);
    struct ndmsg *nd = mnl_nlmsg_put_extra_header(nm, sizeof(*nd));
    nd->ndm_family = AF_INET;
    nd->ndm_ifindex = br;
    mnl_attr_put(nm, NDA_DST, sizeof(addr), &addr);
    ret = nl_talk(&host);
    if (ret < 0 && ret != -ENOENT && ret != -ESRCH)
        log_warn("net: forget neighbour %s on %s: %s", addr_cidr, bridge, strerror(-ret));
    struct nlmsghdr *nlh = link_msg(&host, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, host_if, 1);
    if (mtu > 0)
        mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
    mnl_attr_put_u32(nlh, IFLA_MASTER, br);
    struct nlattr *li = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
    mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
    struct nlattr *data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
    struct nlattr *peer = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
    struct ifinfomsg *pifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*pifi));
    pifi->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, "eth0");
    mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, nsfd);
    if (mtu > 0)
        mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
    mnl_attr_nest_end(nlh, peer);
    mnl_attr_nest_end(nlh, data);
    mnl_attr_nest_end(nlh, li);
    if ((ret = nl_talk(&host)) < 0)
        return nl_fail(&host, ret, err, "create veth '%s' on bridge '%s'", host_if, bridge);

    /* Addresses and routes can only be set from inside the netns: open a
     * socket there and come straight back; the socket stays bound to it. */
    self = open(SELF_NETNS, O_RDONLY | O_CLOEXEC);
    if (self < 0) {
        err_make(err, errno, "open %s", SELF_NETNS);
        goto undo;
    }
    if (setns(nsfd, CLONE_NEWNET) < 0) {
        err_make(err, errno, "enter netns");
        goto undo;
    }
    ret = nl_open(&ns, err);
    restore_netns(self);
    if (ret < 0)
        goto undo;
    link_msg(&ns, RTM_NEWLINK, 0, "lo", 1);
    if ((ret = nl_talk(&ns)) < 0) {
        nl_fail(&ns, ret, err, "bring up lo");
        goto undo;
    }
    link_msg(&ns, RTM_NEWLINK, 0, "eth0", 1);
    if ((ret = nl_talk(&ns)) < 0) {
        nl_fail(&ns, ret, err, "bring up eth0");
        goto undo;
    }
    int eth0 = link_index(&ns, "eth0");
    if (eth0 < 0) {
        nl_fail(&ns, eth0, err, "find eth0");
        goto undo;
    }
    if (add_addr(&ns, "eth0", eth0, addr_cidr, addr, plen, err) < 0)
        goto undo;
    nlh = nl_msg(&ns, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
    struct rtmsg *rt = mnl_nlmsg_put_extra_header(nlh, sizeof(*rt));
    rt->rtm_family = AF_INET;
    rt->rtm_table = RT_TABLE_MAIN;
    rt->rtm_protocol = RTPROT_BOOT;
    rt->rtm_scope = RT_SCOPE_UNIVERSE;
    rt->rtm_type = RTN_UNICAST;
    mnl_attr_put(nlh, RTA_GATEWAY, sizeof(gwa), &gwa);
    mnl_attr_put_u32(nlh, RTA_OIF, eth0);
    if ((ret = nl_talk(&ns)) < 0) {
        nl_fail(&ns, ret, err, "add default route via %s", gw);
        goto undo;
    }
    return 0;

undo:;
    /* Deleting host_if takes eth0 with it. */
    cleanup_err struct err *e2 = NULL;
    if (link_delete(&host, host_if, &e2) < 0)
        log_warn("undo attach: %s", e2->msg);
    return err_wrap(err, "attach '%s' to netns '%s'", host_if, netns_path);
}

int net_link_delete(const char *ifname, struct err **err)
{
    cleanup_nl struct nl nl = {0};
    if (check_ifname(ifname, err) < 0 || nl_open(&nl, err) < 0)
        return -1;
    return link_delete(&nl, ifname, err);
}
