"""Error, warning and entry types shared by the corosync.conf parser, schema and loader.

One error type for every way a configuration can be wrong (syntax, type, range, a
cross-key rule, the local node): callers catch ConfigParseError and print it. Its text
reads "FILE:LINE: KEY: MESSAGE" so an operator can jump straight to the line.
"""
from __future__ import annotations

from dataclasses import dataclass


def _where(file: str, line: int | None, key: str | None) -> str:
    text = file
    if line:
        text += f":{line}"
    text += ": "
    if key:
        text += f"{key}: "
    return text


class ConfigParseError(ValueError):
    """A configuration Corosync (or coroproc) would refuse; names file, line and key."""

    def __init__(self, file: str, line: int | None, key: str | None, message: str,
                 exit_status: int = 8):
        # 8 is Corosync's COROSYNC_DONE_MAINCONFIGREAD; 7 (LOGCONFIGREAD) for values
        # that Corosync only rejects while setting up logging.
        self.exit_status = exit_status
        self.file = file
        self.line = line
        self.key = key
        self.message = message
        super().__init__(_where(file, line, key) + message)


@dataclass(frozen=True)
class ConfigWarning:
    """Something accepted but probably not meant (unknown key, deprecated option)."""

    file: str
    line: int | None
    key: str | None
    message: str

    def __str__(self) -> str:
        return _where(self.file, self.line, self.key) + self.message


@dataclass(frozen=True)
class Entry:
    """One cmap-style key's value as written in the file, and where it was written.

    ``cmap_type`` is the icmap type Corosync stores the key with ("string", "u8",
    "u16", "u32", "u64", "i32"); the CMAP engine uses it to answer typed gets.
    """

    value: str
    file: str
    line: int
    cmap_type: str = "string"
