"""Corosync's sync protocol (exec/sync.c), run independently in every engine process.

After each regular configuration every node multicasts, in totempg group "sync", the list
of its services that take part in sync (SERVICE_BUILD); once every member's list is in,
the union (sorted by service id) is processed one service at a time: the service's
`sync_process` runs until done, the node multicasts a BARRIER, and when every member's
barrier is delivered the service activates and the next one starts. A configuration
change during a sync aborts it (`sync_abort` of the service being processed).

coroproc runs one engine per process, so each process follows the whole protocol from
the ordered stream it is delivered (every process sees the same "sync" messages in the
same order) and sends only what is its own to send:
* the barrier of service S is sent by the local engine whose service id is S;
* SERVICE_BUILD, and barriers of services no local engine serves (Corosync's "Unknown
  External Service": present on other nodes only), by the node's sync leader — the
  engine with the lowest sync service id.
The driver is sans-I/O: the host feeds it configurations and "sync" messages and calls
`run()` each loop turn; it sends through `send(bytes) -> bool` (False: submit ring full,
retried on the next `run()`).
"""
from __future__ import annotations

import struct
from typing import Callable, Optional

from .api import (EXEC_HEADER, EXEC_HEADER_BYTES, SERVICES_COUNT_MAX, Configuration,
                  Engine, RingId)

MESSAGE_REQ_SYNC_BARRIER = 0
MESSAGE_REQ_SYNC_SERVICE_BUILD = 1
SERVICE_LIST_MAX = 128
# req_exec_service_build_message: header 16, ring_id @16 (12 packed), entries @32,
# service_list[128] @40 (int32 each) = 552 bytes; barrier: header 16, ring_id @16 = 32.
SERVICE_BUILD_BYTES = 40 + 4 * SERVICE_LIST_MAX
BARRIER_BYTES = 32
_ENTRIES = struct.Struct("<i")

ST_SERVICELIST_BUILD = "servicelist_build"
ST_PROCESS = "process"
ST_BARRIER = "barrier"
ST_IDLE = "idle"


def pack_service_build(ring_id: RingId, services: list[int]) -> bytes:
    if len(services) > SERVICE_LIST_MAX:
        raise ValueError(f"{len(services)} sync services: at most {SERVICE_LIST_MAX}")
    buf = bytearray(SERVICE_BUILD_BYTES)
    EXEC_HEADER.pack_into(buf, 0, MESSAGE_REQ_SYNC_SERVICE_BUILD, SERVICE_BUILD_BYTES)
    RingId.WIRE.pack_into(buf, 16, ring_id.nodeid, ring_id.seq)
    _ENTRIES.pack_into(buf, 32, len(services))
    struct.pack_into(f"<{len(services)}i", buf, 40, *services)
    return bytes(buf)


def pack_barrier(ring_id: RingId) -> bytes:
    buf = bytearray(BARRIER_BYTES)
    EXEC_HEADER.pack_into(buf, 0, MESSAGE_REQ_SYNC_BARRIER, BARRIER_BYTES)
    RingId.WIRE.pack_into(buf, 16, ring_id.nodeid, ring_id.seq)
    return bytes(buf)


class SyncMessageError(ValueError):
    pass


