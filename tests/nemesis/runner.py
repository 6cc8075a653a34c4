"""One nemesis run: a real coroproc cluster in network namespaces, a seeded fault schedule
applied in real time, a quiet period, then every checker over what the nodes recorded.

    result = run(RunConfig(seed=1, n_nodes=3, fault_window_s=50, out_dir=...))
    result.passed, result.summary          # summary also written to out_dir/summary.json

This file owns the run's life cycle and its verdict. Steps: build the namespaces; start a
daemon per node (the load engine writes the node's EVS event log) and a CPG recorder per
node (cpg_recorder.py, inside the node's namespace); wait for one ring and for every
recorder to see every other; apply the schedule's actions at t0 + t_s; stay quiet until
t0 + quiet_from_s + quiet_s; stop everything; then
  * check_safety over the event logs (EVS properties 1-12);
  * check_liveness: from quiet_from every node (all are up: every fault has ended) is in
    one regular configuration within bound = token timeout + consensus + slack, none changes
    after, and every message sent after settling reaches all of them;
  * check_cpg_evs over every recorder connection (EVS 13), the recorders' per-sender
    checks (gap, duplicate, CRC), and CPG progress: after the settle time each node's last
    connection delivered messages from every node.
Everything started is stopped even on an error or KeyboardInterrupt: SIGSTOPped nodes get
SIGCONT, packet rules are healed, recorders and daemons stopped, shm segments removed,
namespaces deleted (netns.harness.Cluster).

Real time is elastic: an action that finishes late moves the rest of the schedule back
by as much, so settle gaps are never shortened (the summary's slip_s says by how much).

The slack in the liveness bound: the schedule already leaves each fault's settle time
before quiet_from (schedule.Timing.settle_s), so a correct cluster is normally settled at
quiet_from. The bound adds token timeout + consensus (one more membership round) and
DEFAULT_SLACK_MS for scheduling stalls: on the shared 2-vCPU VM (load average 10-26
from other engineers' daemons) a 3-node ring took 8 s to form from cold, and a process
can sit runnable for seconds.
"""
from __future__ import annotations

import itertools
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from coroproc.shm.names import node_segments, remove_node_segments
from interop.coroproc_runner import CoroprocNode, wait_for
from interop.corosync_runner import corosync_conf
from netns.harness import Cluster, sweep_stale
from netns.knet_conf import knet_conf, write_authkey

from . import schedule as S
from .clients import start_recorder, stop_recorder
from .inject import Injector, actions_of
from .verdict import judge

PREFIX = "nem"                   # netns names: nem-<pid>-<seq>-h<i>
CPG_GROUP = "nemesis"
DEFAULT_SLACK_MS = 5000
FORM_GUARD_S = 240.0             # hang guard for the first ring on a loaded machine
_RUN_SEQ = itertools.count()      # several runs in one process get distinct cluster names


@dataclass
class RunConfig:
    seed: int
    out_dir: Path
    n_nodes: int = 3
    transport: str = "udpu"              # udpu | knet (coroproc's secure links)
    links: int = 1                       # knet links per node (a link cut needs 2)
    knet_crypto: bool = True             # False: crypto none (the jitted data path)
    token_ms: int = 1000
    fault_window_s: float = 50.0         # faults start and settle inside [0, this)
    faults_min: int = 0
    quiet_s: float | None = None         # default: long enough for liveness (c)
    kinds: tuple[str, ...] = S.KINDS
    cover_menu: bool = False
    load_msgs_per_s: int = 20            # load engine, per node (EVS event log)
    cpg_msgs_per_s: float = 10.0         # CPG recorder, per node
    cpg_size_bytes: int = 256
    slack_ms: int = DEFAULT_SLACK_MS
    progress: object = None              # callable(str) or None
    replay: S.Schedule | None = None     # run this schedule (schedule.parse) as it is

    def timing(self) -> S.Timing:
        return S.Timing(token_ms=self.token_ms, n_nodes=self.n_nodes)

    def bound_ms(self) -> int:
        """token timeout (as Corosync stretches it for n nodes) + consensus + slack"""
        t = self.timing()
        return int(t.token_timeout_ms + t.consensus_s * 1000 + self.slack_ms)

    def quiet_len_s(self) -> float:
        # (c) looks at messages sent in (settle, end - bound]: leave 5 s of them
        return self.quiet_s if self.quiet_s is not None else 2 * self.bound_ms() / 1000 + 5


@dataclass
class RunResult:
    passed: bool
    summary: dict = field(default_factory=dict)


def _say(cfg: RunConfig, text: str) -> None:
    if cfg.progress is not None:
        cfg.progress(text)


def _conf_text(cfg: RunConfig, net, cluster_name: str, node_dir: Path) -> str:
    if cfg.transport == "knet":
        key = node_dir.parent / "authkey"
        if cfg.knet_crypto and not key.exists():
            write_authkey(key)
        return knet_conf(cluster_name=cluster_name, hosts=list(net), links=cfg.links,
                         keyfile=str(key) if cfg.knet_crypto else None,
                         token_ms=cfg.token_ms)
    return corosync_conf(cluster_name=cluster_name, nodes=[(h.index, h.addr) for h in net],
                         transport=cfg.transport, logfile=str(node_dir / "x.log"),
                         state_dir=str(node_dir / "state"), token_ms=cfg.token_ms)


