"""Membership: GATHER, COMMIT, RECOVERY and the return to OPERATIONAL (numba, no I/O).

Follows Corosync 3.1's totemsrp.c for every message and timer (memb_join_process,
the commit token's two rotations, the ORF token that starts recovery), with one deliberate
difference in how the old ring is finished (``operational_enter``): Corosync delivers
recovered old-ring messages approximately (its source says so); here every member of the
transitional configuration makes the same split from data all of them share — the
message set after recovery and the highest delivered seq reported in the commit token:

1. in the old regular configuration: the contiguous run after what this node delivered,
   stopping at the first hole and at the first SAFE message that no member of the
   transitional set had delivered;
2. the transitional configuration (old members ∩ new members that come from the same
   ring);
3. in the transitional configuration: the remaining messages, skipping holes; after the
   first hole, only those whose sender is in the transitional configuration (a message
   after a hole may depend on the missing one unless its sender is here to vouch);
4. the new regular configuration.
"""
from coroproc.njit import njit

from . import events as E
from . import totempg as pg
from .config import (C_CONSENSUS_US, C_JOIN_US, C_QUEUE_SLOTS, C_SEQNO_START, C_TOKEN_RETRANSMIT_US,
                     C_TOKEN_US, C_WAIT_TRANS_ACK)
from .deliver import emit_deliver
from .sq import (emit_config, emit_log, emit_log_list, emit_tx, ev_row, lst_add, lst_clear, lst_copy, lst_equal, lst_has, lst_load, lst_min, lst_next, lst_sub,
                 lst_subset, lst_union, seq_from_wire, sq_add, sq_encapsulated, sq_guarantee,
                 sq_in_range, sq_inuse, sq_reinit, sq_release_to, sq_slot, sq_update_aru,
                 timer_cancel,
                 timer_set)
from .state import (COMMIT, EV_RINGID, GATHER, K_COMMIT_ENTERED, K_CONSENSUS_TIMEOUTS,
                    K_CONTINUOUS_GATHER, K_FIREWALL_ENABLED_OR_NIC_FAILURE, K_GATHER_ENTERED,
                    K_MEMB_COMMIT_TOKEN_TX, K_MEMB_JOIN_TX, K_MEMB_MERGE_DETECT_TX,
                    K_OPERATIONAL_ENTERED, K_RECOVERY_ENTERED, K_RECOVERY_GAP,
                    K_RECOVERY_MSGS_ORIGINATED, K_TOKEN_HOLD_CANCEL_TX, K_ORF_TOKEN_TX,
                    L_CONSENSUS, L_FAILED, L_LEFT, L_MEMB, L_NEW_MEMB, L_PROC, L_SCRATCH,
                    L_SCRATCH2, L_SCRATCH3, L_TRANS, OPERATIONAL, RECOVERY, S_CONT_GATHER, S_CT_LEN,
                    S_FAILED_TO_RECV, S_HAVE_OLD_CONFIG, S_HIGH_DELIVERED, S_HIGH_RING_DELIVERED,
                    S_INSTALL_SEQ, S_LAST_TOKEN_SEQ_REF, S_LOW_RING_ARU, S_MERGE_OUTSTANDING,
                    S_MY_LAST_ARU, S_MY_ID, S_MY_LAST_SEQ,
                    S_MY_TOKEN_SEQ, S_OLD_REP, S_OLD_SEQ, S_ORF_TOKEN_DISCARD, S_ORIGINATED_ORF,
                    S_PBL, S_CBL, S_QO, S_QR, S_RETRANS_FLG_COUNT, S_RING_REP, S_RING_SEQ,
                    S_ROTATION_COUNTER, S_RQ_COUNT, S_RQ_HEAD, S_SAFE_POINT, S_SEQ_UNCHANGED,
                    S_SET_RETRANS_FLG, S_SELF_JOIN_LEN, S_SELF_JOIN_PENDING, S_STATE, S_TOK_DEST, S_TOK_LEN, S_TOKEN_HELD,
                    S_TOKEN_RING_ID_SEQ, S_TRC, S_ARU_COUNT, S_WAITING_TRANS_ACK, T_CONSENSUS, T_HOLD, T_JOIN, T_MERGE,
                    T_TOKEN, T_TOKEN_RETRANSMIT, T_TOKEN_WARNING)
