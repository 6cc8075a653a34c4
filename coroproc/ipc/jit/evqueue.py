"""Per-connection event queues as arrays, so jitted code can queue and send events.

Why: an engine that delivers a flood queues one event per message and client. In Python
that was a deque append, a bytes object and a sendmmsg through ctypes per batch; here
a delivery kernel (engineprocs/cpg/jit/deliver.py) appends events and sends them without
returning to Python, and the Python side of a connection (ipc/evqueue.py) uses the very
same queue, so events keep one order whoever queued them.

Layout, for `slots` queues:
* `qs`     int64[slots, Q_WORDS]: the state of each queue (Q_* below);
* `rows`   int64[slots, rows_per_slot, 2]: (byte position, length) per queued event,
           a ring indexed by the monotonic row counters;
* `arena`  uint8[slots * region_bytes]: each slot's region, a byte ring of the event
           bytes. An event is contiguous: one that would cross the region's end starts
           at its beginning instead (the skipped bytes count as used until it is sent).
* `mm`, `iov`: int64 scratch of one sendmmsg batch (syscalls.MMSGHDR_WORDS, IOVEC_WORDS).
Byte and row positions are monotonic (never wrapped); offset = position % region_bytes.
"""
from __future__ import annotations

from coroproc.njit import njit

from coroproc.shm.atomics import fetch_add_i32_at
from coroproc.shm.syscalls import EAGAIN, IOVEC_WORDS, MMSG_IOV, MMSG_IOVLEN, sendmmsg

Q_HEAD = 0            # byte position after the last queued event
Q_TAIL = 1            # byte position of the first unsent event (== head when empty)
Q_RHEAD = 2           # rows queued, ever
Q_RTAIL = 3           # rows sent (or dropped), ever
Q_FD = 4              # connected event socket, -1 while not connected (nothing is sent)
Q_CTRL_SENT = 5       # address of the control file's event `sent` int32, 0: none
Q_SENT = 6            # events sent, ever
Q_ROWS_MAX = 7        # this queue's bound in events (<= rows_per_slot)
Q_BYTES_MAX = 8       # ... and in bytes (<= region_bytes)
Q_IN_USE = 9          # 1 while a connection owns the slot
Q_WORDS = 10

SEND_BATCH_MAX = 64   # events per sendmmsg call (the scratch arrays' rows)


@njit(cache=True, inline="always")
def evq_count(qs, slot):
    return qs[slot, Q_RHEAD] - qs[slot, Q_RTAIL]


@njit(cache=True, inline="always")
def evq_bytes(qs, slot):
    return qs[slot, Q_HEAD] - qs[slot, Q_TAIL]


@njit(cache=True, inline="always")
def evq_reserve(qs, rows, arena, slot, n):
    """Where an n-byte event would go in arena (-1: the queue is at its bound). Nothing
    changes until evq_commit."""
    region = arena.shape[0] // qs.shape[0]
    if n > qs[slot, Q_BYTES_MAX] or evq_count(qs, slot) >= qs[slot, Q_ROWS_MAX]:
        return -1
    head = qs[slot, Q_HEAD]
    off = head % region
    if off + n > region:
        head += region - off
        off = 0
    if head + n - qs[slot, Q_TAIL] > qs[slot, Q_BYTES_MAX]:
        return -1
    return slot * region + off


@njit(cache=True, inline="always")
def evq_commit(qs, rows, arena, slot, n):
    """Queue the n bytes written at evq_reserve's offset."""
    region = arena.shape[0] // qs.shape[0]
    head = qs[slot, Q_HEAD]
    off = head % region
    if off + n > region:
        head += region - off
    r = qs[slot, Q_RHEAD] % rows.shape[1]
    rows[slot, r, 0] = head
    rows[slot, r, 1] = n
    qs[slot, Q_RHEAD] += 1
    qs[slot, Q_HEAD] = head + n


@njit(cache=True)
def evq_push(qs, rows, arena, slot, src, n):
    """Queue src[:n] as one event; False (nothing queued) at the queue's bound."""
    at = evq_reserve(qs, rows, arena, slot, n)
    if at < 0:
        return False
    dst = arena[at:at + n]
    for i in range(n):
        dst[i] = src[i]
    evq_commit(qs, rows, arena, slot, n)
    return True


@njit(cache=True, inline="always")
def _advance_tail(qs, rows, region, slot, k):
    qs[slot, Q_RTAIL] += k
    if qs[slot, Q_RTAIL] == qs[slot, Q_RHEAD]:
        # empty: the next event starts at the region's beginning again, so a client that
        # keeps up touches only as many pages as its largest backlog needed
        head = qs[slot, Q_HEAD]
        head += (region - head % region) % region
        qs[slot, Q_HEAD] = head
        qs[slot, Q_TAIL] = head
    else:
        qs[slot, Q_TAIL] = rows[slot, qs[slot, Q_RTAIL] % rows.shape[1], 0]


@njit(cache=True)
def evq_flush(qs, rows, arena, mm, iov, slot):
    """Send queued events from the head until the queue is empty or the socket is full:
    (events sent, errno) — errno 0 when emptied, EAGAIN when the client's socket is full,
    anything else for the caller to judge (the event at the head stays queued)."""
    fd = qs[slot, Q_FD]
    if fd < 0:
        return 0, 0
    region = arena.shape[0] // qs.shape[0]
    base = arena.ctypes.data + slot * region
    nrows = rows.shape[1]
    batch_max = min(SEND_BATCH_MAX, mm.shape[0], iov.shape[0])
    iov_addr = iov.ctypes.data
    total = 0
    while evq_count(qs, slot) > 0:
        k = min(evq_count(qs, slot), batch_max)
        first = qs[slot, Q_RTAIL]
        for i in range(k):
            r = (first + i) % nrows
            iov[i, 0] = base + rows[slot, r, 0] % region
            iov[i, 1] = rows[slot, r, 1]
            mm[i, 0] = 0
            mm[i, 1] = 0
            mm[i, MMSG_IOV] = iov_addr + i * IOVEC_WORDS * 8
            mm[i, MMSG_IOVLEN] = 1
            mm[i, 4] = 0
            mm[i, 5] = 0
            mm[i, 6] = 0
        rc = sendmmsg(fd, mm, k)
        if rc < 0:
            return total, -rc
        if rc == 0:
            return total, EAGAIN
        _advance_tail(qs, rows, region, slot, rc)
        qs[slot, Q_SENT] += rc
        if qs[slot, Q_CTRL_SENT] != 0:
            fetch_add_i32_at(qs[slot, Q_CTRL_SENT], rc)
        total += rc
    return total, 0


@njit(cache=True)
def evq_drop_head(qs, rows, arena, slot):
    """Drop the event at the head (one the kernel will not take); its length, or -1."""
    if evq_count(qs, slot) == 0:
        return -1
    n = rows[slot, qs[slot, Q_RTAIL] % rows.shape[1], 1]
    _advance_tail(qs, rows, arena.shape[0] // qs.shape[0], slot, 1)
    return n
