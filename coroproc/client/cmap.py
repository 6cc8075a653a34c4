"""Python libcmap: the node-local configuration/statistics map over libqb socket IPC.

This file owns the client side of CMAP as libcmap 3.1.7 behaves (lib/cmap.c): get/set
with typed values, delete, inc/dec, prefix iteration, change tracking with callbacks
run from dispatch(), and the choice of map (icmap or the read-only stats map) made once
per connection with SET_CURRENT_MAP.

Values are Python objects: int for the eight integer types, float for flt/dbl, str for
str (sent without its NUL, returned without it), bytes for bin. Notification callbacks:
  callback(cmap, track_handle, event, key, new: NotifyValue, old: NotifyValue, user_data)
"""

import itertools
from typing import NamedTuple

from coroproc.client.base import ServiceHandle
from coroproc.ipc import cmap_structs as S
from coroproc.ipc.cmap_structs import (  # re-exported for users of this module
    BINARY,
    DOUBLE,
    FLOAT,
    INT8,
    INT16,
    INT32,
    INT64,
    MAP_ICMAP,
    MAP_STATS,
    STRING,
    TRACK_ADD,
    TRACK_DELETE,
    TRACK_MODIFY,
    TRACK_PREFIX,
    UINT8,
    UINT16,
    UINT32,
    UINT64,
)
from coroproc.ipc.cserror import (
    CS_ERR_INVALID_PARAM,
    CS_ERR_MESSAGE_ERROR,
    CS_ERR_NAME_TOO_LONG,
    CS_ERR_NO_SECTIONS,
    CS_OK,
    CsError,
)
from coroproc.ipc.mar import StructError

__all__ = [
    "BINARY",
    "DOUBLE",
    "FLOAT",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "MAP_ICMAP",
    "MAP_STATS",
    "STRING",
    "TRACK_ADD",
    "TRACK_DELETE",
    "TRACK_MODIFY",
    "TRACK_PREFIX",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "Cmap",
    "CmapIterEntry",
    "NotifyValue",
]

GET_RETRIES_MAX = 3   # a value that grows between "how long?" and "give it" is asked again
TRACKS_MAX = 65536    # trackers per handle; each costs the daemon a registration


class CmapIterEntry(NamedTuple):
    key: str
    value_type: int
    value_len: int


class NotifyValue(NamedTuple):
    """struct cmap_notify_value: type 0 / empty data when there is no such value."""
    type: int
    len: int
    data: bytes

    @property
    def value(self):
        return S.decode_value(self.type, self.data) if self.type else None


def _key_bytes(key, call):
    raw = key.encode() if isinstance(key, str) else bytes(key)
    if len(raw) >= S.CS_MAX_NAME_LENGTH:
        raise CsError(CS_ERR_NAME_TOO_LONG, call, f"key of {len(raw)} bytes, at most "
                      f"{S.CS_MAX_NAME_LENGTH - 1} allowed")
    return raw


