"""RingWaker: an mcast that finds the ring process asleep owes its wake-up; the next frame
of another type, a quarter ring of owed bytes, or the time bound pays it. Real shm ring,
real eventfd: the eventfd's counter is what the ring process would have been woken by."""
import os
import time
import uuid

import numpy as np
import posix_ipc
import pytest

from coroproc.netproc.ringwake import RingWaker
from coroproc.ringproc import wire
from coroproc.shm.kernels import ring_cancel_sleep, ring_prepare_sleep
from coroproc.shm.ring import PUSH_OK, PUSH_OK_WAKE, ShmRing, ring_push

CAPACITY_BYTES = 64 * 1024
FRAME_BYTES = 200


@pytest.fixture
def ring():
    name = f"/coroproc.rw{uuid.uuid4().hex[:12]}.1.rx"
    fd = os.eventfd(0, os.EFD_NONBLOCK)
    r = ShmRing.create(name, CAPACITY_BYTES, wake_fd=fd)
    yield r
    r.close()
    os.close(fd)
    try:
        posix_ipc.unlink_shared_memory(name)
    except posix_ipc.ExistentialError:
        pass


def frame(msg_type):
    f = np.zeros(FRAME_BYTES, np.uint8)
    f[wire.O_TYPE] = msg_type
    return f


def push(ring, waker, msg_type):
    f = frame(msg_type)
    rc = ring_push(ring.hdr, ring.data, 1, 0, f, 0, FRAME_BYTES)
    assert rc in (PUSH_OK, PUSH_OK_WAKE)
    waker.pushed(rc, f, FRAME_BYTES)
    return rc


def wakes(ring):
    try:
        return os.eventfd_read(ring.wake_fd)
    except BlockingIOError:
        return 0


def busy_waker(ring, defer_us):
    """A waker whose link has been bringing 4 datagrams per wake-up."""
    waker = RingWaker(ring, defer_us)
    for _ in range(40):
        waker.note_drain(4)
    return waker


def consume_and_sleep(ring):
    """What the ring process does: take everything, raise its sleeping flag."""
    while ring.pop_batch():
        pass
    assert ring_prepare_sleep(ring.hdr) == 1


def test_the_token_behind_the_mcasts_pays_their_wake_up(ring):
    waker = busy_waker(ring, defer_us=10_000_000)
    consume_and_sleep(ring)
    assert push(ring, waker, wire.T_MCAST) == PUSH_OK_WAKE
    assert push(ring, waker, wire.T_MCAST) == PUSH_OK    # the flag is down: owed, not asked
    assert wakes(ring) == 0 and waker.owed_since_ns
    push(ring, waker, wire.T_ORF_TOKEN)
    assert wakes(ring) == 1 and not waker.owed_since_ns
    assert waker.counters() == {"ring_wakes_deferred": 1, "ring_wakes_paid_late": 0}


@pytest.mark.parametrize("msg_type", [wire.T_ORF_TOKEN, wire.T_MERGE_DETECT, wire.T_MEMB_JOIN,
                                      wire.T_COMMIT_TOKEN, wire.T_TOKEN_HOLD_CANCEL])
def test_any_frame_but_an_mcast_wakes_at_once(ring, msg_type):
    waker = busy_waker(ring, defer_us=10_000_000)
    consume_and_sleep(ring)
    push(ring, waker, msg_type)
    assert wakes(ring) == 1 and not waker.owed_since_ns


def test_an_awake_ring_process_is_not_woken(ring):
    waker = busy_waker(ring, defer_us=10_000_000)
    ring_cancel_sleep(ring.hdr)
    push(ring, waker, wire.T_MCAST)
    push(ring, waker, wire.T_ORF_TOKEN)
    assert wakes(ring) == 0 and not waker.owed_since_ns


def test_a_quarter_ring_of_owed_bytes_pays(ring):
    waker = busy_waker(ring, defer_us=10_000_000)
    consume_and_sleep(ring)
    owed_max_frames = (CAPACITY_BYTES // 4) // FRAME_BYTES
    for _ in range(owed_max_frames):
        push(ring, waker, wire.T_MCAST)
    assert wakes(ring) == 0
    push(ring, waker, wire.T_MCAST)
    assert wakes(ring) == 1 and not waker.owed_since_ns


def test_an_owed_wake_up_falls_due_and_bounds_the_link_process_sleep(ring):
    waker = busy_waker(ring, defer_us=50_000)
    assert waker.settle(1.0) == 1.0                      # nothing owed: sleep as asked
    consume_and_sleep(ring)
    push(ring, waker, wire.T_MCAST)
    assert 0 < waker.settle(1.0) <= 0.05                 # sleep no longer than the debt
    assert wakes(ring) == 0
    deadline = time.monotonic() + 0.05
    while time.monotonic() < deadline:
        time.sleep(0.01)
    assert waker.settle(1.0) == 1.0 and wakes(ring) == 1
    assert waker.counters()["ring_wakes_paid_late"] == 1


def test_no_deferral_when_the_bound_is_zero(ring):
    waker = busy_waker(ring, defer_us=0)
    consume_and_sleep(ring)
    push(ring, waker, wire.T_MCAST)
    assert wakes(ring) == 1


def test_a_quiet_link_wakes_for_every_mcast_and_a_busy_one_starts_deferring(ring):
    """One datagram per wake-up (a light load): the receivers' delivery latency is worth
    more than the wake-up; several per wake-up: the wake-up waits for the token."""
    waker = RingWaker(ring, defer_us=10_000_000)
    for _ in range(40):
        waker.note_drain(1)
        waker.note_drain(0)              # a wake-up for the tx ring only: no evidence
    consume_and_sleep(ring)
    push(ring, waker, wire.T_MCAST)
    assert wakes(ring) == 1
    for _ in range(10):
        waker.note_drain(5)
    consume_and_sleep(ring)
    push(ring, waker, wire.T_MCAST)
    assert wakes(ring) == 0 and waker.owed_since_ns
