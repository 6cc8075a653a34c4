"""The submit ring's room for one message is its largest contiguous free run, not its free
total: a record never wraps, so 1.5 MiB free in two pieces does not take 1 MiB."""
from __future__ import annotations

import os

import numpy as np

from coroproc.engineprocs.host import (SUBMIT_MARGIN_BYTES, contiguous_room_bytes,
                                      roomy_used_bytes, submit_room_bytes)
from coroproc.shm.kernels import ring_head, ring_release, ring_reserve, ring_tail
from coroproc.shm.ring import ShmRing

CAPACITY = 1 << 16


def test_room_is_the_largest_contiguous_run():
    assert contiguous_room_bytes(0, 0, CAPACITY) == CAPACITY
    # head 3/4 into the buffer, tail 1/4: 1/4 free to the end, 1/4 free from the start
    assert contiguous_room_bytes(48 << 10, 16 << 10, CAPACITY) == 16 << 10
    # head 7/8 in, tail 3/4 in: 1/8 to the end, 3/4 from the start after wrapping
    assert contiguous_room_bytes(56 << 10, 48 << 10, CAPACITY) == 48 << 10


def test_a_real_ring_takes_what_the_room_says_and_not_more():
    ring = ShmRing.create(f"/coroproc.test-room-{os.getpid()}", CAPACITY)
    try:
        chunk = np.zeros(8 << 10, np.uint8)
        for _ in range(6):                    # head at ~48 KiB
            assert ring.push(1, chunk)
        pos = int(ring_tail(ring.hdr))        # free the first two records: tail ~16 KiB
        from coroproc.shm.kernels import ring_peek
        for _ in range(2):
            pos = ring_peek(ring.hdr, ring.data, pos)[5]
        ring_release(ring.hdr, pos)
        head, tail = int(ring_head(ring.hdr)), int(ring_tail(ring.hdr))
        free = CAPACITY - (head - tail)
        room = contiguous_room_bytes(head, tail, CAPACITY) - SUBMIT_MARGIN_BYTES - 8
        assert room < free - (8 << 10)        # the free total overstates it
        assert ring_reserve(ring.hdr, ring.data, room) >= 0
        assert ring_reserve(ring.hdr, ring.data, free - 64) < 0
    finally:
        ring.unlink()
        ring.close()


def test_the_roomy_shortcut_agrees_with_the_room_wherever_the_cursors_are():
    """submit_space_bytes answers max_message_bytes without arithmetic while at most
    roomy_used_bytes are used: the full computation must say the same there, for every
    wrap position (and it must not hold just above the bound, or the bound is loose)."""
    cap, max_msg = 4 << 20, 1 << 20
    bound = roomy_used_bytes(cap, max_msg)
    assert 0 < bound < cap
    rng = np.random.default_rng(7)
    for _ in range(20_000):
        tail = int(rng.integers(0, 1 << 40))
        used = int(rng.integers(0, bound + 1))
        for sync in (False, True):
            assert submit_room_bytes(tail + used, tail, cap, max_msg, sync) == max_msg
    used = bound + 4096       # just above the bound, some wrap gives less than the maximum
    assert any(submit_room_bytes(tail + used, tail, cap, max_msg, False) < max_msg
               for tail in range(0, cap, 4096))