from .wire import (COMMIT_BYTES, COMMIT_ENTRY_BYTES, ENCAPSULATED, JOIN_BYTES, MCAST_BYTES,
                   MERGE_DETECT_BYTES, HOLD_CANCEL_BYTES, O_CT_ADDR_N, O_CT_MEMB_INDEX,
                   O_CT_RETRANS_FLG, O_CT_RING_REP, O_CT_RING_SEQ, O_CT_TOKEN_SEQ, O_HC_RING_REP,
                   O_HC_RING_SEQ, O_JN_FAILED_N, O_JN_FROM, O_JN_PROC_N, O_JN_RING_SEQ,
                   O_MC_FROM, O_MC_NODE_ID, O_MC_RING_REP, O_MC_RING_SEQ, O_MC_SEQ, O_MD_FROM, O_MD_RING_REP, O_MD_RING_SEQ, O_ME_ARU, O_ME_HIGH_DELIVERED,
                   O_ME_RECEIVED_FLG, O_ME_RING_REP, O_ME_RING_SEQ, O_NODEID, O_TK_ARU,
                   O_TK_ARU_ADDR, O_TK_BACKLOG, O_TK_FCC, O_TK_RETRANS_FLG, O_TK_RING_REP,
                   O_TK_RING_SEQ, O_TK_RTR_N, O_TK_SEQ, O_TK_TOKEN_SEQ, T_COMMIT_TOKEN,
                   T_MEMB_JOIN, T_MERGE_DETECT, T_ORF_TOKEN, T_TOKEN_HOLD_CANCEL, T_MCAST,
                   TOKEN_BYTES, copy_bytes, rd_i32, rd_u32, rd_u64, wr_header, wr_u32,
                   wr_u64)

MAX_NO_CONT_GATHER = 3


# ---- sending membership messages ----

@njit(cache=True)
def _join_frame(st, header_nodeid, proc_li, failed_li, last_failed):
    """Build a memb_join in st.scratch from two node sets; ``last_failed`` (if not 0) is
    appended after the failed set: Corosync reads the last failed entry of a leave as the
    node that leaves. Returns the frame length."""
    b = st.scratch
    np_ = st.lists[proc_li, 0]
    nf = st.lists[failed_li, 0]
    wr_header(b, 0, T_MEMB_JOIN, 0, header_nodeid, 0)
    wr_u32(b, O_JN_FROM, st.s[S_MY_ID])
    wr_u32(b, O_JN_PROC_N, np_)
    wr_u32(b, O_JN_FAILED_N, nf + (1 if last_failed else 0))
    wr_u64(b, O_JN_RING_SEQ, st.s[S_RING_SEQ])
    o = JOIN_BYTES
    for i in range(np_):
        wr_u32(b, o, st.lists[proc_li, 1 + i])
        o += 4
    for i in range(nf):
        wr_u32(b, o, st.lists[failed_li, 1 + i])
        o += 4
    if last_failed:
        wr_u32(b, o, last_failed)
        o += 4
    st.cnt[K_MEMB_JOIN_TX] += 1
    emit_tx(st, 0, b, 0, o)
    return o


@njit(cache=True)
def join_send(st):
    o = _join_frame(st, st.s[S_MY_ID], L_PROC, L_FAILED, 0)
    # Corosync hears its own join back from the network (udpu sends to every member,
    # itself included); that is how a lone node reaches consensus. Here the core loops
    # it back itself once the current input is handled (see srp.loop_self).
    copy_bytes(st.join_buf, 0, st.scratch, 0, o)
    st.s[S_SELF_JOIN_LEN] = o
    st.s[S_SELF_JOIN_PENDING] = 1


@njit(cache=True)
def leave_send(st):
    """Corosync's memb_leave_message_send: a join from 'nodeid 0' whose failed list ends
    with us, and whose proc list leaves us out."""
    me = st.s[S_MY_ID]
    lst_clear(st, L_SCRATCH2)
    lst_add(st, L_SCRATCH2, me)
    lst_sub(st, L_SCRATCH, L_PROC, L_SCRATCH2)
    lst_sub(st, L_SCRATCH3, L_FAILED, L_SCRATCH2)
    _join_frame(st, 0, L_SCRATCH, L_SCRATCH3, me)
    lst_add(st, L_FAILED, me)


@njit(cache=True)
def merge_detect_send(st):
    b = st.scratch
    me = st.s[S_MY_ID]
    wr_header(b, 0, T_MERGE_DETECT, 0, me, 0)
    wr_u32(b, O_MD_FROM, me)
    wr_u32(b, O_MD_RING_REP, st.s[S_RING_REP])
    wr_u64(b, O_MD_RING_SEQ, st.s[S_RING_SEQ])
    st.cnt[K_MEMB_MERGE_DETECT_TX] += 1
    emit_tx(st, 0, b, 0, MERGE_DETECT_BYTES)


@njit(cache=True)
def hold_cancel_send(st):
    if st.s[S_TOKEN_HELD] == 0:
        return
    st.s[S_TOKEN_HELD] = 0
    # Corosync's sender hears its own cancel, which restarts the count of quiet
    # rotations there as on every member; ours does not come back to us
    st.s[S_SEQ_UNCHANGED] = 0
    b = st.scratch
    wr_header(b, 0, T_TOKEN_HOLD_CANCEL, 0, st.s[S_MY_ID], 0)
    wr_u32(b, O_HC_RING_REP, st.s[S_RING_REP])
    wr_u64(b, O_HC_RING_SEQ, st.s[S_RING_SEQ])
    st.cnt[K_TOKEN_HOLD_CANCEL_TX] += 1
    emit_tx(st, 0, b, 0, HOLD_CANCEL_BYTES)


