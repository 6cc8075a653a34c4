"""The engine process: engines between their shm rings, their IPC clients and the supervisor.

One process usually hosts one engine; an engine with `hosted_with` shares the process of
another (Corosync's quorum service with votequorum). Loop (one thread, never blocking
on anything but one poll):
  1. drain the delivery ring: configurations and "a"/"sync" messages, in the cluster's
     total order, into each hosted engine's EngineCore (engineprocs/core.py);
  2. run this process's share of the sync protocol and the engines' due timers;
  3. serve IPC (coroproc/ipc/server.py): admission (root, `uidgid`, and -EAGAIN until the
     node's first sync, as Corosync), requests through EngineCore's rules;
  4. keep the clients' shared flow-control flag: 2 (cpg_mcast_joined gets TRY_AGAIN in
     the client) while a sync runs or the submit ring is more than 3/4 full, else 0;
  5. sleep on the doorbell, the IPC epoll fds and the control socket.
Restart without losing state (engineprocs/snapshots.py): when every hosted engine
implements `snapshot()`, delivery-ring records are released only up to the last
snapshot; a restarted process restores it, replays the records it had handled with
multicasts suppressed, and resumes — no ordered message is lost to the engine.
The sync leader logs Corosync's "Completed service synchronization" line and tells the
supervisor, which then sends sd_notify READY=1.
"""
from __future__ import annotations

import errno
import itertools
import os
import select
import struct
import time

import numpy as np

from coroproc.ipc.server import IpcHandler, IpcServer
from coroproc.ringproc.records import (CFG_HDR, CFG_HDR_BYTES, DLV_HDR, DLV_HDR_BYTES, RT_CONFIG,
                                       RT_DELIVER, RT_RING_START, RT_SUBMIT, RT_TRANS_ACK,
                                       SUBMIT_SAFE, SUBMIT_SYNC, TRANS_ACK)
from coroproc.shm.kernels import (PEEK_CORRUPT, PEEK_ROW, ring_cancel_sleep, ring_head,
                                  ring_peek_batch, ring_prepare_sleep, ring_release, ring_tail)
from coroproc.shm.layout import W_BYTES_PUSHED, W_HEAD, W_RECORDS_PUSHED, W_TAIL
from coroproc.shm.ring import ShmRing
from coroproc.shm.syscalls import pollfd_array

from .api import (EXEC_GROUP, EXEC_HEADER, EXEC_HEADER_BYTES, LANE_CORRUPT, LANE_PYTHON,
                  SYNC_GROUP, Engine, NodeFatal, RingId, exec_id)
from .context import BaseContext
from .core import EngineCore
from .snapshots import SnapshotStore
from .submit_delay import SubmitDelay

BATCH_MAX = 4096                 # delivery records handled per loop turn
SUBMIT_MARGIN_BYTES = 64         # record header + alignment of one submit record
# Submit-ring room only sync traffic may use. While the node waits for a sync to end, the
# ring process takes sync records from behind application ones that cannot move yet; the
# room they held comes back only when the wait ends, so the sync of one configuration
# must fit here (Corosync's sync messages are a few per service and node).
SYNC_RESERVE_BYTES = 1 << 20
FC_CRITICAL_FRACTION = 0.75      # Corosync's TOTEM_Q_LEVEL_CRITICAL
FC_OFF_2 = 2                     # libqb QB_IPCS_RATE_OFF_2: refuse fc_enable_max=2 calls
# flow control once a new submission would wait this long in the submit ring
# (submit_delay.py); the engine's service section may set fc_queue_delay_ms. Corosync's
# own flood delay on this machine is 25-50 ms (bench/results/side_by_side.md).
FC_QUEUE_DELAY_MS = 20.0
UNREAD_REFRESH_S = 0.001          # how often the unread requests are counted (O(connections))
SYNC_RETRY_S = 0.001             # a sync message waits for submit room
EXIT_NODE_FATAL = 3              # the supervisor stops the node (NodeFatal)
SNAPSHOT_EVERY_S = 1.0           # at most this old, while records arrive
SNAPSHOT_FRACTION = 8            # ... or once 1/8 of the delivery ring is unreleased
LANE_NO_LIMIT = 1 << 62          # a delivery-loop bound that never comes
UIDGID_QUERY_TIMEOUT_MS = 1000
_GROUP_COUNT = struct.Struct("<H")


def group_prefix(group: bytes) -> bytes:
    """totempg's one-group header: u16 count (1), u16 name length, the name."""
    return struct.pack("<HH", 1, len(group)) + group


# Nearly every delivery is one exec message in the exec group alone: recognised by these
# bytes after the delivery header, without splitting the group list.
EXEC_ONLY_PREFIX = group_prefix(EXEC_GROUP)
_EXEC_ONLY_END = DLV_HDR_BYTES + len(EXEC_ONLY_PREFIX)


def split_groups(msg: memoryview):
    """(group names, payload) of a totempg group message, or (None, None) if malformed."""
    if len(msg) < 2:
        return None, None
    (count,) = _GROUP_COUNT.unpack_from(msg, 0)
    hdr = 2 + 2 * count
    if hdr > len(msg):
        return None, None
    lens = struct.unpack_from(f"<{count}H", msg, 2)
    names, pos = [], hdr
    for ln in lens:
        names.append(bytes(msg[pos:pos + ln]))
        pos += ln
    if pos > len(msg):
        return None, None
    return names, msg[pos:]


