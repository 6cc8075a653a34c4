"""SAM's QUORUM policy on real coroproc nodes (votequorum, expected_votes 2): start()
waits while the node is inquorate (cmap state "waiting for quorum"), returns once the
second node joins, and losing quorum again ends the application (warn signal) and, under
QUIT, the supervisor, which leaves state "failed"."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from coroproc.client.cmap import Cmap
from coroproc.localcluster import LocalCluster
from coroproc.shm.names import node_segments

APP = os.path.join(os.path.dirname(__file__), "sam_app.py")
WAIT_S = 60        # hang guards only
QUORUM = ("quorum {\n    provider: corosync_votequorum\n    expected_votes: 2\n}\n"
          "service {\n    name: votequorum\n}\nservice {\n    name: quorum\n}\n")


def _wait(predicate, what):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _state(cmap, key):
    try:
        return cmap.get(key)[1]
    except Exception:        # noqa: BLE001 — not there yet
        return None


def test_quorum_policy_waits_for_quorum_and_quits_on_its_loss(tmp_path):
    lc = LocalCluster(tmp_path, 2, token_ms=1000, rate_msgs_per_s=5, extra_sections=QUORUM)
    log = tmp_path / f"q.{os.getpid()}.jsonl"
    proc = None
    try:
        lc.start(1)
        lc.wait_for_log(1, "Completed service synchronization", timeout_s=WAIT_S)
        proc = subprocess.Popen([sys.executable, APP, "quorum_policy", str(log), lc.suffix(1)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        key = f"resources.process.{proc.pid}.state"
        events = lambda: [json.loads(x) for x in log.read_text().splitlines()] \
            if log.exists() else []
        with Cmap(suffix=lc.suffix(1)) as cmap:
            _wait(lambda: _state(cmap, key) == "waiting for quorum", "waiting for quorum")
            assert not any(e["event"] == "started" for e in events())
            lc.start(2)
            _wait(lambda: any(e["event"] == "started" for e in events()), "start() returned")
            assert _state(cmap, key) == "running"
            lc.kill(2)                                     # 1 vote of 2: inquorate
            _, err = proc.communicate(timeout=WAIT_S)
            assert proc.returncode == 3, err               # the warned application's status
            assert [e["event"] for e in events()] == ["instance", "started", "warned"]
            assert _state(cmap, key) == "failed"
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        lc.stop_all()
        for i in (1, 2):
            assert node_segments(lc.cluster, i) == []