@njit(cache=True)
def token_store_send(st, buf, n, dest, forward):
    """Keep the token for retransmission, and send it unless the representative holds it."""
    copy_bytes(st.tok_buf, 0, buf, 0, n)
    st.s[S_TOK_LEN] = n
    st.s[S_TOK_DEST] = dest
    if forward:
        emit_tx(st, dest, buf, 0, n)


@njit(cache=True)
def token_retransmit(st):
    n = st.s[S_TOK_LEN]
    if n > 0:
        if st.s[S_RING_REP] == st.s[S_MY_ID]:
            # the representative's held token is on its way again: no longer in hand
            # (another member's flag means "the representative holds it" and stays)
            st.s[S_TOKEN_HELD] = 0
        emit_tx(st, st.s[S_TOK_DEST], st.tok_buf, 0, n)


# ---- consensus ----

@njit(cache=True)
def consensus_reset(st):
    lst_clear(st, L_CONSENSUS)
    lst_add(st, L_CONSENSUS, st.s[S_MY_ID])


@njit(cache=True)
def consensus_agreed(st):
    lst_sub(st, L_SCRATCH2, L_PROC, L_FAILED)
    return lst_subset(st, L_SCRATCH2, L_CONSENSUS)


@njit(cache=True)
def lowest_in_config(st):
    lst_sub(st, L_SCRATCH2, L_PROC, L_FAILED)
    return lst_min(st, L_SCRATCH2) == st.s[S_MY_ID]


@njit(cache=True)
def consensus_timeout_expired(st):
    st.cnt[K_CONSENSUS_TIMEOUTS] += 1
    if consensus_agreed(st):
        consensus_reset(st)
        timer_set(st, T_TOKEN, st.cfg[C_TOKEN_US])
    else:
        # every member that has not agreed is declared failed
        lst_sub(st, L_SCRATCH2, L_PROC, L_CONSENSUS)
        lst_union(st, L_FAILED, L_SCRATCH2)
        gather_enter(st, E.GS_CONSENSUS_TIMEOUT)


# ---- state transitions ----

@njit(cache=True)
def gather_enter(st, reason):
    st.s[S_ORF_TOKEN_DISCARD] = 1
    st.s[S_TOKEN_HELD] = 0
    st.s[S_ORIGINATED_ORF] = 0
    lst_add(st, L_PROC, st.s[S_MY_ID])
    join_send(st)
    timer_set(st, T_JOIN, st.cfg[C_JOIN_US])
    timer_set(st, T_CONSENSUS, st.cfg[C_CONSENSUS_US])
    timer_cancel(st, T_TOKEN_RETRANSMIT)
    timer_cancel(st, T_TOKEN)
    timer_cancel(st, T_MERGE)
    timer_cancel(st, T_HOLD)
    timer_cancel(st, T_TOKEN_WARNING)
    st.s[S_MERGE_OUTSTANDING] = 0
    consensus_reset(st)
    st.s[S_STATE] = GATHER
    st.cnt[K_GATHER_ENTERED] += 1
    emit_log(st, E.LOG_GATHER_ENTER, reason, 0, 0)
    if reason == E.GS_CONSENSUS_TIMEOUT:
        st.s[S_CONT_GATHER] += 1
        st.cnt[K_CONTINUOUS_GATHER] = st.s[S_CONT_GATHER]
        if st.s[S_CONT_GATHER] > MAX_NO_CONT_GATHER:
            st.cnt[K_FIREWALL_ENABLED_OR_NIC_FAILURE] = 1
            emit_log(st, E.LOG_FIREWALL, st.s[S_CONT_GATHER], 0, 0)


@njit(cache=True)
def commit_token_create(st):
    b = st.ct_buf
    me = st.s[S_MY_ID]
    lst_sub(st, L_SCRATCH, L_PROC, L_FAILED)
    n = st.lists[L_SCRATCH, 0]
    wr_header(b, 0, T_COMMIT_TOKEN, 0, me, 0)
    wr_u32(b, O_CT_TOKEN_SEQ, 0)
    wr_u32(b, O_CT_RING_REP, me)
    wr_u64(b, O_CT_RING_SEQ, st.s[S_TOKEN_RING_ID_SEQ] + 4)
    wr_u32(b, O_CT_RETRANS_FLG, 0)
    wr_u32(b, O_CT_MEMB_INDEX, 0)
    wr_u32(b, O_CT_ADDR_N, n)
    for i in range(n):
        wr_u32(b, COMMIT_BYTES + 4 * i, st.lists[L_SCRATCH, 1 + i])
    e0 = COMMIT_BYTES + 4 * n
    for k in range(n * COMMIT_ENTRY_BYTES):
        b[e0 + k] = 0
    st.s[S_CT_LEN] = e0 + n * COMMIT_ENTRY_BYTES


