"""The jitted AES-GCM (netproc/jit/aead.py) against `cryptography`'s, which the Python
path of a secure link uses: the two must produce and accept the same frames."""
from __future__ import annotations

import numpy as np
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st
from netproc_harness import keyed

from coroproc.netproc.jit.aead import GCM_TAG_BYTES, GcmContext, gcm_open, gcm_seal, set_iv
from coroproc.netproc.secure.frame import NONCE

KEYS = st.sampled_from([16, 24, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n))


def _arr(b: bytes, extra: int = 0) -> np.ndarray:
    a = np.zeros(len(b) + extra, np.uint8)
    a[:len(b)] = np.frombuffer(b, np.uint8)
    return a


@settings(max_examples=60, deadline=None)
@given(key=KEYS, seq=st.integers(1, 2**64 - 1), aad=st.binary(min_size=32, max_size=32),
       payload=st.binary(max_size=3000))
def test_seal_and_open_agree_with_cryptography(key, seq, aad, payload):
    iv = np.zeros(12, np.uint8)
    set_iv(iv, np.uint64(seq))
    assert iv.tobytes() == NONCE.pack(seq)
    want = AESGCM(key).encrypt(NONCE.pack(seq), payload, aad)
    a, src, out = _arr(aad), _arr(payload), np.zeros(len(payload) + GCM_TAG_BYTES, np.uint8)
    outl = np.zeros(1, np.int32)
    with keyed(GcmContext(True), key) as sealer:
        assert gcm_seal(sealer.ptr, iv, a.ctypes.data, 32, src.ctypes.data, len(payload),
                        out.ctypes.data, outl)
    assert out.tobytes() == want
    back = np.zeros(len(payload) + 1, np.uint8)
    with keyed(GcmContext(False), key) as opener:
        assert gcm_open(opener.ptr, iv, a.ctypes.data, 32, out.ctypes.data, len(payload),
                        back.ctypes.data, outl)
    assert back[:len(payload)].tobytes() == payload


@settings(max_examples=60, deadline=None)
@given(key=KEYS, seq=st.integers(1, 2**64 - 1), aad=st.binary(min_size=32, max_size=32),
       payload=st.binary(min_size=1, max_size=600), data=st.data())
def test_any_flipped_bit_is_refused_as_cryptography_refuses_it(key, seq, aad, payload,
                                                                 data):
    sealed = bytearray(AESGCM(key).encrypt(NONCE.pack(seq), payload, aad))
    aad_b = bytearray(aad)
    target = data.draw(st.sampled_from(["body", "tag", "aad", "seq"]))
    if target == "body":
        sealed[data.draw(st.integers(0, len(payload) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    elif target == "tag":
        sealed[len(payload) + data.draw(st.integers(0, 15))] ^= 0x80
    elif target == "aad":
        aad_b[data.draw(st.integers(0, 31))] ^= 0x01
    else:
        seq = seq ^ 1
    with pytest.raises(InvalidTag):
        AESGCM(key).decrypt(NONCE.pack(seq), bytes(sealed), bytes(aad_b))
    iv = np.zeros(12, np.uint8)
    set_iv(iv, np.uint64(seq))
    a, src = _arr(bytes(aad_b)), _arr(bytes(sealed))
    back, outl = np.zeros(len(payload) + 1, np.uint8), np.zeros(1, np.int32)
    with keyed(GcmContext(False), key) as opener:
        assert not gcm_open(opener.ptr, iv, a.ctypes.data, 32, src.ctypes.data, len(payload),
                            back.ctypes.data, outl)


def test_a_context_re_keyed_in_place_uses_the_new_key():
    old, new = b"k" * 32, b"n" * 16
    iv, a = np.zeros(12, np.uint8), np.zeros(32, np.uint8)
    set_iv(iv, np.uint64(7))
    src, out, outl = _arr(b"frame"), np.zeros(5 + GCM_TAG_BYTES, np.uint8), np.zeros(1, np.int32)
    with keyed(GcmContext(True), old) as ctx:
        ctx.set_key(new)
        assert gcm_seal(ctx.ptr, iv, a.ctypes.data, 32, src.ctypes.data, 5, out.ctypes.data,
                        outl)
    assert out.tobytes() == AESGCM(new).encrypt(NONCE.pack(7), b"frame", bytes(32))


def test_a_key_of_the_wrong_size_is_refused_by_name():
    ctx = GcmContext(True)
    try:
        with pytest.raises(ValueError, match="16, 24 or 32 bytes, not 20"):
            ctx.set_key(b"x" * 20)
    finally:
        ctx.free()
        ctx.free()          # twice is harmless
