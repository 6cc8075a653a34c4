"""The ring process's loop, jitted: pump, wake the consumers, sleep, again — back to Python
only for what Python does (events, the control socket, the once-a-second checks).

`ring_loop` turns until the pump has rows for Python (RET_EVENTS, RET_PERSIST) or finds a
corrupt ring, a control fd is readable, the caller's `until_us` comes (its heartbeat or
its scheduling check is due) or a signal interrupts the sleep; it returns why (LOOP_* or
the pump's RET_*). Per turn, as process.py did in Python before: `pump`; `pay_wakes`
writes the eventfd of every consumer the pump woke (a tx ring's link process,
a delivery ring's engine: ps[P_WAKE_MASK], set only for a consumer that was asleep);
`ring_sleep` is Doorbell.wait over the padded ring tuples the pump takes — raise the
sleeping flag of each input ring, re-check it, poll() the doorbell and the control fds,
clear the flags, drain the doorbell.

A RET_BUDGET turn (input left over) sleeps not but looks at the control fds first; an
idle looped token (a one-member ring) bounds the sleep by its due time; a stalled pump
(a delivery ring lacks headroom) sleeps on no ring, at most `stall_sleep_us`.

Why: in Python each turn unboxed the pump's ~90 arrays again (its entry point), made two
dispatcher calls per input ring, a poll object per sleep and an os.eventfd_write per
consumer: 160-240 µs of CPU per wake-up at 1,000 msgs/s on 3 nodes (2-vCPU VM), where the
ring process wakes once per token hop.
"""
from __future__ import annotations

from coroproc.njit import njit

from coroproc.shm.kernels import ring_cancel_sleep, ring_prepare_sleep
from coroproc.shm.syscalls import (EINTR, POLLFD_WORDS, doorbell_poll, eventfd_write_one,
                                   monotonic_ns, poll, readable)

from .pump import (P_DEADLINE_US, P_LOOP_DUE_US, P_LOOP_N, P_N_DL, P_N_RX, P_N_SUB, P_N_TX,
                   P_SUBMIT_BLOCKED, P_WAKE_MASK, RET_BUDGET, RET_CORRUPT, RET_EVENTS,
                   RET_IDLE, RET_PERSIST, RET_STALLED, WAKE_DLV_SHIFT, pump)

SLEEP_NONE = 0       # sleep on no ring: only the doorbell, control fds and the timeout
SLEEP_RX = 1         # the rx rings
SLEEP_RX_SUB = 2     # the rx and the submit rings

# why ring_loop returned, besides the pump's RET_EVENTS / RET_PERSIST / RET_CORRUPT
LOOP_UNTIL = 100         # until_us came
LOOP_CONTROL = 101       # a control fd (pfd[1:]) is readable
LOOP_INTERRUPTED = 102   # a signal interrupted the sleep: Python runs its handler
LOOP_POLL_FAILED = 103   # poll() failed; -errno in the loop's `err` word


@njit(cache=True)
def pay_wakes(ps, tx_fds, dl_fds, u64):
    """Wake the consumers ps[P_WAKE_MASK] names; returns how many."""
    mask = ps[P_WAKE_MASK]
    if mask == 0:
        return 0
    ps[P_WAKE_MASK] = 0
    woke = 0
    for i in range(ps[P_N_TX]):
        if (mask >> i) & 1:
            eventfd_write_one(tx_fds[i], u64)
            woke += 1
    for i in range(ps[P_N_DL]):
        if (mask >> (WAKE_DLV_SHIFT + i)) & 1:
            eventfd_write_one(dl_fds[i], u64)
            woke += 1
    return woke


@njit(cache=True)
def ring_sleep(ps, rx_h, sub_h, which, pfd, timeout_us, u64, ts):
    """Sleep until an input ring (SLEEP_*) gets a record, a pollfd of pfd is readable
    (pfd[0] is the doorbell) or timeout_us passes (to the µs: the pace of an idle token
    is a timer of its own, docs/executive.md; ts: int64[2] scratch). Returns 1 without
    sleeping if a ring already has a record, else poll()'s result (0 timeout, -errno on
    failure)."""
    n_rx = ps[P_N_RX] if which >= SLEEP_RX else 0
    n_sub = ps[P_N_SUB] if which == SLEEP_RX_SUB else 0
    raised_rx = 0
    raised_sub = 0
    empty = True
    while raised_rx < n_rx and empty:
        empty = ring_prepare_sleep(rx_h[raised_rx]) == 1
        raised_rx += 1
    while raised_sub < n_sub and empty:
        empty = ring_prepare_sleep(sub_h[raised_sub]) == 1
        raised_sub += 1
    rc = doorbell_poll(pfd, empty, timeout_us, u64, ts)
    for i in range(raised_rx):
        ring_cancel_sleep(rx_h[i])
    for i in range(raised_sub):
        ring_cancel_sleep(sub_h[i])
    return rc


@njit(cache=True)
def _control_readable(pfd):
    for i in range(1, pfd.shape[0] // POLLFD_WORDS):
        if readable(pfd, i):
            return True
    return False


@njit(cache=True)
def ring_loop(st, rx_h, rx_d, sub_h, sub_d, tx_h, tx_d, dl_h, dl_d, bufs, budget,
              headroom_bytes, pfd, tx_fds, dl_fds, u64, ts, err, until_us, stall_sleep_us):
    """Turn until Python is needed; returns why (module docstring). pfd: the doorbell,
    then the control fds; err: int64[1], -errno of a failed poll."""
    ps = bufs.ps
    n_ctrl = pfd.shape[0] // POLLFD_WORDS - 1
    while True:
        ret = pump(st, monotonic_ns(ts) // 1000, rx_h, rx_d, sub_h, sub_d, tx_h, tx_d,
                   dl_h, dl_d, bufs, budget, headroom_bytes)
        pay_wakes(ps, tx_fds, dl_fds, u64)
        if ret == RET_EVENTS or ret == RET_PERSIST or ret == RET_CORRUPT:
            return ret
        t = monotonic_ns(ts) // 1000
        if t >= until_us:
            return LOOP_UNTIL
        if ret == RET_BUDGET:
            if n_ctrl > 0 and poll(pfd, 1, n_ctrl, 0) > 0:
                return LOOP_CONTROL
            continue
        wait_us = until_us - t
        deadline = ps[P_DEADLINE_US]
        if ret == RET_IDLE and ps[P_LOOP_N] > 0:
            # an idle token waits to go round again (a stalled pump retries anyway)
            loop_due = ps[P_LOOP_DUE_US]
            deadline = loop_due if deadline < 0 else min(deadline, loop_due)
        if deadline >= 0:
            wait_us = min(wait_us, deadline - t)
        if ret == RET_STALLED:
            wait_us = min(wait_us, stall_sleep_us)
            which = SLEEP_NONE
        elif ps[P_SUBMIT_BLOCKED]:
            which = SLEEP_RX
        else:
            which = SLEEP_RX_SUB
        rc = ring_sleep(ps, rx_h, sub_h, which, pfd, max(wait_us, 0), u64, ts)
        if rc == -EINTR:
            return LOOP_INTERRUPTED
        if rc < 0:
            err[0] = rc
            return LOOP_POLL_FAILED
        if rc > 0 and _control_readable(pfd):
            return LOOP_CONTROL