def parse_sync_message(msg) -> tuple[int, RingId, Optional[list[int]]]:
    """(kind, ring_id, service list or None) of one "sync" group message."""
    if len(msg) < BARRIER_BYTES - 4:
        raise SyncMessageError(f"sync message of {len(msg)} bytes: shorter than a barrier (28)")
    msg_id, size = EXEC_HEADER.unpack_from(msg, 0)
    ring_id = RingId.unpack_from(msg, EXEC_HEADER_BYTES)
    if msg_id == MESSAGE_REQ_SYNC_BARRIER:
        return msg_id, ring_id, None
    if msg_id != MESSAGE_REQ_SYNC_SERVICE_BUILD:
        raise SyncMessageError(f"sync message id {msg_id}: allowed 0 (barrier), 1 (service build)")
    if len(msg) < 40:
        raise SyncMessageError(f"service build of {len(msg)} bytes: shorter than its header (40)")
    (count,) = _ENTRIES.unpack_from(msg, 32)
    if not 0 <= count <= SERVICE_LIST_MAX or len(msg) < 40 + 4 * count:
        raise SyncMessageError(f"service build lists {count} services in {len(msg)} bytes")
    services = list(struct.unpack_from(f"<{count}i", msg, 40))
    if any(not 0 <= s < SERVICES_COUNT_MAX for s in services):
        raise SyncMessageError(f"service build names a service id outside 0..63: {services}")
    return msg_id, ring_id, services


