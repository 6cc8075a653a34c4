"""Address plumbing for one link: numeric sockaddrs (as tuples, and as the raw structs the
jitted link loop hands sendmsg), packed addresses (what it compares a source with), IPv6
interface indexes. Everything here runs once, at link start-up.
"""
from __future__ import annotations

import ipaddress
import socket
import struct
import sys


def sockaddr(family: int, addr: str, port: int, default_scope_id: int = 0) -> tuple:
    """The sockaddr tuple Python's socket calls take, with an IPv6 scope id resolved.

    ``fe80::1%eth0`` yields scope id = ifindex(eth0), as the kernel requires for link-local
    destinations. An IPv6 address without a scope gets `default_scope_id` (the link's
    interface): the kernel only uses it where the address needs one (link-local unicast,
    link/interface-scoped multicast) and ignores it otherwise. Numeric only
    (AI_NUMERICHOST): names are the config's business.
    """
    try:
        infos = socket.getaddrinfo(addr, port, family, socket.SOCK_DGRAM, 0,
                                   socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)
    except socket.gaierror as e:
        raise ValueError(f"address {addr!r} port {port}: {e.strerror}") from None
    sa = infos[0][4]
    if family == socket.AF_INET6 and sa[3] == 0 and default_scope_id:
        sa = (sa[0], sa[1], sa[2], default_scope_id)
    return sa


def canonical_host(host: str) -> str:
    """One spelling per address, without the IPv6 scope: '::ffff:1' and '::FFFF:0.0.0.1' agree."""
    return str(ipaddress.ip_address(host.split("%", 1)[0]))


def packed_host(host: str) -> bytes:
    """The address bytes of a host (4 or 16), as a received sockaddr carries them."""
    return ipaddress.ip_address(canonical_host(host)).packed


def sockaddr_bytes(family: int, sa: tuple) -> bytes:
    """struct sockaddr_in / sockaddr_in6 of a Python sockaddr tuple (from `sockaddr`), for
    code that calls sendmsg(2) itself (the jitted link loop)."""
    if family == socket.AF_INET:
        return (struct.pack("=H", socket.AF_INET) + struct.pack("!H", sa[1])
                + socket.inet_pton(socket.AF_INET, sa[0]) + bytes(8))
    host, port, flowinfo, scope_id = sa
    return (struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", port, flowinfo)
            + socket.inet_pton(socket.AF_INET6, host.split("%", 1)[0])
            + struct.pack("=I", scope_id))


def sockaddr_tuple(raw: bytes) -> tuple:
    """A raw sockaddr_in / sockaddr_in6 as recvmsg gives it: (host, port) or (host, port,
    flowinfo, scope_id)."""
    family = int.from_bytes(raw[:2], sys.byteorder)
    port = int.from_bytes(raw[2:4], "big")
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), port
    if family == socket.AF_INET6:
        return (socket.inet_ntop(socket.AF_INET6, raw[8:24]), port,
                int.from_bytes(raw[4:8], "big"), int.from_bytes(raw[24:28], sys.byteorder))
    return (f"<family {family}>", port)


def ipv6_ifindex(addr: str) -> int:
    """Index of the interface that holds IPv6 address `addr` (0 = let the kernel choose).

    A scope in the address wins (fe80::1%eth0); otherwise /proc/net/if_inet6 tells which
    interface carries the address, which IPV6_JOIN_GROUP / IPV6_MULTICAST_IF need.
    """
    if "%" in addr:
        scope = addr.split("%", 1)[1]
        return int(scope) if scope.isdigit() else socket.if_nametoindex(scope)
    want = ipaddress.IPv6Address(addr).packed.hex()
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 2 and fields[0] == want:
                    return int(fields[1], 16)
    except OSError:
        pass
    return 0
