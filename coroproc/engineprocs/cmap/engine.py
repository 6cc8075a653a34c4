"""CmapEngine: Corosync's CMAP service (id 0, IPC "cmap") — exec/cmap.c over our Store.

Owns the lib request handlers (every MESSAGE_REQ_CMAP_* id, Corosync's replies and
error codes), per-connection map choice / iterators / tracks and their cleanup, the
initial map content, runtime.members.* upkeep from configurations, and the sync
exchange of totem.config_version (exec MCAST, reason SYNC) with Corosync's rule: a node
in its first multi-node sync whose config_version is non-zero and differs from the
highest one another member sent stops the whole node (NodeFatal, the host exits and the
supervisor shuts the node down). CMAP is node-local otherwise and not flow-controlled.
"""
from __future__ import annotations

import struct

from coroproc.engineprocs.api import DEFER, Engine, NodeFatal
from coroproc.ipc import cmap_structs as W

from . import config_keys, exec_msgs, persist, runtime
from . import reload as reload_mod
from . import keys as K
from .conn_state import (
    ITERATORS_MAX,
    MAP_ICMAP,
    MAP_STATS,
    TRACKS_MAX,
    ConnState,
    Iterator,
    TrackEntry,
    salt_for,
)
from .config_watch import ConfigWatch
from .stats_map import SUPERVISOR_KEYS_PREFIX, StatsMap
from .store import TRACK_ADD, TRACK_DELETE, TRACK_FLAGS_ALL, TRACK_MODIFY, Store

CONFIG_VERSION_KEY = "totem.config_version"
# Corosync answers a failed GET / ITER_NEXT with the whole reply struct zeroed (type 0,
# which the struct packers rightly refuse for a real value).
GET_ERROR_BODY = bytes(16)
ITER_NEXT_ERROR_BODY = bytes(W.NAME_BYTES + 16)


BLACKBOX_REQUESTS = {"runtime.blackbox.dump_flight_data": "dump_flight_data",
                     "runtime.blackbox.dump_state": "dump_state"}
BLACKBOX_WAIT_S = 3.0     # above the supervisor's wait for its children (flight_data.py)


