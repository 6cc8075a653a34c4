"""CFG library IPC: message ids and pack/unpack for every libcfg message (both directions).

This file owns the byte layouts of include/corosync/ipc_cfg.h and cfg.h (Corosync 3.1.7,
x86-64; sizes and offsets checked with gcc offsetof against the real headers). The CFG
engine unpacks requests and packs replies; coroproc.client.cfg does the opposite. Bodies
follow coroproc.ipc.mar's convention (request body after the 16-byte header, response
and event body after the 24-byte header).

Quirks kept from Corosync:
* response ids are numbered differently from request ids (RES_* below);
* TRYSHUTDOWN / REPLYTOSHUTDOWN / TESTSHUTDOWN carry a plain `unsigned int` right after
  the header (no aligned(8) slot), TRACKSTART a single u8;
* the node status reply is a fixed 4176-byte corosync_cfg_node_status_v1 whose strings
  are NUL-padded 256-byte arrays; an unsupported version gets a 32-byte reply whose only
  field is the version.
"""

import struct
from typing import NamedTuple

from coroproc.ipc.mar import StructError, check_u32, need

# enum req_lib_cfg_types
REQ_RINGSTATUSGET = 0
REQ_RINGREENABLE = 1
REQ_KILLNODE = 2
REQ_TRYSHUTDOWN = 3
REQ_REPLYTOSHUTDOWN = 4
REQ_GET_NODE_ADDRS = 5
REQ_LOCAL_GET = 6
REQ_RELOAD_CONFIG = 7
REQ_REOPEN_LOG_FILES = 8
REQ_NODESTATUSGET = 9
REQ_TRACKSTART = 10
REQ_TRACKSTOP = 11

# enum res_lib_cfg_types
RES_RINGSTATUSGET = 0
RES_RINGREENABLE = 1
RES_STATETRACKSTART = 2
RES_STATETRACKSTOP = 3
RES_KILLNODE = 8
RES_TRYSHUTDOWN = 9
RES_TESTSHUTDOWN = 10          # the shutdown callback event
RES_GET_NODE_ADDRS = 11
RES_LOCAL_GET = 12
RES_REPLYTOSHUTDOWN = 13
RES_RELOAD_CONFIG = 14
RES_REOPEN_LOG_FILES = 15
RES_NODESTATUSGET = 16

# corosync_cfg_shutdown_flags_t / corosync_cfg_shutdown_reply_flags_t
SHUTDOWN_FLAG_REQUEST = 0
SHUTDOWN_FLAG_REGARDLESS = 1
SHUTDOWN_FLAG_IMMEDIATE = 2
SHUTDOWN_REPLY_NO = 0
SHUTDOWN_REPLY_YES = 1

NODE_STATUS_V1 = 1
MAX_INTERFACES = 16             # CFG_MAX_INTERFACES (ring status slots)
INTERFACE_NAME_BYTES = 128      # CFG_INTERFACE_NAME_MAX_LEN
INTERFACE_STATUS_BYTES = 512    # CFG_INTERFACE_STATUS_MAX_LEN
MAX_LINKS = 8                   # CFG_MAX_LINKS
HOST_BYTES = 256                # CFG_MAX_HOST_LEN
NAME_BYTES = 256                # CS_MAX_NAME_LENGTH (cs_name_t.value)
ADDRESS_BYTES = 16              # TOTEMIP_ADDRLEN
ADDRS_MAX = 8                   # INTERFACE_MAX: the most addresses GET_NODE_ADDRS returns

_U32 = struct.Struct("<I")
_U32_U32 = struct.Struct("<II")
_NODESTATUS_REQ = struct.Struct("<I4xI4x")          # nodeid, version (aligned(8) slots)
_KILLNODE_REQ = struct.Struct(f"<I4xH{NAME_BYTES}s6x")   # nodeid, cs_name_t, pad to 272
_LINK = struct.Struct(f"<BBBxI{HOST_BYTES}s{HOST_BYTES}s")   # 520 bytes
_NODE_HEAD = struct.Struct("<II6B2x")               # version, nodeid, 6 x u8 -> 16 bytes
_RING_HEAD = struct.Struct("<I4x")                  # interface_count aligned(8)
NODE_STATUS_BYTES = _NODE_HEAD.size + MAX_LINKS * _LINK.size
RING_STATUS_BYTES = (_RING_HEAD.size + MAX_INTERFACES * INTERFACE_NAME_BYTES
                     + MAX_INTERFACES * INTERFACE_STATUS_BYTES)
