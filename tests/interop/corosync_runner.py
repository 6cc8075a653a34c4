"""Run the real Corosync 3.1.7 daemon inside netns test hosts, and ask it questions.

This file owns: writing a corosync.conf for the udpu/udp transports, starting one corosync
per `Host` of a `netns.harness.Cluster`, and reading its state (cmap runtime.members,
ring id, log lines). Tests compare coroproc against what this runner shows.

What a corosync instance needs to share a machine with others (learned on this machine):
* `/var/run/corosync.pid` is hard-coded: a second daemon with the same /run refuses to
  start ("Another Corosync instance is already running", exit 18). So each daemon gets a
  private mount namespace (`unshare -m`) with a tmpfs on /run.
* libqb "native" IPC on Linux = an abstract unix setup socket (per network namespace)
  plus shared-memory ring buffers in /dev/shm. The daemon gets a private tmpfs /dev/shm,
  so a killed daemon leaves nothing in the host's /dev/shm; the price is that clients
  (corosync-cmapctl, libcpg users) must enter the daemon's mount AND network namespaces:
  `nsenter -t <pid> -m -n` (see `CorosyncNode.client_argv`). A client in the right
  netns but the host's /dev/shm connects to the socket and then fails on the ring
  buffers (test_cmapctl_needs_the_daemons_mount_namespace shows it).
* `system { state_dir }` per node (ring-id sequence file), `move_to_root_cgroup: no` so
  the daemon never leaves the test's cgroup.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from netns.harness import Cluster, HarnessError, Host, stop_popen

COROSYNC = "corosync"
CMAPCTL = "corosync-cmapctl"
QUORUMTOOL = "corosync-quorumtool"
DEFAULT_TOKEN_MS = 1000
DEFAULT_MCAST_PORT = 5405
READY_LINE = "Completed service synchronization, ready to provide service."
# "[TOTEM ] A new membership (1.1a) was formed. Members joined: 2 3 left: 1"
MEMBERSHIP_RE = re.compile(r"A new membership \(([0-9a-f]+\.[0-9a-f]+)\) was formed")
# "[QUORUM] Members[2]: 1 2"
MEMBERS_RE = re.compile(r"\[QUORUM\] Members\[(\d+)\]:((?: \d+)*)")
_MEMBER_STATUS_RE = re.compile(r"^runtime\.members\.(\d+)\.status \(str\) = (\S+)$")
_RING_ID_RE = re.compile(r"^Ring ID:\s+([0-9a-f]+\.[0-9a-f]+)\s*$", re.M)
_POLL_S = 0.02


class CorosyncError(RuntimeError):
    """The real corosync daemon did not start, answer or reach the expected state."""


def unavailable_reason() -> str | None:
    """Why real-Corosync tests cannot run (None when they can)."""
    missing = [t for t in (COROSYNC, CMAPCTL, QUORUMTOOL, "nsenter", "unshare") if shutil.which(t) is None]
    if missing:
        return (f"real Corosync not installed (missing {', '.join(missing)}); "
                "apt-get install corosync (Debian 3.1.7)")
    return None


def corosync_conf(*, cluster_name: str, nodes: Sequence[tuple[int, str]], logfile: str,
                  state_dir: str, transport: str = "udpu", token_ms: int = DEFAULT_TOKEN_MS,
                  mcast_addr: str = "239.192.99.1", mcast_port: int = DEFAULT_MCAST_PORT,
                  ip_version: str = "ipv4", extra_totem: dict[str, str | int] | None = None) -> str:
    """Text of a corosync.conf for `udpu` or `udp` (multicast), no crypto, votequorum.

    nodes: (nodeid, ring0_addr) pairs. mcast_addr/mcast_port apply to udp only (udpu
    still uses mcast_port as its UDP port). Debug logging stays off: debug lines cost
    CPU and would distort idle measurements.
    """
    if transport not in ("udpu", "udp"):
        raise ValueError(f"transport {transport!r}: this runner writes 'udpu' or 'udp'")
    if not nodes or len({nid for nid, _ in nodes}) != len(nodes):
        raise ValueError(f"nodes {nodes}: give at least one (nodeid, addr), nodeids unique")
    totem = {"version": 2, "cluster_name": cluster_name, "transport": transport,
             "crypto_cipher": "none", "crypto_hash": "none", "token": token_ms,
             "ip_version": ip_version, **(extra_totem or {})}
    lines = ["totem {", *(f"    {k}: {v}" for k, v in totem.items()),
             "    interface {", "        linknumber: 0", f"        mcastport: {mcast_port}"]
    if transport == "udp":
        lines.append(f"        mcastaddr: {mcast_addr}")
    lines += ["    }", "}", "nodelist {"]
    for nodeid, addr in nodes:
        lines += ["    node {", f"        name: n{nodeid}", f"        nodeid: {nodeid}",
                  f"        ring0_addr: {addr}", "    }"]
    lines += ["}", "quorum {", "    provider: corosync_votequorum", "}",
              "logging {", "    to_stderr: no", "    to_syslog: no", "    to_logfile: yes",
              f"    logfile: {logfile}", "    timestamp: hires", "    debug: off", "}",
              "system {", f"    state_dir: {state_dir}", "    move_to_root_cgroup: no", "}", ""]
    return "\n".join(lines)


def with_socket_ipc(conf_text: str) -> str:
    """conf_text with `system { qb_ipc_type: socket }`: libqb then answers clients in
    socket mode (datagram sockets + a 24-byte control file), which coroproc's Python
    client speaks. Added for tests/client."""
    if "qb_ipc_type:" in conf_text:
        return conf_text
    if "system {" not in conf_text:
        raise ValueError("conf_text has no `system {` section to add qb_ipc_type to")
    return conf_text.replace("system {", "system {\n    qb_ipc_type: socket", 1)


class CorosyncNode:
    """One real corosync daemon on one netns host (restartable: start → stop/kill → start)."""

    def __init__(self, host: Host, nodeid: int, conf_text: str, workdir: Path):
        self.host = host
        self.nodeid = nodeid
        self.workdir = Path(workdir)
        self.conf_path = self.workdir / "corosync.conf"
        self.logfile = self.workdir / "corosync.log"
        self.state_dir = self.workdir / "state"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(conf_text)
        self.proc: subprocess.Popen | None = None
        self.started_at_s: float | None = None  # time.monotonic() of the last exec

    def use_socket_ipc(self) -> None:
        """Rewrite this node's corosync.conf for libqb socket-mode IPC (before start())."""
        self.conf_path.write_text(with_socket_ipc(self.conf_path.read_text()))

    @property
    def pid(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            raise CorosyncError(f"corosync n{self.nodeid} on {self.host.netns} is not running")
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start_argv(self) -> list[str]:
        """argv (run inside the host netns) that execs corosync in a private mount ns."""
        script = ("mount -t tmpfs -o size=64m,mode=1777 tmpfs /dev/shm && "
                  "mount -t tmpfs -o size=16m,mode=755 tmpfs /run && "
                  f"exec {COROSYNC} -f -c {self.conf_path}")
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", script]

    def start(self) -> None:
        """Exec corosync (same pid all the way: ip netns exec, unshare and sh all exec)."""
        if self.running():
            raise CorosyncError(f"corosync n{self.nodeid} already running (pid {self.proc.pid})")
        out = open(self.workdir / "stdout.log", "ab")
        try:
            self.started_at_s = time.monotonic()
            self.proc = self.host.popen(self.start_argv(), stdout=out, stderr=subprocess.STDOUT)
        finally:
            out.close()

    def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM (corosync leaves the ring cleanly), wait grace_s, then SIGKILL."""
        if self.proc is None:
            return None
        return stop_popen(self.proc, grace_s)

    def kill(self) -> None:
        """SIGKILL now, as a crash: the others must detect it by token loss."""
        if self.running():
            self.proc.kill()
            self.proc.wait(timeout=10)

    # ---- talking to the daemon
    def client_argv(self, argv: Sequence[str]) -> list[str]:
        """argv that runs a client program in this daemon's network and mount namespaces."""
        return ["nsenter", "-t", str(self.pid), "-m", "-n", *argv]

    def client(self, argv: Sequence[str], timeout_s: float = 10.0) -> subprocess.CompletedProcess:
        """Run a client tool in the daemon's namespaces. One that does not answer in time
        (a daemon busy in sync on a loaded machine) reads as a failed call, rc -1, so
        polling callers simply ask again."""
        try:
            return subprocess.run(self.client_argv(argv), capture_output=True, text=True,
                                  timeout=timeout_s)
        except subprocess.TimeoutExpired as e:
            return subprocess.CompletedProcess(e.cmd, -1, "", f"timed out after {timeout_s} s")

    def cmap_get(self, prefix: str) -> str | None:
        """`corosync-cmapctl -b <prefix>` output, or None if the daemon does not answer."""
        proc = self.client([CMAPCTL, "-b", prefix])
        return proc.stdout if proc.returncode == 0 else None

    def cmap_value(self, key: str) -> str | None:
        """Value of one cmap key (`corosync-cmapctl -g`), as text; None if absent/no answer."""
        proc = self.client([CMAPCTL, "-g", key])
        if proc.returncode != 0 or " = " not in proc.stdout:
            return None
        return proc.stdout.split(" = ", 1)[1].strip()

    def members(self) -> set[int]:
        """Node ids with runtime.members.<id>.status = joined (empty if no answer)."""
        out = self.cmap_get("runtime.members") or ""
        return {int(m.group(1)) for line in out.splitlines()
                if (m := _MEMBER_STATUS_RE.match(line.strip())) and m.group(2) == "joined"}

    def ring_id(self) -> str | None:
        """Current ring id "<rep nodeid hex>.<seq hex>", as corosync-quorumtool prints it.

        3.1.7 has no cmap key for the ring id (only the state_dir ringid_<n> file, which
        holds the seq alone); the quorum API has it, and the log's "A new membership (…)"
        line is the fallback when quorumtool cannot answer.
        """
        proc = self.client([QUORUMTOOL, "-s"])
        if m := _RING_ID_RE.search(proc.stdout):
            return m.group(1)
        found = [m.group(1) for line in self.log_lines() if (m := MEMBERSHIP_RE.search(line))]
        return found[-1] if found else None

    def is_ready(self) -> bool:
        """cmap answers and lists this node as joined (the daemon finished its first sync)."""
        return self.running() and self.nodeid in self.members()

    # ---- logs
    def log_size(self) -> int:
        """A mark for log_lines(since=…): the log's current length in bytes."""
        try:
            return self.logfile.stat().st_size
        except FileNotFoundError:
            return 0

    def log_lines(self, since: int = 0) -> list[str]:
        try:
            with open(self.logfile, "rb") as f:
                f.seek(since)
                return f.read().decode(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def wait_log(self, pattern: str | re.Pattern, since: int, timeout_s: float) -> tuple[re.Match, float]:
        """First match of `pattern` in log lines written after mark `since`; returns
        (match, time.monotonic() when it was seen). Raises CorosyncError on timeout."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout_s
        while True:
            for line in self.log_lines(since):
                if m := regex.search(line):
                    return m, time.monotonic()
            if time.monotonic() > deadline:
                raise CorosyncError(f"n{self.nodeid}: no log line matching {regex.pattern!r} "
                                    f"within {timeout_s}s; log tail:\n" + "\n".join(self.log_lines()[-15:]))
            time.sleep(_POLL_S)

    def wait_members(self, expected: Iterable[int], timeout_s: float) -> float:
        """Wait until runtime.members' joined set equals `expected`; returns when (monotonic)."""
        want = set(expected)
        deadline = time.monotonic() + timeout_s
        seen: set[int] = set()
        while time.monotonic() <= deadline:
            if not self.running():
                raise CorosyncError(f"n{self.nodeid} exited (rc {self.proc.returncode}) while waiting "
                                    f"for members {sorted(want)}; log tail:\n" + "\n".join(self.log_lines()[-15:]))
            seen = self.members()
            if seen == want:
                return time.monotonic()
            time.sleep(_POLL_S)
        raise CorosyncError(f"n{self.nodeid} on {self.host.netns}: members {sorted(seen)} after "
                            f"{timeout_s}s, expected {sorted(want)}")


class CorosyncCluster:
    """One CorosyncNode per host of a netns Cluster (node id = host index)."""

    def __init__(self, net: Cluster, workdir: Path, *, transport: str = "udpu",
                 token_ms: int = DEFAULT_TOKEN_MS, cluster_name: str | None = None):
        self.net = net
        nodes = [(h.index, h.addr) for h in net]
        name = cluster_name or f"c{os.getpid() % 100000}"
        self.nodes: dict[int, CorosyncNode] = {}
        for h in net:
            nd = Path(workdir) / f"n{h.index}"
            nd.mkdir(parents=True, exist_ok=True)
            conf = corosync_conf(cluster_name=name, nodes=nodes, transport=transport, token_ms=token_ms,
                                 logfile=str(nd / "corosync.log"), state_dir=str(nd / "state"),
                                 ip_version="ipv6" if net.ipv6 else "ipv4")
            self.nodes[h.index] = CorosyncNode(h, h.index, conf, nd)

    def __getitem__(self, nodeid: int) -> CorosyncNode:
        return self.nodes[nodeid]

    def start_all(self) -> None:
        for node in self.nodes.values():
            node.start()

    def wait_membership(self, groups: Sequence[Iterable[int]], timeout_s: float) -> None:
        """Every node of each group sees exactly that group as members."""
        for group in groups:
            group = set(group)
            for nodeid in sorted(group):
                self.nodes[nodeid].wait_members(group, timeout_s)

    def stop_all(self) -> None:
        errors = []
        for node in self.nodes.values():
            try:
                node.stop()
            except (subprocess.SubprocessError, HarnessError) as e:  # keep stopping the others
                errors.append(f"n{node.nodeid}: {e}")
        if errors:
            raise CorosyncError("; ".join(errors))
