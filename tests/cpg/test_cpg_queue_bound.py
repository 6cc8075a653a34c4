"""Flow control bounds the node's queue before its 4 MiB submit ring fills (real daemon).

The ring process of a one-node daemon is stopped (SIGSTOP), so nothing the CPG engine
submits is taken. A Python libcpg client sends 1 KiB messages until the daemon says
CS_ERR_TRY_AGAIN, each once the engine has read the one before (the client's shared
`sent` count is back to 0), so the backlog is all in the submit ring, whatever the
scheduling. The queue-delay rule (engineprocs/submit_delay.py) raises the flag at its
floor, 128 KiB of backlog, ~110 messages; without it, CPG's room rule raised it once less
than one maximum message (1 MiB) of contiguous room was left: ~1,500 messages here. Then
the ring process continues, and every message sent is delivered once, in order, and the
client may send again. Waits are bounded only to turn a hang into a failure; nothing is
asserted about timing.
"""
import os
import select
import signal
import time

import pytest

from coroproc.client.cpg import Cpg
from coroproc.ipc.cserror import CS_ERR_TRY_AGAIN, CsError
from coroproc.localcluster import LocalCluster

HANG_GUARD_S = 60.0
GROUP = b"queue-bound"
MSG_BYTES = 1024
FLOOR_MSGS_MAX = 200            # 128 KiB of ~1.1 kB records is ~115; the old rules ~1,500
SEND_CAP_MSGS = 4000            # more than the 4 MiB ring holds: a missing bound must show


def _ring_pid(c: LocalCluster) -> int:
    for pid in c.child_pids(1):
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if f.read().split(b"\0")[0].startswith(b"coroproc: ring"):
                return pid
    raise AssertionError("no ring process")


def _until_read(cpg, deadline) -> None:
    """Wait until the engine has read every request this client sent."""
    control = cpg._ipc._control
    while control.sent("request") > 0:
        assert time.monotonic() < deadline, "the engine stopped reading requests"
        time.sleep(0.0005)


@pytest.fixture
def node(tmp_path):
    c = LocalCluster(tmp_path, 1, rate_msgs_per_s=0, extra_sections="service {\n    name: cpg\n}\n")
    try:
        c.start(1)
        c.wait_members([1], [1], timeout_s=120)
        c.wait_for_log(1, "Completed service synchronization", HANG_GUARD_S)
        yield c
    finally:
        c.stop_all()


def test_a_stalled_ring_stops_the_client_long_before_the_ring_is_full(node):
    got = []
    cpg = Cpg(deliver_fn=lambda _h, _g, _n, _p, msg: got.append(bytes(msg)),
              suffix=node.suffix(1))
    try:
        cpg.join(GROUP)
        ring = _ring_pid(node)
        deadline = time.monotonic() + HANG_GUARD_S
        os.kill(ring, signal.SIGSTOP)
        try:
            sent = 0
            while sent < SEND_CAP_MSGS:
                try:
                    cpg.mcast_joined(1, sent.to_bytes(4, "little") + bytes(MSG_BYTES - 4))
                except CsError as exc:
                    assert exc.code == CS_ERR_TRY_AGAIN
                    break
                sent += 1
                _until_read(cpg, deadline)
        finally:
            os.kill(ring, signal.SIGCONT)
        assert 50 < sent < FLOOR_MSGS_MAX, f"{sent} messages went in before TRY_AGAIN"
        while len(got) < sent:
            assert time.monotonic() < deadline, f"{len(got)} of {sent} delivered"
            if select.select([cpg.fileno()], [], [], 0.2)[0]:
                cpg.dispatch()
        assert [int.from_bytes(m[:4], "little") for m in got] == list(range(sent))
        while True:                       # the flag comes down once the backlog is gone
            try:
                cpg.mcast_joined(1, b"after")
                break
            except CsError as exc:
                assert exc.code == CS_ERR_TRY_AGAIN and time.monotonic() < deadline
                time.sleep(0.01)
    finally:
        cpg.finalize()
