"""CPG library IPC: message ids and pack/unpack for every request, response and event.

This file owns the byte layouts of include/corosync/ipc_cpg.h (Corosync 3.1.7, x86-64),
checked field by field with gcc offsetof against the real header (docs/client.md lists
the table). Both directions exist: the CPG engine unpacks requests and packs responses
and events; coroproc.client.cpg does the opposite. Bodies follow coroproc.ipc.mar's
convention (request body = after the 16-byte header, response/event body = after the
24-byte header). Group names are bytes on the way out (a str is UTF-8 encoded going in).

Quirks kept from Corosync:
* MCAST and PARTIAL_MCAST requests start with a 24-byte *response-type* header, so
  their body begins with 8 bytes of junk (libcpg leaves them uninitialised; we send 0).
* MEMBERSHIP replies are a fixed 9248-byte struct with room for 384 members; Corosync
  leaves each member's `reason` uninitialised (unpack reports whatever is there).
* CONFCHG arrays are members, then left, then joined — while the counts are ordered
  members, joined, left.
* TOTEM_CONFCHG is sized sizeof(struct) + 4n = 48 + 4n with member_list at offset 44,
  so the body carries 4 bytes of padding after the members.
"""

import struct
from typing import NamedTuple

from coroproc.ipc.mar import (
    U32_SLOT,
    U64,
    StructError,
    check_u32,
    check_u64,
    counted_name,
    need,
)

# enum req_cpg_types
REQ_JOIN = 0
REQ_LEAVE = 1
REQ_MCAST = 2
REQ_MEMBERSHIP = 3
REQ_LOCAL_GET = 4
REQ_ITERATIONINITIALIZE = 5
REQ_ITERATIONNEXT = 6
REQ_ITERATIONFINALIZE = 7
REQ_FINALIZE = 8
REQ_ZC_ALLOC = 9
REQ_ZC_FREE = 10
REQ_ZC_EXECUTE = 11
REQ_PARTIAL_MCAST = 12

# enum res_cpg_types
RES_JOIN = 0
RES_LEAVE = 1
RES_MCAST = 2
RES_MEMBERSHIP = 3
RES_CONFCHG_CALLBACK = 4
RES_DELIVER_CALLBACK = 5
RES_FLOW_CONTROL_STATE_SET = 6
RES_LOCAL_GET = 7
RES_FLOWCONTROL_CALLBACK = 8
RES_ITERATIONINITIALIZE = 9
RES_ITERATIONNEXT = 10
RES_ITERATIONFINALIZE = 11
RES_FINALIZE = 12
RES_TOTEM_CONFCHG_CALLBACK = 13
RES_ZC_ALLOC = 14
RES_ZC_FREE = 15
RES_ZC_EXECUTE = 16
RES_PARTIAL_DELIVER_CALLBACK = 17
RES_PARTIAL_SEND = 18

# enum lib_cpg_confchg_reason
REASON_JOIN = 1
REASON_LEAVE = 2
REASON_NODEDOWN = 3
REASON_NODEUP = 4
REASON_PROCDOWN = 5

# enum lib_cpg_partial_types
PARTIAL_FIRST = 1
PARTIAL_CONTINUED = 2
PARTIAL_LAST = 3

# cpg_guarantee_t, cpg_iteration_type_t, model flags, flow-control state
TYPE_UNORDERED, TYPE_FIFO, TYPE_AGREED, TYPE_SAFE = 0, 1, 2, 3
ITERATION_NAME_ONLY, ITERATION_ONE_GROUP, ITERATION_ALL = 1, 2, 3
MODEL_V1_DELIVER_INITIAL_TOTEM_CONF = 1
FLOW_CONTROL_DISABLED, FLOW_CONTROL_ENABLED = 0, 1

CPG_MAX_NAME_LENGTH = 128
CPG_MEMBERS_MAX = 128        # size of libcpg's confchg arrays: more would overflow them
PROCESSOR_COUNT_MAX = 384    # capacity of res_lib_cpg_membership_get
CPG_ZC_PATH_LEN = 128
IPC_REQUEST_SIZE = 8192 * 128
MAX_ATOMIC_MSG_BYTES = IPC_REQUEST_SIZE - 1024   # cpg_max_atomic_msgsize_get()

