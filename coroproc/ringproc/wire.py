"""Totem wire format of Corosync 3.1 (exec/totemsrp.c), byte for byte, and its validators.

Every Totem frame starts with the packed 13-byte ``totem_message_header``
(magic u16 0xC070, version u8 3, type u8, encapsulated u8, nodeid u32, target_nodeid u32),
little-endian. The six message types and their packed layouts (offsets in bytes):

* orf_token (57 + 16·n): seq@13 token_seq@17 aru@21 aru_addr@25 ring{rep@29 seq@33 u64}
  backlog@41 fcc@45 retrans_flg@49 rtr_list_entries@53, then n × rtr_item
  {ring rep u32, ring seq u64, seq u32}.
* mcast (45 + payload): system_from@13 seq@17 this_seqno@21 ring{rep@25 seq@29}
  node_id@37 guarantee@41 (0 agreed, 1 safe), then the totempg packet — or, when
  ``encapsulated == 1`` (recovery), a whole old-ring mcast.
* memb_merge_detect (29): system_from@13 ring{rep@17 seq@21}.
* memb_join (33 + 4·(p+f)): system_from@13 proc_list_entries@17 failed_list_entries@21
  ring_seq@25 u64, then p + f nodeids.
* memb_commit_token (41 + 28·n): token_seq@13 ring{rep@17 seq@21} retrans_flg@29
  memb_index@33 addr_entries@37, then n nodeids, then n × memb_entry
  {ring rep u32, ring seq u64, aru u32, high_delivered u32, received_flg u32}.
* token_hold_cancel (25): ring{rep@13 seq@17}.

Validators return 0 or a reject reason (R_*); the caller counts it and drops the frame.
They are stricter than Corosync's ``check_*_sanity`` (which only check lengths): counts are
bounded, nodeids are non-zero and unique, indices are in range. Frames in the other byte
order (magic 0x70C0) are rejected with R_ENDIAN: every platform coroproc runs on is
little-endian, and a clear count beats a half-tested swab path.
"""
import numpy as np

from coroproc.njit import njit

MAGIC = 0xC070
MAGIC_SWAPPED = 0x70C0
VERSION = 3

T_ORF_TOKEN = 0
T_MCAST = 1
T_MERGE_DETECT = 2
T_MEMB_JOIN = 3
T_COMMIT_TOKEN = 4
T_TOKEN_HOLD_CANCEL = 5

ENCAPSULATED = 1
NOT_ENCAPSULATED = 2

GUARANTEE_AGREED = 0
GUARANTEE_SAFE = 1

PROCESSOR_COUNT_MAX = 384
RETRANSMIT_ENTRIES_MAX = 30
LEAVE_DUMMY_NODEID = 0

HDR_BYTES = 13
TOKEN_BYTES = 57
RTR_ITEM_BYTES = 16
TOKEN_MAX_BYTES = TOKEN_BYTES + RETRANSMIT_ENTRIES_MAX * RTR_ITEM_BYTES
MCAST_BYTES = 45
MERGE_DETECT_BYTES = 29
JOIN_BYTES = 33
COMMIT_BYTES = 41
COMMIT_ENTRY_BYTES = 24
COMMIT_MAX_BYTES = COMMIT_BYTES + PROCESSOR_COUNT_MAX * (4 + COMMIT_ENTRY_BYTES)
HOLD_CANCEL_BYTES = 25
JOIN_MAX_BYTES = JOIN_BYTES + 2 * PROCESSOR_COUNT_MAX * 4

# header
O_MAGIC = 0
O_VERSION = 2
O_TYPE = 3
O_ENCAP = 4
O_NODEID = 5
O_TARGET = 9
# orf_token
O_TK_SEQ = 13
O_TK_TOKEN_SEQ = 17
O_TK_ARU = 21
O_TK_ARU_ADDR = 25
O_TK_RING_REP = 29
O_TK_RING_SEQ = 33
O_TK_BACKLOG = 41
O_TK_FCC = 45
O_TK_RETRANS_FLG = 49
O_TK_RTR_N = 53
# mcast
O_MC_FROM = 13
O_MC_SEQ = 17
O_MC_THIS_SEQNO = 21
O_MC_RING_REP = 25
O_MC_RING_SEQ = 29
O_MC_NODE_ID = 37
O_MC_GUARANTEE = 41
# merge detect
O_MD_FROM = 13
O_MD_RING_REP = 17
O_MD_RING_SEQ = 21
# join
O_JN_FROM = 13
O_JN_PROC_N = 17
O_JN_FAILED_N = 21
O_JN_RING_SEQ = 25
# commit token
O_CT_TOKEN_SEQ = 13
O_CT_RING_REP = 17
O_CT_RING_SEQ = 21
O_CT_RETRANS_FLG = 29
O_CT_MEMB_INDEX = 33
O_CT_ADDR_N = 37
# memb entry (relative)
O_ME_RING_REP = 0
O_ME_RING_SEQ = 4
O_ME_ARU = 12
O_ME_HIGH_DELIVERED = 16
O_ME_RECEIVED_FLG = 20
# hold cancel
O_HC_RING_REP = 13
O_HC_RING_SEQ = 17

