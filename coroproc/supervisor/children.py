"""Forking and restarting the node's children (ring, network, engine processes).

A child is forked from the supervisor after the numba kernels are loaded, so it starts
in milliseconds and inherits the rings' doorbell descriptors. It asks the kernel for
SIGKILL when the supervisor dies (PR_SET_PDEATHSIG): a node whose supervisor was killed
must vanish as a whole, never keep half a node in the ring. A crashed child is restarted
with exponential backoff, reset once it has stayed up for STABLE_S — or once it had said
hello and stayed up HEALTHY_S: a child that was serving is not crash-looping, and a
per-engine restart must bring a killed engine back within a second every time.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

import setproctitle

from coroproc.blackbox.recorder import RECORDER

from . import beats
from .placement import keep_to
from .scheduling import PathScheduling, apply_to_self

PR_SET_PDEATHSIG = 1
BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 10.0
STABLE_S = 30.0
HEALTHY_S = 1.0     # up this long after its hello: its next crash restarts after BACKOFF_FIRST_S
# Before its hello a child may still be loading; after it, HEARTBEAT_DEAD_S applies.
HELLO_TIMEOUT_S = 120.0

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass
class Child:
    role: str                       # control identity: "ring", "net0", "load"
    title: str                      # shown in ps: "coroproc: ring"
    target: Callable[[], int]       # runs in the child; returns the exit status
    pid: int = 0
    started_at: float = 0.0
    hello: bool = False
    last_heard: float = 0.0
    backoff_s: float = BACKOFF_FIRST_S
    restart_at: float = 0.0         # when a dead child may be started again
    restarts: int = 0
    counters: dict = field(default_factory=dict)
    cpus: frozenset | None = None   # run on these CPUs only (placement.py); None: any
    sched: PathScheduling | None = None  # the token path's policy (scheduling.py); None: inherit
    # the ring its flight recorder writes to, mapped by the supervisor before the first
    # fork and kept across restarts (blackbox/recorder.py); None: a private one
    log_ring: object | None = None
    # the supervisor's heartbeat board and its slot there (beats.py); None: no beats
    beat_board: object | None = None
    beat_slot: int = 0

    @property
    def alive(self) -> bool:
        return self.pid > 0


def _child_setup(child: Child, supervisor_pid: int) -> None:
    if child.log_ring is not None:
        RECORDER.attach(child.log_ring)
    if child.beat_board is not None:
        beats.attach(child.beat_board, child.beat_slot)
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGHUP, signal.SIGUSR2, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    # Ctrl-C in a foreground terminal reaches the whole process group: only the
    # supervisor decides how the node stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != supervisor_pid:
        os._exit(1)  # the supervisor died between fork and prctl
    setproctitle.setproctitle(child.title)
    keep_to(child.cpus, child.title)
    apply_to_self(child.sched, child.title)


def spawn(child: Child) -> int:
    """Fork `child`; returns its pid in the supervisor (never returns in the child)."""
    parent = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        child.pid = pid
        child.started_at = time.monotonic()
        child.hello = False
        child.last_heard = child.started_at
        return pid
    status = 1
    try:
        _child_setup(child, parent)
        status = int(child.target() or 0)
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else 1
    except BaseException:
        trace = traceback.format_exc()
        sys.stderr.write(trace)
        # the end of this child's flight record, at crit: the supervisor's crash dump
        # (supervisor/flight_data.py) shows what led here and where it ended
        for line in trace.rstrip().splitlines():
            RECORDER.add(2, "MAIN", line)
        status = 1
    finally:
        try:
            sys.stderr.flush()
        finally:
            os._exit(status)


def reaped(child: Child, now: float) -> None:
    """Bookkeeping after waitpid reported the child dead: when may it start again."""
    lived_s = now - child.started_at
    if lived_s >= STABLE_S or (child.hello and lived_s >= HEALTHY_S):
        child.backoff_s = BACKOFF_FIRST_S
    child.pid = 0
    child.restart_at = now + child.backoff_s
    child.backoff_s = min(child.backoff_s * 2, BACKOFF_MAX_S)


def describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"killed by {name}"
    return f"exited with status {os.WEXITSTATUS(status)}"
