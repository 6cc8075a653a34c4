"""Heartbeats in shared memory: a child shows it is alive by writing the time.

The supervisor finds a child that is alive but stuck (waitpid only finds dead ones) by
its heartbeat going stale for `coroproc { heartbeat_timeout_ms }`. The beats used to be
ZeroMQ messages, and each one woke the child's ZeroMQ I/O thread, the supervisor's and
the supervisor: traced at 1,000 msgs/s on 3 nodes sharing 2 vCPUs, a node's beat was
1-3 ms of CPU at one instant, three times a second, and the deliveries that met it waited
(docs/executive.md "Heartbeats"). Now the supervisor maps one board of u64 slots before
its first fork, a slot per child; a child stores CLOCK_MONOTONIC nanoseconds in its
slot when a beat is due (supervisor/control.py ControlClient.poll), and the supervisor
reads the slots on its own once-a-second tick. A beat is a store: nobody else wakes.
"""
from __future__ import annotations

import mmap
import struct
import time

_SLOT = struct.Struct("<Q")
# a child beats this many times per heartbeat timeout: three missed beats in a row are
# still no reason to kill it (a loaded 2-vCPU host stalls processes for a while)
BEATS_PER_TIMEOUT = 4


class BeatBoard:
    """The supervisor's board: slot i is child i's last beat (0: none yet)."""

    def __init__(self, slots: int):
        self.buf = mmap.mmap(-1, max(slots, 1) * _SLOT.size)   # MAP_SHARED | MAP_ANONYMOUS

    def last_s(self, slot: int) -> float:
        """The child's last beat in CLOCK_MONOTONIC seconds (0.0: it never beat)."""
        return _SLOT.unpack_from(self.buf, slot * _SLOT.size)[0] / 1e9


_board: BeatBoard | None = None
_offset = 0


def attach(board: BeatBoard, slot: int) -> None:
    """In a freshly forked child: beats go to `slot` of the board from now on."""
    global _board, _offset
    _board, _offset = board, slot * _SLOT.size


def beat() -> None:
    """This process is alive now (nothing when it is not a supervisor's child)."""
    if _board is not None:
        _SLOT.pack_into(_board.buf, _offset, time.monotonic_ns())


def beat_every_s(heartbeat_timeout_ms: int) -> float:
    return heartbeat_timeout_ms / 1000 / BEATS_PER_TIMEOUT
