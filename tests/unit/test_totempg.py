"""Tests for coroproc.ringproc.totempg (Corosync 3.1.7 totempg packing/reassembly).

Three kinds of evidence:
* hand-built wire bytes (golden tests) from struct totempg_mcast and the group header;
* digests of packet streams / delivery sequences produced by the REAL Corosync 3.1.7
  totempg.c (compiled with Totem SRP stubbed out), embedded here so they run anywhere;
* when the Corosync git mirror and gcc are available, a live differential test against
  that compiled totempg.c (skipped otherwise).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from coroproc.ringproc import totempg as pg

MP1500 = pg.max_packet_bytes_for_netmtu(1500)      # 1410
NAME_A = np.frombuffer(b"a", np.uint8)


# ------------------------------------------------------------------------------------
# helpers

def new_queue(cap=1 << 22):
    q = np.zeros(cap, np.uint8)
    qm = np.zeros(pg.Q_META_LEN, np.int64)
    fs = np.zeros(pg.FRAG_STATE_LEN, np.int64)
    assert pg.pg_queue_init(qm, cap) == 0
    return q, qm, fs


def new_asm(slots=2, cap=pg.ASM_CAP_BYTES_COROSYNC):
    return np.zeros((slots, cap), np.uint8), np.zeros((slots, pg.ASM_META_LEN), np.int64)


def submit_payload(q, qm, payload: bytes, level=0, split=0, group=b"a"):
    p = np.frombuffer(payload, np.uint8) if payload else np.zeros(0, np.uint8)
    name = np.frombuffer(group, np.uint8)
    return pg.pg_submit_group(q, qm, name, len(group), p, len(payload), level, split)


def pack_all(q, qm, fs, mp=MP1500):
    out = np.zeros(mp, np.uint8)
    pkts = []
    while True:
        n, level = pg.pg_pack(q, qm, fs, out, mp)
        assert n >= 0, n
        if n == 0:
            break
        assert n <= mp
        pkts.append((out[:n].tobytes(), int(level)))
    assert qm[pg.Q_COUNT] == 0 and qm[pg.Q_USED] == 0 and qm[pg.Q_PENDING_BYTES] == 0
    return pkts


class Receiver:
    def __init__(self, slots=2, asm_cap=pg.ASM_CAP_BYTES_COROSYNC, out_bytes=4 << 20, rows=8192):
        self.asm_data, self.asm_meta = new_asm(slots, asm_cap)
        self.out_data = np.zeros(out_bytes, np.uint8)
        self.out_meta = np.zeros((rows, pg.OUT_META_LEN), np.int64)

    def feed(self, pkt: bytes, slot=0, swap=0):
        """Returns the list of complete messages (whole, group header included) or an int code."""
        arr = np.frombuffer(pkt, np.uint8) if pkt else np.zeros(0, np.uint8)
        r = pg.pg_unpack(arr, len(pkt), slot, self.asm_data, self.asm_meta,
                         self.out_data, self.out_meta, 0, swap)
        if r < 0:
            return int(r)
        return [self.out_data[o:o + n].tobytes() for o, n in self.out_meta[:r, :2]]

    def payloads(self, pkt: bytes, slot=0):
        msgs = self.feed(pkt, slot)
        assert not isinstance(msgs, int), msgs
        res = []
        for m in msgs:
            a = np.frombuffer(m, np.uint8)
            st_, poff, g, noff, nlen = pg.pg_parse_groups(a, 0, len(m), 0)
            assert st_ == 0
            res.append(m[poff:])
        return res

    def state(self, slot=0):
        return tuple(int(x) for x in self.asm_meta[slot, :pg.A_STATE_FIELDS])


def mcast(frag, cont, msgs):
    """A totempg packet by hand: struct totempg_mcast + msg_len[] + data (little-endian)."""
    hdr = (0).to_bytes(2, "little") + (0).to_bytes(2, "little") + bytes([frag, cont]) \
        + len(msgs).to_bytes(2, "little")
    return hdr + b"".join(len(m).to_bytes(2, "little") for m in msgs) + b"".join(msgs)


def grp(payload: bytes, name=b"a"):
    """group_len[0] = 1, group_len[1] = len(name), name, payload."""
    return (1).to_bytes(2, "little") + len(name).to_bytes(2, "little") + name + payload


def payload_bytes(i, n):
    return (((np.arange(n, dtype=np.int64) * 7 + i * 13) & 0xFF).astype(np.uint8)).tobytes()


def stream_digest(pkts):
    h = hashlib.sha256()
    for p in pkts:
        h.update(len(p).to_bytes(4, "little"))
        h.update(p)
    return h.hexdigest()[:32]


# ------------------------------------------------------------------------------------
# sizes

def test_packet_size_for_netmtu():
    # net_mtu - 2 * sizeof(struct mcast) (totemsrp_net_mtu_adjust); struct mcast = 45
    # packed bytes; TOTEMPG_PACKET_SIZE is that minus the 8-byte struct totempg_mcast.
    assert pg.TOTEM_MCAST_HDR_BYTES == 13 + 4 + 4 + 4 + (4 + 8) + 4 + 4 == 45
    assert pg.max_packet_bytes_for_netmtu(1500) == 1410
    assert pg.max_packet_bytes_for_netmtu(65536) == 65446


# ------------------------------------------------------------------------------------
# golden bytes

def test_golden_two_small_messages_group_a():
    q, qm, fs = new_queue()
    assert submit_payload(q, qm, b"ab") == 1
    assert submit_payload(q, qm, b"cde") == 1
    pkts = pack_all(q, qm, fs)
    expected = bytes([
        0x00, 0x00,             # header.version = 0 (short)
        0x00, 0x00,             # header.type    = 0 (short)
        0x00,                   # fragmented     = 0: last message is complete
        0x00,                   # continuation   = 0: first message starts here
        0x02, 0x00,             # msg_count      = 2 (unsigned short)
        0x07, 0x00,             # msg_len[0] = 7 = 2*(1+1) + 1 + 2
        0x08, 0x00,             # msg_len[1] = 8 = 2*(1+1) + 1 + 3
        0x01, 0x00, 0x01, 0x00, ord("a"), ord("a"), ord("b"),        # groups=1, len 1, "a", "ab"
        0x01, 0x00, 0x01, 0x00, ord("a"), ord("c"), ord("d"), ord("e"),
    ])
    assert pkts == [(expected, 0)]
    # the same message built by the generic helper
    out = np.zeros(16, np.uint8)
    n = pg.pg_build_group_msg(out, NAME_A, np.array([1]), 1, np.frombuffer(b"ab", np.uint8), 2)
    assert out[:n].tobytes() == expected[12:19]
    assert pg.build_group_message(b"a", b"cde").tobytes() == expected[19:]


def test_golden_fragmented_message_netmtu_1500():
    # 3000-byte payload to group "a": 3005 bytes.  TOTEMPG_PACKET_SIZE = 1402, so a
    # lone message gets 1402 - 2 = 1400 bytes per packet; the tail goes out at once.
    # (Captured from the real totempg.c with the same input.)
    q, qm, fs = new_queue()
    payload = bytes([0x78]) * 3000
    assert submit_payload(q, qm, payload) == 1
    pkts = [p for p, _ in pack_all(q, qm, fs)]
    assert [len(p) for p in pkts] == [1410, 1410, 215]
    assert pkts[0][:8] == bytes([0, 0, 0, 0, 1, 0, 1, 0])       # fragmented=1, continuation=0
    assert pkts[0][8:10] == (1400).to_bytes(2, "little")
    assert pkts[0][10:15] == bytes([1, 0, 1, 0, ord("a")])
    assert pkts[1][:10] == bytes([0, 0, 0, 0, 2, 1, 1, 0]) + (1400).to_bytes(2, "little")
    assert pkts[2][:10] == bytes([0, 0, 0, 0, 0, 2, 1, 0]) + (205).to_bytes(2, "little")
    rx = Receiver()
    got = []
    for p in pkts:
        got += rx.payloads(p)
    assert got == [payload]


def test_golden_sync_group_and_two_groups():
    m = pg.build_group_message(b"sync", b"\x01\x02")
    assert m.tobytes() == bytes([1, 0, 4, 0]) + b"sync" + b"\x01\x02"
    out = np.zeros(64, np.uint8)
    names = np.frombuffer(b"async", np.uint8)
    n = pg.pg_build_group_msg(out, names, np.array([1, 4]), 2, np.frombuffer(b"xy", np.uint8), 2)
    assert out[:n].tobytes() == bytes([2, 0, 1, 0, 4, 0]) + b"async" + b"xy"
    st_, poff, g, noff, nlen = pg.pg_parse_groups(out, 0, n)
    assert (st_, poff, g, noff, nlen) == (0, 11, 2, 6, 1)
    assert pg.pg_group_matches(out, 0, n, np.frombuffer(b"sync", np.uint8), 4) == 1
    assert pg.pg_group_matches(out, 0, n, np.frombuffer(b"syn", np.uint8), 3) == 0
    assert pg.group_payload_offset(out[:n]) == 11


# ------------------------------------------------------------------------------------
# round trips

def roundtrip(payloads, levels=None, mp=MP1500, splits=None):
    q, qm, fs = new_queue(1 << 23)
    levels = levels or [0] * len(payloads)
    splits = splits or [0] * len(payloads)
    for p, lv, sp in zip(payloads, levels, splits):
        assert submit_payload(q, qm, p, lv, sp) == 1
    pkts = pack_all(q, qm, fs, mp)
    rx = Receiver()
    got = []
    for p, _ in pkts:
        got += rx.payloads(p)
    assert rx.state() == (0, 0, 0, 0)
    return pkts, got


def test_many_small_messages_pack_into_few_packets():
    payloads = [payload_bytes(i, i % 50) for i in range(1000)]
    pkts, got = roundtrip(payloads)
    assert got == payloads
    total = sum(len(p) + 5 + 2 for p in payloads)     # group header + msg_len each
    assert len(pkts) <= total // (MP1500 - 8 - 2) + 2
    assert all(len(p) <= MP1500 for p, _ in pkts)


@pytest.mark.parametrize("mp", [MP1500, 200, 64, pg.PG_MIN_PACKET_BYTES, 9000 - 90, 65446])
def test_mixed_sizes_roundtrip(mp):
    room = mp - 8
    rng = random.Random(mp)
    sizes = [0, 1, 0, 2]
    for d in range(-12, 6):                          # around one packet
        sizes.append(max(0, room - 2 - 5 + d))
        sizes.append(max(0, 2 * room + d))
    sizes += [rng.randint(0, 3 * room) for _ in range(40)]
    payloads = [payload_bytes(i, n) for i, n in enumerate(sizes)]
    splits = [rng.randint(1, len(p) - 1) if len(p) > 2 and i % 3 == 0 else 0
              for i, p in enumerate(payloads)]
    pkts, got = roundtrip(payloads, mp=mp, splits=splits)
    assert got == payloads


def test_zero_byte_payloads():
    pkts, got = roundtrip([b""] * 10)
    assert got == [b""] * 10
    assert len(pkts) == 1 and pkts[0][0][6:8] == (10).to_bytes(2, "little")


def test_one_mib_messages():
    big = [payload_bytes(i, 1 << 20) for i in range(2)]
    pkts, got = roundtrip([big[0], b"x", big[1]])
    assert got == [big[0], b"x", big[1]]
    # A lone message gets TOTEMPG_PACKET_SIZE - 2 = 1400 data bytes per packet.
    q, qm, fs = new_queue(1 << 22)
    assert submit_payload(q, qm, big[0]) == 1
    n_pkts = len(pack_all(q, qm, fs))
    assert n_pkts == -(-((1 << 20) + 5) // (MP1500 - 8 - 2)) == 749


def test_fragment_counter_wraps_past_255():
    # 749 packets for one message: fragment numbers 1..255, 1..255, 1..238, then 0.
    q, qm, fs = new_queue(1 << 22)
    assert submit_payload(q, qm, b"\0" * (1 << 20)) == 1
    pkts = [p for p, _ in pack_all(q, qm, fs)]
    frags = [p[4] for p in pkts]
    conts = [p[5] for p in pkts]
    assert 0 not in frags[:-1] and frags[-1] == 0
    assert frags[:3] == [1, 2, 3] and frags[254:257] == [255, 1, 2]
    assert conts[0] == 0 and conts[1:] == frags[:-1]


def test_levels_never_mixed():
    rng = random.Random(7)
    payloads, levels = [], []
    for i in range(400):
        payloads.append(payload_bytes(i, rng.choice([0, 3, 40, 700, 1390, 1500, 5000])))
        levels.append(rng.choice([0, 0, 0, 1]))
    q, qm, fs = new_queue(1 << 23)
    for p, lv in zip(payloads, levels):
        assert submit_payload(q, qm, p, lv) == 1
    pkts = pack_all(q, qm, fs)
    # walk msg_len[] of every packet and attribute each piece to its message
    m, left = 0, len(payloads[0]) + 5
    for pkt, level in pkts:
        count = int.from_bytes(pkt[6:8], "little")
        for j in range(count):
            ln = int.from_bytes(pkt[8 + 2 * j:10 + 2 * j], "little")
            assert levels[m] == level
            left -= ln
            assert left >= 0
            if left == 0:
                m += 1
                left = len(payloads[m]) + 5 if m < len(payloads) else 0
    assert m == len(payloads)
    rx = Receiver()
    got = []
    for p, _ in pkts:
        got += rx.payloads(p)
    assert got == payloads


def test_interleaved_senders_reassemble_independently():
    rng = random.Random(11)
    streams, sent = [], []
    for s in range(2):
        q, qm, fs = new_queue(1 << 23)
        ps = [payload_bytes(100 * s + i, rng.choice([1, 30, 1398, 1500, 4000, 20000]))
              for i in range(60)]
        for p in ps:
            assert submit_payload(q, qm, p) == 1
        streams.append([p for p, _ in pack_all(q, qm, fs)])
        sent.append(ps)
    rx = Receiver(slots=2)
    got = [[], []]
    pos = [0, 0]
    while pos[0] < len(streams[0]) or pos[1] < len(streams[1]):
        s = rng.choice([x for x in (0, 1) if pos[x] < len(streams[x])])
        got[s] += rx.payloads(streams[s][pos[s]], slot=s)
        pos[s] += 1
    assert got == sent


def test_pack_resumes_between_calls_and_flushes():
    # Submitting between pack calls = Corosync's token-time flush in between.
    q, qm, fs = new_queue()
    out = np.zeros(MP1500, np.uint8)
    assert submit_payload(q, qm, b"a" * 2000) == 1
    n1, _ = pg.pg_pack(q, qm, fs, out, MP1500)
    assert n1 == MP1500 and out[4] == 1
    assert fs[pg.F_MSG_OFF] == 1400 and fs[pg.F_CONTINUATION] == 1
    # the 2005-byte iovec does not "fit" (whole length checked), so its tail goes alone
    assert submit_payload(q, qm, b"b") == 1
    n2, _ = pg.pg_pack(q, qm, fs, out, MP1500)
    assert out[5] == 1 and out[4] == 0 and int.from_bytes(out[6:8], "little") == 1
    n3, _ = pg.pg_pack(q, qm, fs, out, MP1500)
    assert out[5] == 0 and int.from_bytes(out[6:8], "little") == 1 and n3 == 8 + 2 + 6
    assert pg.pg_pack(q, qm, fs, out, MP1500) == (0, -1)


# ------------------------------------------------------------------------------------
# configuration changes and throw-away mode (decisions as the real totempg.c makes them)

def big_message_packets(payload_len=4000, then=(b"M2",)):
    q, qm, fs = new_queue()
    assert submit_payload(q, qm, b"\x11" * payload_len) == 1
    for t in then:
        assert submit_payload(q, qm, t) == 1
    return [p for p, _ in pack_all(q, qm, fs)]


def test_reset_discards_partial_assembly_then_next_message_delivered():
    pkts = big_message_packets(4000, then=(b"M2", b"M3"))
    # 4005 bytes: 1400 + 1400 + 1205 (alone, sent at once) then M2 M3 packed together
    assert [p[4] for p in pkts] == [1, 2, 0, 0] and [p[5] for p in pkts] == [0, 1, 2, 0]
    rx = Receiver()
    assert rx.payloads(pkts[0]) == []
    assert rx.state() == (1400, 1, 0, 0)
    assert pg.pg_assembly_reset(rx.asm_meta, 0) == 0        # configuration change
    assert rx.state() == (0, 0, 0, 0)
    assert rx.payloads(pkts[1]) == []                        # continuation 1 != 0: throw away
    assert rx.asm_meta[0, pg.A_MISMATCH] == 1 and rx.asm_meta[0, pg.A_THROW_AWAY] == 1
    assert rx.payloads(pkts[2]) == []                        # fragmented 0 ends it, discarded
    assert rx.state() == (0, 0, 0, 0)
    assert rx.payloads(pkts[3]) == [b"M2", b"M3"]            # fresh start: delivered
    assert rx.asm_meta[0, pg.A_RESETS] == 1


def test_mismatch_discards_complete_messages_in_same_packet():
    # Corosync drops the WHOLE packet on a continuation mismatch, including messages
    # that are complete in it (here M2, which follows the tail of the big message).
    q, qm, fs = new_queue()
    assert submit_payload(q, qm, b"x" * 100) == 1
    assert submit_payload(q, qm, b"\x22" * 1350) == 1    # crosses the packet end, tail fits
    assert submit_payload(q, qm, b"M2") == 1
    pkts = [p for p, _ in pack_all(q, qm, fs)]
    assert [(p[4], p[5], int.from_bytes(p[6:8], "little")) for p in pkts] == [(1, 0, 2), (0, 1, 2)]
    rx, rx2 = Receiver(), Receiver()
    assert rx.payloads(pkts[0]) == [b"x" * 100]
    pg.pg_assembly_reset_all(rx.asm_meta)                   # configuration change
    assert rx.payloads(pkts[1]) == []                       # tail + M2: both thrown away
    assert rx.asm_meta[0, pg.A_DISCARDED] == 2
    assert rx2.payloads(pkts[0]) == [b"x" * 100]            # without the reset: all arrive
    assert rx2.payloads(pkts[1]) == [b"\x22" * 1350, b"M2"]


def test_throw_away_ends_on_fragmented_one_without_delivering():
    rx = Receiver()
    a, b, c = grp(b"A"), grp(b"B"), grp(b"C")
    assert rx.feed(mcast(5, 4, [b"zz"])) == []               # mismatch (4 != 0), fragmented 5
    assert rx.asm_meta[0, pg.A_THROW_AWAY] == 1
    assert rx.feed(mcast(6, 5, [b"zz"])) == []               # still throwing away
    # fragmented == 1 ends throw-away, but nothing in this packet is delivered (not even a)
    assert rx.feed(mcast(1, 6, [b"zz", a, b[:3]])) == []
    assert rx.asm_meta[0, pg.A_THROW_AWAY] == 0
    # last_frag_num is still 0: the continuation of b mismatches again
    assert rx.feed(mcast(0, 1, [b[3:], c])) == []
    assert rx.feed(mcast(0, 0, [c])) == [c]


def test_junk_assembly_is_dropped_not_delivered():
    # After a discarded packet with several messages, Corosync keeps the wrong bytes
    # (memmove from the wrong offset) and, if the next continuation happens to match
    # last_frag_num, delivers them.  We drop that one message instead.
    rx = Receiver()
    m0 = grp(b"first")
    assert rx.feed(mcast(1, 0, [m0[:3]])) == []              # start of m0, last_frag_num 1
    assert rx.feed(mcast(7, 9, [b"qq", grp(b"x"), b"pp"])) == []   # mismatch: throw away
    assert rx.state()[3] == 1                                 # junk held
    assert rx.feed(mcast(1, 7, [b"rr", grp(b"y"), grp(b"z")[:4]])) == []  # leaves throw-away
    # continuation 1 == last_frag_num 1: Corosync would deliver stale bytes + "zz..."
    out = rx.feed(mcast(0, 1, [grp(b"z")[4:], grp(b"w")]))
    assert out == [grp(b"w")]
    assert rx.asm_meta[0, pg.A_JUNK_DROPS] == 1


def test_trans_and_normal_slots_are_independent():
    # Corosync keeps a second assembly list while waiting_trans_ack; a partial in the
    # normal slot survives messages on the transitional slot.
    pkts = big_message_packets(2000, then=())
    rx = Receiver(slots=2)
    assert rx.payloads(pkts[0], slot=0) == []
    assert rx.payloads(big_message_packets(0, then=())[0], slot=1) == [b""]
    assert rx.payloads(pkts[1], slot=0) == [b"\x11" * 2000]


# ------------------------------------------------------------------------------------
# hostile packets

def snapshot(rx):
    return (rx.asm_meta[:, :pg.A_STATE_FIELDS].copy(), rx.asm_data.copy(),
            rx.out_data[:4096].copy(), rx.out_meta.copy())


def assert_unchanged(rx, snap):
    a, d, od, om = snap
    assert np.array_equal(rx.asm_meta[:, :pg.A_STATE_FIELDS], a)
    assert np.array_equal(rx.asm_data, d)
    assert np.array_equal(rx.out_data[:4096], od)
    assert np.array_equal(rx.out_meta, om)


@pytest.mark.parametrize("pkt,code", [
    (b"", pg.PG_E_SHORT),
    (b"\0" * 7, pg.PG_E_SHORT),
    (mcast(0, 0, [b"abc"])[:-1], pg.PG_E_LENGTH),                       # truncated data
    (mcast(0, 0, [b"abc"]) + b"!", pg.PG_E_LENGTH),                     # trailing byte
    (bytes([0, 0, 0, 0, 0, 0, 5, 0, 1, 0]), pg.PG_E_COUNT),             # msg_count too large
    (bytes([0, 0, 0, 0, 0, 0, 0xFF, 0xFF]) + b"\0" * 100, pg.PG_E_COUNT),
    (bytes([0, 0, 0, 0, 0, 0, 1, 0, 0xFF, 0xFF]) + b"x" * 10, pg.PG_E_LENGTH),  # msg_len overflow
    (bytes([0, 0, 0, 0, 0, 0, 2, 0, 0xFF, 0xFF, 0x02, 0x00]) + b"x" * 1, pg.PG_E_LENGTH),
])
def test_malformed_packets_rejected_without_side_effects(pkt, code):
    rx = Receiver()
    assert rx.feed(mcast(1, 0, [grp(b"partial")[:5]])) == []
    snap = snapshot(rx)
    assert rx.feed(pkt) == code
    assert_unchanged(rx, snap)
    assert rx.asm_meta[0, pg.A_REJECTED] == 1 and rx.asm_meta[0, pg.A_LAST_ERROR] == code
    assert rx.feed(mcast(0, 1, [grp(b"partial")[5:]])) == [grp(b"partial")]


def test_bad_continuation_is_thrown_away_and_counted():
    # Not a malformed packet for Corosync: it enters throw-away mode (state changes,
    # nothing is delivered).  Counted in A_MISMATCH / A_DISCARDED.
    rx = Receiver()
    assert rx.feed(mcast(3, 0, [grp(b"abc")[:4]])) == []
    assert rx.feed(mcast(0, 9, [grp(b"abc")[4:], grp(b"d")])) == []
    assert rx.asm_meta[0, pg.A_MISMATCH] == 1 and rx.asm_meta[0, pg.A_DISCARDED] == 2
    assert rx.state() == (0, 0, 0, 0)


def test_no_room_consumes_nothing_then_retry_works():
    rx = Receiver(rows=2)
    msgs = [grp(b"1"), grp(b"22"), grp(b"333")]
    pkt = mcast(0, 0, msgs)
    snap = snapshot(rx)
    assert rx.feed(pkt) == pg.PG_E_NO_ROOM
    assert_unchanged(rx, snap)
    rx.out_meta = np.zeros((3, pg.OUT_META_LEN), np.int64)
    assert rx.feed(pkt) == msgs
    # out_data too small for a reassembled message
    rx = Receiver(out_bytes=16)
    assert rx.feed(mcast(1, 0, [grp(b"x" * 20)[:12]])) == []
    assert rx.feed(mcast(0, 1, [grp(b"x" * 20)[12:]])) == pg.PG_E_NO_ROOM
    assert rx.state() == (12, 1, 0, 0)
    rx.out_data = np.zeros(64, np.uint8)
    assert rx.feed(mcast(0, 1, [grp(b"x" * 20)[12:]])) == [grp(b"x" * 20)]


def test_message_larger_than_asm_cap_rejected():
    rx = Receiver(asm_cap=1000)
    msg = grp(b"y" * 2500)
    assert rx.feed(mcast(1, 0, [msg[:900]])) == []
    assert rx.feed(mcast(2, 1, [msg[900:1800]])) == pg.PG_E_OVERSIZE
    assert rx.asm_meta[0, pg.A_OVERSIZE] == 1 and rx.state() == (900, 1, 0, 0)
    # the stream goes on: its next continuation mismatches and is thrown away
    assert rx.feed(mcast(0, 2, [msg[1800:]])) == []
    assert rx.feed(mcast(0, 0, [grp(b"ok")])) == [grp(b"ok")]
    # a message that completes above asm_cap is rejected too
    rx = Receiver(asm_cap=1000)
    assert rx.feed(mcast(1, 0, [msg[:900]])) == []
    assert rx.feed(mcast(0, 1, [msg[900:1200]])) == pg.PG_E_OVERSIZE


def test_bad_arguments():
    rx = Receiver(slots=1)
    pkt = np.frombuffer(mcast(0, 0, [b"x"]), np.uint8)
    args = (rx.asm_data, rx.asm_meta, rx.out_data, rx.out_meta)
    assert pg.pg_unpack(pkt, pkt.shape[0], 1, *args, 0) == pg.PG_E_ARGS
    assert pg.pg_unpack(pkt, pkt.shape[0], -1, *args, 0) == pg.PG_E_ARGS
    assert pg.pg_unpack(pkt, pkt.shape[0] + 1, 0, *args, 0) == pg.PG_E_ARGS
    assert pg.pg_unpack(pkt, pkt.shape[0], 0, *args, 8193) == pg.PG_E_ARGS
    assert pg.pg_unpack(pkt, pkt.shape[0], 0, *args, 0) == 1
    assert pg.pg_assembly_reset(rx.asm_meta, 5) == pg.PG_E_ARGS
    assert pg.pg_assembly_reset_all(rx.asm_meta) == 1


def test_big_endian_sender():
    msgs = [grp(b"hello"), grp(b"")]
    le = mcast(0, 0, msgs)

    def swap16(b):
        return b[1:2] + b[0:1]
    be = le[:6] + swap16(le[6:8]) + swap16(le[8:10]) + swap16(le[10:12])
    be += b"".join(swap16(m[0:2]) + swap16(m[2:4]) + m[4:] for m in msgs)
    rx = Receiver()
    out = rx.feed(be, swap=1)
    assert [len(m) for m in out] == [len(m) for m in msgs]
    a = np.frombuffer(out[0], np.uint8)
    st_, poff, g, noff, nlen = pg.pg_parse_groups(a, 0, len(out[0]), 1)
    assert (st_, g, nlen) == (0, 1, 1) and out[0][poff:] == b"hello"


@pytest.mark.parametrize("msg", [b"", b"\x01", b"\x01\x00\x01\x00", b"\x02\x00\x01\x00",
                                 b"\xff\xff" + b"\0" * 10, b"\x01\x00\x05\x00abc"])
def test_parse_groups_rejects_malformed(msg):
    a = np.frombuffer(msg, np.uint8) if msg else np.zeros(0, np.uint8)
    assert pg.pg_parse_groups(a, 0, len(msg))[0] == pg.PG_E_GROUPS
    assert pg.group_payload_offset(a) == pg.PG_E_GROUPS


def test_parse_groups_bounds():
    a = np.frombuffer(grp(b"xyz"), np.uint8)
    assert pg.pg_parse_groups(a, 0, a.shape[0] + 1)[0] == pg.PG_E_ARGS
    assert pg.pg_parse_groups(a, -1, 3)[0] == pg.PG_E_ARGS
    assert pg.pg_parse_groups(a, 0, a.shape[0]) == (0, 5, 1, 4, 1)
    assert pg.pg_parse_groups(np.frombuffer(b"\0\0zz", np.uint8), 0, 4) == (0, 2, 0, 0, 0)


# ------------------------------------------------------------------------------------
# queue

def test_queue_back_pressure_and_bad_input():
    q, qm, fs = new_queue(256)
    msg = np.zeros(100, np.uint8)
    assert pg.pg_submit(q, qm, msg, 100, 0) == 1              # 16 + 104 = 120
    assert pg.pg_submit(q, qm, msg, 100, 0) == 1              # 240
    assert pg.pg_submit(q, qm, msg, 100, 0) == 0              # full
    assert qm[pg.Q_FULL] == 1 and qm[pg.Q_COUNT] == 2 and qm[pg.Q_USED] == 240
    assert pg.pg_submit(q, qm, msg, 0, 0) == pg.PG_E_ARGS      # empty message
    assert pg.pg_submit(q, qm, msg, 101, 0) == pg.PG_E_ARGS    # n > len(msg)
    assert pg.pg_submit(q, qm, msg, 10, 2) == pg.PG_E_ARGS     # level
    assert pg.pg_submit(q, qm, np.zeros(300, np.uint8), 300, 0) == pg.PG_E_TOO_BIG
    assert qm[pg.Q_BAD] == 4
    assert pg.pg_backlog_packets(qm, MP1500) == 1
    bad_meta = np.zeros(pg.Q_META_LEN, np.int64)
    assert pg.pg_submit(q, bad_meta, msg, 10, 0) == pg.PG_E_QUEUE
    assert pg.pg_pack(q, bad_meta, fs, np.zeros(MP1500, np.uint8), MP1500)[0] == pg.PG_E_QUEUE
    assert pg.pg_pack(q, qm, fs, np.zeros(100, np.uint8), MP1500)[0] == pg.PG_E_ARGS
    assert pg.pg_pack(q, qm, fs, np.zeros(MP1500, np.uint8), 8)[0] == pg.PG_E_ARGS
    assert pg.pg_queue_init(qm, 100) == pg.PG_E_ARGS           # not a multiple of 8


def test_queue_detects_corruption_without_change():
    q, qm, fs = new_queue(1024)
    assert submit_payload(q, qm, b"hello") == 1
    q[12] ^= 0xFF                                              # entry tag
    before = (q.copy(), qm.copy(), fs.copy())
    out = np.zeros(MP1500, np.uint8)
    assert pg.pg_pack(q, qm, fs, out, MP1500)[0] == pg.PG_E_QUEUE
    assert np.array_equal(q, before[0]) and np.array_equal(qm, before[1])
    assert np.array_equal(fs, before[2])


def test_queue_wraps_around():
    rng = random.Random(3)
    q, qm, fs = new_queue(4096)
    out = np.zeros(MP1500, np.uint8)
    sent, got = [], []
    rx = Receiver()
    for step in range(3000):
        if rng.random() < 0.6:
            p = payload_bytes(step, rng.choice([0, 1, 7, 8, 9, 100, 600, 1500, 3000]))
            r = submit_payload(q, qm, p)
            if r == 1:
                sent.append(p)
            else:
                assert r == 0
        else:
            n, _ = pg.pg_pack(q, qm, fs, out, MP1500)
            assert n >= 0
            if n:
                got += rx.payloads(out[:n].tobytes())
        assert 0 <= qm[pg.Q_USED] <= 4096
    while True:
        n, _ = pg.pg_pack(q, qm, fs, out, MP1500)
        if n == 0:
            break
        got += rx.payloads(out[:n].tobytes())
    assert got == sent and qm[pg.Q_FULL] > 0 and qm[pg.Q_USED] == 0


# ------------------------------------------------------------------------------------
# hypothesis: arbitrary input never escapes the buffers

GUARD = 64


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pkts=st.lists(st.one_of(
    st.binary(max_size=300),
    st.builds(lambda f, k, lens, data: bytes([0, 0, 0, 0, f, k]) + len(lens).to_bytes(2, "little")
              + b"".join(x.to_bytes(2, "little") for x in lens) + data,
              st.integers(0, 3) | st.integers(0, 255), st.integers(0, 3) | st.integers(0, 255),
              st.lists(st.integers(0, 70) | st.integers(0, 65535), max_size=6),
              st.binary(max_size=250))), min_size=1, max_size=8),
    slot=st.integers(0, 1), rows=st.integers(0, 4), out_bytes=st.integers(0, 200),
    asm_cap=st.integers(1, 300), swap=st.integers(0, 1))
# a delivered empty message, then a rejected packet: the first call's row stays as it was
@example(pkts=[b"\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00", b""], slot=0, rows=1,
         out_bytes=0, asm_cap=1, swap=0)
def test_unpack_arbitrary_bytes_stays_in_bounds(pkts, slot, rows, out_bytes, asm_cap, swap):
    big_data = np.full(out_bytes + 2 * GUARD, 0xA5, np.uint8)
    out_data = big_data[GUARD:GUARD + out_bytes]
    big_meta = np.full((rows + 2, pg.OUT_META_LEN), -7, np.int64)
    out_meta = big_meta[1:1 + rows]
    asm_big = np.full((2, asm_cap + 2 * GUARD), 0x5A, np.uint8)
    asm_data = asm_big[:, GUARD:GUARD + asm_cap]
    asm_meta = np.zeros((2, pg.ASM_META_LEN), np.int64)
    for p in pkts:
        out_meta[:] = -7  # rows a call does not report must be untouched by that call
        buf = np.frombuffer(p + b"\xee" * 8, np.uint8)       # bytes past n must not matter
        r = pg.pg_unpack(buf, len(p), slot, asm_data, asm_meta, out_data, out_meta, 0, swap)
        assert isinstance(r, int) and r <= rows
        if r > 0:
            assert np.all(out_meta[:r, pg.OUT_OFF] >= 0)
            assert np.all(out_meta[:r, pg.OUT_OFF] + out_meta[:r, pg.OUT_LEN] <= out_bytes)
            assert np.all(out_meta[:r, pg.OUT_SLOT] == slot)
        assert np.all(out_meta[max(r, 0):] == -7)
        assert np.all(big_data[:GUARD] == 0xA5) and np.all(big_data[GUARD + out_bytes:] == 0xA5)
        assert np.all(big_meta[0] == -7) and np.all(big_meta[rows + 1] == -7)
        assert np.all(asm_big[:, :GUARD] == 0x5A) and np.all(asm_big[:, GUARD + asm_cap:] == 0x5A)
        assert np.all(asm_big[1 - slot] == 0x5A)
        assert 0 <= asm_meta[slot, pg.A_INDEX] <= asm_cap
        for m in range(max(r, 0)):
            o, n = out_meta[m, 0], out_meta[m, 1]
            pg.pg_parse_groups(out_data, o, n, swap)            # must not raise either


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3000), st.integers(0, 1),
                              st.integers(0, 5)), max_size=60),
       cap=st.sampled_from([32, 64, 256, 1024, 8192]),
       mp=st.sampled_from([pg.PG_MIN_PACKET_BYTES, 40, 300, MP1500]))
def test_queue_and_pack_random_ops(ops, cap, mp):
    q, qm, fs = new_queue(cap)
    out = np.zeros(mp, np.uint8)
    rx = Receiver(out_bytes=16384)
    sent, got = [], []
    for i, (op, n, level, split) in enumerate(ops):
        if op < 2:
            p = payload_bytes(i, n)
            r = submit_payload(q, qm, p, level, min(split, max(len(p) - 1, 0)))
            assert r in (0, 1, pg.PG_E_TOO_BIG)
            if r == 1:
                sent.append((p, level))
        else:
            k, lv = pg.pg_pack(q, qm, fs, out, mp)
            assert k >= 0
            if k:
                got += [(m, lv) for m in rx.payloads(out[:k].tobytes())]
    while True:
        k, lv = pg.pg_pack(q, qm, fs, out, mp)
        assert k >= 0
        if k == 0:
            break
        got += [(m, lv) for m in rx.payloads(out[:k].tobytes())]
    assert got == sent
    assert qm[pg.Q_USED] == 0 and qm[pg.Q_COUNT] == 0


# ------------------------------------------------------------------------------------
# pure-Python path (NUMBA_DISABLE_JIT=1) agrees with the compiled one

def _small_scenario_digest():
    rng = random.Random(5)
    q, qm, fs = new_queue(1 << 16)
    payloads = [payload_bytes(i, rng.choice([0, 1, 5, 100, 390, 400, 1000])) for i in range(30)]
    for i, p in enumerate(payloads):
        assert submit_payload(q, qm, p, i % 5 == 0, 3 if len(p) > 5 and i % 2 else 0) == 1
    pkts = pack_all(q, qm, fs, mp=400)
    rx = Receiver(asm_cap=4096, out_bytes=8192, rows=64)
    got = []
    for p, _ in pkts:
        got += rx.payloads(p)
    assert got == payloads
    hostile = [rx.feed(mcast(3, 7, [b"abc"])), rx.feed(b"\0" * 9),
               rx.feed(mcast(0, 0, [grp(b"q")]))]
    return stream_digest([p for p, _ in pkts]) + repr(hostile) + repr(rx.asm_meta.tolist())


def test_disable_jit_path_agrees():
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import test_totempg as t
        print(t._small_scenario_digest())
    """)
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=300, cwd=str(Path(__file__).parents[2]))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == _small_scenario_digest()


