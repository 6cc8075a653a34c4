"""A flight recorder's lines in a byte ring: one writer, readable from another process.

The supervisor maps one ring per child (shared anonymous memory, before the fork) and
the child writes its log lines into it, so the lines outlive the child: a child killed
by a signal, or stopped, still has its last lines read by the supervisor, which is what
a flight recorder is for. The supervisor's own ring is private memory.

Layout: a 64-byte header — magic, version, capacity, `head` (bytes ever written),
`tail` (the position of the oldest whole record) — then the data area. Positions are
absolute byte counts; a record sits at `pos % capacity`:

    u32 length (whole record, a multiple of 8)  u32 pid  u64 stamp (= its position)
    i64 time_ns  u8 level  u8 subsys bytes  u16 0  u32 message bytes
    subsys, message (UTF-8), zeros to the length

A record never wraps: when one does not fit before the end of the area, the rest is a
pad record (level PAD_LEVEL), or, when fewer than RECORD.size bytes are left, skipped by
writer and reader alike. The writer moves `tail` past the records it will overwrite
before it writes, and `head` after: a reader that reads `head`, copies the area, then
reads `tail` takes the records between them, each checked by its stamp, and never one
that was written or overwritten while it copied (x86's stores reach memory in order).
"""
from __future__ import annotations

import struct
import threading

MAGIC = b"CPBB"
VERSION = 1
HEADER = struct.Struct("<4sIQQQ")          # magic, version, capacity, head, tail
HEADER_BYTES = 64
_HEAD_AT, _TAIL_AT = 16, 24
RECORD = struct.Struct("<IIQqBBxxI")       # length, pid, stamp, time_ns, level, subsys, message
PAD_LEVEL = 0xFF
_LEVEL_AT = 24                              # the level byte within a record
_POS = struct.Struct("<Q")
_LEN = struct.Struct("<I")


def _align8(n: int) -> int:
    return (n + 7) & ~7


def capacity_of(buf) -> int:
    return len(buf) - HEADER_BYTES


def init(buf) -> None:
    """Format buf (a bytearray or an mmap, HEADER_BYTES + a multiple of 8) as an empty
    ring."""
    cap = capacity_of(buf)
    if cap < 4096 or cap % 8:
        raise ValueError(f"a log ring needs a data area of >= 4096 bytes, a multiple of 8; "
                         f"got {cap}")
    buf[:HEADER_BYTES] = bytes(HEADER_BYTES)
    HEADER.pack_into(buf, 0, MAGIC, VERSION, cap, 0, 0)


def _check(buf) -> int:
    magic, version, cap, _head, _tail = HEADER.unpack_from(buf, 0)
    if magic != MAGIC or version != VERSION or cap != capacity_of(buf):
        raise ValueError(f"not a version-{VERSION} log ring (magic {magic!r}, version "
                         f"{version}, capacity {cap})")
    return cap


def _record_at(area, pos: int, cap: int) -> tuple[int, bool]:
    """(length, is a skip) of what sits at absolute pos."""
    off = pos % cap
    if cap - off < RECORD.size:
        return cap - off, True
    return _LEN.unpack_from(area, off)[0], False


class LogRing:
    """The writer's side. Threads of one process may share it (a lock); processes may not."""

    def __init__(self, buf):
        self.buf = buf
        self.cap = _check(buf)
        self.area = memoryview(buf)[HEADER_BYTES:]
        self.head = _POS.unpack_from(buf, _HEAD_AT)[0]
        self.tail = _POS.unpack_from(buf, _TAIL_AT)[0]
        self.max_record = self.cap // 4
        self._lock = threading.Lock()
        self.dropped = 0                    # records overwritten by newer ones

    def add(self, time_ns: int, pid: int, level: int, subsys: str, message: str) -> None:
        sub = subsys.encode("utf-8", "replace")[:255]
        msg = message.encode("utf-8", "replace")
        room = self.max_record - RECORD.size - len(sub)
        if len(msg) > room:
            msg = msg[:room - 3] + b"..."
        length = _align8(RECORD.size + len(sub) + len(msg))
        with self._lock:
            off = self.head % self.cap
            if self.cap - off < length:             # the rest of the area is a skip
                skip = self.cap - off
                self._free(self.head + skip)
                if skip >= RECORD.size:
                    RECORD.pack_into(self.area, off, skip, pid, self.head, time_ns,
                                     PAD_LEVEL, 0, 0)
                self.head += skip
                off = 0
            self._free(self.head + length)
            RECORD.pack_into(self.area, off, length, pid, self.head, time_ns, level & 0xFF,
                             len(sub), len(msg))
            body = off + RECORD.size
            self.area[body:body + len(sub)] = sub
            self.area[body + len(sub):body + len(sub) + len(msg)] = msg
            self.head += length
            _POS.pack_into(self.buf, _HEAD_AT, self.head)

    def _free(self, end: int) -> None:
        """Move tail past every record the bytes up to `end` would overwrite."""
        tail = self.tail
        while end - tail > self.cap:
            length, skip = _record_at(self.area, tail, self.cap)
            if not skip and self.area[tail % self.cap + _LEVEL_AT] != PAD_LEVEL:
                self.dropped += 1
            tail += length
        if tail != self.tail:
            self.tail = tail
            _POS.pack_into(self.buf, _TAIL_AT, tail)

    def clear(self) -> None:
        with self._lock:
            self.tail = self.head
            _POS.pack_into(self.buf, _TAIL_AT, self.tail)
            self.dropped = 0


def read(buf) -> list[tuple[int, int, str, str, int]]:
    """The ring's whole records, oldest first, as (time_ns, level, subsys, message, pid).
    Safe against a live writer in another process (see the module's note); a ring that
    is not one (or a torn header) reads as ValueError."""
    cap = _check(buf)
    head = _POS.unpack_from(buf, _HEAD_AT)[0]
    area = bytes(memoryview(buf)[HEADER_BYTES:])
    tail = _POS.unpack_from(buf, _TAIL_AT)[0]
    rows = []
    pos = tail
    while pos < head:
        length, skip = _record_at(area, pos, cap)
        if skip:
            pos += length
            continue
        off = pos % cap
        length, pid, stamp, time_ns, level, sub_len, msg_len = RECORD.unpack_from(area, off)
        if stamp != pos or length < RECORD.size or length % 8 or off + length > cap:
            break                                   # overwritten while we copied
        if level != PAD_LEVEL:
            body = off + RECORD.size
            sub = area[body:body + sub_len].decode("utf-8", "replace")
            msg = area[body + sub_len:body + sub_len + msg_len].decode("utf-8", "replace")
            rows.append((time_ns, level, sub, msg, pid))
        pos += length
    return rows
