"""Nemesis soak: a real coroproc cluster in network namespaces under a long seeded fault
schedule, checked at the end; writes bench/results/soak.md.

    python bench/soak.py --minutes 30 --faults-min 200 --nodes 5 --seed S [--transport knet]
    python bench/soak.py --seed S --nodes 5 --minutes 30 --faults-min 200 --print-schedule
    python bench/soak.py --replay RUN_DIR/schedule.txt      (a printed schedule, as it is)

Needs root (network namespaces, iptables). --minutes is the fault window; a quiet period
(about 20 s with the default timers) follows, then the checkers: EVS safety 1-12 and
liveness over the daemons' event logs, CPG EVS-13 and per-sender checks over the CPG
recorders' views (tests/nemesis/runner.py). The same seed and options replay the same
schedule with the same code; --replay runs a printed schedule (a run's schedule.txt)
exactly, whatever version of the generator made it. Exit status 0 when every check passed, 1 when one failed, 2 on bad options.
The run's files (event logs, recorder logs, daemon logs, summary.json) stay in --out-dir.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from nemesis import schedule as S  # noqa: E402
from nemesis.runner import RunConfig, run  # noqa: E402
from nemesis.soak_report import write_report  # noqa: E402

from coroproc.tools.cpghum_wire import check_size  # noqa: E402


def _args(argv):
    p = argparse.ArgumentParser(prog="soak.py", description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=30.0, help="fault window (default 30)")
    p.add_argument("--faults-min", type=int, default=200, help="at least this many faults")
    p.add_argument("--nodes", type=int, default=5)
    p.add_argument("--seed", type=int, default=None, help="required unless --replay")
    p.add_argument("--replay", type=Path, default=None, metavar="SCHEDULE_TXT",
                   help="run this printed schedule; it sets seed, nodes, transport, "
                        "links, token and minutes")
    p.add_argument("--transport", choices=("udpu", "knet"), default="udpu")
    p.add_argument("--links", type=int, default=None,
                   help="knet links per node (default 2 with knet: link cuts need a spare)")
    p.add_argument("--token-ms", type=int, default=1000)
    p.add_argument("--load-rate", type=int, default=10,
                   help="load-engine msgs/s per node (event log size grows with it)")
    p.add_argument("--cpg-rate", type=float, default=5.0, help="CPG msgs/s per node")
    p.add_argument("--cpg-size", type=int, default=256,
                   help="CPG message bytes (default 256; above the path MTU, ~1,400 bytes, "
                        "every knet frame carrying one goes as fragments)")
    p.add_argument("--out-dir", type=Path, default=None,
                   help="run files (default /tmp/coroproc-soak-<seed>-<pid>)")
    p.add_argument("--report", type=Path, default=REPO / "bench" / "results" / "soak.md")
    p.add_argument("--print-schedule", action="store_true", help="print it and exit")
    a = p.parse_args(argv)
    if a.replay is not None:
        try:
            a.replay = S.parse(a.replay.read_text())
        except (OSError, ValueError) as exc:
            p.error(f"--replay: {exc}")
        r = a.replay
        a.seed, a.nodes, a.transport, a.links = r.seed, r.n_nodes, r.transport, r.links
        a.token_ms, a.minutes, a.faults_min = r.timing.token_ms, r.quiet_from_s / 60, 0
    if a.seed is None:
        p.error("--seed is required (or --replay)")
    if a.links is None:
        a.links = 2 if a.transport == "knet" else 1
    if a.transport != "knet" and a.links != 1:
        p.error(f"--links {a.links}: only knet has several links")
    try:
        check_size(a.cpg_size)
    except ValueError as exc:
        p.error(f"--cpg-size: {exc}")
    if a.minutes <= 0 or a.nodes < 3:
        p.error("--minutes must be > 0 and --nodes at least 3")
    return a


def main(argv=None) -> int:
    a = _args(argv)
    cfg = RunConfig(seed=a.seed, n_nodes=a.nodes, transport=a.transport, links=a.links,
                    token_ms=a.token_ms, fault_window_s=a.minutes * 60,
                    faults_min=a.faults_min, load_msgs_per_s=a.load_rate,
                    cpg_msgs_per_s=a.cpg_rate, cpg_size_bytes=a.cpg_size,
                    out_dir=a.out_dir or Path(f"/tmp/coroproc-soak-{a.seed}-{os.getpid()}"),
                    progress=lambda line: print(line, flush=True), replay=a.replay)
    try:
        sched = a.replay or S.generate(
            cfg.seed, n_nodes=cfg.n_nodes, fault_window_s=cfg.fault_window_s,
            faults_min=cfg.faults_min, transport=cfg.transport, links=cfg.links,
            timing=cfg.timing())
    except ValueError as exc:
        print(f"soak.py: {exc}", file=sys.stderr)
        return 2
    if a.print_schedule:
        print(sched.format())
        return 0
    if os.geteuid() != 0:
        print("soak.py: needs root (network namespaces and iptables)", file=sys.stderr)
        return 2
    command = shlex.join([Path(sys.executable).name, "bench/soak.py",
                          *(argv if argv is not None else sys.argv[1:])])
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    result = run(cfg)
    write_report(a.report, command=command, started=started, summary=result.summary,
                 out_dir=cfg.out_dir, load_before=load_before, load_after=os.getloadavg(),
                 commit=_commit())
    print(f"\n{'PASS' if result.passed else 'FAIL'}: report {a.report}, files {cfg.out_dir}")
    for line in result.summary["failures"][:20]:
        print(f"  ! {line}")
    return 0 if result.passed else 1


def _commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


if __name__ == "__main__":
    sys.exit(main())
