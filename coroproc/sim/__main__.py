"""Command line of the deterministic simulator.

  python -m coroproc.sim --seeds 0:2000 --nodes 3:7 -j 2       # a sweep, as CI runs it
  python -m coroproc.sim --seeds 0:20 --nodes 3:7 --progress    # one line per seed
  python -m coroproc.sim --seed 17 --nodes 5 --trace            # replay one seed

A sweep prints one line per failing seed (with the command that replays it) and ends
with exactly one summary line:
  seeds=<n> violations=<seeds with a safety violation> liveness_failures=<seeds with a
  liveness violation> seconds=<wall>
The exit status is 1 when any seed failed. Results do not depend on --jobs. A seed whose
run ends in a frame storm, a core exception, a hang (--seed-timeout) or a dead worker
counts as a safety violation; its replay command shows what happened.
"""
from __future__ import annotations

import argparse
import faulthandler
import multiprocessing
import multiprocessing.connection
import sys
import time

from coroproc.sim import params
from coroproc.sim.run import RunResult, run_seed
from coroproc.sim.trace import write_logs

DEFAULT_NODES = (3, 7)


def parse_range(text: str, what: str, *, inclusive: bool) -> tuple[int, int]:
    """'A:B' or 'N'. Seeds are half-open (A..B-1), node counts inclusive (M..N)."""
    try:
        if ":" in text:
            lo_text, hi_text = text.split(":", 1)
            lo, hi = int(lo_text), int(hi_text)
        else:
            lo = int(text)
            hi = lo if inclusive else lo + 1
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be N or A:B with integers, got {text!r}") from None
    if lo < 0 or (hi < lo if inclusive else hi <= lo):
        raise argparse.ArgumentTypeError(f"{what} range {text!r} is empty or negative")
    return lo, hi


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m coroproc.sim", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--seeds", type=lambda s: parse_range(s, "--seeds", inclusive=False),
                       metavar="A:B", help="run seeds A..B-1")
    which.add_argument("--seed", type=int, metavar="S", help="run (replay) one seed")
    p.add_argument("--nodes", type=lambda s: parse_range(s, "--nodes", inclusive=True),
                   default=DEFAULT_NODES, metavar="M:N",
                   help="node count, or a range M..N from which each seed draws its own (default 3:7)")
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="K", help="worker processes (fork)")
    p.add_argument("--trace", action="store_true", help="print the event trace of the seed")
    p.add_argument("--progress", action="store_true", help="print a line per seed")
    p.add_argument("--print-memberships", action="store_true",
                   help="print memberships and throughput (default for a single seed)")
    p.add_argument("--dump-logs", metavar="DIR",
                   help="write the event logs (JSON lines) of failing seeds, or of --seed, to DIR/seed-S/")
    p.add_argument("--fault-ms", type=int, default=params.FAULT_MS, help="fault phase length (virtual)")
    p.add_argument("--quiet-ms", type=int, default=None,
                   help="quiet phase length (virtual; default 2 × liveness bound + 1 s)")
    p.add_argument("--token-ms", type=int, default=None, help="token timeout (default: drawn per seed)")
    p.add_argument("--no-faults", action="store_true", help="run the workload on a healthy network")
    p.add_argument("--seed-timeout", type=float, default=params.SEED_WALL_S_MAX, metavar="S",
                   help="wall seconds after which a seed counts as hung (default %(default)s)")
    return p


def overrides_of(args: argparse.Namespace) -> dict:
    overrides = {"fault_ms": args.fault_ms, "quiet_ms": args.quiet_ms}
    if args.token_ms is not None:
        overrides["token_ms"] = args.token_ms
    if args.no_faults:
        overrides["faults"] = False
    return overrides


def _job(task: tuple[int, int, dict, bool]) -> RunResult:
    seed, nodes, overrides, keep_logs = task
    result = run_seed(seed, nodes, keep_logs=keep_logs, **overrides)
    if result.ok:
        result.logs = None      # only failing seeds' logs travel back to be dumped
    return result


def warm_up() -> None:
    """Compile (or load) the core's kernels once, before forking workers."""
    try:
        from coroproc.ringproc.warm import smoke_ring
    except ImportError:
        pass
    else:
        smoke_ring()
    run_seed(0, 3, check=False, fault_ms=200, quiet_ms=300, drain_ms=100)


def _worker_main(conn) -> None:
    """A sweep worker: run the seeds it is sent until it is sent None."""
    while True:
        task = conn.recv()
        if task is None:
            return
        conn.send(_job(task))


class _Worker:
    def __init__(self, ctx) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child,), daemon=True)
        self.process.start()
        child.close()
        self.task_index: int | None = None
        self.started_s = 0.0

    def give(self, index: int, task) -> None:
        self.task_index = index
        self.started_s = time.perf_counter()
        self.conn.send(task)

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            try:
                self.conn.send(None)
            except OSError:
                pass
        self.process.join(timeout=10)
        self.conn.close()


