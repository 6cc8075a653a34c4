"""CPG daemon-to-daemon (exec) messages, byte-exact with Corosync 3.1.7 exec/cpg.c.

This file owns the wire layout of the seven exec messages of service 2 and nothing else.
Every function works on the *body*: the bytes after the 16-byte qb_ipc_request_header
that the host adds (id = (2 << 16) | fn, size = whole message). Offsets below are body
offsets; add 16 for the offsets in the C structs. All scalars carry
`__attribute__((aligned(8)))` in cpg.c, so each one starts on an 8-byte slot, and the
layout is little-endian x86-64 (what Corosync on Linux puts on the wire in practice).

    mar_cpg_name_t                 length u32 @0, value[128] @8                  = 136
    req_exec_cpg_procjoin (0, 1)   group @0, pid @136, reason @144               = 152
    JOINLIST (2)                   (response-type header: error i32 @0, pad)     = 8
                                   + n x join_list_entry {pid @0, group @8}      + 144 n
    req_exec_cpg_mcast (3)         group @0, msglen @136, pid @144,
                                   source {nodeid @152, conn u64 @160}, msg @168 = 168 + len
    req_exec_cpg_downlist_old (4)  left_nodes @0, nodeids[384] @8                = 1544
    req_exec_cpg_downlist (5)      old_members @0, left_nodes @8, nodeids @16    = 1552
    req_exec_cpg_partial_mcast (6) group @0, msglen @136, fraglen @144, pid @152,
                                   type @160, source {nodeid @168, conn @176},
                                   msg @184                                      = 184 + fraglen

Parsers raise ExecStructError (a ValueError, which the engine core counts as a malformed
exec message and drops on every node alike) with the struct, the field and the sizes.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

MESSAGE_REQ_EXEC_CPG_PROCJOIN = 0
MESSAGE_REQ_EXEC_CPG_PROCLEAVE = 1
MESSAGE_REQ_EXEC_CPG_JOINLIST = 2
MESSAGE_REQ_EXEC_CPG_MCAST = 3
MESSAGE_REQ_EXEC_CPG_DOWNLIST_OLD = 4
MESSAGE_REQ_EXEC_CPG_DOWNLIST = 5
MESSAGE_REQ_EXEC_CPG_PARTIAL_MCAST = 6

CPG_MAX_NAME_LENGTH = 128
PROCESSOR_COUNT_MAX = 384

NAME_BYTES = 136
PROCJOIN_BYTES = 152
JOINLIST_HEADER_BYTES = 8          # error + padding of the qb_ipc_response_header
JOINLIST_ENTRY_BYTES = 144
MCAST_HEADER_BYTES = 168
PARTIAL_MCAST_HEADER_BYTES = 184
DOWNLIST_OLD_BYTES = 8 + 4 * PROCESSOR_COUNT_MAX
DOWNLIST_BYTES = 16 + 4 * PROCESSOR_COUNT_MAX

_NAME_LEN = struct.Struct("<I4x")
_PROCJOIN_TAIL = struct.Struct("<I4xI4x")               # pid @136, reason @144
_MCAST_TAIL = struct.Struct("<I4xI4xI4xQ")              # msglen, pid, source
_MCAST_LEN_PID = struct.Struct("<I4xI")                   # msglen, pid (mcast_parts)
_PARTIAL_TAIL = struct.Struct("<I4xI4xI4xI4xI4xQ")      # msglen, fraglen, pid, type, source
_JOINLIST_ENTRY_PID = struct.Struct("<I4x")
_DOWNLIST_HEAD = struct.Struct("<I4xI4x")
_U32 = struct.Struct("<I")


class ExecStructError(ValueError):
    """A CPG exec message that does not fit its C struct."""


def pack_name(group: bytes) -> bytes:
    """mar_cpg_name_t: the name's length and its bytes, zero-padded to 128."""
    if len(group) > CPG_MAX_NAME_LENGTH:
        raise ExecStructError(f"group name of {len(group)} bytes; at most "
                              f"{CPG_MAX_NAME_LENGTH} fit mar_cpg_name_t")
    return _NAME_LEN.pack(len(group)) + group.ljust(CPG_MAX_NAME_LENGTH, b"\0")


