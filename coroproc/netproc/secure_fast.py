"""SecureFastPath: the arrays of a secure link's jitted data path, and its reports.

A SecureLinkProcess whose carrier is UDP moves its DATA frames (clear, AES-GCM or HMAC)
through jit/secure_loop.py, which also sleeps for it; this class builds what that loop
reads and writes from the link process's own pieces — the carrier's socket and train
buffer, the codec's seq and replay windows, the session keys (EVP contexts, jit/aead.py,
or HMAC contexts, jit/mac.py), the link selector's rules, path-MTU discovery's sizes,
the waker's words — and turns its counters back into the names the Python path reports,
so a link's counters and stats.knet.* read the same whichever path handled a frame.

Keys: the loop seals with the keyring's tx key and opens a sender's frames only with the
key its accepted session was last opened with on the Python path (codec.peer_key), for
that session; anything else goes to the Python path, which tries every key with the
frame's id. sync_keys() re-keys the contexts when either moved: after a rotation phase
(the keyring's generation) and after the Python path opened frames.
"""
from __future__ import annotations

import errno as _errno

import numpy as np

from coroproc.netproc.addresses import sockaddr, sockaddr_bytes
from coroproc.netproc.counters import COUNTER_NAMES
from coroproc.netproc.jit import link_loop as L
from coroproc.netproc.jit import secure_loop as S
from coroproc.netproc.jit.aead import GCM_IV_BYTES, GcmContext
from coroproc.netproc.jit.mac import MacContext
from coroproc.netproc.link import packed_address
from coroproc.netproc.secure.frame import (DATAGRAM_MAX_BYTES, FLAGS_AEAD, FLAGS_CLEAR,
                                           FLAGS_MAC, FTYPE_DATA, HEADER, HEADER_BYTES, MAGIC,
                                           VERSION)
from coroproc.netproc.sockets import link_scope_id
from coroproc.shm.syscalls import pollfd_array

assert S.LINK_HDR_BYTES == HEADER_BYTES
assert (S.LINK_MAGIC_BYTE0 | S.LINK_MAGIC_BYTE1 << 8) == MAGIC and S.LINK_VERSION == VERSION
assert S.LINK_FTYPE_DATA == FTYPE_DATA
# every suite's flags (secure/suite.py): the loop handles them all
assert (S.LINK_FLAGS_CLEAR, S.LINK_FLAGS_AEAD, S.LINK_FLAGS_MAC) == (FLAGS_CLEAR, FLAGS_AEAD,
                                                                      FLAGS_MAC)

RX_BATCH_DATAGRAMS_MAX = 64
TX_BATCH_RECORDS_MAX = 256
SOCKADDR_SRC_BYTES = 128
_NEVER = (1, -1)