_pack_name, _unpack_name, NAME_BYTES = counted_name("I", CPG_MAX_NAME_LENGTH, "mar_cpg_name_t")
assert NAME_BYTES == 136

_ADDRESS = struct.Struct("<I4xI4xI4x")            # mar_cpg_address_t, 24 bytes
_MCAST = struct.Struct("<8xI4xI4x")               # junk error slot, guarantee, msglen
_PARTIAL = struct.Struct("<8xI4xI4xI4xI4x")       # + fraglen, type
_DELIVER = struct.Struct("<I4xI4xI4x")            # msglen, nodeid, pid after the name
_PARTIAL_DELIVER = struct.Struct("<I4xI4xI4xI4xI4x")  # msglen fraglen nodeid pid type
_CONFCHG_COUNTS = struct.Struct("<I4xI4xI4x")     # members, joined, left
_TOTEM = struct.Struct("<I4xQI")                  # ring nodeid, ring seq, entries
_ITER_DESC_TAIL = struct.Struct("<II")            # nodeid, pid: no aligned(8) here
_ZC_ALLOC = struct.Struct(f"<Q{CPG_ZC_PATH_LEN}s")
_ZC_FREE = struct.Struct("<QQ")
assert (_ADDRESS.size, _MCAST.size, _PARTIAL.size, _TOTEM.size) == (24, 24, 40, 20)

MEMBERSHIP_BODY_BYTES = 8 + PROCESSOR_COUNT_MAX * _ADDRESS.size  # 9248 - 24


class CpgAddress(NamedTuple):
    """struct cpg_address: one process (reason only meaningful in confchg lists)."""
    nodeid: int
    pid: int
    reason: int = 0


class RingId(NamedTuple):
    nodeid: int
    seq: int


class Deliver(NamedTuple):
    group: bytes
    nodeid: int
    pid: int
    message: bytes


class PartialDeliver(NamedTuple):
    group: bytes
    msglen: int
    nodeid: int
    pid: int
    frag_type: int
    fragment: bytes


class Confchg(NamedTuple):
    group: bytes
    members: list
    left: list
    joined: list


class TotemConfchg(NamedTuple):
    ring_id: RingId
    members: list


class IterationDescription(NamedTuple):
    group: bytes
    nodeid: int
    pid: int


# ---- helpers -------------------------------------------------------------------------

def _u32(view, offset):
    return U32_SLOT.unpack_from(view, offset)[0]


def _u64(view, offset):
    return U64.unpack_from(view, offset)[0]


def _name(view, offset, struct_name):
    return _unpack_name(view, offset, struct_name, "group_name")


def _addresses(view, offset, count, struct_name):
    return [CpgAddress(*_ADDRESS.unpack_from(view, offset + i * _ADDRESS.size))
            for i in range(count)]


def _pack_addresses(addresses, struct_name, field):
    out = []
    for entry in addresses:
        nodeid, pid, reason = (tuple(entry) + (0,))[:3]
        out.append(_ADDRESS.pack(check_u32(nodeid, struct_name, f"{field}.nodeid"),
                                 check_u32(pid, struct_name, f"{field}.pid"),
                                 check_u32(reason, struct_name, f"{field}.reason")))
    return b"".join(out)


def _check_frag_type(frag_type, struct_name):
    if frag_type not in (PARTIAL_FIRST, PARTIAL_CONTINUED, PARTIAL_LAST):
        raise StructError(f"{struct_name}.type={frag_type}: allowed 1 FIRST, 2 CONTINUED, 3 LAST")
    return frag_type


def _trailing(view, offset, length, struct_name, field):
    if len(view) - offset != length:
        raise StructError(f"{struct_name}: {field}={length} but {len(view) - offset} bytes "
                          f"follow the fixed part (they must be equal)")
    return bytes(view[offset:])


def pack_empty() -> bytes:
    """Body of header-only messages (finalize/local_get requests; join, leave, finalize,
    partial_send, iterationfinalize, mcast responses)."""
    return b""


