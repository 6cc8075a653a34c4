"""The ORF token and ordered multicast: the per-message path of the Totem core (numba).

On each token visit a node frees what every member holds, retransmits what others asked
for, sends new frames within the flow-control budget (max_messages per visit, window_size
per rotation shared by backlog), lowers the token's aru to what it has, appends what it is
missing to the retransmit list, and forwards the token to its successor. Corosync 3.1's
message_handler_orf_token in behaviour and wire format.
"""
from coroproc.njit import njit

from . import events as E
from . import totempg as pg
from .config import (C_CANCEL_HOLD_ON_RETRANSMIT, C_FAIL_RECV_CONST, C_HOLD_US,
                     C_IDLE_TOKEN_PACE_US, C_MAX_MESSAGES, C_MERGE_US, C_MISS_COUNT_CONST,
                     C_PACKET_BYTES, C_QUEUE_SLOTS, C_SEQNO_UNCHANGED_CONST,
                     C_TOKEN_RETRANSMIT_US, C_TOKEN_US, C_TOKEN_WARNING_US, C_WINDOW_SIZE)
from .deliver import deliver_ring
from .memb import (gather_enter, on_foreign_mcast, operational_enter,
                   token_retransmit, token_store_send, unwrap_recovered)
from .sq import (emit_log, emit_tx, lst_add, lst_next, seq_from_wire, sq_add, sq_in_range,
                 sq_inuse, sq_release_to, sq_slot, sq_update_aru, timer_cancel, timer_set,
                 u32_lte)
from .state import (GATHER, K_MCAST_OUT_OF_WINDOW, K_MCAST_RETX, K_MCAST_RX, K_MCAST_TX,
                    K_ORF_TOKEN_RX, K_ORF_TOKEN_TX, K_RX_MSG_DROPPED, K_TOKEN_DUP_DISCARDED,
                    K_TOKEN_HOLD_CANCEL_RX, L_FAILED, L_NEW_MEMB, OPERATIONAL, RECOVERY,
                    S_ARU_COUNT, S_CBL, S_FAILED_TO_RECV, S_GLOBAL_SEQNO, S_HAVE_OLD_CONFIG,
                    S_HIGH_DELIVERED, S_INSTALL_SEQ, S_LAST_TOKEN_SEQ_REF, S_MERGE_OUTSTANDING,
                    S_MY_ID, S_MY_LAST_ARU, S_MY_LAST_SEQ, S_MY_TOKEN_SEQ, S_OLD_REP, S_OLD_SEQ,
                    S_ORF_TOKEN_DISCARD, S_PBL, S_QO, S_QR, S_RETRANS_FLG_COUNT, S_RING_REP,
                    S_RING_SEQ, S_ROTATION_COUNTER, S_RQ_COUNT, S_RQ_HEAD, S_SAFE_POINT,
                    S_SEQ_UNCHANGED, S_SET_RETRANS_FLG, S_STATE, S_TOKEN_HELD, S_TOKEN_RX_US,
                    S_WAITING_TRANS_ACK,
                    S_NOW_US, S_TRC, T_HOLD, T_MERGE, T_TOKEN, T_TOKEN_RETRANSMIT,
                    T_TOKEN_WARNING)
from .wire import (ENCAPSULATED, GUARANTEE_SAFE, MCAST_BYTES, NOT_ENCAPSULATED, O_ENCAP, O_MC_FROM, O_MC_GUARANTEE,
                   O_MC_NODE_ID, O_MC_RING_REP, O_MC_RING_SEQ, O_MC_SEQ, O_MC_THIS_SEQNO,
                   O_HC_RING_REP, O_HC_RING_SEQ, O_NODEID, O_TK_ARU, O_TK_ARU_ADDR,
                   O_TK_BACKLOG, O_TK_FCC, O_TK_RETRANS_FLG, O_TK_RING_REP, O_TK_RING_SEQ,
                   O_TK_RTR_N, O_TK_SEQ, O_TK_TOKEN_SEQ, RETRANSMIT_ENTRIES_MAX, RTR_ITEM_BYTES,
                   T_MCAST, TOKEN_BYTES, copy_bytes, rd_i32, rd_u32, rd_u64, wr_header, wr_u32,
                   wr_u64)

