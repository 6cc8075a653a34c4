"""The engine process: one Engine between its shm rings, its IPC clients and the supervisor.

Loop (one thread, never blocking on anything but the doorbell):
  1. drain the delivery ring: configurations and "a"/"sync" messages, in the cluster's
     total order, into the EngineCore (engineprocs/core.py); a record is released only
     after it was handled;
  2. run this process's share of the sync protocol and the engine's due timers;
  3. serve IPC (coroproc/ipc/server.py): admission (root, `uidgid` config, and -EAGAIN
     until the node's first sync, as Corosync), requests through EngineCore's rules;
  4. keep the clients' shared flow-control flag: 2 (cpg_mcast_joined gets TRY_AGAIN in
     the client) while a sync runs or the submit ring is more than 3/4 full, else 0;
  5. sleep on the doorbell (delivery ring), the IPC epoll fd and the control socket.
The sync leader (the node's lowest sync service) logs Corosync's "Completed service
synchronization" line and tells the supervisor, which then sends sd_notify READY=1.
"""
from __future__ import annotations

import errno
import os
import struct
import time

from coroproc.ipc.server import IpcHandler, IpcServer
from coroproc.ringproc.records import (CFG_HDR, CFG_HDR_BYTES, DLV_HDR, DLV_HDR_BYTES, RT_CONFIG,
                                       RT_DELIVER, RT_RING_START, RT_SUBMIT, SUBMIT_SAFE)
from coroproc.shm.kernels import (PEEK_EMPTY, PEEK_RECORD, ring_head, ring_peek, ring_release,
                                  ring_tail)
from coroproc.shm.ring import ShmRing

from .api import (EXEC_GROUP, EXEC_HEADER, EXEC_HEADER_BYTES, SYNC_GROUP, Engine, NodeFatal, RingId,
                  exec_id)
from .context import BaseContext
from .core import EngineCore

BATCH_MAX = 4096                 # delivery records handled per loop turn
SUBMIT_MARGIN_BYTES = 64         # record header + alignment of one submit record
FC_CRITICAL_FRACTION = 0.75      # Corosync's TOTEM_Q_LEVEL_CRITICAL
FC_OFF_2 = 2                     # libqb QB_IPCS_RATE_OFF_2: refuse fc_enable_max=2 calls
SYNC_RETRY_S = 0.001             # a sync message waits for submit room
EXIT_NODE_FATAL = 3              # the supervisor stops the node (NodeFatal)
_GROUP_COUNT = struct.Struct("<H")


def group_message(group: bytes, msg: bytes) -> bytes:
    """totempg's one-group header (u16 count, u16 len, name) + message."""
    return struct.pack("<HH", 1, len(group)) + group + msg


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


UIDGID_QUERY_TIMEOUT_MS = 1000


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


def sync_leader(plan) -> int | None:
    """The service id of the node's sync leader: its lowest sync service, or its lowest
    service at all when none takes part in sync."""
    ids = plan.sync_services or sorted(e.service_id for e in plan.engines if e.service_id >= 0)
    return ids[0] if ids else None


