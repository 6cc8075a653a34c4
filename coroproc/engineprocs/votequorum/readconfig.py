"""Apply Settings to a VoteState: votequorum_readconfig at start-up and on reload.

At start-up every feature is read and a bad combination is an error (the node does not
start). On reload only votes, expected votes and two_node change; a combination that
would be an error at start-up only disables the quorum device, as Corosync does, and the
node keeps running on its current data.
"""
from __future__ import annotations

from . import settings as S
from . import wire as W


def apply(state, s: S.Settings, runtime: bool):
    """Returns None, or Corosync's error text (start-up only)."""
    log = state.io.log
    expected_votes = s.expected_votes
    qdevice_votes = s.qdevice_votes
    if runtime:
        state.atb = state.initial_atb
        state.io.publish("runtime.votequorum.atb_type", "u32", state.atb)
    if not s.have_nodelist and not expected_votes:
        msg = "configuration error: nodelist or quorum.expected_votes must be configured!"
        if not runtime:
            return msg
        log("crit", msg)
        log("crit", "will continue with current runtime data")
        return None
    if s.have_qdevice:
        state.qdevice_timeout_ms = s.qdevice_timeout_ms
        state.qdevice_sync_timeout_ms = s.qdevice_sync_timeout_ms
        state.set_qdevice_can_operate(True)
    two_node = s.two_node
    if two_node and s.have_qdevice:
        msg = "configuration error: two_node and quorum device cannot be configured at the same time!"
        if not runtime:
            return msg
        log("crit", msg)
        if state.us.flags & W.NODE_FLAGS_QDEVICE_REGISTERED:
            log("crit", "quorum device is registered, disabling two_node")
            two_node = False
        else:
            log("crit", "quorum device is not registered, allowing two_node")
            state.set_qdevice_can_operate(False)
    if not runtime:
        error = _startup_features(state, s)
        if error:
            return error
    if state.wait_for_all_autoset:
        state.wait_for_all = two_node
    if two_node and state.atb != S.ATB_NONE:
        log("crit", "two_node and auto_tie_breaker are both specified but are not compatible.")
        log("crit", "two_node has been disabled, please fix your corosync.conf")
        two_node = False
    state.two_node = two_node
    if state.atb != S.ATB_NONE and s.node_expected_votes % 2 and not state.wait_for_all:
        if state.last_man_standing:
            return ("configuration error: auto_tie_breaker & last_man_standing not available "
                    "in odd sized cluster")
        log("crit", "auto_tie_breaker is set and the cluster has an odd number of nodes.")
        log("crit", "wait_for_all needs to be set for this configuration but it is missing")
        log("crit", "Therefore auto_tie_breaker has been disabled. Please fix your corosync.conf")
        state.atb = S.ATB_NONE
        state.io.publish("runtime.votequorum.atb_type", "u32", state.atb)
    error = _qdevice_rules(state, s, runtime)
    if error:
        return error
    if (s.have_qdevice and qdevice_votes == S.QDEVICE_VOTES_UNSET and not expected_votes
            and s.have_nodelist and s.node_count == s.node_expected_votes):
        qdevice_votes = s.node_expected_votes - 1
        node_expected = s.node_expected_votes + qdevice_votes
    else:
        node_expected = s.node_expected_votes
    if state.ev_tracking:
        expected_votes = state.ev_tracking_barrier
    if s.have_nodelist:
        state.us.votes = s.node_votes
        state.us.expected_votes = node_expected
    else:
        state.us.votes = s.node_votes
    if expected_votes:
        state.us.expected_votes = expected_votes
    if not s.have_qdevice:
        state.qdevice.votes = 0
    if qdevice_votes != S.QDEVICE_VOTES_UNSET:
        state.qdevice.votes = qdevice_votes
    state._set_ev_barrier(state.us.expected_votes)
    state.io.publish("runtime.votequorum.two_node", "u8", int(state.two_node))
    if state.wait_for_all:
        if not runtime:
            state._set_wfa_status(True)
    elif state.wait_for_all_autoset and state.wait_for_all_status:
        state._set_wfa_status(False)
    return None


def _startup_features(state, s: S.Settings):
    state.allow_downscale = s.allow_downscale
    state.wait_for_all = s.wait_for_all
    state.wait_for_all_autoset = not s.wait_for_all_set
    state.last_man_standing = s.last_man_standing
    state.lms_window_ms = s.last_man_standing_window_ms
    state.ev_tracking = s.expected_votes_tracking
    if s.auto_tie_breaker:
        state.atb, state.atb_nodes = S.ATB_LOWEST, ()
        if s.auto_tie_breaker_node is not None:
            state.atb, state.atb_nodes = S.parse_atb(s.auto_tie_breaker_node)
            if state.atb == S.ATB_NONE:
                state.io.log("warning", "auto_tie_breaker_nodes is not valid. It must be "
                             "'lowest', 'highest' or a space-separated list of node IDs. "
                             "auto_tie_breaker is disabled")
    else:
        state.atb = S.ATB_NONE
        if s.auto_tie_breaker_node is not None:
            state.io.log("warning", "auto_tie_breaker_node: is meaningless if "
                                    "auto_tie_breaker is set to 0")
    state.io.publish("runtime.votequorum.atb_type", "u32", state.atb)
    state.initial_atb = state.atb
    if state.allow_downscale:
        state.ev_tracking = True      # allow_downscale requires ev_tracking
    if state.ev_tracking:
        barrier = state.io.load_ev_tracking()
        if barrier is None:
            return "Unable to load ev_tracking file!"
        state._set_ev_tracking_barrier(barrier)
    return None


def _qdevice_rules(state, s: S.Settings, runtime: bool):
    """Rules that refuse a start, or on reload only disable the quorum device."""
    if not s.have_qdevice:
        return None
    rules = [
        (state.last_man_standing,
         "configuration error: quorum.device is not compatible with last_man_standing"),
        (state.atb != S.ATB_NONE,
         "configuration error: quorum.device is not compatible with auto_tie_breaker"),
        (state.allow_downscale,
         "configuration error: quorum.device is not compatible with allow_downscale"),
        (bool(s.expected_votes) and s.qdevice_votes == S.QDEVICE_VOTES_UNSET,
         "configuration error: quorum.device.votes must be specified when "
         "quorum.expected_votes is set"),
        (s.qdevice_votes == S.QDEVICE_VOTES_UNSET and s.have_nodelist
         and s.node_count != s.node_expected_votes,
         "configuration error: quorum.device.votes must be specified when not all nodes "
         "votes 1"),
        (s.qdevice_votes > 0 and bool(s.expected_votes)
         and s.expected_votes - s.qdevice_votes < 2,
         "configuration error: quorum.device.votes is too high or expected_votes is too low"),
    ]
    for broken, msg in rules:
        if broken:
            if not runtime:
                return msg
            state.io.log("crit", msg)
            state.io.log("crit", "disabling quorum device operations")
            state.set_qdevice_can_operate(False)
    return None
