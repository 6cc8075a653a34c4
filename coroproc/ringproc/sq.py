"""Node sets, sort queues, outputs and timers of the Totem core (numba, no I/O).

Node sets are rows of ``st.lists``: column 0 is the count, then nodeids kept sorted, so
set equality is a row compare and the token's successor is the next larger nodeid —
Corosync orders its commit-token address list the same way.

Tiny helpers that take the whole state are inlined at numba-IR level: a real call
increments and decrements the reference count of every array in the state (33 arrays;
~270 ns a call on the 2-vCPU VM, bench/bench_pump.py). The helpers every message passes
through — storing, multicasting and delivering a frame (emit_tx, ev_row, ev_bytes,
sq_encapsulated, sq_guarantee; deliver.emit_deliver, token._send_new_frame) — are inlined
for that reason: the pump's CPU per 1 KiB message fell ~15 %, per 16 KiB ~33 %.

A sort queue holds the frames of one ring by sequence number in ``queue_slots`` slots
(``seq & (slots-1)``): ``qhead`` is the lowest seq it may hold (last released + 1), ``qaru``
the highest seq below which nothing is missing, ``qhigh`` the highest seq seen. Internal
seqs are int64 and never wrap; the wire carries their low 32 bits (``seq_from_wire``).
"""
from coroproc.njit import njit

from .config import C_FRAME_BYTES, C_QUEUE_SLOTS
from .state import (EV_CONFIG, EV_LOG, K_EV_FULL, K_TX_FULL, LIST_WIDTH,
                    S_EV_IOFF, S_EV_N, S_EV_OFF, S_NOW_US, S_TX_N, S_TX_OFF)
from .wire import O_ENCAP, O_MC_GUARANTEE, ENCAPSULATED, copy_bytes, rd_i32, rd_u32


@njit(cache=True)
def seq_from_wire(w, ref):
    """The int64 seq nearest to ``ref`` whose low 32 bits are ``w`` (RFC 1982 style)."""
    d = (w - ref) & 0xFFFFFFFF
    if d >= 0x80000000:
        d -= 0x100000000
    return ref + d


@njit(cache=True)
def u32_lte(a, b):
    """a <= b in 32-bit serial arithmetic (Corosync's sq_lte_compare)."""
    d = (b - a) & 0xFFFFFFFF
    return d < 0x80000000


# ---- node sets ----

@njit(cache=True)
def lst_has(st, li, x):
    n = st.lists[li, 0]
    for i in range(1, n + 1):
        v = st.lists[li, i]
        if v == x:
            return True
        if v > x:
            return False
    return False


@njit(cache=True)
def lst_add(st, li, x):
    n = st.lists[li, 0]
    if lst_has(st, li, x):
        return
    assert n + 1 < LIST_WIDTH
    i = n
    while i > 0 and st.lists[li, i] > x:
        st.lists[li, i + 1] = st.lists[li, i]
        i -= 1
    st.lists[li, i + 1] = x
    st.lists[li, 0] = n + 1


@njit(cache=True)
def lst_clear(st, li):
    st.lists[li, 0] = 0


@njit(cache=True)
def lst_copy(st, dst, src):
    n = st.lists[src, 0]
    for i in range(n + 1):
        st.lists[dst, i] = st.lists[src, i]


@njit(cache=True)
def lst_union(st, dst, src):
    for i in range(1, st.lists[src, 0] + 1):
        lst_add(st, dst, st.lists[src, i])


@njit(cache=True)
def lst_sub(st, dst, a, b):
    """dst = a - b (dst must differ from a and b)."""
    k = 0
    for i in range(1, st.lists[a, 0] + 1):
        v = st.lists[a, i]
        if not lst_has(st, b, v):
            k += 1
            st.lists[dst, k] = v
    st.lists[dst, 0] = k


@njit(cache=True)
def lst_equal(st, a, b):
    n = st.lists[a, 0]
    if n != st.lists[b, 0]:
        return False
    for i in range(1, n + 1):
        if st.lists[a, i] != st.lists[b, i]:
            return False
    return True


@njit(cache=True)
def lst_subset(st, a, b):
    """a ⊆ b."""
    for i in range(1, st.lists[a, 0] + 1):
        if not lst_has(st, b, st.lists[a, i]):
            return False
    return True


@njit(cache=True)
def lst_load(st, li, buf, off, count):
    """Load ``count`` u32 nodeids from a frame (already validated unique) into set li."""
    st.lists[li, 0] = 0
    for i in range(count):
        o = off + 4 * i
        lst_add(st, li, rd_u32(buf, o))


@njit(cache=True)
def lst_min(st, li):
    if st.lists[li, 0] == 0:
        return -1
    return st.lists[li, 1]


@njit(cache=True)
def lst_next(st, li, me):
    """Successor of ``me`` on the ring formed by set li (wraps to the smallest)."""
    n = st.lists[li, 0]
    for i in range(1, n + 1):
        if st.lists[li, i] > me:
            return st.lists[li, i]
    return st.lists[li, 1] if n > 0 else me


# ---- sort queues ----

@njit(cache=True)
def sq_reinit(st, q, start_seq):
    slots = st.cfg[C_QUEUE_SLOTS]
    for i in range(slots):
        st.sq_flag[q, i] = 0
        st.sq_miss[q, i] = 0
    st.qhead[q] = start_seq + 1
    st.qaru[q] = start_seq
    st.qhigh[q] = start_seq


