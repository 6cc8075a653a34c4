"""LinkProcess: one network process of a plain (udpu / udp) link.

Owns the link's sockets and moves frames between them and two shm rings: socket → rx
ring and tx ring → socket. It never interprets Totem beyond the framing checks and the
frame-type byte that decides when the ring process is woken (ringwake.py).

The loop itself is jitted (jit/link_loop.py: the turn, the checks, the counters, the
sleep); this class builds its arrays once from the LinkSpec and the open sockets, and
runs it between calls of control.poll() — when a control fd is readable, when
control.tick_s (the next heartbeat) has passed, or after a signal.

The `control` object (the supervisor's, or control.PipeControl in tests) provides
`tick_s`, `fds() -> list[int]` and `poll() -> bool` (False = stop).
"""
from __future__ import annotations

import contextlib
import errno as _errno
import os
import socket
import time

import numpy as np

from coroproc.netproc.addresses import packed_host, sockaddr, sockaddr_bytes
from coroproc.netproc.counters import COUNTER_NAMES
from coroproc.netproc.jit import link_loop as L
from coroproc.netproc.jit.waker import new_waker
from coroproc.netproc.ringwake import MCAST_WAKE_DEFER_US, waker_counters
from coroproc.netproc.sockets import link_scope_id, open_link_sockets
from coroproc.netproc.spec import LinkSpec
from coroproc.shm.doorbell import Doorbell
from coroproc.shm.errors import ShmError
from coroproc.shm.ring import ShmRing
from coroproc.shm.syscalls import pollfd_array

RX_BATCH_DATAGRAMS_MAX = 64     # per socket per wake: then tx gets its turn
TX_BATCH_RECORDS_MAX = 256      # per wake: then the sockets get theirs
SOCKADDR_SRC_BYTES = 128        # sockaddr_storage: whatever the kernel hands recvmsg
GRO_RECV_BYTES = 1 << 16        # a GRO train is one IP datagram: at most 65,535 bytes

assert L.C_WORDS == len(COUNTER_NAMES) and COUNTER_NAMES[L.C_SLEEPS] == "sleeps"


def udp_gso_segments(sock: socket.socket) -> int:
    """Most frames one send may carry on this socket: L.GSO_SEGS_MAX where the kernel
    segments UDP (Linux >= 4.18 knows UDP_SEGMENT), else 0 (one send per frame). An older
    kernel would ignore the control message and send the whole train as one datagram,
    so it must not get one."""
    try:
        sock.getsockopt(L.SOL_UDP, L.UDP_SEGMENT)
    except OSError:
        return 0
    return L.GSO_SEGS_MAX


def enable_udp_gro(socks: list[socket.socket]) -> bool:
    """Ask the kernel to hand these sockets trains of same-flow datagrams as one receive
    (UDP_GRO, Linux >= 5.0; the loop splits them, link_loop.py). All or none: the loop has
    one receive buffer, and a train into a buffer sized for one frame would be cut off, so
    where one socket refuses, the others are turned back. True if all have it."""
    done = []
    for sock in socks:
        try:
            sock.setsockopt(L.SOL_UDP, L.UDP_GRO, 1)
        except OSError:
            for s in done:
                s.setsockopt(L.SOL_UDP, L.UDP_GRO, 0)
            return False
        done.append(sock)
    return True


def packed_address(host: str) -> np.ndarray:
    """A host's address as link_loop compares it: 16 bytes, then their length (4 or 16)."""
    raw = packed_host(host)
    slot = np.zeros(L.ADDR_SLOT_BYTES, np.uint8)
    slot[:len(raw)] = np.frombuffer(raw, np.uint8)
    slot[16] = len(raw)
    return slot


def tx_ring_corrupt(ring_name: str, pos: int, off: int, length: int) -> ShmError:
    """What a link loop's RET_TX_CORRUPT raises (this loop's and the secure links')."""
    return ShmError(f"tx ring {ring_name!r}: corrupt record at position {pos} (offset "
                    f"{off}, length {length}); the producer (ring process) wrote outside the "
                    f"ring protocol")


def poll_failed(linknumber: int, err: int) -> OSError:
    """What a link loop's RET_POLL_FAILED raises: a bad fd, a bug."""
    return OSError(err, f"link {linknumber}: poll() on the link's fds failed: "
                        f"{_errno.errorcode.get(err, err)}")


