"""The CPG engine's jitted loop (engineprocs/cpg/jit/loop.py) over a real shm delivery
ring, a real eventfd doorbell, real event queues, a real epoll fd, a real submit ring and
real datagram sockets.

It must deliver what the delivery kernel delivers, take the MCAST requests the request
kernel takes (the same submit records), sleep when nothing waits, wake on the doorbell for
records pushed while it sleeps, and come back to Python — with the cursor at the right
record, a request left whole in the buffer, other events still ready — for each reason
the host relies on: a record or request for Python, another fd readable, a failed send,
the flow-control level, until_us, the snapshot bounds. After taking requests it polls the
delivery ring for up to spin_ns before it sleeps, except on CPU avoid_cpu. No timing is
asserted: waits only bound a hang.
"""
import os
import select
import socket
import time

import numpy as np
import pytest
from test_delivery_lane import GROUP, NODE_A, NODE_B, Rig, mcast_record, python_event

from coroproc.engineprocs.api import EXEC_HEADER, exec_id
from coroproc.engineprocs.cpg import exec_msgs as xm
from coroproc.engineprocs.cpg.jit import deliver as K
from coroproc.engineprocs.cpg.jit import loop as L
from coroproc.engineprocs.cpg.jit import requests as RQ
from coroproc.ipc.cpg_structs import REQ_JOIN, REQ_MCAST, pack_req_mcast
from coroproc.ipc.wire import pack_request
from coroproc.engineprocs.host import EXEC_ONLY_PREFIX
from coroproc.ringproc.records import RT_CONFIG, RT_DELIVER
from coroproc.shm.kernels import ring_head, ring_peek
from coroproc.shm.layout import W_TAIL, W_WAKEUPS_REQUESTED
from coroproc.shm.ring import ShmRing
from coroproc.shm.syscalls import EPOLL_EVENT_WORDS, pollfd_array

NO_LIMIT = 1 << 62
HANG_GUARD_S = 20.0


def request_record(group, pid, nodeid, source, message):
    """The submit record the Python path makes of one MCAST request (test_request_lane)."""
    body = xm.pack_mcast_header(group, pid, nodeid, source, len(message)) + message
    return EXEC_ONLY_PREFIX + EXEC_HEADER.pack(exec_id(2, 3), 16 + len(body)) + body


def now_us():
    return time.monotonic_ns() // 1000


