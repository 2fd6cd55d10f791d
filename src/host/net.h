/*
 * net: container networking for flynn-host, the way Flynn's host did it.
 *
 * One Linux bridge per host carries a private IPv4 subnet; the bridge holds
 * the gateway address and nft masquerades the subnet on its way out. Each
 * job gets its own network namespace, pinned by a bind mount on a file so
 * it outlives any process and can be handed to crun by path, and a veth
 * pair: one end on the bridge, the other moved into the namespace as eth0
 * with the job's address and a default route via the gateway.
 *
 * Everything on the per-job path (net_netns_create, net_job_attach,
 * net_link_delete, net_netns_delete) talks rtnetlink directly through
 * libmnl, with no helper processes, because it sits inside job start
 * latency. Namespace switches are per calling thread and always undone
 * before returning, so these are safe to call from any thread.
 *
 * Teardown: once no process is left in a job's namespace, net_netns_delete
 * alone is enough; the kernel then destroys the namespace, eth0 and with it
 * host_if, asynchronously and batched with other dying namespaces. Calling
 * net_link_delete(host_if) first frees the name at once (needed only to
 * reuse it right away) but blocks ~40 ms on RCU grace periods per link.
 */
#ifndef HOST_NET_H
#define HOST_NET_H

#include "err.h"

/* Creates bridge `name` if missing, gives it address gw_cidr (e.g.
 * "100.100.0.1/24", replacing nothing else; idempotent if already present),
 * sets mtu (0 = leave), brings it up. Fails with EOPNOTSUPP if `name`
 * exists and is not a bridge. */
int net_bridge_setup(const char *name, const char *gw_cidr, int mtu, struct err **err);

/* Enables IPv4 forwarding and installs (idempotently, in the nft table
 * "flynn_BRIDGE", '-' and '.' read as '_') a masquerade rule for traffic from subnet_cidr (e.g.
 * "100.100.0.0/24") leaving through any interface other than bridge.
 * Runs nft(8); meant to be called once at daemon start. */
int net_nat_setup(const char *subnet_cidr, const char *bridge, struct err **err);

/* Creates a new network namespace pinned at `path` (a file that is created,
 * EEXIST if present; the namespace is bind-mounted on it). The caller stays
 * in its own namespace. The parent dir of path must exist. */
int net_netns_create(const char *path, struct err **err);

/* Unmounts and removes a pinned namespace; ENOENT is not an error. */
int net_netns_delete(const char *path, struct err **err);

/* Creates veth pair host_if (in the caller's ns, max 15 chars) <-> eth0
 * inside the ns pinned at netns_path; attaches host_if to bridge and brings
 * it up; inside the ns: sets addr_cidr (e.g. "100.100.0.7/24") on eth0,
 * brings lo and eth0 up, adds default route via gw (e.g. "100.100.0.1").
 * mtu applies to both ends (0 = default). A missing bridge fails with
 * ENODEV, an existing host_if with EEXIST. On failure, removes what it
 * created. */
int net_job_attach(const char *netns_path, const char *bridge, const char *host_if,
                   const char *addr_cidr, const char *gw, int mtu, struct err **err);

/* Deletes a host-side interface if it exists (ENOENT/ENODEV not an error).
 * Deleting either end of a veth deletes both. */
int net_link_delete(const char *ifname, struct err **err);

#endif
