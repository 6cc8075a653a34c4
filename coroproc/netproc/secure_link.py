"""SecureLinkProcess: the main loop of one link of transport knet (coroproc's secure links).

Like LinkProcess (link.py) it moves Totem frames between a carrier and the node's shm
rings, but every datagram is a link frame (secure/: header, AEAD or MAC, replay window),
and the link keeps its own health:

* tx ring → carrier: each record [u32 dest][Totem frame] goes, for each destination peer
  (dest 0 = every other member), out of THIS link only if the link selector says so
  (select.py: link_mode passive / active / rr over the node's shared link table), sealed
  as a DATA frame.
* carrier → rx ring: opened by the codec (forged, tampered, truncated, replayed, clear
  while crypto is on: dropped and counted there); a DATA frame whose inner Totem framing
  is sound is pushed to the rx ring; PING → PONG; PONG → health (latency, link up/down);
  PMTU_PROBE → PMTU_REPLY; PMTU_REPLY → path-MTU discovery.
* health (health.py) pings each peer every knet_ping_interval and declares the link to a
  peer down after knet_ping_timeout without a PONG; it writes this link's row of the link
  table, which the other links' processes read to pick who sends: a dead link hands its
  traffic to the next one within a ping timeout, without Totem noticing.

Over a UDP carrier, DATA frames take the jitted path instead (jit/secure_loop.py,
arrays in secure_fast.py, AES-GCM in jit/aead.py, HMAC in jit/mac.py, fragments above the
path MTU in jit/fragments.py): it receives, sends and sleeps for this process, and hands
back every datagram and record it does not handle (control frames, a new session, a tag
that does not verify under the key it holds, anything that fails a check, a fragment
from a source that is not its sender's address) to the Python path below, which is then
the one that opens or sends them.

Key rotation: the control op "crypto" (from the supervisor, driven by the CFG engine in
agreed order) runs the KeyRing phases add / use / drop.
"""
from __future__ import annotations

import time

import numpy as np

from coroproc.netproc.counters import Counters
from coroproc.netproc.health import NO_DEADLINE_US, LinkHealth
from coroproc.netproc.linktable import LinkTable
from coroproc.netproc.peerstats import PeerStats
from coroproc.netproc.pmtud import PathMtu
from coroproc.netproc.ringwake import MCAST_WAKE_DEFER_US, RingWaker
from coroproc.netproc.jit import secure_loop as S
from coroproc.netproc.jit.link_loop import (MAGIC_BYTE0, MAGIC_BYTE1, RET_POLL_FAILED,
                                            RET_TX_CORRUPT, RTYPE_FRAME)
from coroproc.netproc.link import poll_failed, tx_ring_corrupt
from coroproc.netproc.secure.codec import LinkCodec
from coroproc.netproc.secure.frame import (FTYPE_DATA as FT_DATA, FTYPE_PING as FT_PING,
                                           FTYPE_PMTU_PROBE as FT_PMTU_PROBE,
                                           FTYPE_PMTU_REPLY as FT_PMTU_REPLY,
                                           FTYPE_PONG as FT_PONG)
from coroproc.netproc.secure.keys import KeyRing
from coroproc.netproc.secure.session import new_session_id
from coroproc.netproc.secure.suite import CryptoSuite
from coroproc.netproc.secure_fast import SecureFastPath
from coroproc.netproc.secure_spec import SecureSettings
from coroproc.netproc.select import LinkSelector
from coroproc.netproc.spec import LinkSpec
from coroproc.netproc.tx import drain_tx_ring, split_tx_record
from coroproc.ringproc import wire
from coroproc.shm.doorbell import Doorbell
from coroproc.shm.layout import W_RECORDS_POPPED
from coroproc.shm.ring import PUSH_FULL, ShmRing, ring_push

RX_BATCH_DATAGRAMS_MAX = 64
TX_BATCH_RECORDS_MAX = 256

SECURE_COUNTERS = ("rx_sender_mismatch", "tx_not_chosen", "tx_no_link", "pings_sent",
                   "pongs_sent", "probes_sent", "probe_replies_sent", "rx_control")


