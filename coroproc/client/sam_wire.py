"""SAM's pipe protocol between the application (child) and its supervisor (parent).

Private to coroproc.client.sam (both ends are this library, as in libsam): one command
byte, then the command's argument, and for the commands that wait, one reply byte
(OK, or ERROR followed by a little-endian int32 cs_error_t). Health checks (HB) and
MARK_FAILED get no reply. Reads and writes loop over short transfers and EINTR, as
libsam's sam_safe_read/write; a closed pipe reads as b"" (the other side is gone).
"""
from __future__ import annotations

import os
import struct

CMD_START = 0
CMD_STOP = 1
CMD_HB = 2
CMD_DATA_STORE = 3
CMD_WARN_SIGNAL_SET = 4
CMD_MARK_FAILED = 5
COMMANDS = (CMD_START, CMD_STOP, CMD_HB, CMD_DATA_STORE, CMD_WARN_SIGNAL_SET, CMD_MARK_FAILED)

REPLY_OK = 0
REPLY_ERROR = 1

SIZE = struct.Struct("<Q")
INT32 = struct.Struct("<i")
DATA_MAX_BYTES = 1 << 30      # what one data_store may carry; bounds the parent's read


class PipeClosed(Exception):
    """The other end of the pipe is gone (EOF in the middle of a message)."""


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except InterruptedError:
            continue
        view = view[n:]


def read_exact(fd: int, n: int) -> bytes:
    """n bytes, or b"" if the pipe is at EOF before the first byte; PipeClosed if it
    ends in the middle."""
    chunks, got = [], 0
    while got < n:
        try:
            chunk = os.read(fd, n - got)
        except InterruptedError:
            continue
        if not chunk:
            if got == 0:
                return b""
            raise PipeClosed(f"pipe closed after {got} of {n} bytes")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def send_command(fd: int, command: int, payload: bytes = b"") -> None:
    assert command in COMMANDS, command
    write_all(fd, bytes((command,)) + payload)


def pack_data(data: bytes | None) -> bytes:
    if data is None:
        return SIZE.pack(0)
    if len(data) > DATA_MAX_BYTES:
        raise ValueError(f"SAM data of {len(data)} bytes: at most {DATA_MAX_BYTES}")
    return SIZE.pack(len(data)) + data


def read_data(fd: int) -> bytes:
    size = SIZE.unpack(_must(read_exact(fd, SIZE.size)))[0]
    if size > DATA_MAX_BYTES:
        raise PipeClosed(f"SAM data size {size} > {DATA_MAX_BYTES}: protocol broken")
    return _must(read_exact(fd, size)) if size else b""


def read_int32(fd: int) -> int:
    return INT32.unpack(_must(read_exact(fd, INT32.size)))[0]


def send_reply(fd: int, cs_error: int) -> None:
    """OK for CS_OK (1), else ERROR + the code."""
    if cs_error == 1:
        write_all(fd, bytes((REPLY_OK,)))
    else:
        write_all(fd, bytes((REPLY_ERROR,)) + INT32.pack(cs_error))


def read_reply(fd: int) -> int:
    """The cs_error_t the parent answered (CS_OK = 1); 2 (CS_ERR_LIBRARY) if the pipe
    broke or the reply is not one."""
    try:
        head = read_exact(fd, 1)
        if head == bytes((REPLY_OK,)):
            return 1
        if head == bytes((REPLY_ERROR,)):
            return read_int32(fd)
    except (PipeClosed, OSError):
        pass
    return 2


def _must(data: bytes) -> bytes:
    if not data:
        raise PipeClosed("pipe closed before the message")
    return data
