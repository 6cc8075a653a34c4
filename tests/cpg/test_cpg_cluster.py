"""CPG on real daemons: three coroproc nodes on loopback, the Python libcpg client on each.

Checks what only real processes show: the engine loads from `service { name: cpg }`,
clients get their own join confchg, the initial totem confchg, every message in one
total order at every node, membership/iteration answers, a finalized client's PROCDOWN
leave, and EVS property 13 over what the three clients received. Waits are bounded by a
deadline only to turn a hang into a failure; nothing is asserted about timing.
"""
import os
import select
import time

import pytest

from coroproc.client.cpg import ITERATION_ALL, MODEL_V1_DELIVER_INITIAL_TOTEM_CONF, Cpg
from coroproc.engineprocs.cpg.checker import ClientRecord, check_cpg_evs
from coroproc.ipc.cserror import CS_ERR_TRY_AGAIN, CsError
from coroproc.localcluster import LocalCluster

HANG_GUARD_S = 60.0
GROUP = b"cpg-cluster-test"
MESSAGES_PER_NODE = 20


class Recorder:
    """One handle on one node, recording events as the checker's tuples."""

    def __init__(self, lc, nodeid):
        self.nodeid = nodeid
        self.events = []
        self.cpg = Cpg(deliver_fn=self._deliver, confchg_fn=self._confchg,
                       totem_confchg_fn=self._totem,
                       model_v1_flags=MODEL_V1_DELIVER_INITIAL_TOTEM_CONF, suffix=lc.suffix(nodeid))

    def _deliver(self, _h, group, nodeid, pid, message):
        self.events.append(("deliver", group, nodeid, pid, bytes(message)))

    def _confchg(self, _h, group, members, left, joined):
        self.events.append(("confchg", group, [(a.nodeid, a.pid) for a in members],
                            [(a.nodeid, a.pid, a.reason) for a in left],
                            [(a.nodeid, a.pid, a.reason) for a in joined]))

    def _totem(self, _h, ring_id, members):
        self.events.append(("totem", tuple(ring_id), list(members)))

    def delivered(self):
        return [e for e in self.events if e[0] == "deliver"]


def _retry(call):
    deadline = time.monotonic() + HANG_GUARD_S
    while True:
        try:
            return call()
        except CsError as exc:
            if exc.code != CS_ERR_TRY_AGAIN or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _pump_until(recorders, done, what):
    deadline = time.monotonic() + HANG_GUARD_S
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}: " +
                                 "; ".join(f"node{r.nodeid}: {r.events[-3:]}" for r in recorders))
        by_fd = {r.cpg.fileno(): r for r in recorders}
        ready, _, _ = select.select(list(by_fd), [], [], 0.2)
        for fd in ready:
            by_fd[fd].cpg.dispatch()


@pytest.fixture
def cluster(tmp_path):
    lc = LocalCluster(tmp_path, 3, token_ms=1000, rate_msgs_per_s=20,
                      extra_sections="service {\n    name: cpg\n}\n")
    try:
        lc.start_all()
        lc.wait_members([1, 2, 3], (1, 2, 3), timeout_s=HANG_GUARD_S)
        lc.wait_synced((1, 2, 3), HANG_GUARD_S)
        yield lc
    finally:
        lc.stop_all()


def test_three_nodes_join_send_and_leave(cluster):
    recs = [Recorder(cluster, i) for i in (1, 2, 3)]
    try:
        for r in recs:
            _retry(lambda r=r: r.cpg.join(GROUP))
        pid = os.getpid()
        everyone = [(1, pid), (2, pid), (3, pid)]
        # The initial totem confchg follows the confchg that triggers it (cpg.c), possibly
        # by a moment: the two can reach the client in separate reads, so wait for both.
        _pump_until(recs, lambda: all(any(e[0] == "confchg" and e[2] == everyone
                                          for e in r.events)
                                      and any(e[0] == "totem" for e in r.events)
                                      for r in recs),
                    "3 members and the initial totem confchg")
        for r in recs:
            # own join confchg: the first confchg this client gets
            own = next(e for e in r.events if e[0] == "confchg")
            assert (r.nodeid, pid, 1) in own[4], r.events
            # the initial totem confchg (cpg.c sends it at the first confchg of any group
            # after the join request, so it may precede the own join confchg)
            totems = [e for e in r.events if e[0] == "totem"]
            assert totems and totems[-1][2] == [1, 2, 3], (r.nodeid, r.events)
            assert sorted((a.nodeid, a.pid) for a in r.cpg.membership_get(GROUP)) == everyone
            assert r.cpg.local_get() == r.nodeid
        listed = {(d.group, d.nodeid, d.pid) for d in recs[0].cpg.iteration(ITERATION_ALL)}
        assert {(GROUP, n, p) for n, p in everyone} <= listed

        for k in range(MESSAGES_PER_NODE):
            for r in recs:
                _retry(lambda r=r, k=k: r.cpg.mcast_joined(2, b"n%d-%d" % (r.nodeid, k)))
        total = 3 * MESSAGES_PER_NODE
        _pump_until(recs, lambda: all(len(r.delivered()) >= total for r in recs),
                    f"{total} deliveries")
        orders = [[e[4] for e in r.delivered()] for r in recs]
        assert orders[0] == orders[1] == orders[2]                 # one total order
        for r in recs:                                             # per-sender FIFO
            mine = [m for m in orders[0] if m.startswith(b"n%d-" % r.nodeid)]
            assert mine == [b"n%d-%d" % (r.nodeid, k) for k in range(MESSAGES_PER_NODE)]

        recs[2].cpg.finalize()
        _pump_until(recs[:2], lambda: all(
            any(e[0] == "confchg" and (3, pid, 5) in e[3] for e in r.events) for r in recs[:2]),
            "PROCDOWN of node 3's client")
        problems = check_cpg_evs([ClientRecord(f"node{r.nodeid}", r.nodeid, pid, r.events)
                                  for r in recs])
        assert problems == []
    finally:
        for r in recs:
            r.cpg.close()


def test_node_crash_gives_nodedown_to_the_survivors(cluster):
    recs = [Recorder(cluster, i) for i in (1, 2, 3)]
    try:
        for r in recs:
            _retry(lambda r=r: r.cpg.join(GROUP))
        pid = os.getpid()
        everyone = [(1, pid), (2, pid), (3, pid)]
        _pump_until(recs, lambda: all(any(e[0] == "confchg" and e[2] == everyone
                                          for e in r.events) for r in recs), "3 members")
        cluster.kill(3)                 # node 3's client stays open: no leave precedes
        recs[2].cpg.close()
        recs = recs[:2]
        _pump_until(recs, lambda: all(
            any(e[0] == "confchg" and e[3] == [(3, pid, 3)] for e in r.events) for r in recs),
            "NODEDOWN of node 3's process")
        for r in recs:
            down = next(e for e in r.events if e[0] == "confchg" and e[3] == [(3, pid, 3)])
            assert down[2] == [(1, pid), (2, pid)]
            assert sorted((a.nodeid, a.pid) for a in r.cpg.membership_get(GROUP)) == \
                [(1, pid), (2, pid)]
        _pump_until(recs, lambda: all(any(e[0] == "totem" and e[2] == [1, 2] for e in r.events)
                                      for r in recs), "totem confchg of members [1, 2]")
    finally:
        for r in recs:
            r.cpg.close()
