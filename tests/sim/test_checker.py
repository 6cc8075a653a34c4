"""Tests of the EVS checker (coroproc.sim.checker): it passes a correct history and, for
every property, reports a history broken in exactly that way.

The histories come from `Cluster`, a tiny ideal EVS cluster that writes the logs a correct
Totem core would (docs/event-log.md): rings form with a transitional then a regular
configuration, messages are ordered per ring, messages in flight when a ring breaks are
delivered in the transitional configuration of the nodes that had them, queued messages
survive membership changes, crashes lose the queue, ring seqs persist over restarts.
"""

from __future__ import annotations

import copy
import random
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coroproc.sim.checker import (
    VIOLATIONS_PER_PROPERTY_MAX,
    LogFormatError,
    Violation,
    check_liveness,
    check_safety,
)

# ---------------------------------------------------------------- an ideal EVS cluster


class Ring:
    def __init__(self, rep: int, seq: int, members: tuple[int, ...]):
        self.rep, self.seq, self.members = rep, seq, members
        self.next_rseq = 1

    @property
    def ident(self) -> list[int]:
        return [self.rep, self.seq]


class Cluster:
    """Writes per-node logs of a correct run; every step is one of Totem's observable moves."""

    def __init__(self, nodes, boot_transitional: bool = True, transitional_ring: str = "new"):
        self.nodes = tuple(nodes)
        self.logs: dict[int, list[dict]] = {n: [] for n in self.nodes}
        self.t_us = 0
        self.up = {n: True for n in self.nodes}
        self.ring: dict[int, Ring | None] = {n: None for n in self.nodes}
        self.ring_seq_seen = {n: 0 for n in self.nodes}  # persisted across restarts
        self.queue: dict[int, list[tuple]] = {n: [] for n in self.nodes}  # (id, level, hash)
        self.sender_seq = {n: 0 for n in self.nodes}  # kept across restarts by the harness
        self.boot_transitional = boot_transitional
        self.transitional_ring = transitional_ring  # Corosync names it after the new ring

    def _log(self, node: int, ev: str, **fields) -> dict:
        self.t_us += 10
        event = {"ev": ev, "node": node, "t_us": self.t_us, **fields}
        self.logs[node].append(event)
        return event

    def send(self, node: int, level: str = "agreed") -> tuple[int, int]:
        assert self.up[node]
        self.sender_seq[node] += 1
        m = (node, self.sender_seq[node])
        digest = zlib.crc32(struct.pack("<IQ", *m) + b"payload")
        self._log(node, "send", id=list(m), size=16, hash=digest, level=level)
        self.queue[node].append((m, level, digest))
        return m

    def _deliver(self, ring: Ring, receivers, batch) -> None:
        for m, level, digest in batch:
            rseq = ring.next_rseq
            ring.next_rseq += 1
            for n in receivers:
                self._log(n, "deliver", id=list(m), ring=ring.ident, rseq=rseq, level=level, hash=digest)

    def order(self) -> None:
        """Every operational ring orders its members' queues; all members deliver."""
        rings = {id(r): r for n, r in self.ring.items() if r is not None and self.up[n]}
        for ring in rings.values():
            members = [n for n in ring.members if self.ring[n] is ring]
            batch = [item for n in members for item in self.queue[n]]
            for n in members:
                self.queue[n] = []
            self._deliver(ring, members, batch)

    def _install(self, node: int, ring: Ring, kind: str, members) -> None:
        self._log(node, "install", ring=ring.ident, kind=kind, members=sorted(members))

    def reform(self, groups, in_flight=(), recovered_first: bool = False) -> list[Ring]:
        """Each group forms a new ring. Queued messages of senders in `in_flight` had been
        multicast on the old ring just before it broke: only their transitional set gets them,
        in the transitional configuration, or just before it if `recovered_first`."""
        new_rings = []
        for group in groups:
            assert all(self.up[n] for n in group), group
            seq = max(self.ring_seq_seen[n] for n in group) + 4
            new = Ring(min(group), seq, tuple(sorted(group)))
            by_old: dict[int, list[int]] = {}
            for n in new.members:
                by_old.setdefault(id(self.ring[n]) if self.ring[n] else -n, []).append(n)
            for moving in by_old.values():
                self._transition(moving, new, in_flight, recovered_first)
            for n in new.members:
                self._install(n, new, "regular", new.members)
                self.ring[n] = new
                self.ring_seq_seen[n] = seq
            new_rings.append(new)
        return new_rings

    def _transition(self, moving: list[int], new: Ring, in_flight, recovered_first: bool) -> None:
        old = self.ring[moving[0]]
        if old is None:
            if self.boot_transitional:
                self._install(moving[0], new, "transitional", moving)
            return
        batch = []
        for n in moving:
            if n in in_flight:
                batch.extend(self.queue[n])
                self.queue[n] = []
        # Agreed messages may be delivered before the transitional install; a safe one (and
        # all after it) may not: the members that are gone never acknowledged it.
        first_safe = next((i for i, (_, level, _) in enumerate(batch) if level == "safe"), len(batch))
        early = first_safe if recovered_first else 0
        self._deliver(old, moving, batch[:early])
        named = new if self.transitional_ring == "new" else old
        for n in moving:  # Totem's rule: the new members that come from the same old ring
            self._install(n, named, "transitional", moving)
        self._deliver(old, moving, batch[early:])

    def crash(self, node: int) -> None:
        self._log(node, "crash")
        self.up[node] = False
        self.ring[node] = None
        self.queue[node] = []

    def restart(self, node: int) -> None:
        self._log(node, "restart")
        self.up[node] = True

    def pause(self, node: int) -> None:
        self._log(node, "pause")
        self._log(node, "resume")


