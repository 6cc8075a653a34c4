"""Per-connection CMAP state: the map a client reads, its iterators and its tracks.

Corosync keeps these in per-connection hdb handle databases; a handle is a u64 whose
upper half is a check value, so a stale or foreign handle is refused with
CS_ERR_BAD_HANDLE instead of reaching another object. Here handles are
(per-connection salt << 32) | sequence, and a sequence number is never reused, which
gives the same guarantee. Both tables are bounded (Corosync's are not): a client that
leaks iterators or tracks gets CS_ERR_NO_RESOURCES, not the engine's memory.
"""
from __future__ import annotations

from dataclasses import dataclass, field

ITERATORS_MAX = 64       # per connection; corosync-cmapctl uses one at a time
TRACKS_MAX = 1024        # per connection; pacemaker-style clients use a few dozen

MAP_ICMAP = 0
MAP_STATS = 1


@dataclass
class Iterator:
    prefix: str
    last_key: str | None = None   # the walk resumes after it
    done: bool = False


@dataclass
class TrackEntry:
    track: object                    # store.Track
    inst_handle: int                 # the client's track_inst_handle, echoed in events
    map_kind: int


@dataclass
class ConnState:
    salt: int
    map_kind: int = MAP_ICMAP
    iterators: dict[int, Iterator] = field(default_factory=dict)
    tracks: dict[int, TrackEntry] = field(default_factory=dict)
    next_seq: int = 1
    events_dropped: int = 0

    def __post_init__(self):
        assert 0 < self.salt < 1 << 32

    def new_handle(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        assert seq < 1 << 32, "handle sequence exhausted"
        return (self.salt << 32) | seq

    def handles_open(self) -> int:
        return len(self.iterators) + len(self.tracks)


def salt_for(connection_number: int) -> int:
    """A non-zero 32-bit check value that differs between connections (deterministic, so
    simulated runs replay exactly)."""
    return ((connection_number * 2654435761) & 0xFFFFFFFF) | 1
