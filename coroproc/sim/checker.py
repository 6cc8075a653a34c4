"""Extended Virtual Synchrony checker over per-node event logs.

Owns: deciding whether one run's logs (format: docs/event-log.md) satisfy the safety
properties 1-12 of shared/ref/evs-properties.md, and the bounded liveness checks.
Property 13 (the CPG layer) is checked elsewhere.

    violations = check_safety(logs)              # logs: {nodeid: [event dict, ...]}
    failures = check_liveness(logs, quiet_from_us=..., end_us=..., bound_us=...,
                              connected_live={...})

Both return a list of `Violation`; empty means the run is correct. At most
VIOLATIONS_PER_PROPERTY_MAX are listed per property, plus one line saying how many more
were found, so a broken run reports quickly. A log the checker cannot read (missing or
ill-typed field, `node` not matching the log it is in, an event from a crashed node)
raises `LogFormatError`, a ValueError naming the node and event index; every other
oddity is a Violation. Events whose `ev` is not one of the core's or the harness's
(`install send deliver crash restart pause resume`) are skipped: other layers may write
into the same log.

Theory of operation
-------------------
One pass per node cuts its log into incarnations (a `restart` starts a fresh one) and each
incarnation into segments, one per install: the configuration and the deliveries made in
it. The local checks (2, 3, 4 duplicates, 5 placement, 6 order, 7 FIFO, 11 ring of a
transitional delivery) run inside that pass. The first delivery of a message read (nodes
in nodeid order) fixes its canonical position `key = (ring seq, ring rep, rseq)`; ring ids
are ordered by seq then rep, so keys order all messages of all rings in one total order.
The cross-node checks then work on dicts and sets of message ids, never on pairs of
deliveries, so the cost grows linearly with the log: about 1.5 us per event on CPython
3.11, some 2.5 times what merely reading the events' fields costs.

Interpretation (what each property means on a finite log)
---------------------------------------------------------
* Configuration: one install event. A delivery happens in the configuration most recently
  installed before it in its node's log, in the same incarnation. A regular configuration
  is identified by its ring id. A transitional configuration is identified by its ring id,
  the ring of the regular configuration before it (its old ring), the ring of the regular
  configuration after it (its new ring) and its members: (ring, kind) alone is not enough,
  because in a merge every old ring's transitional set shares one ring id (the new one,
  as in Corosync) and in a partition every side shares the old one.
* Incarnation: a `crash` ends one; a `restart` starts the next (a `restart` without a
  `crash` counts as a crash). No `install`, `send`, `deliver` or `crash` may come between a
  `crash` and the next `restart`.
* 1 View identity: all regular installs of one ring id list the same members; all
  transitional installs with the same old and new rings carry the same ring id and
  members. Member lists are compared as sets.
* 2 Self-inclusion: a node is a member of every configuration it installs.
* 3 Local monotonicity: the ring ids of a node's regular installs strictly increase (seq,
  then rep), across restarts too (the ring seq is persisted). A transitional install reuses
  the old or the new ring id, so it is checked by 11 instead.
* 4 Integrity: a node delivers an id at most once per incarnation; every delivered id has
  a `send` with the same hash; no id is sent twice.
* 5 Same-view delivery: every delivery of an id, at every node, names the same ring and
  rseq; a delivery in a regular configuration names that configuration's ring. (A delivery
  in a transitional configuration must name its old ring: reported as 11, not also as 5.)
  A delivery before any install of its incarnation is a violation.
* 6 Total order: each key names one message, and each incarnation delivers in strictly
  increasing canonical key. This implies that any two nodes deliver their common messages
  in the same relative order and that the union of all delivery orders is acyclic; it is
  stricter only in requiring each node to follow its ring's sequence, as Totem does.
* 7 FIFO: within one incarnation a sender's sender_seq strictly increases; inside one
  configuration it increases by exactly 1. Gaps are allowed across configuration changes,
  and inside a transitional configuration for senders that are not members of it (their
  lost messages leave holes Totem skips). Causal: when s delivered m1 and later, in the
  same incarnation, sent m2, no node delivers m2 before m1 (a restarted process has no
  causal past). Checked through keys: only a send whose message orders before something
  its sender had already delivered is examined node by node (exact whenever 6 holds).
* 8 Virtual synchrony: nodes that install the same X directly after the same Y
  (consecutive installs of one incarnation) delivered the same set of ids while in Y.
* 9 Self-delivery: the harness logs `send` when the submit is accepted, which can be many
  configurations before the core orders the message (Corosync keeps its new-message queue
  across membership changes). So the deadline counts from the ring that ordered m (its
  canonical ring): the sender must deliver m before its first regular install of a later
  ring that comes after the send, unless it crashes first. A message nobody delivered,
  or a sender whose log ends first, is left to the liveness check. (The brief's stricter
  "before the next regular install after the send" flags every message queued across a
  membership change by a Corosync-like core.)
* 10 Safe delivery: if any node delivered m as "safe" in regular configuration C, every node
  that installed C and then installs the regular configuration after C in the same
  incarnation delivered m before that install (in C or in the transitional configurations
  after it). Nodes that crash or whose log ends first are exempt. Also: a message sent
  "safe" is never delivered as "agreed" in a regular configuration (the core would quietly
  drop the guarantee).
* 11 Transitional configuration T of node p, between regular R_old and R_new in p's log:
  the next install after T is regular (ignoring deliveries, sends, pauses); T's ring id is
  R_old's or R_new's; every delivery in T names R_old's ring; members(T) is within
  members(R_old) & members(R_new) and holds exactly the nodes that moved with p: a member
  q of R_new that installed R_new belongs to T iff q's regular install before R_new was
  R_old too (Totem's rule: the new members whose old ring id is p's). Members of R_new
  that never installed it are not constrained. The brief's members(R_old) & members(R_new)
  is wrong when a node took part in forming a ring but failed before installing it: the
  real core shows this (such a node comes from its older ring). For T at the start of an
  incarnation the old configuration is the node alone (Totem's boot configuration) and T
  may deliver nothing. When the log ends or the node crashes right after T, only
  members(T) <= members(R_old) is checked. Transitional configurations are optional: a
  regular install may follow a regular one.
* 12 Configuration-change atomicity: for nodes p, q that both install X, every message both
  deliver (in the incarnations holding X) is on the same side of X at p and at q. Checked
  first by keys (last key before X everywhere < first key after X everywhere), exactly
  only for the X where that fails.
* Liveness, with settle = quiet_from_us + bound_us: (a) at settle each node of
  connected_live is in a regular configuration (its last install at or before settle)
  whose members are exactly connected_live, all with the same ring; (b) none of them
  installs, crashes or restarts after settle; (c) every message sent by one of them with
  settle < t_us <= end_us - bound_us is delivered by all of them.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

VIOLATIONS_PER_PROPERTY_MAX = 20

REGULAR = "regular"
TRANSITIONAL = "transitional"
_EXAMPLES_MAX = 3  # message ids quoted in one violation

# Keys are (ring seq, ring rep, rseq); () sorts before all of them, (inf,) after.
_KEY_MIN: tuple = ()
_KEY_MAX: tuple = (math.inf,)


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken property: `prop` is 1..12 or "liveness"; `node` is None for a summary."""

    prop: int | str
    node: int | None
    message: str


