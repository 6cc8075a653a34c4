"""systemd's service watchdog and crash-loop reports, for one node's supervisor.

What this file owns: deciding when the supervisor sends WATCHDOG=1 and STATUS= lines, and
noticing children that crash in a loop. It sends through sdnotify.py and logs through the
node's Log; the supervisor drives it with its own clock (`now` = time.monotonic()), so the
logic is testable without waiting.

* SystemdWatchdog: the unit's WatchdogSec= arrives as WATCHDOG_USEC. tick(healthy, now)
  sends WATCHDOG=1 every half interval (sd_watchdog_enabled(3)'s advice) — but only while
  the node is healthy. A hung supervisor loop sends nothing either; both ways systemd
  kills the node after WatchdogSec (SIGABRT) and Restart= starts a fresh one.
* CrashLoops: a child that exited crashes_max times within window_s is in a crash loop.
  children.py already backs its restarts off (0.2 s doubling to 10 s); this class makes the
  loop visible: an error line when it starts, a notice when it ends, a STATUS= text, and
  cmap keys (runtime.coroproc.children.<role>.*), and it makes the node unhealthy so the
  watchdog lets systemd restart the whole node.
"""
from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field

from .sdnotify import sd_notify, watchdog_interval_us

CRASHES_MAX = 5          # exits within the window that make a crash loop
CRASH_WINDOW_S = 60.0    # with the 10 s backoff cap a crashing child exits ≥ 6 times/min
ROLES_MAX = 256          # children of one node: links + ring + engines, far fewer


@dataclass
class _RoleExits:
    recent_s: deque = field(default_factory=lambda: deque(maxlen=CRASHES_MAX))
    exits: int = 0
    last_exit: str = ""
    looping: bool = False


class CrashLoops:
    """Which children crash in a loop; logs when a loop starts and ends."""

    def __init__(self, log, crashes_max: int = CRASHES_MAX,
                 window_s: float = CRASH_WINDOW_S):
        if crashes_max < 2 or window_s <= 0:
            raise ValueError(f"crash loop needs crashes_max >= 2 and window_s > 0 "
                             f"(got {crashes_max}, {window_s})")
        self.log = log
        self.crashes_max = crashes_max
        self.window_s = window_s
        self._roles: dict[str, _RoleExits] = {}

    def record_exit(self, role: str, now: float, how: str) -> None:
        """A child died unexpectedly (`how`: children.describe_status); not for stops the
        supervisor asked for (operator restarts, shutdown)."""
        r = self._roles.get(role)
        if r is None:
            if len(self._roles) >= ROLES_MAX:
                raise ValueError(f"more than {ROLES_MAX} child roles recorded; "
                                 f"{role!r} is one too many")
            r = self._roles[role] = _RoleExits(deque(maxlen=self.crashes_max))
        r.recent_s.append(now)
        r.exits += 1
        r.last_exit = how
        self.update(now)

    def _in_loop(self, r: _RoleExits, now: float) -> bool:
        return len(r.recent_s) == self.crashes_max and now - r.recent_s[0] <= self.window_s

    def update(self, now: float) -> None:
        """Start and end crash loops as time passes (call every supervisor tick)."""
        for role, r in self._roles.items():
            looping = self._in_loop(r, now)
            if looping and not r.looping:
                self.log.error("MAIN", f"coroproc: {role} is in a crash loop: it exited "
                               f"{self.crashes_max} times within {self.window_s:.0f} s "
                               f"(last: {r.last_exit}); restarting it with backoff; the node "
                               "is unhealthy until it stays up")
            elif r.looping and not looping:
                self.log.notice("MAIN", f"coroproc: {role} left its crash loop (no more "
                                f"than {self.crashes_max - 1} exits within "
                                f"{self.window_s:.0f} s)")
            r.looping = looping

    def looping(self) -> list[str]:
        return sorted(role for role, r in self._roles.items() if r.looping)

    def healthy(self) -> bool:
        return not any(r.looping for r in self._roles.values())

    def status_text(self) -> str | None:
        """What STATUS= should say about crash loops; None when there is none."""
        roles = self.looping()
        if not roles:
            return None
        return "crash loop: " + ", ".join(
            f"{role} ({self._roles[role].exits} exits, last: {self._roles[role].last_exit})"
            for role in roles)

    def cmap_keys(self) -> dict[str, tuple[str, object]]:
        """runtime.coroproc.children.<role>.{exits,crash_loop,last_exit}: (icmap type
        name, value), for the CMAP engine to publish."""
        out: dict[str, tuple[str, object]] = {}
        for role, r in sorted(self._roles.items()):
            base = f"runtime.coroproc.children.{role}"
            out[f"{base}.exits"] = ("uint32", r.exits)
            out[f"{base}.crash_loop"] = ("uint8", int(r.looping))
            out[f"{base}.last_exit"] = ("string", r.last_exit)
        return out


class SystemdWatchdog:
    """WATCHDOG=1 at half of WatchdogSec while healthy, and STATUS= when it changes."""

    def __init__(self, log, env=os.environ, pid: int | None = None):
        self.log = log
        self.env = env
        interval_us = watchdog_interval_us(env, pid)
        self.interval_s = interval_us / 1e6 if interval_us else None
        self._next_ping_s = float("-inf")   # the first healthy tick pings
        self._status: str | None = None
        self._withholding = False
        self.pings = 0

    @property
    def enabled(self) -> bool:
        return self.interval_s is not None

    def poll_timeout_s(self, now: float, default_s: float) -> float:
        """How long the supervisor may sleep without missing a ping."""
        if not self.enabled:
            return default_s
        return max(0.0, min(default_s, self._next_ping_s - now))

    def tick(self, healthy: bool, now: float, status: str | None = None) -> str | None:
        """Call every supervisor loop. `status`: the STATUS= text now (sent when it
        changed). Returns the notification sent, or None."""
        lines = []
        if status is not None and status != self._status:
            lines.append("STATUS=" + status.replace("\n", " "))
            self._status = status
        if self.enabled:
            if healthy and now >= self._next_ping_s:
                lines.append("WATCHDOG=1")
                self._next_ping_s = now + self.interval_s / 2
                self.pings += 1
            self._note_health(healthy, status)
        if not lines:
            return None
        state = "\n".join(lines)
        sd_notify(state, self.env)
        return state

    def _note_health(self, healthy: bool, status: str | None) -> None:
        if not healthy and not self._withholding:
            self.log.error("MAIN", f"Withholding systemd watchdog pings: {status or 'node unhealthy'};"
                           f" systemd restarts the node if this lasts {self.interval_s:.1f} s")
        elif healthy and self._withholding:
            self.log.notice("MAIN", "Node healthy again; systemd watchdog pings resume")
        self._withholding = not healthy
