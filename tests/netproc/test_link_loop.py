"""The jitted link loop (netproc/jit/link_loop.py) hands control back to Python when it
must: a command arriving while the link is busy (it never sleeps then), a signal while it
sleeps (Python runs the handler), each heartbeat tick; and a corrupt tx ring stops the
link with the position. A real LinkProcess over real shm rings and a real socket runs in
a forked child, so a loop that never returns fails the test (after GUARD_TIMEOUT_S) instead
of hanging it; no test depends on speed."""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import struct
import time
import traceback

import numpy as np
import pytest
from netproc_harness import GUARD_TIMEOUT_S, frame, free_udp_port, kill_child, unique_tag

from coroproc.netproc.control import PipeControl
from coroproc.netproc.link import RX_BATCH_DATAGRAMS_MAX, LinkProcess
from coroproc.netproc.spec import LinkSpec
from coroproc.shm.doorbell import Doorbell
from coroproc.shm.ring import ShmRing

NEVER_S = 3600.0          # a heartbeat tick that never comes during a test


class Link:
    """A udpu LinkProcess on 127.0.0.1 whose rx ring nobody drains."""

    def __init__(self):
        self.port = free_udp_port()
        spec = LinkSpec(linknumber=0, transport="udpu", family=socket.AF_INET,
                        local_nodeid=1, bind_addr="127.0.0.1", port=self.port,
                        peers={1: ("127.0.0.1", self.port), 2: ("127.0.0.1", free_udp_port())})
        tag = unique_tag()
        self.bell = Doorbell()
        self.rx = ShmRing.create(f"/coroproc-test.loop.{tag}.rx", 1 << 16, role="producer")
        self.tx = ShmRing.create(f"/coroproc-test.loop.{tag}.tx", 1 << 16,
                                 wake_fd=self.bell.fd, role="producer")
        self.proc = LinkProcess(spec, self.rx, self.tx, self.bell)
        self.pid = None

    def run_in_child(self, control, in_child=lambda: None) -> None:
        """Fork; the child calls in_child(), runs the link under control and reports."""
        res_r, res_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(res_r)
            try:
                in_child()
                self.proc.run(control)
                msg = {"counters": self.proc.counters(), "polls": control.polls}
            except BaseException:  # noqa: BLE001  (reported to the parent)
                msg = {"error": traceback.format_exc()}
            os.write(res_w, json.dumps(msg).encode())
            os._exit(0)
        os.close(res_w)
        self.proc.close()          # the child owns the sockets now
        self._res_r = res_r

    def report(self) -> dict:
        """The child's report; fails the test if it has none within GUARD_TIMEOUT_S."""
        r, _, _ = select.select([self._res_r], [], [], GUARD_TIMEOUT_S)
        if not r:
            pytest.fail(f"the link loop did not return to Python within {GUARD_TIMEOUT_S} s")
        data = b""
        while chunk := os.read(self._res_r, 1 << 16):
            data += chunk
        return json.loads(data)

    def close(self) -> None:
        if self.pid:
            kill_child(self.pid)
            os.close(self._res_r)
        self.proc.close()
        for r in (self.rx, self.tx):
            r.unlink()         # first: a close that raises must not leave the name
            r.close()
        self.bell.close()


@pytest.fixture
def link():
    lk = Link()
    yield lk
    lk.close()


class CommandOnFirstPoll(PipeControl):
    """A command arrives just as the loop starts: the first poll() makes its fd readable."""

    def __init__(self):
        r, self.w = os.pipe()
        super().__init__(r, tick_s=NEVER_S)

    def poll(self) -> bool:
        if self.polls == 0:
            os.write(self.w, b"x")
            self.polls += 1
            return True
        return super().poll()


def test_a_command_reaches_a_busy_link_after_one_turn(link):
    # more datagrams queued than one turn takes: the loop never sleeps until they are gone
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(4 * RX_BATCH_DATAGRAMS_MAX):
            s.sendto(frame(i, 200), ("127.0.0.1", link.port))
    link.run_in_child(CommandOnFirstPoll())
    rep = link.report()
    assert "error" not in rep, rep.get("error")
    c = rep["counters"]
    # one turn's batch, then the control fd: not the whole queue first
    assert c["rx_frames"] + c["rx_ring_full"] == RX_BATCH_DATAGRAMS_MAX
    assert c["sleeps"] == 0


def test_a_signal_while_asleep_runs_its_python_handler(link):
    control, stop_w = PipeControl.pair(tick_s=NEVER_S)

    def install_handler():
        # the handler stops the link: run() returns only if Python got to run it
        signal.signal(signal.SIGUSR1, lambda *_: os.write(stop_w, b"x"))

    link.run_in_child(control, install_handler)
    time.sleep(0.5)                # let it fall asleep; any time is fine
    os.kill(link.pid, signal.SIGUSR1)
    rep = link.report()
    assert "error" not in rep, rep.get("error")
    assert rep["counters"]["sleeps"] >= 1
    os.close(stop_w)


def test_an_idle_link_polls_its_control_every_tick(link):
    control, stop_w = PipeControl.pair(tick_s=0.02)
    link.run_in_child(control)
    time.sleep(0.5)
    os.write(stop_w, b"x")
    rep = link.report()
    assert "error" not in rep, rep.get("error")
    assert rep["polls"] >= 3       # ~25 ticks in 0.5 s; 3 only says "more than once"
    os.close(stop_w)


def test_a_corrupt_tx_ring_stops_the_link_with_the_position(link):
    control, stop_w = PipeControl.pair(tick_s=NEVER_S)
    assert link.tx.push(1, struct.pack("<I", 2) + frame(7, 64))
    # a record header whose length runs past the head: nothing a producer writes
    link.tx.data[:4] = np.frombuffer(struct.pack("<I", 1 << 15), np.uint8)
    link.run_in_child(control)
    rep = link.report()
    assert "ShmError" in rep["error"] and "corrupt record at position 0" in rep["error"]
    os.close(stop_w)
