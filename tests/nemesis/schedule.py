"""Seeded fault schedules for real coroproc clusters: seed -> [(t_s, fault)], replayable.

This file owns which faults a nemesis run applies and when; it never touches a process or
a namespace (runner.py and inject.py do). The same (seed, parameters) always give the same
schedule, so a failing run is replayed by its seed alone.

Rules every schedule keeps (checked again by `Schedule.validate`):
* At most a minority of nodes, floor((n-1)/2), is occupied by faults at any time. A node
  is occupied from a fault's start until its end plus the fault kind's settle time; a
  partition occupies its smaller side. So a majority is always up and connected and the
  liveness bound applies once the faults stop.
* At most one network fault (partition, loss, link cut) at a time: the netns harness heals
  network faults all at once (`Cluster.heal`), so two at once could not end separately.
* Faults start at least GAP_MIN_S apart; every fault's end plus its settle time falls at or
  before `quiet_from_s`, so the cluster is quiet from then on.
* `cover_menu=True` makes the first faults one of each kind on the menu (shuffled by the
  seed): a short CI schedule then exercises every kind.

Times are seconds after the schedule's time zero (the runner's "cluster formed" instant).
"""
from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import asdict, dataclass, field

DAEMON_KILL = "daemon_kill"      # kill -9 of the supervisor (its children follow), restart later
ENGINE_KILL = "engine_kill"      # kill -9 of one engine process; the supervisor restarts it
SIGSTOP = "sigstop"              # SIGSTOP of the daemon's process group, SIGCONT later
PARTITION = "partition"          # two groups cannot talk, then heal
LOSS = "loss"                    # random packet loss on one host's eth0, then clear
LINK_CUT = "link_cut"            # one knet link dead on every host, then heal
KINDS = (DAEMON_KILL, ENGINE_KILL, SIGSTOP, PARTITION, LOSS, LINK_CUT)
NETWORK_KINDS = frozenset({PARTITION, LOSS, LINK_CUT})
ENGINES = ("cpg", "cmap", "votequorum", "cfg")

GAP_MIN_S = 0.5                  # between two fault starts: the injector's own pace
LOSS_PCT_RANGE = (5.0, 30.0)
# A stopped supervisor also stops its heartbeat clock; a stop close to the supervisor's
# heartbeat_timeout_ms (10 s default) would be judged on how fast it notices its own stall.
SIGSTOP_MAX_S = 9.0
# Restarting a killed daemon: interpreter, numba cache and config load before it can join.
# Measured 8 s from start to a formed 3-node ring on the 2-vCPU VM at load average 10.
DAEMON_START_S = 10.0


@dataclass(frozen=True)
class Fault:
    """One fault: starts at t_s, acts on `nodes`, ends (restart, SIGCONT, heal) duration_s
    later. A partition's `nodes` is its smaller side; a link cut has no nodes."""
    t_s: float
    kind: str
    nodes: tuple[int, ...] = ()
    duration_s: float = 0.0
    engine: str = ""             # ENGINE_KILL: which engine process
    loss_pct: float = 0.0        # LOSS
    link: int = -1               # LINK_CUT

    @property
    def end_s(self) -> float:
        return self.t_s + self.duration_s

    def describe(self) -> str:
        return f"t={self.t_s:7.2f}s  {self.what()}"

    def what(self) -> str:
        who = ",".join(map(str, self.nodes))
        return {DAEMON_KILL: f"kill -9 daemon {who}, restart after {self.duration_s:.2f}s",
                ENGINE_KILL: f"kill -9 engine {self.engine} on node {who}",
                SIGSTOP: f"SIGSTOP node {who} for {self.duration_s:.2f}s",
                PARTITION: f"partition {{{who}}} from the rest for {self.duration_s:.2f}s",
                LOSS: f"loss {self.loss_pct:.1f}% on node {who} for {self.duration_s:.2f}s",
                LINK_CUT: f"cut link {self.link} for {self.duration_s:.2f}s"}[self.kind]


