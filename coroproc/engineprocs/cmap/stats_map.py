"""The stats map as a live Store: refreshed from the node's counters, at most once a second.

Owns when the snapshot is refreshed (one counters request per STATS_REFRESH_MS, from a
repeating timer started with the engine; clients are always served the last snapshot), how a new snapshot replaces the old one (a diff,
so trackers see ADD / DELETE / MODIFY of single keys as Corosync's stats_updater reports
them), and the stats-specific rules of exec/stats.c: every key is read-only except the
write-only stats.clear.* family; prefix tracks must ask for both ADD and DELETE and never
see MODIFY; an event carries the current value as both new and old value.
"""
from __future__ import annotations

from . import keys as K
from .stats import CLEAR_PREFIX, StatsView
from .store import TRACK_ADD, TRACK_DELETE, TRACK_MODIFY, TRACK_PREFIX, Store

STATS_REFRESH_MS = 1000


class StatsMap:
    def __init__(self, ctx, on_supervisor_keys=None):
        self.ctx = ctx
        # the supervisor's own keys (runtime.coroproc.children.*) go to the main map
        self.on_supervisor_keys = on_supervisor_keys
        self.view = StatsView()
        self.store = Store()
        self.pending = False           # a counters request is outstanding
        self.refreshes = 0
        self._timer = None
        self.apply(self.view.snapshot())

    # ---- refresh -------------------------------------------------------------------------
    def start(self) -> None:
        self._tick()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self.request()
        self._timer = self.ctx.timer_add(STATS_REFRESH_MS, self._tick)

    def request(self) -> None:
        if self.pending:
            return
        self.pending = True
        self.ctx.request_node_counters(self._on_counters)

    def _on_counters(self, counters: dict) -> None:
        self.pending = False
        self.view.update(counters)
        self.apply(self.view.snapshot())
        self.refreshes += 1
        keys = ((counters.get("supervisor") or {}).get("cmap") or {})
        if keys and self.on_supervisor_keys is not None:
            self.on_supervisor_keys(keys)

    def apply(self, snapshot: dict) -> None:
        for key in [k for k in self.store.names() if k not in snapshot]:
            self.store.delete(key)
        for key, (value_type, value) in snapshot.items():
            self.store.set_value(key, value_type, value)

    # ---- the map operations with stats.c's rules ----------------------------------------
    @staticmethod
    def is_ro(key: str) -> bool:
        return not key.startswith(CLEAR_PREFIX)

    def set(self, key: str) -> int:
        if self.is_ro(key):
            return K.CS_ERR_ACCESS
        if not self.view.clear(key):
            return K.CS_ERR_NOT_SUPPORTED
        self.apply(self.view.snapshot())
        return K.CS_OK

    def delete_or_adjust(self, key: str) -> int:
        return K.CS_ERR_ACCESS if self.is_ro(key) else K.CS_ERR_NOT_SUPPORTED

    def track_add(self, key, flags: int, notify):
        """A store track with stats semantics, or a cs_error int when refused."""
        if flags & TRACK_PREFIX and not (flags & TRACK_ADD and flags & TRACK_DELETE):
            return K.CS_ERR_NOT_SUPPORTED
        prefix = bool(flags & TRACK_PREFIX)

        def stats_notify(event, name, new, old):
            if event == TRACK_MODIFY and prefix:
                return
            value = new if new is not None else old
            notify(event, name, value, value)

        return self.store.track_add(key, flags, stats_notify)