@njit(cache=True, inline="always")
def sq_in_range(st, q, seq):
    return st.qhead[q] <= seq < st.qhead[q] + st.cfg[C_QUEUE_SLOTS]


@njit(cache=True, inline="always")
def sq_slot(st, seq):
    return seq & (st.cfg[C_QUEUE_SLOTS] - 1)


@njit(cache=True, inline="always")
def sq_inuse(st, q, seq):
    if not sq_in_range(st, q, seq):
        return False
    i = sq_slot(st, seq)
    return st.sq_flag[q, i] != 0 and st.sq_seq[q, i] == seq


@njit(cache=True)
def sq_add(st, q, seq, buf, off, n):
    """Store a frame (caller checked range, absence and n <= frame bytes)."""
    i = sq_slot(st, seq)
    assert n <= st.cfg[C_FRAME_BYTES]
    copy_bytes(st.sq_data[q, i], 0, buf, off, n)
    st.sq_len[q, i] = n
    st.sq_seq[q, i] = seq
    st.sq_flag[q, i] = 1
    st.sq_miss[q, i] = 0
    if seq > st.qhigh[q]:
        st.qhigh[q] = seq


@njit(cache=True)
def sq_release_to(st, q, upto):
    """Forget every seq <= upto (they are delivered and held by every member)."""
    s = st.qhead[q]
    while s <= upto:
        i = sq_slot(st, s)
        st.sq_flag[q, i] = 0
        st.sq_miss[q, i] = 0
        s += 1
    if upto + 1 > st.qhead[q]:
        st.qhead[q] = upto + 1


@njit(cache=True)
def sq_update_aru(st, q):
    while st.qaru[q] < st.qhigh[q] and sq_inuse(st, q, st.qaru[q] + 1):
        st.qaru[q] += 1


@njit(cache=True, inline="always")
def sq_encapsulated(st, q, seq):
    return st.sq_data[q, sq_slot(st, seq), O_ENCAP] == ENCAPSULATED


@njit(cache=True, inline="always")
def sq_guarantee(st, q, seq):
    return rd_i32(st.sq_data[q, sq_slot(st, seq)], O_MC_GUARANTEE)


# ---- outputs ----

@njit(cache=True, inline="always")
def emit_tx(st, dest, buf, off, n):
    """Queue one frame for the network; dest 0 = every other node, else one nodeid."""
    row = st.s[S_TX_N]
    o = st.s[S_TX_OFF]
    if row >= st.tx_meta.shape[0] or o + n > st.tx_data.shape[0]:
        # Never silent: counted; Totem recovers a lost frame like a dropped datagram.
        st.cnt[K_TX_FULL] += 1
        return
    copy_bytes(st.tx_data, o, buf, off, n)
    st.tx_meta[row, 0] = o
    st.tx_meta[row, 1] = n
    st.tx_meta[row, 2] = dest
    st.s[S_TX_N] = row + 1
    st.s[S_TX_OFF] = o + n


@njit(cache=True, inline="always")
def ev_row(st, kind, a, b, c, d, e, off, ln):
    row = st.s[S_EV_N]
    if row >= st.ev_meta.shape[0]:
        st.cnt[K_EV_FULL] += 1
        return -1
    m = st.ev_meta[row]
    m[0] = kind
    m[1] = a
    m[2] = b
    m[3] = c
    m[4] = d
    m[5] = e
    m[6] = off
    m[7] = ln
    st.s[S_EV_N] = row + 1
    return row


@njit(cache=True, inline="always")
def ev_bytes(st, buf, off, n):
    """Copy n bytes into ev_data; returns their offset there, or -1 when full."""
    o = st.s[S_EV_OFF]
    if o + n > st.ev_data.shape[0]:
        st.cnt[K_EV_FULL] += 1
        return -1
    copy_bytes(st.ev_data, o, buf, off, n)
    st.s[S_EV_OFF] = o + n
    return o


@njit(cache=True)
def ev_list(st, li):
    """Copy node set li into ev_ints; returns the offset."""
    n = st.lists[li, 0]
    o = st.s[S_EV_IOFF]
    if o + n > st.ev_ints.shape[0]:
        st.cnt[K_EV_FULL] += 1
        return -1
    for i in range(n):
        st.ev_ints[o + i] = st.lists[li, 1 + i]
    st.s[S_EV_IOFF] = o + n
    return o


@njit(cache=True)
def emit_config(st, kind, li, rep, seq):
    o = ev_list(st, li)
    if o >= 0:
        ev_row(st, EV_CONFIG, kind, rep, seq, st.lists[li, 0], 0, o, st.lists[li, 0])


@njit(cache=True)
def emit_log(st, code, a, b, c):
    ev_row(st, EV_LOG, code, a, b, c, 0, 0, 0)


@njit(cache=True)
def emit_log_list(st, code, a, b, li):
    o = ev_list(st, li)
    if o >= 0:
        ev_row(st, EV_LOG, code, a, b, st.lists[li, 0], 0, o, st.lists[li, 0])


# ---- timers ----

@njit(cache=True, inline="always")
def timer_set(st, t, delay_us):
    st.timers[t] = st.s[S_NOW_US] + delay_us


@njit(cache=True, inline="always")
def timer_cancel(st, t):
    st.timers[t] = -1

