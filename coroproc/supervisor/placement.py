"""Which CPU the token's path runs on: the ring process and the node's link processes.

A token visit is a chain of hand-offs — the link process takes the frame off the socket
and wakes the ring process, which orders and answers through the link process — so the
chain runs one step at a time whatever it is given. Spread over CPUs, each hand-off may
wake a task on another CPU: an inter-processor interrupt and, on a VM, a vCPU's exit from
halt, and the scheduler may queue the woken task behind a kernel thread on a busy CPU
while another idles. Kept on one CPU, a wake-up is a local runqueue insert and the
woken process runs as soon as the waker sleeps, which is at once. Engines and the
supervisor keep the whole set: the CPG engine's per-client work runs beside the chain.
Measured in docs/executive.md "CPU placement".
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterable

AUTO = "auto"
NONE = "none"


class PlacementError(RuntimeError):
    """coroproc.ring_cpu names a CPU this process may not run on."""


def ring_cpus(setting: str, allowed: set[int] | None = None) -> frozenset[int] | None:
    """The CPUs for the ring and link processes (None: leave them where they are).

    `setting` is coroproc.ring_cpu as loaded: "auto" (the highest-numbered CPU of the
    allowed set, when there are two or more — CPU 0 is where boot-time interrupt
    affinity and unbound kernel work tend to land), "none", or a CPU number, which must
    be in the allowed set (`allowed` defaults to this process's, which systemd's
    CPUAffinity= and cpusets narrow)."""
    if setting == NONE:
        return None
    allowed = set(os.sched_getaffinity(0)) if allowed is None else set(allowed)
    if setting == AUTO:
        return frozenset({max(allowed)}) if len(allowed) >= 2 else None
    cpu = int(setting)
    if cpu not in allowed:
        raise PlacementError(f"coroproc.ring_cpu: CPU {cpu} is not one this node may run on "
                             f"(allowed: {cpu_list(allowed)}); use one of those, auto or none")
    return frozenset({cpu})


def cpu_list(cpus: Iterable[int]) -> str:
    """0-3,6 style, as /proc/*/status Cpus_allowed_list writes it."""
    out, run = [], []
    for cpu in sorted(cpus):
        if run and cpu == run[-1] + 1:
            run.append(cpu)
            continue
        if run:
            out.append(_span(run))
        run = [cpu]
    if run:
        out.append(_span(run))
    return ",".join(out)


def _span(run: list[int]) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}"


def keep_to(cpus: frozenset[int] | None, title: str) -> None:
    """In a freshly forked child: run on `cpus` from now on (its threads inherit it). A
    set the kernel refuses now — the cpuset changed or the CPU went offline since the
    node started — is reported on stderr and the child runs unpinned: slower hand-offs
    are better than a child that cannot start."""
    if cpus is None:
        return
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as exc:
        print(f"{title}: could not keep to CPU {cpu_list(cpus)} "
              f"(coroproc.ring_cpu): {exc.strerror}; running on any CPU", file=sys.stderr)
