"""The simulator's virtual network: it decides the fate of every Totem frame.

It owns latency (base + jitter, which also reorders), loss (global, per-receiver and
per-sender), duplication (a second copy with its own delay; late copies are replays),
extra-delay spikes, and reachability: a partition assigns every node a group, and a
separate set of blocked directed links gives asymmetric reachability (a→b cut while b→a
works). It never holds frames or a clock: `transmit` returns the copies that will arrive
and when; the world puts them on its event queue. All randomness comes from the one
`random.Random` it is given, so a seed fixes every frame's fate.

Multicast (`dest == 0`) is one independent copy per other node of the nodelist, each
with its own loss and delay, as UDPU sends it.
"""
from __future__ import annotations

import random

from coroproc.sim import params

# Corruption is opt-in: Totem over udpu has no checksum of its own, so a flipped payload
# bit would be a correct core delivering a wrong message. Truncation is fair game for the
# validators (every length is checked), so that is the only mutation offered.
TRUNCATE_MIN_BYTES = 1
LOOPBACK_US = 20  # own-address datagram (a lone node passes the token to itself): never lost


class NetCounters:
    """Frame fates, each counted once. `copies` = frames put on the wire (one per
    destination of a multicast); each copy is dropped, or arrives (perhaps twice)."""

    __slots__ = ("sends", "copies", "dropped_loss", "dropped_unreachable", "duplicated",
                 "delayed", "truncated", "bytes_sent")

    def __init__(self) -> None:
        self.sends = 0
        self.copies = 0
        self.dropped_loss = 0
        self.dropped_unreachable = 0
        self.duplicated = 0
        self.delayed = 0
        self.truncated = 0
        self.bytes_sent = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class VirtualNetwork:
    """Reachability and per-frame fate for a fixed nodelist."""

    def __init__(self, nodeids: tuple[int, ...], rng: random.Random, *,
                 latency_base_us: int = params.LATENCY_BASE_US,
                 latency_jitter_us: int = params.LATENCY_JITTER_US) -> None:
        assert len(nodeids) >= 2, "a network needs two nodes"
        assert len(set(nodeids)) == len(nodeids), f"duplicate nodeids in {nodeids}"
        assert all(n > 0 for n in nodeids), "nodeid 0 is the multicast address"
        assert latency_base_us >= 0 and latency_jitter_us >= 0
        self.nodeids = tuple(nodeids)
        self.rng = rng
        self.latency_base_us = latency_base_us
        self.latency_jitter_us = latency_jitter_us
        # Fault knobs, all "off" values; the world changes them as the schedule says.
        self.loss = 0.0                      # every copy
        self.loss_to: dict[int, float] = {}  # copies arriving at a node
        self.loss_from: dict[int, float] = {}  # copies sent by a node
        self.dup = 0.0                       # probability of a second copy
        self.dup_delay_max_us = 0            # the second copy's extra delay (replay)
        self.spike = 0.0                     # probability of an extra delay
        self.spike_max_us = 0
        self.truncate = 0.0
        self.group: dict[int, int] = {n: 0 for n in nodeids}  # partition group per node
        self.cut: set[tuple[int, int]] = set()                # blocked directed links
        self.partitioned = False
        self.counters = NetCounters()
        self._others = {n: tuple(m for m in nodeids if m != n) for n in nodeids}

    # ---- reachability ------------------------------------------------------------

    def reachable(self, src: int, dst: int) -> bool:
        if self.partitioned and self.group[src] != self.group[dst]:
            return False
        return not self.cut or (src, dst) not in self.cut

    def set_partition(self, groups: list[list[int]] | tuple[tuple[int, ...], ...]) -> None:
        """Split the nodes into the given groups (which must cover every node once)."""
        seen = [n for g in groups for n in g]
        assert sorted(seen) == sorted(self.nodeids), f"partition {groups} must cover {self.nodeids}"
        assert all(len(g) > 0 for g in groups), f"empty group in {groups}"
        for index, members in enumerate(groups):
            for n in members:
                self.group[n] = index
        self.partitioned = len(groups) > 1

    def heal_partition(self) -> None:
        for n in self.nodeids:
            self.group[n] = 0
        self.partitioned = False

    def cut_link(self, src: int, dst: int) -> None:
        """Block src→dst only (asymmetric); dst→src is untouched."""
        assert src in self.group and dst in self.group and src != dst
        self.cut.add((src, dst))

    def heal_link(self, src: int, dst: int) -> None:
        self.cut.discard((src, dst))

    def heal_all(self) -> None:
        """Back to a perfect (but still jittery) network: the quiet phase."""
        self.heal_partition()
        self.cut.clear()
        self.loss = 0.0
        self.loss_to.clear()
        self.loss_from.clear()
        self.dup = 0.0
        self.dup_delay_max_us = 0
        self.spike = 0.0
        self.spike_max_us = 0
        self.truncate = 0.0

    # ---- frame fate --------------------------------------------------------------

    def transmit(self, now_us: int, src: int, dest: int, frame: bytes) -> list[tuple[int, int, bytes]]:
        """Frames that will arrive, as (arrive_us, dst, frame); empty if all were lost."""
        counters = self.counters
        counters.sends += 1
        if dest == 0:
            dests = self._others[src]
        else:
            assert dest in self.group, f"node {src} sent to unknown node {dest}"
            if dest == src:
                # A lone node passes the token to itself; the kernel loops that back
                # without loss, so no fault applies to it.
                counters.copies += 1
                return [(now_us + LOOPBACK_US, src, frame)]
            dests = (dest,)
        out: list[tuple[int, int, bytes]] = []
        rng_random = self.rng.random
        base = now_us + self.latency_base_us
        jitter = self.latency_jitter_us
        per_node_loss = bool(self.loss_to or self.loss_from)
        loss = self.loss
        lossy = loss > 0.0 or per_node_loss
        fancy = self.dup > 0.0 or self.spike > 0.0 or self.truncate > 0.0
        size = len(frame)
        for dst in dests:
            counters.copies += 1
            counters.bytes_sent += size
            if not self.reachable(src, dst):
                counters.dropped_unreachable += 1
                continue
            if lossy and rng_random() < (self._loss_of(src, dst) if per_node_loss else loss):
                counters.dropped_loss += 1
                continue
            arrive_us = base + int(rng_random() * jitter)
            if not fancy:
                out.append((arrive_us, dst, frame))
                continue
            self._fancy(out, arrive_us, dst, frame)
        return out

    def _loss_of(self, src: int, dst: int) -> float:
        p = self.loss
        q = self.loss_to.get(dst, 0.0)
        r = self.loss_from.get(src, 0.0)
        # independent drop chances combine as 1 - Π(1 - p)
        return 1.0 - (1.0 - p) * (1.0 - q) * (1.0 - r)

    def _fancy(self, out: list, arrive_us: int, dst: int, frame: bytes) -> None:
        rng = self.rng
        counters = self.counters
        if self.spike > 0.0 and rng.random() < self.spike:
            counters.delayed += 1
            arrive_us += rng.randrange(self.spike_max_us + 1)
        if self.truncate > 0.0 and rng.random() < self.truncate and len(frame) > TRUNCATE_MIN_BYTES:
            counters.truncated += 1
            frame = frame[:rng.randrange(TRUNCATE_MIN_BYTES, len(frame))]
        out.append((arrive_us, dst, frame))
        if self.dup > 0.0 and rng.random() < self.dup:
            counters.duplicated += 1
            late_us = rng.randrange(self.dup_delay_max_us + 1) if self.dup_delay_max_us else 0
            out.append((arrive_us + late_us + int(rng.random() * self.latency_jitter_us), dst, frame))
