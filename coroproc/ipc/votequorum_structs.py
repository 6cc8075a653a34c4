"""VOTEQUORUM library IPC: message ids and pack/unpack for every request, reply and event.

This file owns the byte layouts of include/corosync/ipc_votequorum.h (Corosync 3.1.7,
x86-64), offsets worked out from the header's attributes (docs/quorum.md has the table).
Unlike most Corosync services, votequorum's *requests* use plain unaligned fields after
the 16-byte header (only the poll request's ring id is aligned(8)); its *events* use
aligned(8) slots. Bodies follow coroproc.ipc.mar's convention: a request body is the
datagram after the 16-byte header, a reply/event body is after the 24-byte header.
Device names are NUL-terminated in a 255-byte field (VOTEQUORUM_QDEVICE_MAX_NAME_LEN).
"""

import struct
from typing import NamedTuple

from coroproc.ipc.mar import StructError, check_u32, check_u64, need

# enum req_votequorum_types
REQ_GETINFO = 0
REQ_SETEXPECTED = 1
REQ_SETVOTES = 2
REQ_TRACKSTART = 3
REQ_TRACKSTOP = 4
REQ_QDEVICE_REGISTER = 5
REQ_QDEVICE_UNREGISTER = 6
REQ_QDEVICE_UPDATE = 7
REQ_QDEVICE_POLL = 8
REQ_QDEVICE_MASTER_WINS = 9

# enum res_votequorum_types
RES_STATUS = 0
RES_GETINFO = 1
RES_TRACKSTART = 2
RES_QUORUM_NOTIFICATION = 3
RES_EXPECTEDVOTES_NOTIFICATION = 4
RES_NODELIST_NOTIFICATION = 5

QDEVICE_NODEID = 0
QDEVICE_NAME_BYTES = 255
QDEVICE_DEFAULT_TIMEOUT_MS = 10000
QDEVICE_DEFAULT_SYNC_TIMEOUT_MS = 30000

# votequorum_info.flags
INFO_TWONODE = 1
INFO_QUORATE = 2
INFO_WAIT_FOR_ALL = 4
INFO_LAST_MAN_STANDING = 8
INFO_AUTO_TIE_BREAKER = 16
INFO_ALLOW_DOWNSCALE = 32
INFO_QDEVICE_REGISTERED = 64
INFO_QDEVICE_ALIVE = 128
INFO_QDEVICE_CAST_VOTE = 256
INFO_QDEVICE_MASTER_WINS = 512

NODESTATE_MEMBER = 1
NODESTATE_DEAD = 2
NODESTATE_LEAVING = 3

_GETINFO_REQ = struct.Struct("<i4x")              # nodeid; sizeof 24 → 8-byte body
_SETEXPECTED = struct.Struct("<I4x")              # expected_votes
_SETVOTES = struct.Struct("<Ii")                  # votes, nodeid
_TRACKSTART = struct.Struct("<QI4x")              # context, track_flags
_NAME = struct.Struct(f"<{QDEVICE_NAME_BYTES}s1x")          # register / unregister: 256
_UPDATE = struct.Struct(f"<{QDEVICE_NAME_BYTES}s{QDEVICE_NAME_BYTES}s2x")   # 512
_POLL = struct.Struct(f"<{QDEVICE_NAME_BYTES}s1xi4xI4xQ")   # name, cast_vote, ring id: 280
_MASTER_WINS = struct.Struct(f"<{QDEVICE_NAME_BYTES}s1xI4x")  # name, allow: 264
_GETINFO_RES = struct.Struct(f"<9I{QDEVICE_NAME_BYTES}s5x")  # 296 = 320 - 24
_QUORUM_NOTIF = struct.Struct("<I4xQI4x")         # quorate, context, node_list_entries
_NODE = struct.Struct("<II")                      # votequorum_node {nodeid, state}
_NODELIST_NOTIF = struct.Struct("<QI4xQI4x")      # context, ring {nodeid, seq}, entries
_EXPECTED_NOTIF = struct.Struct("<QI4x")          # context, expected_votes
assert (_POLL.size, _MASTER_WINS.size, _UPDATE.size, _NAME.size) == (280, 264, 512, 256)
assert _GETINFO_RES.size + 24 == 320 and _NODELIST_NOTIF.size + 24 == 56


