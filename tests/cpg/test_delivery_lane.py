"""The CPG delivery lane's kernel (engineprocs/cpg/jit/deliver.py) over a real shm
delivery ring, real event queues and real datagram sockets.

Each event it sends must be byte for byte what the Python path sends for the same record
(RESPONSE_HEADER + DeliverEventPacker), and every record it must not take — another
record type or exec message, a malformed MCAST, a sender's node not in the group, a slow
group, a full queue, an event over the client's IPC maximum, a group missing from an
incomplete table — stops the run at that record with nothing queued for it.
"""
import os
import socket
import struct

import numpy as np
import pytest

from coroproc.engineprocs.api import EXEC_HEADER, exec_id
from coroproc.engineprocs.cpg import exec_msgs as xm
from coroproc.engineprocs.cpg.jit import deliver as K
from coroproc.engineprocs.host import EXEC_ONLY_PREFIX, group_prefix
from coroproc.ipc.cpg_structs import RES_DELIVER_CALLBACK, DeliverEventPacker
from coroproc.ipc.evqueue import EventQueues
from coroproc.ipc.jit.evqueue import Q_ROWS_MAX
from coroproc.ipc.wire import RESPONSE_HEADER
from coroproc.ringproc.records import DLV_HDR, RT_CONFIG, RT_DELIVER
from coroproc.shm.ring import ShmRing

GROUP = b"lane-group"
NODE_A, NODE_B, STRANGER = 1, 2, 9


def mcast_record(sender, group, pid, message, *, exec_fn=xm.MESSAGE_REQ_EXEC_CPG_MCAST,
                 prefix=EXEC_ONLY_PREFIX, msglen=None):
    body = xm.pack_mcast_header(group, pid, sender, 77,
                                len(message) if msglen is None else msglen) + message
    return (DLV_HDR.pack(sender, 1, 5, 100, 0, 0) + prefix
            + EXEC_HEADER.pack(exec_id(2, exec_fn), 16 + len(body)) + body)


def python_event(sender, group, pid, message):
    payload = DeliverEventPacker()(group, sender, pid, message)
    return RESPONSE_HEADER.pack(RES_DELIVER_CALLBACK, RESPONSE_HEADER.size + len(payload),
                                0) + payload


class Rig:
    """A delivery ring, two client queues connected to socket pairs, a one-group table."""

    def __init__(self, groups_max=4):
        self.ring = ShmRing.create(f"/coroproc-lane-test.{os.getpid()}", 1 << 20)
        self.queues = EventQueues(slots=4, region_bytes=1 << 20, rows_per_slot=512)
        self.clients = []
        self.qs = []
        for _ in range(2):
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            ours.setblocking(False)
            q = self.queues.attach(512, 1 << 20)
            q.connected(ours.fileno(), 0)
            self.qs.append(q)
            self.clients.append((ours, theirs))
        self.gmeta = np.zeros((groups_max, K.GM_WORDS), np.int64)
        self.gnames = np.zeros((groups_max, K.NAME_MAX), np.uint8)
        self.grecv = np.zeros((groups_max, 4), np.int64)
        self.gnodes = np.zeros((groups_max, 4), np.int64)
        self.slot_msg_max = np.full(4, 1 << 20, np.int64)
        self.touched = np.zeros((4, K.T_WORDS), np.int64)
        self.out = np.zeros(K.OUT_WORDS, np.int64)
        self.ngroups, self.complete = 0, True
        self.pos = 0

    def add_group(self, name, receivers, nodes, slow=False):
        g = self.ngroups
        self.gmeta[g] = (len(name), len(receivers), len(nodes), int(slow))
        self.gnames[g, :len(name)] = np.frombuffer(name, np.uint8)
        self.grecv[g, :len(receivers)] = [self.qs[i].slot for i in receivers]
        self.gnodes[g, :len(nodes)] = nodes
        self.ngroups += 1

    def push(self, payload, rtype=RT_DELIVER):
        assert self.ring.push(rtype, payload)

    def run(self, max_records=1000):
        q = self.queues
        K.deliver_run(self.ring.hdr, self.ring.data, self.pos, max_records, self.gmeta,
                      self.gnames, self.grecv, self.gnodes, self.ngroups, self.complete,
                      self.slot_msg_max, q.qs, q.rows, q.arena, q.mm, q.iov, self.touched,
                      self.out)
        self.pos = int(self.out[K.OUT_POS])
        return int(self.out[K.OUT_RECORDS]), int(self.out[K.OUT_REASON])

    def received(self, i):
        got = []
        theirs = self.clients[i][1]
        theirs.setblocking(False)
        while True:
            try:
                got.append(theirs.recv(1 << 20))
            except BlockingIOError:
                return got

    def close(self):
        for ours, theirs in self.clients:
            ours.close()
            theirs.close()
        self.ring.unlink()
        self.ring.close()


@pytest.fixture
def rig():
    r = Rig()
    yield r
    r.close()


