"""Golden layout tests of the Totem wire format (coroproc.ringproc.wire).

Every frame here is built by hand with ``struct.pack('<...')`` in the field order of the C
structs of Corosync v3.1.7 (include/corosync/totem/totem.h ``totem_message_header`` and
``memb_ring_id``; exec/totemsrp.c ``mcast``, ``orf_token``, ``rtr_item``, ``memb_join``,
``memb_merge_detect``, ``token_hold_cancel``, ``memb_commit_token`` and
``memb_commit_token_memb_entry``; ``srp_addr`` is one ``unsigned int nodeid``). All structs
are ``__attribute__((packed))``, so the struct format strings below have no padding.

The helpers (``hdr``, ``orf_token``, ``mcast``, ...) are shared with test_core_fuzz.py.
"""
from __future__ import annotations

import struct

import numpy as np
import pytest

from coroproc.ringproc import wire as W

# ---------------------------------------------------------------------------------------
# Hand-built frames (C field order; one comment per struct member)
# ---------------------------------------------------------------------------------------

HDR_FMT = (
    "H"   # totem_message_header.magic          unsigned short
    "B"   # totem_message_header.version        char
    "B"   # totem_message_header.type           char
    "B"   # totem_message_header.encapsulated   char
    "I"   # totem_message_header.nodeid         unsigned int
    "I"   # totem_message_header.target_nodeid  unsigned int
)
RING_FMT = (
    "I"   # memb_ring_id.rep                    unsigned int
    "Q"   # memb_ring_id.seq                    unsigned long long
)
RTR_ITEM_FMT = RING_FMT + (  # rtr_item.ring_id
    "I"   # rtr_item.seq                        unsigned int
)
TOKEN_FMT = HDR_FMT + (      # orf_token.header
    "I"   # orf_token.seq                       unsigned int
    "I"   # orf_token.token_seq                 unsigned int
    "I"   # orf_token.aru                       unsigned int
    "I"   # orf_token.aru_addr                  unsigned int
) + RING_FMT + (             # orf_token.ring_id
    "I"   # orf_token.backlog                   unsigned int
    "I"   # orf_token.fcc                       unsigned int
    "i"   # orf_token.retrans_flg               int
    "i"   # orf_token.rtr_list_entries          int   (then rtr_item rtr_list[0])
)
MCAST_FMT = HDR_FMT + (      # mcast.header
    "I"   # mcast.system_from                   struct srp_addr {unsigned int nodeid}
    "I"   # mcast.seq                           unsigned int
    "i"   # mcast.this_seqno                    int
) + RING_FMT + (             # mcast.ring_id
    "I"   # mcast.node_id                       unsigned int
    "i"   # mcast.guarantee                     int
)
MERGE_DETECT_FMT = HDR_FMT + (  # memb_merge_detect.header
    "I"   # memb_merge_detect.system_from       struct srp_addr
) + RING_FMT                 # memb_merge_detect.ring_id
JOIN_FMT = HDR_FMT + (       # memb_join.header
    "I"   # memb_join.system_from               struct srp_addr
    "I"   # memb_join.proc_list_entries         unsigned int
    "I"   # memb_join.failed_list_entries       unsigned int
    "Q"   # memb_join.ring_seq                  unsigned long long
)                            # then srp_addr proc_list[], srp_addr failed_list[]
HOLD_CANCEL_FMT = HDR_FMT + RING_FMT  # token_hold_cancel.header, token_hold_cancel.ring_id
COMMIT_FMT = HDR_FMT + (     # memb_commit_token.header
    "I"   # memb_commit_token.token_seq         unsigned int
) + RING_FMT + (             # memb_commit_token.ring_id
    "I"   # memb_commit_token.retrans_flg       unsigned int
    "i"   # memb_commit_token.memb_index        int
    "i"   # memb_commit_token.addr_entries      int
)                            # then srp_addr addr[n], memb_commit_token_memb_entry memb_list[n]
MEMB_ENTRY_FMT = RING_FMT + (  # memb_commit_token_memb_entry.ring_id
    "I"   # memb_commit_token_memb_entry.aru            unsigned int
    "I"   # memb_commit_token_memb_entry.high_delivered unsigned int
    "I"   # memb_commit_token_memb_entry.received_flg   unsigned int
)


def _pack(fmt: str, *vals, endian: str = "<") -> bytes:
    return struct.pack(endian + fmt, *vals)


def hdr(mtype: int, nodeid: int = 1, encapsulated: int = 0, target: int = 0,
        magic: int = W.MAGIC, version: int = W.VERSION, endian: str = "<") -> bytes:
    return _pack(HDR_FMT, magic, version, mtype, encapsulated, nodeid, target, endian=endian)


def orf_token(*, nodeid=1, seq=0, token_seq=0, aru=0, aru_addr=1, rep=1, ring_seq=4, backlog=0,
              fcc=0, retrans_flg=0, rtr=(), rtr_n=None, target=0, endian="<") -> bytes:
    """rtr: iterable of (ring rep, ring seq, seq)."""
    rtr = list(rtr)
    head = _pack(TOKEN_FMT, W.MAGIC, W.VERSION, W.T_ORF_TOKEN, 0, nodeid, target,
                 seq, token_seq, aru, aru_addr, rep, ring_seq, backlog, fcc, retrans_flg,
                 len(rtr) if rtr_n is None else rtr_n, endian=endian)
    return head + b"".join(_pack(RTR_ITEM_FMT, *it, endian=endian) for it in rtr)


