"""Event queues a jitted engine can fill: the Python side (ipc/jit/evqueue.py has the
kernels and the layout).

An IpcServer made with `event_queues=EventQueues(...)` gives each new connection a slot
here (while slots last; the rest keep the deque of connection.py). The connection then
queues and sends every event through its slot, and an engine's jitted delivery code may
append to the same slot (the arrays qs, rows, arena), so one queue keeps the order of all
its events.

Memory: `slots × region_bytes` of address space, reserved at once but backed by pages
only as the queues use them (numpy's zeroed allocation is a lazy anonymous mapping).
"""
from __future__ import annotations

import numpy as np

from coroproc.ipc.jit import evqueue as K
from coroproc.shm.lazymem import lazy_zeros
from coroproc.shm.syscalls import IOVEC_WORDS, MMSGHDR_WORDS

# 16 connections of 64 MiB each (connection.py's byte bound): 1 GiB of address space,
# backed only where queues reach; further connections keep connection.py's deque
SLOTS_DEFAULT = 16
REGION_BYTES_DEFAULT = 64 << 20
ROWS_PER_SLOT_DEFAULT = 1 << 20    # = server.EVENT_QUEUE_MAX: rows are only backed when used


class EventQueues:
    """Every slot of one IPC server (one thread uses it: the scratch arrays are shared)."""

    def __init__(self, slots: int = SLOTS_DEFAULT, region_bytes: int = REGION_BYTES_DEFAULT,
                 rows_per_slot: int = ROWS_PER_SLOT_DEFAULT):
        if slots < 1 or region_bytes < 4096 or rows_per_slot < 1:
            raise ValueError(f"event queues: slots={slots}, region_bytes={region_bytes}, "
                             f"rows_per_slot={rows_per_slot}: need >= 1, >= 4096, >= 1")
        self.region_bytes = region_bytes
        self.qs = np.zeros((slots, K.Q_WORDS), np.int64)
        self.qs[:, K.Q_FD] = -1
        self.rows = lazy_zeros((slots, rows_per_slot, 2), np.int64)
        self.arena = lazy_zeros(slots * region_bytes, np.uint8)
        self.mm = np.zeros((K.SEND_BATCH_MAX, MMSGHDR_WORDS), np.int64)
        self.iov = np.zeros((K.SEND_BATCH_MAX, IOVEC_WORDS), np.int64)
        self._free = list(range(slots - 1, -1, -1))
        self.generation = 0       # attaches and detaches: a table of slots may be stale

    def in_use(self, slot: int) -> bool:
        return bool(self.qs[slot, K.Q_IN_USE])

    def attach(self, events_max: int, bytes_max: int):
        """A queue for one connection, bounded by events_max events and bytes_max bytes
        (each at most what a slot holds); None when every slot is taken."""
        if not self._free:
            return None
        slot = self._free.pop()
        self.generation += 1
        q = self.qs[slot]
        q[:] = 0
        q[K.Q_FD] = -1
        q[K.Q_ROWS_MAX] = min(events_max, self.rows.shape[1])
        q[K.Q_BYTES_MAX] = min(bytes_max, self.region_bytes)
        q[K.Q_IN_USE] = 1
        return EventQueue(self, slot)

    def _detach(self, slot: int) -> None:
        self.generation += 1
        self.qs[slot, :] = 0
        self.qs[slot, K.Q_FD] = -1
        self._free.append(slot)


class EventQueue:
    """One connection's queue (its slot in EventQueues)."""

    __slots__ = ("_qs", "owner", "slot")

    def __init__(self, owner: EventQueues, slot: int):
        self.owner = owner
        self.slot = slot
        self._qs = owner.qs[slot]

    @property
    def count(self) -> int:
        q = self._qs
        return int(q[K.Q_RHEAD] - q[K.Q_RTAIL])

    @property
    def queued_bytes(self) -> int:
        q = self._qs
        return int(q[K.Q_HEAD] - q[K.Q_TAIL])

    @property
    def sent(self) -> int:
        return int(self._qs[K.Q_SENT])

    def connected(self, fd: int, ctrl_sent_addr: int) -> None:
        """The event socket is connected: flushes may send on fd and count in the
        control file's int32 at ctrl_sent_addr."""
        self._qs[K.Q_FD] = fd
        self._qs[K.Q_CTRL_SENT] = ctrl_sent_addr

    def push(self, message) -> bool:
        o = self.owner
        src = np.frombuffer(message, np.uint8)
        return bool(K.evq_push(o.qs, o.rows, o.arena, self.slot, src, src.shape[0]))

    def flush(self) -> tuple[int, int]:
        """(events sent, errno): see ipc/jit/evqueue.evq_flush."""
        o = self.owner
        sent, err = K.evq_flush(o.qs, o.rows, o.arena, o.mm, o.iov, self.slot)
        return int(sent), int(err)

    def drop_head(self) -> int:
        o = self.owner
        return int(K.evq_drop_head(o.qs, o.rows, o.arena, self.slot))

    def detach(self) -> None:
        if self.slot >= 0:
            self.owner._detach(self.slot)
            self.slot = -1
