"""CpgEngine: Corosync's closed process group service (service 2, IPC service "cpg").

This file owns the engine's tables and its ordered inputs: the per-connection records,
the cluster-wide process list, the exec handlers (PROCJOIN, PROCLEAVE, JOINLIST, MCAST,
DOWNLIST(_OLD), PARTIAL_MCAST) and the sync callbacks. Lib requests live in requests.py,
client events in notify.py, sync state in sync.py, wire layouts in exec_msgs.py and
lib_msgs.py. Behaviour follows exec/cpg.c of Corosync 3.1.7 (docs/cpg.md lists the few
places where we differ and why).
"""
from __future__ import annotations

import collections
import errno
from typing import ClassVar

from coroproc.engineprocs.api import SERVICE_CPG, Engine, RingId

from . import exec_msgs as xm
from . import lib_msgs as lib
from . import persist
from .conn_state import CpdState, CpgConn
from .flow import FlowControl
from .groups import ProcessList
from .notify import (CONFCHG_CPG_REASON_JOIN, CONFCHG_CPG_REASON_NODEDOWN,
                     CONFCHG_CPG_REASON_NODEUP, CONFCHG_CPG_REASON_PROCDOWN, Notifier)
from .requests import LibRequests
from .sync import CpgSync

# PROCLEAVEs of vanished clients that found the submit ring full or a sync running wait
# here (one per connection at most, so the bound is the IPC server's connection limit);
# sent in order when the sync completes, or retried every PENDING_RETRY_MS.
PENDING_RETRY_MS = 5.0
PENDING_LEAVES_MAX = 1 << 16


