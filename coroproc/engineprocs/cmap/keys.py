"""CMAP key names, value types and value encoding: the rules of Corosync's exec/icmap.c.

Owns what a key name may be, which names are read-only, how each icmap value type is
laid out in bytes (little-endian, as Corosync on x86-64) and how long it must be. The
store (store.py) and the engine (engine.py) only call these; nothing here keeps state.
"""
from __future__ import annotations

import re
import struct

from coroproc.ipc import cserror as _cs

# cs_error_t values the CMAP engine answers with (one table: coroproc.ipc.cserror)
CS_OK = _cs.CS_OK
CS_ERR_INVALID_PARAM = _cs.CS_ERR_INVALID_PARAM
CS_ERR_NO_MEMORY = _cs.CS_ERR_NO_MEMORY
CS_ERR_BAD_HANDLE = _cs.CS_ERR_BAD_HANDLE
CS_ERR_BUSY = _cs.CS_ERR_BUSY
CS_ERR_ACCESS = _cs.CS_ERR_ACCESS
CS_ERR_NOT_EXIST = _cs.CS_ERR_NOT_EXIST
CS_ERR_NAME_TOO_LONG = _cs.CS_ERR_NAME_TOO_LONG
CS_ERR_NO_RESOURCES = _cs.CS_ERR_NO_RESOURCES
CS_ERR_NOT_SUPPORTED = _cs.CS_ERR_NOT_SUPPORTED
CS_ERR_MESSAGE_ERROR = _cs.CS_ERR_MESSAGE_ERROR
CS_ERR_NO_SECTIONS = _cs.CS_ERR_NO_SECTIONS
CS_ERR_TOO_MANY_GROUPS = _cs.CS_ERR_TOO_MANY_GROUPS

# icmap_value_types_t
INT8, UINT8, INT16, UINT16, INT32, UINT32, INT64, UINT64 = range(1, 9)
FLOAT, DOUBLE, STRING, BINARY = 9, 10, 11, 12
TYPE_NOT_EXIST = 0          # exec/cmap.c ICMAP_VALUETYPE_NOT_EXIST, only on the wire

TYPE_NAMES = {INT8: "i8", UINT8: "u8", INT16: "i16", UINT16: "u16", INT32: "i32",
              UINT32: "u32", INT64: "i64", UINT64: "u64", FLOAT: "flt", DOUBLE: "dbl",
              STRING: "str", BINARY: "bin"}
TYPE_BY_NAME = {name: t for t, name in TYPE_NAMES.items()}
TYPE_BY_NAME["string"] = STRING   # coroproc.config Entry.cmap_type spelling

_FORMATS = {INT8: "<b", UINT8: "<B", INT16: "<h", UINT16: "<H", INT32: "<i", UINT32: "<I",
            INT64: "<q", UINT64: "<Q", FLOAT: "<f", DOUBLE: "<d"}
FIXED_LEN = {t: struct.calcsize(f) for t, f in _FORMATS.items()}
INTEGER_TYPES = frozenset((INT8, UINT8, INT16, UINT16, INT32, UINT32, INT64, UINT64))
VALID_TYPES = frozenset(range(1, 13))

KEYNAME_MIN_CHARS = 3       # ICMAP_KEYNAME_MINLEN
KEYNAME_MAX_CHARS = 255     # ICMAP_KEYNAME_MAXLEN
VALUE_MAX_BYTES = 16 * 1024  # ICMAP_MAX_VALUE_LEN
_KEYNAME_RE = re.compile(rb"[A-Za-z0-9._/:-]+")

# exec/main.c set_icmap_ro_keys_flag: whole prefixes, then single keys that cannot change
# at run time. Clients get CS_ERR_ACCESS on set/delete/inc/dec of these.
RO_PREFIXES = ("internal_configuration.", "runtime.services.", "runtime.config.",
               "runtime.totem.", "uidgid.config.", "system.", "nodelist.")
RO_KEYS = frozenset((
    "totem.crypto_cipher", "totem.crypto_hash", "totem.crypto_model", "totem.keyfile",
    "totem.key", "totem.secauth", "totem.ip_version", "totem.rrp_mode", "totem.transport",
    "totem.cluster_name", "totem.netmtu", "totem.threads", "totem.version", "totem.nodeid",
    "totem.clear_node_high_bit", "config.reload_in_progress",
    "config.totemconfig_reload_in_progress"))


def key_name_valid(name: bytes) -> bool:
    """icmap_check_key_name: 3..255 characters of [A-Za-z0-9._-/:]."""
    return (KEYNAME_MIN_CHARS <= len(name) <= KEYNAME_MAX_CHARS
            and _KEYNAME_RE.fullmatch(name) is not None)


def key_is_ro(name: str) -> bool:
    return name in RO_KEYS or name.startswith(RO_PREFIXES)


def check_value(value_type: int, value: bytes) -> int:
    """icmap_check_value_len, on the bytes a client sent; CS_OK or CS_ERR_INVALID_PARAM.

    Strings arrive as the bytes the client counted (cmapctl and libcmap send strlen + 1);
    a client length longer than the string plus its NUL is refused, as Corosync does.
    """
    if value_type not in VALID_TYPES or len(value) > VALUE_MAX_BYTES:
        return CS_ERR_INVALID_PARAM
    if value_type in FIXED_LEN:
        return CS_OK if len(value) == FIXED_LEN[value_type] else CS_ERR_INVALID_PARAM
    if value_type == STRING:
        nul = value.find(b"\0")
        string_len = len(value) if nul < 0 else nul
        return CS_OK if len(value) <= string_len + 1 else CS_ERR_INVALID_PARAM
    return CS_OK


def stored_bytes(value_type: int, value: bytes) -> bytes:
    """What icmap_set_r keeps: strings cut at their NUL (or length) plus one NUL byte."""
    if value_type == STRING:
        nul = value.find(b"\0")
        return (value if nul < 0 else value[:nul]) + b"\0"
    return bytes(value)


def encode(value_type: int, value) -> bytes:
    """A Python value → the bytes the store keeps for `value_type`."""
    if value_type in _FORMATS:
        return struct.pack(_FORMATS[value_type], value)
    if value_type == STRING:
        raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
        return stored_bytes(STRING, raw)
    if value_type == BINARY:
        return bytes(value)
    raise ValueError(f"cmap value type {value_type} is not one of 1..12")


def decode(value_type: int, raw: bytes):
    """Stored bytes → a Python value (int, float, str or bytes)."""
    if value_type in _FORMATS:
        return struct.unpack(_FORMATS[value_type], raw)[0]
    if value_type == STRING:
        return raw.rstrip(b"\0").decode("utf-8", "surrogateescape")
    return bytes(raw)


def wrap_integer(value_type: int, value: int) -> int:
    """Two's-complement wrap as icmap_adjust_int's C arithmetic on u8/u16/u32/u64."""
    bits = FIXED_LEN[value_type] * 8
    value &= (1 << bits) - 1
    signed = value_type in (INT8, INT16, INT32, INT64)
    if signed and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value