# ------------------------------------------------------------------------------------
# scenarios shared by the golden digests and the live differential test

def pack_scenario(seed, netmtu):
    """Deterministic message sequence: (payload, split, flush_after)."""
    rng = random.Random(seed)
    room = netmtu - 90 - 8
    msgs = []
    for i in range(60):
        r = rng.random()
        if r < 0.35:
            n = rng.randint(0, 40)
        elif r < 0.6:
            n = max(0, room - 5 - rng.randint(-8, 12) - rng.choice([0, 2, 4, 10, 40]))
        elif r < 0.85:
            n = rng.randint(0, 3 * room)
        elif r < 0.97:
            n = rng.choice([k * room + d for k in (1, 2, 3) for d in range(-9, 5)])
        else:
            n = rng.randint(0, 30 * room)
        split = rng.randint(1, n - 1) if n >= 2 and rng.random() < 0.3 else 0
        msgs.append((payload_bytes(i, n), split, rng.random() < 0.2))
    return msgs


def ours_pack(msgs, netmtu):
    q, qm, fs = new_queue(1 << 23)
    pkts = []
    for payload, split, flush in msgs:
        assert submit_payload(q, qm, payload, 0, split) == 1
        if flush:
            pkts += [p for p, _ in pack_all(q, qm, fs, netmtu - 90)]
    return pkts + [p for p, _ in pack_all(q, qm, fs, netmtu - 90)]


