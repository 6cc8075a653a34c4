"""The per-engine restart run shared by the test and the benchmark: a 3-node LocalCluster
under CPG load from recording client processes; one node's engine processes killed with
SIGKILL (and restarted with `coroproc-ctl restart NAME`) over and over; then the evidence.

What it measures per kill: restart time, from the SIGKILL to the engine answering a
client again (cmap: a GET of the key set before the kills; cpg: connect + local_get;
cfg, votequorum and its hosted quorum: the libqb handshake, which the engine host only
completes once the restored engine has replayed and serves). What it collects for the
assertions: every CPG client's record (tests/cpg/cpg_churn_client.py), the log lines of
every node after the start, quorum status before and after, the CPG process lists of
every node at the end, and the key.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from coroproc.client.cmap import Cmap
from coroproc.client.cpg import Cpg
from coroproc.engineprocs.cpg.checker import ClientRecord
from coroproc.ipc.client import IpcClient
from coroproc.localcluster import LocalCluster

REPO = str(Path(__file__).resolve().parents[2])
CLIENT = os.path.join(REPO, "tests", "cpg", "cpg_churn_client.py")
GROUP = "restartload"
KEY = "test.restart.kept"
KEY_VALUE = 424242
VICTIM = 2
ENGINES = ("cmap", "cfg", "cpg", "votequorum")
PROBE_TIMEOUT_S = 30.0
RESPAWN_SPACING_S = 1.05      # > supervisor HEALTHY_S: each kill meets a healthy engine


@dataclass
class RunResult:
    restart_s: dict = field(default_factory=dict)       # engine -> [seconds]
    ctl_restart_s: list = field(default_factory=list)
    records: list = field(default_factory=list)          # ClientRecord
    clients_by_node: dict = field(default_factory=dict)  # nodeid -> [ClientRecord]
    new_memberships: dict = field(default_factory=dict)  # nodeid -> [lines]
    quorum_before: dict = field(default_factory=dict)
    quorum_after: dict = field(default_factory=dict)
    key_after: int | None = None
    process_lists: dict = field(default_factory=dict)    # nodeid -> [(nodeid, pid)]
    live_clients: list = field(default_factory=list)     # (nodeid, pid) still connected


def engine_pid(lc: LocalCluster, node: int, name: str) -> int | None:
    for pid in lc.child_pids(node):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().split(b"\0")[0].decode(errors="replace").strip()
        except OSError:
            continue
        if title == f"coroproc: {name}":
            return pid
    return None


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().split(b") ", 1)[1][:1] in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def probe(lc: LocalCluster, node: int, name: str) -> None:
    """One request the engine must answer; raises while it does not serve."""
    suffix = lc.suffix(node)
    if name == "cmap":
        with Cmap(suffix=suffix) as cmap:
            if cmap.get_uint32(KEY) != KEY_VALUE:
                raise AssertionError(f"{KEY} lost after a cmap restart on node {node}")
    elif name == "cpg":
        with Cpg(suffix=suffix) as cpg:
            cpg.local_get()
    else:
        for service in (("votequorum", "quorum") if name == "votequorum" else (name,)):
            IpcClient(service, suffix=suffix, timeout_ms=5000).close()


def wait_serving(lc: LocalCluster, node: int, name: str, old_pid: int | None) -> None:
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    while old_pid is not None and not _gone(old_pid):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} pid {old_pid} on node {node} did not die")
        time.sleep(0.001)
    while True:
        try:
            probe(lc, node, name)
            return
        except AssertionError:
            raise
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def spawn_client(lc: LocalCluster, node: int, out: Path, rate: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": REPO}
    return subprocess.Popen([sys.executable, CLIENT, lc.suffix(node), GROUP, str(out),
                             str(rate), "0", "stay"], env=env, stdout=subprocess.DEVNULL,
                            stderr=open(str(out) + ".err", "wb"))


def read_record(path: Path) -> ClientRecord | None:
    events, local = [], None
    for line in path.read_bytes().splitlines():
        try:
            ev = orjson.loads(line)
        except orjson.JSONDecodeError:
            break                       # a line cut by the client's death
        kind = ev[0]
        if kind == "local":
            local = (ev[1], ev[2])
        elif kind == "deliver":
            events.append(("deliver", ev[1].encode("latin-1"), ev[2], ev[3],
                           bytes.fromhex(ev[4])))
        elif kind == "confchg":
            events.append(("confchg", ev[1].encode("latin-1"), ev[2], ev[3], ev[4]))
        elif kind == "totem":
            events.append(("totem", tuple(ev[1]), ev[2]))
    return None if local is None else ClientRecord(path.stem, local[0], local[1], events)


def quorum_status(lc: LocalCluster, node: int, timeout_s: float = 30.0) -> dict:
    """coroproc-quorumtool -s --json (retried while votequorum is still starting)."""
    deadline = time.monotonic() + timeout_s
    while True:
        out = subprocess.run([sys.executable, "-m", "coroproc.tools.quorumtool", "-s",
                              "--json", "--suffix", lc.suffix(node)], capture_output=True,
                             timeout=30)
        if out.stdout.strip():
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"coroproc-quorumtool on node {node}: {out.stderr.decode()}")
        time.sleep(0.2)
    status = orjson.loads(out.stdout)
    return {k: status.get(k) for k in ("quorate", "ring_id", "nodes", "members", "votequorum")}


def ctl_restart(lc: LocalCluster, node: int, name: str) -> None:
    out = subprocess.run([sys.executable, "-m", "coroproc.tools.ctl", "-c", lc.conf(node),
                          "restart", name], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError(f"coroproc-ctl restart {name}: {out.stderr.strip()}")


def run(lc: LocalCluster, tmp: Path, kills_per_engine: int, ctl_restarts: int,
        clients_per_node: int = 2, rate_msgs_per_s: float = 25.0) -> RunResult:
    res = RunResult()
    with Cmap(suffix=lc.suffix(VICTIM)) as cmap:
        cmap.set_uint32(KEY, KEY_VALUE)
    res.quorum_before = {n: quorum_status(lc, n) for n in lc.addrs}
    mark = lc.mark()
    procs, paths = [], []
    try:
        for node in lc.addrs:
            for k in range(clients_per_node):
                path = tmp / f"client-n{node}-{k}.jsonl"
                paths.append(path)
                procs.append(spawn_client(lc, node, path, rate_msgs_per_s))
        _wait_all_joined(paths, len(paths))
        _kill_loop(lc, res, kills_per_engine, ctl_restarts)
        time.sleep(1.0)                 # the last messages reach every client
        _collect_lists(lc, res, procs, paths)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    for path in paths:
        rec = read_record(path)
        if rec is not None:
            res.records.append(rec)
            res.clients_by_node.setdefault(rec.nodeid, []).append(rec)
    res.quorum_after = {n: quorum_status(lc, n) for n in lc.addrs}
    with Cmap(suffix=lc.suffix(VICTIM)) as cmap:
        res.key_after = cmap.get_uint32(KEY)
    for n in lc.addrs:
        res.new_memberships[n] = [ln for ln in lc.log_lines(n)[mark[n]:]
                                  if "A new membership" in ln]
    return res


def _wait_all_joined(paths: list, count: int, timeout_s: float = 60.0) -> None:
    """Every client saw all `count` clients in its group (so no join races the kills)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = 0
        for path in paths:
            rec = read_record(path) if path.exists() else None
            confs = [e for e in rec.events if e[0] == "confchg"] if rec else []
            if confs and len(confs[-1][2]) >= count:
                done += 1
        if done == len(paths):
            return
        time.sleep(0.1)
    raise TimeoutError(f"CPG load clients did not all join within {timeout_s} s")