@dataclass
class Timing:
    """The cluster's Totem timers, as Corosync derives them; every settle time follows.

    Corosync stretches the token with the cluster's size: with 3 nodes or more the token
    timeout is token + (nodes - 2) x token_coefficient (650 ms default), and consensus is
    1.2 x that. A 5-node cluster with `token: 1000` really waits 2950 ms for a token.
    """
    token_ms: int = 1000
    n_nodes: int = 3
    token_coefficient_ms: int = 650
    consensus_ms: int | None = None          # None: Corosync's 1.2 x the token timeout

    @property
    def token_timeout_ms(self) -> int:
        extra = (self.n_nodes - 2) * self.token_coefficient_ms if self.n_nodes >= 3 else 0
        return self.token_ms + extra

    @property
    def token_s(self) -> float:
        return self.token_timeout_ms / 1000

    @property
    def consensus_s(self) -> float:
        ms = self.consensus_ms if self.consensus_ms is not None else 1.2 * self.token_timeout_ms
        return ms / 1000

    def ring_settle_s(self) -> float:
        """A membership change completes in token (loss detected) + consensus (agreement);
        one more second covers the join/merge-detect rounds and the sync barrier."""
        return self.token_s + self.consensus_s + 1.0

    def settle_s(self, kind: str) -> float:
        if kind == DAEMON_KILL:
            return DAEMON_START_S + self.ring_settle_s()
        if kind == ENGINE_KILL:
            return 2.0  # restart backoff 0.2 s + engine start + client reconnect
        return self.ring_settle_s()


@dataclass
class Schedule:
    seed: int
    n_nodes: int
    transport: str
    links: int
    timing: Timing
    quiet_from_s: float
    menu: tuple[str, ...]
    faults: list[Fault] = field(default_factory=list)

    @property
    def minority(self) -> int:
        return (self.n_nodes - 1) // 2

    def counts(self) -> dict[str, int]:
        c = Counter(f.kind for f in self.faults)
        return {k: c.get(k, 0) for k in self.menu}

    def format(self) -> str:
        head = (f"# nemesis schedule seed={self.seed} nodes={self.n_nodes} transport="
                f"{self.transport} links={self.links} token={self.timing.token_ms}ms "
                f"(timeout {self.timing.token_timeout_ms}ms) "
                f"faults={len(self.faults)} quiet_from={self.quiet_from_s:.1f}s")
        return "\n".join([head, *(f.describe() for f in self.faults)])

    def to_json(self) -> dict:
        return {"seed": self.seed, "n_nodes": self.n_nodes, "transport": self.transport,
                "links": self.links, "token_ms": self.timing.token_ms,
                "token_timeout_ms": self.timing.token_timeout_ms,
                "quiet_from_s": self.quiet_from_s, "menu": list(self.menu),
                "counts": self.counts(), "faults": [asdict(f) for f in self.faults]}

    def occupied(self, f: Fault) -> tuple[int, ...]:
        return () if f.kind == LINK_CUT else f.nodes

    def validate(self) -> None:
        """Raise ValueError naming the first fault that breaks a rule of this file."""
        last_t = None
        for i, f in enumerate(self.faults):
            where = f"fault #{i} at t={f.t_s:.2f}s ({f.what()})"
            if f.kind not in self.menu:
                raise ValueError(f"{where}: kind {f.kind!r} is not on the menu {self.menu}")
            if last_t is not None and f.t_s - last_t < GAP_MIN_S - 1e-9:
                raise ValueError(f"{where}: starts {f.t_s - last_t:.2f}s after the previous "
                                 f"fault; at least {GAP_MIN_S}s allowed")
            last_t = f.t_s
            if f.end_s + self.timing.settle_s(f.kind) > self.quiet_from_s + 1e-9:
                raise ValueError(f"{where}: ends and settles after quiet_from "
                                 f"{self.quiet_from_s:.1f}s")
            busy = [g for g in self.faults[:i]
                    if g.end_s + self.timing.settle_s(g.kind) > f.t_s]
            occupied = {n for g in busy for n in self.occupied(g)}
            if occupied & set(self.occupied(f)):
                raise ValueError(f"{where}: node(s) {sorted(occupied & set(f.nodes))} still "
                                 "occupied by an earlier fault")
            if len(occupied | set(self.occupied(f))) > self.minority:
                raise ValueError(f"{where}: more than a minority ({self.minority} of "
                                 f"{self.n_nodes}) of nodes occupied at once")
            if f.kind in NETWORK_KINDS and any(g.kind in NETWORK_KINDS for g in busy):
                raise ValueError(f"{where}: another network fault is still active")


def menu_for(transport: str, links: int, kinds=KINDS) -> tuple[str, ...]:
    """The kinds that make sense on this cluster: a link cut needs a second knet link."""
    return tuple(k for k in kinds if k != LINK_CUT or (transport == "knet" and links >= 2))


