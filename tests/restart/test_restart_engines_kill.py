"""Per-engine restart on real daemons: on one node of three, every engine process (cmap,
cfg, cpg, votequorum+quorum) is killed with SIGKILL KILLS_PER_ENGINE times and restarted
once more with `coroproc-ctl restart NAME`, while CPG client processes on every node send
and record. Afterwards: no node logged a new membership; the CPG clients of the other
nodes lost and duplicated nothing (EVS-13 over every record, and each of them received
every message of every other surviving sender exactly once, in one order); quorum is as
before; the cmap key set before the kills is there; every node lists the same CPG
processes — the surviving clients (the victim's were disconnected by the cpg kills).
20 kills per engine run in bench/bench_engine_restart.py; the test keeps 5 (≈ 1 minute)."""
from __future__ import annotations

import os
import sys
from collections import defaultdict

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import restart_driver as D  # noqa: E402

from coroproc.engineprocs.cpg.checker import check_cpg_evs  # noqa: E402
from coroproc.localcluster import LocalCluster  # noqa: E402
from coroproc.shm.names import node_segments  # noqa: E402

KILLS_PER_ENGINE = int(os.environ.get("COROPROC_RESTART_KILLS", "5"))


@pytest.fixture
def cluster(tmp_path):
    lc = LocalCluster(tmp_path, 3, token_ms=1000, rate_msgs_per_s=20)
    try:
        lc.start_all()
        lc.wait_members([1, 2, 3], (1, 2, 3), timeout_s=90)
        lc.wait_synced((1, 2, 3), timeout_s=30)
        yield lc
    finally:
        lc.stop_all()
        for i in lc.addrs:
            assert node_segments(lc.cluster, i) == []


def _sequences(rec) -> dict:
    """(sender nodeid, pid) -> [seq] of the messages a client received, in order."""
    out = defaultdict(list)
    for ev in rec.events:
        if ev[0] == "deliver":
            _nodeid, _pid, seq = ev[4].decode().split()
            out[(ev[2], ev[3])].append(int(seq))
    return out


def test_killing_each_engine_repeatedly_disturbs_nothing_else(cluster, tmp_path):
    res = D.run(cluster, tmp_path, KILLS_PER_ENGINE, ctl_restarts=1)
    assert res.new_memberships == {1: [], 2: [], 3: []}
    for name in D.ENGINES:
        assert len(res.restart_s[name]) == KILLS_PER_ENGINE
    problems = check_cpg_evs(res.records)
    assert problems == [], "\n".join(problems[:10])
    others = [r for n in (1, 3) for r in res.clients_by_node.get(n, [])]
    assert len(others) == 4
    senders = {(r.nodeid, r.pid) for r in others}
    for rec in others:
        seqs = _sequences(rec)
        for sender in senders:
            got = seqs.get(sender, [])
            assert got, f"{rec.name} received nothing from {sender}"
            assert got == list(range(got[0], got[0] + len(got))), \
                f"{rec.name}: messages of {sender} lost or duplicated"
    assert res.quorum_after == res.quorum_before
    assert all(q["quorate"] for q in res.quorum_after.values())
    assert res.key_after == D.KEY_VALUE
    lists = list(res.process_lists.values())
    assert all(pl == lists[0] for pl in lists)
    assert lists[0] == sorted(res.live_clients)
    assert {n for n, _p in lists[0]} == {1, 3}     # the victim's clients were disconnected
