"""The children's counters, gathered when someone asks for them.

Who asks: cmap's stats map (only while a client reads or tracks stats keys), the
operator's `coroproc-ctl status`, SIGUSR2's dump. Heartbeats carried every child's
counters once a second instead, and building them is the costly part of a beat (150-250
µs of Python in the ring process, more in an engine with clients), spent with nobody
reading and, on the token's path, while the token or a delivery waited.

A gather sends {"op": "report"} to every live child that said hello and runs its
callbacks once each answered ({"op": "report", "counters": {...}}, stored by the
supervisor) or REPORT_WAIT_S passed: a child that did not answer in time (stopped, busy,
just restarted) keeps the counters of its last report. A request made while a gather is
on its way joins it.
"""
from __future__ import annotations

from typing import Callable

# a loaded 2-vCPU machine can leave a process unscheduled for a good part of a second;
# cmap defers its client's request meanwhile (engineprocs/cmap/stats_map.py)
REPORT_WAIT_S = 0.5


class Reports:
    def __init__(self, children: dict, send: Callable[[str, dict], bool]):
        self._children = children           # role -> Child (children.py), the supervisor's
        self._send = send                   # ControlServer.send(role, msg) -> sent
        self._waiting: set[str] = set()
        self._then: list[Callable[[], None]] = []
        self._deadline_s = 0.0
        self.late = 0                       # rounds that ended by the deadline

    @property
    def due_s(self) -> float | None:
        """When the gather on its way gives up waiting (CLOCK_MONOTONIC); None: none."""
        return self._deadline_s if self._then else None

    def gather(self, now_s: float, then: Callable[[], None]) -> None:
        """Ask every live child for its counters; `then()` once they are in."""
        self._then.append(then)
        if len(self._then) > 1:
            return
        self._waiting = {role for role, c in self._children.items()
                         if c.alive and c.hello and self._send(role, {"op": "report"})}
        self._deadline_s = now_s + REPORT_WAIT_S
        if not self._waiting:
            self._finish()

    def answered(self, role: str) -> None:
        """`role` reported, or died: it is not waited for any more."""
        self._waiting.discard(role)
        if self._then and not self._waiting:
            self._finish()

    def tick(self, now_s: float) -> None:
        if self._then and now_s >= self._deadline_s:
            self.late += 1
            self._finish()

    def _finish(self) -> None:
        then, self._then = self._then, []
        self._waiting = set()
        for cb in then:
            cb()
