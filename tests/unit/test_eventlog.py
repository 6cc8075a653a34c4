"""The event log read while it is written, and after a writer was killed mid-line."""
from __future__ import annotations

import multiprocessing as mp

import orjson
from hypothesis import given
from hypothesis import strategies as st

from coroproc.eventlog import append_event, open_event_log, parse_event_lines, read_event_log

EVENTS = st.lists(st.fixed_dictionaries({"ev": st.sampled_from(["send", "deliver", "install"]),
                                         "node": st.integers(1, 64),
                                         "pad": st.text(max_size=40)}), max_size=12)


def _log_bytes(events: list[dict]) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in events)


@given(EVENTS, st.data())
def test_a_read_mid_write_returns_exactly_the_whole_lines(events, data):
    raw = _log_bytes(events)
    cut = data.draw(st.integers(0, len(raw)))
    whole = raw[:cut].count(b"\n")
    assert parse_event_lines(raw[:cut]) == events[:whole]


@given(EVENTS, EVENTS, st.data())
def test_a_line_cut_by_a_kill_costs_that_line_only(tmp_path_factory, before, after, data):
    path = str(tmp_path_factory.mktemp("ev") / "ev.jsonl")
    victim = orjson.dumps({"ev": "deliver", "node": 9, "id": [9, 123456]})
    cut = data.draw(st.integers(1, len(victim) - 1))
    with open(path, "wb") as f:
        f.write(_log_bytes(before) + victim[:cut])
    assert read_event_log(path) == before          # the cut line is not an event yet
    with open_event_log(path) as f:                # the restarted writer
        f.write(_log_bytes(after))
    append_event(path, {"ev": "crash", "node": 9})  # and the harness
    assert read_event_log(path) == before + after + [{"ev": "crash", "node": 9}]


def test_a_writer_on_a_whole_log_adds_no_blank_line(tmp_path):
    path = str(tmp_path / "ev.jsonl")
    append_event(path, {"ev": "send"})
    append_event(path, {"ev": "crash"})
    with open(path, "rb") as f:
        assert f.read() == b'{"ev":"send"}\n{"ev":"crash"}\n'
    assert read_event_log(str(tmp_path / "absent.jsonl")) == []


def _writer(path: str, count: int) -> None:
    with open_event_log(path) as f:
        for seq in range(count):
            # lines of varying length, so writes keep straddling page boundaries
            f.write(orjson.dumps({"ev": "send", "id": [1, seq], "pad": "x" * (seq % 997)}) + b"\n")


def test_reads_racing_a_live_writer_see_a_growing_prefix(tmp_path):
    path = str(tmp_path / "ev.jsonl")
    count = 4000
    writer = mp.get_context("spawn").Process(target=_writer, args=(path, count))
    writer.start()
    seen = 0
    while writer.is_alive() or seen < count:
        events = read_event_log(path)
        assert [e["id"][1] for e in events] == list(range(len(events)))
        assert len(events) >= seen
        seen = len(events)
        if not writer.is_alive() and seen < count:
            break
    writer.join()
    assert writer.exitcode == 0
    assert len(read_event_log(path)) == count


def test_the_restarted_load_engine_reads_past_a_send_line_a_kill_cut(tmp_path):
    """The engine continues its seqs from the log's last whole `send` of its node; a cut
    `send` line at the end (a kill mid-write) is not one, and must not stop the start."""
    from coroproc.engineprocs.loadgen import _last_event, _last_sent_seq
    path = tmp_path / "ev.jsonl"
    whole = [{"ev": "send", "id": [1, 41], "node": 1}, {"ev": "send", "id": [2, 9], "node": 2},
             {"ev": "deliver", "id": [1, 41], "node": 1}]
    cut = orjson.dumps({"ev": "send", "id": [1, 42], "node": 1})[:-7]
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in whole) + cut)
    assert _last_sent_seq(str(path), 1) == 41
    assert _last_sent_seq(str(path), 2) == 9
    assert _last_event(str(path)) is None          # the cut line: no event to continue from
    with open_event_log(str(path)) as f:           # what the engine then opens and writes
        f.write(orjson.dumps({"ev": "restart", "node": 1}) + b"\n")
    assert _last_event(str(path)) == "restart"
    assert [e["ev"] for e in read_event_log(str(path))] == ["send", "send", "deliver", "restart"]