def unpack_name(buf, offset: int, what: str) -> bytes:
    """The significant bytes of a mar_cpg_name_t (Corosync compares length + bytes)."""
    (length,) = _NAME_LEN.unpack_from(buf, offset)
    if length > CPG_MAX_NAME_LENGTH:
        raise ExecStructError(f"{what}: group_name.length {length} > {CPG_MAX_NAME_LENGTH}")
    return bytes(buf[offset + 8: offset + 8 + length])


def _need(body, size: int, what: str) -> None:
    if len(body) < size:
        raise ExecStructError(f"{what}: body of {len(body)} bytes, the struct needs {size}")


# ---- PROCJOIN / PROCLEAVE (one struct, req_exec_cpg_procjoin) --------------------------
@dataclass(frozen=True)
class ProcJoin:
    group: bytes
    pid: int
    reason: int


def pack_procjoin(group: bytes, pid: int, reason: int) -> bytes:
    return pack_name(group) + _PROCJOIN_TAIL.pack(pid, reason)


def unpack_procjoin(body) -> ProcJoin:
    _need(body, PROCJOIN_BYTES, "req_exec_cpg_procjoin")
    group = unpack_name(body, 0, "req_exec_cpg_procjoin")
    pid, reason = _PROCJOIN_TAIL.unpack_from(body, NAME_BYTES)
    return ProcJoin(group, pid, reason)


# ---- JOINLIST ------------------------------------------------------------------------
def pack_joinlist(entries) -> bytes:
    """entries: iterable of (group, pid) in the order Corosync sends them (its list order)."""
    parts = [b"\0" * JOINLIST_HEADER_BYTES]
    for group, pid in entries:
        parts.append(_JOINLIST_ENTRY_PID.pack(pid))
        parts.append(pack_name(group))
    return b"".join(parts)


def unpack_joinlist(body) -> list[tuple[bytes, int]]:
    _need(body, JOINLIST_HEADER_BYTES, "joinlist")
    payload = len(body) - JOINLIST_HEADER_BYTES
    if payload % JOINLIST_ENTRY_BYTES:
        raise ExecStructError(f"joinlist: {payload} bytes of entries is not a multiple of "
                              f"join_list_entry ({JOINLIST_ENTRY_BYTES} bytes)")
    out = []
    for offset in range(JOINLIST_HEADER_BYTES, len(body), JOINLIST_ENTRY_BYTES):
        (pid,) = _JOINLIST_ENTRY_PID.unpack_from(body, offset)
        out.append((unpack_name(body, offset + 8, "join_list_entry"), pid))
    return out


# ---- MCAST ---------------------------------------------------------------------------
class Mcast(NamedTuple):
    """A tuple, not a frozen dataclass: one is made per delivered message."""
    group: bytes
    pid: int
    source_nodeid: int
    source_conn: int
    message: memoryview


def pack_mcast_header(group: bytes, pid: int, source_nodeid: int, source_conn: int,
                      msglen: int) -> bytes:
    """Everything before the payload; the caller appends msglen payload bytes."""
    return pack_name(group) + _MCAST_TAIL.pack(msglen, pid, source_nodeid, source_conn)


def unpack_mcast(body) -> Mcast:
    _need(body, MCAST_HEADER_BYTES, "req_exec_cpg_mcast")
    group = unpack_name(body, 0, "req_exec_cpg_mcast")
    msglen, pid, nodeid, conn = _MCAST_TAIL.unpack_from(body, NAME_BYTES)
    if MCAST_HEADER_BYTES + msglen > len(body):
        raise ExecStructError(f"req_exec_cpg_mcast: msglen {msglen} but only "
                              f"{len(body) - MCAST_HEADER_BYTES} payload bytes")
    view = memoryview(body)[MCAST_HEADER_BYTES: MCAST_HEADER_BYTES + msglen]
    return Mcast(group, pid, nodeid, conn, view)