def unpack_empty(body, struct_name: str) -> None:
    need(body, 0, struct_name)


# ---- requests (body after the 16-byte request header) --------------------------------

def pack_req_join(group, pid: int, flags: int = 0) -> bytes:
    s = "req_lib_cpg_join"
    return (_pack_name(group, s, "group_name") + U32_SLOT.pack(check_u32(pid, s, "pid"))
            + U32_SLOT.pack(check_u32(flags, s, "flags")))


def unpack_req_join(body):
    """(group, pid, flags)"""
    v = need(body, NAME_BYTES + 16, "req_lib_cpg_join")
    return _name(v, 0, "req_lib_cpg_join"), _u32(v, NAME_BYTES), _u32(v, NAME_BYTES + 8)


def pack_req_leave(group, pid: int) -> bytes:
    s = "req_lib_cpg_leave"
    return _pack_name(group, s, "group_name") + U32_SLOT.pack(check_u32(pid, s, "pid"))


def unpack_req_leave(body):
    """(group, pid)"""
    v = need(body, NAME_BYTES + 8, "req_lib_cpg_leave")
    return _name(v, 0, "req_lib_cpg_leave"), _u32(v, NAME_BYTES)


def pack_req_mcast(guarantee: int, message) -> bytes:
    s = "req_lib_cpg_mcast"
    message = bytes(message)
    return _MCAST.pack(check_u32(guarantee, s, "guarantee"),
                       check_u32(len(message), s, "msglen")) + message


def unpack_req_mcast(body):
    """(guarantee, message); the body starts with the 8 junk bytes of the 24-byte header."""
    s = "req_lib_cpg_mcast"
    v = need(body, _MCAST.size, s, exact=False)
    guarantee, msglen = _MCAST.unpack_from(v, 0)
    return guarantee, _trailing(v, _MCAST.size, msglen, s, "msglen")


def pack_req_partial_mcast(guarantee: int, msglen: int, frag_type: int, fragment) -> bytes:
    s = "req_lib_cpg_partial_mcast"
    fragment = bytes(fragment)
    if len(fragment) > msglen:
        raise StructError(f"{s}: fraglen={len(fragment)} exceeds msglen={msglen}")
    return _PARTIAL.pack(check_u32(guarantee, s, "guarantee"), check_u32(msglen, s, "msglen"),
                         len(fragment), _check_frag_type(frag_type, s)) + fragment


def unpack_req_partial_mcast(body):
    """(guarantee, msglen, frag_type, fragment)"""
    s = "req_lib_cpg_partial_mcast"
    v = need(body, _PARTIAL.size, s, exact=False)
    guarantee, msglen, fraglen, frag_type = _PARTIAL.unpack_from(v, 0)
    _check_frag_type(frag_type, s)
    if fraglen > msglen:
        raise StructError(f"{s}: fraglen={fraglen} exceeds msglen={msglen}")
    return guarantee, msglen, frag_type, _trailing(v, _PARTIAL.size, fraglen, s, "fraglen")


def pack_req_membership_get(group) -> bytes:
    return _pack_name(group, "req_lib_cpg_membership_get", "group_name")


def unpack_req_membership_get(body) -> bytes:
    v = need(body, NAME_BYTES, "req_lib_cpg_membership_get")
    return _name(v, 0, "req_lib_cpg_membership_get")


def pack_req_local_get() -> bytes:
    return b""


def unpack_req_local_get(body) -> None:
    unpack_empty(body, "req_lib_cpg_local_get")


def pack_req_finalize() -> bytes:
    return b""


def unpack_req_finalize(body) -> None:
    unpack_empty(body, "req_lib_cpg_finalize")


def pack_req_iterationinitialize(iteration_type: int, group=None) -> bytes:
    s = "req_lib_cpg_iterationinitialize"
    if iteration_type not in (ITERATION_NAME_ONLY, ITERATION_ONE_GROUP, ITERATION_ALL):
        raise StructError(f"{s}.iteration_type={iteration_type}: allowed 1 NAME_ONLY, "
                          f"2 ONE_GROUP, 3 ALL")
    name = _pack_name(group if group is not None else b"", s, "group_name")
    return name + U32_SLOT.pack(iteration_type)


