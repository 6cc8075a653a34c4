"""coroproc.shm — shared-memory SPSC record rings, their doorbell and their names.

atomics.py  memory-ordering intrinsics for @njit code
layout.py   header words, record framing, size rules
kernels.py  jitted push/reserve/commit/peek/release and the sleep handshake
ring.py     ShmRing: segment life cycle, validation, Python push/pop (re-exports kernels)
doorbell.py Doorbell: the consumer's eventfd and the sleep protocol
syscalls.py poll, recvfrom, recvmsg, sendmsg, eventfd and clock calls for @njit code (libc by name)
names.py    segment naming and per-node cleanup
See docs/shm.md for the layout and the ordering argument. Compiled code is cached per
source hash: see coroproc/jitcache.py.
"""
from coroproc.jitcache import CACHE_DIR  # noqa: F401  (must run before any @njit(cache=True))

from coroproc.shm.doorbell import Doorbell
from coroproc.shm.errors import ShmError
from coroproc.shm.names import node_segments, remove_node_segments, segment_name
from coroproc.shm.ring import ShmRing

__all__ = ["Doorbell", "ShmError", "ShmRing", "node_segments", "remove_node_segments", "segment_name"]
