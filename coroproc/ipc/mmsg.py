"""sendmmsg(2) for a connected datagram socket: several queued messages in one system call.

Why: an engine that delivers a batch of messages sends each joined client one event per
message. Sent one `send` at a time, every event that lands on a sleeping client wakes
it, and the woken client often preempts the engine on the same CPU — one pair of context
switches per event. One sendmmsg queues the whole batch before the engine gives up the
CPU, so the client wakes once and reads them all. Python's socket module has no
sendmmsg; this calls libc's through ctypes.

The messages are copied into one staging buffer (a 1 KiB copy costs far less than the
call) whose address, like the iovec and mmsghdr arrays, is fixed at creation, so a batch
costs two ctypes field stores per message and one foreign call.
"""
from __future__ import annotations

import ctypes
import errno as _errno

MSG_DONTWAIT = 0x40
BATCH_MAX = 64                  # messages per call; also how many events a corked
#                                 connection holds before it sends (connection.py)
STAGING_BYTES = 256 * 1024      # a message larger than this goes out with a plain send


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.c_void_p), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint)]


def _load_sendmmsg():
    try:
        fn = ctypes.CDLL(None, use_errno=True).sendmmsg
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int)
    fn.restype = ctypes.c_int
    return fn


_sendmmsg = _load_sendmmsg()


class BatchSender:
    """One per IPC server: sends runs of queued messages on connected sockets (the
    staging buffer is reused call after call, so one sender serves one thread)."""

    available = _sendmmsg is not None

    def __init__(self, batch_max: int = BATCH_MAX, staging_bytes: int = STAGING_BYTES):
        if _sendmmsg is None:
            raise OSError(_errno.ENOSYS, "this C library has no sendmmsg")
        assert batch_max >= 1 and staging_bytes >= 1
        self.batch_max = batch_max
        self.staging_bytes = staging_bytes
        self._stage = bytearray(staging_bytes)
        self._stage_mv = memoryview(self._stage)
        # the exported view keeps the bytearray from moving while the address is in use
        self._stage_c = ctypes.c_char.from_buffer(self._stage)
        self._stage_addr = ctypes.addressof(self._stage_c)
        self._iov = (_Iovec * batch_max)()
        self._mm = (_Mmsghdr * batch_max)()
        iov_addr, iov_size = ctypes.addressof(self._iov), ctypes.sizeof(_Iovec)
        for i in range(batch_max):
            self._mm[i].msg_hdr.msg_iov = iov_addr + i * iov_size
            self._mm[i].msg_hdr.msg_iovlen = 1
        self._mm_addr = ctypes.addressof(self._mm)

    def send(self, fd: int, messages) -> tuple[int, int]:
        """Send messages[0], messages[1], … (bytes-like, in order) on the connected socket
        fd, as many as fit one call. Returns (sent, errno): sent > 0 with errno 0, or
        0 with the errno of the first message (EAGAIN: the peer's queue is full).
        Only the first `batch_max` messages and at most `staging_bytes` are taken; a
        first message larger than the staging buffer returns (0, EMSGSIZE) untried —
        the caller sends that one alone."""
        iov, mv = self._iov, self._stage_mv
        off = count = 0
        for msg in messages:
            n = len(msg)
            if count == self.batch_max or off + n > self.staging_bytes:
                break
            mv[off:off + n] = msg
            iov[count].iov_base = self._stage_addr + off
            iov[count].iov_len = n
            off += n
            count += 1
        if not count:
            return 0, _errno.EMSGSIZE
        sent = _sendmmsg(fd, self._mm_addr, count, MSG_DONTWAIT)
        if sent < 0:
            return 0, ctypes.get_errno()
        return sent, 0

    def close(self) -> None:
        self._stage_mv.release()
        self._stage_c = None
