"""The ring process's pump over real shm rings, on a virtual clock (it is sans-I/O too):
back-pressure from a slow engine and from a full core queue loses and reorders nothing.

A one-node ring: the test carries the pump's tx frames back into its rx ring (as the
network process does for a token sent to oneself) and plays the engine on the delivery
ring, draining it only when the pump reports it stalled.
"""
from __future__ import annotations

import os
import struct

import numpy as np
import pytest

from coroproc.ringproc import pump as P
from coroproc.ringproc import totempg as pg
from coroproc.ringproc.config import TotemConfig
from coroproc.ringproc.records import (CFG_HDR, DLV_HDR, DLV_HDR_BYTES, RT_CONFIG, RT_DELIVER,
                                       RT_FRAME, RT_SUBMIT, RT_TRANS_ACK, SUBMIT_SYNC, TRANS_ACK,
                                       TX_HDR_BYTES)
from coroproc.ringproc.state import K_MCAST_TX, K_ORF_TOKEN_TX, new_state
from coroproc.shm.ring import ShmRing

MSG_BYTES = 1000
MESSAGES = 300
STEP_US = 1000


@pytest.fixture
def rings():
    tag = f"/coroproc.pumptest{os.getpid()}.1"
    made = {"rx": ShmRing.create(tag + ".rx0", 1 << 20), "tx": ShmRing.create(tag + ".tx0", 1 << 20),
            "sub": ShmRing.create(tag + ".submit", 1 << 20),
            "dl": ShmRing.create(tag + ".delivery", 1 << 16)}
    yield made
    for r in made.values():
        r.unlink()


def _one_node(rings, cfg: TotemConfig, subs=None, start: bool = True):
    """A one-node core and pump state over the fixture's rings: (st, bufs, pump args)."""
    subs = subs or [rings["sub"]]
    st = new_state(cfg.to_array(), 1, 0, cfg.new_message_queue_bytes)
    bufs = P.new_pump_bufs(4, cfg.max_message_bytes, cfg.netmtu)
    P.set_ring_counts(bufs.ps, 1, len(subs), 1, 1)
    if start:
        bufs.ps[P.P_COMMAND] = P.CMD_START
    # padded as the ring process pads them: the pump `make warm` compiled
    links, engines = P.LINK_SLOTS, P.ENGINE_SLOTS
    args = (*P.padded([rings["rx"]], links), *P.padded(subs, engines),
            *P.padded([rings["tx"]], links), *P.padded([rings["dl"]], engines))
    return st, bufs, args


def _run(rings, cfg: TotemConfig, headroom_bytes: int, extra_subs=(), intake_bytes=0,
         seen=None):
    """Message seq goes to submit ring seq % (1 + len(extra_subs)). With `seen` (a dict),
    the most the core's queue held after any pump call is left in seen["queue_max"]."""
    subs = [rings["sub"], *extra_subs]
    st, bufs, args = _one_node(rings, cfg, subs)
    bufs.ps[P.P_INTAKE_BYTES] = intake_bytes
    for seq in range(MESSAGES):
        payload = struct.pack("<I", seq) + bytes([seq % 251]) * (MSG_BYTES - 4)
        assert subs[seq % len(subs)].push(RT_SUBMIT,
                                          pg.build_group_message(b"t", payload).tobytes())
    got, stalls, now = [], 0, 0
    for _ in range(200_000):
        ret = P.pump(st, now, *args, bufs, 64, headroom_bytes)
        if seen is not None:
            seen["queue_max"] = max(seen.get("queue_max", 0), int(st.pg_q_meta[pg.Q_USED]))
        if ret == P.RET_PERSIST:
            bufs.ps[P.P_PERSIST_PENDING] = 0   # the ring seq is "on disk"
        bufs.ps[P.P_PYEV_N] = bufs.ps[P.P_PYEV_IOFF] = 0
        for _rtype, _flags, rec in rings["tx"].pop_batch():
            assert rings["rx"].push(RT_FRAME, rec[TX_HDR_BYTES:])
        if ret == P.RET_STALLED:
            stalls += 1
            for rtype, _flags, rec in rings["dl"].pop_batch():
                if rtype == RT_DELIVER:
                    msg = np.frombuffer(rec, np.uint8, offset=DLV_HDR_BYTES)
                    got.append(bytes(msg[pg.group_payload_offset(msg):]))
                else:
                    assert rtype == RT_CONFIG
        if len(got) == MESSAGES:
            break
        if ret in (P.RET_IDLE, P.RET_STALLED):
            now += STEP_US
    # whatever is still in the delivery ring
    for rtype, _flags, rec in rings["dl"].pop_batch(10_000):
        if rtype == RT_DELIVER:
            msg = np.frombuffer(rec, np.uint8, offset=DLV_HDR_BYTES)
            got.append(bytes(msg[pg.group_payload_offset(msg):]))
    counters = dict(zip(P.PC_NAMES, bufs.pc.tolist()))
    return got, stalls, counters