@njit(cache=True)
def commit_token_update(st):
    """Fill this node's entry of the commit token (Corosync's memb_state_commit_token_update)."""
    b = st.ct_buf
    n = rd_i32(b, O_CT_ADDR_N)
    idx = rd_i32(b, O_CT_MEMB_INDEX)
    lst_load(st, L_NEW_MEMB, b, COMMIT_BYTES, n)
    qo = st.s[S_QO]
    e = COMMIT_BYTES + 4 * n + idx * COMMIT_ENTRY_BYTES
    wr_u32(b, e + O_ME_RING_REP, st.s[S_OLD_REP])
    wr_u64(b, e + O_ME_RING_SEQ, st.s[S_OLD_SEQ])
    wr_u32(b, e + O_ME_ARU, st.qaru[qo] & 0xFFFFFFFF)
    wr_u32(b, e + O_ME_HIGH_DELIVERED, st.s[S_HIGH_DELIVERED] & 0xFFFFFFFF)
    wr_u32(b, e + O_ME_RECEIVED_FLG, 1 if st.qaru[qo] == st.qhigh[qo] else 0)
    wr_u32(b, O_NODEID, st.s[S_MY_ID])
    wr_u32(b, O_CT_MEMB_INDEX, idx + 1)


@njit(cache=True)
def commit_token_send(st, recovery):
    b = st.ct_buf
    wr_u32(b, O_CT_TOKEN_SEQ, (rd_u32(b, O_CT_TOKEN_SEQ) + 1) & 0xFFFFFFFF)
    wr_u32(b, O_NODEID, st.s[S_MY_ID])
    n = rd_i32(b, O_CT_ADDR_N)
    idx = rd_i32(b, O_CT_MEMB_INDEX)
    if recovery:
        dest = lst_next(st, L_NEW_MEMB, st.s[S_MY_ID])
    else:
        dest = rd_u32(b, COMMIT_BYTES + 4 * (idx % n))
    st.cnt[K_MEMB_COMMIT_TOKEN_TX] += 1
    token_store_send(st, b, st.s[S_CT_LEN], dest, True)
    timer_set(st, T_TOKEN_RETRANSMIT, st.cfg[C_TOKEN_RETRANSMIT_US])


@njit(cache=True)
def commit_enter(st):
    commit_token_update(st)
    timer_cancel(st, T_JOIN)
    timer_cancel(st, T_CONSENSUS)
    b = st.ct_buf
    st.s[S_RING_REP] = rd_u32(b, O_CT_RING_REP)
    st.s[S_RING_SEQ] = rd_u64(b, O_CT_RING_SEQ)
    # Persist before the ring id is used, as Corosync's memb_ring_id_store does.
    ev_row(st, EV_RINGID, 0, st.s[S_RING_REP], st.s[S_RING_SEQ], 0, 0, 0, 0)
    st.s[S_TOKEN_RING_ID_SEQ] = st.s[S_RING_SEQ]
    st.s[S_STATE] = COMMIT
    timer_set(st, T_TOKEN_RETRANSMIT, st.cfg[C_TOKEN_RETRANSMIT_US])
    timer_set(st, T_TOKEN, st.cfg[C_TOKEN_US])
    st.cnt[K_COMMIT_ENTERED] += 1
    st.s[S_CONT_GATHER] = 0
    st.s[S_TRC] = 0
    st.s[S_PBL] = 0
    st.s[S_CBL] = 0
    # The new ring's queue starts empty here (not at recovery), so that recovery
    # messages that overtake the commit token are kept rather than retransmitted.
    sq_reinit(st, st.s[S_QR], st.cfg[C_SEQNO_START])
    commit_token_send(st, False)


@njit(cache=True)
def _encapsulate(st, qo, seq):
    """Queue old-ring frame ``seq`` for re-multicast in the new ring (Corosync's recovery)."""
    k = st.s[S_RQ_HEAD] + st.s[S_RQ_COUNT]
    slots = st.cfg[C_QUEUE_SLOTS]
    if st.s[S_RQ_COUNT] >= slots:
        return
    k = k % slots
    i = sq_slot(st, seq)
    n = st.sq_len[qo, i]
    d = st.rq_data[k]
    if n + MCAST_BYTES > d.shape[0]:
        return
    me = st.s[S_MY_ID]
    for x in range(MCAST_BYTES):
        d[x] = 0
    wr_header(d, 0, T_MCAST, ENCAPSULATED, me, 0)
    wr_u32(d, O_MC_FROM, me)
    wr_u32(d, O_MC_RING_REP, st.s[S_RING_REP])
    wr_u64(d, O_MC_RING_SEQ, st.s[S_RING_SEQ])
    wr_u32(d, O_MC_NODE_ID, me)
    copy_bytes(d, MCAST_BYTES, st.sq_data[qo, i], 0, n)
    st.rq_len[k] = n + MCAST_BYTES
    st.s[S_RQ_COUNT] += 1
    st.cnt[K_RECOVERY_MSGS_ORIGINATED] += 1


