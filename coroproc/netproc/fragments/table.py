"""FragState: a UDP carrier's fragment state, shared by its Python path and the jitted loop.

jit/fragments.py holds the kernels (send a frame as fragments, take a fragment into the
reassembly table); this owns their arrays, one set per carrier, and gives the Python
path the same two calls. The jitted secure loop (secure_loop.py) gets the arrays through
arrays(), so fragments of one frame taken partly by either path complete one frame.
"""
from __future__ import annotations

import os
import random

import numpy as np

from coroproc.netproc.jit import fragments as F

COUNTER_NAMES = ("rx_fragments", "rx_frag_bad", "rx_frag_sender_mismatch", "reasm_frames",
                 "reasm_duplicate", "reasm_inconsistent", "reasm_oversize",
                 "reasm_timed_out", "reasm_evicted", "tx_fragmented_frames",
                 "tx_fragments", "tx_gso_sends", "tx_gso_refused")
assert len(COUNTER_NAMES) == F.F_WORDS


class FragState:
    def __init__(self, peer_nodeids, gso_segments: int):
        """peer_nodeids: the nodes whose fragments are taken (a row each); gso_segments:
        most fragments per GSO send (0: one send each)."""
        peers = sorted(set(peer_nodeids)) or [0]
        entries = len(peers) * F.REASM_ENTRIES_PER_PEER
        self.ra_node = np.array(peers, np.int64)
        # untouched pages of np.zeros cost no memory: a slot is only written by a frame
        self.ra_data = np.zeros((entries, F.FRAME_SLOT_BYTES), np.uint8)
        self.ra_meta = np.zeros((entries, F.M_WORDS), np.int64)
        self.ra_have = np.zeros((entries, F.FRAG_COUNT_MAX), np.uint8)
        self.ra_done = np.full((len(peers), F.DONE_IDS + 1), -1, np.int64)
        self.ra_done[:, F.DONE_IDS] = 0
        self.fcnt = np.zeros(F.F_WORDS, np.int64)
        # a restarted peer starts elsewhere in frame_id space: its new fragments do not
        # complete frames of its previous life
        self.fid = np.array([random.getrandbits(32)], np.int64)
        self.gso = np.array([gso_segments, 0], np.int64)
        self.fbuf = np.zeros(F.FBUF_BYTES, np.uint8)
        self.fw = np.zeros(F.FW_WORDS, np.int64)

    def arrays(self) -> tuple:
        """What the jitted loop takes: (ra_node, ra_data, ra_meta, ra_have, ra_done, fcnt,
        fid, gso, fbuf, fw)."""
        return (self.ra_node, self.ra_data, self.ra_meta, self.ra_have, self.ra_done,
                self.fcnt, self.fid, self.gso, self.fbuf, self.fw)

    @property
    def gso_segments(self) -> int:
        return int(self.gso[0])

    @property
    def gso_refused_errno(self) -> int:
        return int(self.gso[1])

    def take(self, buf: np.ndarray, off: int, k: int, expect_sender: int, now_ms: int):
        """Take one fragment that came from node expect_sender's address (0: no one
        node's); the whole frame (a view, valid until its sender's next frames) once this
        completes it, else None."""
        slot = F.frag_take(self.arrays(), buf, off, k, expect_sender, now_ms)
        return self.frame(slot) if slot >= 0 else None

    def frame(self, slot: int) -> memoryview:
        return self.ra_data[slot, :self.ra_meta[slot, F.M_TOTAL]].data

    def send(self, fd: int, sa: np.ndarray, link_frame: np.ndarray, mtu: int,
             local_nodeid: int) -> int:
        """Send link_frame as fragments of mtu bytes; bytes sent, or OSError."""
        if link_frame.flags.writeable:      # one compiled form: the read-only one (warm)
            link_frame = link_frame.view()
            link_frame.flags.writeable = False
        rc = F.frag_send(fd, sa, sa.shape[0], link_frame, len(link_frame), link_frame, 0, 0,
                         mtu, local_nodeid, self.arrays())
        if rc < 0:
            raise OSError(-rc, f"sending a {len(link_frame)}-byte frame as fragments of "
                               f"{mtu} bytes: {os.strerror(-rc)}")
        return rc

    def warm(self) -> None:
        """Load (or compile) the two kernels with the argument types take() and send()
        pass them, so the first fragment the Python path meets does not stop the link
        process for a compile. Changes nothing: the counts of a fragment too short to
        check are put back, and an mtu of 0 is refused before anything is laid out."""
        saved = self.fcnt.copy()
        self.take(np.zeros(F.FRAG_HEADER_BYTES, np.uint8), 0, 0, 0, 0)
        self.fcnt[:] = saved
        frame = np.frombuffer(bytes(F.FRAG_HEADER_BYTES), np.uint8)
        rc = F.frag_send(-1, self.fbuf[:16], 16, frame, len(frame), frame, 0, 0, 0, 0,
                         self.arrays())
        assert rc < 0

    def counters(self) -> dict[str, int]:
        d = {name: int(v) for name, v in zip(COUNTER_NAMES, self.fcnt)}
        d["reasm_in_progress"] = int(self.ra_meta[:, F.M_ACTIVE].sum())
        return d
