/* net_test: builds a real bridge and two job namespaces, checks the
 * plumbing by moving a byte between them over TCP, then tears it all
 * down. Needs root; uses 100.127.<pid%250>.0/24 and fltest<pid> names. */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

#define PORT 7777

static int enter(const char *ns)
{
    int fd = open(ns, O_RDONLY | O_CLOEXEC);
    int r = fd >= 0 ? setns(fd, CLONE_NEWNET) : -1;
    if (fd >= 0)
        close(fd);
    return r;
}

/* Runs cmd through the shell; returns 1 when its output contains want. */
static int output_has(const char *cmd, const char *want)
{
    char line[512];
    int found = 0;
    FILE *f = popen(cmd, "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (strstr(line, want))
            found = 1;
    pclose(f);
    return found;
}

/* Same, inside the netns pinned at ns (ip -n only knows /run/netns). */
static int ns_output_has(const char *ns, const char *cmd, const char *want)
{
    char full[1024];
    snprintf(full, sizeof(full), "nsenter --net=%s %s 2>&1", ns, cmd);
    return output_has(full, want);
}

static ino_t netns_ino(void)
{
    struct stat st;
    return stat("/proc/self/ns/net", &st) == 0 ? st.st_ino : 0;
}

/* Listens on addr:PORT inside ns, answers one byte with byte+1. */
static pid_t serve(const char *ns, const char *addr, int ready_fd)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    alarm(10);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(PORT)};
    inet_pton(AF_INET, addr, &sa.sin_addr);
    int one = 1, s = -1, c = -1;
    char b;
    if (enter(ns) < 0 || (s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 1) < 0)
        _exit(2);
    if (write(ready_fd, "r", 1) != 1 || (c = accept(s, NULL, NULL)) < 0 || read(c, &b, 1) != 1)
        _exit(3);
    b++;
    _exit(write(c, &b, 1) == 1 ? 0 : 4);
}

