"""The array-backed event queues (ipc/evqueue.py, ipc/jit/evqueue.py) over real datagram
socket pairs: order, bounds, wrap-around, a full socket, the control file's counter."""
import errno
import socket

import numpy as np
import pytest

from coroproc.ipc.evqueue import EventQueues


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    theirs.setblocking(False)
    yield ours, theirs
    ours.close()
    theirs.close()


def drain(sock):
    got = []
    while True:
        try:
            got.append(sock.recv(1 << 20))
        except BlockingIOError:
            return got


def test_nothing_is_sent_until_connected_then_all_in_order(pair):
    ours, theirs = pair
    q = EventQueues(slots=2, region_bytes=1 << 16, rows_per_slot=64).attach(64, 1 << 16)
    messages = [bytes([i]) * (i * 37 % 900 + 1) for i in range(8)]
    for m in messages:
        assert q.push(m)
    assert q.flush() == (0, 0) and q.count == 8
    sent_counter = np.zeros(2, np.int32)          # a control file's {sent, flow_control}
    q.connected(ours.fileno(), sent_counter.ctypes.data)
    assert q.flush() == (8, 0)
    assert drain(theirs) == messages
    assert q.count == 0 and q.queued_bytes == 0 and q.sent == 8
    assert list(sent_counter) == [8, 0]


def test_bounds_in_events_and_bytes_refuse_without_queueing(pair):
    queues = EventQueues(slots=2, region_bytes=1 << 16, rows_per_slot=64)
    q = queues.attach(3, 1 << 16)
    assert [q.push(b"e") for _ in range(4)] == [True, True, True, False]
    q2 = queues.attach(64, 1000)
    assert q2.push(b"a" * 600) and not q2.push(b"b" * 600) and q2.push(b"c" * 400)
    assert q2.count == 2 and q2.queued_bytes == 1000


def test_events_wrap_around_the_region_and_stay_whole(pair):
    ours, theirs = pair
    q = EventQueues(slots=1, region_bytes=4096, rows_per_slot=16).attach(16, 4096)
    q.connected(ours.fileno(), 0)
    expected = []
    for i in range(40):          # 1,500-byte events in a 4,096-byte region
        m = bytes([i]) * 1500
        assert q.push(m)
        expected.append(m)
        if q.count == 2:
            assert q.flush() == (2, 0)
    q.flush()
    assert drain(theirs) == expected


def test_a_full_socket_keeps_the_rest_then_sends_it_in_order(pair):
    ours, theirs = pair
    q = EventQueues(slots=1, region_bytes=1 << 20, rows_per_slot=4096).attach(4096, 1 << 20)
    q.connected(ours.fileno(), 0)
    for i in range(500):
        assert q.push(i.to_bytes(4, "little") * 64)
    sent, err = q.flush()
    assert 0 < sent < 500 and err == errno.EAGAIN and q.count == 500 - sent
    got = drain(theirs)
    while q.count:
        q.flush()
        got += drain(theirs)
    assert [int.from_bytes(m[:4], "little") for m in got] == list(range(500))


def test_a_gone_peer_is_reported_and_the_event_stays(pair):
    ours, theirs = pair
    q = EventQueues(slots=1, region_bytes=1 << 16, rows_per_slot=16).attach(16, 1 << 16)
    q.connected(ours.fileno(), 0)
    theirs.close()
    q.push(b"lost?")
    sent, err = q.flush()
    assert sent == 0 and err in (errno.ECONNREFUSED, errno.ENOTCONN, errno.EPIPE)
    assert q.count == 1
    assert q.drop_head() == 5 and q.count == 0


def test_slots_are_reused_and_counted(pair):
    queues = EventQueues(slots=2, region_bytes=1 << 16, rows_per_slot=16)
    a, b = queues.attach(16, 1 << 16), queues.attach(16, 1 << 16)
    assert queues.attach(16, 1 << 16) is None
    a.push(b"old")
    gen = queues.generation
    a.detach()
    c = queues.attach(16, 1 << 16)
    assert queues.generation == gen + 2
    assert c.slot != b.slot and c.count == 0 and c.sent == 0


def test_an_emptied_queue_starts_again_at_its_regions_beginning(pair):
    """A client that keeps up reuses the first pages of its region only."""
    ours, _theirs = pair
    queues = EventQueues(slots=2, region_bytes=1 << 16, rows_per_slot=16)
    queues.attach(16, 1 << 16)
    q = queues.attach(16, 1 << 16)
    q.connected(ours.fileno(), 0)
    for _ in range(3):
        assert q.push(b"a" * 1000) and q.push(b"b" * 10)
        assert q.flush() == (2, 0)
        assert q.queued_bytes == 0
        assert q.push(b"c")
        last = (queues.qs[q.slot, 2] - 1) % 16               # Q_RHEAD - 1
        assert queues.rows[q.slot, last, 0] % (1 << 16) == 0
        assert q.flush() == (1, 0)
