"""Votequorum exec messages between nodes (service 5), byte for byte as exec/votequorum.c.

Corosync declares these structs `packed` after an aligned(8) 16-byte header, so the
bodies below have no padding except the reconfigure message's three explicit pad bytes.
Every node (coroproc or Corosync) must decode the same bytes the same way: a short body
raises StructError and the engine core drops the message on every node alike.
"""
from __future__ import annotations

import struct
from typing import NamedTuple

from coroproc.ipc.mar import StructError, need

FN_NODEINFO = 0
FN_RECONFIGURE = 1
FN_QDEVICE_REG = 2
FN_QDEVICE_RECONFIGURE = 3

# node flags carried in NODEINFO (not the votequorum_info flags clients see)
NODE_FLAGS_QUORATE = 1
NODE_FLAGS_LEAVING = 2
NODE_FLAGS_WFASTATUS = 4
NODE_FLAGS_FIRST = 8
NODE_FLAGS_QDEVICE_REGISTERED = 16
NODE_FLAGS_QDEVICE_ALIVE = 32
NODE_FLAGS_QDEVICE_CAST_VOTE = 64
NODE_FLAGS_QDEVICE_MASTER_WINS = 128

PARAM_EXPECTED_VOTES = 1
PARAM_NODE_VOTES = 2
PARAM_CANCEL_WFA = 3

QDEVICE_OP_UNREGISTER = 0
QDEVICE_OP_REGISTER = 1
NAME_BYTES = 255

_NODEINFO = struct.Struct("<IIII")          # nodeid, votes, expected_votes, flags
_RECONFIGURE = struct.Struct("<IIB3x")      # nodeid, value, param
_QDEVICE_REG = struct.Struct(f"<I{NAME_BYTES}s")
_QDEVICE_RECONF = struct.Struct(f"<{NAME_BYTES}s{NAME_BYTES}s")


class NodeInfo(NamedTuple):
    nodeid: int
    votes: int
    expected_votes: int
    flags: int


def pack_nodeinfo(info: NodeInfo) -> bytes:
    return _NODEINFO.pack(*info)


def unpack_nodeinfo(body) -> NodeInfo:
    return NodeInfo(*_NODEINFO.unpack_from(need(body, _NODEINFO.size,
                                                "req_exec_quorum_nodeinfo", False)))


def pack_reconfigure(param: int, nodeid: int, value: int) -> bytes:
    return _RECONFIGURE.pack(nodeid, value, param)


def unpack_reconfigure(body) -> tuple[int, int, int]:
    """(param, nodeid, value)"""
    # three pad bytes follow `param`; only the first nine bytes carry meaning
    nodeid, value, param = struct.unpack_from("<IIB", need(body, 9, "req_exec_quorum_"
                                                               "reconfigure", False))
    return param, nodeid, value


def _name_out(name: str) -> bytes:
    raw = name.encode()
    if len(raw) >= NAME_BYTES:
        raise StructError(f"quorum device name of {len(raw)} bytes, at most {NAME_BYTES - 1}")
    return raw


def _name_in(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def pack_qdevice_reg(operation: int, name: str) -> bytes:
    return _QDEVICE_REG.pack(operation, _name_out(name))


def unpack_qdevice_reg(body) -> tuple[int, str]:
    op, raw = _QDEVICE_REG.unpack_from(need(body, _QDEVICE_REG.size,
                                            "req_exec_quorum_qdevice_reg", False))
    return op, _name_in(raw)


def pack_qdevice_reconfigure(oldname: str, newname: str) -> bytes:
    return _QDEVICE_RECONF.pack(_name_out(oldname), _name_out(newname))


def unpack_qdevice_reconfigure(body) -> tuple[str, str]:
    old, new = _QDEVICE_RECONF.unpack_from(need(body, _QDEVICE_RECONF.size,
                                                "req_exec_quorum_qdevice_reconfigure", False))
    return _name_in(old), _name_in(new)


def describe_flags(flags: int) -> str:
    """Corosync's decode_flags debug line."""
    def yn(bit):
        return "Yes" if flags & bit else "No"
    return (f"flags: quorate: {yn(NODE_FLAGS_QUORATE)} Leaving: {yn(NODE_FLAGS_LEAVING)} "
            f"WFA Status: {yn(NODE_FLAGS_WFASTATUS)} First: {yn(NODE_FLAGS_FIRST)} "
            f"Qdevice: {yn(NODE_FLAGS_QDEVICE_REGISTERED)} "
            f"QdeviceAlive: {yn(NODE_FLAGS_QDEVICE_ALIVE)} "
            f"QdeviceCastVote: {yn(NODE_FLAGS_QDEVICE_CAST_VOTE)} "
            f"QdeviceMasterWins: {yn(NODE_FLAGS_QDEVICE_MASTER_WINS)}")
