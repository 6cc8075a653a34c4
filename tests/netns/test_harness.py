"""Tests of the netns harness: hosts reach each other (IPv4, IPv6, multicast), faults
really drop packets and heal() restores them, and teardown leaves nothing behind.

"Not received" is shown without timing thresholds: a receiver reads until an END marker
that the same sender sends over the same path after heal(), so a blocked datagram that
had slipped through would have arrived before END. iptables' own drop counters back it up.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from .harness import Cluster, list_netns, netns_pids, pid_alive, sweep_stale, unavailable_reason

_REASON = unavailable_reason()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")
PORT = 47001
MCAST_GROUP = "239.192.77.1"

# Receive datagrams until b"END"; print each one; joins a multicast group if given.
RECEIVER = r"""
import socket, struct, sys
port, group, ifaddr = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("", port))
if group != "-":
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 socket.inet_aton(group) + socket.inet_aton(ifaddr))
s.settimeout(20)  # a missing END fails the test instead of hanging it
print("ready", flush=True)
while True:
    data = s.recv(2048)
    print(data.decode(), flush=True)
    if data == b"END":
        break
"""
# Send each payload once; report sendto's EPERM (an OUTPUT DROP rule) instead of raising.
SENDER = r"""
import socket, sys
addr, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for payload in sys.argv[3:]:
    try:
        s.sendto(payload.encode(), (addr, port))
    except PermissionError:
        print("eperm", payload, flush=True)
"""


def start_receiver(host, group: str = "-") -> subprocess.Popen:
    proc = host.popen([sys.executable, "-c", RECEIVER, str(PORT), group, host.addr4],
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    return proc


def finish_receiver(proc: subprocess.Popen) -> list[str]:
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, f"receiver failed (no END?): {err}"
    return out.split()


def send(host, addr: str, *payloads: str) -> str:
    return host.run([sys.executable, "-c", SENDER, addr, str(PORT), *payloads]).stdout


def drop_count(host, chain: str) -> int:
    out = host.run(["iptables", "-w", "-L", chain, "-v", "-x", "-n"]).stdout
    return sum(int(line.split()[0]) for line in out.splitlines()[2:] if "DROP" in line)


@pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4", "ipv6"])
def test_every_host_pings_every_other(ipv6):
    with Cluster("cpt", 3, ipv6=ipv6) as c:
        for a in c:
            for b in c:
                if a is not b:
                    a.run(["ping", "-c", "1", "-W", "5", b.addr])


def test_partition_drops_datagrams_and_heal_restores_them():
    with Cluster("cpt", 3) as c:
        h1, h2, h3 = c.hosts
        rx = start_receiver(h3)
        c.partition([[1], [2, 3]])
        send(h1, h3.addr4, "blocked")
        send(h2, h3.addr4, "samegroup")
        assert drop_count(h1, "CPT-OUT") >= 1
        with pytest.raises(Exception):  # h3 cannot reach h1 either (the other direction)
            h3.run(["ping", "-c", "1", "-W", "1", h1.addr4])
        c.heal()
        send(h1, h3.addr4, "healed", "END")
        got = finish_receiver(rx)
        assert "blocked" not in got
        assert "samegroup" in got and "healed" in got


def test_partition_input_rules_alone_block_a_sender_without_rules():
    """The receiver side drops too: remove the sender's OUTPUT rules, keep the receiver's."""
    with Cluster("cpt", 2) as c:
        h1, h2 = c.hosts
        rx = start_receiver(h2)
        c.partition([[1], [2]])
        h1.run(["iptables", "-w", "-F", "CPT-OUT"])
        h1.run(["iptables", "-w", "-F", "CPT-IN"])
        send(h1, h2.addr4, "blocked")
        assert drop_count(h2, "CPT-IN") >= 1
        c.heal()
        send(h1, h2.addr4, "healed", "END")
        got = finish_receiver(rx)
        assert got == ["healed", "END"]


def test_block_cuts_one_pair_only():
    with Cluster("cpt", 3) as c:
        h1, h2, h3 = c.hosts
        c.block(1, 2)
        assert h1.run(["ping", "-c", "1", "-W", "1", h2.addr4], check=False).returncode != 0
        assert h2.run(["ping", "-c", "1", "-W", "1", h1.addr4], check=False).returncode != 0
        h1.run(["ping", "-c", "1", "-W", "5", h3.addr4])
        h2.run(["ping", "-c", "1", "-W", "5", h3.addr4])
        c.heal()
        h1.run(["ping", "-c", "1", "-W", "5", h2.addr4])


def test_full_loss_drops_everything_and_heal_restores():
    with Cluster("cpt", 2) as c:
        h1, h2 = c.hosts
        c.loss(2, 100, direction="in")
        assert h1.run(["ping", "-c", "1", "-W", "1", h2.addr4], check=False).returncode != 0
        assert drop_count(h2, "CPT-IN") >= 1
        c.heal()
        h1.run(["ping", "-c", "1", "-W", "5", h2.addr4])


def test_multicast_reaches_every_joined_host():
    with Cluster("cpt", 3) as c:
        h1, h2, h3 = c.hosts
        receivers = [start_receiver(h, MCAST_GROUP) for h in (h2, h3)]
        send(h1, MCAST_GROUP, "mc1", "END")
        for rx in receivers:
            assert finish_receiver(rx) == ["mc1", "END"]


def test_bad_arguments_are_refused_with_the_allowed_values():
    with pytest.raises(ValueError, match="1-8 lowercase"):
        Cluster("Bad_Prefix", 2)
    with Cluster("cpt", 2) as c:
        with pytest.raises(ValueError, match="in no group"):
            c.partition([[1]])
        with pytest.raises(ValueError, match="0 < pct <= 100"):
            c.loss(1, 0)
        with pytest.raises(IndexError, match="hosts 1..2"):
            c.host(3)


def _root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip() for line in out.splitlines()}


def test_exit_deletes_namespaces_and_kills_processes_started_inside():
    links_before = _root_links()
    with Cluster("cpt", 2) as c:
        names = [c.bridge_netns] + [h.netns for h in c]
        sleeper = c.host(1).popen(["sleep", "600"])
        # a daemon that outlives the command that started it: found via `ip netns pids`
        c.host(2).run("sleep 600 >/dev/null 2>&1 &")
        orphans = netns_pids(c.host(2).netns)
        assert orphans
    assert not set(names) & set(list_netns())
    assert sleeper.poll() is not None
    assert not [p for p in orphans if pid_alive(p)]
    assert _root_links() == links_before


def test_sweep_stale_removes_dead_creators_namespaces_only():
    prefix = "cps" + uuid.uuid4().hex[:4]
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid now names a dead creator
    stale = f"{prefix}-{dead.pid}-0-h1"
    live = f"{prefix}-{os.getpid()}-0-h1"
    try:
        for name in (stale, live):
            subprocess.run(["ip", "netns", "add", name], check=True)
        subprocess.run(["ip", "netns", "exec", stale, "sh", "-c", "sleep 600 >/dev/null 2>&1 &"], check=True)
        leftover_pids = netns_pids(stale)
        assert sweep_stale(prefix) == [stale]
        remaining = list_netns()
        assert stale not in remaining and live in remaining
        assert not [p for p in leftover_pids if pid_alive(p)]
    finally:
        for name in (stale, live):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