# ---------------------------------------------------------------- the clean history


class Scenario:
    """The hand-built history every mutation test starts from, with the facts they need."""

    def __init__(self):
        c = Cluster([1, 2, 3, 4])
        (self.ring_a,) = c.reform([[1, 2, 3, 4]])
        for n in c.nodes:
            c.send(n)
            c.send(n, "safe")
        c.order()
        self.last_of_1_in_a = c.send(1)
        self.safe_last_of_2_in_a = c.send(2, "safe")
        c.order()
        c.send(2)  # in flight for {1, 2}
        c.send(3)  # in flight for {3, 4}
        self.queued_over_change = c.send(4)  # ordered only in the next ring
        self.left, self.right = c.reform([[1, 2], [3, 4]], in_flight={2, 3})
        c.send(1, "safe")
        self.last_of_2_in_left = c.send(2)
        c.send(3)
        self.last_of_3_in_right = c.send(3)
        c.order()
        c.crash(4)
        (self.solo3,) = c.reform([[3]])
        c.send(3)
        c.order()
        c.restart(4)
        (self.solo4,) = c.reform([[4]])
        c.pause(2)
        c.send(1)  # in flight for {1, 2}
        self.quiet_from_us = c.t_us
        (self.merged,) = c.reform([[1, 2, 3, 4]], in_flight={1})
        self.settle_us = c.t_us
        self.batch3 = [c.send(3) for _ in range(3)]
        for n in (1, 2, 4):
            c.send(n, "safe" if n == 1 else "agreed")
        c.order()
        self.late_sends = [c.send(n) for n in c.nodes]
        c.order()
        self.end_us = c.t_us + 1000
        self.bound_us = self.settle_us - self.quiet_from_us + 5
        self.logs = c.logs

    def liveness(self, logs=None, **overrides):
        args = dict(quiet_from_us=self.quiet_from_us, end_us=self.end_us, bound_us=self.bound_us,
                    connected_live={1, 2, 3, 4})
        args.update(overrides)
        return check_liveness(self.logs if logs is None else logs, **args)


@pytest.fixture
def sc() -> Scenario:
    return Scenario()


def find(log: list[dict], **match) -> int:
    """Index of the only event of `log` with these fields (ids and rings as lists)."""
    hits = [i for i, e in enumerate(log) if all(e.get(k) == v for k, v in match.items())]
    assert len(hits) == 1, (match, hits)
    return hits[0]


def delivery(log, m) -> int:
    return find(log, ev="deliver", id=list(m))


def install(log, ring: Ring, kind: str) -> int:
    return find(log, ev="install", ring=ring.ident, kind=kind)


