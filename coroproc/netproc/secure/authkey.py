"""The cluster authkey: reading Corosync's key file or the inline totem.key.

corosync-keygen writes 256 random bytes (mode 0400) by default; any length 128..4096 is a
valid key (knet's KNET_MIN_KEY_LEN / KNET_MAX_KEY_LEN). Every error names the path and the
problem; a key readable by group or others is accepted with a warning, as the secret is
then readable by whoever shares that group (Corosync wants 0400).
"""
from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Callable

AUTHKEY_MIN_BYTES = 128
AUTHKEY_MAX_BYTES = 4096


class AuthkeyError(ValueError):
    """The authkey is missing, unreadable or of a length outside 128..4096 bytes."""


class AuthkeyPermissionWarning(UserWarning):
    """The key file is readable by group or others."""


def _check_length(length_bytes: int, where: str) -> None:
    if not AUTHKEY_MIN_BYTES <= length_bytes <= AUTHKEY_MAX_BYTES:
        raise AuthkeyError(f"{where} is {length_bytes} bytes; an authkey must be "
                           f"{AUTHKEY_MIN_BYTES}..{AUTHKEY_MAX_BYTES} bytes (create one "
                           "with coroproc-keygen or corosync-keygen)")


def load_authkey(path: str, warn: Callable[[str], None] | None = None) -> bytes:
    """The key file's bytes. warn(message) is called if group/others may read it
    (default: warnings.warn with AuthkeyPermissionWarning)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise AuthkeyError(f"authkey {path} does not exist (create it with coroproc-keygen "
                           "or corosync-keygen, then copy it to every node)") from None
    except OSError as exc:
        raise AuthkeyError(f"authkey {path} cannot be opened: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise AuthkeyError(f"authkey {path} is not a regular file")
        # Read one byte past the limit so an oversized file is reported with its size.
        chunks, want = [], AUTHKEY_MAX_BYTES + 1
        while want > 0:
            chunk = os.read(fd, want)
            if not chunk:
                break
            chunks.append(chunk)
            want -= len(chunk)
        key = b"".join(chunks)
    except OSError as exc:
        raise AuthkeyError(f"authkey {path} cannot be read: {exc.strerror}") from None
    finally:
        os.close(fd)
    # An oversized file is reported with its real size, not the bytes read.
    _check_length(len(key) if len(key) <= AUTHKEY_MAX_BYTES else max(st.st_size, len(key)),
                  f"authkey {path}")
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        message = (f"authkey {path} has mode {stat.S_IMODE(st.st_mode):04o}: group or "
                   "others may read the cluster secret; chmod 0400 it")
        if warn is None:
            warnings.warn(message, AuthkeyPermissionWarning, stacklevel=2)
        else:
            warn(message)
    return key


def inline_authkey(text: str) -> bytes:
    """The totem.key config value as a key: its UTF-8 bytes, same length rule as a file.

    surrogateescape keeps undecodable bytes of the config file as they were written.
    """
    key = text.encode("utf-8", "surrogateescape")
    _check_length(len(key), "totem.key")
    return key