def unpack_req_iterationinitialize(body):
    """(iteration_type, group); group is b"" when the client sent none.

    libcpg leaves group_name uninitialised (stack garbage) unless the type is ONE_GROUP,
    and Corosync's daemon reads it only then: so do we."""
    s = "req_lib_cpg_iterationinitialize"
    v = need(body, NAME_BYTES + 8, s)
    iteration_type = _u32(v, NAME_BYTES)
    return iteration_type, (_name(v, 0, s) if iteration_type == ITERATION_ONE_GROUP else b"")


def pack_req_iterationnext(iteration_handle: int) -> bytes:
    return U64.pack(check_u64(iteration_handle, "req_lib_cpg_iterationnext", "iteration_handle"))


def unpack_req_iterationnext(body) -> int:
    return _u64(need(body, 8, "req_lib_cpg_iterationnext"), 0)


def pack_req_iterationfinalize(iteration_handle: int) -> bytes:
    return U64.pack(check_u64(iteration_handle, "req_lib_cpg_iterationfinalize",
                              "iteration_handle"))


def unpack_req_iterationfinalize(body) -> int:
    return _u64(need(body, 8, "req_lib_cpg_iterationfinalize"), 0)


def pack_req_zc_alloc(map_size: int, path) -> bytes:
    """Zero-copy requests are in the protocol but need shared files: engines may answer
    CS_ERR_NOT_SUPPORTED; the layouts are here so they can be parsed and refused."""
    s = "mar_req_coroipcc_zc_alloc_t"
    raw = path.encode() if isinstance(path, str) else bytes(path)
    if len(raw) >= CPG_ZC_PATH_LEN:
        raise StructError(f"{s}.path_to_file: {len(raw)} bytes, at most "
                          f"{CPG_ZC_PATH_LEN - 1} plus NUL allowed")
    return _ZC_ALLOC.pack(check_u64(map_size, s, "map_size"), raw)


def unpack_req_zc_alloc(body):
    """(map_size, path bytes up to the first NUL)"""
    map_size, raw = _ZC_ALLOC.unpack_from(need(body, _ZC_ALLOC.size, "mar_req_coroipcc_zc_alloc_t"))
    return map_size, raw.split(b"\0", 1)[0]


def pack_req_zc_free(map_size: int, server_address: int) -> bytes:
    s = "mar_req_coroipcc_zc_free_t"
    return _ZC_FREE.pack(check_u64(map_size, s, "map_size"),
                         check_u64(server_address, s, "server_address"))


def unpack_req_zc_free(body):
    """(map_size, server_address)"""
    return _ZC_FREE.unpack_from(need(body, _ZC_FREE.size, "mar_req_coroipcc_zc_free_t"))


def pack_req_zc_execute(server_address: int) -> bytes:
    return U64.pack(check_u64(server_address, "mar_req_coroipcc_zc_execute_t", "server_address"))


def unpack_req_zc_execute(body) -> int:
    return _u64(need(body, 8, "mar_req_coroipcc_zc_execute_t"), 0)


# ---- responses (body after the 24-byte response header) ------------------------------

def pack_res_membership(members) -> bytes:
    """The fixed 9248-byte reply (as Corosync sends it): count + 384 address slots."""
    s = "res_lib_cpg_membership_get"
    members = list(members)
    if len(members) > PROCESSOR_COUNT_MAX:
        raise StructError(f"{s}: {len(members)} members, at most {PROCESSOR_COUNT_MAX} fit")
    packed = U32_SLOT.pack(len(members)) + _pack_addresses(members, s, "member_list")
    return packed.ljust(MEMBERSHIP_BODY_BYTES, b"\0")


def unpack_res_membership(body) -> list:
    """[CpgAddress]; accepts the fixed-size reply or one trimmed after the last member."""
    s = "res_lib_cpg_membership_get"
    v = need(body, 8, s, exact=False)
    count = _u32(v, 0)
    if count > PROCESSOR_COUNT_MAX:
        raise StructError(f"{s}.member_count={count}: at most {PROCESSOR_COUNT_MAX}")
    need(v, 8 + count * _ADDRESS.size, s, exact=False)
    if len(v) > MEMBERSHIP_BODY_BYTES:
        raise StructError(f"{s}: body of {len(v)} bytes exceeds the struct's "
                          f"{MEMBERSHIP_BODY_BYTES}")
    return _addresses(v, 8, count, s)