def recv_scenario(seed):
    """Deterministic receive events: ('pkt', sender, bytes) / ('left', sender) / ('trans', v).

    Two senders' real streams (payloads of zeros with distinct lengths, so garbage that
    Corosync might assemble never has a group header it could match), with packets
    skipped, fragment fields rewritten, nodes leaving and the transitional flag toggled.
    """
    rng = random.Random(seed)
    netmtu = rng.choice([1500, 300, 200])
    mp = netmtu - 90
    used = set()
    streams = []
    for s in range(2):
        q, qm, fs = new_queue(1 << 22)
        pkts = []
        for _ in range(rng.randint(1, 25)):
            r = rng.random()
            n = rng.randint(0, 30) if r < 0.5 else rng.randint(0, 5 * mp) if r < 0.95 \
                else rng.randint(0, 60 * mp)
            while n in used:
                n += 1
            used.add(n)
            assert submit_payload(q, qm, b"\0" * n) == 1
            if rng.random() < 0.3:
                pkts += [p for p, _ in pack_all(q, qm, fs, mp)]
        streams.append(pkts + [p for p, _ in pack_all(q, qm, fs, mp)])
    mut = rng.choice([0.0, 0.05, 0.2, 0.5])
    pos = [0, 0]
    events = []
    trans = 0
    while pos[0] < len(streams[0]) or pos[1] < len(streams[1]):
        ev = rng.random()
        if ev < 0.02:
            trans ^= 1
            events.append(("trans", trans))
            continue
        s = rng.choice([x for x in (0, 1) if pos[x] < len(streams[x])])
        if ev < 0.04:
            events.append(("left", s))
            continue
        if ev < 0.07:
            pos[s] += rng.randint(1, 5)
            continue
        pkt = bytearray(streams[s][pos[s]])
        pos[s] += 1
        if rng.random() < mut:
            pkt[4] = rng.choice([0, 1, 2, 3, pkt[4], rng.randint(0, 255)])
        if rng.random() < mut:
            pkt[5] = rng.choice([0, 1, 2, 3, pkt[5], rng.randint(0, 255)])
        if pkt[6] == 0 and pkt[7] == 0:
            pkt[4] = 0      # msg_count 0 + fragmented: Corosync reads uninitialised memory
        events.append(("pkt", s, bytes(pkt)))
    return netmtu, events


