"""libvotequorum requests: getinfo, setexpected, setvotes, tracking and the quorum device.

Each handler answers as exec/votequorum.c's message_handler_req_lib_votequorum_* does,
error codes included; none is flow-controlled (Corosync serves votequorum during sync).
A quorum device registration is answered later, when this node's own QDEVICE_REG
message comes back in the total order (the reply is deferred, as in Corosync).
"""
from __future__ import annotations

from coroproc.ipc import votequorum_structs as V
from coroproc.ipc.cserror import (CS_ERR_ACCESS, CS_ERR_EXIST, CS_ERR_INVALID_PARAM,
                                  CS_ERR_MESSAGE_ERROR, CS_ERR_NAME_NOT_FOUND,
                                  CS_ERR_NO_RESOURCES, CS_ERR_NOT_EXIST, CS_ERR_TRY_AGAIN,
                                  CS_OK, CS_TRACK_CHANGES, CS_TRACK_CHANGES_ONLY,
                                  CS_TRACK_CURRENT)

from . import settings as S
from . import wire as W
from .state import MEMBER, QDEVICE_NODEID

QDEVICE_FLAGS = (W.NODE_FLAGS_QDEVICE_REGISTERED | W.NODE_FLAGS_QDEVICE_ALIVE
                 | W.NODE_FLAGS_QDEVICE_CAST_VOTE | W.NODE_FLAGS_QDEVICE_MASTER_WINS)


class ConnState:
    __slots__ = ("tracking", "context", "flags")

    def __init__(self):
        self.tracking = False
        self.context = 0
        self.flags = 0


def status(error: int):
    return (V.RES_STATUS, error, b"")