# Reject reasons (index into the reject counters; 0 = accepted).
R_OK = 0
R_SHORT = 1         # shorter than its fixed part
R_MAGIC = 2         # not a Totem frame (knet, an old corosync, garbage)
R_ENDIAN = 3        # big-endian sender
R_VERSION = 4       # Totem header version is not 3
R_TYPE = 5          # unknown message type
R_COUNT = 6         # a list count out of bounds
R_LENGTH = 7        # shorter than its counts require
R_NODEID = 8        # a zero nodeid where one is required
R_DUPLICATE = 9     # a nodeid listed twice
R_FIELD = 10        # a field outside its allowed values
R_INNER = 11        # an encapsulated mcast whose inner frame is invalid
R_OVERSIZE = 12     # larger than this node's frame buffer
R_COUNT_MAX = 13

REJECT_NAMES = (
    "ok", "short", "bad_magic", "big_endian", "bad_version", "bad_type", "bad_count",
    "bad_length", "zero_nodeid", "duplicate_nodeid", "bad_field", "bad_inner", "oversize",
)


@njit(cache=True)
def rd_u8(b, o):
    return np.int64(b[o])


@njit(cache=True)
def rd_u16(b, o):
    return np.int64(b[o]) | (np.int64(b[o + 1]) << 8)


@njit(cache=True)
def rd_u32(b, o):
    # np.int64, not int(): int() of a uint8 types as uint64 and poisons arithmetic to float
    return (np.int64(b[o]) | (np.int64(b[o + 1]) << 8) | (np.int64(b[o + 2]) << 16)
            | (np.int64(b[o + 3]) << 24))


@njit(cache=True)
def rd_i32(b, o):
    v = rd_u32(b, o)
    if v >= 0x80000000:
        v -= 0x100000000
    return v


@njit(cache=True)
def rd_u64(b, o):
    # Ring seqs are < 2**63 in practice; a hostile 2**64-1 reads as -1 and fails validation.
    lo = rd_u32(b, o)
    hi = rd_u32(b, o + 4)
    return lo | (hi << 32)


@njit(cache=True)
def wr_u16(b, o, v):
    b[o] = v & 0xFF
    b[o + 1] = (v >> 8) & 0xFF


@njit(cache=True)
def wr_u32(b, o, v):
    b[o] = v & 0xFF
    b[o + 1] = (v >> 8) & 0xFF
    b[o + 2] = (v >> 16) & 0xFF
    b[o + 3] = (v >> 24) & 0xFF


@njit(cache=True)
def wr_u64(b, o, v):
    wr_u32(b, o, v & 0xFFFFFFFF)
    wr_u32(b, o + 4, (v >> 32) & 0xFFFFFFFF)


@njit(cache=True)
def copy_bytes(dst, doff, src, soff, n):
    """dst[doff:doff+n] = src[soff:soff+n] as an index loop over two slice views: the form
    numba vectorises (about 80x faster than indexing the big arrays inside the loop)."""
    d = dst[doff:doff + n]
    s = src[soff:soff + n]
    for k in range(n):
        d[k] = s[k]


@njit(cache=True)
def wr_header(b, o, msg_type, encapsulated, nodeid, target_nodeid):
    wr_u16(b, o + O_MAGIC, MAGIC)
    b[o + O_VERSION] = VERSION
    b[o + O_TYPE] = msg_type
    b[o + O_ENCAP] = encapsulated
    wr_u32(b, o + O_NODEID, nodeid)
    wr_u32(b, o + O_TARGET, target_nodeid)


@njit(cache=True)
def check_header(b, n):
    """Validate the common header; returns (reason, type)."""
    if n < HDR_BYTES:
        return R_SHORT, -1
    magic = rd_u16(b, O_MAGIC)
    if magic != MAGIC:
        if magic == MAGIC_SWAPPED:
            return R_ENDIAN, -1
        return R_MAGIC, -1
    if b[O_VERSION] != VERSION:
        return R_VERSION, -1
    t = np.int64(b[O_TYPE])
    if t > T_TOKEN_HOLD_CANCEL:
        return R_TYPE, -1
    return R_OK, t


@njit(cache=True)
def _unique_nonzero(b, o, count):
    """Nodeids at b[o:o+4*count] are non-zero and unique (O(n^2), n <= 768, rare path)."""
    for i in range(count):
        a = rd_u32(b, o + 4 * i)
        if a == 0:
            return R_NODEID
        for j in range(i):
            if rd_u32(b, o + 4 * j) == a:
                return R_DUPLICATE
    return R_OK


# Ring seqs grow by 4 per configuration from 0; no real ring comes near 2**62, and a
# larger value (hostile or corrupt) would overflow the next ring's seq and wedge formation.
RING_SEQ_MAX = 1 << 62


@njit(cache=True)
def check_ring(b, o_rep, o_seq):
    if rd_u32(b, o_rep) == 0:
        return R_NODEID
    seq = rd_u64(b, o_seq)
    if seq < 0 or seq >= RING_SEQ_MAX:
        return R_FIELD
    return R_OK