def ours_recv(events):
    """Per packet: (delivered messages' msg_id, junk drops). Slot = 2*sender + trans."""
    rx = Receiver(slots=4)
    trans = 0
    res = []
    for ev in events:
        if ev[0] == "trans":
            trans = ev[1]
        elif ev[0] == "left":
            pg.pg_assembly_reset(rx.asm_meta, 2 * ev[1])
            pg.pg_assembly_reset(rx.asm_meta, 2 * ev[1] + 1)
        else:
            slot = 2 * ev[1] + trans
            junk = rx.asm_meta[slot, pg.A_JUNK_DROPS]
            msgs = rx.feed(ev[2], slot)
            assert not isinstance(msgs, int), msgs
            lens = []
            for m in msgs:
                a = np.frombuffer(m, np.uint8)
                if pg.pg_group_matches(a, 0, len(m), NAME_A, 1) == 1:   # Corosync's filter
                    st_, poff, g, noff, nlen = pg.pg_parse_groups(a, 0, len(m))
                    lens.append(msg_id(m[poff:]))
            res.append((lens, int(rx.asm_meta[slot, pg.A_JUNK_DROPS] - junk)))
    return res


def msg_id(payload: bytes):
    """Length + content hash: mutated streams can make Corosync (and us) join wrong pieces."""
    return len(payload), hashlib.sha256(payload).hexdigest()[:8]


