"""Per-sender receive state: the accepted session and a 1024-seq sliding replay window.

The window remembers the highest seq accepted (`top`) and a bitmap of which of the
1024 seqs ending at `top` were seen (bit i = seq top - i). A seq above top slides the
window; one inside it is accepted once; one older than the window is refused, since it
can no longer be told apart from a replay. seq 0 is never valid (senders start at 1),
so an empty window marks it as seen.

The codec updates this state only after a frame authenticated, so forged frames can
neither advance the window nor switch the session. With crypto off the same window still
suppresses duplicates, but anyone can forge a frame past it: it says nothing about
security there.

Two forms of one state. PeerState keeps it in Python ints (the cheapest form for the
codec, which opens every frame of a link without a jitted path: one over a carrier other
than UDP). When a link's jitted data path (jit/secure_loop.py) opens frames too, the codec moves every sender's state
into a ReplayTable (arrays, jit/replay_window.py) both update, and each sender's
SharedPeerState is its row: a frame one path accepted is then a replay for the other.
"""
from __future__ import annotations

import numpy as np

from coroproc.netproc.jit.replay_window import (WINDOW_SEQS, WINDOW_WORDS, new_windows,
                                                window_accept, window_start_session)

_WINDOW_MASK = (1 << WINDOW_SEQS) - 1
_WORD_MASK = (1 << 64) - 1


class PeerState:
    """What one link's receiver knows about one sender. Plain slots: touched per frame.

    key / cipher cache the session key of the accepted session for the link key it was
    last opened with, so the common frame skips the LRU lookup.
    """

    __slots__ = ("session", "top", "bits", "key", "cipher")

    def __init__(self):
        self.session = 0        # accepted session; 0 = none yet (session ids are > 0)
        self.top = 0
        self.bits = 1           # seq 0 counts as seen
        self.key = None
        self.cipher = None

    def start_session(self, session: int) -> None:
        """An authenticated frame of a newer session: forget the old session's window."""
        assert session > self.session
        self.session, self.top, self.bits = session, 0, 1
        self.key = self.cipher = None

    def accept(self, seq: int) -> bool:
        """Record seq as seen; False if it was seen already or is older than the window."""
        top = self.top
        if seq > top:
            shift = seq - top
            # A big jump must not build a huge int: past the window nothing survives.
            self.bits = ((self.bits << shift) | 1) & _WINDOW_MASK if shift < WINDOW_SEQS else 1
            self.top = seq
            return True
        age = top - seq
        if age >= WINDOW_SEQS:
            return False
        bit = 1 << age
        if self.bits & bit:
            return False
        self.bits |= bit
        return True


class ReplayTable:
    """The windows of a link's senders as arrays, one row per nodeid (sorted), taking
    over the state of their PeerStates."""

    def __init__(self, states: dict[int, PeerState]):
        self.nodeids = tuple(sorted(states))
        self.row = {n: i for i, n in enumerate(self.nodeids)}
        self.session, self.top, self.bits = new_windows(len(self.nodeids))
        for n, i in self.row.items():
            st = states[n]
            self.session[i], self.top[i] = st.session, st.top
            self.bits[i] = [(st.bits >> (64 * w)) & _WORD_MASK for w in range(WINDOW_WORDS)]


class SharedPeerState:
    """PeerState's interface over a ReplayTable row (see the module docstring)."""

    __slots__ = ("_table", "_row", "key", "cipher")

    def __init__(self, table: ReplayTable, row: int, key=None, cipher=None):
        self._table, self._row = table, row
        self.key, self.cipher = key, cipher

    @property
    def session(self) -> int:
        return int(self._table.session[self._row])

    @property
    def top(self) -> int:
        return int(self._table.top[self._row])

    @property
    def bits(self) -> int:
        return sum(int(w) << (64 * i) for i, w in enumerate(self._table.bits[self._row]))

    def start_session(self, session: int) -> None:
        assert session > self.session
        t = self._table
        window_start_session(t.session, t.top, t.bits, self._row, np.uint64(session))
        self.key = self.cipher = None

    def accept(self, seq: int) -> bool:
        return bool(window_accept(self._table.top, self._table.bits, self._row,
                                  np.uint64(seq)))


def share(states: dict[int, PeerState]) -> tuple[ReplayTable, dict[int, SharedPeerState]]:
    """Move these senders' states into a ReplayTable: (the table, their new states)."""
    table = ReplayTable(states)
    return table, {n: SharedPeerState(table, i, states[n].key, states[n].cipher)
                   for n, i in table.row.items()}


__all__ = ["WINDOW_SEQS", "PeerState", "ReplayTable", "SharedPeerState", "share"]
