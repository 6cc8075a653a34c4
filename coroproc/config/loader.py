"""load(path) → (NodeConfig, warnings): the whole corosync.conf pipeline for one node.

Order matters for the messages an operator sees: syntax (parser.py), then each key on
its own (schema.py), then the transport (transports.py), then totem-wide rules, the nodelist, the
local node, the links, and the remaining sections. The first error stops the load.
"""
from __future__ import annotations

from coroproc.config.context import Keys
from coroproc.config.errors import ConfigParseError, ConfigWarning
from coroproc.config.knet import (KNET_NETMTU_BYTES, build_knet, link_overhead_bytes,
                                  with_ping_defaults)
from coroproc.config.links import build_links
from coroproc.config.localnode import find_local_node
from coroproc.config.model import NodeConfig
from coroproc.config.nodelist import build_nodes
from coroproc.config.parser import parse_file, parse_uidgid_dir
from coroproc.config.schema import check_keys
from coroproc.config.sections import (UDP_NETMTU_BYTES, build_coroproc, build_logging,
                                      build_quorum, build_scheduling, build_services,
                                      build_system, build_totem)
from coroproc.config.transports import COROSYNC_DEFAULT_TRANSPORT, refuse_unsupported
from coroproc.netproc.spec import NETMTU_MAX_BYTES


def _check_totem_basics(keys: Keys, transport: str) -> None:
    if keys.get("totem.version") != 2:
        raise keys.fail("totem.version", "This totem parser can only parse version 2 "
                        "configurations (set totem { version: 2 })")
    cipher, hash_ = "none", "none"
    if keys.get("totem.secauth") == "on":
        cipher, hash_ = "aes256", "sha256"
    cipher = keys.get("totem.crypto_cipher", cipher)
    hash_ = keys.get("totem.crypto_hash", hash_)
    if cipher != "none" and hash_ == "none":
        raise keys.fail("totem.crypto_cipher", "crypto_cipher requires crypto_hash with "
                        "value other than none")
    if transport != "knet" and (cipher != "none" or hash_ != "none"):
        key = next(k for k in ("totem.crypto_cipher", "totem.crypto_hash", "totem.secauth")
                   if k in keys.entries)
        raise keys.fail(key, "crypto_cipher & crypto_hash are only valid for the Knet "
                        "transport (udp/udpu send in the clear; set both to none)")


def _link_netmtu(keys: Keys, netmtu: int, knet: bool) -> int:
    """netmtu as the links take it (netproc/spec.py, at most NETMTU_MAX_BYTES: one UDP
    datagram with room for headers). Corosync's knet takes 65,536 (its packets are 64 KiB):
    a knet file saying so loads, with a warning, at the largest frame coroproc's links
    carry; udpu/udp frames are single datagrams, so above it they are refused."""
    if netmtu <= NETMTU_MAX_BYTES:
        return netmtu
    if knet:
        keys.warn("totem.netmtu", f"netmtu {netmtu} is above the largest frame coroproc's "
                  f"links carry; using {NETMTU_MAX_BYTES}")
        return NETMTU_MAX_BYTES
    raise keys.fail("totem.netmtu", f"netmtu {netmtu} does not fit one UDP datagram; "
                    f"at most {NETMTU_MAX_BYTES}")


def _local_override(keys: Keys, nodeid_override: int | None):
    if nodeid_override is not None:
        if not 0 < nodeid_override < 2**32:
            raise ConfigParseError(keys.file, None, "--nodeid", f"{nodeid_override} is out "
                                   "of range (allowed: 1..4294967295)")
        return nodeid_override, None
    return keys.get("coroproc.nodeid"), keys.entries.get("coroproc.nodeid")


def load(path: str, nodeid_override: int | None = None
         ) -> tuple[NodeConfig, list[ConfigWarning]]:
    """Read and validate ``path`` for this node; raise ConfigParseError if it is unusable."""
    parsed = parse_file(path)
    parsed.keys.update(parse_uidgid_dir(path))
    checked = check_keys(parsed)
    keys = Keys(path, checked.keys, checked.values, checked.warnings)
    transport = keys.get("totem.transport", COROSYNC_DEFAULT_TRANSPORT)
    _check_totem_basics(keys, transport)
    refuse_unsupported(transport, keys.entries.get("totem.transport"), path)
    ip_version = keys.get("totem.ip_version", "ipv4" if transport == "udp" else "ipv6-4")
    nodes = build_nodes(keys, ip_version, keys.flag("totem.clear_node_high_bit", False))
    raw_ring0 = {n.position: keys.get(f"nodelist.node.{n.position}.ring0_addr")
                 for n in nodes}
    override, override_entry = _local_override(keys, nodeid_override)
    local = find_local_node(nodes, raw_ring0, path, override, override_entry)
    keys.derive("nodelist.local_node_pos", str(local.position), "u32")
    cluster_name = keys.get("totem.cluster_name")
    links = build_links(keys, transport, ip_version, nodes, local, cluster_name)
    knet = build_knet(keys, nodes) if transport == "knet" else None
    netmtu = keys.get("totem.netmtu") or (KNET_NETMTU_BYTES if knet else UDP_NETMTU_BYTES)
    netmtu = _link_netmtu(keys, netmtu, knet is not None)
    # knet: a link frame wraps each Totem frame in its header (and tag), so Totem's own
    # frames shrink by that much and a sealed datagram still fits netmtu
    totem_mtu = netmtu - link_overhead_bytes(knet.crypto) if knet else netmtu
    totem = build_totem(keys, tuple(n.nodeid for n in nodes), totem_mtu)
    if knet:
        links = with_ping_defaults(keys, links, totem)
    config = NodeConfig(
        path=path, cluster_name=cluster_name or "", transport=transport,
        ip_version=ip_version, totem=totem, links=tuple(links), nodes=tuple(nodes),
        local_nodeid=local.nodeid, local_addrs=dict(local.addrs),
        block_unlisted_ips=keys.flag("totem.block_unlisted_ips", True), netmtu=netmtu,
        config_version=keys.get("totem.config_version", 0),
        logging=build_logging(keys), quorum=build_quorum(keys, len(nodes)),
        state_dir=build_system(keys), scheduling=build_scheduling(keys),
        coroproc=build_coroproc(keys), keys=keys.entries,
        services=build_services(keys), knet=knet)
    return config, keys.warnings
