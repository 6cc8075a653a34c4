"""HMAC for jitted code: OpenSSL's HMAC_CTX, keyed once per session key.

A secure link with `crypto_cipher: none` and a `crypto_hash` authenticates each frame
with HMAC-<hash> over header + payload, the full digest appended (secure/suite.py). The
secure links' jitted data path (secure_loop.py) computes and checks that itself. Each
session key has an HMAC_CTX (MacContext, re-keyed from Python like aead.GcmContext)
that keeps the key's inner and outer pads, so a frame costs a re-init without a key
(which restores them), the update and the final; OpenSSL 3's one-shot HMAC() fetches
the digest and derives the pads again on every call, 1.9 µs more per 1 KiB frame
sealed and opened. (HMAC_CTX is deprecated in OpenSSL 3 in favour of EVP_MAC, but
exported, and the one of the two whose re-init keeps the key.)

OpenSSL comes from libcrypto.py (loaded before anything here compiles).
"""
from __future__ import annotations

import ctypes

from numba import types

from coroproc.netproc.jit import libcrypto
from coroproc.njit import njit

MAC_KEY_BYTES_MAX = 64          # SHA-512's digest, the longest hash a suite may name

_lib = libcrypto.lib
_lib.HMAC_CTX_new.restype = ctypes.c_void_p
_lib.HMAC_CTX_free.argtypes = [ctypes.c_void_p]
_lib.HMAC_Init_ex.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                              ctypes.c_void_p, ctypes.c_void_p]
_lib.HMAC_Init_ex.restype = ctypes.c_int
_EVP_MD = {"md5": _lib.EVP_md5, "sha1": _lib.EVP_sha1, "sha256": _lib.EVP_sha256,
           "sha384": _lib.EVP_sha384, "sha512": _lib.EVP_sha512}

_vp, _i32 = types.voidptr, types.int32
_init = types.ExternalFunction("HMAC_Init_ex", _i32(_vp, _vp, _i32, _vp, _vp))
_update = types.ExternalFunction("HMAC_Update", _i32(_vp, _vp, types.uintp))
_final = types.ExternalFunction("HMAC_Final", _i32(_vp, _vp, _vp))


class MacContext:
    """One HMAC_CTX for one digest, re-keyed in place (`ptr` is what the jitted functions
    take; 0 once freed)."""

    __slots__ = ("ptr", "_md")

    def __init__(self, hash_name: str):
        getter = _EVP_MD.get(hash_name)
        if getter is None:
            raise ValueError(f"no HMAC digest {hash_name!r}; allowed: {', '.join(_EVP_MD)}")
        self._md = getter()
        self.ptr = _lib.HMAC_CTX_new() or 0
        if not self.ptr:
            raise MemoryError("HMAC_CTX_new failed")

    def set_key(self, key: bytes) -> None:
        if not 0 < len(key) <= MAC_KEY_BYTES_MAX:
            raise ValueError(f"an HMAC key here has 1..{MAC_KEY_BYTES_MAX} bytes, "
                             f"not {len(key)}")
        if _lib.HMAC_Init_ex(self.ptr, key, len(key), self._md, None) != 1:
            raise RuntimeError("HMAC_Init_ex failed")

    def free(self) -> None:
        if self.ptr:
            _lib.HMAC_CTX_free(self.ptr)
            self.ptr = 0


@njit(cache=True)
def mac_compute(ctx, data, n, out, outl):
    """out[0:digest] = HMAC(ctx's key, data[0:n]) (addresses). outl: uint32-sized
    scratch (int32[1]). True on success."""
    if _init(ctx, 0, 0, 0, 0) != 1:
        return False
    if _update(ctx, data, n) != 1:
        return False
    return _final(ctx, out, outl.ctypes.data) == 1


@njit(cache=True)
def mac_verify(ctx, tag_bytes, frame, at, n, scratch, outl):
    """Does frame[at+n : at+n+tag_bytes] hold HMAC(ctx's key, frame[at : at+n])?
    Compared in constant time; scratch (uint8, >= tag_bytes) receives the digest."""
    if not mac_compute(ctx, frame.ctypes.data + at, n, scratch.ctypes.data, outl):
        return False
    diff = 0
    for i in range(tag_bytes):
        diff |= scratch[i] ^ frame[at + n + i]
    return diff == 0
