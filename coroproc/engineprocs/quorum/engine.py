"""QuorumEngine: Corosync's provider-neutral quorum service (id 3, IPC "quorum").

Owns exec/vsf_quorum.c's behaviour: the quorate flag and view that libquorum clients
read and track (V0 and V1 models), the V1 nodelist notification after every sync (with
joined and left lists), and the operator log lines
  "[QUORUM] Sync members[3]: 1 2 3", "Sync joined[1]: 3", "Sync left[1]: 2",
  "[QUORUM] Members[3]: 1 2 3",
  "This node is within the primary component and will provide service." /
  "This node is within the non-primary component and will NOT provide any services."
With `quorum.provider: corosync_votequorum` it runs in the votequorum engine's process
and learns each decision through set_quorum (Corosync's quorum_callback); without a
provider it runs alone, is always quorate and reports QUORUM_FREE.
"""
from __future__ import annotations

import orjson

from coroproc.engineprocs.api import SERVICE_QUORUM, SERVICE_VOTEQUORUM, Engine, NodeFatal
from coroproc.ipc import quorum_structs as Q
from coroproc.ipc.cserror import (CS_ERR_EXIST, CS_ERR_INVALID_PARAM, CS_OK,
                                  CS_TRACK_CHANGES, CS_TRACK_CHANGES_ONLY, CS_TRACK_CURRENT)

LOG_LINE_BYTES = 64      # Corosync's view_buf: a long member list continues on more lines


def view_lines(kind: str, nodeids) -> list[str]:
    """Corosync's log_view_list: "Members[N]: a b c", split with a trailing backslash."""
    total = len(nodeids)
    lines, buf = [], ""
    for nodeid in nodeids:
        item = f" {nodeid}"
        if len(buf) + len(item) >= LOG_LINE_BYTES:
            lines.append(f"{kind}[{total}]:{buf}\\")
            buf = ""
        buf += item
    lines.append(f"{kind}[{total}]:{buf}")
    return lines


class ConnState:
    __slots__ = ("model", "tracking", "flags")

    def __init__(self):
        self.model = Q.MODEL_V0
        self.tracking = False
        self.flags = 0


