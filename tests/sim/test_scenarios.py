"""Scripted scenarios: one per phase of the Totem protocol, each checked for EVS.

Every test names the part of the protocol it pins down — a section of Amir et al., "The
Totem Single-Ring Ordering and Membership Protocol" (ACM TOCS 13(4), 1995) or a Corosync
3.1 totemsrp.c behaviour — drives the real core in the simulator with a fixed fault script
(some faults are triggered by the protocol state of a node, so they hit the exact phase),
and then requires (a) no EVS safety violation, (b) liveness after the faults stop, and
(c) the scenario's own outcome (who formed which ring, what was delivered).
"""
from __future__ import annotations

import pytest

from coroproc.ringproc.config import TotemConfig
from coroproc.ringproc.state import COMMIT, RECOVERY
from coroproc.sim.checker import check_liveness, check_safety
from coroproc.sim.faults import Fault, Schedule
from coroproc.sim.world import SimConfig, World, default_node_factory, make_totem_config

FAULT_MS = 2500
BOOTED_US = 25_000  # every node has booted (the simulator spreads boots over 20 ms)


class Tripwire:
    """A TotemNode that, the first time ``when(node)`` holds after an input, injects faults.

    Faults are given as (delay_us, kind, node, arg); they are scheduled relative to the
    moment the condition was first seen, so "crash the representative as it enters
    COMMIT" hits COMMIT exactly, whatever the timing of the run.
    """

    def __init__(self, inner, world_ref: list, when, faults):
        self._inner = inner
        self._world_ref = world_ref
        self._when = when
        self._faults = faults
        self.fired_at_us: int | None = None

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def _check(self):
        if self.fired_at_us is None and self._when(self._inner):
            world = self._world_ref[0]
            self.fired_at_us = world.now_us
            for delay_us, kind, node, arg in self._faults:
                world.inject(Fault(world.now_us + delay_us, kind, node, arg))

    def on_frame(self, now_us, frame):
        r = self._inner.on_frame(now_us, frame)
        self._check()
        return r

    def on_timer(self, now_us):
        r = self._inner.on_timer(now_us)
        self._check()
        return r


def run(nodes: int, faults: list[Fault], *, seed: int = 1, tripwires=None, totem=None,
        workload: bool = True, fault_ms: int = FAULT_MS):
    """Run a scripted scenario; returns the world after checking safety and liveness."""
    sim = SimConfig.for_seed(seed, nodes, fault_ms=fault_ms, background_loss=0.0,
                             background_dup=0.0, storms=0, workload=workload)
    schedule = Schedule(tuple(sorted(faults, key=lambda f: f.t_us))
                        + (Fault(sim.quiet_from_us, "heal_all"),), sim.quiet_from_us)
    world_ref: list = []
    wires: dict[int, Tripwire] = {}

    def factory(cfg, nodeid, ring_seq):
        node = default_node_factory(cfg, nodeid, ring_seq)
        spec = (tripwires or {}).get(nodeid)
        if spec is not None and nodeid not in wires:  # only the first incarnation trips
            wires[nodeid] = Tripwire(node, world_ref, *spec)
            return wires[nodeid]
        return node

    world = World(sim, node_factory=factory, schedule=schedule,
                  totem_config=totem or make_totem_config(sim))
    world_ref.append(world)
    world.run()
    assert not world.harness, [h.message for h in world.harness]
    safety = check_safety(world.logs)
    assert safety == [], "\n".join(v.message for v in safety[:10])
    live = check_liveness(world.logs, quiet_from_us=sim.quiet_from_us, end_us=sim.end_us,
                          bound_us=world.bound_us, connected_live=set(world.nodeids))
    assert live == [], "\n".join(v.message for v in live[:10])
    for nid, wire in wires.items():
        assert wire.fired_at_us is not None, f"node {nid}'s tripwire never fired"
    world.tripwires = wires
    return world


def regular_rings(world, nid):
    return [(tuple(e["ring"]), tuple(e["members"])) for e in world.logs[nid]
            if e["ev"] == "install" and e["kind"] == "regular"]


