"""The example engine: named counters replicated by the cluster's total order.

Why it exists: it is the smallest engine that uses the whole API — IPC requests answered
now (GET) and answered later, once the cluster has ordered them (ADD), events to tracking
clients, exec messages, and a sync that merges state after partitions — so it is the
template to copy (docs/engines.md walks through it).

Semantics: ADD is applied by every node when its exec message is delivered, so all nodes
of a ring hold the same table. After a partition heals, the sides' tables differ; during
sync each node multicasts its table and, at activate, every node takes the largest value
seen per name — the same rule applied to the same messages in the same order, so every
node activates the same table.
"""
from __future__ import annotations

import orjson

from coroproc.engineprocs.api import Engine

from . import wire as W

CS_OK = 1
CS_ERR_NOT_EXIST = 12
CS_ERR_TRY_AGAIN = 6
PENDING_ADDS_MAX = 1024          # per connection: ADDs sent but not yet ordered


class ExampleEngine(Engine):
    name = "example"
    service_id = W.SERVICE_ID
    ipc_service = W.IPC_SERVICE
    log_subsys = "EXAMPL"
    has_sync = True
    flow_controlled_requests = frozenset({W.REQ_ADD})

    def __init__(self, ctx):
        super().__init__(ctx)
        self.table: dict[str, int] = {}
        self.trackers = set()
        self.pending: dict[int, object] = {}   # token → connection awaiting RES_ADD
        self.next_token = 1
        self._sync_out: list = []
        self._sync_seen: dict[str, int] = {}
        self.applied = 0

    # ---- tables -----------------------------------------------------------------------
    def lib_handlers(self):
        return {W.REQ_ADD: self._req_add, W.REQ_GET: self._req_get, W.REQ_TRACK: self._req_track}

    def exec_handlers(self):
        return {W.EXEC_ADD: self._exec_add, W.EXEC_STATE: self._exec_state}

    # ---- lib ----------------------------------------------------------------------------
    def _req_add(self, conn, body):
        name, delta = W.unpack_add(body)
        mine = [t for t, c in self.pending.items() if c is conn]
        if len(mine) >= PENDING_ADDS_MAX:
            return (W.RES_ADD, CS_ERR_TRY_AGAIN, b"")
        token = self.next_token
        self.next_token += 1
        if not self.ctx.mcast(W.EXEC_ADD, W.pack_exec_add(name, delta, conn.creds.pid, token)):
            return (W.RES_ADD, CS_ERR_TRY_AGAIN, b"")
        self.pending[token] = conn
        return None      # answered when the cluster has ordered it (_exec_add)

    def _req_get(self, conn, body):
        name = W.unpack_name(body)
        if name not in self.table:
            return (W.RES_GET, CS_ERR_NOT_EXIST, b"")
        return (W.RES_GET, CS_OK, W.pack_value(self.table[name]))

    def _req_track(self, conn, body):
        self.trackers.add(conn)
        return (W.RES_TRACK, CS_OK, b"")

    def on_disconnect(self, conn):
        self.trackers.discard(conn)
        for token in [t for t, c in self.pending.items() if c is conn]:
            del self.pending[token]

    # ---- exec -----------------------------------------------------------------------------
    def _exec_add(self, sender, body):
        name, delta, _pid, token = W.unpack_exec_add(body)
        value = self.table.get(name, 0) + delta
        self._set(name, value, sender)
        if sender == self.ctx.nodeid:
            conn = self.pending.pop(token, None)
            if conn is not None and not conn.closed:
                conn.send_response(W.RES_ADD, CS_OK, W.pack_value(value))

    def _set(self, name: str, value: int, by: int) -> None:
        self.table[name] = value
        self.applied += 1
        event = W.pack_changed(name, value, by)
        for conn in list(self.trackers):
            if not conn.send_event(W.EV_CHANGED, event):
                # a client that does not read its events is dropped, not waited for
                self.ctx.warning(f"tracking client pid {conn.creds.pid} is not reading its "
                                 "events; disconnecting it")
                self.trackers.discard(conn)
                self.ctx.disconnect(conn, "event queue full")

    def _exec_state(self, sender, body):
        for name, value in W.unpack_state(body):
            if value > self._sync_seen.get(name, value - 1):
                self._sync_seen[name] = value

    # ---- sync -------------------------------------------------------------------------------
    def sync_init(self, trans_list, member_list, ring_id):
        items = sorted(self.table.items())
        step = W.STATE_ENTRIES_PER_MSG
        self._sync_out = [items[i:i + step] for i in range(0, len(items), step)] or [[]]
        self._sync_seen = {}

    def sync_process(self):
        while self._sync_out:
            if not self.ctx.mcast(W.EXEC_STATE, W.pack_state(self._sync_out[0])):
                return False      # submit ring full: called again shortly
            self._sync_out.pop(0)
        return True

    def sync_activate(self):
        for name, value in sorted(self._sync_seen.items()):
            if self.table.get(name) != value:
                self._set(name, value, 0)
        self._sync_seen = {}

    def sync_abort(self):
        self._sync_out = []
        self._sync_seen = {}

    # ---- restart without losing state -------------------------------------------------
    def snapshot(self):
        # the table and the sync merge in progress; pending ADDs belong to connections,
        # which a restart loses (their clients see a disconnect and ask again)
        return orjson.dumps({"table": self.table, "seen": self._sync_seen,
                             "out": self._sync_out, "applied": self.applied})

    def restore(self, data):
        st = orjson.loads(data)
        self.table = dict(st["table"])
        self._sync_seen = dict(st["seen"])
        self._sync_out = [[tuple(e) for e in chunk] for chunk in st["out"]]
        self.applied = st["applied"]

    def counters(self):
        return {"counters": len(self.table), "applied": self.applied,
                "trackers": len(self.trackers), "pending_adds": len(self.pending)}
