"""UdpCarrier: link frames over one UDP socket, for the secure (knet) link process.

The carrier moves opaque datagrams between this node and peers named by nodeid; the
secure link process seals and opens them (secure/). The socket is udpu's (sockets.py:
bound to the link address and port, 4 MiB buffers, SO_PRIORITY), and a datagram's
source is mapped back to a nodeid by (address, port) — nodes sharing one address
(tests on loopback) differ by port — then by address alone; the answer is remembered per
source (a bounded table: parsing an address costs more than the rest of a datagram's
handling on an idle link). With block_unlisted_ips a
source that is no nodelist member is dropped before any crypto work (rx_unlisted).

Frames bigger than the path (as knet does, instead of leaving it to IP fragmentation):
`mtu_of(nodeid)` gives the largest datagram path-MTU discovery (pmtud.py) found to reach
the peer whole. A link frame above it leaves as fragments of exactly that size
(fragments/wire.py; the last may be shorter), handed to the kernel as UDP GSO sends (one
`sendmsg` with a UDP_SEGMENT control message per run of at most 64 fragments and 65,000
bytes; the kernel cuts them into the same datagrams one send each would give). The
receive socket has UDP_GRO on: a train the kernel kept whole comes in one `recvmsg` with
its segment size, and recv_into hands its datagrams out one at a time. Fragments go
through a bounded reassembly table; a frame whose fragment was lost times out there, and
Totem retransmits it. Both are jitted (jit/fragments.py) on state this carrier owns
(fragments/table.py) and shares with the jitted secure loop, which sends and reassembles
the DATA frames of a flood itself. While the path MTU is unknown (the first
probe run after the link comes up) frames go whole, fragmented by IP as before.
`udp_gso: no` turns GSO and GRO off (fragments then go one send each).
The RDMA carrier (rdma/) offers the same five calls and fragments to its UD MTU itself.
"""
from __future__ import annotations

import errno as _errno
import socket
import sys
import time

import numpy as np

from coroproc.netproc.addresses import canonical_host, sockaddr, sockaddr_bytes, sockaddr_tuple
from coroproc.netproc.fragments.table import FragState
from coroproc.netproc.jit.fragments import is_fragment
from coroproc.netproc.jit.link_loop import SOL_UDP, UDP_GRO
from coroproc.netproc.link import enable_udp_gro, udp_gso_segments
from coroproc.netproc.sockets import link_scope_id, open_link_sockets
from coroproc.netproc.spec import LinkSpec

# sources remembered by _source_node; a flood of forged sources only empties the table
SOURCE_CACHE_ENTRIES_MAX = 256
# a GRO train is at most one IP datagram's worth of segments
TRAIN_BUFFER_BYTES = 65536
_ANC_BYTES = socket.CMSG_SPACE(4)       # UDP_GRO: the segment size as an int
# a plain int: `flags & socket.MSG_TRUNC` builds an IntFlag member per datagram (~2 µs)
_MSG_TRUNC = int(socket.MSG_TRUNC)
COUNTER_NAMES = ("rx_unlisted", "rx_errors", "rx_empty", "rx_too_long", "rx_gro_trains")


