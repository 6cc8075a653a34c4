"""`python -m coroproc.demo`: a real local cluster doing its job, with no config to write.

Starts 3 coroproc daemons on loopback (127.x.y.1..3, udpu, token 1000 ms, no root) from a
built-in configuration, and puts a CPG client on every node — coroproc-cpghum's
participant (coroproc/tools/cpghum_client.py): each sends sequence-numbered, CRC-checked
messages at a fixed rate and checks everything it receives. Once per second it prints the
ring membership, deliveries per second, p50/p99 latency and per-node counts. Then:

  1. kill -9 one node: the others form a new ring, their clients see it leave (nodedown);
  2. restart it: it rejoins, its client reconnects and joins again;
  3. restart the cpg engine of another node (`coroproc-cfgtool --restart-engine cpg`):
     that node stays in the ring; only its client reconnects.

Finally: messages sent/delivered per node, the order/gap/CRC checks, latency percentiles,
every membership change the clients saw, and the EVS checker's verdict over the daemons'
event logs. Every process and shm segment is cleaned up, also on Ctrl-C or SIGTERM.
Exit status 0 only if every check passed.
"""
from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time

from coroproc.config.loader import load
from coroproc.demo_report import Reporter, summary
from coroproc.localcluster import LocalCluster
from coroproc.sim.checker import check_safety
from coroproc.supervisor.plan import run_dir_of
from coroproc.tools import ctl
from coroproc.tools.cpghum_client import HumClient, run_loop

GROUP = "coroproc-demo"
TICK_NS = 1_000_000_000
PHASE_GUARD_S = 60.0        # a phase that takes this long is a failure, not a wait
DRAIN_GUARD_S = 10.0
LOG_POLL_S = 0.2            # how often the loop re-reads the daemons' logs


class PhaseFailed(RuntimeError):
    pass


