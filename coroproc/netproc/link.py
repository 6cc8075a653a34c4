"""LinkProcess: the main loop of one network process (one link).

Owns the link's sockets and moves frames between them and two shm rings:
socket → rx ring (RxPath, rx.py) and tx ring → socket (TxPath, tx.py). It never
interprets Totem beyond the framing check in rx.py and the frame-type byte that decides
when the ring process is woken (ringwake.py).

Loop: drain every socket (bounded per wake so a flood can't starve tx), drain the tx ring
(bounded), call control.poll(); pay a deferred wake-up of the ring process that fell due
(ringwake.py); if nothing hit a bound, sleep on the tx doorbell with the
socket and control fds as extra fds (Doorbell.wait implements the sleeping-flag protocol
so the ring process only pays an eventfd write when we sleep). The sleep is at most
control.tick_s, so heartbeats and commands are served even on a silent link.

The `control` object (the supervisor's, or control.PipeControl in tests) provides
`tick_s`, `fds() -> list[int]` and `poll() -> bool` (False = stop).
"""
from __future__ import annotations

from coroproc.netproc.counters import Counters
from coroproc.netproc.ringwake import MCAST_WAKE_DEFER_US
from coroproc.netproc.rx import RxPath
from coroproc.netproc.sockets import open_link_sockets
from coroproc.netproc.spec import LinkSpec
from coroproc.netproc.tx import TxPath
from coroproc.shm.doorbell import Doorbell
from coroproc.shm.ring import ShmRing

RX_BATCH_DATAGRAMS_MAX = 64     # per socket per wake: then tx gets its turn
TX_BATCH_RECORDS_MAX = 256      # per wake: then the sockets get theirs


class LinkProcess:
    def __init__(self, spec: LinkSpec, rx_ring: ShmRing, tx_ring: ShmRing,
                 tx_doorbell: Doorbell):
        """Opens and binds the sockets now, so a bad address fails before run()."""
        self.spec = spec
        self._tx_ring = tx_ring
        self._doorbell = tx_doorbell
        self._counters = Counters()
        self._socks = open_link_sockets(spec)
        try:
            self._rx = RxPath(spec, rx_ring, self._counters, self._socks.own_mcast_source,
                              RX_BATCH_DATAGRAMS_MAX, MCAST_WAKE_DEFER_US)
            self._tx = TxPath(spec, tx_ring, self._socks, self._counters,
                              TX_BATCH_RECORDS_MAX)
        except BaseException:
            self._socks.close()
            raise
        self._closed = False

    def run(self, control) -> None:
        """Move frames until control.poll() returns False; closes the sockets on the way out."""
        receivers = self._socks.receivers
        extra_fds = self._socks.fds() + list(control.fds())
        rx, tx, c = self._rx, self._tx, self._counters
        try:
            while control.poll():
                more = False
                for sock, is_mcast in receivers:
                    more |= rx.drain(sock, is_mcast)
                more |= tx.drain()
                wait_s = rx.waker.settle(control.tick_s)
                if not more:
                    c.sleeps += 1
                    self._doorbell.wait([self._tx_ring], wait_s, extra_fds=extra_fds)
        finally:
            self.close()

    def counters(self) -> dict:
        d = self._counters.as_dict()
        d.update(self._rx.waker.counters())
        d.update({f"socket_{k}_bytes": v for k, v in self._socks.buffer_bytes.items()})
        return d

    def local_addresses(self) -> list[tuple]:
        """Where the sockets are bound (for status output and tests)."""
        return [s.getsockname() for s, _ in self._socks.receivers]

    def close(self) -> None:
        """Close sockets and drop views of the rings (the rings themselves are the caller's)."""
        if self._closed:
            return
        self._closed = True
        self._tx.close()
        self._rx.close()
        self._socks.close()
