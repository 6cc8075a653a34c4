"""The watchdog device: open, set its timeout, kick it, close it with the magic 'V'.

A real watchdog (a character device such as /dev/watchdog) is driven with the Linux
ioctls Corosync uses (WDIOC_GETSUPPORT, SETTIMEOUT, GETTIMEOUT, KEEPALIVE,
SETOPTIONS ENABLECARD). Anything else at the path — a regular file or a FIFO — is a
*stand-in* (for tests and demos, never a real reset): every action is written to it
as one text line, so the test can observe what the engine did:

    open <timeout_s>\n     when opened (and armed)
    timeout <seconds>\n    when the timeout changes
    keepalive\n            each kick
    V                      the magic close (no newline, as the real one), on clean stop

A FIFO stand-in is opened non-blocking: a full or reader-less FIFO makes a kick fail
(counted, logged), it never blocks the engine loop.
"""
from __future__ import annotations

import array
import fcntl
import os
import stat
import struct

# <linux/watchdog.h>: _IOR('W', n, int) etc.; struct watchdog_info is 40 bytes.
_WATCHDOG_INFO = struct.Struct("<II32s")
WDIOC_GETSUPPORT = 0x80285700
WDIOC_SETOPTIONS = 0x80045704
WDIOC_KEEPALIVE = 0x80045705
WDIOC_SETTIMEOUT = 0xC0045706
WDIOC_GETTIMEOUT = 0x80045707
WDIOF_SETTIMEOUT = 0x0080
WDIOS_ENABLECARD = 0x0002


class WatchdogUnavailable(Exception):
    """The device could not be used; the message says why, for the log."""


class WatchdogDevice:
    def __init__(self, path: str):
        self.path = path
        self.fd = -1
        self.is_standin = True
        self.identity = ""
        self.kicks = 0
        self.kick_failures = 0

    def open(self) -> None:
        if not os.access(self.path, os.W_OK):
            raise WatchdogUnavailable(f"No watchdog {self.path}, try modprobe <a watchdog>")
        try:
            st = os.stat(self.path)
            self.is_standin = not stat.S_ISCHR(st.st_mode)
            flags = os.O_WRONLY | os.O_CLOEXEC
            if stat.S_ISFIFO(st.st_mode):
                flags |= os.O_NONBLOCK
            elif self.is_standin:
                flags |= os.O_APPEND
            self.fd = os.open(self.path, flags)
        except OSError as exc:
            raise WatchdogUnavailable(f"Watchdog {self.path} exists but couldn't be opened "
                                      f"({exc.strerror})") from None
        if not self.is_standin:
            buf = bytearray(_WATCHDOG_INFO.size)
            try:
                fcntl.ioctl(self.fd, WDIOC_GETSUPPORT, buf)
                self.identity = _WATCHDOG_INFO.unpack(buf)[2].split(b"\0")[0].decode(
                    "ascii", "replace")
            except OSError:
                self.identity = "(no WDIOC_GETSUPPORT)"

    @property
    def is_open(self) -> bool:
        return self.fd >= 0

    def _line(self, text: str) -> bool:
        try:
            os.write(self.fd, text.encode("ascii"))
            return True
        except OSError:
            return False

    def get_timeout_s(self) -> int:
        """The device's timeout (0 if unknown: stand-ins remember nothing)."""
        if self.fd < 0 or self.is_standin:
            return 0
        value = array.array("i", [0])
        try:
            fcntl.ioctl(self.fd, WDIOC_GETTIMEOUT, value, True)
        except OSError:
            return 0
        return value[0]

    def set_timeout_s(self, timeout_s: int) -> int:
        """Ask for timeout_s; returns what the device now has (stand-ins take anything)."""
        assert 1 <= timeout_s <= 65535, timeout_s
        if self.fd < 0:
            return timeout_s
        if self.is_standin:
            self._line(f"timeout {timeout_s}\n")
            return timeout_s
        buf = bytearray(_WATCHDOG_INFO.size)
        try:
            fcntl.ioctl(self.fd, WDIOC_GETSUPPORT, buf)
            if _WATCHDOG_INFO.unpack(buf)[0] & WDIOF_SETTIMEOUT:
                fcntl.ioctl(self.fd, WDIOC_SETTIMEOUT, array.array("i", [timeout_s]), True)
        except OSError:
            pass
        return self.get_timeout_s()

    def enable(self, timeout_s: int) -> None:
        if self.is_standin:
            self._line(f"open {timeout_s}\n")
            return
        try:
            fcntl.ioctl(self.fd, WDIOC_SETOPTIONS, array.array("i", [WDIOS_ENABLECARD]), True)
        except OSError:
            pass   # not every driver knows SETOPTIONS; an open watchdog is armed anyway

    def kick(self) -> bool:
        assert self.fd >= 0, "kick on a closed watchdog"
        if self.is_standin:
            ok = self._line("keepalive\n")
        else:
            try:
                fcntl.ioctl(self.fd, WDIOC_KEEPALIVE, array.array("i", [0]), True)
                ok = True
            except OSError:
                ok = False
        if ok:
            self.kicks += 1
        else:
            self.kick_failures += 1
        return ok

    def magic_close(self) -> bool:
        """Write 'V' and close: a driver with magic close disarms instead of resetting."""
        if self.fd < 0:
            return True
        try:
            written = os.write(self.fd, b"V") == 1
        except OSError:
            written = False
        os.close(self.fd)
        self.fd = -1
        return written

    def abandon(self) -> None:
        """Close without the magic 'V' (the timer keeps running: the machine resets)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
