"""Messages of the example engine: lib requests/responses/events and its exec messages.

Everything is little-endian and fixed-size except where a length field says otherwise;
names are 1..64 bytes of UTF-8. The layout is this engine's own (it is not a Corosync
service), written with struct so the C side of a client would be easy too.
"""
from __future__ import annotations

import struct

SERVICE_ID = 60            # custom engines: 8..62 (0..7 are Corosync's)
IPC_SERVICE = "coroproc_example"
NAME_BYTES_MAX = 64

# lib requests (client → engine) and response/event ids (engine → client)
REQ_ADD = 0                # {name, delta i64} → RES_ADD {value i64} once ordered
REQ_GET = 1                # {name} → RES_GET {value i64} (CS_ERR_NOT_EXIST if none)
REQ_TRACK = 2              # {} → RES_TRACK; then EV_CHANGED for every change
RES_ADD = 0
RES_GET = 1
RES_TRACK = 2
EV_CHANGED = 3             # {name, value i64, by nodeid u32}

# exec messages (engine → engine, in the cluster's total order)
EXEC_ADD = 0               # {name, delta i64, origin pid u32, token u64}
EXEC_STATE = 1             # sync: {count u32, then count × (name, value i64)}

_NAME = struct.Struct("<B64s")       # length, bytes
_ADD = struct.Struct("<B64sq")
_VALUE = struct.Struct("<q")
_CHANGED = struct.Struct("<B64sqI")
_EXEC_ADD = struct.Struct("<B64sqIQ")
_COUNT = struct.Struct("<I")
_ENTRY = struct.Struct("<B64sq")


def _name(raw_len: int, raw: bytes) -> str:
    if not 1 <= raw_len <= NAME_BYTES_MAX:
        raise ValueError(f"counter name length {raw_len}: allowed 1..{NAME_BYTES_MAX}")
    return raw[:raw_len].decode("utf-8")


def _name_bytes(name: str) -> bytes:
    raw = name.encode("utf-8")
    if not 1 <= len(raw) <= NAME_BYTES_MAX:
        raise ValueError(f"counter name {name!r}: 1..{NAME_BYTES_MAX} bytes of UTF-8")
    return raw


def pack_add(name: str, delta: int) -> bytes:
    raw = _name_bytes(name)
    return _ADD.pack(len(raw), raw, delta)


def unpack_add(body) -> tuple[str, int]:
    n, raw, delta = _ADD.unpack_from(body, 0)
    return _name(n, raw), delta


def pack_name(name: str) -> bytes:
    raw = _name_bytes(name)
    return _NAME.pack(len(raw), raw)


def unpack_name(body) -> str:
    n, raw = _NAME.unpack_from(body, 0)
    return _name(n, raw)


def pack_value(value: int) -> bytes:
    return _VALUE.pack(value)


def unpack_value(body) -> int:
    return _VALUE.unpack_from(body, 0)[0]


def pack_changed(name: str, value: int, nodeid: int) -> bytes:
    raw = _name_bytes(name)
    return _CHANGED.pack(len(raw), raw, value, nodeid)


def unpack_changed(body) -> tuple[str, int, int]:
    n, raw, value, nodeid = _CHANGED.unpack_from(body, 0)
    return _name(n, raw), value, nodeid


def pack_exec_add(name: str, delta: int, pid: int, token: int) -> bytes:
    raw = _name_bytes(name)
    return _EXEC_ADD.pack(len(raw), raw, delta, pid, token)


def unpack_exec_add(body) -> tuple[str, int, int, int]:
    n, raw, delta, pid, token = _EXEC_ADD.unpack_from(body, 0)
    return _name(n, raw), delta, pid, token


def pack_state(entries: list[tuple[str, int]]) -> bytes:
    out = [_COUNT.pack(len(entries))]
    for name, value in entries:
        raw = _name_bytes(name)
        out.append(_ENTRY.pack(len(raw), raw, value))
    return b"".join(out)


def unpack_state(body) -> list[tuple[str, int]]:
    (count,) = _COUNT.unpack_from(body, 0)
    if _COUNT.size + count * _ENTRY.size > len(body):
        raise ValueError(f"state message lists {count} entries in {len(body)} bytes")
    out = []
    for i in range(count):
        n, raw, value = _ENTRY.unpack_from(body, _COUNT.size + i * _ENTRY.size)
        out.append((_name(n, raw), value))
    return out


STATE_ENTRIES_PER_MSG = 512          # ~37 KiB per sync message
