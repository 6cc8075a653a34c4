"""Link and node status as libcfg reports it: NODESTATUSGET, RINGSTATUSGET, GET_NODE_ADDRS.

What Corosync 3.1.7 answers for its udpu/udp transports (totemudpu.c/totemudp.c
nodestatus_get, totemsrp.c ifaces_get), which coroproc reproduces per configured link:
* a node in the nodelist: `reachable` = it is a member of the current ring (totemsrp's
  my_proc_list); each of its links is `enabled` when the local socket of that link is
  up, `connected` = reachable, `mtu` = totemsrp's net_mtu (netmtu less two 45-byte
  mcast headers: 1410 for netmtu 1500, what Corosync 3.1.7 prints), `src_ipaddr` = that node's configured address, `dst_ipaddr` empty;
  remote/external/onwire are 0 (knet-only fields).
* a node id not in the nodelist: the version and the node id, everything else zero
  (still CS_OK: udpu's nodestatus_get cannot fail).
* ring status: one entry per link of the local node, named "<link> <address>", status
  "OK" (udpu's only status string) or "FAULTY" when coroproc's link process is down.
Where the link process state comes from is the engine's business (`link_up`).

transport knet (coroproc's secure links) answers as Corosync's totemknet does: a peer is
`reachable` while any of its links is connected (per-link `connected` from the link
processes' heartbeats, knet_peers), `src_ipaddr` is the local address of the link and
`dst_ipaddr` the peer's, `mtu` the discovered (or fixed) path MTU less the link frame
overhead, onwire min/max/cur = the link frame version (1); the local node shows one link
(knet's loopback), as corosync-cfgtool expects.
"""
from __future__ import annotations

import socket
from collections.abc import Callable

from coroproc.ipc.cfg_structs import ADDRS_MAX, MAX_LINKS, LinkStatus, NodeStatus

MCAST_HEADER_BYTES = 45             # struct mcast, reserved twice (totemsrp_net_mtu_adjust)


def _family(addr: str) -> int:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def _node(config, nodeid: int):
    if config is None:
        return None
    try:
        return config.node(nodeid)
    except KeyError:
        return None


def link_mtu_bytes(config) -> int:
    """The MTU Corosync reports per link: the largest totempg packet (ringproc's value)."""
    totem = getattr(config, "totem", None)
    if totem is not None:
        return totem.packet_bytes
    return config.netmtu - 2 * MCAST_HEADER_BYTES


def node_status(config, members, nodeid: int, link_up: Callable[[int], bool]) -> NodeStatus:
    node = _node(config, nodeid)
    if node is None:
        return NodeStatus(nodeid)
    reachable = nodeid in members
    mtu = link_mtu_bytes(config)
    links = [LinkStatus()] * MAX_LINKS
    for link, addr in sorted(node.addrs.items()):
        if 0 <= link < MAX_LINKS:
            enabled = link_up(link)
            links[link] = LinkStatus(enabled=enabled, connected=reachable, mtu=mtu,
                                     src_ipaddr=addr)
    return NodeStatus(nodeid, reachable=reachable, links=tuple(links))


def ring_status(config, link_up: Callable[[int], bool]) -> list[tuple[str, str]]:
    """(interface name, status) per link of the local node, in link order."""
    if config is None:
        return []
    return [(f"{link} {addr}", "OK" if link_up(link) else "FAULTY")
            for link, addr in sorted(config.local_addrs.items())]


def node_addrs(config, nodeid: int) -> list[tuple[int, bytes]]:
    """(family, raw address) of each configured link of `nodeid`, in link order; [] if the
    node is not in the nodelist (the engine answers CS_ERR_NOT_EXIST then)."""
    node = _node(config, nodeid)
    if node is None:
        return []
    out = []
    for _link, addr in sorted(node.addrs.items())[:ADDRS_MAX]:
        fam = _family(addr)
        out.append((fam, socket.inet_pton(fam, addr)))
    return out


LINK_FRAME_VERSION = 1


def knet_node_status(config, nodeid: int, link_up: Callable[[int], bool],
                     peers: Callable[[int], dict]) -> NodeStatus:
    """`peers(link)` → {nodeid: {"enabled", "connected", "mtu"}} from that link's process."""
    node = _node(config, nodeid)
    if node is None:
        return NodeStatus(nodeid)
    links = [LinkStatus()] * MAX_LINKS
    default_mtu = link_mtu_bytes(config)
    if nodeid == config.local_nodeid:
        link = min(node.addrs)
        addr = node.addrs[link]
        links[link] = LinkStatus(enabled=True, connected=True, mtu=default_mtu,
                                 src_ipaddr=addr, dst_ipaddr=addr)
        return NodeStatus(nodeid, reachable=True, onwire_min=LINK_FRAME_VERSION,
                          onwire_max=LINK_FRAME_VERSION, onwire_ver=LINK_FRAME_VERSION,
                          links=tuple(links))
    reachable = False
    for link, addr in sorted(node.addrs.items()):
        if not 0 <= link < MAX_LINKS or link not in config.local_addrs:
            continue
        row = peers(link).get(str(nodeid)) or {}
        alive = link_up(link)
        connected = alive and bool(row.get("connected", 0))
        reachable |= connected
        links[link] = LinkStatus(enabled=alive and bool(row.get("enabled", 1)),
                                 connected=connected,
                                 mtu=int(row.get("mtu") or default_mtu),
                                 src_ipaddr=config.local_addrs[link], dst_ipaddr=addr)
    return NodeStatus(nodeid, reachable=reachable, onwire_min=LINK_FRAME_VERSION,
                      onwire_max=LINK_FRAME_VERSION, onwire_ver=LINK_FRAME_VERSION,
                      links=tuple(links))
