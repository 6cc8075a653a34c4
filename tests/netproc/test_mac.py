"""The jitted HMAC (netproc/jit/mac.py) against Python's hmac, which the Python path of a
secure link uses: the same digests, and no altered frame accepted."""
from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from netproc_harness import keyed

from coroproc.netproc.jit.mac import MacContext, mac_compute, mac_verify

HASHES = ("md5", "sha1", "sha256", "sha384", "sha512")


@settings(max_examples=80, deadline=None)
@given(hash_name=st.sampled_from(HASHES), data=st.data(), body=st.binary(max_size=3000))
def test_digests_match_python_hmac_and_any_flipped_bit_is_refused(hash_name, data, body):
    size = hashlib.new(hash_name).digest_size
    key = data.draw(st.binary(min_size=size, max_size=size))
    want = hmac.new(key, body, hash_name).digest()
    outl = np.zeros(1, np.int32)
    src, out = np.frombuffer(body + b"\0", np.uint8), np.zeros(64, np.uint8)
    frame = np.frombuffer(bytearray(b"pad" + body + want), np.uint8)
    bit = data.draw(st.integers(0, 8 * (len(body) + size) - 1))
    with keyed(MacContext(hash_name), key) as ctx:
        # twice: each call starts again from the key, whatever the last one fed
        for _ in range(2):
            assert mac_compute(ctx.ptr, src.ctypes.data, len(body), out.ctypes.data, outl)
            assert out[:size].tobytes() == want
        assert mac_verify(ctx.ptr, size, frame, 3, len(body), out, outl)
        frame[3 + bit // 8] ^= 1 << (bit % 8)
        assert not mac_verify(ctx.ptr, size, frame, 3, len(body), out, outl)


def test_a_context_re_keyed_in_place_uses_the_new_key():
    body = b"frame" * 20
    src, out, outl = np.frombuffer(body, np.uint8), np.zeros(64, np.uint8), np.zeros(1, np.int32)
    with keyed(MacContext("sha256"), b"o" * 32) as ctx:
        ctx.set_key(b"n" * 32)
        assert mac_compute(ctx.ptr, src.ctypes.data, len(body), out.ctypes.data, outl)
    assert out[:32].tobytes() == hmac.new(b"n" * 32, body, "sha256").digest()


def test_bad_names_and_key_sizes_are_refused_by_name():
    with pytest.raises(ValueError, match="no HMAC digest 'sha3'"):
        MacContext("sha3")
    ctx = MacContext("sha512")
    try:
        with pytest.raises(ValueError, match="1..64 bytes, not 65"):
            ctx.set_key(b"k" * 65)
    finally:
        ctx.free()
        ctx.free()          # twice is harmless
