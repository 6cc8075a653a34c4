"""The CPG engine's delivery loop, jitted: deliver, sleep on the doorbell, deliver again —
back to Python only for what Python does.

Why: a node that only receives a CPG flood wakes its engine once per batch of deliveries,
and each wake-up through the engine host's Python loop (control socket, cork, timers,
IPC server, flow control, the poll object) cost 200-230 µs of CPU, against a few µs for
the delivery kernel itself (jit/deliver.py). Here one Python call turns through many
wake-ups.

`lane_loop` runs deliver_run from cursor `pos`, releases what it handled when the host
keeps no snapshots (`release`), and sleeps when the delivery ring has nothing after the
cursor: raise the ring's sleeping flag, re-check head, poll() the doorbell (pfd[0]) and
the host's other fds (pfd[1:]: control socket, IPC epoll fds), drain the doorbell. It
returns, with why (LOOP_*), when:
* the delivery kernel stops for Python (a record it does not take) or at corrupt framing;
* a send of the kernel's failed or left events queued (the rows of `touched` say which
  connection: Python does what connection.flush_events does after a send);
* one of pfd[1:] is readable, or a signal interrupted the sleep;
* `until_us` came (the host's next timer or heartbeat), `moved_until_us` came after the
  cursor moved, or the cursor reached `pos_limit` (the host's next snapshot is due).
acc[] holds what the turns did (A_*). Nothing here changes what the Python path would
have done with the same records: it runs the same kernel on the same table, which holds
because no engine code runs meanwhile.
"""
from __future__ import annotations

from numba import njit

from coroproc.shm.kernels import ring_cancel_sleep, ring_head, ring_prepare_sleep, ring_release
from coroproc.shm.syscalls import EINTR, POLLFD_WORDS, eventfd_drain, monotonic_ns, poll, readable

from .deliver import (OUT_DELIVERED, OUT_EVENTS, OUT_POS, OUT_REASON, OUT_RECORDS,
                      OUT_TOUCHED, R_CORRUPT, R_LIMIT, R_PYTHON, T_ERRNO, deliver_run)

LOOP_UNTIL = 0          # until_us came or the cursor reached pos_limit
LOOP_FDS = 1            # a pollfd of pfd[1:] is readable (revents are left in pfd)
LOOP_PYTHON = 2         # the record at the cursor is for the Python path
LOOP_CORRUPT = 3        # the delivery ring's framing at the cursor is broken
LOOP_FLUSH = 4          # touched[:acc[A_TOUCHED]] has a send that failed or was cut short
LOOP_INTERRUPTED = 5    # a signal interrupted poll(): Python runs its handler
LOOP_POLL_FAILED = 6    # poll() failed: -errno in acc[A_ERR]

A_POS = 0               # the cursor
A_RECORDS = 1           # records handled
A_DELIVERED = 2         # messages that reached a local reader
A_EVENTS = 3            # events queued
A_SLEEPS = 4            # poll() calls that slept
A_TOUCHED = 5           # LOOP_FLUSH: rows of touched from the last run
A_ERR = 6
A_WORDS = 7

SLEEP_MAX_MS = 1 << 30   # poll()'s timeout is an int


def readable_fds(pfd) -> list[int]:
    """The fds of pfd[1:] that the last poll() saw readable (after LOOP_FDS)."""
    w = POLLFD_WORDS
    return [int(pfd[w * i]) for i in range(1, pfd.shape[0] // w) if pfd[w * i + 1] >> 16]


@njit(cache=True)
def _flush_failed(touched, n):
    for i in range(n):
        if touched[i, T_ERRNO] != 0:
            return True
    return False


@njit(cache=True)
def _any_readable(pfd, first):
    for i in range(first, pfd.shape[0] // POLLFD_WORDS):
        if readable(pfd, i):
            return True
    return False


@njit(cache=True)
def _sleep(dhdr, pos, pfd, timeout_ms, u64):
    """Sleep until the ring has a record after pos, a pollfd is readable or the timeout
    passes: 1 without sleeping if a record is there, else poll()'s result."""
    ring_prepare_sleep(dhdr)
    rc = 1
    if ring_head(dhdr) == pos:
        rc = poll(pfd, 0, pfd.shape[0] // POLLFD_WORDS, timeout_ms)
        if rc > 0 and readable(pfd, 0):
            eventfd_drain(pfd[0], u64)
    else:
        for i in range(pfd.shape[0] // POLLFD_WORDS):   # no stale readiness from before
            pfd[POLLFD_WORDS * i + 1] &= 0xFFFF
    ring_cancel_sleep(dhdr)
    return rc


@njit(cache=True)
def lane_loop(dhdr, ddata, pos, pos_limit, release, batch, gmeta, gnames, grecv, gnodes,
              ngroups, table_complete, slot_msg_max, qs, rows, arena, mm, iov, touched, out,
              pfd, u64, ts, until_us, moved_until_us, acc):
    """Turn until Python is needed; returns why (LOOP_*), acc[] says what was done.
    pfd: int32 pollfds (syscalls.pollfd_array), the doorbell first; u64: uint64[1] and
    ts: int64[2] scratch; acc: int64[A_WORDS]. moved_until_us bounds the loop only once
    the cursor moved (the host's next snapshot is due then, not while nothing arrives)."""
    start = pos
    for i in range(A_WORDS):
        acc[i] = 0
    acc[A_POS] = pos
    n_other = pfd.shape[0] // POLLFD_WORDS - 1
    while True:
        deliver_run(dhdr, ddata, pos, batch, gmeta, gnames, grecv, gnodes, ngroups,
                    table_complete, slot_msg_max, qs, rows, arena, mm, iov, touched, out)
        taken = out[OUT_RECORDS]
        if taken > 0:
            pos = out[OUT_POS]
            acc[A_POS] = pos
            acc[A_RECORDS] += taken
            acc[A_DELIVERED] += out[OUT_DELIVERED]
            acc[A_EVENTS] += out[OUT_EVENTS]
            if release:
                ring_release(dhdr, pos)
        if _flush_failed(touched, out[OUT_TOUCHED]):
            acc[A_TOUCHED] = out[OUT_TOUCHED]
            return LOOP_FLUSH
        reason = out[OUT_REASON]
        if reason == R_PYTHON:
            return LOOP_PYTHON
        if reason == R_CORRUPT:
            return LOOP_CORRUPT
        if pos >= pos_limit:
            return LOOP_UNTIL
        t = monotonic_ns(ts) // 1000
        if t >= until_us or (pos != start and t >= moved_until_us):
            return LOOP_UNTIL
        if reason == R_LIMIT:
            # more records wait: look at the other fds without sleeping, then go on
            if n_other > 0 and poll(pfd, 1, n_other, 0) > 0:
                return LOOP_FDS
            continue
        wait_us = until_us - t
        if pos != start:
            wait_us = min(wait_us, moved_until_us - t)
        rc = _sleep(dhdr, pos, pfd, min((wait_us + 999) // 1000, SLEEP_MAX_MS), u64)
        if rc == -EINTR:
            return LOOP_INTERRUPTED
        if rc < 0:
            acc[A_ERR] = rc
            return LOOP_POLL_FAILED
        acc[A_SLEEPS] += 1
        if rc > 0 and _any_readable(pfd, 1):
            return LOOP_FDS