class Demo:
    def __init__(self, tmp: str, nodes: int, rate: float, size_bytes: int):
        self.c = LocalCluster(tmp, nodes, token_ms=1000, rate_msgs_per_s=20,
                              extra_sections="service {\n    name: cpg\n}\n")
        self.nodes = list(self.c.addrs)
        self.clients = {i: HumClient(suffix=self.c.suffix(i), group=GROUP, size_bytes=size_bytes,
                                     rate_msgs_per_s=rate, reconnect=True, label=f"node {i}")
                        for i in self.nodes}
        self.down: set[int] = set()
        self.rep = Reporter(self.clients, self._ring_text)
        self._ring_cache = (0.0, "")

    def _ring_text(self) -> str:
        """The membership the first live node last logged (re-read at most every 0.2 s)."""
        at, text = self._ring_cache
        if time.monotonic() - at > LOG_POLL_S:
            live = [i for i in self.nodes if i not in self.down]
            members = self.c.members(live[0]) if live else None
            text = " ".join(map(str, members)) if members else "-"
            self._ring_cache = (time.monotonic(), text)
        return text

    def run_until(self, what: str, done, timeout_s: float = PHASE_GUARD_S) -> None:
        """Keep the clients going (progress every second) until done() holds."""
        last = [0.0, False]

        def check():
            if time.monotonic() - last[0] >= LOG_POLL_S:
                last[:] = [time.monotonic(), bool(done())]
            return last[1]
        end = time.monotonic_ns() + int(timeout_s * 1e9)
        run_loop(list(self.clients.values()), end, tick_ns=TICK_NS, on_tick=self.rep.tick,
                 stop=check)
        self.rep.flush_events()
        if not done():
            raise PhaseFailed(f"gave up after {timeout_s:g} s waiting for {what}")

    def steady(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        self.run_until(f"{seconds} s of load", lambda: time.monotonic() >= end, seconds + 5)

    def ring_is(self, nodes, since=None) -> bool:
        want = tuple(sorted(nodes))
        return all(self.c.members(i, (since or {}).get(i, 0)) == want for i in nodes)

    def client_sees(self, nodes) -> bool:
        """Every client of `nodes` is connected and its group view has one process per
        node of `nodes`."""
        return all(self.clients[i].connected and
                   sorted(n for n, _p in self.clients[i].members) == sorted(nodes)
                   for i in nodes)

    def go(self, steady_s: float) -> None:
        c, say, everyone = self.c, self.rep.say, self.nodes
        say(f"starting {len(everyone)} coroproc daemons: cluster {c.cluster}, udpu on "
            f"{', '.join(c.addrs.values())} port {c.port}, token {c.token_ms} ms "
            f"(configs and logs in {c.dir})")
        c.start_all()
        took = c.wait_members(everyone, everyone, timeout_s=PHASE_GUARD_S * 3)
        c.wait_synced(everyone, PHASE_GUARD_S)
        say(f"one ring of {len(everyone)} after {took:.1f} s; a cpghum client joins group "
            f"'{GROUP}' on every node and sends {self.clients[1].rate_msgs_per_s:g} msgs/s")
        for cl in self.clients.values():
            if not cl.connect():
                raise PhaseFailed(f"{cl.label}: could not join: {cl.last_error}")
        self.run_until("every client to see all nodes", lambda: self.client_sees(everyone))
        now = time.monotonic_ns()
        for cl in self.clients.values():
            cl.start_sending(now)
        self.steady(steady_s)

        victim, rest = everyone[-1], everyone[:-1]
        mark = c.mark()
        say(f">>> kill -9 node {victim} (its daemon and all its processes)")
        c.kill(victim)
        self.down.add(victim)
        t = time.monotonic()
        self.run_until(f"nodes {rest} to form a ring without node {victim}",
                       lambda: self.ring_is(rest, mark) and self.client_sees(rest))
        say(f">>> nodes {rest} formed a new ring after {time.monotonic() - t:.1f} s "
            f"(token {c.token_ms} ms + consensus 1.2 x token)")
        self.steady(steady_s / 2)

        mark = c.mark()
        say(f">>> restarting node {victim}")
        c.start(victim)
        self.down.discard(victim)
        t = time.monotonic()
        self.run_until(f"node {victim} to rejoin and its client to reconnect",
                       lambda: self.ring_is(everyone, mark) and self.client_sees(everyone))
        say(f">>> node {victim} rejoined, its client is back, after {time.monotonic() - t:.1f} s")
        self.steady(steady_s / 2)

        engine_node = everyone[1] if len(everyone) > 2 else everyone[0]
        say(f">>> coroproc-cfgtool --restart-engine cpg on node {engine_node} "
            f"(the node stays in the ring; its CPG clients reconnect)")
        connects = self.clients[engine_node].connects
        cfg, _ = load(c.conf(engine_node))
        reply = ctl.ask(run_dir_of(cfg), {"op": "restart", "role": "cpg"})
        if not reply.get("ok"):
            raise PhaseFailed(f"restart of the cpg engine on node {engine_node} refused: "
                              f"{reply.get('error')}")
        t = time.monotonic()
        self.run_until(f"node {engine_node}'s client to reconnect after the engine restart",
                       lambda: self.clients[engine_node].connects > connects
                       and self.client_sees(everyone))
        say(f">>> node {engine_node}'s client reconnected after {time.monotonic() - t:.1f} s; "
            f"ring unchanged: [{self._ring_text()}]")
        self.steady(steady_s)

    def drain(self) -> dict[int, int]:
        """Stop sending; wait until every client's own messages came back. Returns what
        each still misses (0 when all arrived)."""
        self.rep.say("stopping the senders; waiting for messages in flight")
        clients = list(self.clients.values())
        run_loop(clients, time.monotonic_ns() + int(DRAIN_GUARD_S * 1e9), sending=False,
                 stop=lambda: all(cl.own_in_flight() == 0 for cl in clients))
        return {i: cl.own_in_flight() for i, cl in self.clients.items()}

    def close(self) -> None:
        for cl in self.clients.values():
            cl.close()
        self.c.stop_all()


def _sigterm(*_):
    raise KeyboardInterrupt


def run(nodes: int, rate: float, size_bytes: int, steady_s: float, keep: bool) -> int:
    signal.signal(signal.SIGTERM, _sigterm)
    tmp = tempfile.mkdtemp(prefix="coroproc-demo-")
    demo = None
    try:
        demo = Demo(tmp, nodes, rate, size_bytes)
        failure = ""
        try:
            demo.go(steady_s)
            undelivered = demo.drain()
        except PhaseFailed as exc:
            failure = str(exc)
            undelivered = {i: cl.own_in_flight() for i, cl in demo.clients.items()}
        finally:
            demo.close()
        demo.rep.say("all daemons stopped")
        violations = check_safety(demo.c.event_logs())
        verdict = (f"{len(violations)} violations" if violations else
                   "no violations (EVS properties hold)")
        lines, ok = summary(demo.rep, undelivered, verdict, not violations)
        lines += [f"    {v}" for v in violations[:10]]
        if failure:
            lines.append(f"  FAILED: {failure}")
        print("\n".join(lines), flush=True)
        return 0 if ok and not failure else 1
    except KeyboardInterrupt:
        if demo is not None:
            demo.close()
        print("\ninterrupted: every daemon stopped, shared memory removed", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if keep:
            print(f"configs and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m coroproc.demo",
                                description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=3, help="daemons to start (>= 2; default 3)")
    p.add_argument("--rate", type=float, default=100.0, help="messages/s each client sends")
    p.add_argument("--size", type=int, default=256, help="bytes per message (>= 32)")
    p.add_argument("--steady-s", type=float, default=4.0, help="seconds of load between faults")
    p.add_argument("--keep", action="store_true", help="keep configs and logs")
    a = p.parse_args(argv)
    if a.nodes < 2:
        p.error(f"--nodes {a.nodes}: at least 2 (one is killed)")
    return run(a.nodes, a.rate, a.size, a.steady_s, a.keep)


if __name__ == "__main__":
    sys.exit(main())
