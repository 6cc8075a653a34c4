"""Own-delivery latency of sparse traffic, coroproc and Corosync 3.1.7 side by side.

The side-by-side report measures latency at 1,000 msgs/s, where the token never rests.
At a few hundred messages a second or fewer the ring goes quiet between messages, the
representative holds the token, and every message first has to get it back: the regime
of a Pacemaker cluster. This runs both daemons in alternating sessions (3 nodes in
network namespaces, udpu, 1 KiB, one sender) and prints own-delivery p50/p99 at each
rate per session, then the medians and the coroproc/Corosync ratios of the p99.

    .venv/bin/python bench/bench_sparse_latency.py [--rounds 3] [--rates 100,1000]

Root (network namespaces). A few minutes per round.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from sbs_client import Cell, build, run_cell  # noqa: E402
from sbs_daemons import KINDS, Session  # noqa: E402

SIZE_BYTES = 1024
CELL_S = 4.0
WARM_SIZES = (1024, 65536, 1024)   # floods first, as the side-by-side's cells come after


def session(kind: str, rates: list[int], cells_per_rate: int, binary: str) -> dict:
    """{rate: [(p50, p99), ...]} from one fresh 3-node cluster of `kind`."""
    out: dict[int, list] = {r: [] for r in rates}
    with tempfile.TemporaryDirectory() as wd, Session(KINDS[kind], 3, Path(wd)) as s:
        time.sleep(3.0)
        for size in WARM_SIZES:
            run_cell(s, binary, Cell(3, size, 1), 2.0)
        for rate in rates:
            for _ in range(cells_per_rate):
                res = run_cell(s, binary, Cell(3, SIZE_BYTES, 1, rate), CELL_S)
                if not res.get("ok"):
                    raise RuntimeError(f"{kind} at {rate} msgs/s: {res.get('error')}")
                out[rate].append((res["own_p50_us"], res["own_p99_us"]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rates", default="100,1000", help="msgs/s, comma-separated")
    ap.add_argument("--cells", type=int, default=2, help="4-s cells per rate per session")
    args = ap.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    kinds = ("corosync-shm", "coroproc")
    with tempfile.TemporaryDirectory() as bd:
        binary = build(Path(bd))
        got = {k: {r: [] for r in rates} for k in kinds}
        ratios = {r: [] for r in rates}
        for rnd in range(1, args.rounds + 1):
            this = {k: session(k, rates, args.cells, binary) for k in kinds}
            for k in kinds:
                for r in rates:
                    got[k][r] += this[k][r]
                print(f"round {rnd} {k:13s} " + "  ".join(
                    f"{r}/s " + " ".join(f"{p50:.0f}/{p99:.0f}" for p50, p99 in this[k][r])
                    for r in rates), flush=True)
            for r in rates:
                ratios[r].append(statistics.median(p99 for _, p99 in this["coroproc"][r])
                                 / statistics.median(p99 for _, p99 in this["corosync-shm"][r]))
    for r in rates:
        med = {k: (statistics.median(a for a, _ in got[k][r]),
                   statistics.median(b for _, b in got[k][r])) for k in kinds}
        print(f"{r} msgs/s: p50/p99 µs median corosync {med['corosync-shm'][0]:.0f}/"
              f"{med['corosync-shm'][1]:.0f}, coroproc {med['coroproc'][0]:.0f}/"
              f"{med['coroproc'][1]:.0f}; p99 ratio per round "
              f"{' '.join(f'{x:.2f}' for x in ratios[r])} (median "
              f"{statistics.median(ratios[r]):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
