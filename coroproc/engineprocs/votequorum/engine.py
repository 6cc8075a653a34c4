"""VotequorumEngine: Corosync's votequorum service (id 5, IPC "votequorum").

Owns the glue between the algorithm (state.py, readconfig.py) and the node: exec
messages in and out, the sync callbacks, client notifications (quorum, nodelist,
expected votes, each carrying the tracker's 64-bit context), the quorum service callback
(the `quorum` engine runs in this process: hosted_with = "votequorum"), runtime cmap
keys, the ev_tracking file, reload, and restart snapshots. The quorum service learns
every decision through QuorumEngine.set_quorum, exactly where Corosync calls
quorum_callback.
"""
from __future__ import annotations

import os
import struct

import orjson

from coroproc.engineprocs.api import SERVICE_QUORUM, SERVICE_VOTEQUORUM, Engine, NodeFatal
from coroproc.ipc import votequorum_structs as V

from . import readconfig
from . import settings as S
from . import wire as W
from .requests import ConnState, RequestsMixin
from .runtime_keys import RuntimeKeys
from .state import Node, VoteState

EV_TRACKING_FILE = "ev_tracking"
CANCEL_WFA_KEY = "quorum.cancel_wait_for_all"
_U32 = struct.Struct("=I")       # Corosync writes the barrier in host byte order


def _as_int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