class LogFormatError(ValueError):
    """The log cannot be interpreted; the message names the node and the event index."""

    def __init__(self, node: object, index: int | None, problem: str, event: object = None):
        where = f"node {node}" if index is None else f"node {node} event #{index}"
        shown = "" if event is None else f": {event!r:.300}"
        super().__init__(f"{where}: {problem}{shown}")


# ---------------------------------------------------------------- formatting helpers


def _ring_str(ring_key: tuple | None) -> str:
    """Ring ids print as the log spells them, [rep, seq]."""
    if ring_key is None:
        return "no ring"
    return f"ring [{ring_key[1]}, {ring_key[0]}]"


def _key_str(key: tuple) -> str:
    return f"[{key[1]}, {key[0]}] rseq {key[2]}"


def _ids_str(ids: Iterable[tuple]) -> str:
    shown = sorted(ids)
    text = ", ".join(str(m) for m in shown[:_EXAMPLES_MAX])
    if len(shown) > _EXAMPLES_MAX:
        text += f" (+{len(shown) - _EXAMPLES_MAX} more)"
    return text


class _Report:
    """Collects violations, keeping at most `per_prop_max` of each property."""

    def __init__(self, per_prop_max: int):
        assert per_prop_max > 0
        self._per_prop_max = per_prop_max
        self._found: list[Violation] = []
        self._counts: dict[int | str, int] = {}

    def add(self, prop: int | str, node: int | None, message: str) -> None:
        count = self._counts.get(prop, 0) + 1
        self._counts[prop] = count
        if count <= self._per_prop_max:
            self._found.append(Violation(prop, node, message))

    def violations(self) -> list[Violation]:
        found = list(self._found)
        for prop, count in self._counts.items():
            if count > self._per_prop_max:
                hidden = count - self._per_prop_max
                name = f"property {prop}" if isinstance(prop, int) else prop
                found.append(Violation(prop, None, f"{hidden} more violations of {name} not listed"))
        # Properties in number order, liveness last; stable inside one property.
        found.sort(key=lambda v: (isinstance(v.prop, str), v.prop if isinstance(v.prop, int) else 0))
        assert len(found) <= len(self._counts) * (self._per_prop_max + 1)
        return found


# ---------------------------------------------------------------- the per-node model


class _Segment:
    """One configuration as one node lived it: the install and what it delivered there."""

    __slots__ = ("kind", "ring_key", "members", "index", "ids", "safe_ids", "old", "next", "ident")

    def __init__(self, kind: str, ring_key: tuple, members: frozenset, index: int):
        self.kind = kind
        self.ring_key = ring_key
        self.members = members
        self.index = index  # event index of the install
        self.ids: list[tuple] = []  # delivered here, in order
        self.safe_ids: list[tuple] = []  # delivered here with level "safe"
        self.old: _Segment | None = None  # the regular install before it, same incarnation
        self.next: _Segment | None = None  # the install after it, same incarnation
        self.ident: tuple = ()


class _Incarnation:
    """One run of a node's process, from log start or `restart` to `crash` or log end."""

    __slots__ = ("node", "number", "segments", "pre_ids", "delivered_at", "sends", "crashed",
                 "in_key_order", "misplaced")

    def __init__(self, node: int, number: int):
        self.node = node
        self.number = number
        self.segments: list[_Segment] = []
        self.pre_ids: list[tuple] = []  # delivered before any install (a violation of 5)
        self.delivered_at: dict[tuple, int] = {}  # id -> event index, in delivery order
        self.sends: list[tuple] = []  # (event index, id, max key delivered before the send)
        self.crashed = False
        self.in_key_order = True
        self.misplaced: set[int] = set()  # event indexes of deliveries reported under 5 or 11

    def is_empty(self) -> bool:
        return not (self.segments or self.delivered_at or self.sends)


