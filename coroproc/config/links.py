"""totem { interface { } } + the nodelist → the LinkConfig of each configured link.

knet runs up to 8 links (0..7) with the knet_* options; udp/udpu exactly one.

Corosync 3.1 (get_interface_params, totem_config_validate): a link is configured when an
interface{} names it or a node has its ringX_addr; udp/udpu run exactly one link. Port
defaults to 5405 + linknumber (5405 + 2 × linknumber with broadcast), ttl to 1 and only
multicast may change it. udp without mcastaddr derives one from cluster_name:
239.192.(id >> 8).(id % 255) for IPv4 or ff15::id for IPv6, where id is the
shift-and-add hash of the name plus the linknumber (the "% 0xFF" is Corosync's, kept for
compatibility). The local node's ring address is the link's bind address.
"""
from __future__ import annotations

import ipaddress
import re

from coroproc.config.context import Keys
from coroproc.config.model import DEFAULT_PORT, LinkConfig, NodeEntry
from coroproc.config.netaddr import ResolveError, resolve

_IFACE_KEY_RE = re.compile(r"totem\.interface\.([0-9]+)\.(.+)")


def cluster_id(cluster_name: str) -> int:
    """Corosync's generate_cluster_id: value = value * 2 + byte (signed char, int32)."""
    value = 0
    for byte in cluster_name.encode("utf-8", "surrogateescape"):
        signed = byte - 256 if byte > 127 else byte
        value = ((value << 1) + signed) & 0xFFFFFFFF
    return value & 0xFFFF


def derived_mcastaddr(cluster_name: str, linknumber: int, version: int) -> str:
    clusterid = (cluster_id(cluster_name) + linknumber) & 0xFFFF
    if version == 4:
        return f"239.192.{clusterid >> 8}.{clusterid % 0xFF}"
    return str(ipaddress.IPv6Address(f"ff15::{clusterid:x}"))


def configured_links(keys: Keys, nodes: list[NodeEntry]) -> list[int]:
    links = {link for node in nodes for link in node.addrs}
    for key in keys.entries:
        m = _IFACE_KEY_RE.fullmatch(key)
        if m and not m.group(2).startswith("member."):
            links.add(int(m.group(1)))
    return sorted(links)


def _mcastaddr(keys: Keys, link: int, bind_addr: str, ip_version: str,
               cluster_name: str | None) -> str:
    key = f"totem.interface.{link}.mcastaddr"
    if key in keys.entries:
        try:
            addr = resolve(keys.get(key), ip_version)
        except ResolveError as exc:
            raise keys.fail(key, f"failed to parse mcast address: {exc}") from None
    elif cluster_name is not None:
        addr = derived_mcastaddr(cluster_name, link, ipaddress.ip_address(bind_addr).version)
        keys.derive(key, addr)
    else:
        raise keys.fail("totem.interface", f"No multicast address specified for interface "
                        f"{link} (set interface {{ mcastaddr }} or totem.cluster_name)")
    ip = ipaddress.ip_address(addr)
    if ip.version != ipaddress.ip_address(bind_addr).version:
        raise keys.fail(key, "Multicast address family does not match bind address family "
                        f"for interface {link} ({addr} vs {bind_addr})")
    if not ip.is_multicast:
        raise keys.fail(key, f"mcastaddr is not a correct multicast address for interface "
                        f"{link}: {addr}")
    return addr


def _knet_options(keys: Keys, prefix: str, link: int) -> dict:
    """knet_* interface keys (Corosync's defaults; ping timers derived later, see knet.py)."""
    carrier = keys.get(f"{prefix}knet_transport", "udp")
    if carrier == "sctp":
        raise keys.fail(f"{prefix}knet_transport", f"knet_transport sctp is not supported "
                        f"for interface {link} (removed from knet; allowed: udp, rdma)")
    priority = keys.get(f"{prefix}knet_link_priority", 1) or 1
    pong_count = keys.get(f"{prefix}knet_pong_count", 2) or 2
    return {"priority": priority, "carrier": carrier, "pong_count": pong_count,
            "ping_interval_ms": keys.get(f"{prefix}knet_ping_interval", 0),
            "ping_timeout_ms": keys.get(f"{prefix}knet_ping_timeout", 0),
            "ping_precision": keys.get(f"{prefix}knet_ping_precision", 2048) or 2048}


def _link(keys: Keys, link: int, transport: str, ip_version: str, local: NodeEntry,
          cluster_name: str | None) -> LinkConfig:
    prefix = f"totem.interface.{link}."
    broadcast = transport == "udp" and keys.flag(f"{prefix}broadcast", False)
    port = keys.get(f"{prefix}mcastport",
                    DEFAULT_PORT + (2 * link if broadcast else link))
    ttl = keys.get(f"{prefix}ttl", 1)
    if transport != "udp" and ttl != 1:
        raise keys.fail(f"{prefix}ttl", f"Can only set ttl on multicast transport types "
                        f"for interface {link}")
    knet = {}
    if transport == "knet":
        knet = _knet_options(keys, prefix, link)
    else:
        priority = keys.get(f"{prefix}knet_link_priority", 1)
        if priority != 1:
            raise keys.fail(f"{prefix}knet_link_priority", "Can only set link priority on "
                            f"knet transport type for interface {link}")
        for key in keys.prefixed(prefix):
            if key[len(prefix):].startswith("knet_"):
                keys.warn(key, f"knet_* link options have no effect with transport {transport}")
    if link not in local.addrs:
        raise keys.fail(f"nodelist.node.{local.position}.ring{link}_addr", f"the local node "
                        f"(nodeid {local.nodeid}) has no ring{link}_addr for link {link}")
    bind = local.addrs[link]
    if f"{prefix}bindnetaddr" in keys.entries:
        keys.warn(f"{prefix}bindnetaddr", "interface section bindnetaddr is used together "
                  "with nodelist. Nodelist one is going to be used.")
    mcast = None
    if transport == "udp":
        mcast = "255.255.255.255" if broadcast else _mcastaddr(
            keys, link, bind, ip_version, cluster_name)
        if f"{prefix}mcastport" not in keys.entries:
            keys.derive(f"{prefix}mcastport", str(port), "u16")
    elif transport == "knet" and f"{prefix}mcastaddr" in keys.entries:
        keys.warn(f"{prefix}mcastaddr", "mcastaddr has no effect with transport knet "
                  "(links are unicast)")
    return LinkConfig(linknumber=link, mcastport=port, ttl=ttl, mcastaddr=mcast,
                      bindnetaddr=bind, broadcast=broadcast, **knet)


def build_links(keys: Keys, transport: str, ip_version: str, nodes: list[NodeEntry],
                local: NodeEntry, cluster_name: str | None) -> list[LinkConfig]:
    links = configured_links(keys, nodes)
    if transport == "knet":
        if links and links[-1] > 7:
            raise keys.fail(f"totem.interface.{links[-1]}", f"interface ring number "
                            f"{links[-1]} is bigger than allowed maximum 7")
        return [_link(keys, link, transport, ip_version, local, cluster_name)
                for link in links]
    if len(links) > 1:
        raise keys.fail("nodelist", f"{len(links)} is too many configured interfaces for "
                        f"non-Knet transport (links {', '.join(map(str, links))}; udp and "
                        "udpu run link 0 only: remove ring1_addr.. and extra interface { })")
    return [_link(keys, link, transport, ip_version, local, cluster_name) for link in links]
