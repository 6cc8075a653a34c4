"""Human-readable run traces, and the event logs on disk (JSON lines).

A trace is a list of lines, each starting with the virtual time; nothing in it may depend
on the wall clock or on the process it ran in, so one seed prints the same trace every
time. Deliveries are summarized (one line per node per configuration), the rest is
printed as it happens: faults, installs, crashes, restarts, pauses, core log codes.
"""
from __future__ import annotations

import hashlib
import os

import orjson

from coroproc.eventlog import read_event_log


def stamp(t_us: int) -> str:
    return f"{t_us // 1000:6d}.{t_us % 1000:03d}ms"


class Trace:
    """Collects trace lines when enabled; costs one attribute test when not."""

    __slots__ = ("lines", "log_names", "sink")

    def __init__(self, log_names: dict[int, str] | None = None, sink=None) -> None:
        self.lines: list[str] = []
        self.log_names = log_names or {}
        self.sink = sink   # a text file to stream lines to as they happen (a hang shows its lead-up)

    def add(self, t_us: int, who: str, text: str) -> None:
        line = f"{stamp(t_us)} {who:>5} {text}"
        self.lines.append(line)
        if self.sink is not None:
            self.sink.write(line + "\n")
            self.sink.flush()

    def log_code(self, t_us: int, node: int, code: int, args: tuple) -> None:
        name = self.log_names.get(code, f"code{code}")
        self.add(t_us, f"n{node}", "log " + " ".join([name, *map(str, args)]))

    def text(self) -> str:
        return "\n".join(self.lines) + ("\n" if self.lines else "")


def load_log_names() -> dict[int, str]:
    """Names of the core's operator log codes (coroproc.ringproc.events), if it has them."""
    try:
        from coroproc.ringproc import events
    except ImportError:
        return {}
    names = {}
    for name in dir(events):
        value = getattr(events, name)
        if name.startswith("LOG_") and isinstance(value, int) and not isinstance(value, bool):
            names.setdefault(value, name[len("LOG_"):])
    return names


def logs_digest(logs: dict[int, list[dict]]) -> str:
    """sha256 over every node's log in nodeid order: equal digests, equal runs."""
    h = hashlib.sha256()
    for node in sorted(logs):
        h.update(node.to_bytes(4, "little"))
        for event in logs[node]:
            h.update(orjson.dumps(event, option=orjson.OPT_SORT_KEYS))
            h.update(b"\n")
    return h.hexdigest()


def write_logs(directory: str, logs: dict[int, list[dict]]) -> list[str]:
    """One `node-<id>.jsonl` per node; returns the paths written."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    for node in sorted(logs):
        path = os.path.join(directory, f"node-{node}.jsonl")
        with open(path, "wb") as f:
            for event in logs[node]:
                f.write(orjson.dumps(event))
                f.write(b"\n")
        paths.append(path)
    return paths


def read_logs(directory: str) -> dict[int, list[dict]]:
    """The inverse of write_logs."""
    logs: dict[int, list[dict]] = {}
    for name in sorted(os.listdir(directory)):
        if not (name.startswith("node-") and name.endswith(".jsonl")):
            continue
        node = int(name[len("node-"):-len(".jsonl")])
        logs[node] = read_event_log(os.path.join(directory, name))
    return logs
