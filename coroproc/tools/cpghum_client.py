"""One cpghum participant: a CPG handle that sends paced, checked messages and checks
what it receives; and the poll loop that drives several of them in one thread.

This file owns the sending and receiving side of coroproc-cpghum, used as a library by
the tool and by the demo (`python -m coroproc.demo`, one participant per node):

  * Sending is paced by the monotonic clock: message k of a run is due at
    start + k / rate, so a late wake-up is caught up rather than accumulated as drift.
    A participant more than PACE_BEHIND_MAX_S behind (a configuration change held its
    sends) skips the schedule forward and counts it, instead of bursting minutes of
    backlog. rate 0 floods: send until TRY_AGAIN.
  * TRY_AGAIN (flow control, a sync in progress) is retried as cpghum.c does: immediately
    when flooding, after TRY_AGAIN_PAUSE_S otherwise — while still delivering events, as
    cpghum's dispatch thread would (the daemon disconnects readers that fall behind).
  * A lost connection (daemon killed, cpg engine restarted) is retried every
    RECONNECT_PAUSE_S when `reconnect` is set, as cpghum.c's "Reconnecting..." loop;
    the new connection is a new stream (instance) and the receiver's checks restart.
  * Latency: for its own messages, delivery time minus the send time in the message,
    both CLOCK_MONOTONIC of this host.
"""
from __future__ import annotations

import os
import random
import select
import time
from collections import deque

from coroproc.client.cpg import TYPE_AGREED, Cpg
from coroproc.ipc.cserror import CS_ERR_TRY_AGAIN, CsError, name_of
from coroproc.tools.cpghum_check import DeliveryChecker
from coroproc.tools.cpghum_latency import LatencyHistogram
from coroproc.tools.cpghum_wire import PayloadPool, encode

TRY_AGAIN_PAUSE_S = 0.010      # cpghum.c: usleep(10000) after CS_ERR_TRY_AGAIN
RECONNECT_PAUSE_S = 0.2        # cpghum.c sleeps 1 s; the demo wants the recovery visible
PACE_BEHIND_MAX_S = 1.0
FLOOD_BATCH_MSGS = 64          # sends between two looks at the event socket when flooding
EVENTS_KEPT = 64               # membership events kept for the report
REASONS = {1: "join", 2: "leave", 3: "nodedown", 4: "nodeup", 5: "procdown"}


