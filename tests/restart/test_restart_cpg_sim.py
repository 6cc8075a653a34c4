"""Per-engine restart of CPG on SimBus: the cpg engine of a node is restarted (snapshot +
replay, as the engine process does) at seeded random points — between deliveries, inside
syncs, around partitions and merges — under a random client workload. Every client's
record must keep EVS property 13, every node must end with the same process list, and
that list must hold exactly the joined clients still connected (the restarted engine's
old clients leave with PROCDOWN, including one whose PROCJOIN was still in flight)."""
import os
import random
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "cpg"))
from cpg_sim_client import Client, make_bus  # noqa: E402

from coroproc.engineprocs.api import SERVICE_CPG  # noqa: E402
from coroproc.engineprocs.cpg.checker import ClientRecord, check_cpg_evs  # noqa: E402
from coroproc.engineprocs.cpg.conn_state import CpdState  # noqa: E402

V1 = 1     # CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF
PROCDOWN = 5
GROUPS = (b"g1", b"g2")


class RestartWorkload:
    def __init__(self, seed: int, nodeids=(1, 2, 3)):
        self.rng = random.Random(seed)
        self.bus = make_bus(nodeids, seed=seed)
        self.nodeids = list(nodeids)
        self.clients: list[Client] = []
        self.next_pid = 1000
        self.payloads = 0
        self.restarts = 0

    def open(self):
        return [c for c in self.clients if not c.conn.closed]

    def restart(self, nodeid: int) -> None:
        journal = self.bus.nodes[nodeid].journals.get(SERVICE_CPG)
        if journal is not None and journal["snap"] is not None:
            self.bus.restart_engine(nodeid, SERVICE_CPG)
            self.restarts += 1

    def act(self) -> None:
        r = self.rng.random()
        bus = self.bus
        if r < 0.22 and len(self.open()) < 12:
            self.next_pid += 1
            c = Client(bus, self.rng.choice(self.nodeids), self.next_pid, flags=V1)
            self.clients.append(c)
            c.wanted = self.rng.choice(GROUPS)
            c.join(c.wanted)
        elif r < 0.55 and self.open():
            c = self.rng.choice(self.open())
            if c.conn.context.state == CpdState.UNJOINED and not c.log:
                c.join(c.wanted)          # its join met a sync or a fence (TRY_AGAIN): retry
            else:
                self.payloads += 1
                c.mcast(b"m%d" % self.payloads)
        elif r < 0.60 and self.open():
            c = self.rng.choice(self.open())
            if c.conn.context.state == CpdState.JOIN_COMPLETED:
                c.leave(c.conn.context.group)
        elif r < 0.64 and self.open():
            self.rng.choice(self.open()).close()
        elif r < 0.68:
            live = list(self.nodeids)
            self.rng.shuffle(live)
            cut = self.rng.randint(1, len(live))
            bus.configure([live[:cut], live[cut:]])
        elif r < 0.80:
            self.restart(self.rng.choice(self.nodeids))
        for _ in range(self.rng.randint(0, 5)):     # interleave deliveries and turns
            bus.step()
        for c in self.open():
            c.events()

    def finish(self) -> None:
        self.bus.configure([self.nodeids])
        self.bus.run()
        for c in self.open():
            c.events()


def _expected(w: RestartWorkload) -> set:
    return {(c.conn.context.group, c.nodeid, c.pid) for c in w.open()
            if c.conn.context.state == CpdState.JOIN_COMPLETED}


@pytest.mark.parametrize("seed", range(30))
def test_random_engine_restarts_keep_evs13_and_converge(seed):
    w = RestartWorkload(seed)
    for _ in range(160):
        w.act()
    w.finish()
    assert w.restarts > 0, f"seed {seed}: no restart happened (the test tests nothing)"
    records = [ClientRecord(f"node{c.nodeid}/pid{c.pid}", c.nodeid, c.pid, c.log)
               for c in w.clients]
    problems = check_cpg_evs(records)
    assert problems == [], f"seed {seed}:\n" + "\n".join(problems[:10])
    lists = {n: list(w.bus.engine(n, SERVICE_CPG).procs) for n in w.nodeids}
    assert all(v == lists[1] for v in lists.values()), f"seed {seed}: process lists differ"
    assert {(p.group, p.nodeid, p.pid) for p in lists[1]} == _expected(w), f"seed {seed}"
    for n in w.nodeids:
        assert w.bus.engine(n, SERVICE_CPG).counters()["restart_fence_pending"] == 0


def _formed(seed=0):
    bus = make_bus((1, 2, 3), seed=seed)
    return bus


def _joined(bus, nodeid, pid, group=b"g"):
    c = Client(bus, nodeid, pid, flags=V1)
    assert c.join(group) == 1
    bus.run()
    c.events()
    return c


def test_restart_makes_old_local_processes_leave_once_with_procdown():
    bus = _formed()
    watcher = _joined(bus, 1, 100)
    _joined(bus, 2, 200)
    _joined(bus, 2, 201)
    watcher.events()
    bus.restart_engine(2, SERVICE_CPG)
    bus.run()
    left = [e[3] for e in watcher.events() if e[0] == "confchg"]
    assert sorted(x for ls in left for x in ls) == [(2, 200, PROCDOWN), (2, 201, PROCDOWN)]
    for n in (1, 2, 3):
        assert [(p.nodeid, p.pid) for p in bus.engine(n, SERVICE_CPG).procs] == [(1, 100)]


def test_a_join_in_flight_at_the_restart_is_left_at_once():
    bus = _formed()
    watcher = _joined(bus, 1, 100)
    for _ in range(20):            # let the journal take a snapshot before the join
        bus.step()
    ghost = Client(bus, 2, 300, flags=V1)
    assert ghost.join(b"g") == 1           # PROCJOIN queued, not delivered yet
    bus.restart_engine(2, SERVICE_CPG)     # its connection is gone with the old process
    bus.run()
    events = [e for e in watcher.events() if e[0] == "confchg"]
    assert [e[4] for e in events] == [[(2, 300, 1)], []]          # joined, then ...
    assert [e[3] for e in events] == [[], [(2, 300, PROCDOWN)]]   # ... left with PROCDOWN
    for n in (1, 2, 3):
        assert [(p.nodeid, p.pid) for p in bus.engine(n, SERVICE_CPG).procs] == [(1, 100)]


def test_a_restarted_engine_admits_clients_at_once_and_they_can_rejoin():
    bus = _formed()
    watcher = _joined(bus, 1, 100)
    _joined(bus, 2, 200)
    watcher.events()                               # 200's join: not what we look at
    bus.restart_engine(2, SERVICE_CPG)
    again = Client(bus, 2, 200, flags=V1)          # connect: admitted, no EAGAIN
    assert again.join(b"g") == 6                    # TRY_AGAIN until the old one left
    bus.run()
    assert again.join(b"g") == 1
    bus.run()
    assert again.membership(b"g") == [(1, 100), (2, 200)]
    confchgs = [e for e in watcher.events() if e[0] == "confchg"]
    assert [(e[3], e[4]) for e in confchgs] == [([(2, 200, PROCDOWN)], []),
                                                ([], [(2, 200, 1)])]
