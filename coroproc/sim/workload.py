"""Client traffic: seeded bursts of messages of mixed sizes, some of them safe.

Every workload tick may start a burst at one node (bursts_per_s on average); during a
storm every node gets a burst every tick. Messages wait in their node's client queue
(bounded) until the core accepts them — `submit` returns False while the
core's new-message queue is full, and the world simply tries again at the next tick.
The burst decisions draw from the workload's own random stream whatever the cores do, so
faults and core behaviour do not perturb the traffic plan (only which of it gets sent).

Payload: sender nodeid (u32 LE) + per-sender seq (u64 LE, starting at 1, never reused,
also not across restarts) + filler. The seq is bound when a submit is accepted, so the
send log of every node is gap-free.
"""
from __future__ import annotations

import random
import struct
import zlib
from collections import deque

from coroproc.sim import params

HEADER = struct.Struct("<IQ")
assert HEADER.size == params.HEADER_BYTES


def decode_id(payload: bytes) -> tuple[int, int]:
    """(sender nodeid, sender seq) of a payload, or (0, 0) if it is too short to say."""
    if len(payload) < HEADER.size:
        return 0, 0
    return HEADER.unpack_from(payload, 0)


def crc32(payload: bytes) -> int:
    return zlib.crc32(payload) & 0xFFFFFFFF


class Workload:
    """The traffic plan of one run, and each node's client queue."""

    def __init__(self, rng: random.Random, nodeids: tuple[int, ...], *, stop_us: int,
                 bursts_per_s: float, storms: int = 0, tick_us: int = params.WORKLOAD_TICK_US,
                 queue_messages_max: int = params.CLIENT_QUEUE_MESSAGES_MAX) -> None:
        assert bursts_per_s >= 0 and tick_us > 0 and queue_messages_max > 0 and storms >= 0
        self.rng = rng
        self.nodeids = tuple(nodeids)
        self.stop_us = stop_us
        self.tick_us = tick_us
        self.burst_probability = min(1.0, bursts_per_s * tick_us / 1e6)
        self.queue_messages_max = queue_messages_max
        self.storms = self._draw_storms(storms)
        self.pending: dict[int, deque[tuple[int, bool]]] = {n: deque() for n in nodeids}
        self.next_seq: dict[int, int] = {n: 1 for n in nodeids}
        # filler: one random block, sliced per message (cheap, varied, deterministic)
        self.filler = rng.randbytes(params.SIZE_LARGE_MAX_BYTES * 2)
        self.bursts = 0
        self.planned = 0
        self.dropped_no_client = 0   # burst for a crashed node: its client is gone too
        self.dropped_queue_full = 0  # client queue at its bound

    def _draw_storms(self, count: int) -> tuple[tuple[int, int], ...]:
        """(from_us, until_us) windows in which every node bursts every tick."""
        storms = []
        for _ in range(count):
            if self.stop_us <= 0:
                break
            start_us = self.rng.randrange(self.stop_us)
            length_us = self.rng.randint(params.STORM_MS_MIN, params.STORM_MS_MAX) * 1000
            storms.append((start_us, min(self.stop_us, start_us + length_us)))
        return tuple(sorted(storms))

    def in_storm(self, now_us: int) -> bool:
        return any(lo <= now_us < hi for lo, hi in self.storms)

    def draw_size(self) -> int:
        rng = self.rng
        if rng.random() < params.LARGE_FRACTION:
            return rng.randint(params.SIZE_SMALL_MAX_BYTES + 1, params.SIZE_LARGE_MAX_BYTES)
        # log-uniform over 16 B .. 4 KiB: mostly small, like real cluster traffic
        lo, hi = params.SIZE_SMALL_MIN_BYTES, params.SIZE_SMALL_MAX_BYTES
        return min(hi, int(lo * (hi / lo) ** rng.random()))

    def tick(self, now_us: int, alive: dict[int, bool]) -> bool:
        """Plan this tick's burst (if any); True while ticks should continue."""
        if now_us >= self.stop_us:
            return False
        if self.storms and self.in_storm(now_us):
            for node in self.nodeids:
                self._burst(node, alive)
        elif self.rng.random() < self.burst_probability:
            self._burst(self.rng.choice(self.nodeids), alive)
        return True

    def _burst(self, node: int, alive: dict[int, bool]) -> None:
        rng = self.rng
        count = 1 + min(params.BURST_MESSAGES_MAX - 1, int(rng.expovariate(1 / 6)))
        specs = [(self.draw_size(), rng.random() < params.SAFE_FRACTION) for _ in range(count)]
        self.bursts += 1
        self.planned += count
        if not alive[node]:
            self.dropped_no_client += count
            return
        queue = self.pending[node]
        room = self.queue_messages_max - len(queue)
        if room < count:
            self.dropped_queue_full += count - max(room, 0)
            specs = specs[:max(room, 0)]
        queue.extend(specs)
        assert len(queue) <= self.queue_messages_max

    def payload(self, node: int, seq: int, size: int) -> bytes:
        assert size >= HEADER.size and seq >= 1
        body = size - HEADER.size
        offset = (seq * 7919 + node * 104729) % params.SIZE_LARGE_MAX_BYTES
        return HEADER.pack(node, seq) + self.filler[offset:offset + body]

    def drop_client(self, node: int) -> int:
        """The node crashed: its client and the messages it had not handed over go too."""
        lost = len(self.pending[node])
        self.pending[node].clear()
        return lost
