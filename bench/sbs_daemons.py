"""The daemons bench/bench_side_by_side.py compares, and one cluster of them on netns hosts.

This file owns: the kinds (`KINDS`: which daemon, transport, libqb IPC mode), the
corosync.conf text both daemons get (the same text; coroproc adds only its run_dir), and
`Session`: start N nodes in a `netns.harness.Cluster`, wait for one ring, give each node's
process tree, the argv that runs a client next to a node, and a kill -9 of one node timed
to the new configuration on node 1. Processes are stopped by the Session and, whatever
happens, by the Cluster's teardown (it kills everything left inside its namespaces).
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from interop.coroproc_runner import CoroprocNode
from interop.corosync_runner import CorosyncNode, corosync_conf, with_socket_ipc
from netns.harness import Cluster

from sbs_proc import process_tree, set_rr

TOKEN_MS = 1000          # the token of bench_failover.py and the tests/interop runners
READY_TIMEOUT_S = 180.0  # coroproc's first start compiles/loads numba caches on 2 busy vCPUs
FAILOVER_TIMEOUT_S = 60.0
POLL_S = 0.02
RR_PRIORITY = 99  # Corosync 3.1's default: sched_rr yes → SCHED_RR at the maximum priority
MEMBERS_RE = re.compile(r"\[QUORUM\] Members\[\d+\]:((?: \d+)+)")


def _title(pid: int) -> str:
    """A process's ps title (argv[0] as coroproc's children set it); "" once gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


@dataclass(frozen=True)
class Kind:
    name: str         # column label, e.g. "corosync-shm"
    daemon: str       # "corosync" | "coroproc"
    transport: str    # "udpu" | "knet" (coroproc's knet = its secure links)
    ipc: str          # libqb IPC the clients get: "shm" (Corosync's default) | "socket"
    baseline: str     # the kind its ratio is taken against ("" for a baseline itself)
    rr: bool = False  # the bench sets SCHED_RR 99 on every coroproc process after start
    cipher: str = "none"   # knet only: crypto_cipher (crypto_hash sha256 when not none)
    ring_cpu: str = ""     # coroproc only: coroproc.ring_cpu ("" = its default, auto)
    # coroproc only: coroproc.idle_token_pace_us (-1 = its default)
    idle_token_pace_us: int = -1
    sched_rr: str = ""     # coroproc only: system.sched_rr ("" = its default, no)
    # coroproc only: the bench sets SCHED_RR 99 on the processes whose title starts with
    # this after start ("coroproc: net": the link processes alone)
    rr_titles: str = ""
    # coroproc only: coroproc.sched_slice_us (-1 = its default, 100; 0 = the kernel's)
    sched_slice_us: int = -1
    # coroproc only: coroproc.own_delivery_spin_us (-1 = its default)
    own_delivery_spin_us: int = -1
    by_default: bool = True   # in a run without --kinds