/* Connects from inside ns to addr:PORT, sends 'x', expects 'y'. */
static int exchange(const char *ns, const char *addr)
{
    pid_t pid = fork();
    if (pid == 0) {
        alarm(10);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(PORT)};
        inet_pton(AF_INET, addr, &sa.sin_addr);
        int s;
        char b = 'x';
        if (enter(ns) < 0 || (s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
            connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || write(s, &b, 1) != 1 ||
            read(s, &b, 1) != 1)
            _exit(2);
        _exit(b == 'y' ? 0 : 3);
    }
    int st;
    return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(void)
{
    if (geteuid() != 0) {
        printf("1..0 # SKIP needs root\n");
        return 0;
    }
    int id = getpid() % 10000, net = getpid() % 250;
    char br[IFNAMSIZ], va[IFNAMSIZ], vb[IFNAMSIZ], vx[IFNAMSIZ], dir[] = "/tmp/net_test.XXXXXX";
    char nsa[64], nsb[64], nsc[64], gw[32], gwc[32], addra[32], addrb[32], cidra[32], cidrb[32];
    snprintf(br, sizeof(br), "fltest%d", id);
    snprintf(va, sizeof(va), "fltest%da", id);
    snprintf(vb, sizeof(vb), "fltest%db", id);
    snprintf(vx, sizeof(vx), "fltest%dx", id);
    snprintf(gw, sizeof(gw), "100.127.%d.1", net);
    snprintf(gwc, sizeof(gwc), "100.127.%d.1/24", net);
    snprintf(addra, sizeof(addra), "100.127.%d.2", net);
    snprintf(addrb, sizeof(addrb), "100.127.%d.3", net);
    snprintf(cidra, sizeof(cidra), "100.127.%d.2/24", net);
    snprintf(cidrb, sizeof(cidrb), "100.127.%d.3/24", net);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(nsa, sizeof(nsa), "%s/a", dir);
    snprintf(nsb, sizeof(nsb), "%s/b", dir);
    snprintf(nsc, sizeof(nsc), "%s/c", dir);
    ino_t home = netns_ino();
    struct err *e = NULL;

    is_int(net_bridge_setup(br, gwc, 1400, &e), 0, "bridge setup");
    if (e)
        printf("#   %s\n", e->msg);
    err_freep(&e);
    is_int(net_bridge_setup(br, gwc, 0, &e), 0, "bridge setup again is a no-op");
    err_freep(&e);
    ok(if_nametoindex(br) > 0, "bridge %s exists", br);

    is_int(net_netns_create(nsa, &e), 0, "create netns a");
    err_freep(&e);
    is_int(net_netns_create(nsb, &e), 0, "create netns b");
    err_freep(&e);
    is_int(net_netns_create(nsc, &e), 0, "create netns c");
    err_freep(&e);
    is_int(net_netns_create(nsa, &e), -1, "create over an existing pin fails");
    ok(e && e->errnum == EEXIST, "... with EEXIST");
    err_freep(&e);
    ok(netns_ino() == home, "still in our own netns after create");

    is_int(net_job_attach(nsa, br, va, cidra, gw, 1400, &e), 0, "attach a");
    if (e)
        printf("#   %s\n", e->msg);
    err_freep(&e);
    is_int(net_job_attach(nsb, br, vb, cidrb, gw, 0, &e), 0, "attach b");
    err_freep(&e);
    ok(netns_ino() == home, "still in our own netns after attach");
    ok(if_nametoindex(va) > 0 && if_nametoindex(vb) > 0, "host ends exist");
    is_int(net_bridge_setup(va, gwc, 0, &e), -1, "bridge setup on a veth's name fails");
    ok(e && e->errnum == EOPNOTSUPP, "... with EOPNOTSUPP: %s", e ? e->msg : "");
    err_freep(&e);

    char want[64];
    snprintf(want, sizeof(want), "inet %s ", cidra);
    ok(ns_output_has(nsa, "ip -4 -o addr show dev eth0", want), "a: eth0 has %s", cidra);
    ok(ns_output_has(nsa, "ip -o link show dev eth0", "mtu 1400"), "a: eth0 mtu 1400");
    snprintf(want, sizeof(want), "inet %s ", cidrb);
    ok(ns_output_has(nsb, "ip -4 -o addr show dev eth0", want), "b: eth0 has %s", cidrb);
    snprintf(want, sizeof(want), "default via %s dev eth0", gw);
    ok(ns_output_has(nsb, "ip -4 route show default", want), "b: default route via %s", gw);
    ok(ns_output_has(nsb, "ip -o link show dev lo", "LOWER_UP"), "b: lo is up");
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "ip -o link show dev %s", va);
    snprintf(want, sizeof(want), "master %s state UP", br);
    ok(output_has(cmd, want), "host: %s is up on %s", va, br);

    int pfd[2];
    char r;
    ok(pipe(pfd) == 0, "pipe");
    pid_t srv = serve(nsa, addra, pfd[1]);
    close(pfd[1]);
    ok(srv > 0 && read(pfd[0], &r, 1) == 1, "listener up in a");
    close(pfd[0]);
    is_int(exchange(nsb, addra), 0, "b -> a: byte exchanged over the bridge");
    int st = -1;
    if (srv > 0)
        waitpid(srv, &st, 0);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a served it");

    /* Error paths. */
    char nobr[IFNAMSIZ];
    snprintf(nobr, sizeof(nobr), "flnobr%d", id);
    is_int(net_job_attach(nsc, nobr, vx, "100.127.0.9/24", gw, 0, &e), -1, "missing bridge fails");
    ok(e && e->errnum == ENODEV && strstr(e->msg, nobr), "... ENODEV naming it: %s",
       e ? e->msg : "");
    err_freep(&e);
    ok(if_nametoindex(vx) == 0, "... and leaves no veth");
    is_int(net_job_attach(nsc, br, vx, cidra, "100.126.0.1", 0, &e), -1, "unreachable gw fails");
    ok(e && strstr(e->msg, "default route"), "... in the route step: %s", e ? e->msg : "");
    err_freep(&e);
    ok(if_nametoindex(vx) == 0, "... and removes the veth it made");
    ok(ns_output_has(nsc, "ip -o link", "lo:") && !ns_output_has(nsc, "ip -o link", "eth0"),
       "... and eth0 with it");
    is_int(net_job_attach(nsc, br, vx, "100.127.0.9/33", gw, 0, &e), -1, "bad cidr fails");
    ok(e && e->errnum == EINVAL, "... with EINVAL");
    err_freep(&e);
    is_int(net_job_attach(nsc, br, "this-name-is-too-long", cidra, gw, 0, &e), -1,
           "long ifname fails");
    err_freep(&e);
    is_int(net_job_attach("/nonexistent/ns", br, vx, cidra, gw, 0, &e), -1, "missing ns fails");
    ok(e && e->errnum == ENOENT, "... with ENOENT");
    err_freep(&e);

    /* A link left with the job's host_if name (a job whose namespace outlived
     * it) is replaced: the daemon gave the address out as free. */
    char cidrc[32], cmdn[160];
    snprintf(cidrc, sizeof(cidrc), "100.127.%d.9/24", net);
    /* the host remembers .9 at a MAC nobody has (an earlier job's) */
    snprintf(cmdn, sizeof(cmdn),
             "ip neigh replace 100.127.%d.9 lladdr 02:00:de:ad:be:ef dev %s nud stale", net, br);
    ok(system(cmdn) == 0, "a stale neighbour entry for the address");
    snprintf(cmdn, sizeof(cmdn), "ip neigh show 100.127.%d.9 dev %s", net, br);
    ok(output_has(cmdn, "02:00:de:ad:be:ef"), "... is there");
    is_int(net_job_attach(nsc, br, va, cidrc, gw, 0, &e), 0, "a leftover host_if is replaced");
    if (e)
        printf("#   %s\n", e->msg);
    err_freep(&e);
    ok(ns_output_has(nsc, "ip -o link", "eth0"), "... c has its eth0");
    ok(!ns_output_has(nsa, "ip -o link", "eth0"), "... and a's old pair is gone");
    ok(!output_has(cmdn, "02:00:de:ad:be:ef"), "... and the stale neighbour entry is forgotten");

    /* Teardown. */
    is_int(net_link_delete(va, &e), 0, "delete a's veth");
    err_freep(&e);
    is_int(net_link_delete(vb, &e), 0, "delete b's veth");
    err_freep(&e);
    is_int(net_link_delete(va, &e), 0, "deleting it again is fine");
    err_freep(&e);
    ok(if_nametoindex(va) == 0 && if_nametoindex(vb) == 0, "veths gone");
    is_int(net_netns_delete(nsa, &e), 0, "delete netns a");
    err_freep(&e);
    is_int(net_netns_delete(nsb, &e), 0, "delete netns b");
    err_freep(&e);
    is_int(net_netns_delete(nsc, &e), 0, "delete netns c");
    err_freep(&e);
    is_int(net_netns_delete(nsa, &e), 0, "deleting a missing netns is fine");
    err_freep(&e);
    ok(access(nsa, F_OK) < 0 && errno == ENOENT, "pin file removed");
    is_int(net_link_delete(br, &e), 0, "delete bridge");
    err_freep(&e);
    ok(if_nametoindex(br) == 0, "bridge gone");
    ok(rmdir(dir) == 0, "temp dir empty and removed");
    return test_done();
}