# Quiet rotations (the token's seq unchanged) the token makes at full speed before the
# representative paces it (C_IDLE_TOKEN_PACE_US): two let a message's last stability
# information (aru, safe point) go round at once, as without pacing.
PACE_AFTER_QUIET_ROTATIONS = 2


@njit(cache=True)
def _ring_is_mine(st, b, o_rep, o_seq):
    return rd_u32(b, o_rep) == st.s[S_RING_REP] and rd_u64(b, o_seq) == st.s[S_RING_SEQ]


@njit(cache=True)
def _queue_for_my_ring(st):
    state = st.s[S_STATE]
    if state == OPERATIONAL:
        return st.s[S_QO]
    if state == GATHER:
        # my ring is the last operational one unless a commit attempt failed since
        if st.s[S_RING_REP] == st.s[S_OLD_REP] and st.s[S_RING_SEQ] == st.s[S_OLD_SEQ]:
            return st.s[S_QO]
        return -1
    return st.s[S_QR]


@njit(cache=True)
def on_mcast(st, b, n):
    st.cnt[K_MCAST_RX] += 1
    if _ring_is_mine(st, b, O_MC_RING_REP, O_MC_RING_SEQ):
        q = _queue_for_my_ring(st)
    elif (st.s[S_STATE] == GATHER and st.s[S_HAVE_OLD_CONFIG] == 1
          and rd_u32(b, O_MC_RING_REP) == st.s[S_OLD_REP]
          and rd_u64(b, O_MC_RING_SEQ) == st.s[S_OLD_SEQ]):
        q = st.s[S_QO]  # old-ring stragglers still count for recovery
    else:
        if not on_foreign_mcast(st, rd_u32(b, O_MC_FROM)):
            st.cnt[K_RX_MSG_DROPPED] += 1
        return
    if q < 0 or (b[O_ENCAP] == ENCAPSULATED and st.s[S_STATE] == OPERATIONAL):
        # recovery traffic is complete before a node turns operational (token aru >=
        # install seq for two rotations), so a late one is a duplicate or forged
        st.cnt[K_RX_MSG_DROPPED] += 1
        return
    seq = seq_from_wire(rd_u32(b, O_MC_SEQ), st.qaru[q])
    if sq_in_range(st, q, seq):
        if not sq_inuse(st, q, seq):
            sq_add(st, q, seq, b, 0, n)
            if b[O_ENCAP] == ENCAPSULATED:
                unwrap_recovered(st, b, n)
    elif seq > st.qaru[q]:
        st.cnt[K_MCAST_OUT_OF_WINDOW] += 1
    sq_update_aru(st, q)
    if st.s[S_STATE] == OPERATIONAL:
        deliver_ring(st)


@njit(cache=True)
def on_hold_cancel(st, b):
    st.cnt[K_TOKEN_HOLD_CANCEL_RX] += 1
    if _ring_is_mine(st, b, O_HC_RING_REP, O_HC_RING_SEQ):
        st.s[S_SEQ_UNCHANGED] = 0
        state = st.s[S_STATE]
        # an operational representative releases a token it holds (held or paced); one
        # already on its way round is not sent again (Corosync re-sends it, a duplicate
        # the next member discards: a paced ring's cancels often cross its token)
        if (st.s[S_RING_REP] == st.s[S_MY_ID] and state != GATHER
                and (state != OPERATIONAL or st.s[S_TOKEN_HELD] == 1)):
            timer_cancel(st, T_HOLD)
            token_retransmit(st)
            timer_set(st, T_TOKEN_RETRANSMIT, st.cfg[C_TOKEN_RETRANSMIT_US])


# ---- flow control (Corosync's fcc_calculate / fcc_rtr_limit / fcc_token_update) ----

@njit(cache=True)
def _backlog_frames(st):
    if st.s[S_STATE] == RECOVERY:
        return st.s[S_RQ_COUNT]
    backlog = pg.pg_backlog_packets(st.pg_qt_meta, st.cfg[C_PACKET_BYTES])
    if st.s[S_WAITING_TRANS_ACK]:
        return backlog
    return backlog + pg.pg_backlog_packets(st.pg_q_meta, st.cfg[C_PACKET_BYTES])


