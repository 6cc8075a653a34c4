"""Per-connection CPG state (exec/cpg.c's struct cpg_pd) and its transition table.

This file owns the rules of ref §2.6 as data: what cpg_join, cpg_leave and the two mcast
calls answer in each state, which states receive deliveries and confchgs, and the
bounded table of iteration handles a connection may hold.

    state           join            leave            mcast / partial    receives events
    UNJOINED        OK→JOIN_STARTED NOT_EXIST        NOT_EXIST          no
    JOIN_STARTED    EXIST           BUSY             OK                 no
    JOIN_COMPLETED  EXIST           OK→LEAVE_STARTED OK                 yes
    LEAVE_STARTED   BUSY            NOT_EXIST        NOT_EXIST          yes

JOIN_STARTED → JOIN_COMPLETED when the connection's own PROCJOIN is delivered (its join
confchg); LEAVE_STARTED → UNJOINED when its own PROCLEAVE is delivered. (Corosync 3.1.7
means to do the second one but its loop runs over the joined list, so its connections
stay LEAVE_STARTED for ever; we follow the documented intent — see docs/cpg.md.)
"""
from __future__ import annotations

import enum
from typing import Optional

from coroproc.ipc.cserror import (CS_ERR_BUSY, CS_ERR_EXIST, CS_ERR_NOT_EXIST, CS_OK)

# Iteration handles one connection may hold at once: corosync-cpgtool uses one; a client
# that leaks handles gets CS_ERR_NO_MEMORY instead of growing the daemon.
ITERATIONS_PER_CONN_MAX = 16
ZC_MAPPINGS_PER_CONN_MAX = 32


class CpdState(enum.IntEnum):
    # Corosync's enum cpd_state values (they appear in its "can't mcast" log line)
    UNJOINED = 0
    LEAVE_STARTED = 1
    JOIN_STARTED = 2
    JOIN_COMPLETED = 3


JOIN_ANSWER = {
    CpdState.UNJOINED: CS_OK,
    CpdState.JOIN_STARTED: CS_ERR_EXIST,
    CpdState.JOIN_COMPLETED: CS_ERR_EXIST,
    CpdState.LEAVE_STARTED: CS_ERR_BUSY,
}
LEAVE_ANSWER = {
    CpdState.UNJOINED: CS_ERR_NOT_EXIST,
    CpdState.JOIN_STARTED: CS_ERR_BUSY,
    CpdState.JOIN_COMPLETED: CS_OK,
    CpdState.LEAVE_STARTED: CS_ERR_NOT_EXIST,
}
MCAST_ANSWER = {
    CpdState.UNJOINED: CS_ERR_NOT_EXIST,
    CpdState.JOIN_STARTED: CS_OK,
    CpdState.JOIN_COMPLETED: CS_OK,
    CpdState.LEAVE_STARTED: CS_ERR_NOT_EXIST,
}
RECEIVES_EVENTS = frozenset({CpdState.JOIN_COMPLETED, CpdState.LEAVE_STARTED})


class CpgConn:
    """One client connection's CPG state; lives in `conn.context` while connected."""

    __slots__ = ("conn", "source_id", "state", "group", "pid", "flags", "finalized",
                 "initial_totem_conf_sent", "transition_counter",
                 "initial_transition_counter", "iterations", "zc_maps", "disconnecting")

    def __init__(self, conn, source_id: int):
        self.conn = conn
        self.source_id = source_id          # mar_message_source_t.conn: unique per node
        self.state = CpdState.UNJOINED
        self.group: Optional[bytes] = None
        self.pid = 0
        self.flags = 0
        self.finalized = False              # FINALIZE seen: no more events, exit follows
        self.disconnecting = False          # the engine dropped it (notify.py): no more events
        self.initial_totem_conf_sent = False
        self.transition_counter = 0         # confchgs delivered: partial-mcast interrupt check
        self.initial_transition_counter = 0
        self.iterations: dict[int, list] = {}
        self.zc_maps: dict[int, object] = {}

    @property
    def receives_events(self) -> bool:
        return self.state in RECEIVES_EVENTS

    def start_join(self, group: bytes, pid: int, flags: int) -> None:
        assert self.state == CpdState.UNJOINED
        self.state = CpdState.JOIN_STARTED
        self.group, self.pid, self.flags = group, pid, flags

    def start_leave(self) -> None:
        assert self.state == CpdState.JOIN_COMPLETED
        self.state = CpdState.LEAVE_STARTED

    def join_completed(self) -> None:
        self.state = CpdState.JOIN_COMPLETED

    def leave_completed(self) -> None:
        """Own PROCLEAVE delivered: the connection may join again (any group)."""
        self.state = CpdState.UNJOINED
        self.group, self.pid = None, 0

    def __repr__(self):
        return (f"CpgConn({self.state.name}, group={self.group!r}, pid={self.pid}, "
                f"source={self.source_id})")
