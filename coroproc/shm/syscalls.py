"""The libc calls jitted loops make (the plain link loop, the ring process's sleep and
wake-ups), declared by symbol name.

numba resolves an ExternalFunction by name when it links the compiled code, so functions
that call these are cached like any other (a ctypes function pointer would be a constant
address, which numba refuses to cache). Every call here is a plain syscall wrapper of the
C library the interpreter itself links.

Errors come back as (-1, errno): `errno()` reads the calling thread's errno right after
the call, before anything else can change it.
"""
from __future__ import annotations

import numpy as np
from numba import types

from coroproc.njit import njit

EAGAIN = 11
EINTR = 4
CLOCK_MONOTONIC = 1
POLLIN = 0x001
MSG_DONTWAIT = 0x40
MSG_TRUNC = 0x20          # recvfrom returns a datagram's full length, even when cut off
POLLFD_WORDS = 2          # struct pollfd as two int32: fd, events | revents << 16
# struct mmsghdr as eight int64 words: msg_name, msg_namelen, msg_iov, msg_iovlen,
# msg_control, msg_controllen, msg_flags, msg_len (x86-64 layout, 64 bytes)
MMSGHDR_WORDS = 8
(MMSG_NAME, MMSG_NAMELEN, MMSG_IOV, MMSG_IOVLEN, MMSG_CONTROL, MMSG_CONTROLLEN,
 MMSG_FLAGS) = range(7)
IOVEC_WORDS = 2           # struct iovec: iov_base, iov_len
# struct epoll_event (packed on x86-64, 12 bytes) as three uint32 words: events, then
# the 64-bit data; Python's select.epoll puts the fd in data's low half
EPOLL_EVENT_WORDS = 3
EPOLLIN = 0x001

_poll = types.ExternalFunction(
    "poll", types.int32(types.voidptr, types.uint64, types.int32))
_ppoll = types.ExternalFunction(
    "ppoll", types.int32(types.voidptr, types.uint64, types.voidptr, types.voidptr))
_recvfrom = types.ExternalFunction(
    "recvfrom", types.intp(types.int32, types.voidptr, types.uintp, types.int32,
                           types.voidptr, types.voidptr))
_recvmsg = types.ExternalFunction(
    "recvmsg", types.intp(types.int32, types.voidptr, types.int32))
_sendmsg = types.ExternalFunction(
    "sendmsg", types.intp(types.int32, types.voidptr, types.int32))
_sendmmsg = types.ExternalFunction(
    "sendmmsg", types.int32(types.int32, types.voidptr, types.uint32, types.int32))
_epoll_wait = types.ExternalFunction(
    "epoll_wait", types.int32(types.int32, types.voidptr, types.int32, types.int32))
_read = types.ExternalFunction("read", types.intp(types.int32, types.voidptr, types.uintp))
_write = types.ExternalFunction("write", types.intp(types.int32, types.voidptr, types.uintp))
_clock_gettime = types.ExternalFunction(
    "clock_gettime", types.int32(types.int32, types.voidptr))
# the CPU the calling thread runs on (glibc reads it from rseq or the vDSO: no syscall)
_sched_getcpu = types.ExternalFunction("sched_getcpu", types.int32())
_errno_location = types.ExternalFunction("__errno_location", types.CPointer(types.int32)())


@njit(cache=True, inline="always")
def current_cpu():
    return _sched_getcpu()


@njit(cache=True, inline="always")
def errno():
    return _errno_location()[0]


@njit(cache=True, inline="always")
def _outcome(rc):
    """A libc call's result: (True, rc) on success, (True, -errno) on a failure, (False, 0)
    when a signal interrupted it and the caller should call again."""
    if rc >= 0:
        return True, rc
    e = errno()
    if e == EINTR:
        return False, 0
    return True, -e


@njit(cache=True, inline="always")
def monotonic_ns(scratch):
    """CLOCK_MONOTONIC in ns (time.monotonic_ns's clock); scratch: int64[2] for the timespec."""
    _clock_gettime(CLOCK_MONOTONIC, scratch.ctypes.data)
    return scratch[0] * 1_000_000_000 + scratch[1]


@njit(cache=True, inline="always")
def eventfd_write_one(fd, scratch):
    """Add 1 to an eventfd counter (wakes its reader); scratch: uint64[1]."""
    scratch[0] = 1
    return _write(fd, scratch.ctypes.data, 8)


@njit(cache=True, inline="always")
def eventfd_drain(fd, scratch):
    """Reset an eventfd counter (non-blocking fd: nothing to read is fine)."""
    return _read(fd, scratch.ctypes.data, 8)


