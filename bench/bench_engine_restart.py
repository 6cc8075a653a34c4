"""Per-engine restart time on real daemons: kill -9 → the engine answers a client again.

Runs tests/restart/restart_driver.py: a 3-node LocalCluster (loopback, votequorum) with
CPG client processes on every node sending and recording; node 2's cmap, cfg, cpg and
votequorum(+quorum) processes are killed with SIGKILL, round robin, KILLS times each, then
restarted once each with `coroproc-ctl restart NAME`. A kill waits until the engine it hits
has served for 1.05 s (the supervisor's HEALTHY_S: a crash of a child that served that long
restarts after its first backoff, 0.2 s, not a doubled one).

Restart time = SIGKILL sent → a client request answered by the new process (cmap: a GET
of a key set before the kills; cpg: connect + local_get; cfg / votequorum / quorum: the
libqb handshake, completed only once the restored engine has replayed and serves). The
limit it is measured against is the issue's 1 s; the supervisor's fixed 0.2 s restart
delay is part of every figure. The run also checks what the test checks (no new
membership, EVS-13, no lost or duplicated delivery on the other nodes, quorum, the key,
identical CPG process lists) and reports any failure instead of timings.

    .venv/bin/python bench/bench_engine_restart.py [--kills 20]

writes bench/results/engine_restart.md.
"""
from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "restart"))
import restart_driver as D  # noqa: E402

from coroproc.engineprocs.cpg.checker import check_cpg_evs  # noqa: E402
from coroproc.localcluster import LocalCluster  # noqa: E402

LIMIT_S = 1.0


def p95(values: list) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def checks(res) -> list[str]:
    failed = []
    if any(res.new_memberships.values()):
        failed.append(f"new memberships: {res.new_memberships}")
    failed += check_cpg_evs(res.records)[:5]
    if res.quorum_after != res.quorum_before:
        failed.append("quorum status changed")
    if res.key_after != D.KEY_VALUE:
        failed.append("cmap key lost")
    lists = list(res.process_lists.values())
    if any(pl != lists[0] for pl in lists) or lists[0] != sorted(res.live_clients):
        failed.append(f"CPG process lists differ: {res.process_lists} vs {res.live_clients}")
    return failed


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=20, help="SIGKILLs per engine")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-restart-") as tmp:
        lc = LocalCluster(tmp, 3, token_ms=1000, rate_msgs_per_s=20)
        try:
            lc.start_all()
            lc.wait_members([1, 2, 3], (1, 2, 3), timeout_s=90)
            for i in (1, 2, 3):
                lc.wait_for_log(i, "Completed service synchronization", timeout_s=30)
            res = D.run(lc, Path(tmp), args.kills, ctl_restarts=1)
        finally:
            lc.stop_all()
    rows = []
    every = []
    for name in D.ENGINES:
        t = res.restart_s[name]
        every += t
        rows.append(f"| {name} | {len(t)} | {statistics.median(t) * 1000:.0f} | "
                    f"{p95(t) * 1000:.0f} | {max(t) * 1000:.0f} | "
                    f"{statistics.median(t) / LIMIT_S:.2f} |")
    rows.append(f"| all kills | {len(every)} | {statistics.median(every) * 1000:.0f} | "
                f"{p95(every) * 1000:.0f} | {max(every) * 1000:.0f} | "
                f"{statistics.median(every) / LIMIT_S:.2f} |")
    ctl = res.ctl_restart_s
    failed = checks(res)
    deliveries = sum(1 for r in res.records for e in r.events if e[0] == "deliver")
    report = "\n".join([
        "# Per-engine restart time",
        "",
        f"{datetime.date.today()} · 2-vCPU VM · `.venv/bin/python bench/bench_engine_restart.py "
        f"--kills {args.kills}`",
        "",
        "kill -9 of one engine process of node 2 (3 loopback nodes, CPG load from 6 client "
        "processes) → the new process answers a client. Limit: 1 s (ratio = median / limit).",
        "",
        "| engine | kills | median ms | p95 ms | max ms | median / 1 s |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"`coroproc-ctl restart NAME` (one per engine, time includes the ctl process start): "
        f"median {statistics.median(ctl) * 1000:.0f} ms, max {max(ctl) * 1000:.0f} ms.",
        "",
        f"During the run: {deliveries} CPG deliveries recorded by the clients; "
        f"new memberships {sum(len(v) for v in res.new_memberships.values())}; "
        f"checks: {'all passed' if not failed else 'FAILED: ' + '; '.join(failed)}.",
        "",
    ])
    out = REPO / "bench" / "results" / "engine_restart.md"
    out.write_text(report)
    print(report)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
