#!/usr/bin/env python3
"""Where a sparse message's own-delivery time goes, hop by hop, and what the CPUs ran
while the slowest ones waited: the scheduler's trace set against the load client's
samples.

One fresh 3-node session of each kind (bench/sbs_daemons.py), optionally the side-by-side's
floods first (`--floods`: the 1,000 msgs/s cell of bench_side_by_side.py runs after
them), then a cell of 1 KiB at `--rate` from node 1's client while the kernel traces
sched_switch and sched_wakeup on CLOCK_MONOTONIC (tracefs; root), the clock the client
stamps its sends with (SBS_SAMPLES, bench/c/sbs_cpgload.c). For every message:

* coroproc: when node 1's CPG engine ran for the request, went back to sleep, when the
  ring process was woken, when it woke its link process and, for the delivery, the
  engine, when the engine woke the client, and the latency — median and spread over
  the cell (a message whose hops the trace does not show in that order is left out; an
  engine that polled for its own delivery and caught it neither slept nor was woken,
  and those two hops are counted where they happened; a client the engine preempted
  runs again instead of being woken);
* Corosync: when the daemon was woken and when it woke the client;
* the slowest 1 %: the run time of every task on every CPU inside their [send,
  delivery] windows, against the same for as many median messages — a task that takes
  far more of the slow messages' windows than of the typical ones is what they waited
  behind (a kernel thread, another tenant's process, the VM's own stalls show as time
  no task ran: "idle").

    .venv/bin/python bench/bench_hops.py [--kinds coroproc,corosync-shm] [--floods]

docs/benchmarks.md "Where the hops go" has what it found.
"""
from __future__ import annotations

import argparse
import bisect
import collections
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from sbs_client import FLOODS_BEFORE_SPARSE, Cell, build, run_cell, run_sampled  # noqa: E402
from sbs_daemons import KINDS, Session, _title  # noqa: E402

TRACEFS = Path("/sys/kernel/tracing")
EVENTS = ("sched/sched_switch", "sched/sched_wakeup")
BUFFER_KB_PER_CPU = 65536
CLIENT = "client"

_LINE = re.compile(r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+\S+\s+"
                   r"(?P<ts>\d+\.\d+): (?P<event>sched_switch|sched_wakeup): (?P<rest>.*)$")
_SWITCH = re.compile(r"prev_comm=(?P<pcomm>.*?) prev_pid=(?P<ppid>\d+) .* ==> "
                     r"next_comm=(?P<ncomm>.*?) next_pid=(?P<npid>\d+)")
_WAKEUP = re.compile(r"comm=(?P<comm>.*?) pid=(?P<pid>\d+) .*target_cpu=(?P<cpu>\d+)")


@dataclass(frozen=True)
class Event:
    ns: int
    cpu: int
    kind: str        # "wake" (who is woken), "in" (who starts running), "out" (who stops)
    who: str


def parse(lines, names: dict[int, str]) -> list[Event]:
    """tracefs text → events, tasks named by `names` (pid → name) or their comm."""
    out = []
    for line in lines:
        m = _LINE.match(line)
        if m is None:
            continue
        ns = round(float(m["ts"]) * 1e9)
        cpu = int(m["cpu"])
        if m["event"] == "sched_wakeup":
            w = _WAKEUP.search(m["rest"])
            if w:
                out.append(Event(ns, cpu, "wake", names.get(int(w["pid"]), w["comm"])))
            continue
        s = _SWITCH.search(m["rest"])
        if s is None:
            continue
        prev = "idle" if s["ppid"] == "0" else names.get(int(s["ppid"]), s["pcomm"])
        nxt = "idle" if s["npid"] == "0" else names.get(int(s["npid"]), s["ncomm"])
        out.append(Event(ns, cpu, "out", prev))
        out.append(Event(ns, cpu, "in", nxt))
    return out


# the own-delivery path at node 1, in order: (stage, event kinds, task, optional). The CPG
# engine that polls for its own delivery (coroproc.own_delivery_spin_us) neither sleeps
# nor is woken for it when the delivery comes while it polls; a client the engine
# preempted on its CPU is not woken but runs again ("in").
COROPROC_PATH = (("engine runs", ("in",), "n1 coroproc: cpg", False),
                 ("engine sleeps", ("out",), "n1 coroproc: cpg", True),
                 ("ring woken", ("wake",), "n1 coroproc: ring", False),
                 ("link woken", ("wake",), "n1 coroproc: net link0", False),
                 ("engine woken", ("wake",), "n1 coroproc: cpg", True),
                 ("client woken", ("wake", "in"), CLIENT, False))
