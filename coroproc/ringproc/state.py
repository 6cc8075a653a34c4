"""The Totem core's state: a namedtuple of numpy arrays, and the index of every field.

Everything the protocol remembers lives here, so a node's state can be copied, pickled or
mapped into shared memory, and the jitted functions in ``srp.py`` take it as one argument.
Scalars sit in ``s`` (int64) at the S_* indices; node sets in ``lists`` (row L_*, column 0
= count, then sorted nodeids); each of the two sort queues (one per ring: the ring in
operation and the ring being formed) is a set of slot arrays indexed ``seq % queue_slots``.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from coroproc.shm.lazymem import lazy_zeros

from . import config as C
from .wire import (COMMIT_MAX_BYTES, JOIN_MAX_BYTES, PROCESSOR_COUNT_MAX, R_COUNT_MAX,
                   TOKEN_MAX_BYTES)

# Membership states (Corosync's numbering).
OPERATIONAL = 1
GATHER = 2
COMMIT = 3
RECOVERY = 4

# Scalars.
_S_NAMES = """
STATE MY_ID RING_REP RING_SEQ OLD_REP OLD_SEQ TOKEN_RING_ID_SEQ HAVE_OLD_CONFIG
QO QR HIGH_DELIVERED SAFE_POINT
MY_LAST_ARU MY_TOKEN_SEQ MY_LAST_SEQ SEQ_UNCHANGED TOKEN_HELD ARU_COUNT FAILED_TO_RECV
ORF_TOKEN_DISCARD ORIGINATED_ORF RETRANS_FLG_COUNT SET_RETRANS_FLG INSTALL_SEQ
ROTATION_COUNTER TRC PBL CBL LOW_RING_ARU HIGH_RING_DELIVERED GLOBAL_SEQNO
MERGE_OUTSTANDING CONT_GATHER TOKEN_RX_US TOK_LEN TOK_DEST CT_LEN
RQ_HEAD RQ_COUNT TX_N TX_OFF EV_N EV_OFF EV_IOFF NOW_US LAST_TOKEN_SEQ_REF
SELF_JOIN_PENDING SELF_JOIN_LEN WAITING_TRANS_ACK
""".split()
S_STATE = 0
S_MY_ID = 1
S_RING_REP = 2
S_RING_SEQ = 3
S_OLD_REP = 4
S_OLD_SEQ = 5
S_TOKEN_RING_ID_SEQ = 6
S_HAVE_OLD_CONFIG = 7
S_QO = 8
S_QR = 9
S_HIGH_DELIVERED = 10
S_SAFE_POINT = 11
S_MY_LAST_ARU = 12
S_MY_TOKEN_SEQ = 13
S_MY_LAST_SEQ = 14
S_SEQ_UNCHANGED = 15
S_TOKEN_HELD = 16
S_ARU_COUNT = 17
S_FAILED_TO_RECV = 18
S_ORF_TOKEN_DISCARD = 19
S_ORIGINATED_ORF = 20
S_RETRANS_FLG_COUNT = 21
S_SET_RETRANS_FLG = 22
S_INSTALL_SEQ = 23
S_ROTATION_COUNTER = 24
S_TRC = 25
S_PBL = 26
S_CBL = 27
S_LOW_RING_ARU = 28
S_HIGH_RING_DELIVERED = 29
S_GLOBAL_SEQNO = 30
S_MERGE_OUTSTANDING = 31
S_CONT_GATHER = 32
S_TOKEN_RX_US = 33
S_TOK_LEN = 34
S_TOK_DEST = 35
S_CT_LEN = 36
S_RQ_HEAD = 37
S_RQ_COUNT = 38
S_TX_N = 39
S_TX_OFF = 40
S_EV_N = 41
S_EV_OFF = 42
S_EV_IOFF = 43
S_NOW_US = 44
S_LAST_TOKEN_SEQ_REF = 45
S_SELF_JOIN_PENDING = 46
S_SELF_JOIN_LEN = 47
S_WAITING_TRANS_ACK = 48   # Corosync's waiting_trans_ack: send only the sync queue
S_COUNT = len(_S_NAMES)

# Node sets.
_L_NAMES = "PROC FAILED MEMB NEW_MEMB TRANS CONSENSUS LEFT SCRATCH SCRATCH2 SCRATCH3".split()
L_PROC = 0
L_FAILED = 1
L_MEMB = 2
L_NEW_MEMB = 3
L_TRANS = 4
L_CONSENSUS = 5
L_LEFT = 6
L_SCRATCH = 7
L_SCRATCH2 = 8
L_SCRATCH3 = 9
L_COUNT = len(_L_NAMES)
LIST_WIDTH = PROCESSOR_COUNT_MAX + 1

# Timers (absolute deadlines in µs, -1 = not armed).
T_TOKEN = 0
T_TOKEN_RETRANSMIT = 1
T_HOLD = 2
T_JOIN = 3
T_CONSENSUS = 4
T_MERGE = 5
T_TOKEN_WARNING = 6
T_COUNT = 7
TIMER_NAMES = ("token", "token_retransmit", "hold", "join", "consensus", "merge", "token_warning")

# Counters (stats.srp.* where Corosync has one).
_K_NAMES = """
orf_token_tx orf_token_rx memb_merge_detect_tx memb_merge_detect_rx memb_join_tx memb_join_rx
mcast_tx mcast_retx mcast_rx memb_commit_token_tx memb_commit_token_rx token_hold_cancel_tx
token_hold_cancel_rx operational_entered operational_token_lost gather_entered
gather_token_lost commit_entered commit_token_lost recovery_entered recovery_token_lost
consensus_timeouts rx_msg_dropped continuous_gather firewall_enabled_or_nic_failure
frames_rejected mcast_out_of_window token_dup_discarded tx_full ev_full
recovery_msgs_originated delivered_frames safe_held recovery_gap pause_detected
""".split()
K_ORF_TOKEN_TX = 0
K_ORF_TOKEN_RX = 1
K_MEMB_MERGE_DETECT_TX = 2
K_MEMB_MERGE_DETECT_RX = 3
K_MEMB_JOIN_TX = 4
K_MEMB_JOIN_RX = 5
K_MCAST_TX = 6
K_MCAST_RETX = 7
K_MCAST_RX = 8
K_MEMB_COMMIT_TOKEN_TX = 9
K_MEMB_COMMIT_TOKEN_RX = 10
K_TOKEN_HOLD_CANCEL_TX = 11
K_TOKEN_HOLD_CANCEL_RX = 12
K_OPERATIONAL_ENTERED = 13
K_OPERATIONAL_TOKEN_LOST = 14
K_GATHER_ENTERED = 15
K_GATHER_TOKEN_LOST = 16
K_COMMIT_ENTERED = 17
K_COMMIT_TOKEN_LOST = 18
K_RECOVERY_ENTERED = 19
K_RECOVERY_TOKEN_LOST = 20
K_CONSENSUS_TIMEOUTS = 21
K_RX_MSG_DROPPED = 22
K_CONTINUOUS_GATHER = 23
K_FIREWALL_ENABLED_OR_NIC_FAILURE = 24
K_FRAMES_REJECTED = 25
K_MCAST_OUT_OF_WINDOW = 26
K_TOKEN_DUP_DISCARDED = 27
K_TX_FULL = 28
K_EV_FULL = 29
K_RECOVERY_MSGS_ORIGINATED = 30
K_DELIVERED_FRAMES = 31
K_SAFE_HELD = 32
K_RECOVERY_GAP = 33
K_PAUSE_DETECTED = 34
K_COUNT = len(_K_NAMES)
COUNTER_NAMES = tuple(_K_NAMES)

# Output event kinds (rows of ev_meta: kind, a, b, c, d, e, off, len).
EV_DELIVER = 1    # a=sender nodeid, b=ring rep, c=ring seq, d=totem seq, e=guarantee; data=totempg packet
EV_CONFIG = 2     # a=0 transitional / 1 regular, b=ring rep, c=ring seq, d=member count; ints[off:off+d]
EV_RINGID = 3     # b=ring rep, c=ring seq: persist before going on
EV_LOG = 4        # a=log code, b, c, d = arguments; ints[off:off+len] = node list if any
EV_COLS = 8

# The indices are spelled out for readers and linters; the name lists give the counts and
# the counter names. They must agree.
for _prefix, _names in (("S_", _S_NAMES), ("L_", _L_NAMES), ("K_", [n.upper() for n in _K_NAMES])):
    for _i, _n in enumerate(_names):
        assert globals()[_prefix + _n] == _i, f"{_prefix}{_n} is not {_i}"

TotemState = namedtuple("TotemState", [
    "s", "cfg", "timers", "lists", "cnt", "rej",
    "sq_flag", "sq_seq", "sq_len", "sq_miss", "sq_data", "qhead", "qaru", "qhigh",
    "rq_len", "rq_data",
    "tok_buf", "ct_buf", "join_buf", "scratch", "scratch2",
    "tx_meta", "tx_data", "ev_meta", "ev_data", "ev_ints",
    "pg_q_data", "pg_q_meta", "pg_frag", "pg_packet",
    "pg_qt_data", "pg_qt_meta", "pg_frag_t",
])


def new_state(cfg_array: np.ndarray, nodeid: int, ring_seq: int,
              pg_queue_bytes: int, tx_frames: int | None = None) -> TotemState:
    """Allocate every array of one core; sizes follow the configuration."""
    slots = int(cfg_array[C.C_QUEUE_SLOTS])
    frame = int(cfg_array[C.C_FRAME_BYTES])
    window = int(cfg_array[C.C_WINDOW_SIZE])
    tx_rows = tx_frames or (4 * window + 64)
    ev_rows = 2 * slots + 256
    from . import totempg as pg  # the application queue belongs to totempg
    st = TotemState(
        s=np.zeros(S_COUNT, np.int64),
        cfg=cfg_array.copy(),
        timers=np.full(T_COUNT, -1, np.int64),
        lists=np.zeros((L_COUNT, LIST_WIDTH), np.int64),
        cnt=np.zeros(K_COUNT, np.int64),
        rej=np.zeros(R_COUNT_MAX, np.int64),
        sq_flag=np.zeros((2, slots), np.uint8),
        sq_seq=np.zeros((2, slots), np.int64),
        sq_len=np.zeros((2, slots), np.int32),
        sq_miss=np.zeros((2, slots), np.int32),
        sq_data=lazy_zeros((2, slots, frame), np.uint8),
        qhead=np.zeros(2, np.int64),
        qaru=np.zeros(2, np.int64),
        qhigh=np.zeros(2, np.int64),
        rq_len=np.zeros(slots, np.int32),
        rq_data=lazy_zeros((slots, frame), np.uint8),
        tok_buf=np.zeros(max(TOKEN_MAX_BYTES, COMMIT_MAX_BYTES) + 16, np.uint8),
        ct_buf=np.zeros(COMMIT_MAX_BYTES + 16, np.uint8),
        join_buf=np.zeros(JOIN_MAX_BYTES + 16, np.uint8),
        scratch=np.zeros(max(frame, COMMIT_MAX_BYTES) + 64, np.uint8),
        scratch2=np.zeros(max(frame, COMMIT_MAX_BYTES) + 64, np.uint8),
        tx_meta=np.zeros((tx_rows, 3), np.int64),
        tx_data=np.zeros(tx_rows * frame, np.uint8),
        ev_meta=np.zeros((ev_rows, EV_COLS), np.int64),
        ev_data=lazy_zeros(ev_rows * frame, np.uint8),
        ev_ints=np.zeros(8 * LIST_WIDTH + 64, np.int64),
        pg_q_data=lazy_zeros(pg_queue_bytes, np.uint8),
        pg_q_meta=np.zeros(pg.Q_META_LEN, np.int64),
        pg_frag=np.zeros(pg.FRAG_STATE_LEN, np.int64),
        pg_packet=np.zeros(frame, np.uint8),
        # Corosync's new_message_queue_trans: sync traffic while waiting_trans_ack
        pg_qt_data=lazy_zeros(pg_queue_bytes, np.uint8),
        pg_qt_meta=np.zeros(pg.Q_META_LEN, np.int64),
        pg_frag_t=np.zeros(pg.FRAG_STATE_LEN, np.int64),
    )
    pg.pg_queue_init(st.pg_q_meta, pg_queue_bytes)
    pg.pg_queue_init(st.pg_qt_meta, pg_queue_bytes)
    st.s[S_MY_ID] = nodeid
    st.s[S_TOKEN_RING_ID_SEQ] = ring_seq
    return st
