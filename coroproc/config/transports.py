"""Which totem.transport values this coroproc can run — the one place to change it.

knet (Corosync 3's default when transport is missing) runs on coroproc's own secure
multi-link layer (docs/secure-links.md): same keys and operator view, not kronosnet's wire
format, so mixed rings with Corosync need udpu or udp.
"""
from __future__ import annotations

from coroproc.config.errors import ConfigParseError, Entry

SUPPORTED_TRANSPORTS = ("knet", "udpu", "udp")
COROSYNC_DEFAULT_TRANSPORT = "knet"

def refuse_unsupported(transport: str, entry: Entry | None, file: str) -> None:
    """Raise ConfigParseError unless coroproc can run ``transport``."""
    if transport in SUPPORTED_TRANSPORTS:
        return
    line = entry.line if entry is not None else None
    message = (f"transport {transport!r} is not supported (allowed: "
               f"{', '.join(SUPPORTED_TRANSPORTS)})")
    raise ConfigParseError(file, line, "totem.transport", message)
