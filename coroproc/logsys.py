"""Operator log lines as Corosync's logging { } section asks, from every process of a node.

What this file owns: turning (priority, subsystem, message) into lines on stderr, in log
files and in syslog, filtered the way Corosync's logsys filters them, and reopening the
files for logrotate. Every process of a node builds its own Log from the same LogSettings.

Corosync's semantics (exec/logconfig.c, exec/logsys.c, corosync.conf(5)):
* Targets: to_stderr, to_logfile + logfile, to_syslog + syslog_facility. logger_subsys
  { subsys: NAME … } overrides any of them for one subsystem (the man page's contract:
  Corosync's C code only honours the file overrides; coroproc honours all, see
  docs/logging.md).
* Thresholds: stderr and the file use logfile_priority, syslog uses syslog_priority;
  debug: on lowers both to debug, debug: trace to trace (one below debug).
* Syslog gets a priority bump as libqb's (QB_LOG_CONF_PRIORITY_BUMP): debug is sent as
  info and trace as debug, so a debug-enabled subsystem is visible with default filters.
* Line shapes (logsys_format_set): stderr `<ts> <prio:7> [<SUBSYS:6>] msg`; file
  `<ts> [<pid>] <host> coroproc <prio:7> [<SUBSYS:6>] msg`; syslog
  `<PRI><rfc3164 time> coroproc[<pid>]: [<SUBSYS:6>] msg`. timestamp: off | on | hires.
* fileline and function_name are accepted and ignored: a Python call site is not what
  an operator greps for, and finding it costs a frame walk per line.

Flight recorder (`blackbox: on`, the default): every line, at any priority, also goes to
the process's recorder (coroproc/blackbox/), which a `runtime.blackbox.dump_flight_data`
change writes out for qb-blackbox.

Files: one O_APPEND descriptor per path per process and one os.write per line keep lines
whole when all processes write the same file. reopen() (cfgtool -L, SIGHUP-style
requests) reopens them; in case no process was told, each Log also notices on its own
that its path was renamed or removed (a stat at most every rotation_check_s), so
logrotate without copytruncate never leaves a child writing to the rotated file.
"""
from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass

from coroproc.blackbox.recorder import RECORDER

PRIORITIES = ("emerg", "alert", "crit", "error", "warning", "notice", "info", "debug")
TRACE = 8  # libqb's LOG_TRACE: one below debug
_LEVEL = {name: i for i, name in enumerate(PRIORITIES)} | {"err": 3, "trace": TRACE}
LEVEL_NAMES = PRIORITIES + ("trace",)
# syslog(3) facility codes, as qb_log_facility2int knows them
FACILITIES = {"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5,
              "lpr": 6, "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
              **{f"local{i}": 16 + i for i in range(8)}}
DEFAULT_SYSLOG_SOCKET = "/dev/log"
ROTATION_CHECK_S = 1.0
_DEBUG_WORDS = {False: "off", True: "on", "off": "off", "on": "on", "trace": "trace"}


class LogConfigError(ValueError):
    """A logging setting this module cannot honour; says which key and what is allowed."""


def level_of(priority: str, where: str = "priority") -> int:
    try:
        return _LEVEL[priority]
    except KeyError:
        raise LogConfigError(f"{where}: {priority!r} is not a log priority (allowed: "
                             f"{', '.join(sorted(_LEVEL))})") from None


@dataclass(frozen=True)
class SubsysSettings:
    """One logger_subsys { }: None means "as the top level"."""

    subsys: str
    debug: str | None = None
    to_stderr: bool | None = None
    to_logfile: bool | None = None
    to_syslog: bool | None = None
    logfile: str | None = None
    logfile_priority: str | None = None
    syslog_priority: str | None = None
    syslog_facility: str | None = None


@dataclass(frozen=True)
class LogSettings:
    to_stderr: bool = True
    logfile: str | None = None        # None: to_logfile is off (or no path)
    priority: str = "info"            # logfile_priority: the file's and stderr's threshold
    timestamp: str = "hires"          # off | on | hires
    debug: bool | str = False         # False/"off" | True/"on" | "trace"
    to_syslog: bool = False
    syslog_priority: str = "info"
    syslog_facility: str = "daemon"
    syslog_socket: str = DEFAULT_SYSLOG_SOCKET
    ident: str = "coroproc"
    subsys: tuple[SubsysSettings, ...] = ()
    journal_prefix: bool = False      # stderr is the journal: prefix lines with <N>
    rotation_check_s: float = ROTATION_CHECK_S
    blackbox: bool = True             # every line to the flight recorder (blackbox/)

    def validate(self) -> None:
        level_of(self.priority, "logging.logfile_priority")
        level_of(self.syslog_priority, "logging.syslog_priority")
        _facility(self.syslog_facility, "logging.syslog_facility")
        if self.timestamp not in ("off", "on", "hires"):
            raise LogConfigError(f"logging.timestamp: {self.timestamp!r} is not allowed "
                                 "(allowed: off, on, hires)")
        _debug_word(self.debug, "logging.debug")
        for sub in self.subsys:
            where = f"logging.logger_subsys.{sub.subsys}"
            for name in ("logfile_priority", "syslog_priority"):
                if getattr(sub, name) is not None:
                    level_of(getattr(sub, name), f"{where}.{name}")
            if sub.syslog_facility is not None:
                _facility(sub.syslog_facility, f"{where}.syslog_facility")
            if sub.debug is not None:
                _debug_word(sub.debug, f"{where}.debug")


