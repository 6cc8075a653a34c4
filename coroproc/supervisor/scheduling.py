"""What the node asks of the kernel's scheduler: system.sched_rr and system.priority.

Corosync runs its one process SCHED_RR at the highest priority (`system.sched_rr: yes`,
its default), so that however busy the host is the token keeps moving: a node whose
daemon is not scheduled for a token timeout is declared dead by the others. With
`sched_rr: yes` coroproc gives that to the processes on the token's path — the ring
process and the link processes — and to nothing else. The engines and the supervisor
stay SCHED_OTHER: their work grows with what clients ask (a CPG flood keeps the CPG
engine busy all the time), and at SCHED_RR that work would take the host's CPUs from its
other tasks.

coroproc's default is `sched_rr: no`, where Corosync's is yes. A ring process at
SCHED_RR preempts the CPG engine on its CPU at every wake-up, so the engine hands over
one submission at a time instead of a batch: a one-node 1 KiB flood fell from 140-150k
to 80-100k messages/s on a 2-vCPU host (docs/executive.md "Scheduling"), while the
latency it buys on a quiet ring was within these VMs' noise.

When the kernel refuses SCHED_RR in a cgroup without a realtime budget, the supervisor
moves itself to the root cgroup and tries again (`system.move_to_root_cgroup: auto`,
Corosync's default; `yes` moves at start whatever the policy; supervisor/cgroup.py).
Refused still (no CAP_SYS_NICE and no RLIMIT_RTPRIO), the node says so once and runs the
path at nice -20 instead, as Corosync falls back to; if that is refused too, at the
inherited priority.
`sched_rr: no` leaves every process SCHED_OTHER at `system.priority` (max = nice -20,
min = 19, or a nice value; unset: unchanged), set on the supervisor before it forks, so
that every child inherits it.

The supervisor tries each setting on a short-lived thread of its own first (Linux
schedules threads one by one, so the try changes nothing else) and hands the children
only what the kernel granted; a child applies it to itself before its first instruction
of work, so the threads it starts later inherit it too.
"""
from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

from coroproc.config.model import SchedulingConfig
from coroproc.supervisor import sched_slice
from coroproc.supervisor.cgroup import Move, move_to_root

RR_PRIORITY = os.sched_get_priority_max(os.SCHED_RR)   # 99 on Linux, what Corosync takes
FALLBACK_NICE = -20                                     # Corosync's when SCHED_RR is refused


@dataclass(frozen=True)
class PathScheduling:
    """How the ring and link processes run: SCHED_RR at rr_priority (> 0), else at `nice`
    (None: as inherited from the supervisor)."""

    rr_priority: int = 0
    nice: int | None = None

    def describe(self) -> str:
        if self.rr_priority:
            return f"SCHED_RR at priority {self.rr_priority}"
        return f"nice {self.nice}" if self.nice is not None else "the default priority"


@dataclass(frozen=True)
class Decision:
    path: PathScheduling
    supervisor_nice: int | None        # set on the supervisor itself (children inherit it)
    notes: tuple[tuple[str, str], ...]  # (level, text) for the log: notice / warning
    slice_us: int = 0                  # asked for by the supervisor (inherited); 0: none


def _on_a_thread(fn: Callable[[], None]) -> str | None:
    """Run fn on a new thread of this process; the OSError's text if it failed, else None."""
    failed: list[str] = []

    def run() -> None:
        try:
            fn()
        except OSError as exc:
            failed.append(exc.strerror or str(exc))

    worker = threading.Thread(target=run, name="coroproc-sched-try")
    worker.start()
    worker.join()
    return failed[0] if failed else None


def try_rr(priority: int) -> str | None:
    return _on_a_thread(lambda: os.sched_setscheduler(0, os.SCHED_RR,
                                                      os.sched_param(priority)))


def try_nice(nice: int) -> str | None:
    # PRIO_PROCESS 0 is the calling thread: Linux keeps a nice value per thread
    return _on_a_thread(lambda: os.setpriority(os.PRIO_PROCESS, 0, nice))


def try_slice(slice_us: int) -> str | None:
    def ask() -> None:
        sched_slice.request(slice_us)
        if sched_slice.slice_ns() != slice_us * 1000:   # taken, and ignored
            raise OSError(0, "this kernel keeps no slice per task (custom slices came "
                             "with Linux 6.12)")
    return _on_a_thread(ask)


