"""`coroproc-cpghum`: Corosync's test/cpghum.c for coroproc (or Corosync) — checked CPG
traffic with latencies.

    coroproc-cpghum [--ipc-suffix S] [--group NAME] [--size BYTES] [--rate MSGS_PER_S |
                    --flood] [--seconds S] [--listen] [--wait-members N] [--quiet] [--json]

Every instance joins one group, sends messages (per-sender sequence numbers, CRC-32,
send timestamp: coroproc/tools/cpghum_wire.py) at a fixed offered rate paced by the
monotonic clock, or floods; receives everyone's messages and checks order, gaps,
duplicates, length and CRC (cpghum_check.py); and measures the latency of its own
messages (delivery minus send time on this node) as p50/p90/p99/max in µs. Run one
instance per node, on as many nodes as you like: each is a sender and a receiver.

After --seconds it stops sending, waits until its own messages have come back (at most
DRAIN_GUARD_S), leaves and prints a summary (--json: one object). Progress once per
second unless --quiet. Exit status as cpghum.c: 0 all checks passed, 1 could not
connect/join, 2 a check failed (gap, duplicate, CRC, length, foreign message, or an own
message never delivered back). A lost connection is retried, as cpghum.c does.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time

import orjson

from coroproc.tools.cpghum_client import HumClient, run_loop
from coroproc.tools.cpghum_wire import HEADER_BYTES, check_size

EXIT_OK, EXIT_NO_CONNECTION, EXIT_CHECK_FAILED = 0, 1, 2
DRAIN_GUARD_S = 30.0           # only turns a lost self-delivery into a report, not a hang
WAIT_MEMBERS_GUARD_S = 60.0
TICK_NS = 1_000_000_000


def _args(argv):
    p = argparse.ArgumentParser(prog="coroproc-cpghum", description=__doc__.splitlines()[0])
    p.add_argument("--ipc-suffix", default="", help="IPC service-name suffix of the node "
                   "to use (coroproc { service_suffix }); empty for the default node")
    p.add_argument("--group", default="cpghum", help="CPG group name (default cpghum)")
    p.add_argument("--size", type=int, default=4096, help=f"bytes per message, at least "
                   f"{HEADER_BYTES} (default 4096, as cpghum)")
    p.add_argument("--rate", type=float, default=100.0, help="messages per second this "
                   "instance offers (default 100)")
    p.add_argument("--flood", action="store_true", help="send as fast as the daemon takes "
                   "them (TRY_AGAIN retried at once, as cpghum -f)")
    p.add_argument("--seconds", type=float, default=10.0, help="sending time (default 10)")
    p.add_argument("--listen", action="store_true", help="receive and check only (cpghum -l)")
    p.add_argument("--wait-members", type=int, default=1, metavar="N", help="start the "
                   "clock once the group has N members (start instances on N nodes)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--json", action="store_true", help="the summary as one JSON object")
    a = p.parse_args(argv)
    try:
        check_size(a.size)
    except ValueError as exc:
        p.error(f"--size: {exc}")
    if a.rate <= 0 and not a.flood:
        p.error(f"--rate {a.rate}: must be > 0 (use --flood for as fast as possible)")
    if a.seconds <= 0:
        p.error(f"--seconds {a.seconds}: must be > 0")
    return a


def summary(c: HumClient, elapsed_s: float, undelivered: int) -> dict:
    counts = c.checker.counts()
    failures = c.checker.failures + (1 if undelivered else 0) + c.send_fails
    return {
        "nodeid": c.nodeid, "pid": os.getpid(), "group": c.group.decode(),
        "size_bytes": c.size_bytes, "rate_msgs_per_s": c.rate_msgs_per_s,
        "elapsed_s": round(elapsed_s, 3), "sent": c.sent, "send_retries": c.send_retries,
        "send_fails": c.send_fails, "pace_skips": c.pace_skips,
        "received": c.checker.received,
        "received_by_node": {str(k): v for k, v in sorted(c.checker.received_by_node.items())},
        "own_undelivered": undelivered, "reconnects": max(0, c.connects - 1),
        "latency_us": c.latency.summary(), "checks": counts,
        "problems": list(c.checker.problems), "ok": failures == 0,
    }


def format_summary(s: dict) -> str:
    lat, chk = s["latency_us"], s["checks"]
    by_node = " ".join(f"n{k} {v}" for k, v in s["received_by_node"].items()) or "-"
    lines = ["", "Stats:",
             f"   packets sent:    {s['sent']}",
             f"   send failures:   {s['send_fails']}",
             f"   send retries:    {s['send_retries']}",
             f"   length errors:   {chk['length_errors']}",
             f"   packets recvd:   {s['received']}  ({by_node})",
             f"   sequence gaps:   {chk['gap_events']} ({chk['gap_msgs']} messages missing)",
             f"   duplicates:      {chk['duplicates']}",
             f"   crc errors:      {chk['crc_errors']}",
             f"   foreign msgs:    {chk['malformed']}",
             f"   own undelivered: {s['own_undelivered']}",
             (f"   RTT µs:          p50 {lat['p50_us']}  p90 {lat['p90_us']}  "
              f"p99 {lat['p99_us']}  max {lat['max_us']}  ({lat['count']} samples)"),
             f"   result:          {'OK' if s['ok'] else 'CHECKS FAILED'}"]
    lines += [f"   ! {p}" for p in s["problems"][:20]]
    return "\n".join(lines) + "\n"


def _progress(c: HumClient, t0_ns: int, out):
    last = [time.monotonic_ns()]

    def tick(now_ns: int) -> None:
        delivered, lat = c.take_window()
        span_s = max(1e-9, (now_ns - last[0]) / 1e9)
        last[0] = now_ns
        print(f"[{(now_ns - t0_ns) / 1e9:6.1f} s] {c.group.decode()}: "
              f"{len(c.members)} members, {delivered / span_s:8.1f} msgs/s delivered, "
              f"sent {c.sent}, RTT p50 {lat.percentile_us(50)} µs p99 "
              f"{lat.percentile_us(99)} µs, errors {c.checker.failures}", file=out, flush=True)
    return tick


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    stopped = []
    signal.signal(signal.SIGINT, lambda *_: stopped.append(True))
    c = HumClient(suffix=a.ipc_suffix, group=a.group, size_bytes=a.size,
                  rate_msgs_per_s=0.0 if a.flood else a.rate, send=not a.listen,
                  reconnect=True, label="cpghum")
    if not c.connect():
        print(f"coroproc-cpghum: could not join group {a.group!r} on IPC suffix "
              f"{a.ipc_suffix!r}: {c.last_error}", file=sys.stderr)
        return EXIT_NO_CONNECTION
    try:
        guard = time.monotonic_ns() + int(WAIT_MEMBERS_GUARD_S * 1e9)
        run_loop([c], guard, sending=False, 
                 stop=lambda: stopped or len(c.members) >= a.wait_members)
        if len(c.members) < a.wait_members:
            print(f"coroproc-cpghum: group {a.group!r} did not reach {a.wait_members} "
                  f"members within {WAIT_MEMBERS_GUARD_S:g} s", file=sys.stderr)
            return EXIT_NO_CONNECTION
        t0 = time.monotonic_ns()
        c.start_sending(t0)
        run_loop([c], t0 + int(a.seconds * 1e9), tick_ns=TICK_NS,
                 on_tick=None if a.quiet else _progress(c, t0, sys.stderr if a.json else sys.stdout), stop=lambda: stopped)
        elapsed_s = (time.monotonic_ns() - t0) / 1e9
        run_loop([c], time.monotonic_ns() + int(DRAIN_GUARD_S * 1e9), sending=False,
                 stop=lambda: stopped or (c.connected and c.own_in_flight() == 0))
        s = summary(c, elapsed_s, c.own_in_flight())
        if c.connected:
            c.cpg.leave(c.group)
    finally:
        c.close()
    print(orjson.dumps(s).decode() if a.json else format_summary(s), end="\n" if a.json else "")
    return EXIT_OK if s["ok"] else EXIT_CHECK_FAILED


if __name__ == "__main__":
    sys.exit(main())
