"""The CPG engine's loop, jitted: deliver, take clients' MCAST requests, sleep, again —
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
* the IPC server has an event the loop does not take, a request of the table was not
  an MCAST the request kernel takes (LOOP_PENDING: that datagram is in `buf` for the
  server's Python path), or a request brought the submit ring to `stop_used_bytes`;
* a send of the kernel's failed or left events queued (the rows of `touched` say which
  connection: Python does what connection.flush_events does after a send);
* one of pfd[1:] is readable, or a signal interrupted the sleep;
* `until_us` came (the host's next timer or heartbeat), `moved_until_us` came after the
  cursor moved, or the cursor reached `pos_limit` (the host's next snapshot is due).
acc[] holds what the turns did (A_*). Nothing here changes what the Python path would
have done with the same records: it runs the same kernel on the same table, which holds
because no engine code runs meanwhile.

Requests: when poll() finds the IPC server's epoll fd (pfd row `ipc_idx`) readable and
no other, the loop takes that epoll's ready events without waiting. A plain EPOLLIN on
the request socket of a row of the request table (`rq`, filled by lane.py with the
connections the server would offer its read_fast hook: joined or joining, response
channel connected, nothing deferred or waiting to be sent) runs jit/requests.py's
mcast_requests on it, with libqb's batch size from the client's control file; anything
else is left ready (epoll is level-triggered) for the server's own epoll_wait.

Own delivery: after a turn that took requests into the submit ring, when the delivery
ring is empty, the loop polls it for up to spin[SPIN_NS] (and not past until_us) before it
sleeps. A client's message then comes back to its sender without the ring process's
eventfd write and this process's wake-up — two of the sparse path's cross-CPU hand-offs,
each an IPI and a vCPU's exit from halt on a VM (docs/executive.md "Own-delivery spin").
Only for sparse traffic, where a CPU is there to spare: not when the requests came less
than spin[SPIN_NS] after the previous ones (a flood: the time would be the clients' and
the other engines'), not when the ring process had not yet taken what was submitted
before them (their delivery waits behind that), and not on CPU spin[SPIN_AVOID_CPU], the
ring process's (there the spin would keep the ring process from running).
"""
from __future__ import annotations

from coroproc.njit import njit

from coroproc.shm.atomics import fetch_add_i32_at
from coroproc.shm.kernels import (ring_cancel_sleep, ring_head, ring_prepare_sleep, ring_release,
                                  ring_tail)
from coroproc.shm.syscalls import (EINTR, EPOLL_EVENT_WORDS, EPOLLIN, POLLFD_WORDS,
                                   current_cpu, doorbell_poll, epoll_wait, monotonic_ns, poll,
                                   readable)

from . import requests as RQ
from .deliver import (OUT_DELIVERED, OUT_EVENTS, OUT_POS, OUT_REASON, OUT_RECORDS,
                      OUT_TOUCHED, R_CORRUPT, R_LIMIT, R_PYTHON, T_ERRNO, deliver_run)

LOOP_UNTIL = 0          # until_us came or the cursor reached pos_limit
LOOP_FDS = 1            # a pollfd of pfd[1:] is readable (revents are left in pfd)
LOOP_PYTHON = 2         # the record at the cursor is for the Python path
LOOP_CORRUPT = 3        # the delivery ring's framing at the cursor is broken
LOOP_FLUSH = 4          # touched[:acc[A_TOUCHED]] has a send that failed or was cut short
LOOP_INTERRUPTED = 5    # a signal interrupted poll(): Python runs its handler
LOOP_POLL_FAILED = 6    # poll() failed: -errno in acc[A_ERR]
LOOP_PENDING = 7        # a request for Python is in buf[:acc[A_RQ_PENDING]], from row
                        # acc[A_RQ_ROW] of the request table
LOOP_FLOW = 8           # a request brought the submit ring to stop_used_bytes

A_POS = 0               # the cursor
A_RECORDS = 1           # records handled
A_DELIVERED = 2         # messages that reached a local reader
A_EVENTS = 3            # events queued
A_SLEEPS = 4            # poll() calls that slept
A_TOUCHED = 5           # LOOP_FLUSH: rows of touched from the last run
A_ERR = 6
A_REQUESTS = 7          # requests taken into the submit ring (per row: rq_taken)
A_RQ_ROW = 8
A_RQ_PENDING = 9
A_SPINS = 10            # polls of the delivery ring after taking requests (spin_ns)
A_SPIN_HITS = 11        # of those, the ones a record ended (not the time or the CPU)
A_SPIN_NS = 12          # time spent in them
A_WORDS = 13