def test_slow_engine_stalls_the_pump_without_loss(rings):
    cfg = TotemConfig(token_ms=300, nodelist=(1,))
    got, stalls, c = _run(rings, cfg, headroom_bytes=rings["dl"].capacity_bytes // 2)
    assert stalls > 0 and c["delivery_stalls"] > 0
    assert c["delivery_lost"] == 0
    assert [struct.unpack_from("<I", m)[0] for m in got] == list(range(MESSAGES))
    assert all(len(m) == MSG_BYTES for m in got)


def test_full_core_queue_leaves_submissions_in_their_ring(rings):
    """Four engines submit faster than a token that carries one frame per visit drains
    the core's queue: what it cannot take stays in the rings, in each ring's order."""
    cfg = TotemConfig(token_ms=300, nodelist=(1,), new_message_queue_bytes=16 * 1024,
                      max_messages=1)
    tag = f"/coroproc.pumptest{os.getpid()}.1.submit"
    extra = [ShmRing.create(f"{tag}{k}", 1 << 20) for k in range(3)]
    try:
        got, _stalls, c = _run(rings, cfg, rings["dl"].capacity_bytes // 2, extra)
    finally:
        for r in extra:
            r.unlink()
    assert c["submit_queue_full"] > 0
    assert c["submitted"] == MESSAGES
    assert c["delivery_lost"] == 0
    seqs = [struct.unpack_from("<I", m)[0] for m in got]
    assert sorted(seqs) == list(range(MESSAGES))
    for k in range(4):
        mine = [q for q in seqs if q % 4 == k]
        assert mine == sorted(mine), f"submit ring {k} out of order"


def test_intake_bound_leaves_the_backlog_in_the_submit_ring(rings):
    """With an intake bound the core's queue holds at most the bound plus one message:
    the rest of a backlog waits in the submit ring (where the engine's flow control sees
    it), and every message still arrives, in order."""
    cfg = TotemConfig(token_ms=300, nodelist=(1,))
    intake = 8 * 1024
    seen: dict = {}
    got, _stalls, c = _run(rings, cfg, rings["dl"].capacity_bytes // 2, intake_bytes=intake,
                           seen=seen)
    assert c["intake_held"] > 0 and c["submit_queue_full"] > 0
    assert intake <= seen["queue_max"] < intake + MSG_BYTES + 64
    assert c["submitted"] == MESSAGES and c["delivery_lost"] == 0
    assert [struct.unpack_from("<I", m)[0] for m in got] == list(range(MESSAGES))


def test_without_an_intake_bound_the_core_takes_the_whole_backlog(rings):
    """The control for the test above: unbounded, the same backlog goes into the core's
    queue at once (so the bound is what kept it in the ring)."""
    cfg = TotemConfig(token_ms=300, nodelist=(1,))
    seen: dict = {}
    got, _stalls, c = _run(rings, cfg, rings["dl"].capacity_bytes // 2, seen=seen)
    assert c["intake_held"] == 0
    assert seen["queue_max"] >= MESSAGES * MSG_BYTES // 2
    assert len(got) == MESSAGES


def test_intake_bytes_is_a_window_of_frames():
    assert P.intake_bytes(50, 1500) == 75_000
    cfg = TotemConfig(nodelist=(1,))
    assert P.intake_bytes(cfg.window_size, cfg.netmtu) >= 2 * cfg.max_messages * cfg.netmtu


def test_intake_bytes_is_capped_for_large_frames():
    """knet's 65,000-byte frames: a window would be 3.25 MB of queue out of the engines'
    sight; the cap still holds a whole 64 KiB message, and more than one."""
    assert P.intake_bytes(50, 65_000) == P.INTAKE_MAX_BYTES
    assert P.intake_bytes(50, 9_000) == P.INTAKE_MAX_BYTES
    assert P.INTAKE_MAX_BYTES >= 2 * 65_536


def test_delivery_header_names_sender_ring_and_order(rings):
    cfg = TotemConfig(token_ms=300, nodelist=(1,))
    st, bufs, args = _one_node(rings, cfg)
    for i in range(3):
        rings["sub"].push(RT_SUBMIT, pg.build_group_message(b"t", b"m%d" % i).tobytes())
    recs, now = [], 0
    while len([r for r in recs if r[0] == RT_DELIVER]) < 3 and now < 10_000_000:
        if P.pump(st, now, *args, bufs, 64, 1 << 10) == P.RET_PERSIST:
            bufs.ps[P.P_PERSIST_PENDING] = 0
        bufs.ps[P.P_PYEV_N] = bufs.ps[P.P_PYEV_IOFF] = 0
        for _rt, _fl, rec in rings["tx"].pop_batch():
            rings["rx"].push(RT_FRAME, rec[TX_HDR_BYTES:])
        recs += [(rt, rec) for rt, _fl, rec in rings["dl"].pop_batch()]
        now += STEP_US
    kinds = [rt for rt, _ in recs]
    assert kinds.index(RT_CONFIG) < kinds.index(RT_DELIVER)  # configuration first
    dl = [DLV_HDR.unpack_from(rec) for rt, rec in recs if rt == RT_DELIVER]
    senders = {d[0] for d in dl}
    rings_seen = {(d[1], d[2]) for d in dl}
    assert senders == {1} and len(rings_seen) == 1
    order = [(d[3], d[4]) for d in dl]  # (totem seq, index in frame)
    assert order == sorted(order) and len(set(order)) == 3


def test_sync_traffic_passes_application_messages_while_waiting_for_the_trans_ack(rings):
    """Corosync's waiting_trans_ack through the pump: the core's application queue is full
    and cannot drain before the ack, so the pump takes the sync message and the ack from
    behind the blocked records; then everything else follows, in order, nothing lost."""
    cfg = TotemConfig(token_ms=300, nodelist=(1,), new_message_queue_bytes=16 * 1024,
                      wait_trans_ack=True)
    st, bufs, args = _one_node(rings, cfg)
    n_app = 40
    for seq in range(n_app):
        payload = struct.pack("<I", seq) + bytes(MSG_BYTES - 4)
        assert rings["sub"].push(RT_SUBMIT, pg.build_group_message(b"t", payload).tobytes())
    got, ring_id, now = [], None, 0
    for _ in range(20_000):
        if P.pump(st, now, *args, bufs, 64, 1 << 12) == P.RET_PERSIST:
            bufs.ps[P.P_PERSIST_PENDING] = 0
        bufs.ps[P.P_PYEV_N] = bufs.ps[P.P_PYEV_IOFF] = 0
        for _rt, _fl, rec in rings["tx"].pop_batch():
            rings["rx"].push(RT_FRAME, rec[TX_HDR_BYTES:])
        for rtype, _fl, rec in rings["dl"].pop_batch():
            if rtype == RT_DELIVER:
                msg = np.frombuffer(rec, np.uint8, offset=DLV_HDR_BYTES)
                got.append(bytes(msg[pg.group_payload_offset(msg):]))
            elif ring_id is None and CFG_HDR.unpack_from(rec)[0] == 1:
                ring_id = CFG_HDR.unpack_from(rec)[1:3]
                assert got == []
                # the services' sync: one message of sync traffic, then the ack
                rings["sub"].push(RT_SUBMIT, pg.build_group_message(b"sync", b"S" * 16).tobytes(),
                                  SUBMIT_SYNC)
                rings["sub"].push(RT_TRANS_ACK, TRANS_ACK.pack(ring_id[0], 0, ring_id[1]))
        if len(got) == n_app + 1:
            break
        now += STEP_US
    c = dict(zip(P.PC_NAMES, bufs.pc.tolist()))
    assert got[0] == b"S" * 16
    assert [struct.unpack_from("<I", m)[0] for m in got[1:]] == list(range(n_app))
    assert c["sync_ahead"] == 2 and c["trans_acks"] == 1 and c["submit_malformed"] == 0
    assert c["submitted"] == n_app + 1 and c["delivery_lost"] == 0
    rs = rings["sub"]
    assert rs.counters()["records_pushed"] == rs.counters()["records_popped"]


def test_unknown_submit_record_is_counted_and_dropped(rings):
    cfg = TotemConfig(token_ms=300, nodelist=(1,))
    st, bufs, args = _one_node(rings, cfg, start=False)
    rings["sub"].push(77, b"junk")
    rings["sub"].push(RT_TRANS_ACK, b"short")
    P.pump(st, 0, *args, bufs, 64, 1 << 12)
    c = dict(zip(P.PC_NAMES, bufs.pc.tolist()))
    assert c["submit_malformed"] == 2 and c["submitted"] == 0
    assert rings["sub"].pop_batch() == []


def test_tokens_of_a_one_member_ring_never_reach_the_network(rings):
    """A one-member ring sends its tokens to itself; the pump feeds them straight back to
    the core, so an idle one-node cluster's token rotation wakes no network process."""
    cfg = TotemConfig(token_ms=300, nodelist=(1,))
    st, bufs, args = _one_node(rings, cfg)
    for i in range(5):
        rings["sub"].push(RT_SUBMIT, pg.build_group_message(b"t", b"m%d" % i).tobytes())
    dests, got, now = [], [], 0
    while now < 3_000_000:                      # 3 virtual seconds: many rotations
        if P.pump(st, now, *args, bufs, 64, 1 << 12) == P.RET_PERSIST:
            bufs.ps[P.P_PERSIST_PENDING] = 0
        bufs.ps[P.P_PYEV_N] = bufs.ps[P.P_PYEV_IOFF] = 0
        for _rt, _fl, rec in rings["tx"].pop_batch():
            dests.append(struct.unpack_from("<I", rec)[0])
            rings["rx"].push(RT_FRAME, rec[TX_HDR_BYTES:])
        got += [rec for rt, _fl, rec in rings["dl"].pop_batch() if rt == RT_DELIVER]
        now += STEP_US
    c = dict(zip(P.PC_NAMES, bufs.pc.tolist()))
    assert len(got) == 5
    assert 1 not in dests                       # nothing addressed to this node went out
    assert c["looped_frames"] > 10              # the token went round, inside the pump
    # the core still counts every token it sent (stats.srp.orf_token_tx)
    assert int(st.cnt[K_ORF_TOKEN_TX]) >= c["looped_frames"] - 1


@pytest.mark.parametrize("nobody", [True, False])
def test_multicasts_that_reach_no_one_stay_out_of_the_tx_ring(rings, nobody):
    """A one-node udpu cluster has no one to multicast to: with the link marked so, its
    multicast frames never reach the tx ring (no network process wakes to send nothing),
    and every message is still delivered. Unmarked, they go out as before."""
    cfg = TotemConfig(token_ms=300, nodelist=(1,))
    st, bufs, args = _one_node(rings, cfg)
    P.set_mcast_nobody(bufs.ps, [nobody])
    for i in range(20):
        rings["sub"].push(RT_SUBMIT, pg.build_group_message(b"t", b"m%d" % i).tobytes())
    dests, got, now = [], [], 0
    while now < 2_000_000:
        if P.pump(st, now, *args, bufs, 64, 1 << 12) == P.RET_PERSIST:
            bufs.ps[P.P_PERSIST_PENDING] = 0
        bufs.ps[P.P_PYEV_N] = bufs.ps[P.P_PYEV_IOFF] = 0
        dests += [struct.unpack_from("<I", rec)[0] for _rt, _fl, rec in rings["tx"].pop_batch()]
        got += [rec for rt, _fl, rec in rings["dl"].pop_batch() if rt == RT_DELIVER]
        now += STEP_US
    c = dict(zip(P.PC_NAMES, bufs.pc.tolist()))
    assert len(got) == 20
    if nobody:
        assert dests == [] and c["tx_frames"] == 0
        # the messages' frames (and the joins of the ring's forming)
        assert c["mcast_unsent"] >= int(st.cnt[K_MCAST_TX]) > 0
    else:
        assert dests.count(0) >= int(st.cnt[K_MCAST_TX]) > 0 and c["mcast_unsent"] == 0
        assert c["tx_frames"] == len(dests)


def test_an_idle_looped_token_is_paced_and_a_submission_sends_it_at_once(rings):
    """A token of a one-member ring goes round at once while it has something to carry,
    then at most once per LOOP_IDLE_US: at one instant, a message costs a few rounds, not
    the seqno_unchanged_const rounds the core needs before it holds an idle token."""
    cfg = TotemConfig(token_ms=300, nodelist=(1,))
    st, bufs, args = _one_node(rings, cfg)

    def step(now):
        if P.pump(st, now, *args, bufs, 64, 1 << 12) == P.RET_PERSIST:
            bufs.ps[P.P_PERSIST_PENDING] = 0
        bufs.ps[P.P_PYEV_N] = bufs.ps[P.P_PYEV_IOFF] = 0
        return [rec for rt, _fl, rec in rings["dl"].pop_batch() if rt == RT_DELIVER]

    now = 0
    while now < 1_000_000:                      # form the ring, let it go idle
        step(now)
        now += STEP_US
    for i in range(3):
        tokens = int(st.cnt[K_ORF_TOKEN_TX])
        rings["sub"].push(RT_SUBMIT, pg.build_group_message(b"t", b"m%d" % i).tobytes())
        got = []
        for _ in range(50):                     # one instant: only what is not paced runs
            got += step(now)
        rounds = int(st.cnt[K_ORF_TOKEN_TX]) - tokens
        assert len(got) == 1, f"message {i} not delivered at once"
        assert 1 <= rounds <= 4 < cfg.seqno_unchanged_const, rounds
        now += P.LOOP_IDLE_US                   # the next idle round is due
        step(now)
        now += 10 * P.LOOP_IDLE_US
