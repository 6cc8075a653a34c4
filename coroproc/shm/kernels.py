"""The jitted ring operations: push/reserve/commit (producer), peek/release (consumer),
and the two halves of the doorbell handshake.

This file owns the memory-ordering protocol of a single-producer single-consumer
ring. Every function takes `hdr` (int64 view of the header words, see layout.py)
and/or `data` (uint8 view of the data area, length = capacity, a power of two).
They are plain @njit functions so the ring process's own jitted loop can call them
with no Python in between.

Ordering (see docs/shm.md for the argument):
* producer: write record bytes (plain stores) -> store_release(head);
* consumer: load_acquire(head) -> read record bytes -> store_release(tail);
* producer reads tail with acquire before reusing space, so it never overwrites
  bytes the consumer may still be reading;
* wake: producer `store head; fence; read sleeping`, consumer `xchg sleeping=1;
  fence; read head` — at least one side sees the other's write.

head and tail are monotonic byte counts (never wrapped); offset = pos & (cap - 1).
"""

import numpy as np

from coroproc.njit import njit

from coroproc.shm.atomics import (
    exchange,
    fence_seq_cst,
    load_acquire,
    load_relaxed,
    store_relaxed,
    store_release,
)
from coroproc.shm.layout import (
    RECORD_HEADER_BYTES,
    RTYPE_PAD,
    W_BYTES_POPPED,
    W_BYTES_PUSHED,
    W_HEAD,
    W_PUSH_FULL,
    W_RECORDS_POPPED,
    W_RECORDS_PUSHED,
    W_SLEEPING,
    W_SLEEPS,
    W_TAIL,
    W_WAKEUPS_REQUESTED,
)

# ring_push / ring_commit return codes
PUSH_FULL = 0
PUSH_OK = 1
PUSH_OK_WAKE = 2
PUSH_TOO_LARGE = -1  # payload > capacity/2 - 8, or rtype/flags out of range: never fits
# ring_reserve return codes (any value >= 0 is a payload offset)
RESERVE_FULL = -1
RESERVE_TOO_LARGE = -2
# ring_peek status
PEEK_EMPTY = 0
PEEK_RECORD = 1
PEEK_CORRUPT = -1  # a record header that cannot be right (length past head or data end)


@njit(cache=True, inline="always")
def _rec_bytes(n):
    return RECORD_HEADER_BYTES + ((n + 7) & ~np.int64(7))


@njit(cache=True, inline="always")
def _bump(hdr, word, by):
    # single-writer counter: relaxed load+store is enough and cannot be folded away
    store_relaxed(hdr, word, load_relaxed(hdr, word) + by)


@njit(cache=True, inline="always")
def _write_rec_header(data, off, n, rtype, flags):
    data[off] = n & 0xFF
    data[off + 1] = (n >> 8) & 0xFF
    data[off + 2] = (n >> 16) & 0xFF
    data[off + 3] = (n >> 24) & 0xFF
    data[off + 4] = rtype & 0xFF
    data[off + 5] = (rtype >> 8) & 0xFF
    data[off + 6] = flags & 0xFF
    data[off + 7] = (flags >> 8) & 0xFF


@njit(cache=True, inline="always")
def _read_rec_header(data, off):
    """(payload length, rtype, flags) of the record header at data[off:off + 8]."""
    n = np.int64(data[off]) | (np.int64(data[off + 1]) << 8) | (np.int64(data[off + 2]) << 16) | (
        np.int64(data[off + 3]) << 24
    )
    rtype = np.int64(data[off + 4]) | (np.int64(data[off + 5]) << 8)
    flags = np.int64(data[off + 6]) | (np.int64(data[off + 7]) << 8)
    return n, rtype, flags


