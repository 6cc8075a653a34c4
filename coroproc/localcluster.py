"""Real coroproc daemons on loopback: configs, start/kill/restart, and what their logs say.

Used by the demo (`python -m coroproc.demo`) and by tests/process.

Each node gets its own loopback address (127.<k>.<j>.<i>, all local on Linux) and the same
port, its own run/state dirs and logfile, and runs `coroproc -f` with the load engine
writing the EVS event log. Cluster names and ports are unique per test so pytest-xdist
workers never share a ring, a shm segment or a socket.
"""
from __future__ import annotations

import os
import re
import random
import signal
import subprocess
import sys
import time

from coroproc.eventlog import append_event, read_event_log
from coroproc.ipc.names import remove_stale_connection_dirs
from coroproc.shm.names import remove_node_segments

FORMED = re.compile(r"A new membership \(([0-9a-f]+)\.([0-9a-f]+)\) was formed")
MEMBERS = re.compile(r"\[QUORUM\] Members\[(\d+)\]: ([\d ]+)")


def synced_after_last_ring(lines: list[str]) -> bool:
    """A Corosync or coroproc log has "Completed service synchronization" after its last
    "A new membership" line: the sync of the node's current ring is done."""
    last_ring = max((k for k, ln in enumerate(lines) if FORMED.search(ln)), default=None)
    return last_ring is not None and any("Completed service synchronization" in ln
                                         for ln in lines[last_ring:])


CONF = """totem {{
    version: 2
    cluster_name: {cluster}
    transport: udpu
    token: {token_ms}
}}
nodelist {{
{nodes}
}}
logging {{
    to_stderr: no
    to_logfile: yes
    logfile: {dir}/node{i}.log
    to_syslog: no
}}
system {{
    state_dir: {dir}/state{i}
}}
quorum {{
    provider: corosync_votequorum
}}
coroproc {{
    nodeid: {i}
    run_dir: {dir}/run{i}
    service_suffix: {suffix}{extra}
}}
{sections}"""
NODE = """    node {{
        nodeid: {i}
        ring0_addr: {addr}
    }}"""