assert _KILLNODE_REQ.size == 272 and _LINK.size == 520 and NODE_STATUS_BYTES == 4176
assert RING_STATUS_BYTES == 10272 - 24


class LinkStatus(NamedTuple):
    enabled: bool = False
    connected: bool = False
    dynconnected: bool = False
    mtu: int = 0
    src_ipaddr: str = ""
    dst_ipaddr: str = ""


class NodeStatus(NamedTuple):
    """corosync_cfg_node_status_v1: `links` always has MAX_LINKS entries."""
    nodeid: int
    reachable: bool = False
    remote: bool = False
    external: bool = False
    onwire_min: int = 0
    onwire_max: int = 0
    onwire_ver: int = 0
    links: tuple = (LinkStatus(),) * MAX_LINKS
    version: int = NODE_STATUS_V1


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _fixed(text: str, size: int, struct_name: str, field: str) -> bytes:
    raw = text.encode()
    if len(raw) >= size:
        raise StructError(f"{struct_name}.{field}: {len(raw)} bytes, at most {size - 1} "
                          f"(a NUL must fit)")
    return raw


# ---- requests (client packs, engine unpacks) --------------------------------------------
def pack_u32_req(value: int, struct_name: str = "req_lib_cfg") -> bytes:
    """nodeid (GET_NODE_ADDRS), flags (TRYSHUTDOWN), response (REPLYTOSHUTDOWN): u32 + pad."""
    return _U32.pack(check_u32(value, struct_name, "value")) + bytes(4)


def unpack_u32_req(body, struct_name: str) -> int:
    """The leading unsigned int of a request body of at least 8 bytes (Corosync reads
    past the end of a short one; coroproc refuses it)."""
    return _U32.unpack_from(need(body, 8, struct_name, exact=False), 0)[0]


def pack_nodestatus_req(nodeid: int, version: int = NODE_STATUS_V1) -> bytes:
    return _NODESTATUS_REQ.pack(check_u32(nodeid, "req_lib_cfg_nodestatusget", "nodeid"),
                                check_u32(version, "req_lib_cfg_nodestatusget", "version"))


def unpack_nodestatus_req(body) -> tuple[int, int]:
    return _NODESTATUS_REQ.unpack_from(need(body, _NODESTATUS_REQ.size,
                                            "req_lib_cfg_nodestatusget", exact=False), 0)


def pack_killnode_req(nodeid: int, reason: str) -> bytes:
    """libcfg copies the reason with its NUL and sets length = strlen + 1."""
    raw = _fixed(reason, NAME_BYTES, "req_lib_cfg_killnode", "reason") + b"\0"
    return _KILLNODE_REQ.pack(check_u32(nodeid, "req_lib_cfg_killnode", "nodeid"),
                              len(raw), raw)


def unpack_killnode_req(body) -> tuple[int, int, bytes]:
    """(nodeid, reason length as sent, the 256 reason bytes as sent)."""
    nodeid, length, value = _KILLNODE_REQ.unpack_from(
        need(body, _KILLNODE_REQ.size, "req_lib_cfg_killnode", exact=False), 0)
    if length > NAME_BYTES:
        raise StructError(f"req_lib_cfg_killnode.reason.length={length}: at most {NAME_BYTES}")
    return nodeid, length, value


def pack_trackstart_req(track_flags: int) -> bytes:
    if not 0 <= track_flags <= 255:
        raise StructError(f"req_lib_cfg_trackstart.track_flags={track_flags}: allowed 0..255")
    return bytes([track_flags]) + bytes(7)


# ---- replies and events (engine packs, client unpacks) ---------------------------------
def pack_u32_res(value: int) -> bytes:
    """LOCAL_GET {local_nodeid aligned(8)}, TESTSHUTDOWN {flags}: u32 + 4 bytes of pad."""
    return _U32.pack(value) + bytes(4)


def unpack_u32_res(body, struct_name: str) -> int:
    return _U32.unpack_from(need(body, 8, struct_name, exact=False), 0)[0]


