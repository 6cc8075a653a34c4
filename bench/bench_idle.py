"""Idle cost and start-up time of a cluster daemon, per node, in a 3-node netns cluster.

    python bench/bench_idle.py --compare [--nodes 3] [--idle-s 60] [--runs 1]
    python bench/bench_idle.py --corosync | --coroproc [...]

Measures, for each node: start-up (exec → the daemon's "is ready" predicate is true, and
exec → the whole cluster seen from this node), then CPU % of one core (utime+stime from
/proc/<pid>/stat summed over the daemon's process tree, over --idle-s idle seconds) and
RSS / PSS / threads / process count of that tree at the end. PSS (proportional set size,
from /proc/<pid>/smaps_rollup) is the fair memory figure for a process tree: pages the
forked children share with the supervisor (numba's compiled code) count once, not per
process as in the RSS sum. --compare measures Corosync and coroproc in one run and prints
coroproc's medians as ratios to Corosync's (this machine is noisy; ratios drift less).

The measured daemon is a `Driver` (below): how to start a node (returning its root pid),
when a node is ready, how to stop everything. The Corosync driver lives here; coroproc
plugs in with `--driver module:factory`, where factory(net, workdir, token_ms) returns a
Driver, so both daemons are measured by the same code (the tree sum covers coroproc's
supervisor + ring + net + engine processes). Needs root (network namespaces).
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from interop.coroproc_runner import CoroprocNode  # noqa: E402
from interop.corosync_runner import READY_LINE, CorosyncCluster, corosync_conf  # noqa: E402
from netns.harness import Cluster  # noqa: E402
from sbs_proc import process_tree, pss_kb, ticks_by_pid  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
POLL_S = 0.005
READY_TIMEOUT_S = 60.0


class Driver(Protocol):
    def start(self, nodeid: int) -> int:
        """Exec node `nodeid` (1-based host index) now; return the pid of its root process."""

    def is_ready(self, nodeid: int) -> bool:
        """True once the node serves clients (its first sync is done)."""

    def members(self, nodeid: int) -> set[int]:
        """Node ids this node currently sees as members."""

    def stop_all(self) -> None: ...


class CoroprocDriver:
    """coroproc daemons from the same corosync.conf text (tests/interop/coroproc_runner.py)."""

    def __init__(self, net: Cluster, workdir: Path, token_ms: int):
        nodes = [(h.index, h.addr) for h in net]
        self.nodes = {}
        for h in net:
            nd = Path(workdir) / f"n{h.index}"
            conf = corosync_conf(cluster_name=f"idle{os.getpid()}", nodes=nodes,
                                 logfile=str(nd / "x.log"), state_dir=str(nd / "state"),
                                 token_ms=token_ms)
            self.nodes[h.index] = CoroprocNode(h, h.index, conf, str(nd))

    def start(self, nodeid: int) -> int:
        self.nodes[nodeid].start()
        return self.nodes[nodeid].proc.pid

    def is_ready(self, nodeid: int) -> bool:
        return READY_LINE in self.nodes[nodeid].log_text()

    def members(self, nodeid: int) -> set[int]:
        return self.nodes[nodeid].members() or set()

    def stop_all(self) -> None:
        for node in self.nodes.values():
            node.stop()


class CorosyncDriver:
    """Real corosync 3.1.7, udpu, via tests/interop/corosync_runner.py."""

    def __init__(self, net: Cluster, workdir: Path, token_ms: int):
        self.cc = CorosyncCluster(net, workdir, transport="udpu", token_ms=token_ms)

    def start(self, nodeid: int) -> int:
        self.cc[nodeid].start()
        return self.cc[nodeid].pid

    def is_ready(self, nodeid: int) -> bool:
        return self.cc[nodeid].is_ready()

    def members(self, nodeid: int) -> set[int]:
        return self.cc[nodeid].members()

    def stop_all(self) -> None:
        self.cc.stop_all()


# ---- /proc readers (the tree walk, ticks and PSS are the side-by-side benchmark's)
def cpu_ticks(pids: set[int]) -> int:
    """utime+stime of `pids` (all threads included), in clock ticks."""
    return sum(ticks_by_pid(pids).values())


def status_sum(pids: set[int], key: str) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


# ---- one run
def measure_once(driver: Driver, nodeids: list[int], idle_s: float) -> list[dict]:
    exec_at, roots, ready_ms, formed_ms = {}, {}, {}, {}
    for n in nodeids:
        exec_at[n] = time.monotonic()
        roots[n] = driver.start(n)
    want, deadline = set(nodeids), time.monotonic() + READY_TIMEOUT_S
    while len(formed_ms) < len(nodeids):
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_idle: not ready/formed within {READY_TIMEOUT_S}s: "
                             f"ready {sorted(ready_ms)}, formed {sorted(formed_ms)} of {nodeids}")
        for n in nodeids:
            if n not in ready_ms and driver.is_ready(n):
                ready_ms[n] = (time.monotonic() - exec_at[n]) * 1000
            if n in ready_ms and n not in formed_ms and driver.members(n) == want:
                formed_ms[n] = (time.monotonic() - exec_at[n]) * 1000
        time.sleep(POLL_S)
    time.sleep(2.0)  # let the join/sync burst end before the idle window
    trees = {n: process_tree(roots[n]) for n in nodeids}
    t0 = {n: cpu_ticks(trees[n]) for n in nodeids}
    wall0 = time.monotonic()
    time.sleep(idle_s)
    wall_s = time.monotonic() - wall0
    rows = []
    for n in nodeids:
        tree = trees[n] | process_tree(roots[n])
        rows.append({"node": n, "ready_ms": ready_ms[n], "formed_ms": formed_ms[n],
                     "cpu_pct": (cpu_ticks(tree) - t0[n]) / CLK_TCK / wall_s * 100,
                     "rss_kb": status_sum(tree, "VmRSS"), "pss_kb": pss_kb(tree), "threads": status_sum(tree, "Threads"),
                     "procs": len(tree), "members_ok": driver.members(n) == want})
    return rows


def load_driver_factory(spec: str):
    module, _, attr = spec.partition(":")
    if not attr:
        raise SystemExit(f"--driver {spec!r}: expected module:factory, e.g. mypkg.bench:make_driver")
    return getattr(importlib.import_module(module), attr)


def run_driver(factory, nodes: int, idle_s: float, runs: int, token_ms: int) -> list[dict]:
    rows: list[dict] = []
    for run in range(1, runs + 1):
        with Cluster("cpt", nodes) as net, tempfile.TemporaryDirectory(prefix="cpt-idle-") as wd:
            driver = factory(net, Path(wd), token_ms)
            try:
                for row in measure_once(driver, list(range(1, nodes + 1)), idle_s):
                    rows.append({"run": run, **row})
            finally:
                driver.stop_all()
    return rows


KEYS = ("ready_ms", "formed_ms", "cpu_pct", "rss_kb", "pss_kb")


def print_table(label: str, rows: list[dict], args) -> dict:
    print(f"\n# bench_idle {label}: {args.nodes} nodes, token {args.token_ms} ms, "
          f"idle window {args.idle_s:.0f} s, {args.runs} run(s), CLK_TCK {CLK_TCK}")
    print("| run | node | start→ready ms | start→all members ms | idle CPU % of one core | "
          "RSS kB (sum) | PSS kB | threads | processes |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        flag = "" if r["members_ok"] else " (members changed!)"
        print(f"| {r['run']} | {r['node']} | {r['ready_ms']:.0f} | {r['formed_ms']:.0f} | "
              f"{r['cpu_pct']:.2f}{flag} | {r['rss_kb']} | {r['pss_kb']} | {r['threads']} | "
              f"{r['procs']} |")
    med = {k: statistics.median(r[k] for r in rows) for k in KEYS}
    print(f"| median | | {med['ready_ms']:.0f} | {med['formed_ms']:.0f} | {med['cpu_pct']:.2f} | "
          f"{med['rss_kb']:.0f} | {med['pss_kb']:.0f} | | |")
    return med


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    who = ap.add_mutually_exclusive_group(required=True)
    who.add_argument("--compare", action="store_true", help="Corosync, then coroproc, in one run")
    who.add_argument("--corosync", action="store_true", help="measure the real corosync (udpu)")
    who.add_argument("--coroproc", action="store_true", help="measure coroproc (udpu)")
    who.add_argument("--driver", help="module:factory(net, workdir, token_ms) -> Driver")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--idle-s", type=float, default=60.0)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--token-ms", type=int, default=1000)
    args = ap.parse_args(argv)
    drivers = []
    if args.compare or args.corosync:
        drivers.append(("corosync 3.1.7", CorosyncDriver))
    if args.compare or args.coroproc:
        drivers.append(("coroproc", CoroprocDriver))
    if args.driver:
        drivers.append((args.driver, load_driver_factory(args.driver)))
    medians = {}
    for label, factory in drivers:
        rows = run_driver(factory, args.nodes, args.idle_s, args.runs, args.token_ms)
        medians[label] = print_table(label, rows, args)
    if args.compare:
        base, ours = medians["corosync 3.1.7"], medians["coroproc"]
        print("\n| coroproc / corosync (medians) | " + " | ".join(KEYS) + " |")
        print("|---|" + "---:|" * len(KEYS))
        print("| ratio | " + " | ".join(f"{ours[k] / base[k]:.2f}" if base[k] else "-"
                                        for k in KEYS) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
