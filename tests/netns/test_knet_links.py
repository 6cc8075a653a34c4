"""coroproc's secure links (transport knet) on real namespaces with two links per node.

Three daemons, crypto on (AES-256-GCM from an authkey), link_mode passive with link 0
preferred, a steady message load from every node's load engine. Cutting link 0 with
iptables (every host drops eth0 both ways) must keep the ring: no new membership, no lost
message (every node delivers every other node's messages with no gap in their sequence),
traffic carried on by link 1; healing brings link 0 back (cfgtool's view: connected
again). The load engines' event logs must pass the EVS checker.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import orjson
import pytest

from coroproc.shm.names import node_segments
from coroproc.sim.checker import check_safety
from interop.coroproc_runner import CoroprocNode, wait_for
from netns.harness import DEFAULT_PREFIX, Cluster, unavailable_reason
from netns.knet_conf import knet_conf, write_authkey

pytestmark = pytest.mark.skipif(unavailable_reason() is not None,
                                reason=unavailable_reason() or "")

N = 3
TOKEN_MS = 1000
LOAD_MSGS_PER_S = 50


def _see(daemons, members) -> None:
    want = set(members)
    for i, d in daemons.items():
        if i in want:
            wait_for(lambda d=d: d.members() == want, f"node {i} to see {sorted(want)}")


def _memberships(daemon) -> int:
    return daemon.log_text().count("A new membership (")


def _link_view(daemon) -> dict:
    """{(peer, link): connected} from `coroproc-cfgtool -n --json` of this node."""
    out = subprocess.run(daemon.host.wrap([sys.executable, "-m", "coroproc.tools.cfgtool",
                                           "-n", "--json"]),
                         capture_output=True, timeout=30)
    if out.returncode != 0:
        return {}
    view = {}
    for node in orjson.loads(out.stdout).get("nodes", []):
        for link in node.get("links", []):
            view[(node["nodeid"], link["link"])] = bool(link.get("connected"))
    return view


def _delivered_seqs(log: list[dict]) -> dict[int, list[int]]:
    seqs: dict[int, list[int]] = {}
    for e in log:
        if e["ev"] == "deliver":
            seqs.setdefault(e["id"][0], []).append(e["id"][1])
    return seqs


def _check_debian_cfgtool(daemon) -> None:
    """Debian's unmodified corosync-cfgtool reads a coroproc knet node as a knet node."""
    if shutil.which("corosync-cfgtool") is None:
        return
    links = daemon.host.run(["corosync-cfgtool", "-s"]).stdout
    assert links.startswith("Local node ID 1, transport knet\n"), links
    for link in (0, 1):
        assert f"LINK ID {link} udp\n\taddr\t= {daemon.host.link_addrs4[link]}\n" in links, links
    assert links.count("\t\tnodeid:          2:\tconnected\n") == 2, links
    nodes = daemon.host.run(["corosync-cfgtool", "-n"]).stdout
    peer = daemon.host.cluster.host(3)
    assert "nodeid: 3 reachable" in nodes, nodes
    assert (f"   LINK: 1 udp ({daemon.host.link_addrs4[1]}->{peer.link_addrs4[1]}) enabled "
            "connected mtu: ") in nodes, nodes


def test_link_failover_without_reformation(tmp_path):
    cluster = f"kn{os.getpid() % 100000}"
    key = write_authkey(tmp_path / "authkey")
    with Cluster(DEFAULT_PREFIX, N, links=2) as net:
        conf = knet_conf(cluster_name=cluster, hosts=list(net), links=2, keyfile=key,
                         token_ms=TOKEN_MS, priorities={0: 2, 1: 1})
        daemons = {h.index: CoroprocNode(h, h.index, conf, str(tmp_path / f"n{h.index}"),
                                         workload_msgs_per_s=LOAD_MSGS_PER_S) for h in net}
        try:
            for d in daemons.values():
                d.start()
            _see(daemons, range(1, N + 1))
            wait_for(lambda: all(_link_view(d).get((p, 0)) and _link_view(d).get((p, 1))
                                 for i, d in daemons.items() for p in daemons if p != i),
                     "both links connected everywhere")
            before = {i: _memberships(d) for i, d in daemons.items()}
            _check_debian_cfgtool(daemons[1])
            time.sleep(2)

            net.cut_link(0)
            wait_for(lambda: not any(_link_view(daemons[1]).get((p, 0)) for p in (2, 3)),
                     "link 0 seen down")
            time.sleep(3)                  # traffic now only on link 1
            delivered_mid = {i: len(d.event_log()) for i, d in daemons.items()}
            time.sleep(2)
            assert all(len(d.event_log()) > delivered_mid[i] for i, d in daemons.items()), \
                "deliveries stopped after link 0 was cut"

            net.heal()
            wait_for(lambda: all(_link_view(d).get((p, 0)) for i, d in daemons.items()
                                 for p in daemons if p != i), "link 0 back everywhere")
            time.sleep(1)
            after = {i: _memberships(d) for i, d in daemons.items()}
            assert after == before, f"ring re-formed: memberships {before} -> {after}"
        finally:
            for d in daemons.values():
                d.stop()
        for i in daemons:
            assert node_segments(cluster, i) == []
        logs = {i: d.event_log() for i, d in daemons.items()}
        violations = check_safety(logs)
        assert violations == [], "\n".join(str(v) for v in violations[:10])
        for i, log in logs.items():
            for sender, seqs in _delivered_seqs(log).items():
                assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), \
                    f"node {i}: messages of node {sender} have a gap"
            assert len(_delivered_seqs(log)) == N, f"node {i} did not hear every node"
