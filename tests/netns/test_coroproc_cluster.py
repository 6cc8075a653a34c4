"""Five coroproc daemons, one per network namespace, under a steady message load: one ring;
kill -9 of a node and its restart; an iptables partition 3|2 and its heal. The event logs
the daemons' load engines wrote must pass the EVS checker."""
from __future__ import annotations

import os

import pytest

from coroproc.shm.names import node_segments
from coroproc.sim.checker import check_safety
from interop.coroproc_runner import CoroprocNode, wait_for
from interop.corosync_runner import corosync_conf
from netns.harness import DEFAULT_PREFIX, Cluster, unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None,
                                reason=unavailable_reason() or "")

N = 5
TOKEN_MS = 1000
LOAD_MSGS_PER_S = 40


def _see(daemons, nodes, members) -> None:
    want = set(members)
    for i in nodes:
        wait_for(lambda i=i: daemons[i].members() == want, f"node {i} to see {sorted(want)}")


def _delivering(daemons, nodes) -> None:
    """Wait until each node's load engine has logged a delivery. Seeing the membership is
    not enough: the first messages of a ring wait for its service sync, and a node killed
    before then has nothing in its log."""
    def delivered(i: int) -> bool:
        # raw bytes: the log is being appended to, its last line may be half-written
        try:
            with open(daemons[i].event_log_path, "rb") as f:
                return b'"ev":"deliver"' in f.read()
        except FileNotFoundError:
            return False
    for i in nodes:
        wait_for(lambda i=i: delivered(i), f"node {i} to deliver a load message")


def test_five_namespaces_fail_restart_partition_heal(tmp_path):
    cluster = f"ns{id(tmp_path) % 100000}"
    with Cluster(DEFAULT_PREFIX, N) as net:
        nodes = [(h.index, h.addr) for h in net]
        daemons = {}
        for h in net:
            nd = tmp_path / f"n{h.index}"
            conf = corosync_conf(cluster_name=cluster, nodes=nodes, logfile=str(nd / "x.log"),
                                 state_dir=str(nd / "state"), token_ms=TOKEN_MS)
            daemons[h.index] = CoroprocNode(h, h.index, conf, str(nd),
                                            workload_msgs_per_s=LOAD_MSGS_PER_S)
        everyone = list(range(1, N + 1))
        try:
            for d in daemons.values():
                d.start()
            _see(daemons, everyone, everyone)
            _delivering(daemons, everyone)

            daemons[N].kill()
            took_s = wait_for(lambda: all(daemons[i].members() == set(everyone[:-1])
                                          for i in everyone[:-1]), "the survivors' new ring")
            print(f"\nnetns, {N} nodes, token {TOKEN_MS} ms: kill -9 of node {N} -> new "
                  f"configuration on every survivor after {took_s * 1000:.0f} ms")
            daemons[N].start()
            _see(daemons, everyone, everyone)

            net.partition([[1, 2, 3], [4, 5]])
            _see(daemons, [1, 2, 3], [1, 2, 3])
            _see(daemons, [4, 5], [4, 5])
            net.heal()
            _see(daemons, everyone, everyone)
        finally:
            for d in daemons.values():
                d.stop()
        for i in everyone:
            assert node_segments(cluster, i) == []
        logs = {i: d.event_log() for i, d in daemons.items()}
        for i in everyone:
            assert sum(e["ev"] == "deliver" for e in logs[i]) > 0, f"node {i} delivered nothing"
        violations = check_safety(logs)
        assert violations == [], "\n".join(str(v) for v in violations[:10])


@pytest.mark.parametrize("transport,ipv6", [("udp", False), ("udpu", True)],
                         ids=["udp-multicast-ipv4", "udpu-ipv6"])
def test_three_namespaces_other_transports(tmp_path, transport, ipv6):
    """udp (multicast, Corosync's mcastaddr/mcastport) and udpu over IPv6 form a ring, and
    re-form it without a node that is killed."""
    with Cluster(DEFAULT_PREFIX, 3, ipv6=ipv6) as net:
        nodes = [(h.index, h.addr) for h in net]
        daemons = {}
        for h in net:
            nd = tmp_path / f"n{h.index}"
            conf = corosync_conf(cluster_name=f"t{transport}{os.getpid()}", nodes=nodes, transport=transport,
                                 mcast_addr="239.192.77.1", logfile=str(nd / "x.log"),
                                 state_dir=str(nd / "state"), token_ms=TOKEN_MS,
                                 ip_version="ipv6" if ipv6 else "ipv4")
            daemons[h.index] = CoroprocNode(h, h.index, conf, str(nd), workload_msgs_per_s=20)
        try:
            for d in daemons.values():
                d.start()
            _see(daemons, [1, 2, 3], [1, 2, 3])
            _delivering(daemons, [1, 2, 3])
            daemons[3].kill()
            _see(daemons, [1, 2], [1, 2])
        finally:
            for d in daemons.values():
                d.stop()
        logs = {i: d.event_log() for i, d in daemons.items()}
        assert all(sum(e["ev"] == "deliver" for e in logs[i]) > 0 for i in logs)
        violations = check_safety(logs)
        assert violations == [], "\n".join(str(v) for v in violations[:10])
