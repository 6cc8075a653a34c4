"""SAM's CMAP policy: the supervisor publishes its application under resources.process.<pid>.

Keys (as libsam; <pid> is the supervisor's, stable across restarts of the application):
  recovery      "quit" | "restart"     the policy, written at register
  poll_period   u64 ms                 the health-check interval, written at register
  state         "stopped" (registered) | "running" (started) | "waiting for quorum" |
                "failed" (the supervisor gave up after a failure)
  last_updated  u64 ns since the epoch of the last message from the application
The WD engine watches these keys (docs/watchdog.md). On a clean end the supervisor
deletes them; after a failure it leaves them with state "failed".
"""
from __future__ import annotations

import os
import time

from coroproc.client.cmap import Cmap
from coroproc.ipc.cserror import CsError

STATE_FAILED = "failed"
STATE_REGISTERED = "stopped"
STATE_STARTED = "running"
STATE_QUORUM_WAIT = "waiting for quorum"


class CmapPublisher:
    def __init__(self, recovery: str, poll_period_ms: int, suffix: str = ""):
        assert recovery in ("quit", "restart"), recovery
        self.recovery = recovery
        self.poll_period_ms = poll_period_ms
        self.path = f"resources.process.{os.getpid()}."
        self._cmap = Cmap(suffix=suffix)
        try:
            self._cmap.set_string(self.path + "recovery", recovery)
            self._cmap.set_uint64(self.path + "poll_period", poll_period_ms)
        except CsError:
            self.destroy()
            self._cmap.close()
            raise

    def state(self, state: str) -> None:
        self._cmap.set_string(self.path + "state", state)

    def last_hc(self) -> None:
        self._cmap.set_uint64(self.path + "last_updated", time.time_ns())

    def destroy(self) -> None:
        """Delete every key of this process (the clean end)."""
        for entry in list(self._cmap.iter(self.path)):
            try:
                self._cmap.delete(entry.key)
            except CsError:
                pass

    def close(self) -> None:
        self._cmap.close()

    def detach_in_child(self) -> None:
        """In a forked application: drop the inherited connection without telling the
        daemon (closing it properly would end the supervisor's connection too)."""
        detach_inherited(self._cmap)


def detach_inherited(handle) -> None:
    """Close a forked copy of a ServiceHandle's descriptors without the disconnect
    protocol: no shutdown(), no removal of the connection's files."""
    ipc = getattr(handle, "_ipc", None)
    ipc = getattr(ipc, "_ipc", ipc)
    for attr in ("_event", "_request", "_setup"):
        sock = getattr(ipc, attr, None)
        if sock is not None:
            sock.close()          # close() alone is per process; shutdown() would not be
            setattr(ipc, attr, None)
    control = getattr(ipc, "_control", None)
    if control is not None:
        control.close()
        ipc._control = None
    handle._finalized = True