def _name_out(name, struct_name: str) -> bytes:
    raw = name.encode() if isinstance(name, str) else bytes(name)
    if len(raw) >= QDEVICE_NAME_BYTES or b"\0" in raw:
        raise StructError(f"{struct_name}.name: {len(raw)} bytes; at most "
                          f"{QDEVICE_NAME_BYTES - 1} bytes without NUL allowed")
    return raw


def _name_in(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


# ---- requests (client packs, engine unpacks) ----------------------------------------------

def pack_req_getinfo(nodeid: int) -> bytes:
    return _GETINFO_REQ.pack(nodeid)


def unpack_req_getinfo(body) -> int:
    return struct.unpack_from("<i", need(body, 4, "req_lib_votequorum_getinfo", False))[0]


def pack_req_setexpected(expected_votes: int) -> bytes:
    return _SETEXPECTED.pack(check_u32(expected_votes, "req_lib_votequorum_setexpected",
                                       "expected_votes"))


def unpack_req_setexpected(body) -> int:
    return struct.unpack_from("<I", need(body, 4, "req_lib_votequorum_setexpected", False))[0]


def pack_req_setvotes(votes: int, nodeid: int) -> bytes:
    return _SETVOTES.pack(check_u32(votes, "req_lib_votequorum_setvotes", "votes"), nodeid)


def unpack_req_setvotes(body) -> tuple[int, int]:
    """(votes, nodeid)"""
    return _SETVOTES.unpack_from(need(body, _SETVOTES.size, "req_lib_votequorum_setvotes", False))


def pack_req_trackstart(context: int, track_flags: int) -> bytes:
    return _TRACKSTART.pack(check_u64(context, "req_lib_votequorum_trackstart", "context"),
                            check_u32(track_flags, "req_lib_votequorum_trackstart", "flags"))


def unpack_req_trackstart(body) -> tuple[int, int]:
    """(context, track_flags)"""
    return struct.unpack_from("<QI", need(body, 12, "req_lib_votequorum_trackstart", False))


def pack_req_qdevice_name(name) -> bytes:
    """register / unregister"""
    return _NAME.pack(_name_out(name, "req_lib_votequorum_qdevice_register"))


def unpack_req_qdevice_name(body) -> str:
    view = need(body, QDEVICE_NAME_BYTES, "req_lib_votequorum_qdevice_register", False)
    return _name_in(bytes(view[:QDEVICE_NAME_BYTES]))


def pack_req_qdevice_update(oldname, newname) -> bytes:
    return _UPDATE.pack(_name_out(oldname, "req_lib_votequorum_qdevice_update"),
                        _name_out(newname, "req_lib_votequorum_qdevice_update"))


def unpack_req_qdevice_update(body) -> tuple[str, str]:
    view = need(body, 2 * QDEVICE_NAME_BYTES, "req_lib_votequorum_qdevice_update", False)
    old, new = struct.unpack_from(f"<{QDEVICE_NAME_BYTES}s{QDEVICE_NAME_BYTES}s", view)
    return _name_in(old), _name_in(new)


class QdevicePoll(NamedTuple):
    name: str
    cast_vote: int
    ring_nodeid: int
    ring_seq: int


def pack_req_qdevice_poll(name, cast_vote: int, ring_nodeid: int, ring_seq: int) -> bytes:
    return _POLL.pack(_name_out(name, "req_lib_votequorum_qdevice_poll"), int(cast_vote),
                      ring_nodeid, ring_seq)


def unpack_req_qdevice_poll(body) -> QdevicePoll:
    raw, cast, rid_node, rid_seq = _POLL.unpack_from(
        need(body, _POLL.size, "req_lib_votequorum_qdevice_poll", False))
    return QdevicePoll(_name_in(raw), cast, rid_node, rid_seq)


def pack_req_qdevice_master_wins(name, allow: int) -> bytes:
    return _MASTER_WINS.pack(_name_out(name, "req_lib_votequorum_qdevice_master_wins"),
                             int(allow))


def unpack_req_qdevice_master_wins(body) -> tuple[str, int]:
    view = need(body, _MASTER_WINS.size - 4, "req_lib_votequorum_qdevice_master_wins", False)
    raw, allow = struct.unpack_from(f"<{QDEVICE_NAME_BYTES}s1xI", view)
    return _name_in(raw), allow


# ---- replies and events (engine packs, client unpacks) ------------------------------------

class Info(NamedTuple):
    """struct votequorum_info (the GETINFO reply)."""
    node_id: int
    node_state: int
    node_votes: int
    node_expected_votes: int
    highest_expected: int
    total_votes: int
    quorum: int
    flags: int
    qdevice_votes: int
    qdevice_name: str


def pack_res_getinfo(info: Info) -> bytes:
    return _GETINFO_RES.pack(*info[:9], _name_out(info.qdevice_name, "res_lib_votequorum_getinfo"))


def unpack_res_getinfo(body) -> Info:
    view = need(body, _GETINFO_RES.size - 5, "res_lib_votequorum_getinfo", False)
    fields = struct.unpack_from(f"<9I{QDEVICE_NAME_BYTES}s", view)
    return Info(*fields[:9], _name_in(fields[9]))


def pack_quorum_notification(quorate: int, context: int, nodes) -> bytes:
    """nodes: [(nodeid, state)]"""
    return _QUORUM_NOTIF.pack(quorate, context, len(nodes)) + b"".join(
        _NODE.pack(n, s) for n, s in nodes)


def unpack_quorum_notification(body) -> tuple[int, int, list[tuple[int, int]]]:
    """(quorate, context, [(nodeid, state)])"""
    view = need(body, _QUORUM_NOTIF.size, "res_lib_votequorum_quorum_notification", False)
    quorate, context, count = _QUORUM_NOTIF.unpack_from(view)
    need(view, _QUORUM_NOTIF.size + _NODE.size * count,
         "res_lib_votequorum_quorum_notification", False)
    return quorate, context, [_NODE.unpack_from(view, _QUORUM_NOTIF.size + _NODE.size * i)
                              for i in range(count)]


def pack_nodelist_notification(context: int, ring_nodeid: int, ring_seq: int, nodeids) -> bytes:
    return _NODELIST_NOTIF.pack(context, ring_nodeid, ring_seq, len(nodeids)) + b"".join(
        struct.pack("<I", n) for n in nodeids)


def unpack_nodelist_notification(body) -> tuple[int, int, int, list[int]]:
    """(context, ring_nodeid, ring_seq, [nodeid])"""
    view = need(body, _NODELIST_NOTIF.size, "res_lib_votequorum_nodelist_notification", False)
    context, rid_node, rid_seq, count = _NODELIST_NOTIF.unpack_from(view)
    need(view, _NODELIST_NOTIF.size + 4 * count, "res_lib_votequorum_nodelist_notification",
         False)
    return context, rid_node, rid_seq, list(struct.unpack_from(f"<{count}I", view,
                                                                _NODELIST_NOTIF.size))


def pack_expectedvotes_notification(context: int, expected_votes: int) -> bytes:
    return _EXPECTED_NOTIF.pack(context, expected_votes)


def unpack_expectedvotes_notification(body) -> tuple[int, int]:
    """(context, expected_votes)"""
    return _EXPECTED_NOTIF.unpack_from(need(body, 12, "res_lib_votequorum_expectedvotes_"
                                                      "notification", False))