def mcast(*, nodeid=1, system_from=None, seq=1, this_seqno=1, rep=1, ring_seq=4, node_id=None,
          guarantee=W.GUARANTEE_AGREED, payload=b"", encapsulated=W.NOT_ENCAPSULATED, target=0,
          endian="<") -> bytes:
    system_from = nodeid if system_from is None else system_from
    node_id = nodeid if node_id is None else node_id
    return _pack(MCAST_FMT, W.MAGIC, W.VERSION, W.T_MCAST, encapsulated, nodeid, target,
                 system_from, seq, this_seqno, rep, ring_seq, node_id, guarantee,
                 endian=endian) + payload


def merge_detect(*, nodeid=1, system_from=None, rep=1, ring_seq=4, target=0, endian="<") -> bytes:
    system_from = nodeid if system_from is None else system_from
    return _pack(MERGE_DETECT_FMT, W.MAGIC, W.VERSION, W.T_MERGE_DETECT, 0, nodeid, target,
                 system_from, rep, ring_seq, endian=endian)


def memb_join(*, nodeid=1, system_from=None, procs=(1,), failed=(), ring_seq=4, proc_n=None,
              failed_n=None, target=0, endian="<") -> bytes:
    system_from = nodeid if system_from is None else system_from
    head = _pack(JOIN_FMT, W.MAGIC, W.VERSION, W.T_MEMB_JOIN, 0, nodeid, target, system_from,
                 len(procs) if proc_n is None else proc_n,
                 len(failed) if failed_n is None else failed_n, ring_seq, endian=endian)
    ids = list(procs) + list(failed)
    return head + _pack("I" * len(ids), *ids, endian=endian)


def commit_token(*, nodeid=1, token_seq=0, rep=1, ring_seq=8, retrans_flg=0, memb_index=0,
                 addrs=(1, 2, 3), entries=None, addr_n=None, target=0, endian="<") -> bytes:
    """entries: one (ring rep, ring seq, aru, high_delivered, received_flg) per addr."""
    addrs = list(addrs)
    if entries is None:
        entries = [(0, 0, 0, 0, 0)] * len(addrs)
    head = _pack(COMMIT_FMT, W.MAGIC, W.VERSION, W.T_COMMIT_TOKEN, 0, nodeid, target,
                 token_seq, rep, ring_seq, retrans_flg, memb_index,
                 len(addrs) if addr_n is None else addr_n, endian=endian)
    return (head + _pack("I" * len(addrs), *addrs, endian=endian)
            + b"".join(_pack(MEMB_ENTRY_FMT, *e, endian=endian) for e in entries))


def hold_cancel(*, nodeid=1, rep=1, ring_seq=4, target=0, endian="<") -> bytes:
    return _pack(HOLD_CANCEL_FMT, W.MAGIC, W.VERSION, W.T_TOKEN_HOLD_CANCEL, 0, nodeid, target,
                 rep, ring_seq, endian=endian)


def encapsulate(inner: bytes, *, nodeid=1, seq=7, rep=1, ring_seq=8) -> bytes:
    """A recovery mcast of the new ring carrying a whole old-ring mcast (Corosync 3.1)."""
    return mcast(nodeid=nodeid, seq=seq, this_seqno=seq, rep=rep, ring_seq=ring_seq,
                 encapsulated=W.ENCAPSULATED, payload=inner)


def arr(frame: bytes) -> np.ndarray:
    return np.frombuffer(bytes(frame), np.uint8)


def check(frame: bytes) -> tuple[int, int]:
    r, t = W.check_frame(arr(frame), len(frame))
    return int(r), int(t)


def set_u32(frame: bytes, off: int, value: int) -> bytes:
    b = bytearray(frame)
    struct.pack_into("<I", b, off, value & 0xFFFFFFFF)
    return bytes(b)


def set_u64(frame: bytes, off: int, value: int) -> bytes:
    b = bytearray(frame)
    struct.pack_into("<Q", b, off, value & 0xFFFFFFFFFFFFFFFF)
    return bytes(b)


def set_u8(frame: bytes, off: int, value: int) -> bytes:
    b = bytearray(frame)
    b[off] = value & 0xFF
    return bytes(b)


