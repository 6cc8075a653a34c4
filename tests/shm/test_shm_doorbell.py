"""The doorbell: a sleeping consumer is woken by a push from another process; a push
to an awake consumer makes no eventfd write; extra fds wake it too.
"""

import os

import pytest
from numba import njit
from shm_helpers import HANG_GUARD_S, Children

from coroproc.shm import Doorbell, ShmRing
from coroproc.shm import layout as L
from coroproc.shm.atomics import load_acquire


@njit(cache=True)
def _wait_until_sleeping(hdr, max_spins):
    # atomic load: a plain read here would be hoisted out of the loop
    for _ in range(max_spins):
        if load_acquire(hdr, L.W_SLEEPING) == 1:
            return True
    return False


def _push_when_asleep(name, wake_fd):
    ring = ShmRing.attach(name, wake_fd=wake_fd, role="producer")
    hdr = ring.hdr
    assert _wait_until_sleeping(hdr, 1 << 40), "consumer never raised its sleeping flag"
    assert ring.push(7, b"wake up")
    del hdr
    ring.close()


@pytest.fixture
def bell():
    b = Doorbell()
    yield b
    b.close()


def test_sleeping_consumer_is_woken_by_push_from_other_process(ring_name, bell, children):
    ring = ShmRing.create(ring_name, 4096, role="consumer")
    p = children.start(_push_when_asleep, ring_name, bell.fd)
    ready = bell.wait([ring], timeout_s=HANG_GUARD_S)
    assert ready == [bell.fd], "woken by the timeout, not by the push: a lost wake-up"
    children.join_ok(p)
    assert ring.pop_batch() == [(7, 0, b"wake up")]
    c = ring.counters()
    assert c["wakeups_requested"] == 1 and c["sleeping"] == 0
    ring.close()


def test_push_to_awake_consumer_writes_no_eventfd(ring_name, bell):
    ring = ShmRing.create(ring_name, 4096)
    producer = ShmRing.attach(ring_name, wake_fd=bell.fd)
    for i in range(100):
        assert producer.push(1, bytes([i]) * 10)
    assert len(ring.pop_batch()) == 100
    assert ring.counters()["wakeups_requested"] == 0
    with pytest.raises(BlockingIOError):
        os.eventfd_read(bell.fd)  # counter is 0: nobody wrote it
    producer.close()
    ring.close()


def test_wait_returns_at_once_if_a_ring_has_data(ring_name, bell):
    ring = ShmRing.create(ring_name, 4096)
    ring.push(3, b"already here")
    assert bell.wait([ring], timeout_s=HANG_GUARD_S) == [bell.fd]
    c = ring.counters()
    assert c["sleeping"] == 0 and c["wakeups_requested"] == 0
    ring.close()


def test_wait_times_out_empty_and_clears_flags(ring_name, bell):
    ring = ShmRing.create(ring_name, 4096)
    assert bell.wait([ring], timeout_s=0) == []
    assert ring.counters()["sleeping"] == 0
    # a push after the wait must not think the consumer sleeps
    assert ring.push(1, b"x") and ring.counters()["wakeups_requested"] == 0
    ring.close()


def test_extra_fd_wakes_the_consumer(ring_name, bell):
    ring = ShmRing.create(ring_name, 4096)
    r, w = os.pipe()
    try:
        os.write(w, b"!")
        assert bell.wait([ring], timeout_s=HANG_GUARD_S, extra_fds=[r]) == [r]
    finally:
        os.close(r)
        os.close(w)
        ring.close()


def test_ring_then_wait_does_not_sleep(bell):
    bell.ring()
    assert bell.wait([], timeout_s=HANG_GUARD_S) == [bell.fd]
    assert bell.wait([], timeout_s=0) == []  # drained


def _push_stream(name, wake_fd, n):
    ring = ShmRing.attach(name, wake_fd=wake_fd, role="producer")
    for i in range(n):
        while not ring.push(1 + i % 100, i.to_bytes(4, "little")):
            os.sched_yield()
    ring.close()


def test_many_sleeps_and_wakes_lose_nothing(bell):
    """Two rings, one doorbell, producers in two processes; the consumer sleeps whenever
    both rings are empty. Any lost wake-up would leave it asleep with data waiting:
    the guard timeout would fire and the test fail on `ready == []`."""
    from shm_helpers import unique_name, unlink_quietly

    names = [unique_name("a"), unique_name("b")]
    n = 20_000
    rings = [ShmRing.create(nm, 4096, role="consumer") for nm in names]
    try:
        with Children() as kids:
            ps = [kids.start(_push_stream, nm, bell.fd, n) for nm in names]
            got = [[], []]
            while len(got[0]) < n or len(got[1]) < n:
                idle = True
                for k, r in enumerate(rings):
                    batch = r.pop_batch()
                    idle = idle and not batch
                    got[k] += [int.from_bytes(p, "little") for _, _, p in batch]
                if idle:
                    ready = bell.wait(rings, timeout_s=HANG_GUARD_S)
                    assert ready, "slept through pushes: a lost wake-up"
            for p in ps:
                kids.join_ok(p)
        assert got == [list(range(n)), list(range(n))]
        for r in rings:
            c = r.counters()
            assert c["wakeups_requested"] <= c["sleeps"]
    finally:
        for r in rings:
            r.close()
        for nm in names:
            unlink_quietly(nm)


def _adopt_and_wait(fd, name):
    ring = ShmRing.attach(name, role="consumer")
    bell = Doorbell(fd=fd)  # the restarted consumer's view of the inherited eventfd
    try:
        assert bell.wait([ring], timeout_s=HANG_GUARD_S) == [fd]
        assert ring.pop_batch() == [(2, 0, b"for the restarted consumer")]
    finally:
        ring.close()


def test_restarted_consumer_adopts_inherited_eventfd(ring_name, bell, children):
    ring = ShmRing.create(ring_name, 4096)
    producer = ShmRing.attach(ring_name, wake_fd=bell.fd, role="producer")
    p = children.start(_adopt_and_wait, bell.fd, ring_name)
    hdr = ring.hdr
    assert _wait_until_sleeping(hdr, 1 << 40)
    del hdr
    assert producer.push(2, b"for the restarted consumer")
    children.join_ok(p)
    assert ring.counters()["wakeups_requested"] == 1
    producer.close()
    ring.close()
