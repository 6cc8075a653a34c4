"""A deterministic multi-node harness for engines: N virtual nodes, one total order.

Engines are a deterministic function of the ordered stream they are delivered plus their
local clients' requests; this harness supplies both without processes or sockets, so
engine semantics (sync, CPG confchg order, CMAP config_version, …) can be tested over
many seeded interleavings and replayed from a seed.

Model (what Totem gives engines, simplified where engines cannot tell the difference):
* Nodes are grouped into partitions; each partition is one ring with one FIFO of
  multicast messages, delivered to every member of the partition in the same order,
  sender included.
* `configure(partitions)` changes the membership: every message still queued in an old
  ring is first delivered to that ring's live members (Totem recovers them before the
  transitional configuration), then each node gets a transitional configuration (old
  ring ∩ new ring) and a regular one with a fresh ring id.
* Which node runs next and how many messages are delivered between engine turns is
  drawn from the seed, so sync phases, client requests and deliveries interleave
  differently per seed.
Clients are `SimConn` objects with the IpcConnection methods engines use; their events
are recorded in order.
"""
from __future__ import annotations

import collections
import random
from dataclasses import dataclass, field
from typing import Callable, Optional

from .api import (CONFIG_REGULAR, CONFIG_TRANSITIONAL, DEFER, EXEC_GROUP, EXEC_HEADER,
                  EXEC_HEADER_BYTES, SYNC_GROUP, Engine, RingId, exec_id)
from .context import BaseContext
from .core import EngineCore

DEFAULT_SPACE_BYTES = 4 << 20
EVENT_QUEUE_MAX = 1024


class Credentials:
    __slots__ = ("gid", "pid", "uid")

    def __init__(self, pid: int, uid: int = 0, gid: int = 0):
        self.pid, self.uid, self.gid = pid, uid, gid


class SimConn:
    """An in-process client connection: what an engine sees of a libqb connection."""

    _next_id = 0

    def __init__(self, bus: "SimBus", nodeid: int, service_id: int, pid: int,
                 uid: int = 0, gid: int = 0, event_queue_max: int = EVENT_QUEUE_MAX):
        SimConn._next_id += 1
        self.id = SimConn._next_id
        self.bus = bus
        self.nodeid = nodeid
        self.service_id = service_id
        self.creds = Credentials(pid, uid, gid)
        self.context = None
        self.closed = False
        self.flow_control = 0
        self.events: list[tuple[int, bytes]] = []     # (msg_id, body) in delivery order
        self.responses: list[tuple[int, int, bytes]] = []   # deferred answers, in order
        self.event_queue_max = event_queue_max
        self.stats = collections.Counter()

    def send_event(self, msg_id: int, payload: bytes, error: int = 0) -> bool:
        if self.closed:
            return False
        if len(self.events) >= self.event_queue_max:
            self.stats["events_dropped"] += 1
            return False
        self.events.append((msg_id, bytes(payload)))
        self.stats["events"] += 1
        return True

    def send_response(self, msg_id: int, error: int, payload: bytes = b"") -> None:
        """A deferred answer (a handler returned None and answers later)."""
        if not self.closed:
            self.responses.append((msg_id, error, bytes(payload)))

    def set_flow_control(self, level: int) -> None:
        self.flow_control = level

    @property
    def events_queued(self) -> int:
        return len(self.events)

    def take_events(self) -> list[tuple[int, bytes]]:
        out, self.events = self.events, []
        return out

    def __repr__(self):
        return f"SimConn(node={self.nodeid}, service={self.service_id}, pid={self.creds.pid})"


class SimContext(BaseContext):
    def __init__(self, bus: "SimBus", node: "SimNode", engine_cls: type[Engine], **kw):
        super().__init__(**kw)
        self.bus = bus
        self.node = node
        self.service_id = engine_cls.service_id
        self.space_bytes = DEFAULT_SPACE_BYTES   # tests shrink it to model a full submit ring
        self.sent = 0
        self.sync_sent = False    # a live turn sent a sync message (snapshot follows)

    def mcast(self, fn: int, body: bytes, *, safe: bool = False) -> bool:
        if self.replaying:
            return True     # sent by the process before the restart
        msg = EXEC_HEADER.pack(exec_id(self.service_id, fn), EXEC_HEADER_BYTES + len(body)) + body
        if len(msg) > self.space_bytes:
            return False
        self.sent += 1
        self.bus._submit(self.node, EXEC_GROUP, msg)
        return True

    def mcast_space_bytes(self) -> int:
        return self.space_bytes

    def connections(self) -> list:
        return [c for c in self.node.conns if c.service_id == self.service_id and not c.closed]

    def disconnect(self, conn, why: str) -> None:
        self.bus.disconnect(conn, why)

    def request_node_counters(self, callback) -> None:
        counters = {f"{e.name}": e.counters() for e, _c in self.node.engines.values()}
        self.bus._later(self.node, lambda: callback(counters))

    def config_keys_changed(self, changed: tuple[str, ...], entries: dict) -> None:
        for engine, _c in self.node.engines.values():
            if engine.service_id != self.service_id:
                self.bus._later(self.node, lambda e=engine: e.on_config_keys(changed, entries))

    def supervisor_request(self, op: str, args: dict, callback=None) -> None:
        """Recorded in node.supervisor_requests; answered {"ok": True} on the next turn
        (tests may answer otherwise through bus.supervisor_answer)."""
        self.node.supervisor_requests.append((op, dict(args)))
        if callback is not None:
            reply = self.bus.supervisor_answer(self.node.nodeid, op, args)
            self.bus._later(self.node, lambda: callback(reply))