def _procname(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().strip().decode(errors="replace")
    except OSError:
        return "?"


class HostContext(BaseContext):
    def __init__(self, host: "EngineHost", **kw):
        super().__init__(**kw)
        self._host = host

    def mcast(self, fn: int, body: bytes, *, safe: bool = False) -> bool:
        msg = EXEC_HEADER.pack(exec_id(self._host.cls.service_id, fn),
                               EXEC_HEADER_BYTES + len(body)) + bytes(body)
        return self._host.submit_msg(EXEC_GROUP, msg, safe)

    def mcast_space_bytes(self) -> int:
        return self._host.submit_space_bytes()

    def connections(self) -> list:
        ipc = self._host.ipc
        return [c for c in ipc.connections.values() if not c.closed] if ipc else []

    def disconnect(self, conn, why: str) -> None:
        self._host.ipc.disconnect(conn, why)

    def request_node_counters(self, callback) -> None:
        self._host.counter_waiters.append(callback)
        self._host.control.send({"op": "counters"})


class _Ipc(IpcHandler):
    def __init__(self, host: "EngineHost"):
        self.host = host

    def on_connect(self, conn):
        host = self.host
        if not host.ctx.first_sync_done:
            host.stats["ipc_not_ready"] += 1
            return -errno.EAGAIN       # Corosync: "Denied connection, corosync is not ready"
        conn.procname = _procname(conn.creds.pid)
        verdict = host.engine.on_connect(conn)
        if verdict is True or verdict is None:
            # the engine may have raised the flag itself: keep the higher level
            conn.set_flow_control(max(host.fc_level, conn.flow_control_level))
        return verdict

    def on_request(self, conn, msg_id, payload):
        return self.host.core.on_lib_request(conn, msg_id, payload,
                                             EXEC_HEADER_BYTES + len(payload))

    def on_disconnect(self, conn):
        self.host.stats["ipc_closed"] += 1
        self.host.engine.on_disconnect(conn)


class EngineHost:
    def __init__(self, plan, eng, cls: type[Engine], doorbell, control, log):
        self.plan, self.eng, self.cls = plan, eng, cls
        self.doorbell, self.control, self.log = doorbell, control, log
        self.subsys = cls.log_subsys or cls.name.upper()
        self.stats = {"ipc_not_ready": 0, "ipc_closed": 0, "submit_full": 0, "ring_restarts": 0,
                      "deliveries": 0, "configs": 0, "other_groups": 0, "malformed": 0}
        self.counter_waiters = []
        self.submit = ShmRing.attach(eng.submit_name, wake_fd=plan.ring_wake_fd, role="producer")
        self.delivery = ShmRing.attach(eng.delivery_name, role="consumer")
        self.max_message_bytes = plan.totem.max_message_bytes
        self.ctx = HostContext(self, nodeid=plan.nodeid, cluster_name=plan.cluster_name,
                               config=getattr(plan, "config", None), options=eng.options,
                               clock_s=time.monotonic,
                               node_engines={e.service_id: e.name for e in plan.engines
                                             if e.service_id >= 0},
                               log_fn=lambda prio, msg: log.log(prio, self.subsys, msg))
        self.engine = cls(self.ctx)
        self.core = EngineCore(self.engine, self.ctx, plan.sync_services,
                               send_sync=lambda msg: self.submit_msg(SYNC_GROUP, msg, False),
                               on_completed=self._completed,
                               leader_service=sync_leader(plan))
        self.core.sync._log = lambda prio, msg: log.log(prio, "SYNC", msg)
        self.fc_level = FC_OFF_2          # until the first sync: nobody is admitted anyway
        self.ring_started = False
        self.ipc = None
        if cls.ipc_service:
            self.ipc = IpcServer(cls.ipc_service, _Ipc(self), suffix=plan.service_suffix,
                                 max_msg_bytes=cls.ipc_max_msg_bytes, authorize=self._authorize)
        control.counters_fn = self.counters
        control.handlers["counters"] = self._counters_reply
        control.handlers["node_state"] = self._node_state
        self.engine.start()

    # ---- submissions ---------------------------------------------------------------------
    def submit_space_bytes(self) -> int:
        used = int(ring_head(self.submit.hdr) - ring_tail(self.submit.hdr))
        free = self.submit.capacity_bytes - used - SUBMIT_MARGIN_BYTES - 8
        return max(min(free, self.max_message_bytes), 0)

    def submit_msg(self, group: bytes, msg: bytes, safe: bool) -> bool:
        if len(msg) > self.max_message_bytes:
            raise ValueError(f"exec message of {len(msg)} bytes: Totem carries at most "
                             f"{self.max_message_bytes}")
        if len(msg) + len(group) + 4 > self.submit_space_bytes():
            self.stats["submit_full"] += 1
            return False
        if not self.submit.push(RT_SUBMIT, group_message(group, msg), SUBMIT_SAFE if safe else 0):
            self.stats["submit_full"] += 1
            return False
        return True

    # ---- the loop ------------------------------------------------------------------------
    def run(self) -> int:
        try:
            while self.control.poll():
                self._drain()
                self.core.run_sync()
                self.ctx.run_timers()
                if self.ipc is not None:
                    self.ipc.process(0)
                self._flow_control()
                self._sleep()
        except NodeFatal as exc:
            self.log.error(self.subsys, str(exc))
            self.control.send({"op": "event", "ev": "fatal", "why": str(exc)})
            return EXIT_NODE_FATAL
        return 0

    def _sleep(self) -> None:
        timeout = self.control.tick_s
        nxt = self.ctx.next_timer_s()
        if nxt is not None:
            timeout = min(timeout, nxt)
        if self.core.sync.wants_run:
            timeout = min(timeout, SYNC_RETRY_S)
        extra = self.control.fds()
        if self.ipc is not None:
            wake_ms = self.ipc.next_wakeup_ms()
            if wake_ms is not None:
                timeout = min(timeout, wake_ms / 1000)
            extra = extra + [self.ipc.fileno()]
        self.doorbell.wait([self.delivery], timeout, extra_fds=extra)

    def _drain(self) -> None:
        h, d = self.delivery.hdr, self.delivery.data
        pos = ring_tail(h)
        for _ in range(BATCH_MAX):
            status, off, ln, rtype, _flags, nxt = ring_peek(h, d, pos)
            if status == PEEK_EMPTY:
                break
            if status != PEEK_RECORD:
                raise RuntimeError(f"delivery ring {self.delivery.name} has corrupt framing")
            self._record(rtype, memoryview(d[off:off + ln]))
            pos = nxt
            ring_release(h, pos)

    def _record(self, rtype: int, rec: memoryview) -> None:
        if rtype == RT_DELIVER:
            sender = DLV_HDR.unpack_from(rec, 0)[0]
            groups, payload = split_groups(rec[DLV_HDR_BYTES:])
            if groups is None:
                self.stats["malformed"] += 1
                return
            self.stats["deliveries"] += 1
            if SYNC_GROUP in groups:
                self.core.on_sync_message(sender, payload)
            if EXEC_GROUP in groups:
                self.core.on_exec(sender, payload)
            elif SYNC_GROUP not in groups:
                self.stats["other_groups"] += 1
        elif rtype == RT_CONFIG:
            kind, rep, seq, count, _ = CFG_HDR.unpack_from(rec, 0)
            members = struct.unpack_from(f"<{count}I", rec, CFG_HDR_BYTES)
            self.stats["configs"] += 1
            self.core.on_config(kind, RingId(rep, seq), members)
            self.fc_level = FC_OFF_2
            self._set_flow_control(FC_OFF_2)
        elif rtype == RT_RING_START:
            if self.ring_started or self.ctx.ring_id is not None:
                self.stats["ring_restarts"] += 1
                self.core.on_ring_lost()
            self.ring_started = True

    # ---- sync completion, flow control ---------------------------------------------------
    def _completed(self, ring_id, members) -> None:
        if self.core.sync.leader:
            self.log.notice("MAIN", "Completed service synchronization, ready to provide service.")
            self.control.send({"op": "event", "ev": "ready", "ring": [ring_id.nodeid, ring_id.seq],
                               "members": list(members)})

    def _flow_control(self) -> None:
        used = int(ring_head(self.submit.hdr) - ring_tail(self.submit.hdr))
        critical = used > FC_CRITICAL_FRACTION * self.submit.capacity_bytes
        level = FC_OFF_2 if (self.ctx.sync_in_progress or critical) else 0
        if level != self.fc_level:
            self.fc_level = level
            self._set_flow_control(level)

    def _set_flow_control(self, level: int) -> None:
        for conn in self.ctx.connections():
            conn.set_flow_control(level)
            if level:
                conn.stats["flow_control_count"] += 1

    # ---- admission and counters ------------------------------------------------------------
    def _authorize(self, creds) -> bool:
        """Corosync's cs_ipcs_connection_accept for a client that is not root: the engine
        may decide; else uidgid.config.* (corosync.conf, uidgid.d/) or the runtime
        uidgid.uid.N / uidgid.gid.N keys, asked of the node's cmap engine."""
        verdict = self.engine.authorize(creds)
        if verdict is None:
            keys = getattr(getattr(self.plan, "config", None), "keys", {}) or {}
            verdict = (f"uidgid.config.uid.{creds.uid}" in keys
                       or f"uidgid.config.gid.{creds.gid}" in keys
                       or uidgid_allowed_by_cmap(creds, self.plan.service_suffix))
        if not verdict:
            self.stats["ipc_denied"] = self.stats.get("ipc_denied", 0) + 1
            self.log.error(self.subsys, f"Denied connection attempt from {creds.uid}:{creds.gid} "
                           f"(pid {creds.pid})")
        return bool(verdict)

    def _node_state(self, msg: dict):
        """The supervisor's answer to our hello: when this engine (re)starts on a node that
        already finished a sync, clients are admitted now, not at the next membership."""
        if msg.get("ready") and not self.ctx.first_sync_done and self.ctx.ring_id is None:
            ring, members = msg.get("ring"), tuple(msg.get("members") or ())
            if ring:
                self.ctx.ring_id = RingId(int(ring[0]), int(ring[1]))
                self.ctx.members = members
                self.core.adopt_membership(members)
            self.ctx.first_sync_done = True
            self.ctx.sync_in_progress = False
            self.fc_level = 0
            self.log.notice(self.subsys, f"engine started on a synchronized node (ring "
                            f"{self.ctx.ring_id}, members {list(members)}); serving clients")
        return None

    def _counters_reply(self, msg: dict):
        waiters, self.counter_waiters = self.counter_waiters, []
        for cb in waiters:
            cb(msg.get("counters", {}))
        return None

    def counters(self) -> dict:
        out = {"engine": self.engine.counters(), "host": dict(self.stats),
               "core": dict(self.core.stats),
               "sync": {"state": self.core.sync.state, "completed": self.core.sync.completed_count,
                        "ring": str(self.ctx.ring_id) if self.ctx.ring_id else None},
               "submit": self.submit.counters(), "flow_control": self.fc_level}
        if self.ipc is not None:
            conns = {}
            for conn in self.ipc.connections.values():
                conns[f"{conn.creds.pid}.{id(conn):x}"] = {
                    "procname": getattr(conn, "procname", "?"), **dict(conn.stats),
                    "queued": conn.events_queued, "flow_control": self.fc_level}
            out["ipc"] = {"service_id": self.cls.service_id, "service": self.cls.ipc_service,
                          "connections": conns,
                          "global": {"active": len(conns),
                                     "closed": self.ipc.stats.get("disconnected", 0)},
                          "server": dict(self.ipc.stats)}
        return out

    def close(self) -> None:
        try:
            self.engine.close()
        finally:
            if self.ipc is not None:
                self.ipc.close()
            self.submit.close()
            self.delivery.close()
