"""The cpghum message: what every message carries so a receiver can check it.

This file owns the byte layout of one coroproc-cpghum message and nothing else:

    offset  size  field
         0     4  magic b"HUM1"  (a foreign message in the group is told apart, not misread)
         4     4  instance       u32, random per sender connection: a reconnecting sender
                                 starts a new stream, so its restart is not a "gap"
         8     8  seq            u64, 0, 1, 2, … per instance
        16     8  send_ns        u64, CLOCK_MONOTONIC of the sender at send time; only the
                                 sender's own node may subtract it (clocks differ per host)
        24     4  size           u32, the whole message's length in bytes
        28     4  crc            u32, zlib CRC-32 of bytes 0..27 and of the payload
        32     …  payload        bytes taken from a random pool at a seq-dependent offset

Little-endian, like everything Corosync puts on the wire. Corosync's cpghum.c checks
the same three things (size, counter, CRC-32) with a host-endian struct of its own; the
two tools do not interoperate on one group, and don't need to.
"""
from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass

MAGIC = b"HUM1"
HEADER = struct.Struct("<4sIQQII")
HEADER_BYTES = HEADER.size
_CRC_COVERED = HEADER_BYTES - 4           # everything in the header before the crc field
POOL_SPREAD_BYTES = 65536                 # payload offsets vary over this many bytes
SIZE_MAX_BYTES = 20 * 1024 * 1024         # cpghum's DATASIZE (libcpg fragments above 1 MiB)
assert HEADER_BYTES == 32


class HumFormatError(ValueError):
    """A delivered message is not a well-formed cpghum message."""


@dataclass(frozen=True)
class HumHeader:
    instance: int
    seq: int
    send_ns: int
    size_bytes: int
    crc: int


def check_size(size_bytes: int) -> int:
    if not HEADER_BYTES <= size_bytes <= SIZE_MAX_BYTES:
        raise ValueError(f"message size {size_bytes} bytes: allowed {HEADER_BYTES} (the "
                         f"header) to {SIZE_MAX_BYTES}")
    return size_bytes


class PayloadPool:
    """Random bytes built once; message k's payload is a slice at a k-dependent offset,
    so consecutive messages differ (a replayed or swapped payload fails its CRC) without
    generating random data per message."""

    def __init__(self, size_bytes: int):
        self.payload_bytes = check_size(size_bytes) - HEADER_BYTES
        self._pool = memoryview(os.urandom(self.payload_bytes + POOL_SPREAD_BYTES))

    def payload(self, seq: int) -> memoryview:
        offset = (seq * 4099) % POOL_SPREAD_BYTES   # a prime stride visits every offset
        return self._pool[offset:offset + self.payload_bytes]


def encode(instance: int, seq: int, send_ns: int, payload) -> tuple[bytes, memoryview]:
    """(header, payload) to pass as two buffers to cpg.mcast_joined."""
    size = HEADER_BYTES + len(payload)
    head = struct.pack("<4sIQQI", MAGIC, instance, seq, send_ns, size)
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + crc.to_bytes(4, "little"), payload


def decode(message: bytes) -> tuple[HumHeader, bool, bool]:
    """(header, length_ok, crc_ok) of a delivered message; HumFormatError if it is not a
    cpghum message at all (too short for the header, or another magic)."""
    if len(message) < HEADER_BYTES:
        raise HumFormatError(f"{len(message)} bytes, shorter than the {HEADER_BYTES}-byte "
                             f"cpghum header")
    magic, instance, seq, send_ns, size, crc = HEADER.unpack_from(message)
    if magic != MAGIC:
        raise HumFormatError(f"magic {magic!r}, expected {MAGIC!r}")
    view = memoryview(message)
    crc_ok = zlib.crc32(view[HEADER_BYTES:], zlib.crc32(view[:_CRC_COVERED])) == crc
    return HumHeader(instance, seq, send_ns, size, crc), size == len(message), crc_ok