@njit(cache=True)
def _queue_resends(st, qo, low, e0, n):
    """Queue the old-ring frames above ``low`` this node must re-send in recovery.

    Corosync has every transitional member re-send everything it holds above the lowest
    aru, so each frame travels once per member. Here a frame at or below some member's
    aru (that member surely holds it) is re-sent only by the lowest such member; only
    frames above every aru, which nobody can tell who holds, go out from each holder.
    Every member computes the same assignment from the commit token.
    """
    b = st.ct_buf
    me = st.s[S_MY_ID]
    seq = low + 1
    while seq <= st.qhigh[qo]:
        if sq_inuse(st, qo, seq) and not sq_encapsulated(st, qo, seq):
            designated = -1
            for i in range(n):
                node = rd_u32(b, COMMIT_BYTES + 4 * i)
                if not lst_has(st, L_TRANS, node):
                    continue
                aru = seq_from_wire(rd_u32(b, e0 + i * COMMIT_ENTRY_BYTES + O_ME_ARU), st.qaru[qo])
                if aru >= seq and (designated < 0 or node < designated):
                    designated = node
            if designated < 0 or designated == me:
                _encapsulate(st, qo, seq)
        seq += 1


@njit(cache=True)
def recovery_enter(st):
    """Second visit of the commit token: compute the transitional set, queue re-sends."""
    b = st.ct_buf
    n = rd_i32(b, O_CT_ADDR_N)
    st.s[S_ORF_TOKEN_DISCARD] = 0
    commit_token_send(st, True)
    st.s[S_MY_TOKEN_SEQ] = 0xFFFFFFFF  # SEQNO_START_TOKEN - 1
    qo = st.s[S_QO]
    lst_clear(st, L_TRANS)
    low = st.qhigh[qo]
    hrd = st.s[S_HIGH_DELIVERED]
    e0 = COMMIT_BYTES + 4 * n
    if st.s[S_HAVE_OLD_CONFIG]:
        for i in range(n):
            e = e0 + i * COMMIT_ENTRY_BYTES
            node = rd_u32(b, COMMIT_BYTES + 4 * i)
            if (rd_u32(b, e + O_ME_RING_REP) == st.s[S_OLD_REP]
                    and rd_u64(b, e + O_ME_RING_SEQ) == st.s[S_OLD_SEQ]
                    and lst_has(st, L_MEMB, node)):
                lst_add(st, L_TRANS, node)
                aru = seq_from_wire(rd_u32(b, e + O_ME_ARU), st.qaru[qo])
                hd = seq_from_wire(rd_u32(b, e + O_ME_HIGH_DELIVERED), st.qaru[qo])
                if aru < low:
                    low = aru
                if hd > hrd:
                    hrd = hd
    st.s[S_LOW_RING_ARU] = low
    st.s[S_HIGH_RING_DELIVERED] = hrd
    st.s[S_RQ_HEAD] = 0
    st.s[S_RQ_COUNT] = 0
    if st.s[S_HAVE_OLD_CONFIG]:
        _queue_resends(st, qo, low, e0, n)
    start = st.cfg[C_SEQNO_START]
    st.s[S_ARU_COUNT] = 0
    st.s[S_SEQ_UNCHANGED] = 0
    st.s[S_INSTALL_SEQ] = start
    st.s[S_RETRANS_FLG_COUNT] = 0
    st.s[S_ROTATION_COUNTER] = 0
    st.s[S_SET_RETRANS_FLG] = 0
    st.s[S_LAST_TOKEN_SEQ_REF] = start
    st.s[S_MY_LAST_ARU] = start
    st.s[S_MY_LAST_SEQ] = start
    timer_set(st, T_TOKEN, st.cfg[C_TOKEN_US])
    timer_set(st, T_TOKEN_RETRANSMIT, st.cfg[C_TOKEN_RETRANSMIT_US])
    st.s[S_STATE] = RECOVERY
    st.cnt[K_RECOVERY_ENTERED] += 1
    st.s[S_CONT_GATHER] = 0


