"""Entry points of the sans-I/O Totem core: start, frame in, timers, submit, leave.

Each call takes the state and the current time in µs, and leaves its effects in the
state's output buffers (tx_meta/tx_data, ev_meta/ev_data/ev_ints) and timer deadlines
(``st.timers``); the caller sends, delivers, persists and sleeps. Nothing here reads a
clock, touches a socket or draws a random number, so the simulator replays any run.
"""
from coroproc.njit import njit

from . import events as E
from . import totempg as pg
from .config import (C_FRAME_BYTES, C_SEQNO_START, C_TOKEN_RETRANSMIT_US, C_TOKEN_WARNING_US)
from .memb import (consensus_timeout_expired, gather_enter, join_send, leave_send,
                   merge_detect_send, on_commit_token, on_join, on_merge_detect,
                   hold_cancel_send, recovery_token_loss, token_retransmit)
from .sq import emit_log, sq_reinit, timer_set
from .state import (COMMIT, GATHER, K_COMMIT_TOKEN_LOST, K_FRAMES_REJECTED, K_GATHER_TOKEN_LOST,
                    K_MEMB_COMMIT_TOKEN_RX, K_MEMB_JOIN_RX, K_MEMB_MERGE_DETECT_RX,
                    K_OPERATIONAL_TOKEN_LOST, K_PAUSE_DETECTED, K_RECOVERY_TOKEN_LOST,
                    K_RX_MSG_DROPPED, OPERATIONAL,
                    RECOVERY, S_EV_IOFF, S_EV_N, S_EV_OFF, S_HIGH_DELIVERED, S_LAST_TOKEN_SEQ_REF,
                    S_MERGE_OUTSTANDING, S_MY_ID, S_MY_LAST_ARU, S_MY_LAST_SEQ, S_MY_TOKEN_SEQ,
                    S_NOW_US, S_ORF_TOKEN_DISCARD, S_QO, S_QR, S_RING_REP, S_RING_SEQ, S_SELF_JOIN_LEN, S_SELF_JOIN_PENDING,
                    S_SAFE_POINT, S_STATE, S_TOKEN_HELD, S_TOKEN_RING_ID_SEQ, S_TOKEN_RX_US, S_WAITING_TRANS_ACK,
                    S_TX_N, S_TX_OFF, T_CONSENSUS, T_COUNT, T_HOLD, T_JOIN, T_MERGE, T_TOKEN,
                    T_TOKEN_RETRANSMIT, T_TOKEN_WARNING)
from .config import C_CONSENSUS_US, C_JOIN_US, C_TOKEN_US
from .token import on_hold_cancel, on_mcast, on_token, token_visit_held
from .wire import (O_JN_FROM, R_OK, R_OVERSIZE, T_COMMIT_TOKEN, T_MCAST, T_MEMB_JOIN,
                   T_MERGE_DETECT, T_ORF_TOKEN, check_frame, rd_u32)


@njit(cache=True)
def srp_clear_outputs(st):
    st.s[S_TX_N] = 0
    st.s[S_TX_OFF] = 0
    st.s[S_EV_N] = 0
    st.s[S_EV_OFF] = 0
    st.s[S_EV_IOFF] = 0


@njit(cache=True)
def srp_next_deadline(st):
    best = -1
    for t in range(T_COUNT):
        d = st.timers[t]
        if d >= 0 and (best < 0 or d < best):
            best = d
    return best


@njit(cache=True)
def loop_self(st):
    """Hear our own join, as a node does over the network; bounded: an own join can lead to
    a commit, never to another join."""
    for _ in range(4):
        if st.s[S_SELF_JOIN_PENDING] == 0:
            return
        st.s[S_SELF_JOIN_PENDING] = 0
        n = st.s[S_SELF_JOIN_LEN]
        for k in range(n):
            st.scratch2[k] = st.join_buf[k]
        on_join(st, st.scratch2)


