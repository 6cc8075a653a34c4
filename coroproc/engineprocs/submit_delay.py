"""SubmitDelay: bound how long a submission waits in the engine's submit ring, for flow
control.

A flooding client fills whatever queue is in front of the token. Bounded by bytes alone,
that queue turns into delay: 3 MiB of 1 KiB messages is 0.3 s on a 3-node ring that
orders 10,000 messages/s, and ten times less on one that orders 100,000. So the host
also raises the clients' flow-control flag while the submit ring holds more than
`target_ms` of what the ring process takes from it (the bytes rule stays, for messages
that are large rather than many). The ring process takes from the submit ring only what
the core's queue needs for the next token visits (ringproc/pump.py, intake_bytes), so
the submit ring's backlog is the node's queue, in the engine's sight.

Requests the clients already sent but the engine has not read yet wait too (libqb's
socket mode connects both ends of the request channel, so the kernel bounds them by the
client's send buffer alone: ~1 MB, ~90 ms of a 3-node flood). The host counts them from
each connection's shared `sent` counter and adds them to the backlog (`unread_bytes`).

The bound is a backlog in bytes, `limit_bytes` = drain rate × target, not the age of the
oldest record: the engine takes requests several times faster than a loaded ring orders
them, so by the time a record has waited `target_ms` the ring holds several times that
(measured: a 20 ms target on the oldest record's age gave 110 ms on 3 nodes). The host
checks the limit after every push as well as on every loop turn.

The drain rate is learnt from what the ring process took in RATE_WINDOW_S windows:
* backlog at both ends of the window: the ring was the bottleneck; the rate goes into
  a moving average;
* backlog at the start only: the ring took all there was, so it is at least that fast
  (the average is raised to it, never lowered);
* no backlog at the start: it says nothing.
A rate learnt while the flag throttled the clients could understate the ring and keep
the flag up ever sooner; FLOOR_BYTES of backlog is always allowed, so a throttled ring
still shows its real speed: it keeps a backlog across a window, or (when the floor is
below the ring's intake, as with knet's large frames) takes all of it, and then the
estimate can only rise. Before the first measurement the limit is the floor.

Hysteresis: on at `limit_bytes`, off again below half of it.
"""
from __future__ import annotations

RATE_WINDOW_S = 0.005
RATE_WEIGHT = 0.25          # of the newest window in the moving average
FLOOR_BYTES = 128 * 1024    # always allowed (the ring's intake: 75 kB udpu, 256 KiB knet)


class SubmitDelay:
    def __init__(self, target_ms: float):
        if not target_ms > 0:
            raise ValueError(f"fc_queue_delay_ms={target_ms}: must be > 0")
        self.target_s = target_ms / 1000.0
        self.active = False
        self.activations = 0
        self.rate_bytes_per_s = 0.0
        self.limit_bytes = FLOOR_BYTES
        self._mark: tuple[float, int, int] | None = None   # window start: time, tail, backlog

    def reset(self) -> None:
        """The ring process (re)started: its speed is to be learnt again."""
        self.active = False
        self.rate_bytes_per_s = 0.0
        self.limit_bytes = FLOOR_BYTES
        self._mark = None

    def _learn(self, tail_pos: int, backlog: int, now_s: float) -> None:
        mark = self._mark
        if mark is None:
            self._mark = (now_s, tail_pos, backlog)
            return
        t0, tail0, backlog0 = mark
        if now_s - t0 < RATE_WINDOW_S:
            return
        self._mark = (now_s, tail_pos, backlog)
        if backlog0 <= 0:
            return
        rate = (tail_pos - tail0) / (now_s - t0)
        if backlog > 0:
            old = self.rate_bytes_per_s
            rate = rate if old == 0 else old + (rate - old) * RATE_WEIGHT
        elif rate <= self.rate_bytes_per_s:
            return
        self.rate_bytes_per_s = rate
        self.limit_bytes = max(FLOOR_BYTES, int(rate * self.target_s))

    def update(self, head_pos: int, tail_pos: int, now_s: float, unread_bytes: int = 0) -> bool:
        """Whether the backlog (the ring's, plus requests not read yet) asks for flow
        control now (with hysteresis)."""
        backlog = head_pos - tail_pos
        self._learn(tail_pos, backlog, now_s)
        backlog += unread_bytes
        if self.active:
            self.active = backlog >= self.limit_bytes // 2
        elif backlog >= self.limit_bytes:
            self.active = True
            self.activations += 1
        return self.active

    def recheck_s(self) -> float | None:
        """While active, how soon the host should look again (its deliveries usually wake
        it sooner; this covers a ring that delivers nothing of ours)."""
        return RATE_WINDOW_S if self.active else None
