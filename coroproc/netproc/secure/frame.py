"""The link frame header: its layout, field values and limits (the wire contract).

Every datagram on a secure (transport knet) link is one link frame: a 32-byte
little-endian header, sent in clear and authenticated as the AEAD associated data (or
covered by the MAC), then the body. docs/secure-links.md "Wire format and crypto" is the
prose form of this file; the two must agree.

     0 u16 magic 0xC07E     (Totem frames start 0xC070: the two can never be confused)
     2 u8  version 1
     3 u8  type             FTYPE_*
     4 u8  flags            FLAGS_*
     5 u8  key_id           0 when clear, else 1..255
     6 u8  linknumber       0..7
     7 u8  reserved         must be 0
     8 u32 sender nodeid
    12 u32 dest nodeid      the receiving node; never 0 on the wire
    16 u64 session          sender's session id for this link
    24 u64 seq              per (sender, link, session), starts at 1
"""
from __future__ import annotations

import struct

HEADER = struct.Struct("<HBBBBBBIIQQ")
HEADER_BYTES = HEADER.size
assert HEADER_BYTES == 32

MAGIC = 0xC07E
VERSION = 1

FTYPE_DATA = 1          # payload = one Totem frame
FTYPE_PING = 2
FTYPE_PONG = 3
FTYPE_PMTU_PROBE = 4
FTYPE_PMTU_REPLY = 5
FTYPE_MIN, FTYPE_MAX = FTYPE_DATA, FTYPE_PMTU_REPLY
FTYPE_NAMES = {FTYPE_DATA: "DATA", FTYPE_PING: "PING", FTYPE_PONG: "PONG",
               FTYPE_PMTU_PROBE: "PMTU_PROBE", FTYPE_PMTU_REPLY: "PMTU_REPLY"}

FLAGS_CLEAR = 0         # body = payload
FLAGS_AEAD = 1          # body = AES-GCM ciphertext of payload + 16-byte tag
FLAGS_MAC = 2           # body = payload + HMAC(header + payload), full digest

LINKNUMBER_MAX = 7      # knet's 8 links per host
NODEID_MAX = 0xFFFFFFFF
SESSION_MAX = 0xFFFFFFFFFFFFFFFF
SEQ_MAX = 0xFFFFFFFFFFFFFFFF
# The largest UDP payload over IPv4 (65535 - 20 IP - 8 UDP); IPv6 allows 20 bytes more,
# but a frame must fit every link family, so the smaller one is the limit.
DATAGRAM_MAX_BYTES = 65507

# AES-GCM nonce: 4 zero bytes + seq as u64 big-endian. Unique per session key because
# seq never repeats within one (sender, link, session) and each has its own key.
NONCE = struct.Struct(">4xQ")
