"""SAM calls in the wrong state or with bad arguments fail as libsam's do (no fork)."""
from __future__ import annotations

import os
import signal

import pytest

from coroproc.client import sam as S
from coroproc.client import sam_wire as W
from coroproc.ipc.cserror import CS_ERR_BAD_HANDLE, CS_ERR_INVALID_PARAM, CsError


@pytest.mark.parametrize("policy", [0, 3, S.QUORUM, S.CMAP, S.CMAP | S.QUORUM, 0x20 | S.QUIT])
def test_initialize_refuses_bad_policies(policy):
    with pytest.raises(CsError) as err:
        S.Sam(1000, policy)
    assert err.value.code == CS_ERR_INVALID_PARAM


def test_initialize_refuses_a_negative_interval():
    with pytest.raises(CsError) as err:
        S.Sam(-1, S.QUIT)
    assert err.value.code == CS_ERR_INVALID_PARAM


@pytest.mark.parametrize("call", ["start", "stop", "hc_send", "mark_failed"])
def test_calls_before_register_are_bad_handle(call):
    sam = S.Sam(1000, S.RESTART)
    with pytest.raises(CsError) as err:
        getattr(sam, call)()
    assert err.value.code == CS_ERR_BAD_HANDLE


def test_hc_callback_needs_register_and_an_interval():
    with pytest.raises(CsError) as err:
        S.Sam(1000, S.RESTART).hc_callback_register(lambda: 0)
    assert err.value.code == CS_ERR_BAD_HANDLE


def test_data_and_warn_signal_work_before_register_and_not_after_finalize():
    sam = S.Sam(0, S.QUIT)
    assert sam.data_getsize() == 0 and sam.data_restore() == b""
    sam.data_store(b"abc")
    assert sam.data_getsize() == 3 and sam.data_restore() == b"abc"
    sam.warn_signal_set(signal.SIGUSR2)
    assert sam.warn_signal == signal.SIGUSR2
    with pytest.raises(CsError):
        sam.warn_signal_set(0)
    sam.finalize()
    for call in (sam.data_getsize, sam.finalize, lambda: sam.data_store(b"x")):
        with pytest.raises(CsError) as err:
            call()
        assert err.value.code == CS_ERR_BAD_HANDLE


def test_module_functions_share_one_instance():
    S._sam = None
    with pytest.raises(CsError) as err:
        S.sam_start()
    assert err.value.code == CS_ERR_BAD_HANDLE
    S.sam_initialize(100, S.RECOVERY_POLICY_RESTART)
    try:
        with pytest.raises(CsError):
            S.sam_initialize(100, S.RECOVERY_POLICY_RESTART)
        S.sam_data_store(b"xy")
        assert S.sam_data_getsize() == 2
    finally:
        S._sam = None


def test_pipe_protocol_roundtrip():
    r, w = os.pipe()
    try:
        W.send_command(w, W.CMD_DATA_STORE, W.pack_data(b"hello"))
        W.send_reply(w, 1)
        W.send_reply(w, 12)
        assert W.read_exact(r, 1) == bytes((W.CMD_DATA_STORE,))
        assert W.read_data(r) == b"hello"
        assert W.read_reply(r) == 1
        assert W.read_reply(r) == 12
        os.write(w, b"\x07")                 # not a reply byte
        assert W.read_reply(r) == 2          # CS_ERR_LIBRARY
        os.write(w, W.SIZE.pack(10) + b"abc")
        os.close(w)
        w = -1
        with pytest.raises(W.PipeClosed):
            W.read_data(r)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