def props(violations: list[Violation]) -> set:
    return {v.prop for v in violations}


def assert_only(violations: list[Violation], prop, allowed=()) -> None:
    """`prop` is reported and nothing else but `allowed`; shows the report on failure."""
    found = props(violations)
    assert prop in found, violations
    assert found <= {prop, *allowed}, violations


# ---------------------------------------------------------------- clean histories pass


def test_clean_history_has_no_violation(sc):
    assert check_safety(sc.logs) == []


def test_clean_history_covers_the_interesting_cases(sc):
    """The clean history really has the moves the mutation tests rely on."""
    kinds = [e["kind"] for e in sc.logs[1] if e["ev"] == "install"]
    assert kinds.count("transitional") == 3 and kinds.count("regular") == 3
    assert [e["ev"] for e in sc.logs[4]].count("restart") == 1
    # A message queued in ring [1, 4] and ordered by the next ring is not a self-delivery miss.
    send_at = find(sc.logs[4], ev="send", id=list(sc.queued_over_change))
    right_at = install(sc.logs[4], sc.right, "regular")
    assert send_at < right_at < delivery(sc.logs[4], sc.queued_over_change)


def test_transitional_named_after_the_old_ring_passes():
    """In a partition both sides' transitional configurations then share one ring id."""
    c = Cluster([1, 2, 3, 4], transitional_ring="old")
    c.reform([[1, 2, 3, 4]])
    for n in (1, 3, 4):
        c.send(n)
    c.reform([[1, 2], [3, 4]], in_flight={1, 3})
    c.order()
    c.reform([[1, 2, 3, 4]], in_flight={4})
    c.order()
    trans = [e for e in c.logs[1] + c.logs[3] if e["ev"] == "install" and e["kind"] == "transitional"]
    assert trans[1]["ring"] == trans[3]["ring"] and trans[1]["members"] != trans[3]["members"]
    assert check_safety(c.logs) == []


def test_recovered_messages_before_the_transitional_install_pass():
    c = Cluster([1, 2, 3])
    c.reform([[1, 2, 3]])
    for n, level in ((1, "agreed"), (1, "safe"), (3, "agreed")):
        c.send(n, level)
    c.reform([[1, 2], [3]], in_flight={1, 3}, recovered_first=True)
    c.order()
    first_trans = install(c.logs[1], c.ring[1], "transitional")
    assert delivery(c.logs[1], (1, 1)) < first_trans < delivery(c.logs[1], (1, 2))
    assert check_safety(c.logs) == []


def test_empty_and_trivial_logs():
    assert check_safety({}) == []
    assert check_safety({1: [], 2: []}) == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_correct_histories_pass(data):
    """No false positives: any history the ideal cluster writes is clean."""
    nodes = [1, 2, 3, 4, 5][: data.draw(st.integers(2, 5), label="nodes")]
    c = Cluster(nodes, boot_transitional=data.draw(st.booleans(), label="boot_transitional"),
                transitional_ring=data.draw(st.sampled_from(["new", "old"]), label="transitional_ring"))
    c.reform([nodes])
    for _ in range(data.draw(st.integers(1, 25), label="steps")):
        step = data.draw(st.sampled_from(["send", "send", "order", "reform", "crash", "restart"]))
        up = [n for n in nodes if c.up[n]]
        down = [n for n in nodes if not c.up[n]]
        if step == "send" and up:
            c.send(data.draw(st.sampled_from(up)), data.draw(st.sampled_from(["agreed", "safe"])))
        elif step == "order":
            c.order()
        elif step == "reform" and up:
            labels = data.draw(st.lists(st.integers(0, 2), min_size=len(up), max_size=len(up)))
            groups = [[n for n, g in zip(up, labels) if g == k] for k in range(3)]
            in_flight = set(data.draw(st.lists(st.sampled_from(up), max_size=len(up))))
            c.reform([g for g in groups if g], in_flight=in_flight,
                     recovered_first=data.draw(st.booleans(), label="recovered_first"))
        elif step == "crash" and up:
            c.crash(data.draw(st.sampled_from(up)))
        elif step == "restart" and down:
            c.restart(data.draw(st.sampled_from(down)))
            c.reform([[n] for n in nodes if c.up[n] and c.ring[n] is None])
    assert check_safety(c.logs) == []


