"""PathMtu: path MTU discovery of one link, per peer (sans-I/O, like health.py).

Sizes here are datagram bytes (what the carrier hands the kernel: link frame header +
payload + tag). The result written to the link table's `mtu_bytes` is that minus the
link frame overhead (`overhead_bytes`, the codec's figure): the Totem-frame bytes one
datagram carries, as knet reports its data MTU to cfgtool -n.

Search, per connected peer (one probe in flight per peer, so the work is bounded):
* Probe the link's maximum first (`max_bytes`: knet_mtu or netmtu) — the common case
  ends there after one probe — then binary-search the largest size in [min_bytes,
  max_bytes] that gets through: at most 1 + ceil(log2(max - min + 1)) probes.
* A probe is a PMTU_PROBE frame padded to the candidate size. The peer answers a
  PMTU_REPLY carrying the payload bytes it received; a reply with the size sent is a
  success. No reply within `probe_timeout_ms`, a short reply, or EMSGSIZE from the local
  send (the caller reports it with on_send_error) count as "too big". Another send error
  ends the run; it is retried one probe timeout later.
* A lost reply therefore under-estimates the MTU until the next run: runs repeat every
  `interval_s` (knet_pmtud_interval, 30 s), and start at once when the link to the peer
  comes up (the table's `connected`, written by health.py). A link that goes down
  abandons its run.
* A fixed knet_mtu (`fixed=True`): max_bytes is the MTU, written at once; never probes.
  Probes from peers are still answered.
The sender of probes must not let the kernel fragment them (IP_MTU_DISCOVER =
IP_PMTUDISC_PROBE or _DO on the socket), or every size "gets through".

Payloads (little-endian, 12-byte head): u8 version (1), u8 kind (1 probe, 2 reply),
u16 reserved (0), u32 seq, u32 size — the datagram size for a probe (zero padding
follows), the payload bytes received for a reply. Bad payloads are counted, never raised.
"""
from __future__ import annotations

import errno as _errno
import struct

from coroproc.netproc.health import NO_DEADLINE_US, LinkEvent
from coroproc.netproc.linktable import LinkTable

PROBE = struct.Struct("<BBHII")
PROBE_HEAD_BYTES = PROBE.size
PROBE_VERSION = 1
KIND_PROBE, KIND_REPLY = 1, 2
MIN_BYTES = 576                 # the IPv4 datagram every host must accept (RFC 791)
DATAGRAM_MAX_BYTES = 65507      # largest UDP payload over IPv4
DEFAULT_PROBE_TIMEOUT_MS = 1000
DEFAULT_INTERVAL_S = 30         # knet_pmtud_interval

COUNTER_NAMES = ("probes_sent", "probes_answered", "replies_ok", "replies_short",
                 "replies_stale", "malformed", "unknown_peer", "probe_timeouts",
                 "send_emsgsize", "send_errors", "runs_completed", "runs_failed",
                 "runs_aborted")


class _Peer:
    __slots__ = (
        "hi",
        "inflight",
        "lo",
        "next_probe_us",
        "next_run_us",
        "nodeid",
        "probes",
        "result",
        "running",
        "sent_us",
        "seq",
        "slot",
    )

    def __init__(self, nodeid: int, slot: int):
        self.nodeid, self.slot = nodeid, slot
        self.running = False
        self.lo = self.hi = 0         # largest size known good / smallest known too big
        self.probes = 0               # probes sent in the current (or last) run
        self.seq = 0
        self.inflight = 0             # candidate size in flight, 0 none
        self.sent_us = 0
        self.next_probe_us = 0
        self.next_run_us = 0          # 0: as soon as the link is connected
        self.result = 0               # datagram bytes last found, 0 unknown


