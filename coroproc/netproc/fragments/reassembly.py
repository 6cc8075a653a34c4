"""Reassembly of fragmented link frames: a bounded table of partly received frames.

Bounded in every dimension: at most `capacity_entries` frames in progress (each owns one
preallocated slot of max_frame_bytes), each at most `timeout_ms` old, and a bounded memory
of recently completed frames so a late duplicate fragment is recognised rather than
starting a frame that can never complete. UD on a real fabric neither duplicates nor
reorders much, but a lost fragment is normal (Totem retransmits the whole frame), so
incomplete frames are the common waste: counted as `reasm_timed_out` (aged out) and
`reasm_evicted` (pushed out by a newer frame when the table was full).

The clock is an argument (now_ms), so tests drive time and nothing here sleeps.
Frames are keyed by (source, frame_id); the caller chooses the source key — the carrier
uses (sender nodeid from the header, sender QPN), so a restarted peer (new QPN) never
mixes fragments with its previous life.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from coroproc.netproc.fragments.wire import fragment_span

COUNTERS = ("reasm_frames", "reasm_duplicate", "reasm_inconsistent", "reasm_oversize",
            "reasm_timed_out", "reasm_evicted")


class _Partial:
    __slots__ = ("slot", "count", "chunk_bytes", "frame_bytes", "have", "received",
                 "started_ms")

    def __init__(self, slot: int, count: int, chunk_bytes: int, frame_bytes: int,
                 now_ms: int):
        self.slot = slot
        self.count = count
        self.chunk_bytes = chunk_bytes
        self.frame_bytes = frame_bytes
        self.have = bytearray(count)          # 1 per fragment received
        self.received = 0
        self.started_ms = now_ms


class Reassembler:
    def __init__(self, capacity_entries: int, max_frame_bytes: int, timeout_ms: int):
        assert capacity_entries >= 1 and max_frame_bytes >= 1 and timeout_ms >= 1
        self.capacity_entries = capacity_entries
        self.max_frame_bytes = max_frame_bytes
        self.timeout_ms = timeout_ms
        self._store = bytearray(capacity_entries * max_frame_bytes)
        self._view = memoryview(self._store)
        self._array = np.frombuffer(self._store, np.uint8)
        self._free = list(range(capacity_entries - 1, -1, -1))
        self._partial: dict[tuple, _Partial] = {}        # insertion order = age order
        self._done: OrderedDict[tuple, None] = OrderedDict()
        self._done_max = 4 * capacity_entries
        for name in COUNTERS:
            setattr(self, name, 0)

    def counters(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTERS} | {
            "reasm_in_progress": len(self._partial)}

    def in_progress(self) -> int:
        return len(self._partial)

    def expire(self, now_ms: int) -> int:
        """Drop frames started more than timeout_ms before now_ms; return how many."""
        dropped = 0
        while self._partial:
            key, part = next(iter(self._partial.items()))
            if now_ms - part.started_ms <= self.timeout_ms:
                break          # dict order is start order: the rest are younger
            self._release(key, part)
            dropped += 1
        self.reasm_timed_out += dropped
        return dropped

    def _release(self, key: tuple, part: _Partial) -> None:
        del self._partial[key]
        self._free.append(part.slot)
        assert len(self._free) + len(self._partial) == self.capacity_entries

    def _start(self, key, count, chunk_bytes, frame_bytes, now_ms) -> _Partial:
        self.expire(now_ms)
        if not self._free:
            oldest_key, oldest = next(iter(self._partial.items()))
            self._release(oldest_key, oldest)
            self.reasm_evicted += 1
        part = _Partial(self._free.pop(), count, chunk_bytes, frame_bytes, now_ms)
        self._partial[key] = part
        return part

    def add(self, key: tuple, frag_index: int, frag_count: int, chunk_bytes: int,
            frame_bytes: int, data, now_ms: int) -> memoryview | None:
        """Take one fragment (header already validated by wire.unpack_header).

        Returns the whole frame once its last missing fragment arrives: a view that stays
        valid until the next add() (copy it out first), else None."""
        part = self._part_for(key, frag_count, chunk_bytes, frame_bytes, now_ms)
        if part is None:
            return None
        if part.have[frag_index]:
            self.reasm_duplicate += 1
            return None
        start, stop = fragment_span(frag_index, chunk_bytes, frame_bytes)
        assert stop - start == len(data), (start, stop, len(data))
        base = part.slot * self.max_frame_bytes
        self._view[base + start:base + stop] = data
        part.have[frag_index] = 1
        part.received += 1
        return self._completed(key, part)

    def add_run(self, key: tuple, first_index: int, frag_count: int, chunk_bytes: int,
                frame_bytes: int, rows: np.ndarray, tail, now_ms: int) -> memoryview | None:
        """Take fragments first_index .. first_index + len(rows) at once (a GRO train of
        one frame; headers validated by the caller): rows is a 2-D uint8 array with the
        data of all but the last of them (chunk_bytes each), tail the last one's data.
        Returns what add() returns. One copy for the run instead of one call per
        fragment; a run overlapping fragments already held counts as a duplicate."""
        part = self._part_for(key, frag_count, chunk_bytes, frame_bytes, now_ms)
        if part is None:
            return None
        n = len(rows) + 1
        if part.have.find(1, first_index, first_index + n) >= 0:
            self.reasm_duplicate += 1
            return None
        start = first_index * chunk_bytes
        tail_start, stop = fragment_span(first_index + n - 1, chunk_bytes, frame_bytes)
        assert rows.shape[1:] == (chunk_bytes,) and stop - tail_start == len(tail)
        base = part.slot * self.max_frame_bytes
        self._array[base + start:base + tail_start].reshape(len(rows), chunk_bytes)[:] = rows
        self._view[base + tail_start:base + stop] = tail
        part.have[first_index:first_index + n] = b"\x01" * n
        part.received += n
        return self._completed(key, part)

    def _part_for(self, key, frag_count, chunk_bytes, frame_bytes, now_ms) -> _Partial | None:
        """The frame in progress this fragment belongs to (started if new), or None (and
        counted) if the fragment cannot belong to any."""
        if frame_bytes > self.max_frame_bytes:
            self.reasm_oversize += 1
            return None
        if key in self._done:
            self.reasm_duplicate += 1
            return None
        part = self._partial.get(key)
        if part is None:
            return self._start(key, frag_count, chunk_bytes, frame_bytes, now_ms)
        if (part.count, part.chunk_bytes, part.frame_bytes) != \
                (frag_count, chunk_bytes, frame_bytes):
            self.reasm_inconsistent += 1
            return None
        return part

    def _completed(self, key, part: _Partial) -> memoryview | None:
        if part.received < part.count:
            return None
        self._release(key, part)
        self._done[key] = None
        if len(self._done) > self._done_max:
            self._done.popitem(last=False)
        self.reasm_frames += 1
        base = part.slot * self.max_frame_bytes
        return self._view[base:base + part.frame_bytes]

    def close(self) -> None:
        self._array = None
        self._view.release()
