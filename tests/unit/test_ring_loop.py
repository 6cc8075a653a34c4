"""The ring process's jitted wake-ups and sleep (ringproc/loop.py) over real shm rings and
real eventfds: who gets woken, when the sleep ends at once, which rings end it, and that
every sleeping flag is down afterwards (a flag left up would make producers pay eventfd
writes for a consumer that is awake)."""
from __future__ import annotations

import os
import uuid

import numpy as np
import pytest

from coroproc.ringproc import pump as P
from coroproc.ringproc.loop import (LOOP_CONTROL, LOOP_INTERRUPTED, LOOP_UNTIL, SLEEP_NONE,
                                    SLEEP_RX, SLEEP_RX_SUB, pay_wakes, ring_loop, ring_sleep)
from coroproc.shm.layout import W_SLEEPING, W_SLEEPS
from coroproc.shm.ring import ShmRing
from coroproc.shm.syscalls import pollfd_array

CAPACITY_BYTES = 1 << 14


@pytest.fixture
def node():
    """Two rx rings and three submit rings padded like the ring process's, a doorbell."""
    tag = uuid.uuid4().hex[:10]
    rings = {k: [ShmRing.create(f"/coroproc-test.sleep.{tag}.{k}{i}", CAPACITY_BYTES)
                 for i in range(n)] for k, n in (("rx", 2), ("sub", 3))}
    bell = os.eventfd(0, os.EFD_NONBLOCK)
    ps = np.zeros(P.P_LEN, np.int64)
    P.set_ring_counts(ps, 2, 3, 2, 3)
    yield ps, rings, bell
    os.close(bell)
    for group in rings.values():
        for r in group:
            r.unlink()         # first: a close that raises must not leave the name
            r.close()


def _sleep(ps, rings, bell, which, timeout_ms=0):
    rx_t = P.padded(rings["rx"], P.LINK_SLOTS)
    sub_t = P.padded(rings["sub"], P.ENGINE_SLOTS)
    return ring_sleep(ps, rx_t[0], sub_t[0], which, pollfd_array([bell]), timeout_ms * 1000,
                      np.zeros(1, np.uint64), np.zeros(2, np.int64))


def _flags_down(rings) -> bool:
    return all(r.hdr[W_SLEEPING] == 0 for g in rings.values() for r in g)


def _count(fd) -> int:
    try:
        return os.eventfd_read(fd)
    except BlockingIOError:
        return 0


def test_pay_wakes_writes_exactly_the_eventfds_the_mask_names():
    ps = np.zeros(P.P_LEN, np.int64)
    P.set_ring_counts(ps, 2, 3, 2, 3)
    tx = [os.eventfd(0, os.EFD_NONBLOCK) for _ in range(2)]
    dl = [os.eventfd(0, os.EFD_NONBLOCK) for _ in range(3)]
    try:
        ps[P.P_WAKE_MASK] = (1 << 1) | (1 << (P.WAKE_DLV_SHIFT + 0)) | (1 << (P.WAKE_DLV_SHIFT + 2))
        woke = pay_wakes(ps, np.array(tx, np.int64), np.array(dl, np.int64),
                         np.zeros(1, np.uint64))
        assert woke == 3 and ps[P.P_WAKE_MASK] == 0
        assert [_count(f) for f in tx] == [0, 1]
        assert [_count(f) for f in dl] == [1, 0, 1]
        assert pay_wakes(ps, np.array(tx, np.int64), np.array(dl, np.int64),
                         np.zeros(1, np.uint64)) == 0
    finally:
        for f in tx + dl:
            os.close(f)


def test_a_record_already_there_ends_the_sleep_at_once(node):
    ps, rings, bell = node
    assert rings["sub"][2].push(1, b"m")
    assert _sleep(ps, rings, bell, SLEEP_RX_SUB, timeout_ms=60_000) == 1
    assert _flags_down(rings)


def test_a_blocked_intake_sleeps_on_the_rx_rings_only(node):
    ps, rings, bell = node
    assert rings["sub"][0].push(1, b"m")
    assert _sleep(ps, rings, bell, SLEEP_RX) == 0          # timed out: the record is ignored
    assert _sleep(ps, rings, bell, SLEEP_NONE) == 0
    assert rings["rx"][1].push(1, b"f")
    assert _sleep(ps, rings, bell, SLEEP_RX, timeout_ms=60_000) == 1
    assert _flags_down(rings)


def test_the_doorbell_ends_the_sleep_and_is_drained(node):
    ps, rings, bell = node
    os.eventfd_write(bell, 1)
    assert _sleep(ps, rings, bell, SLEEP_RX_SUB, timeout_ms=60_000) == 1
    assert _count(bell) == 0
    assert _flags_down(rings)


def test_every_empty_ring_raises_its_flag_for_the_sleep(node):
    ps, rings, bell = node
    # nothing ends this sleep but its timeout; the flags were up during it (the ring's
    # sleeps counter says so) and are down after it
    before = [r.hdr.copy() for g in rings.values() for r in g]
    assert _sleep(ps, rings, bell, SLEEP_RX_SUB, timeout_ms=1) == 0
    after = [r.hdr for g in rings.values() for r in g]
    assert all(a[W_SLEEPS] == b[W_SLEEPS] + 1 for a, b in zip(after, before))
    assert _flags_down(rings)


# ---- ring_loop: the whole turn ---------------------------------------------------------