@njit(cache=True)
def _pack_new(st, pkt):
    """The next packet of new messages: sync traffic first (Corosync's
    new_message_queue_trans), and the application queue only once the node's sync ended
    (no S_WAITING_TRANS_ACK). Sync traffic left when the wait ends still goes first."""
    waiting = st.s[S_WAITING_TRANS_ACK] == 1
    if waiting or st.pg_qt_meta[pg.Q_COUNT] > 0:
        nbytes, level = pg.pg_pack(st.pg_qt_data, st.pg_qt_meta, st.pg_frag_t, pkt,
                                   st.cfg[C_PACKET_BYTES])
        if nbytes > 0 or waiting:
            return nbytes, level
    return pg.pg_pack(st.pg_q_data, st.pg_q_meta, st.pg_frag, pkt, st.cfg[C_PACKET_BYTES])


@njit(cache=True)
def fcc_calculate(st, tk):
    window = st.cfg[C_WINDOW_SIZE]
    allowed = st.cfg[C_MAX_MESSAGES]
    fcc = rd_u32(tk, O_TK_FCC)
    if allowed > window - fcc:
        allowed = window - fcc
    if allowed < 0:
        allowed = 0
    st.s[S_CBL] = _backlog_frames(st)
    total = rd_u32(tk, O_TK_BACKLOG) + st.s[S_CBL] - st.s[S_PBL]
    if total > 0:
        share = (window * st.s[S_PBL]) // total
        if share > 0 and allowed > share:
            allowed = share
    return allowed


@njit(cache=True)
def fcc_token_update(st, tk, sent):
    fcc = rd_u32(tk, O_TK_FCC) + sent - st.s[S_TRC]
    backlog = rd_u32(tk, O_TK_BACKLOG) + st.s[S_CBL] - st.s[S_PBL]
    wr_u32(tk, O_TK_FCC, max(fcc, 0) & 0xFFFFFFFF)
    wr_u32(tk, O_TK_BACKLOG, max(backlog, 0) & 0xFFFFFFFF)
    st.s[S_TRC] = sent
    st.s[S_PBL] = st.s[S_CBL]


# ---- retransmission ----

@njit(cache=True)
def orf_token_rtr(st, tk, allowed, q, tseq):
    """Serve the retransmit list, then append what this node misses; returns frames re-sent."""
    n = rd_i32(tk, O_TK_RTR_N)
    retx = 0
    i = 0
    while retx < allowed and i < n:
        o = TOKEN_BYTES + i * RTR_ITEM_BYTES
        if rd_u32(tk, o) != st.s[S_RING_REP] or rd_u64(tk, o + 4) != st.s[S_RING_SEQ]:
            i += 1
            continue
        seq = seq_from_wire(rd_u32(tk, o + 12), st.qaru[q])
        if sq_inuse(st, q, seq):
            k = sq_slot(st, seq)
            emit_tx(st, 0, st.sq_data[q, k], 0, st.sq_len[q, k])
            st.cnt[K_MCAST_RETX] += 1
            retx += 1
            n -= 1
            for x in range((n - i) * RTR_ITEM_BYTES):
                tk[o + x] = tk[o + RTR_ITEM_BYTES + x]
        else:
            i += 1
    miss_const = st.cfg[C_MISS_COUNT_CONST]
    seq = st.qaru[q] + 1
    while n < RETRANSMIT_ENTRIES_MAX and seq <= tseq:
        if not sq_in_range(st, q, seq):
            break
        if not sq_inuse(st, q, seq):
            k = sq_slot(st, seq)
            st.sq_miss[q, k] += 1
            if st.sq_miss[q, k] >= miss_const:
                w = seq & 0xFFFFFFFF
                found = False
                for j in range(n):
                    if rd_u32(tk, TOKEN_BYTES + j * RTR_ITEM_BYTES + 12) == w:
                        found = True
                        break
                if not found:
                    o = TOKEN_BYTES + n * RTR_ITEM_BYTES
                    wr_u32(tk, o, st.s[S_RING_REP])
                    wr_u64(tk, o + 4, st.s[S_RING_SEQ])
                    wr_u32(tk, o + 12, w)
                    n += 1
        seq += 1
    wr_u32(tk, O_TK_RTR_N, n)
    return retx


