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
"""
from __future__ import annotations

WINDOW_SEQS = 1024
_WINDOW_MASK = (1 << WINDOW_SEQS) - 1


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
