"""sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET (abstract if it starts with @),
and sd_watchdog_enabled's reading of WATCHDOG_USEC / WATCHDOG_PID.

Corosync sends READY=1 once, after the first completed service synchronization; coroproc
does the same (and STATUS=/STOPPING=1, which systemd shows in `systemctl status`, and
WATCHDOG=1 through watchdog.py when the unit sets WatchdogSec=).
"""
from __future__ import annotations

import os
import socket

# sd_notify(3): a state is newline-separated VAR=VALUE lines; systemd reads one datagram
# of at most this many bytes (NOTIFY_BUFFER_MAX in systemd 252)
NOTIFY_MAX_BYTES = 4096


def sd_notify(state: str, env=os.environ) -> bool:
    """Send `state` (e.g. "READY=1\\nSTATUS=..."); False when not run under systemd or
    when the socket refused the datagram (systemd gone: nothing to do about it)."""
    addr = env.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    data = state.encode()
    if len(data) > NOTIFY_MAX_BYTES:
        raise ValueError(f"sd_notify state of {len(data)} bytes is longer than systemd "
                         f"reads ({NOTIFY_MAX_BYTES} bytes); shorten the STATUS= text")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        try:
            s.sendto(data, addr)
        except OSError:
            return False
    return True


def watchdog_interval_us(env=os.environ, pid: int | None = None) -> int | None:
    """The watchdog interval systemd expects pings within (WatchdogSec=), or None.

    As sd_watchdog_enabled(3): WATCHDOG_USEC must be a positive integer, and when
    WATCHDOG_PID is set it must be this process (a child that inherited the
    environment is not the one systemd watches)."""
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    try:
        interval_us = int(usec)
    except ValueError:
        return None
    if interval_us <= 0:
        return None
    watched = env.get("WATCHDOG_PID")
    if watched:
        try:
            if int(watched) != (os.getpid() if pid is None else pid):
                return None
        except ValueError:
            return None
    return interval_us