class _Run:
    """Tables shared by all nodes of one run."""

    def __init__(self, report: _Report):
        self.report = report
        self.canon: dict[tuple, tuple] = {}  # id -> (key, hash, node, event index), first seen
        self.slots: dict[tuple, tuple] = {}  # key -> id
        self.sends: dict[tuple, tuple] = {}  # id -> (hash, level, node, event index)
        self.odd_hashes: list[tuple] = []  # (id, hash, node, index) differing from canon's
        self.incarnations: list[_Incarnation] = []

    def key_of(self, m: tuple) -> tuple:
        return self.canon[m][0]


# ---------------------------------------------------------------- the single pass per node


def _int_pair(value: object) -> tuple[int, int] | None:
    """A [a, b] pair of plain ints (bools excluded), else None."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        a, b = value
        if type(a) is int and type(b) is int:
            return a, b
    return None


class _NodeScan:
    """Walks one node's log once: builds its incarnations, runs the local checks.

    `scan` is the hot loop (about 1.5 us per event on CPython 3.11): deliveries and sends are
    handled inline with the state in local variables; everything rare (installs, crashes,
    restarts, and every violation) goes through a method, with the locals written back to
    `self` before and read again after.
    """

    def __init__(self, node: int, run: _Run):
        self.node = node
        self.run = run
        self.report = run.report
        self.last_regular_key: tuple | None = None  # across incarnations: ring seq persists
        self.last_regular_index = -1
        self.crashed = False
        self.incarnations: list[_Incarnation] = []
        self._begin_incarnation()
        self.handlers = {"install": self._install, "crash": self._crash, "restart": self._restart}

    def _begin_incarnation(self) -> None:
        self.inc = _Incarnation(self.node, len(self.incarnations))
        self.incarnations.append(self.inc)
        self.seg: _Segment | None = None
        self.last_regular: _Segment | None = None
        self.prev_key: tuple = _KEY_MIN
        self.prev_id: tuple | None = None
        self.max_key: tuple = _KEY_MIN
        # 7 FIFO: next sender_seq expected from each sender in the current segment, and
        # after all earlier segments of this incarnation (folded in at each install).
        self.expect: dict[int, int] = {}
        self.expect_before: dict[int, int] = {}

    def _expected_ring(self) -> tuple:
        """(seq, rep) every delivery in the current segment must name; None never matches."""
        seg = self.seg
        if seg is None:
            return None, None
        if seg.kind == REGULAR:
            return seg.ring_key
        return (None, None) if seg.old is None else seg.old.ring_key

    def scan(self, events: Iterable) -> list[_Incarnation]:
        node, run = self.node, self.run
        canon, slots, sends, odd_hashes = run.canon, run.slots, run.sends, run.odd_hashes
        canon_get, slots_setdefault = canon.get, slots.setdefault
        handlers = self.handlers
        fresh = True  # locals must be (re)loaded from self
        for index, event in enumerate(events):
            if fresh:
                inc, seg, crashed = self.inc, self.seg, self.crashed
                delivered_at, inc_sends = inc.delivered_at, inc.sends
                expect, expect_get = self.expect, self.expect.get
                prev_key, prev_id, max_key = self.prev_key, self.prev_id, self.max_key
                in_order = inc.in_key_order
                ids_append = (inc.pre_ids if seg is None else seg.ids).append
                seg_safe = seg.safe_ids if seg is not None and seg.kind == REGULAR else None
                exp_seq, exp_rep = self._expected_ring()
                fresh = False
            try:
                ev = event["ev"]
                writer = event["node"]
            except (KeyError, TypeError, IndexError):
                raise LogFormatError(node, index, "not an event object with 'ev' and 'node'", event)
            if writer != node:
                raise LogFormatError(node, index, f"written by node {writer!r}, found in node {node}'s log", event)
            if ev == "deliver":
                if crashed:
                    raise LogFormatError(node, index, "'deliver' after 'crash' without 'restart'", event)
                try:
                    sender, sender_seq = event["id"]
                    rep, ring_seq = event["ring"]
                    rseq = event["rseq"]
                    level = event["level"]
                    digest = event["hash"]
                except (KeyError, TypeError, ValueError):
                    raise LogFormatError(node, index, "deliver needs id, ring, rseq, level, hash", event)
                if (type(sender) is not int or type(sender_seq) is not int or type(rep) is not int
                        or type(ring_seq) is not int or type(rseq) is not int or type(digest) is not int
                        or (level != "agreed" and level != "safe")):
                    raise LogFormatError(node, index, "deliver field of the wrong type or value", event)
                m = (sender, sender_seq)
                if delivered_at.setdefault(m, index) != index:
                    self._delivered_again(index, m)
                    continue
                key = (ring_seq, rep, rseq)
                if ring_seq != exp_seq or rep != exp_rep:
                    self._misplaced(index, m, key)
                known = canon_get(m)
                if known is None:
                    canon[m] = (key, digest, node, index)
                    if slots_setdefault(key, m) is not m:
                        self._slot_taken(index, m, key)
                    ckey = key
                else:
                    ckey = known[0]
                    if ckey != key:
                        self._position_differs(index, m, key, known)
                    if digest != known[1]:
                        odd_hashes.append((m, digest, node, index))
                if ckey > prev_key:
                    if in_order or ckey > max_key:
                        max_key = ckey
                else:
                    in_order = inc.in_key_order = False
                    self._out_of_order(index, m, ckey, prev_id, prev_key)
                prev_key, prev_id = ckey, m
                if expect_get(sender) == sender_seq:
                    expect[sender] = sender_seq + 1
                else:
                    self._fifo_slow(index, m)
                ids_append(m)
                if seg_safe is not None and level == "safe":
                    seg_safe.append(m)
            elif ev == "send":
                if crashed:
                    raise LogFormatError(node, index, "'send' after 'crash' without 'restart'", event)
                try:
                    sender, sender_seq = event["id"]
                    digest = event["hash"]
                    level = event["level"]
                except (KeyError, TypeError, ValueError):
                    raise LogFormatError(node, index, "send needs id [s, n], hash, level", event)
                if (type(sender) is not int or type(sender_seq) is not int or type(digest) is not int
                        or (level != "agreed" and level != "safe")):
                    raise LogFormatError(node, index, "send field of the wrong type or value", event)
                if sender != node:
                    raise LogFormatError(node, index, "send of an id whose sender is not this node", event)
                m = (sender, sender_seq)
                first = sends.setdefault(m, (digest, level, node, index))
                if first[3] != index or first[2] != node:
                    self._sent_again(index, m, first)
                    continue
                inc_sends.append((index, m, max_key))
            else:
                if type(ev) is not str:
                    raise LogFormatError(node, index, "'ev' is not a string", event)
                handler = handlers.get(ev)
                if handler is None:
                    continue  # pause/resume, or another layer's event
                if crashed and ev != "restart":
                    raise LogFormatError(node, index, f"'{ev}' after 'crash' without 'restart'", event)
                self.prev_key, self.prev_id, self.max_key = prev_key, prev_id, max_key
                handler(index, event)
                fresh = True
        for inc in self.incarnations:
            _link_segments(inc)
            placed = len(inc.pre_ids) + sum(len(seg.ids) for seg in inc.segments)
            assert placed == len(inc.delivered_at), (self.node, inc.number, placed)
        return [inc for inc in self.incarnations if not inc.is_empty()]

    # -- reporting, off the hot path

    def _delivered_again(self, index: int, m: tuple) -> None:
        first = self.inc.delivered_at[m]
        self.report.add(4, self.node, f"node {self.node} event #{index}: msg {m} delivered again "
                        f"(first at event #{first}, same incarnation)")

    def _misplaced(self, index: int, m: tuple, key: tuple) -> None:
        """5 and 11: the delivery's ring is not the configuration's (in T, the old one's)."""
        seg = self.seg
        self.inc.misplaced.add(index)
        ring_key = key[:2]
        if seg is None:
            self.report.add(5, self.node, f"node {self.node} event #{index}: msg {m} delivered "
                            "before any configuration was installed in this incarnation")
        elif seg.kind == REGULAR:
            self.report.add(5, self.node, f"node {self.node} event #{index}: msg {m} ordered by "
                            f"{_ring_str(ring_key)} delivered in regular configuration "
                            f"{_ring_str(seg.ring_key)} (install event #{seg.index})")
        else:
            old = None if seg.old is None else seg.old.ring_key
            self.report.add(11, self.node, f"node {self.node} event #{index}: msg {m} ordered by "
                            f"{_ring_str(ring_key)} delivered in transitional configuration "
                            f"(install event #{seg.index}) whose old ring is {_ring_str(old)}")

    def _slot_taken(self, index: int, m: tuple, key: tuple) -> None:
        other = self.run.slots[key]
        self.report.add(6, self.node, f"node {self.node} event #{index}: msg {m} delivered at "
                        f"{_key_str(key)}, where node {self.run.canon[other][2]} delivered msg {other}")

    def _position_differs(self, index: int, m: tuple, key: tuple, known: tuple) -> None:
        self.report.add(5, self.node, f"node {self.node} event #{index}: msg {m} delivered at "
                        f"{_key_str(key)}, but node {known[2]} delivered it at {_key_str(known[0])} "
                        f"(event #{known[3]})")

    def _out_of_order(self, index: int, m: tuple, key: tuple, prev_id: tuple, prev_key: tuple) -> None:
        self.report.add(6, self.node, f"node {self.node} event #{index}: msg {m} (at {_key_str(key)}) "
                        f"delivered after msg {prev_id} (at {_key_str(prev_key)})")

    def _fifo_slow(self, index: int, m: tuple) -> None:
        """7 FIFO, off the fast path: first message of a sender in this segment, or trouble."""
        sender, sender_seq = m
        seg = self.seg
        expected = self.expect.get(sender)
        if expected is None:  # first in this segment: only order matters (gaps may cross)
            expected = self.expect_before.get(sender)
            if expected is None or sender_seq >= expected:
                self.expect[sender] = sender_seq + 1
                return
        if sender_seq < expected:
            self.report.add(7, self.node, f"node {self.node} event #{index}: msg {m} delivered after "
                            f"msg {(sender, expected - 1)} of the same sender (FIFO)")
            self.expect[sender] = expected  # keep the highest as the reference
            return
        gap_allowed = seg is not None and seg.kind == TRANSITIONAL and sender not in seg.members
        if not gap_allowed:
            self.report.add(7, self.node, f"node {self.node} event #{index}: msg {m} delivered right "
                            f"after msg {(sender, expected - 1)} in the same configuration: "
                            f"{sender_seq - expected} message(s) of node {sender} missing")
        self.expect[sender] = sender_seq + 1

    def _sent_again(self, index: int, m: tuple, first: tuple) -> None:
        self.report.add(4, self.node, f"node {self.node} event #{index}: msg id {m} sent again "
                        f"(first sent by node {first[2]} at event #{first[3]}); ids are never reused")

    # -- installs, crashes, restarts

    def _install(self, index: int, event: Mapping) -> None:
        ring = _int_pair(event.get("ring"))
        kind = event.get("kind")
        members = event.get("members")
        if (ring is None or (kind != REGULAR and kind != TRANSITIONAL)
                or not isinstance(members, (list, tuple))
                or not all(type(x) is int for x in members)):
            raise LogFormatError(self.node, index, "install needs ring [rep, seq], kind, members", event)
        rep, seq = ring
        seg = _Segment(kind, (seq, rep), frozenset(members), index)
        self.expect_before.update(self.expect)
        self.expect = {}
        if self.node not in seg.members:
            self.report.add(2, self.node, f"node {self.node} event #{index}: installed {kind} "
                            f"{_ring_str(seg.ring_key)} with members {sorted(seg.members)}, without itself")
        seg.old = self.last_regular
        if kind == REGULAR:
            self._check_ring_increases(index, seg)
            self.last_regular = seg
        self.inc.segments.append(seg)
        self.seg = seg

    def _check_ring_increases(self, index: int, seg: _Segment) -> None:
        """3: regular ring ids strictly increase, also across restarts."""
        last = self.last_regular_key
        if last is not None and seg.ring_key <= last:
            self.report.add(3, self.node, f"node {self.node} event #{index}: installed regular "
                            f"{_ring_str(seg.ring_key)} after {_ring_str(last)} (event "
                            f"#{self.last_regular_index}); ring ids must increase")
        self.last_regular_key = seg.ring_key
        self.last_regular_index = index

    def _crash(self, index: int, event: Mapping) -> None:
        self.inc.crashed = True
        self.crashed = True

    def _restart(self, index: int, event: Mapping) -> None:
        self.crashed = False
        if self.inc.is_empty():
            self.inc.crashed = False  # nothing happened yet: keep using this incarnation
            return
        self.inc.crashed = True  # a restart without a crash still ended the process
        self._begin_incarnation()


def _link_segments(inc: _Incarnation) -> None:
    """Give every segment its successor and its identity (see the module docstring)."""
    segments = inc.segments
    for seg, following in zip(segments, segments[1:] + [None]):
        assert following is None or seg.index < following.index
        seg.next = following
        if seg.kind == REGULAR:
            seg.ident = (REGULAR, seg.ring_key)
            continue
        old = None if seg.old is None else seg.old.ring_key
        new = following.ring_key if following is not None and following.kind == REGULAR else None
        seg.ident = (TRANSITIONAL, seg.ring_key, old, new, seg.members)


# ---------------------------------------------------------------- cross-node checks


def _check_view_identity(run: _Run) -> None:
    """1: one membership per regular ring; one (ring, members) per transitional move."""
    regular: dict[tuple, tuple] = {}  # ring key -> (members, node, index)
    moves: dict[tuple, tuple] = {}  # (old ring, new ring) -> (ring key, members, node, index)
    for inc in run.incarnations:
        for seg in inc.segments:
            if seg.kind == REGULAR:
                first = regular.setdefault(seg.ring_key, (seg.members, inc.node, seg.index))
                if first[0] != seg.members:
                    run.report.add(1, inc.node, f"node {inc.node} event #{seg.index}: regular "
                                   f"{_ring_str(seg.ring_key)} has members {sorted(seg.members)}, node "
                                   f"{first[1]} (event #{first[2]}) installed it with {sorted(first[0])}")
                continue
            _, _, old, new, _ = seg.ident
            if old is None or new is None:
                continue
            first = moves.setdefault((old, new), (seg.ring_key, seg.members, inc.node, seg.index))
            if first[:2] != (seg.ring_key, seg.members):
                run.report.add(1, inc.node, f"node {inc.node} event #{seg.index}: transitional from "
                               f"{_ring_str(old)} to {_ring_str(new)} is {_ring_str(seg.ring_key)} "
                               f"{sorted(seg.members)}, node {first[2]} (event #{first[3]}) installed "
                               f"{_ring_str(first[0])} {sorted(first[1])}")


def _check_integrity(run: _Run) -> None:
    """4: every delivered id was sent, with the delivered hash."""
    for m, (_, digest, node, index) in run.canon.items():
        sent = run.sends.get(m)
        if sent is None:
            run.report.add(4, node, f"node {node} event #{index}: delivered msg {m}, which no node sent")
        elif sent[0] != digest:
            run.report.add(4, node, f"node {node} event #{index}: delivered msg {m} with hash {digest}, "
                           f"sent by node {sent[2]} (event #{sent[3]}) with hash {sent[0]}")
    for m, digest, node, index in run.odd_hashes:
        sent = run.sends.get(m)
        if sent is not None and sent[0] != digest:
            run.report.add(4, node, f"node {node} event #{index}: delivered msg {m} with hash {digest}, "
                           f"sent by node {sent[2]} (event #{sent[3]}) with hash {sent[0]}")


def _check_causal(run: _Run) -> None:
    """7 causal: a send never orders before what its sender had delivered already."""
    canon = run.canon
    for inc in run.incarnations:
        for index, m2, max_key_before in inc.sends:
            known = canon.get(m2)
            if known is not None and known[0] <= max_key_before:
                _check_causal_exactly(run, inc, index, m2)


def _check_causal_exactly(run: _Run, sender: _Incarnation, send_index: int, m2: tuple) -> None:
    """The slow path: find a node that delivers m2 before a message in m2's causal past."""
    key2 = run.key_of(m2)
    past_after = [m1 for m1, at in sender.delivered_at.items()
                  if at < send_index and run.key_of(m1) > key2]
    for inc in run.incarnations:
        at2 = inc.delivered_at.get(m2)
        if at2 is None:
            continue
        for m1 in past_after:
            at1 = inc.delivered_at.get(m1)
            if at1 is not None and at1 > at2:
                run.report.add(7, inc.node, f"node {inc.node} event #{at2}: delivered msg {m2} before "
                               f"msg {m1} (event #{at1}), but node {sender.node} sent {m2} (event "
                               f"#{send_index}) after delivering {m1} (causal order)")
                break


def _check_virtual_synchrony(run: _Run) -> None:
    """8: same Y then same X => same set delivered in Y."""
    moves: dict[tuple, list] = {}
    for inc in run.incarnations:
        for seg in inc.segments:
            if seg.next is not None:
                moves.setdefault((seg.ident, seg.next.ident), []).append((inc.node, seg))
    for entries in moves.values():
        if len(entries) < 2:
            continue
        ref_node, ref_seg = entries[0]
        ref = None
        for node, seg in entries[1:]:
            if seg.ids == ref_seg.ids:
                continue  # the usual case, and P6 makes equal sets come in equal order
            ref = set(ref_seg.ids) if ref is None else ref
            got = set(seg.ids)
            if got == ref:
                continue
            differences = [f"only node {who} delivered [{_ids_str(ids)}]"
                           for who, ids in ((node, got - ref), (ref_node, ref - got)) if ids]
            run.report.add(8, node, f"node {node} and node {ref_node} both went from {seg.kind} "
                           f"{_ring_str(seg.ring_key)} to {seg.next.kind} {_ring_str(seg.next.ring_key)} "
                           f"(node {node} events #{seg.index}..#{seg.next.index}), but in "
                           f"{_ring_str(seg.ring_key)} {'; '.join(differences)}")


def _check_self_delivery(run: _Run) -> None:
    """9: the sender delivers m before it leaves (for a regular config) the ring that ordered m."""
    canon = run.canon
    for inc in run.incarnations:
        if not inc.sends:
            continue
        regulars = [seg for seg in inc.segments if seg.kind == REGULAR]
        install_indexes = [seg.index for seg in regulars]
        delivered_at, misplaced = inc.delivered_at, inc.misplaced
        for index, m, _ in inc.sends:
            known = canon.get(m)
            if known is None:
                continue  # nobody delivered m: only liveness can judge
            at = delivered_at.get(m)
            if at is not None and at > index and at not in misplaced:
                # Delivered in a configuration of the ring it names, whose regular install is
                # the latest before it: with 3 holding, no later ring came in between.
                continue
            ordering_ring = known[0][:2]
            j = bisect.bisect_right(install_indexes, index)
            while j < len(regulars) and regulars[j].ring_key <= ordering_ring:
                j += 1
            if j == len(regulars):
                continue  # crashed or log ended first
            deadline = regulars[j]
            if at is None or at > deadline.index:
                when = "never delivered it" if at is None else f"delivered it only at event #{at}"
                run.report.add(9, inc.node, f"node {inc.node}: sent msg {m} (event #{index}), ordered by "
                               f"{_ring_str(ordering_ring)}, installed regular "
                               f"{_ring_str(deadline.ring_key)} (event #{deadline.index}) and {when}")


def _check_safe_delivery(run: _Run) -> None:
    """10: a safe delivery in C binds every node that leaves C alive for a new regular config."""
    safe_in: dict[tuple, set] = {}  # ring key -> ids some node delivered as safe there
    for inc in run.incarnations:
        for seg in inc.segments:
            if seg.safe_ids:
                safe_in.setdefault(seg.ring_key, set()).update(seg.safe_ids)
    for inc in run.incarnations:
        for seg in inc.segments:
            if seg.kind == REGULAR and seg.ring_key in safe_in:
                _check_safe_window(run, inc, seg, safe_in[seg.ring_key])
    _check_safe_level(run)


def _check_safe_window(run: _Run, inc: _Incarnation, seg: _Segment, safe: set) -> None:
    missing = safe.difference(seg.ids)
    following = seg.next
    while following is not None and following.kind != REGULAR:
        missing.difference_update(following.ids)
        following = following.next
    if following is None or not missing:
        return  # all delivered, or crashed / log ended while still in C or its transitional
    witnesses = sorted({other.node for other in run.incarnations for s in other.segments
                        if s.ring_key == seg.ring_key and not missing.isdisjoint(s.safe_ids)})
    run.report.add(10, inc.node, f"node {inc.node}: installed regular {_ring_str(following.ring_key)} "
                   f"(event #{following.index}) without delivering [{_ids_str(missing)}], delivered "
                   f"as safe in {_ring_str(seg.ring_key)} by node(s) {witnesses}")


def _check_safe_level(run: _Run) -> None:
    """10: a message sent safe is not delivered agreed in a regular configuration."""
    sent_safe = {m for m, sent in run.sends.items() if sent[1] == "safe"}
    if not sent_safe:
        return
    for inc in run.incarnations:
        for seg in inc.segments:
            if seg.kind != REGULAR:
                continue
            for m in sent_safe.intersection(seg.ids).difference(seg.safe_ids):
                run.report.add(10, inc.node, f"node {inc.node} event #{inc.delivered_at[m]}: msg {m} "
                               f"was sent safe but delivered agreed in regular {_ring_str(seg.ring_key)}")


def _check_transitional(run: _Run) -> None:
    """11: membership, successor and ring id of every transitional install."""
    came_from = {}  # (node, regular ring key) -> the node's previous regular ring key, or None
    for inc in run.incarnations:
        for seg in inc.segments:
            if seg.kind == REGULAR:
                came_from[(inc.node, seg.ring_key)] = None if seg.old is None else seg.old.ring_key
    for inc in run.incarnations:
        for seg in inc.segments:
            if seg.kind == TRANSITIONAL:
                _check_one_transitional(run, inc.node, seg, came_from)


def _check_one_transitional(run: _Run, node: int, seg: _Segment, came_from: dict) -> None:
    where = f"node {node} event #{seg.index}: transitional {_ring_str(seg.ring_key)}"
    old = seg.old
    old_members = frozenset((node,)) if old is None else old.members
    following = seg.next
    if following is not None and following.kind != REGULAR:
        run.report.add(11, node, f"{where} is followed by another transitional install "
                       f"(event #{following.index}), not by a regular one")
        following = None
    new_members = following.members if following is not None else old_members
    if not seg.members <= old_members & new_members:
        run.report.add(11, node, f"{where} has members {sorted(seg.members)}, not all in the old "
                       f"{sorted(old_members)} and the new {sorted(new_members)} configurations")
    if following is None:
        return  # crashed or log ended: the rest depends on the new configuration
    if old is not None and seg.ring_key not in (old.ring_key, following.ring_key):
        run.report.add(11, node, f"{where} names neither its old {_ring_str(old.ring_key)} nor its "
                       f"new {_ring_str(following.ring_key)}")
    # Who moved with this node: the members of the new ring whose previous regular ring
    # (in their own logs) is this node's old one. At boot that is the node alone.
    wrong = []
    for other in sorted(following.members - {node}):
        key = (other, following.ring_key)
        if key not in came_from:
            continue  # never installed the new ring: its old ring is unknown
        moved_with = old is not None and came_from[key] == old.ring_key
        if moved_with != (other in seg.members):
            wrong.append(f"node {other} came from {_ring_str(came_from[key])}")
    if wrong:
        run.report.add(11, node, f"{where} has members {sorted(seg.members)} (this node came from "
                       f"{_ring_str(None if old is None else old.ring_key)}), but {'; '.join(wrong)}")


def _side_keys(run: _Run, inc: _Incarnation) -> dict[int, tuple]:
    """Per segment: (last key delivered before its install, first key delivered after)."""
    if not inc.in_key_order:
        return {id(seg): (_KEY_MAX, _KEY_MIN) for seg in inc.segments}  # force the exact check
    last = run.key_of(inc.pre_ids[-1]) if inc.pre_ids else _KEY_MIN
    before = {}
    for seg in inc.segments:
        before[id(seg)] = last
        if seg.ids:
            last = run.key_of(seg.ids[-1])
    first = _KEY_MAX
    sides = {}
    for seg in reversed(inc.segments):
        if seg.ids:
            first = run.key_of(seg.ids[0])
        sides[id(seg)] = (before[id(seg)], first)
    assert len(sides) == len(inc.segments)
    return sides


def _check_install_atomicity(run: _Run) -> None:
    """12: each install splits the messages two nodes both deliver the same way."""
    installs: dict[tuple, list] = {}
    for inc in run.incarnations:
        sides = _side_keys(run, inc)
        for position, seg in enumerate(inc.segments):
            installs.setdefault(seg.ident, []).append((inc, position, sides[id(seg)]))
    for entries in installs.values():
        if len(entries) < 2:
            continue
        last_before = max(before_after[0] for _, _, before_after in entries)
        first_after = min(before_after[1] for _, _, before_after in entries)
        if last_before >= first_after:
            _check_install_exactly(run, [(inc, position) for inc, position, _ in entries])


def _check_install_exactly(run: _Run, entries: list) -> None:
    """The slow path of 12: compare the before-sets pairwise, on common messages."""
    assert len(entries) >= 2
    befores = []
    for inc, position in entries:
        before = set(inc.pre_ids)
        for seg in inc.segments[:position]:
            before.update(seg.ids)
        befores.append(before)
    for a, (inc_a, pos_a) in enumerate(entries):
        for b, (inc_b, pos_b) in enumerate(entries):
            if a == b:
                continue
            after_b = [m for m in befores[a] if m in inc_b.delivered_at and m not in befores[b]]
            if after_b:
                seg = inc_a.segments[pos_a]
                run.report.add(12, inc_b.node, f"{seg.kind} {_ring_str(seg.ring_key)}: node {inc_a.node} "
                               f"delivered [{_ids_str(after_b)}] before installing it (event #{seg.index}), "
                               f"node {inc_b.node} after installing it (event "
                               f"#{inc_b.segments[pos_b].index})")


# ---------------------------------------------------------------- safety entry point


def _check_logs_shape(logs: object) -> None:
    if not isinstance(logs, Mapping):
        raise LogFormatError("?", None, f"logs must map nodeid -> list of events, got {type(logs).__name__}")
    for node, events in logs.items():
        if type(node) is not int:
            raise LogFormatError(node, None, "log key is not an int nodeid")
        if isinstance(events, (str, bytes, Mapping)) or not isinstance(events, Iterable):
            raise LogFormatError(node, None, f"log is a {type(events).__name__}, not a list of events")


def check_safety(logs: Mapping[int, Iterable[Mapping]]) -> list[Violation]:
    """Check safety properties 1-12 over one run; [] means no violation was found."""
    _check_logs_shape(logs)
    report = _Report(VIOLATIONS_PER_PROPERTY_MAX)
    run = _Run(report)
    for node in sorted(logs):
        run.incarnations.extend(_NodeScan(node, run).scan(logs[node]))
    _check_view_identity(run)
    _check_integrity(run)
    _check_causal(run)
    _check_virtual_synchrony(run)
    _check_self_delivery(run)
    _check_safe_delivery(run)
    _check_transitional(run)
    _check_install_atomicity(run)
    return report.violations()


# ---------------------------------------------------------------- liveness


class _LiveView:
    """What liveness needs from one node's log, around the settle time."""

    def __init__(self, node: int):
        self.node = node
        self.current: tuple | None = None  # (kind, ring key, members, index) at settle time
        self.late_changes: list[str] = []  # installs, crashes, restarts after settle
        self.late_sends: list[tuple] = []  # (t_us, id, index) inside the delivery window
        self.delivered: set[tuple] = set()

    def scan(self, events: Iterable, settle_us: int, window_end_us: int) -> _LiveView:
        node, delivered_add = self.node, self.delivered.add
        for index, event in enumerate(events):
            try:
                ev, writer, t_us = event["ev"], event["node"], event["t_us"]
            except (KeyError, TypeError, IndexError):
                raise LogFormatError(node, index, "not an event with 'ev', 'node', 't_us'", event)
            if writer != node or type(t_us) is not int or type(ev) is not str:
                raise LogFormatError(node, index, "wrong 'node', or 't_us' not an int", event)
            if ev == "deliver":
                try:
                    sender, sender_seq = event["id"]
                except (KeyError, TypeError, ValueError):
                    raise LogFormatError(node, index, "id is not [sender, seq]", event)
                if type(sender) is not int or type(sender_seq) is not int:
                    raise LogFormatError(node, index, "id is not [sender, seq]", event)
                delivered_add((sender, sender_seq))
            elif ev == "send":
                if settle_us < t_us <= window_end_us:
                    self.late_sends.append((t_us, self._msg_id(index, event), index))
            elif ev in ("install", "crash", "restart"):
                self._change(index, event, ev, t_us, settle_us)
        return self

    def _msg_id(self, index: int, event: Mapping) -> tuple:
        m = _int_pair(event.get("id"))
        if m is None:
            raise LogFormatError(self.node, index, "id is not [sender, seq]", event)
        return m

    def _change(self, index: int, event: Mapping, ev: str, t_us: int, settle_us: int) -> None:
        if t_us > settle_us:
            self.late_changes.append(f"event #{index} '{ev}' at t={t_us}us")
            return
        if ev != "install":
            self.current = None  # down, or up again without a configuration
            return
        ring = _int_pair(event.get("ring"))
        kind = event.get("kind")
        members = event.get("members")
        if (ring is None or (kind != REGULAR and kind != TRANSITIONAL)
                or not isinstance(members, (list, tuple)) or not all(type(x) is int for x in members)):
            raise LogFormatError(self.node, index, "install needs ring [rep, seq], kind, members", event)
        self.current = (kind, (ring[1], ring[0]), frozenset(members), index)


def _check_liveness_inputs(logs: object, quiet_from_us: int, end_us: int, bound_us: int,
                           connected_live: object) -> frozenset:
    _check_logs_shape(logs)
    for name, value in (("quiet_from_us", quiet_from_us), ("end_us", end_us), ("bound_us", bound_us)):
        if type(value) is not int:
            raise ValueError(f"{name} must be an int (microseconds), got {value!r}")
    if bound_us < 0 or end_us < quiet_from_us:
        raise ValueError(f"need bound_us >= 0 and end_us >= quiet_from_us, got bound_us={bound_us}, "
                         f"quiet_from_us={quiet_from_us}, end_us={end_us}")
    live = frozenset(connected_live)
    if not live or not all(type(n) is int for n in live):
        raise ValueError(f"connected_live must be a non-empty set of int nodeids, got {connected_live!r}")
    return live


def check_liveness(logs: Mapping[int, Iterable[Mapping]], *, quiet_from_us: int, end_us: int,
                   bound_us: int, connected_live: Iterable[int]) -> list[Violation]:
    """Check the bounded liveness properties; [] means they hold."""
    live = _check_liveness_inputs(logs, quiet_from_us, end_us, bound_us, connected_live)
    settle_us = quiet_from_us + bound_us
    report = _Report(VIOLATIONS_PER_PROPERTY_MAX)
    views = {}
    for node in sorted(live):
        if node not in logs:
            report.add("liveness", node, f"(a) node {node} is in connected_live but has no log")
            continue
        views[node] = _LiveView(node).scan(logs[node], settle_us, end_us - bound_us)
    _check_settled(views, live, settle_us, report)
    for view in views.values():
        for change in view.late_changes:
            report.add("liveness", view.node, f"(b) node {view.node}: {change}, after the settle time "
                       f"t={settle_us}us (no fault after quiet_from_us)")
    _check_late_deliveries(views, settle_us, report)
    return report.violations()


def _check_settled(views: dict, live: frozenset, settle_us: int, report: _Report) -> None:
    """(a): everyone in one regular configuration of exactly the live set, at settle time."""
    rings: dict[tuple, list] = {}
    for node, view in views.items():
        current = view.current
        where = f"(a) node {node} at settle time t={settle_us}us"
        if current is None:
            report.add("liveness", node, f"{where} is in no configuration")
            continue
        kind, ring_key, members, index = current
        if kind != REGULAR or members != live:
            report.add("liveness", node, f"{where} is in {kind} {_ring_str(ring_key)} (event #{index}) "
                       f"with members {sorted(members)}, wanted regular with {sorted(live)}")
            continue
        rings.setdefault(ring_key, []).append(node)
    if len(rings) > 1:
        split = "; ".join(f"{_ring_str(r)}: nodes {nodes}" for r, nodes in sorted(rings.items()))
        report.add("liveness", None, f"(a) at settle time t={settle_us}us the live nodes are in "
                   f"different rings: {split}")


def _check_late_deliveries(views: dict, settle_us: int, report: _Report) -> None:
    """(c): a message sent after settling, early enough, reaches every live node."""
    for sender, view in views.items():
        for t_us, m, index in view.late_sends:
            missing = [node for node, other in views.items() if m not in other.delivered]
            if missing:
                report.add("liveness", sender, f"(c) msg {m} sent by node {sender} (event #{index}, "
                           f"t={t_us}us, after settle time t={settle_us}us) not delivered by nodes {missing}")
