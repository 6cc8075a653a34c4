"""sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET (abstract if it starts with @).

Corosync sends READY=1 once, after the first completed service synchronization; coroproc
does the same (and STATUS=/STOPPING=1, which systemd shows in `systemctl status`).
"""
from __future__ import annotations

import os
import socket


def sd_notify(state: str, env=os.environ) -> bool:
    """Send `state` (e.g. "READY=1\\nSTATUS=..."); False when not run under systemd."""
    addr = env.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        try:
            s.sendto(state.encode(), addr)
        except OSError:
            return False
    return True
