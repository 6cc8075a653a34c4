"""Delivery routing in the pump: an engine gets only the ordered messages it serves.

Corosync's services share totempg group "a" and are told apart by the service id in the
exec header; sync uses group "sync". Three delivery rings: one for service 2 (+sync), one
for service 0 (+sync), one that takes everything (the load engine). Messages of a service
nobody on this node runs are counted as unrouted, never delivered.
"""
from __future__ import annotations

import os
import struct

import numpy as np
import pytest

from coroproc.ringproc import pump as P
from coroproc.ringproc import totempg as pg
from coroproc.ringproc.config import TotemConfig
from coroproc.ringproc.records import DLV_HDR_BYTES, RT_DELIVER, RT_FRAME, RT_SUBMIT, TX_HDR_BYTES
from coroproc.ringproc.state import new_state
from coroproc.shm.ring import ShmRing


def exec_msg(service: int, fn: int, body: bytes = b"x") -> bytes:
    return struct.pack("<i4xi4x", (service << 16) | fn, 16 + len(body)) + body


@pytest.fixture
def rings():
    tag = f"/coroproc.routetest{os.getpid()}.1"
    made = {"rx": ShmRing.create(tag + ".rx0", 1 << 20), "tx": ShmRing.create(tag + ".tx0", 1 << 20),
            "sub": ShmRing.create(tag + ".submit", 1 << 20)}
    made["dl"] = [ShmRing.create(tag + f".delivery{i}", 1 << 20) for i in range(3)]
    yield made
    for r in (made["rx"], made["tx"], made["sub"], *made["dl"]):
        r.unlink()


SENT = [(b"a", exec_msg(2, 3, b"cpg")), (b"a", exec_msg(0, 0, b"cmap")),
        (b"sync", exec_msg(0, 1, b"barrier")), (b"load", b"load message"),
        (b"a", exec_msg(5, 0, b"votequorum"))]


def _run(rings, entries):
    cfg = TotemConfig(token_ms=300, nodelist=(1,))
    st = new_state(cfg.to_array(), 1, 0, cfg.new_message_queue_bytes)
    route = P.route_table(entries)
    bufs = P.new_pump_bufs(4, cfg.max_message_bytes, cfg.netmtu, route)
    P.set_ring_counts(bufs.ps, 1, 1, 1, 3)
    bufs.ps[P.P_COMMAND] = P.CMD_START
    for group, msg in SENT:
        assert rings["sub"].push(RT_SUBMIT, pg.build_group_message(group, msg).tobytes())
    links, engines = P.LINK_SLOTS, P.ENGINE_SLOTS      # as the ring process pads them
    args = (*P.padded([rings["rx"]], links), *P.padded([rings["sub"]], engines),
            *P.padded([rings["tx"]], links), *P.padded(rings["dl"], engines))
    got = [[], [], []]
    now = 0
    for _ in range(20_000):
        ret = P.pump(st, now, *args, bufs, 64, 1 << 16)
        if ret == P.RET_PERSIST:
            bufs.ps[P.P_PERSIST_PENDING] = 0
        bufs.ps[P.P_PYEV_N] = bufs.ps[P.P_PYEV_IOFF] = 0
        for _rtype, _flags, rec in rings["tx"].pop_batch():
            assert rings["rx"].push(RT_FRAME, rec[TX_HDR_BYTES:])
        for i, ring in enumerate(rings["dl"]):
            for rtype, _flags, rec in ring.pop_batch():
                if rtype == RT_DELIVER:
                    msg = np.frombuffer(rec, np.uint8, offset=DLV_HDR_BYTES)
                    got[i].append(bytes(msg[pg.group_payload_offset(msg):]))
        if bufs.pc[P.PC_DELIVERED_MSGS] + bufs.pc[P.PC_UNROUTED] == len(SENT):
            break
        if ret == P.RET_IDLE:
            now += 1000
    return got, bufs.pc


def test_messages_reach_only_the_engines_that_serve_them(rings):
    got, pc = _run(rings, [((2,), True, False), ((0,), True, False), ((), False, True)])
    assert got[2] == [m for _g, m in SENT]                      # everything, in order
    assert got[0] == [exec_msg(2, 3, b"cpg"), exec_msg(0, 1, b"barrier")]
    assert got[1] == [exec_msg(0, 0, b"cmap"), exec_msg(0, 1, b"barrier")]
    assert pc[P.PC_UNROUTED] == 0          # the load ring takes the votequorum message


def test_messages_no_engine_serves_are_counted_not_delivered(rings):
    got, pc = _run(rings, [((2,), True, False), ((0,), True, False), ((0,), False, False)])
    assert got[0] == [exec_msg(2, 3, b"cpg"), exec_msg(0, 1, b"barrier")]
    assert got[2] == [exec_msg(0, 0, b"cmap")]
    assert pc[P.PC_UNROUTED] == 2          # the load message and votequorum's


def test_route_table_refuses_service_ids_outside_the_mask():
    with pytest.raises(ValueError, match="service id 63"):
        P.route_table([((63,), False, False)])