def uidgid_allowed_by_cmap(creds, suffix: str) -> bool:
    """uidgid.uid.<uid> or uidgid.gid.<gid> is u8 1 in the local cmap (set at run time,
    e.g. `corosync-cmapctl -s uidgid.uid.1000 u8 1`). A cmap that does not answer in
    time denies: admission must not hang an engine."""
    from coroproc.ipc import cmap_structs as S
    from coroproc.ipc.client import IpcClient
    try:
        with IpcClient("cmap", suffix=suffix, timeout_ms=UIDGID_QUERY_TIMEOUT_MS) as cmap:
            for key in (f"uidgid.uid.{creds.uid}", f"uidgid.gid.{creds.gid}"):
                _id, error, body = cmap.request(S.REQ_GET, S.pack_req_get(key, 1),
                                                timeout_ms=UIDGID_QUERY_TIMEOUT_MS)
                if error == 1:
                    vtype, _len, value = S.unpack_res_get(body)
                    if vtype == S.UINT8 and value and value[0] == 1:
                        return True
    except (OSError, TimeoutError, ValueError):
        return False
    return False


def node_engines(plan) -> dict[int, str]:
    """service id -> engine name for every engine of the node, hosted ones included."""
    out = {}
    for e in plan.engines:
        if e.service_id >= 0:
            out[e.service_id] = e.name
        for sid, name in zip(e.hosted_services, e.hosted_options):
            out[sid] = name
    return out


def sync_leader(plan) -> int | None:
    """The service id of the node's sync leader: its lowest sync service, or its lowest
    service at all when none takes part in sync."""
    ids = plan.sync_services or sorted(e.service_id for e in plan.engines if e.service_id >= 0)
    return ids[0] if ids else None


def own_delivery_spin(spin_us: int, ring_cpus, allowed_cpus: int) -> tuple[int, int]:
    """(ns, CPU not to spin on, -1: none) of the CPG lane's own-delivery spin
    (coroproc.own_delivery_spin_us; engineprocs/cpg/jit/loop.py): not on the CPU the ring
    process is kept to (ring_cpus, placement.py), and not at all with one CPU to run on,
    where the spin would hold the very CPU the ring process needs to deliver."""
    if allowed_cpus < 2:
        return 0, -1
    return spin_us * 1000, (next(iter(ring_cpus)) if ring_cpus and len(ring_cpus) == 1
                            else -1)