class QuorumEngine(Engine):
    name = "quorum"
    service_id = SERVICE_QUORUM
    ipc_service = "quorum"
    log_subsys = "QUORUM"
    has_sync = True
    hosted_with = "votequorum"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.quorum_type = Q.QUORUM_FREE
        self.primary_designated = False
        self.view: tuple[int, ...] = ()
        self.view_ring = (0, 0)
        self.sync_ring = (0, 0)
        self.members: tuple[int, ...] = ()
        self.old_members: tuple[int, ...] = ()
        self.joined: tuple[int, ...] = ()
        self.left: tuple[int, ...] = ()
        self.trackers: dict = {}
        self.stats = {"notifications": 0, "notifications_dropped": 0}

    def start(self) -> None:
        provider = self._provider()
        if provider is not None:
            self.ctx.notice(f"Using quorum provider {provider}")
            if provider != "corosync_votequorum":
                raise NodeFatal(f"Quorum provider: {provider} failed to initialize. "
                                f"(coroproc implements corosync_votequorum only)")
            if self.ctx.node_engines.get(SERVICE_VOTEQUORUM) != "votequorum":
                raise NodeFatal("quorum.provider is corosync_votequorum but this node runs "
                                "no votequorum engine (the engine plan must include it)")
            self.quorum_type = Q.QUORUM_SET
        else:
            self.primary_designated = True

    def _provider(self):
        config = self.ctx.config
        entry = config.keys.get("quorum.provider") if config is not None else None
        return entry.value if entry is not None else None

    def quorate(self) -> bool:
        return self.primary_designated

    # ---- the provider's callback (votequorum, same process) --------------------------------
    def set_quorum(self, view_list, quorate: bool, ring) -> None:
        old = self.primary_designated
        self.primary_designated = bool(quorate)
        if quorate and not old:
            self.ctx.notice("This node is within the primary component and will provide "
                            "service.")
        elif old and not quorate:
            self.ctx.notice("This node is within the non-primary component and will NOT "
                            "provide any services.")
        self.view = tuple(view_list)
        self.view_ring = tuple(ring)
        for line in view_lines("Members", self.view):
            self.ctx.notice(line)
        self.send_quorum_notification()

    # ---- sync -------------------------------------------------------------------------------
    def sync_init(self, trans_list, member_list, ring_id) -> None:
        self.members = tuple(member_list)
        self.sync_ring = (ring_id.nodeid, ring_id.seq)
        trans = set(trans_list)
        left = [n for n in self.old_members if n not in trans or n not in self.members]
        self.left = tuple(left)
        self.joined = tuple(n for n in self.members
                            if n not in self.old_members or n in self.left)
        for line in view_lines("Sync members", self.members):
            self.ctx.notice(line)
        if self.joined:
            for line in view_lines("Sync joined", self.joined):
                self.ctx.notice(line)
        if self.left:
            for line in view_lines("Sync left", self.left):
                self.ctx.notice(line)

    def sync_process(self) -> bool:
        return True

    def sync_activate(self) -> None:
        self.old_members = self.members
        self.send_nodelist_notification(with_changes=True)

    def on_ring_lost(self) -> None:
        self.old_members = ()

    # ---- notifications ----------------------------------------------------------------------
    def _send(self, conn, msg_id: int, body: bytes) -> None:
        if self.ctx.replaying:
            return
        if conn.send_event(msg_id, body):
            self.stats["notifications"] += 1
        else:
            self.stats["notifications_dropped"] += 1

    def send_quorum_notification(self, conn=None) -> None:
        q = int(self.primary_designated)
        for target in ([conn] if conn is not None else list(self.trackers)):
            if target.context.model == Q.MODEL_V0:
                self._send(target, Q.RES_NOTIFICATION,
                           Q.pack_notification_v0(q, self.view_ring[1], self.view))
            else:
                self._send(target, Q.RES_V1_QUORUM_NOTIFICATION,
                           Q.pack_notification_v1(q, *self.view_ring, self.view))

    def send_nodelist_notification(self, conn=None, with_changes: bool = False) -> None:
        joined = self.joined if with_changes else ()
        left = self.left if with_changes else ()
        body = Q.pack_nodelist_v1(*self.sync_ring, self.members, joined, left)
        for target in ([conn] if conn is not None else list(self.trackers)):
            if target.context.model == Q.MODEL_V1:
                self._send(target, Q.RES_V1_NODELIST_NOTIFICATION, body)

    # ---- clients ----------------------------------------------------------------------------
    def on_connect(self, conn):
        conn.context = ConnState()
        return True

    def on_disconnect(self, conn) -> None:
        self.trackers.pop(conn, None)
        conn.context = None

    def lib_handlers(self):
        return {Q.REQ_GETQUORATE: self.lib_getquorate, Q.REQ_TRACKSTART: self.lib_trackstart,
                Q.REQ_TRACKSTOP: self.lib_trackstop, Q.REQ_GETTYPE: self.lib_gettype,
                Q.REQ_MODEL_GETTYPE: self.lib_model_gettype}

    def lib_getquorate(self, conn, body):
        return (Q.RES_GETQUORATE, CS_OK, Q.pack_u32_slot(int(self.primary_designated)))

    def lib_trackstart(self, conn, body):
        flags = Q.unpack_u32(body, "req_lib_quorum_trackstart")
        cs: ConnState = conn.context
        if flags & (CS_TRACK_CURRENT | CS_TRACK_CHANGES):
            self.send_nodelist_notification(conn)
            self.send_quorum_notification(conn)
        if cs.tracking:
            return (Q.RES_TRACKSTART, CS_ERR_EXIST, b"")
        if flags & (CS_TRACK_CHANGES | CS_TRACK_CHANGES_ONLY):
            cs.tracking, cs.flags = True, flags
            self.trackers[conn] = None
        return (Q.RES_TRACKSTART, CS_OK, b"")

    def lib_trackstop(self, conn, body):
        cs: ConnState = conn.context
        if cs.tracking:
            cs.tracking = False
            self.trackers.pop(conn, None)
        # Corosync computes CS_ERR_NOT_EXIST when not tracking, then overwrites it with OK
        return (Q.RES_TRACKSTOP, CS_OK, b"")

    def lib_gettype(self, conn, body):
        return (Q.RES_GETTYPE, CS_OK, Q.pack_u32_slot(self.quorum_type))

    def lib_model_gettype(self, conn, body):
        model = Q.unpack_u32(body, "req_lib_quorum_model_gettype")
        error = CS_OK
        if model in (Q.MODEL_V0, Q.MODEL_V1):
            conn.context.model = model
        else:
            self.ctx.error(f"quorum_model_type request for unsupported model {model}")
            error = CS_ERR_INVALID_PARAM
        return (Q.RES_MODEL_GETTYPE, error, Q.pack_u32_slot(self.quorum_type))

    # ---- restart ------------------------------------------------------------------------------
    def snapshot(self) -> bytes:
        return orjson.dumps({k: getattr(self, k) for k in (
            "primary_designated", "view", "view_ring", "sync_ring", "members",
            "old_members", "joined", "left")})

    def restore(self, data: bytes) -> None:
        for key, value in orjson.loads(data).items():
            setattr(self, key, tuple(value) if isinstance(value, list) else value)

    def counters(self) -> dict:
        return {**self.stats, "quorate": int(self.primary_designated),
                "quorum_type": self.quorum_type, "trackers": len(self.trackers)}
