"""SAM's CMAP policy against a real coroproc node: the supervisor publishes
resources.process.<pid>.{recovery, poll_period, state, last_updated}, deletes them on a
clean end and leaves state "failed" after mark_failed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from coroproc.client.cmap import Cmap
from coroproc.localcluster import LocalCluster
from coroproc.shm.names import node_segments

APP = os.path.join(os.path.dirname(__file__), "sam_app.py")
WAIT_S = 30        # hang guards only


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    lc = LocalCluster(tmp_path_factory.mktemp(f"samcmap{os.getpid()}"), 1, token_ms=1000,
                      rate_msgs_per_s=5)
    try:
        lc.start_all()
        lc.wait_for_log(1, "Completed service synchronization", timeout_s=60)
        yield lc
    finally:
        lc.stop_all()
        assert node_segments(lc.cluster, 1) == []


def _events(path):
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _wait_event(path, name, proc):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = [e for e in _events(path) if e["event"] == name]
        if found:
            return found[0]
        assert proc.poll() is None, f"app ended early ({proc.returncode})"
        time.sleep(0.05)
    raise AssertionError(f"no {name!r} event in {path}: {_events(path)}")


def _keys(cmap, prefix):
    return {e.key[len(prefix):]: cmap.get(e.key)[1] for e in cmap.iter(prefix)}


@pytest.mark.parametrize("ending", ["clean", "mark_failed"])
def test_cmap_policy_publishes_and_ends(node, tmp_path, ending):
    log = tmp_path / f"cmap.{os.getpid()}.jsonl"
    proc = subprocess.Popen([sys.executable, APP, "cmap_policy", str(log), node.suffix(1)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        instance = _wait_event(log, "instance", proc)
        supervisor, app_pid = instance["supervisor"], instance["pid"]
        _wait_event(log, "started", proc)
        assert supervisor == proc.pid
        prefix = f"resources.process.{supervisor}."
        with Cmap(suffix=node.suffix(1)) as cmap:
            keys = _keys(cmap, prefix)
            assert keys["recovery"] == "quit"
            assert keys["poll_period"] == 1000
            assert keys["state"] == "running"
            assert 0 < keys["last_updated"] <= time.time_ns()
            first = keys["last_updated"]
            while _keys(cmap, prefix)["last_updated"] == first:    # health checks move it
                time.sleep(0.05)
            os.kill(app_pid, signal.SIGUSR2 if ending == "clean" else signal.SIGUSR1)
            _, err = proc.communicate(timeout=WAIT_S)
            assert proc.returncode == 0, err
            if ending == "clean":
                assert _keys(cmap, prefix) == {}
            else:
                assert _keys(cmap, prefix)["state"] == "failed"
                for e in cmap.iter(prefix):       # leave the node clean for the next test
                    cmap.delete(e.key)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
