"""Transmit path of a link: tx ring → socket(s).

A tx record is rtype FRAME with payload [u32 LE dest_nodeid][Totem frame]:
* dest 0 = "multicast": udpu sends one unicast to every nodelist member except this node
  (Corosync's totemudpu mcast_sendmsg); udp sends one datagram to the group.
* dest = a nodeid: one unicast to that node, this node included (a one-member ring sends
  its token to itself and it must come back through the socket, as in Corosync).
* unknown dest: counted (tx_unknown_dest), dropped.

Frames are sent straight out of the shared mapping (a memoryview slice per datagram, no
copy) and the batch is released after it went out, so the ring process can't overwrite a
frame the kernel is still reading. Send errors are counted per errno and never fatal:
UDP is lossy and Totem retransmits.
"""
from __future__ import annotations

import struct

from coroproc.netproc.addresses import sockaddr
from coroproc.netproc.counters import Counters
from coroproc.netproc.rx import RTYPE_FRAME
from coroproc.netproc.sockets import LinkSockets, link_scope_id
from coroproc.netproc.spec import LinkSpec
from coroproc.shm.errors import ShmError
from coroproc.shm.ring import (
    PEEK_CORRUPT,
    PEEK_EMPTY,
    ShmRing,
    ring_peek,
    ring_release,
    ring_tail,
)

DEST_PREFIX_BYTES = 4
_DEST = struct.Struct("<I")


class TxPath:
    def __init__(self, spec: LinkSpec, ring: ShmRing, socks: LinkSockets, counters: Counters,
                 batch_records_max: int):
        assert batch_records_max >= 1
        self._ring = ring
        self._sock = socks.sender
        self._c = counters
        self._batch_max = batch_records_max
        self._mv = memoryview(ring.data)
        scope_id = link_scope_id(spec)
        self._unicast = {nodeid: sockaddr(spec.family, addr, port, scope_id)
                         for nodeid, (addr, port) in spec.peers.items()}
        if spec.transport == "udp":
            self._fanout = (socks.group,)
        else:
            self._fanout = tuple(self._unicast[n] for n in spec.multicast_peers())

    def drain(self) -> bool:
        """Send up to one batch; True if the batch bound stopped us (more may wait)."""
        more, records = drain_tx_ring(self._ring, self._batch_max, self._send_record)
        self._c.tx_frames += records
        return more

    def _send_record(self, off: int, n: int, rtype: int) -> None:
        c = self._c
        record = split_tx_record(self._mv, off, n, rtype, c)
        if record is None:
            return
        dest, frame = record
        if dest == 0:
            targets = self._fanout
        else:
            addr = self._unicast.get(dest)
            if addr is None:
                c.tx_unknown_dest += 1
                return
            targets = (addr,)
        sock = self._sock
        for addr in targets:
            try:
                sent = sock.sendto(frame, addr)
            except OSError as e:   # ENOBUFS, EHOSTUNREACH, ECONNREFUSED, EAGAIN (full sndbuf)
                c.count_errno("tx", e.errno)
                continue
            c.tx_datagrams += 1
            c.tx_bytes += sent

    def close(self) -> None:
        # The memoryview pins the shm mapping; release it before the ring is closed.
        self._mv.release()


def split_tx_record(mv: memoryview, off: int, n: int, rtype: int, counters: Counters):
    """(dest nodeid, Totem frame view) of one tx record, or None (counted tx_bad_record)
    when it is not a FRAME record with a destination prefix and a frame."""
    if rtype != RTYPE_FRAME or n <= DEST_PREFIX_BYTES:
        counters.tx_bad_record += 1
        return None
    return _DEST.unpack_from(mv, off)[0], mv[off + DEST_PREFIX_BYTES:off + n]


def drain_tx_ring(ring: ShmRing, batch_max: int, send_record) -> tuple[bool, int]:
    """Hand up to batch_max tx records to send_record(off, n, rtype), then release them
    (after they went out: the kernel reads the frames straight from the mapping).
    Returns (the bound stopped us, records handled). Shared by the udpu/udp and the
    secure link processes."""
    hdr, data = ring.hdr, ring.data
    pos = ring_tail(hdr)
    records = nbytes = 0
    more = True
    for _ in range(batch_max):
        st, off, n, rtype, _flags, nxt = ring_peek(hdr, data, pos)
        if st == PEEK_EMPTY:
            more = False
            break
        if st == PEEK_CORRUPT:
            raise ShmError(
                f"tx ring {ring.name!r}: corrupt record at position {pos} (offset {off}, "
                f"length {n}); the producer (ring process) wrote outside the ring protocol")
        send_record(off, n, rtype)
        records += 1
        nbytes += n
        pos = nxt
    if records:
        ring_release(hdr, pos, records, nbytes)
    return more, records
