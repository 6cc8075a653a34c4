"""CPG lib requests: what each libcpg call does and answers (exec/cpg.c's lib handlers).

This file owns the answers of JOIN, LEAVE, MCAST (never answered), PARTIAL_MCAST,
MEMBERSHIP, LOCAL_GET, ITERATION{INITIALIZE,NEXT,FINALIZE}, FINALIZE and ZC_*, with the
error codes of ref §2.6. The host already answered CS_ERR_TRY_AGAIN for flow-controlled
requests during a sync or without submit-ring room (core.py) before these run.

Corosync order of JOIN checks, kept because the first failing one decides the code:
(1) another connection already has this (pid, group) → CS_ERR_EXIST; (2) the process
list still holds this node's (pid, group) — its old leave is not delivered yet →
CS_ERR_TRY_AGAIN; (3) name longer than 128 → CS_ERR_NAME_TOO_LONG; (4) the state table.
The pid is the one in the request (the client's getpid()), not the socket credential.
"""
from __future__ import annotations

import itertools

from coroproc.ipc.cserror import (CS_ERR_INTERRUPT, CS_ERR_LIBRARY, CS_ERR_NAME_TOO_LONG,
                                  CS_ERR_NO_MEMORY, CS_ERR_NO_SECTIONS, CS_ERR_TRY_AGAIN,
                                  CS_ERR_EXIST, CS_OK)

from . import exec_msgs as xm
from . import lib_msgs as lib
from .conn_state import (ITERATIONS_PER_CONN_MAX, JOIN_ANSWER, LEAVE_ANSWER, MCAST_ANSWER,
                         CpgConn)
from .notify import CONFCHG_CPG_REASON_LEAVE
from .zerocopy import ZeroCopy

LIBCPG_PARTIAL_FIRST = 1
MEMBERS_REPLY_MAX = xm.PROCESSOR_COUNT_MAX     # res_lib_cpg_membership_get's fixed array


