"""Own-delivery latency of sparse traffic, coroproc and Corosync 3.1.7 side by side.

The side-by-side report measures latency at 1,000 msgs/s, where the token never rests.
At a few hundred messages a second or fewer the ring goes quiet between messages, the
representative holds the token, and every message first has to get it back: the regime
of a Pacemaker cluster. This runs both daemons in alternating sessions (3 nodes in
network namespaces, udpu, 1 KiB, one sender) and prints own-delivery p50/p99 at each
rate per session (and the three nodes' CPU in % of one CPU), then the medians and the
coroproc/Corosync ratios of the p99.

    .venv/bin/python bench/bench_sparse_latency.py [--rounds 3] [--rates 100,1000]
        [--client-cpus 0] [--hogs 2] [--sender-node 3] [--pace-us 0]
        [--kinds corosync-shm,coroproc,coroproc-rrpath]

Root (network namespaces). A few minutes per round. --client-cpus runs every client
(both daemons') under `taskset -c CPUS`: with 0 on a 2-vCPU host the clients stay off
the CPU coroproc's ring and link processes share (ring_cpu: auto takes the highest), the
placement docs/deploy.md recommends for latency-critical clients. --hogs N keeps N
busy-looping processes running while the cells run (a host whose CPUs other work takes);
each session line also says how many configurations the nodes logged meanwhile (0: the
ring never re-formed). --sender-node N sends from node N instead of node 1 (the
representative, which sends with the token it keeps; any other node first cancels the
hold or the pace). --pace-us sets coroproc's `coroproc { idle_token_pace_us }` (0: the
token goes round at full speed when idle, as Corosync's; docs/executive.md). --kinds
picks the daemons (bench/sbs_daemons.py KINDS; the first is the baseline of the ratios),
e.g. coroproc-rrpath: coroproc with `system { sched_rr: yes }`.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from sbs_client import Cell, build, run_cell  # noqa: E402
from sbs_daemons import KINDS, MEMBERS_RE, Session  # noqa: E402

SIZE_BYTES = 1024
CELL_S = 4.0
WARM_SIZES = (1024, 65536, 1024)   # floods first, as the side-by-side's cells come after


class PinnedClients(Session):
    """A Session whose clients run under `taskset -c cpus` (inside the node's namespaces)."""

    def __init__(self, kind, nodes: int, workdir: Path, cpus: str):
        super().__init__(kind, nodes, workdir)
        self.cpus = cpus

    def client_argv(self, nodeid: int, argv: list[str]) -> list[str]:
        return super().client_argv(nodeid, ["taskset", "-c", self.cpus, *argv])


@contextlib.contextmanager
def cpu_hogs(count: int):
    """`count` busy-looping processes (SCHED_OTHER, nice 0, any CPU) for the block: a host
    whose CPUs are all taken by other work."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(count)]
    try:
        yield
    finally:
        for h in hogs:
            h.kill()
            h.wait()


def configurations_seen(s: Session) -> int:
    """Configurations logged so far, summed over the nodes (a change of membership adds one
    per surviving node)."""
    return sum(len(MEMBERS_RE.findall(Path(d.logfile).read_text(errors="replace")))
               for d in s.daemons.values())


def session(kind: str, rates: list[int], cells_per_rate: int, binary: str,
            client_cpus: str | None = None, hogs: int = 0, sender_node: int = 1,
            pace_us: int = -1) -> tuple[dict, int]:
    """({rate: [(p50, p99, cpu), ...]}, n) from one fresh 3-node cluster of `kind` (cpu:
    the three nodes' process trees over the cell, % of one CPU); n counts the
    configurations logged while the cells ran (0 on a stable ring)."""
    out: dict[int, list] = {r: [] for r in rates}
    k = KINDS[kind]
    if k.daemon == "coroproc" and pace_us >= 0:
        k = dataclasses.replace(k, idle_token_pace_us=pace_us)
    with tempfile.TemporaryDirectory() as wd, \
            (PinnedClients(k, 3, Path(wd), client_cpus) if client_cpus
             else Session(k, 3, Path(wd))) as s:
        time.sleep(3.0)
        for size in WARM_SIZES:
            run_cell(s, binary, Cell(3, size, 1), 2.0)
        before = configurations_seen(s)
        with cpu_hogs(hogs):
            for rate in rates:
                for _ in range(cells_per_rate):
                    res = run_cell(s, binary, Cell(3, SIZE_BYTES, 1, rate, sender_node),
                                   CELL_S)
                    if not res.get("ok"):
                        raise RuntimeError(f"{kind} at {rate} msgs/s: {res.get('error')}")
                    out[rate].append((res["own_p50_us"], res["own_p99_us"],
                                      sum(res["cpu_pct_by_node"].values())))
        reconfigurations = configurations_seen(s) - before
    return out, reconfigurations


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rates", default="100,1000", help="msgs/s, comma-separated")
    ap.add_argument("--cells", type=int, default=2, help="4-s cells per rate per session")
    ap.add_argument("--client-cpus", default=None,
                    help="run every client under taskset -c CPUS (e.g. 0), both daemons")
    ap.add_argument("--hogs", type=int, default=0,
                    help="busy-looping processes on the host while the cells run")
    ap.add_argument("--sender-node", type=int, default=1, choices=(1, 2, 3),
                    help="the node whose client sends (1: the representative)")
    ap.add_argument("--pace-us", type=int, default=-1,
                    help="coroproc { idle_token_pace_us } for coroproc (default: its own)")
    ap.add_argument("--kinds", default="corosync-shm,coroproc",
                    help="sbs_daemons kinds, comma-separated; ratios are against the first "
                         "(e.g. corosync-shm,coroproc,coroproc-rrpath)")
    args = ap.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    kinds = args.kinds.split(",")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or len(kinds) < 2:
        ap.error(f"--kinds: two or more of {', '.join(KINDS)} (unknown: {unknown})")
    base, others = kinds[0], kinds[1:]
    with tempfile.TemporaryDirectory() as bd:
        binary = build(Path(bd))
        got = {k: {r: [] for r in rates} for k in kinds}
        ratios = {(k, r): [] for k in others for r in rates}
        for rnd in range(1, args.rounds + 1):
            this, reconfigured = {}, {}
            for k in kinds:
                this[k], reconfigured[k] = session(k, rates, args.cells, binary,
                                                   args.client_cpus, args.hogs,
                                                   args.sender_node, args.pace_us)
                for r in rates:
                    got[k][r] += this[k][r]
                print(f"round {rnd} {k:13s} " + "  ".join(
                    f"{r}/s " + " ".join(f"{p50:.0f}/{p99:.0f} ({cpu:.0f} %)"
                                         for p50, p99, cpu in this[k][r])
                    for r in rates) + f"  reconfigurations {reconfigured[k]}", flush=True)
            for k in others:
                for r in rates:
                    ratios[k, r].append(statistics.median(c[1] for c in this[k][r])
                                        / statistics.median(c[1] for c in this[base][r]))
    for r in rates:
        med = {k: tuple(statistics.median(c[j] for c in got[k][r]) for j in range(3))
               for k in kinds}
        print(f"{r} msgs/s: p50/p99 µs (cpu %) median " + ", ".join(
            f"{k} {med[k][0]:.0f}/{med[k][1]:.0f} ({med[k][2]:.0f})" for k in kinds))
        for k in others:
            print(f"  p99 {k}/{base} per round {' '.join(f'{x:.2f}' for x in ratios[k, r])} "
                  f"(median {statistics.median(ratios[k, r]):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
