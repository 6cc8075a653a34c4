"""The votequorum algorithm: the node table, the quorum formula and every feature rule.

This file owns what exec/votequorum.c (Corosync 3.1.7) decides, in the same order, so
that a coroproc node and a Corosync node fed the same ordered messages reach the same
quorum: calculate_quorum (OpenVMS formula, two_node, allow_downscale), are_we_quorate
(wait_for_all, auto_tie_breaker lowest/highest/list, qdevice master_wins),
recalculate_quorum (expected votes only grow, ev_tracking barrier), the NODEINFO and
RECONFIGURE handlers, sync init/process/activate (last_man_standing timer, qdevice poll
wait) and readconfig (startup and reload).

It performs no I/O: everything leaving it goes through `io` (engine.py) — multicasts,
the quorum service callback, client notifications, cmap runtime keys, logs, timers and
the ev_tracking file — so the same code runs in the engine process and in simbus.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import settings as S
from . import wire as W

MEMBER, DEAD, LEAVING = 1, 2, 3
QDEVICE_NODEID = 0


@dataclass
class Node:
    node_id: int
    state: int = DEAD
    votes: int = 0
    expected_votes: int = 0
    flags: int = 0

    def as_list(self) -> list:
        return [self.node_id, self.state, self.votes, self.expected_votes, self.flags]


class VoteState:
    def __init__(self, nodeid: int, io):
        self.io = io
        self.us = Node(nodeid, MEMBER, 1, 0, W.NODE_FLAGS_FIRST)
        self.qdevice = Node(QDEVICE_NODEID, DEAD, 0, 0, 0)
        self.nodes: dict[int, Node] = {nodeid: self.us}   # cluster_members_list (no qdevice)
        self.qdevice_name = ""
        self.quorum = 0
        self.cluster_is_quorate = False
        self.quorum_members: tuple[int, ...] = ()
        self.previous_quorum_members: tuple[int, ...] = ()
        self.quorum_ring = (0, 0)                 # (rep nodeid, seq) of the last sync
        self.sync_in_progress = False
        # features (readconfig)
        self.two_node = False
        self.wait_for_all = False
        self.wait_for_all_status = False
        self.wait_for_all_autoset = False
        self.atb = S.ATB_NONE
        self.initial_atb = S.ATB_NONE
        self.atb_nodes: tuple[int, ...] = ()
        self.lowest_node_id = -1
        self.highest_node_id = -1
        self.last_man_standing = False
        self.lms_window_ms = S.DEFAULT_LMS_WINDOW_MS
        self.allow_downscale = False
        self.ev_barrier = 0
        self.ev_tracking = False
        self.ev_tracking_barrier = 0
        self.qdevice_can_operate = True
        self.qdevice_master_wins = False
        self.qdevice_timeout_ms = S.DEFAULT_QDEVICE_TIMEOUT_MS
        self.qdevice_sync_timeout_ms = S.DEFAULT_QDEVICE_SYNC_TIMEOUT_MS
        self.lms_timer = None
        self.qdevice_timer = None
        self.sync_nodeinfo_sent = False
        self.sync_wait_for_poll_or_timeout = False

    # ---- small helpers ------------------------------------------------------------------
    def ordered(self) -> list[Node]:
        return [self.nodes[k] for k in sorted(self.nodes)]

    def find(self, nodeid: int):
        if nodeid == QDEVICE_NODEID:
            return self.qdevice
        return self.nodes.get(nodeid)

    def _set_wfa_status(self, status: bool) -> None:
        self.wait_for_all_status = status
        if status:
            self.us.flags |= W.NODE_FLAGS_WFASTATUS
        else:
            self.us.flags &= ~W.NODE_FLAGS_WFASTATUS
        self.io.publish("runtime.votequorum.wait_for_all_status", "u8", int(status))

    def _set_ev_barrier(self, value: int) -> None:
        self.ev_barrier = value
        self.io.publish("runtime.votequorum.ev_barrier", "u32", value)

    def _set_ev_tracking_barrier(self, value: int) -> None:
        self.ev_tracking_barrier = value
        self.io.publish("runtime.votequorum.ev_tracking_barrier", "u32", value)
        self.io.save_ev_tracking(value)

    def set_qdevice_can_operate(self, status: bool) -> None:
        self.qdevice_can_operate = status
        self.io.publish("runtime.votequorum.qdevice_can_operate", "u8", int(status))

    def set_qdevice_master_wins(self, allow: bool) -> None:
        self.qdevice_master_wins = allow
        self.io.publish("runtime.votequorum.qdevice_master_wins", "u8", int(allow))

    def _set_atb(self, atb: int) -> None:
        self.atb = atb
        self.io.publish("runtime.votequorum.atb_type", "u32", atb)

    def _member_present(self, nodeid: int) -> bool:
        node = self.nodes.get(nodeid)
        return node is not None and node.state == MEMBER

    def _update_lowest_highest(self) -> None:
        members = [n.node_id for n in self.nodes.values() if n.state == MEMBER]
        self.lowest_node_id = min(members + [self.us.node_id])
        self.highest_node_id = max(members + [self.us.node_id])
        self.io.publish("runtime.votequorum.lowest_node_id", "u32", self.lowest_node_id)
        self.io.publish("runtime.votequorum.highest_node_id", "u32", self.highest_node_id)

    def check_auto_tie_breaker(self) -> bool:
        if self.atb == S.ATB_LOWEST:
            return self._member_present(self.lowest_node_id)
        if self.atb == S.ATB_HIGHEST:
            return self._member_present(self.highest_node_id)
        for i, candidate in enumerate(self.atb_nodes):
            if candidate in self.quorum_members:
                # an earlier list node seen in the previous partition may be in the other
                # half now: we cannot know it is down, so no quorum by tie-break
                return not any(n in self.previous_quorum_members for n in self.atb_nodes[:i])
        return False

    def _qdevice_master_present(self) -> bool:
        want = W.NODE_FLAGS_QDEVICE_MASTER_WINS | W.NODE_FLAGS_QDEVICE_CAST_VOTE
        return any(n.state == MEMBER and n.flags & want == want for n in self.nodes.values())

    # ---- the formula ----------------------------------------------------------------------
    def calculate_quorum(self, allow_decrease: bool, max_expected: int):
        """(new quorum, total votes) — Corosync's calculate_quorum."""
        if self.allow_downscale and allow_decrease and max_expected:
            max_expected = max(self.ev_barrier, max_expected)
        highest_expected = total_votes = total_nodes = 0
        for node in self.nodes.values():
            if node.state == MEMBER:
                highest_expected = max(highest_expected, node.expected_votes)
                total_votes += node.votes
                total_nodes += 1
        if self.us.flags & W.NODE_FLAGS_QDEVICE_CAST_VOTE:
            total_votes += self.qdevice.votes
            total_nodes += 1
        if max_expected > 0:
            highest_expected = max_expected
        newquorum = max((highest_expected + 2) // 2, (total_votes + 2) // 2)
        if not allow_decrease:
            newquorum = max(self.quorum, newquorum)     # quorum never drops by itself
        if self.two_node and total_nodes <= 2:
            newquorum = 1
        return newquorum, total_votes

    def update_node_expected_votes(self, value: int) -> None:
        if value:
            for node in self.nodes.values():
                if node.state == MEMBER:
                    node.expected_votes = value

    def are_we_quorate(self, total_votes: int) -> None:
        if self.wait_for_all and self.wait_for_all_status:
            if total_votes != self.us.expected_votes:
                self.io.log("notice", f"Waiting for all cluster members. Current votes: "
                                      f"{total_votes} expected_votes: {self.us.expected_votes}")
                return
            self._set_wfa_status(False)
        quorate = self.quorum <= total_votes
        if quorate:
            self._update_lowest_highest()
        if (self.atb != S.ATB_NONE and total_votes == self.us.expected_votes // 2
                and len(self.previous_quorum_members) - len(self.quorum_members) < self.quorum
                and self.check_auto_tie_breaker()):
            quorate = True
        if self.qdevice_master_wins and not quorate and self._qdevice_master_present():
            self.io.log("debug", "node is quorate as part of master_wins partition")
            quorate = True
        changed = quorate != self.cluster_is_quorate
        if changed:
            self.io.log("debug", "quorum regained, resuming activity" if quorate
                        else "quorum lost, blocking activity")
        self.cluster_is_quorate = quorate
        if quorate:
            self.us.flags |= W.NODE_FLAGS_QUORATE
        else:
            self.us.flags &= ~W.NODE_FLAGS_QUORATE
        if self.wait_for_all:
            self._set_wfa_status(not quorate)
        if changed and not self.sync_in_progress:
            self.io.quorum_callback(self.quorum_members, quorate, self.quorum_ring)
            self.io.notify_quorum()

    def total_votes_and_members(self) -> tuple[int, int]:
        votes = members = 0
        for node in self.nodes.values():
            if node.state == MEMBER:
                members += 1
                votes += node.votes
        if self.qdevice.votes:
            votes += self.qdevice.votes
            members += 1
        return votes, members

    def recalculate_quorum(self, allow_decrease: bool, by_current_nodes: bool) -> None:
        total_votes, members = self.total_votes_and_members()
        if not by_current_nodes:
            members = 0
        if total_votes > self.us.expected_votes:
            self.us.expected_votes = total_votes
            self.io.notify_expected()
        if self.ev_tracking and self.us.expected_votes > self.ev_tracking_barrier:
            self._set_ev_tracking_barrier(self.us.expected_votes)
        self.quorum, total = self.calculate_quorum(allow_decrease, members)
        self.update_node_expected_votes(members)
        self.are_we_quorate(total)

    # ---- exec messages ----------------------------------------------------------------
    def send_nodeinfo(self, nodeid: int) -> bool:
        node = self.find(nodeid)
        if node is None:
            return False
        if nodeid != QDEVICE_NODEID:
            self.io.log("debug", W.describe_flags(node.flags))
        return self.io.mcast(W.FN_NODEINFO, W.pack_nodeinfo(W.NodeInfo(
            nodeid, node.votes, node.expected_votes, node.flags)))

    def send_reconfigure(self, param: int, nodeid: int, value: int) -> bool:
        return self.io.mcast(W.FN_RECONFIGURE, W.pack_reconfigure(param, nodeid, value))

    def on_nodeinfo(self, sender: int, info: W.NodeInfo) -> None:
        self.io.log("debug", f"got nodeinfo message from cluster node {sender}")
        self.io.log("debug", f"nodeinfo message[{info.nodeid}]: votes: {info.votes}, "
                             f"expected: {info.expected_votes} flags: {info.flags}")
        node = self.find(info.nodeid)
        new_node = node is None
        if new_node:
            node = self.nodes[info.nodeid] = Node(info.nodeid)
            old = (0, 0, DEAD, 0)
        else:
            old = (node.votes, node.expected_votes, node.state, node.flags)
        allow_downgrade = by_node = False
        if info.nodeid == QDEVICE_NODEID:
            sender_node = self.find(sender)
            if (not self.cluster_is_quorate and sender_node is not None
                    and sender_node.flags & W.NODE_FLAGS_QUORATE):
                node.votes = info.votes
            else:
                node.votes = max(node.votes, info.votes)
        else:
            node.flags, node.votes, node.state = info.flags, info.votes, MEMBER
            if node.flags & W.NODE_FLAGS_LEAVING:
                node.state = LEAVING
                allow_downgrade = by_node = True
            if not self.cluster_is_quorate and node.flags & W.NODE_FLAGS_QUORATE:
                allow_downgrade = True
                self.us.expected_votes = info.expected_votes
            if node.flags & W.NODE_FLAGS_QUORATE or self.ev_tracking:
                node.expected_votes = info.expected_votes
            else:
                node.expected_votes = self.us.expected_votes
            if self.last_man_standing and node.votes > 1:
                self.io.log("warning", "Last Man Standing feature is supported only when all"
                                       "cluster nodes votes are set to 1. Disabling LMS.")
                self.last_man_standing = False
                self._cancel_lms_timer()
        if (new_node or info.nodeid == self.us.node_id or node.flags & W.NODE_FLAGS_FIRST
                or old != (node.votes, node.expected_votes, node.state, node.flags)):
            self.recalculate_quorum(allow_downgrade, by_node)
        if (self.wait_for_all and not node.flags & W.NODE_FLAGS_WFASTATUS
                and node.flags & W.NODE_FLAGS_QUORATE):
            self._set_wfa_status(False)

    def on_reconfigure(self, sender: int, param: int, nodeid: int, value: int) -> None:
        self.io.log("debug", f"got reconfigure message from cluster node {sender} for {nodeid}")
        if param == W.PARAM_EXPECTED_VOTES:
            self.update_node_expected_votes(value)
            self.io.notify_expected()
            self._set_ev_barrier(value)
            if self.ev_tracking:
                self.us.expected_votes = max(self.us.expected_votes, self.ev_tracking_barrier)
            self.recalculate_quorum(True, False)
        elif param == W.PARAM_NODE_VOTES:
            node = self.find(nodeid)
            if node is None:
                return
            node.votes = value
            self.recalculate_quorum(True, False)
        elif param == W.PARAM_CANCEL_WFA:
            self._set_wfa_status(False)
            self.io.log("info", f"wait_for_all_status reset by user on node {nodeid}.")
            self.recalculate_quorum(False, False)

    # ---- sync ---------------------------------------------------------------------------
    def sync_init(self, member_list, ring) -> None:
        self.sync_in_progress = True
        self.sync_nodeinfo_sent = False
        self.sync_wait_for_poll_or_timeout = False
        if len(member_list) > 1:
            self.us.flags &= ~W.NODE_FLAGS_FIRST
        left_nodes = False
        for nodeid in self.quorum_members:
            if nodeid not in member_list:
                left_nodes = True
                node = self.find(nodeid)
                if node is not None:
                    node.state = DEAD
        if self.last_man_standing and (
                (len(member_list) >= self.quorum and left_nodes)
                or (len(member_list) <= self.quorum and self.atb != S.ATB_NONE
                    and self._member_present(self.lowest_node_id))):
            self.arm_lms_timer()
        self.previous_quorum_members = self.quorum_members
        self.quorum_members = tuple(member_list)
        self.quorum_ring = tuple(ring)
        want = W.NODE_FLAGS_QDEVICE_REGISTERED | W.NODE_FLAGS_QDEVICE_ALIVE
        if self.us.flags & want == want:
            self._cancel_qdevice_timer()
            self.qdevice_timer = self.io.timer_add(self.qdevice_sync_timeout_ms,
                                                   self.qdevice_timer_fn)
            self.sync_wait_for_poll_or_timeout = True
            self.io.log("info", f"waiting for quorum device {self.qdevice_name} poll (but "
                                f"maximum for {self.qdevice_sync_timeout_ms} ms)")

    def sync_process(self) -> bool:
        if not self.sync_nodeinfo_sent:
            # all or nothing: a full submit ring sends none, the next turn tries again
            needed = 3 if self.qdevice_name else 2
            if self.io.mcast_room() < needed:
                return False
            self.send_nodeinfo(self.us.node_id)
            self.send_nodeinfo(QDEVICE_NODEID)
            if self.qdevice_name:
                self.io.mcast(W.FN_QDEVICE_REG, W.pack_qdevice_reg(W.QDEVICE_OP_REGISTER,
                                                                   self.qdevice_name))
            self.io.notify_nodelist()
            self.sync_nodeinfo_sent = True
        if self.us.flags & W.NODE_FLAGS_QDEVICE_REGISTERED and self.sync_wait_for_poll_or_timeout:
            return False
        return True

    def sync_activate(self) -> None:
        self.recalculate_quorum(False, False)
        self.io.quorum_callback(self.quorum_members, self.cluster_is_quorate, self.quorum_ring)
        self.io.notify_quorum()
        self.sync_in_progress = False

    # ---- timers -------------------------------------------------------------------------
    def arm_lms_timer(self) -> None:
        self._cancel_lms_timer()
        self.lms_timer = self.io.timer_add(self.lms_window_ms, self._lms_fired)

    def _cancel_lms_timer(self) -> None:
        if self.lms_timer is not None:
            self.lms_timer.cancel()
            self.lms_timer = None

    def _lms_fired(self) -> None:
        self.lms_timer = None
        if self.cluster_is_quorate:
            self.recalculate_quorum(True, True)

    def _cancel_qdevice_timer(self) -> None:
        if self.qdevice_timer is not None:
            self.qdevice_timer.cancel()
            self.qdevice_timer = None

    def qdevice_timer_fn(self) -> None:
        self.qdevice_timer = None
        if not self.us.flags & W.NODE_FLAGS_QDEVICE_ALIVE:
            return
        self.us.flags &= ~(W.NODE_FLAGS_QDEVICE_ALIVE | W.NODE_FLAGS_QDEVICE_CAST_VOTE)
        self.io.log("info", f"lost contact with quorum device {self.qdevice_name}")
        self.send_nodeinfo(self.us.node_id)
        self.sync_wait_for_poll_or_timeout = False
