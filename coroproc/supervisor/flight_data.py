"""Flight data: every process's recorder of a node in one libqb blackbox file.

Corosync writes its blackbox to `<state_dir>/fdata-<local time>-<pid>` and points the
symlink `<state_dir>/fdata` at it (exec/main.c corosync_blackbox_write_to_file), where
`corosync-blackbox` and `qb-blackbox` look: when `runtime.blackbox.dump_flight_data`
changes in cmap, and from its handler of a fatal signal. A coroproc node's lines are
spread over its processes, each child's in the ring the supervisor mapped for it
(blackbox/recorder.py), so the supervisor reads them all itself — a stopped child's, a
dead one's, and the earlier lines of a child restarted since — merges them with its own
in time order and writes the file (blackbox/qbfile.py).

When a child dies without being asked to (a signal, an exception, an exit), the
supervisor writes the flight data as Corosync's crash handler does, at most once per
CRASH_DUMP_GAP_S: a crash loop does not fill the state dir.
"""
from __future__ import annotations

import os
import time

from coroproc.blackbox import logring, qbfile
from coroproc.blackbox.recorder import RECORDER

CRASH_DUMP_GAP_S = 10.0
SUPERVISOR_TITLE = "coroproc: supervisor"


class FlightData:
    def __init__(self, children: dict, log, state_dir: str):
        self._children = children           # role -> Child (children.py)
        self._log = log
        self._state_dir = state_dir
        self._last_crash_dump_s: float | None = None
        self.dumps = 0

    def write(self, why: str = "") -> str | None:
        """Every recorder into the state dir now; the file's path, or None (logged)."""
        rows = rows_of(RECORDER.ring.buf, SUPERVISOR_TITLE)
        for child in self._children.values():
            if child.log_ring is not None:
                rows += rows_of(child.log_ring, child.title)
        entries = entries_of(rows)
        try:
            path = write_fdata(self._state_dir, entries)
        except OSError as exc:
            self._log.error("MAIN", f"Can't store blackbox file in {self._state_dir}: "
                            f"{exc.strerror or exc}")
            return None
        self.dumps += 1
        self._log.info("MAIN", f"Flight data of {len(entries)} log lines written to "
                       f"{path}{why}")
        return path

    def crashed(self, title: str, how: str, now_s: float) -> None:
        """A child died unasked: the flight data, unless one was written for a crash
        less than CRASH_DUMP_GAP_S ago."""
        last = self._last_crash_dump_s
        if last is not None and now_s - last < CRASH_DUMP_GAP_S:
            return
        self._last_crash_dump_s = now_s
        self.write(f" ({title} {how})")


def rows_of(buf, title: str) -> list[tuple[int, int, str, str, int, str]]:
    """A ring's lines as (time_ns, level, title, subsys, pid, message) rows; a ring that
    cannot be read gives none (the dump goes on with the others)."""
    try:
        lines = logring.read(buf)
    except ValueError:
        return []
    return [(t, level, title, subsys, pid, message) for t, level, subsys, message, pid in lines]


def entries_of(rows: list[tuple[int, int, str, str, int, str]]) -> list[bytes]:
    """qbfile entries in time order."""
    return [qbfile.entry(level, title, pid, t, f"[{subsys:<6}] {message}")
            for t, level, title, subsys, pid, message in sorted(rows, key=lambda r: r[0])]


def write_fdata(state_dir: str, entries: list[bytes]) -> str:
    """Corosync's names: fdata-<%Y-%m-%dT%H:%M:%S>-<pid>, and the fdata symlink to it."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())
    path = os.path.join(state_dir, f"fdata-{stamp}-{os.getpid()}")
    qbfile.write(path, entries)
    link = os.path.join(state_dir, "fdata")
    try:
        os.unlink(link)
    except FileNotFoundError:
        pass
    os.symlink(path, link)
    return path
