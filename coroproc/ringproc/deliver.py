"""Delivery of ordered frames to the layer above (totempg), as EV_DELIVER rows.

Agreed order is sequence order; a frame sent with guarantee SAFE waits (and with it every
later frame, so the total order holds) until the token has shown that every member holds
it: ``seq <= safe point``, the minimum of the token's aru over two successive visits and
this node's own aru — the same test Corosync uses to free a message. Corosync declares
SAFE and delivers it as agreed; here it means what the EVS paper means.
"""
from coroproc.njit import njit

from .sq import ev_bytes, ev_row, sq_encapsulated, sq_guarantee, sq_inuse, sq_slot
from .state import (EV_DELIVER, K_DELIVERED_FRAMES, K_SAFE_HELD, S_HIGH_DELIVERED, S_QO,
                    S_SAFE_POINT)
from .wire import (GUARANTEE_SAFE, MCAST_BYTES, O_MC_RING_REP, O_MC_RING_SEQ, O_NODEID,
                   rd_u32, rd_u64)


@njit(cache=True, inline="always")
def emit_deliver(st, q, seq):
    """One frame up: sender, the ring that ordered it, its seq and guarantee, payload."""
    i = sq_slot(st, seq)
    d = st.sq_data[q, i]
    n = st.sq_len[q, i]
    o = ev_bytes(st, d, MCAST_BYTES, n - MCAST_BYTES)
    if o < 0:
        return
    st.cnt[K_DELIVERED_FRAMES] += 1
    ev_row(st, EV_DELIVER, rd_u32(d, O_NODEID), rd_u32(d, O_MC_RING_REP),
           rd_u64(d, O_MC_RING_SEQ), seq, sq_guarantee(st, q, seq), o, n - MCAST_BYTES)


@njit(cache=True)
def deliver_ring(st):
    """Deliver what is contiguous in the operational ring (Corosync's messages_deliver_to_app)."""
    q = st.s[S_QO]
    while True:
        seq = st.s[S_HIGH_DELIVERED] + 1
        if not sq_inuse(st, q, seq):
            return
        if sq_encapsulated(st, q, seq):
            # recovery traffic of this ring: already moved into the old ring's queue
            st.s[S_HIGH_DELIVERED] = seq
            continue
        if sq_guarantee(st, q, seq) == GUARANTEE_SAFE and seq > st.s[S_SAFE_POINT]:
            st.cnt[K_SAFE_HELD] += 1
            return
        emit_deliver(st, q, seq)
        st.s[S_HIGH_DELIVERED] = seq