class LoopRig(Rig):
    """Rig with the ring's doorbell, one more fd the loop watches (a socket pair), and an
    epoll fd as the IPC server's with a request table (empty until add_requester)."""

    def __init__(self):
        super().__init__()
        self.bell = os.eventfd(0, os.EFD_NONBLOCK)
        self.ring.wake_fd = self.bell
        self.poke_rx, self.poke_tx = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.epoll = select.epoll()
        self.pfd = pollfd_array((self.bell, self.poke_rx.fileno(), self.epoll.fileno()))
        self.acc = np.zeros(L.A_WORDS, np.int64)
        self.u64 = np.zeros(1, np.uint64)
        self.ts = np.zeros(2, np.int64)
        self.submit = ShmRing.create(f"/coroproc-loop-submit.{os.getpid()}", 1 << 22)
        self.rq = np.zeros((4, L.RQ_WORDS), np.int64)
        self.rq_group = np.zeros((4, K.NAME_MAX), np.uint8)
        self.nrq = 0
        self.ev = np.zeros(16 * EPOLL_EVENT_WORDS, np.uint32)
        self.buf = np.zeros(1 << 17, np.uint8)
        self.rq_out = np.zeros(RQ.OUT_WORDS, np.int64)
        self.requesters = []
        self.spin = np.zeros(L.SPIN_WORDS, np.int64)     # its last-requests time stays

    def add_requester(self, group, pid, source, control):
        """A client connection: (client socket, its server-side socket) registered in the
        epoll fd, a row of the request table; control: int32[>=1], its request count."""
        server, client = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        server.setblocking(False)
        self.epoll.register(server.fileno(), select.EPOLLIN)
        r = self.nrq
        self.rq[r] = 0
        self.rq[r, L.RQ_FD] = server.fileno()
        self.rq[r, L.RQ_CTRL] = control.ctypes.data
        self.rq[r, L.RQ_GLEN] = len(group)
        self.rq_group[r, :len(group)] = np.frombuffer(group, np.uint8)
        self.rq[r, L.RQ_PID] = pid
        self.rq[r, L.RQ_SOURCE] = source
        self.rq[r, L.RQ_LIMIT] = self.buf.shape[0] - 1
        self.nrq += 1
        self.requesters.append((client, server))
        return client, server

    def loop(self, until_us, moved_until_us=NO_LIMIT, pos_limit=NO_LIMIT, release=True,
             batch=1000, stop_used_bytes=NO_LIMIT, nodeid=NODE_A, spin_ns=0, avoid_cpu=-1):
        self.spin[L.SPIN_NS], self.spin[L.SPIN_AVOID_CPU] = spin_ns, avoid_cpu
        q = self.queues
        why = L.lane_loop(self.ring.hdr, self.ring.data, self.pos, pos_limit, release, batch,
                          self.gmeta, self.gnames, self.grecv, self.gnodes, self.ngroups,
                          self.complete, self.slot_msg_max, q.qs, q.rows, q.arena, q.mm,
                          q.iov, self.touched, self.out, self.pfd, self.u64, self.ts,
                          until_us, moved_until_us, self.acc, 2, self.epoll.fileno(),
                          self.ev, self.rq, self.rq_group, self.nrq, 50, self.buf, nodeid,
                          self.submit.hdr, self.submit.data, -1, 1 << 20, NO_LIMIT,
                          stop_used_bytes, np.zeros(128, np.uint8), np.zeros(1, np.uint32),
                          np.zeros(1, np.uint64), self.rq_out, self.spin)
        self.pos = int(self.acc[L.A_POS])
        return why, int(self.acc[L.A_RECORDS])

    def close(self):
        for client, server in self.requesters:
            client.close()
            server.close()
        self.epoll.close()
        self.poke_rx.close()
        self.poke_tx.close()
        os.close(self.bell)
        self.submit.unlink()
        self.submit.close()
        super().close()


@pytest.fixture
def rig():
    r = LoopRig()
    r.loop(until_us=0)      # compiled (or loaded) now, not inside a test's until_us
    yield r
    r.close()


def test_delivers_what_waits_then_sleeps_until_until_us(rig):
    rig.add_group(GROUP, receivers=[0, 1], nodes=[NODE_A, NODE_B])
    msgs = [(NODE_A, 10, b"a" * 100), (NODE_B, 20, b"b" * 3000)]
    for sender, pid, msg in msgs:
        rig.push(mcast_record(sender, GROUP, pid, msg))
    why, records = rig.loop(until_us=now_us() + 200_000)
    assert (why, records) == (L.LOOP_UNTIL, 2)
    assert rig.acc[L.A_SLEEPS] >= 1           # it slept, then until_us came
    assert rig.acc[L.A_EVENTS] == 4 and rig.acc[L.A_DELIVERED] == 2
    want = [python_event(s, GROUP, p, m) for s, p, m in msgs]
    assert rig.received(0) == want and rig.received(1) == want
    assert rig.ring.hdr[W_TAIL] == rig.pos         # released (no snapshot store): tail = cursor


def test_doorbell_wakes_it_for_records_pushed_while_it_sleeps(rig):
    # The producer is another process, as the ring process is: the loop holds the GIL
    # while it sleeps in poll(), as every jitted function does.
    rig.add_group(GROUP, receivers=[0], nodes=[NODE_A])
    theirs = rig.clients[0][1]
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            ring = ShmRing.attach(rig.ring.name, wake_fd=rig.bell, role="producer")
            time.sleep(0.05)                  # most likely asleep by now; either way works
            ring.push(RT_DELIVER, mcast_record(NODE_A, GROUP, 7, b"late"))
            theirs.settimeout(HANG_GUARD_S)
            got = theirs.recv(1 << 16)        # delivered by the loop, while it runs
            code = 0 if got == python_event(NODE_A, GROUP, 7, b"late") else 2
            rig.poke_tx.send(b"!")            # then send it back to Python
        finally:
            os._exit(code)
    why, records = rig.loop(until_us=now_us() + int(HANG_GUARD_S * 1e6))
    _pid, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert (why, records) == (L.LOOP_FDS, 1)
    assert L.readable_fds(rig.pfd) == [rig.poke_rx.fileno()]


