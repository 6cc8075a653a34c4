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
"""
from __future__ import annotations

import os
import time

from coroproc.ringproc import wire
from coroproc.shm.ring import PUSH_OK_WAKE, ShmRing

O_TYPE, T_MCAST = wire.O_TYPE, wire.T_MCAST
# how long an mcast's wake-up of the ring process may wait for a token (the link
# processes' default): far above a token hop, far below any Totem timer
MCAST_WAKE_DEFER_US = 10_000
# a link is busy while its wake-ups bring this many datagrams on average (1 / 8 weight)
BUSY_FRAMES_PER_DRAIN = 2.0


class RingWaker:
    def __init__(self, ring: ShmRing, defer_us: int):
        assert defer_us >= 0
        self._fd = ring.wake_fd
        self.owed_since_ns = 0        # 0: nothing owed
        self._owed_bytes = 0
        self._owed_bytes_max = ring.capacity_bytes // 4
        self._defer_ns = int(defer_us) * 1000
        self.deferred = 0              # counters: wake-ups owed, and paid late
        self.paid_late = 0
        self.frames_per_drain = 1.0    # moving average over drains that got any

    def note_drain(self, frames: int) -> None:
        """After each receive drain: how many frames it pushed."""
        if frames:
            self.frames_per_drain += (frames - self.frames_per_drain) / 8

    def pushed(self, rc: int, frame, n: int) -> None:
        """After a successful push of an n-byte frame with result rc."""
        if self._fd is None or (rc != PUSH_OK_WAKE and not self.owed_since_ns):
            return
        if (frame[O_TYPE] == T_MCAST and self._defer_ns
                and self.frames_per_drain >= BUSY_FRAMES_PER_DRAIN):
            if not self.owed_since_ns:
                self.owed_since_ns = time.monotonic_ns()
                self.deferred += 1
            self._owed_bytes += n
            if self._owed_bytes <= self._owed_bytes_max:
                return
        self.pay()

    def settle(self, wait_s: float) -> float:
        """Before the link process sleeps: pay a wake-up that fell due; returns the sleep
        bounded by when an owed one falls due."""
        if not self.owed_since_ns:
            return wait_s
        due_s = (self.owed_since_ns + self._defer_ns - time.monotonic_ns()) / 1e9
        if due_s <= 0:
            self.paid_late += 1
            self.pay()
            return wait_s
        return min(wait_s, due_s)

    def counters(self) -> dict:
        return {"ring_wakes_deferred": self.deferred, "ring_wakes_paid_late": self.paid_late}

    def pay(self) -> None:
        os.eventfd_write(self._fd, 1)
        self.owed_since_ns = 0
        self._owed_bytes = 0
