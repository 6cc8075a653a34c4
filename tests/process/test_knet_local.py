"""coroproc's secure links (transport knet) with real daemons on loopback (no root).

* A 4-node nodelist, nodes 1-3 running, crypto on (AES-256-GCM), two links: the ring forms,
  `coroproc-cfgtool -n` shows both links of every peer connected, cmap has
  stats.knet.node<N>.link<L>.* keys.
* A hostile sender on node 4's address: random bytes, truncated, bit-flipped and
  clear frames, frames sealed with another key, and a valid PING replayed — the valid one
  is answered (a PONG we can open), nothing else is accepted, every refusal is counted
  under its reason, the ring does not change and no daemon restarts.
* Node 1's link-0 process is stopped (SIGSTOP) for longer than a ping timeout: the ring
  stays (traffic moves to link 1), then SIGCONT brings link 0 back.
* Key rotation: a new authkey and `coroproc-cfgtool -R`: every link ends up sealing with
  the new key id, the ring never changes, messages keep flowing.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import orjson
import pytest

from coroproc.client.cmap import Cmap
from coroproc.localcluster import LocalCluster
from coroproc.netproc.health import KIND_PING, PING, PING_VERSION
from coroproc.netproc.secure.codec import LinkCodec
from coroproc.netproc.secure.frame import FTYPE_PING, FTYPE_PONG, HEADER_BYTES
from coroproc.netproc.secure.keys import KeyRing
from coroproc.netproc.secure.session import new_session_id
from coroproc.netproc.secure.suite import CryptoSuite
from coroproc.shm.names import node_segments

UP = (1, 2, 3)


@pytest.fixture
def knet3(tmp_path):
    # token 2000 (effective 3300 with 4 listed nodes; ping timeout 1650): room on a loaded
    # 2-core machine between a link called down and the token called lost
    lc = LocalCluster(tmp_path, 4, token_ms=2000, transport="knet", links=2, crypto=True,
                      rate_msgs_per_s=50)
    for i in UP:
        lc.start(i)
    try:
        lc.wait_members(UP, UP)
        yield lc
    finally:
        lc.stop_all()
        for i in UP:
            assert node_segments(lc.cluster, i) == []


def _status(lc, i: int) -> dict:
    out = subprocess.run([sys.executable, "-m", "coroproc.tools.ctl", "-c", lc.conf(i),
                          "--json", "status"], capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return orjson.loads(out.stdout)


def _net(lc, i: int, link: int) -> dict:
    return _status(lc, i)["children"][f"net{link}"]["counters"] or {}


def _links_connected(lc, i: int) -> dict:
    out = subprocess.run([sys.executable, "-m", "coroproc.tools.cfgtool", "--suffix",
                          lc.suffix(i), "-n", "--json"], capture_output=True, timeout=30)
    if out.returncode != 0:
        return {}
    return {(n["nodeid"], ln["link"]): bool(ln["connected"])
            for n in orjson.loads(out.stdout)["nodes"] for ln in n.get("links", [])}


def _wait(pred, what: str, timeout_s: float = 60.0) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _all_links_up(lc) -> bool:
    return all(_links_connected(lc, i).get((p, k)) for i in UP for p in UP if p != i
               for k in (0, 1))


def _memberships(lc, i: int) -> int:
    return sum("A new membership (" in ln for ln in lc.log_lines(i))


def test_ring_links_and_stats(knet3):
    lc = knet3
    _wait(lambda: _all_links_up(lc), "both links of every peer connected")
    with Cmap(suffix=lc.suffix(1)) as cmap:
        assert cmap.get("totem.transport")[1] == "knet"
    out = subprocess.run([sys.executable, "-m", "coroproc.tools.cmapctl", "--suffix",
                          lc.suffix(1), "-m", "stats", "stats.knet.node2.link1."],
                         capture_output=True, text=True, timeout=30)
    assert "stats.knet.node2.link1.connected (u8) = 1" in out.stdout, out.stdout
    assert "stats.knet.node2.link1.tx_ping_packets (u64) = " in out.stdout
    assert "stats.knet.node2.link1.latency_ave (u32) = " in out.stdout


def _hostile_socket(lc) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((lc.link_addr(4, 0), lc.port))     # node 4's link-0 address and port
    sock.settimeout(5)
    return sock


def _pong_from(sock, codec, nodeid: int) -> bool:
    """Read node 4's socket until `nodeid`'s PONG arrives (True) or the socket times out.
    Node 4 is in the nodelist, so node 1 also sends it Totem frames (joins, mcasts) that
    may arrive first; they open as DATA frames and are skipped."""
    while True:
        try:
            reply, _ = sock.recvfrom(65536)
        except socket.timeout:
            return False
        opened = codec.open(reply)
        if opened is not None and opened[0] == FTYPE_PONG and opened[1] == nodeid:
            return True


def test_forged_tampered_truncated_replayed_frames_are_refused(knet3):
    lc = knet3
    with open(lc.keyfile, "rb") as f:
        key = f.read()
    suite = CryptoSuite("aes256", "sha256")
    good = LinkCodec(KeyRing(suite, key, lc.cluster), 4, 0, new_session_id(), [1, 2, 3, 4])
    other = LinkCodec(KeyRing(suite, os.urandom(256), lc.cluster), 4, 0,
                      new_session_id(), [1, 2, 3, 4])
    target = (lc.link_addr(1, 0), lc.port)
    before_members = _memberships(lc, 1)
    before = _net(lc, 1, 0)
    sock = _hostile_socket(lc)
    try:
        ping = PING.pack(PING_VERSION, KIND_PING, 0, 1, time.monotonic_ns() // 1000)
        valid = good.seal(FTYPE_PING, 1, ping)
        sock.sendto(valid, target)
        assert _pong_from(sock, good, 1), "the valid PING was not answered"
        sock.sendto(valid, target)                   # the same frame again: a replay
        sock.sendto(os.urandom(200), target)         # garbage
        sock.sendto(valid[:HEADER_BYTES + 3], target)            # truncated
        flipped = bytearray(good.seal(FTYPE_PING, 1, ping))
        flipped[HEADER_BYTES + 2] ^= 0x40                        # tampered ciphertext
        sock.sendto(bytes(flipped), target)
        sock.sendto(other.seal(FTYPE_PING, 1, ping), target)     # another key
        clear = bytearray(good.seal(FTYPE_PING, 1, ping))
        clear[4], clear[5] = 0, 0                                 # "clear" frame
        sock.sendto(bytes(clear), target)
    finally:
        sock.close()

    def counted() -> bool:
        now = _net(lc, 1, 0)
        return all(now.get(k, 0) > before.get(k, 0) for k in
                   ("rx_replayed", "rx_truncated", "rx_auth_failed", "rx_bad_magic",
                    "rx_unknown_key", "rx_clear_refused"))
    _wait(counted, "every hostile frame counted under its reason")
    time.sleep(1)
    assert _memberships(lc, 1) == before_members, "the ring changed"
    assert all(c["restarts"] == 0 for c in _status(lc, 1)["children"].values())


def test_stopped_link_process_fails_over_without_reformation(knet3):
    lc = knet3
    _wait(lambda: _all_links_up(lc), "both links of every peer connected")
    before = {i: _memberships(lc, i) for i in UP}
    net0 = _status(lc, 1)["children"]["net0"]["pid"]
    os.kill(net0, signal.SIGSTOP)
    try:
        _wait(lambda: not _links_connected(lc, 2).get((1, 0), True), "node 2 sees link 0 to 1 down")
        time.sleep(3)                 # > token timeout: a lost path would re-form the ring
    finally:
        os.kill(net0, signal.SIGCONT)
    _wait(lambda: _links_connected(lc, 2).get((1, 0)), "link 0 to node 1 back")
    assert {i: _memberships(lc, i) for i in UP} == before, "the ring re-formed"
    logs = lc.event_logs()
    for i in UP:
        senders = {e["id"][0] for e in logs[i][-200:] if e["ev"] == "deliver"}
        assert 1 in senders, f"node {i} no longer delivers node 1's messages"


def test_key_rotation_without_downtime(knet3):
    lc = knet3
    _wait(lambda: _all_links_up(lc), "both links of every peer connected")
    before = {i: _memberships(lc, i) for i in UP}
    old_ids = {_net(lc, i, k).get("tx_key_id") for i in UP for k in (0, 1)}
    os.chmod(lc.keyfile, 0o600)
    with open(lc.keyfile, "wb") as f:
        f.write(os.urandom(256))
    os.chmod(lc.keyfile, 0o400)
    out = subprocess.run([sys.executable, "-m", "coroproc.tools.cfgtool", "--suffix",
                          lc.suffix(2), "-R"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr

    def rotated() -> bool:
        ids = {_net(lc, i, k).get("tx_key_id") for i in UP for k in (0, 1)}
        keys = {_net(lc, i, k).get("keys_in_ring") for i in UP for k in (0, 1)}
        return len(ids) == 1 and not ids & old_ids and keys == {1}
    _wait(rotated, "every link sealing with the new key and the old one dropped")
    mark = {i: len(lc.event_logs()[i]) for i in UP}
    time.sleep(2)
    logs = lc.event_logs()
    assert all(len(logs[i]) > mark[i] for i in UP), "messages stopped after the rotation"
    assert {i: _memberships(lc, i) for i in UP} == before, "the ring re-formed"
    for i in UP:
        text = "\n".join(lc.log_lines(i))
        assert "Crypto reconfiguration: drop done" in text, lc.tail(i)


@pytest.mark.parametrize("mode", ["active", "rr"])
def test_active_and_rr_modes_use_both_links(tmp_path, mode):
    """active sends every frame on both links (the receiver's Totem drops the copy), rr
    alternates: both links carry data frames, the EVS checker finds nothing."""
    from coroproc.sim.checker import check_safety
    lc = LocalCluster(tmp_path, 3, transport="knet", links=2, crypto=False, link_mode=mode,
                      rate_msgs_per_s=50)
    lc.start_all()
    try:
        lc.wait_members(UP, UP)
        _wait(lambda: _all_links_up(lc), "both links of every peer connected")
        time.sleep(2)
        for link in (0, 1):
            peers = _net(lc, 1, link).get("knet_peers", {})
            assert peers.get("2", {}).get("tx_data_packets", 0) > 0, (mode, link, peers)
    finally:
        lc.stop_all()
    logs = lc.event_logs()
    assert all(sum(e["ev"] == "deliver" for e in logs[i]) > 0 for i in UP)
    violations = check_safety(logs)
    assert violations == [], "\n".join(str(v) for v in violations[:10])
