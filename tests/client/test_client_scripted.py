"""coroproc.client.cpg against a scripted CPG service (coroproc's IpcServer, own process).

These are the cases a real daemon produces only under rare timing: interleaved
fragments from two senders, a sender leaving mid-message, a restarted message, a
fragment overflowing its message, the flow-control flag at 1 and 2, BUSY on join,
unknown events. The service runs in this network namespace under a unique suffix.
"""

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from coroproc.client import DISPATCH_ALL, DISPATCH_ONE_NONBLOCKING, Cmap, Cpg, CsError, aio
from coroproc.ipc import cpg_structs as S

SERVICE = Path(__file__).with_name("scripted_cpg_service.py")
SCRIPT_ID, FLOW_ID, MCAST_COUNT_ID = 9001, 9002, 9003


@pytest.fixture(scope="module")
def suffix():
    tag = f"-ct{os.getpid()}-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen([sys.executable, str(SERVICE), tag], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(SERVICE.parents[2])})
    try:
        line = proc.stdout.readline()
        assert line.startswith("READY"), f"service did not start: {line!r}"
        yield tag
    finally:
        proc.terminate()
        proc.wait(timeout=30)


class Seen:
    def __init__(self):
        self.delivered, self.confchgs, self.totem = [], [], []

    def cpg(self, suffix, **kw):
        return Cpg(lambda h, g, n, p, m: self.delivered.append((n, p, m)),
                   lambda h, g, members, left, joined: self.confchgs.append(left),
                   lambda h, ring_id, members: self.totem.append((ring_id, members)),
                   suffix=suffix, **kw)


def play(cpg, script):
    """Ask the service to send a script; its events are queued before the reply."""
    cpg._request("script", SCRIPT_ID, script.encode())


def test_fragments_are_reassembled_per_sender(suffix):
    seen = Seen()
    with seen.cpg(suffix) as cpg:
        play(cpg, "interleaved")
        assert cpg.dispatch(DISPATCH_ALL) == 7
    assert seen.delivered == [(2, 200, b"BBCCDD"), (1, 100, b"aabbcc"), (1, 100, b"whole")]


def test_a_sender_that_left_never_delivers_its_half_message(suffix):
    seen = Seen()
    with seen.cpg(suffix) as cpg:
        play(cpg, "sender_left")
        cpg.dispatch(DISPATCH_ALL)
    assert seen.confchgs == [[S.CpgAddress(1, 100, S.REASON_PROCDOWN)]]
    assert seen.delivered == [(2, 200, b"after")]


def test_a_new_first_fragment_replaces_an_unfinished_message(suffix):
    seen = Seen()
    with seen.cpg(suffix) as cpg:
        play(cpg, "restarted")
        cpg.dispatch(DISPATCH_ALL)
    assert seen.delivered == [(1, 100, b"new!")]


@pytest.mark.parametrize("script", ["overflow", "unknown"])
def test_malformed_event_streams_raise_message_error(suffix, script):
    with Seen().cpg(suffix) as cpg:
        play(cpg, script)
        with pytest.raises(CsError) as err:
            cpg.dispatch(DISPATCH_ALL)
    assert err.value.name == "CS_ERR_MESSAGE_ERROR"


def test_totem_confchg_and_dispatch_flags(suffix):
    seen = Seen()
    with seen.cpg(suffix, model_v1_flags=S.MODEL_V1_DELIVER_INITIAL_TOTEM_CONF) as cpg:
        assert cpg.dispatch(DISPATCH_ALL) == 0
        with pytest.raises(CsError) as err:
            cpg.dispatch(DISPATCH_ONE_NONBLOCKING)
        assert err.value.name == "CS_ERR_TRY_AGAIN"
        play(cpg, "totem")
        assert cpg.dispatch(DISPATCH_ONE_NONBLOCKING) == 1
        with pytest.raises(CsError) as err:
            cpg.dispatch(99)
        assert err.value.name == "CS_ERR_INVALID_PARAM"
    assert seen.totem == [(S.RingId(1, 42), [1, 2, 3])]


def test_join_repeats_while_busy_and_mcast_honours_flow_control(suffix):
    cpg = Seen().cpg(suffix)
    cpg.join("g")                       # the service answers BUSY twice first
    cpg._request("flow", FLOW_ID, b"2")
    with pytest.raises(CsError) as err:  # mcast refuses at level 2 (fc_enable_max=2)
        cpg.mcast_joined(S.TYPE_AGREED, b"a", b"b")
    assert err.value.name == "CS_ERR_TRY_AGAIN"
    assert cpg.local_get() == 1          # ordinary requests still pass at level 2
    cpg._request("flow", FLOW_ID, b"0")
    cpg.mcast_joined(S.TYPE_AGREED, b"a", memoryview(b"bc"), bytearray(b"d"))
    assert cpg._request("count", MCAST_COUNT_ID)[1] == b"1"
    cpg._request("flow", FLOW_ID, b"1")
    with pytest.raises(CsError) as err:  # level 1 stops everything
        cpg.local_get()
    assert err.value.name == "CS_ERR_TRY_AGAIN"
    with pytest.raises(CsError):
        cpg.finalize()                   # FINALIZE is refused too, but the handle closes
    with pytest.raises(CsError) as err:
        cpg.local_get()
    assert err.value.name == "CS_ERR_BAD_HANDLE"


def test_asyncio_event_stream(suffix):
    async def collect():
        with Cpg(suffix=suffix) as cpg:
            async with aio.cpg_events(cpg, events_max=2) as events:
                play(cpg, "interleaved")
                got = []
                async for ev in events:
                    got.append(ev)
                    if len(got) == 3:
                        return got
    got = asyncio.run(collect())
    assert [(e.nodeid, e.pid, e.message) for e in got] == [
        (2, 200, b"BBCCDD"), (1, 100, b"aabbcc"), (1, 100, b"whole")]


def test_missing_service_is_cs_err_library():
    with pytest.raises(CsError) as err:
        Cmap(suffix=f"-none{os.getpid()}-{uuid.uuid4().hex[:8]}")
    assert err.value.name == "CS_ERR_LIBRARY"
    assert "cmap_initialize" in str(err.value)


def test_bad_arguments_fail_before_sending(suffix):
    with Cpg(suffix=suffix) as cpg:
        for call, args, name in [(cpg.join, ("x" * 129,), "CS_ERR_NAME_TOO_LONG"),
                                 (cpg.membership_get, (b"y" * 200,), "CS_ERR_NAME_TOO_LONG")]:
            with pytest.raises(CsError) as err:
                call(*args)
            assert err.value.name == name
        with pytest.raises(CsError) as err:
            list(cpg.iteration(S.ITERATION_ONE_GROUP))
        assert err.value.name == "CS_ERR_INVALID_PARAM"
    with pytest.raises(CsError) as err:
        Cpg(model_v1_flags=2, suffix=suffix)
    assert err.value.name == "CS_ERR_INVALID_PARAM"