def open_carrier(spec: LinkSpec, settings: SecureSettings, mtu_of=None):
    """The link's carrier; mtu_of(nodeid) is the datagram size known to reach a peer
    whole (path-MTU discovery), above which the UDP carrier fragments."""
    if settings.carrier == "rdma":
        # knet_transport: rdma — the link's address is this node's RoCE/IB IP and its
        # mcastport the small UDP side channel the carrier resolves peers over (rdma/)
        from coroproc.netproc.rdma.carrier import RdmaCarrier
        from coroproc.netproc.rdma.spec import RdmaSpec
        return RdmaCarrier(RdmaSpec(
            linknumber=spec.linknumber, local_nodeid=spec.local_nodeid,
            local_ip=spec.bind_addr, side_port=spec.port, peers=dict(spec.peers),
            **settings.rdma))
    from coroproc.netproc.carrier_udp import UdpCarrier
    return UdpCarrier(spec, mtu_of)


class SecureLinkProcess:
    def __init__(self, spec: LinkSpec, settings: SecureSettings, rx_ring: ShmRing,
                 tx_ring: ShmRing, tx_doorbell: Doorbell, log=None, carrier=None):
        self.spec = spec
        self.settings = settings
        self._log = log
        self._rx_ring = rx_ring
        self.waker = RingWaker(rx_ring, MCAST_WAKE_DEFER_US)
        self._tx_ring = tx_ring
        self._doorbell = tx_doorbell
        self._c = Counters()
        self._sc = dict.fromkeys(SECURE_COUNTERS, 0)
        suite = CryptoSuite(settings.cipher, settings.hash)
        self.suite = suite
        self.keyring = KeyRing(suite, settings.authkey, settings.cluster_name)
        me = spec.local_nodeid
        self.session = new_session_id(settings.session_file)
        self.codec = LinkCodec(self.keyring, me, spec.linknumber, self.session, spec.peers)
        self.table = LinkTable.attach(settings.table_name)
        self._slot = {n: i for i, n in enumerate(self.table.peer_nodeids)}
        self._others = spec.multicast_peers()
        self.peer_stats = PeerStats(spec.peers)
        self.health = LinkHealth(spec.linknumber, me, sorted(spec.peers),
                                 settings.ping_interval_ms, settings.ping_timeout_ms,
                                 settings.pong_count, settings.ping_precision, self.table,
                                 priority=settings.priority, link_mode=settings.link_mode)
        self.selector = LinkSelector(self.table, spec.linknumber, settings.link_mode)
        # a link process beats in the link table (health.tick, one of its timers) at most
        # a third of a ping timeout apart, which leaves room for a late turn; a ping
        # timeout without a beat means it is stopped or stuck — the same time a peer
        # takes to call a silent link down, and well inside the token timeout
        self._stale_after_us = settings.ping_timeout_ms * 1000
        self._beat_every_us = self._stale_after_us // 3
        self._timers_due_us = 0
        self.pmtu = PathMtu(spec.linknumber, me, self._others,
                            max_bytes=settings.mtu_bytes or spec.netmtu,
                            fixed=bool(settings.mtu_bytes),
                            interval_s=settings.pmtud_interval_s,
                            overhead_bytes=suite.overhead_bytes, table=self.table)
        self.carrier = carrier if carrier is not None else open_carrier(
            spec, settings, self.pmtu.datagram_bytes)
        self._limit = spec.rx_limit_bytes
        self._buf = bytearray(self._limit + suite.overhead_bytes + 1)
        self._mv_data = memoryview(tx_ring.data)
        self._closed = False
        if rx_ring.max_payload_bytes < self._limit:
            raise ValueError(f"rx ring {rx_ring.name!r} cannot hold a frame of "
                             f"{self._limit} bytes")
        # over UDP the jitted data path moves the DATA frames (secure_fast.py);
        # jit_data_path=False keeps every frame on the Python path (tests compare the two)
        self._fast = None
        if settings.jit_data_path and hasattr(self.carrier, "adopt_train"):
            self._fast = SecureFastPath(self, rx_ring, tx_ring, tx_doorbell)
        self._note(f"link {spec.linknumber}: {suite.describe()}; link_mode "
                   f"{settings.link_mode}, priority {settings.priority}, ping interval "
                   f"{settings.ping_interval_ms} ms, timeout {settings.ping_timeout_ms} ms")

    # -- the loop ------------------------------------------------------------------------
    def run(self, control) -> None:
        # the sleep ends at the next heartbeat or the next timer (_timers_due_us, which
        # includes this link's beat in the link table)
        handlers = getattr(control, "handlers", None)
        if handlers is not None:
            handlers["crypto"] = self.on_crypto_command
            handlers["links"] = lambda msg: {"links": self.status()}
        if self._fast is not None:
            self._run_fast(control)
            return
        extra_fds = self.carrier.fds() + list(control.fds())
        c = self._c
        try:
            while control.poll():
                now_us = time.monotonic_ns() // 1000
                if now_us >= self._timers_due_us:
                    self._timers(now_us)
                more = self._drain_rx()
                more |= self._drain_tx()
                wait_s = self.waker.settle(control.tick_s)
                if not more:
                    c.sleeps += 1
                    wait_s = min(wait_s, max(0.0, (self._timers_due_us - now_us) / 1e6))
                    self._doorbell.wait([self._tx_ring], wait_s, extra_fds=extra_fds)
        finally:
            self.close()

    def _run_fast(self, control) -> None:
        """The loop with the jitted data path: Python runs the timers, the control
        socket, and whatever the jitted loop hands back (module docstring)."""
        fast = self._fast
        args = fast.loop_args(control.fds())
        try:
            while control.poll():
                now_ns = time.monotonic_ns()
                if now_ns // 1000 >= self._timers_due_us:
                    self._timers(now_ns // 1000)
                    fast.refresh()          # the stale links and the path MTUs move here
                deadline_ns = min(self._timers_due_us * 1000,
                                  now_ns + int(control.tick_s * 1e9))
                fast.sync_keys()
                ret = S.run_secure(*args, deadline_ns)
                # what the jitted path hands back, the Python path takes a batch of: the
                # rest of the socket's queue, or of the tx ring
                if ret == S.RET_SLOW_RX or ret == S.RET_SLOW_FRAME:
                    if ret == S.RET_SLOW_FRAME:
                        self.carrier.adopt_frame(int(fast.io[S.SIO_SLOW_SLOT]))
                    self.carrier.adopt_train(*fast.slow_train())
                    self._drain_rx()
                    fast.rows_dirty = True  # it may have accepted a session or a key
                    fast.refresh_mtu()      # a PMTU reply may have come in
                elif ret == S.RET_SLOW_TX:
                    self._drain_tx()
                elif ret == S.RET_RULES:
                    fast.refresh_rules()
                elif ret == RET_TX_CORRUPT:
                    io = fast.io
                    raise tx_ring_corrupt(self._tx_ring.name, io[S.SIO_CORRUPT_POS],
                                          io[S.SIO_CORRUPT_OFF], io[S.SIO_CORRUPT_LEN])
                elif ret == RET_POLL_FAILED:
                    raise poll_failed(self.spec.linknumber, int(fast.io[S.SIO_POLL_ERRNO]))
        finally:
            del args        # views of the rings and the table: gone before close()
            self.close()

    def table_slot(self, node: int) -> int:
        """node's slot in the link table, -1 if the table or the nodelist lacks it."""
        slot = self._slot.get(node)
        return -1 if slot is None or node not in self.spec.peers else slot

    def _timers(self, now_us: int) -> None:
        """Pings, pong and probe timeouts, PMTU runs, this link's beat and the stale-link
        check; then when they are next due (_timers_due_us). The loop runs this only when
        that time has come: an idle link wakes ~20 times a second for a token or a ping,
        and running every timer on each of those turns was most of its CPU. Whatever
        changes health or PMTU state in between (a ping, pong or probe in, a failed probe
        send) sets _timers_due_us to 0."""
        self._timers_due_us = NO_DEADLINE_US
        for peer, payload in self.health.due_pings(now_us):
            if self._send(FT_PING, peer, payload):
                self._sc["pings_sent"] += 1
        for event in self.health.tick(now_us):     # also this link's beat in the table
            self._note(event_text(event))
        stale_check_us = self._mark_stale_links(now_us)
        for peer, payload in self.pmtu.due_probes(now_us):
            if self._send(FT_PMTU_PROBE, peer, payload, probe=True):
                self._sc["probes_sent"] += 1
        self.pmtu.tick(now_us)
        self._timers_due_us = min(self._timers_due_us, self.health.next_deadline_us(),
                                  self.pmtu.next_deadline_us(), stale_check_us,
                                  now_us + self._beat_every_us)

    def _mark_stale_links(self, now_us: int) -> int:
        """Links whose process stopped beating (stopped, stuck) still look connected in
        the table; treat them as unusable so this link takes their traffic. A dead one is
        reset by the supervisor; a stopped one only shows here. Returns when a link that
        beats now goes stale if it stops (a stale one is seen again at the next beat
        check)."""
        beats = self.table.snapshot_beats()
        limit_us = self._stale_after_us
        mask = 0
        next_us = NO_DEADLINE_US
        for link, beat_us in enumerate(beats):
            if not beat_us:
                continue
            if now_us - beat_us > limit_us:
                mask |= 1 << link
            else:
                next_us = min(next_us, beat_us + limit_us + 1)
        self.selector.set_stale(mask)
        return next_us

    # -- receive -------------------------------------------------------------------------
    def _drain_rx(self) -> bool:
        carrier, codec, buf = self.carrier, self.codec, self._buf
        mv = memoryview(buf)
        frames = 0
        for _ in range(RX_BATCH_DATAGRAMS_MAX):
            got = carrier.recv_into(buf)
            if got is None:
                self.waker.note_drain(frames)
                return False
            frames += 1
            n, src = got
            opened = codec.open(mv[:n])
            if opened is None:
                continue
            ftype, sender, payload = opened
            if src and src != sender:
                self._sc["rx_sender_mismatch"] += 1
                continue
            self.peer_stats.received(ftype, sender, n)
            if ftype == FT_DATA:
                self._push_frame(payload)
            else:
                self._on_control(ftype, sender, payload)
        self.waker.note_drain(frames)
        return True

    def _push_frame(self, payload) -> None:
        c = self._c
        n = len(payload)
        if n < wire.HDR_BYTES:
            c.rx_runt += 1
            return
        if n > self._limit:
            c.rx_oversize += 1
            return
        if payload[0] != MAGIC_BYTE0 or payload[1] != MAGIC_BYTE1:
            c.rx_foreign += 1
            return
        arr = np.frombuffer(payload, dtype=np.uint8)
        ring = self._rx_ring
        rc = ring_push(ring.hdr, ring.data, RTYPE_FRAME, 0, arr, 0, n)
        if rc == PUSH_FULL:
            c.rx_ring_full += 1
            return
        self.waker.pushed(rc, payload, n)
        c.rx_frames += 1
        c.rx_bytes += n

    def _on_control(self, ftype: int, sender: int, payload) -> None:
        now_us = time.monotonic_ns() // 1000
        self._timers_due_us = 0       # health or PMTU state moves: deadlines with it
        self._sc["rx_control"] += 1
        if ftype == FT_PING:
            pong = self.health.on_ping(sender, payload, now_us)
            if pong is not None and self._send(FT_PONG, sender, pong):
                self._sc["pongs_sent"] += 1
        elif ftype == FT_PONG:
            self.health.on_pong(sender, payload, now_us)
        elif ftype == FT_PMTU_PROBE:
            reply = self.pmtu.on_probe(sender, payload, now_us)
            if reply is not None and self._send(FT_PMTU_REPLY, sender, reply):
                self._sc["probe_replies_sent"] += 1
        elif ftype == FT_PMTU_REPLY:
            self.pmtu.on_reply(sender, payload, now_us)

    # -- transmit ------------------------------------------------------------------------
    def _drain_tx(self) -> bool:
        # rr's turn-taking counts frames; every link's tx ring gets the same frames from
        # the ring process, and the ring's own popped-records counter survives a restart
        # of this process, so all links agree on each frame's number without talking
        self._frame_no = int(self._tx_ring.hdr[W_RECORDS_POPPED])
        more, records = drain_tx_ring(self._tx_ring, TX_BATCH_RECORDS_MAX, self._send_record)
        self._c.tx_frames += records
        return more

    def _send_record(self, off: int, n: int, rtype: int) -> None:
        c = self._c
        record = split_tx_record(self._mv_data, off, n, rtype, c)
        if record is None:
            return
        dest, frame = record
        frame_no = self._frame_no
        self._frame_no += 1
        targets = self._others if dest == 0 else (dest,)
        for node in targets:
            slot = self._slot.get(node)
            if slot is None or node not in self.spec.peers:
                c.tx_unknown_dest += 1
                continue
            if not self.selector.sends_to(slot, frame_no):
                self._sc["tx_not_chosen"] += 1
                continue
            self._send(FT_DATA, node, frame)

    def _send(self, ftype: int, node: int, payload, probe: bool = False) -> bool:
        datagram = self.codec.seal(ftype, node, payload)
        try:
            if probe:      # a PMTU probe goes out unfragmented (carrier.send_probe)
                sent = self._send_probe(datagram, node)
            else:
                sent = self.carrier.send(datagram, node)
        except OSError as e:
            if probe:
                self.pmtu.on_send_error(node, len(datagram), e.errno)
                self._timers_due_us = 0
            self._c.count_errno("tx", e.errno)
            self.peer_stats.send_failed(ftype, node)
            return False
        self._c.tx_datagrams += 1
        self._c.tx_bytes += sent
        self.peer_stats.sent(ftype, node, sent)
        return True

    def _send_probe(self, datagram, node: int) -> int:
        send_probe = getattr(self.carrier, "send_probe", None)
        return (send_probe or self.carrier.send)(datagram, node)

    # -- control -------------------------------------------------------------------------
    def on_crypto_command(self, msg: dict) -> dict:
        """Key rotation phases: {"phase": "add", "key": hex} / "use" {key_id} / "drop"."""
        phase = msg.get("phase")
        try:
            if phase == "add":
                key_id = self.keyring.add(bytes.fromhex(msg["key"])).key_id
            elif phase == "use":
                key_id = int(msg["key_id"])
                self.keyring.use(key_id)
            elif phase == "drop":
                key_id = int(msg["key_id"])
                self.keyring.drop_except(key_id)
            else:
                return {"ok": False, "error": f"unknown crypto phase {phase!r}"}
        except (KeyError, ValueError, TypeError) as exc:
            return {"ok": False, "error": f"crypto {phase}: {exc}"}
        self._note(f"link {self.spec.linknumber}: crypto {phase} key {key_id}")
        return {"ok": True, "key_id": key_id}

    def status(self) -> dict:
        return {"linknumber": self.spec.linknumber, "session": self.session,
                "local": list(self.carrier.local_address()[:2])
                if hasattr(self.carrier, "local_address") else None,
                "tx_key_id": self.keyring.tx.key_id if self.keyring.tx else 0}

    def counters(self) -> dict:
        d = self._c.as_dict()
        d.update(self._sc)
        d.update(self.codec.counters.as_dict())
        d.update(self.carrier.counters())
        d.update(self.waker.counters())
        if self._fast is not None:
            self._fast.add_counters(d)
        d["jit_data_path"] = int(self._fast is not None)
        d["knet_peers"] = self.peer_status()
        d["tx_key_id"] = self.keyring.tx.key_id if self.keyring.tx else 0
        d["keys_in_ring"] = len(self.keyring.keys)
        d["session"] = self.session
        return d

    def peer_status(self) -> dict:
        """Per peer: Corosync's stats.knet.node<N>.link<L>.* values (cmap, cfgtool -n)."""
        rows = self.health.peer_status()
        out = {}
        for node in self.peer_stats.rows:
            d = self.peer_stats.as_dict(node)
            d.update(rows.get(node, {}))
            out[str(node)] = d
        return out

    def _note(self, text: str) -> None:
        if self._log is not None:
            self._log.notice("KNET", text)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._fast is not None:
            self._fast.close()
        self._mv_data.release()
        self.health.shutdown()     # our row says "down": the other links take over now
        self.carrier.close()
        self.table.close()


def event_text(event) -> str:
    """A health event as a log line (health.py gives text or an object with .text)."""
    return event if isinstance(event, str) else getattr(event, "text", str(event))


def warm_up() -> None:
    """Compile (or load from the cache) the jitted data path with the argument
    types a link process passes it: one turn of a one-node clear link on loopback."""
    import os

    from coroproc.netproc.link import loopback_spec, scratch_rings
    tag = f"coroproc-warm.{os.getpid()}"
    table = LinkTable.create(f"/{tag}.links", (1,), 1)
    settings = SecureSettings(cluster_name="warm", link_mode="passive", cipher="none",
                              hash="none", authkey=None, table_name=f"/{tag}.links")
    try:
        with scratch_rings(tag) as (rx, tx, bell):
            proc = SecureLinkProcess(loopback_spec("knet"), settings, rx, tx, bell)
            try:
                args = proc._fast.loop_args([])
                S.run_secure(*args, 0)
                del args
            finally:
                proc.close()
    finally:
        table.unlink()
        table.close()
