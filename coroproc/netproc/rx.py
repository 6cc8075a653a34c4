"""Receive path of a link: socket → checks → rx ring.

Per datagram: one recvfrom_into a preallocated buffer, a few byte compares, one jitted
ring_push straight from that buffer (no bytes object, no numpy view per datagram). The
checks are a framing check only — Totem itself is the ring process's business:

* source IP not in the nodelist (block_unlisted_ips)  → rx_unlisted
* our own multicast looped back (mcast_recv socket)     → rx_own_mcast
* shorter than the Totem header                         → rx_runt
* longer than netmtu + 64                               → rx_oversize
* first two bytes are not the Totem magic               → rx_foreign
* rx ring full                                          → rx_ring_full (UDP is lossy and
  Totem retransmits, but a drop is never silent)

The ring process is woken as ringwake.RingWaker decides: at once for any frame, except
that on a busy link an mcast's wake-up waits for the token behind it.
"""
from __future__ import annotations

import socket

import numpy as np

from coroproc.netproc.addresses import SourceFilter, canonical_host
from coroproc.netproc.counters import Counters
from coroproc.netproc.ringwake import RingWaker
from coroproc.netproc.spec import LinkSpec
from coroproc.ringproc import wire
from coroproc.shm.ring import (
    PUSH_FULL,
    PUSH_TOO_LARGE,
    ShmRing,
    ring_push,
)

RTYPE_FRAME = 1
# The magic is a little-endian u16 at offset 0 (wire.O_MAGIC): compare the two bytes.
MAGIC_BYTE0 = wire.MAGIC & 0xFF
MAGIC_BYTE1 = wire.MAGIC >> 8
assert wire.O_MAGIC == 0


class RxPath:
    def __init__(self, spec: LinkSpec, ring: ShmRing, counters: Counters,
                 own_mcast_source: tuple | None, batch_datagrams_max: int,
                 mcast_wake_defer_us: int = 0):
        assert batch_datagrams_max >= 1
        self._ring = ring
        self.waker = RingWaker(ring, mcast_wake_defer_us)
        self._c = counters
        self._limit_bytes = spec.rx_limit_bytes
        # One byte more than the limit: a datagram that fills it is oversize, so no
        # MSG_TRUNC dance is needed to tell "exactly the limit" from "cut off".
        self._buf = bytearray(self._limit_bytes + 1)
        self._arr = np.frombuffer(self._buf, dtype=np.uint8)
        self._batch_max = batch_datagrams_max
        self._filter = (SourceFilter(a for a, _ in spec.peers.values())
                        if spec.block_unlisted_ips else None)
        if own_mcast_source is not None:
            self._own_host = canonical_host(own_mcast_source[0])
            self._own_port = own_mcast_source[1]
        else:
            self._own_host, self._own_port = None, -1
        if ring.max_payload_bytes < self._limit_bytes:
            raise ValueError(
                f"rx ring {ring.name!r} of {ring.capacity_bytes} bytes cannot hold a frame of "
                f"netmtu + 64 = {self._limit_bytes} bytes; use a capacity >= "
                f"{4 * self._limit_bytes} bytes")

    def drain(self, sock: socket.socket, is_mcast_recv: bool) -> bool:
        """Receive until EAGAIN or the batch bound; True if the bound stopped us (more may wait)."""
        c = self._c
        buf, arr = self._buf, self._arr
        hdr, data = self._ring.hdr, self._ring.data
        waker = self.waker
        flt = self._filter
        limit = self._limit_bytes
        runt = wire.HDR_BYTES
        frames = nbytes = 0
        for _ in range(self._batch_max):
            try:
                n, src = sock.recvfrom_into(buf)
            except BlockingIOError:
                break
            except OSError as e:
                # e.g. ECONNREFUSED reported from an earlier ICMP; never fatal
                c.count_errno("rx", e.errno)
                continue
            if flt is not None and not flt.allowed(src[0]):
                c.rx_unlisted += 1
                continue
            if is_mcast_recv and src[1] == self._own_port and self._is_own(src[0]):
                c.rx_own_mcast += 1
                continue
            if n < runt:
                c.rx_runt += 1
                continue
            if n > limit:
                c.rx_oversize += 1
                continue
            if buf[0] != MAGIC_BYTE0 or buf[1] != MAGIC_BYTE1:
                c.rx_foreign += 1
                continue
            rc = ring_push(hdr, data, RTYPE_FRAME, 0, arr, 0, n)
            if rc == PUSH_FULL:
                c.rx_ring_full += 1
                continue
            assert rc != PUSH_TOO_LARGE, "checked against ring capacity at start-up"
            waker.pushed(rc, buf, n)
            frames += 1
            nbytes += n
        else:
            c.rx_frames += frames
            c.rx_bytes += nbytes
            waker.note_drain(frames)
            return True
        c.rx_frames += frames
        c.rx_bytes += nbytes
        waker.note_drain(frames)
        return False

    def _is_own(self, host: str) -> bool:
        try:
            return canonical_host(host) == self._own_host
        except ValueError:
            return False

    def close(self) -> None:
        # The numpy view pins the bytearray's buffer; drop it before anyone resizes/frees.
        self._arr = None