class RequestsMixin:
    """Lib handlers of VotequorumEngine (self.vq is the VoteState)."""

    def lib_handlers(self):
        return {V.REQ_GETINFO: self.lib_getinfo, V.REQ_SETEXPECTED: self.lib_setexpected,
                V.REQ_SETVOTES: self.lib_setvotes, V.REQ_TRACKSTART: self.lib_trackstart,
                V.REQ_TRACKSTOP: self.lib_trackstop,
                V.REQ_QDEVICE_REGISTER: self.lib_qdevice_register,
                V.REQ_QDEVICE_UNREGISTER: self.lib_qdevice_unregister,
                V.REQ_QDEVICE_UPDATE: self.lib_qdevice_update,
                V.REQ_QDEVICE_POLL: self.lib_qdevice_poll,
                V.REQ_QDEVICE_MASTER_WINS: self.lib_qdevice_master_wins}

    def info_for(self, nodeid: int):
        """votequorum_info for a node (0 = this node), or None (CS_ERR_NOT_EXIST)."""
        vq = self.vq
        node = vq.find(vq.us.node_id if nodeid == QDEVICE_NODEID else nodeid)
        if node is None:
            return None
        highest = total = 0
        for n in vq.nodes.values():
            if n.state == MEMBER:
                highest = max(highest, n.expected_votes)
                total += n.votes
        if node.flags & W.NODE_FLAGS_QDEVICE_CAST_VOTE:
            total += vq.qdevice.votes
        flags = ((V.INFO_TWONODE if vq.two_node else 0)
                 | (V.INFO_QUORATE if vq.cluster_is_quorate else 0)
                 | (V.INFO_WAIT_FOR_ALL if vq.wait_for_all else 0)
                 | (V.INFO_LAST_MAN_STANDING if vq.last_man_standing else 0)
                 | (V.INFO_AUTO_TIE_BREAKER if vq.atb != S.ATB_NONE else 0)
                 | (V.INFO_ALLOW_DOWNSCALE if vq.allow_downscale else 0))
        # node flags 16/32/64/128 map onto info flags 64/128/256/512
        flags |= (node.flags & QDEVICE_FLAGS) << 2
        return V.Info(node.node_id, node.state, node.votes, node.expected_votes, highest,
                      total, vq.quorum, flags, vq.qdevice.votes, vq.qdevice_name)

    def lib_getinfo(self, conn, body):
        info = self.info_for(V.unpack_req_getinfo(body))
        if info is None:
            return (V.RES_GETINFO, CS_ERR_NOT_EXIST, bytes(V._GETINFO_RES.size))
        return (V.RES_GETINFO, CS_OK, V.pack_res_getinfo(info))

    def lib_setexpected(self, conn, body):
        expected = V.unpack_req_setexpected(body)
        vq = self.vq
        saved, vq.allow_downscale = vq.allow_downscale, False
        newquorum, total = vq.calculate_quorum(True, expected)
        vq.allow_downscale = saved
        if expected < total or (vq.cluster_is_quorate and newquorum > total):
            return status(CS_ERR_INVALID_PARAM)
        vq.update_node_expected_votes(expected)
        if not vq.send_reconfigure(W.PARAM_EXPECTED_VOTES, vq.us.node_id, expected):
            return status(CS_ERR_NO_RESOURCES)
        return status(CS_OK)

    def lib_setvotes(self, conn, body):
        votes, nodeid = V.unpack_req_setvotes(body)
        vq = self.vq
        node = vq.find(nodeid)
        if node is None:
            return status(CS_ERR_NAME_NOT_FOUND)
        saved, node.votes = node.votes, votes
        newquorum, total = vq.calculate_quorum(True, 0)
        if newquorum < total // 2 or newquorum > total:
            node.votes = saved
            return status(CS_ERR_INVALID_PARAM)
        # Corosync leaves the tentative value in place until the RECONFIGURE comes back
        if not vq.send_reconfigure(W.PARAM_NODE_VOTES, nodeid, votes):
            return status(CS_ERR_NO_RESOURCES)
        return status(CS_OK)

    def lib_trackstart(self, conn, body):
        context, flags = V.unpack_req_trackstart(body)
        cs: ConnState = conn.context
        if flags & (CS_TRACK_CURRENT | CS_TRACK_CHANGES):
            self.notify_nodelist(conn, context)
            self.notify_quorum(conn, context)
        if cs.tracking:
            return status(CS_ERR_EXIST)
        if flags & (CS_TRACK_CHANGES | CS_TRACK_CHANGES_ONLY):
            cs.tracking, cs.context, cs.flags = True, context, flags
            self.trackers[conn] = None
        return status(CS_OK)

    def lib_trackstop(self, conn, body):
        cs: ConnState = conn.context
        if not cs.tracking:
            return status(CS_ERR_NOT_EXIST)
        cs.tracking = False
        self.trackers.pop(conn, None)
        return status(CS_OK)

    # ---- quorum device ------------------------------------------------------------------
    def lib_qdevice_register(self, conn, body):
        name = V.unpack_req_qdevice_name(body)
        vq = self.vq
        if not vq.qdevice_can_operate:
            self.ctx.info("Registration of quorum device is disabled by incorrect "
                          "corosync.conf. See logs for more information")
            return status(CS_ERR_ACCESS)
        if vq.us.flags & W.NODE_FLAGS_QDEVICE_REGISTERED:
            if name == vq.qdevice_name:
                return status(CS_OK)
            self.ctx.warning(f"A new qdevice with different name (new: {name} old: "
                             f"{vq.qdevice_name}) is trying to re-register!")
            return status(CS_ERR_EXIST)
        if self.qdevice_reg_conn is not None:
            self.ctx.warning("Registration request already in progress")
            return status(CS_ERR_TRY_AGAIN)
        if not self.ctx.mcast(W.FN_QDEVICE_REG, W.pack_qdevice_reg(W.QDEVICE_OP_REGISTER, name)):
            self.ctx.warning("Unable to send qdevice registration request to cluster")
            return status(CS_ERR_TRY_AGAIN)
        self.qdevice_reg_conn = conn
        return None     # answered when our QDEVICE_REG comes back (exec_qdevice_reg)

    def lib_qdevice_unregister(self, conn, body):
        name = V.unpack_req_qdevice_name(body)
        vq = self.vq
        if not vq.us.flags & W.NODE_FLAGS_QDEVICE_REGISTERED:
            return status(CS_ERR_NOT_EXIST)
        if name != vq.qdevice_name:
            return status(CS_ERR_INVALID_PARAM)
        vq._cancel_qdevice_timer()
        vq.sync_wait_for_poll_or_timeout = False
        vq.us.flags &= ~QDEVICE_FLAGS
        vq.send_nodeinfo(vq.us.node_id)
        self.ctx.mcast(W.FN_QDEVICE_REG, W.pack_qdevice_reg(W.QDEVICE_OP_UNREGISTER, name))
        return status(CS_OK)

    def lib_qdevice_update(self, conn, body):
        old, new = V.unpack_req_qdevice_update(body)
        vq = self.vq
        if not vq.us.flags & W.NODE_FLAGS_QDEVICE_REGISTERED:
            return status(CS_ERR_NOT_EXIST)
        if old != vq.qdevice_name:
            return status(CS_ERR_INVALID_PARAM)
        self.ctx.mcast(W.FN_QDEVICE_RECONFIGURE, W.pack_qdevice_reconfigure(old, new))
        return status(CS_OK)

    def lib_qdevice_poll(self, conn, body):
        poll = V.unpack_req_qdevice_poll(body)
        vq = self.vq
        if not vq.qdevice_can_operate:
            return status(CS_ERR_ACCESS)
        if not vq.us.flags & W.NODE_FLAGS_QDEVICE_REGISTERED:
            return status(CS_ERR_NOT_EXIST)
        if (poll.ring_nodeid, poll.ring_seq) != tuple(vq.quorum_ring):
            self.ctx.debug(f"Received poll ring id ({poll.ring_nodeid}.{poll.ring_seq:x}) != "
                           f"last sync ring id ({vq.quorum_ring[0]}.{vq.quorum_ring[1]:x}). "
                           f"Ignoring poll call.")
            return status(CS_ERR_MESSAGE_ERROR)
        if poll.name != vq.qdevice_name:
            return status(CS_ERR_INVALID_PARAM)
        vq._cancel_qdevice_timer()
        old_flags = vq.us.flags
        vq.us.flags |= W.NODE_FLAGS_QDEVICE_ALIVE
        if poll.cast_vote:
            vq.us.flags |= W.NODE_FLAGS_QDEVICE_CAST_VOTE
        else:
            vq.us.flags &= ~W.NODE_FLAGS_QDEVICE_CAST_VOTE
        if vq.us.flags != old_flags:
            vq.send_nodeinfo(vq.us.node_id)
        vq.qdevice_timer = self.ctx.timer_add(vq.qdevice_timeout_ms, vq.qdevice_timer_fn)
        vq.sync_wait_for_poll_or_timeout = False
        return status(CS_OK)

    def lib_qdevice_master_wins(self, conn, body):
        name, allow = V.unpack_req_qdevice_master_wins(body)
        vq = self.vq
        old_flags = vq.us.flags
        if not vq.qdevice_can_operate:
            return status(CS_ERR_ACCESS)
        if not vq.us.flags & W.NODE_FLAGS_QDEVICE_REGISTERED:
            return status(CS_ERR_NOT_EXIST)
        if name != vq.qdevice_name:
            return status(CS_ERR_INVALID_PARAM)
        if allow:
            vq.us.flags |= W.NODE_FLAGS_QDEVICE_MASTER_WINS
        else:
            vq.us.flags &= ~W.NODE_FLAGS_QDEVICE_MASTER_WINS
        if vq.us.flags != old_flags:
            vq.send_nodeinfo(vq.us.node_id)
        vq.set_qdevice_master_wins(bool(allow))
        return status(CS_OK)