@njit(cache=True)
def orf_token_send_initial(st):
    b = st.scratch
    me = st.s[S_MY_ID]
    start = st.cfg[C_SEQNO_START]
    wr_header(b, 0, T_ORF_TOKEN, 0, me, 0)
    wr_u32(b, O_TK_SEQ, start & 0xFFFFFFFF)
    wr_u32(b, O_TK_TOKEN_SEQ, 0)
    flg = 1 if st.s[S_RQ_COUNT] > 0 else 0
    st.s[S_SET_RETRANS_FLG] = flg
    wr_u32(b, O_TK_RETRANS_FLG, flg)
    wr_u32(b, O_TK_ARU, (start - 1) & 0xFFFFFFFF)
    wr_u32(b, O_TK_ARU_ADDR, me)
    wr_u32(b, O_TK_RING_REP, st.s[S_RING_REP])
    wr_u64(b, O_TK_RING_SEQ, st.s[S_RING_SEQ])
    wr_u32(b, O_TK_BACKLOG, 0)
    wr_u32(b, O_TK_FCC, 0)
    wr_u32(b, O_TK_RTR_N, 0)
    st.cnt[K_ORF_TOKEN_TX] += 1
    token_store_send(st, b, TOKEN_BYTES, lst_next(st, L_NEW_MEMB, me), True)


@njit(cache=True)
def unwrap_recovered(st, d, n):
    """An encapsulated old-ring frame arrived in the ring being formed: put the inner frame
    into the old ring's queue at its old seq (Corosync does this at the end of recovery;
    doing it on arrival lets the new ring release its recovery frames as they become
    stable, so a long recovery cannot fill the new ring's queue)."""
    if not st.s[S_HAVE_OLD_CONFIG]:
        return
    if (rd_u32(d, MCAST_BYTES + O_MC_RING_REP) != st.s[S_OLD_REP]
            or rd_u64(d, MCAST_BYTES + O_MC_RING_SEQ) != st.s[S_OLD_SEQ]):
        return
    qo = st.s[S_QO]
    old = seq_from_wire(rd_u32(d, MCAST_BYTES + O_MC_SEQ), st.qaru[qo])
    if sq_in_range(st, qo, old) and not sq_inuse(st, qo, old):
        sq_add(st, qo, old, d, MCAST_BYTES, n - MCAST_BYTES)
        sq_update_aru(st, qo)


@njit(cache=True)
def _finish_old_ring(st):
    """Steps 1-3 of the module docstring; returns nothing, emits deliveries and the trans config."""
    qo = st.s[S_QO]
    hrd = st.s[S_HIGH_RING_DELIVERED]
    seq = st.s[S_HIGH_DELIVERED] + 1
    while seq <= st.qhigh[qo] and sq_inuse(st, qo, seq):
        if seq > hrd and sq_guarantee(st, qo, seq) == 1:
            break
        emit_deliver(st, qo, seq)
        st.s[S_HIGH_DELIVERED] = seq
        seq += 1
    emit_config(st, 0, L_TRANS, st.s[S_RING_REP], st.s[S_RING_SEQ])
    after_hole = False
    holes = 0
    while seq <= st.qhigh[qo]:
        if not sq_inuse(st, qo, seq):
            after_hole = True
            holes += 1
        elif not sq_encapsulated(st, qo, seq):
            sender = rd_u32(st.sq_data[qo, sq_slot(st, seq)], O_NODEID)
            if not after_hole or lst_has(st, L_TRANS, sender):
                emit_deliver(st, qo, seq)
        st.s[S_HIGH_DELIVERED] = seq
        seq += 1
    if holes > 0:
        st.cnt[K_RECOVERY_GAP] += holes
        emit_log(st, E.LOG_RECOVERY_GAP, holes, 0, 0)


