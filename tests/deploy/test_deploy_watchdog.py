"""The sd_notify conversation over a real NOTIFY_SOCKET: WATCHDOG=1 at half of
WATCHDOG_USEC only while healthy, STATUS= on change, sd_watchdog_enabled's WATCHDOG_PID
rule, abstract sockets, and crash-loop detection with its log lines and cmap keys.
The supervisor's clock is an argument, so no test waits for time to pass."""
from __future__ import annotations

import os
import socket
import uuid

import pytest

from coroproc.logsys import Log, LogSettings
from coroproc.supervisor.sdnotify import sd_notify, watchdog_interval_us
from coroproc.supervisor.watchdog import CrashLoops, SystemdWatchdog


class Notify:
    """What systemd would read: a bound datagram socket."""

    def __init__(self, path_or_abstract: str):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        addr = path_or_abstract
        self.env_value = addr
        if addr.startswith("@"):
            addr = "\0" + addr[1:]
        self.s.bind(addr)
        self.s.setblocking(False)

    def messages(self) -> list[str]:
        out = []
        while True:
            try:
                out.append(self.s.recv(4096).decode())
            except BlockingIOError:
                return out

    def close(self):
        self.s.close()


@pytest.fixture
def notify(tmp_path):
    n = Notify(str(tmp_path / "notify.sock"))
    yield n
    n.close()


@pytest.fixture
def log(tmp_path):
    lg = Log(LogSettings(to_stderr=False, logfile=str(tmp_path / "wd.log")))
    yield lg
    lg.close()


def _env(notify: Notify, usec: int | None = 10_000_000, pid: int | None = None) -> dict:
    env = {"NOTIFY_SOCKET": notify.env_value}
    if usec is not None:
        env["WATCHDOG_USEC"] = str(usec)
    if pid is not None:
        env["WATCHDOG_PID"] = str(pid)
    return env


def test_sd_notify_reaches_an_abstract_socket():
    n = Notify(f"@coroproc-test-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        assert sd_notify("READY=1\nSTATUS=ready", {"NOTIFY_SOCKET": n.env_value})
        assert n.messages() == ["READY=1\nSTATUS=ready"]
    finally:
        n.close()


def test_sd_notify_without_systemd_or_listener(tmp_path):
    assert sd_notify("READY=1", {}) is False
    assert sd_notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}) is False
    with pytest.raises(ValueError, match="longer than systemd reads"):
        sd_notify("STATUS=" + "x" * 5000, {"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})


def test_watchdog_interval_follows_sd_watchdog_enabled():
    assert watchdog_interval_us({"WATCHDOG_USEC": "30000000"}) == 30_000_000
    assert watchdog_interval_us({"WATCHDOG_USEC": "30000000",
                                 "WATCHDOG_PID": str(os.getpid())}) == 30_000_000
    # the environment a child inherited is not the watched process's
    assert watchdog_interval_us({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    for bad in ("", "0", "-5", "soon"):
        assert watchdog_interval_us({"WATCHDOG_USEC": bad}) is None
    assert watchdog_interval_us({}) is None


def test_pings_at_half_the_interval_while_healthy(notify, log):
    wd = SystemdWatchdog(log, _env(notify, usec=10_000_000, pid=os.getpid()))
    assert wd.enabled and wd.interval_s == 10.0
    sent = [wd.tick(True, t) for t in (100.0, 102.0, 104.9, 105.0, 109.0, 110.0)]
    assert sent == ["WATCHDOG=1", None, None, "WATCHDOG=1", None, "WATCHDOG=1"]
    assert notify.messages() == ["WATCHDOG=1"] * 3
    assert wd.poll_timeout_s(111.0, 0.2) == 0.2
    assert wd.poll_timeout_s(114.9, 0.2) == pytest.approx(0.1)


def test_no_pings_while_unhealthy_and_a_log_line_each_way(notify, log, tmp_path):
    wd = SystemdWatchdog(log, _env(notify, usec=2_000_000))
    assert wd.tick(True, 0.0) == "WATCHDOG=1"
    assert wd.tick(False, 1.0, status="crash loop: cpg") == "STATUS=crash loop: cpg"
    assert wd.tick(False, 5.0, status="crash loop: cpg") is None   # nothing new to say
    assert wd.tick(True, 6.0, status="ready") == "STATUS=ready\nWATCHDOG=1"
    assert notify.messages() == ["WATCHDOG=1", "STATUS=crash loop: cpg",
                                 "STATUS=ready\nWATCHDOG=1"]
    text = (tmp_path / "wd.log").read_text()
    assert text.count("Withholding systemd watchdog pings: crash loop: cpg") == 1
    assert text.count("watchdog pings resume") == 1


def test_without_watchdog_usec_only_status_goes_out(notify, log):
    wd = SystemdWatchdog(log, _env(notify, usec=None))
    assert not wd.enabled
    assert wd.tick(True, 0.0) is None
    assert wd.tick(False, 1.0, status="forming the ring") == "STATUS=forming the ring"
    assert notify.messages() == ["STATUS=forming the ring"]
    assert wd.poll_timeout_s(0.0, 0.2) == 0.2


def test_crash_loop_starts_ends_and_is_reported(log, tmp_path):
    loops = CrashLoops(log, crashes_max=3, window_s=60.0)
    loops.record_exit("cpg", 0.0, "killed by SIGSEGV")
    loops.record_exit("cpg", 10.0, "killed by SIGSEGV")
    assert loops.healthy() and loops.status_text() is None
    loops.record_exit("cpg", 20.0, "exited with status 1")
    assert not loops.healthy() and loops.looping() == ["cpg"]
    assert loops.status_text() == "crash loop: cpg (3 exits, last: exited with status 1)"
    keys = loops.cmap_keys()
    assert keys["runtime.coroproc.children.cpg.crash_loop"] == ("uint8", 1)
    assert keys["runtime.coroproc.children.cpg.exits"] == ("uint32", 3)
    loops.update(59.0)
    assert not loops.healthy()
    loops.update(60.5)       # the first exit left the window
    assert loops.healthy()
    assert loops.cmap_keys()["runtime.coroproc.children.cpg.crash_loop"] == ("uint8", 0)
    text = (tmp_path / "wd.log").read_text()
    assert "coroproc: cpg is in a crash loop: it exited 3 times within 60 s" in text
    assert "coroproc: cpg left its crash loop" in text


def test_spread_out_crashes_are_no_loop(log):
    loops = CrashLoops(log, crashes_max=3, window_s=60.0)
    for t in (0.0, 40.0, 80.0, 120.0):
        loops.record_exit("ring", t, "killed by SIGKILL")
    assert loops.healthy()
    with pytest.raises(ValueError, match="crashes_max >= 2"):
        CrashLoops(log, crashes_max=1)


def test_crash_loop_and_watchdog_together(notify, log):
    """The supervisor's wiring in miniature: healthy = no crash loop."""
    wd = SystemdWatchdog(log, _env(notify, usec=4_000_000))
    loops = CrashLoops(log, crashes_max=2, window_s=30.0)
    out = []
    for now, crash in ((0.0, None), (1.0, "cfg"), (2.5, "cfg"), (4.0, None), (40.0, None)):
        if crash:
            loops.record_exit(crash, now, "exited with status 1")
        loops.update(now)
        out.append(wd.tick(loops.healthy(), now, loops.status_text() or "ready"))
    assert out == ["STATUS=ready\nWATCHDOG=1", None,
                   "STATUS=crash loop: cfg (2 exits, last: exited with status 1)", None,
                   "STATUS=ready\nWATCHDOG=1"]