COROSYNC_PATH = (("daemon woken", ("wake",), "n1 corosync", False),
                 ("client woken", ("wake", "in"), CLIENT, False))


def _next_stage(path, j: int, e: Event) -> int:
    """The stage at or after j that e is, skipping only optional stages; -1: none."""
    for k in range(j, len(path)):
        _name, kinds, who, optional = path[k]
        if e.kind in kinds and e.who == who:
            return k
        if not optional:
            return -1
    return -1


def stages(events: list[Event], samples: list[tuple[int, int]], path) -> dict[str, list]:
    """Per stage, its µs after each message's send, for the messages whose trace shows
    every required stage in order between send and delivery (an optional stage only
    when it was there); and their latencies ("latency")."""
    stamps = [e.ns for e in events]
    cols = collections.defaultdict(list)
    for send_ns, lat_us in samples:
        i = bisect.bisect_left(stamps, send_ns - 5_000)
        end = send_ns + lat_us * 1000
        got: dict[int, float] = {}
        j = 0
        while i < len(events) and events[i].ns <= end and j < len(path):
            k = _next_stage(path, j, events[i])
            if k >= 0:
                got[k] = (events[i].ns - send_ns) / 1000
                j = k + 1
            i += 1
        if j == len(path):
            for k, us in got.items():
                cols[path[k][0]].append(us)
            cols["latency"].append(lat_us)
    return cols


def runtimes(events: list[Event], windows: list[tuple[int, int]]) -> collections.Counter:
    """µs each task ran (or a CPU idled: "idle") inside the windows, all CPUs."""
    running: dict[int, tuple[str, int]] = {}
    spans = collections.defaultdict(list)      # cpu → (start, end, who), back to back
    for e in events:
        if e.kind != "in":
            continue
        prev = running.get(e.cpu)
        if prev is not None:
            spans[e.cpu].append((prev[1], e.ns, prev[0]))
        running[e.cpu] = (e.who, e.ns)
    end_ns = events[-1].ns if events else 0      # what still runs, runs to the trace's end
    for cpu, (who, since) in running.items():
        spans[cpu].append((since, end_ns, who))
    total = collections.Counter()
    for cpu_spans in spans.values():
        starts = [s for s, _e, _w in cpu_spans]
        for a, b in windows:
            # the span a falls in (a CPU's spans follow each other), then on to b
            i = max(bisect.bisect_right(starts, a) - 1, 0)
            while i < len(cpu_spans) and cpu_spans[i][0] < b:
                s, e, who = cpu_spans[i]
                overlap = min(e, b) - max(s, a)
                if overlap > 0:
                    total[who] += overlap / 1000
                i += 1
    return total


