"""Token rotations: coroproc vs Corosync 3.1.7 on 3 nodes, at a fixed rate and in a flood.

Totem's throughput is (messages per token visit) × (rotations per second), and an agreed
message waits for the token before it is sent: the rotation time bounds both the flood
rate and the latency at a light load. One sender (node 1) sends 1 KiB CPG messages
through the real libcpg client (bench/c/sbs_cpgload.c) at each --rates value (0: as fast
as it can); mid-run, every node's `stats.srp.*` keys are read twice with the real
`corosync-cmapctl -m stats` (against coroproc too: its CMAP serves Corosync's keys), and
the differences give tokens received per second, new messages multicast per token visit
of the sender, and the time of one hop (rotation / nodes). Clusters come from the
side-by-side bench (bench/sbs_daemons.py: netns hosts, the same corosync.conf text).

    sudo .venv/bin/python bench/bench_token_rotation.py [--rates 1000,0] [--seconds 8]
"""
from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from sbs_client import (Cell, measure_kinds, rate_parser, report_head, run_cell,  # noqa: E402
                        write_report)
from sbs_daemons import KINDS, Session  # noqa: E402

NODES = 3
SIZE_BYTES = 1024
KIND_NAMES = ("corosync-shm", "coroproc")
SETTLE_S = 2.5             # into the run before the first read of the counters
WINDOW_S = 3.0             # between the two reads
STAT = re.compile(r"stats\.srp\.(\S+) \(\w+\) = (\d+)")


def srp_stats(session, nodeid: int) -> dict[str, int]:
    out = subprocess.run(session.client_argv(nodeid, ["corosync-cmapctl", "-m", "stats"]),
                         capture_output=True, text=True, timeout=30).stdout
    return {m.group(1): int(m.group(2)) for m in map(STAT.match, out.splitlines()) if m}


def measure(kind: str, rates: list[int], seconds: float, binary: str, work: Path) -> list[dict]:
    rows = []
    with Session(KINDS[kind], NODES, work / kind) as s:
        for rate in rates:
            window: dict = {}

            def sample():
                time.sleep(SETTLE_S)
                a = {n: srp_stats(s, n) for n in range(1, NODES + 1)}
                t0 = time.monotonic()
                time.sleep(WINDOW_S)
                b = {n: srp_stats(s, n) for n in range(1, NODES + 1)}
                window.update(a=a, b=b, s=time.monotonic() - t0)

            th = threading.Thread(target=sample)
            th.start()
            res = run_cell(s, binary, Cell(NODES, SIZE_BYTES, 1, rate), seconds)
            th.join()
            a, b, span = window["a"], window["b"], window["s"]
            tokens = [(b[n].get("orf_token_rx", 0) - a[n].get("orf_token_rx", 0)) / span
                      for n in range(1, NODES + 1)]
            mcast = (b[1].get("mcast_tx", 0) - a[1].get("mcast_tx", 0)) / span
            per_s = sum(tokens) / len(tokens)
            rows.append({"kind": kind, "rate": rate, "got": res.get("msgs_per_s", 0.0),
                         "tokens": per_s, "per_visit": mcast / tokens[0] if tokens[0] else 0,
                         "hop_us": 1e6 / per_s / NODES if per_s else float("nan"),
                         "p50": res.get("own_p50_us"), "ok": res.get("ok", False)})
            print(f"  {kind} {rate or 'flood'}: {per_s:.0f} tokens/s", flush=True)
    return rows


def report(rows: list[dict], argv: list[str]) -> str:
    out = report_head("Token rotation, 3 nodes", "bench/bench_token_rotation.py", argv,
                      f"{SIZE_BYTES}-byte messages, one sender (node 1), udpu; counters "
                      f"over {WINDOW_S:g} s mid-run.")
    out += ["| offered msgs/s | kind | delivered/s | tokens/s per node | messages per visit "
            "(sender) | µs per hop | own p50 µs |",
            "|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['rate'] or 'flood'} | {r['kind']}{'' if r['ok'] else ' (failed)'} | "
                   f"{r['got']:.0f} | {r['tokens']:.0f} | {r['per_visit']:.1f} | "
                   f"{r['hop_us']:.0f} | {r['p50'] or 0:.0f} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = rate_parser(__doc__, "token_rotation.md", "1000,0")
    args = ap.parse_args(argv)
    if args.seconds < SETTLE_S + WINDOW_S + 1:
        ap.error(f"--seconds must be at least {SETTLE_S + WINDOW_S + 1:g}")
    rates = [int(x) for x in args.rates.split(",")]
    rows = measure_kinds(KIND_NAMES, lambda kind, binary, work: measure(
        kind, rates, args.seconds, binary, work))
    return write_report(report(rows, argv), args.out)


if __name__ == "__main__":
    sys.exit(main())
