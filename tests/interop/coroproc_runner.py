"""Run coroproc daemons inside netns test hosts, configured from a corosync.conf text.

The same file a Corosync node gets (tests/interop/corosync_runner.corosync_conf), with
this node's logfile and state_dir, plus a `coroproc { run_dir }` section; the local node
is found the way Corosync finds it (its address is the one local to the namespace).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import orjson

from coroproc.eventlog import append_event, read_event_log
from coroproc.shm.names import remove_node_segments

MEMBERS_RE = re.compile(r"\[QUORUM\] Members\[(\d+)\]: ([\d ]+)")


class CoroprocNode:
    """A coroproc daemon on one netns host, configured from the same corosync.conf text."""

    def __init__(self, host, nodeid: int, conf_text: str, workdir, workload_msgs_per_s=None):
        self.host = host
        self.nodeid = nodeid
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.logfile = os.path.join(workdir, "coroproc.log")
        # same file as the Corosync nodes get, plus where this node keeps its files
        conf = re.sub(r"(?m)^(\s*)logfile: .*", rf"\g<1>logfile: {self.logfile}", conf_text)
        conf = re.sub(r"(?m)^(\s*)state_dir: .*", rf"\g<1>state_dir: {workdir}/state", conf)
        conf += f"coroproc {{\n    run_dir: {workdir}/run\n}}\n"
        self.cluster_name = re.search(r"cluster_name: (\S+)", conf).group(1)
        self.conf = os.path.join(workdir, "corosync.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.proc = None
        self.workload = workload_msgs_per_s
        self.event_log_path = os.path.join(workdir, "events.jsonl")

    def start(self) -> None:
        out = open(os.path.join(self.dir, "stdout.log"), "ab")
        argv = [sys.executable, "-m", "coroproc", "-f", "-c", self.conf]
        if self.workload:
            argv += ["--workload", str(self.workload), "--event-log", self.event_log_path]
        self.proc = self.host.popen(argv, stdout=out, stderr=subprocess.STDOUT)
        out.close()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        elif self.proc.returncode == -signal.SIGKILL:
            # a killed supervisor could not clean up; its next start would: do it now
            remove_node_segments(self.cluster_name, self.nodeid)

    def members(self) -> set[int] | None:
        try:
            with open(self.logfile, errors="replace") as f:
                found = MEMBERS_RE.findall(f.read())
        except FileNotFoundError:
            return None
        return {int(x) for x in found[-1][1].split()} if found else None

    def log_text(self) -> str:
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def status(self) -> dict | None:
        """`coroproc-ctl --json status` (its control socket is a file: reachable from here;
        --nodeid because this node's address is local only inside its namespace)."""
        try:
            out = subprocess.run([sys.executable, "-m", "coroproc.tools.ctl", "-c", self.conf,
                                  "--nodeid", str(self.nodeid), "--json", "status"],
                                 capture_output=True, timeout=30)
        except subprocess.TimeoutExpired:
            return None  # a loaded machine: the caller polls again
        return orjson.loads(out.stdout) if out.returncode == 0 else None

    def event_log(self) -> list[dict]:
        return read_event_log(self.event_log_path)

    def kill(self) -> None:
        """SIGKILL the supervisor (its children follow); the event log records the crash."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        append_event(self.event_log_path,
                     {"ev": "crash", "node": self.nodeid, "t_us": time.monotonic_ns() // 1000})


def wait_for(pred, what: str, timeout_s: float = 90.0) -> float:
    """Poll pred() until true; returns the seconds it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if pred():
            return time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