class LibRequests:
    def __init__(self, engine):
        self.engine = engine
        self.ctx = engine.ctx
        self.stats = engine.stats
        self.zc = ZeroCopy(self)
        self._handles = itertools.count(1)

    def table(self) -> dict:
        return {
            lib.MESSAGE_REQ_CPG_JOIN: self.join,
            lib.MESSAGE_REQ_CPG_LEAVE: self.leave,
            lib.MESSAGE_REQ_CPG_MCAST: self.mcast,
            lib.MESSAGE_REQ_CPG_MEMBERSHIP: self.membership,
            lib.MESSAGE_REQ_CPG_LOCAL_GET: self.local_get,
            lib.MESSAGE_REQ_CPG_ITERATIONINITIALIZE: self.iteration_initialize,
            lib.MESSAGE_REQ_CPG_ITERATIONNEXT: self.iteration_next,
            lib.MESSAGE_REQ_CPG_ITERATIONFINALIZE: self.iteration_finalize,
            lib.MESSAGE_REQ_CPG_FINALIZE: self.finalize,
            lib.MESSAGE_REQ_CPG_ZC_ALLOC: self.zc.alloc,
            lib.MESSAGE_REQ_CPG_ZC_FREE: self.zc.free,
            lib.MESSAGE_REQ_CPG_ZC_EXECUTE: self.zc.execute,
            lib.MESSAGE_REQ_CPG_PARTIAL_MCAST: self.partial_mcast,
        }

    # ---- join / leave / finalize --------------------------------------------------------------
    def join(self, conn, body):
        cpd: CpgConn = conn.context
        group, pid, flags, too_long = lib.req_join(body)
        reply = lib.MESSAGE_RES_CPG_JOIN
        if too_long:   # checks (1) and (2) cannot match a name no one may hold
            return (reply, CS_ERR_NAME_TOO_LONG, b"")
        for other in self.engine.active_conns():
            if other.pid == pid and (other.group or b"") == group:
                return (reply, CS_ERR_EXIST, b"")
        if self.engine.procs.contains(group, self.ctx.nodeid, pid):
            return (reply, CS_ERR_TRY_AGAIN, b"")
        error = JOIN_ANSWER[cpd.state]
        if error == CS_OK:
            if not self.engine.send_join(group, pid):
                return (reply, CS_ERR_TRY_AGAIN, b"")   # nothing sent: state unchanged
            cpd.start_join(group, pid, flags)
            self.engine.index_group(cpd)
        return (reply, error, b"")

    def leave(self, conn, body):
        cpd: CpgConn = conn.context
        group, pid = lib.req_leave(body)
        self.ctx.debug(f"got leave request on conn={cpd.source_id}")
        error = LEAVE_ANSWER[cpd.state]
        if error == CS_OK:
            # cpg.c sends the request's pid and group, not the connection's
            if not self.ctx.mcast(xm.MESSAGE_REQ_EXEC_CPG_PROCLEAVE,
                                  xm.pack_procjoin(group, pid, CONFCHG_CPG_REASON_LEAVE)):
                return (lib.MESSAGE_RES_CPG_LEAVE, CS_ERR_TRY_AGAIN, b"")
            cpd.start_leave()
        return (lib.MESSAGE_RES_CPG_LEAVE, error, b"")

    def finalize(self, conn, body):
        cpd: CpgConn = conn.context
        self.ctx.debug(f"cpg finalize for conn={cpd.source_id}")
        cpd.finalized = True
        self.engine.deactivate(cpd)
        return (lib.MESSAGE_RES_CPG_FINALIZE, CS_OK, b"")

    # ---- multicast ----------------------------------------------------------------------------
    def mcast(self, conn, body):
        """No reply, ever: libcpg does not wait for one (cpg.c)."""
        cpd: CpgConn = conn.context
        _guarantee, message = lib.req_mcast(body)
        error = MCAST_ANSWER[cpd.state]
        if error != CS_OK:
            self.stats["mcast_dropped_not_joined"] += 1
            self.ctx.error(f"*** conn={cpd.source_id} can't mcast to group "
                           f"{_printable(cpd.group)} state:{int(cpd.state)}, error:{error}")
            return None
        self.send_mcast(cpd, message)
        return None

    def send_mcast(self, cpd: CpgConn, message) -> bool:
        head = xm.pack_mcast_header(cpd.group, cpd.pid, self.ctx.nodeid, cpd.source_id,
                                    len(message))
        sent = self.ctx.mcast(xm.MESSAGE_REQ_EXEC_CPG_MCAST, head + bytes(message))
        if sent:
            self.stats["messages_sent"] += 1
        else:
            self.stats["mcast_dropped_ring_full"] += 1
            self.ctx.warning(f"mcast of {len(message)} bytes from pid {cpd.pid} dropped: "
                             "submit ring full")
        self.engine.flow.check()
        return sent

    def partial_mcast(self, conn, body):
        cpd: CpgConn = conn.context
        _guarantee, msglen, frag_type, fragment = lib.req_partial_mcast(body)
        self.ctx.debug(f"Sending fragmented message size = {len(fragment)} bytes")
        error = MCAST_ANSWER[cpd.state]
        if frag_type == LIBCPG_PARTIAL_FIRST:
            cpd.initial_transition_counter = cpd.transition_counter
        if cpd.transition_counter != cpd.initial_transition_counter:
            error = CS_ERR_INTERRUPT
        if error == CS_OK:
            head = xm.pack_partial_header(cpd.group, msglen, len(fragment), cpd.pid, frag_type,
                                          self.ctx.nodeid, cpd.source_id)
            if self.ctx.mcast(xm.MESSAGE_REQ_EXEC_CPG_PARTIAL_MCAST, head + bytes(fragment)):
                self.stats["fragments_sent"] += 1
            else:
                self.stats["fragments_try_again"] += 1
                error = CS_ERR_TRY_AGAIN
            self.engine.flow.check()
        else:
            self.stats["fragments_refused"] += 1
            self.ctx.error(f"*** conn={cpd.source_id} can't mcast to group "
                           f"{_printable(cpd.group)} state:{int(cpd.state)}, error:{error}")
        return (lib.MESSAGE_RES_CPG_PARTIAL_SEND, error, b"")

    # ---- queries ------------------------------------------------------------------------------
    def membership(self, conn, body):
        group = lib.req_membership(body)
        members = self.engine.procs.members(group)
        if len(members) > MEMBERS_REPLY_MAX:
            self.ctx.warning(f"group {_printable(group)} has {len(members)} processes; the "
                             f"membership reply holds {MEMBERS_REPLY_MAX}")
            members = members[:MEMBERS_REPLY_MAX]
        return (lib.MESSAGE_RES_CPG_MEMBERSHIP, CS_OK, lib.res_membership(members))

    def local_get(self, conn, body):
        return (lib.MESSAGE_RES_CPG_LOCAL_GET, CS_OK, lib.res_local_get(self.ctx.nodeid))

    def iteration_initialize(self, conn, body):
        cpd: CpgConn = conn.context
        group, iteration_type = lib.req_iteration_initialize(body)
        self.ctx.debug("cpg iteration initialize")
        reply = lib.MESSAGE_RES_CPG_ITERATIONINITIALIZE
        if len(cpd.iterations) >= ITERATIONS_PER_CONN_MAX:
            self.stats["iterations_refused"] += 1
            return (reply, CS_ERR_NO_MEMORY, lib.res_iteration_initialize(0))
        handle = next(self._handles)
        items = self.engine.procs.iteration_snapshot(iteration_type, group)
        cpd.iterations[handle] = [items, 0]
        return (reply, CS_OK, lib.res_iteration_initialize(handle))

    def iteration_next(self, conn, body):
        cpd: CpgConn = conn.context
        handle = lib.req_iteration_handle(body, "req_lib_cpg_iterationnext")
        reply = lib.MESSAGE_RES_CPG_ITERATIONNEXT
        it = cpd.iterations.get(handle)
        if it is None:
            return (reply, CS_ERR_LIBRARY, lib.res_iteration_next(b"", 0, 0))
        items, position = it
        if position >= len(items):
            return (reply, CS_ERR_NO_SECTIONS, lib.res_iteration_next(b"", 0, 0))
        it[1] = position + 1
        proc = items[position]
        return (reply, CS_OK, lib.res_iteration_next(proc.group, proc.nodeid, proc.pid))

    def iteration_finalize(self, conn, body):
        cpd: CpgConn = conn.context
        handle = lib.req_iteration_handle(body, "req_lib_cpg_iterationfinalize")
        error = CS_OK if cpd.iterations.pop(handle, None) is not None else CS_ERR_LIBRARY
        return (lib.MESSAGE_RES_CPG_ITERATIONFINALIZE, error, b"")

    # ---- per-connection cleanup -----------------------------------------------------------------
    def free_conn(self, cpd: CpgConn) -> None:
        cpd.iterations.clear()
        self.zc.free_all(cpd)

    def close(self) -> None:
        for cpd in self.engine.active_conns():
            self.free_conn(cpd)


def _printable(group) -> str:
    """cpg_print_group_name: printable ASCII as is, backslash doubled, the rest as \\xNN."""
    if group is None:
        return ""
    out = []
    for byte in group:
        if byte == 0x5C:
            out.append("\\\\")
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02X}")
    return "".join(out)
