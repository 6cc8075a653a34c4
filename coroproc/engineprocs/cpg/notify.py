"""Events to local CPG clients: confchg, deliver, totem confchg — and slow readers.

This file owns exec/cpg.c's notify_lib_joinlist / notify_lib_totem_membership / the
deliver loops: which local connections get an event, the state changes a confchg
causes (own join → JOIN_COMPLETED, own leave → UNJOINED), the transition counter that
interrupts fragmented sends, and the initial totem confchg of V1 clients.

Slow readers. Corosync queues events for a client without bound. Our IPC layer bounds
each connection's event queue (send_event returns False when full). Dropping one event
would silently break virtual synchrony for that client (a missed message or confchg),
so a client whose queue is full is disconnected instead — exactly what happens to it if
it crashes: the rest of the group sees a PROCDOWN leave. The disconnect is deferred to
the end of the current handler (`reap`) so no connection table changes mid-loop; it is
logged and counted (`clients_disconnected_slow`).
"""
from __future__ import annotations

from . import lib_msgs as lib
from .conn_state import RECEIVES_EVENTS, CpgConn

CONFCHG_CPG_REASON_JOIN = 1
CONFCHG_CPG_REASON_LEAVE = 2
CONFCHG_CPG_REASON_NODEDOWN = 3
CONFCHG_CPG_REASON_NODEUP = 4
CONFCHG_CPG_REASON_PROCDOWN = 5
CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF = 1


class Notifier:
    def __init__(self, engine):
        self.engine = engine
        self.ctx = engine.ctx
        self.doomed: dict[CpgConn, str] = {}
        self.stats = engine.stats

    def send(self, cpd: CpgConn, msg_id: int, body: bytes) -> bool:
        if cpd.disconnecting or cpd in self.doomed:
            return False
        try:
            if cpd.conn.send_event(msg_id, body):
                return True
        except ValueError as exc:
            # larger than the client's IPC maximum: only a peer that ignores libcpg's
            # max_atomic_msgsize can cause it; that one event cannot be delivered
            self.stats["events_too_big"] += 1
            self.ctx.error(f"event {msg_id} for CPG client pid {cpd.conn.creds.pid} "
                           f"dropped: {exc}")
            return False
        self.stats["events_dropped"] += 1
        self.doomed[cpd] = (f"its event queue is full (CPG client pid {cpd.conn.creds.pid} "
                            "does not read its events)")
        return False

    def reap(self) -> None:
        """Disconnect the clients that could not take an event (see the file comment)."""
        while self.doomed:
            cpd, why = self.doomed.popitem()
            if cpd.disconnecting or getattr(cpd.conn, "closed", False):
                continue
            # the server closes it on its next turn; until then the deliveries in between
            # must neither queue nor log it again (one line per client, not per message)
            cpd.disconnecting = True
            self.stats["clients_disconnected_slow"] += 1
            self.ctx.warning(f"disconnecting CPG client: {why}")
            self.ctx.disconnect(cpd.conn, why)

    # ---- confchg (notify_lib_joinlist) ----------------------------------------------------
    def confchg(self, group: bytes, joined: list, left: list) -> None:
        """joined/left: [(nodeid, pid, reason)]. Members = the group's list minus `left`."""
        eng = self.engine
        gone = {(n, p) for n, p, _r in left}
        members = [(n, p) for n, p in eng.procs.members(group) if (n, p) not in gone]
        body = lib.ev_confchg(group, members, left, joined)
        local = eng.ctx.nodeid
        in_group = eng.conns_in_group(group)
        for nodeid, pid, _reason in joined:
            if nodeid == local:
                for cpd in in_group:
                    if cpd.pid == pid:
                        cpd.join_completed()
        for cpd in in_group:
            if cpd.receives_events:
                self.send(cpd, lib.MESSAGE_RES_CPG_CONFCHG_CALLBACK, body)
                cpd.transition_counter += 1
                self.stats["confchg_events"] += 1
        for nodeid, pid, reason in left:
            if nodeid == local and reason == CONFCHG_CPG_REASON_LEAVE:
                for cpd in in_group:
                    if cpd.pid == pid:
                        eng.forget_group(cpd)
                        cpd.leave_completed()
        self.initial_totem_confs()

    def initial_totem_confs(self) -> None:
        """V1 clients that asked for it get the current totem membership once, at the
        first confchg after their join (cpg.c checks at the end of every confchg)."""
        sync = self.engine.sync
        for cpd in self.engine.active_conns():
            if cpd.flags & CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF and \
                    not cpd.initial_totem_conf_sent:
                cpd.initial_totem_conf_sent = True
                self.send(cpd, lib.MESSAGE_RES_CPG_TOTEM_CONFCHG_CALLBACK,
                          lib.ev_totem_confchg(sync.ring_id, sync.old_members))

    def totem_confchg_all(self) -> None:
        """After each sync: every connection gets it (libcpg drops it unless the client
        registered a V1 totem_confchg_fn — the daemon cannot know, Corosync does this)."""
        sync = self.engine.sync
        body = lib.ev_totem_confchg(sync.ring_id, sync.old_members)
        for cpd in self.engine.active_conns():
            self.send(cpd, lib.MESSAGE_RES_CPG_TOTEM_CONFCHG_CALLBACK, body)

    # ---- deliveries -------------------------------------------------------------------------
    def deliver(self, group: bytes, sender: int, msg_id: int, pack, *pack_args) -> int:
        """Send one delivered message to the group's local readers; how many got it. The
        event is pack(*pack_args), packed at the first reader (none: never packed). This
        runs once per message of a flood: no target list, no closure."""
        members = self.engine.group_conns(group)
        if not members:
            return 0
        body = None
        sent = 0
        for cpd in list(members):       # a copy: nothing may change the group mid-loop
            if cpd.state not in RECEIVES_EVENTS:
                continue
            if body is None:
                if not self.engine.procs.node_in_group(group, sender):
                    self.stats["unknown_node_drops"] += 1
                    self.ctx.warning("Unknown node -> we will not deliver message")
                    return 0
                body = pack(*pack_args)
            if self.send(cpd, msg_id, body):
                sent += 1
        self.stats["deliver_events"] += sent
        return sent