def valid_frames() -> dict[str, bytes]:
    """One valid frame of every type (and variants), for tests and as fuzzing seeds."""
    return {
        "orf_token": orf_token(nodeid=2, seq=10, token_seq=3, aru=9, aru_addr=2, rep=1,
                               ring_seq=8, rtr=[(1, 8, 5), (1, 8, 6)], retrans_flg=1),
        "orf_token_empty": orf_token(),
        "mcast": mcast(nodeid=2, seq=11, rep=1, ring_seq=8, payload=b"\x00" * 24),
        "mcast_safe": mcast(nodeid=3, seq=12, rep=1, ring_seq=8, guarantee=W.GUARANTEE_SAFE,
                            payload=b"xyz"),
        "mcast_encapsulated": encapsulate(mcast(nodeid=3, seq=5, rep=1, ring_seq=4,
                                                payload=b"old"), nodeid=2, seq=1, ring_seq=8),
        "merge_detect": merge_detect(nodeid=1, rep=1, ring_seq=8),
        "memb_join": memb_join(nodeid=3, procs=(1, 2, 3), failed=(4,), ring_seq=8),
        "memb_leave": memb_join(nodeid=W.LEAVE_DUMMY_NODEID, system_from=3, procs=(1, 2),
                                failed=(3,), ring_seq=8),
        "commit_token": commit_token(nodeid=1, rep=1, ring_seq=12, addrs=(1, 2, 3),
                                     memb_index=1,
                                     entries=[(1, 8, 40, 40, 1), (1, 8, 38, 37, 1),
                                              (3, 4, 0, 0, 0)]),
        "token_hold_cancel": hold_cancel(nodeid=2, rep=1, ring_seq=8),
    }


# ---------------------------------------------------------------------------------------
# (a) sizes
# ---------------------------------------------------------------------------------------

def test_struct_sizes_match_corosync_and_wire_constants():
    size = lambda fmt: struct.calcsize("<" + fmt)  # noqa: E731
    assert size(HDR_FMT) == 13 == W.HDR_BYTES
    assert size(TOKEN_FMT) == 57 == W.TOKEN_BYTES
    assert size(RTR_ITEM_FMT) == 16 == W.RTR_ITEM_BYTES
    assert size(MCAST_FMT) == 45 == W.MCAST_BYTES
    assert size(MERGE_DETECT_FMT) == 29 == W.MERGE_DETECT_BYTES
    assert size(JOIN_FMT) == 33 == W.JOIN_BYTES
    assert size(COMMIT_FMT) == 41 == W.COMMIT_BYTES
    assert size(MEMB_ENTRY_FMT) == 24 == W.COMMIT_ENTRY_BYTES
    assert size(HOLD_CANCEL_FMT) == 25 == W.HOLD_CANCEL_BYTES
    assert W.TOKEN_MAX_BYTES == 57 + 16 * 30
    assert W.COMMIT_MAX_BYTES == 41 + 28 * 384
    assert W.JOIN_MAX_BYTES == 33 + 4 * 2 * 384
    assert (W.PROCESSOR_COUNT_MAX, W.RETRANSMIT_ENTRIES_MAX) == (384, 30)
    assert (W.MAGIC, W.MAGIC_SWAPPED, W.VERSION) == (0xC070, 0x70C0, 3)
    assert (W.T_ORF_TOKEN, W.T_MCAST, W.T_MERGE_DETECT, W.T_MEMB_JOIN, W.T_COMMIT_TOKEN,
            W.T_TOKEN_HOLD_CANCEL) == (0, 1, 2, 3, 4, 5)
    assert (W.ENCAPSULATED, W.NOT_ENCAPSULATED) == (1, 2)


@pytest.mark.parametrize("n", [0, 1, 30])
def test_token_size_is_57_plus_16n(n):
    f = orf_token(rtr=[(1, 4, k + 1) for k in range(n)])
    assert len(f) == 57 + 16 * n
    assert check(f) == (W.R_OK, W.T_ORF_TOKEN)


@pytest.mark.parametrize("p,f", [(1, 0), (3, 2), (384, 384)])
def test_join_size_is_33_plus_4_p_plus_f(p, f):
    frame = memb_join(procs=range(1, p + 1), failed=range(1000, 1000 + f))
    assert len(frame) == 33 + 4 * (p + f)
    assert check(frame) == (W.R_OK, W.T_MEMB_JOIN)
    if (p, f) == (384, 384):
        assert len(frame) == W.JOIN_MAX_BYTES


@pytest.mark.parametrize("n", [1, 3, 384])
def test_commit_size_is_41_plus_28n(n):
    frame = commit_token(addrs=range(1, n + 1))
    assert len(frame) == 41 + 28 * n
    assert check(frame) == (W.R_OK, W.T_COMMIT_TOKEN)
    if n == 384:
        assert len(frame) == W.COMMIT_MAX_BYTES


def test_fixed_sizes():
    assert len(hdr(0)) == 13
    assert len(mcast()) == 45
    assert len(merge_detect()) == 29
    assert len(hold_cancel()) == 25


# ---------------------------------------------------------------------------------------
# (b) offsets: decode the hand-packed bytes with wire.rd_* at every O_* constant
# ---------------------------------------------------------------------------------------

def _u32(frame, off):
    return int(W.rd_u32(arr(frame), off))


def _u64(frame, off):
    return int(W.rd_u64(arr(frame), off))