class CpgEngine(Engine):
    name: ClassVar[str] = "cpg"
    service_id: ClassVar[int] = SERVICE_CPG
    ipc_service: ClassVar[str] = "cpg"
    log_subsys: ClassVar[str] = "CPG"
    has_sync: ClassVar[bool] = True
    ipc_event_queues: ClassVar[bool] = True
    # cpg_lib_engine[].flow_control == CS_LIB_FLOW_CONTROL_REQUIRED: join, leave, mcast,
    # finalize, zc_alloc/free/execute, partial_mcast
    flow_controlled_requests: ClassVar[frozenset] = frozenset(
        {lib.MESSAGE_REQ_CPG_JOIN, lib.MESSAGE_REQ_CPG_LEAVE, lib.MESSAGE_REQ_CPG_MCAST,
         lib.MESSAGE_REQ_CPG_FINALIZE, lib.MESSAGE_REQ_CPG_ZC_ALLOC,
         lib.MESSAGE_REQ_CPG_ZC_FREE, lib.MESSAGE_REQ_CPG_ZC_EXECUTE,
         lib.MESSAGE_REQ_CPG_PARTIAL_MCAST})

    def __init__(self, ctx):
        super().__init__(ctx)
        self.stats = collections.Counter()
        self.procs = ProcessList(int(ctx.options.get("processes_max", 1 << 20)))
        self.sync = CpgSync(ctx.nodeid)
        self.notify = Notifier(self)
        self.flow = FlowControl(ctx, self.ipc_max_msg_bytes, ctx.options)
        self.requests = LibRequests(self)
        self._conns: dict[CpgConn, None] = {}          # active (not finalized), in order
        self._by_group: dict[bytes, dict[CpgConn, None]] = {}
        self._next_source_id = 1
        self._pending_leaves: collections.deque = collections.deque()
        self._pending_timer = None
        self._view_known = False          # a sync has activated (here or before a restart)
        self._warned_no_view = False
        self._fence = persist.RestartFence(self)
        self._ev_deliver = lib.DeliverEventPacker()
        self.lane = None

    def fast_lane(self, event_queues):
        if event_queues is None:
            return None
        from .lane import CpgLane     # numba: only engine processes compile it
        self.lane = CpgLane(self, event_queues)
        return self.lane

    # ---- tables -----------------------------------------------------------------------------
    def lib_handlers(self):
        return self.requests.table()

    def exec_handlers(self):
        return {
            xm.MESSAGE_REQ_EXEC_CPG_PROCJOIN: self._exec_procjoin,
            xm.MESSAGE_REQ_EXEC_CPG_PROCLEAVE: self._exec_procleave,
            xm.MESSAGE_REQ_EXEC_CPG_JOINLIST: self._exec_joinlist,
            xm.MESSAGE_REQ_EXEC_CPG_MCAST: self._exec_mcast,
            xm.MESSAGE_REQ_EXEC_CPG_DOWNLIST_OLD: self._exec_downlist_old,
            xm.MESSAGE_REQ_EXEC_CPG_DOWNLIST: self._exec_downlist,
            xm.MESSAGE_REQ_EXEC_CPG_PARTIAL_MCAST: self._exec_partial_mcast,
        }

    # ---- connection records -------------------------------------------------------------------
    def active_conns(self) -> list[CpgConn]:
        return list(self._conns)

    def conns_in_group(self, group: bytes) -> list[CpgConn]:
        return list(self._by_group.get(group, ()))

    def group_conns(self, group: bytes):
        """The group's local connections without a copy (None if none): for a loop
        that changes no group membership, once per delivered message."""
        return self._by_group.get(group)

    def index_group(self, cpd: CpgConn) -> None:
        self._by_group.setdefault(cpd.group, {})[cpd] = None

    def forget_group(self, cpd: CpgConn) -> None:
        members = self._by_group.get(cpd.group)
        if members is not None:
            members.pop(cpd, None)
            if not members:
                del self._by_group[cpd.group]

    def deactivate(self, cpd: CpgConn) -> None:
        """FINALIZE: like cpg.c's list removal — no events, no pid/group clashes."""
        self._conns.pop(cpd, None)
        if cpd.group is not None:
            self.forget_group(cpd)

    def on_connect(self, conn):
        if not self._view_known:
            # Started on an already synchronized node (engine restart): the process list
            # comes only from a sync (joinlists), and the cluster still lists this node's
            # old processes. Serving now would drop every remote message as "Unknown
            # node"; refuse as Corosync does before its first sync (clients retry).
            self.stats["connections_refused_no_view"] += 1
            if not self._warned_no_view:
                self._warned_no_view = True
                self.ctx.warning("CPG engine started on a synchronized node without CPG "
                                 "state: refusing clients (EAGAIN) until the next "
                                 "membership change runs a sync")
            return -errno.EAGAIN
        cpd = CpgConn(conn, self._next_source_id)
        self._next_source_id += 1
        conn.context = cpd
        self._conns[cpd] = None
        if self.flow.active:
            conn.set_flow_control(self.flow.level())
        self.ctx.debug(f"lib_init_fn: conn={cpd.source_id}")
        return True

    def on_disconnect(self, conn) -> None:
        cpd = conn.context
        if not isinstance(cpd, CpgConn):
            return
        self.ctx.debug(f"exit_fn for conn={cpd.source_id}")
        if cpd.state in (CpdState.JOIN_STARTED, CpdState.JOIN_COMPLETED):
            self.send_leave(cpd.group, cpd.pid, CONFCHG_CPG_REASON_PROCDOWN)
        self.deactivate(cpd)
        self.requests.free_conn(cpd)
        self.notify.doomed.pop(cpd, None)
        conn.context = None

    # ---- sending ----------------------------------------------------------------------------
    def send_join(self, group: bytes, pid: int) -> bool:
        if self._fence.pending:
            return False     # the old process's joins/leaves may still be in flight (persist.py)
        return self.ctx.mcast(xm.MESSAGE_REQ_EXEC_CPG_PROCJOIN,
                              xm.pack_procjoin(group, pid, CONFCHG_CPG_REASON_JOIN))

    def send_leave(self, group: bytes, pid: int, reason: int) -> bool:
        """A vanished client's leave. It must not be lost (a ghost would stay in the
        group) and must not be delivered inside a sync: after this node's JOINLIST went
        out, the other nodes would remove the process and then re-add it from that
        joinlist at activation. Corosync gets this from Totem holding new messages until
        the sync ends; we hold it here, so it holds whatever the transport does."""
        body = xm.pack_procjoin(group, pid, reason)
        if not self._pending_leaves and not self.ctx.sync_in_progress and \
                self.ctx.mcast(xm.MESSAGE_REQ_EXEC_CPG_PROCLEAVE, body):
            return True
        assert len(self._pending_leaves) < PENDING_LEAVES_MAX, "pending PROCLEAVEs unbounded"
        self._pending_leaves.append(body)
        self.stats["procleave_deferred"] += 1
        self._arm_pending()
        return False

    def _arm_pending(self) -> None:
        if self._pending_timer is None and not self.ctx.sync_in_progress:
            self._pending_timer = self.ctx.timer_add(PENDING_RETRY_MS, self._flush_pending)

    def _flush_pending(self) -> None:
        self._pending_timer = None
        if self.ctx.sync_in_progress:
            return                   # on_sync_completed flushes
        while self._pending_leaves:
            if not self.ctx.mcast(xm.MESSAGE_REQ_EXEC_CPG_PROCLEAVE, self._pending_leaves[0]):
                self._arm_pending()
                return
            self._pending_leaves.popleft()

    # ---- exec handlers (total order) ----------------------------------------------------------
    def _exec_procjoin(self, sender: int, body) -> None:
        msg = xm.unpack_procjoin(body)
        self.ctx.debug(f"got procjoin message from cluster node {sender} for pid {msg.pid}")
        self.proc_join(msg.group, sender, msg.pid)
        self.notify.reap()

    def _exec_procleave(self, sender: int, body) -> None:
        msg = xm.unpack_procjoin(body)
        self.ctx.debug(f"got procleave message from cluster node {sender} for pid {msg.pid}")
        self.proc_leave(msg.group, sender, msg.pid, msg.reason)
        self.notify.reap()

    def proc_join(self, group: bytes, nodeid: int, pid: int) -> None:
        if self.procs.contains(group, nodeid, pid):
            return
        if not self.procs.add(group, nodeid, pid):
            self.stats["processes_refused"] += 1
            self.ctx.warning(f"process list full ({self.procs.max_entries}): join of pid "
                             f"{pid} on node {nodeid} ignored")
            return
        self.notify.confchg(group, [(nodeid, pid, CONFCHG_CPG_REASON_JOIN)], [])

    def proc_leave(self, group: bytes, nodeid: int, pid: int, reason: int) -> None:
        # cpg.c notifies even when the process is unknown, then removes it if present
        self.notify.confchg(group, [], [(nodeid, pid, reason)])
        self.procs.remove(group, nodeid, pid)

    def _exec_joinlist(self, sender: int, body) -> None:
        entries = xm.unpack_joinlist(body)
        self.ctx.debug(f"got joinlist message from node {sender}")
        self.sync.on_joinlist(sender, entries)

    def _exec_mcast(self, sender: int, body) -> None:
        group, pid, message = xm.mcast_parts(body)
        self.stats["messages_received"] += 1
        if self.notify.deliver(group, sender, lib.MESSAGE_RES_CPG_DELIVER_CALLBACK,
                               self._ev_deliver, group, sender, pid, message):
            self.stats["messages_delivered"] += 1
        self.notify.reap()

    def _exec_partial_mcast(self, sender: int, body) -> None:
        msg = xm.unpack_partial(body)
        self.stats["fragments_received"] += 1
        self.notify.deliver(msg.group, sender, lib.MESSAGE_RES_CPG_PARTIAL_DELIVER_CALLBACK,
                            lib.ev_partial_deliver, msg.group, msg.msglen, sender, msg.pid,
                            msg.type, msg.fragment)
        self.notify.reap()

    def _exec_downlist_old(self, sender: int, body) -> None:
        if not self._fence.on_delivered(sender, body):
            self.ctx.debug(f"downlist OLD from node {sender}")
        self.notify.reap()

    def _exec_downlist(self, sender: int, body) -> None:
        msg = xm.unpack_downlist(body)
        self.ctx.debug(f"downlist left_list: {len(msg.left_nodes)} received")

    # ---- sync ---------------------------------------------------------------------------------
    def sync_init(self, trans_list, member_list, ring_id: RingId) -> None:
        self.sync.init(trans_list, member_list, ring_id)

    def sync_process(self) -> bool:
        return self.sync.process(self._send_downlist, self._send_joinlist)

    def _send_downlist(self, old_members: int, left_nodes) -> bool:
        return self.ctx.mcast(xm.MESSAGE_REQ_EXEC_CPG_DOWNLIST,
                              xm.pack_downlist(old_members, left_nodes))

    def _send_joinlist(self):
        mine = [(p.group, p.pid) for p in self.procs.of_node(self.ctx.nodeid)]
        if not mine:
            return None        # cpg.c sends nothing when no local process is joined
        return self.ctx.mcast(xm.MESSAGE_REQ_EXEC_CPG_JOINLIST, xm.pack_joinlist(mine))

    def sync_activate(self) -> None:
        self._view_known = True
        self.sync.start_activate()
        self.ctx.debug(f"my downlist: members(old:{len(self.sync.old_members)} "
                       f"left:{len(self.sync.downlist)})")
        for group, left in self.sync.remove_downlisted(self.procs, self.sync.downlist):
            self.notify.confchg(group, [],
                                [(n, p, CONFCHG_CPG_REASON_NODEDOWN) for n, p in left])
        added, refused = self.sync.add_joinlisted(self.procs)
        self.stats["processes_refused"] += refused
        for group, joined in added:
            self.notify.confchg(group, [(n, p, CONFCHG_CPG_REASON_NODEUP) for n, p in joined],
                                [])
        for proc in self.sync.zombies(self.procs):
            self.proc_leave(proc.group, proc.nodeid, proc.pid, CONFCHG_CPG_REASON_PROCDOWN)
        self.sync.finish()
        self.notify.totem_confchg_all()
        self.notify.reap()

    def sync_abort(self) -> None:
        self.sync.finish()

    def on_sync_completed(self, ring_id, members) -> None:
        if self._fence.pending:
            self._fence.send()   # not in a ring when first sent: it may be lost, send again
        self._flush_pending()
        self.flow.check()

    def on_ring_lost(self) -> None:
        """Every other node is gone until the next sync says otherwise (NODEDOWN now)."""
        others = {p.nodeid for p in self.procs if p.nodeid != self.ctx.nodeid}
        for group, left in self.sync.remove_downlisted(self.procs, others):
            self.notify.confchg(group, [],
                                [(n, p, CONFCHG_CPG_REASON_NODEDOWN) for n, p in left])
        self.sync.forget_ring()
        self.notify.reap()
        if self._fence.pending:
            self._fence.send()   # the submit ring of the old ring process may be gone

    # ---- restart without losing state (persist.py) ------------------------------------------
    def snapshot(self) -> bytes:
        return persist.dump(self.procs, self.sync, self._view_known, self._next_source_id)

    def restore(self, data: bytes) -> None:
        self._view_known, self._next_source_id = persist.load(data, self.procs, self.sync)

    def on_restarted(self, lost_connections: bool) -> None:
        self.stats["restarts"] += 1
        self._fence.start()

    # ---- lifecycle ------------------------------------------------------------------------------
    def counters(self) -> dict:
        out = dict(self.stats)
        out.update(groups=self.procs.group_count(), processes=len(self.procs),
                   local_connections=len(self._conns),
                   procleave_pending=len(self._pending_leaves),
                   flow_control_active=int(self.flow.active),
                   flow_control_activations=self.flow.activations,
                   joinlist_overflow=self.sync.joinlist_overflow,
                   restart_fence_pending=int(self._fence.pending),
                   restart_orphans_left=self._fence.orphans_left)
        if self.lane is not None:
            out["fast_lane"] = dict(self.lane.stats)
        for key in ("messages_sent", "messages_received", "messages_delivered",
                    "deliver_events", "confchg_events", "events_dropped",
                    "mcast_dropped_ring_full", "mcast_dropped_not_joined",
                    "unknown_node_drops", "clients_disconnected_slow"):
            out.setdefault(key, 0)
        return out

    def close(self) -> None:
        self._fence.close()
        self.flow.close()
        self.requests.close()
        if self._pending_timer is not None:
            self._pending_timer.cancel()
            self._pending_timer = None
