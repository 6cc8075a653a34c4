"""Real multi-host clusters on one machine: network namespaces joined by a bridge.

This file owns the life cycle of a test cluster's namespaces, veth pairs and bridge, and
of every process started inside them. Packet faults (partition, loss, block) live in
`faults.py`; `Cluster` only forwards to it.

Topology of `Cluster("cpt", 3)` (tag = creator pid + per-process sequence number):

    netns cpt-<pid>-<seq>-br : br0 (bridge, STP off, multicast snooping off so
                               multicast floods to every port) + v1..vN
    netns cpt-<pid>-<seq>-hI : lo, eth0 (veth peer of vI), 10.<k>.0.I/24,
                               optionally fd00:<k>::I/64 (nodad), 224.0.0.0/4 via eth0

Nothing is created in the root namespace, so the host's interfaces and routes are never
touched, and interface names can be short and fixed (only netns names carry the tag).
The creator pid in every name lets `sweep_stale` tell a crashed run's leftovers from a
parallel pytest-xdist worker's live cluster: it only removes names whose pid is dead.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
import weakref
from collections.abc import Sequence

DEFAULT_PREFIX = "cpt"
BRIDGE_IFNAME = "br0"
HOST_IFNAME = "eth0"
# `ip netns add` mounts /run/netns on first use; two first uses at once can stack mounts.
_NETNS_LOCK_PATH = "/run/lock/coroproc-netns.lock" if os.path.isdir("/run/lock") else "/tmp/coroproc-netns.lock"
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")
_SEQ = itertools.count()
_SETUP_TIMEOUT_S = 10.0
_STOP_GRACE_S = 3.0


class HarnessError(RuntimeError):
    """A namespace, link or process operation of the test harness failed."""


def unavailable_reason() -> str | None:
    """Why netns clusters cannot run here (None when they can): root and `ip netns`."""
    if os.geteuid() != 0:
        return "network-namespace tests need root (creating netns, veth and bridges)"
    if shutil.which("ip") is None:
        return "`ip` (iproute2) is not installed"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"`ip netns` is unavailable: {probe.stderr.strip()}"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=_SETUP_TIMEOUT_S)
    if check and proc.returncode != 0:
        raise HarnessError(f"`ip {' '.join(args)}` failed (rc {proc.returncode}): {proc.stderr.strip()}")
    return proc


def list_netns() -> list[str]:
    """Names of all network namespaces in /run/netns (ours and everybody else's)."""
    out = _ip("netns", "list").stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_pids(netns: str) -> list[int]:
    """PIDs of every process whose network namespace is `netns`."""
    proc = _ip("netns", "pids", netns, check=False)
    return [int(tok) for tok in proc.stdout.split() if tok.isdigit()]


def stop_pid(pid: int, grace_s: float = _STOP_GRACE_S) -> None:
    """SIGTERM `pid`, wait up to grace_s for it to go, then SIGKILL. Reaps it if it is our child."""
    assert pid > 1, f"refusing to signal pid {pid}"
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.02)


def stop_popen(proc: subprocess.Popen, grace_s: float = _STOP_GRACE_S) -> int | None:
    """Stop a Popen we started (SIGTERM, then SIGKILL) and reap it; returns its exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=grace_s)
    return proc.returncode


def pid_alive(pid: int) -> bool:
    """True while pid exists and is not a zombie (a zombie no longer holds its namespaces)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3]
    if state == b"Z":
        try:  # reap it if it is our child; otherwise its parent will
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
    return True


def _name_re(prefix: str) -> re.Pattern:
    return re.compile(rf"^{re.escape(prefix)}-(\d+)-(\d+)-(br|h\d+)$")


def _delete_netns(names: Sequence[str]) -> list[str]:
    """Kill every process inside `names`, then delete them. Returns names that stayed."""
    for name in names:
        for pid in netns_pids(name):
            if pid != os.getpid():
                stop_pid(pid)
    failed = []
    for name in names:
        proc = _ip("netns", "del", name, check=False)
        if proc.returncode != 0 and name in list_netns():
            failed.append(f"{name}: {proc.stderr.strip()}")
    return failed


