"""This process's flight recorder: its last log lines, whatever the logging thresholds.

Every Log of the process (logsys.py) hands each line to RECORDER before it filters:
Corosync's blackbox takes every priority down to trace, so the lines a dump shows are
the ones that led up to it even with debug off. (A caller that skips building a message
because `Log.enabled` says no target wants it records nothing either.) The recorder
keeps at most RECORDER_BYTES of message text; older lines go first. A forked child
starts empty: the supervisor's lines are the supervisor's.
"""
from __future__ import annotations

import collections
import os
import time

RECORDER_BYTES = 1 << 20          # per process; Corosync's one ring is 8 MiB for all
RECORD_OVERHEAD_BYTES = 64        # what a kept line costs beyond its text, roughly


class Recorder:
    def __init__(self, budget_bytes: int = RECORDER_BYTES):
        self.budget_bytes = budget_bytes
        self.enabled = True
        self.records: collections.deque = collections.deque()
        self.bytes = 0
        self.dropped = 0              # lines pushed out by newer ones

    def add(self, level: int, subsys: str, message: str) -> None:
        if not self.enabled:
            return
        self.records.append((time.time_ns(), level, subsys, message))
        self.bytes += len(message) + RECORD_OVERHEAD_BYTES
        while self.bytes > self.budget_bytes and self.records:
            _t, _l, _s, old = self.records.popleft()
            self.bytes -= len(old) + RECORD_OVERHEAD_BYTES
            self.dropped += 1

    def export(self) -> list:
        """The kept lines as JSON-ready rows: [time_ns, level, subsys, message, pid]."""
        pid = os.getpid()
        return [[t, level, subsys, message, pid] for t, level, subsys, message in self.records]

    def clear(self) -> None:
        self.records.clear()
        self.bytes = 0
        self.dropped = 0


RECORDER = Recorder()
os.register_at_fork(after_in_child=RECORDER.clear)