def test_header_offsets():
    f = hdr(5, nodeid=0x0A0B0C0D, encapsulated=2, target=0x01020304) + bytes(12)
    a = arr(f)
    assert int(W.rd_u16(a, W.O_MAGIC)) == 0xC070
    assert f[:2] == b"\x70\xc0"  # little-endian on the wire
    assert int(W.rd_u8(a, W.O_VERSION)) == 3
    assert int(W.rd_u8(a, W.O_TYPE)) == 5
    assert int(W.rd_u8(a, W.O_ENCAP)) == 2
    assert _u32(f, W.O_NODEID) == 0x0A0B0C0D
    assert _u32(f, W.O_TARGET) == 0x01020304


def test_orf_token_offsets():
    # distinct values in every field, so a wrong offset cannot read the right value
    f = orf_token(nodeid=0x11, seq=0x21222324, token_seq=0x31323334, aru=0x41424344,
                  aru_addr=0x51525354, rep=0x61626364, ring_seq=0x0102030405060708,
                  backlog=0x71727374, fcc=0x0A0B0C0D, retrans_flg=1,
                  rtr=[(0x1A1B1C1D, 0x2A2B2C2D3A3B3C3D, 0x4A4B4C4D)], target=0x99)
    assert _u32(f, W.O_TK_SEQ) == 0x21222324
    assert _u32(f, W.O_TK_TOKEN_SEQ) == 0x31323334
    assert _u32(f, W.O_TK_ARU) == 0x41424344
    assert _u32(f, W.O_TK_ARU_ADDR) == 0x51525354
    assert _u32(f, W.O_TK_RING_REP) == 0x61626364
    assert _u64(f, W.O_TK_RING_SEQ) == 0x0102030405060708
    assert _u32(f, W.O_TK_BACKLOG) == 0x71727374
    assert _u32(f, W.O_TK_FCC) == 0x0A0B0C0D
    assert _u32(f, W.O_TK_RETRANS_FLG) == 1
    assert _u32(f, W.O_TK_RTR_N) == 1
    # the rtr_item right after the fixed part: ring rep, ring seq (u64), seq
    o = W.TOKEN_BYTES
    assert (_u32(f, o), _u64(f, o + 4), _u32(f, o + 12)) == (
        0x1A1B1C1D, 0x2A2B2C2D3A3B3C3D, 0x4A4B4C4D)
    assert _u32(f, W.O_NODEID) == 0x11 and _u32(f, W.O_TARGET) == 0x99


def test_mcast_offsets():
    f = mcast(nodeid=0x11, system_from=0x21222324, seq=0x31323334, this_seqno=0x41424344,
              rep=0x51525354, ring_seq=0x0102030405060708, node_id=0x61626364,
              guarantee=W.GUARANTEE_SAFE, payload=b"PAYLOAD")
    assert _u32(f, W.O_MC_FROM) == 0x21222324
    assert _u32(f, W.O_MC_SEQ) == 0x31323334
    assert _u32(f, W.O_MC_THIS_SEQNO) == 0x41424344
    assert _u32(f, W.O_MC_RING_REP) == 0x51525354
    assert _u64(f, W.O_MC_RING_SEQ) == 0x0102030405060708
    assert _u32(f, W.O_MC_NODE_ID) == 0x61626364
    assert _u32(f, W.O_MC_GUARANTEE) == 1
    assert f[W.MCAST_BYTES:] == b"PAYLOAD"
    assert int(W.rd_u8(arr(f), W.O_ENCAP)) == W.NOT_ENCAPSULATED


def test_merge_detect_offsets():
    f = merge_detect(nodeid=0x11, system_from=0x21222324, rep=0x31323334,
                     ring_seq=0x0102030405060708)
    assert _u32(f, W.O_MD_FROM) == 0x21222324
    assert _u32(f, W.O_MD_RING_REP) == 0x31323334
    assert _u64(f, W.O_MD_RING_SEQ) == 0x0102030405060708


def test_join_offsets():
    f = memb_join(nodeid=0x11, system_from=0x21222324, procs=(0x0A, 0x0B, 0x0C),
                  failed=(0x1F,), ring_seq=0x0102030405060708)
    assert _u32(f, W.O_JN_FROM) == 0x21222324
    assert _u32(f, W.O_JN_PROC_N) == 3
    assert _u32(f, W.O_JN_FAILED_N) == 1
    assert _u64(f, W.O_JN_RING_SEQ) == 0x0102030405060708
    ids = [_u32(f, W.JOIN_BYTES + 4 * i) for i in range(4)]
    assert ids == [0x0A, 0x0B, 0x0C, 0x1F]  # proc_list then failed_list


