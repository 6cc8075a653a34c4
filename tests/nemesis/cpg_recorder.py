"""A CPG client process for nemesis runs: joins one group, sends checked messages at a
paced rate, records every callback, and reconnects whenever its daemon goes away.

usage (inside the node's network namespace, where the node's libqb IPC sockets are):
    python cpg_recorder.py OUT_PATH GROUP RATE_MSGS_PER_S SIZE_BYTES

OUT_PATH gets one JSON line per event, flushed as written, so a record is complete up to
any kill. Each connection is one record for coroproc/engineprocs/cpg/checker.py; it opens
with ["local", nodeid, pid, connection_no] and holds:
    ["confchg", group, members, left, joined]   ["totem", ring_id, members]
    ["deliver", group, nodeid, pid, msg_id]     msg_id = "<instance hex>:<seq>"
    ["problem", text]   a per-sender check failed (gap, duplicate, CRC, length; cpghum_check)
    ["lost", reason]    the connection broke (daemon killed or cpg engine restarted)
    ["sent", n]         messages sent on the connection, written when it ends
    ["t", t_us]         CLOCK_MONOTONIC µs, at most once a second (dates what follows)
Messages are cpghum's (coroproc/tools/cpghum_wire.py): a per-connection random instance,
per-sender sequence number and CRC-32, so every payload is unique and self-checking.
SIGTERM ends the process after writing ["end"].
"""
from __future__ import annotations

import os
import random
import select
import signal
import sys
import time

import orjson

from coroproc.client.cpg import MODEL_V1_DELIVER_INITIAL_TOTEM_CONF, TYPE_AGREED, Cpg
from coroproc.ipc.cserror import CS_ERR_TRY_AGAIN, CsError
from coroproc.tools.cpghum_check import DeliveryChecker
from coroproc.tools.cpghum_wire import HumFormatError, PayloadPool, decode, encode

RECONNECT_PAUSE_S = 0.2
TRY_AGAIN_PAUSE_S = 0.01
CLOCK_LINE_EVERY_S = 1.0
JOIN_RETRY_S = 30.0          # then the connection is given up and opened again
LIVENESS_POLL_S = 0.2        # longest wait before looking whether the daemon is still there
PACE_BEHIND_MAX_S = 1.0      # a stall longer than this skips the schedule instead of bursting


