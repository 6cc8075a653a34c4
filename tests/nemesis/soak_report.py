"""The soak report (bench/results/soak.md): one nemesis run's command, seed, faults per
kind, deliveries and checker verdicts, in Markdown, from runner.py's summary."""
from __future__ import annotations

from pathlib import Path

FAILURES_LISTED = 30


def _table(head: list[str], rows: list[list]) -> list[str]:
    return (["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def write_report(path: Path, *, command: str, started: str, summary: dict, out_dir,
                 load_before, load_after, commit: str) -> None:
    s = summary
    cpg = s["cpg"]
    lines = [
        "# Nemesis soak", "",
        f"Result: **{'PASS' if s['passed'] else 'FAIL'}** — seed {s['seed']}, "
        f"{s['n_nodes']} nodes, {s['transport']} ({s['links']} link(s)), token "
        f"{s['token_ms']} ms, started {started}, commit {commit}.", "",
        "```", command, "```", "",
        f"Fault window {s['quiet_from_s']:.0f} s, then quiet {s['quiet_s']:.0f} s; wall "
        f"{s['wall_s']:.0f} s. Liveness bound {s['bound_ms']} ms (token timeout + consensus + "
        f"{s['slack_ms']} ms slack); the last configuration change was "
        f"{s['last_install_after_quiet_ms']} ms after quiet_from (negative: before). "
        f"Injector lateness at most {s['late_max_s']:.2f} s; the schedule slipped "
        f"{s['slip_s']:.1f} s in all (slow actions push the rest back). Load average before "
        f"{load_before[0]:.1f}, after {load_after[0]:.1f} (2 vCPUs, shared). "
        f"Run files: `{out_dir}`.", "",
        "## Faults", "",
        *_table(["kind", "scheduled", "applied"],
                [[k, n, s["faults_applied"].get(k, 0)] for k, n in s["faults_scheduled"].items()]
                + [["total", sum(s["faults_scheduled"].values()),
                    sum(s["faults_applied"].values())]]), "",
        "## Deliveries (daemons' event logs and CPG recorders)", "",
        "`crashes` counts the event log's crash lines: kills, and the final stop (one each).",
        "",
        *_table(["node", "load sends", "load deliveries", "installs", "crashes", "pauses",
                 "cpg sent", "cpg delivered", "cpg connections"],
                [[n, st["sends"], st["deliveries"], st["installs"], st["crashes"],
                  st["pauses"], cpg["per_node"][n]["sent"], cpg["per_node"][n]["delivered"],
                  cpg["per_node"][n]["connections"]] for n, st in s["nodes"].items()]), "",
        "## Checker verdicts", "",
        *_table(["checker", "violations"],
                [["EVS safety 1-12 (coroproc/sim/checker.py)", s["safety_violations"]],
                 ["liveness after quiet_from", s["liveness_violations"]],
                 ["CPG EVS-13 (engineprocs/cpg/checker.py)", cpg["evs13_problems"]],
                 ["CPG same-view delivery (tests/nemesis/cpg_views.py)",
                  cpg["same_view_problems"]],
                 ["CPG per-sender seq/CRC (cpghum_check)", cpg["per_sender_problems"]],
                 ["CPG progress after settling", len(cpg["stalled"])],
                 ["shm segments left", len(s["leftover_shm"])]]), "",
    ]
    if s["failures"]:
        lines += ["## Failures (first %d)" % FAILURES_LISTED, ""]
        lines += [f"* {f}" for f in s["failures"][:FAILURES_LISTED]] + [""]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines))