@njit(cache=True)
def _place(hdr, data, n):
    """Where an n-byte payload's record would start, and the head after it.

    Returns (start_off, new_head, pad_off, pad_payload_len); start_off is
    RESERVE_FULL if the free space is short, RESERVE_TOO_LARGE if it never fits.
    pad_off < 0 means no PAD record is needed.
    """
    cap = np.int64(data.shape[0])
    need = _rec_bytes(np.int64(n))
    if n < 0 or need > cap // 2:
        return RESERVE_TOO_LARGE, np.int64(0), np.int64(-1), np.int64(0)
    head = hdr[W_HEAD]  # only this producer writes head
    tail = load_acquire(hdr, W_TAIL)
    free = cap - (head - tail)
    off = head & (cap - 1)
    contig = cap - off
    if need <= contig:
        if need > free:
            return RESERVE_FULL, np.int64(0), np.int64(-1), np.int64(0)
        return off, head + need, np.int64(-1), np.int64(0)
    if contig + need > free:
        return RESERVE_FULL, np.int64(0), np.int64(-1), np.int64(0)
    return np.int64(0), head + contig + need, off, contig - RECORD_HEADER_BYTES


@njit(cache=True)
def _publish(hdr, new_head, n):
    """Release the new head, then the producer half of the wake handshake."""
    store_release(hdr, W_HEAD, new_head)
    _bump(hdr, W_RECORDS_PUSHED, 1)
    _bump(hdr, W_BYTES_PUSHED, n)
    fence_seq_cst()  # orders the head store before the sleeping load (Dekker pair)
    # the plain load keeps the common case (consumer awake) free of a locked xchg
    if load_relaxed(hdr, W_SLEEPING) != 0 and exchange(hdr, W_SLEEPING, 0) != 0:
        _bump(hdr, W_WAKEUPS_REQUESTED, 1)
        return PUSH_OK_WAKE
    return PUSH_OK


@njit(cache=True)
def _check_tag(rtype, flags):
    return 1 <= rtype <= 0xFFFF and 0 <= flags <= 0xFFFF


@njit(cache=True)
def ring_reserve(hdr, data, n):
    """Offset in data where an n-byte payload may be written in place; -1 full, -2 too large.

    Does not count push_full (ring_commit or ring_push does); a reserve that is
    not followed by ring_commit leaves the ring unchanged.
    """
    start, _new_head, _pad_off, _pad_len = _place(hdr, data, n)
    if start < 0:
        return start
    return start + RECORD_HEADER_BYTES


@njit(cache=True)
def ring_commit(hdr, data, rtype, flags, n):
    """Publish the n-byte payload written at ring_reserve's offset (same codes as ring_push)."""
    if not _check_tag(rtype, flags):
        return PUSH_TOO_LARGE
    # Recomputing the placement gives the same start as ring_reserve: it depends on
    # head (unchanged, we are the only producer) and tail only moves forward.
    start, new_head, pad_off, pad_len = _place(hdr, data, n)
    if start == RESERVE_TOO_LARGE:
        return PUSH_TOO_LARGE
    if start == RESERVE_FULL:
        _bump(hdr, W_PUSH_FULL, 1)
        return PUSH_FULL
    if pad_off >= 0:
        _write_rec_header(data, pad_off, pad_len, RTYPE_PAD, 0)
    _write_rec_header(data, start, n, rtype, flags)
    return _publish(hdr, new_head, n)


@njit(cache=True)
def ring_push(hdr, data, rtype, flags, src, src_off, n):
    """Copy src[src_off:src_off+n] as one record. 0 full, 1 pushed, 2 pushed+wake, -1 too large."""
    if not _check_tag(rtype, flags) or src_off < 0 or src_off + n > src.shape[0]:
        return PUSH_TOO_LARGE
    off = ring_reserve(hdr, data, n)
    if off == RESERVE_TOO_LARGE:
        return PUSH_TOO_LARGE
    if off == RESERVE_FULL:
        _bump(hdr, W_PUSH_FULL, 1)
        return PUSH_FULL
    # explicit loop over slice views: vectorises, unlike slice assignment
    dst = data[off : off + n]
    s = src[src_off : src_off + n]
    for i in range(n):
        dst[i] = s[i]
    return ring_commit(hdr, data, rtype, flags, n)