class CmapEngine(Engine):
    name = "cmap"
    service_id = 0
    ipc_service = "cmap"
    log_subsys = "CMAP"
    has_sync = True
    flow_controlled_requests = frozenset()

    def __init__(self, ctx):
        super().__init__(ctx)
        self.store = Store()
        self.conns: dict[int, object] = {}       # id(conn) → conn
        self.stats = StatsMap(ctx, on_supervisor_keys=self._supervisor_keys,
                              watched=self._stats_watched)
        self.connections_total = 0
        self.events_dropped = 0
        self.first_sync = True
        self.trans_entries = 0
        self.my_config_version = 0
        self.highest_config_version = 0
        self.journal = persist.Journal(self._journal_path())
        self.config_watch: ConfigWatch | None = None
        self.blackbox_waits: dict[str, float] = {}   # key → until when its set is held

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self.load_initial()
        # writes of a predecessor that died before its first snapshot (persist.py)
        self.journal.replay(self.store, 0)
        self._add_tracks()

    def _add_tracks(self) -> None:
        """The engine's own tracks on its (new) store: config_version, and the keys other
        engines read at run time (config_watch.py)."""
        self._track_config_version()
        self.config_watch = ConfigWatch(self.store, self.ctx)
        self._track_blackbox_keys()

    def _track_blackbox_keys(self) -> None:
        """exec/main.c corosync_fplay_control_init: a client's change of either key
        (corosync-blackbox sets both to the time) asks the supervisor for the dump."""
        for key in BLACKBOX_REQUESTS:
            self.store.track_add(key, TRACK_ADD | TRACK_DELETE | TRACK_MODIFY,
                                 self._blackbox_key_changed)

    def _blackbox_key_changed(self, _event, key: str, _new, _old) -> None:
        # Corosync writes the file before cmapctl's set returns, and corosync-blackbox
        # reads it right after: the set that asked is answered once the supervisor says
        # the dump is written (lib_set defers it until then, at most BLACKBOX_WAIT_S)
        self.blackbox_waits[key] = self.ctx.monotonic_s() + BLACKBOX_WAIT_S
        self.ctx.supervisor_request(BLACKBOX_REQUESTS[key], {},
                                    lambda _reply, k=key: self.blackbox_waits.pop(k, None))

    def _track_config_version(self) -> None:
        # exec/cmap.c cmap_exec_init_fn: a changed config_version is announced at once
        self.store.track_add(CONFIG_VERSION_KEY, TRACK_ADD | TRACK_DELETE | TRACK_MODIFY,
                             self._config_version_changed)

    def load_initial(self) -> None:
        config = self.ctx.config
        entries = getattr(config, "keys", None) or {}
        items = config_keys.config_items(entries)
        if CONFIG_VERSION_KEY not in entries:
            items.append(config_keys.config_version_item(entries))
        if config is not None and getattr(config, "totem", None) is not None:
            items += runtime.runtime_config_items(config)
        items += runtime.service_items(self._services())
        items += runtime.votequorum_items(self._services(), self.ctx.nodeid)
        items += runtime.fixed_runtime_items()
        for key, value_type, value in items:
            err = self.store.set_value(key, value_type, value)
            if err != K.CS_OK:
                self.ctx.warning(f"cannot store {key!r} ({K.TYPE_NAMES[value_type]}) in "
                                 f"cmap: cs_error {err}")

    _SUPERVISOR_TYPES = {"uint32": K.UINT32, "uint8": K.UINT8, "string": K.STRING}

    def _supervisor_keys(self, keys: dict) -> None:
        """runtime.coroproc.children.<role>.{exits,crash_loop,last_exit}: crash loops as
        the supervisor counts them (coroproc/supervisor/watchdog.py)."""
        for key, (type_name, value) in keys.items():
            value_type = self._SUPERVISOR_TYPES.get(type_name)
            if value_type is not None and key.startswith(SUPERVISOR_KEYS_PREFIX):
                current = self.store.get(key)
                if current is None or current != (value_type, K.encode(value_type, value)):
                    self.store.set_value(key, value_type, value)

    def on_reload(self, config) -> None:
        """corosync.conf re-read (`cfgtool -R`): §4.9's key changes, in cmap/reload.py."""
        old = getattr(self.ctx.config, "keys", None) or {}
        done = reload_mod.apply_reload(self.store, old, getattr(config, "keys", None) or {})
        if getattr(config, "totem", None) is not None:
            # the ring process applies the new timers: show the effective values
            for key, value_type, value in runtime.runtime_config_items(config):
                if self.store.get(key) != (value_type, K.encode(value_type, value)):
                    self.store.set_value(key, value_type, value)
        self.ctx.config = config
        self.ctx.info(f"configuration reloaded: {done['set']} keys set, {done['deleted']} "
                      f"deleted, {done['kept_readonly']} that cannot change at run time kept")

    def authorize(self, creds):
        """Corosync's rule, answered from this engine's own map (no IPC to itself)."""
        for key in (f"uidgid.uid.{creds.uid}", f"uidgid.config.uid.{creds.uid}",
                    f"uidgid.gid.{creds.gid}", f"uidgid.config.gid.{creds.gid}"):
            got = self.store.get(key)
            if got is not None and got[0] == K.UINT8 and bytes(got[1])[:1] == b"\x01":
                return True
        return False

    def _services(self) -> dict[int, str]:
        """service id → engine name of the engines this node runs (from the node's plan)."""
        return dict(getattr(self.ctx, "node_engines", None) or {self.service_id: self.name})

    def close(self) -> None:
        self.stats.stop()
        self.journal.close()

    # ---- restart without losing state (persist.py) -------------------------------------------
    def _journal_path(self) -> str | None:
        directory = self.ctx.options.get("journal_dir")
        if directory is None and getattr(self.ctx.config, "coroproc", None) is not None:
            from coroproc.engineprocs.snapshots import snapshot_dir
            from coroproc.supervisor.plan import run_dir_of
            directory = snapshot_dir(run_dir_of(self.ctx.config))
        return persist.journal_path(directory, self.ctx.nodeid) if directory else None

    def snapshot(self) -> bytes:
        state = {"first_sync": self.first_sync, "trans_entries": self.trans_entries,
                 "my_config_version": self.my_config_version,
                 "highest_config_version": self.highest_config_version,
                 "connections_total": self.connections_total,
                 "events_dropped": self.events_dropped}
        data = persist.dump(self.store, state, self.journal.seq)
        self.journal.snapshot_taken(self.journal.seq)
        return data

    def restore(self, data: bytes) -> None:
        # a fresh store has no tracks: loading notifies nobody and multicasts nothing
        self.store = Store()
        state, seq = persist.load(data, self.store)
        self.journal.restored(seq)
        self.journal.replay(self.store, seq)
        self._add_tracks()
        for name, value in state.items():
            setattr(self, name, value)

    def _journaled(self, handler, key_of):
        """A client write on the icmap map: journal the key's new state before answering."""
        def run(conn, body):
            reply = handler(conn, body)
            if reply is not DEFER and reply[1] == K.CS_OK \
                    and conn.context.map_kind != MAP_STATS:
                key = key_of(body)
                self.journal.record(key, self.store.get(key))
            return reply
        return run

    def _fresh(self, handler, key_of):
        """A get, iteration or track of what a stats refresh changes (the stats map, the
        supervisor's keys in the main map) waits for a refresh when the snapshot is stale
        (stats_map.py). An iteration's later steps read what its start waited for."""
        def serve(conn, body):
            if self._reads_refreshed(conn.context.map_kind, key_of(body)) \
                    and self.stats.must_wait():
                return DEFER
            return handler(conn, body)
        return serve

    @staticmethod
    def _reads_refreshed(map_kind: int, key: str) -> bool:
        """Whether a key or prefix in this map may name a key a stats refresh changes."""
        return map_kind == MAP_STATS or key.startswith(SUPERVISOR_KEYS_PREFIX) \
            or SUPERVISOR_KEYS_PREFIX.startswith(key)

    def _stats_watched(self) -> bool:
        return self.stats.store.track_count > 0 or \
            self.store.watches(SUPERVISOR_KEYS_PREFIX)

    def counters(self) -> dict:
        return {"keys": len(self.store), "stats_keys": len(self.stats.store),
                "connections": len(self.conns), "connections_total": self.connections_total,
                "tracks": self.store.track_count + self.stats.store.track_count,
                "iterators": sum(len(c.context.iterators) for c in self.conns.values()),
                "events_dropped": self.events_dropped, "stats_refreshes": self.stats.refreshes,
                "stats_deferrals": self.stats.deferrals,
                "config_version_highest": self.highest_config_version,
                "config_changes_sent": self.config_watch.sent if self.config_watch else 0}

    # ---- IPC clients ----------------------------------------------------------------------
    def on_connect(self, conn) -> bool:
        self.connections_total += 1
        conn.context = ConnState(salt_for(self.connections_total))
        self.conns[id(conn)] = conn
        return True

    def on_disconnect(self, conn) -> None:
        state: ConnState | None = conn.context
        self.conns.pop(id(conn), None)
        if not isinstance(state, ConnState):
            return
        for entry in state.tracks.values():
            self._map_store(entry.map_kind).track_delete(entry.track)
        state.tracks.clear()
        state.iterators.clear()

    def _map_store(self, map_kind: int) -> Store:
        return self.stats.store if map_kind == MAP_STATS else self.store

    def lib_handlers(self) -> dict:
        return {W.REQ_SET: self._journaled(self.lib_set, lambda b: W.unpack_req_set(b)[0]),
                W.REQ_DELETE: self._journaled(self.lib_delete, W.unpack_req_delete),
                W.REQ_GET: self._fresh(self.lib_get, lambda b: W.unpack_req_get(b)[0]),
                W.REQ_ADJUST_INT: self._journaled(self.lib_adjust_int,
                                                  lambda b: W.unpack_req_adjust_int(b)[0]),
                W.REQ_ITER_INIT: self._fresh(self.lib_iter_init, W.unpack_req_iter_init),
                W.REQ_ITER_NEXT: self.lib_iter_next,
                W.REQ_ITER_FINALIZE: self.lib_iter_finalize,
                W.REQ_TRACK_ADD: self._fresh(self.lib_track_add,
                                             lambda b: W.unpack_req_track_add(b)[0]),
                W.REQ_TRACK_DELETE: self.lib_track_delete,
                W.REQ_SET_CURRENT_MAP: self.lib_set_current_map}

    # ---- lib handlers: values ---------------------------------------------------------------
    def lib_set(self, conn, body):
        key, value_type, value = W.unpack_req_set(body)
        if conn.context.map_kind == MAP_STATS:
            return W.RES_SET, self.stats.set(key), b""
        if K.key_is_ro(key):
            return W.RES_SET, K.CS_ERR_ACCESS, b""
        until_s = self.blackbox_waits.get(key)
        if until_s is not None:            # the dump this key asked for is being written
            if self.ctx.monotonic_s() < until_s:
                return DEFER
            del self.blackbox_waits[key]   # no word in time: answer anyway
        error = self.store.set(key, value_type, value)   # the same value again: no-op
        if key in self.blackbox_waits:     # this set just asked for a dump
            return DEFER
        return W.RES_SET, error, b""

    def lib_delete(self, conn, body):
        key = W.unpack_req_delete(body)
        if conn.context.map_kind == MAP_STATS:
            return W.RES_DELETE, self.stats.delete_or_adjust(key), b""
        if K.key_is_ro(key):
            return W.RES_DELETE, K.CS_ERR_ACCESS, b""
        return W.RES_DELETE, self.store.delete(key), b""

    def lib_adjust_int(self, conn, body):
        key, step = W.unpack_req_adjust_int(body)
        if conn.context.map_kind == MAP_STATS:
            return W.RES_ADJUST_INT, self.stats.delete_or_adjust(key), b""
        if K.key_is_ro(key):
            return W.RES_ADJUST_INT, K.CS_ERR_ACCESS, b""
        return W.RES_ADJUST_INT, self.store.adjust_int(key, step), b""

    def lib_get(self, conn, body):
        key, buffer_len = W.unpack_req_get(body)
        item = self._map_store(conn.context.map_kind).get(key)
        if item is None:
            return W.RES_GET, K.CS_ERR_NOT_EXIST, GET_ERROR_BODY
        value_type, raw = item
        if buffer_len == 0:          # the client asks for type and length only
            return W.RES_GET, K.CS_OK, W.pack_res_get(value_type, len(raw))
        if buffer_len < len(raw):
            return W.RES_GET, K.CS_ERR_INVALID_PARAM, GET_ERROR_BODY
        # Corosync sizes the reply for the client's buffer; the padding is bounded here
        padded_len = min(buffer_len, max(len(raw), K.VALUE_MAX_BYTES))
        return W.RES_GET, K.CS_OK, W.pack_res_get(value_type, len(raw),
                                                  raw + bytes(padded_len - len(raw)))

    # ---- lib handlers: iteration --------------------------------------------------------------
    def lib_iter_init(self, conn, body):
        prefix = W.unpack_req_iter_init(body)
        state: ConnState = conn.context
        if len(state.iterators) >= ITERATORS_MAX:
            return W.RES_ITER_INIT, K.CS_ERR_NO_RESOURCES, W.pack_res_iter_init(0)
        handle = state.new_handle()
        state.iterators[handle] = Iterator(prefix)
        return W.RES_ITER_INIT, K.CS_OK, W.pack_res_iter_init(handle)

    def lib_iter_next(self, conn, body):
        handle = W.unpack_req_iter_next(body)
        it = conn.context.iterators.get(handle)
        if it is None:
            return W.RES_ITER_NEXT, K.CS_ERR_BAD_HANDLE, ITER_NEXT_ERROR_BODY
        found = None if it.done else \
            self._map_store(conn.context.map_kind).iter_next(it.prefix, it.last_key)
        if found is None:
            it.done = True
            return W.RES_ITER_NEXT, K.CS_ERR_NO_SECTIONS, ITER_NEXT_ERROR_BODY
        key, value_type, value_len = found
        it.last_key = key
        return W.RES_ITER_NEXT, K.CS_OK, W.pack_res_iter_next(key, value_len, value_type)

    def lib_iter_finalize(self, conn, body):
        handle = W.unpack_req_iter_finalize(body)
        if conn.context.iterators.pop(handle, None) is None:
            return W.RES_ITER_FINALIZE, K.CS_ERR_BAD_HANDLE, b""
        return W.RES_ITER_FINALIZE, K.CS_OK, b""

    # ---- lib handlers: tracking and map choice ----------------------------------------------
    def lib_track_add(self, conn, body):
        key, track_type, inst_handle = W.unpack_req_track_add(body)
        state: ConnState = conn.context
        if len(state.tracks) >= TRACKS_MAX:
            return W.RES_TRACK_ADD, K.CS_ERR_NO_RESOURCES, W.pack_res_track_add(0)
        if track_type & ~TRACK_FLAGS_ALL:
            return W.RES_TRACK_ADD, K.CS_ERR_INVALID_PARAM, W.pack_res_track_add(0)
        key = key or None            # an empty name tracks with no key (prefix: every key)
        notify = self._notifier(conn, inst_handle)
        if state.map_kind == MAP_STATS:
            track = self.stats.track_add(key, track_type, notify)
            if isinstance(track, int):
                return W.RES_TRACK_ADD, track, W.pack_res_track_add(0)
        else:
            track = self.store.track_add(key, track_type, notify)
        handle = state.new_handle()
        state.tracks[handle] = TrackEntry(track, inst_handle, state.map_kind)
        self.stats.watch_changed()
        return W.RES_TRACK_ADD, K.CS_OK, W.pack_res_track_add(handle)

    def lib_track_delete(self, conn, body):
        handle = W.unpack_req_track_delete(body)
        entry = conn.context.tracks.pop(handle, None)
        if entry is None:
            return W.RES_TRACK_DELETE, K.CS_ERR_BAD_HANDLE, W.pack_res_track_delete(0)
        self._map_store(entry.map_kind).track_delete(entry.track)
        return W.RES_TRACK_DELETE, K.CS_OK, W.pack_res_track_delete(entry.inst_handle)

    def lib_set_current_map(self, conn, body):
        map_kind = W.unpack_req_set_current_map(body)
        state: ConnState = conn.context
        if state.handles_open():     # Corosync: no switching with iterators or tracks open
            return W.RES_SET_CURRENT_MAP, K.CS_ERR_BUSY, b""
        if map_kind not in (MAP_ICMAP, MAP_STATS):
            return W.RES_SET_CURRENT_MAP, K.CS_ERR_NOT_EXIST, b""
        state.map_kind = map_kind
        return W.RES_SET_CURRENT_MAP, K.CS_OK, b""

    def _notifier(self, conn, inst_handle: int):
        def notify(event, key, new, old):
            new_type, new_raw = new if new is not None else (0, b"")
            old_type, old_raw = old if old is not None else (0, b"")
            body = W.pack_notify_event(inst_handle, key, event, new_type, new_raw,
                                       old_type, old_raw)
            if not conn.send_event(W.RES_NOTIFY_CALLBACK, body):
                self.events_dropped += 1
        return notify

    # ---- membership: runtime.members.* (main.c confchg_fn) ------------------------------------
    def on_confchg(self, conf) -> None:
        for nodeid in conf.left:
            runtime.member_left(self.store, nodeid)
        for nodeid in conf.joined:
            runtime.member_joined(self.store, self.ctx.config, nodeid)

    # ---- exec and sync: totem.config_version ---------------------------------------------------
    def exec_handlers(self) -> dict:
        return {exec_msgs.FN_MCAST: self.exec_mcast}

    def _mcast_config_version(self, reason: int) -> bool:
        item = exec_msgs.config_version_item(self.store.get(CONFIG_VERSION_KEY))
        sent = self.ctx.mcast(exec_msgs.FN_MCAST, exec_msgs.pack_mcast(reason, [item]))
        if sent:
            self.store.adjust_int("runtime.services.cmap.0.tx", 1, fast=True)
        return sent

    def _config_version_changed(self, _event, _key, _new, _old) -> None:
        self.my_config_version = self._current_config_version()
        if not self._mcast_config_version(exec_msgs.REASON_NEW_CONFIG_VERSION):
            self.ctx.error("Can't inform other nodes about new config version")

    def _current_config_version(self) -> int:
        item = self.store.get(CONFIG_VERSION_KEY)
        if item is None or item[0] != K.UINT64:
            return 0
        return struct.unpack("<Q", item[1])[0]

    def exec_mcast(self, nodeid: int, body) -> None:
        self.store.adjust_int("runtime.services.cmap.0.rx", 1, fast=True)
        try:
            message = exec_msgs.unpack_mcast(body)
        except exec_msgs.ExecMessageError as exc:
            self.ctx.warning(f"ignoring a malformed CMAP mcast from node {nodeid}: {exc}")
            return
        if message.reason not in (exec_msgs.REASON_SYNC, exec_msgs.REASON_NEW_CONFIG_VERSION):
            self.ctx.debug(f"Received mcast with unknown reason {message.reason}")
            return
        version = exec_msgs.config_version_of(message)
        if nodeid != self.ctx.nodeid and version > self.highest_config_version:
            self.highest_config_version = version
        self.store.set_value(f"runtime.members.{nodeid}.config_version", K.UINT64, version)

    def sync_init(self, trans_list, member_list, ring_id) -> None:
        self.trans_entries = len(trans_list)
        self.my_config_version = self._current_config_version()
        self.highest_config_version = self.my_config_version

    def sync_process(self) -> bool:
        return self._mcast_config_version(exec_msgs.REASON_SYNC)

    def sync_activate(self) -> None:
        if self.trans_entries == 0:
            self.ctx.debug("Single node sync -> no action")
            return
        if not self.first_sync:
            self.ctx.debug("Not first sync -> no action")
            return
        self.first_sync = False
        if self.my_config_version == 0:
            self.ctx.debug("My config version is 0 -> no action")
            return
        if self.highest_config_version != self.my_config_version:
            raise NodeFatal(f"Received config version ({self.highest_config_version}) is "
                            f"different than my config version ({self.my_config_version})! "
                            "Exiting")

    def sync_abort(self) -> None:
        pass