def test_commit_token_offsets():
    entries = [(0x1A1B1C1D, 0x0102030405060708, 0x2A2B2C2D, 0x3A3B3C3D, 1),
               (0x4A4B4C4D, 0x1112131415161718, 0x5A5B5C5D, 0x6A6B6C6D, 0)]
    f = commit_token(nodeid=0x11, token_seq=0x21222324, rep=0x31323334,
                     ring_seq=0x0A0B0C0D0E0F1011, retrans_flg=1, memb_index=1,
                     addrs=(0x71, 0x72), entries=entries)
    assert _u32(f, W.O_CT_TOKEN_SEQ) == 0x21222324
    assert _u32(f, W.O_CT_RING_REP) == 0x31323334
    assert _u64(f, W.O_CT_RING_SEQ) == 0x0A0B0C0D0E0F1011
    assert _u32(f, W.O_CT_RETRANS_FLG) == 1
    assert _u32(f, W.O_CT_MEMB_INDEX) == 1
    assert _u32(f, W.O_CT_ADDR_N) == 2
    n = 2
    assert [_u32(f, W.COMMIT_BYTES + 4 * i) for i in range(n)] == [0x71, 0x72]
    for i, (rep, seq, aru, hd, rf) in enumerate(entries):
        o = W.COMMIT_BYTES + 4 * n + W.COMMIT_ENTRY_BYTES * i  # memb_list[i]
        assert _u32(f, o + W.O_ME_RING_REP) == rep
        assert _u64(f, o + W.O_ME_RING_SEQ) == seq
        assert _u32(f, o + W.O_ME_ARU) == aru
        assert _u32(f, o + W.O_ME_HIGH_DELIVERED) == hd
        assert _u32(f, o + W.O_ME_RECEIVED_FLG) == rf
    assert len(f) == W.COMMIT_BYTES + n * (4 + W.COMMIT_ENTRY_BYTES)


def test_hold_cancel_offsets():
    f = hold_cancel(nodeid=0x11, rep=0x21222324, ring_seq=0x0102030405060708)
    assert _u32(f, W.O_HC_RING_REP) == 0x21222324
    assert _u64(f, W.O_HC_RING_SEQ) == 0x0102030405060708


def test_writers_round_trip_with_struct():
    b = np.zeros(32, np.uint8)
    W.wr_header(b, 0, W.T_MEMB_JOIN, 0, 0x01020304, 0x0A0B0C0D)
    assert bytes(b[:13]) == hdr(W.T_MEMB_JOIN, nodeid=0x01020304, target=0x0A0B0C0D)
    W.wr_u64(b, 16, 0x0102030405060708)
    assert bytes(b[16:24]) == struct.pack("<Q", 0x0102030405060708)
    W.wr_u32(b, 24, 0xFFFFFFFF)
    assert int(W.rd_u32(b, 24)) == 0xFFFFFFFF and int(W.rd_i32(b, 24)) == -1


# ---------------------------------------------------------------------------------------
# (c) check_frame accepts valid frames with the right type
# ---------------------------------------------------------------------------------------

EXPECTED_TYPE = {
    "orf_token": W.T_ORF_TOKEN, "orf_token_empty": W.T_ORF_TOKEN, "mcast": W.T_MCAST,
    "mcast_safe": W.T_MCAST, "mcast_encapsulated": W.T_MCAST,
    "merge_detect": W.T_MERGE_DETECT, "memb_join": W.T_MEMB_JOIN,
    "memb_leave": W.T_MEMB_JOIN, "commit_token": W.T_COMMIT_TOKEN,
    "token_hold_cancel": W.T_TOKEN_HOLD_CANCEL,
}


@pytest.mark.parametrize("name", sorted(EXPECTED_TYPE))
def test_check_frame_accepts_valid(name):
    f = valid_frames()[name]
    assert check(f) == (W.R_OK, EXPECTED_TYPE[name])
    # trailing bytes after a complete frame are tolerated, like Corosync (length >= struct)
    assert check(f + b"\x00" * 7) == (W.R_OK, EXPECTED_TYPE[name])


def test_check_frame_accepts_corosync_values_that_look_odd():
    # a leave: header nodeid LEAVE_DUMMY_NODEID (0), system_from = the leaver, in failed too
    assert check(memb_join(nodeid=0, system_from=2, procs=(1, 3), failed=(2,))) == (0, 3)
    # the same node in proc_list and failed_list is normal (the failed set is a subset)
    assert check(memb_join(procs=(1, 2, 3), failed=(2, 3))) == (0, 3)
    # an empty failed list and a join listing only the sender
    assert check(memb_join(procs=(1,), failed=())) == (0, 3)
    # CPG passes FIFO/UNORDERED guarantees (2, 3) through
    assert check(mcast(guarantee=2)) == (0, 1) and check(mcast(guarantee=3)) == (0, 1)
    # target_nodeid is not initialised by Corosync's join sender: any value is accepted
    assert check(memb_join(target=0xDEADBEEF)) == (0, 3)
    # mcast.node_id is not validated (it is not a set member)
    assert check(mcast(node_id=0)) == (0, 1)
    # the last index of a rotating commit token
    assert check(commit_token(addrs=(1, 2, 3), memb_index=2)) == (0, 4)
    # full retransmit list
    assert check(orf_token(rtr=[(1, 4, k) for k in range(30)])) == (0, 0)
    # the largest ring seq accepted (wire.RING_SEQ_MAX - 1); one more is refused
    assert check(memb_join(ring_seq=W.RING_SEQ_MAX - 1)) == (0, 3)
    assert check(memb_join(ring_seq=W.RING_SEQ_MAX)) == (W.R_FIELD, 3)


# ---------------------------------------------------------------------------------------
# (d) every validator rule, one minimal mutation each
# ---------------------------------------------------------------------------------------

