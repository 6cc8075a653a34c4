"""Events sent in runs: mmsg.BatchSender (sendmmsg over a real AF_UNIX datagram pair) and an
IpcServer corked around a batch of events (a real server thread, a real client)."""
import errno
import socket
import threading
import time
import uuid

import pytest

from coroproc.ipc.client import IpcClient
from coroproc.ipc.mmsg import BATCH_MAX, BatchSender
from coroproc.ipc.server import IpcHandler, IpcServer

pytestmark = pytest.mark.skipif(not BatchSender.available, reason="libc has no sendmmsg")


@pytest.fixture
def pair():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.setblocking(False)
    yield a, b
    a.close()
    b.close()


def drain(sock):
    got = []
    while True:
        try:
            got.append(sock.recv(1 << 20, socket.MSG_DONTWAIT))
        except BlockingIOError:
            return got


def test_a_run_of_messages_arrives_whole_and_in_order(pair):
    a, b = pair
    sender = BatchSender()
    msgs = [bytes([i]) * (1 + 97 * i) for i in range(7)]
    assert sender.send(a.fileno(), msgs) == (7, 0)
    assert drain(b) == msgs
    sender.close()


def test_batch_and_staging_bounds_take_a_prefix(pair):
    a, b = pair
    sender = BatchSender(batch_max=4, staging_bytes=1000)
    assert sender.send(a.fileno(), [b"x" * 10] * 9) == (4, 0)
    assert sender.send(a.fileno(), [b"y" * 400] * 3) == (2, 0)   # 800 fit, 1200 do not
    assert sender.send(a.fileno(), [b"z" * 1001, b"w"]) == (0, errno.EMSGSIZE)  # untried
    assert drain(b) == [b"x" * 10] * 4 + [b"y" * 400] * 2
    sender.close()


def test_a_full_peer_takes_part_of_a_run_then_says_eagain(pair):
    """A unix datagram stays charged to the sender's buffer until it is read: with 8 KiB
    of it, a run of 64 one-KiB messages stops part way, the next call says EAGAIN, and
    once the peer reads, the rest follows in order."""
    a, b = pair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    sender = BatchSender()
    msgs = [i.to_bytes(4, "little") * 256 for i in range(BATCH_MAX)]
    sent, err = sender.send(a.fileno(), msgs)
    assert 0 < sent < len(msgs) and err == 0
    assert sender.send(a.fileno(), msgs[sent:]) == (0, errno.EAGAIN)
    got = drain(b)
    while sent < len(msgs):
        more, err = sender.send(a.fileno(), msgs[sent:])
        assert more > 0 and err == 0
        sent += more
        got += drain(b)
    assert got == msgs
    sender.close()


class Emitter(IpcHandler):
    """Request n: send n events while the server is corked; answer how many were held."""

    def __init__(self):
        self.server = None

    def on_request(self, conn, msg_id, payload):
        n = int.from_bytes(payload, "little")
        self.server.cork()
        held_max = 0
        try:
            for i in range(n):
                assert conn.send_event(7, i.to_bytes(4, "little"))
                held_max = max(held_max, conn.events_queued)
            held_at_end = conn.events_queued
        finally:
            self.server.uncork()
        return (msg_id, 0, held_max.to_bytes(4, "little") + held_at_end.to_bytes(4, "little"))


@pytest.fixture
def emitter():
    handler = Emitter()
    name = f"batch{uuid.uuid4().hex[:8]}"
    server = handler.server = IpcServer(name, handler)
    stop = threading.Event()
    loop = threading.Thread(target=lambda: [server.process(5) for _ in iter(stop.is_set, True)])
    loop.start()
    client = IpcClient(name, timeout_ms=5000)
    yield client
    client.close()
    stop.set()
    loop.join()
    server.close()


def events(client, n):
    got = []
    deadline = time.monotonic() + 10
    while len(got) < n and time.monotonic() < deadline:
        ev = client.recv_event(100)
        if ev is not None:
            assert ev[0] == 7
            got.append(int.from_bytes(ev[2], "little"))
    return got


def test_corked_events_are_held_then_sent_in_order(emitter):
    _id, _err, answer = emitter.request(1, (5).to_bytes(4, "little"), 5000)
    held_max, held_at_end = int.from_bytes(answer[:4], "little"), int.from_bytes(answer[4:], "little")
    assert held_max == 5 and held_at_end == 5    # nothing left before uncork
    assert events(emitter, 5) == list(range(5))


def test_a_corked_connection_sends_every_batch_max_events(emitter):
    n = 3 * BATCH_MAX + 5
    _id, _err, answer = emitter.request(1, n.to_bytes(4, "little"), 5000)
    held_max = int.from_bytes(answer[:4], "little")
    # held until BATCH_MAX, then sent (what the client's socket refuses stays queued for
    # EPOLLOUT, so the queue may then hold more than a batch, but never all of them)
    assert BATCH_MAX - 1 <= held_max < n
    assert events(emitter, n) == list(range(n))
