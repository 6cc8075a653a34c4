"""The CPG engine's view of the lib IPC structs: ids and codecs from coroproc.ipc.cpg_structs.

This file owns nothing of the layouts (coroproc/ipc/cpg_structs.py does); it names what
the engine uses and adds the two things only a server needs: the join name-length peek
(Corosync answers CS_ERR_NAME_TOO_LONG, where the codec would reject the body) and
RingId conversion for the totem confchg.
"""
from __future__ import annotations

import struct

from coroproc.ipc import cpg_structs as cs

MESSAGE_REQ_CPG_JOIN = cs.REQ_JOIN
MESSAGE_REQ_CPG_LEAVE = cs.REQ_LEAVE
MESSAGE_REQ_CPG_MCAST = cs.REQ_MCAST
MESSAGE_REQ_CPG_MEMBERSHIP = cs.REQ_MEMBERSHIP
MESSAGE_REQ_CPG_LOCAL_GET = cs.REQ_LOCAL_GET
MESSAGE_REQ_CPG_ITERATIONINITIALIZE = cs.REQ_ITERATIONINITIALIZE
MESSAGE_REQ_CPG_ITERATIONNEXT = cs.REQ_ITERATIONNEXT
MESSAGE_REQ_CPG_ITERATIONFINALIZE = cs.REQ_ITERATIONFINALIZE
MESSAGE_REQ_CPG_FINALIZE = cs.REQ_FINALIZE
MESSAGE_REQ_CPG_ZC_ALLOC = cs.REQ_ZC_ALLOC
MESSAGE_REQ_CPG_ZC_FREE = cs.REQ_ZC_FREE
MESSAGE_REQ_CPG_ZC_EXECUTE = cs.REQ_ZC_EXECUTE
MESSAGE_REQ_CPG_PARTIAL_MCAST = cs.REQ_PARTIAL_MCAST

MESSAGE_RES_CPG_JOIN = cs.RES_JOIN
MESSAGE_RES_CPG_LEAVE = cs.RES_LEAVE
MESSAGE_RES_CPG_MCAST = cs.RES_MCAST
MESSAGE_RES_CPG_MEMBERSHIP = cs.RES_MEMBERSHIP
MESSAGE_RES_CPG_CONFCHG_CALLBACK = cs.RES_CONFCHG_CALLBACK
MESSAGE_RES_CPG_DELIVER_CALLBACK = cs.RES_DELIVER_CALLBACK
MESSAGE_RES_CPG_LOCAL_GET = cs.RES_LOCAL_GET
MESSAGE_RES_CPG_ITERATIONINITIALIZE = cs.RES_ITERATIONINITIALIZE
MESSAGE_RES_CPG_ITERATIONNEXT = cs.RES_ITERATIONNEXT
MESSAGE_RES_CPG_ITERATIONFINALIZE = cs.RES_ITERATIONFINALIZE
MESSAGE_RES_CPG_FINALIZE = cs.RES_FINALIZE
MESSAGE_RES_CPG_TOTEM_CONFCHG_CALLBACK = cs.RES_TOTEM_CONFCHG_CALLBACK
MESSAGE_RES_CPG_PARTIAL_DELIVER_CALLBACK = cs.RES_PARTIAL_DELIVER_CALLBACK
MESSAGE_RES_CPG_PARTIAL_SEND = cs.RES_PARTIAL_SEND

_NAME_LENGTH = struct.Struct("<I")
JOIN_BODY_BYTES = cs.NAME_BYTES + 16        # group_name, pid, flags


def req_join(body):
    """(group, pid, flags, name_too_long); a too-long name leaves group None."""
    if len(body) == JOIN_BODY_BYTES and \
            _NAME_LENGTH.unpack_from(body, 0)[0] > cs.CPG_MAX_NAME_LENGTH:
        return None, 0, 0, True
    group, pid, flags = cs.unpack_req_join(body)
    return group, pid, flags, False


req_leave = cs.unpack_req_leave
req_mcast = cs.unpack_req_mcast
req_partial_mcast = cs.unpack_req_partial_mcast
req_membership = cs.unpack_req_membership_get


def req_iteration_initialize(body):
    """(group, iteration_type)"""
    iteration_type, group = cs.unpack_req_iterationinitialize(body)
    return group, iteration_type


def req_iteration_handle(body, struct_name: str) -> int:
    if struct_name == "req_lib_cpg_iterationnext":
        return cs.unpack_req_iterationnext(body)
    return cs.unpack_req_iterationfinalize(body)


res_membership = cs.pack_res_membership
res_local_get = cs.pack_res_local_get
res_iteration_initialize = cs.pack_res_iterationinitialize
res_iteration_next = cs.pack_res_iterationnext
ev_confchg = cs.pack_confchg_event
DeliverEventPacker = cs.DeliverEventPacker


def ev_partial_deliver(group, msglen, nodeid, pid, frag_type, fragment) -> bytes:
    return cs.pack_partial_deliver_event(group, msglen, nodeid, pid, frag_type, fragment)


def ev_totem_confchg(ring_id, members) -> bytes:
    return cs.pack_totem_confchg_event((ring_id.nodeid, ring_id.seq), members)
