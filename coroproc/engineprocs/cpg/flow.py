"""CPG's early flow control: raise the clients' shared flag before the submit ring fills.

This file owns one decision — when to set every CPG client's libqb flow-control flag to
2 (cpg_mcast_joined returns CS_ERR_TRY_AGAIN in the client; join/leave/… still go through)
and when to clear it. Corosync does the same from its totem queue level: flag 2 at
TOTEM_Q_LEVEL_CRITICAL (≥ 75 % of the new-message queue used), re-checked every 1 ms.

Our submit ring's capacity is not part of the EngineContext API, so it is learnt as the
largest `mcast_space_bytes()` ever seen (the ring is empty at start). Thresholds, with
hysteresis so the flag does not flap on every message:
* on  when free space < `fc_on_free_percent` (default 25) % of that capacity, or less than
  one maximum-size IPC message (a client's next mcast could not fit);
* off when free space ≥ `fc_off_free_percent` (default 50) % again, re-checked every
  `fc_recheck_ms` (default 5) ms while on.
While a sync runs the host owns the flag (it raises it for every flow-controlled service),
so this controller never clears it then; it re-checks after the sync instead.
"""
from __future__ import annotations

FC_LEVEL_MCAST = 2        # libqb fc_enable_max=2: only cpg_mcast_joined refuses to send


class FlowControl:
    def __init__(self, ctx, max_msg_bytes: int, options: dict):
        self.ctx = ctx
        self.max_msg_bytes = max_msg_bytes
        self.on_free_percent = float(options.get("fc_on_free_percent", 25))
        self.off_free_percent = float(options.get("fc_off_free_percent", 50))
        self.recheck_ms = float(options.get("fc_recheck_ms", 5))
        if not 0 < self.on_free_percent < self.off_free_percent <= 100:
            raise ValueError(
                f"cpg options: fc_on_free_percent={self.on_free_percent} and "
                f"fc_off_free_percent={self.off_free_percent}: need 0 < on < off <= 100")
        if self.recheck_ms <= 0:
            raise ValueError(f"cpg options: fc_recheck_ms={self.recheck_ms}: must be > 0")
        self.capacity_bytes = 0
        self.active = False
        self.activations = 0
        self._timer = None

    def level(self) -> int:
        return FC_LEVEL_MCAST if self.active else 0

    def check(self) -> None:
        """After each send: raise the flag if the ring is getting full."""
        space = self.ctx.mcast_space_bytes()
        self.capacity_bytes = max(self.capacity_bytes, space)
        if self.active:
            return
        low_bytes = min(self.capacity_bytes * self.on_free_percent / 100.0,
                        self.capacity_bytes)
        if space < low_bytes or space < min(self.max_msg_bytes, self.capacity_bytes // 2):
            self.active = True
            self.activations += 1
            self._apply(FC_LEVEL_MCAST)
            self._arm()

    def _arm(self) -> None:
        self._timer = self.ctx.timer_add(self.recheck_ms, self._recheck)

    def _recheck(self) -> None:
        self._timer = None
        if not self.active:
            return
        space = self.ctx.mcast_space_bytes()
        self.capacity_bytes = max(self.capacity_bytes, space)
        if (not self.ctx.sync_in_progress
                and space >= self.capacity_bytes * self.off_free_percent / 100.0):
            self.active = False
            self._apply(0)
            return
        self._arm()

    def _apply(self, level: int) -> None:
        for conn in self.ctx.connections():
            setter = getattr(conn, "set_flow_control", None)
            if setter is not None and not getattr(conn, "closed", False):
                setter(level)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