# the request table (rq_*), one row per connection whose MCAST requests the loop may take:
RQ_FD = 0               # its request socket
RQ_CTRL = 1             # address of its control file's request `sent` int32
RQ_GLEN = 2             # its group name's length (the name: rq_group[row])
RQ_PID = 3
RQ_SOURCE = 4           # its mar_message_source_t.conn
RQ_LIMIT = 5            # its IPC maximum message size
RQ_TAKEN = 6            # requests taken (the loop adds)
RQ_WORDS = 7

SLEEP_MAX_MS = 1 << 30   # poll()'s timeout is an int

# spin[], the own-delivery spin's settings and state (int64, kept between calls):
SPIN_NS = 0             # how long to poll; 0: never
SPIN_AVOID_CPU = 1      # the CPU not to poll on (-1: none)
SPIN_LAST_US = 2        # when requests were last taken (the loop sets it)
SPIN_WORDS = 3


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
def _sleep(dhdr, pos, pfd, timeout_ms, u64, ts):
    """Sleep until the ring has a record after pos, a pollfd is readable or the timeout
    passes: 1 without sleeping if a record is there, else poll()'s result."""
    ring_prepare_sleep(dhdr)
    rc = doorbell_poll(pfd, ring_head(dhdr) == pos, timeout_ms * 1000, u64, ts)
    ring_cancel_sleep(dhdr)
    return rc


@njit(cache=True)
def _worth_a_spin(spin, now_us, shdr, submitted):
    """Whether to poll for the delivery of requests taken at now_us: sparse traffic's,
    off the ring process's CPU (module docstring); notes their time."""
    last_us = spin[SPIN_LAST_US]
    spin[SPIN_LAST_US] = now_us
    return (spin[SPIN_NS] > 0 and now_us - last_us >= spin[SPIN_NS] // 1000
            and ring_tail(shdr) >= submitted and current_cpu() != spin[SPIN_AVOID_CPU])


@njit(cache=True)
def _spin_for_record(dhdr, pos, until_ns, avoid_cpu, ts):
    """Poll the delivery ring for a record after pos until until_ns, while this thread is
    not on CPU avoid_cpu (-1: any; the kernel may move it there meanwhile): True when
    one came. Nothing is raised, so the producer does not ring the doorbell for it."""
    while current_cpu() != avoid_cpu:
        if ring_head(dhdr) != pos:
            return True
        if monotonic_ns(ts) >= until_ns:
            break
    return False


@njit(cache=True)
def _take_requests(epfd, ev, rq, rq_group, nrq, rq_batch_max, buf, nodeid, shdr, sdata,
                   wake_fd, max_message_bytes, roomy_used_bytes, stop_used_bytes, src,
                   src_len, scratch, rq_out, acc):
    """The IPC server's ready events (epoll_wait without waiting): the MCAST requests of
    the table's connections go to the submit ring here (jit/requests.py). Returns -1 when
    every event was handled, else why Python is needed (LOOP_*): an event of another fd
    or kind stays ready for the server's own epoll_wait (level-triggered)."""
    n = epoll_wait(epfd, ev, 0)
    if n < 0:
        return LOOP_FDS
    unhandled = False
    for i in range(n):
        events = ev[EPOLL_EVENT_WORDS * i]
        fd = ev[EPOLL_EVENT_WORDS * i + 1]
        row = -1
        for r in range(nrq):
            if rq[r, RQ_FD] == fd:
                row = r
                break
        if row < 0 or events != EPOLLIN:
            unhandled = True
            continue
        ctrl = rq[row, RQ_CTRL]
        # libqb's batch, as the server's Python path: what the client counted, 1 to max
        avail = min(max(fetch_add_i32_at(ctrl, 0), 1), rq_batch_max)
        RQ.mcast_requests(fd, buf, rq[row, RQ_LIMIT], avail, ctrl,
                          rq_group[row, :rq[row, RQ_GLEN]], rq[row, RQ_PID], nodeid,
                          rq[row, RQ_SOURCE], shdr, sdata, wake_fd, max_message_bytes,
                          roomy_used_bytes, stop_used_bytes, src, src_len, scratch, rq_out)
        taken = rq_out[RQ.OUT_TAKEN]
        rq[row, RQ_TAKEN] += taken
        acc[A_REQUESTS] += taken
        reason = rq_out[RQ.OUT_REASON]
        if reason == RQ.RQ_PYTHON:
            acc[A_RQ_ROW] = row
            acc[A_RQ_PENDING] = rq_out[RQ.OUT_PENDING]
            return LOOP_PENDING
        if reason == RQ.RQ_FLOW:
            return LOOP_FLOW
        if reason == RQ.RQ_ERROR:
            unhandled = True        # the server's Python path reads again and judges
    return LOOP_FDS if unhandled else -1


