"""The stats map as a live Store: refreshed from the node's counters when someone looks.

Owns when the snapshot is refreshed, how a new snapshot replaces the old one (a diff, so
trackers see ADD / DELETE / MODIFY of single keys as Corosync's stats_updater reports
them), and the stats-specific rules of exec/stats.c: every key is read-only except the
write-only stats.clear.* family; prefix tracks must ask for both ADD and DELETE and never
see MODIFY; an event carries the current value as both new and old value.

When: one counters request per STATS_REFRESH_MS while something tracks what a refresh
changes (watched(): a stats-map track, or a main-map track over the supervisor's keys),
and on demand when a client reads that (must_wait()): a read that finds the snapshot
older than a refresh period waits for the refresh (its request is offered again by the
IPC server), at most STATS_WAIT_MS, so it reads what a tracker would have seen. Building
and diffing a snapshot of every process's counters was most of what an idle cmap engine
(and the supervisor answering it) spent, with nobody reading; Corosync, likewise,
computes its stats keys when they are read and runs its stats updater for trackers.
"""
from __future__ import annotations

from . import keys as K
from .stats import CLEAR_PREFIX, StatsView
from .store import TRACK_ADD, TRACK_DELETE, TRACK_MODIFY, TRACK_PREFIX, Store

STATS_REFRESH_MS = 1000
# a snapshot this old makes a read wait for a refresh (the periodic one for trackers
# arrives a little after each period: that must not make reads wait)
STATS_STALE_MS = STATS_REFRESH_MS * 3 // 2
STATS_WAIT_MS = 250           # the longest a request waits for a refresh; then it is served
STATS_ASK_AGAIN_MS = 5000     # a counters request unanswered this long is asked again
# the supervisor's own keys (runtime.coroproc.children.*) come with each refresh
SUPERVISOR_KEYS_PREFIX = "runtime.coroproc."


class StatsMap:
    def __init__(self, ctx, on_supervisor_keys=None, watched=lambda: False):
        self.ctx = ctx
        self.watched = watched         # refresh periodically while this is true
        # the supervisor's own keys (runtime.coroproc.children.*) go to the main map
        self.on_supervisor_keys = on_supervisor_keys
        self.view = StatsView()
        self.store = Store()
        self.pending = False           # a counters request is outstanding
        self.requested_at_s = 0.0      # when it was made
        self.refreshed_at_s = None     # when the last answer was applied (None: never)
        self.refreshes = 0
        self.deferrals = 0             # times a client request was put off for a refresh
        self._timer = None
        self.apply(self.view.snapshot())

    # ---- refresh -------------------------------------------------------------------------
    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def watch_changed(self) -> None:
        """A track was added: refresh periodically if it watches what a refresh changes
        (the timer stops itself once watched() is false). Its first refresh is a period
        away: adding the track waited for a fresh snapshot already (must_wait)."""
        if self._timer is None and self.watched():
            self._timer = self.ctx.timer_add(STATS_REFRESH_MS, self._tick)

    def _tick(self) -> None:
        if not self.watched():
            self._timer = None
            return
        self.request()
        self._timer = self.ctx.timer_add(STATS_REFRESH_MS, self._tick)

    def request(self) -> None:
        now_s = self.ctx.monotonic_s()
        if self.pending and now_s - self.requested_at_s < STATS_ASK_AGAIN_MS / 1000:
            return
        self.pending = True
        self.requested_at_s = now_s
        self.ctx.request_node_counters(self._on_counters)

    def must_wait(self) -> bool:
        """True while a client's request should wait (the host offers it again) for a
        refresh: the snapshot is stale and the refresh asked for is not STATS_WAIT_MS old."""
        now_s = self.ctx.monotonic_s()
        if self.refreshed_at_s is not None and \
                now_s - self.refreshed_at_s < STATS_STALE_MS / 1000:
            return False
        self.request()
        if now_s - self.requested_at_s >= STATS_WAIT_MS / 1000:
            return False
        self.deferrals += 1
        return True

    def _on_counters(self, counters: dict) -> None:
        self.pending = False
        self.refreshed_at_s = self.ctx.monotonic_s()
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