def pack_res_local_get(local_nodeid: int) -> bytes:
    return U32_SLOT.pack(check_u32(local_nodeid, "res_lib_cpg_local_get", "local_nodeid"))


def unpack_res_local_get(body) -> int:
    return _u32(need(body, 8, "res_lib_cpg_local_get"), 0)


def pack_res_iterationinitialize(iteration_handle: int) -> bytes:
    return U64.pack(check_u64(iteration_handle, "res_lib_cpg_iterationinitialize",
                              "iteration_handle"))


def unpack_res_iterationinitialize(body) -> int:
    return _u64(need(body, 8, "res_lib_cpg_iterationinitialize"), 0)


def pack_res_iterationnext(group, nodeid: int, pid: int) -> bytes:
    s = "res_lib_cpg_iterationnext"
    return _pack_name(group, s, "description.group") + _ITER_DESC_TAIL.pack(
        check_u32(nodeid, s, "description.nodeid"), check_u32(pid, s, "description.pid"))


def unpack_res_iterationnext(body) -> IterationDescription:
    s = "res_lib_cpg_iterationnext"
    v = need(body, NAME_BYTES + 8, s)
    nodeid, pid = _ITER_DESC_TAIL.unpack_from(v, NAME_BYTES)
    return IterationDescription(_name(v, 0, s), nodeid, pid)


# ---- events ----------------------------------------------------------------------------

def pack_deliver_event(group, nodeid: int, pid: int, message) -> bytes:
    s = "res_lib_cpg_deliver_callback"
    message = bytes(message)
    return (_pack_name(group, s, "group_name")
            + _DELIVER.pack(check_u32(len(message), s, "msglen"), check_u32(nodeid, s, "nodeid"),
                            check_u32(pid, s, "pid")) + message)


class DeliverEventPacker:
    """pack_deliver_event for a daemon's delivery path, one call per delivered message:
    the packed group names are kept (a bounded few) instead of being made each time."""

    NAMES_KEPT_MAX = 256

    def __init__(self):
        self._names: dict[bytes, bytes] = {}

    def __call__(self, group: bytes, nodeid: int, pid: int, message) -> bytes:
        name = self._names.get(group)
        if name is None:
            name = _pack_name(group, "res_lib_cpg_deliver_callback", "group_name")
            if len(self._names) >= self.NAMES_KEPT_MAX:
                self._names.clear()
            self._names[group] = name
        try:
            tail = _DELIVER.pack(len(message), nodeid, pid)
        except struct.error:
            return pack_deliver_event(group, nodeid, pid, message)   # raises, naming the field
        return b"".join((name, tail, message))


def unpack_deliver_event(body) -> Deliver:
    s = "res_lib_cpg_deliver_callback"
    v = need(body, NAME_BYTES + _DELIVER.size, s, exact=False)
    msglen, nodeid, pid = _DELIVER.unpack_from(v, NAME_BYTES)
    message = _trailing(v, NAME_BYTES + _DELIVER.size, msglen, s, "msglen")
    return Deliver(_name(v, 0, s), nodeid, pid, message)


def pack_partial_deliver_event(group, msglen: int, nodeid: int, pid: int, frag_type: int,
                               fragment) -> bytes:
    s = "res_lib_cpg_partial_deliver_callback"
    fragment = bytes(fragment)
    if len(fragment) > msglen:
        raise StructError(f"{s}: fraglen={len(fragment)} exceeds msglen={msglen}")
    return (_pack_name(group, s, "group_name")
            + _PARTIAL_DELIVER.pack(check_u32(msglen, s, "msglen"), len(fragment),
                                    check_u32(nodeid, s, "nodeid"), check_u32(pid, s, "pid"),
                                    _check_frag_type(frag_type, s)) + fragment)