class _Builder:
    """One greedy pass over the fault window with a given mean gap between fault starts."""

    def __init__(self, sched: Schedule, rng: random.Random, gap_mean_s: float,
                 fault_end_s: float, cover_menu: bool):
        self.s, self.rng, self.gap_mean_s = sched, rng, gap_mean_s
        self.fault_end_s = fault_end_s
        self.to_cover = list(sched.menu) if cover_menu else []
        rng.shuffle(self.to_cover)

    def run(self, lead_in_s: float) -> None:
        t = lead_in_s
        while t < self.fault_end_s:
            kinds = self.to_cover[:1] or self._weighted_kinds()
            fault = next((f for k in kinds if (f := self._draw(k, t)) is not None), None)
            if fault is not None:
                self.s.faults.append(fault)
                if self.to_cover and fault.kind == self.to_cover[0]:
                    self.to_cover.pop(0)
                t += max(GAP_MIN_S, self.rng.uniform(0.5, 1.5) * self.gap_mean_s)
            else:
                t += GAP_MIN_S  # nothing fits yet: wait for something to settle

    def _weighted_kinds(self) -> list[str]:
        kinds = list(self.s.menu)
        self.rng.shuffle(kinds)
        return kinds

    def _busy(self, t: float) -> list[Fault]:
        return [g for g in self.s.faults if g.end_s + self.s.timing.settle_s(g.kind) > t]

    def _draw(self, kind: str, t: float) -> Fault | None:
        s, rng, timing = self.s, self.rng, self.s.timing
        t = round(t, 2)      # as printed: a printed schedule replays exactly
        busy = self._busy(t)
        occupied = {n for g in busy for n in s.occupied(g)}
        free = [n for n in range(1, s.n_nodes + 1) if n not in occupied]
        room = s.minority - len(occupied)
        if kind in NETWORK_KINDS and any(g.kind in NETWORK_KINDS for g in busy):
            return None
        if kind != LINK_CUT and (room < 1 or not free):
            return None
        if kind == DAEMON_KILL:
            f = Fault(t, kind, (rng.choice(free),), round(rng.uniform(0.5, 3.0), 2))
        elif kind == ENGINE_KILL:
            f = Fault(t, kind, (rng.choice(free),), 0.0, engine=rng.choice(ENGINES))
        elif kind == SIGSTOP:
            # longer than the token timeout, so the others do form a ring without it
            low_s = min(1.3 * timing.token_s, SIGSTOP_MAX_S - 1)
            f = Fault(t, kind, (rng.choice(free),),
                      round(rng.uniform(low_s, min(3 * timing.token_s, SIGSTOP_MAX_S)), 2))
        elif kind == PARTITION:
            size = rng.randint(1, min(room, len(free)))
            side = tuple(sorted(rng.sample(free, size)))
            # long enough for each side to detect the loss and agree on its own ring
            f = Fault(t, kind, side, round(rng.uniform(timing.ring_settle_s(),
                                                       2 * timing.ring_settle_s()), 2))
        elif kind == LOSS:
            f = Fault(t, kind, (rng.choice(free),), round(rng.uniform(4.0, 10.0), 2),
                      loss_pct=round(rng.uniform(*LOSS_PCT_RANGE), 1))
        elif kind == LINK_CUT:
            f = Fault(t, kind, (), round(rng.uniform(3.0, 8.0), 2),
                      link=rng.randrange(s.links))
        else:
            raise ValueError(f"unknown fault kind {kind!r}; allowed {KINDS}")
        if f.end_s + timing.settle_s(kind) > self.s.quiet_from_s:
            return None
        return f


