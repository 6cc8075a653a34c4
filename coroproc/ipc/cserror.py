"""Corosync's cs_error_t: the numbers, their names, and the exception clients raise.

This file owns the status codes every Corosync service reply carries in
qb_ipc_response_header.error (CS_OK = 1, not 0), their printable names as
`cs_strerror()` spells them (corosync-cmapctl prints those), and the mapping libqb
errnos get in the C libraries (`qb_to_cs_error`). Engines import the numbers; the
client library raises `CsError`.
"""

import errno

CS_OK = 1
CS_ERR_LIBRARY = 2
CS_ERR_VERSION = 3
CS_ERR_INIT = 4
CS_ERR_TIMEOUT = 5
CS_ERR_TRY_AGAIN = 6
CS_ERR_INVALID_PARAM = 7
CS_ERR_NO_MEMORY = 8
CS_ERR_BAD_HANDLE = 9
CS_ERR_BUSY = 10
CS_ERR_ACCESS = 11
CS_ERR_NOT_EXIST = 12
CS_ERR_NAME_TOO_LONG = 13
CS_ERR_EXIST = 14
CS_ERR_NO_SPACE = 15
CS_ERR_INTERRUPT = 16
CS_ERR_NAME_NOT_FOUND = 17
CS_ERR_NO_RESOURCES = 18
CS_ERR_NOT_SUPPORTED = 19
CS_ERR_BAD_OPERATION = 20
CS_ERR_FAILED_OPERATION = 21
CS_ERR_MESSAGE_ERROR = 22
CS_ERR_QUEUE_FULL = 23
CS_ERR_QUEUE_NOT_AVAILABLE = 24
CS_ERR_BAD_FLAGS = 25
CS_ERR_TOO_BIG = 26
CS_ERR_NO_SECTIONS = 27
CS_ERR_CONTEXT_NOT_FOUND = 28
CS_ERR_TOO_MANY_GROUPS = 30
CS_ERR_SECURITY = 100

# number -> "CS_ERR_…" (CS_OK keeps its symbol here; cs_strerror() says "success").
NAMES = {value: name for name, value in globals().items()
         if name.startswith("CS_") and isinstance(value, int)}
assert len(NAMES) == 30 and NAMES[CS_OK] == "CS_OK"

# cs_dispatch_flags_t (shared by every library's dispatch()).
CS_DISPATCH_ONE = 1
CS_DISPATCH_ALL = 2
CS_DISPATCH_BLOCKING = 3
CS_DISPATCH_ONE_NONBLOCKING = 4
DISPATCH_FLAGS = (CS_DISPATCH_ONE, CS_DISPATCH_ALL, CS_DISPATCH_BLOCKING,
                  CS_DISPATCH_ONE_NONBLOCKING)

# cs_track_flags (quorum/votequorum/cfg track start).
CS_TRACK_CURRENT = 1
CS_TRACK_CHANGES = 2
CS_TRACK_CHANGES_ONLY = 4


def name_of(code: int) -> str:
    """"CS_ERR_TRY_AGAIN" for 6; unknown numbers read "CS_ERR_UNKNOWN(<n>)"."""
    return NAMES.get(code, f"CS_ERR_UNKNOWN({code})")


def strerror(code: int) -> str:
    """Exactly what Corosync's cs_strerror() returns (the tools print it)."""
    if code == CS_OK:
        return "success"
    return NAMES.get(code, "unknown error")


# libqb returns -errno; the C libraries turn it into cs_error_t this way
# (common_lib/error_conversion.c qb_to_cs_error).
_ERRNO_TO_CS = {
    errno.EBADF: CS_ERR_BAD_HANDLE, errno.ENOMEM: CS_ERR_NO_MEMORY,
    errno.ENOMSG: CS_ERR_TRY_AGAIN, errno.ENOBUFS: CS_ERR_TRY_AGAIN,
    errno.ETIMEDOUT: CS_ERR_TRY_AGAIN, errno.EAGAIN: CS_ERR_TRY_AGAIN,
    errno.EBADE: CS_ERR_FAILED_OPERATION, errno.ETIME: CS_ERR_TIMEOUT,
    errno.EINVAL: CS_ERR_INVALID_PARAM, errno.EBUSY: CS_ERR_BUSY,
    errno.EACCES: CS_ERR_ACCESS, errno.EOVERFLOW: CS_ERR_NAME_TOO_LONG,
    errno.EEXIST: CS_ERR_EXIST, errno.ENOSPC: CS_ERR_NO_SPACE,
    errno.EINTR: CS_ERR_INTERRUPT, errno.ENOENT: CS_ERR_NOT_EXIST,
    errno.ENODEV: CS_ERR_NOT_EXIST, errno.ENOSYS: CS_ERR_NOT_SUPPORTED,
    errno.ENOTSUP: CS_ERR_NOT_SUPPORTED, errno.EBADMSG: CS_ERR_MESSAGE_ERROR,
    errno.EMSGSIZE: CS_ERR_TOO_BIG, errno.E2BIG: CS_ERR_TOO_BIG,
}


def from_errno(err: int) -> int:
    """cs_error_t for a libqb result (0/positive = CS_OK, -errno or errno otherwise)."""
    if err == 0:
        return CS_OK
    return _ERRNO_TO_CS.get(abs(err), CS_ERR_LIBRARY)


class CsError(Exception):
    """A Corosync call failed with a cs_error_t.

    .code is the number (e.g. 6), .name the symbol ("CS_ERR_TRY_AGAIN"), .call the
    operation that failed ("cpg_join('grp')"). The message says all three.
    """

    def __init__(self, code: int, call: str, detail: str = ""):
        self.code = int(code)
        self.name = name_of(self.code)
        self.call = call
        text = f"{call} failed: {self.name} ({self.code})"
        super().__init__(f"{text}: {detail}" if detail else text)

    def __reduce__(self):  # picklable across processes (multiprocessing, executors)
        return (type(self), (self.code, self.call))


def check(code: int, call: str, detail: str = "") -> None:
    """Raise CsError unless code is CS_OK."""
    if code != CS_OK:
        raise CsError(code, call, detail)