class Recorder:
    def __init__(self, out_path: str, group: str, rate_msgs_per_s: float, size_bytes: int):
        self.out = open(out_path, "ab", buffering=0)
        self.group = group.encode()
        self.period_s = 1.0 / rate_msgs_per_s
        self.pool = PayloadPool(size_bytes)
        self.stop = False
        self.connection_no = 0
        self.cpg: Cpg | None = None
        self.checker = DeliveryChecker()
        self.instance = self.seq = 0
        self.clock_written_s = 0.0
        self.try_again_streak = 0        # TRY_AGAIN answers since the last accepted send

    def write(self, ev: list) -> None:
        self.out.write(orjson.dumps(ev) + b"\n")

    # ---- callbacks
    def _deliver(self, _h, group, nodeid, pid, message) -> None:
        message = bytes(message)
        try:
            header, _, _ = decode(message)
            msg_id = f"{header.instance:08x}:{header.seq}"
        except HumFormatError:
            msg_id = "foreign:" + message[:32].hex()
        before = self.checker.problems_total
        self.checker.deliver(nodeid, pid, message)
        self.write(["deliver", group.decode("latin-1"), nodeid, pid, msg_id])
        if self.checker.problems_total != before:
            self.write(["problem", self.checker.problems[-1]])

    def _confchg(self, _h, group, members, left, joined) -> None:
        for a in left:
            self.checker.forget_process(a.nodeid, a.pid)
        self.write(["confchg", group.decode("latin-1"), [[a.nodeid, a.pid] for a in members],
                    [[a.nodeid, a.pid, a.reason] for a in left],
                    [[a.nodeid, a.pid, a.reason] for a in joined]])

    def _totem(self, _h, ring_id, members) -> None:
        self.write(["totem", list(ring_id), list(members)])

    # ---- connection
    def connect(self) -> bool:
        try:
            cpg = Cpg(deliver_fn=self._deliver, confchg_fn=self._confchg,
                      totem_confchg_fn=self._totem,
                      model_v1_flags=MODEL_V1_DELIVER_INITIAL_TOTEM_CONF)
        except (CsError, OSError):
            return False
        opened = False
        try:
            nodeid = cpg.local_get()
            self.connection_no += 1
            self.write(["local", nodeid, os.getpid(), self.connection_no])
            opened = True
            self.checker.reset()          # what this process missed while away is no gap
            self.instance, self.seq = random.getrandbits(32), 0
            self._join(cpg)
        except (CsError, OSError) as exc:
            if opened:
                self.write(["lost", f"during join: {exc}"])
            try:
                cpg.close()
            except (CsError, OSError):
                pass
            return False
        self.cpg = cpg
        return True

    def _join(self, cpg: Cpg) -> None:
        """Join, retrying TRY_AGAIN (a restarted engine admits joins after its sync)."""
        deadline = time.monotonic() + JOIN_RETRY_S
        while True:
            try:
                cpg.join(self.group)
                return
            except CsError as exc:
                if exc.code != CS_ERR_TRY_AGAIN or self.stop or time.monotonic() > deadline:
                    raise
                time.sleep(TRY_AGAIN_PAUSE_S * 5)

    def lost(self, exc: BaseException) -> None:
        self.write(["sent", self.seq])
        self.write(["lost", f"{exc} (after {self.try_again_streak} TRY_AGAIN answers)"])
        self.try_again_streak = 0
        cpg, self.cpg = self.cpg, None
        try:
            cpg.close()
        except (CsError, OSError):
            pass

    def send_one(self) -> bool:
        head, payload = encode(self.instance, self.seq, time.monotonic_ns(),
                               self.pool.payload(self.seq))
        try:
            self.cpg.mcast_joined(TYPE_AGREED, head, payload)
        except CsError as exc:
            if exc.code == CS_ERR_TRY_AGAIN:
                self.try_again_streak += 1
                return False
            raise
        self.seq += 1
        self.try_again_streak = 0
        return True

    # ---- loop
    def run(self) -> None:
        due = time.monotonic()
        while not self.stop:
            if self.cpg is None:
                if not self.connect():
                    time.sleep(RECONNECT_PAUSE_S)
                    continue
                due = time.monotonic()
            try:
                due = self._step(due)
            except (CsError, OSError) as exc:
                self.lost(exc)
        if self.cpg is not None:
            self.write(["sent", self.seq])
            try:
                self.cpg.close()
            except (CsError, OSError):
                pass
        self.write(["end"])

    def _step(self, due: float) -> float:
        now = time.monotonic()
        if now - self.clock_written_s >= CLOCK_LINE_EVERY_S:
            self.clock_written_s = now
            self.write(["t", time.monotonic_ns() // 1000])
        if now - due > PACE_BEHIND_MAX_S:
            due = now
        while due <= now and not self.stop:
            if not self.send_one():
                due = now + TRY_AGAIN_PAUSE_S
                break
            due += self.period_s
        # dispatch() runs even when the event socket is quiet: it is the call that looks at
        # the setup socket, so a dead engine is noticed by a client that is only sending
        # (sends into a dead engine's socket were seen to go on without an error)
        select.select([self.cpg.fileno()], [], [],
                      min(LIVENESS_POLL_S, max(0.0, due - time.monotonic())))
        self.cpg.dispatch()
        return due


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    out_path, group, rate, size = argv
    rec = Recorder(out_path, group, float(rate), int(size))

    def on_term(*_):
        rec.stop = True
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    rec.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
