"""The simulated cluster: N Totem cores, a virtual clock, one event queue, one seed.

Theory of operation. Virtual time is an integer count of microseconds. Everything that
will happen is an entry `(t_us, tie, kind, node, data)` on one heap; `tie` is a global
counter, so entries with equal times run in the order they were scheduled and a seed
replays exactly. Cores take no time to process an input. After every call into a core
the world carries out its outputs (send → network → heap, deliver/config → event log,
ringid → the node's persisted ring seq) and re-asks the core for its next deadline.

Timers are lazy: each node has at most one *valid* wake-up on the heap (`wake_us`); a
wake-up is pushed only when the core's deadline moves earlier than it. When a wake-up
fires too early (the deadline moved later) it just re-arms. Spurious wake-ups are
harmless by construction: the core is only called when its deadline has passed.

Node clocks: a node sees `now + clock_offset_us` (clock jumps only go forward, like a
monotonic clock after a VM suspend). A slow node's clock runs `factor` times slower than
virtual time (local = anchor_local + (now - anchor_global) / factor), so its timers fire
`factor` times later than due, and a deadline maps to one stable virtual time.

A paused node runs nothing: its frames wait in a bounded socket buffer and its timers
fire late, when it resumes. A crashed node's object is dropped; a restart builds a
new core that gets back the ring seq the old one persisted.

All randomness: one `random.Random` per subsystem (setup, faults, net, workload, world),
each derived from the seed and the subsystem's name.
"""
from __future__ import annotations

import heapq
import itertools
import random
import traceback
from collections import deque
from dataclasses import dataclass, field, replace

from coroproc.sim import faults as faults_mod
from coroproc.sim import params
from coroproc.sim.net import VirtualNetwork
from coroproc.sim.trace import Trace, load_log_names, logs_digest
from coroproc.sim.workload import Workload, crc32, decode_id

EV_FRAME = 0
EV_TIMER = 1
EV_FAULT = 2
EV_TICK = 3
EV_BOOT = 4
EV_TRANS_ACK = 5
NEVER_US = 1 << 62
BOOT_SPREAD_US = 20_000      # nodes boot at random times in [0, 20 ms)
HARNESS_VIOLATIONS_MAX = 100
RPOS_BITS = 12               # deliver rseq = Totem seq << 12 | position in the Totem message
RPOS_LIMIT = 1 << RPOS_BITS