@njit(cache=True)
def ring_peek(hdr, data, pos):
    """The record at cursor pos: (status, payload_off, payload_len, rtype, flags, next_pos).

    status 0: nothing at pos (pos == head); 1: a record; -1: corrupt framing.
    PAD records are skipped. Nothing is released: call ring_release when handled.
    """
    cap = np.int64(data.shape[0])
    head = load_acquire(hdr, W_HEAD)
    z = np.int64(0)
    while pos != head:
        off = pos & (cap - 1)
        n, rtype, flags = _read_rec_header(data, off)
        nxt = pos + _rec_bytes(n)
        if off + _rec_bytes(n) > cap or nxt - head > 0:
            return PEEK_CORRUPT, off, n, rtype, flags, pos
        if rtype != RTYPE_PAD:
            return PEEK_RECORD, off + RECORD_HEADER_BYTES, n, rtype, flags, nxt
        pos = nxt
    return PEEK_EMPTY, z, z, z, z, pos


PEEK_ROW = 5   # ring_peek_batch row: payload_off, payload_len, rtype, flags, next_pos


@njit(cache=True)
def ring_peek_batch(hdr, data, pos, rows):
    """Up to rows.shape[0] records from cursor pos, one row each (PEEK_ROW columns), with a
    single acquire load of head: (records found, status after them, position after them).

    status PEEK_EMPTY: every record up to head is in rows; PEEK_RECORD: rows was full and
    more may wait; PEEK_CORRUPT: the framing at the returned position is broken (rows
    before it are good). A consumer that handles records one Python call at a time pays
    the dispatcher once per batch instead of once per record. Nothing is released."""
    cap = np.int64(data.shape[0])
    head = load_acquire(hdr, W_HEAD)
    k = 0
    while pos != head:
        if k == rows.shape[0]:
            return k, PEEK_RECORD, pos
        off = pos & (cap - 1)
        n, rtype, flags = _read_rec_header(data, off)
        nxt = pos + _rec_bytes(n)
        if off + _rec_bytes(n) > cap or nxt - head > 0:
            return k, PEEK_CORRUPT, pos
        if rtype != RTYPE_PAD:
            rows[k, 0] = off + RECORD_HEADER_BYTES
            rows[k, 1] = n
            rows[k, 2] = rtype
            rows[k, 3] = flags
            rows[k, 4] = nxt
            k += 1
        pos = nxt
    return k, PEEK_EMPTY, pos


@njit(cache=True)
def ring_release(hdr, pos, records=0, payload_bytes=0):
    """The consumer has handled everything before pos: store-release tail = pos.

    records/payload_bytes only feed the records_popped/bytes_popped counters.
    """
    store_release(hdr, W_TAIL, pos)
    if records:
        _bump(hdr, W_RECORDS_POPPED, records)
        _bump(hdr, W_BYTES_POPPED, payload_bytes)


@njit(cache=True)
def ring_head(hdr):
    return load_acquire(hdr, W_HEAD)


@njit(cache=True)
def ring_tail(hdr):
    return load_acquire(hdr, W_TAIL)


@njit(cache=True)
def ring_empty(hdr):
    return load_acquire(hdr, W_HEAD) == load_acquire(hdr, W_TAIL)


@njit(cache=True)
def ring_prepare_sleep(hdr):
    """Consumer half of the wake handshake. Returns 1 if the ring is empty and may be slept on.

    Sets sleeping=1 first, then (after a full fence) re-reads head: a producer that
    published before our fence is seen here; one that publishes after it sees the flag.
    """
    # counted per raised flag (not per actual sleep): each raise allows at most one
    # wake request, so wakeups_requested <= sleeps always holds
    _bump(hdr, W_SLEEPS, 1)
    exchange(hdr, W_SLEEPING, 1)
    fence_seq_cst()
    if load_acquire(hdr, W_HEAD) != hdr[W_TAIL]:
        return 0
    return 1


@njit(cache=True)
def ring_cancel_sleep(hdr):
    """Clear sleeping (consumer woke up or gave up sleeping)."""
    exchange(hdr, W_SLEEPING, 0)
