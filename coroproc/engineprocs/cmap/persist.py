"""What a CMAP engine keeps across a restart of its process alone: the whole icmap store
(not the stats map, not connections' tracks and iterators) and the config_version state —
and the journal that makes client writes survive a crash between two snapshots.

Why a journal: the host snapshots an engine at positions of the ordered stream, but CMAP
writes come from local clients, outside that stream; a `corosync-cmapctl -s` answered OK
and followed by a kill -9 before the next snapshot would be lost. So every successful
client write on the icmap map appends the key's resulting state (value, or "deleted") to
`<dir>/cmap-<nodeid>.journal` *before* the client gets its answer. Records carry a
sequence number; a snapshot names the last one it includes, and `restore` applies only
later ones (records are "set to this final value", so applying one twice is harmless).
The directory is the node's engine snapshot directory, which the supervisor empties at
every node start and stop, so a journal never outlives its node incarnation. A journal
present when a fresh engine starts comes from a predecessor that died before its first
snapshot: it is applied over the initial content. The file is compacted (rewritten with
the records newer than the last snapshot known saved) once it holds JOURNAL_COMPACT_RECORDS.
"""
from __future__ import annotations

import os

import orjson

from .store import Store

SNAPSHOT_VERSION = 1
JOURNAL_COMPACT_RECORDS = 4096
_DELETED = None


# ---- snapshot ---------------------------------------------------------------------------
def dump(store: Store, engine_state: dict, journal_seq: int) -> bytes:
    values = [[key, value_type, raw.hex()] for key, (value_type, raw) in
              ((k, store.get(k)) for k in store.names())]
    return orjson.dumps({"v": SNAPSHOT_VERSION, "values": values, "engine": engine_state,
                         "journal_seq": journal_seq})


def load(data: bytes, store: Store) -> tuple[dict, int]:
    """Fill a fresh `store` (no tracks: nobody is notified); (engine state, journal seq)."""
    st = orjson.loads(data)
    if st.get("v") != SNAPSHOT_VERSION:
        raise ValueError(f"CMAP snapshot version {st.get('v')!r}: this engine reads "
                         f"{SNAPSHOT_VERSION} only")
    assert len(store) == 0 and store.track_count == 0, "restore into a fresh store only"
    for key, value_type, raw_hex in st["values"]:
        _apply(store, key, (value_type, bytes.fromhex(raw_hex)))
    return st["engine"], int(st["journal_seq"])


def _apply(store: Store, key: str, value) -> None:
    if value is _DELETED:
        store.delete(key)
        return
    err = store.set(key, value[0], value[1])
    if err != 1:     # CS_OK: a stored value was valid when it was stored
        raise ValueError(f"CMAP snapshot/journal value of {key!r} refused: cs_error {err}")


# ---- journal ----------------------------------------------------------------------------
def journal_path(directory: str, nodeid: int) -> str:
    return os.path.join(directory, f"cmap-{nodeid}.journal")


class Journal:
    """Append-only record of client writes; `path` None keeps nothing (no run dir)."""

    def __init__(self, path: str | None):
        self.path = path
        self.seq = 0                 # last record written
        self.saved_seq = 0           # included in a snapshot that is on disk
        self._pending_seq = 0        # included in the snapshot being taken
        self.records_in_file = 0
        self._fd = None
        if path is not None:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                               0o600)

    def read(self) -> list[tuple[int, str, object]]:
        """Every complete record in the file, in order (a torn last line is skipped)."""
        if self.path is None:
            return []
        with open(self.path, "rb") as f:
            lines = f.read().split(b"\n")
        out = []
        for line in lines:
            if not line:
                continue
            try:
                seq, key, value = orjson.loads(line)
            except (orjson.JSONDecodeError, ValueError):
                break            # the predecessor died inside this write: nothing follows
            out.append((seq, key, _DELETED if value is None
                        else (value[0], bytes.fromhex(value[1]))))
        if out:
            self.seq = max(self.seq, out[-1][0])
        self.records_in_file = len(out)
        return out

    def replay(self, store: Store, after_seq: int) -> int:
        """Apply the records newer than `after_seq` to `store`; how many were applied."""
        applied = 0
        for seq, key, value in self.read():
            if seq > after_seq:
                _apply(store, key, value)
                applied += 1
        return applied

    def record(self, key: str, value) -> None:
        """The client's write is applied; persist its result before the answer goes out."""
        if self._fd is None:
            return
        self.seq += 1
        raw = None if value is None else [value[0], bytes(value[1]).hex()]
        os.write(self._fd, orjson.dumps([self.seq, key, raw]) + b"\n")
        self.records_in_file += 1

    def restored(self, seq: int) -> None:
        """A snapshot naming `seq` was loaded: it is on disk."""
        self.saved_seq = self._pending_seq = seq

    def snapshot_taken(self, seq: int) -> None:
        """snapshot() ran with `seq`: the previous snapshot's records are now disposable
        (it was saved before this one was asked for)."""
        self.saved_seq = max(self.saved_seq, self._pending_seq)
        self._pending_seq = seq
        if self._fd is not None and self.records_in_file >= JOURNAL_COMPACT_RECORDS:
            self._compact()

    def _compact(self) -> None:
        keep = [r for r in self.read() if r[0] > self.saved_seq]
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            for seq, key, value in keep:
                raw = None if value is None else [value[0], value[1].hex()]
                f.write(orjson.dumps([seq, key, raw]) + b"\n")
        os.replace(tmp, self.path)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self.records_in_file = len(keep)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