FIXED = {  # type -> (a valid frame of the smallest size, its fixed size)
    W.T_ORF_TOKEN: (orf_token(), 57),
    W.T_MCAST: (mcast(), 45),
    W.T_MERGE_DETECT: (merge_detect(), 29),
    W.T_MEMB_JOIN: (memb_join(procs=(), failed=()), 33),
    W.T_COMMIT_TOKEN: (commit_token(addrs=(1,)), 41 + 28),
    W.T_TOKEN_HOLD_CANCEL: (hold_cancel(), 25),
}


@pytest.mark.parametrize("n", range(0, 13))
def test_short_header(n):
    assert check(memb_join()[:n])[0] == W.R_SHORT


@pytest.mark.parametrize("t", sorted(FIXED))
def test_short_fixed_part(t):
    f, size = FIXED[t]
    assert len(f) == size and check(f) == (W.R_OK, t)
    fixed = {0: 57, 1: 45, 2: 29, 3: 33, 4: 41, 5: 25}[t]
    for n in (13, fixed - 1):
        assert check(f[:n]) == (W.R_SHORT, t), (t, n)


def test_length_zero_and_empty_buffer():
    assert W.check_frame(np.zeros(0, np.uint8), 0)[0] == W.R_SHORT
    # n, not the buffer's size, is the frame length
    f = memb_join()
    assert W.check_frame(arr(f + bytes(100)), 12)[0] == W.R_SHORT
    assert W.check_frame(arr(f + bytes(100)), len(f) - 1)[0] == W.R_LENGTH


@pytest.mark.parametrize("magic", [0x0000, 0xC071, 0x1234, 0xFFFF, 0x70C1])
def test_bad_magic(magic):
    assert check(set_u8(set_u8(memb_join(), 0, magic), 1, magic >> 8)) == (W.R_MAGIC, -1)


@pytest.mark.parametrize("name", sorted(EXPECTED_TYPE))
def test_big_endian_frames_are_r_endian(name):
    # the whole frame as a big-endian Corosync would send it: magic reads 0x70C0
    builders = {
        "orf_token": lambda e: orf_token(rtr=[(1, 4, 3)], endian=e),
        "orf_token_empty": lambda e: orf_token(endian=e),
        "mcast": lambda e: mcast(endian=e), "mcast_safe": lambda e: mcast(guarantee=1, endian=e),
        "mcast_encapsulated": lambda e: mcast(encapsulated=1, payload=mcast(endian=e),
                                              endian=e),
        "merge_detect": lambda e: merge_detect(endian=e),
        "memb_join": lambda e: memb_join(procs=(1, 2), endian=e),
        "memb_leave": lambda e: memb_join(nodeid=0, system_from=2, failed=(2,), endian=e),
        "commit_token": lambda e: commit_token(endian=e),
        "token_hold_cancel": lambda e: hold_cancel(endian=e),
    }
    little = builders[name]("<")
    big = builders[name](">")
    assert check(little)[0] == W.R_OK
    assert big[:2] == b"\xc0\x70"
    assert check(big) == (W.R_ENDIAN, -1)


@pytest.mark.parametrize("version", [0, 1, 2, 4, 0x83, 0xFF])
def test_bad_version(version):
    assert check(set_u8(orf_token(), W.O_VERSION, version)) == (W.R_VERSION, -1)


@pytest.mark.parametrize("mtype", [6, 7, 0x7F, 0x80, 0xFF])
def test_bad_type(mtype):
    assert check(set_u8(hold_cancel(), W.O_TYPE, mtype)) == (W.R_TYPE, -1)


@pytest.mark.parametrize("n", [31, 32, 0x7FFFFFFF, -1, -0x80000000])
def test_token_rtr_count(n):
    # enough bytes for 31 items, so only the count can be wrong
    f = orf_token(rtr=[(1, 4, k) for k in range(31)], rtr_n=n)
    assert check(f) == (W.R_COUNT, W.T_ORF_TOKEN)


def test_token_rtr_length():
    f = orf_token(rtr=[(1, 4, k) for k in range(3)])
    assert check(f) == (0, 0)
    assert check(f[:-1]) == (W.R_LENGTH, W.T_ORF_TOKEN)
    assert check(set_u32(orf_token(), W.O_TK_RTR_N, 1)) == (W.R_LENGTH, W.T_ORF_TOKEN)
    assert check(set_u32(f, W.O_TK_RTR_N, 30)) == (W.R_LENGTH, W.T_ORF_TOKEN)


def test_token_fields():
    assert check(orf_token(nodeid=0)) == (W.R_NODEID, 0)
    assert check(orf_token(rep=0)) == (W.R_NODEID, 0)
    assert check(orf_token(ring_seq=2**63)) == (W.R_FIELD, 0)
    assert check(orf_token(ring_seq=2**64 - 1)) == (W.R_FIELD, 0)
    for flg in (2, -1, 0x7FFFFFFF):
        assert check(orf_token(retrans_flg=flg)) == (W.R_FIELD, 0)


@pytest.mark.parametrize("field,value", [("proc_n", 385), ("failed_n", 385),
                                         ("proc_n", 2**31 - 1), ("failed_n", 2**32 - 1),
                                         ("proc_n", 2**32 - 1)])