@njit(cache=True, inline="always")
def poll(pfd, first, count, timeout_ms):
    """poll() over pollfds first..first+count-1 of pfd (int32 pairs); revents cleared
    before. Returns ready count, or -errno."""
    for i in range(first, first + count):
        pfd[POLLFD_WORDS * i + 1] &= 0xFFFF
    rc = _poll(pfd.ctypes.data + 4 * POLLFD_WORDS * first, count, timeout_ms)
    if rc < 0:
        return -errno()
    return rc


@njit(cache=True, inline="always")
def poll_us(pfd, first, count, timeout_us, ts):
    """poll() with a µs timeout (ppoll, signal mask untouched): poll()'s milliseconds
    would round a sleep of a few hundred µs up to a whole one. ts: int64[2] scratch for
    the timespec. Returns ready count, or -errno."""
    for i in range(first, first + count):
        pfd[POLLFD_WORDS * i + 1] &= 0xFFFF
    ts[0] = timeout_us // 1_000_000
    ts[1] = (timeout_us % 1_000_000) * 1000
    rc = _ppoll(pfd.ctypes.data + 4 * POLLFD_WORDS * first, count, ts.ctypes.data, 0)
    if rc < 0:
        return -errno()
    return rc


@njit(cache=True, inline="always")
def readable(pfd, i):
    return (pfd[POLLFD_WORDS * i + 1] >> 16) != 0


@njit(cache=True, inline="always")
def recvfrom(fd, buf, n_max, src, src_len):
    """One datagram into buf[:n_max] (non-blocking); its source sockaddr into src
    (src_len: uint32[1]). Returns its length (> n_max means cut off), or -errno."""
    while True:
        src_len[0] = src.shape[0]
        done, n = _outcome(_recvfrom(fd, buf.ctypes.data, n_max, MSG_DONTWAIT | MSG_TRUNC,
                                     src.ctypes.data, src_len.ctypes.data))
        if done:
            return n


@njit(cache=True, inline="always")
def recvmsg(fd, mh):
    """recvmsg(fd, mh, MSG_DONTWAIT | MSG_TRUNC): mh holds a struct msghdr (as sendmsg);
    the kernel writes msg_namelen, msg_controllen and msg_flags back. The datagram's full
    length (> the iovec's: cut off), or -errno."""
    while True:
        done, n = _outcome(_recvmsg(fd, mh.ctypes.data, MSG_DONTWAIT | MSG_TRUNC))
        if done:
            return n


@njit(cache=True, inline="always")
def sendmsg(fd, mh):
    """sendmsg(fd, mh, MSG_DONTWAIT): mh holds a struct msghdr in its first words (the
    MMSGHDR_WORDS layout without msg_len). Sent bytes, or -errno."""
    while True:
        done, rc = _outcome(_sendmsg(fd, mh.ctypes.data, MSG_DONTWAIT))
        if done:
            return rc


@njit(cache=True, inline="always")
def sendmmsg(fd, mm, count):
    """sendmmsg(fd, mm, count, MSG_DONTWAIT) on a connected socket: messages sent (the
    first `count` mmsghdr rows of mm, see MMSGHDR_WORDS), or -errno."""
    while True:
        done, rc = _outcome(_sendmmsg(fd, mm.ctypes.data, count, MSG_DONTWAIT))
        if done:
            return rc


@njit(cache=True, inline="always")
def epoll_wait(epfd, ev, timeout_ms):
    """epoll_wait into ev (uint32, EPOLL_EVENT_WORDS per event): events ready, or -errno
    (EINTR included: the caller decides)."""
    rc = _epoll_wait(epfd, ev.ctypes.data, ev.shape[0] // EPOLL_EVENT_WORDS, timeout_ms)
    if rc < 0:
        return -errno()
    return rc


@njit(cache=True, inline="always")
def doorbell_poll(pfd, sleep, timeout_us, scratch, ts):
    """The sleep of a consumer that raised its rings' sleeping flags: when `sleep` (the
    rings were still empty once the flags were up), poll() pfd — its doorbell eventfd
    first — for up to timeout_us and drain the doorbell if it rang; else only clear pfd's
    old revents, so no readiness from before is read as new. poll()'s result, 1 without
    sleeping. ts: int64[2] scratch (poll_us)."""
    if not sleep:
        for i in range(pfd.shape[0] // POLLFD_WORDS):
            pfd[POLLFD_WORDS * i + 1] &= 0xFFFF
        return 1
    rc = poll_us(pfd, 0, pfd.shape[0] // POLLFD_WORDS, timeout_us, ts)
    if rc > 0 and readable(pfd, 0):
        eventfd_drain(pfd[0], scratch)
    return rc


def pollfd_array(fds) -> np.ndarray:
    """struct pollfd[] for numba code: (fd, POLLIN) per fd."""
    pfd = np.zeros(POLLFD_WORDS * len(fds), np.int32)
    for i, fd in enumerate(fds):
        pfd[POLLFD_WORDS * i] = fd
        pfd[POLLFD_WORDS * i + 1] = POLLIN
    return pfd