def test_events_are_the_python_paths_bytes_in_order(rig):
    rig.add_group(GROUP, receivers=[0, 1], nodes=[NODE_A, NODE_B])
    sent = [(NODE_A, 10, b""), (NODE_B, 20, b"x" * 1000), (NODE_A, 10, bytes(range(256)) * 64)]
    for sender, pid, msg in sent:
        rig.push(mcast_record(sender, GROUP, pid, msg))
    assert rig.run() == (3, K.R_EMPTY)
    want = [python_event(s, GROUP, p, m) for s, p, m in sent]
    assert rig.received(0) == want and rig.received(1) == want
    assert rig.out[K.OUT_EVENTS] == 6 and rig.out[K.OUT_DELIVERED] == 3
    assert rig.qs[0].sent == 3 and rig.qs[0].count == 0


def test_a_group_without_local_readers_takes_the_record_and_sends_nothing(rig):
    rig.add_group(GROUP, receivers=[], nodes=[NODE_A])
    rig.push(mcast_record(NODE_A, GROUP, 1, b"a"))
    rig.push(mcast_record(NODE_A, b"nobody-here", 1, b"b"))
    assert rig.run() == (2, K.R_EMPTY)
    assert rig.received(0) == [] and rig.out[K.OUT_DELIVERED] == 0


@pytest.mark.parametrize("case", ["config", "procjoin", "sync group", "bad msglen",
                                  "unknown node", "slow group", "too big", "incomplete table"])
def test_what_python_must_handle_stops_the_run_at_that_record(rig, case):
    rig.add_group(GROUP, receivers=[0], nodes=[NODE_A], slow=(case == "slow group"))
    rig.push(mcast_record(NODE_A, GROUP, 1, b"first"))
    if case == "config":
        rig.push(struct.pack("<IIQII", 1, 1, 6, 1, 0) + struct.pack("<I", NODE_A), RT_CONFIG)
    elif case == "procjoin":
        rig.push(mcast_record(NODE_A, GROUP, 1, b"", exec_fn=xm.MESSAGE_REQ_EXEC_CPG_PROCJOIN))
    elif case == "sync group":
        rig.push(mcast_record(NODE_A, GROUP, 1, b"s", prefix=group_prefix(b"sync")))
    elif case == "bad msglen":
        rig.push(mcast_record(NODE_A, GROUP, 1, b"short", msglen=6))
    elif case == "unknown node":
        rig.push(mcast_record(STRANGER, GROUP, 1, b"who"))
    elif case == "too big":
        rig.slot_msg_max[rig.qs[0].slot] = K.EVENT_HEADER_BYTES + 100
        rig.push(mcast_record(NODE_A, GROUP, 1, b"y" * 101))
    elif case == "incomplete table":
        rig.complete = False
        rig.push(mcast_record(NODE_A, b"not-in-table", 1, b"z"))
    rig.push(mcast_record(NODE_A, GROUP, 1, b"after"))
    taken, reason = rig.run()
    assert reason == K.R_PYTHON
    if case == "slow group":
        assert taken == 0 and rig.received(0) == []
        return
    assert taken == 1
    assert rig.received(0) == [python_event(NODE_A, GROUP, 1, b"first")]
    assert rig.qs[0].count == 0


def test_a_full_queue_stops_before_the_record_and_queues_nothing_for_anyone(rig):
    rig.add_group(GROUP, receivers=[0, 1], nodes=[NODE_A])
    rig.qs[1]._qs[Q_ROWS_MAX] = 2             # reader 1 takes two events
    rig.clients[1][0].close()                 # ... and its socket is gone: nothing is sent
    rig.qs[1].connected(-1, 0)
    for i in range(3):
        rig.push(mcast_record(NODE_A, GROUP, 1, bytes([i])))
    assert rig.run() == (2, K.R_PYTHON)
    assert rig.qs[1].count == 2
    assert [e[-1] for e in rig.received(0)] == [0, 1]


def test_a_socket_that_fills_keeps_the_rest_queued_in_order(rig):
    rig.add_group(GROUP, receivers=[0], nodes=[NODE_A])
    n = 300          # 600 KiB: beyond what a socket pair's buffer takes
    for i in range(n):
        rig.push(mcast_record(NODE_A, GROUP, 1, bytes(2000) + i.to_bytes(2, "little")))
    assert rig.run() == (n, K.R_EMPTY)
    got = rig.received(0)
    assert 0 < len(got) < n
    assert rig.touched[0, K.T_ERRNO] == 11     # EAGAIN: the caller waits for EPOLLOUT
    assert rig.qs[0].count == n - len(got)
    while rig.qs[0].count:
        sent, _err = rig.qs[0].flush()
        got += rig.received(0)
    assert [int.from_bytes(e[-2:], "little") for e in got] == list(range(n))


def test_max_records_bounds_a_run(rig):
    rig.add_group(GROUP, receivers=[0], nodes=[NODE_A])
    for i in range(5):
        rig.push(mcast_record(NODE_A, GROUP, 1, b"m"))
    assert rig.run(max_records=3) == (3, K.R_LIMIT)
    assert rig.run() == (2, K.R_EMPTY)
    assert len(rig.received(0)) == 5
