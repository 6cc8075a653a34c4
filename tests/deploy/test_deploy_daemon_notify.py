"""The sd_notify conversation of a real node, as systemd would see it on NOTIFY_SOCKET:
STATUS while forming, READY=1 after the first sync, WATCHDOG=1 when WATCHDOG_USEC is set
(once the supervisor drives watchdog.py), STOPPING=1 on SIGTERM — and the other node
sees a clean leave ("Members left"), not a failure."""
from __future__ import annotations

import os
import signal
import socket

import pytest

from coroproc.localcluster import LocalCluster
from coroproc.shm.names import node_segments


class Notify:
    def __init__(self, path: str):
        self.path = path
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(path)
        self.s.settimeout(120)   # a bound on a hang, not a timing assertion
        self.got: list[str] = []

    def until(self, word: str) -> list[str]:
        while not any(word in g.split("\n") for g in self.got):
            self.got.append(self.s.recv(4096).decode())
        return self.got

    def close(self):
        self.s.close()


@pytest.fixture
def two_nodes(tmp_path):
    c = LocalCluster(tmp_path, 2)
    n = Notify(str(tmp_path / "notify.sock"))
    yield c, n
    n.close()
    c.stop_all()
    for i in (1, 2):
        assert node_segments(c.cluster, i) == []


def test_ready_status_stopping_and_a_clean_leave(two_nodes):
    c, n = two_nodes
    c.start(1)
    c.start(2, env=dict(os.environ, NOTIFY_SOCKET=n.path))
    c.wait_members([1, 2], [1, 2], timeout_s=120)
    got = n.until("READY=1")
    ready_at = next(i for i, g in enumerate(got) if "READY=1" in g.split("\n"))
    assert any(line.startswith("STATUS=") for g in got[:ready_at + 1] for line in g.split("\n"))
    mark = c.mark()
    c.procs[2].send_signal(signal.SIGTERM)
    n.until("STOPPING=1")
    assert c.procs[2].wait(timeout=60) == 0
    c.wait_members([1], [1], since=mark, timeout_s=60)
    after = c.log_lines(1)[mark[1]:]
    assert any("Members left: 2" in line for line in after), after
    assert not any("Failed to receive the leave message" in line
                   or "A processor failed" in line for line in after), after


def test_watchdog_pings_reach_systemds_socket(two_nodes):
    c, n = two_nodes
    env = dict(os.environ, NOTIFY_SOCKET=n.path, WATCHDOG_USEC="2000000")
    c.start(1, env=env)
    n.until("READY=1")
    n.until("WATCHDOG=1")
    pings = sum(g.split("\n").count("WATCHDOG=1") for g in n.got)
    n.got.clear()
    n.until("WATCHDOG=1")   # and they keep coming
    assert pings >= 1