class SyncDriver:
    """One process's view of the node's sync. `engine` is this process's engine (it may
    not take part in sync); `node_services` are the sync service ids of every engine of
    the node (identical in all its processes)."""

    def __init__(self, nodeid: int, engine: Optional[Engine], node_services: list[int],
                 send: Callable[[bytes], bool],
                 on_completed: Callable[[RingId, tuple], None],
                 log: Callable[[str, str], None], leader_service: Optional[int] = None):
        self.nodeid = nodeid
        self.engine = engine if engine is not None and engine.has_sync else None
        self.own_service = self.engine.service_id if self.engine else None
        self.node_services = sorted(set(node_services))
        # the leader: the lowest sync service, or (a node without any) the engine the
        # host names — some process must still send the node's (empty) service list
        if leader_service is None and self.node_services:
            leader_service = self.node_services[0]
        self.leader = engine is not None and engine.service_id == leader_service
        self._send = send
        self._on_completed = on_completed
        self._log = log
        self.state = ST_IDLE
        self.ring_id: Optional[RingId] = None
        self.members: tuple[int, ...] = ()
        self.trans_list: tuple[int, ...] = ()
        self.received: dict[int, bool] = {}
        self.services: list[int] = []
        self.idx = 0
        self.in_progress = False      # Corosync's sync_in_process (main.c)
        self._outbox: list[bytes] = []
        self._own_done = False        # own service's sync_process returned True this phase
        self.completed_count = 0

    # ---- restart without losing state ------------------------------------------------
    def save_state(self) -> dict:
        rid = self.ring_id
        return {"state": self.state, "ring": [rid.nodeid, rid.seq] if rid else None,
                "members": list(self.members), "trans": list(self.trans_list),
                "received": [[n, v] for n, v in self.received.items()],
                "services": list(self.services), "idx": self.idx,
                "in_progress": self.in_progress, "outbox": [m.hex() for m in self._outbox],
                "own_done": self._own_done, "completed": self.completed_count}

    def load_state(self, st: dict) -> None:
        self.state = st["state"]
        self.ring_id = RingId(*st["ring"]) if st["ring"] else None
        self.members = tuple(st["members"])
        self.trans_list = tuple(st["trans"])
        self.received = {n: v for n, v in st["received"]}
        self.services = list(st["services"])
        self.idx = st["idx"]
        self.in_progress = st["in_progress"]
        self._outbox = [bytes.fromhex(m) for m in st["outbox"]]
        self._own_done = st["own_done"]
        self.completed_count = st["completed"]

    # ---- inputs ---------------------------------------------------------------------
    def on_config(self, conf: Configuration) -> None:
        if self.in_progress:
            self._abort()
        self.in_progress = True
        if conf.regular:
            self._start(conf)
        else:
            self.trans_list = conf.members

    def on_message(self, sender: int, msg) -> None:
        kind, ring_id, services = parse_sync_message(msg)
        if ring_id != self.ring_id:
            self._log("debug", "barrier for old ring - discarding" if services is None
                      else "service build for old ring - discarding")
            return
        if kind == MESSAGE_REQ_SYNC_SERVICE_BUILD:
            self._service_build(sender, services)
        else:
            self._barrier(sender)

    def run(self) -> None:
        """Send what is waiting and run this process's share of the current phase."""
        while self._outbox:
            if not self._send(self._outbox[0]):
                return
            self._outbox.pop(0)
        if self.state != ST_PROCESS or self.idx >= len(self.services):
            return
        service = self.services[self.idx]
        if service == self.own_service:
            if not self._own_done:
                self._own_done = bool(self.engine.sync_process())
                if not self._own_done:
                    return
            self._enter_barrier()
        elif self.leader and service not in self.node_services:
            self._enter_barrier()   # Unknown External Service: nothing to process here
        # else: another local process owns the barrier

    @property
    def wants_run(self) -> bool:
        """True while run() has work (the host then keeps its loop spinning)."""
        if self._outbox:
            return True
        return (self.state == ST_PROCESS and self.idx < len(self.services)
                and (self.services[self.idx] == self.own_service
                     or (self.leader and self.services[self.idx] not in self.node_services)))

    # ---- the protocol --------------------------------------------------------------
    def _start(self, conf: Configuration) -> None:
        self.ring_id = conf.ring_id
        self.members = conf.members
        self.state = ST_SERVICELIST_BUILD
        self.received = {n: False for n in conf.members}
        self.idx = 0
        self.services = list(self.node_services)
        if self.leader:
            self._outbox.append(pack_service_build(self.ring_id, self.node_services))
        # init for locally known services (here: this process's engine), with the
        # transitional members that are still members
        trans = tuple(n for n in self.trans_list if n in conf.members)
        self.trans_list = trans
        if self.engine is not None:
            self.engine.sync_init(trans, conf.members, conf.ring_id)

    def _service_build(self, sender: int, services: list[int]) -> None:
        if self.state != ST_SERVICELIST_BUILD:
            # a repeat (an engine restarted inside a sync sends its message again):
            # the service list of this ring is already settled
            self._log("debug", f"service build from node {sender} after the list was built - ignored")
            return
        added = [s for s in services if s not in self.services]
        if added:
            self.services = sorted(self.services + added)
        if sender in self.received:
            self.received[sender] = True
        if all(self.received.values()):
            self._log("debug", "enter sync process")
            self._process_enter()

    def _barrier(self, sender: int) -> None:
        if self.state not in (ST_PROCESS, ST_BARRIER) or self.idx >= len(self.services):
            # a repeat after this ring's sync completed (see _service_build)
            self._log("debug", f"barrier from node {sender} outside a sync phase - ignored")
            return
        if sender in self.received:
            self.received[sender] = True
        if not all(self.received.values()):
            return
        service = self.services[self.idx]
        self._log("debug", f"Committing synchronization for service {service}")
        if service == self.own_service:
            self.engine.sync_activate()
        self.idx += 1
        if self.idx == len(self.services):
            self._completed()
        else:
            self._process_enter()

    def _process_enter(self) -> None:
        self.state = ST_PROCESS
        if not self.services:
            self._completed()
            return
        for n in self.received:
            self.received[n] = False
        self._own_done = False

    def _enter_barrier(self) -> None:
        self.state = ST_BARRIER
        if not self._send(pack_barrier(self.ring_id)):
            self._outbox.append(pack_barrier(self.ring_id))

    def _completed(self) -> None:
        self.state = ST_IDLE
        self.in_progress = False
        self.completed_count += 1
        self._on_completed(self.ring_id, self.members)

    def _abort(self) -> None:
        if (self.state == ST_PROCESS and self.idx < len(self.services)
                and self.services[self.idx] == self.own_service):
            # as Corosync: only the service being processed is told; the others reset
            # themselves in their next sync_init
            self.engine.sync_abort()
        # old barriers must not count for the next ring (Corosync zeroes my_ring_id)
        self.ring_id = None
        self._outbox.clear()
        self.state = ST_IDLE