class LinkProcess:
    def __init__(self, spec: LinkSpec, rx_ring: ShmRing, tx_ring: ShmRing,
                 tx_doorbell: Doorbell):
        """Opens and binds the sockets now, so a bad address fails before run()."""
        self.spec = spec
        self._rx_ring, self._tx_ring = rx_ring, tx_ring
        self._doorbell = tx_doorbell
        self._socks = open_link_sockets(spec)
        try:
            self._build(spec, rx_ring)
        except BaseException:
            self._socks.close()
            raise
        self._closed = False

    def _build(self, spec: LinkSpec, rx_ring: ShmRing) -> None:
        limit = spec.rx_limit_bytes
        if rx_ring.max_payload_bytes < limit:
            raise ValueError(
                f"rx ring {rx_ring.name!r} of {rx_ring.capacity_bytes} bytes cannot hold a "
                f"frame of netmtu + 64 = {limit} bytes; use a capacity >= {4 * limit} bytes")
        socks = self._socks
        io = np.zeros(L.IO_WORDS, np.int64)
        io[L.IO_SENDER_FD] = socks.sender.fileno()
        io[L.IO_N_RECV] = len(socks.receivers)
        io[L.IO_RING_WAKE_FD] = -1 if rx_ring.wake_fd is None else rx_ring.wake_fd
        io[L.IO_LIMIT_BYTES] = limit
        io[L.IO_FILTER] = int(spec.block_unlisted_ips)
        io[L.IO_RX_BATCH] = RX_BATCH_DATAGRAMS_MAX
        io[L.IO_TX_BATCH] = TX_BATCH_RECORDS_MAX
        io[L.IO_GSO_SEGS] = udp_gso_segments(socks.sender) if spec.udp_gso else 0
        self._gro = spec.udp_gso and enable_udp_gro([s for s, _m in socks.receivers])
        io[L.IO_RECV_BYTES] = max(limit + 1, GRO_RECV_BYTES) if self._gro else limit + 1
        own = np.zeros(L.ADDR_SLOT_BYTES, np.uint8)
        io[L.IO_OWN_PORT] = -1
        if socks.own_mcast_source is not None:
            own = packed_address(socks.own_mcast_source[0])
            io[L.IO_OWN_PORT] = socks.own_mcast_source[1]
        self._io = io
        self._rx_mcast = np.array([int(m) for _s, m in socks.receivers], np.uint8)
        self._allowed = np.array([packed_address(a) for a, _p in spec.peers.values()],
                                 np.uint8).reshape(-1, L.ADDR_SLOT_BYTES)
        self._own = own
        # destinations: every nodelist member by nodeid, then (udp) the group as node 0
        scope_id = link_scope_id(spec)
        nodes = sorted(spec.peers)
        addrs = [sockaddr(spec.family, *spec.peers[n], scope_id) for n in nodes]
        if spec.transport == "udp":
            nodes.append(0)
            addrs.append(socks.group)
            fanout = [len(nodes) - 1]
        else:
            fanout = [nodes.index(n) for n in spec.multicast_peers()]
        self._dests = np.zeros((len(nodes), L.SOCKADDR_BYTES), np.uint8)
        self._dest_len = np.zeros(len(nodes), np.int64)
        for row, sa in enumerate(addrs):
            raw = sockaddr_bytes(spec.family, sa)
            self._dests[row, :len(raw)] = np.frombuffer(raw, np.uint8)
            self._dest_len[row] = len(raw)
        self._dest_node = np.array(nodes, np.int64)
        self._fanout = np.array(fanout, np.int64)
        self._buf = np.zeros(io[L.IO_RECV_BYTES], np.uint8)
        self._src = np.zeros(SOCKADDR_SRC_BYTES, np.uint8)
        self._rxm = np.zeros(L.RXM_WORDS, np.int64)
        self._cnt = np.zeros(L.C_WORDS, np.int64)
        self._errs = np.zeros((2, L.ERRNO_SLOTS), np.int64)
        self._gso = np.zeros(L.GSO_WORDS, np.int64)
        self._wk = new_waker(rx_ring.wake_fd is not None, rx_ring.capacity_bytes,
                             MCAST_WAKE_DEFER_US)
        self._ts = np.zeros(2, np.int64)
        self._u64 = np.zeros(1, np.uint64)

    def loop_args(self, control_fds) -> tuple:
        """run_link's arguments but the deadline, for these control fds."""
        ctrl = [f if isinstance(f, int) else f.fileno() for f in control_fds]
        pfd = pollfd_array([self._doorbell.fd, *self._socks.fds(), *ctrl])
        self._io[L.IO_N_CTRL] = len(ctrl)
        return (self._io, pfd, self._rx_mcast, self._rx_ring.hdr, self._rx_ring.data,
                self._tx_ring.hdr, self._tx_ring.data, self._buf, self._src, self._rxm,
                self._allowed, self._own, self._dests, self._dest_len, self._dest_node,
                self._fanout, self._cnt, self._errs, self._gso, self._wk, self._ts,
                self._u64)

    def run(self, control) -> None:
        """Move frames until control.poll() returns False; closes the sockets on the way out."""
        args = self.loop_args(control.fds())
        try:
            while control.poll():
                deadline_ns = time.monotonic_ns() + int(control.tick_s * 1e9)
                ret = L.run_link(*args, deadline_ns)
                io = self._io
                if ret == L.RET_TX_CORRUPT:
                    raise tx_ring_corrupt(self._tx_ring.name, io[L.IO_CORRUPT_POS],
                                          io[L.IO_CORRUPT_OFF], io[L.IO_CORRUPT_LEN])
                if ret == L.RET_POLL_FAILED:
                    raise poll_failed(self.spec.linknumber, int(io[L.IO_POLL_ERRNO]))
        finally:
            # the ring views in args must not outlive this call, not even in the frame a
            # traceback keeps: the caller unmaps the rings next
            del args
            self.close()

    def counters(self) -> dict:
        d = {name: int(v) for name, v in zip(COUNTER_NAMES, self._cnt)}
        for direction, row in (("rx", L.ERR_RX), ("tx", L.ERR_TX)):
            for e in np.flatnonzero(self._errs[row]):
                name = _errno.errorcode.get(int(e), str(int(e)))
                d[f"{direction}_error_{name}"] = int(self._errs[row, e])
        d["tx_gso_segments_max"] = int(self._io[L.IO_GSO_SEGS])
        d["gro_receive"] = int(self._gro)
        if self._io[L.IO_GSO_ERRNO]:
            e = int(self._io[L.IO_GSO_ERRNO])
            d["tx_gso_refused_errno"] = _errno.errorcode.get(e, str(e))
        d.update(waker_counters(self._wk))
        d.update({f"socket_{k}_bytes": v for k, v in self._socks.buffer_bytes.items()})
        return d

    def local_addresses(self) -> list[tuple]:
        """Where the sockets are bound (for status output and tests)."""
        return [s.getsockname() for s, _ in self._socks.receivers]

    def close(self) -> None:
        """Close the sockets (the rings themselves are the caller's)."""
        if self._closed:
            return
        self._closed = True
        self._socks.close()


def loopback_spec(transport: str) -> LinkSpec:
    """A one-node link on a free loopback port (the warm-ups' turn)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return LinkSpec(linknumber=0, transport=transport, family=socket.AF_INET,
                    local_nodeid=1, bind_addr="127.0.0.1", port=port,
                    peers={1: ("127.0.0.1", port)})


@contextlib.contextmanager
def scratch_rings(tag: str):
    """(rx ring, tx ring, doorbell) for a warm-up turn; all gone afterwards."""
    rings = []
    try:
        for role in ("rx", "tx"):
            rings.append(ShmRing.create(f"/{tag}.{role}", 1 << 18))
        with Doorbell() as bell:
            yield rings[0], rings[1], bell
    finally:
        for r in rings:
            r.unlink()
            r.close()


def warm_up() -> None:
    """Compile (or load from the cache) the jitted loop with the argument types LinkProcess
    passes it: one turn of a udpu link on loopback over two scratch shm rings."""
    with scratch_rings(f"coroproc-warm.{os.getpid()}") as (rx, tx, bell):
        proc = LinkProcess(loopback_spec("udpu"), rx, tx, bell)
        try:
            L.run_link(*proc.loop_args([]), 0)
        finally:
            proc.close()
