"""Helpers for the secure codec tests: suites, key rings and codec pairs with real crypto."""
from __future__ import annotations

import hashlib
import hmac

from coroproc.netproc.secure import CryptoSuite, KeyRing, LinkCodec

HASHES = ("md5", "sha1", "sha256", "sha384", "sha512")
AEAD_SUITES = [(c, h) for c in ("aes128", "aes192", "aes256") for h in HASHES]
MAC_SUITES = [("none", h) for h in HASHES]
ALL_SUITES = AEAD_SUITES + MAC_SUITES + [("none", "none")]
PEERS = (1, 2, 3)


def authkey(seed: int = 0, size: int = 256) -> bytes:
    """A deterministic authkey so failures reproduce."""
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(b"authkey-%d-%d" % (seed, counter)).digest()
        counter += 1
    return out[:size]


def ring(cipher="aes256", hash="sha256", key=None, cluster="testcluster"):  # noqa: A002
    suite = CryptoSuite(cipher, hash)
    return KeyRing(suite, (authkey() if key is None else key) if suite.enabled else None,
                   cluster)


def codec(keyring, nodeid, link=0, session=None, peers=PEERS):
    return LinkCodec(keyring, nodeid, link, session if session is not None
                     else 1_000_000 + nodeid, peers)


def pair(cipher="aes256", hash="sha256", **kw):  # noqa: A002
    """(sender node 1, receiver node 2) on link 0 with one shared ring."""
    r = ring(cipher, hash, **kw)
    return codec(r, 1), codec(r, 2)


def counted(c) -> dict[str, int]:
    """Non-zero counters of a codec."""
    return {k: v for k, v in c.counters.as_dict().items() if v}


def hkdf_sha256(ikm: bytes, salt: bytes | None, info: bytes, length: int) -> bytes:
    """RFC 5869 written out with hmac, to check the codec's derivation independently."""
    prk = hmac.new(salt or bytes(32), ikm, "sha256").digest()
    okm, block, i = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([i]), "sha256").digest()
        okm += block
        i += 1
    return okm[:length]
