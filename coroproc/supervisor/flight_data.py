"""runtime.blackbox.dump_flight_data: every process's recorder into one libqb file.

Corosync writes its blackbox to `<state_dir>/fdata-<local time>-<pid>` and points the
symlink `<state_dir>/fdata` at it (exec/main.c corosync_blackbox_write_to_file), where
`corosync-blackbox` and `qb-blackbox` look. A coroproc node's lines are spread over its
processes, so the supervisor asks each live child for its recorder ({"op": "blackbox"},
answered by supervisor/control.py; gathered as reports.py gathers counters), waits for
the answers up to WAIT_S (a child that is
gone or stuck is left out, and the log says which), merges them with its own in time
order and writes the file (blackbox/qbfile.py).
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable

from coroproc.blackbox import qbfile
from coroproc.blackbox.recorder import RECORDER

from .reports import Reports

WAIT_S = 1.0


class FlightData:
    def __init__(self, children: dict, send: Callable[[str, dict], bool], log,
                 state_dir: str):
        self._children = children           # role -> Child (children.py)
        self._gather = Reports(children, send, op="blackbox", wait_s=WAIT_S)
        self._log = log
        self._state_dir = state_dir
        self._rows: list[tuple[int, int, str, str, int, str]] = []
        self._then: list[Callable[[bool], None]] = []
        self.dumps = 0

    @property
    def due_s(self) -> float | None:
        return self._gather.due_s

    def start(self, now_s: float, then: Callable[[bool], None] | None = None) -> None:
        """Ask every live child for its recorder; then(written) once the file is out. A
        dump already on its way absorbs this one."""
        if then is not None:
            self._then.append(then)
        if self._gather.due_s is None:
            self._rows = []
            self._gather.gather(now_s, self._finish)

    def answered(self, role: str, records) -> None:
        """`role`'s recorder arrived (None: it died, do not wait for it)."""
        if not self._gather.waiting_for(role):
            return
        child = self._children.get(role)
        title = child.title if child is not None else role
        for row in records or ():
            try:
                t_ns, level, subsys, message, pid = row
                self._rows.append((int(t_ns), int(level), title, str(subsys), int(pid),
                                   str(message)))
            except (TypeError, ValueError):
                continue                    # not a row of ours: leave it out
        self._gather.answered(role)

    def tick(self, now_s: float) -> None:
        self._gather.tick(now_s)

    def _finish(self) -> None:
        if self._gather.missed:
            self._log.warning("MAIN", "Flight data: no answer from "
                              f"{', '.join(sorted(self._gather.missed))} within "
                              f"{WAIT_S:.0f} s; writing the rest")
        then, self._then = self._then, []
        written = self._write()
        for cb in then:
            cb(written)

    def _write(self) -> bool:
        rows = self._rows + own_rows("coroproc: supervisor")
        self._rows = []
        entries = entries_of(rows)
        try:
            path = write_fdata(self._state_dir, entries)
        except OSError as exc:
            self._log.error("MAIN", f"Can't store blackbox file in {self._state_dir}: "
                            f"{exc.strerror or exc}")
            return False
        self.dumps += 1
        self._log.info("MAIN", f"Flight data of {len(entries)} log lines written to {path}")
        return True


def own_rows(title: str) -> list[tuple[int, int, str, str, int, str]]:
    """This process's recorder as (time_ns, level, title, subsys, pid, message) rows."""
    return [(t, level, title, subsys, pid, message)
            for t, level, subsys, message, pid in RECORDER.export()]


def entries_of(rows: list[tuple[int, int, str, str, int, str]]) -> list[bytes]:
    """qbfile entries in time order."""
    return [qbfile.entry(level, title, pid, t, f"[{subsys:<6}] {message}")
            for t, level, title, subsys, pid, message in sorted(rows, key=lambda r: r[0])]


def dump_own_crash(state_dir: str, title: str, trace: str) -> str | None:
    """A child dying of an exception writes its own flight data, as Corosync's SIGSEGV
    handler writes the blackbox before it dies: the traceback last, at crit. The path,
    or None when it could not be written (the child is dying: nothing is raised)."""
    for line in trace.rstrip().splitlines():
        RECORDER.add(2, "MAIN", line)
    try:
        return write_fdata(state_dir, entries_of(own_rows(title)))
    except OSError:
        return None


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
