"""Secure link codec (transport knet): link frames, crypto suite, keys, replay window.

Pure code, no sockets or processes: the network process of a knet link builds a KeyRing
and a LinkCodec and calls seal()/open() per datagram. docs/secure-links.md ("Wire format
and crypto") describes the format and the choices.
"""
from coroproc.netproc.secure.authkey import (AUTHKEY_MAX_BYTES, AUTHKEY_MIN_BYTES,
                                             AuthkeyError, AuthkeyPermissionWarning,
                                             inline_authkey, load_authkey)
from coroproc.netproc.secure.codec import LinkCodec
from coroproc.netproc.secure.counters import COUNTER_NAMES, CodecCounters
from coroproc.netproc.secure.frame import (FTYPE_DATA, FTYPE_PING, FTYPE_PMTU_PROBE,
                                           FTYPE_PMTU_REPLY, FTYPE_PONG, HEADER_BYTES)
from coroproc.netproc.secure.keys import KeyRing, LinkKey
from coroproc.netproc.secure.session import new_session_id
from coroproc.netproc.secure.suite import CryptoSuite

__all__ = [
    "AUTHKEY_MAX_BYTES", "AUTHKEY_MIN_BYTES", "AuthkeyError", "AuthkeyPermissionWarning",
    "COUNTER_NAMES", "CodecCounters", "CryptoSuite", "FTYPE_DATA", "FTYPE_PING",
    "FTYPE_PMTU_PROBE", "FTYPE_PMTU_REPLY", "FTYPE_PONG", "HEADER_BYTES", "KeyRing",
    "LinkCodec", "LinkKey", "inline_authkey", "load_authkey", "new_session_id",
]