@njit(cache=True)
def check_token(b, n):
    if n < TOKEN_BYTES:
        return R_SHORT
    rtr_n = rd_i32(b, O_TK_RTR_N)
    if rtr_n < 0 or rtr_n > RETRANSMIT_ENTRIES_MAX:
        return R_COUNT
    if n < TOKEN_BYTES + rtr_n * RTR_ITEM_BYTES:
        return R_LENGTH
    if rd_u32(b, O_NODEID) == 0:
        return R_NODEID
    r = check_ring(b, O_TK_RING_REP, O_TK_RING_SEQ)
    if r != R_OK:
        return r
    flg = rd_i32(b, O_TK_RETRANS_FLG)
    if flg != 0 and flg != 1:
        return R_FIELD
    return R_OK


@njit(cache=True)
def check_mcast_at(b, o, n):
    """Validate an mcast header starting at offset o of a frame of n bytes."""
    if n - o < MCAST_BYTES:
        return R_SHORT
    if rd_u16(b, o + O_MAGIC) != MAGIC or b[o + O_VERSION] != VERSION:
        return R_MAGIC
    if b[o + O_TYPE] != T_MCAST:
        return R_TYPE
    if rd_u32(b, o + O_NODEID) == 0 or rd_u32(b, o + O_MC_FROM) == 0:
        return R_NODEID
    r = check_ring(b, o + O_MC_RING_REP, o + O_MC_RING_SEQ)
    if r != R_OK:
        return r
    g = rd_i32(b, o + O_MC_GUARANTEE)
    if g < 0 or g > 3:
        # TOTEM_AGREED=0, TOTEM_SAFE=1; Corosync's CPG also passes FIFO/UNORDERED values
        # through unchanged (2, 3) and treats them as agreed.
        return R_FIELD
    return R_OK


@njit(cache=True)
def check_mcast(b, n):
    r = check_mcast_at(b, 0, n)
    if r != R_OK:
        return r
    enc = np.int64(b[O_ENCAP])
    if enc == ENCAPSULATED:
        if check_mcast_at(b, MCAST_BYTES, n) != R_OK:
            return R_INNER
        if b[MCAST_BYTES + O_ENCAP] == ENCAPSULATED:
            return R_INNER
    elif enc != NOT_ENCAPSULATED and enc != 0:
        return R_FIELD
    return R_OK


@njit(cache=True)
def check_merge_detect(b, n):
    if n < MERGE_DETECT_BYTES:
        return R_SHORT
    if rd_u32(b, O_MD_FROM) == 0:
        return R_NODEID
    return check_ring(b, O_MD_RING_REP, O_MD_RING_SEQ)


@njit(cache=True)
def check_join(b, n):
    if n < JOIN_BYTES:
        return R_SHORT
    p = rd_u32(b, O_JN_PROC_N)
    f = rd_u32(b, O_JN_FAILED_N)
    if p > PROCESSOR_COUNT_MAX or f > PROCESSOR_COUNT_MAX:
        return R_COUNT
    if n < JOIN_BYTES + 4 * (p + f):
        return R_LENGTH
    if rd_u32(b, O_JN_FROM) == 0:
        return R_NODEID
    seq = rd_u64(b, O_JN_RING_SEQ)
    if seq < 0 or seq >= RING_SEQ_MAX:
        return R_FIELD
    r = _unique_nonzero(b, JOIN_BYTES, p)
    if r != R_OK:
        return r
    return _unique_nonzero(b, JOIN_BYTES + 4 * p, f)


@njit(cache=True)
def check_commit_token(b, n):
    if n < COMMIT_BYTES:
        return R_SHORT
    cnt = rd_i32(b, O_CT_ADDR_N)
    if cnt < 1 or cnt > PROCESSOR_COUNT_MAX:
        return R_COUNT
    if n < COMMIT_BYTES + cnt * (4 + COMMIT_ENTRY_BYTES):
        return R_LENGTH
    idx = rd_i32(b, O_CT_MEMB_INDEX)
    if idx < 0 or idx > cnt:
        return R_FIELD
    if rd_u32(b, O_NODEID) == 0:
        return R_NODEID
    r = check_ring(b, O_CT_RING_REP, O_CT_RING_SEQ)
    if r != R_OK:
        return r
    return _unique_nonzero(b, COMMIT_BYTES, cnt)


@njit(cache=True)
def check_hold_cancel(b, n):
    if n < HOLD_CANCEL_BYTES:
        return R_SHORT
    return check_ring(b, O_HC_RING_REP, O_HC_RING_SEQ)


@njit(cache=True)
def check_frame(b, n):
    """Full validation of one received frame: returns (reason, type)."""
    r, t = check_header(b, n)
    if r != R_OK:
        return r, t
    if t == T_ORF_TOKEN:
        r = check_token(b, n)
    elif t == T_MCAST:
        r = check_mcast(b, n)
    elif t == T_MERGE_DETECT:
        r = check_merge_detect(b, n)
    elif t == T_MEMB_JOIN:
        r = check_join(b, n)
    elif t == T_COMMIT_TOKEN:
        r = check_commit_token(b, n)
    else:
        r = check_hold_cancel(b, n)
    return r, t
