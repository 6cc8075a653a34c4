"""Transmit path of a link: tx ring → socket(s).

A tx record is rtype FRAME with payload [u32 LE dest_nodeid][Totem frame]:
* dest 0 = "multicast": udpu sends one unicast to every nodelist member except this node
  (Corosync's totemudpu mcast_sendmsg); udp sends one datagram to the group.
* dest = a nodeid: one unicast to that node, this node included (a one-member ring sends
  its token to itself and it must come back through the socket, as in Corosync).
* unknown dest: counted (tx_unknown_dest), dropped.

Frames are sent straight out of the shared mapping (no copy) and the batch is released
after it went out, so the ring process can't overwrite a frame the kernel is still
reading. Send errors are counted per errno and never fatal: UDP is lossy and Totem
retransmits.

The plain links do all of this in their jitted loop (jit/link_loop.py); the helpers here
serve the secure links (secure_link.py), which send through their codec.
"""
from __future__ import annotations

import struct

from coroproc.netproc.counters import Counters
from coroproc.netproc.jit.link_loop import DEST_PREFIX_BYTES, RTYPE_FRAME
from coroproc.shm.errors import ShmError
from coroproc.shm.ring import (
    PEEK_CORRUPT,
    PEEK_EMPTY,
    ShmRing,
    ring_peek,
    ring_release,
    ring_tail,
)

_DEST = struct.Struct("<I")


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