def transitional_installs(world, nid):
    return [tuple(e["members"]) for e in world.logs[nid]
            if e["ev"] == "install" and e["kind"] == "transitional"]


def delivered_ids(world, nid):
    return [tuple(e["id"]) for e in world.logs[nid] if e["ev"] == "deliver"]


def test_token_loss_forms_a_ring_of_the_survivors():
    """Totem §4.1 / totemsrp.c timer_function_orf_token_timeout: a processor that fails
    silently stops the token; the token timeout sends the others to GATHER, and they
    install a transitional configuration {survivors} then a regular one."""
    world = run(4, [Fault(1_000_000, "crash", 3, (0,))])
    for nid in (1, 2, 4):
        rings = regular_rings(world, nid)
        assert any(m == (1, 2, 4) for _, m in rings), rings
        assert (1, 2, 4) in transitional_installs(world, nid)


def test_clean_leave_reforms_without_a_token_timeout():
    """totemsrp.c memb_leave_message_send: a leaving node's join names itself failed, so
    the others re-form at once instead of waiting out the token timeout."""
    world = run(3, [Fault(1_000_000, "crash", 3, (1,))])
    token_us = world.token_us
    for nid in (1, 2):
        log = world.logs[nid]
        t_new = next(e["t_us"] for e in log if e["ev"] == "install" and e["kind"] == "regular"
                     and tuple(e["members"]) == (1, 2))
        assert t_new - 1_000_000 < token_us, "the leave waited for a token timeout"


def test_one_node_joins_a_running_ring():
    """Totem §5.1 (gather): a new processor's join message makes the ring re-form with it;
    the old members' transitional configuration is the old ring, the newcomer has none."""
    world = run(4, [Fault(BOOTED_US, "crash", 4, (0,)), Fault(1_200_000, "restart", 4)])
    final = regular_rings(world, 1)[-1][1]
    assert final == (1, 2, 3, 4)
    assert (1, 2, 3) in transitional_installs(world, 1)


def test_simultaneous_join_of_many_nodes():
    """Totem §5.1: several processors starting together converge on one ring through
    consensus on identical proc/failed sets (memb_consensus_agreed)."""
    down = [Fault(BOOTED_US, "crash", n, (0,)) for n in (3, 4, 5, 6)]
    up = [Fault(1_000_000, "restart", n) for n in (3, 4, 5, 6)]
    world = run(6, down + up)
    assert regular_rings(world, 6)[-1][1] == (1, 2, 3, 4, 5, 6)


def test_partition_three_two_then_merge():
    """Totem §5 and EVS: each side of a partition installs its own transitional and regular
    configuration; after the heal, merge detection (memb_merge_detect) joins the rings and
    every member sees a transitional configuration of its own side."""
    world = run(5, [Fault(800_000, "partition", 0, ((1, 2, 3), (4, 5))),
                    Fault(1_800_000, "heal_partition", 0)])
    for nid in (1, 2, 3):
        assert (1, 2, 3) in [m for _, m in regular_rings(world, nid)]
    for nid in (4, 5):
        assert (4, 5) in [m for _, m in regular_rings(world, nid)]
    for nid in (1, 2, 3, 4, 5):
        assert regular_rings(world, nid)[-1][1] == (1, 2, 3, 4, 5)
    assert (1, 2, 3) in transitional_installs(world, 1)
    assert (4, 5) in transitional_installs(world, 4)


def test_crash_during_recovery():
    """Totem §5.3 (recovery): a member failing during RECOVERY loses the token of the
    forming ring; the others return to GATHER (memb_recovery_state_token_loss) and still
    deliver one agreed set of old-ring messages."""
    # node 4 joins late; node 2 dies the moment it enters RECOVERY for that ring
    world = run(4, [Fault(BOOTED_US, "crash", 4, (0,)), Fault(1_000_000, "restart", 4)],
                tripwires={2: (lambda n: n.state == RECOVERY and n.ring_id[1] > 8,
                               [(0, "crash", 2, (0,)), (600_000, "restart", 2, ())])})
    tripped_us = world.tripwires[2].fired_at_us
    for nid in (1, 3, 4):
        after = [tuple(e["members"]) for e in world.logs[nid] if e["ev"] == "install"
                 and e["kind"] == "regular" and e["t_us"] > tripped_us]
        assert after and 2 not in after[0], f"node {nid} after the crash: {after[:1]}"