class UdpCarrier:
    def __init__(self, spec: LinkSpec, mtu_of=None):
        self._socks = open_link_sockets(spec)
        self._sock = self._socks.sender
        self.max_datagram_bytes = spec.rx_limit_bytes
        self._local_nodeid = spec.local_nodeid
        scope = link_scope_id(spec)
        self._addr = {n: sockaddr(spec.family, a, p, scope) for n, (a, p) in spec.peers.items()}
        # the same, packed, for the fragment sends (jit/fragments.py)
        self._sa = {n: np.frombuffer(sockaddr_bytes(spec.family, a), np.uint8).copy()
                    for n, a in self._addr.items()}
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
        self._c = dict.fromkeys(COUNTER_NAMES, 0)
        self._errnos: dict[str, int] = {}
        # fragmentation above the path MTU (module docstring)
        self._mtu_of = mtu_of
        self.frags = FragState((n for n in spec.peers if n != spec.local_nodeid),
                               udp_gso_segments(self._sock) if spec.udp_gso else 0)
        self.frags.warm()
        self.gro_receive = bool(spec.udp_gso) and enable_udp_gro([self._sock])
        self._train = bytearray(TRAIN_BUFFER_BYTES)
        self._train_view = memoryview(self._train)
        self._train_array = np.frombuffer(self._train, np.uint8)
        self._pos = self._end = self._seg = 0       # the train being handed out
        self._train_src: tuple = ()
        self._train_node = 0
        self._done_frame = None     # a frame the jitted path completed and handed over

    @property
    def buffer_bytes(self) -> dict:
        return self._socks.buffer_bytes

    def fds(self) -> list[int]:
        return [self._sock.fileno()]

    def local_address(self) -> tuple:
        return self._sock.getsockname()

    # -- receive -------------------------------------------------------------------------
    def recv_into(self, buf: bytearray) -> tuple[int, int] | None:
        """(nbytes, source nodeid or 0) of the next datagram (a reassembled frame counts
        as one), None when none waits."""
        if self._done_frame is not None:
            frame, self._done_frame = self._done_frame, None
            got = self._hand_out(frame, buf)
            if got is not None:
                return got
        while True:
            if self._pos < self._end:
                got = self._next_datagram(buf)
                if got is not None:
                    return got
            elif not self._receive_train():
                return None

    def _receive_train(self) -> bool:
        """Take the next datagram or GRO train into the train buffer; False if none waits."""
        try:
            n, anc, flags, src = self._sock.recvmsg_into([self._train], _ANC_BYTES)
        except BlockingIOError:
            return False
        except OSError as e:   # an ICMP error from an earlier send: never fatal
            self._count_errno("rx", e.errno)
            return True
        c = self._c
        if flags & _MSG_TRUNC:
            c["rx_too_long"] += 1
            return True
        if n == 0:              # nothing to open: no link frame is empty
            c["rx_empty"] += 1
            return True
        seg = n
        for level, kind, data in anc:
            if level == SOL_UDP and kind == UDP_GRO:
                seg = int.from_bytes(data[:4], sys.byteorder) or n
        if seg < n:
            c["rx_gro_trains"] += 1
        self._take_train(0, n, seg, src)
        return True

    def _take_train(self, pos: int, n: int, seg: int, src: tuple) -> None:
        """Hand out the train buffer's datagrams from pos on (n bytes, seg each), which
        came from src; an unlisted source's are dropped here under block_unlisted_ips."""
        nodeid = self._source_node(src)
        if nodeid is None:
            if self._block_unlisted:
                self._c["rx_unlisted"] += -(-(n - pos) // seg)   # every datagram left
                self._pos = self._end = 0
                return
            nodeid = 0
        self._pos, self._end, self._seg = pos, n, seg
        self._train_src, self._train_node = src, nodeid

    # -- the jitted data path's side (jit/secure_loop.py) ---------------------------
    @property
    def fd(self) -> int:
        return self._sock.fileno()

    @property
    def train_buffer(self) -> bytearray:
        """The receive buffer the jitted path receives into too (adopt_train)."""
        return self._train

    def adopt_train(self, pos: int, n: int, seg: int, src_sockaddr: bytes) -> None:
        """The jitted path received a train into train_buffer and stopped at pos (a
        datagram it leaves to the Python path): recv_into goes on from there."""
        self._take_train(pos, n, seg, sockaddr_tuple(src_sockaddr))

    def adopt_frame(self, slot: int) -> None:
        """The jitted path completed a frame in fragment slot `slot` that the Python path
        must open: recv_into hands it out first (from the train adopted with it)."""
        self._done_frame = self.frags.frame(slot)

    def _next_datagram(self, buf: bytearray) -> tuple[int, int] | None:
        start = self._pos
        stop = self._pos = min(start + self._seg, self._end)
        if is_fragment(self._train_array, start, stop - start):
            frame = self.frags.take(self._train_array, start, stop - start,
                                    self._train_node, time.monotonic_ns() // 1_000_000)
            return None if frame is None else self._hand_out(frame, buf)
        return self._hand_out(self._train_view[start:stop], buf)

    def _hand_out(self, view, buf: bytearray) -> tuple[int, int] | None:
        n = len(view)
        if n > len(buf):
            self._c["rx_too_long"] += 1
            return None
        buf[:n] = view
        return n, self._train_node

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

    # -- send ----------------------------------------------------------------------------
    def send(self, data, nodeid: int) -> int:
        """Send one link frame to a nodelist member, as fragments if it is bigger than the
        peer's path MTU; returns the bytes handed to the kernel. Raises KeyError for an
        unknown nodeid and OSError (ENOBUFS, EHOSTUNREACH, EMSGSIZE, ...) from the kernel."""
        addr = self._addr[nodeid]
        mtu = self._mtu_of(nodeid) if self._mtu_of is not None else 0
        if not mtu or len(data) <= mtu:
            return self._sock.sendto(data, addr)
        return self.frags.send(self._sock.fileno(), self._sa[nodeid],
                               np.frombuffer(data, np.uint8), mtu, self._local_nodeid)

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
        d = dict(self._c)
        d.update(self._errnos)
        d.update(self.frags.counters())
        d["tx_gso_segments_max"] = self.frags.gso_segments
        d["gro_receive"] = int(self.gro_receive)
        refused = self.frags.gso_refused_errno
        if refused:
            d["tx_gso_refused_errno"] = _errno.errorcode.get(refused, str(refused))
        d.update({f"socket_{k}_bytes": v for k, v in self._socks.buffer_bytes.items()})
        return d

    def close(self) -> None:
        if self._probe_sock is not None:
            self._probe_sock.close()
        self._done_frame = self._train_array = None
        self._train_view.release()
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

