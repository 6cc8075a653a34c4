"""system.move_to_root_cgroup with real one-node daemons started inside a cpu cgroup of
their own, as systemd starts a unit: on a kernel with realtime group scheduling
(CONFIG_RT_GROUP_SCHED) a new cgroup has no realtime budget (cpu.rt_runtime_us 0) and
refuses SCHED_RR even to root. `auto` (the default) moves the node to the root cgroup
and gets SCHED_RR; `no` stays and falls back to nice -20; `yes` moves whatever the
policy; a move the kernel refuses is logged with the file (supervisor/cgroup.py)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest

from coroproc.localcluster import LocalCluster
from coroproc.supervisor.cgroup import CPU_V1_DIR, cgroup_of, realtime_hierarchy
from coroproc.supervisor.scheduling import of_process

HIERARCHY = realtime_hierarchy()
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="creating cgroups and SCHED_RR need root"),
    pytest.mark.skipif(HIERARCHY is None or HIERARCHY.version != 1,
                       reason="needs the cgroup v1 cpu controller with realtime group "
                              "scheduling (CONFIG_RT_GROUP_SCHED): cpu.rt_runtime_us"),
]

CHAIN_TITLES = {"coroproc: ring", "coroproc: net link0"}
PROCS_FILE = f"{CPU_V1_DIR}/cgroup.procs"


@pytest.fixture
def unit_cgroup():
    """A cpu cgroup like a systemd unit's (no realtime budget); removed afterwards."""
    path = os.path.join(CPU_V1_DIR, f"coroproc-test-{uuid.uuid4().hex[:10]}")
    os.mkdir(path)
    try:
        with open(os.path.join(path, "cpu.rt_runtime_us")) as f:
            assert f.read().strip() == "0"
        yield path
    finally:
        end = time.monotonic() + 30
        while True:
            try:
                os.rmdir(path)
                break
            except OSError:                     # EBUSY until the last process has exited
                assert time.monotonic() < end, f"{path} still holds processes"
                time.sleep(0.1)


def _inside(cgroup: str) -> tuple[str, ...]:
    """A wrapper that puts the daemon into `cgroup` and execs it (same pid)."""
    return ("sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec "$@"', "sh")


def _start(tmp_path, cgroup: str, system: str) -> LocalCluster:
    c = LocalCluster(tmp_path, 1, extra_sections=f"system {{\n{system}}}\n")
    c.start(1, wrap=_inside(cgroup))
    c.wait_members([1], [1], timeout_s=120)
    return c


def test_auto_moves_a_node_refused_sched_rr_to_the_root_cgroup(tmp_path, unit_cgroup):
    c = _start(tmp_path, unit_cgroup, "    sched_rr: yes\n")
    try:
        name = "/" + os.path.basename(unit_cgroup)
        c.wait_for_log(1, f"Moved from cgroup {name} to the root cgroup (cgroup v1, "
                          f"{PROCS_FILE}; system.move_to_root_cgroup)")
        c.wait_for_log(1, "The ring and link processes run SCHED_RR at priority 99")
        procs = c.processes(1)
        assert len(procs) >= 5
        assert {t: cgroup_of(pid, 1) for t, pid in procs.items()} == {t: "/" for t in procs}
        assert {t: of_process(procs[t]) for t in CHAIN_TITLES} == {
            t: "SCHED_RR 99" for t in CHAIN_TITLES}
    finally:
        c.stop_all()


def test_no_stays_in_the_unit_cgroup_and_falls_back_to_nice(tmp_path, unit_cgroup):
    c = _start(tmp_path, unit_cgroup, "    sched_rr: yes\n    move_to_root_cgroup: no\n")
    try:
        c.wait_for_log(1, "Could not set SCHED_RR at priority 99: Operation not permitted "
                          "(system.sched_rr); the ring and link processes run at nice -20 "
                          "instead")
        procs = c.processes(1)
        name = "/" + os.path.basename(unit_cgroup)
        assert {t: cgroup_of(pid, 1) for t, pid in procs.items()} == {t: name for t in procs}
        assert {t: of_process(procs[t]) for t in CHAIN_TITLES} == {
            t: "nice -20" for t in CHAIN_TITLES}
        assert not any("root cgroup" in ln for ln in c.log_lines(1))
    finally:
        c.stop_all()


def test_yes_moves_whatever_the_policy(tmp_path, unit_cgroup):
    c = _start(tmp_path, unit_cgroup, "    move_to_root_cgroup: yes\n")
    try:
        c.wait_for_log(1, "to the root cgroup (cgroup v1")
        procs = c.processes(1)
        assert {t: cgroup_of(pid, 1) for t, pid in procs.items()} == {t: "/" for t in procs}
        assert {of_process(pid) for pid in procs.values()} == {""}    # SCHED_OTHER, nice 0
    finally:
        c.stop_all()


def test_a_move_the_kernel_refuses_is_a_warning_naming_the_file(unit_cgroup):
    # as nobody: the root cgroup's cgroup.procs is root's, mode 0644
    code = ("from coroproc.supervisor.cgroup import move_to_root\n"
            "m = move_to_root(); print(m.moved); print(m.note[0]); print(m.note[1])")
    out = subprocess.run([*_inside(unit_cgroup), "setpriv", "--reuid=65534", "--regid=65534",
                          "--clear-groups", sys.executable, "-c", code],
                         capture_output=True, text=True, timeout=60,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "False", "warning", f"Could not move to the root cgroup ({PROCS_FILE}): Permission "
                            "denied (system.move_to_root_cgroup)"]
