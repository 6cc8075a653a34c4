"""SAM with real forked processes: restart counting, quit, warn signal then SIGKILL,
data kept across restarts, the health-check thread. Each test runs tests/sam/sam_app.py
(supervisor + application instances) and reads the events it logged, in order."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

APP = os.path.join(os.path.dirname(__file__), "sam_app.py")
RUN_TIMEOUT_S = 60     # a hang guard only; every scenario ends by itself


def run(scenario: str, tmp_path):
    log = tmp_path / f"{scenario}.{os.getpid()}.jsonl"
    proc = subprocess.run([sys.executable, APP, scenario, str(log)], timeout=RUN_TIMEOUT_S, check=False,
                          capture_output=True, text=True)
    events = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return proc, events


def test_restart_policy_counts_instances_and_passes_exit_status(tmp_path):
    proc, events = run("restart_counts", tmp_path)
    assert [e["n"] for e in events if e["event"] == "instance"] == [1, 2, 3], proc.stderr
    assert len({e["pid"] for e in events}) == 3          # three distinct processes
    assert proc.returncode == 5, proc.stderr


def test_quit_policy_exits_with_the_applications_status(tmp_path):
    proc, events = run("quit_policy", tmp_path)
    assert [e["n"] for e in events if e["event"] == "instance"] == [1]
    assert proc.returncode == 7, proc.stderr


def test_missed_health_checks_warn_then_kill_then_restart(tmp_path):
    proc, events = run("warn_then_kill", tmp_path)
    kinds = [(e["event"], e["n"]) for e in events]
    # SIGUSR1 is caught (logged) and ignored, so only SIGKILL ends instance 1
    assert kinds == [("instance", 1), ("warned", 1), ("instance", 2)], proc.stderr
    assert proc.returncode == 0, proc.stderr


def test_default_warn_signal_is_sigterm(tmp_path):
    proc, events = run("warn_default_term", tmp_path)
    assert [(e["event"], e["n"]) for e in events] == [("instance", 1), ("instance", 2)]
    assert events[0]["warn"] == signal.SIGTERM
    assert proc.returncode == 0, proc.stderr


def test_stored_data_survives_restarts(tmp_path):
    proc, events = run("data_survives", tmp_path)
    inst = [e for e in events if e["event"] == "instance"]
    assert [(e["n"], e["data"], e["size"]) for e in inst] == [
        (1, "", 0), (2, "count=1\0", 8), (3, "count=2\0\0", 9)], proc.stderr
    assert events[-1] == {"event": "cleared", "size": 0, "pid": inst[-1]["pid"]}
    assert proc.returncode == 0, proc.stderr


def test_hc_callback_thread_keeps_alive_until_callback_fails(tmp_path):
    proc, events = run("hc_callback", tmp_path)
    kinds = [(e["event"], e["n"]) for e in events]
    # three callbacks in instance 1 (the thread's checks kept it alive that long), the
    # third said "failed", checks stopped, and the supervisor restarted the application
    assert kinds == [("instance", 1), ("cb", 1), ("cb", 1), ("cb", 1), ("instance", 2)], \
        proc.stderr
    assert proc.returncode == 0, proc.stderr
