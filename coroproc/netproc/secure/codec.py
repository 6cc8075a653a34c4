"""LinkCodec: sealing and opening the link frames of one link (pure: no sockets, no clock).

The network process calls seal() per datagram it sends and open() per datagram it
receives, so both are written for the per-frame path: precomputed Structs, one header
unpack, session keys cached per peer (then per link key in a bounded LRU), counters as
slot attributes. open() never raises on bad input: it returns None and counts why,
checking in the order of counters.RX_REFUSAL_NAMES. The sender's replay window and
accepted session change only after the frame authenticated (see replay.py).
"""
from __future__ import annotations

import hmac
from collections.abc import Iterable

import numpy as np
from cryptography.exceptions import InvalidTag

from coroproc.netproc.secure.counters import CodecCounters
from coroproc.netproc.secure.frame import (DATAGRAM_MAX_BYTES, FLAGS_AEAD, FLAGS_CLEAR,
                                           FLAGS_MAC, FTYPE_MAX, FTYPE_MIN, HEADER,
                                           HEADER_BYTES, LINKNUMBER_MAX, MAGIC, NODEID_MAX,
                                           NONCE, SEQ_MAX, SESSION_MAX, VERSION)
from coroproc.netproc.secure.keys import KeyRing
from coroproc.netproc.secure.replay import PeerState, ReplayTable, share

_unpack_header = HEADER.unpack_from
_pack_header = HEADER.pack
_pack_nonce = NONCE.pack
_compare = hmac.compare_digest