KINDS = {k.name: k for k in (
    Kind("corosync-shm", "corosync", "udpu", "shm", ""),
    Kind("corosync-socket", "corosync", "udpu", "socket", ""),
    Kind("coroproc", "coroproc", "udpu", "socket", "corosync-shm"),
    # every process SCHED_RR 99, as Corosync's one process runs (sched_rr: yes); coroproc
    # gives it to the token's path only, with sched_rr: yes (coroproc-rrpath). ring_cpu none:
    # with every process RR 99 on one CPU, three nodes keep it busy and the kernel then
    # gives that CPU's starved normal tasks only up to 50 ms of each second (p99 ~30 ms at
    # 1,000 msgs/s before idle token pacing; docs/executive.md "CPU placement")
    Kind("coroproc-rr", "coroproc", "udpu", "socket", "corosync-shm", rr=True,
         ring_cpu="none"),
    Kind("corosync-knet", "corosync", "knet", "shm", ""),
    Kind("coroproc-knet", "coroproc", "knet", "socket", "corosync-knet"),
    # the token's path (ring and link processes) at SCHED_RR 99, engines SCHED_OTHER:
    # system.sched_rr: yes (supervisor/scheduling.py)
    Kind("coroproc-rrpath", "coroproc", "udpu", "socket", "corosync-shm", sched_rr="yes",
         by_default=False),
    Kind("coroproc-knet-rrpath", "coroproc", "knet", "socket", "corosync-knet",
         sched_rr="yes", by_default=False),
    # only the link processes at SCHED_RR 99: the ring process stays SCHED_OTHER beside
    # the CPG engine, whose batching an RR ring process broke (docs/executive.md
    # "Scheduling")
    Kind("coroproc-rrlink", "coroproc", "udpu", "socket", "corosync-shm",
         rr_titles="coroproc: net", by_default=False),
    Kind("coroproc-knet-rrlink", "coroproc", "knet", "socket", "corosync-knet",
         rr_titles="coroproc: net", by_default=False),
    # every coroproc process with the kernel's default EEVDF slice instead of coroproc's
    # 100 µs (coroproc.sched_slice_us, supervisor/sched_slice.py)
    Kind("coroproc-noslice", "coroproc", "udpu", "socket", "corosync-shm", sched_slice_us=0,
         by_default=False),
    Kind("coroproc-knet-noslice", "coroproc", "knet", "socket", "corosync-knet",
         sched_slice_us=0, by_default=False),
    # the CPG engine sleeps at once after handing a client's message to the ring
    # (coroproc.own_delivery_spin_us: 0; engineprocs/cpg/jit/loop.py)
    Kind("coroproc-nospin", "coroproc", "udpu", "socket", "corosync-shm",
         own_delivery_spin_us=0, by_default=False),
    Kind("coroproc-knet-nospin", "coroproc", "knet", "socket", "corosync-knet",
         own_delivery_spin_us=0, by_default=False),
    # the default placement against none (bench/results/placement.md)
    Kind("coroproc-unpinned", "coroproc", "udpu", "socket", "corosync-shm", ring_cpu="none",
         by_default=False),
    Kind("coroproc-knet-unpinned", "coroproc", "knet", "socket", "corosync-knet",
         ring_cpu="none", by_default=False),
    # crypto on: Corosync's knet encrypts then MACs (AES-256-CBC + HMAC-SHA256 through
    # NSS); coroproc's links seal with AES-256-GCM (docs/secure-links.md)
    Kind("corosync-knet-aes", "corosync", "knet", "shm", "", cipher="aes256"),
    Kind("coroproc-knet-aes", "coroproc", "knet", "socket", "corosync-knet-aes",
         cipher="aes256"),
)}
AUTHKEY_BYTES = 256


def conf_text(kind: Kind, cluster_name: str, hosts, workdir: Path) -> str:
    """One corosync.conf for every node of the session (runners rewrite log/state paths)."""
    text = corosync_conf(cluster_name=cluster_name, nodes=[(h.index, h.addr) for h in hosts],
                         logfile=str(workdir / "corosync.log"), state_dir=str(workdir / "state"),
                         token_ms=TOKEN_MS)
    if kind.transport == "knet":
        text = text.replace("transport: udpu", "transport: knet", 1)
    if kind.cipher != "none":       # both daemons read one authkey, the session's
        text = text.replace("crypto_cipher: none", f"crypto_cipher: {kind.cipher}", 1)
        text = text.replace("crypto_hash: none",
                            f"crypto_hash: sha256\n    keyfile: {workdir.parent / 'authkey'}", 1)
    if kind.daemon == "corosync" and kind.ipc == "socket":
        text = with_socket_ipc(text)
    if kind.ring_cpu:               # merged with the runner's own coroproc { run_dir }
        text += f"coroproc {{\n    ring_cpu: {kind.ring_cpu}\n}}\n"
    if kind.sched_rr:               # merged with the runner's own system { state_dir }
        text += f"system {{\n    sched_rr: {kind.sched_rr}\n}}\n"
    if kind.idle_token_pace_us >= 0:
        text += f"coroproc {{\n    idle_token_pace_us: {kind.idle_token_pace_us}\n}}\n"
    if kind.sched_slice_us >= 0:
        text += f"coroproc {{\n    sched_slice_us: {kind.sched_slice_us}\n}}\n"
    if kind.own_delivery_spin_us >= 0:
        text += f"coroproc {{\n    own_delivery_spin_us: {kind.own_delivery_spin_us}\n}}\n"
    return text


