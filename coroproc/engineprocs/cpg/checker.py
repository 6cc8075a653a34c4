"""EVS property 13 at the CPG layer, checked over what clients actually received.

Input: every client's decoded event stream (in receipt order), from any node — the
simbus tests record them, a real-cluster test can record them through coroproc.client.
Event tuples (as tests/cpg/cpg_sim_client.decode makes them):
    ("confchg", group, members, left, joined)   ("deliver", group, nodeid, pid, message)
    ("totem", ring_id, members)                 ("partial", …) — ignored here
Properties (shared/ref/evs-properties.md §13, plus the same-set rule it implies):
* own-join-first: in each group a client's first event is the confchg that lists itself
  as joined (reason JOIN); nothing of that group reaches it after its own LEAVE confchg;
* same-order: any two clients order the group events they both received identically;
* same-set: two clients that receive the same two consecutive confchgs of a group
  receive the same messages between them;
* no-duplicates: a client receives each message at most once.
A message is identified by (sender nodeid, pid, payload) — tests send unique payloads. A
confchg by its content plus the ring id of the latest totem confchg before it at that
client (clients must use CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF so every stream has
one), which keeps a NODEDOWN repeated in a later ring distinct.

That identity is not unique within one ring: a process whose node's cpg engine restarts
twice leaves (PROCDOWN) and joins again twice, with the same pid and the same member
lists, and a client that reconnects with its pid does the same. Such a confchg content
is legitimately received twice, and a client that saw only one of the two cannot say
which. So a confchg identity that any client received more than once is "repeated": not
a duplicate, and left out of the order and same-set comparisons (the messages around it
still take part, so the comparisons only lose that one landmark).
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field

REASON_JOIN = 1
REASON_LEAVE = 2


@dataclass
class ClientRecord:
    name: str
    nodeid: int
    pid: int
    events: list = field(default_factory=list)


def _keys_by_group(rec: ClientRecord, problems: list) -> dict:
    """group -> [key], confchg keys ("c", …) and message keys ("m", …) in receipt order."""
    out: dict = {}
    # The initial totem confchg arrives right after the client's own join confchg: events
    # before it belong to the ring it names.
    epoch = next((tuple(ev[1]) for ev in rec.events if ev[0] == "totem"), None)
    joined_groups: set = set()
    for ev in rec.events:
        kind = ev[0]
        if kind == "totem":
            epoch = tuple(ev[1])
            continue
        if kind not in ("confchg", "deliver"):
            continue
        group = ev[1]
        stream = out.setdefault(group, [])
        me = (rec.nodeid, rec.pid)
        if kind == "deliver":
            if group not in joined_groups:
                problems.append(f"{rec.name}: message {ev[2:4]} in {group!r} before its "
                                "own join confchg (or after its leave)")
            stream.append(("m", ev[2], ev[3], bytes(ev[4])))
            continue
        _k, _g, members, left, joined = ev
        if group not in joined_groups:
            if (me + (REASON_JOIN,)) not in [tuple(j) for j in joined]:
                problems.append(f"{rec.name}: first confchg of {group!r} is not its own "
                                f"join: joined={joined} left={left}")
            joined_groups.add(group)
        if (me + (REASON_LEAVE,)) in [tuple(x) for x in left]:
            joined_groups.discard(group)
        stream.append(("c", epoch, tuple(map(tuple, members)), tuple(map(tuple, left)),
                       tuple(map(tuple, joined))))
    return out


def check_cpg_evs(records: list[ClientRecord]) -> list[str]:
    """Every violation found, as sentences naming clients, group and events ([] = OK)."""
    problems: list[str] = []
    streams = [(rec, _keys_by_group(rec, problems)) for rec in records]
    repeated: dict = collections.defaultdict(set)      # group -> repeated confchg keys
    for rec, groups in streams:
        for group, keys in groups.items():
            for key, n in collections.Counter(keys).items():
                if n < 2:
                    continue
                if key[0] == "c":
                    repeated[group].add(key)
                else:
                    problems.append(f"{rec.name}: received {key} twice in {group!r}")
    for i, (rec_a, groups_a) in enumerate(streams):
        for rec_b, groups_b in streams[i + 1:]:
            for group in groups_a.keys() & groups_b.keys():
                skip = repeated.get(group, set())
                _compare(rec_a.name, [k for k in groups_a[group] if k not in skip],
                         rec_b.name, [k for k in groups_b[group] if k not in skip], group,
                         problems)
    return problems


def _compare(name_a, keys_a, name_b, keys_b, group, problems) -> None:
    common = set(keys_a) & set(keys_b)
    order_a = [k for k in keys_a if k in common]
    order_b = [k for k in keys_b if k in common]
    if order_a != order_b:
        at = next((i for i, (x, y) in enumerate(zip(order_a, order_b)) if x != y),
                  min(len(order_a), len(order_b)))
        problems.append(f"{group!r}: {name_a} and {name_b} order their common events "
                        f"differently at #{at}: {order_a[at:at + 1]} vs {order_b[at:at + 1]}")
        return
    between_a, between_b = _between(keys_a), _between(keys_b)
    for pair in between_a.keys() & between_b.keys():
        if between_a[pair] != between_b[pair]:
            diff = between_a[pair] ^ between_b[pair]
            problems.append(f"{group!r}: {name_a} and {name_b} both saw confchgs {pair[0]} "
                            f"then {pair[1]} but different messages between: {sorted(diff)}")


def _between(keys) -> dict:
    """(confchg, next confchg) -> frozenset of messages received between them."""
    out = {}
    last, msgs = None, set()
    for key in keys:
        if key[0] == "c":
            if last is not None:
                out[(last, key)] = frozenset(msgs)
            last, msgs = key, set()
        else:
            msgs.add(key)
    return out
