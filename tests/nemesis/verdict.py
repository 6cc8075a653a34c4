"""The verdict of one nemesis run: every checker over what the nodes and clients recorded,
condensed into the JSON summary (faults applied, per-node deliveries, violations,
liveness) that runner.py writes and the soak report prints.

A run passes when: no EVS safety violation (1-12) in the daemons' event logs; the
liveness check holds from quiet_from with the run's bound; the CPG records pass EVS-13
(check_cpg_evs) and same-view delivery (cpg_views.py); the recorders' per-sender checks
found no gap, duplicate, CRC or length error; after the settle time every node's
recorder delivered messages from every node;
no shm segment was left behind; and every scheduled action was carried out.
"""
from __future__ import annotations

from collections import Counter

from coroproc.engineprocs.cpg.checker import check_cpg_evs
from coroproc.sim.checker import LogFormatError, check_liveness, check_safety

from . import schedule as S
from .clients import read_client_log
from .cpg_views import check_same_view

LISTED_MAX = 50        # violations quoted verbatim per checker; the count says the rest


def _log_stats(log: list[dict]) -> dict:
    c = Counter(e.get("ev") for e in log)
    return {"sends": c["send"], "deliveries": c["deliver"], "installs": c["install"],
            "crashes": c["crash"], "restarts": c["restart"], "pauses": c["pause"]}


def _last_change_ms(logs: dict, quiet_from_us: int) -> float | None:
    """When the last install of any node happened, relative to quiet_from (ms; negative
    = before). Shows how much of the liveness bound a run used."""
    times = [e["t_us"] for log in logs.values() for e in log if e.get("ev") == "install"]
    return round((max(times) - quiet_from_us) / 1000, 1) if times else None


def _checked(fn, *args, **kwargs) -> list[str]:
    try:
        return [f"[{v.prop}] node {v.node}: {v.message}" for v in fn(*args, **kwargs)]
    except LogFormatError as exc:
        return [f"unreadable event log: {exc}"]


def _cpg_part(daemons: dict, out, settle_us: int) -> tuple[dict, list[str]]:
    logs = {i: read_client_log(i, out / f"n{i}" / "cpg.jsonl") for i in daemons}
    records = [r for log in logs.values() for r in log.records]
    evs13 = check_cpg_evs(records)
    same_view = check_same_view(records)
    per_sender = [p for log in logs.values() for p in log.problems]
    everyone = set(daemons)
    progress = {i: sorted(everyone - log.senders_after(settle_us)) for i, log in logs.items()}
    stalled = [f"node {i}'s CPG client delivered nothing from node(s) {missing} after the "
               f"settle time" for i, missing in progress.items() if missing]
    part = {"records": len(records),
            "per_node": {i: {"connections": log.connections, "sent": log.sent,
                             "delivered": log.delivered, "disconnects": len(log.lost)}
                         for i, log in logs.items()},
            "evs13_problems": len(evs13), "same_view_problems": len(same_view),
            "per_sender_problems": len(per_sender),
            "stalled": stalled}
    return part, [f"cpg EVS-13: {p}" for p in evs13[:LISTED_MAX]] + \
        [f"cpg same-view: {p}" for p in same_view[:LISTED_MAX]] + \
        [f"cpg per-sender: {p}" for p in per_sender[:LISTED_MAX]] + stalled


def judge(cfg, sched: S.Schedule, daemons: dict, out, applied: list[dict], t0_us: int,
          quiet_from_us: int, end_us: int, leftover_shm: dict) -> dict:
    logs = {i: d.event_log() for i, d in daemons.items()}
    bound_us = cfg.bound_ms() * 1000
    safety = _checked(check_safety, logs)
    # what the nodes logged while being stopped at the end is not part of the run
    until_end = {i: [e for e in log if e.get("t_us", 0) <= end_us] for i, log in logs.items()}
    liveness = _checked(check_liveness, until_end, quiet_from_us=quiet_from_us, end_us=end_us,
                        bound_us=bound_us, connected_live=set(daemons))
    cpg, cpg_failures = _cpg_part(daemons, out, quiet_from_us + bound_us)
    starts = [a for a in applied if a["phase"] == "start"]
    skipped = [a for a in applied if a.get("note")]
    not_applied = len(sched.faults) - len(starts)
    failures = (safety[:LISTED_MAX] + liveness[:LISTED_MAX] + cpg_failures
                + [f"shm segments left by node {i}: {s}" for i, s in leftover_shm.items()]
                + [f"action not carried out: {a['what']}: {a['note']}" for a in skipped]
                + ([f"{not_applied} scheduled faults never started"] if not_applied else []))
    return {
        "passed": not failures,
        "seed": sched.seed, "n_nodes": sched.n_nodes, "transport": sched.transport,
        "links": sched.links, "token_ms": cfg.token_ms, "bound_ms": cfg.bound_ms(),
        "slack_ms": cfg.slack_ms, "quiet_from_s": sched.quiet_from_s,
        "quiet_s": cfg.quiet_len_s(), "wall_s": round((end_us - t0_us) / 1e6, 1),
        "faults_scheduled": sched.counts(),
        "faults_applied": dict(Counter(a["kind"] for a in starts if not a.get("note"))),
        "late_max_s": max((a["late_s"] for a in applied), default=0.0),
        "slip_s": round((quiet_from_us - t0_us) / 1e6 - sched.quiet_from_s, 2),
        "nodes": {i: _log_stats(log) for i, log in logs.items()},
        "last_install_after_quiet_ms": _last_change_ms(until_end, quiet_from_us),
        "safety_violations": len(safety), "liveness_violations": len(liveness),
        "cpg": cpg, "leftover_shm": leftover_shm,
        "failures": failures, "applied": applied,
    }