def test_stops_at_a_record_for_python_with_the_cursor_on_it(rig):
    rig.add_group(GROUP, receivers=[0], nodes=[NODE_A])
    rig.push(mcast_record(NODE_A, GROUP, 1, b"first"))
    rig.push(b"\0" * 40, rtype=RT_CONFIG)
    rig.push(mcast_record(NODE_A, GROUP, 1, b"after"))
    why, records = rig.loop(until_us=now_us() + int(HANG_GUARD_S * 1e6))
    assert (why, records) == (L.LOOP_PYTHON, 1)
    assert rig.received(0) == [python_event(NODE_A, GROUP, 1, b"first")]
    _st, _off, _n, rtype, _fl, _nxt = ring_peek(rig.ring.hdr, rig.ring.data, rig.pos)
    assert rtype == RT_CONFIG


def test_a_full_client_socket_goes_back_to_python_with_the_slot(rig):
    rig.add_group(GROUP, receivers=[0], nodes=[NODE_A])
    theirs = rig.clients[0][1]
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    pushed = 0
    while pushed < 200:
        rig.push(mcast_record(NODE_A, GROUP, 1, b"z" * 2000))
        pushed += 1
    why, records = rig.loop(until_us=now_us() + int(HANG_GUARD_S * 1e6))
    assert why == L.LOOP_FLUSH
    assert records == pushed                  # all queued; the socket took only some
    n = int(rig.acc[L.A_TOUCHED])
    rows = [(int(rig.touched[i, K.T_SLOT]), int(rig.touched[i, K.T_ERRNO])) for i in range(n)]
    assert rows == [(rig.qs[0].slot, 11)]     # EAGAIN
    assert 0 < len(rig.received(0)) < pushed and rig.qs[0].count > 0


def test_moved_until_bounds_it_only_once_the_cursor_moved(rig):
    rig.add_group(GROUP, receivers=[0], nodes=[NODE_A])
    # nothing arrives: a moved_until_us in the past does not end the sleep early
    why, records = rig.loop(until_us=now_us() + 100_000, moved_until_us=0)
    assert (why, records) == (L.LOOP_UNTIL, 0) and rig.acc[L.A_SLEEPS] >= 1
    # a record arrives: back at once, without a sleep
    rig.push(mcast_record(NODE_A, GROUP, 1, b"m"))
    why, records = rig.loop(until_us=now_us() + int(HANG_GUARD_S * 1e6), moved_until_us=0)
    assert (why, records) == (L.LOOP_UNTIL, 1) and rig.acc[L.A_SLEEPS] == 0


def test_pos_limit_and_a_kept_ring(rig):
    rig.add_group(GROUP, receivers=[0], nodes=[NODE_A])
    for i in range(3):
        rig.push(mcast_record(NODE_A, GROUP, 1, b"%d" % i))
    tail = int(rig.ring.hdr[W_TAIL])
    why, records = rig.loop(until_us=now_us() + int(HANG_GUARD_S * 1e6), pos_limit=1,
                            release=False)
    assert (why, records) == (L.LOOP_UNTIL, 3)     # one batch, then the limit
    assert int(rig.ring.hdr[W_TAIL]) == tail            # kept for the snapshot store


# ---- requests ------------------------------------------------------------------------------

def test_takes_mcast_requests_into_the_submit_ring_as_the_request_kernel(rig):
    control = np.zeros(2, np.int32)
    client, _server = rig.add_requester(GROUP, 77, 5, control)
    messages = [b"", b"q" * 1500, bytes(range(256)) * 8]
    for m in messages:
        client.send(pack_request(REQ_MCAST, pack_req_mcast(0, m)))
        control[0] += 1
    why, _records = rig.loop(until_us=now_us() + 200_000)
    assert why == L.LOOP_UNTIL                  # took them, slept on, until_us came
    assert rig.acc[L.A_REQUESTS] == 3 and rig.rq[0, L.RQ_TAKEN] == 3 and control[0] == 0
    assert rig.acc[L.A_SPINS] == 0              # spin_ns 0: straight to sleep
    got = rig.submit.pop_batch()
    assert [r[2] for r in got] == [request_record(GROUP, 77, NODE_A, 5, m) for m in messages]


