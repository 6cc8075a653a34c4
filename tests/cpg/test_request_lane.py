"""The CPG request lane's kernel (engineprocs/cpg/jit/requests.py) over a real datagram
socket pair and a real shm submit ring.

Each record it pushes must be byte for byte what the Python path pushes for the same
request (host.submit_parts of requests.LibRequests.send_mcast's exec message), and every
request it must not take — another request, a malformed or oversized one, a submit ring
past its roomy level — is left whole in the buffer for the Python path.
"""
import os
import socket

import numpy as np
import pytest

from coroproc.engineprocs.api import EXEC_HEADER, exec_id
from coroproc.engineprocs.cpg import exec_msgs as xm
from coroproc.engineprocs.cpg.jit import requests as R
from coroproc.engineprocs.host import EXEC_ONLY_PREFIX, roomy_used_bytes
from coroproc.ipc.cpg_structs import REQ_JOIN, REQ_MCAST, pack_req_mcast
from coroproc.ipc.wire import pack_request
from coroproc.ringproc.records import RT_SUBMIT
from coroproc.shm.doorbell import Doorbell
from coroproc.shm.kernels import ring_prepare_sleep
from coroproc.shm.ring import ShmRing

GROUP, PID, NODEID, SOURCE = b"req-lane", 4242, 3, 17
LIMIT = 1 << 16
MAX_MESSAGE = 1 << 20


def python_record(message):
    body = xm.pack_mcast_header(GROUP, PID, NODEID, SOURCE, len(message)) + message
    return EXEC_ONLY_PREFIX + EXEC_HEADER.pack(exec_id(2, 3), 16 + len(body)) + body


class Rig:
    def __init__(self, ring_bytes=1 << 22):
        self.ring = ShmRing.create(f"/coroproc-rq-test.{os.getpid()}", ring_bytes)
        self.server, self.client = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.server.setblocking(False)
        self.buf = np.zeros(LIMIT + 1, np.uint8)
        self.control = np.zeros(6, np.int32)           # request {sent, flow}, ...
        self.bell = Doorbell()
        self.out = np.zeros(R.OUT_WORDS, np.int64)
        self.roomy = roomy_used_bytes(ring_bytes, MAX_MESSAGE)

    def send(self, msg_id, body):
        self.client.send(pack_request(msg_id, body))
        self.control[0] += 1

    def run(self, avail=50, stop_used=1 << 62, max_message=MAX_MESSAGE):
        R.mcast_requests(self.server.fileno(), self.buf, LIMIT, avail,
                         self.control.ctypes.data, np.frombuffer(GROUP, np.uint8), PID, NODEID,
                         SOURCE, self.ring.hdr, self.ring.data, self.bell.fd, max_message,
                         self.roomy, stop_used, np.zeros(128, np.uint8),
                         np.zeros(1, np.uint32), np.zeros(1, np.uint64), self.out)
        return int(self.out[R.OUT_TAKEN]), int(self.out[R.OUT_PENDING]), int(self.out[R.OUT_REASON])

    def records(self):
        return self.ring.pop_batch()

    def close(self):
        self.server.close()
        self.client.close()
        self.bell.close()
        self.ring.unlink()
        self.ring.close()


@pytest.fixture
def rig():
    r = Rig()
    yield r
    r.close()


def test_records_are_the_python_paths_bytes_and_the_control_count_drops(rig):
    messages = [b"", b"x" * 1000, bytes(range(256)) * 200]
    for m in messages:
        rig.send(REQ_MCAST, pack_req_mcast(0, m))
    assert rig.run() == (3, 0, R.RQ_EMPTY)
    assert rig.records() == [(RT_SUBMIT, 0, python_record(m)) for m in messages]
    assert rig.control[0] == 0


def test_avail_bounds_a_run(rig):
    for _ in range(5):
        rig.send(REQ_MCAST, pack_req_mcast(0, b"m"))
    assert rig.run(avail=2) == (2, 0, R.RQ_EMPTY)
    assert rig.run() == (3, 0, R.RQ_EMPTY)
    assert len(rig.records()) == 5 and rig.control[0] == 0


@pytest.mark.parametrize("case", ["join", "msglen", "size field", "too large"])
def test_what_python_must_handle_is_left_whole_in_the_buffer(rig, case):
    rig.send(REQ_MCAST, pack_req_mcast(0, b"first"))
    max_message = MAX_MESSAGE
    if case == "join":
        datagram = pack_request(REQ_JOIN, bytes(152))
    elif case == "msglen":
        body = bytearray(pack_req_mcast(0, b"abc"))
        body[16] = 4                              # msglen 4, three bytes follow
        datagram = pack_request(REQ_MCAST, bytes(body))
    elif case == "size field":
        datagram = bytearray(pack_request(REQ_MCAST, pack_req_mcast(0, b"abc")))
        datagram[8] += 1
        datagram = bytes(datagram)
    else:
        datagram = pack_request(REQ_MCAST, pack_req_mcast(0, b"y" * 2000))
        max_message = 2000
    rig.client.send(datagram)
    rig.send(REQ_MCAST, pack_req_mcast(0, b"after"))
    taken, pending, reason = rig.run(max_message=max_message)
    assert (taken, reason) == (1, R.RQ_PYTHON)
    assert rig.buf[:pending].tobytes() == datagram
    assert rig.records() == [(RT_SUBMIT, 0, python_record(b"first"))]


def test_a_ring_past_its_roomy_level_goes_to_python(rig):
    rig.roomy = 0
    assert rig.ring.push(RT_SUBMIT, b"already queued")
    rig.send(REQ_MCAST, pack_req_mcast(0, b"m"))
    taken, pending, reason = rig.run()
    assert (taken, reason) == (0, R.RQ_PYTHON) and pending > 0


def test_reaching_stop_used_stops_after_that_push(rig):
    for _ in range(4):
        rig.send(REQ_MCAST, pack_req_mcast(0, b"z" * 100))
    assert rig.run(stop_used=1) == (1, 0, R.RQ_FLOW)
    assert rig.run(stop_used=1 << 62) == (3, 0, R.RQ_EMPTY)


def test_a_sleeping_ring_process_is_woken(rig):
    assert ring_prepare_sleep(rig.ring.hdr) == 1
    rig.send(REQ_MCAST, pack_req_mcast(0, b"wake"))
    assert rig.run()[0] == 1
    assert os.eventfd_read(rig.bell.fd) == 1