class HumClient:
    def __init__(self, *, suffix: str = "", group: str = "cpghum", size_bytes: int = 4096,
                 rate_msgs_per_s: float = 100.0, send: bool = True, reconnect: bool = False,
                 label: str = ""):
        if rate_msgs_per_s < 0:
            raise ValueError(f"rate {rate_msgs_per_s} msgs/s: allowed 0 (flood) or more")
        self.suffix, self.group, self.label = suffix, group.encode(), label or suffix or "local"
        self.rate_msgs_per_s, self.sending, self.reconnect = rate_msgs_per_s, send, reconnect
        self.pool = PayloadPool(size_bytes)
        self.size_bytes = size_bytes
        self.checker = DeliveryChecker()
        self.latency = LatencyHistogram()           # whole run
        self.latency_window = LatencyHistogram()    # since take_window()
        self.delivered_window = 0
        self.events: deque[str] = deque(maxlen=EVENTS_KEPT)
        self.events_total = 0            # events ever recorded (the deque keeps the last)
        self.members: list[tuple[int, int]] = []
        self.cpg: Cpg | None = None
        self.nodeid = 0
        self.instance = 0
        self.seq = 0                     # next seq of the current instance
        self.sent = self.send_retries = self.send_fails = 0
        self.own_delivered = 0           # own messages of the current instance delivered
        self.pace_skips = self.disconnects = self.connects = 0
        self.last_error = ""
        self._due_ns = 0                 # when the next paced message is due
        self._period_ns = int(1e9 / rate_msgs_per_s) if rate_msgs_per_s else 0
        self._retry_at_ns = 0            # no send / connect attempt before this
        self._poller = select.poll()

    # ---- connection -------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.cpg is not None

    def connect(self) -> bool:
        """One attempt to initialize, learn the local nodeid and join; False on failure."""
        try:
            cpg = Cpg(deliver_fn=self._on_deliver, confchg_fn=self._on_confchg,
                      suffix=self.suffix)
        except CsError as exc:
            self.last_error = f"cpg_initialize: {name_of(exc.code)}"
            return False
        try:
            self.nodeid = cpg.local_get()
            cpg.join(self.group)
        except CsError as exc:
            self.last_error = f"cpg_join: {name_of(exc.code)}"
            cpg.close()
            return False
        self.cpg = cpg
        self._poller = select.poll()
        self._poller.register(cpg.fileno(), select.POLLIN)
        self.instance = random.getrandbits(32)
        self.seq = self.own_delivered = 0
        self.checker.reset()
        self.connects += 1
        self._event(f"{self.label}: joined group {self.group.decode()} as nodeid "
                           f"{self.nodeid} pid {os.getpid()}")
        return True

    def _lost(self, exc: CsError, now_ns: int) -> None:
        self.disconnects += 1
        self.last_error = str(exc)
        self._event(f"{self.label}: connection lost ({name_of(exc.code)})"
                           + (", reconnecting" if self.reconnect else ""))
        cpg, self.cpg, self.members = self.cpg, None, []
        cpg.close()
        self._retry_at_ns = now_ns + int(RECONNECT_PAUSE_S * 1e9)

    def _event(self, text: str) -> None:
        self.events.append(text)
        self.events_total += 1

    def close(self) -> None:
        if self.cpg is not None:
            self.cpg.close()
            self.cpg = None

    def fileno(self) -> int:
        return self.cpg.fileno()

    # ---- callbacks ----------------------------------------------------------------------------
    def _on_deliver(self, _h, _group, nodeid, pid, message) -> None:
        now_ns = time.monotonic_ns()
        d = self.checker.deliver(nodeid, pid, message)
        self.delivered_window += 1
        if d.header is not None and nodeid == self.nodeid and pid == os.getpid() \
                and d.header.instance == self.instance:
            self.own_delivered += 1
            rtt_us = max(0, now_ns - d.header.send_ns) // 1000
            self.latency.record(rtt_us)
            self.latency_window.record(rtt_us)

    def _on_confchg(self, _h, _group, members, left, joined) -> None:
        self.members = [(a.nodeid, a.pid) for a in members]
        for a in left:
            self.checker.forget_process(a.nodeid, a.pid)
        change = [f"+{a.nodeid}/{a.pid} {REASONS.get(a.reason, a.reason)}" for a in joined] + \
                 [f"-{a.nodeid}/{a.pid} {REASONS.get(a.reason, a.reason)}" for a in left]
        self._event(f"{self.label}: confchg {' '.join(change)} -> "
                           f"{len(self.members)} members")

    # ---- the loop's calls -------------------------------------------------------------------
    def start_sending(self, now_ns: int) -> None:
        self._due_ns = now_ns

    def next_wakeup_ns(self, now_ns: int) -> int:
        if not self.connected:
            return self._retry_at_ns if self.reconnect else now_ns + 10**9
        if not self.sending or self._due_ns == 0:
            return now_ns + 10**9
        return max(self._due_ns, self._retry_at_ns)

    def step(self, now_ns: int, sending: bool = True) -> None:
        """Deliver waiting events, then send what is due (if `sending`)."""
        if not self.connected:
            if self.reconnect and now_ns >= self._retry_at_ns:
                if not self.connect():
                    self._retry_at_ns = now_ns + int(RECONNECT_PAUSE_S * 1e9)
                elif self._due_ns:
                    self._due_ns = now_ns
            return
        try:
            self.pump()
            if sending and self.sending and self._due_ns and now_ns >= self._retry_at_ns:
                self._send_due(now_ns)
        except CsError as exc:
            self._lost(exc, now_ns)

    def pump(self) -> None:
        """Run callbacks for every event already waiting (never blocks)."""
        while self.cpg is not None and self._poller.poll(0):
            if not self.cpg.dispatch():
                break

    def _send_due(self, now_ns: int) -> None:
        if self._period_ns == 0:
            self._flood()
            return
        if now_ns - self._due_ns > PACE_BEHIND_MAX_S * 1e9:
            self.pace_skips += 1
            self._due_ns = now_ns
        while self._due_ns <= now_ns:
            if not self._send_one():
                self._retry_at_ns = now_ns + int(TRY_AGAIN_PAUSE_S * 1e9)
                return
            self._due_ns += self._period_ns

    def _flood(self) -> None:
        for _ in range(FLOOD_BATCH_MSGS):
            self.pump()      # reading first: the daemon disconnects a client that lags
            if not self._send_one():
                return    # cpghum/cpgbench retry at once: the loop comes straight back

    def _send_one(self) -> bool:
        """True if sent; False on TRY_AGAIN; CsError for anything else."""
        head, payload = encode(self.instance, self.seq, time.monotonic_ns(),
                               self.pool.payload(self.seq))
        try:
            self.cpg.mcast_joined(TYPE_AGREED, head, payload)
        except CsError as exc:
            if exc.code != CS_ERR_TRY_AGAIN:
                self.send_fails += 1
                raise
            self.send_retries += 1
            return False
        self.seq += 1
        self.sent += 1
        return True

    def take_window(self) -> tuple[int, LatencyHistogram]:
        """(deliveries, own-latency histogram) since the last call; starts a new window."""
        window = (self.delivered_window, self.latency_window)
        self.delivered_window, self.latency_window = 0, LatencyHistogram()
        return window

    def own_in_flight(self) -> int:
        return self.seq - self.own_delivered if self.connected else 0


def run_loop(clients: list[HumClient], until_ns: int, *, sending: bool = True,
             tick_ns: int = 0, on_tick=None, stop=None) -> None:
    """Drive `clients` until `until_ns` (monotonic) or stop() is true; on_tick(now_ns)
    every tick_ns. Sleeps in poll() on every connected client's event socket."""
    next_tick = time.monotonic_ns() + tick_ns if on_tick else None
    while True:
        now = time.monotonic_ns()
        if now >= until_ns or (stop is not None and stop()):
            return
        for c in clients:
            c.step(now, sending)
        if next_tick is not None and now >= next_tick:
            on_tick(now)
            next_tick += tick_ns
            if next_tick < now:                 # a long stall: don't fire a burst of ticks
                next_tick = now + tick_ns
        wake = min([until_ns] + [c.next_wakeup_ns(now) for c in clients if sending]
                   + ([next_tick] if next_tick is not None else []))
        flooding = sending and any(c.connected and c.sending and c._period_ns == 0
                                   for c in clients)
        timeout_ms = 0 if flooding else max(0, -(-(wake - time.monotonic_ns()) // 1_000_000))
        poller = select.poll()
        for c in clients:
            if c.connected:
                poller.register(c.fileno(), select.POLLIN)
        poller.poll(min(timeout_ms, 1000))
