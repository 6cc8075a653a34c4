"""Same-view delivery at the CPG layer: every client that delivers a message delivers it
in the same view (EVS property 5, lifted from Totem configurations to CPG confchgs).

coroproc/engineprocs/cpg/checker.py (EVS-13) compares what two clients received between
two confchgs only when both saw that same pair. A message that one client receives in
the old view of a group and another in a view that only its own side had (a partition's
smaller side) escapes that comparison; this check catches it. A client's view at a
delivery is the member list of its latest confchg of that group. Only the members, not
the whole confchg: after a merge each side is told that the other side joined, so the
confchgs differ while the view they open is the same.
"""
from __future__ import annotations

LISTED_MAX = 20


def _views_of(rec) -> dict:
    """(group, message key) -> view key, for every delivery of one client record."""
    out, view = {}, {}
    for ev in rec.events:
        if ev[0] == "confchg":
            group, members = ev[1], ev[2]
            view[group] = tuple(sorted(map(tuple, members)))
        elif ev[0] == "deliver":
            _k, group, nodeid, pid, payload = ev
            out[(group, nodeid, pid, bytes(payload))] = view.get(group)
    return out


def check_same_view(records) -> list[str]:
    """Sentences naming the message and two clients that delivered it in different views."""
    first: dict = {}           # message -> (record name, view)
    problems: list[str] = []
    for rec in records:
        for msg, view in _views_of(rec).items():
            seen = first.setdefault(msg, (rec.name, view))
            if seen[1] != view:
                problems.append(f"message {msg[3].decode(errors='replace')} from node {msg[1]} "
                                f"pid {msg[2]} in {msg[0]!r}: {seen[0]} delivered it in view "
                                f"{_short(seen[1])}, {rec.name} in view {_short(view)}")
    return problems


def _short(view) -> str:
    return "none" if view is None else "{" + " ".join(f"{n}/{p}" for n, p in view) + "}"