def test_join_count(field, value):
    f = memb_join(procs=range(1, 400), failed=range(500, 900), **{field: value})
    assert check(f) == (W.R_COUNT, W.T_MEMB_JOIN)


def test_join_count_limits_are_inclusive():
    f = memb_join(procs=range(1, 385), failed=range(1001, 1385))
    assert check(f) == (0, 3)


def test_join_length():
    f = memb_join(procs=(1, 2, 3), failed=(4,))
    assert check(f[:-1]) == (W.R_LENGTH, 3)
    assert check(f[:-4]) == (W.R_LENGTH, 3)
    assert check(set_u32(f, W.O_JN_FAILED_N, 2)) == (W.R_LENGTH, 3)
    assert check(set_u32(f, W.O_JN_PROC_N, 384)) == (W.R_LENGTH, 3)
    # 384 + 384 entries against a short frame: no overflow in the length arithmetic
    f = set_u32(set_u32(f, W.O_JN_PROC_N, 384), W.O_JN_FAILED_N, 384)
    assert check(f) == (W.R_LENGTH, 3)


def test_join_nodeids():
    assert check(memb_join(nodeid=1, system_from=0)) == (W.R_NODEID, 3)
    assert check(memb_join(procs=(1, 0, 3))) == (W.R_NODEID, 3)
    assert check(memb_join(procs=(1, 2), failed=(0,))) == (W.R_NODEID, 3)
    assert check(memb_join(procs=(1, 2, 1))) == (W.R_DUPLICATE, 3)
    assert check(memb_join(procs=(5, 2, 3, 4, 5))) == (W.R_DUPLICATE, 3)
    assert check(memb_join(procs=(1, 2), failed=(4, 4))) == (W.R_DUPLICATE, 3)
    assert check(memb_join(ring_seq=2**63)) == (W.R_FIELD, 3)
    assert check(memb_join(ring_seq=2**64 - 1)) == (W.R_FIELD, 3)


@pytest.mark.parametrize("n", [0, 385, -1, 2**31 - 1])
def test_commit_count(n):
    f = commit_token(addrs=range(1, 390), addr_n=n)
    assert check(f) == (W.R_COUNT, W.T_COMMIT_TOKEN)


def test_commit_length():
    f = commit_token(addrs=(1, 2, 3))
    assert check(f[:-1]) == (W.R_LENGTH, 4)
    assert check(f[:41 + 12]) == (W.R_LENGTH, 4)  # the addrs without their memb entries
    assert check(set_u32(f, W.O_CT_ADDR_N, 4)) == (W.R_LENGTH, 4)


def test_commit_fields():
    f = commit_token(addrs=(1, 2, 3))
    assert check(set_u32(f, W.O_CT_MEMB_INDEX, 4)) == (W.R_FIELD, 4)
    assert check(set_u32(f, W.O_CT_MEMB_INDEX, 2**31 - 1)) == (W.R_FIELD, 4)
    assert check(set_u32(f, W.O_CT_MEMB_INDEX, 2**32 - 1)) == (W.R_FIELD, 4)  # -1
    assert check(commit_token(nodeid=0)) == (W.R_NODEID, 4)
    assert check(commit_token(rep=0)) == (W.R_NODEID, 4)
    assert check(commit_token(ring_seq=2**63)) == (W.R_FIELD, 4)
    assert check(commit_token(addrs=(1, 0, 3))) == (W.R_NODEID, 4)
    assert check(commit_token(addrs=(1, 2, 1))) == (W.R_DUPLICATE, 4)


def test_merge_detect_and_hold_cancel_fields():
    assert check(merge_detect(system_from=0)) == (W.R_NODEID, 2)
    assert check(merge_detect(rep=0)) == (W.R_NODEID, 2)
    assert check(merge_detect(ring_seq=2**64 - 1)) == (W.R_FIELD, 2)
    assert check(hold_cancel(rep=0)) == (W.R_NODEID, 5)
    assert check(hold_cancel(ring_seq=2**63)) == (W.R_FIELD, 5)


def test_mcast_fields():
    assert check(mcast(nodeid=0, system_from=1)) == (W.R_NODEID, 1)
    assert check(mcast(nodeid=1, system_from=0)) == (W.R_NODEID, 1)
    assert check(mcast(rep=0)) == (W.R_NODEID, 1)
    assert check(mcast(ring_seq=2**63)) == (W.R_FIELD, 1)
    for g in (-1, 4, 2**31 - 1):
        assert check(mcast(guarantee=g)) == (W.R_FIELD, 1)
    for enc in (3, 0xFF):
        assert check(mcast(encapsulated=enc)) == (W.R_FIELD, 1)