@njit(cache=True)
def operational_enter(st):
    st.s[S_ORIGINATED_ORF] = 0
    consensus_reset(st)
    if st.s[S_HAVE_OLD_CONFIG]:
        _finish_old_ring(st)
    rep = st.s[S_RING_REP]
    rseq = st.s[S_RING_SEQ]
    lst_sub(st, L_SCRATCH, L_MEMB, L_TRANS)        # left
    lst_sub(st, L_SCRATCH2, L_NEW_MEMB, L_TRANS)   # joined
    lst_copy(st, L_MEMB, L_NEW_MEMB)
    emit_config(st, 1, L_NEW_MEMB, rep, rseq)
    emit_log_list(st, E.LOG_MEMBERSHIP_FORMED, rep, rseq, L_NEW_MEMB)
    if st.lists[L_SCRATCH2, 0] > 0:
        emit_log_list(st, E.LOG_JOINED, 0, 0, L_SCRATCH2)
    if st.lists[L_SCRATCH, 0] > 0:
        emit_log_list(st, E.LOG_LEFT, 0, 0, L_SCRATCH)
        lst_sub(st, L_SCRATCH2, L_SCRATCH, L_LEFT)  # left without a leave message
        if st.lists[L_SCRATCH2, 0] > 0:
            emit_log_list(st, E.LOG_FAILED, 0, 0, L_SCRATCH2)
    lst_clear(st, L_LEFT)
    # The new ring's queue becomes the operational one, without its recovery traffic:
    # every member holds all of it (that is what ended recovery), it is never delivered,
    # and keeping it would have a later recovery wrap it a second time.
    qo = st.s[S_QO]
    qr = st.s[S_QR]
    st.s[S_QO] = qr
    st.s[S_QR] = qo
    last = st.qhead[qr] - 1   # recovery frames already released as stable are gone
    while sq_inuse(st, qr, last + 1) and sq_encapsulated(st, qr, last + 1):
        last += 1
    sq_release_to(st, qr, last)
    st.s[S_HIGH_DELIVERED] = last
    st.s[S_SAFE_POINT] = st.cfg[C_SEQNO_START]
    st.s[S_MY_LAST_ARU] = st.cfg[C_SEQNO_START]
    lst_copy(st, L_PROC, L_NEW_MEMB)
    lst_clear(st, L_FAILED)
    st.s[S_OLD_REP] = rep
    st.s[S_OLD_SEQ] = rseq
    st.s[S_HAVE_OLD_CONFIG] = 1
    st.s[S_STATE] = OPERATIONAL
    st.cnt[K_OPERATIONAL_ENTERED] += 1
    st.s[S_CONT_GATHER] = 0
    st.s[S_FAILED_TO_RECV] = 0
    # A message whose first fragments went out in the old ring starts over in this one.
    pg.pg_restart_partial(st.pg_q_meta, st.pg_frag)
    pg.pg_restart_partial(st.pg_qt_meta, st.pg_frag_t)
    # Corosync's waiting_trans_ack: what was queued before this configuration waits until
    # the node's service sync ends (srp_trans_ack); only sync traffic goes out meanwhile,
    # so no application message is ordered while the services still hold the old view.
    if st.cfg[C_WAIT_TRANS_ACK]:
        if st.s[S_WAITING_TRANS_ACK] == 0:
            emit_log(st, E.LOG_TRANS_ACK, 1, 0, 0)
        st.s[S_WAITING_TRANS_ACK] = 1


# ---- message handlers ----

@njit(cache=True)
def _ignore_join_under_operational(st, b, from_id):
    p = rd_u32(b, O_JN_PROC_N)
    f = rd_u32(b, O_JN_FAILED_N)
    me = st.s[S_MY_ID]
    for i in range(f):
        if rd_u32(b, JOIN_BYTES + 4 * (p + i)) == me:
            return True
    return lst_has(st, L_MEMB, from_id) and rd_u64(b, O_JN_RING_SEQ) < st.s[S_RING_SEQ]


@njit(cache=True)
def join_process(st, b):
    """Corosync's memb_join_process, rule for rule."""
    p = rd_u32(b, O_JN_PROC_N)
    f = rd_u32(b, O_JN_FAILED_N)
    from_id = rd_u32(b, O_JN_FROM)
    leaving = rd_u32(b, O_NODEID) == 0
    if leaving and f > 0:
        lst_add(st, L_LEFT, rd_u32(b, JOIN_BYTES + 4 * (p + f - 1)))
    lst_load(st, L_SCRATCH, b, JOIN_BYTES, p)
    lst_load(st, L_SCRATCH2, b, JOIN_BYTES + 4 * p, f)
    gathered = False
    if lst_equal(st, L_SCRATCH, L_PROC) and lst_equal(st, L_SCRATCH2, L_FAILED):
        if not leaving:
            lst_add(st, L_CONSENSUS, from_id)
        agreed = consensus_agreed(st)
        if agreed and st.s[S_FAILED_TO_RECV] == 1:
            st.s[S_FAILED_TO_RECV] = 0
            lst_clear(st, L_PROC)
            lst_add(st, L_PROC, st.s[S_MY_ID])
            lst_clear(st, L_FAILED)
            commit_token_create(st)
            commit_enter(st)
            return
        if agreed and lowest_in_config(st):
            commit_token_create(st)
            commit_enter(st)
            return
    elif lst_subset(st, L_SCRATCH, L_PROC) and lst_subset(st, L_SCRATCH2, L_FAILED):
        pass
    elif lst_has(st, L_FAILED, from_id):
        pass
    else:
        before = st.lists[L_PROC, 0] + st.lists[L_FAILED, 0]  # the sets only grow here
        lst_union(st, L_PROC, L_SCRATCH)
        if lst_has(st, L_SCRATCH2, st.s[S_MY_ID]):
            lst_add(st, L_FAILED, from_id)
        elif lst_has(st, L_MEMB, from_id):
            if not lst_has(st, L_FAILED, from_id):
                lst_union(st, L_FAILED, L_SCRATCH2)
            else:
                lst_sub(st, L_SCRATCH, L_SCRATCH2, L_MEMB)
                lst_union(st, L_FAILED, L_SCRATCH)
        changed = st.lists[L_PROC, 0] + st.lists[L_FAILED, 0] != before
        # Corosync re-enters GATHER here even when the join taught it nothing; with
        # several nodes holding failed sets they cannot adopt from each other, every join
        # then triggers a join from every receiver (a storm that grows geometrically)
        # and each re-entry restarts the consensus timer, so it never expires. A join
        # that changes nothing is already answered by our last join and the join timer.
        if changed or st.s[S_STATE] != GATHER:
            gather_enter(st, E.GS_MERGE_DURING_JOIN)
        gathered = True
    if not gathered and st.s[S_STATE] == OPERATIONAL:
        gather_enter(st, E.GS_JOIN_OPERATIONAL)