def _loop_node(rings_by_kind, bell, ctrl_fd):
    """A one-member core (its token never leaves the pump) over the node fixture's rings,
    one tx and one delivery ring more; ring_loop's arguments but until_us."""
    from coroproc.ringproc.config import TotemConfig
    from coroproc.ringproc.state import new_state
    cfg = TotemConfig(nodelist=(1,), token_ms=1000)
    st = new_state(cfg.to_array(), 1, 0, cfg.new_message_queue_bytes)
    bufs = P.new_pump_bufs(4, cfg.max_message_bytes, cfg.netmtu)
    rx, sub, tx, dl = (rings_by_kind[k] for k in ("rx", "sub", "tx", "dl"))
    P.set_ring_counts(bufs.ps, len(rx), len(sub), len(tx), len(dl))
    P.set_mcast_nobody(bufs.ps, [True])       # a one-node udpu link: as the ring process
    bufs.ps[P.P_COMMAND] = P.CMD_START
    fds = np.array([os.eventfd(0, os.EFD_NONBLOCK) for _ in range(8)], np.int64)
    args = (st, *P.padded(rx, P.LINK_SLOTS), *P.padded(sub, P.ENGINE_SLOTS),
            *P.padded(tx, P.LINK_SLOTS), *P.padded(dl, P.ENGINE_SLOTS), bufs, 4096, 1 << 16,
            pollfd_array([bell, ctrl_fd]), fds[:len(tx)], fds[2:2 + len(dl)],
            np.zeros(1, np.uint64), np.zeros(2, np.int64), np.zeros(1, np.int64))
    return bufs, args, fds


def _now_us() -> int:
    import time
    return time.monotonic_ns() // 1000


def _turn(bufs, args, until_us, stop_on) -> int:
    """ring_loop until it returns one of stop_on, doing Python's part for the pump's rows."""
    for _ in range(1000):
        ret = ring_loop(*args, until_us, 2000)
        if ret in stop_on:
            return ret
        assert ret in (P.RET_EVENTS, P.RET_PERSIST), ret
        bufs.ps[P.P_PYEV_N] = bufs.ps[P.P_PYEV_IOFF] = 0
        bufs.ps[P.P_PERSIST_PENDING] = 0
    raise AssertionError("ring_loop kept returning rows for Python")


@pytest.fixture
def loop_node(node):
    _ps, rings, bell = node
    tag = uuid.uuid4().hex[:10]
    extra = {"tx": [ShmRing.create(f"/coroproc-test.sleep.{tag}.tx0", 1 << 20)],
             "dl": [ShmRing.create(f"/coroproc-test.sleep.{tag}.dl0", 1 << 20)]}
    ctrl_r, ctrl_w = os.pipe()
    bufs, args, fds = _loop_node({**rings, **extra}, bell, ctrl_r)
    # pytest keeps a fixture's value until its teardown ends, and the ring views in it
    # must go before the rings are unmapped: a holder emptied here
    held = {"v": (bufs, args, {**rings, **extra}, ctrl_w)}
    del bufs, args
    yield held
    held.clear()
    for f in fds:
        os.close(f)
    os.close(ctrl_r)
    os.close(ctrl_w)
    for group in extra.values():
        for r in group:
            r.unlink()         # first: a close that raises must not leave the name
            r.close()


def test_ring_loop_orders_a_submission_and_wakes_its_engine(loop_node):
    from coroproc.ringproc import totempg as pg
    from coroproc.ringproc.records import DLV_HDR_BYTES, RT_DELIVER, RT_SUBMIT
    from coroproc.shm.kernels import ring_prepare_sleep
    bufs, args, rings, _ctrl_w = loop_node["v"]
    # the ring forms (rows for Python on the way), then the loop returns at until_us
    assert _turn(bufs, args, _now_us() + 300_000, (LOOP_UNTIL,)) == LOOP_UNTIL
    dl = rings["dl"][0]
    while dl.pop_batch():
        pass
    assert ring_prepare_sleep(dl.hdr) == 1       # the engine sleeps on its delivery ring
    assert rings["sub"][1].push(RT_SUBMIT, pg.build_group_message(b"g", b"hello").tobytes())
    got = []
    give_up_us = _now_us() + 10_000_000
    while _now_us() < give_up_us:
        _turn(bufs, args, _now_us() + 20_000, (LOOP_UNTIL,))
        for rtype, _f, rec in dl.pop_batch():
            if rtype == RT_DELIVER:
                msg = np.frombuffer(rec, np.uint8, offset=DLV_HDR_BYTES)
                got.append(bytes(msg[pg.group_payload_offset(msg):]))
        if got:
            break
    assert got == [b"hello"]
    dl_fd = int(args[-4][0])
    assert os.eventfd_read(dl_fd) >= 1          # the engine's doorbell was written


def test_ring_loop_returns_for_a_readable_control_fd(loop_node):
    bufs, args, _rings, ctrl_w = loop_node["v"]
    os.write(ctrl_w, b"x")
    assert _turn(bufs, args, _now_us() + 10_000_000,
                 (LOOP_CONTROL, LOOP_UNTIL)) == LOOP_CONTROL


def test_ring_loop_returns_when_a_signal_interrupts_its_sleep(loop_node):
    import signal
    bufs, args, _rings, _ctrl_w = loop_node["v"]
    _turn(bufs, args, _now_us() + 300_000, (LOOP_UNTIL,))     # formed: the loop sleeps now
    seen = []
    old = signal.signal(signal.SIGALRM, lambda *_: seen.append(1))
    try:
        # every 50 ms: one that lands while the loop runs (not in poll) interrupts nothing
        signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)
        # a loop that slept on through the signals would return LOOP_UNTIL after 5 s
        ret = _turn(bufs, args, _now_us() + 5_000_000, (LOOP_INTERRUPTED, LOOP_UNTIL))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert ret == LOOP_INTERRUPTED and seen
