"""Link keys derived from the authkey, per-session keys, and the KeyRing used for rotation.

    link key    = HKDF-SHA256(ikm=authkey, salt=b"coroproc-link-v1",
                              info=cluster_name + b"/" + cipher + b"/" + hash,
                              length=suite.key_bytes)
    key_id      = 1 + SHA-256(link key)[0] % 255                    (1..255, on the wire)
    session key = HKDF-SHA256(ikm=link key, salt=None,
                              info=b"session" + <IBQ sender, link, session (little-endian)>,
                              length=suite.key_bytes)

A session key per (sender, link, session) is what makes the AES-GCM nonce (seq) unique
under a key even across restarts: a restarted process picks a new session id. Session
keys are cached per link key in a bounded LRU so forged frames carrying random session
ids cost a derivation each but never grow memory.

Rotation (the caller runs each phase cluster-wide before the next):
    add(authkey)          rx accepts the old and the new key
    use(key_id)           tx seals with the new key
    drop_except(key_id)   the old key is gone
Two keys can share a key_id (1 in 255): rx tries each key carrying the id, and use() /
drop_except() take the id to mean the most recently added key with it.
"""
from __future__ import annotations

import hashlib
import hmac
import struct
from collections import OrderedDict

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from coroproc.netproc.secure.frame import FLAGS_AEAD
from coroproc.netproc.secure.suite import CryptoSuite

LINK_KEY_SALT = b"coroproc-link-v1"
SESSION_INFO = struct.Struct("<IBQ")
SESSION_CACHE_ENTRIES = 64


def hkdf_sha256(ikm: bytes, salt: bytes | None, info: bytes, length_bytes: int) -> bytes:
    return HKDF(algorithm=SHA256(), length=length_bytes, salt=salt, info=info).derive(ikm)


class LinkKey:
    """One authkey's link key for one suite and cluster, and its session keys.

    session(sender, link, session) returns what the codec seals/opens with: an AESGCM
    object for AEAD suites; for MAC-only suites an HMAC object keyed with the session key
    and fed nothing yet, which the codec copy()s per frame (cheaper than re-keying).
    """

    __slots__ = ("suite", "key_id", "_key", "_sessions", "_cache_entries")

    def __init__(self, authkey: bytes, suite: CryptoSuite, cluster_name: str,
                 cache_entries: int = SESSION_CACHE_ENTRIES):
        if not suite.enabled:
            raise ValueError("a LinkKey needs a crypto suite; with crypto_cipher and "
                             "crypto_hash both none links send frames in clear")
        if cache_entries < 1:
            raise ValueError(f"session key cache of {cache_entries} entries; must be >= 1")
        info = b"/".join((cluster_name.encode("utf-8", "surrogateescape"),
                          suite.cipher.encode(), suite.hash.encode()))
        self.suite = suite
        self._key = hkdf_sha256(bytes(authkey), LINK_KEY_SALT, info, suite.key_bytes)
        self.key_id = 1 + hashlib.sha256(self._key).digest()[0] % 255
        self._sessions: OrderedDict[tuple[int, int, int], tuple[bytes, object]] = \
            OrderedDict()
        self._cache_entries = cache_entries
        assert 1 <= self.key_id <= 255

    def session(self, sender: int, link: int, session: int):
        """The session's AESGCM or (unfed) HMAC object, derived on first use (LRU-cached)."""
        return self._session_entry(sender, link, session)[1]

    def session_key(self, sender: int, link: int, session: int) -> bytes:
        """The session key itself, for a jitted data path's own cipher context."""
        return self._session_entry(sender, link, session)[0]

    def _session_entry(self, sender: int, link: int, session: int) -> tuple[bytes, object]:
        ident = (sender, link, session)
        found = self._sessions.get(ident)
        if found is not None:
            self._sessions.move_to_end(ident)
            return found
        key = hkdf_sha256(self._key, None, b"session" + SESSION_INFO.pack(sender, link,
                                                                          session),
                          self.suite.key_bytes)
        if self.suite.flags == FLAGS_AEAD:
            found = (key, AESGCM(key))
        else:
            found = (key, hmac.new(key, digestmod=self.suite.hash))
        self._sessions[ident] = found
        if len(self._sessions) > self._cache_entries:
            self._sessions.popitem(last=False)
        assert len(self._sessions) <= self._cache_entries
        return found

    @property
    def cached_sessions(self) -> int:
        return len(self._sessions)

    def __repr__(self) -> str:
        return f"LinkKey(key_id={self.key_id}, {self.suite!r})"   # never the key itself


class KeyRing:
    """The link keys of one node: `tx` seals, every key in the ring may open.

    With crypto off the ring is empty and tx is None.
    """

    def __init__(self, suite: CryptoSuite, authkey: bytes | None, cluster_name: str):
        self.suite, self.cluster_name = suite, cluster_name
        self.keys: list[LinkKey] = []          # oldest first
        self.tx: LinkKey | None = None
        # key_id -> keys with that id, newest first: the lookup open() does per frame.
        self._by_id: dict[int, tuple[LinkKey, ...]] = {}
        self.generation = 0                    # +1 per change; codecs re-read tx on change
        if suite.enabled:
            if authkey is None:
                raise ValueError(f"crypto is on ({suite.describe()}) but no authkey was given")
            self.tx = self.add(authkey)

    def add(self, authkey: bytes) -> LinkKey:
        """Phase 1 of a rotation: accept frames sealed with this key too."""
        if not self.suite.enabled:
            raise ValueError("cannot add a key: crypto is off (crypto_cipher and "
                             "crypto_hash are none)")
        key = LinkKey(authkey, self.suite, self.cluster_name)
        self.keys.append(key)
        self._reindex()
        return key

    def find(self, key_id: int) -> tuple[LinkKey, ...]:
        """Keys carrying key_id, newest first (empty if none)."""
        return self._by_id.get(key_id, ())

    def _newest(self, key_id: int, phase: str) -> LinkKey:
        keys = self._by_id.get(key_id)
        if not keys:
            known = ", ".join(str(k.key_id) for k in self.keys) or "none"
            raise ValueError(f"{phase}: no key with key_id {key_id} in the ring "
                             f"(key ids present: {known})")
        return keys[0]

    def use(self, key_id: int) -> LinkKey:
        """Phase 2: seal with the (newest) key carrying key_id."""
        self.tx = self._newest(key_id, "use")
        self.generation += 1
        return self.tx

    def drop_except(self, key_id: int) -> None:
        """Phase 3: keep only the (newest) key carrying key_id; it becomes tx as well."""
        keep = self._newest(key_id, "drop_except")
        self.keys = [keep]
        self.tx = keep
        self._reindex()

    def _reindex(self) -> None:
        by_id: dict[int, list[LinkKey]] = {}
        for key in reversed(self.keys):
            by_id.setdefault(key.key_id, []).append(key)
        self._by_id = {kid: tuple(keys) for kid, keys in by_id.items()}
        self.generation += 1
        assert self.tx is None or self.tx in self.keys
