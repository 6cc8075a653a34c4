"""QUORUM library IPC: message ids and pack/unpack for every request, reply and event.

This file owns the byte layouts of include/corosync/ipc_quorum.h (Corosync 3.1.7,
x86-64). Bodies follow coroproc.ipc.mar's convention (request body after the 16-byte
header, reply/event body after the 24-byte header).

Quirks kept from Corosync (libquorum reads exactly these offsets):
* the V0 notification is sized sizeof(struct) + 4n = 48 + 4n while its view_list starts
  at offset 44, so the body carries 4 bytes of padding after the list;
* the V1 quorum notification likewise: 56 + 4n with the list at 52;
* the V1 nodelist notification: 64 + 4(m + j + l), arrays members, joined, left at 60.
"""

import struct

from coroproc.ipc.mar import StructError, need

# enum req_quorum_types
REQ_GETQUORATE = 0
REQ_TRACKSTART = 1
REQ_TRACKSTOP = 2
REQ_GETTYPE = 3
REQ_MODEL_GETTYPE = 4

# enum res_quorum_types
RES_GETQUORATE = 0
RES_TRACKSTART = 1
RES_TRACKSTOP = 2
RES_NOTIFICATION = 3
RES_GETTYPE = 4
RES_MODEL_GETTYPE = 5
RES_V1_QUORUM_NOTIFICATION = 6
RES_V1_NODELIST_NOTIFICATION = 7

QUORUM_FREE = 0     # no provider: always quorate
QUORUM_SET = 1
MODEL_V0 = 0
MODEL_V1 = 1

_U32_SLOT = struct.Struct("<I4x")
_V0 = struct.Struct("<i4xQI")          # quorate, ring_seq, view_list_entries (list at +20)
_V1 = struct.Struct("<i4xI4xQI")       # quorate, ring {nodeid, seq}, entries (list at +28)
_NODELIST = struct.Struct("<I4xQI4xI4xI")   # ring {nodeid, seq}, members, joined, left
PAD_BYTES = 4                          # the tail Corosync's size formula leaves after lists


def pack_u32_slot(value: int) -> bytes:
    """trackstart request {track_flags}, model_gettype request {model},
    getquorate / gettype / model_gettype replies: one u32 in an 8-byte slot."""
    return _U32_SLOT.pack(value)


def unpack_u32(body, struct_name: str) -> int:
    return struct.unpack_from("<I", need(body, 4, struct_name, False))[0]


def _u32_list(view, offset: int, count: int, struct_name: str) -> list[int]:
    need(view, offset + 4 * count, struct_name, False)
    return list(struct.unpack_from(f"<{count}I", view, offset))


def pack_notification_v0(quorate: int, ring_seq: int, view_list) -> bytes:
    return _V0.pack(quorate, ring_seq, len(view_list)) + b"".join(
        struct.pack("<I", n) for n in view_list) + bytes(PAD_BYTES)


def unpack_notification_v0(body) -> tuple[int, int, list[int]]:
    """(quorate, ring_seq, view_list)"""
    view = need(body, _V0.size, "res_lib_quorum_notification", False)
    quorate, seq, count = _V0.unpack_from(view)
    return quorate, seq, _u32_list(view, _V0.size, count, "res_lib_quorum_notification")


def pack_notification_v1(quorate: int, ring_nodeid: int, ring_seq: int, view_list) -> bytes:
    return _V1.pack(quorate, ring_nodeid, ring_seq, len(view_list)) + b"".join(
        struct.pack("<I", n) for n in view_list) + bytes(PAD_BYTES)


def unpack_notification_v1(body) -> tuple[int, int, int, list[int]]:
    """(quorate, ring_nodeid, ring_seq, view_list)"""
    view = need(body, _V1.size, "res_lib_quorum_v1_quorum_notification", False)
    quorate, rid_node, rid_seq, count = _V1.unpack_from(view)
    return quorate, rid_node, rid_seq, _u32_list(view, _V1.size, count,
                                                 "res_lib_quorum_v1_quorum_notification")


def pack_nodelist_v1(ring_nodeid: int, ring_seq: int, members, joined, left) -> bytes:
    ids = list(members) + list(joined) + list(left)
    return _NODELIST.pack(ring_nodeid, ring_seq, len(members), len(joined), len(left)) + \
        b"".join(struct.pack("<I", n) for n in ids) + bytes(PAD_BYTES)


def unpack_nodelist_v1(body):
    """(ring_nodeid, ring_seq, members, joined, left)"""
    name = "res_lib_quorum_v1_nodelist_notification"
    view = need(body, _NODELIST.size, name, False)
    rid_node, rid_seq, m, j, l = _NODELIST.unpack_from(view)
    if m + j + l > 3 * 384:
        raise StructError(f"{name}: {m}+{j}+{l} entries, at most 384 each allowed")
    ids = _u32_list(view, _NODELIST.size, m + j + l, name)
    return rid_node, rid_seq, ids[:m], ids[m:m + j], ids[m + j:]
