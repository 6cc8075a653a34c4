"""A node's children beat together on a CLOCK_MONOTONIC grid at the node's phase
(beat_phase_s), so nodes that share a host do not all beat at the same instant; a beat
is a store in the supervisor's shared board (supervisor/beats.py), read across a real
fork, and no control message. Real ZeroMQ sockets (ROUTER and DEALERs over ipc://)."""
import os
import signal
import time

import pytest

from coroproc.supervisor import beats
from coroproc.supervisor.control import (
    HEARTBEAT_S,
    ControlClient,
    ControlServer,
    beat_phase_s,
    next_beat_s,
)


def test_next_beat_is_the_next_grid_point():
    assert next_beat_s(0.0) == HEARTBEAT_S
    assert next_beat_s(10.2 * HEARTBEAT_S) == pytest.approx(11 * HEARTBEAT_S)
    assert next_beat_s(11 * HEARTBEAT_S) == pytest.approx(12 * HEARTBEAT_S)   # not now
    phase = 0.25 * HEARTBEAT_S
    assert next_beat_s(10.2 * HEARTBEAT_S, phase) == pytest.approx(10.25 * HEARTBEAT_S)
    assert next_beat_s(10.25 * HEARTBEAT_S, phase) == pytest.approx(11.25 * HEARTBEAT_S)
    assert next_beat_s(10.3 * HEARTBEAT_S, phase) == pytest.approx(11.25 * HEARTBEAT_S)


def test_nodes_sharing_a_host_beat_apart():
    phases = [beat_phase_s(nodeid) for nodeid in range(1, 33)]
    assert all(0.0 <= p < HEARTBEAT_S for p in phases)
    # three nodes: about a third of a period apart; 32: still no two within 1 %
    three = sorted(phases[:3])
    assert min(b - a for a, b in zip(three, three[1:] + [three[0] + HEARTBEAT_S])) \
        > 0.2 * HEARTBEAT_S
    every = sorted(phases)
    assert min(b - a for a, b in zip(every, every[1:])) > 0.01 * HEARTBEAT_S


@pytest.fixture
def server(tmp_path):
    s = ControlServer(f"ipc://{tmp_path}/control.sock")
    yield s
    s.close()


@pytest.fixture
def board():
    """A board of two slots, this process beating into slot 0 (as a child would)."""
    b = beats.BeatBoard(2)
    beats.attach(b, 0)
    yield b
    beats._board = None                       # this process is no supervisor's child


def test_children_beat_on_their_own_phase_of_the_grid(server, board):
    phases = {"a": 0.1 * HEARTBEAT_S, "b": 0.6 * HEARTBEAT_S}
    a = ControlClient(server.endpoint, "a", beat_phase_s=phases["a"])
    time.sleep(0.3 * HEARTBEAT_S)
    b = ControlClient(server.endpoint, "b", beat_phase_s=phases["b"])
    try:
        for name, c in (("a", a), ("b", b)):
            before = time.monotonic()
            assert c.poll()                      # the first beat goes out at once
            # the next one is its grid point after now, not HEARTBEAT_S after this start
            # (the two clients started 0.3 beats apart) or after this beat
            assert (c.next_beat_at_s - phases[name]) / HEARTBEAT_S == \
                pytest.approx(round((c.next_beat_at_s - phases[name]) / HEARTBEAT_S))
            assert before < c.next_beat_at_s <= time.monotonic() + HEARTBEAT_S
            assert 0.0 <= c.tick_s <= c.next_beat_at_s - before
        due = sorted(c.next_beat_at_s for c in (a, b))
        assert (due[1] - due[0]) % HEARTBEAT_S == pytest.approx(0.5 * HEARTBEAT_S)
        # a loop that sleeps tick_s and then polls beats then, into the board
        time.sleep(max(0.0, due[1] - time.monotonic()) + 0.01)
        before = time.monotonic()
        a.poll()
        assert before <= board.last_s(0) <= time.monotonic()
        assert not [m for _r, m in server.recv_all() if m.get("op") not in ("hello",)]
    finally:
        a.close()
        b.close()


def test_children_get_their_nodes_phase(server):
    """Every child's control client (supervisor/roles.py) beats on its node's phase."""
    from types import SimpleNamespace

    from coroproc.supervisor.roles import _control
    clients = [_control(SimpleNamespace(nodeid=n, heartbeat_timeout_ms=10_000),
                        server.endpoint, f"r{n}") for n in (1, 2)]
    try:
        every_s = beats.beat_every_s(10_000)
        assert every_s == 2.5 and all(c.beat_every_s == every_s for c in clients)
        assert [c.beat_phase_s for c in clients] == [beat_phase_s(1, every_s),
                                                     beat_phase_s(2, every_s)]
        assert clients[0].beat_phase_s != clients[1].beat_phase_s
        c = clients[0]
        c.poll()
        assert (c.next_beat_at_s - c.beat_phase_s) / every_s == pytest.approx(
            round((c.next_beat_at_s - c.beat_phase_s) / every_s))
    finally:
        for c in clients:
            c.close()


def _next_msg(server, client, op, timeout_s=5.0):
    """Poll the child (so it answers) until the server has a message `op` from it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        client.poll()
        for role, msg in server.recv_all():
            if msg.get("op") == op:
                return role, msg
        time.sleep(0.005)
    raise AssertionError(f"no {op!r} from the child in {timeout_s} s")


def test_a_beat_counts_nothing_a_report_does(server, board):
    asked = []

    def counters():
        asked.append(1)
        return {"asked": len(asked)}

    c = ControlClient(server.endpoint, "a", counters=counters)
    try:
        assert _next_msg(server, c, "hello")[0] == "a"   # connected; polled: it beat
        assert board.last_s(0) > 0 and asked == []  # nobody asked: nothing was counted
        assert server.send("a", {"op": "report"})
        role, report = _next_msg(server, c, "report")
        assert role == "a" and report["counters"] == {"asked": 1}
        assert len(asked) == 1
    finally:
        c.close()


def test_a_forked_child_beats_into_the_parents_board_until_it_stops():
    """The supervisor's view: a child's beats arrive through shared memory; a stopped
    child's slot goes stale."""
    board = beats.BeatBoard(3)
    pid = os.fork()
    if pid == 0:
        beats.attach(board, 2)
        while True:
            beats.beat()
            time.sleep(0.01)
    try:
        deadline = time.monotonic() + 10
        while board.last_s(2) == 0.0:
            assert time.monotonic() < deadline, "no beat from the child"
            time.sleep(0.01)
        assert board.last_s(0) == board.last_s(1) == 0.0
        os.kill(pid, signal.SIGSTOP)
        time.sleep(0.05)
        stale = board.last_s(2)
        time.sleep(0.1)
        assert board.last_s(2) == stale <= time.monotonic() - 0.1
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
