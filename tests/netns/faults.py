"""Packet faults for a netns `Cluster`: partitions, blocked pairs, random loss.

Every rule lives in two chains of our own per host namespace (CPT-IN hooked first in INPUT,
CPT-OUT first in OUTPUT), so `heal()` is a flush of those chains and never touches a rule
a test added itself. Rules match peer addresses (partition, block) or eth0 (loss), so lo
traffic inside a host is never affected. Multicast is cut by the receivers' INPUT rules
(a multicast datagram's source is the sender's unicast address).

iptables-nft and iptables-legacy both work (whichever `iptables` is, else the first found).
IPv6 clusters get the same rules from ip6tables for the fd00:: addresses.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence

from .harness import HOST_IFNAME, HarnessError, Host

CHAIN_IN = "CPT-IN"
CHAIN_OUT = "CPT-OUT"


def _find_tool(names: Sequence[str]) -> str:
    for name in names:
        if shutil.which(name):
            return name
    raise HarnessError(f"none of {', '.join(names)} is installed; fault injection needs "
                       "iptables (apt-get install iptables)")


class Faults:
    """iptables rules inside the namespaces of one cluster."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.iptables = _find_tool(["iptables", "iptables-nft", "iptables-legacy"])
        self.ip6tables = (_find_tool(["ip6tables", "ip6tables-nft", "ip6tables-legacy"])
                          if cluster.ipv6 else None)
        self._hooked: set[str] = set()  # netns names whose INPUT/OUTPUT jump to our chains

    # ---- plumbing
    def _tools(self) -> list[str]:
        return [self.iptables] + ([self.ip6tables] if self.ip6tables else [])

    def _host(self, h: int | Host) -> Host:
        return h if isinstance(h, Host) else self.cluster.host(h)

    def _rule(self, host: Host, tool: str, args: Sequence[str]) -> None:
        if host.netns not in self._hooked:
            for t in self._tools():
                for chain, hook in ((CHAIN_IN, "INPUT"), (CHAIN_OUT, "OUTPUT")):
                    host.run([t, "-w", "-N", chain])
                    host.run([t, "-w", "-I", hook, "1", "-j", chain])
            self._hooked.add(host.netns)
        host.run([tool, "-w", *args])

    def _drop_from(self, at: Host, peer: Host) -> None:
        """At `at`: drop what comes from `peer` and what goes to `peer`."""
        pairs = [(self.iptables, addr) for addr in peer.link_addrs4]
        if self.ip6tables:
            pairs.append((self.ip6tables, peer.addr6))
        for tool, addr in pairs:
            self._rule(at, tool, ["-A", CHAIN_IN, "-s", addr, "-j", "DROP"])
            self._rule(at, tool, ["-A", CHAIN_OUT, "-d", addr, "-j", "DROP"])

    # ---- faults
    def partition(self, groups: Sequence[Sequence[int]]) -> None:
        seen: dict[int, int] = {}
        for g, group in enumerate(groups):
            for idx in group:
                self.cluster.host(idx)  # validates the index
                if idx in seen:
                    raise ValueError(f"partition {groups}: host {idx} is in groups {seen[idx]} and {g}")
                seen[idx] = g
        if len(seen) != len(self.cluster):
            missing = sorted(set(range(1, len(self.cluster) + 1)) - set(seen))
            raise ValueError(f"partition {groups}: hosts {missing} are in no group; "
                             "list every host once")
        for a, ga in seen.items():
            for b, gb in seen.items():
                if ga != gb:
                    self._drop_from(self.cluster.host(a), self.cluster.host(b))

    def block(self, host_a: int | Host, host_b: int | Host, both_ways: bool = True) -> None:
        a, b = self._host(host_a), self._host(host_b)
        if a is b:
            raise ValueError(f"block({a.index}, {b.index}): a host cannot be blocked from itself")
        for tool, src in [(self.iptables, a.addr4)] + ([(self.ip6tables, a.addr6)] if self.ip6tables else []):
            self._rule(b, tool, ["-A", CHAIN_IN, "-s", src, "-j", "DROP"])
        for tool, dst in [(self.iptables, b.addr4)] + ([(self.ip6tables, b.addr6)] if self.ip6tables else []):
            self._rule(a, tool, ["-A", CHAIN_OUT, "-d", dst, "-j", "DROP"])
        if both_ways:
            self.block(b, a, both_ways=False)

    def loss(self, host: int | Host, pct: float, direction: str = "both") -> None:
        if not 0 < pct <= 100:
            raise ValueError(f"loss pct={pct}: allowed 0 < pct <= 100")
        if direction not in ("in", "out", "both"):
            raise ValueError(f"loss direction={direction!r}: allowed 'in', 'out', 'both'")
        h = self._host(host)
        match = ["-m", "statistic", "--mode", "random", "--probability", f"{pct / 100:.6f}", "-j", "DROP"]
        for tool in self._tools():
            if direction in ("in", "both"):
                self._rule(h, tool, ["-A", CHAIN_IN, "-i", HOST_IFNAME, *match])
            if direction in ("out", "both"):
                self._rule(h, tool, ["-A", CHAIN_OUT, "-o", HOST_IFNAME, *match])

    def cut_link(self, link: int) -> None:
        """Every host drops what arrives on or leaves through eth<link> (link 0 = eth0)."""
        if not 0 <= link < self.cluster.links:
            raise ValueError(f"cut_link({link}): this cluster has links 0..{self.cluster.links - 1}")
        ifname = HOST_IFNAME if link == 0 else f"eth{link}"
        for h in self.cluster:
            for tool in self._tools():
                self._rule(h, tool, ["-A", CHAIN_IN, "-i", ifname, "-j", "DROP"])
                self._rule(h, tool, ["-A", CHAIN_OUT, "-o", ifname, "-j", "DROP"])

    def heal(self) -> None:
        for netns in sorted(self._hooked):
            host = next(h for h in self.cluster if h.netns == netns)
            for tool in self._tools():
                host.run([tool, "-w", "-F", CHAIN_IN])
                host.run([tool, "-w", "-F", CHAIN_OUT])
