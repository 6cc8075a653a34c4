"""CMAP library IPC: message ids, typed values, and pack/unpack for every message.

This file owns the byte layouts of include/corosync/ipc_cmap.h (Corosync 3.1.7,
x86-64; offsets checked with gcc offsetof against the real header) and the encoding of
the twelve cmap value types. Both directions exist: the CMAP engine unpacks requests
and packs replies/notifications, coroproc.client.cmap does the opposite. Bodies follow
coroproc.ipc.mar's convention (request body after 16 bytes, response body after 24).

Quirks kept from Corosync:
* GET replies are sized for the buffer the client *asked* for (`value_len` in the
  request; 0 = "type and length only"), while their value_len field holds the real
  length; so a reply may carry no value bytes at all (unpack returns value None).
* Strings travel without their NUL from the client (libcmap sends strlen) but the
  daemon stores and returns them with it (value_len = strlen + 1).
* NOTIFY events carry the new value, then the old value, at offset 336 of the datagram.
"""

import struct
from typing import NamedTuple

from coroproc.ipc.mar import (
    I32_SLOT,
    U8_SLOT,
    U64,
    StructError,
    check_i32,
    check_u64,
    counted_name,
    need,
)

# enum req_cmap_types / res_cmap_types
REQ_SET = 0
REQ_DELETE = 1
REQ_GET = 2
REQ_ADJUST_INT = 3
REQ_ITER_INIT = 4
REQ_ITER_NEXT = 5
REQ_ITER_FINALIZE = 6
REQ_TRACK_ADD = 7
REQ_TRACK_DELETE = 8
REQ_SET_CURRENT_MAP = 9

RES_SET = 0
RES_DELETE = 1
RES_GET = 2
RES_ADJUST_INT = 3
RES_ITER_INIT = 4
RES_ITER_NEXT = 5
RES_ITER_FINALIZE = 6
RES_TRACK_ADD = 7
RES_TRACK_DELETE = 8
RES_NOTIFY_CALLBACK = 9
RES_SET_CURRENT_MAP = 10

# cmap_map_t / CMAP_SETMAP_*
MAP_ICMAP = 0
MAP_STATS = 1

# cmap track types
TRACK_DELETE = 1
TRACK_MODIFY = 2
TRACK_ADD = 4
TRACK_PREFIX = 8

# cmap_value_types_t
INT8, UINT8, INT16, UINT16, INT32, UINT32, INT64, UINT64 = range(1, 9)
FLOAT, DOUBLE, STRING, BINARY = 9, 10, 11, 12

CS_MAX_NAME_LENGTH = 256
CMAP_KEYNAME_MAXLEN = 255   # a key must also leave room for its NUL
CMAP_KEYNAME_MINLEN = 3

# Short names used by corosync-cmapctl ("-s key u32 1", "key (u32) = 1").
TYPE_NAMES = {INT8: "i8", UINT8: "u8", INT16: "i16", UINT16: "u16", INT32: "i32",
              UINT32: "u32", INT64: "i64", UINT64: "u64", FLOAT: "flt", DOUBLE: "dbl",
              STRING: "str", BINARY: "bin"}
TYPES_BY_NAME = {name: value for value, name in TYPE_NAMES.items()}

_NUMERIC = {INT8: struct.Struct("<b"), UINT8: struct.Struct("<B"), INT16: struct.Struct("<h"),
            UINT16: struct.Struct("<H"), INT32: struct.Struct("<i"), UINT32: struct.Struct("<I"),
            INT64: struct.Struct("<q"), UINT64: struct.Struct("<Q"), FLOAT: struct.Struct("<f"),
            DOUBLE: struct.Struct("<d")}
INTEGER_TYPES = frozenset(range(INT8, UINT64 + 1))

_pack_key, _unpack_key, NAME_BYTES = counted_name("H", CS_MAX_NAME_LENGTH, "mar_name_t")
assert NAME_BYTES == 264

_NOTIFY = struct.Struct("<Q")          # track_inst_handle, before the key
_NOTIFY_TAIL = struct.Struct("<i4xB7xB7xQQ")  # event, new type, old type, new len, old len
assert _NOTIFY_TAIL.size == 40


