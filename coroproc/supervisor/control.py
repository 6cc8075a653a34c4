"""The ZeroMQ control plane between the supervisor and its children.

The supervisor binds one ROUTER socket (ipc://<run_dir>/control.sock); every child
connects a DEALER whose identity is its role ("ring", "net0", "load"). Messages are
single-frame orjson objects with an "op" field:

  child → supervisor: hello {pid}, report {counters}, event {...}, reply {...}
  supervisor → child: stop {}, report {}, and the engines' and the ring's own ops

Heartbeats do not travel here: a child writes them to its slot of the supervisor's board
in shared memory (supervisor/beats.py), on a grid of its node's phase. A child's counters
go up only when the supervisor asks for a report (supervisor/reports.py). Children
never block on the control socket:
`poll()` drains it without waiting, so the hot loops stay in charge of their own
sleeping.
"""
from __future__ import annotations

import math
import os
import time

import orjson
import zmq

from . import beats


# A node's children beat on a grid of CLOCK_MONOTONIC at the node's own phase
# (beat_phase_s): an idle child wakes for its beat, and on one host (tests, demos, the
# benchmarks' 3 nodes on 2 vCPUs) nodes that beat at one instant stalled every delivery
# chain at once (own-delivery p99 at 1,000 msgs/s 3.3-4.6 ms, 1.8-3.2 ms with the phases
# apart, 4 runs each, when beats were ZeroMQ messages). The period is the node's
# heartbeat timeout / BEATS_PER_TIMEOUT (beats.py); HEARTBEAT_S when no node says.
HEARTBEAT_S = 1.0
# plain ints: pyzmq's enum members cost an enum operation per use, on every wake-up
_ZMQ_EVENTS = int(zmq.EVENTS)
_ZMQ_POLLIN = int(zmq.POLLIN)
# How long a silent child may be before the supervisor calls it stuck is the node's
# `coroproc { heartbeat_timeout_ms }` (default 10 s: a loaded 2-core machine stalls
# processes for a while without anything being wrong).


def next_beat_s(now: float, phase_s: float = 0.0, every_s: float = HEARTBEAT_S) -> float:
    """The first heartbeat time after `now` of the grid of every_s shifted by phase_s
    (CLOCK_MONOTONIC seconds)."""
    return (math.floor((now - phase_s) / every_s) + 1) * every_s + phase_s


def beat_phase_s(nodeid: int, every_s: float = HEARTBEAT_S) -> float:
    """Where in each beat period a node's children beat: the golden ratio's fraction per
    nodeid keeps the nodes that share a host apart, however many there are."""
    return (nodeid * 0.6180339887) % 1.0 * every_s


def control_endpoint(run_dir: str) -> str:
    return f"ipc://{os.path.join(run_dir, 'control.sock')}"


class ControlClient:
    """A child's end: heartbeats, events up, commands down."""

    def __init__(self, endpoint: str, role: str, counters=lambda: {},
                 beat_phase_s: float = 0.0, beat_every_s: float = HEARTBEAT_S):
        self.role = role
        self.beat_phase_s = beat_phase_s    # its node's place on the beat grid
        self.beat_every_s = beat_every_s
        self._ctx = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.IDENTITY, role.encode())
        self._sock.setsockopt(zmq.LINGER, 500)
        # a supervisor that stopped reading must not make a child block or grow forever
        self._sock.setsockopt(zmq.SNDHWM, 1000)
        self._sock.connect(endpoint)
        self.counters_fn = counters  # what a report carries; an engine may set it later
        self.next_beat_at_s = 0.0   # CLOCK_MONOTONIC time of the next heartbeat (0: now)
        self.stop_requested = False
        self.handlers = {}  # op -> callable(msg) -> reply dict or None
        self._fd = None
        self.send({"op": "hello", "pid": os.getpid()})

    @property
    def tick_s(self) -> float:
        """How long the child may sleep before poll() is due again: until its next beat.
        Loops bound their sleeps by it, so the beat goes out on the grid, not late."""
        return max(0.0, self.next_beat_at_s - time.monotonic())

    def fds(self) -> list[int]:
        # constant for the socket's life; asking costs ~2 µs (pyzmq's enum conversion) on
        # a path engines take on every wake-up
        if self._fd is None:
            self._fd = self._sock.getsockopt(zmq.FD)
        return [self._fd]

    def send(self, msg: dict) -> None:
        try:
            self._sock.send(orjson.dumps(msg), zmq.NOBLOCK)
        except zmq.Again:
            pass  # supervisor not reading: the message is lost, the child goes on

    def poll(self) -> bool:
        """Handle waiting commands and send a heartbeat when due; False once told to stop."""
        now = time.monotonic()
        if now >= self.next_beat_at_s:
            self.next_beat_at_s = next_beat_s(now, self.beat_phase_s, self.beat_every_s)
            beats.beat()
        # ZMQ_EVENTS first: an idle loop turn then costs one getsockopt, not a raised
        # zmq.Again (children poll on every wake-up)
        while self._sock.getsockopt(_ZMQ_EVENTS) & _ZMQ_POLLIN:
            try:
                raw = self._sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            self._handle(raw)
        return not self.stop_requested

    def _handle(self, raw: bytes) -> None:
        try:
            msg = orjson.loads(raw)
            op = msg["op"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        if op == "stop":
            self.stop_requested = True
            return
        handler = self.handlers.get(op)
        if handler is not None:
            reply = handler(msg)
            if reply is not None:
                self.send({"op": "reply", "to": op, **reply})
        elif op == "report":
            self.send({"op": "report", "counters": self.counters_fn()})

    def close(self) -> None:
        self._sock.close(linger=200)


class ControlServer:
    """The supervisor's end."""

    def __init__(self, endpoint: str):
        self._ctx = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        # commands to a child that is gone must fail fast, not queue up
        self._sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._sock.bind(endpoint)
        self.endpoint = endpoint

    @property
    def socket(self):
        return self._sock

    def recv_all(self) -> list[tuple[str, dict]]:
        out = []
        while True:
            try:
                ident, raw = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return out
            except ValueError:
                continue  # not two frames: not one of ours
            try:
                msg = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(msg, dict):
                out.append((ident.decode(errors="replace"), msg))

    def send(self, role: str, msg: dict) -> bool:
        try:
            self._sock.send_multipart([role.encode(), orjson.dumps(msg)], zmq.NOBLOCK)
            return True
        except (zmq.Again, zmq.ZMQError):
            return False

    def close(self) -> None:
        self._sock.close(linger=0)