@njit(cache=True)
def _after_poll(pfd, ipc_idx, epfd, ev, rq, rq_group, nrq, rq_batch_max, buf, nodeid, shdr,
                sdata, wake_fd, max_message_bytes, roomy_used_bytes, stop_used_bytes, src,
                src_len, scratch, rq_out, acc):
    """pfd[1:] after a poll that saw one readable: -1 when the loop may go on (only the
    IPC server's fd was, and the loop took all it had), else LOOP_*."""
    for i in range(1, pfd.shape[0] // POLLFD_WORDS):
        if readable(pfd, i) and i != ipc_idx:
            return LOOP_FDS
    if nrq == 0 or ipc_idx < 0:
        return LOOP_FDS
    return _take_requests(epfd, ev, rq, rq_group, nrq, rq_batch_max, buf, nodeid, shdr,
                          sdata, wake_fd, max_message_bytes, roomy_used_bytes,
                          stop_used_bytes, src, src_len, scratch, rq_out, acc)


@njit(cache=True)
def lane_loop(dhdr, ddata, pos, pos_limit, release, batch, gmeta, gnames, grecv, gnodes,
              ngroups, table_complete, slot_msg_max, qs, rows, arena, mm, iov, touched, out,
              pfd, u64, ts, until_us, moved_until_us, acc, ipc_idx, epfd, ev, rq, rq_group,
              nrq, rq_batch_max, buf, nodeid, shdr, sdata, wake_fd, max_message_bytes,
              roomy_used_bytes, stop_used_bytes, src, src_len, scratch, rq_out, spin):
    """Turn until Python is needed; returns why (LOOP_*), acc[] says what was done.
    pfd: int32 pollfds (syscalls.pollfd_array), the doorbell first; u64: uint64[1] and
    ts: int64[2] scratch; acc: int64[A_WORDS]. moved_until_us bounds the loop only once
    the cursor moved (the host's next snapshot is due then, not while nothing arrives).
    spin: int64[SPIN_WORDS], the own-delivery spin (module docstring)."""
    start = pos
    for i in range(A_WORDS):
        acc[i] = 0
    acc[A_POS] = pos
    n_other = pfd.shape[0] // POLLFD_WORDS - 1
    spun_for = 0            # acc[A_REQUESTS] when the loop last looked at spinning
    # the submit ring's head before the requests not yet looked at (kept while a turn
    # with records still to deliver takes more of them)
    submitted = ring_head(shdr)
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
            if acc[A_REQUESTS] == spun_for:
                submitted = ring_head(shdr)
            if n_other > 0 and poll(pfd, 1, n_other, 0) > 0:
                why = _after_poll(pfd, ipc_idx, epfd, ev, rq, rq_group, nrq, rq_batch_max,
                                  buf, nodeid, shdr, sdata, wake_fd, max_message_bytes,
                                  roomy_used_bytes, stop_used_bytes, src, src_len, scratch,
                                  rq_out, acc)
                if why >= 0:
                    return why
            continue
        if acc[A_REQUESTS] != spun_for:
            spun_for = acc[A_REQUESTS]
            if _worth_a_spin(spin, t, shdr, submitted):
                # the requests just taken are on their way round: their delivery comes soon
                acc[A_SPINS] += 1
                t_ns = monotonic_ns(ts)
                hit = _spin_for_record(dhdr, pos, min(t_ns + spin[SPIN_NS], until_us * 1000),
                                       spin[SPIN_AVOID_CPU], ts)
                acc[A_SPIN_NS] += monotonic_ns(ts) - t_ns
                if hit:
                    acc[A_SPIN_HITS] += 1
                    continue
                t = monotonic_ns(ts) // 1000
                if t >= until_us or (pos != start and t >= moved_until_us):
                    return LOOP_UNTIL
        wait_us = until_us - t
        if pos != start:
            wait_us = min(wait_us, moved_until_us - t)
        if acc[A_REQUESTS] == spun_for:
            submitted = ring_head(shdr)
        rc = _sleep(dhdr, pos, pfd, min((wait_us + 999) // 1000, SLEEP_MAX_MS), u64, ts)
        if rc == -EINTR:
            return LOOP_INTERRUPTED
        if rc < 0:
            acc[A_ERR] = rc
            return LOOP_POLL_FAILED
        acc[A_SLEEPS] += 1
        if rc > 0 and _any_readable(pfd, 1):
            why = _after_poll(pfd, ipc_idx, epfd, ev, rq, rq_group, nrq, rq_batch_max, buf,
                              nodeid, shdr, sdata, wake_fd, max_message_bytes,
                              roomy_used_bytes, stop_used_bytes, src, src_len, scratch,
                              rq_out, acc)
            if why >= 0:
                return why
