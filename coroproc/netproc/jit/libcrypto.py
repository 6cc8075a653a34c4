"""The system's libcrypto (OpenSSL 3, the one Python's ssl module links) for jitted code.

Loaded into LLVM's symbol space before any function of aead.py or mac.py is compiled or
loaded from numba's cache, which refers to OpenSSL's symbols by name; `lib` is the same
library through ctypes, for the calls made from Python (contexts, EVP_MD pointers).
Without it these modules do not import, nor does secure_link.py (a knet link process
cannot start): the ImportError says what is missing.
"""
from __future__ import annotations

import ctypes
import ctypes.util

import llvmlite.binding as llvm


def _load() -> ctypes.CDLL:
    path = ctypes.util.find_library("crypto") or "libcrypto.so.3"
    try:
        lib = ctypes.CDLL(path)
        llvm.load_library_permanently(path)
    except (OSError, RuntimeError) as exc:
        raise ImportError(f"libcrypto (OpenSSL 3) not loadable as {path!r}: {exc}; the "
                          "secure links' jitted data path calls it (Debian: libssl3)") from exc
    lib.EVP_CIPHER_CTX_new.restype = ctypes.c_void_p
    lib.EVP_CIPHER_CTX_free.argtypes = [ctypes.c_void_p]
    for name in ("EVP_aes_128_gcm", "EVP_aes_192_gcm", "EVP_aes_256_gcm", "EVP_md5",
                 "EVP_sha1", "EVP_sha256", "EVP_sha384", "EVP_sha512"):
        getattr(lib, name).restype = ctypes.c_void_p
    for name in ("EVP_EncryptInit_ex", "EVP_DecryptInit_ex"):
        fn = getattr(lib, name)
        fn.argtypes = [ctypes.c_void_p] * 5
        fn.restype = ctypes.c_int
    return lib


lib = _load()
