"""fragments/reassembly.py: random frames cut at random MTUs, delivered reordered, lost,
duplicated; runs of fragments (the UDP carrier's GRO trains) against single ones."""
import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from coroproc.netproc.fragments.reassembly import Reassembler
from coroproc.netproc.fragments.wire import (FRAG_HEADER_BYTES, chunk_bytes_for, frag_count_for,
                                             unpack_header, write_fragment)

MAX_FRAME = 65000


def fragments(frame: bytes, ud_mtu: int, src: int, frame_id: int) -> list[bytes]:
    chunk = chunk_bytes_for(ud_mtu)
    count = frag_count_for(len(frame), chunk)
    out = []
    for i in range(count):
        b = bytearray(ud_mtu)
        n = write_fragment(b, 0, frame, src, frame_id, i, count, chunk)
        out.append(bytes(b[:n]))
    return out


def feed(r: Reassembler, msg: bytes, now_ms: int, qpn: int = 0x11):
    src, fid, idx, cnt, chunk, total = unpack_header(msg, 0, len(msg))
    return r.add((src, qpn, fid), idx, cnt, chunk, total, msg[FRAG_HEADER_BYTES:], now_ms)


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, MAX_FRAME), min_size=1, max_size=6),
       ud_mtu=st.sampled_from([256, 512, 1024, 2048, 4096]),
       seed=st.integers(0, 2**32 - 1), loss=st.sampled_from([0.0, 0.1, 0.5]),
       dup=st.sampled_from([0.0, 0.2]))
def test_reorder_loss_duplicates(sizes, ud_mtu, seed, loss, dup):
    rng = random.Random(seed)
    frames = {fid: rng.randbytes(n) for fid, n in enumerate(sizes)}
    msgs, lost = [], set()
    for fid, frame in frames.items():
        for m in fragments(frame, ud_mtu, src=3, frame_id=fid):
            if rng.random() < loss:
                lost.add(fid)
                continue
            msgs.append(m)
            if rng.random() < dup:
                msgs.append(m)
    rng.shuffle(msgs)
    r = Reassembler(capacity_entries=len(frames), max_frame_bytes=MAX_FRAME, timeout_ms=1000)
    got = {}
    for m in msgs:
        out = feed(r, m, now_ms=0)
        if out is not None:
            fid = unpack_header(m, 0, len(m))[1]
            assert fid not in got, "a frame completed twice"
            got[fid] = bytes(out)
    complete = {fid for fid in frames if fid not in lost}
    assert got == {fid: frames[fid] for fid in complete}
    # Every frame that lost a fragment (and had others arrive) is still waiting; it ages out.
    waiting = r.in_progress()
    assert waiting <= len(lost)
    assert r.expire(now_ms=1001) == waiting and r.in_progress() == 0
    c = r.counters()
    assert c["reasm_timed_out"] == waiting and c["reasm_evicted"] == 0
    assert c["reasm_frames"] == len(complete)


def test_single_fragment_frames_also_complete_through_add():
    r = Reassembler(2, 1000, 100)
    [m] = fragments(b"hello", 256, src=1, frame_id=5)
    assert bytes(feed(r, m, 0)) == b"hello"
    assert feed(r, m, 0) is None and r.counters()["reasm_duplicate"] == 1


def test_full_table_evicts_the_oldest_and_counts_it():
    r = Reassembler(capacity_entries=2, max_frame_bytes=MAX_FRAME, timeout_ms=10_000)
    a, b, c = (fragments(bytes([i]) * 3000, 1024, src=1, frame_id=i) for i in range(3))
    feed(r, a[0], 0)
    feed(r, b[0], 1)
    feed(r, c[0], 2)                       # no free slot: frame 0 (oldest) goes
    assert r.counters()["reasm_evicted"] == 1 and r.in_progress() == 2
    for m in a[1:]:
        assert feed(r, m, 3) is None       # frame 0 restarted, now missing fragment 0
    assert r.counters()["reasm_evicted"] == 2       # ...which pushed frame 1 out
    for m in c[1:]:
        out = feed(r, m, 4)
    assert bytes(out) == bytes([2]) * 3000