def _members(logfile) -> set[int] | None:
    try:
        text = Path(logfile).read_text(errors="replace")
    except FileNotFoundError:
        return None
    found = MEMBERS_RE.findall(text)
    return {int(x) for x in found[-1].split()} if found else None


class Session:
    """`with Session(kind, nodes, workdir) as s:` — a running, formed cluster of `kind`."""

    def __init__(self, kind: Kind, nodes: int, workdir: Path):
        self.kind = kind
        self.n = nodes
        self.workdir = Path(workdir)
        self.net = Cluster("sbs", nodes)
        self.daemons: dict[int, CorosyncNode | CoroprocNode] = {}
        self.roots: dict[int, int] = {}

    def __enter__(self) -> "Session":
        self.net.__enter__()
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        name = f"sbs{os.getpid() % 100000}"
        if self.kind.cipher != "none":
            self.workdir.mkdir(parents=True, exist_ok=True)
            key = self.workdir / "authkey"
            key.write_bytes(os.urandom(AUTHKEY_BYTES))
            key.chmod(0o400)
        for h in self.net:
            nd = self.workdir / f"n{h.index}"
            nd.mkdir(parents=True, exist_ok=True)
            text = conf_text(self.kind, name, self.net, nd)
            d = (CorosyncNode(h, h.index, text, nd) if self.kind.daemon == "corosync"
                 else CoroprocNode(h, h.index, text, str(nd)))
            d.start()
            self.daemons[h.index] = d
            self.roots[h.index] = d.proc.pid
        want = set(self.daemons)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not all(_members(d.logfile) == want for d in self.daemons.values()):
            dead = [i for i, d in self.daemons.items() if d.proc.poll() is not None]
            if dead or time.monotonic() > deadline:
                why = f"node(s) {dead} exited" if dead else f"no ring after {READY_TIMEOUT_S:.0f} s"
                raise RuntimeError(f"{self.kind.name}, {self.n} node(s): {why}; see the logs "
                                   f"under {self.workdir}")
            time.sleep(POLL_S)
        if self.kind.rr:  # a CFS daemon beside a SCHED_RR one on a shared machine: both ways
            for tree in self.trees().values():
                set_rr(tree, RR_PRIORITY)
        if self.kind.rr_titles:
            for tree in self.trees().values():
                set_rr({pid for pid in tree if _title(pid).startswith(self.kind.rr_titles)},
                       RR_PRIORITY)

    def close(self) -> None:
        try:
            for d in self.daemons.values():
                try:
                    d.stop()
                except Exception:  # keep stopping the others; the Cluster kills what is left
                    pass
        finally:
            self.net.close()

    def trees(self) -> dict[int, set[int]]:
        """Every process of every node (coroproc: supervisor + ring + net + engines)."""
        return {i: process_tree(pid) for i, pid in self.roots.items()
                if self.daemons[i].proc.poll() is None}

    def client_argv(self, nodeid: int, argv: list[str]) -> list[str]:
        """argv that runs a libcpg client where node `nodeid`'s clients live: Corosync's
        netns + private mount ns (its /dev/shm), coroproc's netns (socket IPC only)."""
        d = self.daemons[nodeid]
        if self.kind.daemon == "corosync":
            return d.client_argv(argv)
        return d.host.wrap(argv)

    def kill_and_time_ms(self, victim: int) -> float:
        """kill -9 node `victim`; ms until node 1 logs the configuration without it
        (bench_failover.py's method: the survivors' "[QUORUM] Members[...]" line)."""
        rest = set(self.daemons) - {victim}
        d = self.daemons[victim]
        t_kill = time.monotonic()
        d.proc.kill()
        d.proc.wait(timeout=30)
        deadline = t_kill + FAILOVER_TIMEOUT_S
        while _members(self.daemons[1].logfile) != rest:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind.name}: node 1 saw no configuration without "
                                   f"node {victim} within {FAILOVER_TIMEOUT_S:.0f} s")
            time.sleep(POLL_S)
        ms = (time.monotonic() - t_kill) * 1000
        if self.kind.daemon == "coroproc":
            d.stop()  # a killed supervisor leaves shm segments: the runner removes them
        return ms
