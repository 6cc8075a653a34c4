"""The event log on disk: JSON lines that several processes append to while others read.

Writers: a node's `load` engine (sends, deliveries, installs) and the harness that kills
the node (a `crash` line after SIGKILL). Each appends whole lines with one write to an
O_APPEND file, so two writers' lines never interleave. Two things still leave a partial
line, and both are handled here rather than by each reader:

* a reader catches a line mid-write: the bytes after the last newline are not an event
  yet, and are left for the next read;
* a kill cuts a writer mid-line: the next writer first closes the cut line with a
  newline (open_event_log, append_event), and readers skip the one complete line that
  does not parse. Its event was never acted on: the engine releases a delivery only
  after its line is whole, so a restarted engine writes it again.

docs/event-log.md describes the events themselves.
"""
from __future__ import annotations

import os

import orjson


def parse_event_line(line: bytes) -> dict | None:
    """One line's event; None for a blank line or the line a kill cut (module docstring)."""
    if not line.strip():
        return None
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return None


def parse_event_lines(data: bytes) -> list[dict]:
    """The events in a log's bytes, without the line still being written."""
    events = (parse_event_line(line) for line in data[:data.rfind(b"\n") + 1].splitlines())
    return [ev for ev in events if ev is not None]


def read_event_log(path: str) -> list[dict]:
    """One node's log; no file yet is an empty log."""
    try:
        with open(path, "rb") as f:
            return parse_event_lines(f.read())
    except FileNotFoundError:
        return []


def _close_cut_line(fd: int) -> None:
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        os.write(fd, b"\n")


def open_event_log(path: str):
    """An unbuffered append file whose next write starts a fresh line."""
    f = open(path, "a+b", buffering=0)
    _close_cut_line(f.fileno())
    return f


def append_event(path: str, event: dict) -> None:
    """One line from a writer that does not keep the log open (the harness)."""
    with open_event_log(path) as f:
        f.write(orjson.dumps(event) + b"\n")