def pack_node_status(st: NodeStatus) -> bytes:
    if len(st.links) != MAX_LINKS:
        raise StructError(f"corosync_cfg_node_status_v1.links: {len(st.links)} entries, "
                          f"exactly {MAX_LINKS}")
    out = [_NODE_HEAD.pack(st.version, st.nodeid, st.reachable, st.remote, st.external,
                           st.onwire_min, st.onwire_max, st.onwire_ver)]
    for ln in st.links:
        out.append(_LINK.pack(ln.enabled, ln.connected, ln.dynconnected, ln.mtu,
                              _fixed(ln.src_ipaddr, HOST_BYTES, "link_status", "src_ipaddr"),
                              _fixed(ln.dst_ipaddr, HOST_BYTES, "link_status", "dst_ipaddr")))
    return b"".join(out)


def pack_node_status_version(version: int) -> bytes:
    """res_lib_cfg_nodestatusget_version body (errors and unsupported versions)."""
    return pack_u32_res(version)


def unpack_node_status(body) -> NodeStatus:
    view = need(body, NODE_STATUS_BYTES, "res_lib_cfg_nodestatusget_v1")
    version, nodeid, *flags = _NODE_HEAD.unpack_from(view, 0)
    links = []
    for i in range(MAX_LINKS):
        en, co, dyn, mtu, src, dst = _LINK.unpack_from(view, _NODE_HEAD.size + i * _LINK.size)
        links.append(LinkStatus(bool(en), bool(co), bool(dyn), mtu, _cstr(src), _cstr(dst)))
    reachable, remote, external, omin, omax, over = flags
    return NodeStatus(nodeid, bool(reachable), bool(remote), bool(external), omin, omax, over,
                      tuple(links), version)


def pack_ring_status(interfaces: list[tuple[str, str]]) -> bytes:
    """res_lib_cfg_ringstatusget body from (name, status) pairs."""
    if len(interfaces) > MAX_INTERFACES:
        raise StructError(f"res_lib_cfg_ringstatusget: {len(interfaces)} interfaces, "
                          f"at most {MAX_INTERFACES}")
    names = b"".join(_fixed(n, INTERFACE_NAME_BYTES, "ringstatusget", "interface_name")
                     .ljust(INTERFACE_NAME_BYTES, b"\0") for n, _s in interfaces)
    states = b"".join(_fixed(s, INTERFACE_STATUS_BYTES, "ringstatusget", "interface_status")
                      .ljust(INTERFACE_STATUS_BYTES, b"\0") for _n, s in interfaces)
    free = MAX_INTERFACES - len(interfaces)
    return (_RING_HEAD.pack(len(interfaces)) + names + bytes(free * INTERFACE_NAME_BYTES)
            + states + bytes(free * INTERFACE_STATUS_BYTES))


def unpack_ring_status(body) -> list[tuple[str, str]]:
    view = need(body, RING_STATUS_BYTES, "res_lib_cfg_ringstatusget")
    (count,) = _RING_HEAD.unpack_from(view, 0)
    if count > MAX_INTERFACES:
        raise StructError(f"res_lib_cfg_ringstatusget.interface_count={count}: "
                          f"at most {MAX_INTERFACES}")
    names_at = _RING_HEAD.size
    states_at = names_at + MAX_INTERFACES * INTERFACE_NAME_BYTES
    return [(_cstr(bytes(view[names_at + i * INTERFACE_NAME_BYTES:
                              names_at + (i + 1) * INTERFACE_NAME_BYTES])),
             _cstr(bytes(view[states_at + i * INTERFACE_STATUS_BYTES:
                              states_at + (i + 1) * INTERFACE_STATUS_BYTES])))
            for i in range(count)]


def pack_node_addrs(raw_addrs: list[tuple[int, bytes]]) -> bytes:
    """res_lib_cfg_get_node_addrs body from (family, in_addr/in6_addr bytes) pairs: the
    family of the first address, the count, each address zero-padded to 16 bytes."""
    family = raw_addrs[0][0] if raw_addrs else 0
    return _U32_U32.pack(family, len(raw_addrs)) + b"".join(
        raw.ljust(ADDRESS_BYTES, b"\0") for _f, raw in raw_addrs)


def unpack_node_addrs(body) -> tuple[int, list[bytes]]:
    view = need(body, _U32_U32.size, "res_lib_cfg_get_node_addrs", exact=False)
    family, count = _U32_U32.unpack_from(view, 0)
    if len(view) < _U32_U32.size + count * ADDRESS_BYTES:
        raise StructError(f"res_lib_cfg_get_node_addrs: num_addrs={count} does not fit a "
                          f"body of {len(view)} bytes")
    at = _U32_U32.size
    return family, [bytes(view[at + i * ADDRESS_BYTES: at + (i + 1) * ADDRESS_BYTES])
                    for i in range(count)]
