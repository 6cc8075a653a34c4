"""Client of the example engine, on coroproc's libqb socket-mode IPC client.

    with ExampleClient() as c:
        c.add("jobs", 1)        # → the value after the cluster ordered the add
        c.get("jobs")
        c.track(lambda name, value, nodeid: ...); c.dispatch()
"""
from __future__ import annotations

from coroproc.ipc.client import IpcClient

from . import wire as W

CS_OK = 1


class ExampleError(RuntimeError):
    def __init__(self, call: str, code: int):
        self.code = code
        super().__init__(f"{call}: cs_error {code}")


class ExampleClient:
    def __init__(self, suffix: str = "", timeout_ms: int = 10000):
        self._ipc = IpcClient(W.IPC_SERVICE, suffix=suffix, timeout_ms=timeout_ms)
        self._track_cb = None

    def fileno(self) -> int:
        return self._ipc.fileno()

    def _call(self, call, req_id, body):
        _rid, error, payload = self._ipc.request(req_id, body)
        if error != CS_OK:
            raise ExampleError(call, error)
        return payload

    def add(self, name: str, delta: int = 1) -> int:
        return W.unpack_value(self._call("add", W.REQ_ADD, W.pack_add(name, delta)))

    def get(self, name: str) -> int:
        return W.unpack_value(self._call("get", W.REQ_GET, W.pack_name(name)))

    def track(self, callback) -> None:
        self._track_cb = callback
        self._call("track", W.REQ_TRACK, b"")

    def dispatch(self, timeout_ms: int = 0) -> int:
        """Run the callback for every waiting event; returns how many."""
        n = 0
        while True:
            ev = self._ipc.recv_event(timeout_ms if n == 0 else 0)
            if ev is None:
                return n
            msg_id, _error, payload = ev
            if msg_id == W.EV_CHANGED and self._track_cb is not None:
                self._track_cb(*W.unpack_changed(payload))
            n += 1

    def close(self) -> None:
        self._ipc.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