def unpack_partial_deliver_event(body) -> PartialDeliver:
    s = "res_lib_cpg_partial_deliver_callback"
    v = need(body, NAME_BYTES + _PARTIAL_DELIVER.size, s, exact=False)
    msglen, fraglen, nodeid, pid, frag_type = _PARTIAL_DELIVER.unpack_from(v, NAME_BYTES)
    _check_frag_type(frag_type, s)
    if fraglen > msglen:
        raise StructError(f"{s}: fraglen={fraglen} exceeds msglen={msglen}")
    fragment = _trailing(v, NAME_BYTES + _PARTIAL_DELIVER.size, fraglen, s, "fraglen")
    return PartialDeliver(_name(v, 0, s), msglen, nodeid, pid, frag_type, fragment)


def pack_confchg_event(group, members, left, joined) -> bytes:
    """Counts go members, joined, left; the arrays go members, left, joined (Corosync)."""
    s = "res_lib_cpg_confchg_callback"
    members, left, joined = list(members), list(left), list(joined)
    return (_pack_name(group, s, "group_name")
            + _CONFCHG_COUNTS.pack(len(members), len(joined), len(left))
            + _pack_addresses(members, s, "member_list")
            + _pack_addresses(left, s, "left_list")
            + _pack_addresses(joined, s, "joined_list"))


def unpack_confchg_event(body) -> Confchg:
    s = "res_lib_cpg_confchg_callback"
    fixed = NAME_BYTES + _CONFCHG_COUNTS.size
    v = need(body, fixed, s, exact=False)
    n_members, n_joined, n_left = _CONFCHG_COUNTS.unpack_from(v, NAME_BYTES)
    total = n_members + n_joined + n_left
    if len(v) - fixed != total * _ADDRESS.size:
        raise StructError(f"{s}: counts members={n_members} joined={n_joined} left={n_left} "
                          f"need {total * _ADDRESS.size} bytes of addresses, body has "
                          f"{len(v) - fixed}")
    members = _addresses(v, fixed, n_members, s)
    left = _addresses(v, fixed + n_members * _ADDRESS.size, n_left, s)
    joined = _addresses(v, fixed + (n_members + n_left) * _ADDRESS.size, n_joined, s)
    return Confchg(_name(v, 0, s), members, left, joined)


def pack_totem_confchg_event(ring_id, members) -> bytes:
    """ring_id = (nodeid, seq); sized 48 + 4n as Corosync does (4 bytes of tail padding)."""
    s = "res_lib_cpg_totem_confchg_callback"
    ring_nodeid, ring_seq = ring_id
    members = [check_u32(m, s, "member_list[]") for m in members]
    return (_TOTEM.pack(check_u32(ring_nodeid, s, "ring_id.nodeid"),
                        check_u64(ring_seq, s, "ring_id.seq"), len(members))
            + struct.pack(f"<{len(members)}I", *members) + bytes(4))


def unpack_totem_confchg_event(body) -> TotemConfchg:
    """Accepts Corosync's padded size (24 + 4n) or the unpadded 20 + 4n."""
    s = "res_lib_cpg_totem_confchg_callback"
    v = need(body, _TOTEM.size, s, exact=False)
    ring_nodeid, ring_seq, count = _TOTEM.unpack_from(v, 0)
    exact = _TOTEM.size + 4 * count
    if len(v) not in (exact, exact + 4):
        raise StructError(f"{s}.member_list_entries={count} needs a body of {exact + 4} "
                          f"bytes, got {len(v)}")
    members = list(struct.unpack_from(f"<{count}I", v, _TOTEM.size))
    return TotemConfchg(RingId(ring_nodeid, ring_seq), members)


def pack_flowcontrol_event(flow_control_state: int) -> bytes:
    """res_lib_cpg_flowcontrol_callback: defined, never sent by Corosync 3.1."""
    return U32_SLOT.pack(check_u32(flow_control_state, "res_lib_cpg_flowcontrol_callback",
                                   "flow_control_state"))


def unpack_flowcontrol_event(body) -> int:
    return _u32(need(body, 8, "res_lib_cpg_flowcontrol_callback"), 0)
