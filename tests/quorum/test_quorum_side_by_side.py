"""Quorum decisions side by side: one scenario, one corosync.conf quorum section, run on a
cluster of real Corosync 3.1.7 nodes and then on a cluster of coroproc nodes (netns hosts,
udpu, token 1000). After every step the test records what Debian's corosync-quorumtool -s
prints on every live node (Quorate, Expected votes, Highest expected, Total votes, Quorum,
Flags) and asserts the two recordings are equal step by step.

A step is settled when every live node lists exactly its expected ring members, the
scenario's own condition holds (last_man_standing: a quorate node has lowered Expected
votes to its Total votes) and two polls in a row read the same. Corosync must settle (else
the scenario, not coroproc, is wrong); a coroproc node that does not settle by the
deadline is recorded as it was last seen, so the comparison names the difference."""
from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass, field

import pytest
from interop.conftest import skip_reason
from interop.coroproc_runner import CoroprocNode
from interop.corosync_runner import CorosyncNode, corosync_conf
from netns.harness import DEFAULT_PREFIX, Cluster

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

COMPARED = ("Quorate", "Expected votes", "Highest expected", "Total votes", "Quorum", "Flags")
SETTLE_DEADLINE_S = 60.0      # membership after a kill takes token + consensus (~2.5 s)
UNSETTLED = "did not settle, last seen"
_FIELD_RE = re.compile(r"^([A-Za-z ]+):\s+(.*?)\s*$")
_MEMBER_ROW_RE = re.compile(r"^\s+(\d+)\s+(\d+)\s+\S+")


@dataclass
class Step:
    """One action, then what the ring must look like before the step is recorded."""
    label: str
    groups: list[list[int]]               # ring membership of every live node afterwards
    quorate: dict[int, str]               # what the scenario claims (checked on both)
    start: list[int] = field(default_factory=list)
    kill: list[int] = field(default_factory=list)
    partition: list[list[int]] | None = None
    heal: bool = False


@dataclass
class Scenario:
    n_nodes: int
    quorum_lines: list[str]
    steps: list[Step]
    lms: bool = False                     # last_man_standing: wait for its window to act


SCENARIOS = {
    "two_node": Scenario(2, ["two_node: 1"], [
        Step("both up", start=[1, 2], groups=[[1, 2]], quorate={1: "Yes", 2: "Yes"}),
        Step("kill -9 n2", kill=[2], groups=[[1]], quorate={1: "Yes"}),
    ]),
    "wait_for_all": Scenario(3, ["wait_for_all: 1"], [
        Step("n1 n2 up", start=[1, 2], groups=[[1, 2]], quorate={1: "No", 2: "No"}),
        Step("n3 up", start=[3], groups=[[1, 2, 3]], quorate={1: "Yes", 2: "Yes", 3: "Yes"}),
        Step("kill -9 n3", kill=[3], groups=[[1, 2]], quorate={1: "Yes", 2: "Yes"}),
    ]),
    # Corosync's votequorum(5): going from 2 nodes to 1 under last_man_standing needs
    # auto_tie_breaker; without it the last node loses quorum. Both are recorded. ATB +
    # LMS in an odd-sized cluster also needs wait_for_all, or Corosync refuses to start.
    "last_man_standing": Scenario(3, ["last_man_standing: 1", "last_man_standing_window: 1000"], [
        Step("all up", start=[1, 2, 3], groups=[[1, 2, 3]], quorate={1: "Yes", 2: "Yes", 3: "Yes"}),
        Step("kill -9 n3", kill=[3], groups=[[1, 2]], quorate={1: "Yes", 2: "Yes"}),
        Step("kill -9 n2", kill=[2], groups=[[1]], quorate={1: "No"}),
    ], lms=True),
    "last_man_standing_atb": Scenario(3, ["last_man_standing: 1", "last_man_standing_window: 1000",
                                          "auto_tie_breaker: 1", "wait_for_all: 1"], [
        Step("all up", start=[1, 2, 3], groups=[[1, 2, 3]], quorate={1: "Yes", 2: "Yes", 3: "Yes"}),
        Step("kill -9 n3", kill=[3], groups=[[1, 2]], quorate={1: "Yes", 2: "Yes"}),
        Step("kill -9 n2", kill=[2], groups=[[1]], quorate={1: "Yes"}),
    ], lms=True),
    "auto_tie_breaker": Scenario(4, ["auto_tie_breaker: 1", "auto_tie_breaker_node: lowest"], [
        Step("all up", start=[1, 2, 3, 4], groups=[[1, 2, 3, 4]],
             quorate={1: "Yes", 2: "Yes", 3: "Yes", 4: "Yes"}),
        Step("partition 1 2 | 3 4", partition=[[1, 2], [3, 4]], groups=[[1, 2], [3, 4]],
             quorate={1: "Yes", 2: "Yes", 3: "No", 4: "No"}),
        Step("heal", heal=True, groups=[[1, 2, 3, 4]],
             quorate={1: "Yes", 2: "Yes", 3: "Yes", 4: "Yes"}),
    ]),
}


def parse_status(text: str) -> dict:
    """corosync-quorumtool -s text -> its fields plus "members" (node ids of the table)."""
    out: dict = {"members": []}
    in_table = False
    for line in text.splitlines():
        if line.startswith("Membership information"):
            in_table = True
        elif in_table and (m := _MEMBER_ROW_RE.match(line)):
            out["members"].append(int(m.group(1)))
        elif (m := _FIELD_RE.match(line)) and m.group(1) in COMPARED:
            out[m.group(1)] = m.group(2)
    out["members"].sort()
    return out


