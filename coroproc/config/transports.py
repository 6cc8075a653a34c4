"""Which totem.transport values this coroproc can run — the one place to change it.

knet (Corosync 3's default when transport is missing) needs the secure multi-link
transport, which coroproc does not have yet. When that net process lands, add "knet"
to SUPPORTED_TRANSPORTS and delete the refusal below.
"""
from __future__ import annotations

from coroproc.config.errors import ConfigParseError, Entry

SUPPORTED_TRANSPORTS = ("udpu", "udp")
COROSYNC_DEFAULT_TRANSPORT = "knet"

KNET_REFUSAL = (
    "transport knet (Corosync 3's default) needs the secure-links transport, which this "
    "coroproc does not have yet; set `transport: udpu` (unicast to every nodelist "
    "member) or `transport: udp` (multicast)")


def refuse_unsupported(transport: str, entry: Entry | None, file: str) -> None:
    """Raise ConfigParseError unless coroproc can run ``transport``."""
    if transport in SUPPORTED_TRANSPORTS:
        return
    line = entry.line if entry is not None else None
    message = KNET_REFUSAL if transport == "knet" else (
        f"transport {transport!r} is not supported (allowed: "
        f"{', '.join(SUPPORTED_TRANSPORTS)})")
    raise ConfigParseError(file, line, "totem.transport", message)