def delivery_digest(res):
    return hashlib.sha256(repr([r[0] for r in res]).encode()).hexdigest()[:32]


# Digests of what the real Corosync 3.1.7 totempg.c produced for these scenarios.
GOLDEN_PACK = {
    # (seed, netmtu): sha256 of the packet stream
    (1, 1500): "d62beeaf062db14131473aa80c131c53",
    (2, 1500): "43f9dc155177feb2d3f62a6603046824",
    (3, 200): "e926b887e8fdb56cb8dc629526e2605d",
    (4, 9000): "151de7f0855dae68e63ceb5f88ea8a2a",
    (5, 1500): "29cca434b4161fb9b8ace6bada2ae129",
    (6, 300): "c049adae241068cba0e809b702503b51",
}
GOLDEN_RECV = {
    # seed: sha256 of the per-packet delivered msg_ids (scenarios chosen with no
    # junk drop, so Corosync's and our lists are identical; the first six are the ones
    # with the most continuation mismatches / discards among seeds 0..2999)
    2487: "2b670c97248f2f916bcc408f351ce73c",
    2241: "1bd59ee966a6bcb88fd57b447be2ae18",
    1057: "59675490f20893873f7c44cacd9cb0e2",
    408: "e848a83eb0319edfc736d8fd2ce9e14b",
    664: "244eb88929e8970e599011e83b9fabfb",
    2160: "714e0729fb2c3837bb67c24d369aa792",
    0: "fa35367ea33d21da468e002bbb92f6cf",
    1: "32dbc547ddfaf3e83bb4a4b39ddd34bc",
}


