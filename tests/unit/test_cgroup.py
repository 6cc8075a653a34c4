"""supervisor/cgroup.py's reading side: which hierarchy carries a realtime budget
(Corosync 3.1.7's files, tried in its order) and a process's cgroup from /proc. The move
itself runs against the kernel in tests/process/test_move_to_root_cgroup.py."""
from __future__ import annotations

from coroproc.supervisor.cgroup import Hierarchy, cgroup_of, realtime_hierarchy


def _touch(path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")


def test_the_v1_cpu_controller_with_a_realtime_budget_comes_first(tmp_path):
    v1, v2 = tmp_path / "cpu", tmp_path
    assert realtime_hierarchy(str(v1), str(v2)) is None      # neither: nothing to move
    _touch(v2 / "cgroup.procs")
    assert realtime_hierarchy(str(v1), str(v2)) == Hierarchy(str(v2 / "cgroup.procs"), 2)
    _touch(v1 / "cgroup.procs")                            # v1 cpu without RT group sched
    assert realtime_hierarchy(str(v1), str(v2)).version == 2
    _touch(v1 / "cpu.rt_runtime_us")
    assert realtime_hierarchy(str(v1), str(v2)) == Hierarchy(str(v1 / "cgroup.procs"), 1)


def test_cgroup_of_a_process_that_is_gone_is_none():
    # the real paths, read for live processes, are checked against a cgroup the test
    # makes in tests/process/test_move_to_root_cgroup.py
    assert cgroup_of(2 ** 22 + 7, 1) is None and cgroup_of(2 ** 22 + 7, 2) is None