def test_another_request_is_left_in_buf_for_python_with_its_row(rig):
    control = np.zeros(2, np.int32)
    rig.add_requester(b"other", 1, 1, np.zeros(2, np.int32))
    client, _server = rig.add_requester(GROUP, 77, 5, control)
    join = pack_request(REQ_JOIN, bytes(152))
    client.send(pack_request(REQ_MCAST, pack_req_mcast(0, b"before")))
    client.send(join)
    control[0] += 2
    why, _records = rig.loop(until_us=now_us() + int(HANG_GUARD_S * 1e6))
    assert why == L.LOOP_PENDING
    assert rig.acc[L.A_RQ_ROW] == 1 and rig.acc[L.A_REQUESTS] == 1
    n = int(rig.acc[L.A_RQ_PENDING])
    assert bytes(rig.buf[:n]) == join
    assert control[0] == 1                      # the join is Python's to count


def test_an_event_it_does_not_take_goes_back_with_the_ipc_fd_readable(rig):
    other_client, other_server = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        rig.epoll.register(other_server.fileno(), select.EPOLLIN)   # not in the table
        rig.add_requester(GROUP, 77, 5, np.zeros(2, np.int32))
        other_client.send(b"for the server")
        why, _records = rig.loop(until_us=now_us() + int(HANG_GUARD_S * 1e6))
        assert why == L.LOOP_FDS
        assert L.readable_fds(rig.pfd) == [rig.epoll.fileno()]
        assert rig.epoll.poll(0) == [(other_server.fileno(), select.EPOLLIN)]   # still ready
    finally:
        other_client.close()
        other_server.close()


def test_a_request_that_fills_the_submit_ring_to_the_flow_level_stops_it(rig):
    control = np.zeros(2, np.int32)
    client, _server = rig.add_requester(GROUP, 77, 5, control)
    for _ in range(3):
        client.send(pack_request(REQ_MCAST, pack_req_mcast(0, b"f" * 100)))
        control[0] += 1
    why, _records = rig.loop(until_us=now_us() + int(HANG_GUARD_S * 1e6), stop_used_bytes=1)
    assert why == L.LOOP_FLOW and rig.acc[L.A_REQUESTS] == 1 and control[0] == 2


# ---- the own-delivery spin -----------------------------------------------------------------

def send_one_request(rig, message=b"mine"):
    control = np.zeros(2, np.int32)
    client, _server = rig.add_requester(GROUP, 77, 5, control)
    client.send(pack_request(REQ_MCAST, pack_req_mcast(0, message)))
    control[0] += 1


def test_after_taking_a_request_it_polls_for_the_delivery_and_the_bell_stays_quiet(rig):
    """The delivery that comes while it spins is taken without a doorbell: the producer
    saw no sleeping flag, so it asked for no wake-up."""
    rig.add_group(GROUP, receivers=[0], nodes=[NODE_A])
    theirs = rig.clients[0][1]
    send_one_request(rig)
    submitted = int(ring_head(rig.submit.hdr))
    pid = os.fork()
    if pid == 0:       # the ring process's part, from another process (see the bell test)
        code = 1
        try:
            deadline = time.monotonic() + HANG_GUARD_S
            while int(ring_head(rig.submit.hdr)) == submitted:     # the request taken
                if time.monotonic() > deadline:
                    os._exit(3)
            ring = ShmRing.attach(rig.ring.name, wake_fd=rig.bell, role="producer")
            ring.push(RT_DELIVER, mcast_record(NODE_A, GROUP, 77, b"mine"))
            theirs.settimeout(HANG_GUARD_S)
            got = theirs.recv(1 << 16)
            code = 0 if got == python_event(NODE_A, GROUP, 77, b"mine") else 2
            rig.poke_tx.send(b"!")
        finally:
            os._exit(code)
    why, records = rig.loop(until_us=now_us() + int(2 * HANG_GUARD_S * 1e6),
                            spin_ns=int(HANG_GUARD_S * 1e9))
    _pid, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert (why, records) == (L.LOOP_FDS, 1)
    assert rig.acc[L.A_REQUESTS] == 1
    assert rig.acc[L.A_SPINS] == 1 and rig.acc[L.A_SPIN_HITS] == 1
    assert int(rig.ring.hdr[W_WAKEUPS_REQUESTED]) == 0


