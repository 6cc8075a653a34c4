"""system.sched_rr, system.priority and system.move_to_root_cgroup → what the token's
path and the supervisor get (supervisor/scheduling.py): the decision for each answer of
the kernel, and the tries on a thread of their own leaving the calling thread as it was.
The cgroup move itself runs against the kernel in tests/process/test_move_to_root_cgroup.py."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from coroproc.config.model import SchedulingConfig
from coroproc.supervisor import sched_slice
from coroproc.supervisor.cgroup import Move
from coroproc.supervisor.scheduling import (FALLBACK_NICE, RR_PRIORITY, PathScheduling,
                                            decide, of_process, try_nice, try_rr,
                                            try_slice)


def Policy(**kw) -> SchedulingConfig:
    """A config about the policy alone: no slice request (tested on its own below)."""
    return SchedulingConfig(slice_us=0, **kw)


def _granted(_value: int) -> None:
    return None


def _refused(why: str):
    return lambda _value: why


def _in_root_already() -> Move:
    return Move(False, None)


MOVED = Move(True, ("notice", "Moved from cgroup /system.slice/corosync.service to the root "
                              "cgroup (cgroup v1, …; system.move_to_root_cgroup)"))


def test_sched_rr_is_off_unless_asked_for():
    assert decide(Policy(), rr=_refused("must not be tried"),
                  renice=_refused("must not be tried")) == decide(
        Policy(sched_rr=False), rr=_granted, renice=_granted)
    assert decide(Policy(), rr=_granted, renice=_granted).path == PathScheduling()


def test_sched_rr_granted_puts_the_path_at_the_highest_rr_priority():
    d = decide(Policy(sched_rr=True), rr=_granted, renice=_refused("renice must not be tried"))
    assert d.path == PathScheduling(rr_priority=RR_PRIORITY) and RR_PRIORITY == 99
    assert d.supervisor_nice is None
    assert d.notes == (("notice", "The ring and link processes run SCHED_RR at priority 99 "
                                  "(system.sched_rr)"),)


def test_sched_rr_ignores_system_priority_as_corosync_does():
    d = decide(Policy(sched_rr=True, nice=10), rr=_granted, renice=_refused("no"))
    assert d.path.rr_priority == 99 and d.supervisor_nice is None


def test_sched_rr_refused_falls_back_to_nice_minus_20_and_says_why():
    tried = []

    def renice(nice):
        tried.append(nice)

    d = decide(Policy(sched_rr=True), rr=_refused("Operation not permitted"),
               renice=renice, to_root=_in_root_already)
    assert tried == [FALLBACK_NICE] and d.path == PathScheduling(nice=-20)
    assert d.notes == (("warning", "Could not set SCHED_RR at priority 99: Operation not "
                                   "permitted (system.sched_rr); the ring and link processes "
                                   "run at nice -20 instead"),)


def test_both_refused_leaves_the_path_as_inherited():
    d = decide(Policy(sched_rr=True), rr=_refused("Operation not permitted"),
               renice=_refused("Permission denied"), to_root=_in_root_already)
    assert d.path == PathScheduling() and d.path.describe() == "the default priority"
    assert d.notes[0][0] == "warning" and "nor nice -20: Permission denied" in d.notes[0][1]


def test_sched_rr_no_sets_system_priority_on_the_supervisor_only_when_given():
    assert decide(Policy(sched_rr=False), rr=_refused("x"),
                  renice=_refused("y")).notes == ()
    d = decide(Policy(sched_rr=False, nice=5), rr=_refused("must not be tried"),
               renice=_granted)
    assert d.path == PathScheduling() and d.supervisor_nice == 5
    assert d.notes == (("notice", "Every process runs at nice 5 (system.priority)"),)
    d = decide(Policy(sched_rr=False, nice=-20), rr=_granted,
               renice=_refused("Permission denied"))
    assert d.supervisor_nice is None and d.path.rr_priority == 0
    assert d.notes == (("warning", "Could not set priority -20: Permission denied "
                                   "(system.priority); running at the default priority"),)


def _moves(log: list[str], result: Move = MOVED):
    def to_root() -> Move:
        log.append("move")
        return result
    return to_root


def _rr_after(log: list[str], granted_after_move: bool):
    def rr(_priority: int) -> str | None:
        log.append("rr")
        return None if granted_after_move and "move" in log else "Operation not permitted"
    return rr


def test_auto_moves_to_the_root_cgroup_only_when_sched_rr_is_refused_then_tries_again():
    log: list[str] = []
    d = decide(Policy(sched_rr=True), rr=_rr_after(log, True),
               renice=_refused("renice must not be tried"), to_root=_moves(log))
    assert log == ["rr", "move", "rr"] and d.path.rr_priority == 99
    assert d.notes == (MOVED.note, ("notice", "The ring and link processes run SCHED_RR at "
                                              "priority 99 (system.sched_rr)"))
    log.clear()
    d = decide(Policy(sched_rr=True), rr=_granted, renice=_granted,
               to_root=_moves(log))
    assert log == [] and d.path.rr_priority == 99          # granted: no move
    d = decide(Policy(sched_rr=False, nice=5), rr=_granted, renice=_granted,
               to_root=_moves(log))
    assert log == [] and d.supervisor_nice == 5            # no SCHED_RR asked: no move


def test_auto_does_not_try_again_when_nothing_moved():
    log: list[str] = []
    failed = Move(False, ("warning", "Could not move to the root cgroup (x): Permission "
                                     "denied (system.move_to_root_cgroup)"))
    d = decide(Policy(sched_rr=True), rr=_rr_after(log, True), renice=_granted,
               to_root=_moves(log, failed))
    assert log == ["rr", "move"] and d.path == PathScheduling(nice=FALLBACK_NICE)
    assert d.notes[0] == failed.note and d.notes[1][1].startswith(
        "Could not set SCHED_RR at priority 99: Operation not permitted")


def test_yes_moves_first_whatever_the_policy_and_no_never_moves():
    log: list[str] = []
    d = decide(Policy(sched_rr=False, move_to_root_cgroup="yes"), rr=_granted,
               renice=_granted, to_root=_moves(log))
    assert log == ["move"] and d.notes == (MOVED.note,) and d.path == PathScheduling()
    log.clear()
    d = decide(Policy(sched_rr=True, move_to_root_cgroup="yes"),
               rr=_rr_after(log, True), renice=_granted, to_root=_moves(log))
    assert log == ["move", "rr"] and d.path.rr_priority == 99   # one move, before the try
    log.clear()
    d = decide(Policy(sched_rr=True, move_to_root_cgroup="no"),
               rr=_rr_after(log, True), renice=_granted, to_root=_moves(log))
    assert log == ["rr"] and d.path == PathScheduling(nice=FALLBACK_NICE)


@pytest.mark.skipif(os.geteuid() != 0, reason="SCHED_RR needs CAP_SYS_NICE")
def test_the_real_tries_leave_the_calling_thread_as_it_was():
    before = (os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0))
    assert try_rr(RR_PRIORITY) is None and try_nice(-20) is None
    assert (os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="SCHED_RR needs CAP_SYS_NICE")
def test_of_process_reads_what_the_kernel_has():
    p = subprocess.Popen(["sleep", "60"])
    try:
        assert of_process(p.pid) == ""
        os.sched_setscheduler(p.pid, os.SCHED_RR, os.sched_param(99))
        assert of_process(p.pid) == "SCHED_RR 99"
        os.sched_setscheduler(p.pid, os.SCHED_OTHER, os.sched_param(0))
        os.setpriority(os.PRIO_PROCESS, p.pid, 7)
        assert of_process(p.pid) == "nice 7"
    finally:
        p.kill()
        p.wait()
    assert of_process(p.pid) == ""              # gone


@pytest.mark.skipif(os.geteuid() != 0, reason="drops a capability root has")
def test_without_cap_sys_nice_the_kernel_refuses_and_the_tries_say_so():
    code = ("from coroproc.supervisor.scheduling import try_nice, try_rr\n"
            "print(try_rr(99)); print(try_nice(-20))")
    out = subprocess.run(["setpriv", "--inh-caps=-sys_nice", "--bounding-set=-sys_nice",
                          sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["Operation not permitted", "Permission denied"]


def test_slice_granted_is_asked_for_by_the_supervisor_and_said_once():
    d = decide(SchedulingConfig(), rr=_refused("no rr"), renice=_refused("no nice"),
               slicer=_granted)
    assert d.slice_us == 100 and d.path == PathScheduling() and d.supervisor_nice is None
    assert d.notes == (("notice", "Every process asks for a 100 us scheduler slice "
                                  "(coroproc.sched_slice_us)"),)


def test_slice_refused_runs_with_the_default_and_says_why():
    d = decide(SchedulingConfig(slice_us=250), slicer=_refused("Operation not permitted"))
    assert d.slice_us == 0
    assert d.notes == (("warning", "Could not ask for a 250 us scheduler slice: Operation "
                                   "not permitted (coroproc.sched_slice_us); running with "
                                   "the kernel's default slice"),)


def test_slice_zero_is_not_tried():
    d = decide(SchedulingConfig(slice_us=0), slicer=_refused("must not be tried"))
    assert d.slice_us == 0 and d.notes == ()


def test_slice_and_sched_rr_are_decided_together():
    d = decide(SchedulingConfig(sched_rr=True), rr=_granted, slicer=_granted)
    assert d.slice_us == 100 and d.path.rr_priority == RR_PRIORITY
    assert [level for level, _text in d.notes] == ["notice", "notice"]


def test_try_slice_changes_a_thread_of_its_own_only():
    """On a kernel with custom slices (6.12+) the try is granted and this thread keeps
    its slice; on an older one the try says why, and this thread is unchanged too."""
    before = sched_slice.slice_ns()
    why = try_slice(150)
    assert sched_slice.slice_ns() == before
    if before is None:
        assert why is not None and "6.12" in why
    else:
        assert why is None, why


def test_request_reaches_the_kernel_in_a_child_and_keeps_its_nice():
    code = ("import os; from coroproc.supervisor import sched_slice as s; "
            "os.nice(5); s.request(300); print(s.slice_ns(), os.nice(0))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    why = try_slice(300)
    if why is not None:
        pytest.skip(why)
    assert out == ["300000", "5"]
