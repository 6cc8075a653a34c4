"""Seeded fault schedules: what goes wrong, to whom, and when.

A schedule is a time-sorted tuple of `Fault` events drawn from one `random.Random`
before the run starts, so it depends on the seed alone, never on what the cores do.
Faults come in episodes (a start event and, unless it is instantaneous, an end event);
each episode holds a resource (a node's process, its timers, the partition, the global
loss knob, …) so that two episodes never fight over one knob. Every end that would fall
after the fault phase is dropped: one `heal_all` at `quiet_from_us` restarts, resumes and
heals everything.

Kinds (start → end):
  crash node [clean]        → restart node      (clean = leave the ring first)
  pause node                → resume node       (SIGSTOP/SIGCONT; often > token timeout)
  partition groups          → heal_partition    (2-way or 3-way, symmetric)
  cut links                 → heal_cut links    (asymmetric: a→b blocked, b→a not)
  loss p                    → loss_end          (a loss burst on every link)
  loss_node node dir p      → loss_node_end     (one node's inbound or outbound links)
  dup p replay_us           → dup_end           (duplicates, some replayed late)
  spike p extra_us          → spike_end         (occasional large extra delay)
  slow node factor          → slow_end node     (the node's timers fire late by factor)
  clock_jump node delta_us                      (the node's clock jumps forward)
  heal_all                                      (start of the quiet phase)
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from coroproc.sim import params

END_OF = {
    "crash": "restart", "pause": "resume", "partition": "heal_partition",
    "cut": "heal_cut", "loss": "loss_end", "loss_node": "loss_node_end", "dup": "dup_end",
    "spike": "spike_end", "slow": "slow_end",
}
KIND_WEIGHTS = (
    ("crash", 3.0), ("pause", 3.0), ("partition", 3.0), ("cut", 2.0), ("loss", 2.0),
    ("loss_node", 1.0), ("dup", 1.0), ("spike", 1.0), ("slow", 1.0), ("clock_jump", 0.5),
)
KINDS = tuple(k for k, _ in KIND_WEIGHTS) + tuple(END_OF.values()) + ("heal_all",)
PICK_ATTEMPTS_MAX = 4   # kinds tried for one episode before it is skipped


@dataclass(frozen=True, slots=True)
class Fault:
    t_us: int
    kind: str
    node: int = 0        # the node a per-node fault applies to (0 = none)
    arg: tuple = ()      # kind-specific, immutable

    def describe(self) -> str:
        who = f" n{self.node}" if self.node else ""
        if self.kind == "partition":
            what = " " + "|".join("{" + ",".join(map(str, g)) + "}" for g in self.arg)
        elif self.kind in ("cut", "heal_cut"):
            what = " " + ",".join(f"{a}->{b}" for a, b in self.arg)
        elif self.arg:
            what = " " + " ".join(_fmt(a) for a in self.arg)
        else:
            what = ""
        return f"{self.kind}{who}{what}"


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


@dataclass(frozen=True, slots=True)
class Schedule:
    faults: tuple[Fault, ...]
    quiet_from_us: int

    def episodes(self) -> int:
        """Fault episodes started (not counting ends and the final heal_all)."""
        return sum(1 for f in self.faults if f.kind in dict(KIND_WEIGHTS))


class _Plan:
    """Resources held by the episodes placed so far, and the events they produce."""

    def __init__(self, rng: random.Random, nodeids: tuple[int, ...], token_us: int,
                 quiet_from_us: int) -> None:
        self.rng = rng
        self.nodeids = nodeids
        self.token_us = token_us
        self.quiet_from_us = quiet_from_us
        self.busy_until: dict[object, int] = {}
        self.down: list[tuple[int, int]] = []   # (from_us, until_us) of crashes and pauses
        self.events: list[Fault] = []

    def free(self, resource: object, t_us: int) -> bool:
        return self.busy_until.get(resource, -1) <= t_us

    def hold(self, resource: object, t_us: int, until_us: int) -> None:
        assert until_us > t_us
        self.busy_until[resource] = until_us

    def span(self, lo_tokens: float, hi_tokens: float) -> int:
        return max(1, int(self.token_us * self.rng.uniform(lo_tokens, hi_tokens)))

    def add(self, t_us: int, kind: str, node: int = 0, arg: tuple = (),
            end_us: int | None = None, end_node: int = 0, end_arg: tuple = ()) -> None:
        self.events.append(Fault(t_us, kind, node, arg))
        if end_us is not None and end_us < self.quiet_from_us:
            self.events.append(Fault(end_us, END_OF[kind], end_node, end_arg))

    def nodes_down_at(self, t_us: int) -> int:
        return sum(1 for lo, hi in self.down if lo <= t_us < hi)


def generate(rng: random.Random, nodeids: tuple[int, ...], *, fault_us: int, token_us: int,
             start_us: int = params.FAULT_START_MS * 1000,
             episodes_max: int | None = None) -> Schedule:
    """A schedule for a run whose fault phase is [0, fault_us)."""
    assert len(nodeids) >= 2 and token_us > 0 and fault_us >= 0
    if episodes_max is None:
        episodes_max = max(1, fault_us * params.FAULT_EPISODES_PER_SECOND_MAX // 1_000_000)
    plan = _Plan(rng, tuple(nodeids), token_us, fault_us)
    # 5 % of seeds run fault-free: a check that a healthy ring never reconfigures.
    episodes = 0 if rng.random() < 0.05 or fault_us <= start_us else rng.randint(1, episodes_max)
    starts = sorted(rng.randrange(start_us, fault_us) for _ in range(episodes))
    kinds = [k for k, _ in KIND_WEIGHTS]
    weights = [w for _, w in KIND_WEIGHTS]
    for t_us in starts:
        for _ in range(PICK_ATTEMPTS_MAX):
            if _place(plan, rng.choices(kinds, weights)[0], t_us):
                break
    events = sorted(plan.events, key=lambda f: f.t_us)  # stable: ties keep placing order
    events.append(Fault(fault_us, "heal_all"))
    assert len(events) <= params.FAULTS_MAX, f"{len(events)} fault events > {params.FAULTS_MAX}"
    assert all(f.t_us <= fault_us for f in events)
    return Schedule(tuple(events), fault_us)


def _place(plan: _Plan, kind: str, t_us: int) -> bool:
    """Place one episode of `kind` starting at t_us, if its resource is free."""
    rng = plan.rng
    if kind in ("crash", "pause"):
        candidates = [n for n in plan.nodeids if plan.free(("proc", n), t_us)]
        # keep one node running: a cluster of only dead nodes tests nothing
        if not candidates or plan.nodes_down_at(t_us) >= len(plan.nodeids) - 1:
            return False
        node = rng.choice(candidates)
        if kind == "crash":
            until_us = t_us + plan.span(0.5, 8.0)
            clean = rng.random() < 0.25
            plan.add(t_us, "crash", node, (int(clean),), until_us, node)
        else:
            # Half of the pauses outlast the token timeout: the node is declared failed
            # and comes back with a socket buffer full of an old ring's frames.
            until_us = t_us + (plan.span(1.1, 4.0) if rng.random() < 0.5 else plan.span(0.05, 0.9))
            plan.add(t_us, "pause", node, (), until_us, node)
        # a restart must see a settled process table: hold a little past the end
        plan.hold(("proc", node), t_us, until_us + 1)
        plan.down.append((t_us, until_us + 1))
        return True
    if kind == "partition":
        if not plan.free("partition", t_us):
            return False
        groups = _split(rng, plan.nodeids, 3 if len(plan.nodeids) >= 3 and rng.random() < 0.3 else 2)
        until_us = t_us + plan.span(1.0, 10.0)
        plan.add(t_us, "partition", 0, groups, until_us)
        plan.hold("partition", t_us, until_us)
        return True
    if kind == "cut":
        if not plan.free("cut", t_us):
            return False
        links = _links(rng, plan.nodeids)
        until_us = t_us + plan.span(0.5, 6.0)
        plan.add(t_us, "cut", 0, links, until_us, 0, links)
        plan.hold("cut", t_us, until_us)
        return True
    return _place_knob(plan, kind, t_us)


def _place_knob(plan: _Plan, kind: str, t_us: int) -> bool:
    """Episodes that turn a network or timer knob for a while."""
    rng = plan.rng
    token_us = plan.token_us
    if kind == "clock_jump":
        node = rng.choice(plan.nodeids)
        plan.add(t_us, "clock_jump", node, (plan.span(0.5, 3.0),))
        return True
    if kind in ("slow", "loss_node"):
        node = rng.choice(plan.nodeids)
        resource = (kind, node)
    else:
        node = 0
        resource = kind
    if not plan.free(resource, t_us):
        return False
    if kind == "loss":
        until_us = t_us + plan.span(0.2, 5.0)
        plan.add(t_us, "loss", 0, (round(rng.uniform(0.05, 0.5), 3),), until_us)
    elif kind == "loss_node":
        until_us = t_us + plan.span(0.5, 5.0)
        direction = rng.choice(("in", "out"))
        plan.add(t_us, "loss_node", node, (direction, round(rng.uniform(0.2, 1.0), 3)),
                 until_us, node, (direction,))
    elif kind == "dup":
        until_us = t_us + plan.span(1.0, 10.0)
        plan.add(t_us, "dup", 0, (round(rng.uniform(0.05, 0.3), 3), int(token_us * rng.uniform(0, 2))),
                 until_us)
    elif kind == "spike":
        until_us = t_us + plan.span(1.0, 10.0)
        plan.add(t_us, "spike", 0, (round(rng.uniform(0.01, 0.1), 3), int(token_us * rng.uniform(0.05, 1.5))),
                 until_us)
    elif kind == "slow":
        until_us = t_us + plan.span(1.0, 10.0)
        plan.add(t_us, "slow", node, (round(rng.uniform(1.5, 5.0), 2),), until_us, node)
    else:
        raise AssertionError(f"unknown fault kind {kind!r}")
    plan.hold(resource, t_us, until_us)
    return True


def _split(rng: random.Random, nodeids: tuple[int, ...], ways: int) -> tuple[tuple[int, ...], ...]:
    """A random split of all nodes into `ways` non-empty groups, each sorted."""
    assert 2 <= ways <= len(nodeids)
    order = list(nodeids)
    rng.shuffle(order)
    cuts = sorted(rng.sample(range(1, len(order)), ways - 1))
    bounds = [0, *cuts, len(order)]
    groups = [tuple(sorted(order[a:b])) for a, b in zip(bounds, bounds[1:])]
    return tuple(sorted(groups))


def _links(rng: random.Random, nodeids: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """Directed links to block: one link, a deaf node, a mute node, or a random few."""
    node = rng.choice(nodeids)
    others = [n for n in nodeids if n != node]
    pattern = rng.random()
    if pattern < 0.4:
        links = [(node, rng.choice(others))]
    elif pattern < 0.6:
        links = [(m, node) for m in others]           # deaf: hears nobody
    elif pattern < 0.8:
        links = [(node, m) for m in others]           # mute: nobody hears it
    else:
        pairs = [(a, b) for a in nodeids for b in nodeids if a != b]
        links = rng.sample(pairs, min(len(pairs), rng.randint(2, 6)))
    return tuple(sorted(links))
