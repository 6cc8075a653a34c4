"""The `load` engine: a steady message stream through the node, and the EVS event log.

It submits messages of totempg group "load" at a fixed rate (a fraction of them safe),
reads its delivery ring and, if an event log path is set, writes the JSON-lines log of
docs/event-log.md that coroproc.sim.checker verifies on real clusters. Message identity:
payload = sender nodeid (u32) + per-sender seq (u64) + filler; the seq continues from the
last `send` in the log (the checker wants each sender's seqs consecutive), or starts at
the wall-clock µs without a log, so it never repeats across restarts.

Ordering of writes: a `send` line is written before the push (and only when the push
cannot fail), a delivery is released from the ring only after its line is written, so a
killed engine never loses a delivery from the log; an engine restart resumes at the
ring's tail. A node restart (a new supervisor incarnation) and a ring process restart (a second
RT_RING_START in one incarnation) are logged as a crash and restart of the node's Totem
incarnation; a restart of this engine alone is not.
"""
from __future__ import annotations

import os
import struct
import time
import zlib

import numpy as np
import orjson

from coroproc.eventlog import open_event_log, parse_event_line
from coroproc.ringproc import totempg as pg
from coroproc.ringproc.records import (CFG_HDR, CFG_HDR_BYTES, DLV_HDR, DLV_HDR_BYTES, RT_CONFIG,
                                       RT_DELIVER, RT_RING_START, RT_SUBMIT, SUBMIT_SAFE)
from coroproc.shm.kernels import (PEEK_EMPTY, PEEK_RECORD, ring_head, ring_peek, ring_release,
                                  ring_tail)
from coroproc.shm.ring import ShmRing

GROUP = b"load"
GROUP_ARR = np.frombuffer(GROUP, np.uint8).copy()
ID = struct.Struct("<IQ")
BATCH_MAX = 4096
LEVELS = ("agreed", "safe")


def _now_us() -> int:
    return time.monotonic_ns() // 1000


def _last_sent_seq(path: str, nodeid: int) -> int | None:
    """The seq of this node's last `send` in the log, reading back from the end."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return None
    span = 1 << 16
    with open(path, "rb") as f:
        while True:
            f.seek(max(size - span, 0))
            for line in reversed(f.read().splitlines()[1 if size > span else 0:]):
                if b'"ev":"send"' in line:
                    ev = parse_event_line(line)     # None: a line a kill cut
                    if ev is not None and ev["id"][0] == nodeid:
                        return int(ev["id"][1])
            if span >= size:
                return None
            span *= 4


def _last_event(path: str) -> str | None:
    """The `ev` of the log's last line (the tail is enough: lines are short)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(os.path.getsize(path) - 4096, 0))
            lines = [ln for ln in f.read().splitlines() if ln.strip()]
    except FileNotFoundError:
        return None
    last = parse_event_line(lines[-1]) if lines else None
    return None if last is None else last.get("ev")   # None too for a line a kill cut


