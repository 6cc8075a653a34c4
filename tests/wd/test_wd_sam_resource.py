"""SAM's CMAP policy feeding the WD engine: a SAM application is a watched resource while
it sends health checks; after mark_failed its state is "failed", WD acts on recovery
"quit" and stops kicking the watchdog stand-in."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from wd_daemon import kicks, log_has, wait_until, wd_node

APP = os.path.join(os.path.dirname(__file__), os.pardir, "sam", "sam_app.py")


def test_failed_sam_application_stops_the_watchdog(tmp_path):
    log = tmp_path / f"sam.{os.getpid()}.jsonl"
    with wd_node(tmp_path, timeout_s=2) as (lc, dog):
        proc = subprocess.Popen([sys.executable, APP, "cmap_policy", str(log), lc.suffix(1)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            events = lambda: [json.loads(x) for x in log.read_text().splitlines()] \
                if log.exists() else []
            wait_until(lambda: any(e["event"] == "started" for e in events()), "app started")
            supervisor = proc.pid
            wait_until(lambda: log_has(lc, f'Fsm:{supervisor} event "config_changed", '
                                           f'state "stopped" --> "running"'),
                       "WD watches the application", lc)
            # healthy: checks pass (first check after 6 s) and kicks continue
            wait_until(lambda: kicks(dog) >= 8, "kicks past the first check", lc)
            assert not log_has(lc, "NOT tickling")
            app_pid = next(e for e in events() if e["event"] == "instance")["pid"]
            os.kill(app_pid, signal.SIGUSR1)                     # -> sam.mark_failed()
            proc.communicate(timeout=60)
            wait_until(lambda: log_has(lc, f'quit resource "{supervisor}" failed!'),
                       "WD saw the failure", lc)
            wait_until(lambda: log_has(lc, "NOT tickling the watchdog!"), "kicks stopped", lc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
