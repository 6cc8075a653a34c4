"""Producer and consumer in different processes: bulk transfer with checksums, and a
consumer killed with SIGKILL mid-stream that is restarted and resumes at tail.
"""

import mmap
import os
import signal
import struct
import zlib

import numpy as np

from coroproc.shm import Doorbell, ShmRing
from coroproc.shm.ring import PEEK_RECORD, ring_peek, ring_release, ring_tail

N_BULK = 200_000
_HDR = struct.Struct("<QI")  # seq, crc32 of the rest


def _make(seq):
    n = (seq * 7919) % 300  # 0..299 body bytes, so records wrap at many offsets
    body = (seq.to_bytes(8, "little") * (n // 8 + 1))[:n]
    return _HDR.pack(seq, zlib.crc32(body)) + body


def _check(seq_expected, rtype, payload):
    seq, crc = _HDR.unpack_from(payload)
    assert seq == seq_expected, f"expected seq {seq_expected}, got {seq}"
    assert rtype == 1 + seq % 1000
    assert zlib.crc32(payload[_HDR.size :]) == crc, f"checksum mismatch at seq {seq}"


def _produce(name, wake_fd, first, n):
    ring = ShmRing.attach(name, wake_fd=wake_fd, role="producer")
    for seq in range(first, first + n):
        rec = _make(seq)
        while not ring.push(1 + seq % 1000, rec):
            os.sched_yield()  # back-pressure: the consumer is behind
    ring.close()


def test_200k_records_across_processes_in_order_no_loss(ring_name, children):
    bell = Doorbell()
    ring = ShmRing.create(ring_name, 64 * 1024, role="consumer")
    p = children.start(_produce, ring_name, bell.fd, 0, N_BULK)
    seq = 0
    while seq < N_BULK:
        batch = ring.pop_batch(4096)
        if not batch:
            bell.wait([ring], timeout_s=1.0)
            continue
        for rtype, _flags, payload in batch:
            _check(seq, rtype, payload)
            seq += 1
    children.join_ok(p)
    assert ring.pop_batch() == []
    c = ring.counters()
    assert c["records_pushed"] == c["records_popped"] == N_BULK
    assert c["wakeups_requested"] <= c["sleeps"]
    ring.close()
    bell.close()


# ---- SIGKILL and restart -------------------------------------------------------------

N_KILL = 30_000
RELEASE_EVERY = 64


# layout of the shared `marks` words
M_HANDLED = 0  # records the current consumer handled
M_FIRST_SEEN = 1  # first seq the current consumer saw
M_DELIVERIES = 2  # marks[M_DELIVERIES + seq] = times seq was delivered


def _consume_marking(name, marks_mm, until_end):
    """Handle records one by one, releasing every RELEASE_EVERY; mark each delivery.

    until_end=False: run until killed. True: stop after seq N_KILL - 1.
    """
    marks = np.frombuffer(marks_mm, np.int64)
    ring = ShmRing.attach(name, role="consumer")
    hdr, data = ring.hdr, ring.data
    pos = ring_tail(hdr)
    handled = 0
    marks[M_HANDLED] = 0
    while True:
        st, off, n, rtype, _fl, nxt = ring_peek(hdr, data, pos)
        if st != PEEK_RECORD:
            os.sched_yield()
            continue
        payload = data[off : off + n].tobytes()
        seq = _HDR.unpack_from(payload)[0]
        _check(seq, rtype, payload)
        if handled == 0:
            marks[M_FIRST_SEEN] = seq
        marks[M_DELIVERIES + seq] += 1
        handled += 1
        marks[M_HANDLED] = handled
        pos = nxt
        if handled % RELEASE_EVERY == 0 or seq == N_KILL - 1:
            ring_release(hdr, pos)
        if until_end and seq == N_KILL - 1:
            break
        if not until_end and handled == N_KILL // 2:
            # never finish before the parent's SIGKILL (which it sends at >= N_KILL // 3),
            # however the two processes are scheduled
            signal.pause()
    del hdr, data, marks
    ring.close()


def test_consumer_killed_mid_stream_resumes_at_tail(ring_name, children):
    ring = ShmRing.create(ring_name, 16 * 1024)  # small: the producer will block while the consumer is dead
    marks_mm = mmap.mmap(-1, 8 * (N_KILL + 8))
    marks = np.frombuffer(marks_mm, np.int64)
    producer = children.start(_produce, ring_name, None, 0, N_KILL)
    first = children.start(_consume_marking, ring_name, marks_mm, False)

    while marks[M_HANDLED] < N_KILL // 3:  # let it handle a third of the stream, then kill it
        os.sched_yield()
    os.kill(first.pid, signal.SIGKILL)
    first.join()
    assert first.exitcode == -signal.SIGKILL
    tail_at_kill = ring_tail(ring.hdr)
    handled_by_first = int(marks[M_HANDLED])
    assert N_KILL // 3 <= handled_by_first <= N_KILL // 2
    # The first consumer marks a seq delivered, then counts it handled: a SIGKILL between
    # the two stores leaves one more seq marked than counted. What it marked is what the
    # second must redeliver from the last release on.
    marked_by_first = int(np.count_nonzero(marks[M_DELIVERIES : M_DELIVERIES + N_KILL]))
    assert handled_by_first <= marked_by_first <= handled_by_first + 1
    assert (marks[M_DELIVERIES : M_DELIVERIES + marked_by_first] == 1).all()

    second = children.start(_consume_marking, ring_name, marks_mm, True)
    children.join_ok(second)
    children.join_ok(producer)

    deliveries = marks[M_DELIVERIES : M_DELIVERIES + N_KILL]
    assert (deliveries >= 1).all(), f"lost seqs: {np.flatnonzero(deliveries == 0)[:10]}"
    # redelivered = handled by the first consumer but not yet released when it died
    redelivered = np.flatnonzero(deliveries == 2)
    resumed_at = int(marks[M_FIRST_SEEN])
    assert (deliveries <= 2).all()
    assert len(redelivered) == marked_by_first - resumed_at
    # the restart resumed exactly at the last release (killed between handling and
    # releasing a batch means one whole batch is redelivered)
    assert resumed_at % RELEASE_EVERY == 0 and len(redelivered) <= RELEASE_EVERY
    if len(redelivered):
        assert redelivered[0] == resumed_at and redelivered[-1] == marked_by_first - 1
    assert tail_at_kill > 0 and ring.empty()
    c = ring.counters()
    assert c["records_pushed"] == N_KILL
    del marks, deliveries
    marks_mm.close()
    ring.close()
