"""One seed, start to verdict: build the world, run it, check the logs, summarize.

`run_seed` is what the CLI, its worker processes and the tests call. Its `RunResult` is
small and picklable (no logs unless asked for), so a sweep over thousands of seeds in
worker processes moves only verdicts and numbers.
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field

from coroproc.sim.trace import logs_digest
from coroproc.sim.world import HarnessViolation, SimConfig, World

FIRST_VIOLATIONS_KEPT = 5


@dataclass
class RunResult:
    seed: int
    nodes: int
    token_ms: int
    virtual_us: int
    wall_s: float
    episodes: int          # fault episodes scheduled
    installs: int          # regular configurations installed, summed over nodes
    rings: int             # distinct regular rings
    sent: int              # accepted submits
    ordered: int           # distinct messages delivered by at least one node
    deliveries: int        # deliveries summed over nodes
    submit_rejected: int
    violations: int        # safety violations (checker + harness)
    liveness: int          # liveness violations
    first: list[str] = field(default_factory=list)   # the first few, formatted
    digest: str = ""
    trace: str | None = None
    memberships: list[str] = field(default_factory=list)
    net: dict[str, int] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    logs: dict[int, list[dict]] | None = None

    @classmethod
    def failed(cls, seed: int, nodes: int, prop: str, message: str, wall_s: float) -> "RunResult":
        """A seed that produced no result at all (it hung, or its process died)."""
        return cls(seed=seed, nodes=nodes, token_ms=0, virtual_us=0, wall_s=wall_s, episodes=0,
                   installs=0, rings=0, sent=0, ordered=0, deliveries=0, submit_rejected=0,
                   violations=1, liveness=0, first=[f"{prop}: {message}"])

    @property
    def ok(self) -> bool:
        return self.violations == 0 and self.liveness == 0

    def ordered_per_virtual_s(self) -> float:
        return self.ordered / (self.virtual_us / 1e6) if self.virtual_us else 0.0

    def ordered_per_wall_s(self) -> float:
        return self.ordered / self.wall_s if self.wall_s > 0 else 0.0

    def progress_line(self) -> str:
        verdict = "ok" if self.ok else f"FAIL violations={self.violations} liveness={self.liveness}"
        return (f"seed={self.seed} nodes={self.nodes} token={self.token_ms}ms faults={self.episodes}"
                f" rings={self.rings} installs={self.installs} sent={self.sent} ordered={self.ordered}"
                f" deliveries={self.deliveries} msgs/vs={self.ordered_per_virtual_s():.0f}"
                f" msgs/ws={self.ordered_per_wall_s():.0f} wall={self.wall_s:.2f}s {verdict}")


def format_violation(v) -> str:
    return f"{getattr(v, 'prop', '?')} node={getattr(v, 'node', '?')}: {getattr(v, 'message', v)}"


def default_checker():
    from coroproc.sim import checker
    return checker.check_safety, checker.check_liveness


def run_seed(seed: int, nodes: int, *, trace: bool = False, keep_logs: bool = False,
             check: bool = True, checker=None, node_factory=None, trace_sink=None,
             **overrides) -> RunResult:
    """Run one seed and judge it. `overrides` replace fields of the drawn SimConfig."""
    sim = SimConfig.for_seed(seed, nodes, **overrides)
    started = time.perf_counter()
    world = World(sim, node_factory=node_factory, trace=trace, trace_sink=trace_sink).run()
    safety: list = list(world.harness)
    liveness: list = []
    if check:
        check_safety, check_liveness = checker or default_checker()
        try:
            safety += check_safety(world.logs)
            # a run cut short (core exception, frame storm) has no quiet phase to judge
            if not world.aborted:
                liveness = check_liveness(world.logs, quiet_from_us=sim.quiet_from_us, end_us=sim.end_us,
                                          bound_us=world.bound_us, connected_live=set(world.nodeids))
        except Exception:
            safety.append(HarnessViolation("checker-exception", 0, traceback.format_exc()))
    wall_s = time.perf_counter() - started
    first = [format_violation(v) for v in safety[:FIRST_VIOLATIONS_KEPT]]
    first += ["liveness " + format_violation(v) for v in liveness[:FIRST_VIOLATIONS_KEPT]]
    return RunResult(
        seed=seed, nodes=nodes, token_ms=sim.token_ms, virtual_us=sim.end_us, wall_s=wall_s,
        episodes=world.schedule.episodes(), installs=world.stats["installs"], rings=len(world.rings),
        sent=world.stats["submits"], ordered=len(world.delivered_ids),
        deliveries=world.stats["deliveries"], submit_rejected=world.stats["submit_rejected"],
        violations=len(safety), liveness=len(liveness), first=first,
        digest=logs_digest(world.logs), trace=world.trace.text() if world.trace is not None else None,
        memberships=world.memberships(), net=world.net.counters.as_dict(), stats=dict(world.stats),
        logs=world.logs if keep_logs else None,
    )

