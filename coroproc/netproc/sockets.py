"""Opening the sockets of one link, with the socket options Corosync 3.1 uses and why.

udpu (exec/totemudpu.c): one socket bound to bind_addr:port. It receives everything and
sends everything; a "multicast" is one unicast per nodelist member except this node.
(Corosync sends from one extra socket per member bound to an ephemeral port; peers filter
by IP only, so sending from the bound port is equivalent on the wire and saves fds.)

udp (exec/totemudp.c), three sockets, bound like Corosync's so several nodes can share
one host / namespace / bridge:
* mcast_recv bound to mcast_addr:mcast_port with SO_REUSEADDR, joined to the group on the
  interface of bind_addr: every local node gets its own copy of each multicast;
* mcast_send bound to bind_addr:port-1: sends the multicasts and the unicasts (tokens), so
  its address is the source of all our traffic and identifies our own looped multicasts;
* token bound to bind_addr:port: receives unicasts.
Corosync turns IP_MULTICAST_LOOP off and loops locally through a socketpair; coroproc keeps
it on (other nodes on this host must hear us) and drops datagrams from our own
mcast_send address on the mcast_recv socket instead (the Totem core hears itself
internally).

Buffers: 4 MiB by default — the 208 KiB default loses 1-95 % at full rate
(shared/ref/machine-limits.md). As root SO_RCVBUFFORCE / SO_SNDBUFFORCE bypass
net.core.rmem_max (read-only inside a namespace); otherwise SO_RCVBUF / SO_SNDBUF get what
the sysctl allows. SO_PRIORITY 6 (TC_PRIO_INTERACTIVE) as Corosync, so Totem traffic is not
queued behind bulk traffic on the same host.
"""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from coroproc.netproc.addresses import ipv6_ifindex, sockaddr
from coroproc.netproc.spec import LinkSpec

# Linux values; Python's socket module doesn't export them.
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
IP_MULTICAST_ALL = getattr(socket, "IP_MULTICAST_ALL", 49)
IPV6_MULTICAST_ALL = getattr(socket, "IPV6_MULTICAST_ALL", 29)
TC_PRIO_INTERACTIVE = 6


class LinkSocketError(OSError):
    """A link socket could not be opened/bound; the message names link, socket and address."""


@dataclass
class LinkSockets:
    """The open sockets of a link. `receivers` pairs each socket with "is the mcast_recv"."""
    receivers: list                    # [(socket, is_mcast_recv: bool)]
    sender: socket.socket
    own_mcast_source: tuple | None     # (host, port) our multicasts come back from (udp)
    group: tuple | None                # sockaddr of the multicast group (udp)
    buffer_bytes: dict                 # what the kernel actually granted, for status output

    def fds(self) -> list[int]:
        return [s.fileno() for s, _ in self.receivers]

    def close(self) -> None:
        seen = set()
        for s in [self.sender] + [r for r, _ in self.receivers]:
            if id(s) not in seen:
                seen.add(id(s))
                s.close()


def _set_buffer(sock: socket.socket, force_opt: int, opt: int, size_bytes: int) -> int:
    try:
        sock.setsockopt(socket.SOL_SOCKET, force_opt, size_bytes)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, opt, size_bytes)   # capped by net.core.*mem_max
    # Linux reports double the requested value (bookkeeping overhead); report the usable half.
    return sock.getsockopt(socket.SOL_SOCKET, opt) // 2


def _new_socket(spec: LinkSpec) -> socket.socket:
    sock = socket.socket(spec.family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    if spec.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY, TC_PRIO_INTERACTIVE)
    except OSError:
        pass   # priority is an optimisation; Corosync only warns too
    return sock


def link_scope_id(spec: LinkSpec) -> int:
    """Interface index of the link (IPv6), for addresses that need a scope and have none."""
    return ipv6_ifindex(spec.bind_addr) if spec.family == socket.AF_INET6 else 0


