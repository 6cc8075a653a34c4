"""A node's children beat together on a CLOCK_MONOTONIC grid at the node's phase
(beat_phase_s), so nodes that share a host do not all beat at the same instant. Real
ZeroMQ sockets (ROUTER and DEALERs over ipc://)."""
import time

import pytest

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


def beats(server, want, timeout_s=5 * HEARTBEAT_S):
    got = []
    deadline = time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < deadline:
        got += [(role, time.monotonic()) for role, msg in server.recv_all()
                if msg.get("op") == "hb"]
        time.sleep(0.005)
    return got


def test_children_beat_on_their_own_phase_of_the_grid(server):
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
        # a loop that sleeps tick_s and then polls sends the next beat then: one each
        time.sleep(max(0.0, due[1] - time.monotonic()) + 0.01)
        a.poll()
        b.poll()
        got = beats(server, 4)
        roles = sorted(r for r, _ in got)
        assert roles == ["a", "a", "b", "b"]
    finally:
        a.close()
        b.close()


def test_children_get_their_nodes_phase(server):
    """Every child's control client (supervisor/roles.py) beats on its node's phase."""
    from types import SimpleNamespace

    from coroproc.supervisor.roles import _control
    clients = [_control(SimpleNamespace(nodeid=n), server.endpoint, f"r{n}") for n in (1, 2)]
    try:
        assert [c.beat_phase_s for c in clients] == [beat_phase_s(1), beat_phase_s(2)]
        assert clients[0].beat_phase_s != clients[1].beat_phase_s
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


def test_a_beat_carries_no_counters_a_report_does(server):
    asked = []

    def counters():
        asked.append(1)
        return {"asked": len(asked)}

    c = ControlClient(server.endpoint, "a", counters=counters)
    try:
        role, beat = _next_msg(server, c, "hb")     # the first beat goes out at once
        assert (role, beat) == ("a", {"op": "hb"})
        assert asked == []                          # nobody asked: nothing was counted
        assert server.send("a", {"op": "report"})
        role, report = _next_msg(server, c, "report")
        assert role == "a" and report["counters"] == {"asked": 1}
        assert len(asked) == 1
    finally:
        c.close()
