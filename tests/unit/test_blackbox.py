"""The flight recorder (coroproc/blackbox/recorder.py), the libqb file it is dumped to
(qbfile.py, read back by the real qb-blackbox when it is installed) and the supervisor's
gather (supervisor/flight_data.py). The dump on a live node through corosync-blackbox
is tests/interop/test_blackbox.py."""
from __future__ import annotations

import os
import shutil
import struct
import subprocess

import pytest

from coroproc.blackbox import qbfile
from coroproc.blackbox.recorder import RECORD_OVERHEAD_BYTES, RECORDER, Recorder
from coroproc.logsys import Log, LogSettings
from coroproc.supervisor.flight_data import FlightData


def test_the_recorder_keeps_the_newest_lines_within_its_budget():
    r = Recorder(budget_bytes=10 * (RECORD_OVERHEAD_BYTES + 10))
    for i in range(25):
        r.add(6, "TOTEM", f"line {i:05d}")           # 10 characters each
    rows = r.export()
    assert [row[3] for row in rows] == [f"line {i:05d}" for i in range(15, 25)]
    assert r.dropped == 15 and all(row[4] == os.getpid() for row in rows)
    assert [row[0] for row in rows] == sorted(row[0] for row in rows)
    r.enabled = False
    r.add(3, "MAIN", "not kept")
    assert len(r.export()) == 10


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
    def __init__(self, title):
        self.title, self.alive, self.hello = title, True, True


class _Log:
    def __init__(self):
        self.lines = []

    def warning(self, subsys, msg): self.lines.append(("warning", msg))
    def info(self, subsys, msg): self.lines.append(("info", msg))
    def error(self, subsys, msg): self.lines.append(("error", msg))


def test_the_gather_merges_in_time_order_and_does_not_wait_for_a_silent_child(tmp_path,
                                                                             recorder):
    children = {"ring": _Child("coroproc: ring"), "cpg": _Child("coroproc: cpg")}
    asked, done, log = [], [], _Log()
    flight = FlightData(children, lambda role, msg: asked.append(role) or True, log,
                        str(tmp_path))
    flight.start(100.0, done.append)
    flight.start(100.1, done.append)                   # absorbed by the dump on its way
    assert sorted(asked) == ["cpg", "ring"] and flight.due_s == 101.0
    flight.answered("ring", [[30, 6, "TOTEM", "second", 11], [10, 5, "TOTEM", "first", 11],
                             "not a row"])
    flight.tick(100.5)
    assert done == []
    flight.tick(101.0)                                 # cpg never answered
    assert done == [True, True] and flight.due_s is None
    assert ("warning", "Flight data: no answer from cpg within 1 s; writing the rest") \
        in log.lines
    rows = _walk(open(tmp_path / "fdata", "rb").read())
    assert [(r[2], r[4]) for r in rows] == [("coroproc: ring", "[TOTEM ] first"),
                                            ("coroproc: ring", "[TOTEM ] second")]
    assert os.path.basename(os.readlink(tmp_path / "fdata")).startswith("fdata-")


def test_a_child_that_dies_of_an_exception_writes_its_own_flight_data(tmp_path, capfd):
    """As Corosync's SIGSEGV handler writes the blackbox: a forked child (children.spawn,
    the real fork) logs, then raises; its lines and the traceback are in the file."""
    from coroproc.supervisor import children as C

    def target():
        Log(LogSettings(to_stderr=False)).notice("CPG", "about to fail")
        raise RuntimeError("engine bug")

    child = C.Child("cpg", "coroproc: cpg", target, fdata_dir=str(tmp_path))
    pid = C.spawn(child)
    _pid, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 1
    rows = _walk(open(tmp_path / "fdata", "rb").read())
    texts = [r[4] for r in rows]
    assert texts[0] == "[CPG   ] about to fail" and texts[-1] == "[MAIN  ] RuntimeError: engine bug"
    assert {r[2] for r in rows} == {"coroproc: cpg"} and {r[1] for r in rows} == {pid}
    assert rows[-1][0] == 2                                   # crit, as the end it is
    err = capfd.readouterr().err
    assert "RuntimeError: engine bug" in err and "flight data written to" in err
