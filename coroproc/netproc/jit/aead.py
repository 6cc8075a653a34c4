"""AES-GCM for jitted code: OpenSSL's EVP calls, a context per key, one call per frame.

The secure links' jitted data path (secure_loop.py) seals and opens AES-GCM link frames
itself instead of handing each to Python's `cryptography` object: the cipher work is
~0.5 µs for a 1 KiB frame, and the Python call around it was the rest of what a frame
cost. The functions here take an EVP_CIPHER_CTX that already holds its key schedule
(GcmContext, created and re-keyed from Python when a session key changes), so per frame
only the nonce is set: init with the IV, the 32-byte header as associated data, the
body, the tag.

OpenSSL comes from libcrypto.py (loaded before anything here compiles).
"""
from __future__ import annotations

import numpy as np
from numba import types

from coroproc.netproc.jit import libcrypto
from coroproc.njit import njit

GCM_IV_BYTES = 12
GCM_TAG_BYTES = 16
_EVP_CTRL_GCM_GET_TAG = 0x10
_EVP_CTRL_GCM_SET_TAG = 0x11


_lib = libcrypto.lib
_CIPHER_BY_KEY_BYTES = {16: _lib.EVP_aes_128_gcm, 24: _lib.EVP_aes_192_gcm,
                        32: _lib.EVP_aes_256_gcm}

_vp, _i32 = types.voidptr, types.int32
_enc_init = types.ExternalFunction("EVP_EncryptInit_ex", _i32(_vp, _vp, _vp, _vp, _vp))
_enc_update = types.ExternalFunction("EVP_EncryptUpdate", _i32(_vp, _vp, _vp, _vp, _i32))
_enc_final = types.ExternalFunction("EVP_EncryptFinal_ex", _i32(_vp, _vp, _vp))
_dec_init = types.ExternalFunction("EVP_DecryptInit_ex", _i32(_vp, _vp, _vp, _vp, _vp))
_dec_update = types.ExternalFunction("EVP_DecryptUpdate", _i32(_vp, _vp, _vp, _vp, _i32))
_dec_final = types.ExternalFunction("EVP_DecryptFinal_ex", _i32(_vp, _vp, _vp))
_ctrl = types.ExternalFunction("EVP_CIPHER_CTX_ctrl", _i32(_vp, _i32, _i32, _vp))


class GcmContext:
    """One EVP_CIPHER_CTX for sealing or opening, re-keyed in place (`ptr` is what the
    jitted functions take; 0 once freed)."""

    __slots__ = ("ptr", "_encrypt")

    def __init__(self, encrypt: bool):
        self._encrypt = encrypt
        self.ptr = _lib.EVP_CIPHER_CTX_new() or 0
        if not self.ptr:
            raise MemoryError("EVP_CIPHER_CTX_new failed")

    def set_key(self, key: bytes) -> None:
        cipher = _CIPHER_BY_KEY_BYTES.get(len(key))
        if cipher is None:
            raise ValueError(f"an AES-GCM key has 16, 24 or 32 bytes, not {len(key)}")
        init = _lib.EVP_EncryptInit_ex if self._encrypt else _lib.EVP_DecryptInit_ex
        if init(self.ptr, cipher(), None, key, None) != 1:
            raise RuntimeError("EVP cipher init failed")

    def free(self) -> None:
        if self.ptr:
            _lib.EVP_CIPHER_CTX_free(self.ptr)
            self.ptr = 0


@njit(cache=True)
def gcm_seal(ctx, iv, aad, aad_bytes, src, n, dst, outl):
    """dst[0:n] = ciphertext of src[0:n], dst[n:n+16] = tag, under ctx's key and the
    12-byte iv (uint8 array), authenticating aad[0:aad_bytes]; src and dst are addresses
    (they may be equal). outl: int32[1] scratch. True on success."""
    p = outl.ctypes.data
    if _enc_init(ctx, 0, 0, 0, iv.ctypes.data) != 1:
        return False
    if _enc_update(ctx, 0, p, aad, aad_bytes) != 1:
        return False
    if n and _enc_update(ctx, dst, p, src, n) != 1:
        return False
    if _enc_final(ctx, dst + n, p) != 1:
        return False
    return _ctrl(ctx, _EVP_CTRL_GCM_GET_TAG, GCM_TAG_BYTES, dst + n) == 1


@njit(cache=True)
def gcm_open(ctx, iv, aad, aad_bytes, src, n, dst, outl):
    """dst[0:n] = plaintext of src[0:n] if the tag at src[n:n+16] verifies for it and
    aad[0:aad_bytes] under ctx's key and iv; False otherwise (dst is then garbage)."""
    p = outl.ctypes.data
    if _dec_init(ctx, 0, 0, 0, iv.ctypes.data) != 1:
        return False
    if _dec_update(ctx, 0, p, aad, aad_bytes) != 1:
        return False
    if n and _dec_update(ctx, dst, p, src, n) != 1:
        return False
    if _ctrl(ctx, _EVP_CTRL_GCM_SET_TAG, GCM_TAG_BYTES, src + n) != 1:
        return False
    return _dec_final(ctx, dst + n, p) == 1


@njit(cache=True, inline="always")
def set_iv(iv, seq):
    """The link frame nonce (secure/frame.py NONCE): 4 zero bytes, seq as u64 big-endian."""
    for i in range(4):
        iv[i] = 0
    for i in range(8):
        iv[4 + i] = np.uint8((seq >> np.uint64(8 * (7 - i))) & np.uint64(0xFF))
