"""Failure detection beside Corosync: kill -9 of one node → a new configuration on the others.

    python bench/bench_failover.py [--nodes 3] [--token-ms 1000] [--runs 3]

One daemon per network namespace (tests/netns/harness.py), the same corosync.conf text for
both, udpu. For each run: start all, wait for one ring, SIGKILL the last node, and time
from the kill to the moment every survivor has logged "[QUORUM] Members[n-1]" (read from
the logfiles, polled every 20 ms). Prints both tables and coroproc's median as a ratio to
Corosync's, next to Totem's bound token + consensus (+ 500 ms of slack). Needs root.
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from interop.coroproc_runner import CoroprocNode  # noqa: E402
from interop.corosync_runner import CorosyncNode, corosync_conf  # noqa: E402
from netns.harness import Cluster  # noqa: E402

from coroproc.ringproc.config import TotemConfig  # noqa: E402

POLL_S = 0.02


def _members(text: str) -> set[int] | None:
    found = re.findall(r"\[QUORUM\] Members\[\d+\]: ([\d ]+)", text)
    return {int(x) for x in found[-1].split()} if found else None


def _log(node) -> str:
    try:
        return Path(node.logfile).read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _wait(pred, timeout_s: float, what: str) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if pred():
            return time.monotonic()
        time.sleep(POLL_S)
    raise SystemExit(f"bench_failover: timed out waiting for {what}")


def one_run(kind: str, nodes: int, token_ms: int, workdir: Path) -> float:
    with Cluster("cpt", nodes) as net:
        addrs = [(h.index, h.addr) for h in net]
        daemons = {}
        for h in net:
            nd = workdir / f"{kind}-n{h.index}"
            nd.mkdir(parents=True)
            conf = corosync_conf(cluster_name="fo", nodes=addrs, logfile=str(nd / "corosync.log"),
                                 state_dir=str(nd / "state"), token_ms=token_ms)
            daemons[h.index] = (CorosyncNode(h, h.index, conf, nd) if kind == "corosync"
                                else CoroprocNode(h, h.index, conf, str(nd)))
        try:
            for d in daemons.values():
                d.start()
            everyone = set(daemons)
            _wait(lambda: all(_members(_log(d)) == everyone for d in daemons.values()), 120,
                  f"{kind}: one ring")
            time.sleep(1.0)
            victim = max(daemons)
            rest = everyone - {victim}
            t_kill = time.monotonic()
            if kind == "corosync":
                daemons[victim].kill()
            else:
                daemons[victim].proc.kill()
                daemons[victim].proc.wait()
            t_done = _wait(lambda: all(_members(_log(daemons[i])) == rest for i in rest), 60,
                           f"{kind}: survivors' new ring")
            return (t_done - t_kill) * 1000
        finally:
            for i, d in daemons.items():
                try:
                    d.stop()
                except Exception:
                    pass


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--token-ms", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args(argv)
    cfg = TotemConfig(token_ms=a.token_ms, nodelist=tuple(range(1, a.nodes + 1)))
    bound_ms = cfg.effective_token_ms + cfg.effective_consensus_ms + 500
    results = {"corosync": [], "coroproc": []}
    with tempfile.TemporaryDirectory(prefix="cpt-failover-") as wd:
        for run in range(a.runs):
            for kind in results:
                results[kind].append(one_run(kind, a.nodes, a.token_ms, Path(wd) / f"r{run}"))
    print(f"# bench_failover: {a.nodes} nodes, token {a.token_ms} ms (effective "
          f"{cfg.effective_token_ms} ms, consensus {cfg.effective_consensus_ms} ms), "
          f"bound token + consensus + 500 = {bound_ms} ms, {a.runs} runs")
    print("| daemon | kill -9 → new configuration on every survivor, ms (each run) | median |")
    print("|---|---|---:|")
    for kind, xs in results.items():
        print(f"| {kind} | {', '.join(f'{x:.0f}' for x in xs)} | {statistics.median(xs):.0f} |")
    ratio = statistics.median(results["coroproc"]) / statistics.median(results["corosync"])
    print(f"\ncoroproc / corosync (median): {ratio:.2f}; coroproc's worst run is "
          f"{max(results['coroproc']) / bound_ms:.2f} of the bound")
    return 0


if __name__ == "__main__":
    sys.exit(main())
