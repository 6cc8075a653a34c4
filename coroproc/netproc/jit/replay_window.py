"""The per-sender replay window of a secure link, in arrays both paths share.

A link's codec (secure/codec.py, Python, every frame while crypto is on) and its jitted
clear data path (secure_loop.py) accept frames from the same senders, so they must
update one window per sender, not one each: a frame accepted by one path and replayed
later must be refused by the other. The window lives in three arrays indexed by the
sender's row (the codec's peer order):

  session uint64[rows]      the accepted session; 0 = none yet (session ids are > 0)
  top     uint64[rows]      the highest seq accepted in it
  bits    uint64[rows, 16]  which of the 1,024 seqs ending at top were seen: bit i of
                            the window (seq top - i) is bit i % 64 of word i // 64

A seq above top slides the window; one inside it is accepted once; one older than the
window is refused, since it can no longer be told apart from a replay. seq 0 is never
valid (senders start at 1), so an empty window marks it as seen.
"""
from __future__ import annotations

import numpy as np

from coroproc.njit import njit

WINDOW_SEQS = 1024
WINDOW_WORDS = WINDOW_SEQS // 64


def new_windows(rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(session, top, bits) for `rows` senders, none with a session yet."""
    bits = np.zeros((rows, WINDOW_WORDS), np.uint64)
    bits[:, 0] = 1
    return np.zeros(rows, np.uint64), np.zeros(rows, np.uint64), bits


@njit(cache=True)
def window_start_session(session, top, bits, row, new_session):
    """An authenticated frame of a newer session: forget the old session's window."""
    session[row] = new_session
    top[row] = 0
    for w in range(WINDOW_WORDS):
        bits[row, w] = 0
    bits[row, 0] = 1


@njit(cache=True)
def window_accept(top, bits, row, seq):
    """Record seq (uint64) as seen in row's window; False if it was seen already or is
    older than the window."""
    cur = top[row]
    if seq > cur:
        shift = seq - cur
        if shift >= WINDOW_SEQS:
            for w in range(WINDOW_WORDS):
                bits[row, w] = 0
        else:
            # every seen seq ages by `shift`: bits move up by shift (words, then bits)
            ws = np.int64(shift // 64)
            bs = np.uint64(shift % 64)
            for w in range(WINDOW_WORDS - 1, -1, -1):
                v = np.uint64(0)
                src = w - ws
                if src >= 0:
                    v = bits[row, src] << bs
                    if bs and src >= 1:
                        v |= bits[row, src - 1] >> (np.uint64(64) - bs)
                bits[row, w] = v
        bits[row, 0] |= np.uint64(1)
        top[row] = seq
        return True
    age = cur - seq
    if age >= WINDOW_SEQS:
        return False
    w = np.int64(age // 64)
    bit = np.uint64(1) << np.uint64(age % 64)
    if bits[row, w] & bit:
        return False
    bits[row, w] |= bit
    return True