class VotequorumEngine(RequestsMixin, Engine):
    name = "votequorum"
    service_id = SERVICE_VOTEQUORUM
    ipc_service = "votequorum"
    log_subsys = "VOTEQ"
    has_sync = True

    def __init__(self, ctx):
        super().__init__(ctx)
        self.trackers: dict = {}          # conn -> None, in trackstart order
        self.qdevice_reg_conn = None
        self.runtime = RuntimeKeys(ctx)
        self.vq = VoteState(ctx.nodeid, self)
        self.stats = {"notifications": 0, "notifications_dropped": 0}

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        settings = S.read(self.ctx.config, self.ctx.nodeid)
        self.publish("runtime.votequorum.this_node_id", "u32", self.ctx.nodeid)
        error = readconfig.apply(self.vq, settings, runtime=False)
        if error:
            raise NodeFatal(error)
        self.vq.recalculate_quorum(False, False)

    def on_reload(self, config) -> None:
        self._apply_runtime(S.read(config, self.ctx.nodeid))

    def on_config_keys(self, changed: tuple[str, ...], entries: dict) -> None:
        """quorum.* / nodelist.* set by a client (votequorum_refresh_config): a
        cancel_wait_for_all of 1 is set back to 0 and ends every node's wait; any other
        change is read again as at a reload."""
        if CANCEL_WFA_KEY in changed and _as_int(entries.get(CANCEL_WFA_KEY)) >= 1:
            self.runtime.set(CANCEL_WFA_KEY, "u8", 0, force=True)
            if not self.cancel_wait_for_all():
                self.log("error", "Failed to send Cancel WFA message to other nodes")
            return
        state_dir = S.read(self.ctx.config, self.ctx.nodeid).state_dir
        self._apply_runtime(S.from_cmap(entries, self.ctx.nodeid, state_dir))

    def _apply_runtime(self, settings: S.Settings) -> None:
        vq = self.vq
        old_votes, old_expected = vq.us.votes, vq.us.expected_votes
        readconfig.apply(vq, settings, runtime=True)
        vq.send_nodeinfo(vq.us.node_id)
        vq.send_nodeinfo(0)
        if vq.us.votes != old_votes:
            vq.send_reconfigure(W.PARAM_NODE_VOTES, vq.us.node_id, vq.us.votes)
        if vq.us.expected_votes != old_expected:
            vq.send_reconfigure(W.PARAM_EXPECTED_VOTES, vq.us.node_id, vq.us.expected_votes)

    def on_sync_completed(self, ring_id, members) -> None:
        self.runtime.sync_completed()

    def cancel_wait_for_all(self) -> bool:
        """quorum.cancel_wait_for_all = 1 in Corosync: every node drops its WFA wait."""
        return self.vq.send_reconfigure(W.PARAM_CANCEL_WFA, self.vq.us.node_id, 0)

    def close(self) -> None:
        if self.vq.allow_downscale:
            # tell the others we are leaving, so they may lower expected votes
            self.vq.us.flags |= W.NODE_FLAGS_LEAVING
            self.vq.send_nodeinfo(self.vq.us.node_id)
        self.runtime.close()

    def counters(self) -> dict:
        vq = self.vq
        return {**self.stats, **self.runtime.stats, "quorate": int(vq.cluster_is_quorate),
                "quorum": vq.quorum, "trackers": len(self.trackers)}

    # ---- clients ----------------------------------------------------------------------------
    def on_connect(self, conn):
        conn.context = ConnState()
        return True

    def on_disconnect(self, conn) -> None:
        self.trackers.pop(conn, None)
        if conn is self.qdevice_reg_conn:
            self.qdevice_reg_conn = None
        conn.context = None

    # ---- exec -------------------------------------------------------------------------------
    def exec_handlers(self):
        return {W.FN_NODEINFO: self.exec_nodeinfo, W.FN_RECONFIGURE: self.exec_reconfigure,
                W.FN_QDEVICE_REG: self.exec_qdevice_reg,
                W.FN_QDEVICE_RECONFIGURE: self.exec_qdevice_reconfigure}

    def exec_nodeinfo(self, sender, body):
        self.vq.on_nodeinfo(sender, W.unpack_nodeinfo(body))

    def exec_reconfigure(self, sender, body):
        self.vq.on_reconfigure(sender, *W.unpack_reconfigure(body))

    def exec_qdevice_reconfigure(self, sender, body):
        old, new = W.unpack_qdevice_reconfigure(body)
        self.ctx.debug(f"Received qdevice name change req from node {sender} "
                       f"[from: {old} to: {new}]")
        if old == self.vq.qdevice_name:
            self.vq.qdevice_name = new

    def exec_qdevice_reg(self, sender, body):
        op, name = W.unpack_qdevice_reg(body)
        vq = self.vq
        self.ctx.debug(f"Received qdevice op {op} req from node {sender} [{name}]")
        if op == W.QDEVICE_OP_REGISTER:
            if sender != vq.us.node_id:
                if not vq.qdevice_name:
                    vq.qdevice_name = name
                return
            if vq.us.flags & W.NODE_FLAGS_QDEVICE_REGISTERED:
                return
            conn, self.qdevice_reg_conn = self.qdevice_reg_conn, None
            if conn is None:
                # our own re-announcement during sync, or the requester went away
                self.ctx.warning("Unable to determine origin of the qdevice register call!")
                return
            if not vq.qdevice_name:
                vq.qdevice_name = name
            error = 1
            if name == vq.qdevice_name:
                vq.us.flags |= W.NODE_FLAGS_QDEVICE_REGISTERED
                vq.send_nodeinfo(0)
                vq.send_nodeinfo(vq.us.node_id)
            else:
                self.ctx.warning(f"A new qdevice with different name (new: {name} old: "
                                 f"{vq.qdevice_name}) is trying to register!")
                error = 14    # CS_ERR_EXIST
            if not self.ctx.replaying:
                conn.send_response(V.RES_STATUS, error, b"")
        elif op == W.QDEVICE_OP_UNREGISTER:
            if not any(n.state == 1 and n.flags & W.NODE_FLAGS_QDEVICE_REGISTERED
                       for n in vq.nodes.values()):
                vq.qdevice_name = ""

    # ---- sync -------------------------------------------------------------------------------
    def sync_init(self, trans_list, member_list, ring_id) -> None:
        self.vq.sync_init(tuple(member_list), (ring_id.nodeid, ring_id.seq))

    def sync_process(self) -> bool:
        return self.vq.sync_process()

    def sync_activate(self) -> None:
        self.vq.sync_activate()

    def sync_abort(self) -> None:
        pass

    def on_ring_lost(self) -> None:
        # as a total partition: every other node is gone until the next sync
        for node in self.vq.nodes.values():
            if node is not self.vq.us:
                node.state = 2

    # ---- io for VoteState ------------------------------------------------------------------
    def mcast(self, fn: int, body: bytes) -> bool:
        return self.ctx.mcast(fn, body)

    def mcast_room(self) -> int:
        """How many votequorum messages (at most 275 bytes) fit the submit ring now."""
        return self.ctx.mcast_space_bytes() // 512

    def log(self, prio: str, msg: str) -> None:
        self.ctx.log(prio, msg)

    def timer_add(self, delay_ms, callback):
        return self.ctx.timer_add(delay_ms, callback)

    def publish(self, key: str, type_name: str, value: int) -> None:
        self.runtime.set(key, type_name, value)

    def quorum_callback(self, members, quorate: bool, ring) -> None:
        quorum = self.ctx.sibling(SERVICE_QUORUM)
        if quorum is not None:
            quorum.set_quorum(tuple(members), quorate, tuple(ring))

    def _send(self, conn, msg_id: int, body: bytes) -> None:
        if self.ctx.replaying:
            return
        if conn.send_event(msg_id, body):
            self.stats["notifications"] += 1
        else:
            self.stats["notifications_dropped"] += 1

    def notify_quorum(self, conn=None, context: int = 0) -> None:
        vq = self.vq
        nodes = [(n.node_id, n.state) for n in vq.ordered()]
        if vq.us.flags & W.NODE_FLAGS_QDEVICE_REGISTERED:
            nodes.append((0, vq.qdevice.state))
        self.ctx.debug(f"Sending quorum callback, quorate = {int(vq.cluster_is_quorate)}")
        for target in ([conn] if conn is not None else list(self.trackers)):
            ctx_value = context if conn is not None else target.context.context
            self._send(target, V.RES_QUORUM_NOTIFICATION,
                       V.pack_quorum_notification(int(vq.cluster_is_quorate), ctx_value, nodes))

    def notify_nodelist(self, conn=None, context: int = 0) -> None:
        vq = self.vq
        rid_node, rid_seq = vq.quorum_ring
        for target in ([conn] if conn is not None else list(self.trackers)):
            ctx_value = context if conn is not None else target.context.context
            self._send(target, V.RES_NODELIST_NOTIFICATION,
                       V.pack_nodelist_notification(ctx_value, rid_node, rid_seq,
                                                    vq.quorum_members))

    def notify_expected(self) -> None:
        for target in list(self.trackers):
            self._send(target, V.RES_EXPECTEDVOTES_NOTIFICATION,
                       V.pack_expectedvotes_notification(target.context.context,
                                                         self.vq.us.expected_votes))

    def _ev_path(self) -> str:
        return os.path.join(S.read(self.ctx.config, self.ctx.nodeid).state_dir, EV_TRACKING_FILE)

    def load_ev_tracking(self):
        """The stored barrier (0 for a new file), or None when it cannot be created."""
        path = self._ev_path()
        try:
            with open(path, "rb") as f:
                raw = f.read(4)
            if len(raw) == 4:
                return _U32.unpack(raw)[0]
        except OSError:
            pass
        try:
            self._write_ev(path, 0)
        except OSError as exc:
            self.ctx.warning(f"Unable to create {path} file: {exc}")
            return None
        return 0

    def save_ev_tracking(self, value: int) -> None:
        if self.ctx.replaying:
            return
        try:
            self._write_ev(self._ev_path(), value)
        except OSError as exc:
            self.ctx.warning(f"Unable to update ev_tracking_barrier on disk data!!! ({exc})")

    @staticmethod
    def _write_ev(path: str, value: int) -> None:
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o700)
        try:
            os.write(fd, _U32.pack(value))
            os.fdatasync(fd)
        finally:
            os.close(fd)

    # ---- restart ------------------------------------------------------------------------
    SNAPSHOT_FIELDS = ("qdevice_name", "quorum", "cluster_is_quorate", "quorum_members",
                       "previous_quorum_members", "quorum_ring", "sync_in_progress",
                       "two_node", "wait_for_all", "wait_for_all_status",
                       "wait_for_all_autoset", "atb", "initial_atb", "atb_nodes",
                       "lowest_node_id", "highest_node_id", "last_man_standing",
                       "lms_window_ms", "allow_downscale", "ev_barrier", "ev_tracking",
                       "ev_tracking_barrier", "qdevice_can_operate", "qdevice_master_wins",
                       "qdevice_timeout_ms", "qdevice_sync_timeout_ms",
                       "sync_nodeinfo_sent", "sync_wait_for_poll_or_timeout")

    def snapshot(self) -> bytes:
        vq = self.vq
        data = {f: getattr(vq, f) for f in self.SNAPSHOT_FIELDS}
        data["nodes"] = [n.as_list() for n in vq.ordered()]
        data["qdevice"] = vq.qdevice.as_list()
        data["lms_armed"] = vq.lms_timer is not None
        return orjson.dumps(data)

    def restore(self, data: bytes) -> None:
        vq = self.vq
        st = orjson.loads(data)
        for f in self.SNAPSHOT_FIELDS:
            value = st[f]
            setattr(vq, f, tuple(value) if isinstance(value, list) else value)
        vq.nodes = {n[0]: Node(*n) for n in st["nodes"]}
        vq.us = vq.nodes[self.ctx.nodeid]
        vq.qdevice = Node(*st["qdevice"])
        if st["lms_armed"]:
            vq.arm_lms_timer()

    def on_restarted(self, lost_connections: bool) -> None:
        # the device's client was in the old process; it re-registers or times out
        self.runtime.republish()
        vq = self.vq
        if vq.us.flags & W.NODE_FLAGS_QDEVICE_ALIVE and vq.qdevice_timer is None:
            vq.qdevice_timer = self.ctx.timer_add(vq.qdevice_timeout_ms, vq.qdevice_timer_fn)