class SecureFastPath:
    def __init__(self, link, rx_ring, tx_ring, doorbell):
        """`link` is the SecureLinkProcess (its spec, codec, carrier, selector, pmtu,
        table, waker); the rings and doorbell are its own."""
        self._link = link
        spec, codec, carrier = link.spec, link.codec, link.carrier
        self._rx_ring, self._tx_ring, self._doorbell = rx_ring, tx_ring, doorbell
        codec.share_with_jit()
        replay = codec.replay
        self.nodeids = replay.nodeids
        self.row_of = dict(replay.row)
        rows = len(self.nodeids)
        io = np.zeros(S.SIO_WORDS, np.int64)
        io[S.SIO_FD] = carrier.fd
        io[S.SIO_RING_WAKE_FD] = -1 if rx_ring.wake_fd is None else rx_ring.wake_fd
        io[S.SIO_LIMIT_BYTES] = spec.rx_limit_bytes
        io[S.SIO_RECV_BYTES] = len(carrier.train_buffer)
        io[S.SIO_RX_BATCH] = RX_BATCH_DATAGRAMS_MAX
        io[S.SIO_TX_BATCH] = TX_BATCH_RECORDS_MAX
        io[S.SIO_LOCAL_NODEID] = spec.local_nodeid
        io[S.SIO_LINKNUMBER] = spec.linknumber
        suite = codec.suite
        io[S.SIO_FLAGS] = suite.flags
        io[S.SIO_TAG_BYTES] = suite.tag_bytes
        self.io = io
        # the DATA header; _send_to writes dest and seq into it per datagram
        self.hdr = np.frombuffer(bytearray(HEADER.pack(
            MAGIC, VERSION, FTYPE_DATA, suite.flags, 0, spec.linknumber, 0,
            spec.local_nodeid, 0, codec.session, 0)), np.uint8)
        scope = link_scope_id(spec)
        self.p_node = np.array(self.nodeids, np.int64)
        self.p_addr = np.zeros((rows, L.ADDR_SLOT_BYTES), np.uint8)
        self.p_port = np.zeros(rows, np.int64)
        self.p_sa = np.zeros((rows, L.SOCKADDR_BYTES), np.uint8)
        self.p_salen = np.zeros(rows, np.int64)
        self.p_tslot = np.full(rows, -1, np.int64)
        for row, node in enumerate(self.nodeids):
            if node not in spec.peers:
                continue
            host, port = spec.peers[node]
            self.p_addr[row] = packed_address(host)
            self.p_port[row] = port
            raw = sockaddr_bytes(spec.family, sockaddr(spec.family, host, port, scope))
            self.p_sa[row, :len(raw)] = np.frombuffer(raw, np.uint8)
            self.p_salen[row] = len(raw)
            self.p_tslot[row] = link.table_slot(node)
        self.p_rule = np.zeros((rows, 2), np.int64)
        self.p_mtu = np.zeros(rows, np.int64)
        self.p_stats = np.zeros((rows, S.P_STAT_WORDS), np.int64)
        self.fanout = np.array([self.row_of[n] for n in spec.multicast_peers()], np.int64)
        self.gens = link.table.gens_array()
        self.rgen = np.zeros(2, np.uint64)
        self.cnt = np.zeros(L.C_WORDS, np.int64)
        self.sc = np.zeros(S.SC_WORDS, np.int64)
        self.errs = np.zeros((2, L.ERRNO_SLOTS), np.int64)
        self.buf = np.frombuffer(carrier.train_buffer, np.uint8)
        self.src = np.zeros(SOCKADDR_SRC_BYTES, np.uint8)
        self.rxm = np.zeros(L.RXM_WORDS, np.int64)
        self.sm = np.zeros(S.SM_WORDS, np.int64)
        self.ts = np.zeros(2, np.int64)
        self.u64 = np.zeros(1, np.uint64)
        # the keys: a sender's row opens only under rk_id[row] (0: clear; -1: none yet)
        self.rk_id = np.full(rows, 0 if suite.flags == FLAGS_CLEAR else -1, np.int64)
        self.rk_ctx = np.zeros(rows, np.int64)
        # the keys the loop seals and opens with: an EVP context (AES-GCM) or an HMAC_CTX
        # per sender row, and one for sealing
        self._keyed = suite.flags != FLAGS_CLEAR
        self._rx_ctx: list[GcmContext | MacContext] = []
        self._tx_ctx = None
        self._row_keyed: list[tuple | None] = [None] * rows
        self._key_generation = -1
        self.rows_dirty = False
        if self._keyed:
            aead = suite.flags == FLAGS_AEAD
            self._tx_ctx = GcmContext(encrypt=True) if aead else MacContext(suite.hash)
            io[S.SIO_TX_CTX] = self._tx_ctx.ptr
            for row in range(rows):
                self._rx_ctx.append(GcmContext(encrypt=False) if aead
                                    else MacContext(suite.hash))
                self.rk_ctx[row] = self._rx_ctx[row].ptr
        self.iv = np.zeros(GCM_IV_BYTES, np.uint8)
        # sealed bodies, opened bodies, a MAC's header + frame + digest: one datagram
        self.cbuf = np.zeros(DATAGRAM_MAX_BYTES if self._keyed else 1, np.uint8)
        self.outl = np.zeros(1, np.int32)
        link.peer_stats.add_fast(self.p_stats, self.row_of)
        self.refresh()
        self.sync_keys()

    # -- what the loop reads, kept in step ----------------------------------------------
    def refresh(self) -> None:
        self.refresh_rules()
        self.refresh_mtu()

    def refresh_rules(self) -> None:
        """p_rule from the selector, for the table generations read first (a rule is never
        kept under a generation newer than what it was decided on)."""
        self.rgen[:] = self.gens
        selector = self._link.selector
        for row in range(len(self.nodeids)):
            slot = self.p_tslot[row]
            self.p_rule[row] = _NEVER if slot < 0 else selector.decide(int(slot))

    def sync_keys(self) -> None:
        """Re-key the loop's contexts if the keyring or an accepted session moved (cheap
        when nothing did: the loop calls this every turn)."""
        if not self._keyed:
            return
        codec = self._link.codec
        ring = codec.keyring
        if ring.generation != self._key_generation:
            self._key_generation = ring.generation
            tx = ring.tx
            self._tx_ctx.set_key(tx.session_key(codec.local_nodeid, codec.linknumber,
                                                codec.session))
            self.hdr[S.O_KEY_ID] = tx.key_id
            self.rows_dirty = True      # a dropped key must stop opening frames
        if not self.rows_dirty:
            return
        self.rows_dirty = False
        link = codec.linknumber
        for row, node in enumerate(self.nodeids):
            key, session = codec.peer_key(node), codec.peer_session(node)
            if key is None or not any(k is key for k in ring.keys):
                self.rk_id[row] = -1
                self._row_keyed[row] = None
                continue
            if self._row_keyed[row] != (key, session):
                self._rx_ctx[row].set_key(key.session_key(node, link, session))
                self._row_keyed[row] = (key, session)
            self.rk_id[row] = key.key_id

    def refresh_mtu(self) -> None:
        """Path-MTU discovery's sizes (0 while unknown: frames go whole, as the carrier
        sends them then)."""
        size_of = self._link.pmtu.datagram_bytes
        for row, node in enumerate(self.nodeids):
            self.p_mtu[row] = size_of(node) or 0

    def loop_args(self, control_fds) -> tuple:
        """run_secure's arguments but the deadline, for these control fds."""
        ctrl = [f if isinstance(f, int) else f.fileno() for f in control_fds]
        pfd = pollfd_array([self._doorbell.fd, int(self.io[S.SIO_FD]), *ctrl])
        self.io[S.SIO_N_CTRL] = len(ctrl)
        codec, replay = self._link.codec, self._link.codec.replay
        return (self.io, codec.tx_seq, pfd, self._rx_ring.hdr, self._rx_ring.data,
                self._tx_ring.hdr, self._tx_ring.data, self.buf, self.src, self.rxm,
                self.hdr, self.sm, self.p_node, self.p_addr, self.p_port, self.p_sa,
                self.p_salen, self.p_tslot, self.p_rule, self.p_mtu, self.p_stats,
                self.fanout, self.gens, self.rgen, replay.session, replay.top, replay.bits,
                self.rk_id, self.rk_ctx, self.iv, self.cbuf, self.outl, self.cnt, self.sc,
                self.errs, self._link.waker.wk, self.ts, self.u64,
                self._link.carrier.frags.arrays())

    def slow_train(self) -> tuple[int, int, int, bytes]:
        """After RET_SLOW_RX: (pos, length, segment size, source sockaddr) of the train."""
        io = self.io
        return (int(io[S.SIO_SLOW_POS]), int(io[S.SIO_SLOW_END]), int(io[S.SIO_SLOW_SEG]),
                self.src.tobytes())

    # -- reports -------------------------------------------------------------------------
    def add_counters(self, d: dict) -> None:
        """Add the loop's counts into the link's counters dict, under the Python path's
        names."""
        for name, v in zip(COUNTER_NAMES, self.cnt):
            d[name] = d.get(name, 0) + int(v)
        for name, v in zip(S.SC_NAMES, self.sc):
            d[name] = d.get(name, 0) + int(v)
        for direction, row in (("rx", L.ERR_RX), ("tx", L.ERR_TX)):
            for e in np.flatnonzero(self.errs[row]):
                key = f"{direction}_error_{_errno.errorcode.get(int(e), str(int(e)))}"
                d[key] = d.get(key, 0) + int(self.errs[row, e])

    def close(self) -> None:
        """Drop the views into the link table and the carrier's buffer (they must go
        before those are closed)."""
        self._link = None
        self.gens = self.buf = None
        self.rk_ctx[:] = 0
        self.io[S.SIO_TX_CTX] = 0
        for ctx in self._rx_ctx + ([self._tx_ctx] if self._tx_ctx else []):
            ctx.free()
        self._rx_ctx, self._tx_ctx = [], None
