"""Children beat on a common CLOCK_MONOTONIC grid, so an idle node's heartbeats reach the
supervisor together. Real ZeroMQ sockets (ROUTER and DEALERs over ipc://)."""
import time

import pytest

from coroproc.supervisor.control import (
    HEARTBEAT_S,
    ControlClient,
    ControlServer,
    next_beat_s,
)


def test_next_beat_is_the_next_whole_multiple():
    assert next_beat_s(0.0) == HEARTBEAT_S
    assert next_beat_s(10.2 * HEARTBEAT_S) == pytest.approx(11 * HEARTBEAT_S)
    assert next_beat_s(11 * HEARTBEAT_S) == pytest.approx(12 * HEARTBEAT_S)   # not now


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


def test_children_started_apart_beat_on_the_same_grid(server):
    a = ControlClient(server.endpoint, "a")
    time.sleep(0.3 * HEARTBEAT_S)
    b = ControlClient(server.endpoint, "b")
    try:
        for c in (a, b):
            before = time.monotonic()
            assert c.poll()                      # the first beat goes out at once
            # the next one is the grid point after it, not HEARTBEAT_S after this start
            # (the two clients started 0.3 beats apart) or after this beat
            assert c.next_beat_at_s == next_beat_s(c.next_beat_at_s - HEARTBEAT_S)
            assert before < c.next_beat_at_s <= time.monotonic() + HEARTBEAT_S
            assert 0.0 <= c.tick_s <= c.next_beat_at_s - before
        due = [c.next_beat_at_s for c in (a, b)]
        # a loop that sleeps tick_s and then polls sends the next beat then: one each
        time.sleep(max(0.0, max(due) - time.monotonic()) + 0.01)
        a.poll()
        b.poll()
        got = beats(server, 4)
        roles = sorted(r for r, _ in got)
        assert roles == ["a", "a", "b", "b"]
    finally:
        a.close()
        b.close()