@njit(cache=True)
def srp_start(st, now_us):
    """Boot: a fresh ring id above the persisted one, then GATHER (Corosync's start-up).
    Returns the next timer deadline, like every entry point that arms timers."""
    st.s[S_NOW_US] = now_us
    me = st.s[S_MY_ID]
    start = st.cfg[C_SEQNO_START]
    # Corosync increments the loaded seq so a restarted node's singleton ring is new.
    st.s[S_RING_REP] = me
    st.s[S_RING_SEQ] = st.s[S_TOKEN_RING_ID_SEQ] + 1
    st.s[S_TOKEN_RING_ID_SEQ] = st.s[S_RING_SEQ]
    st.s[S_QO] = 0
    st.s[S_QR] = 1
    sq_reinit(st, 0, start)
    sq_reinit(st, 1, start)
    st.s[S_HIGH_DELIVERED] = start
    st.s[S_SAFE_POINT] = start
    st.s[S_MY_LAST_ARU] = start
    st.s[S_MY_LAST_SEQ] = start
    st.s[S_LAST_TOKEN_SEQ_REF] = start
    st.s[S_MY_TOKEN_SEQ] = 0xFFFFFFFF
    st.s[S_STATE] = OPERATIONAL
    gather_enter(st, E.GS_MISSING)
    loop_self(st)
    return srp_next_deadline(st)


@njit(cache=True)
def srp_on_frame(st, now_us, buf, n):
    """One received frame; returns (0 or the reject reason, next timer deadline).

    Outputs accumulate across calls until srp_clear_outputs, so a batch driver can feed
    many frames and drain once; returning the deadline saves a per-event driver a second
    call (each call from Python unboxes the whole state)."""
    st.s[S_NOW_US] = now_us
    reason, t = check_frame(buf, n)
    if reason == R_OK and t == T_MCAST and n > st.cfg[C_FRAME_BYTES]:
        # only mcast frames are stored in fixed slots; the other types are bounded by
        # their validated counts (a 384-member commit token is 10.8 KB)
        reason = R_OVERSIZE
    if reason != R_OK:
        st.rej[reason] += 1
        st.cnt[K_FRAMES_REJECTED] += 1
        return reason, srp_next_deadline(st)
    if t == T_ORF_TOKEN:
        on_token(st, buf, n)
    elif t == T_MCAST:
        on_mcast(st, buf, n)
    elif t == T_MEMB_JOIN:
        st.cnt[K_MEMB_JOIN_RX] += 1
        if rd_u32(buf, O_JN_FROM) == st.s[S_MY_ID]:
            # our own joins are heard through loop_self; one from the network is an echo
            # (udpu sends to every member) or a stale leave of an earlier incarnation
            st.cnt[K_RX_MSG_DROPPED] += 1
        else:
            on_join(st, buf)
    elif t == T_COMMIT_TOKEN:
        st.cnt[K_MEMB_COMMIT_TOKEN_RX] += 1
        on_commit_token(st, buf, n)
    elif t == T_MERGE_DETECT:
        st.cnt[K_MEMB_MERGE_DETECT_RX] += 1
        on_merge_detect(st, buf)
    else:
        on_hold_cancel(st, buf)
    loop_self(st)
    return R_OK, srp_next_deadline(st)