# ---------------------------------------------------------------- one test per property


def test_1_regular_members_disagree(sc):
    sc.logs[1][install(sc.logs[1], sc.merged, "regular")]["members"] = [1, 2, 3]
    assert_only(check_safety(sc.logs), 1)


def test_1_transitional_ring_disagrees(sc):
    # Node 2's transitional from `left` to `merged` names the old ring, node 1's the new one.
    sc.logs[2][install(sc.logs[2], sc.merged, "transitional")]["ring"] = sc.left.ident
    assert_only(check_safety(sc.logs), 1)


def test_2_node_not_in_its_configuration(sc):
    # Transitional sets that leave their own node out: at node 3's merge, and at node 4's
    # boot (where the node alone is the only right answer).
    sc.logs[3][install(sc.logs[3], sc.merged, "transitional")]["members"] = []
    sc.logs[4][install(sc.logs[4], sc.solo4, "transitional")]["members"] = []
    violations = check_safety(sc.logs)
    assert_only(violations, 2)
    assert sorted(v.node for v in violations) == [3, 4]


def test_3_ring_id_goes_back_after_restart(sc):
    log = sc.logs[4]
    log[install(log, sc.solo4, "transitional")]["ring"] = [4, 6]
    log[install(log, sc.solo4, "regular")]["ring"] = [4, 6]  # seq 6 < 8 of ring [3, 8]
    assert_only(check_safety(sc.logs), 3)


def test_3_same_seq_lower_rep(sc):
    log = sc.logs[4]
    log[install(log, sc.solo4, "transitional")]["ring"] = [2, 8]
    log[install(log, sc.solo4, "regular")]["ring"] = [2, 8]  # (8, 2) < (8, 3) of ring [3, 8]
    assert_only(check_safety(sc.logs), 3)


def test_4_delivered_twice(sc):
    log = sc.logs[2]
    at = delivery(log, (1, 1))
    log.insert(at + 1, dict(log[at]))
    assert_only(check_safety(sc.logs), 4)


def test_4_delivered_with_another_hash(sc):
    log = sc.logs[2]
    log[delivery(log, (1, 1))]["hash"] ^= 0xFF
    assert_only(check_safety(sc.logs), 4)


def test_4_delivered_but_never_sent(sc):
    del sc.logs[1][find(sc.logs[1], ev="send", id=[1, 1])]
    assert_only(check_safety(sc.logs), 4)


def test_4_id_sent_twice(sc):
    log = sc.logs[1]
    log.append(dict(log[find(log, ev="send", id=[1, 1])]))
    assert_only(check_safety(sc.logs), 4)


def test_4_restarted_node_may_deliver_again():
    """Delivery is unique per incarnation: a restarted process starts from nothing."""
    c = Cluster([1])
    c.reform([[1]])
    m = c.send(1)
    c.order()
    c.crash(1)
    c.restart(1)
    ring = c.reform([[1]])[0]
    again = dict(next(e for e in c.logs[1] if e["ev"] == "deliver"))
    assert again["id"] == list(m)
    c.logs[1].append(again)
    violations = check_safety(c.logs)
    assert 4 not in props(violations), violations
    assert_only(violations, 5, allowed={6})  # delivered old ring's message in ring `ring`
    assert ring.seq > 4


def test_5_rseq_disagrees(sc):
    log = sc.logs[2]
    log[delivery(log, sc.late_sends[-1])]["rseq"] += 1000
    assert_only(check_safety(sc.logs), 5)


def test_5_delivery_outside_any_configuration(sc):
    log = sc.logs[4]
    stray = dict(sc.logs[1][delivery(sc.logs[1], (1, 1))], node=4)
    log.insert(find(log, ev="restart") + 1, stray)
    assert_only(check_safety(sc.logs), 5)


def test_5_delivered_in_a_regular_configuration_of_another_ring(sc):
    # Node 2 delivers in `merged` the message ordered by `left` that it had delivered in
    # `left`'s transitional configuration; everyone else keeps it there.
    log = sc.logs[2]
    m = (1, 5)
    event = log.pop(delivery(log, m))
    log.insert(install(log, sc.merged, "regular") + 1, event)
    violations = check_safety(sc.logs)
    assert 5 in props(violations), violations


