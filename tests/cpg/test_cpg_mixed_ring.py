"""CPG in a mixed ring: Debian's corosync 3.1.7 and a coroproc node (one netns each).

The coroproc node runs our CPG engine; a Python libcpg peer joins the same group on each
node, each sends tagged messages and receives everyone's. Passing means our exec
messages (PROCJOIN, JOINLIST/DOWNLIST in sync, MCAST) are Corosync's byte for byte in
both directions: both peers see each other join, deliver the same messages in the same
order, and pass the EVS-13 checker. Waits are hang guards only.
"""
import json
import os
import subprocess
import sys
import time

import pytest

from coroproc.engineprocs.cpg.checker import ClientRecord, check_cpg_evs

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from interop.conftest import skip_reason  # noqa: E402
from interop.coroproc_runner import CoroprocNode, wait_for  # noqa: E402
from interop.corosync_runner import CorosyncNode, corosync_conf  # noqa: E402
from netns.harness import DEFAULT_PREFIX, Cluster  # noqa: E402

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

PEER = os.path.join(os.path.dirname(__file__), "cpg_netns_peer.py")
MESSAGES = 15


def _decode(events):
    out = []
    for e in events:
        if e[0] == "confchg":
            out.append(("confchg", bytes.fromhex(e[1]), [tuple(x) for x in e[2]],
                        [tuple(x) for x in e[3]], [tuple(x) for x in e[4]]))
        elif e[0] == "deliver":
            out.append(("deliver", bytes.fromhex(e[1]), e[2], e[3], bytes.fromhex(e[4])))
        else:
            out.append(("totem", tuple(e[1]), e[2]))
    return out


def test_corosync_and_coroproc_share_a_cpg_group(tmp_path):
    cluster_name = f"cpgmix{os.getpid()}"
    group = f"mixed-{os.getpid()}"
    with Cluster(DEFAULT_PREFIX, 2) as net:
        hosts = {h.index: h for h in net}
        nodes = [(i, h.addr) for i, h in hosts.items()]

        def conf(i):
            d = tmp_path / f"n{i}"
            d.mkdir(exist_ok=True)
            return d, corosync_conf(cluster_name=cluster_name, nodes=nodes,
                                    logfile=str(d / "corosync.log"), state_dir=str(d / "state"),
                                    token_ms=1000)
        d1, c1 = conf(1)
        corosync = CorosyncNode(hosts[1], 1, c1, d1)
        corosync.use_socket_ipc()          # the Python client speaks libqb socket mode
        d2, c2 = conf(2)
        coroproc = CoroprocNode(hosts[2], 2, c2 + "service {\n    name: cpg\n}\n", str(d2))
        peers = []
        try:
            t0 = time.monotonic()
            corosync.start()
            coroproc.start()
            wait_for(lambda: corosync.members() == {1, 2}, "corosync to see both nodes")
            wait_for(lambda: coroproc.members() == {1, 2}, "coroproc to see both nodes")
            wait_for(lambda: "Completed service synchronization" in coroproc.log_text(),
                     "coroproc to complete service synchronization", 60)
            argv = [sys.executable, PEER, group, "2", str(MESSAGES)]
            peers.append(subprocess.Popen(corosync.client_argv(argv), stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
            peers.append(hosts[2].popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True))
            results = []
            print(f"peers started after {time.monotonic() - t0:.1f} s")
            for p in peers:
                stdout, stderr = p.communicate(timeout=180)
                assert p.returncode == 0 and stdout, f"peer failed ({p.returncode}): {stderr}" \
                    f"{stdout[-2000:]}"
                results.append(json.loads(stdout.splitlines()[-1]))
            print(f"peers done after {time.monotonic() - t0:.1f} s")
        finally:
            for p in peers:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            coroproc.stop()
            corosync.stop()
    by_node = {r["nodeid"]: r for r in results}
    assert set(by_node) == {1, 2}
    expected = sorted([[1, by_node[1]["pid"]], [2, by_node[2]["pid"]]])
    for r in results:
        assert sorted(r["membership"]) == expected           # both daemons list both
    streams = {n: _decode(r["events"]) for n, r in by_node.items()}
    orders = [[e[4] for e in s if e[0] == "deliver"][:2 * MESSAGES] for s in streams.values()]
    assert orders[0] == orders[1]                              # one total order
    assert len(orders[0]) == 2 * MESSAGES
    records = [ClientRecord(f"node{n}", n, by_node[n]["pid"], s) for n, s in streams.items()]
    assert check_cpg_evs(records) == []
