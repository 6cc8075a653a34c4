"""Side by side: coroproc vs Corosync 3.1.7, whole daemons, same clients, same namespaces.

    sudo .venv/bin/python bench/bench_side_by_side.py [--runs 3] [--quick] [--no-knet]

One command measures, per run and per daemon kind (sbs_daemons.KINDS: Corosync udpu with
its default shm IPC and with socket IPC, coroproc udpu as shipped (SCHED_OTHER, its ring
and link processes on one CPU) and with SCHED_RR 99 like Corosync (placement left to the
kernel); Corosync knet and coroproc's secure links, crypto off), on
1 node (own netns) and 3 nodes (3 netns on a bridge):
  * idle CPU % (of one core) and RSS of every node's whole process tree, no clients;
  * CPG floods (bench/c/sbs_cpgload.c through the real libcpg) per message size, one
    sender (node 1) and, on 3 nodes, a sender per node: msgs/s and MB/s delivered;
  * own-delivery latency p50/p99 at 1,000 msgs/s offered, 1 KiB;
  * 3 nodes: kill -9 of node 3 → the new configuration on node 1 (ms).
Runs alternate the kind order (forward, reversed, …). Ratios are per run against the
baseline kind (coroproc vs Corosync shm; coroproc-knet vs Corosync knet), then median
[min–max]. Writes bench/results/side_by_side.md (+ .json raw rows) and PNG plots in
bench/results/plots/. Needs root (namespaces). A benchmark: no thresholds.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from sbs_client import Cell, build, run_cell  # noqa: E402
from sbs_daemons import KINDS, TOKEN_MS, Session  # noqa: E402
from sbs_proc import CpuWindow, pss_kb, rss_kb  # noqa: E402
import sbs_report  # noqa: E402

LATENCY_SIZE_BYTES = 1024
LATENCY_RATE_MSGS_PER_S = 1000
NOISY_LOAD = 2.5  # 1-min load average above which this 2-vCPU machine's figures are noisy


def cells_for(nodes: int, sizes: list[int]) -> list[Cell]:
    cells = [Cell(nodes, s, 1) for s in sizes]
    if nodes > 1:
        cells += [Cell(nodes, s, nodes) for s in sizes]
    return cells + [Cell(nodes, LATENCY_SIZE_BYTES, 1, LATENCY_RATE_MSGS_PER_S)]


def session_rows(kind: str, nodes: int, run: int, args, binary: str, workdir: Path) -> list[dict]:
    """Everything measured on one cluster of `kind`; a failed step becomes an error row."""
    base = {"run": run, "kind": kind, "nodes": nodes}
    rows = []
    sizes = args.knet_sizes if KINDS[kind].transport == "knet" else args.sizes
    with Session(KINDS[kind], nodes, workdir) as s:
        # Idle: no clients. Socket vs shm IPC is the same daemon when nobody is connected.
        if not (KINDS[kind].daemon == "corosync" and KINDS[kind].ipc == "socket"):
            time.sleep(2.0)  # let the join/sync burst end
            trees = s.trees()
            win = CpuWindow(trees)
            win.start()
            time.sleep(args.idle_s)
            cpu = win.stop()
            for n, tree in trees.items():
                rows.append({**base, "what": "idle", "node": n, "ok": True,
                             "cpu_pct": cpu["cpu_pct_by_node"][n], "rss_kb": rss_kb(tree),
                             "pss_kb": pss_kb(tree),
                             "procs": len(tree)})
        for cell in cells_for(nodes, sizes):
            try:
                res = run_cell(s, binary, cell, args.seconds)
            except Exception as e:  # one cell's failure must not lose the session
                res = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            rows.append({**base, "what": "load", "cell": cell.key, "load1": os.getloadavg()[0], **res})
            print(f"  {kind} {cell.key}: {res.get('msgs_per_s', 0):.0f} msgs/s "
                  f"{'ok' if res.get('ok') else res.get('error', 'FAILED')[:200]}", flush=True)
        if nodes >= 3:
            time.sleep(1.0)
            try:
                rows.append({**base, "what": "failover", "ok": True, "ms": s.kill_and_time_ms(nodes)})
            except Exception as e:
                rows.append({**base, "what": "failover", "ok": False, "error": str(e)})
    return rows


def versions() -> dict:
    def out(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT).stdout.strip()
        except OSError as e:
            return f"({e})"
    return {"corosync": out(["corosync", "-v"]).splitlines()[0] if out(["corosync", "-v"]) else "?",
            "python": platform.python_version(), "git": out(["git", "rev-parse", "--short", "HEAD"]),
            "git_dirty": bool(out(["git", "status", "--porcelain", "--", "coroproc"])),
            "kernel": platform.release(), "cpus": os.cpu_count()}


def write_markdown(path: Path, rows: list[dict], meta: dict, plot_paths: list[Path]) -> None:
    rel = lambda p: os.path.relpath(p, path.parent)  # noqa: E731
    L = ["# Side by side: coroproc vs Corosync 3.1.7", "",
         f"Command (root): `{meta['command']}`  ", f"Date: {meta['date']} (UTC), "
         f"{meta['elapsed_s'] / 60:.1f} min; {meta['versions']['corosync']}; Python "
         f"{meta['versions']['python']}; coroproc git {meta['versions']['git']}"
         f"{' + uncommitted changes' if meta['versions']['git_dirty'] else ''}; kernel "
         f"{meta['versions']['kernel']}, {meta['versions']['cpus']} vCPUs.  ",
         f"Runs: {meta['runs']}; flood {meta['seconds']} s per cell; idle window "
         f"{meta['idle_s']} s; token {TOKEN_MS} ms; 1-min load average during the cells "
         f"{meta['load_min']:.1f}–{meta['load_max']:.1f}"
         + (f" (**above {NOISY_LOAD}: other engineers' jobs shared the 2 vCPUs; figures are "
            "noisy, ratios less so**)" if meta['load_max'] > NOISY_LOAD else "") + ".", "",
         "Cells show median [min–max] over runs; ratios are taken per run and then summarised. "
         "msgs/s = the slowest client's delivery rate (aggregate over senders); latency = send → "
         "own delivery in µs at the sender. Corosync runs SCHED_RR 99 (its default `sched_rr: yes`); "
         "coroproc as shipped runs SCHED_OTHER with its ring and link processes on one CPU "
         "(`coroproc.ring_cpu: auto`, the highest-numbered: CPU 1 here; engines anywhere); "
         "`coroproc-rr` is coroproc with every process set to SCHED_RR 99 by the bench after "
         "start (what Corosync gives itself) and `ring_cpu: none`. "
         "All clients run at normal priority. `corosync-socket` is Corosync with "
         "`qb_ipc_type: socket` (the only IPC mode coroproc serves).", ""]
    for transport in ("udpu", "knet"):
        for key, title, fmt in (("msgs_per_s", "messages/s delivered", "{:.0f}"),
                                ("mb_per_s", "MB/s delivered", "{:.1f}"),
                                ("own_p50_us", "own-delivery p50 µs", "{:.0f}"),
                                ("own_p99_us", "own-delivery p99 µs", "{:.0f}")):
            t = sbs_report.load_table(rows, transport, key, fmt)
            if t:
                L += [f"## {transport}: {title}", "", *t, ""]
    for what, title, keys in (
            ("idle", "Idle daemon per node (no clients), whole process tree",
             [("cpu_pct", "CPU % of one core", "{:.2f}"), ("rss_kb", "RSS kB (sum)", "{:.0f}"),
              ("pss_kb", "PSS kB (sum)", "{:.0f}")]),
            ("failover", "kill -9 of node 3 → new configuration on node 1",
             [("ms", "ms", "{:.0f}")])):
        t = sbs_report.simple_table(rows, what, keys)
        if t:
            L += [f"## {title}", "", *t, ""]
    errs = [r for r in rows if not r.get("ok", True)]
    if errs:
        L += ["## Failed cells", "", *(f"* run {r['run']} {r['kind']} {r.get('cell', r['what'])}: "
                                       f"{r.get('error', '')[:300]}" for r in errs), ""]
    lim = sbs_report.limits_lines(rows)
    if lim:
        L += ["## What bounds coroproc: busiest processes during its cells", "", *lim, ""]
    L += ["## Plots", "", *(f"![{p.stem}]({rel(p)})" for p in plot_paths), ""]
    path.write_text("\n".join(L))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0, help="flood/latency time per cell")
    ap.add_argument("--idle-s", type=float, default=10.0)
    ap.add_argument("--sizes", default="64,1024,16384,65536")
    ap.add_argument("--knet-sizes", default="1024,65536", help="sizes for the knet kinds")
    ap.add_argument("--no-knet", action="store_true", help="udpu kinds only")
    ap.add_argument("--quick", action="store_true",
                    help="~5 min subset: 1 run, 1 KiB and 64 KiB, 1.5 s cells, 5 s idle, no knet")
    ap.add_argument("--topologies", default="1,3", help="node counts, e.g. 3")
    ap.add_argument("--kinds", default=",".join(k for k in KINDS if KINDS[k].by_default),
                    help="subset of " + ",".join(KINDS))
    ap.add_argument("--from-json", metavar="JSON",
                    help="measure nothing: redraw the report and plots from a saved .json")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "side_by_side.md"))
    a = ap.parse_args(argv)
    if a.quick:
        a.runs, a.seconds, a.idle_s, a.sizes, a.no_knet = 1, 1.5, 5.0, "1024,65536", True
    if a.from_json:
        saved = json.loads(Path(a.from_json).read_text())
        out = Path(a.out)
        write_markdown(out, saved["rows"], saved["meta"],
                       sbs_report.plots(saved["rows"], out.parent / "plots", _plot_prefix(out)))
        print(f"wrote {out} from {a.from_json}")
        return 0
    a.sizes = [int(x) for x in a.sizes.split(",")]
    a.knet_sizes = [int(x) for x in a.knet_sizes.split(",")]
    if os.geteuid() != 0:
        raise SystemExit("bench_side_by_side: needs root (network and mount namespaces)")
    try:
        import matplotlib  # noqa: F401  (checked now, not after half an hour of measuring)
    except ImportError:
        raise SystemExit("bench_side_by_side: the plots need matplotlib: "
                         ".venv/bin/pip install -e '.[bench]'") from None
    # SIGTERM unwinds like Ctrl-C, so every Session/Cluster tears its namespaces down
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    unknown = set(a.kinds.split(",")) - set(KINDS)
    if unknown:
        raise SystemExit(f"--kinds: unknown {sorted(unknown)}; allowed: {', '.join(KINDS)}")
    kinds = [k for k in KINDS if k in a.kinds.split(",")
             and not (a.no_knet and KINDS[k].transport == "knet")]
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sbs-") as wd:
        binary = build(Path(wd))
        for run in range(1, a.runs + 1):
            for kind in (kinds if run % 2 else kinds[::-1]):
                for nodes in [int(x) for x in a.topologies.split(",")]:
                    print(f"run {run}: {kind}, {nodes} node(s) (load {os.getloadavg()[0]:.1f})",
                          flush=True)
                    try:
                        rows += session_rows(kind, nodes, run, a, binary,
                                             Path(wd) / f"r{run}-{kind}-{nodes}")
                    except KeyboardInterrupt:
                        raise
                    except Exception as e:
                        traceback.print_exc()
                        rows.append({"run": run, "kind": kind, "nodes": nodes, "what": "session",
                                     "ok": False, "error": f"{type(e).__name__}: {e}"})
                    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    loads = [r["load1"] for r in rows if "load1" in r] or [os.getloadavg()[0]]
    meta = {"command": " ".join([".venv/bin/python bench/bench_side_by_side.py", *(argv or sys.argv[1:])]),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
            "elapsed_s": time.monotonic() - t0, "versions": versions(), "runs": a.runs,
            "seconds": a.seconds, "idle_s": a.idle_s,
            "load_min": min(loads), "load_max": max(loads)}
    plot_paths = sbs_report.plots(rows, out.parent / "plots", _plot_prefix(out))
    write_markdown(out, rows, meta, plot_paths)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {out}, {out.with_suffix('.json')} and {len(plot_paths)} plot(s); "
          f"{meta['elapsed_s'] / 60:.1f} min")
    return 0


def _plot_prefix(out: Path) -> str:
    """sbs_* for side_by_side.md, sbs_knet_* for side_by_side_knet.md, ..."""
    return out.stem.replace("side_by_side", "sbs", 1)


if __name__ == "__main__":
    sys.exit(main())
