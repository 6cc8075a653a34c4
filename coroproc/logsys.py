"""Operator log lines in Corosync's format, from every process of a node.

Corosync's logfile lines read `<timestamp> [<pid>] <host> corosync <priority:7> [<SUBSYS:6>]
<message>`; log monitoring greps these lines, so coroproc keeps the shape and the words
(with its own name as the ident, and the pid of the process that wrote the line). Every process of a node appends to
the same logfile: one os.write per line on an O_APPEND descriptor keeps lines whole.
"""
from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass

PRIORITIES = ("emerg", "alert", "crit", "error", "warning", "notice", "info", "debug")
_LEVEL = {name: i for i, name in enumerate(PRIORITIES)}


@dataclass(frozen=True)
class LogSettings:
    to_stderr: bool = True
    logfile: str | None = None
    priority: str = "info"        # lines above this level (less important) are dropped
    timestamp: str = "hires"      # off | on | hires
    debug: bool = False


class Log:
    """One process's logger; `log.notice("TOTEM", "...")`."""

    def __init__(self, settings: LogSettings, tag: str = ""):
        self.settings = settings
        self.tag = tag
        self._max_level = _LEVEL["debug" if settings.debug else settings.priority]
        self._host = socket.gethostname().split(".", 1)[0]
        self._fds: list[int] = []
        if settings.to_stderr:
            self._fds.append(sys.stderr.fileno())
        if settings.logfile:
            os.makedirs(os.path.dirname(os.path.abspath(settings.logfile)), exist_ok=True)
            self._fds.append(os.open(settings.logfile, os.O_WRONLY | os.O_APPEND | os.O_CREAT
                                     | os.O_CLOEXEC, 0o640))

    def _stamp(self) -> str:
        if self.settings.timestamp == "off":
            return ""
        now = time.time()
        base = time.strftime("%b %d %H:%M:%S", time.localtime(now))
        if self.settings.timestamp == "hires":
            base += f".{int(now * 1000) % 1000:03d}"
        return base + " "

    def log(self, priority: str, subsys: str, message: str) -> None:
        if _LEVEL[priority] > self._max_level:
            return
        line = (f"{self._stamp()}[{os.getpid()}] {self._host} coroproc {priority:<7} "
                f"[{subsys:<6}] {message}\n").encode()
        for fd in self._fds:
            try:
                os.write(fd, line)
            except OSError:
                pass  # a full disk or closed stderr must not take the node down

    def error(self, subsys, msg): self.log("error", subsys, msg)
    def warning(self, subsys, msg): self.log("warning", subsys, msg)
    def notice(self, subsys, msg): self.log("notice", subsys, msg)
    def info(self, subsys, msg): self.log("info", subsys, msg)
    def debug(self, subsys, msg): self.log("debug", subsys, msg)

    def close(self) -> None:
        for fd in self._fds[1 if self.settings.to_stderr else 0:]:
            os.close(fd)
        self._fds = []
