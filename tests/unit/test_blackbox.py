"""The flight recorder (coroproc/blackbox/recorder.py), the libqb file it is dumped to
(qbfile.py, read back by the real qb-blackbox when it is installed) and the supervisor's
dump of every ring, a dead child's included (supervisor/flight_data.py). The dump on a live node through corosync-blackbox
is tests/interop/test_blackbox.py."""
from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess

import pytest

from coroproc.blackbox import qbfile
from coroproc.blackbox.recorder import RECORDER, Recorder, shared_ring
from coroproc.logsys import Log, LogSettings
from coroproc.supervisor.flight_data import CRASH_DUMP_GAP_S, FlightData


def test_the_recorder_keeps_the_newest_lines_within_its_ring():
    r = Recorder(size_bytes=4096)
    for i in range(400):
        r.add(6, "TOTEM", f"line {i:05d}")
    rows = r.export()
    numbers = [int(row[3][5:]) for row in rows]
    assert numbers == list(range(400 - len(rows), 400)) and 50 < len(rows) < 400
    assert r.ring.dropped == 400 - len(rows) and all(row[4] == os.getpid() for row in rows)
    assert [row[0] for row in rows] == sorted(row[0] for row in rows)
    r.enabled = False
    r.add(3, "MAIN", "not kept")
    assert r.export() == rows


@pytest.fixture
def recorder():
    """The process's RECORDER, emptied, and as it was (enabled) afterwards."""
    RECORDER.clear()
    yield RECORDER
    RECORDER.enabled = True
    RECORDER.clear()


def test_a_log_records_every_priority_whatever_its_thresholds(tmp_path, recorder):
    log = Log(LogSettings(to_stderr=False, logfile=str(tmp_path / "f.log")))
    log.debug("CPG", "a debug line the file does not take")
    log.notice("CPG", "a notice")
    assert [(row[1], row[3]) for row in RECORDER.export()] == [
        (7, "a debug line the file does not take"), (5, "a notice")]
    assert "debug line" not in (tmp_path / "f.log").read_text()
    Log(LogSettings(to_stderr=False, blackbox=False)).notice("CPG", "off")
    assert len(RECORDER.export()) == 2


def test_a_forked_child_starts_with_an_empty_recorder(recorder):
    RECORDER.add(5, "MAIN", "the parent's")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, str(len(RECORDER.export())).encode())
        os._exit(0)
    os.close(w)
    assert os.read(r, 16) == b"0"
    os.waitpid(pid, 0)
    assert len(RECORDER.export()) == 1


def _walk(raw: bytes) -> list[tuple[int, int, str, int, str]]:
    """(priority, lineno, function, time_ns, message) of each chunk, libqb's way."""
    assert raw[:20] == qbfile.HEADER
    word_size, write_pt, read_pt, version, hash_ = struct.unpack_from("<5I", raw, 20)
    assert (version, hash_) == (1, word_size + write_pt + read_pt + 1) and read_pt == 0
    data = raw[40:]
    assert len(data) == word_size * 4 and len(data) % qbfile.PAGE_BYTES == 0
    out, pos = [], 0
    while pos < write_pt:
        size, magic = struct.unpack_from("<II", data, pos * 4)
        assert magic == qbfile.CHUNK_MAGIC and size <= 2 * qbfile.QB_LOG_MAX_LEN
        e = data[pos * 4 + 8:pos * 4 + 8 + size]
        lineno, tags, prio, fn_size = struct.unpack_from("<IIBI", e, 0)
        fn = e[13:13 + fn_size - 1].decode()
        sec, nsec = struct.unpack_from("<qq", e, 13 + fn_size)
        msg_len = struct.unpack_from("<I", e, 29 + fn_size)[0]
        msg = e[33 + fn_size:33 + fn_size + msg_len]
        assert msg_len <= qbfile.QB_LOG_MAX_LEN and msg.startswith(b"%s\0") and tags == 0
        out.append((prio, lineno, fn, sec * 10**9 + nsec, msg[3:-1].decode()))
        pos += 2 + (size + 3) // 4
    assert struct.unpack_from("<I", data, write_pt * 4 + 4)[0] != qbfile.CHUNK_MAGIC
    return out


