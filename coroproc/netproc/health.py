"""LinkHealth: ping/pong heartbeats of one link to every peer, and the link up/down rule.

Sans-I/O (the caller passes `now_us`, CLOCK_MONOTONIC µs, sends the payloads it is given
and logs the events it gets back); the only side effect is this link's row of the node's
LinkTable, written on every state change and latency update.

Rules (knet's, as Corosync 3.1 configures them; libknet threads_heartbeat.c / _rx.c):
* A PING goes to every other peer every `ping_interval_ms`, connected or not. Its payload
  carries the sender's send time and a ping sequence number; the receiver echoes both in
  a PONG, and the PONG's round-trip time is one latency sample.
* A PONG whose RTT exceeds `ping_timeout_ms` is discarded (counted as late), as knet does.
* The link to a peer goes UP on the `pong_count`-th accepted PONG since it was last down
  (knet increments its counter after the comparison and so comes up one pong later; the
  count here is the one the option's name promises), and DOWN when no PONG was accepted
  for `ping_timeout_ms` — at exactly last_pong + timeout. A timeout also resets the
  pong count, so the pongs that bring a link up are never more than a timeout apart.
* Data frames do NOT count as pongs (on_data only counts them), as in knet: a data frame
  proves only the peer → us direction. A link whose sends are black-holed but whose
  receives work would stay "connected" and passive mode would keep choosing it.
* The link to this node itself is always connected (loopback) and never pinged.
* latency_us is knet's running mean capped at `precision` samples (each new sample weighs
  1/min(samples, precision)): the average of the last ~precision samples without storing
  them. latency_min_us / latency_max_us are the min / max of that mean, as knet reports.

Payload (16 bytes, little-endian), PING and PONG alike:
    u8 version (1), u8 kind (1 ping, 2 pong), u16 reserved (0), u32 seq, u64 send_us
A payload of another length, version, kind or reserved value, a PONG for a seq never
sent or not matching its recorded send time, or from a peer not in the list is counted
(counters(), and `malformed` in the table slot), never raised.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from coroproc.netproc.linktable import LinkTable
from coroproc.netproc.select import best_links

PING = struct.Struct("<BBHIQ")
PING_BYTES = PING.size
PING_VERSION = 1
KIND_PING, KIND_PONG = 1, 2
SEQ_MAX = 0xFFFFFFFF

DEFAULT_PONG_COUNT = 2          # Corosync KNET_PONG_COUNT (knet's own default is 5)
DEFAULT_PING_PRECISION = 2048   # KNET_PING_PRECISION
SENT_RING_MAX = 64              # bound on remembered ping send times per peer
NO_DEADLINE_US = (1 << 63) - 1

COUNTER_NAMES = ("pings_due", "pings_answered", "pongs_accepted", "pongs_late",
                 "pongs_stale", "malformed_ping", "malformed_pong", "unknown_peer",
                 "data_frames", "link_up", "link_down")


def ping_defaults(token_timeout_ms: int, pong_count: int = DEFAULT_PONG_COUNT) -> tuple[int, int]:
    """(knet_ping_interval_ms, knet_ping_timeout_ms) as Corosync derives them.

    totemconfig.c calc_knet_ping_timers: interval = token / (pong_count * 2), timeout =
    token / pong_count, integer division, with the effective (node-count adjusted) token.
    """
    if token_timeout_ms <= 0 or pong_count <= 0:
        raise ValueError(f"token timeout {token_timeout_ms} ms and pong_count {pong_count} "
                         "must both be > 0")
    return token_timeout_ms // (pong_count * 2), token_timeout_ms // pong_count


@dataclass(frozen=True)
class LinkEvent:
    """Something an operator should see in the log. kind: up | down | best."""
    kind: str
    peer: int
    linknumber: int           # for "best": the best link, -1 when none is active
    reason: str
    now_us: int
    text: str                 # the log line, worded as Corosync/knet's


class _Peer:
    __slots__ = (
        "connected",
        "last_pong_seq",
        "last_pong_us",
        "lat_max",
        "lat_min",
        "latency",
        "next_ping_us",
        "nodeid",
        "samples",
        "sent_seq",
        "sent_us",
        "seq",
        "slot",
        "streak",
    )

    def __init__(self, nodeid: int, slot: int, ring_len: int):
        self.nodeid, self.slot = nodeid, slot
        self.next_ping_us = 0             # first due_pings() call pings at once
        self.seq = 0                      # last ping seq sent (0 = none yet)
        self.sent_seq = [0] * ring_len    # seq / send time of recent pings, by seq % len
        self.sent_us = [0] * ring_len
        self.last_pong_us = -1            # -1: no pong since the link was last down
        self.last_pong_seq = 0
        self.streak = 0                   # accepted pongs since last down
        self.connected = False
        self.latency = 0.0
        self.samples = 0
        self.lat_min = self.lat_max = 0


class LinkHealth:
    def __init__(self, linknumber: int, local_nodeid: int, peers, ping_interval_ms: int,
                 ping_timeout_ms: int, pong_count: int, precision: int, table: LinkTable,
                 priority: int | None = None, link_mode: str = "passive",
                 pid: int | None = None):
        for name, value in (("ping_interval_ms", ping_interval_ms),
                            ("ping_timeout_ms", ping_timeout_ms),
                            ("pong_count", pong_count), ("precision", precision)):
            if value <= 0:
                raise ValueError(f"link {linknumber}: {name} must be > 0, got {value}")
        peers = list(peers)
        if len(set(peers)) != len(peers):
            raise ValueError(f"link {linknumber}: peer list {peers} has duplicates")
        self.linknumber = linknumber
        self.local_nodeid = local_nodeid
        self.interval_us = ping_interval_ms * 1000
        self.timeout_us = ping_timeout_ms * 1000
        self.pong_count = pong_count
        self.precision = precision
        self.link_mode = link_mode
        self._table = table
        ring_len = min(SENT_RING_MAX, ping_timeout_ms // ping_interval_ms + 2)
        self._peers = {n: _Peer(n, table.slot_of(n), ring_len) for n in peers}
        self._remote = [p for p in self._peers.values() if p.nodeid != local_nodeid]
        self._events: list[LinkEvent] = []
        self._c = dict.fromkeys(COUNTER_NAMES, 0)
        self._priority = self._initial_priority(priority)
        self._start_row(os.getpid() if pid is None else pid)

    def _initial_priority(self, priority: int | None) -> int:
        """Given, else what the supervisor wrote, else Corosync's default 1."""
        if priority is not None:
            return priority
        for p in self._peers.values():
            pri = self._table.state_of(self.linknumber, p.slot)[3]
            if pri:
                return pri
        return 1

    def _start_row(self, pid: int) -> None:
        # a restarted link process starts from "not connected": it has no pongs yet
        for p in self._peers.values():
            p.connected = p.nodeid == self.local_nodeid
            self._write_state(p)
        self._table.beat(self.linknumber, 0, pid=pid)

    def _write_state(self, p: _Peer, enabled: bool = True) -> None:
        self._table.set_state(self.linknumber, p.slot, True, enabled,
                              p.connected and enabled, self._priority)

    # ---- pings out, pings in ----------------------------------------------------------

    def due_pings(self, now_us: int) -> list[tuple[int, bytes]]:
        out = []
        for p in self._remote:
            if now_us < p.next_ping_us:
                continue
            p.seq = p.seq + 1 if p.seq < SEQ_MAX else 1
            i = p.seq % len(p.sent_seq)
            p.sent_seq[i], p.sent_us[i] = p.seq, now_us
            p.next_ping_us = now_us + self.interval_us
            out.append((p.nodeid, PING.pack(PING_VERSION, KIND_PING, 0, p.seq, now_us)))
            self._table.add_stat(self.linknumber, p.slot, "pings_sent")
        self._c["pings_due"] += len(out)
        return out

    def on_ping(self, peer: int, payload, now_us: int) -> bytes | None:
        """The PONG payload to send back, or None (counted) for a bad ping."""
        p = self._peers.get(peer)
        if p is None:
            self._c["unknown_peer"] += 1
            return None
        fields = self._parse(payload, KIND_PING)
        if fields is None:
            self._c["malformed_ping"] += 1
            self._table.add_stat(self.linknumber, p.slot, "malformed")
            return None
        self._c["pings_answered"] += 1
        seq, send_us = fields
        return PING.pack(PING_VERSION, KIND_PONG, 0, seq, send_us)

    def on_pong(self, peer: int, payload, now_us: int) -> None:
        p = self._peers.get(peer)
        if p is None or p.nodeid == self.local_nodeid:
            self._c["unknown_peer"] += 1
            return
        fields = self._parse(payload, KIND_PONG)
        i = fields[0] % len(p.sent_seq) if fields else 0
        if fields is None or fields[0] > p.seq or fields[1] > now_us \
                or (p.sent_seq[i] == fields[0] and p.sent_us[i] != fields[1]):
            self._c["malformed_pong"] += 1
            self._table.add_stat(self.linknumber, p.slot, "malformed")
            return
        seq, send_us = fields
        if seq <= p.last_pong_seq or p.sent_seq[i] != seq:
            self._c["pongs_stale"] += 1       # duplicate, or older than the ring remembers
            return
        rtt_us = now_us - send_us
        if rtt_us > self.timeout_us:
            self._c["pongs_late"] += 1
            self._table.add_stat(self.linknumber, p.slot, "pongs_late")
            return
        p.last_pong_us, p.last_pong_seq = now_us, seq
        self._c["pongs_accepted"] += 1
        self._sample(p, rtt_us)
        if not p.connected:
            p.streak += 1
            if p.streak >= self.pong_count:
                self._change(p, True, now_us, f"{p.streak} pongs received")

    def on_data(self, peer: int, now_us: int) -> None:
        """A DATA frame arrived: counted only; it is not proof the link works both ways."""
        self._c["data_frames"] += 1

    @staticmethod
    def _parse(payload, kind: int) -> tuple[int, int] | None:
        if len(payload) != PING_BYTES:
            return None
        version, got_kind, reserved, seq, send_us = PING.unpack_from(payload)
        if version != PING_VERSION or got_kind != kind or reserved != 0 or seq == 0:
            return None
        return seq, send_us

    def _sample(self, p: _Peer, rtt_us: int) -> None:
        p.samples = min(p.samples + 1, self.precision)
        p.latency += (rtt_us - p.latency) / p.samples
        ave = round(p.latency)
        first = p.lat_max == 0 and p.lat_min == 0
        p.lat_min = ave if first else min(p.lat_min, ave)
        p.lat_max = ave if first else max(p.lat_max, ave)
        self._table.update_stats(self.linknumber, p.slot, latency_us=ave,
                                 latency_min_us=p.lat_min, latency_max_us=p.lat_max,
                                 latency_samples=p.samples)
        self._table.add_stat(self.linknumber, p.slot, "pongs_received")

    # ---- timers -----------------------------------------------------------------------

    def tick(self, now_us: int) -> list[LinkEvent]:
        """Declare links down whose last pong is a timeout old; return pending events."""
        self._table.beat(self.linknumber, now_us)
        for p in self._remote:
            if p.last_pong_us >= 0 and now_us - p.last_pong_us >= self.timeout_us:
                p.last_pong_us, p.streak = -1, 0
                if p.connected:
                    self._change(p, False, now_us,
                                 f"no pong for {self.timeout_us // 1000} ms")
        events, self._events = self._events, []
        return events

    def next_deadline_us(self) -> int:
        """When tick()/due_pings() next have work: 0 if events are waiting to be taken."""
        if self._events:
            return 0
        deadline = NO_DEADLINE_US
        for p in self._remote:
            deadline = min(deadline, p.next_ping_us)
            if p.last_pong_us >= 0:
                deadline = min(deadline, p.last_pong_us + self.timeout_us)
        return deadline

    def _change(self, p: _Peer, up: bool, now_us: int, reason: str) -> None:
        p.connected = up
        self._write_state(p)
        self._table.update_stats(self.linknumber, p.slot, last_change_us=now_us)
        self._table.add_stat(self.linknumber, p.slot, "up_count" if up else "down_count")
        self._c["link_up" if up else "link_down"] += 1
        word = "up" if up else "down"
        self._events.append(LinkEvent(word, p.nodeid, self.linknumber, reason, now_us,
                                      f"link: host: {p.nodeid} link: {self.linknumber} "
                                      f"is {word}"))
        self._events.append(self._best_event(p, now_us))

    def _best_event(self, p: _Peer, now_us: int) -> LinkEvent:
        links = best_links(self._table, p.slot, self.link_mode)
        if not links:
            return LinkEvent("best", p.nodeid, -1, "no link connected", now_us,
                             f"host: host: {p.nodeid} has no active links")
        if self.link_mode == "passive":
            pri = self._table.state_of(links[0], p.slot)[3]
            return LinkEvent("best", p.nodeid, links[0], f"priority {pri}", now_us,
                             f"host: host: {p.nodeid} (passive) best link: {links[0]} "
                             f"(pri: {pri})")
        return LinkEvent("best", p.nodeid, links[0], f"{len(links)} links connected", now_us,
                         f"host: host: {p.nodeid} has {len(links)} active links")

    # ---- status -----------------------------------------------------------------------

    def connected(self, peer: int) -> bool:
        return self._peers[peer].connected

    def latency_us(self, peer: int) -> int:
        return round(self._peers[peer].latency)

    def counters(self) -> dict:
        return dict(self._c)

    def peer_status(self) -> dict[int, dict]:
        """Per peer, this link's row as Corosync's stats.knet.node<N>.link<L>.* keys.

        mtu is what pmtud.py wrote to the table (0 while unknown); latencies in µs.
        """
        out = {}
        for p in self._peers.values():
            _, enabled, connected, _ = self._table.state_of(self.linknumber, p.slot)
            rec = self._table.stats[self.linknumber, p.slot]
            out[p.nodeid] = {
                "enabled": enabled, "connected": connected, "mtu": int(rec["mtu_bytes"]),
                "latency_min": int(rec["latency_min_us"]),
                "latency_max": int(rec["latency_max_us"]),
                "latency_ave": int(rec["latency_us"]),
                "latency_samples": int(rec["latency_samples"]),
                "up_count": int(rec["up_count"]), "down_count": int(rec["down_count"])}
            del rec
        return out

    def shutdown(self) -> None:
        """Leaving on purpose: mark this link not enabled, so the others take over now."""
        for p in self._peers.values():
            p.connected = False
            self._write_state(p, enabled=False)
