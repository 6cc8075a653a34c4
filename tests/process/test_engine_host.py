"""Engine processes in real daemons: the example engine (the template every engine copies)
on three loopback nodes — sync, IPC admission, deferred answers, events across nodes —
and a restart of that engine alone, which must not disturb the ring."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from coroproc.engineprocs.example.client import ExampleClient
from coroproc.ipc.client import IpcDisconnected
from coroproc.localcluster import LocalCluster
from coroproc.shm.names import node_segments

SERVICE = "service {\n    name: example\n}\n"


def _connect(suffix: str, timeout_s: float = 20.0) -> ExampleClient:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return ExampleClient(suffix=suffix)
        except (ConnectionRefusedError, FileNotFoundError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def three(tmp_path):
    c = LocalCluster(tmp_path, 3, token_ms=1000, rate_msgs_per_s=20, extra_sections=SERVICE)
    try:
        c.start_all()
        c.wait_members([1, 2, 3], (1, 2, 3), timeout_s=90)
        c.wait_synced((1, 2, 3), timeout_s=30)
        yield c
    finally:
        c.stop_all()
        for i in c.addrs:
            assert node_segments(c.cluster, i) == []


def test_replicated_counters_across_three_daemons(three):
    events = []
    with _connect(three.suffix(1)) as writer, _connect(three.suffix(3)) as watcher:
        watcher.track(lambda name, value, nodeid: events.append((name, value, nodeid)))
        assert writer.add("jobs", 5) == 5       # answered once the cluster ordered it
        assert writer.add("jobs", 2) == 7
        deadline = time.monotonic() + 10
        while len(events) < 2 and time.monotonic() < deadline:
            watcher.dispatch(200)
        assert events == [("jobs", 5, 1), ("jobs", 7, 1)]
        with _connect(three.suffix(2)) as reader:
            assert reader.get("jobs") == 7


def test_restarting_one_engine_keeps_the_ring(three):
    mark = three.mark()
    client = _connect(three.suffix(2))
    client.add("x", 1)
    out = subprocess.run([sys.executable, "-m", "coroproc.tools.ctl", "-c", three.conf(2),
                          "restart", "example"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    with pytest.raises(IpcDisconnected):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            client.get("x")
            time.sleep(0.1)
    client.close()
    # the restarted engine admits clients at once (the node synced long ago) and orders adds
    again = _connect(three.suffix(2))
    assert again.add("y", 3) == 3
    again.close()
    for i in (1, 2, 3):
        assert "A new membership" not in "".join(three.log_lines(i)[mark[i]:])


def _status(c, i) -> dict:
    import orjson
    out = subprocess.run([sys.executable, "-m", "coroproc.tools.ctl", "-c", c.conf(i), "--json",
                          "status"], capture_output=True, timeout=30, check=True)
    return orjson.loads(out.stdout)


def test_a_killed_engine_comes_back_with_its_state(three):
    """kill -9 of one engine process under load: the supervisor restarts it, it restores its
    snapshot, replays what it had handled, catches up on the rest — and holds exactly the
    table the other nodes hold. The ring never notices."""
    import os
    import signal
    mark = three.mark()
    with _connect(three.suffix(1)) as writer:
        for i in range(60):
            writer.add("jobs", 1)
            if i == 25:
                victim = _status(three, 2)["children"]["example"]["pid"]
                os.kill(victim, signal.SIGKILL)
        expected = writer.get("jobs")
    assert expected == 60
    deadline = time.monotonic() + 30
    while True:
        try:
            with _connect(three.suffix(2), timeout_s=5) as reader:
                got = reader.get("jobs")
            if got == expected or time.monotonic() > deadline:
                break
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)
    assert got == expected
    child = _status(three, 2)["children"]["example"]
    assert child["restarts"] == 1 and child["pid"] != victim
    # the crash is in cmap (the supervisor's counts, published by the cmap engine)
    from coroproc.client.cmap import Cmap
    deadline = time.monotonic() + 10
    with Cmap(suffix=three.suffix(2)) as cmap:
        while True:
            try:
                exits = cmap.get("runtime.coroproc.children.example.exits")[1]
            except Exception:
                exits = None
            if exits == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert exits == 1
    assert any("state restored from its snapshot" in ln for ln in three.log_lines(2)[mark[2]:])
    for i in (1, 2, 3):
        assert "A new membership" not in "".join(three.log_lines(i)[mark[i]:])


def test_cfgtool_restart_engine_by_name(three):
    """`coroproc-cfgtool --restart-engine NAME`, also for an engine hosted in another's
    process (quorum runs inside votequorum's)."""
    before = _status(three, 3)["children"]
    for name, role in (("cpg", "cpg"), ("quorum", "votequorum")):
        out = subprocess.run([sys.executable, "-m", "coroproc.tools.cfgtool", "--restart-engine",
                              name, "-c", three.conf(3)], capture_output=True, text=True,
                             timeout=30)
        assert out.returncode == 0, out.stderr
        assert f"restarting {role}" in out.stdout
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        after = _status(three, 3)["children"]
        if all(after[r]["pid"] not in (0, before[r]["pid"]) for r in ("cpg", "votequorum")):
            break
        time.sleep(0.2)
    assert after["cpg"]["pid"] != before["cpg"]["pid"]
    assert after["votequorum"]["pid"] != before["votequorum"]["pid"]
    bad = subprocess.run([sys.executable, "-m", "coroproc.tools.cfgtool", "--restart-engine",
                          "nosuch", "-c", three.conf(3)], capture_output=True, text=True,
                         timeout=30)
    assert bad.returncode == 1 and "no child 'nosuch'" in bad.stderr


def test_each_node_ends_its_trans_ack_wait_after_sync(three):
    """Corosync's waiting_trans_ack across processes: the ring process holds application
    messages after each configuration until the engines report their sync completed
    (RT_TRANS_ACK on a submit ring); in a settled cluster every node has ended the wait."""
    for i in (1, 2, 3):
        deadline = time.monotonic() + 10   # the status asks the ring for its counters
        while True:
            ring = _status(three, i)["children"]["ring"]["counters"]
            if not ring["waiting_trans_ack"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert ring["waiting_trans_ack"] is False
        assert ring["counters"]["pump.trans_acks"] >= 1
        assert ring["counters"]["pump.submit_malformed"] == 0
    with _connect(three.suffix(1)) as writer:
        assert writer.add("after-sync", 1) == 1   # ordered, so nothing is held back