class PathMtu:
    def __init__(self, linknumber: int, local_nodeid: int, peers, max_bytes: int,
                 fixed: bool, interval_s: int, overhead_bytes: int, table: LinkTable,
                 probe_timeout_ms: int = DEFAULT_PROBE_TIMEOUT_MS,
                 min_bytes: int = MIN_BYTES):
        if not PROBE_HEAD_BYTES + overhead_bytes <= min_bytes <= max_bytes \
                <= DATAGRAM_MAX_BYTES and not fixed:
            raise ValueError(f"link {linknumber}: path MTU search range {min_bytes}.."
                             f"{max_bytes} bytes with {overhead_bytes} bytes of frame "
                             f"overhead is invalid; need {PROBE_HEAD_BYTES} + overhead <= "
                             f"min <= max <= {DATAGRAM_MAX_BYTES}")
        if fixed and not overhead_bytes < max_bytes <= DATAGRAM_MAX_BYTES:
            raise ValueError(f"link {linknumber}: knet_mtu {max_bytes} bytes must be above "
                             f"the {overhead_bytes}-byte frame overhead and at most "
                             f"{DATAGRAM_MAX_BYTES}")
        if interval_s <= 0 or probe_timeout_ms <= 0:
            raise ValueError(f"link {linknumber}: pmtud interval {interval_s} s and probe "
                             f"timeout {probe_timeout_ms} ms must be > 0")
        self.linknumber = linknumber
        self.local_nodeid = local_nodeid
        self.max_bytes, self.min_bytes = max_bytes, min_bytes
        self.fixed = fixed
        self.interval_us = interval_s * 1_000_000
        self.timeout_us = probe_timeout_ms * 1000
        self.overhead_bytes = overhead_bytes
        self._table = table
        self._peers = {n: _Peer(n, table.slot_of(n)) for n in peers if n != local_nodeid}
        self._events: list[LinkEvent] = []
        self._c = dict.fromkeys(COUNTER_NAMES, 0)
        if local_nodeid in table.peer_nodeids:      # loopback: no path to discover
            table.update_stats(linknumber, table.slot_of(local_nodeid),
                               mtu_bytes=max_bytes - overhead_bytes)
        if fixed:
            for p in self._peers.values():
                self._set_result(p, max_bytes, 0)

    # ---- probes out -------------------------------------------------------------------

    def due_probes(self, now_us: int) -> list[tuple[int, bytes]]:
        out = []
        if self.fixed:
            return out
        for p in self._peers.values():
            if not self._connected(p):
                if p.running:
                    self._c["runs_aborted"] += 1
                p.running, p.inflight, p.next_run_us = False, 0, 0
                continue
            if not p.running and now_us >= p.next_run_us:
                p.running, p.probes = True, 0
                p.lo, p.hi = self.min_bytes - 1, self.max_bytes + 1
                p.next_probe_us = now_us
            if p.running and not p.inflight and now_us >= p.next_probe_us:
                size = p.hi - 1 if p.probes == 0 else (p.lo + p.hi) // 2
                p.seq = p.seq + 1 if p.seq < 0xFFFFFFFF else 1
                p.inflight, p.sent_us = size, now_us
                p.probes += 1
                out.append((p.nodeid, self._probe_payload(p.seq, size)))
        self._c["probes_sent"] += len(out)
        return out

    def _probe_payload(self, seq: int, size: int) -> bytes:
        payload = bytearray(size - self.overhead_bytes)
        PROBE.pack_into(payload, 0, PROBE_VERSION, KIND_PROBE, 0, seq, size)
        return bytes(payload)

    def _connected(self, p: _Peer) -> bool:
        return bool(self._table.state_of(self.linknumber, p.slot)[2])

    # ---- replies and errors in ------------------------------------------------------

    def on_probe(self, peer: int, payload, now_us: int) -> bytes | None:
        """The PMTU_REPLY payload for a peer's probe, or None (counted) for a bad one."""
        if peer not in self._peers:
            self._c["unknown_peer"] += 1
            return None
        head = self._parse(payload, KIND_PROBE)
        if head is None:
            return None
        self._c["probes_answered"] += 1
        return PROBE.pack(PROBE_VERSION, KIND_REPLY, 0, head[0], len(payload))

    def on_reply(self, peer: int, payload, now_us: int) -> None:
        p = self._peers.get(peer)
        if p is None:
            self._c["unknown_peer"] += 1
            return
        head = self._parse(payload, KIND_REPLY)
        if head is None:
            return
        seq, got_bytes = head
        if not p.inflight or seq != p.seq:
            self._c["replies_stale"] += 1      # late (already timed out) or duplicate
            return
        ok = got_bytes == p.inflight - self.overhead_bytes
        self._c["replies_ok" if ok else "replies_short"] += 1
        self._verdict(p, ok, now_us)

    def on_send_error(self, peer: int, size: int, errno: int) -> None:
        """The carrier could not send our probe to `peer`; EMSGSIZE means too big."""
        p = self._peers.get(peer)
        if p is None or not p.inflight:
            return
        if errno == _errno.EMSGSIZE:
            self._c["send_emsgsize"] += 1
            self._verdict(p, False, p.sent_us)
            return
        self._c["send_errors"] += 1
        self._c["runs_aborted"] += 1
        p.running, p.inflight = False, 0
        p.next_run_us = p.sent_us + self.timeout_us

    def _parse(self, payload, kind: int) -> tuple[int, int] | None:
        if len(payload) < PROBE_HEAD_BYTES:
            self._c["malformed"] += 1
            return None
        version, got_kind, reserved, seq, size = PROBE.unpack_from(payload)
        if version != PROBE_VERSION or got_kind != kind or reserved != 0 \
                or (kind == KIND_REPLY and len(payload) != PROBE_HEAD_BYTES):
            self._c["malformed"] += 1
            return None
        return seq, size

    # ---- the search -------------------------------------------------------------------

    def _verdict(self, p: _Peer, ok: bool, now_us: int) -> None:
        if ok:
            p.lo = p.inflight
        else:
            p.hi = p.inflight
        p.inflight = 0
        p.next_probe_us = now_us
        if p.hi - p.lo > 1:
            return
        p.running = False
        p.next_run_us = now_us + self.interval_us
        if p.lo < self.min_bytes:
            self._c["runs_failed"] += 1       # not even min_bytes got through: keep the old
            return
        self._c["runs_completed"] += 1
        self._set_result(p, p.lo, now_us)

    def _set_result(self, p: _Peer, size: int, now_us: int) -> None:
        old = p.result - self.overhead_bytes if p.result else 0
        new = size - self.overhead_bytes
        p.result = size
        self._table.update_stats(self.linknumber, p.slot, mtu_bytes=new)
        if old != new:
            self._events.append(LinkEvent(
                "mtu", p.nodeid, self.linknumber, f"path MTU {size} bytes", now_us,
                f"pmtud: PMTUD link change for host: {p.nodeid} link: {self.linknumber} "
                f"from {old} to {new}"))

    def tick(self, now_us: int) -> list[LinkEvent]:
        """Time out probes without a reply (too big); return pending MTU-change events."""
        for p in self._peers.values():
            if p.inflight and now_us - p.sent_us >= self.timeout_us:
                self._c["probe_timeouts"] += 1
                self._verdict(p, False, now_us)
        events, self._events = self._events, []
        return events

    def next_deadline_us(self) -> int:
        if self._events:
            return 0
        deadline = NO_DEADLINE_US
        if self.fixed:
            return deadline
        for p in self._peers.values():
            if p.inflight:
                deadline = min(deadline, p.sent_us + self.timeout_us)
            elif p.running:
                deadline = min(deadline, p.next_probe_us)
            elif self._connected(p):           # idle: next run (not while the link is down,
                deadline = min(deadline, p.next_run_us)   # or the loop would spin)
        return deadline

    # ---- status -----------------------------------------------------------------------

    def data_mtu_bytes(self, peer: int) -> int:
        """Totem-frame bytes a datagram to `peer` carries; 0 while unknown."""
        p = self._peers[peer]
        return p.result - self.overhead_bytes if p.result else 0

    def datagram_bytes(self, peer: int) -> int:
        """The largest datagram known to reach `peer` whole, 0 while unknown (or for a
        node that is not a peer of this link): the UDP carrier fragments above it."""
        p = self._peers.get(peer)
        return p.result if p is not None else 0

    def probes_in_last_run(self, peer: int) -> int:
        return self._peers[peer].probes

    def counters(self) -> dict:
        return dict(self._c)
