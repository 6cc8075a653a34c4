"""Mixed rings: Debian's corosync 3.1.7 and coroproc daemons, one per network namespace,
in one Totem membership over udpu (no crypto).

What it shows: Corosync's own view (`corosync-cmapctl runtime.members`, its log line "A new
membership ... was formed") includes the coroproc nodes, and coroproc's log includes the
Corosync nodes. Corosync's service synchronisation needs the service engines, which
coroproc does not run yet, so these tests do not wait for Corosync's "Completed service
synchronization" in a mixed ring.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from netns.harness import DEFAULT_PREFIX, Cluster

from .conftest import skip_reason
from .corosync_runner import CorosyncNode, corosync_conf

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

MEMBERS_RE = re.compile(r"\[QUORUM\] Members\[(\d+)\]: ([\d ]+)")
CLUSTER = "mixed"


class CoroprocNode:
    """A coroproc daemon on one netns host, configured from the same corosync.conf text."""

    def __init__(self, host, nodeid: int, conf_text: str, workdir):
        self.host = host
        self.nodeid = nodeid
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.logfile = os.path.join(workdir, "coroproc.log")
        # same file as the Corosync nodes get, plus where this node keeps its files
        conf = re.sub(r"logfile: .*", f"logfile: {self.logfile}", conf_text)
        conf = re.sub(r"state_dir: .*", f"state_dir: {workdir}/state", conf)
        conf += f"coroproc {{\n    run_dir: {workdir}/run\n}}\n"
        self.conf = os.path.join(workdir, "corosync.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.proc = None

    def start(self) -> None:
        out = open(os.path.join(self.dir, "stdout.log"), "ab")
        self.proc = self.host.popen([sys.executable, "-m", "coroproc", "-f", "-c", self.conf],
                                    stdout=out, stderr=subprocess.STDOUT)
        out.close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)

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


def _wait(pred, what: str, timeout_s: float = 90.0) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if pred():
            return time.monotonic() - t0
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _run_mixed(tmp_path, kinds: dict[int, str]) -> None:
    with Cluster(DEFAULT_PREFIX, len(kinds)) as net:
        nodes = [(h.index, h.addr) for h in net]
        daemons = {}
        for h in net:
            nd = tmp_path / f"n{h.index}"
            nd.mkdir()
            conf = corosync_conf(cluster_name=CLUSTER, nodes=nodes, logfile=str(nd / "x.log"),
                                 state_dir=str(nd / "state"), token_ms=1000)
            if kinds[h.index] == "corosync":
                daemons[h.index] = CorosyncNode(h, h.index, conf, nd)
            else:
                daemons[h.index] = CoroprocNode(h, h.index, conf, str(nd))
        try:
            for d in daemons.values():
                d.start()
            everyone = set(kinds)
            for i, d in daemons.items():
                _wait(lambda d=d: d.members() == everyone, f"node {i} ({kinds[i]}) to see {everyone}")
            for i, d in daemons.items():
                if kinds[i] == "corosync":
                    log = "\n".join(d.log_lines())
                    others = sorted(j for j in everyone if kinds[j] == "coroproc")
                    assert re.search(r"A new membership \([0-9a-f]+\.[0-9a-f]+\) was formed", log)
                    assert all(f"runtime.members.{j}.status (str) = joined" in
                               d.cmap_get("runtime.members") for j in others)
        finally:
            for i, d in daemons.items():
                d.stop()


def test_two_corosync_one_coroproc(tmp_path):
    _run_mixed(tmp_path, {1: "corosync", 2: "corosync", 3: "coroproc"})


def test_one_corosync_two_coroproc(tmp_path):
    _run_mixed(tmp_path, {1: "coroproc", 2: "corosync", 3: "coroproc"})