@dataclass(frozen=True)
class SimConfig:
    """Everything a run depends on besides the cores' own code. `for_seed` draws it."""
    seed: int
    nodes: int
    token_ms: int
    fault_ms: int = params.FAULT_MS
    quiet_ms: int | None = None         # None: 2 × liveness bound + QUIET_WINDOW_MS
    drain_ms: int = params.DRAIN_MS
    latency_base_us: int = params.LATENCY_BASE_US
    latency_jitter_us: int = params.LATENCY_JITTER_US
    background_loss: float = 0.0
    background_dup: float = 0.0
    bursts_per_s: float = 6.0
    storms: int = 0
    faults: bool = True
    workload: bool = True
    socket_buffer_frames: int = params.SOCKET_BUFFER_FRAMES
    token_coefficient_ms: int = params.TOKEN_COEFFICIENT_MS
    # > 0: the cores wait for a trans-ack after each regular configuration (Corosync's
    # waiting_trans_ack), which each node's "services" give up to this long after it
    trans_ack_ms: int = 0
    # the representative keeps a quiet ring's token this long per visit (0: not at all)
    idle_token_pace_us: int = 0

    @classmethod
    def for_seed(cls, seed: int, nodes: int, **overrides) -> "SimConfig":
        rng = random.Random(params.derive_seed(seed, "setup"))
        drawn = cls(
            seed=seed,
            nodes=nodes,
            token_ms=rng.choice(params.TOKEN_MS_CHOICES),
            background_loss=0.0 if rng.random() < 0.5 else round(rng.uniform(0, params.BACKGROUND_LOSS_MAX), 4),
            background_dup=0.0 if rng.random() < 0.5 else round(rng.uniform(0, params.BACKGROUND_DUP_MAX), 4),
            bursts_per_s=round(rng.uniform(params.BURSTS_PER_S_MIN, params.BURSTS_PER_S_MAX), 2),
            storms=rng.randint(1, params.STORMS_MAX) if rng.random() < params.STORM_PROBABILITY else 0,
            # its own stream, so the draws above (and every recorded seed) stay as they were
            trans_ack_ms=random.Random(params.derive_seed(seed, "trans_ack")).choice(
                params.TRANS_ACK_MS_CHOICES),
            idle_token_pace_us=random.Random(params.derive_seed(seed, "idle_token_pace")).choice(
                params.IDLE_TOKEN_PACE_US_CHOICES),
        )
        # the quiet phase is re-derived from the final timers unless it is given
        return replace(drawn, **{"quiet_ms": None, **overrides})

    def __post_init__(self) -> None:
        assert self.nodes >= 2 and self.token_ms > 0 and self.fault_ms >= 0
        if self.quiet_ms is None:
            bound_ms = self.liveness_bound_us // 1000
            object.__setattr__(self, "quiet_ms", 2 * bound_ms + params.QUIET_WINDOW_MS)
        assert self.quiet_ms > 0

    @property
    def effective_token_ms(self) -> int:
        """Corosync: token + (nodes - 2) × token_coefficient when there are 3 nodes or more."""
        return self.token_ms + (self.nodes - 2) * self.token_coefficient_ms if self.nodes >= 3 else self.token_ms

    @property
    def consensus_ms(self) -> int:
        return int(1.2 * self.effective_token_ms)

    @property
    def liveness_bound_us(self) -> int:
        """token + consensus + slack, slack = 2 × (token + consensus) + 500 ms (effective values)."""
        token_ms = self.effective_token_ms
        slack_ms = params.SLACK_ROUNDS * (token_ms + self.consensus_ms) + params.SLACK_EXTRA_MS
        return (token_ms + self.consensus_ms + slack_ms) * 1000

    @property
    def end_us(self) -> int:
        return (self.fault_ms + self.quiet_ms) * 1000

    @property
    def quiet_from_us(self) -> int:
        return self.fault_ms * 1000


def make_totem_config(sim: SimConfig):
    """The core's TotemConfig for this run: small Corosync-valid timers, rest defaulted."""
    from coroproc.ringproc.config import TotemConfig
    nodelist = tuple(range(1, sim.nodes + 1))
    kwargs = {"token_ms": sim.token_ms, "nodelist": nodelist,
              "token_coefficient_ms": sim.token_coefficient_ms}
    if "new_message_queue_bytes" in _accepted_fields(TotemConfig):
        kwargs["new_message_queue_bytes"] = params.NEW_MESSAGE_QUEUE_BYTES
    # Small sort queues and reassembly buffers: the workload stays far below them, and a
    # 20-node run allocates (and zeroes) them for every node and every restart.
    kwargs["queue_slots"] = params.QUEUE_SLOTS
    kwargs["max_message_bytes"] = params.MAX_MESSAGE_BYTES
    if sim.trans_ack_ms > 0:
        kwargs["wait_trans_ack"] = True
    if sim.idle_token_pace_us > 0:
        kwargs["idle_token_pace_us"] = sim.idle_token_pace_us
    return TotemConfig(**kwargs)


def _accepted_fields(cls) -> set[str]:
    fields = getattr(cls, "__dataclass_fields__", None)
    if fields is not None:
        return set(fields)
    import inspect
    return set(inspect.signature(cls).parameters)


def totem_timeouts_us(totem_config, sim: SimConfig) -> tuple[int, int]:
    """(effective token timeout, consensus timeout) in µs, as the core will use them."""
    token_ms = getattr(totem_config, "effective_token_ms", sim.effective_token_ms)
    consensus_ms = getattr(totem_config, "effective_consensus_ms", sim.consensus_ms)
    return int(token_ms * 1000), int(consensus_ms * 1000)


def default_node_factory(totem_config, nodeid: int, ring_seq: int):
    from coroproc.ringproc.node import TotemNode
    return TotemNode(totem_config, nodeid=nodeid, ring_seq=ring_seq)