@njit(cache=True, inline="always")
def _send_new_frame(st, q, seq, buf, off, n, encapsulated, guarantee):
    """Number, store and multicast one new frame whose mcast header is written here."""
    k = sq_slot(st, seq)
    d = st.sq_data[q, k]
    me = st.s[S_MY_ID]
    if encapsulated:
        copy_bytes(d, 0, buf, off, n)
    else:
        wr_header(d, 0, T_MCAST, NOT_ENCAPSULATED, me, 0)
        wr_u32(d, O_MC_FROM, me)
        wr_u32(d, O_MC_NODE_ID, me)
        wr_u32(d, O_MC_GUARANTEE, guarantee)
        copy_bytes(d, MCAST_BYTES, buf, off, n)
        n += MCAST_BYTES
    wr_u32(d, O_MC_SEQ, seq & 0xFFFFFFFF)
    wr_u32(d, O_MC_THIS_SEQNO, st.s[S_GLOBAL_SEQNO] & 0xFFFFFFFF)
    st.s[S_GLOBAL_SEQNO] += 1
    wr_u32(d, O_MC_RING_REP, st.s[S_RING_REP])
    wr_u64(d, O_MC_RING_SEQ, st.s[S_RING_SEQ])
    st.sq_len[q, k] = n
    st.sq_seq[q, k] = seq
    st.sq_flag[q, k] = 1
    st.sq_miss[q, k] = 0
    if seq > st.qhigh[q]:
        st.qhigh[q] = seq
    st.cnt[K_MCAST_TX] += 1
    emit_tx(st, 0, d, 0, n)


@njit(cache=True)
def orf_token_mcast(st, allowed, q, tseq):
    """Send up to ``allowed`` new frames; returns (frames sent, new token seq)."""
    sent = 0
    if st.s[S_STATE] == RECOVERY:
        slots = st.cfg[C_QUEUE_SLOTS]
        while sent < allowed and st.s[S_RQ_COUNT] > 0:
            h = st.s[S_RQ_HEAD]
            tseq += 1
            _send_new_frame(st, q, tseq, st.rq_data[h], 0, st.rq_len[h], True, 0)
            st.s[S_RQ_HEAD] = (h + 1) % slots
            st.s[S_RQ_COUNT] -= 1
            sent += 1
        timer_set(st, T_TOKEN_RETRANSMIT, st.cfg[C_TOKEN_RETRANSMIT_US])
    else:
        pkt = st.pg_packet
        while sent < allowed:
            nbytes, level = _pack_new(st, pkt)
            if nbytes <= 0:
                break
            tseq += 1
            _send_new_frame(st, q, tseq, pkt, 0, nbytes, False,
                            GUARANTEE_SAFE if level == 1 else 0)
            sent += 1
    sq_update_aru(st, q)
    return sent, tseq


@njit(cache=True)
def messages_free(st, stable):
    """Release what every member holds (``stable``: the token's aru on two successive
    visits) and this node has delivered — Corosync's messages_free."""
    q = st.s[S_QO]
    upto = stable
    if st.s[S_HIGH_DELIVERED] < upto:
        upto = st.s[S_HIGH_DELIVERED]
    if upto >= st.qhead[q]:
        sq_release_to(st, q, upto)


# ---- the token ----

@njit(cache=True)
def on_token(st, b, n):
    st.cnt[K_ORF_TOKEN_RX] += 1
    state = st.s[S_STATE]
    if st.s[S_ORF_TOKEN_DISCARD] or (state != OPERATIONAL and state != RECOVERY):
        return
    if not _ring_is_mine(st, b, O_TK_RING_REP, O_TK_RING_SEQ):
        return
    token_seq = rd_u32(b, O_TK_TOKEN_SEQ)
    if u32_lte(token_seq, st.s[S_MY_TOKEN_SEQ]):
        st.cnt[K_TOKEN_DUP_DISCARDED] += 1
        return
    _token_visit(st, b, token_seq)


@njit(cache=True)
def token_visit_held(st):
    """The representative holds the token (S_TOKEN_HELD: kept at its last visit and not
    sent since — token_retransmit clears it, so a copy already sent round is never visited
    as a second token) and has something to send: it visits the token it holds now, as if
    it had just come back, instead of sending it round to itself.

    The held token is the one this node stored at its last visit (tok_buf, token_seq one
    above ours) and nobody else has seen: the ring was idle for seqno_unchanged_const
    rotations, every member had every message, so the visit numbers the new messages on
    from there, forwards the token (the seq moved) and delivers our own at once. Corosync
    sends a token_hold_cancel to itself and the token one rotation round first; the
    ordering is the same, a rotation of hand-offs later."""
    b = st.tok_buf
    if st.s[S_STATE] != OPERATIONAL or not _ring_is_mine(st, b, O_TK_RING_REP, O_TK_RING_SEQ):
        token_retransmit(st)        # recovery counts quiet rotations: it goes round
        return
    st.s[S_SEQ_UNCHANGED] = 0
    _token_visit(st, b, rd_u32(b, O_TK_TOKEN_SEQ))


