"""Address plumbing for one link: numeric sockaddrs, IPv6 interface indexes, source matching.

Everything here runs once at link start-up, except `SourceFilter.allowed`, which runs per
received datagram and is therefore a set lookup on the host string exactly as the kernel
hands it to recvfrom (slow normalisation only on a miss).
"""
from __future__ import annotations

import ipaddress
import socket


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


class SourceFilter:
    """Which source IPs may talk to this link (block_unlisted_ips) — by IP, not port, as
    Corosync's find_member_by_sockaddr: a peer sends from whatever port its socket has."""

    def __init__(self, hosts):
        self._canonical = frozenset(canonical_host(h) for h in hosts)
        # The kernel's spelling of each address: what recvfrom returns, so the hit path is
        # one set lookup with no parsing.
        self._fast = set(self._canonical)
        self._misses_cached_max = 64
        self._known_bad: set[str] = set()

    def allowed(self, host: str) -> bool:
        if host in self._fast:
            return True
        if host in self._known_bad:
            return False
        try:
            ok = canonical_host(host) in self._canonical
        except ValueError:
            ok = False
        if ok:
            if len(self._fast) < 4 * len(self._canonical) + 16:
                self._fast.add(host)       # another spelling (e.g. with a scope) of a peer
        elif len(self._known_bad) < self._misses_cached_max:
            self._known_bad.add(host)      # bounded so a spoofing flood can't grow memory
        return ok