def decide(cfg: SchedulingConfig, rr: Callable[[int], str | None] = try_rr,
           renice: Callable[[int], str | None] = try_nice,
           to_root: Callable[[], Move] = move_to_root,
           slicer: Callable[[int], str | None] = try_slice) -> Decision:
    """What the path and the supervisor get, from the config and what the kernel grants
    (rr, renice and slicer try a setting and return why it was refused, or None; to_root
    moves the supervisor to the root cgroup, supervisor/cgroup.py)."""
    notes: list[tuple[str, str]] = []
    slice_us = 0
    if cfg.slice_us:
        why = slicer(cfg.slice_us)
        if why is None:
            slice_us = cfg.slice_us
            notes.append(("notice", f"Every process asks for a {slice_us} us scheduler "
                                    "slice (coroproc.sched_slice_us)"))
        else:
            notes.append(("warning", f"Could not ask for a {cfg.slice_us} us scheduler "
                                     f"slice: {why} (coroproc.sched_slice_us); running "
                                     "with the kernel's default slice"))
    path, nice = _policy(cfg, rr, renice, to_root, notes)
    return Decision(path, nice, tuple(notes), slice_us)


def _policy(cfg: SchedulingConfig, rr: Callable[[int], str | None],
            renice: Callable[[int], str | None], to_root: Callable[[], Move],
            notes: list[tuple[str, str]]) -> tuple[PathScheduling, int | None]:
    """(the path's scheduling, the supervisor's nice) for system.sched_rr, priority and
    move_to_root_cgroup; what the log should say goes to notes."""

    def moved() -> bool:
        move = to_root()
        if move.note is not None:
            notes.append(move.note)
        return move.moved

    if cfg.move_to_root_cgroup == "yes":
        moved()
    if not cfg.sched_rr:
        if cfg.nice is None:
            return PathScheduling(), None
        why = renice(cfg.nice)
        if why is None:
            notes.append(("notice", f"Every process runs at nice {cfg.nice} (system.priority)"))
            return PathScheduling(), cfg.nice
        notes.append(("warning", f"Could not set priority {cfg.nice}: {why} "
                                 "(system.priority); running at the default priority"))
        return PathScheduling(), None
    why = rr(RR_PRIORITY)
    # Corosync's auto: a cgroup without a realtime budget refuses SCHED_RR even to root
    if why is not None and cfg.move_to_root_cgroup == "auto" and moved():
        why = rr(RR_PRIORITY)
    if why is None:
        notes.append(("notice", f"The ring and link processes run SCHED_RR at priority "
                                f"{RR_PRIORITY} (system.sched_rr)"))
        return PathScheduling(rr_priority=RR_PRIORITY), None
    refused = f"Could not set SCHED_RR at priority {RR_PRIORITY}: {why} (system.sched_rr)"
    why_nice = renice(FALLBACK_NICE)
    if why_nice is None:
        notes.append(("warning", f"{refused}; the ring and link processes run at nice "
                                 f"{FALLBACK_NICE} instead"))
        return PathScheduling(nice=FALLBACK_NICE), None
    notes.append(("warning", f"{refused}, nor nice {FALLBACK_NICE}: {why_nice}; the ring "
                             "and link processes run at the default priority"))
    return PathScheduling(), None


def apply_to_supervisor(decision: Decision) -> None:
    """Before the first fork: the nice value and the slice every child inherits (the
    slice after the nice: sched_setattr sets both, and keeps the nice it is given)."""
    if decision.supervisor_nice is not None:
        os.setpriority(os.PRIO_PROCESS, 0, decision.supervisor_nice)
    if decision.slice_us:
        sched_slice.request(decision.slice_us)


def apply_to_self(path: PathScheduling | None, title: str) -> None:
    """In a freshly forked ring or link process. The supervisor tried the same setting
    before; a refusal now (the node's limits changed since) is reported on stderr and the
    child runs as it is: a slower token is better than a child that cannot start."""
    if path is None:
        return
    try:
        if path.rr_priority:
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(path.rr_priority))
        elif path.nice is not None:
            os.setpriority(os.PRIO_PROCESS, 0, path.nice)
    except OSError as exc:
        print(f"{title}: could not run at {path.describe()} (system.sched_rr): "
              f"{exc.strerror}; running as the supervisor does", file=sys.stderr)


def of_process(pid: int) -> str:
    """A process's policy as the kernel has it now: "SCHED_RR 99", "nice -20", "" for
    SCHED_OTHER at nice 0 (and for a process that is gone)."""
    try:
        policy = os.sched_getscheduler(pid)
        if policy in (os.SCHED_RR, os.SCHED_FIFO):
            name = "SCHED_RR" if policy == os.SCHED_RR else "SCHED_FIFO"
            return f"{name} {os.sched_getparam(pid).sched_priority}"
        nice = os.getpriority(os.PRIO_PROCESS, pid)
    except OSError:
        return ""
    return f"nice {nice}" if nice else ""