@njit(cache=True)
def _token_visit(st, b, token_seq):
    state = st.s[S_STATE]
    tk = st.scratch2
    ln = TOKEN_BYTES + rd_i32(b, O_TK_RTR_N) * RTR_ITEM_BYTES
    copy_bytes(tk, 0, b, 0, ln)
    me = st.s[S_MY_ID]
    q = st.s[S_QO] if state == OPERATIONAL else st.s[S_QR]
    tseq = seq_from_wire(rd_u32(tk, O_TK_SEQ), st.s[S_LAST_TOKEN_SEQ_REF])
    taru_in = seq_from_wire(rd_u32(tk, O_TK_ARU), tseq)

    # idle detection: hold the token, and let the representative probe for merges
    if tseq == st.s[S_MY_LAST_SEQ]:
        if st.s[S_MERGE_OUTSTANDING] == 0:
            st.s[S_MERGE_OUTSTANDING] = 1
            timer_set(st, T_MERGE, st.cfg[C_MERGE_US])
        st.s[S_SEQ_UNCHANGED] += 1
    else:
        st.s[S_MERGE_OUTSTANDING] = 0
        timer_cancel(st, T_MERGE)
        timer_cancel(st, T_HOLD)
        st.s[S_SEQ_UNCHANGED] = 0
    st.s[S_MY_LAST_SEQ] = tseq
    is_rep = st.s[S_RING_REP] == me
    unchanged = st.s[S_SEQ_UNCHANGED]
    const = st.cfg[C_SEQNO_UNCHANGED_CONST]
    st.s[S_TOKEN_HELD] = 1 if (unchanged > const if is_rep else unchanged >= const) else 0
    forward = not (is_rep and st.s[S_TOKEN_HELD] == 1)

    st.s[S_TOKEN_RX_US] = st.s[S_NOW_US]
    last_aru = st.s[S_MY_LAST_ARU]
    st.s[S_MY_LAST_ARU] = taru_in
    # what every member holds: the token's aru on two successive visits, and our own
    stable = taru_in if taru_in < last_aru else last_aru
    if st.qaru[q] < stable:
        stable = st.qaru[q]
    if state == OPERATIONAL:
        if stable > st.s[S_SAFE_POINT]:
            st.s[S_SAFE_POINT] = stable
        messages_free(st, stable)
    elif stable >= st.qhead[q]:
        # recovery frames are unwrapped on arrival; once all hold them they may go
        sq_release_to(st, q, stable)

    allowed = fcc_calculate(st, tk)
    retx = orf_token_rtr(st, tk, allowed, q, tseq)
    if (st.cfg[C_CANCEL_HOLD_ON_RETRANSMIT] and st.s[S_TOKEN_HELD] == 1
            and (rd_i32(tk, O_TK_RTR_N) > 0 or retx > 0)):
        st.s[S_TOKEN_HELD] = 0
        forward = True
    # never number past what every sort queue can hold (Corosync's fcc_rtr_limit)
    room = st.qhead[q] + st.cfg[C_QUEUE_SLOTS] - 1 - st.cfg[C_WINDOW_SIZE] - tseq
    if allowed > room:
        allowed = room if room > 0 else 0
    if allowed > retx:
        allowed -= retx
    else:
        allowed = 0
    regular, tseq = orf_token_mcast(st, allowed, q, tseq)
    fcc_token_update(st, tk, retx + regular)

    my_aru = st.qaru[q]
    taru = taru_in
    aru_addr = rd_u32(tk, O_TK_ARU_ADDR)
    if my_aru < taru or aru_addr == me or aru_addr == 0:
        taru = my_aru
        aru_addr = 0 if taru == tseq else me
    if taru == last_aru and aru_addr != 0:
        st.s[S_ARU_COUNT] += 1
    else:
        st.s[S_ARU_COUNT] = 0
    if st.s[S_ARU_COUNT] > st.cfg[C_FAIL_RECV_CONST] and aru_addr == me:
        emit_log(st, E.LOG_FAILED_TO_RECEIVE, 0, 0, 0)
        st.s[S_FAILED_TO_RECV] = 1
        lst_add(st, L_FAILED, me)
        gather_enter(st, E.GS_FAILED_TO_RECEIVE)
        return
    st.s[S_MY_TOKEN_SEQ] = token_seq
    wr_u32(tk, O_TK_TOKEN_SEQ, (token_seq + 1) & 0xFFFFFFFF)
    wr_u32(tk, O_TK_SEQ, tseq & 0xFFFFFFFF)
    wr_u32(tk, O_TK_ARU, taru & 0xFFFFFFFF)
    wr_u32(tk, O_TK_ARU_ADDR, aru_addr)
    wr_u32(tk, O_NODEID, me)
    st.s[S_LAST_TOKEN_SEQ_REF] = tseq

    if state == RECOVERY:
        _recovery_token(st, tk, tseq, taru)
    rtr_n = rd_i32(tk, O_TK_RTR_N)
    ln = TOKEN_BYTES + rtr_n * RTR_ITEM_BYTES
    dest = lst_next(st, L_NEW_MEMB, me)
    # idle token pacing: a quiet ring's token waits at the representative, a short hold
    # that its own submission or any member's token_hold_cancel ends early. The others
    # count the same quiet rotations, the representative first (one more than a member
    # that follows it in the same rotation), so a member that counted one fewer knows
    # the token waits from the representative's next visit and cancels that for a message.
    paced = False
    if (state == OPERATIONAL and st.cfg[C_IDLE_TOKEN_PACE_US] > 0 and regular == 0
            and retx == 0 and rtr_n == 0 and dest != me):
        if not is_rep:
            if unchanged >= PACE_AFTER_QUIET_ROTATIONS - 1:
                st.s[S_TOKEN_HELD] = 1
        elif forward and unchanged >= PACE_AFTER_QUIET_ROTATIONS:
            paced = True
            st.s[S_TOKEN_HELD] = 1
            forward = False
    st.cnt[K_ORF_TOKEN_TX] += 1
    token_store_send(st, tk, ln, dest, forward)
    if st.s[S_STATE] == OPERATIONAL:
        deliver_ring(st)
        timer_set(st, T_TOKEN_WARNING, st.cfg[C_TOKEN_WARNING_US])
    timer_set(st, T_TOKEN, st.cfg[C_TOKEN_US])
    timer_set(st, T_TOKEN_RETRANSMIT, st.cfg[C_TOKEN_RETRANSMIT_US])
    if paced:
        timer_set(st, T_HOLD, st.cfg[C_IDLE_TOKEN_PACE_US])
    elif is_rep and st.s[S_TOKEN_HELD] == 1:
        timer_set(st, T_HOLD, st.cfg[C_HOLD_US])


