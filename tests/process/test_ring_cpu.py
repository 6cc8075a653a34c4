"""coroproc.ring_cpu with real one-node daemons: the ring and link processes run on one
CPU, the engines anywhere, a restarted child is placed again, and a CPU the node may not
use stops the start with the key's name (supervisor/placement.py)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import orjson

from coroproc.localcluster import LocalCluster
from coroproc.shm.names import node_segments
from coroproc.supervisor.placement import cpu_list, ring_cpus

CHAIN_TITLES = ("coroproc: ring", "coroproc: net link0")


def _placement(c: LocalCluster, i: int) -> dict[str, str]:
    """ps title → Cpus_allowed_list of node i's children."""
    out = {}
    for title, pid in c.child_titles(i).items():
        try:
            with open(f"/proc/{pid}/status") as f:
                allowed = next(ln for ln in f if ln.startswith("Cpus_allowed_list:"))
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
        out[title] = allowed.split(":", 1)[1].strip()
    return out


def test_ring_and_link_share_a_cpu_engines_do_not_and_a_restart_keeps_it(tmp_path):
    allowed = os.sched_getaffinity(0)               # the daemon inherits this set
    chain = ring_cpus("auto", allowed)
    everywhere = cpu_list(allowed)
    want_chain = cpu_list(chain) if chain else everywhere
    c = LocalCluster(tmp_path, 1)
    try:
        c.start(1)
        c.wait_members([1], [1], timeout_s=120)
        placed = _placement(c, 1)
        assert {t: placed[t] for t in CHAIN_TITLES} == {t: want_chain for t in CHAIN_TITLES}
        engines = {t: a for t, a in placed.items() if t not in CHAIN_TITLES}
        assert "coroproc: cpg" in engines and set(engines.values()) == {everywhere}, placed
        if chain:
            c.wait_for_log(1, f"The ring and link processes run on CPU {want_chain} "
                              "(coroproc.ring_cpu)")
        ctl = [sys.executable, "-m", "coroproc.tools.ctl", "-c", c.conf(1)]
        status = subprocess.run(ctl + ["--json", "status"], capture_output=True, timeout=60)
        children = orjson.loads(status.stdout)["children"]
        assert children["ring"]["cpus"] == (sorted(chain) if chain else None)
        assert children["cpg"]["cpus"] is None
        text = subprocess.run(ctl + ["status"], capture_output=True, text=True, timeout=60)
        lines = {ln.split(" pid ")[0].strip(): ln for ln in text.stdout.splitlines()
                 if " pid " in ln}
        assert (f"  CPU {want_chain}" in lines["coroproc: ring"]) == bool(chain), lines
        assert "CPU" not in lines["coroproc: cpg"], lines
        net = c.child_titles(1)["coroproc: net link0"]
        os.kill(net, signal.SIGKILL)               # the supervisor forks a new one
        c.wait_restarted(1, "coroproc: net link0", net)
        assert _placement(c, 1)["coroproc: net link0"] == want_chain
    finally:
        c.stop_all()
    assert node_segments(c.cluster, 1) == []


def test_a_cpu_the_node_may_not_run_on_stops_the_start_with_the_key(tmp_path):
    c = LocalCluster(tmp_path, 1, coroproc_keys={"ring_cpu": 8191})
    out = subprocess.run([sys.executable, "-m", "coroproc", "-f", "-c", c.conf(1)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 8, out.stderr
    assert "configuration error: coroproc.ring_cpu: CPU 8191 is not one this node may run " \
           f"on (allowed: {cpu_list(os.sched_getaffinity(0))})" in out.stderr, out.stderr
    assert node_segments(c.cluster, 1) == []