class LocalCluster:
    def __init__(self, tmp_dir: str, n: int, token_ms: int = 1000, rate_msgs_per_s: float = 50,
                 coroproc_keys: dict | None = None, extra_sections: str = "",
                 transport: str = "udpu", links: int = 1, crypto: bool = False,
                 link_mode: str = "passive"):
        """transport knet runs coroproc's secure links: `links` links per node (link k on
        127.<tag>.<x+k>.<i>, port + 2k), with `crypto` an AES-256-GCM authkey in tmp_dir."""
        self.dir = str(tmp_dir)
        self.n = n
        tag = random.randrange(1, 250)
        self.cluster = f"lc{os.getpid()}x{tag}"
        self.port = random.randrange(20000, 60000, 2)
        self.addrs = {i: f"127.{tag}.{os.getpid() % 240 + 1}.{i}" for i in range(1, n + 1)}
        self.token_ms = token_ms
        self.rate = rate_msgs_per_s
        self.procs: dict[int, subprocess.Popen] = {}
        if transport != "knet" and (links != 1 or crypto):
            raise ValueError("several links and crypto need transport knet")
        self.transport, self.links = transport, links
        nodes = "\n".join(NODE.format(i=i, addr=a) for i, a in self.addrs.items())
        if links > 1:
            nodes = "\n".join(self._knet_node(i, links) for i in self.addrs)
        interfaces = "".join(f"\n    interface {{\n        linknumber: {k}\n        mcastport: "
                             f"{self.port + 2 * k}\n    }}" for k in range(links))
        totem = f"transport: {transport}{interfaces}"
        if transport == "knet":
            totem += f"\n    link_mode: {link_mode}"
            totem += self._crypto_keys() if crypto else ""
        for i in self.addrs:
            extra = "".join(f"\n    {k}: {v}" for k, v in (coroproc_keys or {}).items())
            conf = CONF.format(cluster=self.cluster, token_ms=token_ms, nodes=nodes, dir=self.dir,
                               i=i, extra=extra, suffix=self.suffix(i), sections=extra_sections)
            conf = conf.replace("transport: udpu", totem)
            with open(self.conf(i), "w") as f:
                f.write(conf)

    def link_addr(self, i: int, link: int) -> str:
        a, b, c, d = self.addrs[i].split(".")
        return f"{a}.{b}.{int(c) + link}.{d}"

    def _knet_node(self, i: int, links: int) -> str:
        rings = "".join(f"\n        ring{k}_addr: {self.link_addr(i, k)}" for k in range(links))
        return f"    node {{\n        nodeid: {i}{rings}\n    }}"

    def _crypto_keys(self) -> str:
        self.keyfile = os.path.join(self.dir, "authkey")
        with open(self.keyfile, "wb") as f:
            f.write(os.urandom(256))
        os.chmod(self.keyfile, 0o400)
        return (f"\n    crypto_cipher: aes256\n    crypto_hash: sha256\n"
                f"    keyfile: {self.keyfile}")

    def suffix(self, i: int) -> str:
        """Node i's IPC service-name suffix (all nodes share the host's abstract sockets)."""
        return f"{self.cluster}.{i}"

    def conf(self, i: int) -> str:
        return os.path.join(self.dir, f"node{i}.conf")

    def logfile(self, i: int) -> str:
        return os.path.join(self.dir, f"node{i}.log")

    def event_log(self, i: int) -> str:
        return os.path.join(self.dir, f"ev{i}.jsonl")

    # ---- processes ----
    def start(self, i: int, env: dict | None = None, wrap: tuple[str, ...] = ()) -> None:
        """Start node i; `wrap` runs it under a command that execs it (setpriv ...)."""
        out = open(os.path.join(self.dir, f"node{i}.out"), "ab")
        self.procs[i] = subprocess.Popen(
            [*wrap, sys.executable, "-m", "coroproc", "-f", "-c", self.conf(i), "--workload", str(self.rate),
             "--event-log", self.event_log(i)], stdout=out, stderr=subprocess.STDOUT, env=env)
        out.close()

    def start_all(self) -> None:
        for i in self.addrs:
            self.start(i)

    def kill(self, i: int, sig=signal.SIGKILL) -> None:
        p = self.procs[i]
        p.send_signal(sig)
        p.wait(timeout=30)
        if sig == signal.SIGKILL:
            append_event(self.event_log(i),
                         {"ev": "crash", "node": i, "t_us": time.monotonic_ns() // 1000})

    def stop_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for i, p in self.procs.items():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.returncode < 0:
                # a supervisor killed by a signal could not clean up; its next start
                # would: do it now
                remove_node_segments(self.cluster, i)
                # ... nor could its engines remove their clients' IPC directories
                remove_stale_connection_dirs(self.suffix(i), suffix_only=True)

    def child_pids(self, i: int) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.procs[i].pid)], capture_output=True, text=True)
        return [int(x) for x in out.stdout.split()]

    def child_titles(self, i: int) -> dict[str, int]:
        """Node i's children by ps title ("coroproc: ring" → pid); gone ones left out."""
        out = {}
        for pid in self.child_pids(i):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    out[f.read().split(b"\0")[0].decode(errors="replace")] = pid
            except (FileNotFoundError, ProcessLookupError):
                continue
        return out

    def processes(self, i: int) -> dict[str, int]:
        """Every process of node i by ps title, the supervisor as "supervisor"."""
        return {**self.child_titles(i), "supervisor": self.procs[i].pid}

    def wait_restarted(self, i: int, title: str, old_pid: int, timeout_s: float = 60.0) -> int:
        """The pid of node i's child `title` once it is not old_pid: the supervisor
        restarted it."""
        end = time.monotonic() + timeout_s
        while (pid := self.child_titles(i).get(title, old_pid)) == old_pid:
            if time.monotonic() > end:
                raise AssertionError(f"node {i}: {title} (pid {old_pid}) was not restarted "
                                     f"within {timeout_s:.0f} s: " + self.tail(i))
            time.sleep(0.05)
        return pid

    # ---- what the logs say ----
    def log_lines(self, i: int) -> list[str]:
        try:
            with open(self.logfile(i), errors="replace") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def mark(self) -> dict[int, int]:
        """Log positions now: wait_members(..., since=mark) ignores earlier lines."""
        return {i: len(self.log_lines(i)) for i in self.addrs}

    def wait_for_log(self, i: int, text: str, timeout_s: float = 30.0) -> None:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if any(text in ln for ln in self.log_lines(i)):
                return
            time.sleep(0.05)
        raise AssertionError(f"node {i} never logged {text!r}: " + self.tail(i))

    def wait_synced(self, nodes, timeout_s: float = 30.0) -> None:
        """Wait until each node in `nodes` logged "Completed service synchronization" after
        its last "A new membership" line: the sync of its current ring is done. (A ring
        that forms in stages logs a sync of the smaller ring first; wait_for_log would
        take that one.)"""
        end = time.monotonic() + timeout_s
        pending = list(nodes)
        while pending and time.monotonic() < end:
            pending = [i for i in pending if not synced_after_last_ring(self.log_lines(i))]
            if pending:
                time.sleep(0.05)
        if pending:
            raise AssertionError(f"node {pending[0]} never completed the sync of its last "
                                 "ring: " + self.tail(pending[0]))

    def members(self, i: int, since: int = 0) -> tuple[int, ...] | None:
        last = None
        for line in self.log_lines(i)[since:]:
            m = MEMBERS.search(line)
            if m:
                last = tuple(int(x) for x in m.group(2).split())
        return last

    def wait_members(self, nodes, members, timeout_s: float = 60.0,
                     since: dict[int, int] | None = None) -> float:
        """Wait until every node in `nodes` logged Members[...] == members (after `since`,
        a mark()); returns the seconds it took."""
        want = tuple(sorted(members))
        since = since or {}
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if all(self.members(i, since.get(i, 0)) == want for i in nodes):
                return time.monotonic() - t0
            for i in nodes:
                if self.procs[i].poll() is not None:
                    raise AssertionError(f"node {i} exited with {self.procs[i].returncode}: "
                                         + self.tail(i))
            time.sleep(0.05)
        raise AssertionError(f"nodes {list(nodes)} did not reach members {want} in {timeout_s} s: "
                             + "; ".join(f"{i}: {self.members(i)}" for i in nodes))

    def tail(self, i: int, n: int = 15) -> str:
        out = os.path.join(self.dir, f"node{i}.out")
        with open(out, errors="replace") as f:
            text = f.read().splitlines()[-n:]
        return "\n".join(self.log_lines(i)[-n:] + text)

    def event_logs(self) -> dict[int, list[dict]]:
        return {i: read_event_log(self.event_log(i)) for i in self.addrs}