@njit(cache=True)
def _recovery_token(st, tk, tseq, taru):
    """Recovery bookkeeping on the token: retrans flag, install seq, two quiet rotations."""
    flg = rd_i32(tk, O_TK_RETRANS_FLG)
    if st.s[S_RQ_COUNT] > 0:
        if flg == 0:
            flg = 1
            st.s[S_SET_RETRANS_FLG] = 1
    elif flg == 1 and st.s[S_SET_RETRANS_FLG] == 1:
        flg = 0
        st.s[S_SET_RETRANS_FLG] = 0
    wr_u32(tk, O_TK_RETRANS_FLG, flg)
    if flg == 0:
        st.s[S_RETRANS_FLG_COUNT] += 1
    else:
        st.s[S_RETRANS_FLG_COUNT] = 0
    if st.s[S_RETRANS_FLG_COUNT] == 2:
        st.s[S_INSTALL_SEQ] = tseq
    if st.s[S_RETRANS_FLG_COUNT] >= 3 and st.s[S_INSTALL_SEQ] <= taru:
        st.s[S_ROTATION_COUNTER] += 1
    else:
        st.s[S_ROTATION_COUNTER] = 0
    if st.s[S_ROTATION_COUNTER] == 2:
        operational_enter(st)
        st.s[S_ROTATION_COUNTER] = 0
        st.s[S_RETRANS_FLG_COUNT] = 0
