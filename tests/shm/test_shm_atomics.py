"""The atomics in coroproc.shm.atomics work across processes.

Each test races two forked processes over a MAP_SHARED mapping. Had the intrinsics
compiled to plain loads/stores, the counts would come out short (lost updates) or
the ping-pong would spin forever on a hoisted load (caught by the hang guard).
"""

import mmap

import numpy as np
from numba import njit

from coroproc.shm.atomics import (
    compare_exchange,
    exchange,
    fence_seq_cst,
    fetch_add,
    load_acquire,
    load_relaxed,
    load_seq_cst,
    store_relaxed,
    store_release,
    store_seq_cst,
)

ADDS_PER_PROCESS = 1_000_000


@njit(cache=True)
def _add_many(a, n):
    for _ in range(n):
        fetch_add(a, 0, 1)


@njit(cache=True)
def _locked_plain_increments(a, n):
    # word 8 is a spinlock taken with exchange; word 16 is incremented with plain
    # loads/stores inside it: only correct if exchange acquires and release publishes
    for _ in range(n):
        while exchange(a, 8, 1) != 0:
            pass
        a[16] = a[16] + 1
        store_release(a, 8, 0)


@njit(cache=True)
def _ping_pong(a, me, rounds):
    # process `me` (0 or 1) waits for word 24 to have its parity, then bumps it;
    # word 32 carries a plain payload that must be visible after the acquire load
    bad = 0
    for r in range(rounds):
        want = 2 * r + me
        while load_acquire(a, 24) != want:
            pass
        if a[32] != want:
            bad += 1
        a[32] = want + 1
        store_release(a, 24, want + 1)
    return bad


def _shared_words():
    mm = mmap.mmap(-1, 4096)  # MAP_SHARED | MAP_ANONYMOUS: shared with forked children
    return mm, np.frombuffer(mm, np.int64)


def test_fetch_add_from_two_processes_loses_no_update(children):
    mm, a = _shared_words()
    _add_many(a, 1)  # compile before fork
    a[0] = 0
    ps = [children.start(_add_many, a, ADDS_PER_PROCESS) for _ in range(2)]
    for p in ps:
        children.join_ok(p)
    assert a[0] == 2 * ADDS_PER_PROCESS
    del a
    mm.close()


def test_exchange_spinlock_protects_plain_increments(children):
    mm, a = _shared_words()
    _locked_plain_increments(a, 1)
    a[16] = 0
    ps = [children.start(_locked_plain_increments, a, 200_000) for _ in range(2)]
    for p in ps:
        children.join_ok(p)
    assert a[16] == 400_000 and a[8] == 0
    del a
    mm.close()


def _pong(a, rounds):
    assert _ping_pong(a, 1, rounds) == 0


def test_acquire_release_ping_pong_sees_every_store(children):
    mm, a = _shared_words()
    rounds = 50_000
    _ping_pong(a, 1, 0)
    p = children.start(_pong, a, rounds)
    assert _ping_pong(a, 0, rounds) == 0
    children.join_ok(p)
    assert a[24] == 2 * rounds
    del a
    mm.close()


@njit(cache=True)
def _single_thread_semantics(a):
    store_relaxed(a, 0, 5)
    store_seq_cst(a, 1, 7)
    old_x = exchange(a, 0, 9)
    old_add = fetch_add(a, 1, 3)
    fence_seq_cst()
    cas_hit = compare_exchange(a, 2, 0, 11)
    cas_miss = compare_exchange(a, 2, 0, 12)
    return old_x, old_add, cas_hit, cas_miss, load_relaxed(a, 0), load_seq_cst(a, 1), load_acquire(a, 2)


def test_return_values_are_the_old_values():
    a = np.zeros(4, np.int64)
    assert _single_thread_semantics(a) == (5, 7, 0, 11, 9, 10, 11)
    assert list(a) == [9, 10, 11, 0]