@dataclass
class SimNode:
    nodeid: int
    engines: dict = field(default_factory=dict)     # service_id -> (engine, core)
    conns: list = field(default_factory=list)
    alive: bool = True
    pending: list = field(default_factory=list)     # callbacks for the node's next turn
    log: list = field(default_factory=list)         # (service name, priority, message)
    completed: list = field(default_factory=list)   # ring ids whose sync completed
    supervisor_requests: list = field(default_factory=list)   # (op, args) asked by engines
    journals: dict = field(default_factory=dict)    # service id -> snapshot + later records
    classes: list = field(default_factory=list)
    node_services: list = field(default_factory=list)
    leader: int = 0


class SimBus:
    def __init__(self, engine_classes: list[type[Engine]], nodeids, *, seed: int = 0,
                 config_for: Optional[Callable[[int], object]] = None,
                 options: Optional[dict] = None, cluster_name: str = "sim",
                 extra_engines: Optional[dict] = None):
        self.engine_classes = sorted(engine_classes, key=lambda c: c.service_id)
        # nodeid -> more engine classes on that node only (a service other nodes lack)
        self.extra_engines = extra_engines or {}
        self.rng = random.Random(seed)
        self.seed = seed
        self.clock_s = 0.0
        self.config_for = config_for or (lambda nodeid: None)
        self.options = options or {}
        self.cluster_name = cluster_name
        self.nodes: dict[int, SimNode] = {}
        self.partitions: list[frozenset] = []
        self.queues: dict[frozenset, collections.deque] = {}
        self.ring_ids: dict[frozenset, RingId] = {}
        self.ring_seq = 0
        self.delivered = 0
        for nodeid in nodeids:
            self._boot(nodeid)

    # ---- nodes -----------------------------------------------------------------------------
    def _boot(self, nodeid: int) -> SimNode:
        node = SimNode(nodeid)
        self.nodes[nodeid] = node
        classes = sorted(self.engine_classes + list(self.extra_engines.get(nodeid, ())),
                         key=lambda c: c.service_id)
        node_services = [c.service_id for c in classes if c.has_sync]
        leader = node_services[0] if node_services else classes[0].service_id
        node.classes = classes
        node.node_services = node_services
        node.leader = leader
        for cls in classes:
            node.engines[cls.service_id] = self._make_unit(node, cls)
        self._link_siblings(node)
        for engine, _core in node.engines.values():
            engine.start()
        return node

    def _make_unit(self, node: "SimNode", cls: type[Engine]):
        ctx = SimContext(self, node, cls, nodeid=node.nodeid, cluster_name=self.cluster_name,
                         config=self.config_for(node.nodeid),
                         options=self.options.get(cls.name, {}),
                         clock_s=lambda: self.clock_s,
                         node_engines={c.service_id: c.name for c in node.classes},
                         log_fn=lambda prio, msg: node.log.append((cls.name, prio, msg)))
        engine = cls(ctx)

        def send_sync(msg: bytes) -> bool:
            if not ctx.replaying:
                self._submit(node, SYNC_GROUP, msg)
                ctx.sync_sent = True
            return True

        def completed(rid, _members):
            if cls is node.classes[0]:
                node.completed.append(rid)
        core = EngineCore(engine, ctx, node.node_services, send_sync=send_sync,
                          on_completed=completed, leader_service=node.leader)
        return engine, core

    @staticmethod
    def _link_siblings(node: "SimNode") -> None:
        # one node of the harness is one process: every engine is every other's sibling
        for _engine, core in node.engines.values():
            core.ctx.siblings = {sid: e for sid, (e, _c) in node.engines.items()}

    # ---- per-engine restart -------------------------------------------------------------------
    def _journal(self, node: "SimNode", sid: int, record: tuple) -> None:
        """Keep what a restarted engine must replay: the records since its last snapshot.
        Snapshots are taken at seeded intervals, as the engine process takes them."""
        engine, core = node.engines[sid]
        j = node.journals.setdefault(sid, {"snap": None, "records": [], "every": 0})
        if j["every"] == 0:
            j["every"] = self.rng.randint(1, 12)
        j["records"].append(record)
        if len(j["records"]) >= j["every"]:
            data = engine.snapshot()
            if data is not None:
                j["snap"] = (bytes(data), core.save_state())
                j["records"] = []
                j["every"] = self.rng.randint(1, 12)

    def _snapshot_now(self, node: "SimNode", sid: int) -> None:
        """As the engine process after a live turn that sent a sync message: snapshot at
        once, so a restart never sends that message (a barrier) a second time."""
        engine, core = node.engines[sid]
        j = node.journals.get(sid)
        if j is None or j["snap"] is None:
            return      # nothing to restore yet: restart_engine refuses anyway
        data = engine.snapshot()
        if data is not None:
            j["snap"] = (bytes(data), core.save_state())
            j["records"] = []

    def restart_engine(self, nodeid: int, service_id: int) -> Engine:
        """Kill one engine of one node and start it again as the engine process does:
        restore its last snapshot, replay the ordered records that followed (mcasts
        suppressed), then on_restarted(). Its clients are disconnected."""
        node = self.nodes[nodeid]
        old, _core = node.engines[service_id]
        old.close()
        for conn in [c for c in node.conns if c.service_id == service_id]:
            conn.closed = True
            node.conns.remove(conn)
        cls = type(old)
        engine, core = self._make_unit(node, cls)
        node.engines[service_id] = (engine, core)
        self._link_siblings(node)
        engine.start()
        j = node.journals.get(service_id)
        if j is None or j["snap"] is None:
            raise RuntimeError(f"engine {cls.name} on node {nodeid} has no snapshot to restore")
        data, core_state = j["snap"]
        core.load_state(core_state)
        engine.restore(data)
        core.ctx.replaying = True
        for record in j["records"]:
            kind = record[0]
            if kind == "config":
                core.on_config(*record[1:])
            elif kind == "sync":
                core.on_sync_message(record[1], memoryview(record[2]))
            else:
                core.on_exec(record[1], memoryview(record[2]))
        core.ctx.replaying = False
        core.sync._outbox.clear()
        engine.on_restarted(True)
        return engine

    def supervisor_answer(self, nodeid: int, op: str, args: dict) -> dict:
        """What the node's supervisor answers an engine (override in tests)."""
        return {"ok": True}

    def engine(self, nodeid: int, service_id: int) -> Engine:
        return self.nodes[nodeid].engines[service_id][0]

    def crash(self, nodeid: int) -> None:
        """The node dies: its clients vanish with it; the others reconfigure later."""
        node = self.nodes[nodeid]
        node.alive = False
        for conn in node.conns:
            conn.closed = True
        for engine, _core in node.engines.values():
            engine.close()

    def restart(self, nodeid: int) -> SimNode:
        """A fresh node with the same id (not yet in any ring: call configure)."""
        if self.nodes[nodeid].alive:
            self.crash(nodeid)
        return self._boot(nodeid)

    # ---- membership ------------------------------------------------------------------------
    def configure(self, partitions) -> None:
        """Install new rings: `partitions` is a list of node id lists (live nodes only)."""
        new = [frozenset(p) for p in partitions if p]
        seen = set()
        for p in new:
            if seen & p:
                raise ValueError(f"node(s) {sorted(seen & p)} in two partitions")
            seen |= p
            dead = [n for n in p if not self.nodes[n].alive]
            if dead:
                raise ValueError(f"node(s) {dead} are crashed: restart them first")
        for old in self.partitions:
            self._flush(old)
        old_of = {n: p for p in self.partitions for n in p}
        self.partitions = new
        self.queues = {p: collections.deque() for p in new}
        for p in new:
            self.ring_seq += 4
            rid = RingId(min(p), self.ring_seq)
            self.ring_ids[p] = rid
            members = tuple(sorted(p))
            for n in members:
                trans = tuple(sorted(old_of.get(n, frozenset()) & p))
                self._config(n, CONFIG_TRANSITIONAL, rid, trans)
                self._config(n, CONFIG_REGULAR, rid, members)

    def _config(self, nodeid: int, kind: int, rid: RingId, members) -> None:
        node = self.nodes[nodeid]
        for sid, (_engine, core) in list(node.engines.items()):
            core.on_config(kind, rid, members)
            self._journal(node, sid, ("config", kind, rid, tuple(members)))

    def _partition_of(self, nodeid: int) -> Optional[frozenset]:
        for p in self.partitions:
            if nodeid in p:
                return p
        return None

    # ---- messages ----------------------------------------------------------------------------
    def _submit(self, node: SimNode, group: bytes, msg: bytes) -> None:
        p = self._partition_of(node.nodeid)
        if p is None or not node.alive:
            return  # not in a ring: Totem would hold it; engines resend after the next sync
        self.queues[p].append((node.nodeid, group, bytes(msg)))

    def _flush(self, p: frozenset) -> None:
        q = self.queues.get(p)
        while q:
            self._deliver(p, *q.popleft())

    def _deliver(self, p: frozenset, sender: int, group: bytes, msg: bytes) -> None:
        self.delivered += 1
        view = memoryview(msg)
        for n in sorted(p):
            node = self.nodes[n]
            if not node.alive:
                continue
            for sid, (_engine, core) in list(node.engines.items()):
                if group == SYNC_GROUP:
                    core.on_sync_message(sender, view)
                    self._journal(node, sid, ("sync", sender, msg))
                elif (EXEC_HEADER.unpack_from(msg, 0)[0] >> 16) == core.engine.service_id:
                    core.on_exec(sender, view)
                    self._journal(node, sid, ("exec", sender, msg))

    def _later(self, node: SimNode, fn) -> None:
        node.pending.append(fn)

    # ---- scheduling ------------------------------------------------------------------------------
    def _node_turn(self, node: SimNode) -> None:
        pending, node.pending = node.pending, []
        for fn in pending:
            fn()
        for sid, (engine, core) in list(node.engines.items()):
            core.ctx.run_timers()
            core.ctx.sync_sent = False
            core.run_sync()
            if core.ctx.sync_sent:
                self._snapshot_now(node, sid)

    def _busy(self) -> bool:
        if any(self.queues.values()):
            return True
        for node in self.nodes.values():
            if node.alive and (node.pending or any(core.sync.wants_run
                                                   for _e, core in node.engines.values())):
                return True
        return False

    def step(self) -> None:
        """One random action: deliver a few messages of one ring, or give a node a turn."""
        live = [n for n in self.nodes.values() if n.alive]
        busy_rings = [p for p in self.partitions if self.queues[p]]
        if busy_rings and self.rng.random() < 0.6:
            p = self.rng.choice(busy_rings)
            for _ in range(self.rng.randint(1, 4)):
                if not self.queues[p]:
                    break
                self._deliver(p, *self.queues[p].popleft())
        elif live:
            self._node_turn(self.rng.choice(live))

    def run(self, max_steps: int = 100000) -> int:
        """Step until nothing is queued and no engine has work; returns steps taken."""
        for i in range(max_steps):
            if not self._busy():
                return i
            self.step()
        raise RuntimeError(f"seed {self.seed}: still busy after {max_steps} steps")

    def advance(self, seconds: float) -> None:
        """Move the virtual clock (timers fire on the nodes' next turns) and run."""
        self.clock_s += seconds
        for node in self.nodes.values():
            if node.alive:
                self._node_turn(node)
        self.run()

    # ---- clients -------------------------------------------------------------------------------
    def connect(self, nodeid: int, service_id: int, pid: int, uid: int = 0, gid: int = 0,
                event_queue_max: int = EVENT_QUEUE_MAX) -> SimConn:
        node = self.nodes[nodeid]
        engine, core = node.engines[service_id]
        conn = SimConn(self, nodeid, service_id, pid, uid, gid, event_queue_max)
        verdict = engine.on_connect(conn)
        if verdict is False or (isinstance(verdict, int) and not isinstance(verdict, bool)
                                and verdict < 0):
            raise ConnectionRefusedError(f"engine {engine.name} refused pid {pid}: {verdict}")
        node.conns.append(conn)
        return conn

    def request(self, conn: SimConn, msg_id: int, body: bytes):
        """One lib request through the same rules as the engine process; the reply or None.
        A deferred request is offered again after the bus ran (as the IPC server offers
        it again on a later turn), until the engine takes it or the bus has nothing to run."""
        if conn.closed:
            raise ConnectionError(f"{conn!r} is closed")
        _engine, core = self.nodes[conn.nodeid].engines[conn.service_id]
        conn.stats["requests"] += 1
        while True:
            reply = core.on_lib_request(conn, msg_id, memoryview(bytes(body)), 16 + len(body))
            if reply is not DEFER or self.run() == 0:
                return reply

    def disconnect(self, conn: SimConn, why: str = "client closed") -> None:
        if conn.closed:
            return
        conn.closed = True
        node = self.nodes[conn.nodeid]
        if conn in node.conns:
            node.conns.remove(conn)
        if node.alive:
            node.engines[conn.service_id][0].on_disconnect(conn)