@njit(cache=True)
def recovery_token_loss(st):
    gather_enter(st, E.GS_TOKEN_LOST_RECOVERY)


@njit(cache=True)
def on_join(st, b):
    from_id = rd_u32(b, O_JN_FROM)
    ring_seq = rd_u64(b, O_JN_RING_SEQ)
    if st.s[S_TOKEN_RING_ID_SEQ] < ring_seq:
        st.s[S_TOKEN_RING_ID_SEQ] = ring_seq
    state = st.s[S_STATE]
    if state == OPERATIONAL:
        if not _ignore_join_under_operational(st, b, from_id):
            join_process(st, b)
    elif state == GATHER:
        join_process(st, b)
    elif lst_has(st, L_NEW_MEMB, from_id) and ring_seq >= st.s[S_RING_SEQ]:
        join_process(st, b)
        if state == COMMIT:
            gather_enter(st, E.GS_JOIN_COMMIT)
        else:
            gather_enter(st, E.GS_JOIN_RECOVERY)


@njit(cache=True)
def on_commit_token(st, b, n):
    state = st.s[S_STATE]
    me = st.s[S_MY_ID]
    cnt = rd_i32(b, O_CT_ADDR_N)
    idx = rd_i32(b, O_CT_MEMB_INDEX)
    rep = rd_u32(b, O_CT_RING_REP)
    rseq = rd_u64(b, O_CT_RING_SEQ)
    if state == GATHER:
        lst_sub(st, L_SCRATCH, L_PROC, L_FAILED)
        lst_load(st, L_SCRATCH2, b, COMMIT_BYTES, cnt)
        if (lst_equal(st, L_SCRATCH, L_SCRATCH2) and rseq > st.s[S_RING_SEQ]
                and idx < cnt and rd_u32(b, COMMIT_BYTES + 4 * idx) == me):
            ln = COMMIT_BYTES + cnt * (4 + COMMIT_ENTRY_BYTES)
            for k in range(ln):
                st.ct_buf[k] = b[k]
            st.s[S_CT_LEN] = ln
            commit_enter(st)
    elif state == COMMIT:
        if rseq == st.s[S_RING_SEQ] and rep == st.s[S_RING_REP] and idx == cnt:
            ln = COMMIT_BYTES + cnt * (4 + COMMIT_ENTRY_BYTES)
            for k in range(ln):
                st.ct_buf[k] = b[k]
            st.s[S_CT_LEN] = ln
            recovery_enter(st)
    elif state == RECOVERY:
        if (me == st.s[S_RING_REP] and rseq == st.s[S_RING_SEQ] and rep == st.s[S_RING_REP]
                and st.s[S_ORIGINATED_ORF] == 0):
            st.s[S_ORIGINATED_ORF] = 1
            orf_token_send_initial(st)
            timer_set(st, T_TOKEN, st.cfg[C_TOKEN_US])
            timer_set(st, T_TOKEN_RETRANSMIT, st.cfg[C_TOKEN_RETRANSMIT_US])


@njit(cache=True)
def on_merge_detect(st, b):
    if (rd_u32(b, O_MD_RING_REP) == st.s[S_RING_REP]
            and rd_u64(b, O_MD_RING_SEQ) == st.s[S_RING_SEQ]):
        return
    from_id = rd_u32(b, O_MD_FROM)
    state = st.s[S_STATE]
    if state == OPERATIONAL:
        lst_add(st, L_PROC, from_id)
        gather_enter(st, E.GS_MERGE_OPERATIONAL)
    elif state == GATHER and not lst_has(st, L_PROC, from_id):
        lst_add(st, L_PROC, from_id)
        gather_enter(st, E.GS_MERGE_GATHER)


@njit(cache=True)
def on_foreign_mcast(st, from_id):
    state = st.s[S_STATE]
    if state == OPERATIONAL:
        lst_add(st, L_PROC, from_id)
        gather_enter(st, E.GS_FOREIGN_OPERATIONAL)
        return True
    if state == GATHER and not lst_has(st, L_PROC, from_id):
        lst_add(st, L_PROC, from_id)
        gather_enter(st, E.GS_FOREIGN_GATHER)
        return True
    return False