@pytest.mark.parametrize("key", sorted(GOLDEN_PACK))
def test_pack_matches_corosync_golden(key):
    seed, netmtu = key
    assert stream_digest(ours_pack(pack_scenario(seed, netmtu), netmtu)) == GOLDEN_PACK[key]


@pytest.mark.parametrize("seed", sorted(GOLDEN_RECV))
def test_unpack_matches_corosync_golden(seed):
    netmtu, events = recv_scenario(seed)
    res = ours_recv(events)
    assert sum(j for _, j in res) == 0
    assert delivery_digest(res) == GOLDEN_RECV[seed]


# ------------------------------------------------------------------------------------
# live differential test against the real totempg.c (needs the Corosync mirror + gcc)

MIRROR = Path(os.environ.get("COROSYNC_MIRROR", "/work/.mirror/corosync+corosync/repo"))

HARNESS_C = r"""
/* Corosync's totempg.c with Totem SRP replaced by capture stubs. */
#include "totempg.c"

static void (*h_deliver_fn)(unsigned int, const void *, unsigned int, int);
static void (*h_confchg_fn)(enum totem_configuration_type, const unsigned int *, size_t,
    const unsigned int *, size_t, const unsigned int *, size_t, const struct memb_ring_id *);
static void (*h_trans_cb)(int);
static int (*h_token_cb)(enum totem_callback_token_type, const void *);

#define H_CAP (64 * 1024 * 1024)
static unsigned char h_pkts[H_CAP];
static int h_pkt_off[1 << 20], h_pkt_len[1 << 20];
static int h_npkts, h_pkts_used;
static unsigned char h_dlv[H_CAP];
static int h_dlv_off[1 << 20], h_dlv_len[1 << 20];
static int h_ndlv, h_dlv_used;

int totemsrp_initialize(qb_loop_t *p, void **ctx, struct totem_config *tc, totempg_stats_t *st,
    void (*deliver_fn)(unsigned int, const void *, unsigned int, int),
    void (*confchg_fn)(enum totem_configuration_type, const unsigned int *, size_t,
        const unsigned int *, size_t, const unsigned int *, size_t, const struct memb_ring_id *),
    void (*trans_cb)(int))
{
    h_deliver_fn = deliver_fn; h_confchg_fn = confchg_fn; h_trans_cb = trans_cb;
    *ctx = (void *)1;
    return 0;
}
void totemsrp_net_mtu_adjust(struct totem_config *tc) { tc->net_mtu -= 2 * 45; }
int totemsrp_avail(void *ctx) { return 1000000; }
void totemsrp_event_signal(void *ctx, enum totem_event_type t, int v) { }
int totemsrp_callback_token_create(void *ctx, void **h, enum totem_callback_token_type t, int d,
    int (*fn)(enum totem_callback_token_type, const void *), const void *data)
{ h_token_cb = fn; return 0; }
int totemsrp_mcast(void *ctx, struct iovec *iov, unsigned int n, int guarantee)
{
    int i, len = 0;
    for (i = 0; i < (int)n; i++) {
        memcpy(&h_pkts[h_pkts_used + len], iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    h_pkt_off[h_npkts] = h_pkts_used; h_pkt_len[h_npkts] = len;
    h_npkts++; h_pkts_used += len;
    return 0;
}
static void h_app_deliver(unsigned int nodeid, const void *msg, unsigned int len, int e)
{
    if (len > (1u << 22) || h_dlv_used + len > H_CAP) len = 0;
    memcpy(&h_dlv[h_dlv_used], msg, len);
    h_dlv_off[h_ndlv] = h_dlv_used; h_dlv_len[h_ndlv] = len;
    h_ndlv++; h_dlv_used += len;
}
static void h_log(int level, int subsys, const char *f, const char *file, int line,
    const char *fmt, ...) { }

static struct totem_config h_tc;
static void *h_inst;
static struct totempg_group h_group = { "a", 1 };

int h_init(int net_mtu)
{
    struct qb_list_head *l, *t;
    static int first = 1;
    if (first) {
        memset(&h_tc, 0, sizeof(h_tc));
        h_tc.totem_logging_configuration.log_printf = h_log;
        h_tc.net_mtu = net_mtu;
        if (totempg_initialize(NULL, &h_tc) != 0) return -1;
        first = 0;
    } else {
        free(fragmentation_data);
        h_tc.net_mtu = net_mtu - 90;
        fragmentation_data = malloc(TOTEMPG_PACKET_SIZE);
    }
    mcast_packed_msg_count = 0; fragment_size = 0; fragment_continuation = 0;
    next_fragment = 1; totempg_waiting_transack = 0;
    qb_list_for_each_safe(l, t, &assembly_list_inuse) { qb_list_del(l); qb_list_add(l, &assembly_list_free); }
    qb_list_for_each_safe(l, t, &assembly_list_inuse_trans) { qb_list_del(l); qb_list_add(l, &assembly_list_free); }
    qb_list_init(&totempg_groups_list);
    totempg_groups_initialize(&h_inst, h_app_deliver, NULL);
    totempg_groups_join(h_inst, &h_group, 1);
    h_npkts = h_pkts_used = h_ndlv = h_dlv_used = 0;
    return TOTEMPG_PACKET_SIZE;
}
int h_mcast(const unsigned char *buf, const int *piece_lens, int npieces, int guarantee)
{
    struct iovec iov[8]; int i, off = 0;
    for (i = 0; i < npieces; i++) {
        iov[i].iov_base = (void *)(buf + off); iov[i].iov_len = piece_lens[i]; off += piece_lens[i];
    }
    return totempg_groups_mcast_joined(h_inst, iov, npieces, guarantee);
}
void h_token(void) { h_token_cb(TOTEM_CALLBACK_TOKEN_RECEIVED, NULL); }
void h_deliver(unsigned int nodeid, const unsigned char *pkt, int len)
{
    static unsigned char copy[70000];
    memcpy(copy, pkt, len);
    h_deliver_fn(nodeid, copy, len, 0);
}
void h_trans(int v) { h_trans_cb(v); }
void h_left(unsigned int nodeid)
{
    struct memb_ring_id rid; memset(&rid, 0, sizeof(rid));
    h_confchg_fn(TOTEM_CONFIGURATION_REGULAR, NULL, 0, &nodeid, 1, NULL, 0, &rid);
}
int h_npkts_get(void) { return h_npkts; }
int h_pkt(int i, unsigned char *out) { memcpy(out, &h_pkts[h_pkt_off[i]], h_pkt_len[i]); return h_pkt_len[i]; }
int h_ndlv_get(void) { return h_ndlv; }
int h_dlv_get(int i, unsigned char *out) { memcpy(out, &h_dlv[h_dlv_off[i]], h_dlv_len[i]); return h_dlv_len[i]; }
"""