def test_crash_of_the_representative_during_commit():
    """totemsrp.c memb_state_commit_enter / token loss in COMMIT: the representative that
    created the commit token dies while it circulates; the others time out in COMMIT,
    gather again and form a ring with a new representative."""
    world = run(4, [Fault(BOOTED_US, "crash", 4, (0,)), Fault(1_000_000, "restart", 4)],
                tripwires={1: (lambda n: n.state == COMMIT and n.ring_id[1] > 8,
                               [(0, "crash", 1, (0,)), (700_000, "restart", 1, ())])})
    tripped_us = world.tripwires[1].fired_at_us
    for nid in (2, 3):
        after = [tuple(e["ring"]) for e in world.logs[nid] if e["ev"] == "install"
                 and e["kind"] == "regular" and e["t_us"] > tripped_us]
        assert after and after[0][0] == 2, f"node {nid}: first ring after the crash {after[:1]}"


def test_message_loss_during_recovery():
    """Totem §5.3: old-ring messages re-sent in RECOVERY travel as ordinary (encapsulated)
    messages of the new ring, so loss there is repaired by the retransmission list and
    every transitional member ends up with the same old-ring set (EVS failure atomicity)."""
    run(5, [Fault(700_000, "crash", 5, (0,)), Fault(1_600_000, "restart", 5)],
        tripwires={3: (lambda n: n.state == RECOVERY,
                       [(0, "loss", 0, (0.35,)), (60_000, "loss_end", 0, ())])})


def test_fragmented_message_across_a_configuration_change():
    """totempg.c assembly across configuration changes: fragments sent in an old ring and
    never completed are discarded at the next regular configuration; the sender starts
    the message over in the new ring, so it is delivered whole, once, everywhere."""
    world = run(4, [Fault(900_000, "partition", 0, ((1, 2), (3, 4))),
                    Fault(1_700_000, "heal_partition", 0)], seed=5)
    big = [(nid, tuple(e["id"])) for nid in world.nodeids for e in world.logs[nid]
           if e["ev"] == "send" and e["size"] > 2 * 1400]
    assert big, "the workload sent no fragmented message"
    # a fragmented message cut by the partition is sent again whole, so its sender still
    # delivers it (had the partial been lost, it would be missing here)
    for nid, msg_id in big:
        assert delivered_ids(world, nid).count(msg_id) == 1, (nid, msg_id)


def test_seq_wraps_past_2_to_the_32():
    """totemsrp.c SEQNO_START_MSG (its rollover test hook): every ring starts its sequence
    just below 2^32, so ordering, retransmission and recovery run across the wrap."""
    sim = SimConfig.for_seed(1, 4, fault_ms=FAULT_MS)
    base = make_totem_config(sim)
    totem = TotemConfig(**{**base.__dict__, "seqno_start": 2**32 - 20})
    world = run(4, [Fault(1_000_000, "crash", 2, (0,)), Fault(1_600_000, "restart", 2),
                    Fault(600_000, "loss", 0, (0.2,)), Fault(800_000, "loss_end", 0)],
                totem=totem)
    rseqs = [e["rseq"] for e in world.logs[1] if e["ev"] == "deliver"]
    assert max(rseqs) >> 12 > 2**32, "no message was ordered past the wrap"


@pytest.mark.parametrize("nodes", [3, 7])
def test_healthy_ring_never_reconfigures(nodes):
    """EVS liveness: with no fault injected, once the ring of every node has formed there
    is no further configuration change (no spurious token loss under load)."""
    world = run(nodes, [])
    everyone = tuple(world.nodeids)
    for nid in world.nodeids:
        rings = regular_rings(world, nid)
        first_full = next(i for i, (_, members) in enumerate(rings) if members == everyone)
        assert first_full == len(rings) - 1, rings