def test_6_two_deliveries_swapped(sc):
    log = sc.logs[3]
    first = delivery(log, sc.batch3[-1])
    assert log[first + 1]["ev"] == "deliver" and log[first + 1]["id"][0] != 3
    log[first], log[first + 1] = log[first + 1], log[first]
    assert_only(check_safety(sc.logs), 6)


def test_6_two_messages_at_one_position(sc):
    # Node 1 (read first) reports a message at the position of another message; the other
    # nodes then disagree with node 1 about that message's position too (5).
    log = sc.logs[1]
    a, b = sc.late_sends[0], sc.late_sends[1]
    at_a, at_b = delivery(log, a), delivery(log, b)
    log[at_b]["rseq"] = log[at_a]["rseq"]
    violations = check_safety(sc.logs)
    assert 6 in props(violations), violations
    assert props(violations) <= {5, 6}


def test_7_gap_inside_a_configuration(sc):
    log = sc.logs[2]
    del log[delivery(log, sc.batch3[1])]
    assert_only(check_safety(sc.logs), 7)


def test_7_gap_in_transitional_allowed_only_for_non_members():
    """Holes in a transitional configuration are fine for senders outside it, not inside."""
    c = Cluster([1, 2, 3])
    (ring,) = c.reform([[1, 2, 3]])
    c.send(3)
    c.order()
    sent = [c.send(3) for _ in range(3)]
    c.crash(3)  # its 3 messages were multicast; 1 and 2 received the 1st and the 3rd only
    for n in (1, 2):
        log = c.logs[n]
        log.append({"ev": "install", "node": n, "t_us": 900, "ring": [1, 8], "kind": "transitional",
                    "members": [1, 2]})
        for m, rseq in ((sent[0], 2), (sent[2], 4)):
            digest = c.logs[3][find(c.logs[3], ev="send", id=list(m))]["hash"]
            log.append({"ev": "deliver", "node": n, "t_us": 901, "id": list(m), "ring": ring.ident,
                        "rseq": rseq, "level": "agreed", "hash": digest})
        log.append({"ev": "install", "node": n, "t_us": 902, "ring": [1, 8], "kind": "regular",
                    "members": [1, 2]})
    assert check_safety(c.logs) == []
    for n in (1, 2):  # make node 3 a member of the transitional set: now the hole is a gap
        for e in c.logs[n][-4:]:
            if e["ev"] == "install":
                e["members"] = [1, 2, 3]
    assert_only(check_safety(c.logs), 7)


def test_7_fifo_order_reversed(sc):
    a, b = sc.batch3[0], sc.batch3[1]
    for log in sc.logs.values():
        ia, ib = delivery(log, a), delivery(log, b)
        for key in ("id", "hash"):
            log[ia][key], log[ib][key] = log[ib][key], log[ia][key]
    violations = check_safety(sc.logs)
    assert_only(violations, 7)
    assert sorted(v.node for v in violations) == [1, 2, 3, 4]  # one each: no knock-on gap


def test_7_causal_order(sc):
    # Node 2 sent m2 and everyone delivered m2 before m1; move the send after m1's delivery.
    log = sc.logs[2]
    m2 = sc.late_sends[1]
    m1 = sc.late_sends[2]
    assert m2[0] == 2 and delivery(log, m2) < delivery(log, m1)
    event = log.pop(find(log, ev="send", id=list(m2)))
    log.insert(delivery(log, m1) + 1, event)
    assert_only(check_safety(sc.logs), 7)


def test_8_different_sets_before_same_transition(sc):
    log = sc.logs[2]
    del log[delivery(log, sc.last_of_1_in_a)]
    assert_only(check_safety(sc.logs), 8)


def test_9_own_message_not_delivered(sc):
    log = sc.logs[3]
    del log[delivery(log, sc.last_of_3_in_right)]
    violations = check_safety(sc.logs)
    assert_only(violations, 9)
    assert [v.node for v in violations] == [3]


