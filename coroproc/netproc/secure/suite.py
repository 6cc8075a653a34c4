"""CryptoSuite: what corosync.conf's crypto_cipher / crypto_hash mean on a secure link.

Corosync 3 hands both keys to kronosnet, which encrypts with the cipher and then MACs
with the hash. coroproc's own link layer uses one AEAD instead, so the mapping is:

    cipher aes256|aes192|aes128, any hash -> AES-GCM, 32/24/16-byte key (FLAGS_AEAD);
        the GCM tag authenticates, so the hash is not used on the wire: it is "mapped to
        GCM's tag" and only reported. Keys always come from HKDF-SHA256.
    cipher none, hash md5|sha1|sha256|sha384|sha512 -> HMAC-<hash> over header+payload,
        full digest length (FLAGS_MAC): authenticated, not encrypted.
    none / none -> clear (FLAGS_CLEAR).
    cipher without hash -> ValueError (config rejects it first; this is the backstop).
"""
from __future__ import annotations

import hashlib

from coroproc.netproc.secure.frame import FLAGS_AEAD, FLAGS_CLEAR, FLAGS_MAC, HEADER_BYTES

CIPHER_KEY_BYTES = {"aes128": 16, "aes192": 24, "aes256": 32}
CIPHERS = ("none",) + tuple(CIPHER_KEY_BYTES)
HASHES = ("none", "md5", "sha1", "sha256", "sha384", "sha512")
GCM_TAG_BYTES = 16


class CryptoSuite:
    """One (crypto_cipher, crypto_hash) pair, resolved to the flags and sizes a frame uses."""

    __slots__ = ("cipher", "hash", "enabled", "flags", "key_bytes", "tag_bytes",
                 "overhead_bytes")

    def __init__(self, cipher: str = "none", hash: str = "none"):  # noqa: A002 (config key)
        if cipher not in CIPHERS:
            raise ValueError(f"crypto_cipher {cipher!r} is not supported; allowed: "
                             f"{', '.join(CIPHERS)}")
        if hash not in HASHES:
            raise ValueError(f"crypto_hash {hash!r} is not supported; allowed: "
                             f"{', '.join(HASHES)}")
        if cipher != "none" and hash == "none":
            raise ValueError(f"crypto_cipher {cipher} needs a crypto_hash other than none "
                             "(Corosync refuses encryption without authentication)")
        self.cipher, self.hash = cipher, hash
        self.enabled = cipher != "none" or hash != "none"
        if cipher != "none":
            self.flags = FLAGS_AEAD
            self.key_bytes = CIPHER_KEY_BYTES[cipher]
            self.tag_bytes = GCM_TAG_BYTES
        elif hash != "none":
            self.flags = FLAGS_MAC
            # HMAC keys as long as the digest: RFC 2104's recommended minimum, no less.
            self.key_bytes = self.tag_bytes = hashlib.new(hash).digest_size
        else:
            self.flags, self.key_bytes, self.tag_bytes = FLAGS_CLEAR, 0, 0
        self.overhead_bytes = HEADER_BYTES + self.tag_bytes

    def describe(self) -> str:
        """One log line saying what protects the links and how the config maps to it."""
        conf = f"crypto_cipher {self.cipher}, crypto_hash {self.hash}"
        if self.flags == FLAGS_AEAD:
            bits = self.key_bytes * 8
            return (f"AES-{bits}-GCM ({conf}: authentication by the GCM tag), "
                    "keys by HKDF-SHA256 from the authkey")
        if self.flags == FLAGS_MAC:
            return (f"HMAC-{self.hash.upper()} authentication without encryption ({conf}), "
                    "keys by HKDF-SHA256 from the authkey")
        return f"no encryption, no authentication ({conf}): links send frames in clear"

    def __repr__(self) -> str:
        return f"CryptoSuite({self.cipher!r}, {self.hash!r})"
