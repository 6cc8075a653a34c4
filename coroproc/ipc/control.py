"""The socket-mode control file: three {int32 sent; int32 flow_control} records in shm.

This file owns mapping that 24-byte file and updating its counters the way libqb does:
atomically, because the other process updates the same int32 at the same time (the
sender increments `sent`, the receiver decrements it). Python has no CPU atomics, so
the read-modify-writes go through libatomic's `__atomic_fetch_add_4` via ctypes
(libatomic1 ships with gcc's runtime on Debian). The counters are advisory for both
libqb ends (only a libqb *server* reads request.sent, to size its read batch), so when
libatomic is missing we fall back to a plain read-modify-write and say so once.
Plain aligned int32 loads/stores are atomic on x86-64, so the flow-control flag needs
no helper.
"""

import ctypes
import ctypes.util
import logging
import mmap
import os
import struct

from coroproc.ipc.wire import (
    CONTROL_FILE_BYTES,
    CONTROL_FLOW_OFFSET,
    CONTROL_SENT_OFFSET,
)

log = logging.getLogger("coroproc.ipc")

_SEQ_CST = 5
_INT32 = struct.Struct("<i")


def _load_fetch_add():
    name = ctypes.util.find_library("atomic") or "libatomic.so.1"
    try:
        lib = ctypes.CDLL(name)
        fn = lib.__atomic_fetch_add_4
    except (OSError, AttributeError):
        log.warning("libatomic not found: IPC control counters updated without atomics "
                    "(advisory counters; install libatomic1 for exact values)")
        return None
    fn.argtypes = (ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int)
    fn.restype = ctypes.c_uint32
    return fn


_fetch_add = _load_fetch_add()


class ControlFile:
    """A mapped control file; `create` (server side) or `open` (client side)."""

    def __init__(self, path: str, fd: int):
        self.path = path
        try:
            self._map = mmap.mmap(fd, CONTROL_FILE_BYTES, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        self._cbuf = ctypes.c_char.from_buffer(self._map)
        self._base_addr = ctypes.addressof(self._cbuf)

    @classmethod
    def create(cls, path: str, uid: int, gid: int, mode: int = 0o600) -> "ControlFile":
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC, mode)
        try:
            os.ftruncate(fd, CONTROL_FILE_BYTES)
            try:
                os.fchown(fd, uid, gid)  # fails unless root or same uid; libqb ignores it too
            except PermissionError:
                pass
            os.fchmod(fd, mode)
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        return cls(path, fd)

    @classmethod
    def open(cls, path: str) -> "ControlFile":
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        size_bytes = os.fstat(fd).st_size
        if size_bytes < CONTROL_FILE_BYTES:
            os.close(fd)
            raise ValueError(f"control file {path} is {size_bytes} bytes, "
                             f"expected at least {CONTROL_FILE_BYTES}")
        return cls(path, fd)

    def add_sent(self, channel: str, delta: int) -> None:
        offset = CONTROL_SENT_OFFSET[channel]
        if _fetch_add is not None:
            _fetch_add(self._base_addr + offset, delta & 0xFFFFFFFF, _SEQ_CST)
        else:
            value = _INT32.unpack_from(self._map, offset)[0] + delta
            _INT32.pack_into(self._map, offset, ((value + 2**31) % 2**32) - 2**31)

    def address(self, channel: str) -> int:
        """The address of a channel's `sent` int32 in this process (for jitted code that
        counts sends itself); valid until close()."""
        return self._base_addr + CONTROL_SENT_OFFSET[channel]

    def sent(self, channel: str) -> int:
        return _INT32.unpack_from(self._map, CONTROL_SENT_OFFSET[channel])[0]

    def flow_control(self) -> int:
        """The request channel's flag: clients refuse to send while 0 < flag <= their max."""
        return _INT32.unpack_from(self._map, CONTROL_FLOW_OFFSET["request"])[0]

    def set_flow_control(self, level: int) -> None:
        if level not in (0, 1, 2):
            raise ValueError(f"flow control level {level}: allowed 0 (off), 1, 2")
        _INT32.pack_into(self._map, CONTROL_FLOW_OFFSET["request"], level)

    def close(self) -> None:
        if self._map is None:
            return
        del self._cbuf  # the exported ctypes buffer must go before the mmap can close
        self._map.close()
        self._map = None