def test_9_own_message_delivered_too_late(sc):
    log = sc.logs[3]
    event = log.pop(delivery(log, sc.last_of_3_in_right))
    log.insert(install(log, sc.solo3, "regular") + 1, event)
    assert 9 in props(check_safety(sc.logs))


def test_9_exempt_when_sender_crashes(sc):
    """Node 4 crashes after ring `right`; had it not delivered its message, that is fine."""
    log = sc.logs[4]
    del log[delivery(log, sc.queued_over_change)]
    # Node 4 has no later regular install in that incarnation, and no pair of nodes moves
    # from `right` to the same next configuration, so nothing else is broken either.
    assert check_safety(sc.logs) == []


def test_10_safe_message_missing_at_members(sc):
    m = sc.safe_last_of_2_in_a
    for n in (3, 4):
        del sc.logs[n][delivery(sc.logs[n], m)]
    violations = check_safety(sc.logs)
    assert_only(violations, 10)
    assert {v.node for v in violations} == {3, 4}


def test_10_safe_message_delivered_as_agreed(sc):
    log = sc.logs[2]
    log[delivery(log, (1, 2))]["level"] = "agreed"
    assert_only(check_safety(sc.logs), 10)


def test_11_transitional_members_not_the_intersection(sc):
    for n in (1, 2):
        sc.logs[n][install(sc.logs[n], sc.merged, "transitional")]["members"] = [1, 2, 3]
    violations = check_safety(sc.logs)
    assert_only(violations, 11)
    assert {v.node for v in violations} == {1, 2}


def test_11_transitional_members_are_who_moved_together():
    """Node 3 took part in forming ring X with 1 but failed before installing it, so it
    comes to the next ring from its older ring: it is not in node 1's transitional set
    even though it is in both of node 1's memberships. Listing it there is a violation."""
    c = Cluster([1, 2, 3])
    (a,) = c.reform([[1, 2, 3]])
    c.send(1)
    c.order()
    x = Ring(1, a.seq + 4, (1, 3))  # node 2 went away; node 3 never completed ring x
    c.logs[1].append({"ev": "install", "node": 1, "t_us": c.t_us + 1, "ring": x.ident,
                      "kind": "transitional", "members": [1]})
    c.logs[1].append({"ev": "install", "node": 1, "t_us": c.t_us + 2, "ring": x.ident,
                      "kind": "regular", "members": [1, 3]})
    c.ring[1] = x
    c.ring_seq_seen[1] = x.seq
    c.t_us += 10
    (b,) = c.reform([[1, 3]])
    assert [e["members"] for e in c.logs[1] if e["ev"] == "install"][-2] == [1]
    assert check_safety(c.logs) == []
    log = c.logs[1]
    log[install(log, b, "transitional")]["members"] = [1, 3]  # the old & new intersection
    violations = check_safety(c.logs)
    assert_only(violations, 11)
    assert "node 3 came from ring [1, 4]" in violations[0].message


def test_11_transitional_not_followed_by_regular(sc):
    log = sc.logs[3]
    at = install(log, sc.merged, "transitional")
    log.insert(at + 1, dict(log[at]))
    assert_only(check_safety(sc.logs), 11)


def test_11_transitional_delivers_a_new_ring_message():
    c = Cluster([1, 2])
    c.reform([[1, 2]])
    c.send(1)
    c.order()
    (new,) = c.reform([[1, 2]])
    m = c.send(2)
    c.order()
    for n in (1, 2):  # both nodes deliver m (ordered by `new`) inside the transitional config
        log = c.logs[n]
        event = log.pop(delivery(log, m))
        log.insert(install(log, new, "transitional") + 1, event)
    assert_only(check_safety(c.logs), 11)


def test_12_install_splits_common_messages_differently(sc):
    # Node 2 delivers `left`'s last message after the merge's transitional install, node 1
    # before it. Ring tags make this also a virtual synchrony (8) violation.
    log = sc.logs[2]
    event = log.pop(delivery(log, sc.last_of_2_in_left))
    log.insert(install(log, sc.merged, "transitional") + 1, event)
    assert_only(check_safety(sc.logs), 12, allowed={8})


# ---------------------------------------------------------------- reporting and bad input


