"""LinkSpec: everything a network process needs to know about its one link.

The supervisor builds a LinkSpec from the parsed corosync.conf (interface / nodelist
sections); tests build one directly. This file owns the dataclass and its validation;
address resolution lives in addresses.py, sockets in sockets.py.

Ports: in corosync.conf every node uses ``mcastport`` for its link, so every peer's port is
the same. The per-peer port in ``peers`` exists so tests and demos can run several nodes on
one host with a single address (127.0.0.1:5405, 127.0.0.1:5407, ...).
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

TRANSPORTS = ("udpu", "udp", "knet")
DEFAULT_SOCKET_BUFFER_BYTES = 4 * 1024 * 1024
NETMTU_MIN_BYTES = 576          # smallest MTU every IPv4 host must accept
NETMTU_MAX_BYTES = 65000        # keeps netmtu + slack below the UDP datagram limit
NODEID_MAX = 0xFFFFFFFF


class LinkSpecError(ValueError):
    """A LinkSpec field is wrong; the message names the link, the field and what is allowed."""


@dataclass(frozen=True)
class LinkSpec:
    linknumber: int
    transport: str                                # 'udpu' | 'udp' | 'knet'
    family: int                                   # socket.AF_INET | socket.AF_INET6
    local_nodeid: int
    bind_addr: str                                # this node's address on the link
    port: int                                     # this node's port (mcastport)
    peers: dict[int, tuple[str, int]]             # the whole nodelist, self included
    mcast_addr: str | None = None                 # udp only
    mcast_port: int | None = None                 # udp only; defaults to port
    # udp binds this node's send socket to bind_addr:port-1 (as Corosync does), so nodes
    # sharing one address need ports at least 2 apart.
    ttl: int = 1                                  # udp only
    netmtu: int = 1500
    block_unlisted_ips: bool = True
    rcvbuf_bytes: int = DEFAULT_SOCKET_BUFFER_BYTES
    sndbuf_bytes: int = DEFAULT_SOCKET_BUFFER_BYTES
    udp_gso: bool = True                          # udpu/udp: GSO sends (jit/link_loop.py)
    extra: dict = field(default_factory=dict)     # room for transport-specific knobs

    def __post_init__(self):
        validate(self)

    def multicast_peers(self) -> tuple[int, ...]:
        """The nodeids a multicast frame is sent to as unicasts (udpu, knet): the
        nodelist without this node, in nodeid order. udp sends one datagram to the group."""
        return tuple(n for n in sorted(self.peers) if n != self.local_nodeid)

    def multicast_reaches_nobody(self) -> bool:
        """A multicast frame on this link has no receiver: udpu or knet with this node
        alone in the nodelist (a one-node cluster). The ring process then keeps such
        frames out of the link's tx ring instead of waking the network process to send
        nothing. A udp group may always have listeners."""
        return self.transport != "udp" and not self.multicast_peers()

    @property
    def rx_limit_bytes(self) -> int:
        """Largest datagram accepted: netmtu plus slack for headers Corosync doesn't count."""
        return self.netmtu + 64

    @property
    def group_port(self) -> int:
        return self.mcast_port if self.mcast_port is not None else self.port


def _fail(spec: LinkSpec, what: str) -> None:
    raise LinkSpecError(f"link {spec.linknumber} (node {spec.local_nodeid}): {what}")


def _check_addr(spec: LinkSpec, name: str, addr: str) -> ipaddress._BaseAddress:
    host = addr.split("%", 1)[0]  # an IPv6 scope (fe80::1%eth0) is not part of the address
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        _fail(spec, f"{name} {addr!r} is not a numeric IP address (names are resolved by config)")
    want = 4 if spec.family == socket.AF_INET else 6
    if ip.version != want:
        _fail(spec, f"{name} {addr!r} is IPv{ip.version} but the link family is IPv{want}")
    return ip


def _check_port(spec: LinkSpec, name: str, port) -> None:
    if not isinstance(port, int) or not 1 <= port <= 65535:
        _fail(spec, f"{name} {port!r} is not a port number (1..65535)")


def validate(spec: LinkSpec) -> None:
    """Raise LinkSpecError on the first inconsistent field; a spec that passes can be bound."""
    if spec.transport not in TRANSPORTS:
        _fail(spec, f"transport {spec.transport!r} is not one of {TRANSPORTS}")
    if spec.family not in (socket.AF_INET, socket.AF_INET6):
        _fail(spec, f"family {spec.family!r} is neither AF_INET nor AF_INET6")
    if not 0 <= spec.linknumber <= 7:
        _fail(spec, f"linknumber {spec.linknumber} is outside 0..7")
    if not 1 <= spec.local_nodeid <= NODEID_MAX:
        _fail(spec, f"local_nodeid {spec.local_nodeid} is outside 1..{NODEID_MAX}")
    _check_addr(spec, "bind_addr", spec.bind_addr)
    _check_port(spec, "port", spec.port)
    if spec.local_nodeid not in spec.peers:
        _fail(spec, f"peers (the nodelist) must include this node {spec.local_nodeid}")
    for nodeid, entry in spec.peers.items():
        if not isinstance(nodeid, int) or not 1 <= nodeid <= NODEID_MAX:
            _fail(spec, f"peer nodeid {nodeid!r} is outside 1..{NODEID_MAX}")
        if not (isinstance(entry, tuple) and len(entry) == 2):
            _fail(spec, f"peer {nodeid} must be (addr, port), got {entry!r}")
        _check_addr(spec, f"peer {nodeid} addr", entry[0])
        _check_port(spec, f"peer {nodeid} port", entry[1])
    if not NETMTU_MIN_BYTES <= spec.netmtu <= NETMTU_MAX_BYTES:
        _fail(spec, f"netmtu {spec.netmtu} is outside {NETMTU_MIN_BYTES}..{NETMTU_MAX_BYTES}")
    for name in ("rcvbuf_bytes", "sndbuf_bytes"):
        if not 65536 <= getattr(spec, name) <= 1 << 30:
            _fail(spec, f"{name} {getattr(spec, name)} is outside 64 KiB..1 GiB")
    if spec.transport == "udp":
        _validate_udp(spec)


def _validate_udp(spec: LinkSpec) -> None:
    if spec.mcast_addr is None:
        _fail(spec, "transport udp needs mcast_addr")
    ip = _check_addr(spec, "mcast_addr", spec.mcast_addr)
    if not ip.is_multicast:
        _fail(spec, f"mcast_addr {spec.mcast_addr!r} is not a multicast address")
    _check_port(spec, "mcast_port", spec.group_port)
    if spec.port - 1 < 1:
        _fail(spec, "port must be >= 2 for udp: the multicast send socket binds to port - 1")
    if not 1 <= spec.ttl <= 255:
        _fail(spec, f"ttl {spec.ttl} is outside 1..255")
