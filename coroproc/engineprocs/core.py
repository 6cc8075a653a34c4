"""EngineCore: one engine, its handler tables, its sync driver and its membership view.

Host-independent: the engine process (host.py) and the multi-node harness (simbus.py)
both feed an EngineCore the same inputs — configurations, ordered "a"/"sync" group
messages, lib requests — so the rules below are written once:

* lib requests follow Corosync's cs_ipcs_msg_process + corosync_sending_allowed: an id
  without a handler → {id 0, CS_ERR_INVALID_PARAM}; a flow-controlled request while sync
  runs or the submit ring lacks room → {id 0, CS_ERR_TRY_AGAIN}; cpg MCAST (the one
  asynchronous call, which Corosync would drop here) is deferred instead: the IPC server
  offers it again and reads nothing more from that client meanwhile. A handler that
  cannot parse its body (ValueError/struct.error) answers CS_ERR_INVALID_PARAM and the
  connection's `invalid_request` counter grows; the engine keeps running.
* exec messages are dispatched by fn of `(service << 16) | fn`; a malformed one is
  counted and dropped (it came through Totem, so every node drops it alike).
"""
from __future__ import annotations

import struct
from typing import Callable, Optional

from coroproc.ipc.server import DEFER

from .api import (CONFIG_REGULAR, EXEC_HEADER, EXEC_HEADER_BYTES, SERVICE_CPG, Configuration,
                  Engine, RingId)
from .sync import SyncDriver, SyncMessageError

CS_ERR_INVALID_PARAM = 7
CS_ERR_TRY_AGAIN = 6
CPG_MCAST_REQUEST = 2        # the asynchronous call: libcpg never waits for an answer
EXEC_OVERHEAD_BYTES = 256    # an exec message's headers beyond the request's (cpg: ~150)