STUB_HEADERS = {
    "config.h": "",
    "libknet.h": """
        #define KNET_MAX_PACKET_SIZE 65536
        #define KNET_MIN_KEY_LEN 1024
        #define KNET_MAX_KEY_LEN 4096
        #define KNET_MAX_LINK 8
        typedef unsigned short knet_node_id_t;
        struct knet_link_status { int dummy; };
    """,
    "qb/qbloop.h": """
        #ifndef QB_LOOP_STUB
        #define QB_LOOP_STUB
        typedef struct qb_loop qb_loop_t;
        enum qb_loop_priority { QB_LOOP_LOW = 0, QB_LOOP_MED = 1, QB_LOOP_HIGH = 2 };
        #endif
    """,
    "qb/qbipcs.h": "", "qb/qbconfig.h": "", "qb/qblog.h": "",
    "qb/qblist.h": """
        #ifndef QB_LIST_STUB
        #define QB_LIST_STUB
        #include <stddef.h>
        struct qb_list_head { struct qb_list_head *next, *prev; };
        #define QB_LIST_DECLARE(n) struct qb_list_head n = { &(n), &(n) }
        static inline void qb_list_init(struct qb_list_head *h) { h->next = h; h->prev = h; }
        static inline void qb_list_add(struct qb_list_head *e, struct qb_list_head *h)
        { e->next = h->next; e->prev = h; h->next->prev = e; h->next = e; }
        static inline void qb_list_del(struct qb_list_head *e)
        { e->prev->next = e->next; e->next->prev = e->prev; e->next = e; e->prev = e; }
        static inline int qb_list_empty(const struct qb_list_head *h) { return h->next == h; }
        #define qb_list_entry(p, t, m) ((t *)((char *)(p) - offsetof(t, m)))
        #define qb_list_first_entry(h, t, m) qb_list_entry((h)->next, t, m)
        #define qb_list_for_each(p, h) for (p = (h)->next; p != (h); p = p->next)
        #define qb_list_for_each_safe(p, n, h) \
            for (p = (h)->next, n = p->next; p != (h); p = n, n = p->next)
        #endif
    """,
    "pre.h": """
        #define HDB_H_DEFINED 1
        #include <stdint.h>
        #include <inttypes.h>
        typedef uint64_t hdb_handle_t;
    """,
}
UNUSED_SYMBOLS = """totemip_print totemsrp_callback_token_destroy totemsrp_crypto_reconfigure_phase
    totemsrp_crypto_set totemsrp_finalize totemsrp_force_gather totemsrp_iface_set
    totemsrp_ifaces_get totemsrp_member_add totemsrp_member_remove totemsrp_my_family_get
    totemsrp_my_nodeid_get totemsrp_nodestatus_get totemsrp_reconfigure
    totemsrp_service_ready_register totemsrp_stats_clear totemsrp_threaded_mode_enable
    totemsrp_trans_ack""".split()


