"""One load cell of bench/bench_side_by_side.py: build the C client, run one client per node
(senders and receive-only), collect their JSON lines and the daemons' CPU meanwhile.

The client is bench/c/sbs_cpgload.c, built against the installed libcpg (Debian's 3.1.7),
so Corosync and coroproc are driven by the very same binary and library.
"""
from __future__ import annotations

import argparse
import datetime
import glob
import itertools
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sbs_proc import CpuWindow

SOURCE = Path(__file__).resolve().parent / "c" / "sbs_cpgload.c"
CLIENT_SLACK_S = 120.0  # END wait (60 s in the client) + start-up; a hung client is an error
_GROUPS = itertools.count(1)
# the one-sender floods a sparse-traffic bench runs first, where the side-by-side's
# 1,000 msgs/s cell follows its floods (buffers written, caches and queues as after load)
FLOODS_BEFORE_SPARSE = (1024, 65536, 1024)


def build(out_dir: Path) -> str:
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libcpg"], capture_output=True,
                           text=True, check=True).stdout.split()
    binary = str(Path(out_dir) / "sbs_cpgload")
    subprocess.run(["gcc", "-O2", "-Wall", "-o", binary, str(SOURCE), *flags], check=True)
    return binary


def measure_kinds(kinds, measure) -> list:
    """Build the client in a scratch directory, then rows += measure(kind, binary, work)
    for each daemon kind, in order (the directory goes afterwards)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        binary = build(work)
        for kind in kinds:
            rows += measure(kind, binary, work)
    return rows


def rate_parser(doc: str, out_name: str, rates_default: str) -> argparse.ArgumentParser:
    """The options of a fixed-rate bench: --rates, --seconds, --out (bench/results/...)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--rates", default=rates_default, help="offered msgs/s per run, 0 = flood")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / out_name))
    return ap


def write_report(text: str, out: str) -> int:
    Path(out).write_text(text)
    print(text)
    return 0


def report_head(title: str, script: str, argv: list[str], what: str) -> list[str]:
    """The first lines of a bench's Markdown report: title, command, date and what ran."""
    return [f"# {title} ({script})", "",
            f"Command (root): `{' '.join(['python ' + script, *argv])}`  ",
            f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} (UTC); {what}",
            ""]


@dataclass(frozen=True)
class Cell:
    nodes: int
    size_bytes: int
    senders: int              # 1 = one sender (sender_node); == nodes = one per node
    rate_msgs_per_s: int = 0  # 0 = flood
    sender_node: int = 1      # with one sender: the node it runs on (1: the representative)

    @property
    def key(self) -> str:
        rate = "max" if not self.rate_msgs_per_s else f"{self.rate_msgs_per_s}/s"
        node = "" if self.sender_node == 1 else f"@n{self.sender_node}"
        return f"{self.nodes}n|{self.size_bytes}|{self.senders}{node}|{rate}"

    def sends(self, node: int) -> bool:
        return node == self.sender_node if self.senders == 1 else node <= self.senders


def run_cell(session, binary: str, cell: Cell, seconds: float) -> dict:
    """Run `cell` on a formed `session`; returns the merged figures (see `merge`)."""
    group = f"sbs{os.getpid()}g{next(_GROUPS)}"
    roles = {n: ("s" if cell.sends(n) else "r") for n in range(1, cell.nodes + 1)}
    cpu = CpuWindow(session.trees())
    procs: dict[int, subprocess.Popen] = {}
    cpu.start()
    try:
        # receivers first, so no sender's first messages race a receiver's join
        for n in sorted(roles, key=lambda n: roles[n] != "r"):
            argv = [binary, group, str(cell.size_bytes), str(seconds), str(cell.nodes),
                    str(cell.senders), str(cell.rate_msgs_per_s), roles[n]]
            procs[n] = subprocess.Popen(session.client_argv(n, argv), stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True,
                                        start_new_session=True)
        outs = {}
        for n, p in procs.items():
            try:
                stdout, stderr = p.communicate(timeout=seconds + CLIENT_SLACK_S)
            except subprocess.TimeoutExpired:
                p.kill()
                stdout, stderr = p.communicate()
                stderr += f" (killed after {seconds + CLIENT_SLACK_S:.0f} s)"
            line = (stdout.strip().splitlines() or [""])[-1]
            try:
                outs[n] = json.loads(line)
            except json.JSONDecodeError:
                outs[n] = {"error": f"no JSON (rc {p.returncode}): {stderr.strip()[-300:]}"}
    finally:
        for p in procs.values():  # only on error: a client still running is ours to stop
            if p.poll() is None:
                p.kill()
                p.wait()
    return {**merge(cell, outs), **cpu.stop()}


def run_sampled(session, binary: str, cell: Cell, seconds: float,
                prefix: str) -> tuple[dict, list[tuple[int, int]], set[int]]:
    """run_cell with its senders writing every own-delivery sample to prefix.<pid>
    (SBS_SAMPLES, c/sbs_cpgload.c): (the cell's figures, (send ns on CLOCK_MONOTONIC,
    latency µs) in send order, the senders' pids)."""
    for path in glob.glob(prefix + ".*"):
        os.unlink(path)
    os.environ["SBS_SAMPLES"] = prefix
    try:
        res = run_cell(session, binary, cell, seconds)
    finally:
        del os.environ["SBS_SAMPLES"]
    rows, senders = [], set()
    for path in glob.glob(prefix + ".*"):
        senders.add(int(path.rsplit(".", 1)[1]))
        with open(path) as f:
            rows += [tuple(map(int, line.split())) for line in f]
    return res, sorted(rows), senders


def merge(cell: Cell, outs: dict[int, dict]) -> dict:
    """msgs/s = the slowest instance's delivery rate (each instance counts every sender's
    messages, so with several senders it is the aggregate); own latency = mean of the
    senders' p50, max of their p99; remote = the same over receive-only instances."""
    errors = [f"n{n}: " + ", ".join(f"{k} {v}" for k, v in o.items()) for n, o in outs.items()
              if "error" in o]
    if errors:
        return {"ok": False, "error": "; ".join(errors)}
    complete = all(o["ends"] == cell.senders and o["delivered"] == o["expected"]
                   for o in outs.values())
    slowest = min(outs.values(), key=lambda o: o["msgs_per_s"])
    senders = [o for o in outs.values() if o["role"] == "s" and o["own_us"]]
    remotes = [o for o in outs.values() if o["role"] == "r" and o["remote_us"]]
    res = {"ok": complete, "msgs_per_s": slowest["msgs_per_s"], "mb_per_s": slowest["mb_per_s"],
           "sent": sum(o["sent"] for o in outs.values()),
           "try_again": sum(o["try_again"] for o in outs.values())}
    if senders:
        res["own_p50_us"] = sum(o["own_us"]["p50"] for o in senders) / len(senders)
        res["own_p99_us"] = max(o["own_us"]["p99"] for o in senders)
    if remotes:
        res["remote_p50_us"] = sum(o["remote_us"]["p50"] for o in remotes) / len(remotes)
        res["remote_p99_us"] = max(o["remote_us"]["p99"] for o in remotes)
    if not complete:
        res["error"] = "incomplete: " + ", ".join(
            f"n{n} ends {o['ends']}/{cell.senders} delivered {o['delivered']}/{o['expected']}"
            for n, o in outs.items())
    return res
