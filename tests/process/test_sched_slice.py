"""coroproc.sched_slice_us with real one-node daemons: by default every process and
thread of the node runs with a 100 µs EEVDF slice (asked for by the supervisor before it
forks, inherited), a restarted engine gets it again and `coroproc-ctl status` shows it;
`sched_slice_us: 0` leaves the kernel's default (supervisor/sched_slice.py)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from coroproc.localcluster import LocalCluster
from coroproc.supervisor import sched_slice
from coroproc.supervisor.scheduling import try_slice

_WHY_NOT = try_slice(100)
pytestmark = pytest.mark.skipif(_WHY_NOT is not None, reason=f"no custom slices: {_WHY_NOT}")


def _thread_slices_ns(pid: int) -> set[int | None]:
    return {sched_slice.slice_ns(f"{pid}/task/{tid}") for tid in os.listdir(f"/proc/{pid}/task")}


def _node_slices_ns(c: LocalCluster, i: int) -> dict[str, set[int | None]]:
    return {t: _thread_slices_ns(pid) for t, pid in c.processes(i).items()}


def test_every_process_and_thread_runs_with_a_100_us_slice(tmp_path):
    c = LocalCluster(tmp_path, 1)
    try:
        c.start(1)
        c.wait_members([1], [1], timeout_s=120)
        c.wait_for_log(1, "Every process asks for a 100 us scheduler slice "
                          "(coroproc.sched_slice_us)")
        slices = _node_slices_ns(c, 1)
        assert len(slices) >= 5 and {"coroproc: cpg", "coroproc: ring"} <= set(slices)
        assert all(s == {100_000} for s in slices.values()), slices
        text = subprocess.run([sys.executable, "-m", "coroproc.tools.ctl", "-c", c.conf(1),
                               "status"], capture_output=True, text=True, timeout=60)
        lines = {ln.split(" pid ")[0].strip(): ln for ln in text.stdout.splitlines()
                 if " pid " in ln}
        assert lines["coroproc: cpg"].endswith("  slice 100 us"), lines
        cpg = c.child_titles(1)["coroproc: cpg"]
        os.kill(cpg, signal.SIGKILL)                 # the supervisor forks a new one
        assert _thread_slices_ns(c.wait_restarted(1, "coroproc: cpg", cpg)) == {100_000}
    finally:
        c.stop_all()


def test_zero_leaves_the_slice_the_node_was_started_with(tmp_path):
    """The supervisor is started with a 2 ms slice (a wrapper asks for it, then execs):
    with sched_slice_us 0 every process keeps that, as inherited."""
    wrap = (sys.executable, "-c", "import os, sys; from coroproc.supervisor import "
            "sched_slice; sched_slice.request(2000); os.execvp(sys.argv[1], sys.argv[1:])")
    c = LocalCluster(tmp_path, 1, coroproc_keys={"sched_slice_us": 0})
    try:
        c.start(1, wrap=wrap)
        c.wait_members([1], [1], timeout_s=120)
        slices = _node_slices_ns(c, 1)
        assert all(s == {2_000_000} for s in slices.values()), slices
        assert not any("scheduler slice" in ln for ln in c.log_lines(1))
    finally:
        c.stop_all()