def mcast_parts(body):
    """(group, pid, message view) of a req_exec_cpg_mcast: unpack_mcast for the delivery
    path, which needs three of its fields and runs once per delivered message (no named
    tuple, no helper calls). Same checks: a bad body raises unpack_mcast's error."""
    if len(body) >= MCAST_HEADER_BYTES:
        (length,) = _NAME_LEN.unpack_from(body, 0)
        msglen, pid = _MCAST_LEN_PID.unpack_from(body, NAME_BYTES)
        if length <= CPG_MAX_NAME_LENGTH and MCAST_HEADER_BYTES + msglen <= len(body):
            view = memoryview(body)
            return (bytes(view[8:8 + length]), pid,
                    view[MCAST_HEADER_BYTES:MCAST_HEADER_BYTES + msglen])
    unpack_mcast(body)
    raise AssertionError("unpack_mcast accepted what mcast_parts refused")


# ---- PARTIAL_MCAST -------------------------------------------------------------------
@dataclass(frozen=True)
class PartialMcast:
    group: bytes
    msglen: int          # the whole message's length (all fragments)
    pid: int
    type: int            # LIBCPG_PARTIAL_FIRST=1, CONTINUED=2, LAST=3
    source_nodeid: int
    source_conn: int
    fragment: memoryview


def pack_partial_header(group: bytes, msglen: int, fraglen: int, pid: int, frag_type: int,
                        source_nodeid: int, source_conn: int) -> bytes:
    return pack_name(group) + _PARTIAL_TAIL.pack(msglen, fraglen, pid, frag_type,
                                                 source_nodeid, source_conn)


def unpack_partial(body) -> PartialMcast:
    _need(body, PARTIAL_MCAST_HEADER_BYTES, "req_exec_cpg_partial_mcast")
    group = unpack_name(body, 0, "req_exec_cpg_partial_mcast")
    msglen, fraglen, pid, ftype, nodeid, conn = _PARTIAL_TAIL.unpack_from(body, NAME_BYTES)
    if PARTIAL_MCAST_HEADER_BYTES + fraglen > len(body):
        raise ExecStructError(f"req_exec_cpg_partial_mcast: fraglen {fraglen} but only "
                              f"{len(body) - PARTIAL_MCAST_HEADER_BYTES} payload bytes")
    view = memoryview(body)[PARTIAL_MCAST_HEADER_BYTES: PARTIAL_MCAST_HEADER_BYTES + fraglen]
    return PartialMcast(group, msglen, pid, ftype, nodeid, conn, view)


# ---- DOWNLIST (5) and DOWNLIST_OLD (4, Corosync 1.x; logged and ignored) --------------
@dataclass(frozen=True)
class Downlist:
    old_members: int
    left_nodes: tuple[int, ...]


def pack_downlist(old_members: int, left_nodes) -> bytes:
    left_nodes = tuple(left_nodes)
    if len(left_nodes) > PROCESSOR_COUNT_MAX:
        raise ExecStructError(f"downlist of {len(left_nodes)} nodes; at most "
                              f"{PROCESSOR_COUNT_MAX} fit")
    ids = b"".join(_U32.pack(n) for n in left_nodes)
    return _DOWNLIST_HEAD.pack(old_members, len(left_nodes)) + ids.ljust(
        4 * PROCESSOR_COUNT_MAX, b"\0")


def unpack_downlist(body) -> Downlist:
    _need(body, DOWNLIST_BYTES, "req_exec_cpg_downlist")
    old_members, left = _DOWNLIST_HEAD.unpack_from(body, 0)
    if left > PROCESSOR_COUNT_MAX:
        raise ExecStructError(f"req_exec_cpg_downlist: left_nodes {left} > {PROCESSOR_COUNT_MAX}")
    nodes = struct.unpack_from(f"<{left}I", body, 16)
    return Downlist(old_members, nodes)