def tail_report(events: list[Event], samples: list[tuple[int, int]], top: int) -> list[str]:
    lats = sorted(lat for _t, lat in samples)
    p99 = lats[int(len(lats) * 0.99)]
    p50 = lats[len(lats) // 2]
    slow = [(t, t + lat * 1000) for t, lat in samples if lat >= p99]
    typical = sorted(samples, key=lambda s: abs(s[1] - p50))[:len(slow)]
    slow_rt = runtimes(events, slow)
    typ_rt = runtimes(events, [(t, t + lat * 1000) for t, lat in typical])
    n = max(len(slow), 1)
    out = [f"  the slowest 1 % ({len(slow)} messages, ≥ {p99} µs) against as many at the "
           f"median ({p50} µs): µs per message that each task ran, on either CPU"]
    for who, us in slow_rt.most_common(top):
        out.append(f"    {who:28s} {us / n:9.0f}  (median messages: {typ_rt[who] / n:6.0f})")
    return out


def stage_report(cols: dict[str, list], path) -> list[str]:
    if not cols.get("latency"):
        return ["  no message showed every hop in order"]
    n = len(cols["latency"])
    out = [f"  {n} messages with every hop traced; µs after the send "
           "(p10 / p50 / p90; min / p50 / max below 10 messages):"]
    for name, *_k, optional in list(path) + [("latency", (), "", False)]:
        v = sorted(cols[name])
        if not v:
            out.append(f"    {name:16s}       -  (in none)")
            continue
        lo, hi = (statistics.quantiles(v, n=10)[::8] if len(v) >= 10 else (v[0], v[-1]))
        seen = f"  (in {len(v)} of {n})" if optional else ""
        out.append(f"    {name:16s} {lo:7.0f} {statistics.median(v):7.0f} {hi:7.0f}{seen}")
    return out


def buffer_kb(text: str) -> str:
    """The per-CPU buffer size buffer_size_kb shows, to write back: an unused buffer
    reads "7 (expanded: 1408)", the size it takes once tracing starts."""
    m = re.search(r"expanded: (\d+)", text)
    return m.group(1) if m else text.split()[0]


class SchedTrace:
    """sched_switch + sched_wakeup on CLOCK_MONOTONIC while the block runs; the text
    afterwards (`lines`). Leaves tracefs as it found it: events off, tracing off, the
    buffer empty and the clock and buffer size restored."""

    def __enter__(self):
        if not (TRACEFS / "trace_clock").exists():
            subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS)],
                           capture_output=True)
        if not (TRACEFS / "trace_clock").exists():
            raise SystemExit(f"no tracefs at {TRACEFS} (root, and a kernel with ftrace)")
        clock = (TRACEFS / "trace_clock").read_text()
        self._clock = clock[clock.index("[") + 1:clock.index("]")]
        self._kb = buffer_kb((TRACEFS / "buffer_size_kb").read_text())
        self._w("trace_clock", "mono")
        self._w("buffer_size_kb", str(BUFFER_KB_PER_CPU))
        self._w("trace", "")
        for ev in EVENTS:
            self._w(f"events/{ev}/enable", "1")
        self._w("tracing_on", "1")
        self.lines: list[str] = []
        return self

    def __exit__(self, *exc):
        self._w("tracing_on", "0")
        for ev in EVENTS:
            self._w(f"events/{ev}/enable", "0")
        if exc[0] is None:
            with open(TRACEFS / "trace") as f:
                self.lines = f.readlines()
        self._w("trace", "")
        self._w("buffer_size_kb", self._kb)
        self._w("trace_clock", self._clock)
        return False

    @staticmethod
    def _w(name: str, value: str) -> None:
        (TRACEFS / name).write_text(value)


def node_names(session) -> dict[int, str]:
    """pid and tid → "n<node> <title>" for every process of the session's daemons."""
    names = {}
    for node, tree in session.trees().items():
        for pid in tree:
            title = f"n{node} {_title(pid)}"
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tids:
                names[int(tid)] = title
    return names


def run_kind(kind: str, rate: int, seconds: float, floods: bool, out_dir: Path,
             top: int) -> list[str]:
    k = KINDS[kind]
    binary = build(out_dir)
    prefix = str(out_dir / f"samples-{kind}")
    with tempfile.TemporaryDirectory() as wd, Session(k, 3, Path(wd)) as s:
        time.sleep(3.0)
        for size in FLOODS_BEFORE_SPARSE if floods else ():
            run_cell(s, binary, Cell(3, size, 1), 2.0)
        run_cell(s, binary, Cell(3, 1024, 1, rate, 1), 1.0)      # the clients' first turn
        names = node_names(s)
        with SchedTrace() as trace:
            res, rows, senders = run_sampled(s, binary, Cell(3, 1024, 1, rate, 1), seconds,
                                             prefix)
        if not res.get("ok"):
            raise RuntimeError(f"{kind}: {res.get('error')}")
    names.update({pid: CLIENT for pid in senders})
    events = parse(trace.lines, names)
    hop_path = COROPROC_PATH if k.daemon == "coroproc" else COROSYNC_PATH
    out = [f"{kind}{' after floods' if floods else ''}: {len(rows)} messages at {rate}/s, "
           f"own-delivery p50 {res['own_p50_us']} µs, p99 {res['own_p99_us']}"]
    return (out + stage_report(stages(events, rows, hop_path), hop_path)
            + tail_report(events, rows, top))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", default="coroproc,corosync-shm")
    ap.add_argument("--rate", type=int, default=1000, help="msgs/s from node 1")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--floods", action="store_true",
                    help="the side-by-side's floods first (1 KiB, 64 KiB, 1 KiB)")
    ap.add_argument("--top", type=int, default=8, help="tasks listed for the slowest 1 %%")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_hops needs root (tracefs, network namespaces)")
    with tempfile.TemporaryDirectory() as out:
        for kind in args.kinds.split(","):
            lines = run_kind(kind, args.rate, args.seconds, args.floods, Path(out), args.top)
            print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
