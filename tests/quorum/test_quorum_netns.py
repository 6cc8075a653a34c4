"""Real daemons in network namespaces: Debian's unmodified corosync-quorumtool (-s, -l)
against coroproc, coroproc-quorumtool --json, and mixed rings (Corosync 3.1.7 + coroproc)
where every node reports the same quorum facts, before and after a partition."""
from __future__ import annotations

import os
import re
import sys

import pytest

from interop.conftest import skip_reason
from interop.coroproc_runner import CoroprocNode, wait_for
from interop.corosync_runner import CorosyncNode, corosync_conf
from netns.harness import DEFAULT_PREFIX, Cluster

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

# until the engine plan adds them by itself for quorum.provider: corosync_votequorum
ENGINES = "service {\n    name: votequorum\n}\nservice {\n    name: quorum\n}\n"
FIELDS = ("Quorum provider", "Nodes", "Quorate", "Expected votes", "Highest expected",
          "Total votes", "Quorum", "Flags")


def status_fields(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z ]+):\s+(.*?)\s*$", line)
        if m and m.group(1) in FIELDS:
            out[m.group(1)] = m.group(2)
    return out


def tool(d, argv):
    """A client command on the node's host (Corosync's own socket names or coroproc's)."""
    if isinstance(d, CorosyncNode):
        return d.client(argv)
    return d.host.run(argv, check=False)


def quorumtool(d, args):
    return tool(d, ["corosync-quorumtool", *args])


def start(tmp_path, kinds: dict, quorum_lines: str = "", started=None):
    """Every node in the nodelist; the daemons of `started` (default: all) run and are
    returned."""
    cluster = f"qt{os.getpid()}x{len(kinds)}{''.join(k[0] for k in kinds.values())}"
    net = Cluster(DEFAULT_PREFIX, len(kinds))
    net.__enter__()
    nodes = [(h.index, h.addr) for h in net]
    daemons = {}
    for h in net:
        nd = tmp_path / f"n{h.index}"
        nd.mkdir()
        conf = corosync_conf(cluster_name=cluster, nodes=nodes, logfile=str(nd / "log"),
                             state_dir=str(nd / "state"), token_ms=1000)
        conf = conf.replace("    provider: corosync_votequorum",
                            "    provider: corosync_votequorum" + quorum_lines)
        if kinds[h.index] == "corosync":
            daemons[h.index] = CorosyncNode(h, h.index, conf, nd)
        else:
            daemons[h.index] = CoroprocNode(h, h.index, conf + ENGINES, str(nd))
    daemons = {i: d for i, d in daemons.items() if started is None or i in started}
    for d in daemons.values():
        d.start()
    return net, daemons


def stop(net, daemons):
    try:
        for d in daemons.values():
            d.stop()
    finally:
        net.close()


def wait_status(daemons, nodes, want: dict, timeout_s: float = 60.0) -> dict:
    """Poll corosync-quorumtool -s on `nodes` until each shows the wanted fields."""
    seen = {}

    def ok():
        for i in nodes:
            seen[i] = status_fields(quorumtool(daemons[i], ["-s"]).stdout)
            if any(seen[i].get(k) != v for k, v in want.items()):
                return False
        return True
    wait_for(ok, f"nodes {nodes} to report {want} (last seen {seen})", timeout_s)
    return seen


def test_debian_quorumtool_reads_coroproc(tmp_path):
    net, daemons = start(tmp_path, {1: "coroproc", 2: "coroproc", 3: "coroproc"})
    try:
        seen = wait_status(daemons, [1, 2, 3], {"Nodes": "3", "Quorate": "Yes"})
        assert {k: seen[1][k] for k in FIELDS} == {
            "Quorum provider": "corosync_votequorum", "Nodes": "3", "Quorate": "Yes",
            "Expected votes": "3", "Highest expected": "3", "Total votes": "3",
            "Quorum": "2", "Flags": "Quorate"}
        listing = quorumtool(daemons[2], ["-l"])
        assert listing.returncode == 0, listing.stderr
        rows = [ln.split() for ln in listing.stdout.splitlines() if re.match(r"^\s+\d", ln)]
        assert rows == [["1", "1", "n1"], ["2", "1", "n2", "(local)"], ["3", "1", "n3"]]

        net.partition([[1, 2], [3]])
        wait_status(daemons, [1, 2], {"Nodes": "2", "Quorate": "Yes", "Total votes": "2"})
        wait_status(daemons, [3], {"Nodes": "1", "Quorate": "No"})
        blocked = quorumtool(daemons[3], ["-s"])
        assert blocked.returncode == 2 and "Activity blocked" in blocked.stdout
        ours = net.host(3).run([sys.executable, "-m", "coroproc.tools.quorumtool", "-s",
                                "--json"], check=False)
        assert ours.returncode == 2, ours.stderr
        assert '"quorate": false' in ours.stdout and '"total_votes": 1' in ours.stdout
        assert "This node is within the non-primary component" in daemons[3].log_text()
        net.heal()
        wait_status(daemons, [1, 2, 3], {"Nodes": "3", "Quorate": "Yes"})
    finally:
        stop(net, daemons)


