"""A request the service cannot take yet (DEFER) is kept, offered again, and answered in
order; nothing the client sent later overtakes it or is lost."""
import threading
import time
import uuid

from coroproc.ipc.client import IpcClient
from coroproc.ipc.server import DEFER, IpcHandler, IpcServer


class Slow(IpcHandler):
    def __init__(self):
        self.offers = {}
        self.taken = []
        self.room = False

    def on_request(self, conn, msg_id, payload):
        self.offers[msg_id] = self.offers.get(msg_id, 0) + 1
        if msg_id == 1 and not self.room:
            return DEFER
        self.taken.append((msg_id, bytes(payload)))
        return (msg_id, 1, bytes(payload))


def _wait(pred, what):
    deadline = time.monotonic() + 10
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_deferred_request_keeps_its_place():
    handler = Slow()
    name = f"defer{uuid.uuid4().hex[:8]}"
    server = IpcServer(name, handler)
    stop = threading.Event()
    loop = threading.Thread(target=lambda: [server.process(5) for _ in iter(stop.is_set, True)])
    loop.start()
    try:
        client = IpcClient(name, timeout_ms=5000)
        try:
            for msg_id in (1, 2, 3):
                client.send(msg_id, bytes([msg_id]))
            _wait(lambda: handler.offers.get(1, 0) > 3, "request 1 offered again")
            # 1 is held; 2 and 3 wait behind it, unread
            assert handler.taken == [] and 2 not in handler.offers
            handler.room = True
            assert [client.recv_response(5000)[0] for _ in range(3)] == [1, 2, 3]
            assert handler.taken == [(1, b"\x01"), (2, b"\x02"), (3, b"\x03")]
        finally:
            client.close()
    finally:
        stop.set()
        loop.join()
        server.close()