@pytest.fixture(scope="module")
def corosync(tmp_path_factory):
    if not (MIRROR / "HEAD").exists() and not (MIRROR / ".git").exists():
        pytest.skip("Corosync git mirror not available")
    if shutil.which("gcc") is None:
        pytest.skip("gcc not available")
    d = tmp_path_factory.mktemp("corosync")
    arch = subprocess.run(["git", "-C", str(MIRROR), "archive", "v3.1.7", "include", "exec"],
                          capture_output=True)
    if arch.returncode != 0:
        pytest.skip("tag v3.1.7 not in the mirror")
    subprocess.run(["tar", "x", "-C", str(d)], input=arch.stdout, check=True)
    (d / "stub" / "qb").mkdir(parents=True)
    for name, text in STUB_HEADERS.items():
        (d / "stub" / name).write_text(textwrap.dedent(text))
    (d / "harness.c").write_text(HARNESS_C)
    (d / "unused.c").write_text("".join(f"int {s}(void) {{ return 0; }}\n" for s in UNUSED_SYMBOLS))
    lib = d / "libtotempg.so"
    cc = subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-w", "-include", "stub/pre.h",
                         "-Istub", "-Iinclude", "-Iexec", "-o", str(lib), "harness.c", "unused.c"],
                        cwd=d, capture_output=True, text=True)
    if cc.returncode != 0:
        pytest.skip("could not build totempg.c: " + cc.stderr[-500:])
    return CorosyncTotempg(ctypes.CDLL(str(lib)))


class CorosyncTotempg:
    def __init__(self, lib):
        self.lib = lib
        self.buf = ctypes.create_string_buffer(1 << 22)

    def pack(self, msgs, netmtu):
        L = self.lib
        L.h_init(netmtu)
        for payload, split, flush in msgs:
            pieces = [payload] if not split else [payload[:split], payload[split:]]
            lens = (ctypes.c_int * 8)(*[len(p) for p in pieces])
            L.h_mcast(b"".join(pieces), lens, len(pieces), 0)
            if flush:
                L.h_token()
        L.h_token()
        res = []
        for i in range(L.h_npkts_get()):
            n = L.h_pkt(i, self.buf)
            res.append(self.buf.raw[:n])
        return res

    def recv(self, netmtu, events):
        L = self.lib
        L.h_init(netmtu)
        res = []
        for ev in events:
            if ev[0] == "trans":
                L.h_trans(ev[1])
            elif ev[0] == "left":
                L.h_left(ev[1] + 1)
            else:
                before = L.h_ndlv_get()
                L.h_deliver(ev[1] + 1, ev[2], len(ev[2]))
                lens = []
                for i in range(before, L.h_ndlv_get()):
                    n = L.h_dlv_get(i, self.buf)
                    lens.append(msg_id(self.buf.raw[:n]))
                res.append(lens)
        return res


def test_live_pack_equals_corosync(corosync):
    for seed in range(40):
        for netmtu in (1500, 200, 9000):
            msgs = pack_scenario(seed, netmtu)
            assert ours_pack(msgs, netmtu) == corosync.pack(msgs, netmtu), (seed, netmtu)


def test_live_unpack_equals_corosync(corosync):
    junk_seen = 0
    for seed in range(300):
        netmtu, events = recv_scenario(seed)
        theirs = corosync.recv(netmtu, events)
        ours = ours_recv(events)
        for k, ((lens, junk), cl) in enumerate(zip(ours, theirs)):
            # Where we drop a message Corosync would build from stale bytes, Corosync
            # either delivers that garbage first or (group mismatch) nothing.
            ok = cl == lens or (junk and cl[1:] == lens)
            assert ok, (seed, k, cl, lens)
            junk_seen += junk
    assert junk_seen > 0


def test_golden_tables_are_current(corosync):
    for (seed, netmtu), digest in GOLDEN_PACK.items():
        assert stream_digest(corosync.pack(pack_scenario(seed, netmtu), netmtu)) == digest
    for seed, digest in GOLDEN_RECV.items():
        netmtu, events = recv_scenario(seed)
        assert delivery_digest([(x, 0) for x in corosync.recv(netmtu, events)]) == digest