class Notify(NamedTuple):
    track_inst_handle: int
    key: str
    event: int
    new_type: int
    new_value: bytes
    old_type: int
    old_value: bytes


class IterItem(NamedTuple):
    key: str
    value_len: int
    value_type: int


# ---- typed values ----------------------------------------------------------------------

def check_type(value_type: int, where: str = "cmap value") -> int:
    if value_type not in TYPE_NAMES:
        raise StructError(f"{where}: type={value_type!r}, allowed 1..12 "
                          f"({', '.join(TYPE_NAMES.values())})")
    return value_type


def encode_value(value_type: int, value) -> bytes:
    """Python value -> the bytes libcmap sends for that type (strings without NUL)."""
    check_type(value_type)
    if value_type in _NUMERIC:
        codec = _NUMERIC[value_type]
        if value_type in INTEGER_TYPES and (isinstance(value, bool) or not isinstance(value, int)):
            raise StructError(f"cmap {TYPE_NAMES[value_type]} value {value!r}: expected an int")
        try:
            return codec.pack(value)
        except struct.error:
            raise StructError(f"cmap {TYPE_NAMES[value_type]} value {value!r} is out of range "
                              f"or not a number") from None
    if value_type == STRING:
        raw = value.encode() if isinstance(value, str) else bytes(value)
        if b"\0" in raw:
            raise StructError(f"cmap str value {value!r}: contains NUL, which ends C strings")
        return raw
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise StructError(f"cmap bin value: expected bytes, got {type(value).__name__}")
    return bytes(value)


def decode_value(value_type: int, raw):
    """Bytes of a cmap value -> Python value (int/float/str/bytes)."""
    check_type(value_type)
    raw = bytes(raw)
    if value_type in _NUMERIC:
        codec = _NUMERIC[value_type]
        if len(raw) != codec.size:
            raise StructError(f"cmap {TYPE_NAMES[value_type]} value of {len(raw)} bytes, "
                              f"expected {codec.size}")
        return codec.unpack(raw)[0]
    if value_type == STRING:
        return raw.split(b"\0", 1)[0].decode(errors="surrogateescape")
    return raw


def value_size(value_type: int) -> int | None:
    """Fixed byte size of a numeric type, None for str/bin."""
    codec = _NUMERIC.get(check_type(value_type))
    return codec.size if codec else None


# ---- keys --------------------------------------------------------------------------------

def _key(view, offset, struct_name, field="key_name") -> str:
    raw = _unpack_key(view, offset, struct_name, field)
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise StructError(f"{struct_name}.{field}: key {raw!r} is not ASCII") from None


def _pack_key_checked(key, struct_name, field="key_name") -> bytes:
    raw = key.encode() if isinstance(key, str) else bytes(key)
    if len(raw) > CMAP_KEYNAME_MAXLEN:
        raise StructError(f"{struct_name}.{field}: key of {len(raw)} bytes, at most "
                          f"{CMAP_KEYNAME_MAXLEN} allowed")
    return _pack_key(raw, struct_name, field)


def _u64(view, offset):
    return U64.unpack_from(view, offset)[0]


def pack_empty() -> bytes:
    """Body of header-only replies (set, delete, adjust_int, iter_finalize, set_current_map)."""
    return b""


def unpack_empty(body, struct_name: str) -> None:
    need(body, 0, struct_name)


# ---- requests ----------------------------------------------------------------------------

def pack_req_set(key, value_type: int, value: bytes) -> bytes:
    s = "req_lib_cmap_set"
    value = bytes(value)
    return (_pack_key_checked(key, s) + U64.pack(len(value))
            + U8_SLOT.pack(check_type(value_type, f"{s}.type")) + value)


def unpack_req_set(body):
    """(key, value_type, value bytes) — the type is checked, the value is not decoded."""
    s = "req_lib_cmap_set"
    fixed = NAME_BYTES + 16
    v = need(body, fixed, s, exact=False)
    value_len = _u64(v, NAME_BYTES)
    value_type = U8_SLOT.unpack_from(v, NAME_BYTES + 8)[0]
    if len(v) - fixed != value_len:
        raise StructError(f"{s}: value_len={value_len} but {len(v) - fixed} value bytes follow")
    return _key(v, 0, s), check_type(value_type, f"{s}.type"), bytes(v[fixed:])