class RunAborted(Exception):
    """The run cannot go on (a frame storm); becomes a harness violation."""

    def __init__(self, prop: str, message: str) -> None:
        super().__init__(message)
        self.prop = prop
        self.message = message


@dataclass
class HarnessViolation:
    """Something the harness itself saw go wrong (a core exception, a bad output)."""
    prop: str
    node: int
    message: str


@dataclass
class RingSeen:
    members: tuple[int, ...]
    first_us: int
    installed_by: list[int] = field(default_factory=list)


class World:
    """One simulated run. Build it, call run(), read logs / stats / trace."""

    def __init__(self, sim: SimConfig, *, node_factory=None, totem_config=None,
                 schedule: faults_mod.Schedule | None = None, trace: bool = False,
                 trace_sink=None) -> None:
        assert sim.nodes >= 2, f"need at least 2 nodes, got {sim.nodes}"
        assert sim.drain_ms * 1000 < sim.end_us, f"drain {sim.drain_ms} ms must be shorter than the run"
        self.sim = sim
        self.nodeids = tuple(range(1, sim.nodes + 1))
        self.totem = totem_config if totem_config is not None else make_totem_config(sim)
        self.factory = node_factory or default_node_factory
        self.token_us, self.consensus_us = totem_timeouts_us(self.totem, sim)
        assert self.bound_us == sim.liveness_bound_us, (
            f"the core's timers (token {self.token_us} us, consensus {self.consensus_us} us) differ "
            f"from the ones the quiet phase was sized for")
        stream = lambda name: random.Random(params.derive_seed(sim.seed, name))  # noqa: E731
        self.rng = stream("world")
        self.net = VirtualNetwork(self.nodeids, stream("net"), latency_base_us=sim.latency_base_us,
                                  latency_jitter_us=sim.latency_jitter_us)
        self.net.loss = sim.background_loss
        self.net.dup = sim.background_dup
        if schedule is None:
            if sim.faults:
                schedule = faults_mod.generate(stream("faults"), self.nodeids,
                                               fault_us=sim.quiet_from_us, token_us=self.token_us)
            else:
                schedule = faults_mod.Schedule((faults_mod.Fault(sim.quiet_from_us, "heal_all"),),
                                               sim.quiet_from_us)
        self.schedule = schedule
        self.workload = Workload(stream("workload"), self.nodeids,
                                 stop_us=sim.end_us - sim.drain_ms * 1000 if sim.workload else 0,
                                 bursts_per_s=sim.bursts_per_s, storms=sim.storms)
        self.heap: list[tuple] = []
        self._tie = itertools.count().__next__
        self.now_us = 0
        self._init_node_tables(max(self.nodeids) + 1)
        self._init_records(trace, trace_sink)

    def _init_node_tables(self, slots: int) -> None:
        """Per-node state, in lists indexed by nodeid (faster than dicts in the hot loop)."""
        self.node: list = [None] * slots
        self.gen = [0] * slots
        self.wake_us = [NEVER_US] * slots
        self.paused = [False] * slots
        self.sockbuf: list[deque] = [deque() for _ in range(slots)]
        self.clock_offset_us = [0] * slots   # local = now + offset while slow == 1.0
        self.slow = [1.0] * slots
        self.anchor_global_us = [0] * slots  # local = anchor_local + (now - anchor_global) / slow
        self.anchor_local_us = [0] * slots
        self.ring_seq = [0] * slots       # the persisted ringid_<nodeid> file
        self.alive = {n: False for n in self.nodeids}
        self._last_frame: list[tuple] = [()] * slots   # (rep, seq, totem seq) last delivered from
        self._last_rpos = [0] * slots
        self.boots = [0] * slots          # a trans-ack belongs to one incarnation of a node
        self.acked: list[set] = [set() for _ in range(slots)]   # rings whose sync "ended"
        # trans-acks are modelled when the run asks for them and the factory's nodes take
        # them (stand-in nodes of the harness's own tests do not wait for any)
        self.trans_ack_us = 0

    def _init_records(self, trace: bool, trace_sink) -> None:
        """What the run writes down: event logs, trace, statistics, bounds bookkeeping."""
        self.logs: dict[int, list[dict]] = {n: [] for n in self.nodeids}
        self.trace = Trace(load_log_names(), trace_sink) if trace else None
        self.harness: list[HarnessViolation] = []
        self.rings: dict[tuple[int, int], RingSeen] = {}
        self.delivered_ids: set[tuple[int, int]] = set()
        self.stats = dict.fromkeys((
            "frames_delivered", "frames_to_dead", "frames_buffered", "socket_overflow",
            "submits", "submit_rejected", "client_dropped_crash", "deliveries", "installs",
            "crashes", "restarts", "pauses", "log_events"), 0)
        self.log_codes: dict[int, int] = {}
        self._since_install = {n: [0, 0] for n in self.nodeids}  # deliveries, safe ones
        self.ended = False
        self.aborted = False          # cut short: no quiet phase to judge liveness on
        self.events = 0
        self._window_start_us = 0
        self._dense_windows = 0

    # ---- running -------------------------------------------------------------------

    def run(self) -> "World":
        assert not self.ended, "a World runs once"
        for nid in self.nodeids:
            self._push(self.rng.randrange(BOOT_SPREAD_US), EV_BOOT, nid, None)
        for fault in self.schedule.faults:
            self._push(fault.t_us, EV_FAULT, fault.node, fault)
        if self.sim.workload:
            self._push(self.workload.tick_us, EV_TICK, 0, None)
        try:
            self._loop(self.sim.end_us)
        except RunAborted as e:
            self._harness(e.prop, 0, e.message)
            self.aborted = True
        except Exception:  # a core (or harness) bug: report it as a violation, keep the logs
            self._harness("exception", 0, f"at t_us={self.now_us}: {traceback.format_exc()}")
            self.aborted = True
        self.now_us = self.sim.end_us
        self.ended = True
        if self.trace is not None:
            self._trace_end()
        return self

    def _push(self, t_us: int, kind: int, nid: int, data) -> None:
        heapq.heappush(self.heap, (t_us, self._tie(), kind, nid, data))

    def inject(self, fault: faults_mod.Fault) -> None:
        """Schedule one more fault while the run goes on (scenario tests trigger faults on
        a node's protocol state this way); it must not lie in the past."""
        assert fault.t_us >= self.now_us, f"fault {fault.describe()} is in the past"
        self._push(fault.t_us, EV_FAULT, fault.node, fault)

    def _loop(self, end_us: int) -> None:
        heap = self.heap
        pop = heapq.heappop
        nodes = self.node
        paused = self.paused
        offset = self.clock_offset_us
        slow = self.slow
        stats = self.stats
        after = self._after
        budget = 0
        while heap and heap[0][0] < end_us:
            t_us, _, kind, nid, data = pop(heap)
            self.now_us = t_us
            budget -= 1
            if budget < 0:
                budget = self._check_bounds()
            if kind == EV_FRAME:
                node = nodes[nid]
                if node is None:
                    stats["frames_to_dead"] += 1
                elif paused[nid]:
                    self._buffer(nid, data)
                else:
                    stats["frames_delivered"] += 1
                    node.on_frame(t_us + offset[nid] if slow[nid] == 1.0 else self.local_us(nid), data)
                    after(nid, node)
            elif kind == EV_TIMER:
                self._timer(t_us, nid, data)
            elif kind == EV_FAULT:
                self._fault(data)
            elif kind == EV_TICK:
                self._tick(t_us)
            elif kind == EV_TRANS_ACK:
                self._trans_ack(nid, data)
            else:
                assert kind == EV_BOOT
                self._boot(nid)

    def _check_bounds(self, every: int = 4096) -> int:
        """Called every `every` events: a frame storm must end the run, not the machine."""
        self.events += every
        elapsed_us = self.now_us - self._window_start_us
        self._window_start_us = self.now_us
        if every * 1000 > params.EVENTS_PER_VIRTUAL_MS_MAX * elapsed_us:
            self._dense_windows += 1
        else:
            self._dense_windows = 0
        if (len(self.heap) > params.HEAP_ENTRIES_MAX or self.events > params.EVENTS_MAX
                or self._dense_windows >= params.STORM_WINDOWS):
            kinds: dict[int, int] = {}
            for entry in self.heap:
                if entry[2] == EV_FRAME and len(entry[4]) > 3:
                    kinds[entry[4][3]] = kinds.get(entry[4][3], 0) + 1
            raise RunAborted("storm", (
                f"frame storm at t_us={self.now_us}: {len(self.heap)} pending events (bound "
                f"{params.HEAP_ENTRIES_MAX}), about {self.events} processed (bound {params.EVENTS_MAX}), "
                f"{self._dense_windows} windows of {every} events at over "
                f"{params.EVENTS_PER_VIRTUAL_MS_MAX} events per virtual ms; "
                f"pending frames by Totem type: {dict(sorted(kinds.items()))}"))
        return every - 1

    def _buffer(self, nid: int, frame: bytes) -> None:
        buf = self.sockbuf[nid]
        if len(buf) >= self.sim.socket_buffer_frames:
            self.stats["socket_overflow"] += 1
            return
        buf.append(frame)
        self.stats["frames_buffered"] += 1
        assert len(buf) <= self.sim.socket_buffer_frames

    # ---- timers --------------------------------------------------------------------

    def local_us(self, nid: int) -> int:
        """The node's clock reading now."""
        factor = self.slow[nid]
        if factor == 1.0:
            return self.now_us + self.clock_offset_us[nid]
        return self.anchor_local_us[nid] + int((self.now_us - self.anchor_global_us[nid]) / factor)

    def _set_slow(self, nid: int, factor: float) -> None:
        assert factor >= 1.0, f"timers can only be slowed, got factor {factor}"
        local_us = self.local_us(nid)
        self.slow[nid] = factor
        self.anchor_global_us[nid] = self.now_us
        self.anchor_local_us[nid] = local_us
        self.clock_offset_us[nid] = local_us - self.now_us
        self._rearm(nid)

    def _jump_clock(self, nid: int, delta_us: int) -> None:
        assert delta_us > 0, "monotonic clocks only jump forward"
        self.clock_offset_us[nid] += delta_us
        self.anchor_local_us[nid] += delta_us
        self._rearm(nid)

    def _arm(self, nid: int, node) -> None:
        deadline = node.next_deadline_us()
        if deadline < 0:
            return
        now_us = self.now_us
        factor = self.slow[nid]
        if factor == 1.0:
            fire_us = max(now_us, deadline - self.clock_offset_us[nid])
        else:
            fire_us = self._slow_fire_us(nid, deadline)
        if fire_us < self.wake_us[nid]:
            self.wake_us[nid] = fire_us
            heapq.heappush(self.heap, (fire_us, self._tie(), EV_TIMER, nid, self.gen[nid]))

    def _slow_fire_us(self, nid: int, deadline: int) -> int:
        """The first virtual time at which the slow clock of nid reads >= deadline."""
        factor = self.slow[nid]
        anchor_us = self.anchor_global_us[nid]
        fire_us = anchor_us + int((deadline - self.anchor_local_us[nid]) * factor)
        while self.anchor_local_us[nid] + int((fire_us - anchor_us) / factor) < deadline:
            fire_us += 1   # float rounding; at most a step or two
        return max(self.now_us, fire_us)

    def _rearm(self, nid: int) -> None:
        """Forget the node's wake-ups (its timer rules changed) and arm afresh."""
        self.gen[nid] += 1
        self.wake_us[nid] = NEVER_US
        node = self.node[nid]
        if node is not None and not self.paused[nid]:
            self._arm(nid, node)

    def _timer(self, t_us: int, nid: int, gen: int) -> None:
        if gen != self.gen[nid] or t_us != self.wake_us[nid]:
            return  # superseded by an earlier wake-up, or the node was rebuilt
        self.wake_us[nid] = NEVER_US
        node = self.node[nid]
        if node is None or self.paused[nid]:
            return  # resume() re-arms
        self._fire_due(nid, node)
        self._after(nid, node)

    def _fire_due(self, nid: int, node) -> None:
        local_us = self.local_us(nid)
        deadline = node.next_deadline_us()
        if 0 <= deadline <= local_us:
            node.on_timer(local_us)

    # ---- outputs -------------------------------------------------------------------

    def _after(self, nid: int, node) -> None:
        outputs = node.take_outputs()
        if outputs:
            self._carry(nid, outputs)
        self._arm(nid, node)

    def _carry(self, nid: int, outputs) -> None:
        now_us = self.now_us
        heap = self.heap
        push = heapq.heappush
        tie = self._tie
        transmit = self.net.transmit
        log = self.logs[nid]
        for out in outputs:
            tag = out[0]
            if tag == "send":
                for arrive_us, dst, frame in transmit(now_us, nid, out[1], out[2]):
                    push(heap, (arrive_us, tie(), EV_FRAME, dst, frame))
            elif tag == "deliver":
                self._deliver(nid, log, out)
            elif tag == "config":
                self._install(nid, log, out)
            elif tag == "ringid":
                self._persist(nid, out)
            elif tag == "log":
                self.stats["log_events"] += 1
                self.log_codes[out[1]] = self.log_codes.get(out[1], 0) + 1
                if self.trace is not None:
                    self.trace.log_code(now_us, nid, out[1], out[2:])
            else:
                self._harness("output", nid, f"unknown output {out!r:.200}")

    def _deliver(self, nid: int, log: list, out) -> None:
        _, sender, ring, totem_seq, level, payload = out
        sid = decode_id(payload)
        if sid[0] != sender:
            self._harness("output", nid, f"deliver from {sender} carries a payload of {sid[0]}"
                          f" (len {len(payload)})")
        # totempg packs several messages into one Totem message, so its seq does not name
        # one delivery; the position inside the frame does (consecutive deliveries of one
        # frame). rseq = seq << RPOS_BITS | position keeps one total order per ring.
        frame = (ring[0], ring[1], totem_seq)
        if frame == self._last_frame[nid]:
            rpos = self._last_rpos[nid] + 1
        else:
            rpos = 0
            self._last_frame[nid] = frame
        self._last_rpos[nid] = rpos
        if rpos >= RPOS_LIMIT:
            self._harness("output", nid, f"more than {RPOS_LIMIT} messages in Totem message {frame}")
        log.append({"ev": "deliver", "node": nid, "t_us": self.now_us, "id": [sid[0], sid[1]],
                    "ring": [ring[0], ring[1]], "rseq": totem_seq << RPOS_BITS | rpos, "tseq": totem_seq,
                    "rpos": rpos, "level": level, "hash": crc32(payload)})
        if self.trans_ack_us and ring not in self.acked[sender]:
            # a sender puts nothing new on a ring before its own sync of it ended
            self._harness("trans_ack", nid, f"message {sid} delivered in ring {ring}, which "
                          f"its sender {sender} never acknowledged")
        self.stats["deliveries"] += 1
        self.delivered_ids.add(sid)
        counts = self._since_install[nid]
        counts[0] += 1
        if level == "safe":
            counts[1] += 1

    def _install(self, nid: int, log: list, out) -> None:
        _, kind, ring, members = out
        ring = (ring[0], ring[1])
        log.append({"ev": "install", "node": nid, "t_us": self.now_us, "ring": [ring[0], ring[1]],
                    "kind": kind, "members": list(members)})
        if self.trace is not None:
            self._trace_deliveries(nid)
            self.trace.add(self.now_us, f"n{nid}",
                           f"install {kind} ring {ring[0]}:{ring[1]} members {list(members)}")
        self._since_install[nid] = [0, 0]
        if kind == "regular":
            self.stats["installs"] += 1
            seen = self.rings.get(ring)
            if seen is None:
                seen = self.rings[ring] = RingSeen(tuple(members), self.now_us)
            seen.installed_by.append(nid)
            if self.trans_ack_us:
                # the node's services sync, then acknowledge (Corosync's totempg_trans_ack)
                delay_us = self.rng.randrange(self.trans_ack_us + 1)
                self._push(self.now_us + delay_us, EV_TRANS_ACK, nid, (ring, self.boots[nid]))

    def _trans_ack(self, nid: int, data) -> None:
        ring, boot = data
        node = self.node[nid]
        if node is None or boot != self.boots[nid]:
            return                       # that incarnation is gone
        if self.paused[nid]:
            self._push(self.now_us + 1000, EV_TRANS_ACK, nid, data)
            return
        self.acked[nid].add(ring)
        node.trans_ack(self.local_us(nid), ring)
        self._after(nid, node)

    def _persist(self, nid: int, out) -> None:
        seq = out[2]
        if seq < self.ring_seq[nid]:
            self._harness("ringid", nid, f"persisted ring seq went back from {self.ring_seq[nid]} to {seq}")
        self.ring_seq[nid] = seq

    def _harness(self, prop: str, nid: int, message: str) -> None:
        if len(self.harness) < HARNESS_VIOLATIONS_MAX:
            self.harness.append(HarnessViolation(prop, nid, message))

    # ---- processes -----------------------------------------------------------------

    def _event(self, nid: int, ev: str, **fields) -> None:
        self.logs[nid].append({"ev": ev, "node": nid, "t_us": self.now_us, **fields})
        if self.trace is not None:
            self.trace.add(self.now_us, f"n{nid}", ev)

    def _boot(self, nid: int) -> None:
        assert self.node[nid] is None, f"node {nid} booted twice"
        node = self.factory(self.totem, nid, self.ring_seq[nid])
        if self.sim.trans_ack_ms > 0 and hasattr(node, "trans_ack"):
            self.trans_ack_us = self.sim.trans_ack_ms * 1000
        self.boots[nid] += 1
        self.node[nid] = node
        self.alive[nid] = True
        node.start(self.local_us(nid))
        self._after(nid, node)

    def _crash(self, nid: int, clean: bool) -> None:
        node = self.node[nid]
        assert node is not None, f"crash of node {nid}, which is down"
        if clean and not self.paused[nid]:
            node.leave(self.local_us(nid))
            outputs = node.take_outputs()
            if outputs:
                self._carry(nid, outputs)
        if self.trace is not None:
            self._trace_deliveries(nid)
        self._since_install[nid] = [0, 0]
        self._last_frame[nid] = ()
        self._event(nid, "crash")
        self.stats["crashes"] += 1
        self.node[nid] = None
        self.alive[nid] = False
        self.paused[nid] = False
        self.sockbuf[nid].clear()
        self.stats["client_dropped_crash"] += self.workload.drop_client(nid)
        self._rearm(nid)

    def _restart(self, nid: int) -> None:
        self._event(nid, "restart")
        self.stats["restarts"] += 1
        self._boot(nid)

    def _pause(self, nid: int) -> None:
        assert self.node[nid] is not None and not self.paused[nid]
        self._event(nid, "pause")
        self.stats["pauses"] += 1
        self.paused[nid] = True

    def _resume(self, nid: int) -> None:
        assert self.paused[nid]
        self._event(nid, "resume")
        self.paused[nid] = False
        node = self.node[nid]
        local_us = self.local_us(nid)
        buf = self.sockbuf[nid]
        # Which a woken process looks at first, its expired timers or its socket, is
        # up to its event loop; let the seed choose.
        timers_first = self.rng.random() < 0.5
        if timers_first:
            self._fire_due(nid, node)
        while buf:
            node.on_frame(local_us, buf.popleft())
            outputs = node.take_outputs()
            if outputs:
                self._carry(nid, outputs)
        if not timers_first:
            self._fire_due(nid, node)
        self._after(nid, node)

    # ---- faults --------------------------------------------------------------------

    def _fault(self, fault: faults_mod.Fault) -> None:
        kind, nid, arg = fault.kind, fault.node, fault.arg
        net = self.net
        if self.trace is not None and kind not in ("crash", "restart", "pause", "resume"):
            self.trace.add(self.now_us, "fault", fault.describe())
        if kind == "crash":
            self._crash(nid, bool(arg[0]))
        elif kind == "restart":
            self._restart(nid)
        elif kind == "pause":
            self._pause(nid)
        elif kind == "resume":
            self._resume(nid)
        elif kind == "partition":
            net.set_partition(arg)
        elif kind == "heal_partition":
            net.heal_partition()
        elif kind == "cut":
            for a, b in arg:
                net.cut_link(a, b)
        elif kind == "heal_cut":
            for a, b in arg:
                net.heal_link(a, b)
        elif kind == "loss":
            net.loss = max(arg[0], self.sim.background_loss)
        elif kind == "loss_end":
            net.loss = self.sim.background_loss
        elif kind == "loss_node":
            (net.loss_to if arg[0] == "in" else net.loss_from)[nid] = arg[1]
        elif kind == "loss_node_end":
            (net.loss_to if arg[0] == "in" else net.loss_from).pop(nid, None)
        else:
            self._fault_knob(kind, nid, arg)

    def _fault_knob(self, kind: str, nid: int, arg: tuple) -> None:
        net = self.net
        if kind == "dup":
            net.dup, net.dup_delay_max_us = max(arg[0], self.sim.background_dup), arg[1]
        elif kind == "dup_end":
            net.dup, net.dup_delay_max_us = self.sim.background_dup, 0
        elif kind == "spike":
            net.spike, net.spike_max_us = arg
        elif kind == "spike_end":
            net.spike, net.spike_max_us = 0.0, 0
        elif kind == "slow":
            self._set_slow(nid, float(arg[0]))
        elif kind == "slow_end":
            self._set_slow(nid, 1.0)
        elif kind == "clock_jump":
            self._jump_clock(nid, arg[0])
        elif kind == "heal_all":
            self._heal_all()
        else:
            raise AssertionError(f"unknown fault kind {kind!r}")

    def _heal_all(self) -> None:
        """Start of the quiet phase: a perfect network, every node up and running."""
        self.net.heal_all()
        for nid in self.nodeids:
            if self.slow[nid] != 1.0:
                self._set_slow(nid, 1.0)
            if self.node[nid] is None:
                self._restart(nid)
            elif self.paused[nid]:
                self._resume(nid)

    # ---- workload ------------------------------------------------------------------

    def _tick(self, t_us: int) -> None:
        if self.workload.tick(t_us, self.alive):
            self._push(t_us + self.workload.tick_us, EV_TICK, 0, None)
        for nid in self.nodeids:
            if self.workload.pending[nid]:
                node = self.node[nid]
                if node is not None and not self.paused[nid]:
                    self._submit_pending(nid, node)

    def _submit_pending(self, nid: int, node) -> None:
        workload = self.workload
        queue = workload.pending[nid]
        log = self.logs[nid]
        while queue:
            size, safe = queue[0]
            seq = workload.next_seq[nid]
            payload = workload.payload(nid, seq, size)
            if not node.submit(payload, safe=safe):
                self.stats["submit_rejected"] += 1
                break
            queue.popleft()
            workload.next_seq[nid] = seq + 1
            self.stats["submits"] += 1
            log.append({"ev": "send", "node": nid, "t_us": self.now_us, "id": [nid, seq],
                        "size": size, "hash": crc32(payload), "level": "safe" if safe else "agreed"})
        self._after(nid, node)

    # ---- trace ---------------------------------------------------------------------

    def _trace_deliveries(self, nid: int) -> None:
        n, safe = self._since_install[nid]
        if n:
            self.trace.add(self.now_us, f"n{nid}", f"delivered {n} ({safe} safe)")

    def _trace_end(self) -> None:
        trace = self.trace
        for nid in self.nodeids:
            self._trace_deliveries(nid)
        trace.add(self.now_us, "end", " ".join(f"{k}={v}" for k, v in self.stats.items()))
        trace.add(self.now_us, "end", " ".join(f"{k}={v}" for k, v in self.net.counters.as_dict().items()))
        trace.add(self.now_us, "end", f"digest {logs_digest(self.logs)}")

    # ---- results -------------------------------------------------------------------

    @property
    def bound_us(self) -> int:
        """The liveness bound given to the checker: token + consensus + slack."""
        slack_us = (params.SLACK_ROUNDS * (self.token_us + self.consensus_us)
                    + params.SLACK_EXTRA_MS * 1000)
        return self.token_us + self.consensus_us + slack_us

    def memberships(self) -> list[str]:
        lines = []
        for ring, seen in sorted(self.rings.items(), key=lambda kv: (kv[1].first_us, kv[0])):
            lines.append(f"{seen.first_us / 1000:9.3f}ms ring {ring[0]}:{ring[1]} members "
                         f"{list(seen.members)} installed by {sorted(seen.installed_by)}")
        return lines
