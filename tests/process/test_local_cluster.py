"""Real daemons on loopback: ring formation, failures of whole nodes and of single processes,
clean shutdown — and the EVS checker over the event logs the daemons' load engines wrote."""
from __future__ import annotations

import os
import signal
import time

import pytest

from coroproc.shm.names import node_segments
from coroproc.sim.checker import check_safety

from coroproc.localcluster import LocalCluster

pytestmark = pytest.mark.skipif(os.geteuid() != 0 and not os.path.exists("/dev/shm"),
                                reason="needs /dev/shm")


@pytest.fixture
def cluster(tmp_path):
    made = []

    def make(n, **kw):
        c = LocalCluster(tmp_path, n, **kw)
        made.append(c)
        return c
    yield make
    for c in made:
        children = [pid for i, p in c.procs.items() if p.poll() is None for pid in c.child_pids(i)]
        c.stop_all()
        assert _wait_gone(children) == [], "a node's child process outlived the node"
        for i in c.addrs:
            assert node_segments(c.cluster, i) == [], f"node {i} left shm segments behind"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pids, timeout_s=20.0) -> list[int]:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        left = [p for p in pids if _alive(p)]
        if not left:
            return []
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


def _evs_ok(c: LocalCluster) -> None:
    violations = check_safety(c.event_logs())
    assert violations == [], "\n".join(str(v) for v in violations[:10])


def test_three_nodes_kill_restart_and_evs(cluster):
    c = cluster(3)
    c.start_all()
    c.wait_members([1, 2, 3], [1, 2, 3], timeout_s=120)
    time.sleep(2)  # steady load in the full ring
    mark = c.mark()
    c.kill(3)
    took_s = c.wait_members([1, 2], [1, 2], since=mark)
    print(f"kill -9 of node 3 -> new configuration on nodes 1,2 after {took_s * 1000:.0f} ms "
          f"(token {c.token_ms} ms, 3 nodes)")
    # the survivors say the node failed (no leave message), in Corosync's words
    assert any("Failed to receive the leave message. failed: 3" in ln for ln in c.log_lines(1))
    c.start(3)
    c.wait_members([1, 2, 3], [1, 2, 3], since=mark)
    time.sleep(2)
    c.stop_all()
    logs = c.event_logs()
    for i in (1, 2, 3):
        assert sum(e["ev"] == "deliver" for e in logs[i]) > 50, f"node {i} delivered little"
    _evs_ok(c)


def test_sigterm_leaves_cleanly(cluster):
    c = cluster(3)
    c.start_all()
    c.wait_members([1, 2, 3], [1, 2, 3], timeout_s=120)
    mark = c.mark()
    c.kill(2, signal.SIGTERM)
    c.wait_members([1, 3], [1, 3], since=mark)
    lines = c.log_lines(1)
    assert any("Members left: 2" in ln or "left: 2" in ln for ln in lines)
    # a clean leave: no token timeout, no "failed" node
    assert not any("A processor failed" in ln for ln in lines)
    assert not any("failed: 2" in ln for ln in lines)
    assert node_segments(c.cluster, 2) == []


def test_ring_process_crash_is_survived(cluster):
    c = cluster(3)
    c.start_all()
    c.wait_members([1, 2, 3], [1, 2, 3], timeout_s=120)
    ring_pid = _role_pid(c, 2, "coroproc: ring")
    mark = c.mark()
    os.kill(ring_pid, signal.SIGKILL)
    # the supervisor restarts it; the restarted core forms a new ring with the others
    c.wait_for_log(2, "coroproc: ring (pid %d) killed by SIGKILL" % ring_pid)
    c.wait_members([1, 2, 3], [1, 2, 3], since=mark)
    new_pid = _role_pid(c, 2, "coroproc: ring")
    assert new_pid != ring_pid
    time.sleep(1)
    c.stop_all()
    _evs_ok(c)


def test_net_process_crash_is_survived(cluster):
    c = cluster(3)
    c.start_all()
    c.wait_members([1, 2, 3], [1, 2, 3], timeout_s=120)
    net_pid = _role_pid(c, 1, "coroproc: net link0")
    mark = c.mark()
    os.kill(net_pid, signal.SIGKILL)
    c.wait_for_log(1, "coroproc: net link0 (pid %d) killed by SIGKILL" % net_pid)
    new_pid = _wait_role(c, 1, "coroproc: net link0", not_pid=net_pid)
    assert new_pid != net_pid
    c.wait_members([1, 2, 3], [1, 2, 3])
    print("membership changes after the net process restart:",
          sum("Members[" in ln for ln in c.log_lines(1)[mark[1]:]))
    time.sleep(1)
    c.stop_all()
    _evs_ok(c)


def test_supervisor_kill9_takes_node_down_and_restart_cleans_up(cluster):
    c = cluster(2)
    c.start_all()
    c.wait_members([1, 2], [1, 2], timeout_s=120)
    children = c.child_pids(2)
    assert len(children) == 3  # net link0, ring, load
    mark = c.mark()
    c.kill(2)
    assert _wait_gone(children) == [], "children outlived their supervisor"
    assert node_segments(c.cluster, 2) != []  # the dead supervisor could not clean up
    c.wait_members([1], [1], since=mark)
    c.start(2)
    c.wait_members([1, 2], [1, 2], since=mark)
    assert any("Removed" in ln and "shared-memory segments" in ln for ln in c.log_lines(2))
    c.stop_all()
    _evs_ok(c)


def _role_pid(c: LocalCluster, i: int, title: str) -> int:
    for pid in c.child_pids(i):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().split(b"\0")[0].decode(errors="replace").startswith(title):
                    return pid
        except FileNotFoundError:
            continue  # a child that exited between listing and reading
    raise AssertionError(f"node {i} has no child titled {title!r}")


def _wait_role(c: LocalCluster, i: int, title: str, not_pid: int, timeout_s=30.0) -> int:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            pid = _role_pid(c, i, title)
            if pid != not_pid:
                return pid
        except (AssertionError, FileNotFoundError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"node {i}: {title} was not restarted")
