"""system.sched_rr and system.priority with real one-node daemons: without the key every
process runs SCHED_OTHER; with `sched_rr: yes` the ring and link processes run SCHED_RR
99 and nothing else does, a restarted link process gets it again and `coroproc-ctl
status` shows it; `sched_rr: no` puts every process at system.priority; a node the
kernel refuses SCHED_RR says so and still forms its ring (supervisor/scheduling.py)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from coroproc.localcluster import LocalCluster
from coroproc.supervisor.scheduling import of_process

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="SCHED_RR needs CAP_SYS_NICE")

CHAIN_TITLES = {"coroproc: ring", "coroproc: net link0"}
SCHED_RR_YES = "system {\n    sched_rr: yes\n}\n"


def _policies(c: LocalCluster, i: int) -> dict[str, str]:
    """ps title → policy ("" = SCHED_OTHER at nice 0), the supervisor as "supervisor"."""
    return {t: of_process(pid) for t, pid in c.processes(i).items()}


def test_without_the_key_every_process_runs_sched_other(tmp_path):
    c = LocalCluster(tmp_path, 1)
    try:
        c.start(1)
        c.wait_members([1], [1], timeout_s=120)
        policies = _policies(c, 1)
        assert len(policies) >= 5 and set(policies.values()) == {""}, policies
        assert not any("SCHED_RR" in ln for ln in c.log_lines(1))
    finally:
        c.stop_all()


def test_the_token_path_runs_sched_rr_99_and_a_restart_keeps_it(tmp_path):
    c = LocalCluster(tmp_path, 1, extra_sections=SCHED_RR_YES)
    try:
        c.start(1)
        c.wait_members([1], [1], timeout_s=120)
        c.wait_for_log(1, "The ring and link processes run SCHED_RR at priority 99 "
                          "(system.sched_rr)")
        policies = _policies(c, 1)
        assert {t: policies[t] for t in CHAIN_TITLES} == {t: "SCHED_RR 99"
                                                          for t in CHAIN_TITLES}
        others = {t: p for t, p in policies.items() if t not in CHAIN_TITLES}
        assert "coroproc: cpg" in others and set(others.values()) == {""}, policies
        text = subprocess.run([sys.executable, "-m", "coroproc.tools.ctl", "-c", c.conf(1),
                               "status"], capture_output=True, text=True, timeout=60)
        lines = {ln.split(" pid ")[0].strip(): ln for ln in text.stdout.splitlines()
                 if " pid " in ln}
        assert lines["coroproc: ring"].endswith("  SCHED_RR 99"), lines
        assert "SCHED" not in lines["coroproc: cpg"], lines
        net = c.child_titles(1)["coroproc: net link0"]
        os.kill(net, signal.SIGKILL)               # the supervisor forks a new one
        c.wait_restarted(1, "coroproc: net link0", net)
        assert _policies(c, 1)["coroproc: net link0"] == "SCHED_RR 99"
    finally:
        c.stop_all()


def test_sched_rr_no_puts_every_process_at_system_priority(tmp_path):
    c = LocalCluster(tmp_path, 1, extra_sections="system {\n    sched_rr: no\n"
                                                 "    priority: 5\n}\n")
    try:
        c.start(1)
        c.wait_members([1], [1], timeout_s=120)
        c.wait_for_log(1, "Every process runs at nice 5 (system.priority)")
        policies = _policies(c, 1)
        assert len(policies) >= 5 and set(policies.values()) == {"nice 5"}, policies
    finally:
        c.stop_all()


def test_a_node_refused_sched_rr_says_so_and_forms_its_ring(tmp_path):
    # without CAP_SYS_NICE, root has RLIMIT_RTPRIO 0 and RLIMIT_NICE 0 like anyone else
    c = LocalCluster(tmp_path, 1, extra_sections=SCHED_RR_YES)
    try:
        c.start(1, wrap=("setpriv", "--inh-caps=-sys_nice", "--bounding-set=-sys_nice"))
        c.wait_members([1], [1], timeout_s=120)
        c.wait_for_log(1, "Could not set SCHED_RR at priority 99: Operation not permitted "
                          "(system.sched_rr), nor nice -20: Permission denied; the ring and "
                          "link processes run at the default priority")
        assert set(_policies(c, 1).values()) == {""}
    finally:
        c.stop_all()
