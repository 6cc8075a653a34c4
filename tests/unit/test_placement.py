"""coroproc.ring_cpu: which CPU the ring and link processes get, and what a forked child
does with it (supervisor/placement.py)."""
from __future__ import annotations

import os
import sys

import pytest

from coroproc.supervisor.placement import PlacementError, cpu_list, keep_to, ring_cpus


def test_auto_takes_the_highest_allowed_cpu_when_there_are_two_or_more():
    assert ring_cpus("auto", {0, 1}) == {1}
    assert ring_cpus("auto", {0, 3, 5}) == {5}
    assert ring_cpus("auto", {2}) is None           # one CPU: nothing to keep together


def test_none_leaves_every_child_where_the_scheduler_puts_it():
    assert ring_cpus("none", {0, 1}) is None


def test_a_named_cpu_must_be_one_the_node_may_run_on():
    assert ring_cpus("0", {0, 1}) == {0}
    with pytest.raises(PlacementError) as info:
        ring_cpus("7", {0, 1, 2, 4})
    msg = str(info.value)
    assert "coroproc.ring_cpu: CPU 7" in msg and "allowed: 0-2,4" in msg


def test_cpu_list_writes_ranges_as_the_kernel_does():
    assert cpu_list({0}) == "0"
    assert cpu_list({0, 1, 2, 3, 6, 8, 9}) == "0-3,6,8-9"


def _in_child(fn) -> tuple[str, str]:
    """Run fn in a forked child; returns its Cpus_allowed_list after fn and its stderr."""
    r, w = os.pipe()
    er, ew = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            sys.stderr = open(ew, "w", closefd=False)    # pytest holds fd 2's object
            fn()
            sys.stderr.flush()
            with open("/proc/self/status") as f:
                line = next(ln for ln in f if ln.startswith("Cpus_allowed_list:"))
            os.write(w, line.split(":", 1)[1].strip().encode())
        finally:
            os._exit(0)
    os.close(w)
    os.close(ew)
    out = os.read(r, 4096).decode()
    err = os.read(er, 4096).decode()
    os.waitpid(pid, 0)
    os.close(r)
    os.close(er)
    return out, err


def test_a_child_keeps_to_its_cpu_and_its_threads_inherit_it():
    allowed = os.sched_getaffinity(0)
    cpu = min(allowed)
    out, err = _in_child(lambda: keep_to(frozenset({cpu}), "coroproc: ring"))
    assert (out, err) == (str(cpu), "")
    out, _ = _in_child(lambda: keep_to(None, "coroproc: ring"))
    assert out == cpu_list(allowed)             # None: left alone
    assert os.sched_getaffinity(0) == allowed        # the parent is untouched


def test_a_cpu_the_kernel_refuses_later_is_reported_and_the_child_runs_anywhere():
    """The CPU was allowed when the node started; a cpuset change took it away before a
    restart: the restarted child says so and runs unpinned rather than crash-looping."""
    allowed = os.sched_getaffinity(0)
    out, err = _in_child(lambda: keep_to(frozenset({8191}), "coroproc: net link0"))
    assert out == cpu_list(allowed)
    assert "coroproc: net link0: could not keep to CPU 8191 (coroproc.ring_cpu)" in err
    assert "running on any CPU" in err
