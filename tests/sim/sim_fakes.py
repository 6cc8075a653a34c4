"""Stand-ins for the simulator's own tests: a toy core and a toy checker.

The toy core speaks the driver API of coroproc.ringproc.node.TotemNode (docs/core-api.md)
without any protocol: each node is a ring of its own, delivers its own messages on its
heartbeat timer and multicasts a ping per heartbeat. That is enough to exercise the
world's plumbing (timers, frames, pauses, crashes, ring seq persistence, logs) without
depending on the real core.
"""
from __future__ import annotations

import struct

HEARTBEAT_US = 10_000
QUEUE_MAX = 8


class FakeNode:
    instances: list["FakeNode"] = []

    def __init__(self, cfg, nodeid: int, ring_seq: int) -> None:
        self.cfg = cfg
        self.nodeid = nodeid
        self.ring_seq_given = ring_seq
        self.deadline_us = -1
        self.outputs: list[tuple] = []
        self.queue: list[tuple[bytes, bool]] = []
        self.frames_rx: list[tuple[int, bytes]] = []
        self.timer_calls: list[int] = []
        self.left = False
        self.ring = (nodeid, ring_seq + 4)
        FakeNode.instances.append(self)

    def start(self, now_us: int) -> None:
        self.outputs.append(("ringid", self.ring[0], self.ring[1]))
        self.outputs.append(("config", "regular", self.ring, (self.nodeid,)))
        self.deadline_us = now_us + HEARTBEAT_US

    def on_frame(self, now_us: int, frame: bytes) -> None:
        self.frames_rx.append((now_us, frame))

    def on_timer(self, now_us: int) -> None:
        assert 0 <= self.deadline_us <= now_us, "on_timer before the deadline"
        self.timer_calls.append(now_us)
        self.outputs.append(("send", 0, b"ping" + struct.pack("<I", self.nodeid)))
        for i, (payload, safe) in enumerate(self.queue):
            self.outputs.append(("deliver", self.nodeid, self.ring, i + 1, "safe" if safe else "agreed", payload))
        self.queue.clear()
        self.outputs.append(("log", 9, 1, 2))
        self.deadline_us = now_us + HEARTBEAT_US

    def next_deadline_us(self) -> int:
        return self.deadline_us

    def submit(self, payload: bytes, safe: bool = False, group: bytes = b"a") -> bool:
        if len(self.queue) >= QUEUE_MAX:
            return False
        self.queue.append((payload, safe))
        return True

    def take_outputs(self) -> list[tuple]:
        out, self.outputs = self.outputs, []
        return out

    def leave(self, now_us: int) -> None:
        self.left = True
        self.outputs.append(("send", 0, b"leave"))

    def counters(self) -> dict[str, int]:
        return {"frames_rx": len(self.frames_rx)}


def fake_factory(cfg, nodeid, ring_seq):
    return FakeNode(cfg, nodeid, ring_seq)


class StandInViolation:
    def __init__(self, prop: str, node: int, message: str) -> None:
        self.prop, self.node, self.message = prop, node, message


def standin_check_safety(logs):
    """Integrity only: every delivery was sent, with its hash."""
    sent = {}
    for node, log in logs.items():
        for e in log:
            if e["ev"] == "send":
                sent[tuple(e["id"])] = e["hash"]
    out = []
    for node, log in logs.items():
        for e in log:
            if e["ev"] == "deliver" and sent.get(tuple(e["id"])) != e["hash"]:
                out.append(StandInViolation("integrity", node, f"delivered {e['id']} unsent"))
    return out


def standin_check_liveness(logs, *, quiet_from_us, end_us, bound_us, connected_live):
    assert quiet_from_us < end_us and bound_us > 0 and connected_live
    return []


STANDIN_CHECKER = (standin_check_safety, standin_check_liveness)
