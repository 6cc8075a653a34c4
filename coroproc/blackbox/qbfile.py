"""Flight data as libqb 2.0 writes it (qb_log_blackbox_write_to_file), for qb-blackbox.

File: a 20-byte header that marks the hi-res format (0, 0xCCBBCCBB, 0xBBCCBBCC, 2, 0),
then the ring as qb_rb_write_to_file saves it — word_size, write_pt, read_pt, version 1,
their sum as the hash — and word_size 32-bit words of data. The data holds one chunk
per line from word 0 on: [size][0xA1A1A1A1] and the entry, padded to a word:

    u32 lineno, u32 tags, u8 priority, u32 len(function)+1, function NUL,
    struct timespec (i64 s, i64 ns), u32 len(message), message

where the message is qb_vsnprintf_serialize's form of format "%s" with one string
argument ("%s" NUL text NUL). The reader stops at the first word pair without the magic
(it then prints "qb_rb_chunk_read failed: Connection timed out", as for Corosync's own
files). coroproc fills the fields as: function = the process (`coroproc: cpg`),
lineno = its pid, tags 0, message "[SUBSYS] text". libqb refuses a message above
QB_LOG_MAX_LEN (512 bytes serialized) and a chunk above 1,024, so longer texts are cut.
"""
from __future__ import annotations

import os
import struct

HEADER = struct.pack("<5I", 0, 0xCCBBCCBB, 0xBBCCBBCC, 2, 0)
RB_FILE_VERSION = 1
CHUNK_MAGIC = 0xA1A1A1A1
QB_LOG_MAX_LEN = 512
FUNCTION_MAX_BYTES = 63
# "%s" NUL + text + NUL must stay within QB_LOG_MAX_LEN
MESSAGE_MAX_BYTES = QB_LOG_MAX_LEN - 4
PAGE_BYTES = 4096
# libqb's QB_RB_CHUNK_MARGIN + 1 word: room its reader expects between write and read
MARGIN_BYTES = 4 * 4
_ENTRY_HEAD = struct.Struct("<IIBI")
_TIMESPEC = struct.Struct("<qq")
_CHUNK_HEAD = struct.Struct("<II")


def _cut(text: str, max_bytes: int) -> bytes:
    raw = text.replace("\0", " ").encode("utf-8", "replace")
    if len(raw) <= max_bytes:
        return raw
    return raw[:max_bytes].decode("utf-8", "ignore").encode()   # no split character


def entry(priority: int, function: str, lineno: int, time_ns: int, message: str) -> bytes:
    fn = _cut(function, FUNCTION_MAX_BYTES) + b"\0"
    msg = b"%s\0" + _cut(message, MESSAGE_MAX_BYTES) + b"\0"
    return (_ENTRY_HEAD.pack(lineno & 0xFFFFFFFF, 0, priority & 0xFF, len(fn)) + fn
            + _TIMESPEC.pack(time_ns // 1_000_000_000, time_ns % 1_000_000_000)
            + struct.pack("<I", len(msg)) + msg)


def ring_data(entries: list[bytes]) -> tuple[bytes, int]:
    """The ring's data words holding the entries as chunks from word 0; (data, write_pt)."""
    out = bytearray()
    for e in entries:
        out += _CHUNK_HEAD.pack(len(e), CHUNK_MAGIC) + e
        out += b"\0" * (-len(e) % 4)
    write_pt = len(out) // 4
    size = max(PAGE_BYTES, -(-(len(out) + MARGIN_BYTES) // PAGE_BYTES) * PAGE_BYTES)
    out += b"\0" * (size - len(out))
    return bytes(out), write_pt


def file_bytes(entries: list[bytes]) -> bytes:
    data, write_pt = ring_data(entries)
    word_size, read_pt = len(data) // 4, 0
    hash_ = (word_size + write_pt + read_pt + RB_FILE_VERSION) & 0xFFFFFFFF
    return HEADER + struct.pack("<5I", word_size, write_pt, read_pt, RB_FILE_VERSION,
                                hash_) + data


def write(path: str, entries: list[bytes]) -> int:
    """Write the file (mode 0600, as libqb's 0700 minus the execute bit); its size."""
    raw = file_bytes(entries)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(raw)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    return len(raw)
