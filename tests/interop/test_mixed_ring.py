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

import pytest

from coroproc.localcluster import synced_after_last_ring
from netns.harness import DEFAULT_PREFIX, Cluster

from .conftest import skip_reason
from .coroproc_runner import CoroprocNode, wait_for
from .corosync_runner import CorosyncNode, corosync_conf

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

CLUSTER = f"mixed{os.getpid()}"  # coroproc names shm segments after it


def _mcast_rx(d: CorosyncNode) -> int:
    out = d.client(["corosync-cmapctl", "-m", "stats", "stats.srp.mcast_rx"]).stdout
    return int(out.rsplit("=", 1)[1]) if "=" in out else -1


def _other_groups(d: CoroprocNode) -> dict:
    st = d.status() or {}
    return st.get("children", {}).get("load", {}).get("counters", {}).get(
        "other_groups_by_sender", {})


def _synced_last_ring(d) -> bool:
    lines = d.log_lines() if isinstance(d, CorosyncNode) else d.log_text().splitlines()
    return synced_after_last_ring(lines)


def _run_mixed(tmp_path, kinds: dict[int, str]) -> None:
    with Cluster(DEFAULT_PREFIX, len(kinds)) as net:
        nodes = [(h.index, h.addr) for h in net]
        daemons = {}
        for h in net:
            nd = tmp_path / f"n{h.index}"
            nd.mkdir()
            conf = corosync_conf(cluster_name=CLUSTER, nodes=nodes, logfile=str(nd / "corosync.log"),
                                 state_dir=str(nd / "state"), token_ms=1000)
            if kinds[h.index] == "corosync":
                daemons[h.index] = CorosyncNode(h, h.index, conf, nd)
            else:
                daemons[h.index] = CoroprocNode(h, h.index, conf, str(nd), workload_msgs_per_s=20)
        try:
            for d in daemons.values():
                d.start()
            everyone = set(kinds)
            for i, d in daemons.items():
                wait_for(lambda d=d: d.members() == everyone, f"node {i} ({kinds[i]}) to see {everyone}")
            corosyncs = sorted(j for j in everyone if kinds[j] == "corosync")
            coroprocs = sorted(j for j in everyone if kinds[j] == "coroproc")
            for i in corosyncs:
                d = daemons[i]
                log = "\n".join(d.log_lines())
                assert re.search(r"A new membership \([0-9a-f]+\.[0-9a-f]+\) was formed", log)
                wait_for(lambda d=d: all(f"runtime.members.{j}.status (str) = joined" in
                                         (d.cmap_get("runtime.members") or "") for j in coroprocs),
                         f"corosync node {i}'s cmap to list {coroprocs} as joined", 30)
                # Corosync's Totem layer receives the coroproc nodes' load: its mcast_rx grows
                before = _mcast_rx(d)
                wait_for(lambda d=d: _mcast_rx(d) >= before + 20,
                         f"corosync node {i} to receive coroproc's multicasts", 30)
            for i, d in daemons.items():
                # service sync (Corosync's exec/sync.c: service list, then cmap, cpg,
                # quorum, votequorum barriers) completes on every node, for the last ring
                wait_for(lambda d=d: _synced_last_ring(d), f"node {i} ({kinds[i]}) to complete "
                         "service synchronization for the ring of all nodes", 30)
            for i in coroprocs:
                # ... and coroproc orders and delivers Corosync's own messages (its sync
                # protocol's, in totempg group "a"), from every Corosync node
                wait_for(lambda i=i: all(_other_groups(daemons[i]).get(str(j), 0) > 0
                                         for j in corosyncs),
                         f"coroproc node {i} to deliver messages of {corosyncs}", 30)
        finally:
            for i, d in daemons.items():
                d.stop()


def test_two_corosync_one_coroproc(tmp_path):
    _run_mixed(tmp_path, {1: "corosync", 2: "corosync", 3: "coroproc"})


def test_one_corosync_two_coroproc(tmp_path):
    _run_mixed(tmp_path, {1: "coroproc", 2: "corosync", 3: "coroproc"})