def sweep_stale(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Delete namespaces `<prefix>-<pid>-<seq>-…` whose creator pid is dead; returns them.

    Namespaces of a live creator (another xdist worker, or this process) are left alone.
    Deleting a namespace kills the processes inside it first, so a crashed run's daemons go
    too; its veths and bridge vanish with their namespaces.
    """
    pattern = _name_re(prefix)
    stale = [n for n in list_netns() if (m := pattern.match(n)) and not pid_alive(int(m.group(1)))]
    failed = _delete_netns(stale)
    if failed:
        raise HarnessError(f"sweep_stale({prefix!r}) could not delete: {'; '.join(failed)}")
    return stale


class Host:
    """One simulated machine: a network namespace with eth0 on the cluster bridge (and
    eth1.. on further bridges when the cluster has several links)."""

    def __init__(self, cluster: "Cluster", index: int, netns: str, addr4: str, addr6: str | None,
                 link_addrs4: Sequence[str] = ()):
        self.cluster = cluster
        self.index = index  # 1-based, as in the namespace name and the address
        self.netns = netns
        self.addr4 = addr4
        self.addr6 = addr6
        self.ifname = HOST_IFNAME
        # IPv4 address of this host on link k (eth<k>, bridge br<k>); [0] is addr4
        self.link_addrs4 = [addr4, *link_addrs4]

    @property
    def addr(self) -> str:
        """The address nodes should use: IPv6 when the cluster is IPv6, else IPv4."""
        return self.addr6 if self.cluster.ipv6 else self.addr4

    def __repr__(self) -> str:
        return f"Host({self.netns}, {self.addr})"

    def wrap(self, cmd: str | Sequence[str]) -> list[str]:
        """argv that runs `cmd` inside this namespace (a str runs under sh -c)."""
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else [str(a) for a in cmd]
        return ["ip", "netns", "exec", self.netns, *argv]

    def run(self, cmd: str | Sequence[str], *, check: bool = True, timeout_s: float = 30.0,
            input: str | None = None) -> subprocess.CompletedProcess:
        """Run `cmd` to completion inside the namespace; text stdout/stderr are captured."""
        argv = self.wrap(cmd)
        proc = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=timeout_s)
        if check and proc.returncode != 0:
            raise HarnessError(
                f"on {self.netns}: `{shlex.join(argv[4:])}` exited {proc.returncode}: "
                f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
        return proc

    def popen(self, cmd: str | Sequence[str], **popen_kwargs) -> subprocess.Popen:
        """Start `cmd` inside the namespace; the cluster stops it on exit.

        `ip netns exec` execs the command, so the Popen's pid is the command's own pid.
        """
        popen_kwargs.setdefault("stdin", subprocess.DEVNULL)
        popen_kwargs.setdefault("start_new_session", True)  # ^C in pytest must not half-kill it
        proc = subprocess.Popen(self.wrap(cmd), **popen_kwargs)
        self.cluster._track(proc)
        return proc

    def pids(self) -> list[int]:
        return netns_pids(self.netns)


class Cluster:
    """`with Cluster("cpt", 3) as c:` — n hosts on one bridge, torn down on exit.

    Addresses are 10.<subnet>.0.<i>/24 (and fd00:<subnet>::<i>/64 with ipv6=True). Since
    every cluster lives in its own namespaces, equal subnets in parallel clusters are fine.
    """

    def __init__(self, name_prefix: str = DEFAULT_PREFIX, n_hosts: int = 3, ipv6: bool = False,
                 subnet: int = 99, mtu_bytes: int = 1500, links: int = 1):
        if not _PREFIX_RE.match(name_prefix):
            raise ValueError(f"name_prefix {name_prefix!r}: use 1-8 lowercase letters/digits, "
                             "starting with a letter (it prefixes netns names)")
        if not 1 <= n_hosts <= 250:
            raise ValueError(f"n_hosts={n_hosts}: allowed 1..250 (one /24)")
        if not 0 <= subnet <= 255:
            raise ValueError(f"subnet={subnet}: allowed 0..255 (10.<subnet>.0.0/24)")
        if not 1 <= links <= 8 or subnet + links - 1 > 255:
            raise ValueError(f"links={links}: allowed 1..8 (link k is 10.<subnet+k>.0.0/24)")
        self.links = links
        self.prefix = name_prefix
        self.tag = f"{name_prefix}-{os.getpid()}-{next(_SEQ)}"
        self.ipv6 = ipv6
        self.subnet = subnet
        self.mtu_bytes = mtu_bytes
        self.bridge_netns = f"{self.tag}-br"
        self.hosts: list[Host] = [
            Host(self, i, f"{self.tag}-h{i}", f"10.{subnet}.0.{i}",
                 f"fd00:{subnet:x}::{i:x}" if ipv6 else None,
                 [f"10.{subnet + k}.0.{i}" for k in range(1, links)])
            for i in range(1, n_hosts + 1)]
        self._created: list[str] = []  # netns names, in creation order
        self._procs: list[subprocess.Popen] = []
        self._faults = None
        # atexit-time safety net if a test forgets __exit__ (or an exception skips it)
        self._finalizer = weakref.finalize(self, _teardown, self._created, self._procs)

    # ---- life cycle
    def __enter__(self) -> "Cluster":
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop our processes, delete our namespaces (veths and bridge go with them)."""
        self._finalizer()

    def host(self, index: int) -> Host:
        """Host by its 1-based index (as in `<tag>-h<index>`)."""
        if not 1 <= index <= len(self.hosts):
            raise IndexError(f"host {index}: this cluster has hosts 1..{len(self.hosts)}")
        return self.hosts[index - 1]

    def __iter__(self):
        return iter(self.hosts)

    def __len__(self) -> int:
        return len(self.hosts)

    def _track(self, proc: subprocess.Popen) -> None:
        self._procs[:] = [p for p in self._procs if p.poll() is None]
        self._procs.append(proc)

    def _add_netns(self, name: str) -> None:
        with open(_NETNS_LOCK_PATH, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            _ip("netns", "add", name)
        self._created.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def _build(self) -> None:
        br = self.bridge_netns
        self._add_netns(br)
        _ip("-n", br, "link", "add", BRIDGE_IFNAME, "type", "bridge", "stp_state", "0",
            "forward_delay", "0", "mcast_snooping", "0")
        _ip("-n", br, "link", "set", BRIDGE_IFNAME, "mtu", str(self.mtu_bytes), "up")
        for h in self.hosts:
            self._add_netns(h.netns)
            port = f"v{h.index}"
            _ip("-n", br, "link", "add", port, "mtu", str(self.mtu_bytes), "type", "veth",
                "peer", "name", HOST_IFNAME, "netns", h.netns)
            _ip("-n", br, "link", "set", port, "master", BRIDGE_IFNAME, "up")
            _ip("-n", h.netns, "addr", "add", f"{h.addr4}/24", "dev", HOST_IFNAME)
            if self.ipv6:
                h.run(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0",
                       f"net.ipv6.conf.{HOST_IFNAME}.disable_ipv6=0"])
                _ip("-n", h.netns, "addr", "add", f"{h.addr6}/64", "dev", HOST_IFNAME, "nodad")
            _ip("-n", h.netns, "link", "set", HOST_IFNAME, "up")
            # no default route in a test host, so IPv4 multicast needs its own route
            _ip("-n", h.netns, "route", "add", "224.0.0.0/4", "dev", HOST_IFNAME)
        for k in range(1, self.links):
            self._build_extra_link(k)
        self._wait_links_up()

    def _build_extra_link(self, k: int) -> None:
        """Link k: bridge br<k> in the bridge namespace, eth<k> in every host."""
        br, bridge = self.bridge_netns, f"br{k}"
        _ip("-n", br, "link", "add", bridge, "type", "bridge", "stp_state", "0",
            "forward_delay", "0", "mcast_snooping", "0")
        _ip("-n", br, "link", "set", bridge, "mtu", str(self.mtu_bytes), "up")
        for h in self.hosts:
            port, ifname = f"v{h.index}l{k}", f"eth{k}"
            _ip("-n", br, "link", "add", port, "mtu", str(self.mtu_bytes), "type", "veth",
                "peer", "name", ifname, "netns", h.netns)
            _ip("-n", br, "link", "set", port, "master", bridge, "up")
            _ip("-n", h.netns, "addr", "add", f"{h.link_addrs4[k]}/24", "dev", ifname)
            _ip("-n", h.netns, "link", "set", ifname, "up")

    def _wait_links_up(self) -> None:
        """Wait (bounded) until every bridge port forwards and every host's eth0 is oper-UP."""
        deadline = time.monotonic() + _SETUP_TIMEOUT_S
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = {}
            for bridge in [BRIDGE_IFNAME] + [f"br{k}" for k in range(1, self.links)]:
                out = _ip("-j", "-d", "-n", self.bridge_netns, "link", "show", "master",
                          bridge).stdout
                states.update({link["ifname"]: link.get("linkinfo", {}).get(
                    "info_slave_data", {}).get("state", "?") for link in json.loads(out or "[]")})
            if (len(states) == len(self.hosts) * self.links
                    and all(s == "forwarding" for s in states.values())):
                break
            time.sleep(0.02)
        else:
            raise HarnessError(f"bridge ports of {self.bridge_netns} not forwarding after "
                               f"{_SETUP_TIMEOUT_S:.0f}s: {states}")
        # The kernel's linkwatch sets operstate UP (and IFF_RUNNING) up to ~1 s after the
        # carrier; a daemon that checks its interface in that window waits for its next
        # recheck (corosync udpu: downcheck, 1000 ms), which skews start-up timings.
        for h in self.hosts:
            while True:
                link = json.loads(_ip("-j", "-n", h.netns, "link", "show", HOST_IFNAME).stdout)[0]
                if link.get("operstate") == "UP" and "LOWER_UP" in link.get("flags", []):
                    break
                if time.monotonic() > deadline:
                    raise HarnessError(f"{h.netns}: {HOST_IFNAME} operstate {link.get('operstate')} "
                                       f"after {_SETUP_TIMEOUT_S:.0f}s (expected UP)")
                time.sleep(0.02)

    # ---- faults (iptables inside the host namespaces; see faults.py)
    @property
    def faults(self):
        if self._faults is None:
            from .faults import Faults  # iptables is only needed once a fault is used
            self._faults = Faults(self)
        return self._faults

    def partition(self, groups: Sequence[Sequence[int]]) -> None:
        """Drop all traffic between hosts of different groups (by 1-based index), both ways."""
        self.faults.partition(groups)

    def heal(self) -> None:
        """Remove every fault rule this cluster installed."""
        if self._faults is not None:
            self._faults.heal()

    def loss(self, host: int | Host, pct: float, direction: str = "both") -> None:
        """Drop `pct` % of host's eth0 packets at random ("in", "out" or "both")."""
        self.faults.loss(host, pct, direction)

    def block(self, host_a: int | Host, host_b: int | Host, both_ways: bool = True) -> None:
        """Drop traffic a→b (and b→a unless both_ways=False); other pairs are unaffected."""
        self.faults.block(host_a, host_b, both_ways)

    def cut_link(self, link: int) -> None:
        """Drop everything on eth<link> of every host, both ways (a dead network)."""
        self.faults.cut_link(link)


def _teardown(created: list[str], procs: list[subprocess.Popen]) -> None:
    """Finalizer: runs once, from close(), garbage collection or interpreter exit."""
    for proc in procs:
        stop_popen(proc)
    procs.clear()
    failed = _delete_netns(list(reversed(created)))
    created.clear()
    if failed:
        raise HarnessError(f"cluster teardown could not delete: {'; '.join(failed)}")
