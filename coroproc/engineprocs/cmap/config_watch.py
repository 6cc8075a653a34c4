"""quorum.* and nodelist.* changed by a client at run time, handed to the node's engines.

Corosync's votequorum tracks those prefixes in icmap (votequorum_exec_add_config_notification):
`corosync-cmapctl -s quorum.cancel_wait_for_all u8 1` ends a wait_for_all wait, a
changed `quorum.expected_votes` is read again at once (nodelist.* is read-only to
clients, exec/main.c, but tracked all the same, as Corosync does).
Here the map lives in the CMAP engine's process and votequorum in another, so the CMAP
engine tracks the prefixes itself and, one loop turn after a client's change (so that a
burst of sets goes out once), sends every engine of the node the changed key names with
every key now under those prefixes (EngineContext.config_keys_changed →
Engine.on_config_keys). A corosync.conf reload changes the same keys while
`config.reload_in_progress` is 1; those changes are not sent: every engine is handed the
new file itself (Engine.on_reload), as Corosync's votequorum skips notifications while
a reload is in progress and reads the result once.
"""
from __future__ import annotations

from .store import TRACK_ADD, TRACK_DELETE, TRACK_MODIFY, TRACK_PREFIX, Store

WATCHED_PREFIXES = ("quorum.", "nodelist.")
RELOAD_FLAG_KEY = "config.reload_in_progress"


class ConfigWatch:
    def __init__(self, store: Store, ctx):
        self.store = store
        self.ctx = ctx
        self.changed: set[str] = set()
        self.timer = None
        self.sent = 0
        # on the engine's store for good: a restore builds a new store and a new watch
        for prefix in WATCHED_PREFIXES:
            store.track_add(prefix, TRACK_ADD | TRACK_DELETE | TRACK_MODIFY | TRACK_PREFIX,
                            self._noted)

    def _noted(self, _event, key: str, _new, _old) -> None:
        if self.store.get_value(RELOAD_FLAG_KEY, 0):
            return
        self.changed.add(key)
        if self.timer is None:
            self.timer = self.ctx.timer_add(0, self._send)

    def entries(self) -> dict:
        """Every key under the watched prefixes with its decoded value (a binary one as
        latin-1 text: the message goes out as JSON)."""
        out = {}
        for prefix in WATCHED_PREFIXES:
            for key in self.store.names(prefix):
                value = self.store.get_value(key)
                out[key] = value.decode("latin-1") if isinstance(value, bytes) else value
        return out

    def _send(self) -> None:
        self.timer = None
        changed, self.changed = sorted(self.changed), set()
        if changed:
            self.sent += 1
            self.ctx.config_keys_changed(tuple(changed), self.entries())