def test_violations_are_capped_per_property(sc):
    log = sc.logs[2]
    at = [i for i, e in enumerate(log) if e["ev"] == "deliver"]
    for i in at:
        log[i]["hash"] ^= 1
    violations = [v for v in check_safety(sc.logs) if v.prop == 4]
    assert len(at) > VIOLATIONS_PER_PROPERTY_MAX
    assert len(violations) == VIOLATIONS_PER_PROPERTY_MAX + 1
    assert violations[-1].node is None and "more violations of property 4" in violations[-1].message


def test_violation_names_node_ring_message_and_index(sc):
    log = sc.logs[2]
    at = delivery(log, sc.late_sends[-1])
    log[at]["rseq"] += 1000
    (v,) = check_safety(sc.logs)
    assert v == Violation(v.prop, 2, v.message) and v.prop == 5
    assert f"event #{at}" in v.message and str(sc.late_sends[-1]) in v.message
    with pytest.raises(AttributeError):
        v.prop = 1  # frozen


@pytest.mark.parametrize("bad, where", [
    ({"ev": "deliver", "node": 2, "t_us": 1}, "event #0"),
    ({"ev": "install", "node": 2, "ring": [1], "kind": "regular", "members": [2]}, "event #0"),
    ({"ev": "install", "node": 2, "ring": [1, 4], "kind": "odd", "members": [2]}, "event #0"),
    ({"ev": "send", "node": 2, "id": [1, 1], "hash": 1, "level": "agreed"}, "sender is not"),
    ({"ev": "send", "node": 3, "id": [3, 1], "hash": 1, "level": "agreed"}, "node 3"),
    ({"node": 2}, "event #0"),
    ("text", "event #0"),
    ({"ev": ["install"], "node": 2}, "event #0"),
])
def test_malformed_event_raises_log_format_error(bad, where):
    with pytest.raises(LogFormatError, match="node 2") as info:
        check_safety({2: [bad]})
    assert where in str(info.value)
    assert isinstance(info.value, ValueError)


def test_event_after_crash_is_a_format_error(sc):
    log = sc.logs[4]
    log.insert(find(log, ev="crash") + 1, dict(log[find(log, ev="send", id=[4, 1])]))
    with pytest.raises(LogFormatError, match=r"node 4 event #\d+: 'send' after 'crash'"):
        check_safety(sc.logs)


def test_logs_of_the_wrong_shape_raise_value_error():
    for logs in ([], {"1": []}, {1: "events"}, {1: {"ev": "crash"}}):
        with pytest.raises(ValueError):
            check_safety(logs)


def test_unknown_events_are_skipped(sc):
    sc.logs[1].insert(3, {"ev": "confchg", "node": 1, "t_us": 1, "group": "a"})
    assert check_safety(sc.logs) == []


_JUNK = st.one_of(st.none(), st.booleans(), st.integers(-3, 2**65), st.text(max_size=3),
                  st.lists(st.integers(0, 9), max_size=3),
                  st.dictionaries(st.text(max_size=2), st.integers()))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_garbage_gives_violations_or_log_format_error(data):
    """Never any other exception, whatever the damage."""
    sc = Scenario()
    for _ in range(data.draw(st.integers(1, 4))):
        node = data.draw(st.sampled_from([1, 2, 3, 4]))
        log = sc.logs[node]
        i = data.draw(st.integers(0, len(log) - 1))
        action = data.draw(st.sampled_from(["field", "drop", "dup", "swap", "move"]))
        if action == "field":
            log[i] = dict(log[i])
            log[i][data.draw(st.sampled_from(sorted(log[i]) + ["ev", "x"]))] = data.draw(_JUNK)
        elif action == "drop":
            del log[i]
        elif action == "dup":
            log.insert(i, copy.deepcopy(log[i]))
        elif action in ("swap", "move"):
            j = data.draw(st.integers(0, len(log) - 1))
            if action == "swap":
                log[i], log[j] = log[j], log[i]
            else:
                log.insert(j, log.pop(i))
    for check in (lambda: check_safety(sc.logs), lambda: sc.liveness()):
        try:
            result = check()
        except LogFormatError:
            continue
        assert isinstance(result, list) and all(isinstance(v, Violation) for v in result)


