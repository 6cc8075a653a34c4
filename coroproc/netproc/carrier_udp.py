"""UdpCarrier: link frames over one UDP socket, for the secure (knet) link process.

The carrier moves opaque datagrams between this node and peers named by nodeid; the
secure link process seals and opens them (secure/). The socket is udpu's (sockets.py:
bound to the link address and port, 4 MiB buffers, SO_PRIORITY), and a datagram's
source is mapped back to a nodeid by (address, port) — nodes sharing one address
(tests on loopback) differ by port — then by address alone; the answer is remembered per
source (a bounded table: parsing an address costs more than the rest of a datagram's
handling on an idle link). With block_unlisted_ips a
source that is no nodelist member is dropped before any crypto work (rx_unlisted).
The RDMA carrier (rdma/) offers the same five calls.
"""
from __future__ import annotations

import errno as _errno
import socket

from coroproc.netproc.addresses import canonical_host, sockaddr
from coroproc.netproc.sockets import link_scope_id, open_link_sockets
from coroproc.netproc.spec import LinkSpec

# sources remembered by _source_node; a flood of forged sources only empties the table
SOURCE_CACHE_ENTRIES_MAX = 256


class UdpCarrier:
    def __init__(self, spec: LinkSpec):
        self._socks = open_link_sockets(spec)
        self._sock = self._socks.sender
        self.max_datagram_bytes = spec.rx_limit_bytes
        scope = link_scope_id(spec)
        self._addr = {n: sockaddr(spec.family, a, p, scope) for n, (a, p) in spec.peers.items()}
        self._by_host_port: dict[tuple[str, int], int] = {}
        by_host: dict[str, list[int]] = {}
        for nodeid, (addr, port) in spec.peers.items():
            host = canonical_host(addr)
            self._by_host_port[(host, port)] = nodeid
            by_host.setdefault(host, []).append(nodeid)
        # an address alone names a node only when one node uses it; a listed address shared
        # by several nodes (loopback tests) gives 0 = "some member": the codec's
        # authenticated sender id decides then
        self._by_host = {h: ids[0] if len(ids) == 1 else 0 for h, ids in by_host.items()}
        self._source_cache: dict[tuple, int | None] = {}
        self._probe_sock = None
        self._spec = spec
        self._block_unlisted = spec.block_unlisted_ips
        self._counts = {"rx_unlisted": 0, "rx_errors": 0}
        self._errnos: dict[str, int] = {}

    @property
    def buffer_bytes(self) -> dict:
        return self._socks.buffer_bytes

    def fds(self) -> list[int]:
        return [self._sock.fileno()]

    def local_address(self) -> tuple:
        return self._sock.getsockname()

    def recv_into(self, buf: bytearray) -> tuple[int, int] | None:
        """(nbytes, source nodeid or 0) of the next datagram, None when none waits."""
        while True:
            try:
                n, src = self._sock.recvfrom_into(buf)
            except BlockingIOError:
                return None
            except OSError as e:   # an ICMP error from an earlier send: never fatal
                self._count_errno("rx", e.errno)
                continue
            nodeid = self._source_node(src)
            if nodeid is None:
                if self._block_unlisted:
                    self._counts["rx_unlisted"] += 1
                    continue
                nodeid = 0
            return n, nodeid

    def _source_node(self, src: tuple) -> int | None:
        """The nodeid a source address belongs to, 0 if several share it, None if unlisted."""
        cache = self._source_cache
        try:
            return cache[src]
        except KeyError:
            pass
        if len(cache) >= SOURCE_CACHE_ENTRIES_MAX:
            cache.clear()
        nodeid = cache[src] = self._lookup_source(src)
        return nodeid

    def _lookup_source(self, src: tuple) -> int | None:
        try:
            host = canonical_host(src[0])
        except ValueError:
            return None
        nodeid = self._by_host_port.get((host, src[1]))
        if nodeid is None:
            nodeid = self._by_host.get(host)
        return nodeid

    def send(self, data, nodeid: int) -> int:
        """Send one datagram to a nodelist member; raises KeyError for an unknown nodeid
        and OSError (ENOBUFS, EHOSTUNREACH, EMSGSIZE, ...) from the kernel."""
        return self._sock.sendto(data, self._addr[nodeid])

    def send_probe(self, data, nodeid: int) -> int:
        """A path-MTU probe: from a second socket with the don't-fragment bit and no path-MTU
        cache (IP_PMTUDISC_PROBE), so a too-big probe is dropped on the way (or refused
        here with EMSGSIZE) instead of fragmented. The data socket keeps fragmenting, so a
        frame bigger than a smaller path still arrives."""
        if self._probe_sock is None:
            self._probe_sock = _open_probe_socket(self._spec)
        return self._probe_sock.sendto(data, self._addr[nodeid])

    def count_send_error(self, err: int | None) -> None:
        self._count_errno("tx", err)

    def _count_errno(self, direction: str, err: int | None) -> None:
        key = f"{direction}_error_{_errno.errorcode.get(err, str(err))}"
        self._errnos[key] = self._errnos.get(key, 0) + 1

    def counters(self) -> dict[str, int]:
        d = dict(self._counts)
        d.update(self._errnos)
        d.update({f"socket_{k}_bytes": v for k, v in self._socks.buffer_bytes.items()})
        return d

    def close(self) -> None:
        if self._probe_sock is not None:
            self._probe_sock.close()
        self._socks.close()


IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)
IPV6_MTU_DISCOVER = getattr(socket, "IPV6_MTU_DISCOVER", 23)
PMTUDISC_PROBE = getattr(socket, "IP_PMTUDISC_PROBE", 3)   # same value for IPv6


def _open_probe_socket(spec: LinkSpec) -> socket.socket:
    sock = socket.socket(spec.family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    if spec.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, PMTUDISC_PROBE)
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, PMTUDISC_PROBE)
    sock.bind(sockaddr(spec.family, spec.bind_addr, 0, link_scope_id(spec)))
    return sock