def _facility(name: str, where: str) -> int:
    if name not in FACILITIES:
        raise LogConfigError(f"{where}: {name!r} is not a syslog facility (allowed: "
                             f"{', '.join(FACILITIES)})")
    return FACILITIES[name]


def _debug_word(value, where: str) -> str:
    if value not in _DEBUG_WORDS:
        raise LogConfigError(f"{where}: {value!r} is not allowed (allowed: off, on, trace)")
    return _DEBUG_WORDS[value]


@dataclass(frozen=True)
class _Route:
    """Where one subsystem's lines go and from which level on (resolved once per subsys)."""

    stderr_max: int          # -1: not at all
    file_max: int
    logfile: str | None
    syslog_max: int
    facility: int


def _route(settings: LogSettings, sub: SubsysSettings | None) -> _Route:
    def pick(name: str, top):
        value = getattr(sub, name) if sub is not None else None
        return top if value is None else value

    debug = _debug_word(pick("debug", settings.debug), "logging.debug")
    file_level = level_of(pick("logfile_priority", settings.priority))
    syslog_level = level_of(pick("syslog_priority", settings.syslog_priority))
    if debug != "off":  # Corosync: "Ignored if debug is on"
        file_level = syslog_level = TRACE if debug == "trace" else _LEVEL["debug"]
    logfile = pick("logfile", settings.logfile)
    to_file = pick("to_logfile", settings.logfile is not None) and logfile is not None
    return _Route(
        stderr_max=file_level if pick("to_stderr", settings.to_stderr) else -1,
        file_max=file_level if to_file else -1, logfile=logfile if to_file else None,
        syslog_max=syslog_level if pick("to_syslog", settings.to_syslog) else -1,
        facility=_facility(pick("syslog_facility", settings.syslog_facility),
                           "logging.syslog_facility"))


def stderr_is_journal(env=os.environ, fd: int | None = None) -> bool:
    """systemd's JOURNAL_STREAM=<dev>:<ino> names the stream it connected stderr to."""
    stream = env.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in stream.split(":"))
        st = os.fstat(sys.stderr.fileno() if fd is None else fd)
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def settings_from_config(lg, foreground: bool, env=os.environ) -> LogSettings:
    """LogSettings for a model.LoggingConfig. Without -f stderr is gone (Corosync closes
    it). When stderr is the journal and syslog is on, syslog already reaches the journal:
    stderr lines would be duplicates, so they are left out (Corosync's unit sets
    StandardError=null for this; coroproc keeps stderr for Python tracebacks)."""
    journal = stderr_is_journal(env)
    to_stderr = lg.to_stderr and foreground and not (journal and lg.to_syslog)
    subs = tuple(s for _name, s in sorted(lg.subsys.items()))
    settings = LogSettings(
        to_stderr=to_stderr, logfile=lg.logfile if lg.to_logfile else None,
        priority=lg.logfile_priority, timestamp=lg.timestamp, debug=lg.debug,
        to_syslog=lg.to_syslog, syslog_priority=lg.syslog_priority,
        syslog_facility=lg.syslog_facility, subsys=subs, journal_prefix=journal,
        blackbox=lg.blackbox)
    settings.validate()
    return settings


@dataclass
class _File:
    path: str
    fd: int
    ident: tuple[int, int]   # (st_dev, st_ino) of what fd refers to


def _open_logfile(path: str) -> _File:
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    except OSError as exc:
        raise LogConfigError(f"logging.logfile: cannot open {path!r} for appending: "
                             f"{exc.strerror}; the directory must exist or be creatable "
                             "and be writable by the daemon") from None
    st = os.fstat(fd)
    return _File(path, fd, (st.st_dev, st.st_ino))


