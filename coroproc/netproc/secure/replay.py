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

The windows of a link's senders live in one ReplayTable (arrays, jit/replay_window.py),
which the link's jitted clear data path (jit/secure_loop.py) updates too: a frame one
path accepted is a replay for the other.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from coroproc.netproc.jit.replay_window import (WINDOW_SEQS, new_windows, window_accept,
                                                window_start_session)

__all__ = ["WINDOW_SEQS", "PeerState", "ReplayTable"]


class ReplayTable:
    """The windows of a link's senders, one row per nodeid (sorted)."""

    def __init__(self, nodeids: Iterable[int], keep: ReplayTable | None = None):
        self.nodeids = tuple(sorted(set(int(n) for n in nodeids)))
        self.row = {n: i for i, n in enumerate(self.nodeids)}
        self.session, self.top, self.bits = new_windows(len(self.nodeids))
        if keep is not None:        # a new nodelist: senders still in it keep their state
            for n, i in self.row.items():
                j = keep.row.get(n)
                if j is not None:
                    self.session[i], self.top[i] = keep.session[j], keep.top[j]
                    self.bits[i] = keep.bits[j]


class PeerState:
    """What one link's receiver knows about one sender: its row of a ReplayTable, and
    the session key of the accepted session for the link key it was last opened with
    (key / cipher), so the common frame skips the LRU lookup."""

    __slots__ = ("_table", "_row", "key", "cipher")

    def __init__(self, table: ReplayTable | None = None, row: int = 0):
        self._table = table if table is not None else ReplayTable((0,))
        self._row = row
        self.key = None
        self.cipher = None

    @property
    def session(self) -> int:
        """The accepted session; 0 = none yet (session ids are > 0)."""
        return int(self._table.session[self._row])

    @property
    def top(self) -> int:
        return int(self._table.top[self._row])

    @property
    def bits(self) -> int:
        """The window as one int: bit i = seq top - i seen."""
        return sum(int(w) << (64 * i) for i, w in enumerate(self._table.bits[self._row]))

    def start_session(self, session: int) -> None:
        """An authenticated frame of a newer session: forget the old session's window."""
        assert session > self.session
        t = self._table
        window_start_session(t.session, t.top, t.bits, self._row, np.uint64(session))
        self.key = self.cipher = None

    def accept(self, seq: int) -> bool:
        """Record seq as seen; False if it was seen already or is older than the window."""
        return bool(window_accept(self._table.top, self._table.bits, self._row,
                                  np.uint64(seq)))