def generate(seed: int, *, n_nodes: int, fault_window_s: float, faults_min: int = 0,
             transport: str = "udpu", links: int = 1, timing: Timing | None = None,
             kinds=KINDS, cover_menu: bool = False, lead_in_s: float = 1.0) -> Schedule:
    """The schedule for `seed`: faults in [lead_in_s, fault_window_s), quiet from
    fault_window_s on. With faults_min, the mean gap between faults shrinks (in fixed
    steps, so the result is still a function of the arguments) until at least that many
    fit; ValueError if even the densest packing cannot hold them."""
    if n_nodes < 3:
        raise ValueError(f"n_nodes={n_nodes}: a nemesis needs at least 3 nodes (a majority "
                         "must survive one fault)")
    if transport not in ("udpu", "udp", "knet"):
        raise ValueError(f"transport {transport!r}: allowed udpu, udp, knet")
    timing = timing or Timing(n_nodes=n_nodes)
    if timing.n_nodes != n_nodes:
        raise ValueError(f"timing is for {timing.n_nodes} nodes, the schedule for {n_nodes}")
    if timing.token_s >= SIGSTOP_MAX_S - 1:
        raise ValueError(f"token timeout {timing.token_timeout_ms} ms: a SIGSTOP longer than "
                         f"it would reach the supervisor's heartbeat timeout; use a shorter "
                         f"token or fewer nodes")
    menu = menu_for(transport, links, kinds)
    if not menu:
        raise ValueError(f"no fault kind of {tuple(kinds)} applies to {transport} with "
                         f"{links} link(s)")
    target = max(faults_min, len(menu) if cover_menu else 1)
    gap_mean_s = max(GAP_MIN_S, fault_window_s / target)
    best = None
    for scale in (1.0, 0.8, 0.6, 0.45, 0.3, 0.2, 0.1):
        sched = Schedule(seed, n_nodes, transport, links, timing, fault_window_s, menu)
        _Builder(sched, random.Random(seed), max(GAP_MIN_S, gap_mean_s * scale),
                 fault_window_s, cover_menu).run(lead_in_s)
        best = sched
        covered = not cover_menu or all(sched.counts().values())
        if len(sched.faults) >= faults_min and covered:
            break
    assert best is not None
    if len(best.faults) < faults_min:
        raise ValueError(f"only {len(best.faults)} faults fit in {fault_window_s:.0f}s on "
                         f"{n_nodes} nodes (asked for {faults_min}); give more time or nodes")
    if cover_menu and not all(best.counts().values()):
        raise ValueError(f"one fault of each kind {menu} does not fit in "
                         f"{fault_window_s:.0f}s (got {best.counts()}); give more time")
    best.validate()
    return best


_HEAD_RE = re.compile(r"^# nemesis schedule seed=(-?\d+) nodes=(\d+) transport=(\w+) links=(\d+) "
                      r"token=(\d+)ms .*quiet_from=([\d.]+)s$")
_LINE_RES = {
    DAEMON_KILL: re.compile(r"kill -9 daemon (\d+), restart after ([\d.]+)s$"),
    ENGINE_KILL: re.compile(r"kill -9 engine (\w+) on node (\d+)$"),
    SIGSTOP: re.compile(r"SIGSTOP node (\d+) for ([\d.]+)s$"),
    PARTITION: re.compile(r"partition \{([\d,]+)\} from the rest for ([\d.]+)s$"),
    LOSS: re.compile(r"loss ([\d.]+)% on node (\d+) for ([\d.]+)s$"),
    LINK_CUT: re.compile(r"cut link (\d+) for ([\d.]+)s$"),
}


def _parse_fault(t_s: float, what: str) -> Fault:
    for kind, rx in _LINE_RES.items():
        m = rx.match(what)
        if m is None:
            continue
        g = m.groups()
        if kind == ENGINE_KILL:
            return Fault(t_s, kind, (int(g[1]),), 0.0, engine=g[0])
        if kind == PARTITION:
            return Fault(t_s, kind, tuple(int(x) for x in g[0].split(",")), float(g[1]))
        if kind == LOSS:
            return Fault(t_s, kind, (int(g[1]),), float(g[2]), loss_pct=float(g[0]))
        if kind == LINK_CUT:
            return Fault(t_s, kind, (), float(g[1]), link=int(g[0]))
        return Fault(t_s, kind, (int(g[0]),), float(g[1]))
    raise ValueError(f"not a fault this file prints: {what!r}")


def parse(text: str) -> Schedule:
    """The schedule a `Schedule.format()` printed (schedule.txt of a run), to replay it
    as it was, whatever version of the generator made it. Not re-validated: a replay
    applies what happened, even if today's rules would space it differently."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    head = _HEAD_RE.match(lines[0]) if lines else None
    if head is None:
        raise ValueError("a printed schedule starts with '# nemesis schedule seed=… "
                         f"nodes=… transport=… links=… token=…ms … quiet_from=…s', got "
                         f"{lines[0] if lines else 'nothing'!r}")
    seed, n, transport, links, token_ms, quiet_s = head.groups()
    faults = []
    for no, line in enumerate(lines[1:], start=2):
        m = re.match(r"^t=\s*([\d.]+)s  (.*)$", line)
        if m is None:
            raise ValueError(f"line {no}: {line!r} is not 't=<seconds>s  <fault>'")
        try:
            faults.append(_parse_fault(float(m.group(1)), m.group(2)))
        except ValueError as exc:
            raise ValueError(f"line {no}: {exc}") from None
    kinds = tuple(k for k in KINDS if k in {f.kind for f in faults}) or (ENGINE_KILL,)
    return Schedule(int(seed), int(n), transport, int(links),
                    Timing(token_ms=int(token_ms), n_nodes=int(n)), float(quiet_s), kinds,
                    faults)