def _kill_loop(lc: LocalCluster, res: RunResult, kills_per_engine: int,
               ctl_restarts: int) -> None:
    back_at = {name: 0.0 for name in ENGINES}
    for round_no in range(kills_per_engine + ctl_restarts):
        for name in ENGINES:
            wait = back_at[name] + RESPAWN_SPACING_S - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            pid = engine_pid(lc, VICTIM, name)
            t0 = time.monotonic()
            if round_no < kills_per_engine:
                os.kill(pid, signal.SIGKILL)
            else:
                ctl_restart(lc, VICTIM, name)
            wait_serving(lc, VICTIM, name, pid)
            back_at[name] = time.monotonic()
            if round_no < kills_per_engine:
                res.restart_s.setdefault(name, []).append(back_at[name] - t0)
            else:
                res.ctl_restart_s.append(back_at[name] - t0)


def _collect_lists(lc: LocalCluster, res: RunResult, procs, paths) -> None:
    for node in lc.addrs:
        with Cpg(suffix=lc.suffix(node)) as cpg:
            res.process_lists[node] = sorted((a.nodeid, a.pid) for a in
                                             cpg.membership_get(GROUP.encode()))
    for p, path in zip(procs, paths):
        if p.poll() is None:
            rec = read_record(path)
            if rec is not None:
                res.live_clients.append((rec.nodeid, rec.pid))