def pack_req_delete(key) -> bytes:
    return _pack_key_checked(key, "req_lib_cmap_delete")


def unpack_req_delete(body) -> str:
    return _key(need(body, NAME_BYTES, "req_lib_cmap_delete"), 0, "req_lib_cmap_delete")


def pack_req_get(key, value_len: int = 0) -> bytes:
    s = "req_lib_cmap_get"
    return _pack_key_checked(key, s) + U64.pack(check_u64(value_len, s, "value_len"))


def unpack_req_get(body):
    """(key, value_len the client can receive; 0 = type and length only)"""
    v = need(body, NAME_BYTES + 8, "req_lib_cmap_get")
    return _key(v, 0, "req_lib_cmap_get"), _u64(v, NAME_BYTES)


def pack_req_adjust_int(key, step: int) -> bytes:
    s = "req_lib_cmap_adjust_int"
    return _pack_key_checked(key, s) + I32_SLOT.pack(check_i32(step, s, "step"))


def unpack_req_adjust_int(body):
    """(key, step)"""
    v = need(body, NAME_BYTES + 8, "req_lib_cmap_adjust_int")
    return _key(v, 0, "req_lib_cmap_adjust_int"), I32_SLOT.unpack_from(v, NAME_BYTES)[0]


def pack_req_iter_init(prefix=None) -> bytes:
    """prefix None or "" = every key (libcmap sends a zero-length name)."""
    return _pack_key_checked(prefix or "", "req_lib_cmap_iter_init", "prefix")


def unpack_req_iter_init(body) -> str:
    v = need(body, NAME_BYTES, "req_lib_cmap_iter_init")
    return _key(v, 0, "req_lib_cmap_iter_init", "prefix")


def _pack_handle(handle, struct_name, field):
    return U64.pack(check_u64(handle, struct_name, field))


def pack_req_iter_next(iter_handle: int) -> bytes:
    return _pack_handle(iter_handle, "req_lib_cmap_iter_next", "iter_handle")


def unpack_req_iter_next(body) -> int:
    return _u64(need(body, 8, "req_lib_cmap_iter_next"), 0)


def pack_req_iter_finalize(iter_handle: int) -> bytes:
    return _pack_handle(iter_handle, "req_lib_cmap_iter_finalize", "iter_handle")


def unpack_req_iter_finalize(body) -> int:
    return _u64(need(body, 8, "req_lib_cmap_iter_finalize"), 0)


def pack_req_track_add(key, track_type: int, track_inst_handle: int) -> bytes:
    s = "req_lib_cmap_track_add"
    return (_pack_key_checked(key or "", s) + I32_SLOT.pack(check_i32(track_type, s, "track_type"))
            + U64.pack(check_u64(track_inst_handle, s, "track_inst_handle")))


def unpack_req_track_add(body):
    """(key, track_type, track_inst_handle)"""
    s = "req_lib_cmap_track_add"
    v = need(body, NAME_BYTES + 16, s)
    return (_key(v, 0, s), I32_SLOT.unpack_from(v, NAME_BYTES)[0], _u64(v, NAME_BYTES + 8))


def pack_req_track_delete(track_handle: int) -> bytes:
    return _pack_handle(track_handle, "req_lib_cmap_track_delete", "track_handle")


def unpack_req_track_delete(body) -> int:
    return _u64(need(body, 8, "req_lib_cmap_track_delete"), 0)


def pack_req_set_current_map(map_id: int) -> bytes:
    s = "req_lib_cmap_set_current_map"
    if map_id not in (MAP_ICMAP, MAP_STATS):
        raise StructError(f"{s}.map={map_id}: allowed 0 (icmap) or 1 (stats)")
    return I32_SLOT.pack(map_id)


def unpack_req_set_current_map(body) -> int:
    return I32_SLOT.unpack_from(need(body, 8, "req_lib_cmap_set_current_map"), 0)[0]


# ---- responses -------------------------------------------------------------------------

