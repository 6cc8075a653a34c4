"""This process's flight recorder: its last log lines, whatever the logging thresholds.

Every Log of the process (logsys.py) hands each line to RECORDER before it filters:
Corosync's blackbox takes every priority down to trace, so the lines a dump shows are
the ones that led up to it even with debug off. (A caller that skips building a message
because `Log.enabled` says no target wants it records nothing either.) The lines go to a
byte ring of RECORDER_BYTES (logring.py); older lines go first.

A process starts with a private ring. A child of the supervisor writes to the shared
ring the supervisor mapped for it before the fork (`attach`), so the supervisor reads
its lines whether the child is running, stopped or dead (supervisor/flight_data.py); a
restarted child appends to the same ring after its predecessor's lines. Any other fork
starts over with a private ring of its own: the parent's lines are the parent's.
"""
from __future__ import annotations

import mmap
import os
import time

from . import logring

RECORDER_BYTES = 1 << 20          # per process; Corosync's one ring is 8 MiB for all


def shared_ring(size_bytes: int = RECORDER_BYTES) -> mmap.mmap:
    """A formatted ring in shared anonymous memory: mapped before a fork, the parent and
    the child see the same bytes."""
    buf = mmap.mmap(-1, logring.HEADER_BYTES + size_bytes)    # MAP_SHARED | MAP_ANONYMOUS
    logring.init(buf)
    return buf


def private_ring(size_bytes: int = RECORDER_BYTES) -> bytearray:
    buf = bytearray(logring.HEADER_BYTES + size_bytes)
    logring.init(buf)
    return buf


class Recorder:
    def __init__(self, size_bytes: int = RECORDER_BYTES):
        self.size_bytes = size_bytes
        self.enabled = True
        self.ring = logring.LogRing(private_ring(size_bytes))
        self.pid = os.getpid()

    def add(self, level: int, subsys: str, message: str) -> None:
        if self.enabled:
            self.ring.add(time.time_ns(), self.pid, level, subsys, message)

    def attach(self, buf) -> None:
        """Write to `buf` (a ring from shared_ring) from now on."""
        self.ring = logring.LogRing(buf)
        self.pid = os.getpid()

    def restart_private(self) -> None:
        """After a fork: a private ring of our own (the parent's stays the parent's)."""
        self.ring = logring.LogRing(private_ring(self.size_bytes))
        self.pid = os.getpid()

    def export(self) -> list[tuple[int, int, str, str, int]]:
        """The kept lines: (time_ns, level, subsys, message, pid), oldest first."""
        return logring.read(self.ring.buf)

    def clear(self) -> None:
        self.ring.clear()


RECORDER = Recorder()
os.register_at_fork(after_in_child=RECORDER.restart_private)
