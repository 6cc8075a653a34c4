"""Registered buffers: one anonymous mapping carved into receive slots and send slots.

Why one mapping: one memory registration (MR) covers all buffers, the kernel pins it
once, and we own its lifetime (pyverbs may free a buffer it allocated itself before we
are done with it). This file owns the bookkeeping only; verbs.py registers the mapping.
Everything here works without a device, so the accounting is tested for real.

Receive slots: GRH_BYTES + ud_mtu_bytes each (the HCA writes the GRH area first), all
posted to the receive queue at start, each reposted as soon as its completion has been
consumed. Invariant: posted + held == capacity.

Send slots: ud_mtu_bytes each. A slot is in flight from ibv_post_send until a completion
covers it. Only every `signal_every`-th send asks for a completion (a CQE per send would
cost a poll per send); send completions of one QP arrive in posting order, so a signalled
completion for wr_id N frees every slot posted up to N. In-flight sends are consecutive
wr_ids, so with signal_every <= capacity a full pool always holds a signalled send whose
completion will free slots; the send that takes the last free slot is signalled as well
(belt and braces, and it frees the whole pool at once). Invariant: free + in_flight ==
capacity.
"""
from __future__ import annotations

import ctypes
import mmap
from collections import deque


class Arena:
    """An anonymous page-aligned mapping; `address` is what ibv_reg_mr registers."""

    def __init__(self, length_bytes: int):
        assert length_bytes > 0
        self.length_bytes = length_bytes
        self._map = mmap.mmap(-1, length_bytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        probe = ctypes.c_char.from_buffer(self._map)
        self.address = ctypes.addressof(probe)
        del probe                       # an exported buffer would block close()
        self.view = memoryview(self._map)

    def close(self) -> None:
        """Call only after the MR over it is deregistered (the HCA may still write into it)."""
        if self._map is not None:
            self.view.release()
            self._map.close()
            self._map = None


class RecvSlots:
    def __init__(self, capacity: int, slot_bytes: int, base_offset: int):
        assert capacity >= 1 and slot_bytes >= 1
        self.capacity = capacity
        self.slot_bytes = slot_bytes
        self.base_offset = base_offset
        self._posted = bytearray(capacity)
        self.posted = 0

    @property
    def span_bytes(self) -> int:
        return self.capacity * self.slot_bytes

    def offset(self, slot: int) -> int:
        assert 0 <= slot < self.capacity, slot
        return self.base_offset + slot * self.slot_bytes

    def mark_posted(self, slot: int) -> None:
        assert not self._posted[slot], f"receive slot {slot} posted twice"
        self._posted[slot] = 1
        self.posted += 1

    def mark_completed(self, slot: int) -> None:
        """A completion (success or error) handed the slot back to us."""
        assert 0 <= slot < self.capacity and self._posted[slot], \
            f"completion for receive slot {slot} that is not posted"
        self._posted[slot] = 0
        self.posted -= 1

    def held(self) -> int:
        return self.capacity - self.posted


class SendSlots:
    def __init__(self, capacity: int, slot_bytes: int, base_offset: int, signal_every: int):
        assert capacity >= 2 and 1 <= signal_every <= capacity, (capacity, signal_every)
        self.capacity = capacity
        self.slot_bytes = slot_bytes
        self.base_offset = base_offset
        self.signal_every = signal_every
        self._free = list(range(capacity - 1, -1, -1))
        self._in_flight: deque[tuple[int, int]] = deque()   # (wr_id, slot) in posting order
        self._next_wr_id = 1

    @property
    def span_bytes(self) -> int:
        return self.capacity * self.slot_bytes

    def free(self) -> int:
        return len(self._free)

    def in_flight(self) -> int:
        return len(self._in_flight)

    def offset(self, slot: int) -> int:
        assert 0 <= slot < self.capacity, slot
        return self.base_offset + slot * self.slot_bytes

    def acquire(self) -> int | None:
        """A free slot to fill, or None when every slot is in flight."""
        return self._free.pop() if self._free else None

    def unacquire(self, slot: int) -> None:
        """Give back a slot that was acquired but not posted (ibv_post_send failed)."""
        assert slot not in self._free and all(s != slot for _, s in self._in_flight)
        self._free.append(slot)

    def next_wr(self) -> tuple[int, bool]:
        """(wr_id, signalled) for the send about to be posted with the slot just acquired."""
        wr_id = self._next_wr_id
        return wr_id, (wr_id % self.signal_every == 0) or not self._free

    def posted(self, slot: int, wr_id: int) -> None:
        assert wr_id == self._next_wr_id, (wr_id, self._next_wr_id)
        self._next_wr_id += 1
        self._in_flight.append((wr_id, slot))
        assert len(self._free) + len(self._in_flight) <= self.capacity

    def completed(self, wr_id: int) -> int:
        """A completion for wr_id: free it and every send posted before it; return how many."""
        freed = 0
        while self._in_flight and self._in_flight[0][0] <= wr_id:
            _, slot = self._in_flight.popleft()
            self._free.append(slot)
            freed += 1
        assert len(self._free) + len(self._in_flight) == self.capacity
        return freed
