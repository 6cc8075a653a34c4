"""RingWaker: when a link process wakes the ring process for a frame it pushed.

Any frame that finds the ring process asleep (the push returned PUSH_OK_WAKE) used to
wake it at once. For an mcast frame that buys nothing the token does not bring a moment
later: the sender passes the token right after its mcasts, every mcast is followed by a
token within one rotation, and the ring process takes the mcasts from the rx ring in
order before it looks at that token. So an mcast's wake-up is owed, not paid, and the
next frame of any other type — the token, a join, a commit token, a merge detect, a
token-hold cancel — pays it: one wake-up of the ring process per token instead of one
per burst of mcasts. On a 3-node ring flooding 1 KiB messages this took the receivers'
ring processes from ~2,000 to ~900 wake-ups/s (docs/executive.md).

Only while the link is busy — its wake-ups bring BUSY_FRAMES_PER_DRAIN datagrams or more
on average — is anything deferred. On a lightly loaded ring (one message per token
rotation) the saving is one wake-up per message, a few per cent of the node's CPU, and
the price is a token hop of delivery latency on the receivers (+300 µs at 1,000 msgs/s on
3 nodes here), so there each mcast wakes the ring process at once, as before.

Two bounds keep the debt small, whatever arrives:
* bytes: after a quarter of the rx ring's capacity the wake-up is paid, so the ring
  never fills behind a sleeping consumer;
* time: the link process pays an owed wake-up `defer_us` after it was incurred (its
  loop sleeps no longer than that while it owes one), for mcasts with no token behind
  them: a foreign ring's mcasts (which start a merge) or a token lost on the way. The
  ring process's own timers (token loss, retransmit) do not depend on it either way.

The producer side of the ring's wake handshake has already cleared the sleeping flag
when the push said PUSH_OK_WAKE: later pushes say PUSH_OK, so the debt must be
remembered here until paid.

The policy itself is jitted (jit/waker.py), so the plain links' jitted loop
(jit/link_loop.py) runs it with no Python in between; RingWaker is the secure links'
Python face of it.
"""
from __future__ import annotations

import os
import time

from coroproc.netproc.jit.waker import (
    W_DEFERRED,
    W_OWED_SINCE_NS,
    W_PAID_LATE,
    new_waker,
    waker_note_drain,
    waker_paid,
    waker_pushed,
    waker_settle,
)
from coroproc.ringproc import wire
from coroproc.shm.ring import PUSH_OK_WAKE, ShmRing

O_TYPE = wire.O_TYPE
# how long an mcast's wake-up of the ring process may wait for a token (the link
# processes' default): far above a token hop, far below any Totem timer
MCAST_WAKE_DEFER_US = 10_000


def waker_counters(wk) -> dict:
    return {"ring_wakes_deferred": int(wk[W_DEFERRED]),
            "ring_wakes_paid_late": int(wk[W_PAID_LATE])}


class RingWaker:
    def __init__(self, ring: ShmRing, defer_us: int):
        self._fd = ring.wake_fd
        self.wk = new_waker(self._fd is not None, ring.capacity_bytes, defer_us)

    @property
    def owed_since_ns(self) -> int:
        """When the wake-up now owed was incurred (monotonic ns); 0: nothing owed."""
        return int(self.wk[W_OWED_SINCE_NS])

    def note_drain(self, frames: int) -> None:
        """After each receive drain: how many frames it pushed."""
        if frames:
            waker_note_drain(self.wk, frames)

    def pushed(self, rc: int, frame, n: int) -> None:
        """After a successful push of an n-byte frame with result rc."""
        if rc != PUSH_OK_WAKE and not self.wk[W_OWED_SINCE_NS]:
            return           # the common case, without a call into compiled code
        if waker_pushed(self.wk, rc, frame[O_TYPE], n, time.monotonic_ns()):
            self.pay()

    def settle(self, wait_s: float) -> float:
        """Before the link process sleeps: pay a wake-up that fell due; returns the sleep
        bounded by when an owed one falls due."""
        if not self.wk[W_OWED_SINCE_NS]:
            return wait_s
        pay, wait_ns = waker_settle(self.wk, time.monotonic_ns(), int(wait_s * 1e9))
        if pay:
            self.pay()
        return wait_ns / 1e9

    def counters(self) -> dict:
        return waker_counters(self.wk)

    def pay(self) -> None:
        os.eventfd_write(self._fd, 1)
        waker_paid(self.wk)
