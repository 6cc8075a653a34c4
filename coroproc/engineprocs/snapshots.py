"""Where an engine process keeps what a restart of that process alone needs.

Two files per engine process in shared memory (/dev/shm, named as the node's rings are:
shm/names.py), so that a snapshot costs no file system work whatever the run_dir is on —
on ext4 the replace-by-rename started writeback of the new file, ~0.3 ms a snapshot at
the median and 1 ms at worst on these VMs, once a second in the CPG engine, in the
middle of the deliveries (against 27 µs on tmpfs):
* `coroproc.<cluster>.<node>.snap.<name>` — orjson: the node incarnation, the
  delivery-ring position the snapshot reflects, and per hosted engine its EngineCore
  state and its `Engine.snapshot()` bytes. Written to a temporary file and renamed, so a
  crash leaves the old or the new one.
* `coroproc.<cluster>.<node>.pos.<name>` — 8 bytes: the position up to which ordered
  records were handled (and their multicasts sent). Rewritten in place after every batch
  (one pwrite).
The host releases delivery-ring records only up to the last snapshot, so after a restart
every record from the snapshot on is still in the ring: it restores the snapshot and
replays records up to `.pos` with multicasts suppressed (they went out before the
crash), then goes live. The supervisor removes them with the node's rings at start and
stop: a snapshot never outlives the node incarnation it belongs to. `<run_dir>/engines/`
holds what an engine keeps in the run directory instead (the CMAP engine's journal),
removed at start and stop as well.
"""
from __future__ import annotations

import os
import struct

import orjson

from coroproc.shm.names import SHM_DIR, segment_name

SNAPSHOT_DIR = "engines"
_POS = struct.Struct("<Q")


def snapshot_dir(run_dir: str) -> str:
    return os.path.join(run_dir, SNAPSHOT_DIR)


def remove_all(run_dir: str) -> None:
    """The supervisor's cleanup of `<run_dir>/engines/` (snapshots go with the rings)."""
    d = snapshot_dir(run_dir)
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return
    for name in names:
        try:
            os.unlink(os.path.join(d, name))
        except FileNotFoundError:
            pass


def _shm_path(cluster_name: str, nodeid: int, role: str) -> str:
    return os.path.join(SHM_DIR, segment_name(cluster_name, nodeid, role).lstrip("/"))


class SnapshotStore:
    def __init__(self, cluster_name: str, nodeid: int, name: str, incarnation_us: int):
        self.snap_path = _shm_path(cluster_name, nodeid, f"snap.{name}")
        self.pos_path = _shm_path(cluster_name, nodeid, f"pos.{name}")
        self.incarnation_us = incarnation_us
        self._pos_fd = os.open(self.pos_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def load(self) -> tuple[dict | None, int]:
        """(snapshot of this node incarnation or None, handled position or 0)."""
        raw = os.pread(self._pos_fd, _POS.size, 0)
        handled = _POS.unpack(raw)[0] if len(raw) == _POS.size else 0
        try:
            with open(self.snap_path, "rb") as f:
                snap = orjson.loads(f.read())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return None, 0
        if snap.get("incarnation") != self.incarnation_us:
            return None, 0       # an earlier node incarnation: its state is void
        return snap, handled

    def save(self, pos: int, units: dict, host_state: dict) -> None:
        tmp = self.snap_path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(orjson.dumps({"incarnation": self.incarnation_us, "pos": pos,
                                  "host": host_state, "units": units}))
        os.replace(tmp, self.snap_path)

    def handled(self, pos: int) -> None:
        os.pwrite(self._pos_fd, _POS.pack(pos), 0)

    def close(self) -> None:
        os.close(self._pos_fd)