class Cmap(ServiceHandle):
    """cmap_initialize_map(map) and the calls on the handle it returns."""

    service = "cmap"
    prefix = "cmap"

    def __init__(self, map: int = MAP_ICMAP, suffix: str = "", context=None):
        if map not in (MAP_ICMAP, MAP_STATS):
            raise CsError(CS_ERR_INVALID_PARAM, "cmap_initialize_map",
                          f"map={map}: allowed 0 (ICMAP) or 1 (STATS)")
        self.map = map
        self._tracks = {}                     # track_inst_handle -> (callback, user_data, handle)
        self._inst_ids = itertools.count(1)
        super().__init__(suffix=suffix, context=context)
        try:
            self._request("cmap_initialize_map", S.REQ_SET_CURRENT_MAP,
                          S.pack_req_set_current_map(map))
        except BaseException:
            self._finalized = True
            self._ipc.close()
            raise

    # ---- get --------------------------------------------------------------------------------

    def get_type_len(self, key):
        """(value_type, value_len) without the value (cmap_get with value NULL)."""
        call = f"cmap_get({key!r})"
        _, body = self._request(call, S.REQ_GET, S.pack_req_get(_key_bytes(key, call), 0))
        value_type, value_len, _ = self._decode(call, S.unpack_res_get, body)
        return value_type, value_len

    def get_raw(self, key):
        """(value_type, value bytes as stored — strings keep their NUL)."""
        call = f"cmap_get({key!r})"
        raw_key = _key_bytes(key, call)
        for _ in range(GET_RETRIES_MAX):
            value_type, value_len = self.get_type_len(key)
            if value_len == 0:
                return value_type, b""
            error, body = self._request(call, S.REQ_GET, S.pack_req_get(raw_key, value_len),
                                        accept=(CS_OK, CS_ERR_INVALID_PARAM))
            if error == CS_OK:
                value_type, _, value = self._decode(call, S.unpack_res_get, body)
                return value_type, value if value is not None else b""
        raise CsError(CS_ERR_INVALID_PARAM, call, f"value kept changing size over "
                      f"{GET_RETRIES_MAX} attempts")

    def get(self, key):
        """(value_type, Python value)."""
        value_type, raw = self.get_raw(key)
        try:
            return value_type, S.decode_value(value_type, raw)
        except StructError as exc:
            raise CsError(CS_ERR_MESSAGE_ERROR, f"cmap_get({key!r})", str(exc)) from None

    def _get_typed(self, key, want_type):
        value_type, value = self.get(key)
        if value_type != want_type:
            raise CsError(CS_ERR_INVALID_PARAM, f"cmap_get_{S.TYPE_NAMES[want_type]}({key!r})",
                          f"the key holds type {S.TYPE_NAMES.get(value_type, value_type)}")
        return value

    def get_int8(self, key): return self._get_typed(key, INT8)
    def get_uint8(self, key): return self._get_typed(key, UINT8)
    def get_int16(self, key): return self._get_typed(key, INT16)
    def get_uint16(self, key): return self._get_typed(key, UINT16)
    def get_int32(self, key): return self._get_typed(key, INT32)
    def get_uint32(self, key): return self._get_typed(key, UINT32)
    def get_int64(self, key): return self._get_typed(key, INT64)
    def get_uint64(self, key): return self._get_typed(key, UINT64)
    def get_float(self, key): return self._get_typed(key, FLOAT)
    def get_double(self, key): return self._get_typed(key, DOUBLE)
    def get_string(self, key): return self._get_typed(key, STRING)

    # ---- set / delete / adjust ------------------------------------------------------------

    def set(self, key, value, value_type: int) -> None:
        call = f"cmap_set({key!r})"
        try:
            raw = S.encode_value(value_type, value)
        except StructError as exc:
            raise CsError(CS_ERR_INVALID_PARAM, call, str(exc)) from None
        self._request(call, S.REQ_SET, S.pack_req_set(_key_bytes(key, call), value_type, raw))

    def set_int8(self, key, value): self.set(key, value, INT8)
    def set_uint8(self, key, value): self.set(key, value, UINT8)
    def set_int16(self, key, value): self.set(key, value, INT16)
    def set_uint16(self, key, value): self.set(key, value, UINT16)
    def set_int32(self, key, value): self.set(key, value, INT32)
    def set_uint32(self, key, value): self.set(key, value, UINT32)
    def set_int64(self, key, value): self.set(key, value, INT64)
    def set_uint64(self, key, value): self.set(key, value, UINT64)
    def set_float(self, key, value): self.set(key, value, FLOAT)
    def set_double(self, key, value): self.set(key, value, DOUBLE)
    def set_string(self, key, value): self.set(key, value, STRING)

    def delete(self, key) -> None:
        call = f"cmap_delete({key!r})"
        self._request(call, S.REQ_DELETE, S.pack_req_delete(_key_bytes(key, call)))

    def _adjust(self, key, step, name) -> None:
        call = f"{name}({key!r})"
        self._request(call, S.REQ_ADJUST_INT,
                      S.pack_req_adjust_int(_key_bytes(key, call), step))

    def inc(self, key) -> None:
        """+1 on an integer key (wraps as the daemon's C integer does)."""
        self._adjust(key, 1, "cmap_inc")

    def dec(self, key) -> None:
        self._adjust(key, -1, "cmap_dec")

    # ---- iteration --------------------------------------------------------------------------

    def iter(self, prefix=None):
        """Generator of CmapIterEntry(key, value_type, value_len), sorted by key."""
        call = f"cmap_iter_init({prefix!r})"
        raw = _key_bytes(prefix, call) if prefix else b""
        _, body = self._request(call, S.REQ_ITER_INIT, S.pack_req_iter_init(raw))
        handle = self._decode(call, S.unpack_res_iter_init, body)
        try:
            while True:
                error, body = self._request("cmap_iter_next", S.REQ_ITER_NEXT,
                                            S.pack_req_iter_next(handle),
                                            accept=(CS_OK, CS_ERR_NO_SECTIONS))
                if error == CS_ERR_NO_SECTIONS:
                    return
                item = self._decode("cmap_iter_next", S.unpack_res_iter_next, body)
                yield CmapIterEntry(item.key, item.value_type, item.value_len)
        finally:
            if not self._finalized:
                self._request("cmap_iter_finalize", S.REQ_ITER_FINALIZE,
                              S.pack_req_iter_finalize(handle))

    # ---- tracking ---------------------------------------------------------------------------

    def track_add(self, key, track_type: int, callback, user_data=None) -> int:
        """Register `callback` for ADD/DELETE/MODIFY (| PREFIX) on key; returns the track
        handle for track_delete(). Notifications run from dispatch()."""
        call = f"cmap_track_add({key!r})"
        if callback is None:
            raise CsError(CS_ERR_INVALID_PARAM, call, "a callback is required")
        if len(self._tracks) >= TRACKS_MAX:
            raise CsError(CS_ERR_INVALID_PARAM, call, f"at most {TRACKS_MAX} trackers per handle")
        inst = next(self._inst_ids)
        raw = _key_bytes(key, call) if key else b""
        _, body = self._request(call, S.REQ_TRACK_ADD, S.pack_req_track_add(raw, track_type, inst))
        handle = self._decode(call, S.unpack_res_track_add, body)
        self._tracks[inst] = (callback, user_data, handle)
        return handle

    def track_delete(self, track_handle: int) -> None:
        call = "cmap_track_delete"
        _, body = self._request(call, S.REQ_TRACK_DELETE, S.pack_req_track_delete(track_handle))
        inst = self._decode(call, S.unpack_res_track_delete, body)
        self._tracks.pop(inst, None)

    def _on_event(self, call, msg_id, body) -> None:
        if msg_id != S.RES_NOTIFY_CALLBACK:
            raise CsError(CS_ERR_MESSAGE_ERROR, call, f"unknown CMAP event id {msg_id}")
        ev = self._decode(call, S.unpack_notify_event, body)
        entry = self._tracks.get(ev.track_inst_handle)
        if entry is None:
            return  # deleted tracker: libcmap ignores these too
        callback, user_data, handle = entry
        callback(self, handle, ev.event, ev.key,
                 NotifyValue(ev.new_type, len(ev.new_value), ev.new_value),
                 NotifyValue(ev.old_type, len(ev.old_value), ev.old_value), user_data)
