"""Test doubles for the CMAP engine tests: a recording IPC connection and a host context.

RecConn has the IpcConnection members the engine uses (send_event, creds, context);
RecContext is the real BaseContext (timers, log) with recorded mcasts and a counters
callback the test answers by hand. Request bodies are built here with explicit offsets
taken from include/corosync/ipc_cmap.h (body = datagram after the 16-byte header), so a
layout mistake in the engine's codec shows up as a failing test, not a matching one.
"""
from __future__ import annotations

import struct

from coroproc.engineprocs.cmap.engine import CmapEngine
from coroproc.engineprocs.context import BaseContext


class Creds:
    def __init__(self, pid):
        self.pid, self.uid, self.gid = pid, 0, 0


class RecConn:
    def __init__(self, pid=1234, event_queue_max=1000):
        self.creds = Creds(pid)
        self.context = None
        self.events = []
        self.event_queue_max = event_queue_max

    def send_event(self, msg_id, body, error=0):
        if len(self.events) >= self.event_queue_max:
            return False
        self.events.append((msg_id, bytes(body)))
        return True


class RecContext(BaseContext):
    def __init__(self, config=None, nodeid=1, options=None, node_engines=None):
        self.now_s = 0.0
        self.logs = []
        super().__init__(nodeid=nodeid, cluster_name="t", config=config, options=options or {},
                         clock_s=lambda: self.now_s,
                         log_fn=lambda prio, msg: self.logs.append((prio, msg)),
                         node_engines=node_engines)
        self.sent = []
        self.counter_callbacks = []
        self.space_ok = True
        self.config_keys = []          # (changed, entries) the engine sent the node's engines
        self.requests = []             # (op, args, callback) asked of the supervisor

    def mcast(self, fn, body, *, safe=False):
        if not self.space_ok:
            return False
        self.sent.append((fn, bytes(body)))
        return True

    def mcast_space_bytes(self):
        return 1 << 20 if self.space_ok else 0

    def connections(self):
        return []

    def disconnect(self, conn, why):
        pass

    def request_node_counters(self, callback):
        self.counter_callbacks.append(callback)

    def config_keys_changed(self, changed, entries):
        self.config_keys.append((changed, entries))

    def supervisor_request(self, op, args, callback=None):
        self.requests.append((op, args, callback))

    def answer_counters(self, counters):
        callbacks, self.counter_callbacks = self.counter_callbacks, []
        for cb in callbacks:
            cb(counters)


def new_engine(config=None, options=None, nodeid=1, node_engines=None):
    ctx = RecContext(config, nodeid, options, node_engines)
    engine = CmapEngine(ctx)
    engine.start()
    return engine, ctx


# ---- request bodies (offsets from ipc_cmap.h minus the 16-byte request header) ----------
def name(key) -> bytes:
    raw = key.encode() if isinstance(key, str) else key
    out = bytearray(264)
    struct.pack_into("<H", out, 0, len(raw))
    out[8:8 + len(raw)] = raw
    return bytes(out)


def req_set(key, value_type, value: bytes) -> bytes:
    return name(key) + struct.pack("<Q", len(value)) + struct.pack("<B7x", value_type) + value


def req_get(key, buffer_len=0) -> bytes:
    return name(key) + struct.pack("<Q", buffer_len)


def req_adjust(key, step) -> bytes:
    return name(key) + struct.pack("<i4x", step)


def req_handle(handle) -> bytes:
    return struct.pack("<Q", handle)


def req_track_add(key, track_type, inst) -> bytes:
    return name(key) + struct.pack("<i4xQ", track_type, inst)


def res_get(body):
    """(value_len, type, value bytes) of a res_lib_cmap_get body."""
    value_len, value_type = struct.unpack_from("<QB", body, 0)
    return value_len, value_type, bytes(body[16:16 + value_len])


def res_iter_next(body):
    length = struct.unpack_from("<H", body, 0)[0]
    key = bytes(body[8:8 + length]).decode()
    value_len, value_type = struct.unpack_from("<QB", body, 264)
    return key, value_len, value_type


def notify_event(body):
    """(inst, event, key, (new_type, new), (old_type, old)) at ipc_cmap.h offsets - 24."""
    inst = struct.unpack_from("<Q", body, 0)[0]
    length = struct.unpack_from("<H", body, 8)[0]
    key = bytes(body[16:16 + length]).decode()
    event = struct.unpack_from("<i", body, 272)[0]
    new_type, old_type = body[280], body[288]
    new_len, old_len = struct.unpack_from("<QQ", body, 296)
    new = bytes(body[312:312 + new_len])
    old = bytes(body[312 + new_len:312 + new_len + old_len])
    assert len(body) == 312 + new_len + old_len
    return inst, event, key, (new_type, new), (old_type, old)
