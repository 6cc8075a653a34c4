#!/usr/bin/env python3
"""When the 1,000 msgs/s own-delivery tail happens: periodic sources behind the p99.

One fresh 3-node session of a kind (bench/sbs_daemons.py), floods first as in the
side-by-side, then one long cell of 1 KiB at `--rate` from node 1's client, whose every
sample (send time on CLOCK_MONOTONIC, latency) the load client writes out (SBS_SAMPLES,
bench/c/sbs_cpgload.c). The slowest 1 % are grouped into bursts (a stall delays several
consecutive messages: events less than 5 ms apart are one burst), and for each candidate
period (5-199 ms by 1 ms, 200-2,000 ms by 5 ms) the Rayleigh statistic Z = n·R² of the
bursts' phases says how strongly they repeat with it (Z above ~10 over a few hundred
bursts: not chance). A source that wakes on a period — a timer, a heartbeat, a kernel
thread — shows up as its period and its multiples; the phase tells where in the period.

    .venv/bin/python bench/bench_tail_timing.py --kinds corosync-shm,coroproc [--seconds 60]
"""
from __future__ import annotations

import argparse
import cmath
import dataclasses
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from sbs_client import FLOODS_BEFORE_SPARSE, Cell, build, run_cell, run_sampled  # noqa: E402
from sbs_daemons import KINDS, Session  # noqa: E402

BURST_GAP_NS = 5_000_000
PERIODS_MS = list(range(5, 200)) + list(range(200, 2001, 5))


def samples(kind: str, rate: int, seconds: float, out_dir: Path,
            pace_us: int = -1) -> list[tuple[int, int]]:
    """(send ns, latency µs) of every own delivery at node 1, in send order."""
    binary = build(out_dir)
    prefix = str(out_dir / f"samples-{kind}")
    k = KINDS[kind]
    if k.daemon == "coroproc" and pace_us >= 0:
        k = dataclasses.replace(k, idle_token_pace_us=pace_us)
    with tempfile.TemporaryDirectory() as wd, Session(k, 3, Path(wd)) as s:
        time.sleep(3.0)
        for size in FLOODS_BEFORE_SPARSE:
            run_cell(s, binary, Cell(3, size, 1), 2.0)
        res, rows, _senders = run_sampled(s, binary, Cell(3, 1024, 1, rate, 1), seconds, prefix)
        if not res.get("ok"):
            raise RuntimeError(f"{kind}: {res.get('error')}")
    return rows


def rayleigh(times_ns: list[int], period_ns: float) -> tuple[float, float]:
    """(Z, phase ms) of the times on a circle of the period."""
    z = sum(cmath.exp(2j * math.pi * (t % period_ns) / period_ns) for t in times_ns)
    z /= len(times_ns)
    return len(times_ns) * abs(z) ** 2, (cmath.phase(z) % (2 * math.pi)) / (2 * math.pi) \
        * period_ns / 1e6


def report(kind: str, rows: list[tuple[int, int]], top: int) -> list[str]:
    lats = sorted(lat for _t, lat in rows)
    p99 = lats[int(len(lats) * 0.99)]
    tail = [t for t, lat in rows if lat >= p99]
    bursts = tail[:1] + [b for a, b in zip(tail, tail[1:]) if b - a > BURST_GAP_NS]
    out = [f"{kind}: {len(rows)} samples over {(rows[-1][0] - rows[0][0]) / 1e9:.0f} s; "
           f"p50 {lats[len(lats) // 2]} µs, p99 {p99}, p99.9 {lats[int(len(lats) * 0.999)]}, "
           f"max {lats[-1]}; {len(tail)} tail samples in {len(bursts)} bursts"]
    scored = sorted(((*rayleigh(bursts, p * 1e6), p) for p in PERIODS_MS), reverse=True)
    for z, phase_ms, period_ms in scored[:top]:
        out.append(f"  period {period_ms:6.0f} ms  Z {z:5.1f}  phase {phase_ms:6.1f} ms")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", default="corosync-shm,coroproc")
    ap.add_argument("--rate", type=int, default=1000, help="msgs/s from node 1")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--top", type=int, default=8, help="periods listed per kind")
    ap.add_argument("--pace-us", type=int, default=-1,
                    help="coroproc { idle_token_pace_us } for coroproc (default: its own)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as out:
        for kind in args.kinds.split(","):
            rows = samples(kind, args.rate, args.seconds, Path(out), args.pace_us)
            print("\n".join(report(kind, rows, args.top)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