def _bind(spec: LinkSpec, sock: socket.socket, what: str, addr: str, port: int) -> None:
    try:
        sock.bind(sockaddr(spec.family, addr, port, link_scope_id(spec)))
    except OSError as e:
        sock.close()
        raise LinkSocketError(
            e.errno, f"link {spec.linknumber} (node {spec.local_nodeid}): cannot bind {what} "
            f"socket to [{addr}]:{port}: {e.strerror}; is another process (or node on this "
            f"host) using that port, and is the address configured on an interface?") from None


def open_link_sockets(spec: LinkSpec) -> LinkSockets:
    # a knet link (secure_link.py) is udpu-shaped: one socket sends and receives
    if spec.transport in ("udpu", "knet"):
        return _open_udpu(spec)
    return _open_udp(spec)


def _open_udpu(spec: LinkSpec) -> LinkSockets:
    sock = _new_socket(spec)
    rcv = _set_buffer(sock, SO_RCVBUFFORCE, socket.SO_RCVBUF, spec.rcvbuf_bytes)
    snd = _set_buffer(sock, SO_SNDBUFFORCE, socket.SO_SNDBUF, spec.sndbuf_bytes)
    _bind(spec, sock, "udpu", spec.bind_addr, spec.port)
    return LinkSockets(receivers=[(sock, False)], sender=sock, own_mcast_source=None,
                       group=None, buffer_bytes={"rcvbuf": rcv, "sndbuf": snd})


def _open_udp(spec: LinkSpec) -> LinkSockets:
    opened = []
    try:
        send = _new_socket(spec); opened.append(send)
        token = _new_socket(spec); opened.append(token)
        recv = _new_socket(spec); opened.append(recv)
        for s in opened:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        snd = _set_buffer(send, SO_SNDBUFFORCE, socket.SO_SNDBUF, spec.sndbuf_bytes)
        rcv = _set_buffer(recv, SO_RCVBUFFORCE, socket.SO_RCVBUF, spec.rcvbuf_bytes)
        _set_buffer(token, SO_RCVBUFFORCE, socket.SO_RCVBUF, spec.rcvbuf_bytes)
        _bind(spec, send, "udp multicast send", spec.bind_addr, spec.port - 1)
        _bind(spec, token, "udp token", spec.bind_addr, spec.port)
        _multicast_options(spec, send, recv)
        # Bind after the multicast options: for IPv6 the kernel applies some of them at
        # bind time (Corosync's comment in totemudp.c says the same).
        _bind(spec, recv, "udp multicast receive", spec.mcast_addr, spec.group_port)
    except BaseException:
        for s in opened:
            s.close()
        raise
    own = send.getsockname()[:2]
    return LinkSockets(receivers=[(recv, True), (token, False)], sender=send,
                       own_mcast_source=own,
                       group=sockaddr(spec.family, spec.mcast_addr, spec.group_port,
                                      link_scope_id(spec)),
                       buffer_bytes={"rcvbuf": rcv, "sndbuf": snd})


def _multicast_options(spec: LinkSpec, send: socket.socket, recv: socket.socket) -> None:
    what = f"link {spec.linknumber} (node {spec.local_nodeid})"
    try:
        if spec.family == socket.AF_INET:
            group = socket.inet_pton(socket.AF_INET, spec.mcast_addr)
            iface = socket.inet_pton(socket.AF_INET, spec.bind_addr)
            recv.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group + iface)
            # Only the groups this socket joined, not every group joined on the host.
            recv.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
            send.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            send.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, spec.ttl)
            send.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, iface)
        else:
            ifindex = ipv6_ifindex(spec.bind_addr)
            group = socket.inet_pton(socket.AF_INET6, spec.mcast_addr.split("%", 1)[0])
            recv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                            group + struct.pack("@I", ifindex))
            try:
                recv.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0)
            except OSError:
                pass   # kernels before 4.20 lack it; bound to the group address anyway
            send.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 1)
            send.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, spec.ttl)
            send.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
    except OSError as e:
        raise LinkSocketError(
            e.errno, f"{what}: cannot join multicast group {spec.mcast_addr} on interface of "
            f"{spec.bind_addr}: {e.strerror}; does that interface have the MULTICAST flag "
            f"and a route for the group?") from None
