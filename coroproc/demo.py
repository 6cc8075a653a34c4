"""`python -m coroproc.demo`: a real local cluster doing its job, with no config to write.

Starts N coroproc daemons on loopback addresses (127.x.y.1..N, udpu, token 1000 ms), each
running the load engine; waits for one ring; kills one node with SIGKILL and reports how
long the others took to install the new configuration; restarts it and reports the
rejoin; stops every node with SIGTERM; then checks the daemons' event logs with the EVS
checker and prints what was sent and delivered.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time

from coroproc.localcluster import LocalCluster
from coroproc.sim.checker import check_safety


def _say(t0: float, text: str) -> None:
    print(f"[{time.monotonic() - t0:6.2f} s] {text}", flush=True)


def run(nodes: int, rate: float, steady_s: float, keep: bool) -> int:
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="coroproc-demo-") as tmp:
        c = LocalCluster(tmp, nodes, token_ms=1000, rate_msgs_per_s=rate)
        everyone = list(c.addrs)
        _say(t0, f"starting {nodes} daemons (cluster {c.cluster}, {', '.join(c.addrs.values())}, "
                 f"port {c.port}), each sending {rate:g} msgs/s")
        try:
            c.start_all()
            took = c.wait_members(everyone, everyone, timeout_s=300)
            _say(t0, f"one ring of {nodes} after {took:.2f} s: node 1 logged "
                     f"'{_last(c, 1, 'was formed')}'")
            time.sleep(steady_s)
            victim = nodes
            mark = c.mark()
            c.kill(victim)
            rest = everyone[:-1]
            took = c.wait_members(rest, rest, since=mark)
            _say(t0, f"kill -9 node {victim}: nodes {rest} installed a new configuration after "
                     f"{took * 1000:.0f} ms (token {c.token_ms} ms + coefficient, consensus 1.2 x token)")
            mark = c.mark()
            c.start(victim)
            took = c.wait_members(everyone, everyone, since=mark)
            _say(t0, f"node {victim} restarted and rejoined after {took:.2f} s")
            time.sleep(steady_s)
        finally:
            c.stop_all()
        _say(t0, "all daemons stopped with SIGTERM")
        logs = c.event_logs()
        for i, log in logs.items():
            sent = sum(e["ev"] == "send" for e in log)
            got = sum(e["ev"] == "deliver" for e in log)
            rings = len({tuple(e["ring"]) for e in log if e["ev"] == "install"})
            _say(t0, f"node {i}: sent {sent}, delivered {got} in {rings} configurations")
        violations = check_safety(logs)
        _say(t0, f"EVS checker over the daemons' event logs: {len(violations)} violations")
        for v in violations[:10]:
            print("  ", v)
        if keep:
            import shutil
            dest = shutil.copytree(tmp, tmp + "-kept")
            _say(t0, f"logs kept in {dest}")
        return 1 if violations else 0


def _last(c: LocalCluster, i: int, text: str) -> str:
    for line in reversed(c.log_lines(i)):
        if text in line:
            return line.split("] ", 2)[-1]
    return "?"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m coroproc.demo", description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--rate", type=float, default=200.0, help="messages/s each node sends")
    p.add_argument("--steady-s", type=float, default=3.0, help="seconds of load before/after faults")
    p.add_argument("--keep", action="store_true", help="keep configs and logs")
    a = p.parse_args(argv)
    return run(a.nodes, a.rate, a.steady_s, a.keep)


if __name__ == "__main__":
    sys.exit(main())