def run(cfg: RunConfig) -> RunResult:
    sched = cfg.replay or S.generate(
        cfg.seed, n_nodes=cfg.n_nodes, fault_window_s=cfg.fault_window_s,
        faults_min=cfg.faults_min, transport=cfg.transport, links=cfg.links,
        timing=cfg.timing(), kinds=cfg.kinds, cover_menu=cfg.cover_menu)
    if (sched.n_nodes, sched.transport, sched.links) != (cfg.n_nodes, cfg.transport, cfg.links):
        raise ValueError(f"schedule is for {sched.n_nodes} nodes {sched.transport} with "
                         f"{sched.links} link(s), the run for {cfg.n_nodes} {cfg.transport} "
                         f"{cfg.links}")
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "schedule.txt").write_text(sched.format() + "\n")
    _say(cfg, sched.format())
    sweep_stale(PREFIX)
    cluster_name = f"nm{os.getpid() % 100000}x{next(_RUN_SEQ)}"
    with Cluster(PREFIX, cfg.n_nodes, links=cfg.links) as net:
        daemons = {h.index: CoroprocNode(h, h.index, _conf_text(cfg, net, cluster_name,
                                                               out / f"n{h.index}"),
                                         str(out / f"n{h.index}"),
                                         workload_msgs_per_s=cfg.load_msgs_per_s)
                   for h in net}
        inj = Injector(net, daemons)
        recorders: dict = {}
        applied: list[dict] = []
        try:
            t0_us, quiet_from_us, end_us = _drive(cfg, sched, net, daemons, inj, recorders,
                                                  applied, out)
        finally:
            _teardown(inj, recorders, daemons)
            leftover = _remove_leftover_shm(cluster_name, daemons)
    summary = judge(cfg, sched, daemons, out, applied, t0_us, quiet_from_us, end_us, leftover)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return RunResult(summary["passed"], summary)


def _drive(cfg, sched, net, daemons, inj, recorders, applied, out) -> tuple[int, int, int]:
    """Start, apply the schedule, stay quiet. Returns (t0_us, quiet_from_us, end_us)."""
    for d in daemons.values():
        d.start()
    everyone = set(daemons)
    took_s = wait_for(lambda: all(d.members() == everyone for d in daemons.values()),
                      f"all {len(daemons)} nodes in one ring", timeout_s=FORM_GUARD_S)
    _say(cfg, f"ring of {len(daemons)} formed after {took_s:.1f}s")
    for i, d in daemons.items():
        recorders[i] = start_recorder(d.host, out / f"n{i}" / "cpg.jsonl", CPG_GROUP,
                                      cfg.cpg_msgs_per_s, cfg.cpg_size_bytes)
    wait_for(lambda: all(_group_size(out / f"n{i}" / "cpg.jsonl") >= len(daemons)
                         for i in daemons), "every CPG recorder to see all the others",
             timeout_s=FORM_GUARD_S)
    t0 = start = time.monotonic()
    # Elastic time: an action that ends late (iptables on a loaded host can take seconds)
    # moves the rest of the schedule back by as much, so no settle gap is ever shortened.
    for k, a in enumerate(actions := actions_of(sched)):
        _sleep_until(t0 + a.t_s)
        late_s = time.monotonic() - (t0 + a.t_s)
        note = inj.apply(a)
        t0 += max(0.0, time.monotonic() - (t0 + a.t_s))
        applied.append({"t_s": round(a.t_s, 3), "late_s": round(late_s, 3),
                        "at_s": round(time.monotonic() - start, 3),
                        "fault": a.fault_no, "phase": a.phase, "kind": a.fault.kind,
                        "what": a.describe(), **({"note": note} if note else {})})
        _say(cfg, f"[{time.monotonic() - start:7.1f}s] {a.phase:5} #{a.fault_no:<3} "
                  f"{a.describe()}{'  ' + note if note else ''} ({k + 1}/{len(actions)})")
    quiet_from = t0 + sched.quiet_from_s
    _sleep_until(quiet_from, lambda left_s: _say(cfg, f"settling, {left_s:.0f}s to quiet"))
    _say(cfg, f"[{time.monotonic() - start:7.1f}s] quiet from here for {cfg.quiet_len_s():.0f}s")
    _sleep_until(quiet_from + cfg.quiet_len_s())
    end = time.monotonic()
    return int(start * 1e6), int(quiet_from * 1e6), int(end * 1e6)


def _sleep_until(t: float, tick=None) -> None:
    """Sleep until monotonic time t; tick(seconds left) once a minute on the way."""
    last_tick = time.monotonic()
    while (left_s := t - time.monotonic()) > 0:
        time.sleep(min(left_s, 1.0))
        if tick is not None and time.monotonic() - last_tick >= 60:
            last_tick = time.monotonic()
            tick(t - last_tick)


def _group_size(path: Path) -> int:
    """Members of the recorder's group in its latest confchg (0 before the first)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    i = data.rfind(b'["confchg"')
    if i < 0:
        return 0
    try:
        return len(json.loads(data[i:data.index(b"\n", i)])[2])
    except (ValueError, IndexError):
        return 0


def _remove_leftover_shm(cluster_name: str, daemons: dict) -> dict:
    """Segments a stopped node left (a failure of the run): removed, and returned."""
    leftover = {i: segs for i in daemons if (segs := node_segments(cluster_name, i))}
    for i in leftover:
        remove_node_segments(cluster_name, i)
    return leftover


def _teardown(inj: Injector, recorders: dict, daemons: dict) -> None:
    errors = []
    for step in ([inj.undo_all]
                 + [lambda p=p: stop_recorder(p) for p in recorders.values()]
                 + [d.stop for d in daemons.values()]):
        try:
            step()
        except BaseException as exc:   # keep tearing down; the Cluster kills what is left
            errors.append(exc)
    for d in daemons.values():       # a daemon that did not stop in time
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
    if errors:
        print(f"nemesis teardown: {len(errors)} step(s) failed, first: {errors[0]!r}",
              file=sys.stderr)