@pytest.mark.parametrize("quorum_lines,partition_quorate", [
    ("", {1: "Yes", 2: "Yes", 3: "No"}),
    ("\n    auto_tie_breaker: 1\n    auto_tie_breaker_node: highest\n    wait_for_all: 1",
     {1: "No", 2: "No", 3: "Yes", 4: "Yes"}),
], ids=["plain-3", "atb-highest-4"])
def test_mixed_ring_agrees_with_corosync(tmp_path, quorum_lines, partition_quorate):
    n = len(partition_quorate)
    kinds = {i: "corosync" for i in range(1, n + 1)}
    kinds[n] = "coroproc"           # the last node (the tie-breaker with atb highest)
    net, daemons = start(tmp_path, kinds, quorum_lines)
    try:
        everyone = list(range(1, n + 1))
        seen = wait_status(daemons, everyone, {"Nodes": str(n), "Quorate": "Yes"}, 90)
        assert all(seen[i] == seen[1] for i in everyone), seen     # one answer everywhere
        sides = [everyone[:(n + 1) // 2], everyone[(n + 1) // 2:]]   # 3: 1 2 | 3; 4: 1 2 | 3 4
        net.partition(sides)
        for i, q in partition_quorate.items():
            wait_status(daemons, [i], {"Quorate": q}, 60)
        for side in sides:
            facts = {i: status_fields(quorumtool(daemons[i], ["-s"]).stdout) for i in side}
            assert len({tuple(sorted(f.items())) for f in facts.values()}) == 1, facts
    finally:
        stop(net, daemons)


@pytest.mark.parametrize("kinds,cancel_on", [
    ({1: "coroproc", 2: "coroproc", 3: "coroproc"}, 1),
    ({1: "coroproc", 2: "corosync", 3: "coroproc"}, 1),
    ({1: "coroproc", 2: "corosync", 3: "coroproc"}, 2),
], ids=["coroproc", "mixed-cancel-on-coroproc", "mixed-cancel-on-corosync"])
def test_cancel_wait_for_all_with_cmapctl(tmp_path, kinds, cancel_on):
    """votequorum(5): two of three nodes up with wait_for_all wait for the third until
    `corosync-cmapctl -s quorum.cancel_wait_for_all u8 1` on one of them; every node then
    stops waiting, and the key reads 0 again. In a mixed ring either kind can ask."""
    net, daemons = start(tmp_path, kinds, "\n    wait_for_all: 1", started={1, 2})
    try:
        wait_status(daemons, [1, 2], {"Nodes": "2", "Quorate": "No",
                                      "Flags": "WaitForAll"}, 90)
        out = tool(daemons[cancel_on], ["corosync-cmapctl", "-s",
                                        "quorum.cancel_wait_for_all", "u8", "1"])
        assert out.returncode == 0, out.stdout + out.stderr
        wait_status(daemons, [1, 2], {"Nodes": "2", "Quorate": "Yes",
                                      "Flags": "Quorate WaitForAll"}, 30)
        for i in (1, 2):
            got = tool(daemons[i], ["corosync-cmapctl", "-g", "quorum.cancel_wait_for_all"])
            assert got.returncode != 0 or got.stdout.strip().endswith("= 0"), got.stdout
        got = tool(daemons[cancel_on], ["corosync-cmapctl", "-g",
                                        "quorum.cancel_wait_for_all"])
        assert got.stdout.strip() == "quorum.cancel_wait_for_all (u8) = 0", got.stdout
    finally:
        stop(net, daemons)


def test_expected_votes_set_with_cmapctl_reaches_every_node(tmp_path):
    net, daemons = start(tmp_path, {1: "coroproc", 2: "coroproc", 3: "coroproc"})
    try:
        wait_status(daemons, [1, 2, 3], {"Nodes": "3", "Quorate": "Yes",
                                         "Expected votes": "3"}, 90)
        out = tool(daemons[3], ["corosync-cmapctl", "-s", "quorum.expected_votes", "u32", "5"])
        assert out.returncode == 0, out.stdout + out.stderr
        wait_status(daemons, [1, 2, 3], {"Expected votes": "5", "Highest expected": "5",
                                         "Quorum": "3", "Quorate": "Yes"}, 30)
    finally:
        stop(net, daemons)