class LinkCodec:
    """Seal and open frames for one (local node, link, session), against the nodelist."""

    def __init__(self, keyring: KeyRing, local_nodeid: int, linknumber: int, session: int,
                 peers: Iterable[int]):
        if not 0 < local_nodeid <= NODEID_MAX:
            raise ValueError(f"local nodeid {local_nodeid} outside 1..{NODEID_MAX}")
        if not 0 <= linknumber <= LINKNUMBER_MAX:
            raise ValueError(f"linknumber {linknumber} outside 0..{LINKNUMBER_MAX}")
        if not 0 < session <= SESSION_MAX:
            raise ValueError(f"session {session} outside 1..{SESSION_MAX} "
                             "(use new_session_id())")
        self.keyring = keyring
        self.suite = keyring.suite
        self.local_nodeid, self.linknumber, self.session = local_nodeid, linknumber, session
        self.counters = CodecCounters()
        self._flags = self.suite.flags
        self._tag_bytes = self.suite.tag_bytes
        self._min_bytes = self.suite.overhead_bytes
        self._max_payload_bytes = DATAGRAM_MAX_BYTES - self.suite.overhead_bytes
        self._seq = 0
        # set by share_with_jit(): the seq and replay windows in arrays, which the
        # link's jitted data path (jit/secure_loop.py) updates too
        self.tx_seq: np.ndarray | None = None
        self.replay: ReplayTable | None = None
        self._peers: dict = {}
        self.set_peers(peers)
        self._tx_generation = -1
        self._tx_key_id = 0
        self._tx_cipher = None
        self._refresh_tx()

    def set_peers(self, peers: Iterable[int]) -> None:
        """The nodelist changed (reload): keep the state of nodes still in it."""
        nodeids = set(peers)
        bad = [n for n in nodeids if not 0 < n <= NODEID_MAX]
        if bad:
            raise ValueError(f"peer nodeids {sorted(bad)} outside 1..{NODEID_MAX}")
        if self.local_nodeid not in nodeids:
            raise ValueError(f"local nodeid {self.local_nodeid} is not in the peers "
                             f"{sorted(nodeids)} (pass the whole nodelist, self included)")
        if self.replay is not None:
            raise ValueError("the nodelist of a codec shared with a jitted data path is "
                             "fixed (the loop holds its rows)")
        self._peers = {n: self._peers.get(n) or PeerState() for n in nodeids}

    def share_with_jit(self) -> None:
        """From now on keep the seq (tx_seq) and every sender's replay window (replay) in
        arrays, for a jitted data path that seals and opens frames of this link too. The
        Python forms are cheaper, so this is only done for such a link."""
        if self.replay is None:
            self.tx_seq = np.array([self._seq], np.uint64)
            self.replay, self._peers = share(self._peers)

    def _refresh_tx(self) -> None:
        """Re-read keyring.tx after a rotation phase (keyring.generation moved)."""
        ring = self.keyring
        self._tx_generation = ring.generation
        if ring.tx is None:
            self._tx_key_id, self._tx_cipher = 0, None
        else:
            self._tx_key_id = ring.tx.key_id
            self._tx_cipher = ring.tx.session(self.local_nodeid, self.linknumber,
                                              self.session)

    def seal(self, ftype: int, dest: int, payload) -> bytes:
        """One datagram carrying payload (bytes-like) to node dest."""
        if not FTYPE_MIN <= ftype <= FTYPE_MAX:
            raise ValueError(f"frame type {ftype} outside {FTYPE_MIN}..{FTYPE_MAX}")
        if not 0 < dest <= NODEID_MAX:
            raise ValueError(f"dest nodeid {dest} outside 1..{NODEID_MAX}")
        if len(payload) > self._max_payload_bytes:
            raise ValueError(f"payload of {len(payload)} bytes; a link frame carries at "
                             f"most {self._max_payload_bytes} with {self.suite.describe()}")
        if self.keyring.generation != self._tx_generation:
            self._refresh_tx()
        shared = self.tx_seq
        seq = (self._seq if shared is None else int(shared[0])) + 1
        assert seq <= SEQ_MAX, "seq exhausted: start a new session"
        if shared is None:
            self._seq = seq
        else:
            shared[0] = seq
        header = _pack_header(MAGIC, VERSION, ftype, self._flags, self._tx_key_id,
                              self.linknumber, 0, self.local_nodeid, dest, self.session, seq)
        self.counters.tx_sealed += 1
        flags = self._flags
        if flags == FLAGS_AEAD:
            return header + self._tx_cipher.encrypt(_pack_nonce(seq), payload, header)
        if flags == FLAGS_MAC:
            mac = self._tx_cipher.copy()
            mac.update(header)
            mac.update(payload)
            return b"".join((header, payload, mac.digest()))
        return header + payload

    def open(self, datagram) -> tuple[int, int, memoryview | bytes] | None:
        """(ftype, sender, payload) of an accepted frame, else None (reason counted).

        payload is new bytes for AEAD frames and a memoryview into datagram otherwise:
        copy it before reusing a receive buffer.
        """
        c = self.counters
        size = len(datagram)
        if size < self._min_bytes:
            c.rx_truncated += 1
            return None
        (magic, version, ftype, flags, key_id, link, reserved, sender, dest, session,
         seq) = _unpack_header(datagram, 0)
        if magic != MAGIC:
            c.rx_bad_magic += 1
        elif version != VERSION:
            c.rx_bad_version += 1
        elif not FTYPE_MIN <= ftype <= FTYPE_MAX:
            c.rx_bad_type += 1
        elif reserved:
            c.rx_bad_reserved += 1
        elif link != self.linknumber:
            c.rx_wrong_link += 1
        elif dest != self.local_nodeid:
            c.rx_wrong_dest += 1
        else:
            peer = self._peers.get(sender)
            if peer is None:
                c.rx_unknown_sender += 1
            elif flags != self._flags:
                if flags == FLAGS_CLEAR:
                    c.rx_clear_refused += 1
                else:
                    c.rx_crypto_unexpected += 1
            else:
                return self._open_checked(memoryview(datagram), size, ftype, key_id,
                                          sender, session, seq, peer)
        return None

    def _open_checked(self, view: memoryview, size: int, ftype: int, key_id: int,
                      sender: int, session: int, seq: int, peer: PeerState):
        """Key, session, authentication, replay: the header is well-formed by now."""
        c = self.counters
        flags = self._flags
        if flags == FLAGS_CLEAR:
            if key_id:
                c.rx_unknown_key += 1
                return None
            keys = ()
        else:
            keys = self.keyring.find(key_id)
            if not keys:
                c.rx_unknown_key += 1
                return None
        if session < peer.session:
            c.rx_old_session += 1
            return None
        payload = key = cipher = None
        if flags == FLAGS_CLEAR:
            payload = view[HEADER_BYTES:]
        else:
            for key in keys:
                if key is peer.key and session == peer.session:
                    cipher = peer.cipher
                else:
                    cipher = key.session(sender, self.linknumber, session)
                payload = self._authenticate(view, size, seq, cipher)
                if payload is not None:
                    break
            if payload is None:
                c.rx_auth_failed += 1
                return None
        if session > peer.session:
            peer.start_session(session)
        if not peer.accept(seq):
            c.rx_replayed += 1
            return None
        peer.key, peer.cipher = key, cipher
        c.rx_ok += 1
        return ftype, sender, payload

    def _authenticate(self, view: memoryview, size: int, seq: int, cipher):
        """The payload if the tag/MAC verifies under this session cipher, else None."""
        if self._flags == FLAGS_AEAD:
            try:
                return cipher.decrypt(_pack_nonce(seq), view[HEADER_BYTES:],
                                      view[:HEADER_BYTES])
            except InvalidTag:
                return None
        end = size - self._tag_bytes
        mac = cipher.copy()
        mac.update(view[:end])
        if _compare(mac.digest(), view[end:]):
            return view[HEADER_BYTES:end]
        return None

    def peer_key(self, sender: int):
        """The link key (LinkKey) the sender's accepted session was last opened with
        (None: nothing accepted yet, or crypto off)."""
        peer = self._peers.get(sender)
        return None if peer is None else peer.key

    def peer_session(self, sender: int) -> int | None:
        """The session accepted from sender on this link (None: nothing accepted yet)."""
        peer = self._peers.get(sender)
        return peer.session if peer is not None and peer.session else None
