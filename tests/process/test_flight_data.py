"""A real node's flight data, read with libqb's own qb-blackbox: a child killed by
SIGKILL (which leaves nothing in Corosync) has the supervisor write the node's flight
data with the dead child's last lines; an operator's restart writes none; a dump asked
through cmap while an engine is stopped (SIGSTOP) has that engine's lines and does not
need it to answer (supervisor/flight_data.py, blackbox/logring.py)."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

from coroproc.client.cmap import STRING, Cmap
from coroproc.localcluster import LocalCluster

pytestmark = pytest.mark.skipif(shutil.which("qb-blackbox") is None,
                                reason="needs qb-blackbox (libqb-tools)")
LINE = re.compile(r"^\w+\s+\w{3} \d\d \d\d:\d\d:\d\d\.\d{3} (coroproc: [\w ]+)\((\d+)\):0: (.*)$")


def _dump(c: LocalCluster) -> list[tuple[str, int, str]]:
    """(process title, pid, message) of each line of node 1's fdata, through qb-blackbox."""
    path = os.path.join(c.dir, "state1", "fdata")
    out = subprocess.run(["qb-blackbox", path], capture_output=True, text=True, timeout=60)
    return [(m[1], int(m[2]), m[3]) for m in map(LINE.match, out.stdout.splitlines()) if m]


def test_a_child_killed_by_sigkill_leaves_its_lines_in_the_crash_dump(tmp_path):
    c = LocalCluster(tmp_path, 1)
    try:
        c.start(1)
        c.wait_members([1], [1], timeout_s=120)
        cpg = c.child_titles(1)["coroproc: cpg"]
        subprocess.run([sys.executable, "-m", "coroproc.tools.ctl", "-c", c.conf(1),
                        "restart", "cpg"], check=True, capture_output=True, timeout=60)
        cpg = c.wait_restarted(1, "coroproc: cpg", cpg)
        assert not any("Flight data of" in ln for ln in c.log_lines(1))   # asked: no dump
        # the new engine's first notice: from here its flight ring has lines of its own
        c.wait_for_log(1, "engine restarted: state restored from its snapshot")
        os.kill(cpg, signal.SIGKILL)
        c.wait_for_log(1, "(coroproc: cpg killed by SIGKILL)")
        lines = _dump(c)
        mine = [msg for title, pid, msg in lines if title == "coroproc: cpg" and pid == cpg]
        assert mine, lines[-20:]
        assert any(title == "coroproc: supervisor" and f"coroproc: cpg (pid {cpg}) killed by "
                   "SIGKILL" in msg for title, _pid, msg in lines)
        c.wait_restarted(1, "coroproc: cpg", cpg)
    finally:
        c.stop_all()


def test_a_dump_through_cmap_reads_a_stopped_engine_without_waiting(tmp_path):
    c = LocalCluster(tmp_path, 1)
    try:
        c.start(1)
        c.wait_members([1], [1], timeout_s=120)
        cpg = c.child_titles(1)["coroproc: cpg"]
        os.kill(cpg, signal.SIGSTOP)
        try:
            with Cmap(suffix=c.suffix(1)) as cmap:     # answered once the file is written
                cmap.set("runtime.blackbox.dump_flight_data", b"now", STRING)
            lines = _dump(c)
        finally:
            os.kill(cpg, signal.SIGCONT)
        titles = {title for title, _pid, _msg in lines}
        assert {"coroproc: supervisor", "coroproc: ring", "coroproc: cpg"} <= titles, titles
        assert any(pid == cpg for title, pid, _msg in lines if title == "coroproc: cpg")
    finally:
        c.stop_all()