def pack_res_get(value_type: int, value_len: int, value: bytes = b"") -> bytes:
    """value_len = the key's real length; value = the bytes sent (b"" when the client
    asked for 0, else padded with zeros to the buffer size it asked for)."""
    s = "res_lib_cmap_get"
    value = bytes(value)
    if value and len(value) < value_len:
        raise StructError(f"{s}: {len(value)} value bytes cannot hold value_len={value_len}")
    return U64.pack(check_u64(value_len, s, "value_len")) + U8_SLOT.pack(
        check_type(value_type, f"{s}.type")) + value


def unpack_res_get(body):
    """(value_type, value_len, value bytes or None when the reply carries no value)."""
    s = "res_lib_cmap_get"
    v = need(body, 16, s, exact=False)
    value_len = _u64(v, 0)
    value_type = check_type(U8_SLOT.unpack_from(v, 8)[0], f"{s}.type")
    carried = len(v) - 16
    if carried == 0 and value_len:
        return value_type, value_len, None
    if carried < value_len:
        raise StructError(f"{s}: value_len={value_len} but only {carried} value bytes follow")
    return value_type, value_len, bytes(v[16:16 + value_len])


def pack_res_iter_init(iter_handle: int) -> bytes:
    return _pack_handle(iter_handle, "res_lib_cmap_iter_init", "iter_handle")


def unpack_res_iter_init(body) -> int:
    return _u64(need(body, 8, "res_lib_cmap_iter_init"), 0)


def pack_res_iter_next(key, value_len: int, value_type: int) -> bytes:
    s = "res_lib_cmap_iter_next"
    return (_pack_key_checked(key, s) + U64.pack(check_u64(value_len, s, "value_len"))
            + U8_SLOT.pack(check_type(value_type, f"{s}.type")))


def unpack_res_iter_next(body) -> IterItem:
    s = "res_lib_cmap_iter_next"
    v = need(body, NAME_BYTES + 16, s)
    value_type = check_type(U8_SLOT.unpack_from(v, NAME_BYTES + 8)[0], f"{s}.type")
    return IterItem(_key(v, 0, s), _u64(v, NAME_BYTES), value_type)


def pack_res_track_add(track_handle: int) -> bytes:
    return _pack_handle(track_handle, "res_lib_cmap_track_add", "track_handle")


def unpack_res_track_add(body) -> int:
    return _u64(need(body, 8, "res_lib_cmap_track_add"), 0)


def pack_res_track_delete(track_inst_handle: int) -> bytes:
    return _pack_handle(track_inst_handle, "res_lib_cmap_track_delete", "track_inst_handle")


def unpack_res_track_delete(body) -> int:
    return _u64(need(body, 8, "res_lib_cmap_track_delete"), 0)


# ---- events ----------------------------------------------------------------------------

def pack_notify_event(track_inst_handle: int, key, event: int, new_type: int, new_value,
                      old_type: int, old_value) -> bytes:
    """Types may be 0 when there is no value (e.g. old value of an ADD)."""
    s = "res_lib_cmap_notify_callback"
    new_value, old_value = bytes(new_value), bytes(old_value)
    for field, t in (("new_value_type", new_type), ("old_value_type", old_type)):
        if t != 0:
            check_type(t, f"{s}.{field}")
    return (_NOTIFY.pack(check_u64(track_inst_handle, s, "track_inst_handle"))
            + _pack_key_checked(key, s)
            + _NOTIFY_TAIL.pack(check_i32(event, s, "event"), new_type, old_type,
                                len(new_value), len(old_value)) + new_value + old_value)


def unpack_notify_event(body) -> Notify:
    s = "res_lib_cmap_notify_callback"
    fixed = _NOTIFY.size + NAME_BYTES + _NOTIFY_TAIL.size
    v = need(body, fixed, s, exact=False)
    inst = _u64(v, 0)
    event, new_type, old_type, new_len, old_len = _NOTIFY_TAIL.unpack_from(
        v, _NOTIFY.size + NAME_BYTES)
    if len(v) - fixed != new_len + old_len:
        raise StructError(f"{s}: new_value_len={new_len} + old_value_len={old_len} but "
                          f"{len(v) - fixed} value bytes follow")
    new_value = bytes(v[fixed:fixed + new_len])
    old_value = bytes(v[fixed + new_len:])
    return Notify(inst, _key(v, _NOTIFY.size, s), event, new_type, new_value, old_type, old_value)