@njit(cache=True)
def _paused(st, late_us):
    """A timer that fires more than half a token late means this process was not running
    (SIGSTOP, a VM stall): the silence a consensus timeout measures was ours, so nobody is
    declared failed for it — the node gathers again instead (Corosync flushes membership
    messages after a pause for the same reason)."""
    if late_us > st.cfg[C_TOKEN_US] // 2:
        st.cnt[K_PAUSE_DETECTED] += 1
        emit_log(st, E.LOG_PAUSE, late_us // 1000, 0, 0)
        return True
    return False


@njit(cache=True)
def _fire(st, t, now_us, late_us):
    state = st.s[S_STATE]
    if t == T_TOKEN:
        if state == OPERATIONAL:
            emit_log(st, E.LOG_TOKEN_LOST, st.cfg[C_TOKEN_US] // 1000,
                     st.cfg[C_CONSENSUS_US] // 1000, 0)
            st.cnt[K_OPERATIONAL_TOKEN_LOST] += 1
            gather_enter(st, E.GS_TOKEN_LOST_OPERATIONAL)
        elif state == GATHER:
            st.cnt[K_GATHER_TOKEN_LOST] += 1
            if not _paused(st, late_us):
                consensus_timeout_expired(st)
            gather_enter(st, E.GS_CONSENSUS_TIMEOUT)
        elif state == COMMIT:
            st.cnt[K_COMMIT_TOKEN_LOST] += 1
            gather_enter(st, E.GS_TOKEN_LOST_COMMIT)
        else:
            st.cnt[K_RECOVERY_TOKEN_LOST] += 1
            recovery_token_loss(st)
            st.s[S_ORF_TOKEN_DISCARD] = 1
    elif t == T_TOKEN_RETRANSMIT:
        if state != GATHER:
            token_retransmit(st)
            timer_set(st, T_TOKEN_RETRANSMIT, st.cfg[C_TOKEN_RETRANSMIT_US])
    elif t == T_HOLD:
        if state == OPERATIONAL or state == RECOVERY:
            token_retransmit(st)
    elif t == T_JOIN:
        if state == GATHER or state == COMMIT:
            join_send(st)
            timer_set(st, T_JOIN, st.cfg[C_JOIN_US])
    elif t == T_CONSENSUS:
        if state == GATHER:
            if _paused(st, late_us):
                gather_enter(st, E.GS_CONSENSUS_TIMEOUT)
            else:
                consensus_timeout_expired(st)
    elif t == T_MERGE:
        st.s[S_MERGE_OUTSTANDING] = 0
        if state == OPERATIONAL and st.s[S_RING_REP] == st.s[S_MY_ID]:
            merge_detect_send(st)
    elif t == T_TOKEN_WARNING:
        if state == OPERATIONAL:
            emit_log(st, E.LOG_TOKEN_WARNING, (now_us - st.s[S_TOKEN_RX_US]) // 1000, 0, 0)
            timer_set(st, T_TOKEN_WARNING, st.cfg[C_TOKEN_WARNING_US])


@njit(cache=True)
def srp_on_timer(st, now_us):
    """Fire every timer due at now_us, in a fixed order (deterministic); returns
    (timers fired, next deadline)."""
    st.s[S_NOW_US] = now_us
    fired = 0
    for t in range(T_COUNT):
        d = st.timers[t]
        if d >= 0 and d <= now_us:
            st.timers[t] = -1
            _fire(st, t, now_us, now_us - d)
            fired += 1
    loop_self(st)
    return fired, srp_next_deadline(st)


@njit(cache=True)
def _release_held_token(st):
    """New messages can go out: a held token moves on now."""
    if st.s[S_TOKEN_HELD] == 1:
        if st.s[S_RING_REP] == st.s[S_MY_ID]:
            # the representative holds the token itself: it sends with it now
            st.s[S_TOKEN_HELD] = 0
            st.timers[T_HOLD] = -1
            token_visit_held(st)
        else:
            hold_cancel_send(st)


@njit(cache=True)
def srp_submit(st, now_us, msg, n, level, sync_traffic):
    """Queue one application message (with its group header); returns (1 queued or 0 queue
    full, next deadline).

    ``sync_traffic`` != 0: the submitter's service sync is running. While the node waits
    for that sync to end (S_WAITING_TRANS_ACK) such a message goes to the sync queue and
    is sent; any other waits in the application queue until srp_trans_ack. Corosync puts
    every message of that period in its trans queue and relies on refusing application
    requests during sync; here the engines run in other processes and may submit before
    they have seen the new configuration, so each submission says which it is."""
    st.s[S_NOW_US] = now_us
    waiting = st.s[S_WAITING_TRANS_ACK] == 1
    if waiting and sync_traffic != 0:
        ok = pg.pg_submit(st.pg_qt_data, st.pg_qt_meta, msg, n, level)
        sendable = True
    else:
        ok = pg.pg_submit(st.pg_q_data, st.pg_q_meta, msg, n, level)
        sendable = not waiting
    if ok == 1 and sendable:
        _release_held_token(st)
    return ok, srp_next_deadline(st)


@njit(cache=True)
def srp_trans_ack(st, now_us, ring_rep, ring_seq):
    """The node's service sync for ring (ring_rep, ring_seq) completed (Corosync's
    totemsrp_trans_ack): the application queue is sent again. An acknowledgement for
    another ring is stale (a newer configuration began since) and ignored. Returns
    (1 the wait ended, 0 ignored, next deadline)."""
    st.s[S_NOW_US] = now_us
    if (st.s[S_WAITING_TRANS_ACK] == 0 or ring_rep != st.s[S_RING_REP]
            or ring_seq != st.s[S_RING_SEQ]):
        return 0, srp_next_deadline(st)
    st.s[S_WAITING_TRANS_ACK] = 0
    emit_log(st, E.LOG_TRANS_ACK, 0, 0, 0)
    if st.s[S_STATE] == OPERATIONAL and st.pg_q_meta[pg.Q_COUNT] > 0:
        _release_held_token(st)
    return 1, srp_next_deadline(st)


@njit(cache=True)
def srp_leave(st, now_us):
    """Clean shutdown: tell the others we leave, so they re-form without a token timeout."""
    st.s[S_NOW_US] = now_us
    leave_send(st)
    for t in range(T_COUNT):
        st.timers[t] = -1