class EngineCore:
    def __init__(self, engine: Engine, ctx, node_services: list[int],
                 send_sync: Callable[[bytes], bool],
                 on_completed: Callable[[RingId, tuple], None],
                 leader_service: Optional[int] = None):
        self.engine = engine
        self.ctx = ctx
        self.lib = engine.lib_handlers()
        self.exec = engine.exec_handlers()
        self.sync = SyncDriver(ctx.nodeid, engine, node_services, send_sync,
                               self._completed, lambda prio, msg: ctx.log(prio, msg),
                               leader_service)
        self._on_completed = on_completed
        self._prev_regular: tuple[int, ...] = ()
        self._last_trans: Optional[tuple[int, ...]] = None
        self.stats = {"exec_rx": 0, "exec_malformed": 0, "exec_unknown": 0, "sync_malformed": 0,
                      "lib_requests": 0, "lib_invalid": 0, "lib_try_again": 0,
                      "lib_deferred": 0, "configs": 0}

    # ---- ordered inputs ------------------------------------------------------------------
    def on_config(self, kind: int, ring_id: RingId, members) -> Configuration:
        members = tuple(sorted(members))
        if kind == CONFIG_REGULAR:
            base = self._last_trans if self._last_trans is not None else self._prev_regular
            conf = Configuration(kind, ring_id, members, (),
                                 tuple(n for n in members if n not in base))
            self._prev_regular = members
            self._last_trans = None
            self.ctx.ring_id = ring_id
            self.ctx.members = members
        else:
            conf = Configuration(kind, ring_id, members,
                                 tuple(n for n in self._prev_regular if n not in members), ())
            self._last_trans = members
        self.stats["configs"] += 1
        self.ctx.sync_in_progress = True
        self.engine.on_confchg(conf)
        self.sync.on_config(conf)
        return conf

    # ---- restart without losing state ------------------------------------------------
    def save_state(self) -> dict:
        """Everything but the engine's own state that a restarted process needs."""
        ctx = self.ctx
        rid = ctx.ring_id
        return {"sync": self.sync.save_state(), "prev_regular": list(self._prev_regular),
                "last_trans": list(self._last_trans) if self._last_trans is not None else None,
                "ring": [rid.nodeid, rid.seq] if rid else None, "members": list(ctx.members),
                "sync_in_progress": ctx.sync_in_progress,
                "first_sync_done": ctx.first_sync_done}

    def load_state(self, st: dict) -> None:
        self.sync.load_state(st["sync"])
        self._prev_regular = tuple(st["prev_regular"])
        self._last_trans = tuple(st["last_trans"]) if st["last_trans"] is not None else None
        self.ctx.ring_id = RingId(*st["ring"]) if st["ring"] else None
        self.ctx.members = tuple(st["members"])
        self.ctx.sync_in_progress = st["sync_in_progress"]
        self.ctx.first_sync_done = st["first_sync_done"]

    def adopt_membership(self, members) -> None:
        """A (re)started engine learns the node's current membership from the supervisor."""
        self._prev_regular = tuple(sorted(members))
        self._last_trans = None

    def on_ring_lost(self) -> None:
        """The ring process restarted: the old ring is gone without a configuration."""
        self._prev_regular = ()
        self._last_trans = None
        self.ctx.ring_id = None
        self.ctx.members = ()
        self.engine.on_ring_lost()

    def on_exec(self, sender: int, msg: memoryview) -> None:
        if len(msg) < EXEC_HEADER_BYTES:
            self.stats["exec_malformed"] += 1
            return
        msg_id, size = EXEC_HEADER.unpack_from(msg, 0)
        if (msg_id >> 16) != self.engine.service_id:
            return  # another service's message (the ring process routes by service id)
        handler = self.exec.get(msg_id & 0xFFFF)
        if handler is None:
            self.stats["exec_unknown"] += 1
            return
        self.stats["exec_rx"] += 1
        try:
            handler(sender, msg[EXEC_HEADER_BYTES:])
        except (ValueError, struct.error) as exc:
            self.stats["exec_malformed"] += 1
            self.ctx.warning(f"malformed exec message {msg_id & 0xFFFF} from node {sender}: {exc}")

    def on_sync_message(self, sender: int, msg) -> None:
        try:
            self.sync.on_message(sender, msg)
        except SyncMessageError as exc:
            self.stats["sync_malformed"] += 1
            self.ctx.warning(f"malformed sync message from node {sender}: {exc}")

    def run_sync(self) -> None:
        self.sync.run()

    def _completed(self, ring_id: RingId, members: tuple) -> None:
        self.ctx.sync_in_progress = False
        self.ctx.first_sync_done = True
        self.engine.on_sync_completed(ring_id, members)
        self._on_completed(ring_id, members)

    # ---- lib requests --------------------------------------------------------------------
    def on_lib_request(self, conn, msg_id: int, body: memoryview, msg_bytes: int):
        """The reply (response_id, cs_error, body) or None; counts what Corosync counts."""
        self.stats["lib_requests"] += 1
        is_async = self.engine.service_id == SERVICE_CPG and msg_id == CPG_MCAST_REQUEST
        handler = self.lib.get(msg_id)
        if handler is None:
            self.stats["lib_invalid"] += 1
            conn.stats["invalid_request"] += 1
            if is_async:
                self.ctx.info(f"invalid message id {msg_id} from pid {conn.creds.pid}")
                return None
            return (0, CS_ERR_INVALID_PARAM, b"")
        # room for the exec message the request becomes: its own size plus the engine's
        # exec header (cpg adds ~200 bytes of group name and source)
        if msg_id in self.engine.flow_controlled_requests and (
                self.ctx.sync_in_progress
                or self.ctx.mcast_space_bytes() < msg_bytes + EXEC_OVERHEAD_BYTES):
            conn.stats["overload"] += 1
            if is_async:
                # Corosync drops a cpg MCAST here (it has no reply to carry TRY_AGAIN);
                # coroproc keeps it and stops reading that client until there is room and
                # no sync runs, so nothing a client sent is lost and its order holds
                self.stats["lib_deferred"] += 1
                return DEFER
            self.stats["lib_try_again"] += 1
            return (0, CS_ERR_TRY_AGAIN, b"")
        try:
            return handler(conn, body)
        except (ValueError, struct.error) as exc:
            self.stats["lib_invalid"] += 1
            conn.stats["invalid_request"] += 1
            self.ctx.warning(f"invalid request {msg_id} from pid {conn.creds.pid}: {exc}")
            return None if is_async else (0, CS_ERR_INVALID_PARAM, b"")