def test_encapsulated_inner_frame():
    inner = mcast(nodeid=3, seq=5, rep=1, ring_seq=4, payload=b"old")
    good = encapsulate(inner)
    assert check(good) == (0, 1)
    broken_inners = {
        "short": inner[:44],
        "magic": set_u8(inner, 0, 0x00),
        "version": set_u8(inner, W.O_VERSION, 2),
        "type": set_u8(inner, W.O_TYPE, W.T_ORF_TOKEN),
        "nodeid": set_u32(inner, W.O_NODEID, 0),
        "from": set_u32(inner, W.O_MC_FROM, 0),
        "rep": set_u32(inner, W.O_MC_RING_REP, 0),
        "seq": set_u64(inner, W.O_MC_RING_SEQ, 2**64 - 1),
        "guarantee": set_u32(inner, W.O_MC_GUARANTEE, 7),
        "nested": set_u8(inner, W.O_ENCAP, W.ENCAPSULATED),
        "missing": b"",
    }
    for why, bad in broken_inners.items():
        assert check(encapsulate(bad)) == (W.R_INNER, 1), why
    # the outer header is checked first: a broken outer is not R_INNER
    assert check(set_u32(encapsulate(b""), W.O_MC_FROM, 0)) == (W.R_NODEID, 1)


def test_not_encapsulated_payload_is_opaque():
    # a non-encapsulated mcast's payload is a totempg packet, never validated as a frame
    assert check(mcast(payload=b"\xff" * 10)) == (0, 1)
    assert check(mcast(encapsulated=0, payload=b"\x00")) == (0, 1)


# ---------------------------------------------------------------------------------------
# Frames the core produces are valid and laid out like Corosync's
# ---------------------------------------------------------------------------------------

def _core_config():
    from coroproc.ringproc.config import TotemConfig
    return TotemConfig(token_ms=300, nodelist=(1, 2, 3), queue_slots=256,
                       new_message_queue_bytes=1 << 20, max_message_bytes=65536)


def _sends(outputs):
    return [(dest, frame) for kind, *rest in outputs if kind == "send"
            for dest, frame in [rest]]


def _decode_join(frame):
    p = _u32(frame, W.O_JN_PROC_N)
    f = _u32(frame, W.O_JN_FAILED_N)
    ids = [_u32(frame, W.JOIN_BYTES + 4 * i) for i in range(p + f)]
    return {
        "nodeid": _u32(frame, W.O_NODEID), "from": _u32(frame, W.O_JN_FROM),
        "procs": ids[:p], "failed": ids[p:], "ring_seq": _u64(frame, W.O_JN_RING_SEQ),
        "encap": frame[W.O_ENCAP], "len": len(frame), "expected_len": W.JOIN_BYTES + 4 * (p + f),
    }


@pytest.mark.parametrize("nodeid,persisted", [(1, 0), (2, 41)])
def test_core_join_is_valid_and_decodes(nodeid, persisted):
    from coroproc.ringproc.node import TotemNode
    node = TotemNode(_core_config(), nodeid=nodeid, ring_seq=persisted)
    node.start(0)
    sends = _sends(node.take_outputs())
    joins = [(dest, f) for dest, f in sends if f[W.O_TYPE] == W.T_MEMB_JOIN]
    assert joins, "start() must multicast a memb_join"
    for dest, frame in sends:
        assert check(frame)[0] == W.R_OK, frame.hex()
    dest, frame = joins[0]
    assert dest == 0  # multicast
    assert check(frame) == (W.R_OK, W.T_MEMB_JOIN)
    j = _decode_join(frame)
    assert j["len"] == j["expected_len"]
    assert j["nodeid"] == nodeid and j["from"] == nodeid
    assert j["procs"] == [nodeid] and j["failed"] == []
    # the boot ring seq: above the persisted one (a restarted node's ring is new)
    assert j["ring_seq"] > persisted
    assert j["encap"] == 0  # Corosync sets encapsulated = 0 on joins
    # whatever the node does next on its own (join timer, singleton ring, merge probes),
    # every frame it sends is valid, and its joins keep the same layout
    t = 0
    for _ in range(200):
        t = node.next_deadline_us()
        if t < 0 or t > 5_000_000:
            break
        node.on_timer(t)
        for dest, f in _sends(node.take_outputs()):
            assert check(f)[0] == W.R_OK, f.hex()
            if f[W.O_TYPE] == W.T_MEMB_JOIN:
                j = _decode_join(f)
                assert dest == 0 and j["len"] == j["expected_len"]
                assert j["nodeid"] == nodeid == j["from"] and nodeid in j["procs"]
                assert j["ring_seq"] > persisted


def test_core_leave_layout():
    """Corosync's memb_leave_message_send: header nodeid LEAVE_DUMMY_NODEID, system_from =
    the leaver, the leaver in failed_list and not in proc_list."""
    from coroproc.ringproc.node import TotemNode
    node = TotemNode(_core_config(), nodeid=2)
    node.start(0)
    node.take_outputs()
    node.leave(2000)
    leaves = [(d, f) for d, f in _sends(node.take_outputs()) if f[W.O_TYPE] == W.T_MEMB_JOIN]
    assert len(leaves) == 1
    dest, frame = leaves[0]
    lv = _decode_join(frame)
    assert dest == 0 and check(frame) == (0, 3)
    assert lv["len"] == lv["expected_len"]
    assert lv["nodeid"] == W.LEAVE_DUMMY_NODEID and lv["from"] == 2
    assert 2 in lv["failed"] and 2 not in lv["procs"]
    assert lv["ring_seq"] == node.ring_id[1]
