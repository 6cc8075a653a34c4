"""Carrying out a schedule's faults on a live netns cluster of coroproc daemons.

This file owns turning a `Fault` into actions (kill -9 + restart, engine kill, SIGSTOP +
SIGCONT, partition / loss / link cut + heal) on a `netns.harness.Cluster` and its
`CoroprocNode`s, and undoing whatever is still in force when a run ends early
(`Injector.undo_all`: SIGCONT every stopped node, heal the network).

The harness writes `pause` / `resume` into a stopped node's event log (docs/event-log.md)
while the node is stopped, so the lines cannot interleave with the node's own; a killed
daemon's `crash` line comes from `CoroprocNode.kill`.
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import orjson

from . import schedule as S

START, END = "start", "end"


@dataclass(frozen=True)
class Action:
    t_s: float
    fault_no: int
    phase: str          # START or END
    fault: S.Fault

    def describe(self) -> str:
        if self.phase == START:
            return self.fault.what()
        if self.fault.kind == S.DAEMON_KILL:
            return f"restart daemon {self.fault.nodes[0]}"
        if self.fault.kind == S.SIGSTOP:
            return f"SIGCONT node {self.fault.nodes[0]}"
        return f"heal ({self.fault.kind})"


def actions_of(sched: S.Schedule) -> list[Action]:
    """Every fault's start and (unless it is instantaneous) end, in time order; at equal
    times an end comes first, so a heal never removes a fault that starts with it."""
    out = []
    for i, f in enumerate(sched.faults):
        out.append(Action(f.t_s, i, START, f))
        if f.kind != S.ENGINE_KILL:
            out.append(Action(f.end_s, i, END, f))
    return sorted(out, key=lambda a: (a.t_s, a.phase == START, a.fault_no))


def _engine_pid(supervisor_pid: int, engine: str) -> int | None:
    """The pid of the child titled `coroproc: <engine>` (setproctitle rewrites cmdline)."""
    try:
        with open(f"/proc/{supervisor_pid}/task/{supervisor_pid}/children") as f:
            kids = [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return None
    for pid in kids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().split(b"\0")[0].decode(errors="replace").strip()
        except FileNotFoundError:
            continue
        if title == f"coroproc: {engine}":
            return pid
    return None


class Injector:
    def __init__(self, net, daemons: dict):
        self.net = net
        self.daemons = daemons
        self.stopped: set[int] = set()      # nodes under SIGSTOP

    def _log_event(self, node: int, ev: str) -> None:
        with open(self.daemons[node].event_log_path, "ab") as f:
            f.write(orjson.dumps({"ev": ev, "node": node,
                                  "t_us": time.monotonic_ns() // 1000}) + b"\n")

    def apply(self, a: Action) -> str:
        """Carry out one action; returns a note for the run's record ("" if as planned)."""
        f = a.fault
        node = f.nodes[0] if f.nodes else 0
        if f.kind == S.DAEMON_KILL:
            if a.phase == START:
                self.daemons[node].kill()
            else:
                self.daemons[node].start()
        elif f.kind == S.ENGINE_KILL:
            return self._kill_engine(node, f.engine)
        elif f.kind == S.SIGSTOP:
            pgid = self.daemons[node].proc.pid   # the daemon leads its own session
            if a.phase == START:
                os.killpg(pgid, signal.SIGSTOP)
                self.stopped.add(node)
                self._log_event(node, "pause")
            else:
                self._log_event(node, "resume")
                os.killpg(pgid, signal.SIGCONT)
                self.stopped.discard(node)
        elif a.phase == END:
            self.net.heal()
        else:
            if f.kind == S.PARTITION:
                rest = [n for n in self.daemons if n not in f.nodes]
                self.net.partition([list(f.nodes), rest])
            elif f.kind == S.LOSS:
                self.net.loss(node, f.loss_pct)
            elif f.kind == S.LINK_CUT:
                self.net.cut_link(f.link)
            else:
                raise ValueError(f"unknown fault kind {f.kind!r}")
        return ""

    def _kill_engine(self, node: int, engine: str) -> str:
        # The supervisor restarts a dead engine after a backoff: look a little while for
        # the current incarnation rather than fail the run on a transient gap.
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            pid = _engine_pid(self.daemons[node].proc.pid, engine)
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                return ""
            time.sleep(0.1)
        return f"skipped: no running '{engine}' engine on node {node}"

    def undo_all(self) -> None:
        """Leave no node stopped and no packet rule behind (run ended, maybe by an error)."""
        for node in sorted(self.stopped):
            try:
                os.killpg(self.daemons[node].proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.stopped.clear()
        self.net.heal()