def test_the_file_is_a_libqb_ring_of_chunks_and_long_texts_are_cut():
    long = "é" * 400                                   # 800 bytes of UTF-8
    entries = [qbfile.entry(5, "coroproc: ring", 42, 1_700_000_000_123_456_789, "[TOTEM] up"),
               qbfile.entry(7, "coroproc: " + "x" * 100, 43, 1_700_000_001_000_000_000, long)]
    rows = _walk(qbfile.file_bytes(entries))
    assert rows[0] == (5, 42, "coroproc: ring", 1_700_000_000_123_456_789, "[TOTEM] up")
    prio, _lineno, fn, _t, msg = rows[1]
    assert len(fn.encode()) == qbfile.FUNCTION_MAX_BYTES
    assert msg == "é" * (qbfile.MESSAGE_MAX_BYTES // 2)  # cut on a character boundary
    assert _walk(qbfile.file_bytes([])) == []


@pytest.mark.skipif(shutil.which("qb-blackbox") is None, reason="needs qb-blackbox (libqb-tools)")
def test_qb_blackbox_prints_what_was_written(tmp_path):
    path = str(tmp_path / "fdata")
    qbfile.write(path, [qbfile.entry(4, "coroproc: cpg", 7, 1_700_000_000_250_000_000,
                                     "[CPG   ] 100% of 3 %s %d"),
                        qbfile.entry(8, "coroproc: ring", 8, 1_700_000_000_500_000_000,
                                     "[TOTEM ] trace")])
    out = subprocess.run(["qb-blackbox", path], capture_output=True, text=True, timeout=30)
    lines = [ln for ln in out.stdout.splitlines() if "coroproc:" in ln]
    assert len(lines) == 2, out.stdout + out.stderr
    assert lines[0].startswith("warning ") and lines[0].endswith(
        "coroproc: cpg(7):0: [CPG   ] 100% of 3 %s %d")
    assert ".250 " in lines[0] and lines[1].startswith("trace ")


class _Child:
    def __init__(self, title, log_ring=None):
        self.title, self.log_ring = title, log_ring


class _Log:
    def __init__(self):
        self.lines = []

    def info(self, subsys, msg): self.lines.append(("info", msg))
    def error(self, subsys, msg): self.lines.append(("error", msg))


def _fork_and_kill(ring, lines: list[str]) -> int:
    """A process that writes lines into ring as its recorder, then stops and is killed
    by SIGKILL: what the supervisor finds of a child that could not write anything."""
    pid = os.fork()
    if pid == 0:
        RECORDER.attach(ring)
        for text in lines:
            RECORDER.add(6, "TOTEM", text)
        os.kill(os.getpid(), signal.SIGSTOP)
        os._exit(0)
    os.waitpid(pid, os.WUNTRACED)                 # stopped: its lines are in
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return pid


def test_the_dump_merges_every_ring_in_time_order_dead_children_included(tmp_path, recorder):
    ring = shared_ring(8192)
    pid = _fork_and_kill(ring, ["first", "second"])
    RECORDER.add(5, "MAIN", "the supervisor's")
    children = {"ring": _Child("coroproc: ring", ring), "cpg": _Child("coroproc: cpg"),
                "cmap": _Child("coroproc: cmap", bytearray(8192))}   # not a ring: left out
    log = _Log()
    path = FlightData(children, log, str(tmp_path)).write()
    rows = _walk(open(tmp_path / "fdata", "rb").read())
    assert [(r[2], r[1], r[4]) for r in rows] == [
        ("coroproc: ring", pid, "[TOTEM ] first"), ("coroproc: ring", pid, "[TOTEM ] second"),
        ("coroproc: supervisor", os.getpid(), "[MAIN  ] the supervisor's")]
    assert os.readlink(tmp_path / "fdata") == path
    assert os.path.basename(path).startswith("fdata-")
    assert log.lines == [("info", f"Flight data of 3 log lines written to {path}")]


def test_an_unwritable_state_dir_is_logged_not_raised(tmp_path, recorder):
    log = _Log()
    assert FlightData({}, log, str(tmp_path / "missing")).write() is None
    assert log.lines[0][0] == "error" and "Can't store blackbox file in" in log.lines[0][1]


def test_a_child_that_dies_leaves_its_lines_and_traceback_to_the_crash_dump(tmp_path):
    """As Corosync's SIGSEGV handler writes the blackbox: a forked child (children.spawn,
    the real fork) logs, then raises; the traceback goes to its ring at crit, and the
    supervisor's crash dump has it. A second crash within CRASH_DUMP_GAP_S writes none."""
    from coroproc.supervisor import children as C

    def target():
        Log(LogSettings(to_stderr=False)).notice("CPG", "about to fail")
        raise RuntimeError("engine bug")

    child = C.Child("cpg", "coroproc: cpg", target, log_ring=shared_ring(65536))
    pid = C.spawn(child)
    _pid, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 1
    log = _Log()
    flight = FlightData({"cpg": child}, log, str(tmp_path))
    flight.crashed("coroproc: cpg", "exited with status 1", 100.0)
    rows = [r for r in _walk(open(tmp_path / "fdata", "rb").read()) if r[2] == "coroproc: cpg"]
    texts = [r[4] for r in rows]
    assert texts[0] == "[CPG   ] about to fail" and texts[-1] == "[MAIN  ] RuntimeError: engine bug"
    assert {r[1] for r in rows} == {pid} and rows[-1][0] == 2     # crit, as the end it is
    assert log.lines[-1][1].endswith("(coroproc: cpg exited with status 1)")
    flight.crashed("coroproc: cpg", "killed by SIGKILL", 100.0 + CRASH_DUMP_GAP_S - 0.1)
    assert flight.dumps == 1
    flight.crashed("coroproc: cpg", "killed by SIGKILL", 100.0 + CRASH_DUMP_GAP_S)
    assert flight.dumps == 2
