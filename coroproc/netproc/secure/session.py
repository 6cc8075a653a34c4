"""Session ids: one per (sender process, link), strictly increasing across restarts.

A session id is the sender's start time in ns (time.time_ns()), made strictly greater
than the last id persisted in a small state file, so a clock stepped back after a reboot
still yields a newer session. Receivers refuse frames of a session older than the one
they accepted from that sender, and the session key depends on the id, so a new session
id is what lets seq restart at 1 without reusing an AES-GCM nonce under a key.
If the state file is lost and the clock is behind, peers that still remember the newer
session refuse this node until they restart: keep state_dir on persistent storage.
"""
from __future__ import annotations

import os
import time

from coroproc.netproc.secure.frame import SESSION_MAX


def _read_last(path: str) -> int:
    try:
        with open(path, "rb") as f:
            text = f.read(64)
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise ValueError(f"session state {path} cannot be read: {exc.strerror}") from None
    try:
        value = int(text.strip() or b"0")
    except ValueError:
        raise ValueError(f"session state {path} holds {text[:32]!r}, not a session id; "
                         "remove the file only if this node's clock is known to be right "
                         "(a session id older than the peers remember is refused)") from None
    if not 0 <= value < SESSION_MAX:
        raise ValueError(f"session state {path} holds {value}, outside 0..{SESSION_MAX - 1}")
    return value


def _write(path: str, value: int) -> None:
    """Write-then-rename, fsynced: a crash leaves the old or the new value, never half."""
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, b"%d\n" % value)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dirfd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def new_session_id(path: str | None = None) -> int:
    """A new u64 session id (> 0); with path (state_dir/linksession_<link>), also greater
    than the id stored there, which is replaced by the new one before returning."""
    session = time.time_ns()
    if path is not None:
        session = max(session, _read_last(path) + 1)
        try:
            _write(path, session)
        except OSError as exc:
            raise ValueError(f"session state {path} cannot be written: {exc.strerror}") \
                from None
    assert 0 < session <= SESSION_MAX
    return session
