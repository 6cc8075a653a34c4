"""CFG exec messages between nodes, byte for byte as exec/cfg.c (Corosync 3.1.7) sends them.

Bodies follow the engine API's convention (after the 16-byte qb_ipc_request_header):
* RINGREENABLE   {mar_message_source_t source}              16 bytes (handled as a no-op)
* KILLNODE       {u32 nodeid aligned(8); mar_name_t reason}  8 + 264 bytes
* SHUTDOWN       {}                                           0 bytes
* RELOAD_CONFIG  {mar_message_source_t source}               16 bytes
* CRYPTO_RECONFIG {u32 phase aligned(8)}                      8 bytes
mar_message_source_t is {u32 nodeid aligned(8); void *conn aligned(8)}: `conn` is only
meaningful to the node that sent it, which gets it back in the ordered message to find
its requesting client. coroproc puts a per-engine connection token there instead of a
pointer (Corosync nodes never look into another node's conn, so mixed rings agree).
mar_name_t is {u16 length aligned(8); u8 value[256] aligned(8)}.
"""
from __future__ import annotations

import struct

FN_RINGREENABLE = 0
FN_KILLNODE = 1
FN_SHUTDOWN = 2
FN_RELOAD_CONFIG = 3
FN_CRYPTO_RECONFIG = 4

NAME_BYTES = 256
_SOURCE = struct.Struct("<I4xQ")
_KILLNODE = struct.Struct(f"<I4xH6x{NAME_BYTES}s")
_PHASE = struct.Struct("<I4x")
assert _SOURCE.size == 16 and _KILLNODE.size == 272 and _PHASE.size == 8


def _need(body, size: int, what: str) -> None:
    if len(body) < size:
        raise ValueError(f"cfg exec {what}: body of {len(body)} bytes, at least {size}")


def pack_source(nodeid: int, conn_token: int) -> bytes:
    """RINGREENABLE and RELOAD_CONFIG bodies."""
    return _SOURCE.pack(nodeid, conn_token)


def unpack_source(body) -> tuple[int, int]:
    _need(body, _SOURCE.size, "source")
    return _SOURCE.unpack_from(body, 0)


def pack_killnode(nodeid: int, reason_len: int, reason_value: bytes) -> bytes:
    """The reason travels as the client sent it (length and the 256 value bytes)."""
    if not 0 <= reason_len <= NAME_BYTES:
        raise ValueError(f"cfg exec killnode: reason length {reason_len}, at most {NAME_BYTES}")
    return _KILLNODE.pack(nodeid, reason_len, bytes(reason_value)[:NAME_BYTES])


def unpack_killnode(body) -> tuple[int, str]:
    """(target nodeid, reason as Corosync's "%s" prints it: up to the first NUL)."""
    _need(body, _KILLNODE.size, "killnode")
    nodeid, length, value = _KILLNODE.unpack_from(body, 0)
    text = value[:min(length, NAME_BYTES)].split(b"\0", 1)[0]
    return nodeid, text.decode("utf-8", "replace")


def pack_crypto_reconfig(phase: int) -> bytes:
    return _PHASE.pack(phase)


def unpack_crypto_reconfig(body) -> int:
    _need(body, _PHASE.size, "crypto_reconfig")
    return _PHASE.unpack_from(body, 0)[0]
