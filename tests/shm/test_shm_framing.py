"""Record framing of one ring in one process: wrap-around with PAD, back-pressure,
refusals, in-place reserve/commit, and a Hypothesis model check of the framing rules.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shm_helpers import unique_name, unlink_quietly

from coroproc.shm import ShmError, ShmRing
from coroproc.shm import layout as L
from coroproc.shm.kernels import PEEK_ROW, ring_peek_batch
from coroproc.shm.ring import (
    PEEK_CORRUPT,
    PEEK_EMPTY,
    PEEK_RECORD,
    PUSH_OK,
    PUSH_TOO_LARGE,
    RESERVE_TOO_LARGE,
    ring_commit,
    ring_head,
    ring_peek,
    ring_push,
    ring_release,
    ring_reserve,
    ring_tail,
)

CAP = 4096


@pytest.fixture
def ring(ring_name):
    r = ShmRing.create(ring_name, CAP)
    yield r
    r.close()


def _payload(i, n):
    return bytes((i * 31 + k) & 0xFF for k in range(n))


def test_wraparound_mixed_sizes_with_pad(ring):
    sizes = [0, 1, 7, 8, 9, 100, 500, 1000, 2000 - 8, 13, 64]
    pushed, popped, pads_seen = [], [], 0
    for i in range(600):
        n = sizes[i % len(sizes)]
        rec = (1 + i % 7, i & 0xFFFF, _payload(i, n))
        head_before = ring_head(ring.hdr)
        while not ring.push(rec[0], rec[2], flags=rec[1]):
            popped += ring.pop_batch(3)
        used = ring_head(ring.hdr) - head_before
        if used != L.record_bytes(n):
            # a PAD filled the rest of the data area and the record starts at offset 0
            pads_seen += 1
            assert ring_head(ring.hdr) % CAP == L.record_bytes(n)
        pushed.append(rec)
    popped += ring.pop_batch(10_000)
    assert popped == pushed
    assert pads_seen > 0, "the size mix should have forced PAD records"
    c = ring.counters()
    assert c["records_pushed"] == c["records_popped"] == 600
    assert c["head"] == c["tail"] > 3 * CAP  # wrapped several times


def test_full_ring_refuses_and_counts_without_overwriting(ring):
    n_pushed = 0
    while ring.push(5, _payload(n_pushed, 100)):
        n_pushed += 1
    assert n_pushed == CAP // L.record_bytes(100)
    head_when_full = ring_head(ring.hdr)
    assert ring.push(5, _payload(99, 100)) is False
    assert ring_head(ring.hdr) == head_when_full  # nothing written, nothing overwritten
    c = ring.counters()
    assert c["push_full"] == 2  # the push that ended the loop, and the one above
    got = ring.pop_batch(10_000)
    assert [p for _, _, p in got[:n_pushed]] == [_payload(i, 100) for i in range(n_pushed)]
    assert ring.counters()["push_full"] == c["push_full"]  # popping does not count


def test_push_full_counts_each_refusal(ring):
    while ring.push(1, bytes(1000)):
        pass
    before = ring.counters()["push_full"]
    for _ in range(5):
        assert ring.push(1, bytes(1000)) is False
    assert ring.counters()["push_full"] == before + 5


def test_oversized_record_is_refused_not_retried(ring):
    limit = ring.max_payload_bytes
    assert limit == CAP // 2 - 8
    assert ring.push(1, bytes(limit))  # the largest allowed fits into an empty ring
    ring.pop_batch()
    with pytest.raises(ShmError, match=r"payload <= 2040 bytes"):
        ring.push(1, bytes(limit + 1))
    src = np.zeros(limit + 1, np.uint8)
    assert ring_push(ring.hdr, ring.data, 1, 0, src, 0, limit + 1) == PUSH_TOO_LARGE
    assert ring_reserve(ring.hdr, ring.data, limit + 1) == RESERVE_TOO_LARGE
    assert ring.counters()["push_full"] == 0


@pytest.mark.parametrize("rtype,flags", [(0, 0), (65536, 0), (1, -1), (1, 65536)])
def test_reserved_or_out_of_range_tags_are_refused(ring, rtype, flags):
    with pytest.raises(ShmError, match="rtype 1..65535"):
        ring.push(rtype, b"abc", flags=flags)
    assert ring.empty()


def test_largest_record_fits_at_every_offset_of_an_empty_ring(ring):
    limit = ring.max_payload_bytes
    for step in range(CAP // 8):
        assert ring.push(2, bytes(limit)), f"refused at head offset {ring_head(ring.hdr) % CAP}"
        assert len(ring.pop_batch()) == 1
        assert ring.push(3, b"") and len(ring.pop_batch()) == 1  # shift head by 8 bytes


def test_reserve_commit_in_place(ring):
    for i in range(50):
        n = 300 + i
        off = ring_reserve(ring.hdr, ring.data, n)
        if off < 0:
            ring.pop_batch()
            off = ring_reserve(ring.hdr, ring.data, n)
        ring.data[off : off + n] = np.frombuffer(_payload(i, n), np.uint8)
        assert ring_commit(ring.hdr, ring.data, 9, i, n) == PUSH_OK
        ((rtype, flags, payload),) = ring.pop_batch()
        assert (rtype, flags, payload) == (9, i, _payload(i, n))


def test_peek_does_not_consume_and_release_does(ring):
    ring.push(4, b"hello")
    ring.push(5, b"world!")
    pos = ring_tail(ring.hdr)
    st1, off1, n1, t1, _f, pos = ring_peek(ring.hdr, ring.data, pos)
    st2, off2, n2, t2, _f, pos = ring_peek(ring.hdr, ring.data, pos)
    assert (st1, t1, ring.data[off1 : off1 + n1].tobytes()) == (PEEK_RECORD, 4, b"hello")
    assert (st2, t2, ring.data[off2 : off2 + n2].tobytes()) == (PEEK_RECORD, 5, b"world!")
    assert ring_peek(ring.hdr, ring.data, pos)[0] == PEEK_EMPTY
    assert not ring.empty() and ring_tail(ring.hdr) == 0
    ring_release(ring.hdr, pos)
    assert ring.empty()


def _peek_all(ring, pos):
    """Every record from pos, one ring_peek at a time: [(off, len, rtype, flags, next)]."""
    out = []
    while True:
        st_, off, n, rtype, flags, nxt = ring_peek(ring.hdr, ring.data, pos)
        if st_ != PEEK_RECORD:
            return out
        out.append((off, n, rtype, flags, nxt))
        pos = nxt


def test_batch_peek_finds_what_single_peeks_find_across_pads_and_full_rows(ring):
    """ring_peek_batch (one call per batch, the engine host's delivery loop) agrees with
    ring_peek record by record, skips PAD records, and stops with PEEK_RECORD when its
    rows are full and PEEK_EMPTY at head; nothing is consumed."""
    sizes = [1, 700, 8, 1000, 13, 64, 2000 - 8]
    pos = ring_tail(ring.hdr)
    for i in range(200):
        while not ring.push(1 + i % 7, _payload(i, sizes[i % len(sizes)]), flags=i & 0xFF):
            popped = ring.pop_batch(2)
            assert popped
            pos = ring_tail(ring.hdr)
        want = _peek_all(ring, pos)
        rows = np.zeros((3, PEEK_ROW), np.int64)
        got, at = [], pos
        while True:
            n, status, at = ring_peek_batch(ring.hdr, ring.data, at, rows)
            got += [tuple(r) for r in rows[:n].tolist()]
            if status == PEEK_EMPTY:
                break
            assert status == PEEK_RECORD and n == 3
        assert got == want and at == ring_head(ring.hdr)
    assert ring.counters()["records_popped"] > 0        # the pushes went round the ring


def test_batch_peek_stops_at_broken_framing_with_the_good_records_before_it(ring):
    ring.push(4, b"hello")
    ring.push(5, b"world!")
    good_end = _peek_all(ring, 0)[0][4]                  # where the second record starts
    ring.data[good_end:good_end + 4] = np.frombuffer((CAP * 2).to_bytes(4, "little"), np.uint8)
    rows = np.zeros((8, PEEK_ROW), np.int64)
    n, status, at = ring_peek_batch(ring.hdr, ring.data, 0, rows)
    assert (n, status, at) == (1, PEEK_CORRUPT, good_end)
    off, ln, rtype = rows[0, 0], rows[0, 1], rows[0, 2]
    assert (rtype, ring.data[off:off + ln].tobytes()) == (4, b"hello")


# ---- model check ------------------------------------------------------------------


class RingModel:
    """An independent statement of the framing rules, in plain Python."""

    def __init__(self, cap):
        self.cap, self.head, self.tail, self.records = cap, 0, 0, []

    def push(self, n):
        need = 8 + (n + 7) // 8 * 8
        if need > self.cap // 2:
            return "too_large"
        free = self.cap - (self.head - self.tail)
        contig = self.cap - self.head % self.cap
        total = need if need <= contig else contig + need
        if total > free:
            return "full"
        self.head += total
        self.records.append((self.head, n))
        return "ok"

    def pop(self, k):
        out, self.records = self.records[:k], self.records[k:]
        if out:
            self.tail = out[-1][0]
        return [n for _, n in out]


ops = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(0, 2100)),
        st.tuples(st.just("push"), st.integers(0, 64)),
        st.tuples(st.just("pop"), st.integers(1, 8)),
    ),
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(ops=ops)
def test_framing_matches_model(ops):
    name = unique_name("h")
    ring = ShmRing.create(name, CAP)
    try:
        model, seq = RingModel(CAP), 0
        expect_payloads = []
        for op, arg in ops:
            if op == "push":
                want = model.push(arg)
                payload = _payload(seq, arg)
                if want == "too_large":
                    with pytest.raises(ShmError):
                        ring.push(1 + seq % 65535, payload)
                    continue
                assert ring.push(1 + seq % 65535, payload) == (want == "ok")
                if want == "ok":
                    expect_payloads.append((1 + seq % 65535, payload))
                seq += 1
            else:
                lens = model.pop(arg)
                got = ring.pop_batch(arg)
                assert [len(p) for _, _, p in got] == lens
                assert [(t, p) for t, _, p in got] == expect_payloads[: len(got)]
                del expect_payloads[: len(got)]
            assert (ring_head(ring.hdr), ring_tail(ring.hdr)) == (model.head, model.tail)
    finally:
        ring.close()
        unlink_quietly(name)
