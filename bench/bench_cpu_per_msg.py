"""CPU per message at a fixed offered load: coroproc vs Corosync 3.1.7, per process.

A flood says how far each daemon goes; this says what each message costs on the way,
and in which process, at rates both daemons keep. One sender (node 1) paces 1 KiB
CPG_TYPE_AGREED messages through the real libcpg (bench/c/sbs_cpgload.c) for --seconds;
every node's process tree is sampled from /proc meanwhile. Reported: µs of CPU per
delivered message for each node's whole daemon and for its busiest processes (coroproc's
ring, net, cpg engine), and the sender's own-delivery p50/p99. Clusters come from the
side-by-side bench (bench/sbs_daemons.py: netns hosts, the same corosync.conf text).

    sudo .venv/bin/python bench/bench_cpu_per_msg.py [--rates 1000,8000] [--nodes 1,3]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from sbs_client import (Cell, measure_kinds, rate_parser, report_head, run_cell,  # noqa: E402
                        write_report)
from sbs_daemons import KINDS, Session  # noqa: E402

SIZE_BYTES = 1024
KIND_NAMES = ("corosync-shm", "coroproc")


def us_per_msg(cpu_pct: float, msgs_per_s: float) -> float:
    return cpu_pct / 100.0 / msgs_per_s * 1e6 if msgs_per_s else float("nan")


def measure(kind: str, nodes: int, rates: list[int], seconds: float, binary: str,
            work: Path) -> list[dict]:
    rows = []
    with Session(KINDS[kind], nodes, work / f"{kind}-{nodes}") as s:
        for rate in rates:
            res = run_cell(s, binary, Cell(nodes, SIZE_BYTES, 1, rate), seconds)
            got = res.get("msgs_per_s", 0.0)
            rows.append({"kind": kind, "nodes": nodes, "rate": rate, "got": got,
                         "ok": res.get("ok", False), "error": res.get("error", ""),
                         "node_us": {n: us_per_msg(p, got)
                                     for n, p in res.get("cpu_pct_by_node", {}).items()},
                         "top": [(name, us_per_msg(p, got)) for name, p in res.get("top_procs", [])],
                         "p50": res.get("own_p50_us"), "p99": res.get("own_p99_us")})
            print(f"  {kind} {nodes}n {rate}/s: {got:.0f} msgs/s", flush=True)
    return rows


def report(rows: list[dict], argv: list[str]) -> str:
    out = report_head("CPU per message at a fixed rate", "bench/bench_cpu_per_msg.py", argv,
                      f"{SIZE_BYTES}-byte messages, one sender (node 1), all nodes' daemons "
                      "sampled.")
    out += ["| nodes | rate msgs/s | kind | delivered/s | µs CPU per msg, node 1 | other nodes | "
            "busiest processes (µs per msg) | own p50 µs | own p99 µs |",
            "|---:|---:|---|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        others = [f"{v:.0f}" for n, v in sorted(r["node_us"].items()) if n != 1]
        top = ", ".join(f"{name} {v:.0f}" for name, v in r["top"])
        mark = "" if r["ok"] else f" ({r['error'][:60]})"
        out.append(f"| {r['nodes']} | {r['rate']} | {r['kind']}{mark} | {r['got']:.0f} | "
                   f"{r['node_us'].get(1, float('nan')):.0f} | "
                   f"{' / '.join(others) or '–'} | {top} | {r['p50'] or 0:.0f} | "
                   f"{r['p99'] or 0:.0f} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = rate_parser(__doc__, "cpu_per_msg.md", "1000,8000")
    ap.add_argument("--nodes", default="1,3")
    args = ap.parse_args(argv)
    rates = [int(x) for x in args.rates.split(",")]
    rows = []
    for nodes in (int(x) for x in args.nodes.split(",")):
        rows += measure_kinds(KIND_NAMES, lambda kind, binary, work, nodes=nodes: measure(
            kind, nodes, rates, args.seconds, binary, work))
    return write_report(report(rows, argv), args.out)


if __name__ == "__main__":
    sys.exit(main())