def run_tasks(tasks: list, jobs: int, seed_timeout_s: float):
    """Yield one RunResult per task, in task order, from `jobs` forked workers.

    A seed that runs longer than seed_timeout_s (wall) is reported as hung and its worker
    killed (a jitted loop cannot be interrupted from inside); a worker that dies (a
    segfault in the core) is reported as such. Either way the sweep goes on.
    """
    ctx = multiprocessing.get_context("fork")
    workers = [_Worker(ctx) for _ in range(min(jobs, len(tasks)))]
    results: list[RunResult | None] = [None] * len(tasks)
    next_task = emitted = 0
    try:
        for w in workers:
            if next_task < len(tasks):
                w.give(next_task, tasks[next_task])
                next_task += 1
        while emitted < len(tasks):
            busy = [w for w in workers if w.task_index is not None]
            ready = multiprocessing.connection.wait([w.conn for w in busy], timeout=1.0)
            for i, w in enumerate(workers):
                if w.task_index is None:
                    continue
                index = w.task_index
                seed, nodes = tasks[index][0], tasks[index][1]
                elapsed_s = time.perf_counter() - w.started_s
                if w.conn in ready:
                    try:
                        results[index] = w.conn.recv()
                    except (EOFError, OSError):
                        results[index] = RunResult.failed(
                            seed, nodes, "worker-died",
                            f"the worker process died (exit code {w.process.exitcode})", elapsed_s)
                        w.stop(kill=True)
                        w = workers[i] = _Worker(ctx)
                elif elapsed_s > seed_timeout_s:
                    results[index] = RunResult.failed(
                        seed, nodes, "hang", f"no result after {elapsed_s:.0f} s wall (limit "
                        f"{seed_timeout_s:.0f} s): a core loops, or the seed is far too slow", elapsed_s)
                    w.stop(kill=True)
                    w = workers[i] = _Worker(ctx)
                else:
                    continue
                w.task_index = None
                if next_task < len(tasks):
                    w.give(next_task, tasks[next_task])
                    next_task += 1
            while emitted < len(tasks) and results[emitted] is not None:
                yield results[emitted]
                results[emitted] = None      # let big results (logs) go
                emitted += 1
    finally:
        for w in workers:
            w.stop(kill=w.task_index is not None)


def sweep(args: argparse.Namespace, out=None) -> int:
    out = out or sys.stdout
    started = time.perf_counter()
    lo, hi = args.seeds
    overrides = overrides_of(args)
    keep_logs = args.dump_logs is not None
    tasks = [(seed, params.nodes_for_seed(seed, *args.nodes), overrides, keep_logs) for seed in range(lo, hi)]
    warm_up()
    failed_safety = failed_liveness = 0
    for result in run_tasks(tasks, args.jobs, args.seed_timeout):
        failed_safety += result.violations > 0
        failed_liveness += result.liveness > 0
        if args.progress:
            print(result.progress_line(), file=out, flush=True)
        if args.print_memberships:
            print_memberships(result, out)
        if not result.ok:
            report_failure(result, args, out)
    seconds = time.perf_counter() - started
    print(f"seeds={len(tasks)} violations={failed_safety} liveness_failures={failed_liveness}"
          f" seconds={seconds:.1f}", file=out, flush=True)
    return 1 if failed_safety or failed_liveness else 0


def report_failure(result: RunResult, args: argparse.Namespace, out) -> None:
    print(f"FAIL seed={result.seed} nodes={result.nodes} violations={result.violations}"
          f" liveness={result.liveness} replay: python -m coroproc.sim --seed {result.seed}"
          f" --nodes {result.nodes} --trace", file=out)
    for line in result.first:
        print(f"  {line[:2000]}", file=out)
    if args.dump_logs and result.logs is not None:
        write_logs(f"{args.dump_logs}/seed-{result.seed}", result.logs)
    out.flush()


def single(args: argparse.Namespace, out=None) -> int:
    out = out or sys.stdout
    started = time.perf_counter()
    nodes = params.nodes_for_seed(args.seed, *args.nodes)
    # The trace streams as the run goes, so a core that hangs shows what led there; after
    # --seed-timeout the stack of the hung call is printed and the process exits.
    faulthandler.dump_traceback_later(args.seed_timeout, exit=True, file=sys.__stderr__)
    try:
        result = run_seed(args.seed, nodes, trace=args.trace, keep_logs=args.dump_logs is not None,
                          trace_sink=out if args.trace else None, **overrides_of(args))
    finally:
        faulthandler.cancel_dump_traceback_later()
    if args.print_memberships or not args.progress:
        print_memberships(result, out, wall=not args.trace)
    if args.progress:
        print(result.progress_line(), file=out)
    if args.dump_logs:
        write_logs(f"{args.dump_logs}/seed-{result.seed}", result.logs)
    if not result.ok:
        report_failure(result, args, out)
    seconds = time.perf_counter() - started
    print(f"seeds=1 violations={int(result.violations > 0)} liveness_failures={int(result.liveness > 0)}"
          f" seconds={seconds:.1f}", file=out)
    return 0 if result.ok else 1


def print_memberships(result: RunResult, out, *, wall: bool = True) -> None:
    print(f"seed {result.seed}: {result.nodes} nodes, token {result.token_ms} ms,"
          f" {result.episodes} fault episodes, {result.rings} regular rings", file=out)
    for line in result.memberships:
        print(f"  {line}", file=out)
    # with --trace the output stays byte-identical across replays: no wall-clock figures
    per_wall = (f", {result.ordered_per_wall_s():.0f} per wall second ({result.wall_s:.2f} s wall)"
                if wall else "")
    print(f"  sent {result.sent} messages, {result.ordered} ordered, {result.deliveries} deliveries;"
          f" {result.ordered_per_virtual_s():.0f} ordered msgs per virtual second{per_wall}", file=out)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.jobs < 1:
        build_parser().error("--jobs must be at least 1")
    if args.nodes[0] < 2:
        build_parser().error("--nodes needs at least 2 nodes")
    if args.trace and args.seed is None:
        build_parser().error("--trace replays one seed: use it with --seed S")
    if args.seed is not None:
        return single(args)
    return sweep(args)


if __name__ == "__main__":
    sys.exit(main())