# ---------------------------------------------------------------- liveness


def test_liveness_holds_in_the_clean_history(sc):
    assert sc.liveness() == []


def test_liveness_a_not_settled_on_the_live_set(sc):
    failures = sc.liveness(connected_live={1, 2, 3})
    assert failures and all(f.prop == "liveness" and f.message.startswith("(a)") for f in failures)
    assert {f.node for f in failures} == {1, 2, 3}


def test_liveness_a_not_settled_in_time(sc):
    """A bound shorter than the merge leaves nodes in their old rings at settle time."""
    failures = sc.liveness(bound_us=1)
    assert any(f.message.startswith("(a)") for f in failures), failures
    assert any(f.message.startswith("(b)") for f in failures), failures  # the merge comes later


def test_liveness_a_split_into_two_rings(sc):
    log = sc.logs[4]
    at = install(log, sc.merged, "regular")
    log[at]["ring"] = [4, 99]  # same members, another ring id
    failures = sc.liveness()
    assert [f.message[:3] for f in failures] == ["(a)"], failures
    assert "different rings" in failures[0].message


def test_liveness_b_reconfiguration_while_quiet(sc):
    log = sc.logs[2]
    t = log[-1]["t_us"] + 5
    log.append({"ev": "install", "node": 2, "t_us": t, "ring": [1, 20], "kind": "transitional",
                "members": [1, 2, 3, 4]})
    failures = sc.liveness()
    assert failures and all(f.message.startswith("(b)") for f in failures), failures
    assert [f.node for f in failures] == [2]


def test_liveness_c_late_message_not_delivered(sc):
    m = sc.late_sends[0]
    log = sc.logs[3]
    del log[delivery(log, m)]
    failures = sc.liveness()
    assert len(failures) == 1 and failures[0].message.startswith("(c)"), failures
    assert str(m) in failures[0].message and "[3]" in failures[0].message


def test_liveness_c_ignores_messages_sent_too_close_to_the_end(sc):
    m = sc.late_sends[0]
    del sc.logs[3][delivery(sc.logs[3], m)]
    send_t = sc.logs[1][find(sc.logs[1], ev="send", id=list(m))]["t_us"]
    assert sc.liveness(end_us=send_t + sc.bound_us - 1) == []


def test_liveness_rejects_bad_arguments(sc):
    with pytest.raises(ValueError):
        sc.liveness(bound_us=-1)
    with pytest.raises(ValueError):
        sc.liveness(connected_live=set())
    with pytest.raises(ValueError):
        sc.liveness(end_us=1.5)
    assert sc.liveness(connected_live={1, 2, 3, 4, 9})[0].message.startswith("(a) node 9")


# ---------------------------------------------------------------- cost


def big_history(nodes: int = 5, events_min: int = 50_000, seed: int = 1) -> dict:
    """A long correct run: traffic on every ring, partitions, merges, a crash and restart."""
    rng = random.Random(seed)
    ids = list(range(1, nodes + 1))
    c = Cluster(ids)
    c.reform([ids])
    rounds = 0
    while sum(len(log) for log in c.logs.values()) < events_min:
        for _ in range(20):
            c.send(rng.choice([n for n in ids if c.up[n]]), rng.choice(["agreed", "agreed", "safe"]))
        c.order()
        rounds += 1
        if rounds % 40 == 0:
            up = [n for n in ids if c.up[n]]
            half = up[: len(up) // 2] or up
            rest = [n for n in up if n not in half]
            c.reform([g for g in (half, rest) if g], in_flight=set(rng.sample(up, 2)))
        elif rounds % 40 == 20:
            down = [n for n in ids if not c.up[n]]
            for n in down:
                c.restart(n)
            if not down:
                c.crash(rng.choice(ids))
            c.reform([[n for n in ids if c.up[n]]], in_flight={ids[0]})
    return c.logs


def test_a_50k_event_run_is_clean():
    """A long clean history stays clean (its cost is measured in bench/, not asserted here)."""
    logs = big_history()
    assert sum(len(log) for log in logs.values()) >= 40_000
    assert check_safety(logs) == []