def test_timeout_drops_only_old_frames():
    r = Reassembler(4, MAX_FRAME, timeout_ms=100)
    old = fragments(b"o" * 2000, 512, 1, 1)
    new = fragments(b"n" * 2000, 512, 1, 2)
    feed(r, old[0], now_ms=0)
    feed(r, new[0], now_ms=60)
    assert r.expire(now_ms=150) == 1 and r.in_progress() == 1
    for m in new[1:]:
        out = feed(r, m, now_ms=150)
    assert bytes(out) == b"n" * 2000
    assert r.counters()["reasm_timed_out"] == 1


def test_inconsistent_and_oversize_fragments_are_counted():
    r = Reassembler(4, max_frame_bytes=3000, timeout_ms=100)
    first = fragments(b"a" * 2000, 512, 1, 1)
    other = fragments(b"a" * 2500, 512, 1, 1)      # same key, different frame size
    feed(r, first[0], 0)
    assert feed(r, other[1], 0) is None
    assert r.counters()["reasm_inconsistent"] == 1
    big = fragments(b"b" * 4000, 512, 1, 2)
    assert feed(r, big[0], 0) is None and r.counters()["reasm_oversize"] == 1


def test_sources_do_not_mix():
    r = Reassembler(4, MAX_FRAME, 100)
    x = fragments(b"x" * 900, 512, src=1, frame_id=7)       # two fragments each
    y = fragments(b"y" * 900, 512, src=2, frame_id=7)
    assert feed(r, x[0], 0) is None and feed(r, y[1], 0) is None
    assert bytes(feed(r, x[1], 0)) == b"x" * 900
    assert bytes(feed(r, y[0], 0)) == b"y" * 900
    # Same nodeid, new QPN (a restarted peer): a separate frame.
    assert feed(r, x[0], 0, qpn=0x22) is None and r.in_progress() == 1


def run_args(msgs: list[bytes], first: int, n: int):
    """add_run's data arguments for fragments first..first+n-1 (what the UDP carrier
    passes for a GRO train): the full ones as rows, the last as tail."""
    body = [m[FRAG_HEADER_BYTES:] for m in msgs[first:first + n]]
    rows = np.frombuffer(b"".join(body[:-1]), np.uint8).reshape(n - 1, -1)
    return rows, body[-1]


@settings(max_examples=40, deadline=None)
@given(size=st.integers(3 * 1380, MAX_FRAME), seed=st.integers(0, 2**32 - 1))
def test_runs_and_single_fragments_build_the_same_frame(size, seed):
    rng = random.Random(seed)
    frame = rng.randbytes(size)
    msgs = fragments(frame, 1400, src=2, frame_id=5)
    count = len(msgs)
    first = rng.randrange(0, count - 1)
    n = rng.randrange(2, count - first + 1)
    r = Reassembler(2, MAX_FRAME, 1000)
    singles = [i for i in range(count) if not first <= i < first + n]
    rng.shuffle(singles)
    _, _, _, cnt, chunk, total = unpack_header(msgs[0], 0, len(msgs[0]))
    out = None
    for i in singles[:len(singles) // 2]:
        assert feed(r, msgs[i], 0, qpn=0) is None
    rows, tail = run_args(msgs, first, n)
    out = r.add_run((2, 0, 5), first, cnt, chunk, total, rows, tail, 0)
    for i in singles[len(singles) // 2:]:
        assert out is None
        out = feed(r, msgs[i], 0, qpn=0)
    assert out is not None and bytes(out) == frame
    assert r.reasm_frames == 1 and r.in_progress() == 0


def test_a_run_over_fragments_already_held_is_a_duplicate():
    frame = random.Random(1).randbytes(10 * 1380)
    msgs = fragments(frame, 1400, src=2, frame_id=5)
    r = Reassembler(2, MAX_FRAME, 1000)
    _, _, _, cnt, chunk, total = unpack_header(msgs[0], 0, len(msgs[0]))
    assert feed(r, msgs[4], 0, qpn=0) is None
    rows, tail = run_args(msgs, 2, 4)                    # 2..5 overlaps 4
    assert r.add_run((2, 0, 5), 2, cnt, chunk, total, rows, tail, 0) is None
    assert r.reasm_duplicate == 1
    rows, tail = run_args(msgs, 0, 4)                    # 0..3: fine
    assert r.add_run((2, 0, 5), 0, cnt, chunk, total, rows, tail, 0) is None
    rows, tail = run_args(msgs, 5, 5)                    # 5..9 completes it
    out = r.add_run((2, 0, 5), 5, cnt, chunk, total, rows, tail, 0)
    assert out is not None and bytes(out) == frame
