"""The CI nemesis: 3 coroproc daemons (udpu; knet in clear and with AES-256-GCM) in network
namespaces under load engines and CPG recorders, one fault of every kind from a seeded
schedule — kill -9 of a daemon and its restart, kill -9 of one engine, SIGSTOP longer
than the token, a partition and its heal, random packet loss on a host — then a quiet
period. The EVS checker (safety 1-12 and liveness after quiet_from), the CPG EVS-13
checker and CPG progress after settling must all pass, as must the CPG same-view and
per-sender checks (they caught the missing waiting_trans_ack, docs/nemesis.md "Found so
far"). About 100 s of wall time per seed.

A failure names the seed: `python bench/soak.py --seed S --nodes 3 --minutes 1` (or
runner.run with the same RunConfig) replays the same schedule; the run's files (event
logs, recorder logs, daemon logs, summary.json) stay under the test's tmp_path.
"""
from __future__ import annotations

import os

import pytest

from netns.harness import list_netns, unavailable_reason

from nemesis import schedule as S
from nemesis.runner import PREFIX, RunConfig, run

pytestmark = pytest.mark.skipif(unavailable_reason() is not None,
                                reason=unavailable_reason() or "")

FAULT_WINDOW_S = 55.0      # five faults, each settled before quiet_from (schedule.py)
CI_KINDS = (S.DAEMON_KILL, S.ENGINE_KILL, S.SIGSTOP, S.PARTITION, S.LOSS)


@pytest.mark.parametrize("transport,seed,crypto", [("udpu", 1, False), ("udpu", 2, False),
                                                   ("knet", 3, False), ("knet", 4, True)])
def test_one_fault_of_each_kind_then_quiet(tmp_path, transport, seed, crypto):
    # knet's DATA frames take the jitted path, in clear and with AES-GCM (a restarted
    # daemon's new session and key go through the Python path first: docs/secure-links.md)
    cfg = RunConfig(seed=seed, out_dir=tmp_path / f"seed{seed}", n_nodes=3,
                    transport=transport, knet_crypto=crypto, fault_window_s=FAULT_WINDOW_S,
                    kinds=CI_KINDS, cover_menu=True, progress=print)
    result = run(cfg)
    s = result.summary
    where = f"seed {seed}, files in {cfg.out_dir}"
    assert not s["failures"], f"{where}:\n" + "\n".join(s["failures"][:30])
    assert set(s["faults_applied"]) == set(CI_KINDS), (where, s["faults_applied"])
    for node, stats in s["nodes"].items():
        assert stats["deliveries"] > 0, f"{where}: node {node} delivered nothing"
    assert sum(n["pauses"] for n in s["nodes"].values()) == 1, (where, s["nodes"])
    # every recorder kept delivering, and the daemon kill forced at least one reconnect
    assert all(n["delivered"] > 0 for n in s["cpg"]["per_node"].values()), (where, s["cpg"])
    assert s["cpg"]["records"] > cfg.n_nodes, (where, s["cpg"])
    assert not [n for n in list_netns() if n.startswith(f"{PREFIX}-{os.getpid()}-")]
