"""The typed key/value map behind CMAP (Corosync's icmap): values, prefix walks, tracking.

Owns the semantics every CMAP client sees: a value keeps the type it was stored with;
setting the same type and bytes again changes nothing and notifies nobody; deleting a
missing key is CS_ERR_NOT_EXIST; inc/dec work on integer types only and wrap as C does.
Keys are kept sorted (bytewise, as libqb's trie walks them), so a prefix walk resumes
from "the first key after the last one returned" and stays correct while keys come and
go underneath it — the same live view qb_map_pref_iter gives Corosync's clients.

Tracking follows libqb's trie notifiers: a track on key K fires for K itself; with
TRACK_PREFIX it fires for every key starting with K (K None or empty = every key).
Read-only prefixes are not enforced here (Corosync checks them in the lib handlers,
the daemon itself writes those keys); see keys.key_is_ro.
"""
from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

from . import keys as K

TRACK_DELETE = 1
TRACK_MODIFY = 2
TRACK_ADD = 4
TRACK_PREFIX = 8
TRACK_FLAGS_ALL = TRACK_ADD | TRACK_DELETE | TRACK_MODIFY | TRACK_PREFIX

# A bound on the map so a runaway client cannot grow the engine without limit; Corosync
# has none (malloc fails first). Far above any real configuration plus runtime keys.
KEYS_MAX = 262_144

Value = tuple[int, bytes]          # (icmap type, stored bytes)
Notify = Callable[[int, str, Value | None, Value | None], None]


@dataclass(eq=False)
class Track:
    key: str | None           # None: no key (only meaningful with TRACK_PREFIX)
    flags: int
    notify: Notify               # (event, key, new value or None, old value or None)

    def matches(self, key: str, event: int) -> bool:
        if not self.flags & event:
            return False
        if self.flags & TRACK_PREFIX:
            return not self.key or key.startswith(self.key)
        return key == self.key


class Store:
    def __init__(self, keys_max: int = KEYS_MAX):
        assert keys_max > 0
        self.keys_max = keys_max
        self._values: dict[str, Value] = {}
        self._sorted: list[str] = []
        self._tracks: list[Track] = []

    # ---- reading ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def get(self, key: str) -> Value | None:
        return self._values.get(key)

    def get_value(self, key: str, default=None):
        """Decoded Python value (int/float/str/bytes), for the engine's own reads."""
        item = self._values.get(key)
        return default if item is None else K.decode(*item)

    def iter_next(self, prefix: str, after: str | None) -> tuple[str, int, int] | None:
        """The first key with `prefix` sorted after `after` (None: from the start):
        (key, type, value length), or None when the walk is over."""
        start = bisect.bisect_left(self._sorted, prefix) if after is None \
            else bisect.bisect_right(self._sorted, after)
        if start < len(self._sorted):
            key = self._sorted[start]
            if key.startswith(prefix):
                value_type, raw = self._values[key]
                return key, value_type, len(raw)
        return None

    def names(self, prefix: str = "") -> list[str]:
        start = bisect.bisect_left(self._sorted, prefix)
        end = start
        while end < len(self._sorted) and self._sorted[end].startswith(prefix):
            end += 1
        return self._sorted[start:end]

    # ---- writing ----------------------------------------------------------------------
    def set(self, key: str, value_type: int, value: bytes) -> int:
        """icmap_set: client bytes (strings as sent, NUL optional). Returns a cs_error."""
        err = K.check_value(value_type, value)
        if err != K.CS_OK:
            return err
        new = (value_type, K.stored_bytes(value_type, value))
        old = self._values.get(key)
        if old is not None:
            if old == new:
                return K.CS_OK
        else:
            if not K.key_name_valid(key.encode("utf-8", "surrogateescape")):
                return K.CS_ERR_NAME_TOO_LONG
            if len(self._values) >= self.keys_max:
                return K.CS_ERR_NO_RESOURCES
            bisect.insort(self._sorted, key)
        self._values[key] = new
        self._notify(TRACK_MODIFY if old is not None else TRACK_ADD, key, new, old)
        return K.CS_OK

    def set_value(self, key: str, value_type: int, value) -> int:
        """Set from a Python value (the engine's own writes)."""
        return self.set(key, value_type, K.encode(value_type, value))

    def delete(self, key: str) -> int:
        old = self._values.pop(key, None)
        if old is None:
            return K.CS_ERR_NOT_EXIST
        del self._sorted[bisect.bisect_left(self._sorted, key)]
        self._notify(TRACK_DELETE, key, None, old)
        return K.CS_OK

    def adjust_int(self, key: str, step: int, fast: bool = False) -> int:
        """icmap_adjust_int: add `step` to an integer value, wrapping as C does.

        fast=True is icmap_fast_adjust_int (the daemon's own counters): trackers get the
        MODIFY with no old value, as Corosync's in-place update reports it."""
        item = self._values.get(key)
        if item is None:
            return K.CS_ERR_NOT_EXIST
        value_type, raw = item
        if value_type not in K.INTEGER_TYPES:
            return K.CS_ERR_INVALID_PARAM
        value = K.wrap_integer(value_type, K.decode(value_type, raw) + step)
        if not fast:
            return self.set_value(key, value_type, value)
        new = (value_type, K.encode(value_type, value))
        self._values[key] = new
        self._notify(TRACK_MODIFY, key, new, None)
        return K.CS_OK

    # ---- tracking ---------------------------------------------------------------------
    def track_add(self, key: str | None, flags: int, notify: Notify) -> Track:
        if flags & ~TRACK_FLAGS_ALL:
            raise ValueError(f"track flags {flags:#x}: allowed bits are ADD=4 DELETE=1 "
                             "MODIFY=2 PREFIX=8")
        track = Track(key, flags, notify)
        self._tracks.append(track)
        return track

    def track_delete(self, track: Track) -> bool:
        try:
            self._tracks.remove(track)
            return True
        except ValueError:
            return False

    @property
    def track_count(self) -> int:
        return len(self._tracks)

    def watches(self, prefix: str) -> bool:
        """Whether a track may report a key that starts with prefix."""
        for track in self._tracks:
            key = track.key or ""
            if track.flags & TRACK_PREFIX:
                if key.startswith(prefix) or prefix.startswith(key):
                    return True
            elif key.startswith(prefix):
                return True
        return False

    def _notify(self, event: int, key: str, new: Value | None, old: Value | None):
        # A callback may add or delete tracks (or keys): walk a copy, skip removed ones.
        for track in list(self._tracks):
            if track.matches(key, event) and track in self._tracks:
                track.notify(event, key, new, old)
