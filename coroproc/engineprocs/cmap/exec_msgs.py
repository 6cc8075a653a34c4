"""CMAP's one daemon-to-daemon message, MESSAGE_REQ_EXEC_CMAP_MCAST, byte for byte.

exec/cmap.c (Corosync 3.1.7) sends it in sync (reason SYNC) and when
totem.config_version changes (reason NEW_CONFIG_VERSION), with one item:
totem.config_version. Layout after the 16-byte qb_ipc_request_header (which the host
adds: id (0 << 16) | 0, size = whole message), every field in an 8-byte slot:

    reason u8 @0, no_items u8 @8, reserved u8 @16, reserved u8 @24      -> 32 bytes
    then no_items items, each padded to a multiple of 8 bytes:
        key_name mar_name_t {u16 length @0, u8 value[256] @8}            (264 bytes)
        value_type u8 @264, value_len u64 @272, value[value_len] @280

An absent key travels as type 0 (ICMAP_VALUETYPE_NOT_EXIST) with length 0. Corosync
sends at most 32 items per message.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from . import keys as K

FN_MCAST = 0
REASON_SYNC = 0
REASON_NEW_CONFIG_VERSION = 1
ITEMS_MAX = 32                       # MAX_REQ_EXEC_CMAP_MCAST_ITEMS

_HEAD = struct.Struct("<B7xB7xB7xB7x")    # reason, no_items, reserved1, reserved2
_ITEM = struct.Struct("<H6x256sB7xQ")     # key_name.length, key_name.value, type, len
HEAD_BYTES = _HEAD.size                   # 32
ITEM_HEAD_BYTES = _ITEM.size              # 280
NAME_BYTES_MAX = 255                      # strcpy into value[256] keeps a NUL


class ExecMessageError(ValueError):
    """A CMAP exec message that does not parse; the text says what and where."""


@dataclass(frozen=True)
class McastItem:
    key: str
    value_type: int          # 0 = key did not exist on the sender
    value: bytes


@dataclass(frozen=True)
class Mcast:
    reason: int
    items: tuple[McastItem, ...]

    def find(self, key: str):
        for item in self.items:
            if item.key == key:
                return item
        return None


def _align8(n: int) -> int:
    return (n + 7) & ~7


def pack_mcast(reason: int, items: list[McastItem]) -> bytes:
    """The body after the exec header, as cmap_mcast_send builds it."""
    if len(items) > ITEMS_MAX:
        raise ValueError(f"{len(items)} items in one CMAP mcast; Corosync allows {ITEMS_MAX}")
    parts = [_HEAD.pack(reason, len(items), 0, 0)]
    for item in items:
        name = item.key.encode("ascii")
        if len(name) > NAME_BYTES_MAX:
            raise ValueError(f"key {item.key[:40]!r}...: longer than {NAME_BYTES_MAX} bytes")
        raw = _ITEM.pack(len(name), name, item.value_type, len(item.value)) + item.value
        parts.append(raw + b"\0" * (_align8(len(raw)) - len(raw)))
    return b"".join(parts)


def unpack_mcast(body) -> Mcast:
    """Parse a received body; raises ExecMessageError on anything malformed."""
    body = bytes(body)
    if len(body) < HEAD_BYTES:
        raise ExecMessageError(f"CMAP mcast body is {len(body)} bytes; the fixed part "
                               f"alone is {HEAD_BYTES}")
    reason, count, _, _ = _HEAD.unpack_from(body, 0)
    offset, items = HEAD_BYTES, []
    for index in range(count):
        if offset + ITEM_HEAD_BYTES > len(body):
            raise ExecMessageError(f"CMAP mcast item {index} of {count} starts at byte "
                                   f"{offset} but the body ends at {len(body)}")
        name_len, name, value_type, value_len = _ITEM.unpack_from(body, offset)
        if name_len > NAME_BYTES_MAX:
            raise ExecMessageError(f"CMAP mcast item {index}: key name length {name_len} "
                                   f"> {NAME_BYTES_MAX}")
        end = offset + ITEM_HEAD_BYTES + value_len
        if end > len(body):
            raise ExecMessageError(f"CMAP mcast item {index}: value_len {value_len} runs "
                                   f"past the end of the {len(body)}-byte body")
        key = name[:name_len].decode("ascii", "replace")
        items.append(McastItem(key, value_type, body[offset + ITEM_HEAD_BYTES:end]))
        offset = _align8(end)
    return Mcast(reason, tuple(items))


def config_version_item(value) -> McastItem:
    """The item for totem.config_version: u64 when set, type 0 when absent (None)."""
    if value is None:
        return McastItem("totem.config_version", K.TYPE_NOT_EXIST, b"")
    value_type, raw = value
    return McastItem("totem.config_version", value_type, raw)


def config_version_of(message: Mcast) -> int:
    """What exec/cmap.c reads from a message: the u64 value, 0 if absent or another type."""
    item = message.find("totem.config_version")
    if item is None or item.value_type != K.UINT64 or len(item.value) != 8:
        return 0
    return struct.unpack("<Q", item.value)[0]
