"""When a link process wakes the ring process for a frame it pushed: the policy of
ringwake.RingWaker (read its docstring for the why) as jitted functions over one int64
array, so the jitted link loop and the Python secure link share one implementation.

`wk` words: see W_*. Times are CLOCK_MONOTONIC ns; owed_since_ns 0 means nothing is owed.
A function that answers 1 means "pay now": the caller writes the ring's eventfd, then
calls waker_paid.
"""
from __future__ import annotations

import numpy as np

from coroproc.njit import njit

from coroproc.ringproc import wire
from coroproc.shm.ring import PUSH_OK_WAKE

W_OWED_SINCE_NS = 0
W_OWED_BYTES = 1
W_OWED_BYTES_MAX = 2
W_DEFER_NS = 3
W_DEFERRED = 4            # counter: wake-ups owed
W_PAID_LATE = 5           # counter: owed wake-ups paid when their time ran out
W_HAS_FD = 6              # 0: nothing to wake (a ring without a consumer eventfd)
W_FRAMES_PER_DRAIN_MILLI = 7   # moving average of frames per drain that got any, × 1000
W_WORDS = 8

# a link is busy while its wake-ups bring this many datagrams on average (1 / 8 weight)
BUSY_FRAMES_PER_DRAIN_MILLI = 2000
O_TYPE, T_MCAST = wire.O_TYPE, wire.T_MCAST


def new_waker(has_fd: bool, ring_capacity_bytes: int, defer_us: int) -> np.ndarray:
    assert defer_us >= 0
    wk = np.zeros(W_WORDS, np.int64)
    wk[W_OWED_BYTES_MAX] = ring_capacity_bytes // 4
    wk[W_DEFER_NS] = int(defer_us) * 1000
    wk[W_HAS_FD] = int(has_fd)
    wk[W_FRAMES_PER_DRAIN_MILLI] = 1000
    return wk


@njit(cache=True)
def waker_note_drain(wk, frames):
    """After each receive drain: how many frames it pushed."""
    if frames:
        avg = wk[W_FRAMES_PER_DRAIN_MILLI]
        wk[W_FRAMES_PER_DRAIN_MILLI] = avg + (frames * 1000 - avg) // 8


@njit(cache=True)
def waker_pushed(wk, rc, frame_type, n, now_ns):
    """After a successful push of an n-byte frame with result rc: 1 = pay now."""
    if wk[W_HAS_FD] == 0 or (rc != PUSH_OK_WAKE and wk[W_OWED_SINCE_NS] == 0):
        return 0
    if (frame_type == T_MCAST and wk[W_DEFER_NS] != 0
            and wk[W_FRAMES_PER_DRAIN_MILLI] >= BUSY_FRAMES_PER_DRAIN_MILLI):
        if wk[W_OWED_SINCE_NS] == 0:
            wk[W_OWED_SINCE_NS] = now_ns
            wk[W_DEFERRED] += 1
        wk[W_OWED_BYTES] += n
        if wk[W_OWED_BYTES] <= wk[W_OWED_BYTES_MAX]:
            return 0
    return 1


@njit(cache=True)
def waker_settle(wk, now_ns, wait_ns):
    """Before the link process sleeps: (1 = pay now: an owed wake-up fell due, the sleep
    bounded by when an owed one falls due)."""
    if wk[W_OWED_SINCE_NS] == 0:
        return 0, wait_ns
    due_ns = wk[W_OWED_SINCE_NS] + wk[W_DEFER_NS] - now_ns
    if due_ns <= 0:
        wk[W_PAID_LATE] += 1
        return 1, wait_ns
    return 0, min(wait_ns, due_ns)


@njit(cache=True)
def waker_paid(wk):
    wk[W_OWED_SINCE_NS] = 0
    wk[W_OWED_BYTES] = 0