class Log:
    """One process's logger: `log.notice("TOTEM", "...")`, or log(priority, subsys, msg)."""

    def __init__(self, settings: LogSettings, tag: str = ""):
        settings.validate()
        self.settings = settings
        self.tag = tag
        self._host = socket.gethostname().split(".", 1)[0]
        self._subs = {s.subsys: s for s in settings.subsys}
        self._routes: dict[str, _Route] = {}
        self._files: dict[str, _File] = {}
        self._syslog: socket.socket | None = None
        self._next_rotation_check = 0.0
        self.write_errors = 0
        RECORDER.enabled = settings.blackbox      # one recorder per process
        for route in [_route(settings, None)] + [_route(settings, s) for s in settings.subsys]:
            if route.logfile and route.logfile not in self._files:
                self._files[route.logfile] = _open_logfile(route.logfile)
            if route.syslog_max >= 0 and self._syslog is None:
                self._syslog = socket.socket(socket.AF_UNIX,
                                             socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    # ---- routing ----
    def _route_of(self, subsys: str) -> _Route:
        route = self._routes.get(subsys)
        if route is None:
            sub = self._subs.get(subsys) or self._subs.get(subsys.upper())
            route = self._routes[subsys] = _route(self.settings, sub)
        return route

    def enabled(self, priority: str, subsys: str) -> bool:
        """Whether a line would go anywhere: callers skip building costly messages."""
        r = self._route_of(subsys)
        return _LEVEL[priority] <= max(r.stderr_max, r.file_max, r.syslog_max)

    # ---- formatting ----
    def _stamp(self, now: float) -> str:
        if self.settings.timestamp == "off":
            return ""
        base = time.strftime("%b %d %H:%M:%S", time.localtime(now))
        if self.settings.timestamp == "hires":
            base += f".{int(now * 1000) % 1000:03d}"
        return base + " "

    def log(self, priority: str, subsys: str, message: str) -> None:
        level = _LEVEL[priority]
        RECORDER.add(level, subsys, message)      # whatever the thresholds, as Corosync's
        r = self._route_of(subsys)
        if level > r.stderr_max and level > r.file_max and level > r.syslog_max:
            return
        now = time.time()
        body = f"{LEVEL_NAMES[level]:<7} [{subsys:<6}] {message}\n"
        if level <= r.stderr_max:
            prefix = f"<{min(level, 7)}>" if self.settings.journal_prefix else ""
            self._write(sys.stderr.fileno(), (prefix + self._stamp(now) + body).encode())
        if level <= r.file_max:
            self._follow_rotation()
            f = self._files.get(r.logfile)
            if f is not None:
                self._write(f.fd, (f"{self._stamp(now)}[{os.getpid()}] {self._host} "
                                   f"{self.settings.ident} {body}").encode())
        if level <= r.syslog_max:
            self._send_syslog(level, r.facility, subsys, message, now)

    def _write(self, fd: int, line: bytes) -> None:
        try:
            os.write(fd, line)
        except OSError:
            self.write_errors += 1  # a full disk or closed stderr must not stop the node

    def _send_syslog(self, level: int, facility: int, subsys: str, message: str,
                     now: float) -> None:
        severity = level - 1 if level >= _LEVEL["debug"] else level  # libqb's bump
        stamp = time.strftime("%b %e %H:%M:%S", time.localtime(now))
        datagram = (f"<{facility * 8 + severity}>{stamp} {self.settings.ident}"
                    f"[{os.getpid()}]: [{subsys:<6}] {message}").encode()
        try:
            self._syslog.sendto(datagram, self.settings.syslog_socket)
        except OSError:
            # no syslog daemon (yet): like syslog(3), drop the line; journald restarts
            # recreate the socket, so the next line tries again
            self.write_errors += 1

    def error(self, subsys, msg): self.log("error", subsys, msg)
    def warning(self, subsys, msg): self.log("warning", subsys, msg)
    def notice(self, subsys, msg): self.log("notice", subsys, msg)
    def info(self, subsys, msg): self.log("info", subsys, msg)
    def debug(self, subsys, msg): self.log("debug", subsys, msg)
    def trace(self, subsys, msg): self.log("trace", subsys, msg)

    # ---- files ----
    def _follow_rotation(self) -> None:
        now = time.monotonic()
        if now < self._next_rotation_check:
            return
        self._next_rotation_check = now + self.settings.rotation_check_s
        for f in list(self._files.values()):
            try:
                st = os.stat(f.path)
                moved = (st.st_dev, st.st_ino) != f.ident
            except OSError:
                moved = True
            if moved:
                self._reopen_one(f)

    def _reopen_one(self, f: _File) -> str | None:
        try:
            new = _open_logfile(f.path)
        except LogConfigError as exc:
            return str(exc)  # keep writing to the old descriptor rather than nowhere
        os.close(f.fd)
        self._files[f.path] = new
        return None

    def reopen(self) -> list[str]:
        """Reopen every log file (after logrotate moved them); returns the errors, one
        line per file that could not be reopened (that file keeps its old descriptor)."""
        errors = [e for f in list(self._files.values()) if (e := self._reopen_one(f))]
        self._next_rotation_check = time.monotonic() + self.settings.rotation_check_s
        for e in errors:
            self.warning("MAIN", f"Unable to reopen log file: {e}")
        return errors

    def close(self) -> None:
        for f in self._files.values():
            os.close(f.fd)
        self._files = {}
        if self._syslog is not None:
            self._syslog.close()
            self._syslog = None

    def reconfigure(self, settings: LogSettings) -> None:
        """Apply new settings in place (a config reload): every holder of this Log sees
        them. New files are opened before the old ones close; a bad setting raises
        LogConfigError and leaves the Log as it was."""
        fresh = Log(settings, self.tag)
        self.close()
        self.__dict__.update(fresh.__dict__)