def _procname(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().strip().decode(errors="replace")
    except OSError:
        return "?"


class HostContext(BaseContext):
    def __init__(self, host: "EngineHost", unit: "Unit", **kw):
        super().__init__(**kw)
        self._host = host
        self._unit = unit

    def mcast(self, fn: int, body: bytes, *, safe: bool = False) -> bool:
        if self.replaying:
            return True     # the process before the restart sent it
        head = EXEC_HEADER.pack(exec_id(self._unit.cls.service_id, fn),
                                EXEC_HEADER_BYTES + len(body))
        # sent while this engine's sync runs: the ring process may send it before the
        # application messages queued ahead of it (Corosync's trans queue)
        return self._host.submit_parts(EXEC_ONLY_PREFIX, head, body, safe,
                                       sync_traffic=self.sync_in_progress)

    def mcast_space_bytes(self) -> int:
        return self._host.submit_space_bytes()

    def connections(self) -> list:
        ipc = self._unit.ipc
        return [c for c in ipc.connections.values() if not c.closed] if ipc else []

    def disconnect(self, conn, why: str) -> None:
        self._unit.ipc.disconnect(conn, why)

    def request_node_counters(self, callback) -> None:
        self._host.counter_waiters.append(callback)
        self._host.control.send({"op": "counters"})

    def supervisor_request(self, op: str, args: dict, callback=None) -> None:
        self._host.supervisor_request(op, args, callback)

    def config_keys_changed(self, changed: tuple[str, ...], entries: dict) -> None:
        self._host.config_keys_changed(self._unit, changed, entries)


class _Ipc(IpcHandler):
    def __init__(self, host: "EngineHost", unit: "Unit"):
        self.host = host
        self.unit = unit

    def read_fast(self, conn, buf, limit: int, avail: int):
        """The engine's lane takes what requests it can (IpcServer._read_requests)."""
        host, lane = self.host, self.unit.lane
        if lane is None or host.replay_until > host.cursor:
            return None
        limit_bytes = host.delay.limit_bytes if not host.fc_level else 1 << 62
        result = lane.read_requests(conn, buf, limit, avail,
                                    min(host._roomy_used_bytes, limit_bytes))
        if result is None:
            return None
        taken, pending, flow = result
        self.unit.core.stats["lib_requests"] += taken
        if flow:
            host.check_submit_delay()
        return taken, pending

    def on_connect(self, conn):
        host, unit = self.host, self.unit
        unit.invalidate_lane()
        if not unit.ctx.first_sync_done:
            host.stats["ipc_not_ready"] += 1
            return -errno.EAGAIN       # Corosync: "Denied connection, corosync is not ready"
        conn.procname = _procname(conn.creds.pid)
        verdict = unit.engine.on_connect(conn)
        if verdict is True or verdict is None:
            # the engine may have raised the flag itself: keep the higher level
            conn.set_flow_control(max(host.fc_level, conn.flow_control_level))
        return verdict

    def on_request(self, conn, msg_id, payload):
        unit = self.unit
        if unit.lane is not None and msg_id not in unit.lane.stateless_requests:
            unit.lane.invalidate()
        return unit.core.on_lib_request(conn, msg_id, payload, EXEC_HEADER_BYTES + len(payload))

    def on_disconnect(self, conn):
        self.unit.invalidate_lane()
        self.host.stats["ipc_closed"] += 1
        self.unit.engine.on_disconnect(conn)


class Unit:
    """One hosted engine: its context, core and IPC server."""

    def __init__(self, host: "EngineHost", cls: type[Engine], options: dict):
        plan, log = host.plan, host.log
        self.cls = cls
        self.subsys = cls.log_subsys or cls.name.upper()
        self.ctx = HostContext(host, self, nodeid=plan.nodeid, cluster_name=plan.cluster_name,
                               config=getattr(plan, "config", None), options=options,
                               clock_s=time.monotonic,
                               node_engines=node_engines(plan),
                               service_suffix=plan.service_suffix,
                               log_fn=lambda prio, msg: log.log(prio, self.subsys, msg))
        self.engine = cls(self.ctx)
        self.core = EngineCore(self.engine, self.ctx, plan.sync_services,
                               send_sync=lambda msg: host.submit_sync(self.ctx, msg),
                               on_completed=lambda rid, members: host.completed(self, rid, members),
                               leader_service=sync_leader(plan))
        self.core.sync._log = lambda prio, msg: log.log(prio, "SYNC", msg)
        self.ipc = None
        self.lane = None
        if cls.ipc_service:
            queues = None
            if cls.ipc_event_queues and str(options.get("fast_lane", "on")).lower() \
                    not in ("off", "no", "0", "false"):
                from coroproc.ipc.evqueue import EventQueues   # numba: only when used
                try:
                    queues = EventQueues()
                except MemoryError:
                    # strict overcommit (vm.overcommit_memory=2) may refuse the reserve:
                    # the engine runs, on its Python path
                    log.warning(self.subsys, "no address space for the IPC event queues; "
                                "the fast lane is off")
            self.ipc = IpcServer(cls.ipc_service, _Ipc(host, self), suffix=plan.service_suffix,
                                 max_msg_bytes=cls.ipc_max_msg_bytes,
                                 authorize=lambda creds: host.authorize(self, creds),
                                 event_queues=queues)
            self.lane = self.engine.fast_lane(queues) if queues is not None else None

    def invalidate_lane(self) -> None:
        """Engine code other than an MCAST delivery or send ran: its lane's table may be
        stale (engineprocs/cpg/lane.py)."""
        if self.lane is not None:
            self.lane.invalidate()

    def ipc_counters(self) -> dict:
        conns = {}
        for conn in self.ipc.connections.values():
            conns[f"{conn.creds.pid}.{id(conn):x}"] = {
                "procname": getattr(conn, "procname", "?"), **conn.counters(),
                "queued": conn.events_queued, "flow_control": conn.flow_control_level}
        return {"service_id": self.cls.service_id, "service": self.cls.ipc_service,
                "connections": conns,
                "global": {"active": len(conns), "closed": self.ipc.stats.get("disconnected", 0)},
                "server": dict(self.ipc.stats)}


def contiguous_room_bytes(head: int, tail: int, capacity: int) -> int:
    """Largest contiguous free run of a ring with byte cursors head/tail: the free space up
    to the end of the buffer, or what is free from its start after wrapping."""
    free = capacity - (head - tail)
    to_end = min(capacity - head % capacity, free)
    return max(to_end, free - to_end)


def submit_room_bytes(head: int, tail: int, capacity: int, max_message_bytes: int,
                      sync_traffic: bool) -> int:
    """The largest message a submit ring with these cursors takes (see
    EngineHost.submit_space_bytes)."""
    room = contiguous_room_bytes(head, tail, capacity) - SUBMIT_MARGIN_BYTES - 8
    if not sync_traffic:
        room = min(room, capacity - (head - tail) - SYNC_RESERVE_BYTES - SUBMIT_MARGIN_BYTES - 8)
    return max(min(room, max_message_bytes), 0)


def roomy_used_bytes(capacity: int, max_message_bytes: int) -> int:
    """Up to this much used, submit_room_bytes is max_message_bytes wherever the cursors
    are: at least half of the free space is contiguous, and the sync reserve is left
    besides. It spares the engine that arithmetic on every message of a flood."""
    record_max = max_message_bytes + SUBMIT_MARGIN_BYTES + 8
    return capacity - max(2 * record_max, record_max + SYNC_RESERVE_BYTES)


class EngineHost:
    def __init__(self, plan, eng, classes: list[type[Engine]], doorbell, control, log,
                 hosted_options: dict | None = None):
        self.plan, self.eng = plan, eng
        self.doorbell, self.control, self.log = doorbell, control, log
        self.stats = {"ipc_not_ready": 0, "ipc_closed": 0, "ipc_denied": 0, "submit_full": 0,
                      "ring_restarts": 0, "deliveries": 0, "configs": 0, "other_groups": 0,
                      "malformed": 0, "snapshots": 0, "replayed": 0, "trans_acks": 0}
        self.counter_waiters = []
        self._sync_sent = False
        self._trans_ack_pending = None
        self._requests = {}
        self._request_ids = itertools.count(1)
        self.submit = ShmRing.attach(eng.submit_name, wake_fd=plan.ring_wake_fd, role="producer")
        self.delivery = ShmRing.attach(eng.delivery_name, role="consumer")
        self._delivery_view = memoryview(self.delivery.data)   # released in close()
        self._peek_rows = np.zeros((BATCH_MAX, PEEK_ROW), np.int64)
        self.max_message_bytes = plan.totem.max_message_bytes
        self._roomy_used_bytes = roomy_used_bytes(self.submit.capacity_bytes,
                                                  self.max_message_bytes)
        self.fc_level = FC_OFF_2          # until the first sync: nobody is admitted anyway
        self.delay = SubmitDelay(float(eng.options.get("fc_queue_delay_ms", FC_QUEUE_DELAY_MS)))
        self._unread, self._unread_at_s = 0, 0.0  # clients' requests not read yet, and when
        self._poller = None               # kept between sleeps while its fds stay the same
        self._poller_fds: tuple = ()
        self._ready_fds = None            # fds the last sleep's poll returned (None: no poll)
        self._lane_pfd, self._lane_pfd_key = None, ()
        self.ring_started = False
        options = hosted_options or {}
        self.units = [Unit(self, cls, eng.options if i == 0 else options.get(cls.name, {}))
                      for i, cls in enumerate(classes)]
        self.by_service = {u.cls.service_id: u for u in self.units}
        for u in self.units:
            if u.lane is not None:
                u.lane.bind_submit(self.submit, plan.ring_wake_fd, self.max_message_bytes,
                                   self._roomy_used_bytes)
                if hasattr(u.lane, "set_spin") and plan.config is not None:
                    u.lane.set_spin(*own_delivery_spin(plan.config.coroproc.own_delivery_spin_us,
                                                       plan.ring_cpus,
                                                       len(os.sched_getaffinity(0))))
        self._ipc_servers = [u.ipc for u in self.units if u.ipc is not None]
        for u in self.units:
            u.ctx.siblings = {s: x.engine for s, x in self.by_service.items() if x is not u}
        control.counters_fn = self.counters
        control.handlers.update({"counters": self._counters_reply, "node_state": self._node_state,
                                 "request_reply": self._request_reply, "reload": self._reload,
                                 "reopen_logs": self._reopen_logs,
                                 "config_keys": self._config_keys})
        self.cursor = int(ring_tail(self.delivery.hdr))
        self.replay_until = self.cursor
        self.store = None
        if all(type(u.engine).snapshot is not Engine.snapshot for u in self.units):
            self.store = SnapshotStore(plan.cluster_name, plan.nodeid, eng.name,
                                       plan.incarnation_us)
        for u in self.units:
            u.engine.start()
        self._restore()
        self.snap_pos = self.cursor
        self.snap_at = time.monotonic()

    @property
    def primary(self) -> Unit:
        return self.units[0]

    # ---- restart without losing state ------------------------------------------------
    def _restore(self) -> None:
        self._invalidate_lanes()
        if self.store is None:
            return
        snap, handled = self.store.load()
        if snap is None:
            return
        for u in self.units:
            state = snap["units"].get(u.cls.name)
            if state is None:
                return   # another set of engines wrote it: start fresh
        for u in self.units:
            state = snap["units"][u.cls.name]
            u.core.load_state(state["core"])
            u.engine.restore(bytes.fromhex(state["engine"]))
        self.ring_started = snap["host"].get("ring_started", False)
        self.cursor = max(int(snap["pos"]), int(ring_tail(self.delivery.hdr)))
        ring_release(self.delivery.hdr, self.cursor)
        self.replay_until = max(handled, self.cursor)
        if self.cursor < self.replay_until:
            for u in self.units:
                u.ctx.replaying = True
        else:
            self._replay_done()
        self.fc_level = 0 if self.primary.ctx.first_sync_done else FC_OFF_2
        self.log.notice(self.primary.subsys, f"engine restarted: state restored from its "
                        f"snapshot; replaying {self.replay_until - self.cursor} bytes of "
                        f"ordered messages it had handled")

    def _invalidate_lanes(self) -> None:
        for u in self.units:
            u.invalidate_lane()

    def _replay_done(self) -> None:
        for u in self.units:
            if u.ctx.replaying:
                u.ctx.replaying = False
            u.core.sync._outbox.clear()    # whatever the replay queued went out before
        for u in self.units:
            u.engine.on_restarted(True)

    def _maybe_snapshot(self, force: bool = False) -> None:
        if self.store is None or self.replay_until > self.cursor:
            return
        if self.cursor == self.snap_pos and not force:
            return
        now = time.monotonic()
        if not force and now - self.snap_at < SNAPSHOT_EVERY_S and \
                self.cursor - self.snap_pos < self.delivery.capacity_bytes // SNAPSHOT_FRACTION:
            return
        units = {}
        for u in self.units:
            data = u.engine.snapshot()
            if data is None:
                raise RuntimeError(f"engine {u.cls.name} returned no snapshot")
            units[u.cls.name] = {"core": u.core.save_state(), "engine": bytes(data).hex()}
        self.store.save(self.cursor, units, {"ring_started": self.ring_started})
        ring_release(self.delivery.hdr, self.cursor)
        self.snap_pos = self.cursor
        self.snap_at = now
        self.stats["snapshots"] += 1

    # ---- submissions ---------------------------------------------------------------------
    def submit_space_bytes(self, sync_traffic: bool = False) -> int:
        """The largest message the submit ring takes now. Records are contiguous: free
        space split by the end of the buffer only takes a record that fits one side (the
        other becomes padding), so a 1 MiB message can find 1.5 MiB free and no room.
        Other than sync traffic, a message must leave SYNC_RESERVE_BYTES free."""
        # plain reads, not the jitted acquire loads: this runs several times per message,
        # and a stale tail (the ring process only advances it) can only understate the room
        hdr = self.submit.hdr
        head, tail = hdr.item(W_HEAD), hdr.item(W_TAIL)
        if head - tail <= self._roomy_used_bytes:
            return self.max_message_bytes    # the common case, without the arithmetic below
        return submit_room_bytes(head, tail, self.submit.capacity_bytes,
                                 self.max_message_bytes, sync_traffic)

    def submit_sync(self, ctx, msg: bytes) -> bool:
        if ctx.replaying:
            return True
        if self.submit_msg(SYNC_GROUP, msg, False, sync_traffic=True):
            self._sync_sent = True
            return True
        return False

    def submit_msg(self, group: bytes, msg: bytes, safe: bool,
                   sync_traffic: bool = False) -> bool:
        return self.submit_parts(group_prefix(group), b"", msg, safe, sync_traffic)

    def submit_parts(self, prefix: bytes, head: bytes, body, safe: bool,
                     sync_traffic: bool = False) -> bool:
        """One submit record: a group prefix (group_prefix) and the message head + body."""
        msg_bytes = len(head) + len(body)
        if msg_bytes > self.max_message_bytes:
            raise ValueError(f"exec message of {msg_bytes} bytes: Totem carries at most "
                             f"{self.max_message_bytes}")
        if len(prefix) + msg_bytes > self.submit_space_bytes(sync_traffic):
            self.stats["submit_full"] += 1
            return False
        flags = (SUBMIT_SAFE if safe else 0) | (SUBMIT_SYNC if sync_traffic else 0)
        if not self.submit.push(RT_SUBMIT, b"".join((prefix, head, body)), flags):
            self.stats["submit_full"] += 1
            return False
        self.check_submit_delay()
        return True

    def check_submit_delay(self) -> None:
        hdr = self.submit.hdr
        if not self.fc_level and hdr.item(W_HEAD) - hdr.item(W_TAIL) >= self.delay.limit_bytes:
            self._flow_control()     # a burst between loop turns: stop it now

    def _push_trans_ack(self) -> None:
        """Tell the ring process this node's sync of a ring completed (Corosync's
        totempg_trans_ack): what was queued behind it goes out. Retried from the loop
        while the ring is full, so an acknowledgement is never lost."""
        rid = self._trans_ack_pending
        if rid is None:
            return
        if self.submit.push(RT_TRANS_ACK, TRANS_ACK.pack(rid.nodeid, 0, rid.seq)):
            self._trans_ack_pending = None
            self.stats["trans_acks"] += 1

    # ---- the loop ------------------------------------------------------------------------
    def run(self) -> int:
        try:
            while self.control.poll():
                self._drain_corked()
                if self.replay_until > self.cursor:
                    continue            # still replaying: nothing live until caught up
                self._sync_sent = False
                self._push_trans_ack()
                for u in self.units:
                    u.core.run_sync()
                    if u.ctx.run_timers() or u.ctx.sync_in_progress:
                        u.invalidate_lane()
                    if u.ipc is not None and self._ipc_may_have_work(u.ipc):
                        u.ipc.process(0)
                # a sync message sent from here (not from a record) must not be sent
                # twice after a restart: snapshot the state that says it went out
                self._maybe_snapshot(force=self._sync_sent)
                self._flow_control()
                self._sleep()
        except NodeFatal as exc:
            self.log.error(self.primary.subsys, str(exc))
            self.control.send({"op": "event", "ev": "fatal", "why": str(exc)})
            return EXIT_NODE_FATAL
        return 0

    def _ipc_may_have_work(self, ipc) -> bool:
        """process() only when the last sleep saw the server's epoll fd readable, did not
        poll at all, or the server asked to be called (its fd is level-triggered: what
        came in since is seen by the next sleep). A wake-up for deliveries alone then
        costs no epoll_wait and no Python of the IPC server."""
        ready = self._ready_fds
        return ready is None or ipc.fileno() in ready or ipc.next_wakeup_ms() is not None

    def _sleep_plan(self) -> tuple[float, list]:
        """(timeout in s, fds besides the doorbell) of the next sleep: the control socket,
        the IPC servers, due timers and retries, the next snapshot and flow-control check."""
        timeout = self.control.tick_s
        fds = list(self.control.fds())
        for u in self.units:
            nxt = u.ctx.next_timer_s()
            if nxt is not None:
                timeout = min(timeout, nxt)
            if u.core.sync.wants_run:
                timeout = min(timeout, SYNC_RETRY_S)
            if u.ipc is not None:
                wake_ms = u.ipc.next_wakeup_ms()
                if wake_ms is not None:
                    timeout = min(timeout, wake_ms / 1000)
                fds.append(u.ipc.fileno())
        if self.store is not None and self.cursor != self.snap_pos:
            timeout = min(timeout, SNAPSHOT_EVERY_S)
        recheck = self.delay.recheck_s()
        if recheck is not None:
            timeout = min(timeout, recheck)
        return max(timeout, 0.0), fds

    def _sleep(self) -> None:
        self._ready_fds = None          # unknown until the poll below runs
        if self._lane_sleep():
            return
        timeout, fds = self._sleep_plan()
        h = self.delivery.hdr
        # Records stay in the ring until the next snapshot, so "empty" means "nothing after
        # our cursor": raise the sleeping flag (with its fence), then look at head.
        ring_prepare_sleep(h)
        try:
            if int(ring_head(h)) != self.cursor:
                return
            bell = self.doorbell.fd
            ready = self._ready_fds = [fd for fd, _ev in
                                       self._poll_set(bell, fds).poll(int(timeout * 1000.0 + 0.999))]
            if bell in ready:
                self.doorbell.drain()
        finally:
            ring_cancel_sleep(h)

    def _lane_sleep(self) -> bool:
        """Sleep in the engine lane's jitted delivery loop (engineprocs/cpg/jit/loop.py)
        when nothing but deliveries and MCAST requests needs this process until the next
        timer: it delivers, takes requests and sleeps again without a turn of this loop
        per wake-up. False: not now (no such lane, a replay, a sync, flow control, a
        hosted engine, a reader the lane leaves to Python)."""
        u = self.primary
        lane = u.lane
        if (lane is None or not hasattr(lane, "loop") or len(self.units) != 1
                or self.replay_until > self.cursor or self.fc_level
                or self._trans_ack_pending is not None or u.core.sync.wants_run
                or u.ctx.sync_in_progress):
            return False
        timeout, fds = self._sleep_plan()
        now_us = time.monotonic_ns() // 1000
        until_us = now_us + int(timeout * 1e6)
        if self.store is None:
            pos_limit, moved_until_us = LANE_NO_LIMIT, LANE_NO_LIMIT
        else:
            pos_limit = self.snap_pos + self.delivery.capacity_bytes // SNAPSHOT_FRACTION
            moved_until_us = int((self.snap_at + SNAPSHOT_EVERY_S) * 1e6)
        pfd = self._lane_pollfds(fds)
        ipc = u.ipc
        ipc_idx = self._lane_pfd_key.index(ipc.fileno()) if ipc is not None else -1
        result = lane.loop(self.delivery.hdr, self.delivery.data, self.cursor, pos_limit,
                           self.store is None, BATCH_MAX, pfd, until_us, moved_until_us,
                           ipc, ipc_idx, self.delay.limit_bytes)
        if result is None:
            return False
        records, pos, self._ready_fds, requests, flow = result
        if records:
            self._lane_took(records, pos, released=True)
            if self.store is not None:
                self.store.handled(pos)
        if requests:
            u.core.stats["lib_requests"] += requests
        if flow:
            self.check_submit_delay()
        return True

    def _lane_pollfds(self, fds: list) -> np.ndarray:
        """The delivery loop's pollfds: the doorbell, then fds (kept while they stay)."""
        key = (self.doorbell.fd, *fds)
        if key != self._lane_pfd_key:
            self._lane_pfd = pollfd_array(key)
            self._lane_pfd_key = key
        return self._lane_pfd

    def _poll_set(self, bell: int, fds: list) -> "select.poll":
        """The poll object of this sleep. Built again only when its fds change: a busy
        engine sleeps once or twice per message, and making one each time showed in its
        profile."""
        key = (bell, *fds)
        if key != self._poller_fds:
            self._poller = select.poll()
            for fd in key:
                self._poller.register(fd, select.POLLIN)
            self._poller_fds = key
        return self._poller

    def _drain_corked(self) -> None:
        """_drain with every IPC server corked: the events of one batch of deliveries
        reach each client in runs (one sendmmsg, one wake-up of the client) instead of
        one send and often one wake-up per event."""
        for s in self._ipc_servers:
            s.cork()
        try:
            self._drain()
        finally:
            for s in self._ipc_servers:
                s.uncork()

    def _drain(self) -> None:
        """Up to BATCH_MAX records: through the engine's delivery lane while it takes
        them (never while replaying: its multicasts must be suppressed), else Python."""
        budget = BATCH_MAX
        while budget > 0:
            lane = self.primary.lane
            if lane is not None and self.replay_until <= self.cursor:
                taken, pos, reason = lane.run(self.delivery.hdr, self.delivery.data,
                                              self.cursor, budget)
                if taken:
                    self._lane_took(taken, pos)
                    budget -= taken
                if reason == LANE_CORRUPT:
                    raise RuntimeError(f"delivery ring {self.delivery.name} has corrupt "
                                       f"framing at position {pos}")
                if reason != LANE_PYTHON or budget == 0:
                    break
                handled = self._drain_python(1)
                self.primary.invalidate_lane()
            else:
                handled = self._drain_python(budget)
            budget -= handled
            if not handled:
                break
        if self.store is not None and self.replay_until <= self.cursor:
            self.store.handled(self.cursor)
            self._maybe_snapshot()

    def _lane_took(self, records: int, pos: int, released: bool = False) -> None:
        """The lane handled records up to pos (and released them already if `released`;
        with a snapshot store they stay until the next snapshot)."""
        self.stats["deliveries"] += records
        self.primary.core.stats["exec_rx"] += records
        self.cursor = pos
        if self.store is None and not released:
            ring_release(self.delivery.hdr, pos)

    def _drain_python(self, max_records: int) -> int:
        """Handle up to max_records records in Python; how many."""
        h, view = self.delivery.hdr, self._delivery_view
        # one jitted call finds the whole batch (a ring_peek per record cost the dispatcher
        # ~1 µs each, in the process that bounds a one-node flood)
        rows = self._peek_rows if max_records >= BATCH_MAX else self._peek_rows[:max_records]
        n, status, _end = ring_peek_batch(h, self.delivery.data, self.cursor, rows)
        for off, ln, rtype, _flags, pos in rows[:n].tolist():
            self._record(rtype, view[off:off + ln])
            if self.replay_until > pos:
                self.stats["replayed"] += 1
            elif self.replay_until > self.cursor:
                self.cursor = pos
                self._replay_done()
            self.cursor = pos
            if self.store is None:
                ring_release(h, pos)
        if status == PEEK_CORRUPT:
            raise RuntimeError(f"delivery ring {self.delivery.name} has corrupt framing")
        return n

    def _record(self, rtype: int, rec: memoryview) -> None:
        if rtype == RT_DELIVER and rec[DLV_HDR_BYTES:_EXEC_ONLY_END] == EXEC_ONLY_PREFIX:
            self.stats["deliveries"] += 1
            self._exec(DLV_HDR.unpack_from(rec, 0)[0], rec[_EXEC_ONLY_END:])
        elif rtype == RT_DELIVER:
            sender = DLV_HDR.unpack_from(rec, 0)[0]
            groups, payload = split_groups(rec[DLV_HDR_BYTES:])
            if groups is None:
                self.stats["malformed"] += 1
                return
            self.stats["deliveries"] += 1
            if SYNC_GROUP in groups:
                for u in self.units:
                    u.core.on_sync_message(sender, payload)
            if EXEC_GROUP in groups:
                self._exec(sender, payload)
            elif SYNC_GROUP not in groups:
                self.stats["other_groups"] += 1
        elif rtype == RT_CONFIG:
            kind, rep, seq, count, _ = CFG_HDR.unpack_from(rec, 0)
            members = struct.unpack_from(f"<{count}I", rec, CFG_HDR_BYTES)
            self.stats["configs"] += 1
            for u in self.units:
                u.core.on_config(kind, RingId(rep, seq), members)
            self.fc_level = FC_OFF_2
            self._set_flow_control(FC_OFF_2)
        elif rtype == RT_RING_START:
            if self.ring_started or self.primary.ctx.ring_id is not None:
                self.stats["ring_restarts"] += 1
                for u in self.units:
                    u.core.on_ring_lost()
            self.ring_started = True
            self.delay.reset()

    def _exec(self, sender: int, payload: memoryview) -> None:
        """An exec message goes to the engine of the service in its header."""
        unit = (self.by_service.get(EXEC_HEADER.unpack_from(payload, 0)[0] >> 16)
                if len(payload) >= EXEC_HEADER_BYTES else None)
        if unit is not None:
            unit.core.on_exec(sender, payload)
        else:
            self.stats["malformed"] += 1

    # ---- sync completion, flow control ---------------------------------------------------
    def completed(self, unit: Unit, ring_id, members) -> None:
        # every engine of the node completes at the same barrier of the ordered stream,
        # and each says so: the ring process takes the first and ignores the rest (and a
        # stale one), so a dead or restarting engine cannot hold the node's traffic back
        self._trans_ack_pending = ring_id
        self._push_trans_ack()
        if unit.core.sync.leader and not unit.ctx.replaying:
            self.log.notice("MAIN", "Completed service synchronization, ready to provide service.")
            self.control.send({"op": "event", "ev": "ready", "ring": [ring_id.nodeid, ring_id.seq],
                               "members": list(members)})

    def _flow_control(self) -> None:
        hdr = self.submit.hdr
        head, tail = int(ring_head(hdr)), int(ring_tail(hdr))
        critical = head - tail > FC_CRITICAL_FRACTION * self.submit.capacity_bytes
        records = int(hdr[W_RECORDS_PUSHED])
        record_bytes = int(hdr[W_BYTES_PUSHED]) // records if records else 0
        now = time.monotonic()
        if now - self._unread_at_s >= UNREAD_REFRESH_S:
            self._unread_at_s, self._unread = now, self._unread_requests()
        delayed = self.delay.update(head, tail, now, self._unread * record_bytes)
        level = FC_OFF_2 if (self.primary.ctx.sync_in_progress or critical or delayed) else 0
        if level != self.fc_level:
            self.fc_level = level
            self._set_flow_control(level)

    def _unread_requests(self) -> int:
        """Requests the clients sent that no engine of this host has read yet (libqb's
        shared per-connection count)."""
        n = 0
        for srv in self._ipc_servers:
            for conn in srv.connections.values():
                if conn.control is not None and not conn.closed:
                    n += max(conn.control.sent("request"), 0)
        return n

    def _set_flow_control(self, level: int) -> None:
        for u in self.units:
            for conn in u.ctx.connections():
                conn.set_flow_control(level)
                if level:
                    conn.stats["flow_control_count"] += 1

    # ---- admission -----------------------------------------------------------------------
    def authorize(self, unit: Unit, creds) -> bool:
        """Corosync's cs_ipcs_connection_accept for a client that is not root: the engine
        may decide; else uidgid.config.* (corosync.conf, uidgid.d/) or the runtime
        uidgid.uid.N / uidgid.gid.N keys, asked of the node's cmap engine."""
        verdict = unit.engine.authorize(creds)
        if verdict is None:
            keys = getattr(unit.ctx.config, "keys", None) or {}
            verdict = (f"uidgid.config.uid.{creds.uid}" in keys
                       or f"uidgid.config.gid.{creds.gid}" in keys
                       or uidgid_allowed_by_cmap(creds, self.plan.service_suffix))
        if not verdict:
            self.stats["ipc_denied"] += 1
            self.log.error(unit.subsys, f"Denied connection attempt from {creds.uid}:{creds.gid} "
                           f"(pid {creds.pid})")
        return bool(verdict)

    # ---- the supervisor --------------------------------------------------------------------
    def supervisor_request(self, op: str, args: dict, callback=None) -> None:
        rid = next(self._request_ids)
        if callback is not None:
            self._requests[rid] = callback
        self.control.send({"op": "request", "id": rid, "req": op, "args": dict(args)})

    def _request_reply(self, msg: dict):
        cb = self._requests.pop(msg.get("id"), None)
        if cb is not None:
            cb(msg.get("reply") or {})
        return None

    def _reload(self, msg: dict):
        """The supervisor re-read and checked corosync.conf: hand it to every engine."""
        self._invalidate_lanes()
        from coroproc.config.loader import load
        try:
            config, _warnings = load(self.plan.config_path, self.plan.nodeid)
        except Exception as exc:          # the supervisor checked it; a race is still possible
            self.log.error(self.primary.subsys, f"reload: cannot read the new config: {exc}")
            return {"ok": False, "error": str(exc)}
        reconfigure = getattr(self.log, "reconfigure", None)
        if reconfigure is not None:
            from coroproc.logsys import settings_from_config
            try:
                reconfigure(settings_from_config(config.logging, self.plan.foreground))
            except Exception as exc:
                self.log.error(self.primary.subsys, f"reload: logging settings refused: {exc}")
        for u in self.units:
            u.ctx.config = config
            u.engine.on_reload(config)
        return {"ok": True}

    def config_keys_changed(self, origin: "Unit", changed: tuple[str, ...],
                            entries: dict) -> None:
        """The CMAP engine's run-time key changes (cmap/config_watch.py): to the engines
        of this process on a later turn, and through the supervisor to every other
        engine process of the node."""
        for u in self.units:
            if u is not origin:
                u.ctx.timer_add(0, lambda u=u: u.engine.on_config_keys(changed, entries))
        self.supervisor_request("config_keys", {"changed": list(changed), "entries": entries})

    def _config_keys(self, msg: dict):
        changed, entries = tuple(msg.get("changed") or ()), dict(msg.get("entries") or {})
        for u in self.units:
            u.engine.on_config_keys(changed, entries)
        return None

    def _reopen_logs(self, msg: dict):
        for line in self.log.reopen() or []:
            self.log.error(self.primary.subsys, line)
        return None

    def _node_state(self, msg: dict):
        """The supervisor's answer to our hello: when this engine (re)starts on a node that
        already finished a sync (and no snapshot told it more), clients are admitted now."""
        self._invalidate_lanes()
        if not msg.get("ready"):
            return None
        for u in self.units:
            ctx = u.ctx
            if ctx.first_sync_done or ctx.ring_id is not None:
                continue
            ring, members = msg.get("ring"), tuple(msg.get("members") or ())
            if ring:
                ctx.ring_id = RingId(int(ring[0]), int(ring[1]))
                ctx.members = members
                u.core.adopt_membership(members)
            ctx.first_sync_done = True
            ctx.sync_in_progress = False
            self.fc_level = 0
            self.log.notice(u.subsys, f"engine started on a synchronized node (ring "
                            f"{ctx.ring_id}, members {list(members)}); serving clients")
        return None

    def _counters_reply(self, msg: dict):
        waiters, self.counter_waiters = self.counter_waiters, []
        for cb in waiters:
            cb(msg.get("counters", {}))
        return None

    def counters(self) -> dict:
        p = self.primary
        out = {"engine": p.engine.counters(), "host": dict(self.stats),
               "core": dict(p.core.stats),
               "sync": {"state": p.core.sync.state, "completed": p.core.sync.completed_count,
                        "ring": str(p.ctx.ring_id) if p.ctx.ring_id else None},
               "submit": self.submit.counters(), "flow_control": self.fc_level,
               "fc_queue_delay_activations": self.delay.activations,
               "submit_drain_bytes_per_s": int(self.delay.rate_bytes_per_s),
               "snapshot_lag_bytes": self.cursor - self.snap_pos if self.store else 0}
        if p.ipc is not None:
            out["ipc"] = p.ipc_counters()
        if len(self.units) > 1:
            out["hosted"] = {u.cls.name: {"engine": u.engine.counters(), "core": dict(u.core.stats),
                                          **({"ipc": u.ipc_counters()} if u.ipc else {})}
                             for u in self.units[1:]}
        return out

    def close(self) -> None:
        try:
            for u in self.units:
                u.engine.close()
        finally:
            for u in self.units:
                if u.ipc is not None:
                    u.ipc.close()
            if self.store is not None:
                self.store.close()
            self.submit.close()
            self._delivery_view.release()
            self.delivery.close()