def test_a_spin_that_sees_nothing_ends_at_spin_ns_then_it_sleeps(rig):
    send_one_request(rig)
    spin_ns = 2_000_000
    why, _records = rig.loop(until_us=now_us() + 200_000, spin_ns=spin_ns)
    assert why == L.LOOP_UNTIL and rig.acc[L.A_SLEEPS] >= 1
    assert rig.acc[L.A_SPINS] == 1 and rig.acc[L.A_SPIN_HITS] == 0
    assert rig.acc[L.A_SPIN_NS] >= spin_ns


def test_a_spin_ends_at_until_us_and_goes_back_to_python_without_sleeping(rig):
    send_one_request(rig)
    spin_ns = int(HANG_GUARD_S * 1e9)
    why, _records = rig.loop(until_us=now_us() + 200_000, spin_ns=spin_ns)
    assert why == L.LOOP_UNTIL
    assert rig.acc[L.A_SPINS] == 1 and rig.acc[L.A_SPIN_NS] < spin_ns
    assert rig.acc[L.A_SLEEPS] == 1             # the poll that found the request


def test_requests_soon_after_the_last_ones_are_a_flood_it_does_not_spin_for(rig):
    send_one_request(rig)
    rig.spin[L.SPIN_LAST_US] = now_us()
    why, _records = rig.loop(until_us=now_us() + 200_000, spin_ns=int(HANG_GUARD_S * 1e9))
    assert why == L.LOOP_UNTIL and rig.acc[L.A_REQUESTS] == 1
    assert rig.acc[L.A_SPINS] == 0
    assert rig.spin[L.SPIN_LAST_US] > 0


def test_no_spin_while_the_ring_process_has_not_taken_earlier_submissions(rig):
    assert rig.submit.push(RT_DELIVER, b"submitted before, not taken yet")
    send_one_request(rig)
    why, _records = rig.loop(until_us=now_us() + 200_000, spin_ns=int(HANG_GUARD_S * 1e9))
    assert why == L.LOOP_UNTIL and rig.acc[L.A_REQUESTS] == 1
    assert rig.acc[L.A_SPINS] == 0


def test_requests_taken_while_records_still_flow_are_spun_for_once_the_ring_is_empty(rig):
    """batch 1 leaves records waiting (R_LIMIT) while the request is taken; the submit
    ring's head before it is what the ring process must have reached, not the head after
    it, read again at the next of those turns."""
    rig.add_group(GROUP, receivers=[0], nodes=[NODE_A])
    for i in range(3):
        rig.push(mcast_record(NODE_A, GROUP, 1, b"%d" % i))
    send_one_request(rig)
    spin_ns = 2_000_000
    why, records = rig.loop(until_us=now_us() + 200_000, batch=1, spin_ns=spin_ns)
    assert (why, records) == (L.LOOP_UNTIL, 3) and rig.acc[L.A_REQUESTS] == 1
    assert rig.acc[L.A_SPINS] == 1 and rig.acc[L.A_SPIN_NS] >= spin_ns


def test_it_does_not_spin_on_the_ring_process_cpu(rig):
    cpus = os.sched_getaffinity(0)
    cpu = min(cpus)
    os.sched_setaffinity(0, {cpu})
    try:
        send_one_request(rig)
        spin_ns = int(HANG_GUARD_S * 1e9)
        why, _records = rig.loop(until_us=now_us() + 200_000, spin_ns=spin_ns, avoid_cpu=cpu)
    finally:
        os.sched_setaffinity(0, cpus)
    assert why == L.LOOP_UNTIL and rig.acc[L.A_REQUESTS] == 1
    assert rig.acc[L.A_SPINS] == 0 and rig.acc[L.A_SPIN_NS] == 0
