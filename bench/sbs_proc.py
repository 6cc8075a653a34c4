"""/proc readers for bench/bench_side_by_side.py: process trees, CPU ticks per process
(all threads), RSS, and process names that say which coroproc role a pid is.

A node is its whole process tree: Corosync is one process (with threads for knet),
coroproc a supervisor plus forked ring, net and engine processes. CPU % is of one core.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def process_tree(root_pid: int) -> set[int]:
    """root_pid and all its descendants."""
    children, tree, todo = _children_map(), set(), [root_pid]
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree.add(pid)
            todo.extend(children.get(pid, []))
    return tree


def ticks_by_pid(pids: set[int]) -> dict[int, int]:
    """utime+stime (fields 14, 15 of stat(5); all threads) of each live pid, in ticks."""
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        out[pid] = int(fields[11]) + int(fields[12])
    return out


def rss_kb(pids: set[int]) -> int:
    """Sum of VmRSS over pids (forked children's shared pages count once per process)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def pss_kb(pids: set[int]) -> int:
    """Sum of Pss (smaps_rollup): pages a forked tree shares (numba code, imports) count
    once in total, so this is the fair memory figure for coroproc's several processes."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def machine_busy_ticks() -> tuple[int, int]:
    """(busy, total) ticks of all CPUs from /proc/stat (busy = total - idle - iowait)."""
    vals = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(vals[:8])  # guest time is already inside user/nice
    return total - vals[3] - vals[4], total


def set_rr(pids: set[int], priority: int) -> int:
    """SCHED_RR `priority` for every thread of pids (what Corosync's default `sched_rr:
    yes` gives itself at 99); returns how many threads were changed. Forked children
    inherit it, so an engine the supervisor restarts later keeps it too."""
    changed = 0
    for pid in pids:
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in tids:
            try:
                os.sched_setscheduler(tid, os.SCHED_RR, os.sched_param(priority))
                changed += 1
            except ProcessLookupError:
                continue
    return changed


def name_of(pid: int) -> str:
    """Short role name: coroproc children set their title (setproctitle); else comm."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"
    if "-m coroproc" in cmd:
        return "supervisor"
    return cmd[:40] if cmd.startswith("coroproc") else comm


class CpuWindow:
    """CPU of several nodes' trees between start() and stop(): per node (% of one core,
    summed over the tree) and per process name (the busiest processes, for "what limits")."""

    def __init__(self, trees: dict[int, set[int]]):
        self.trees = trees
        self.names = {pid: name_of(pid) for t in trees.values() for pid in t}

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.ticks0 = {n: ticks_by_pid(t) for n, t in self.trees.items()}
        self.machine0 = machine_busy_ticks()

    def stop(self) -> dict:
        wall_s = time.monotonic() - self.t0
        per_node, per_proc = {}, {}
        for n, t in self.trees.items():
            now = ticks_by_pid(t)
            used = {pid: now[pid] - self.ticks0[n].get(pid, now[pid]) for pid in now}
            per_node[n] = sum(used.values()) / CLK_TCK / wall_s * 100
            for pid, ticks in used.items():
                key = f"n{n} {self.names.get(pid, '?')}"
                per_proc[key] = per_proc.get(key, 0.0) + ticks / CLK_TCK / wall_s * 100
        top = sorted(per_proc.items(), key=lambda kv: -kv[1])[:4]
        busy, total = (a - b for a, b in zip(machine_busy_ticks(), self.machine0))
        return {"wall_s": wall_s, "cpu_pct_by_node": per_node,
                "machine_busy_pct": 100.0 * busy / total if total else 0.0,
                "daemons_pct_of_machine": sum(per_node.values()) / (os.cpu_count() or 1),
                "top_procs": [[k, round(v, 1)] for k, v in top]}
