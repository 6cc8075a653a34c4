"""coroproc/logsys.py against corosync.conf(5)'s logging { } contract: targets (stderr, a
file, syslog over a real AF_UNIX datagram socket), thresholds, debug on/trace, per-subsystem
overrides, line shapes, reopening for logrotate, and settings built from a real config."""
from __future__ import annotations

import os
import re
import socket

import pytest

from coroproc.config.loader import load
from coroproc.logsys import (
    Log,
    LogConfigError,
    LogSettings,
    SubsysSettings,
    settings_from_config,
    stderr_is_journal,
)

FILE_LINE = re.compile(r"^(\w{3} [ 0-9]\d \d\d:\d\d:\d\d\.\d{3}) \[(\d+)\] (\S+) coroproc "
                       r"(\w+) +\[(\S+) *\] (.*)$")


@pytest.fixture
def syslog_sock(tmp_path):
    path = str(tmp_path / "log.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.setblocking(False)
    yield path, s
    s.close()


def _drain(s: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(s.recv(65536).decode())
        except BlockingIOError:
            return out


def _lines(path) -> list[str]:
    with open(path) as f:
        return f.read().splitlines()


def test_file_line_shape_and_priority_threshold(tmp_path):
    path = tmp_path / "node.log"
    log = Log(LogSettings(to_stderr=False, logfile=str(path), priority="notice"))
    log.notice("TOTEM", "A new membership (1.8) was formed. Members joined: 2")
    log.info("TOTEM", "info is above notice: dropped")
    log.error("MAIN", "boom")
    log.close()
    lines = _lines(path)
    assert len(lines) == 2, lines
    m = FILE_LINE.match(lines[0])
    assert m, lines[0]
    assert int(m.group(2)) == os.getpid()
    assert (m.group(4), m.group(5)) == ("notice", "TOTEM")
    assert m.group(6) == "A new membership (1.8) was formed. Members joined: 2"
    # Corosync pads the priority to 7 and the subsystem to 6 columns
    assert "error   [MAIN  ] boom" in lines[1]


@pytest.mark.parametrize("timestamp,pattern", [
    ("off", r"^\[\d+\] "), ("on", r"^\w{3} [ 0-9]\d \d\d:\d\d:\d\d \["),
    ("hires", r"^\w{3} [ 0-9]\d \d\d:\d\d:\d\d\.\d{3} \[")])
def test_timestamp_modes(tmp_path, timestamp, pattern):
    path = tmp_path / "ts.log"
    log = Log(LogSettings(to_stderr=False, logfile=str(path), timestamp=timestamp))
    log.notice("MAIN", "x")
    log.close()
    assert re.match(pattern, _lines(path)[0]), _lines(path)[0]


def test_stderr_uses_corosyncs_stderr_format_and_logfile_priority(capfd):
    log = Log(LogSettings(to_stderr=True, priority="warning", timestamp="off"))
    log.warning("QUORUM", "This node is within the non-primary component")
    log.notice("QUORUM", "dropped: notice is above warning")
    err = capfd.readouterr().err.splitlines()
    assert err == ["warning [QUORUM] This node is within the non-primary component"]


def test_debug_on_and_trace_lower_every_threshold(tmp_path, syslog_sock):
    sock_path, s = syslog_sock
    path = tmp_path / "d.log"
    for debug, want in ((False, []), ("on", ["debug"]), ("trace", ["debug", "trace"])):
        log = Log(LogSettings(to_stderr=False, logfile=str(path), priority="error",
                              to_syslog=True, syslog_priority="error", syslog_socket=sock_path,
                              debug=debug))
        log.debug("SYNC", "d")
        log.trace("SYNC", "t")
        log.close()
        got = [FILE_LINE.match(ln).group(4) for ln in _lines(path)]
        assert got == want, (debug, got)
        assert len(_drain(s)) == len(want)
        path.unlink()


def test_syslog_datagrams_facility_priority_bump_and_shape(syslog_sock):
    sock_path, s = syslog_sock
    log = Log(LogSettings(to_stderr=False, to_syslog=True, syslog_socket=sock_path,
                          syslog_facility="local4", debug=True))
    log.error("MAIN", "err line")
    log.debug("CPG", "debug line")
    log.close()
    got = _drain(s)
    assert len(got) == 2
    local4 = 20
    m = re.match(r"^<(\d+)>\w{3} [ 0-9]\d \d\d:\d\d:\d\d coroproc\[(\d+)\]: \[MAIN  \] err line$",
                 got[0])
    assert m, got[0]
    assert int(m.group(1)) == local4 * 8 + 3 and int(m.group(2)) == os.getpid()
    # libqb's priority bump: debug goes out as info so default syslog filters keep it
    assert got[1].startswith(f"<{local4 * 8 + 6}>") and got[1].endswith("[CPG   ] debug line")


def test_syslog_without_a_listener_drops_lines_and_counts_them(tmp_path):
    log = Log(LogSettings(to_stderr=False, to_syslog=True,
                          syslog_socket=str(tmp_path / "nobody.sock")))
    log.error("MAIN", "into the void")
    assert log.write_errors == 1
    log.close()


def test_logger_subsys_overrides_debug_priority_file_and_targets(tmp_path, syslog_sock):
    sock_path, s = syslog_sock
    main_log, quorum_log = tmp_path / "main.log", tmp_path / "quorum.log"
    settings = LogSettings(
        to_stderr=False, logfile=str(main_log), priority="notice", to_syslog=True,
        syslog_socket=sock_path, syslog_priority="notice",
        subsys=(SubsysSettings("QUORUM", debug="on", logfile=str(quorum_log)),
                SubsysSettings("CPG", logfile_priority="error", to_syslog=False)))
    log = Log(settings)
    log.debug("QUORUM", "quorum debug")
    log.info("TOTEM", "totem info: dropped")
    log.notice("CPG", "cpg notice: dropped by its own logfile_priority and to_syslog")
    log.error("CPG", "cpg error")
    log.close()
    assert [FILE_LINE.match(x).group(6) for x in _lines(quorum_log)] == ["quorum debug"]
    assert [FILE_LINE.match(x).group(6) for x in _lines(main_log)] == ["cpg error"]
    assert [d.split("] ", 1)[1] for d in _drain(s)] == ["quorum debug"]


def test_reopen_after_logrotate_renames_the_file(tmp_path):
    path = tmp_path / "rot.log"
    log = Log(LogSettings(to_stderr=False, logfile=str(path), rotation_check_s=3600))
    log.notice("MAIN", "before")
    os.rename(path, tmp_path / "rot.log.1")
    log.notice("MAIN", "still the old file: no reopen yet")
    assert log.reopen() == []
    log.notice("MAIN", "after")
    log.close()
    assert [FILE_LINE.match(x).group(6) for x in _lines(path)] == ["after"]
    assert len(_lines(tmp_path / "rot.log.1")) == 2


def test_a_process_follows_a_rotation_nobody_told_it_about(tmp_path):
    """A child that missed cfgtool -L still moves to the new file by itself."""
    path = tmp_path / "auto.log"
    log = Log(LogSettings(to_stderr=False, logfile=str(path), rotation_check_s=0))
    log.notice("MAIN", "one")
    os.rename(path, tmp_path / "auto.log.1")
    log.notice("MAIN", "two")
    log.close()
    assert [FILE_LINE.match(x).group(6) for x in _lines(path)] == ["two"]


def test_reopen_failure_keeps_the_old_file_and_says_why(tmp_path):
    d = tmp_path / "dir"
    d.mkdir()
    path = d / "x.log"
    log = Log(LogSettings(to_stderr=False, logfile=str(path), rotation_check_s=3600))
    os.rename(path, tmp_path / "x.log.1")
    os.rmdir(d)
    (tmp_path / "dir").write_text("a file where the directory was")
    errors = log.reopen()
    assert len(errors) == 1 and str(path) in errors[0] and "logging.logfile" in errors[0]
    log.close()
    text = (tmp_path / "x.log.1").read_text()
    assert "Unable to reopen log file" in text  # written to the old descriptor


def test_bad_settings_are_refused_with_key_and_allowed_values(tmp_path):
    with pytest.raises(LogConfigError, match=r"logging.logfile_priority: 'loud'.*allowed"):
        Log(LogSettings(priority="loud"))
    with pytest.raises(LogConfigError, match=r"logger_subsys.CPG.syslog_facility.*local0"):
        Log(LogSettings(subsys=(SubsysSettings("CPG", syslog_facility="nowhere"),)))
    with pytest.raises(LogConfigError, match=r"cannot open .* for appending"):
        Log(LogSettings(logfile="/proc/coroproc-no-such-dir/x.log"))


def test_reconfigure_applies_in_place(tmp_path):
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    log = Log(LogSettings(to_stderr=False, logfile=str(first)))
    holder = log   # e.g. an engine that kept a reference
    log.reconfigure(LogSettings(to_stderr=False, logfile=str(second), debug="on"))
    holder.debug("MAIN", "to the new file")
    log.close()
    assert first.read_text() == ""
    assert "to the new file" in second.read_text()


def test_settings_from_a_real_config_file(tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text(f"""totem {{
    version: 2
    cluster_name: logcfg{os.getpid()}
    transport: udpu
}}
nodelist {{
    node {{
        nodeid: 1
        ring0_addr: 127.0.0.1
    }}
}}
logging {{
    to_stderr: yes
    to_logfile: yes
    logfile: {tmp_path}/c.log
    to_syslog: yes
    syslog_facility: local2
    logfile_priority: notice
    timestamp: on
    fileline: on
    logger_subsys {{
        subsys: QUORUM
        debug: trace
        to_syslog: no
    }}
}}
""")
    cfg, _warnings = load(str(conf), 1)
    fg = settings_from_config(cfg.logging, foreground=True, env={})
    assert (fg.to_stderr, fg.logfile, fg.priority, fg.timestamp) == (
        True, f"{tmp_path}/c.log", "notice", "on")
    assert (fg.to_syslog, fg.syslog_facility) == (True, "local2")
    assert fg.subsys == (SubsysSettings("QUORUM", debug="trace", to_syslog=False),)
    assert settings_from_config(cfg.logging, foreground=False, env={}).to_stderr is False


def test_journal_stderr_is_detected_and_deduplicated_with_syslog(tmp_path):
    """Under systemd, JOURNAL_STREAM names stderr's stream: with syslog on, stderr lines
    would reach the journal twice, so they are left out; without syslog they carry <N>."""
    with open(tmp_path / "stream", "w") as probe:
        st = os.fstat(probe.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert stderr_is_journal(env, probe.fileno())
        assert not stderr_is_journal({"JOURNAL_STREAM": "1:2"}, probe.fileno())
        assert not stderr_is_journal({}, probe.fileno())


def test_journal_mode_drops_duplicate_stderr_or_prefixes_priorities(tmp_path, capfd):
    conf = tmp_path / "j.conf"
    conf.write_text(f"""totem {{
    version: 2
    cluster_name: logj{os.getpid()}
    transport: udpu
}}
nodelist {{
    node {{
        nodeid: 1
        ring0_addr: 127.0.0.1
    }}
}}
logging {{
    to_stderr: yes
    to_syslog: yes
    timestamp: off
}}
""")
    cfg, _ = load(str(conf), 1)
    st = os.fstat(2)  # capfd made fd 2 a file: pretend systemd connected it to the journal
    journal = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
    assert settings_from_config(cfg.logging, True, env=journal).to_stderr is False
    no_syslog = cfg.logging.__class__(**{**cfg.logging.__dict__, "to_syslog": False})
    settings = settings_from_config(no_syslog, True, env=journal)
    assert settings.to_stderr and settings.journal_prefix
    Log(settings).error("MAIN", "to the journal")
    assert capfd.readouterr().err == "<3>error   [MAIN  ] to the journal\n"