def quorumtool_status(daemon) -> dict:
    argv = ["corosync-quorumtool", "-s"]
    if isinstance(daemon, CorosyncNode):
        return parse_status(daemon.client(argv).stdout)
    try:
        return parse_status(daemon.host.run(argv, check=False, timeout_s=10).stdout)
    except subprocess.TimeoutExpired:      # a busy node: read as no answer, poll again
        return {"members": []}


def lms_acted(reading: dict) -> bool:
    """last_man_standing has done its work: a quorate node expects only the votes it has."""
    return reading.get("Quorate") != "Yes" or reading.get("Expected votes") == reading.get("Total votes")


class SideRun:
    """One kind of daemon ("corosync" or "coroproc") on its own netns cluster."""

    def __init__(self, kind: str, scenario: Scenario, workdir):
        self.kind = kind
        self.scenario = scenario
        self.net = Cluster(DEFAULT_PREFIX, scenario.n_nodes).__enter__()
        cluster_name = f"sbs{os.getpid()}{kind[4]}"       # corosync -> 's', coroproc -> 'p'
        nodes = [(h.index, h.addr) for h in self.net]
        extra = "".join(f"\n    {line}" for line in scenario.quorum_lines)
        self.daemons: dict = {}
        for h in self.net:
            nd = workdir / kind / f"n{h.index}"
            nd.mkdir(parents=True)
            conf = corosync_conf(cluster_name=cluster_name, nodes=nodes, logfile=str(nd / "log"),
                                 state_dir=str(nd / "state"), token_ms=1000)
            conf = conf.replace("    provider: corosync_votequorum",
                                "    provider: corosync_votequorum" + extra)
            self.daemons[h.index] = (CorosyncNode(h, h.index, conf, nd) if kind == "corosync"
                                     else CoroprocNode(h, h.index, conf, str(nd)))
        self.live: set[int] = set()

    def close(self) -> None:
        try:
            for d in self.daemons.values():
                d.stop()
        finally:
            self.net.close()

    def act(self, step: Step) -> None:
        for i in step.start:
            self.daemons[i].start()
            self.live.add(i)
        for i in step.kill:
            self.daemons[i].kill()
            self.live.discard(i)
        if step.partition:
            self.net.partition(step.partition)
        if step.heal:
            self.net.heal()

    def settled(self, step: Step, readings: dict) -> bool:
        want = {i: sorted(g) for g in step.groups for i in g}
        assert set(want) == self.live, f"step {step.label!r}: groups {step.groups} vs live {self.live}"
        for i, r in readings.items():
            if r["members"] != want[i] or any(k not in r for k in COMPARED):
                return False
            if self.scenario.lms and not lms_acted(r):
                return False
        return True

    def record(self, step: Step) -> dict:
        """Poll every live node until the step settles (bounded); returns what they say."""
        deadline = time.monotonic() + SETTLE_DEADLINE_S
        previous = None
        while True:
            readings = {i: quorumtool_status(self.daemons[i]) for i in sorted(self.live)}
            if self.settled(step, readings) and readings == previous:
                return {i: {k: r[k] for k in COMPARED} for i, r in readings.items()}
            previous = readings if self.settled(step, readings) else None
            if time.monotonic() > deadline:
                return {i: {UNSETTLED: r} for i, r in readings.items()}
            time.sleep(0.1)

    def run(self) -> list[tuple[str, dict]]:
        recording = []
        for step in self.scenario.steps:
            self.act(step)
            recording.append((step.label, self.record(step)))
        return recording


def differences(ref: list, ours: list) -> list[str]:
    """One line per (step, node, field) where coroproc says something else than Corosync."""
    out = []
    for (label, a), (_, b) in zip(ref, ours):
        for i in sorted(set(a) | set(b)):
            fa, fb = a.get(i, {}), b.get(i, {})
            if UNSETTLED in fb:
                out.append(f"step {label!r} n{i}: coroproc did not settle within "
                           f"{SETTLE_DEADLINE_S:.0f} s; it last said {fb[UNSETTLED]}, corosync said {fa}")
                continue
            out += [f"step {label!r} n{i} {k}: corosync {fa.get(k)!r}, coroproc {fb.get(k)!r}"
                    for k in COMPARED if fa.get(k) != fb.get(k)]
    return out


def run_side(kind: str, scenario: Scenario, workdir) -> list:
    side = SideRun(kind, scenario, workdir)
    try:
        return side.run()
    finally:
        side.close()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_quorum_matches_corosync(tmp_path, name):
    scenario = SCENARIOS[name]
    ref = run_side("corosync", scenario, tmp_path)
    for (label, nodes), step in zip(ref, scenario.steps):
        assert all(UNSETTLED not in f for f in nodes.values()), (label, nodes)
        assert {i: f["Quorate"] for i, f in nodes.items()} == step.quorate, \
            f"real Corosync disagrees with the scenario at {label!r}: {nodes}"
    ours = run_side("coroproc", scenario, tmp_path)
    assert ours == ref, "coroproc differs from Corosync 3.1.7:\n" + "\n".join(differences(ref, ours))
