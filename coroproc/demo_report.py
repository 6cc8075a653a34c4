"""What the demo prints: one progress line per second, the events between them, and the
final summary. This file owns the wording and the verdict; coroproc/demo.py owns the
cluster and the order of events.
"""
from __future__ import annotations

import time

from coroproc.tools.cpghum_client import HumClient
from coroproc.tools.cpghum_latency import LatencyHistogram


def ms(value_us: int) -> str:
    return f"{value_us / 1000:.1f} ms"


class Reporter:
    def __init__(self, clients: dict[int, HumClient], ring_members):
        """`ring_members()` gives the ring membership as the daemons' logs say (a str)."""
        self.t0 = time.monotonic()
        self.clients = clients
        self.ring_members = ring_members
        self.changes: list[str] = []          # every membership event, for the summary
        self._events_seen = {i: 0 for i in clients}
        self._last_ns = time.monotonic_ns()

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:5.1f} s] {text}", flush=True)

    def flush_events(self) -> None:
        """Print the clients' membership events that arrived since the last call."""
        for i, c in self.clients.items():
            fresh = min(c.events_total - self._events_seen[i], len(c.events))
            for text in list(c.events)[len(c.events) - fresh:]:
                self.say(f"  * {text}")
                self.changes.append(f"{time.monotonic() - self.t0:5.1f} s {text}")
            self._events_seen[i] = c.events_total

    def tick(self, now_ns: int) -> None:
        self.flush_events()
        span_s = max(1e-9, (now_ns - self._last_ns) / 1e9)
        self._last_ns = now_ns
        window, delivered = LatencyHistogram(), {}
        for i, c in self.clients.items():
            got, lat = c.take_window()
            delivered[i] = got
            window.merge(lat)
        per_node = "  ".join(
            f"n{i} {c.checker.received:6d}" + ("" if c.connected else " (down)")
            for i, c in self.clients.items())
        errors = sum(c.checker.failures for c in self.clients.values())
        self.say(f"ring [{self.ring_members()}]  {sum(delivered.values()) / span_s:6.0f} "
                 f"deliveries/s  p50 {ms(window.percentile_us(50)):>8}  p99 "
                 f"{ms(window.percentile_us(99)):>8}  | delivered {per_node} | errors {errors}")


def summary(rep: Reporter, undelivered: dict[int, int], evs_verdict: str,
            evs_ok: bool) -> tuple[list[str], bool]:
    """(lines, all checks passed)."""
    total = LatencyHistogram()
    lines = ["", "Summary", ("  node    sent  delivered  gaps  dups  crc  len  foreign  "
                             "undelivered-own  reconnects")]
    ok = evs_ok
    for i, c in rep.clients.items():
        k = c.checker
        total.merge(c.latency)
        lines.append(f"  {i:>4} {c.sent:7d} {k.received:10d} {k.gap_events:5d} {k.duplicates:5d}"
                     f" {k.crc_errors:4d} {k.length_errors:4d} {k.malformed:8d} "
                     f"{undelivered[i]:16d} {max(0, c.connects - 1):11d}")
        ok = ok and k.failures == 0 and undelivered[i] == 0 and k.received > 0
        for p in list(k.problems)[:5]:
            lines.append(f"       ! {p}")
    s = total.summary()
    lines += [(f"  latency (own messages, send -> delivery on the sender's node): p50 "
               f"{ms(s['p50_us'])}, p90 {ms(s['p90_us'])}, p99 {ms(s['p99_us'])}, max "
               f"{ms(s['max_us'])} over {s['count']} messages"),
              "  membership changes seen by the CPG clients:"]
    lines += [f"    {c}" for c in rep.changes]
    lines += [f"  EVS checker over the daemons' event logs: {evs_verdict}",
              f"  result: {'all checks passed' if ok else 'A CHECK FAILED'}"]
    return lines, ok
