"""The parts of an EngineContext that every host shares: timers, logging, membership view.

Two hosts run engines: the engine process (host.py, real rings and sockets) and the
deterministic multi-node harness (simbus.py, a virtual clock). Each subclass supplies
`mcast`, `mcast_space_bytes`, `connections`, `disconnect` and `request_node_counters`.
"""
from __future__ import annotations

import heapq
from typing import Callable

from .api import EngineContext, Timer


class BaseContext(EngineContext):
    def __init__(self, *, nodeid: int, cluster_name: str, config, options: dict,
                 clock_s: Callable[[], float], log_fn: Callable[[str, str], None],
                 node_engines: dict | None = None, service_suffix: str = ""):
        self.nodeid = nodeid
        self.cluster_name = cluster_name
        self.config = config
        self.options = dict(options or {})
        self.node_engines = dict(node_engines or {})
        self.service_suffix = service_suffix
        self.replaying = False
        self.siblings: dict = {}       # service id -> Engine in this process
        self.ring_id = None
        self.members = ()
        self.sync_in_progress = False
        self.first_sync_done = False
        self._clock_s = clock_s
        self._log_fn = log_fn
        self._timers: list[Timer] = []

    def sibling(self, service_id: int):
        return self.siblings.get(service_id)

    # ---- timers -------------------------------------------------------------------------
    def monotonic_s(self) -> float:
        return self._clock_s()

    def timer_add(self, delay_ms: float, callback: Callable[[], None]) -> Timer:
        if delay_ms < 0:
            raise ValueError(f"timer delay_ms={delay_ms}: must be >= 0")
        timer = Timer(self._clock_s() + delay_ms / 1000.0, callback)
        heapq.heappush(self._timers, timer)
        return timer

    def next_timer_s(self):
        """Seconds until the earliest live timer (None without one)."""
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)
        if not self._timers:
            return None
        return max(self._timers[0].due_s - self._clock_s(), 0.0)

    def run_timers(self) -> int:
        """Fire every due timer (a callback may add more); returns how many fired."""
        fired = 0
        now = self._clock_s()
        while self._timers and self._timers[0].due_s <= now:
            timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            timer.cancelled = True
            timer.callback()
            fired += 1
        return fired

    # ---- logging ------------------------------------------------------------------------
    def log(self, priority: str, message: str) -> None:
        self._log_fn(priority, message)