class LoadEngine:
    def __init__(self, plan, eng, doorbell, control, log):
        opts = eng.options
        self.nodeid = plan.nodeid
        self.rate_per_s = float(opts.get("rate_msgs_per_s", 100))
        self.msg_bytes = max(int(opts.get("msg_bytes", 64)), ID.size)
        self.safe_every = int(opts.get("safe_every", 5))   # every Nth message is safe
        self.log_path = opts.get("event_log")
        self.doorbell = doorbell
        self.control = control
        self.log = log
        self.submit = ShmRing.attach(eng.submit_name, wake_fd=plan.ring_wake_fd, role="producer")
        self.delivery = ShmRing.attach(eng.delivery_name, role="consumer")
        self.seq = time.time_ns() // 1000
        self.sent = self.delivered = 0
        self.configs = 0
        self.foreign: dict[int, int] = {}
        self.out = None
        self.incarnation_us = plan.incarnation_us
        self.ring_start_seen = None
        self.last_ev = None
        if self.log_path:
            self.last_ev = _last_event(self.log_path)
            # the checker wants each sender's seqs consecutive: continue the log's
            self.seq = _last_sent_seq(self.log_path, self.nodeid) or self.seq
            self.out = open_event_log(self.log_path)
            seen = self._load_state()
            if seen.get("incarnation") == self.incarnation_us:
                # only this engine restarted: same node incarnation, resume where we were
                self.ring_start_seen = seen.get("ring_start")
            elif self.last_ev is not None:
                # a new supervisor: the node restarted. Mark it before the first send.
                self._incarnation_break()
        control.counters_fn = self.counters

    # ---- event log ----
    def _state_path(self) -> str:
        return self.log_path + ".state"

    def _load_state(self) -> dict:
        try:
            with open(self._state_path(), "rb") as f:
                return orjson.loads(f.read())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return {}

    def _save_state(self) -> None:
        tmp = self._state_path() + ".tmp"
        with open(tmp, "wb") as f:
            f.write(orjson.dumps({"incarnation": self.incarnation_us,
                                  "ring_start": self.ring_start_seen}))
        os.replace(tmp, self._state_path())

    def _incarnation_break(self) -> None:
        """The node's Totem incarnation ended (a harness that killed it may have said so)."""
        t = _now_us()
        if self.last_ev != "crash":
            self._write({"ev": "crash", "t_us": t})
        self._write({"ev": "restart", "t_us": t})

    def _write(self, ev: dict) -> None:
        if self.out is not None:
            ev["node"] = self.nodeid
            ev.setdefault("t_us", _now_us())
            self.out.write(orjson.dumps(ev) + b"\n")
            self.last_ev = ev["ev"]

    # ---- loop ----
    def run(self) -> int:
        period_s = 1.0 / self.rate_per_s if self.rate_per_s > 0 else None
        next_send = time.monotonic()
        while self.control.poll():
            self._drain()
            now = time.monotonic()
            if period_s is not None:
                while now >= next_send:
                    if not self._send_one():
                        next_send = now + period_s  # submit ring full: back off a period
                        break
                    next_send += period_s
                # after a long stall don't burst to catch up
                next_send = max(next_send, now - 10 * period_s)
            timeout = self.control.tick_s
            if period_s is not None:
                timeout = min(timeout, max(next_send - time.monotonic(), 0.0))
            self.doorbell.wait([self.delivery], timeout, extra_fds=self.control.fds())
        return 0

    def _send_one(self) -> bool:
        self.seq += 1
        payload = ID.pack(self.nodeid, self.seq) + bytes(self.msg_bytes - ID.size)
        msg = pg.build_group_message(GROUP, payload).tobytes()
        safe = self.safe_every > 0 and self.seq % self.safe_every == 0
        if self.submit.capacity_bytes - self._used(self.submit) < len(msg) + 64:
            self.seq -= 1
            return False
        self._write({"ev": "send", "id": [self.nodeid, self.seq], "size": len(payload),
                     "hash": zlib.crc32(payload), "level": LEVELS[safe]})
        if not self.submit.push(RT_SUBMIT, msg, SUBMIT_SAFE if safe else 0):
            raise RuntimeError("submit ring refused a push it had room for")
        self.sent += 1
        return True

    @staticmethod
    def _used(ring) -> int:
        return int(ring_head(ring.hdr) - ring_tail(ring.hdr))

    def _drain(self) -> None:
        h, d = self.delivery.hdr, self.delivery.data
        pos = ring_tail(h)
        for _ in range(BATCH_MAX):
            status, off, ln, rtype, _flags, nxt = ring_peek(h, d, pos)
            if status == PEEK_EMPTY:
                break
            if status != PEEK_RECORD:
                raise RuntimeError(f"delivery ring {self.delivery.name} has corrupt framing")
            self._record(rtype, d[off:off + ln])
            pos = nxt
        ring_release(h, pos)

    def _record(self, rtype: int, rec) -> None:
        if rtype == RT_DELIVER:
            sender, rep, rseq_ring, tseq, rpos, level = DLV_HDR.unpack_from(rec, 0)
            msg = rec[DLV_HDR_BYTES:]
            if pg.pg_group_matches(msg, 0, msg.shape[0], GROUP_ARR, len(GROUP)) != 1:
                # another group's message (e.g. Corosync's own in a mixed ring): counted
                # per sender, which shows the ring orders traffic of every member
                self.foreign[sender] = self.foreign.get(sender, 0) + 1
                return
            payload = bytes(msg[pg.group_payload_offset(msg):])
            if len(payload) < ID.size:
                return
            s_node, s_seq = ID.unpack_from(payload, 0)
            self.delivered += 1
            self._write({"ev": "deliver", "id": [s_node, s_seq], "ring": [rep, rseq_ring],
                         "rseq": tseq << 12 | rpos, "tseq": tseq, "rpos": rpos,
                         "level": LEVELS[level], "hash": zlib.crc32(payload)})
        elif rtype == RT_CONFIG:
            kind, rep, seq, count, _ = CFG_HDR.unpack_from(rec, 0)
            members = list(struct.unpack_from(f"<{count}I", rec, CFG_HDR_BYTES))
            self.configs += 1
            self._write({"ev": "install", "ring": [rep, seq],
                         "kind": "regular" if kind else "transitional", "members": members})
        elif rtype == RT_RING_START:
            incarnation, ring_start = struct.unpack_from("<qq", rec, 0)
            if incarnation != self.incarnation_us or ring_start == self.ring_start_seen:
                return  # from an earlier node incarnation, or already seen
            if self.ring_start_seen is not None:
                self._incarnation_break()  # the ring process restarted under us
            self.ring_start_seen = ring_start
            if self.log_path:
                self._save_state()

    def counters(self) -> dict:
        return {"sent": self.sent, "delivered": self.delivered, "configs": self.configs,
                "other_groups_by_sender": {str(k): v for k, v in self.foreign.items()}}

    def close(self) -> None:
        if self.out is not None:
            # The node stops: for the EVS checker its incarnation ends here, and messages
            # it sent after the ring process left are not owed a delivery.
            self._write({"ev": "crash"})
            self.out.close()
        self.submit.close()
        self.delivery.close()

