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
    assert c.procs[2].wait(timeout=60) == 0
    assert node_segments(c.cluster, 2) == []
    # every child of node 2 went without an error on the way out (its stdout and stderr)
    with open(os.path.join(c.dir, "node2.out"), errors="replace") as f:
        out = f.read()
    assert "Traceback" not in out, out[-3000:]


@pytest.mark.parametrize("node,title", [(2, "coroproc: ring"), (1, "coroproc: net link0")],
                         ids=["ring-process", "net-process"])
def test_child_crash_is_survived(cluster, node, title):
    """SIGKILL of one child: the supervisor restarts it and the node takes part in the ring
    again — its load engine delivers messages every other node sent after the restart."""
    c = cluster(3)
    c.start_all()
    c.wait_members([1, 2, 3], [1, 2, 3], timeout_s=120)
    old_pid = _role_pid(c, node, title)
    mark = c.mark()
    os.kill(old_pid, signal.SIGKILL)
    c.wait_for_log(node, f"{title} (pid {old_pid}) killed by SIGKILL")
    _wait_role(c, node, title, not_pid=old_pid)
    restarted_us = time.monotonic_ns() // 1000
    others = {1, 2, 3} - {node}
    end = time.monotonic() + 60
    while _senders_delivered_after(c, node, restarted_us) < others:
        assert time.monotonic() < end, f"node {node} delivers nothing new from {sorted(others)}"
        time.sleep(0.1)
    # the quorum engine logs the membership once the new ring's sync completes, which
    # can be a moment after the first deliveries (a restarted ring process logs its
    # one-node ring first)
    c.wait_members([node], [1, 2, 3], timeout_s=60)
    changes = sum("was formed" in ln for ln in c.log_lines(node)[mark[node]:])
    print(f"{title} restarted: {changes} membership change(s) on node {node}")
    c.stop_all()
    _evs_ok(c)


def _senders_delivered_after(c: LocalCluster, node: int, t_us: int) -> set[int]:
    return {e["id"][0] for e in c.event_logs()[node]
            if e["ev"] == "deliver" and e["t_us"] > t_us}


def test_supervisor_kill9_takes_node_down_and_restart_cleans_up(cluster):
    c = cluster(2)
    c.start_all()
    c.wait_members([1, 2], [1, 2], timeout_s=120)
    children = c.child_pids(2)
    assert len(children) == 7  # net link0, ring, cmap, cfg, cpg, votequorum (+quorum), load
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
