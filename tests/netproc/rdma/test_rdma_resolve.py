"""resolve.py: the HELLO side channel over real UDP sockets on loopback."""
import select
import socket

import pytest

from coroproc.netproc.rdma.resolve import (HELLO_BYTES, KIND_HELLO, HelloError, PeerAddress,
                                           SideChannel, pack_hello, parse_hello)
from coroproc.netproc.rdma.wire import gid_of_ip


def addr(nodeid, qpn, inc=1, mtu=1024):
    return PeerAddress(nodeid, gid_of_ip(f"10.0.0.{nodeid}"), qpn, 0x1234, 0, mtu, inc)


def bound(ip="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, 0))
    return s


def wait_until(cond, channels, what):
    """Drain channels until cond() holds; fails only if nothing arrives for 10 s."""
    while not cond():
        ready, _, _ = select.select([c.sock for c in channels], [], [], 10.0)
        assert ready, f"no side-channel traffic while waiting for {what}"
        for c in channels:
            c.drain(now_ms=0)


@pytest.fixture
def pair():
    made = []

    def make(nodes=(1, 2), qpns=None, link=0):
        socks = {n: bound() for n in nodes}
        peers = {n: s.getsockname() for n, s in socks.items()}
        updates = {n: [] for n in nodes}
        chans = {}
        for n in nodes:
            me = addr(n, (qpns or {}).get(n, 0x100 + n))
            chans[n] = SideChannel(link, me, "127.0.0.1", peers[n][1], peers, 1000,
                                   updates[n].append, sock=socks[n])
            made.append(chans[n])
        return chans, updates, peers

    yield make
    for c in made:
        c.close()


def test_hello_codec_round_trip_and_rejections():
    a = addr(5, 0xABCDE, inc=99)
    kind, link, back = parse_hello(pack_hello(KIND_HELLO, 3, a))
    assert (kind, link, back) == (KIND_HELLO, 3, a)
    raw = bytearray(pack_hello(KIND_HELLO, 3, a))
    for offset, value, why in [(0, 0x58, "magic"), (4, 9, "version"), (5, 7, "kind")]:
        bad = bytearray(raw)
        bad[offset] = value
        with pytest.raises(HelloError, match=why):
            parse_hello(bytes(bad))
    with pytest.raises(HelloError, match=f"a HELLO is {HELLO_BYTES}"):
        parse_hello(bytes(raw[:-1]))
    with pytest.raises(HelloError, match="not an IB MTU"):
        parse_hello(pack_hello(KIND_HELLO, 0, addr(5, 1, mtu=1500)))


def test_two_peers_resolve_each_other(pair):
    chans, updates, _ = pair()
    chans[1].announce(now_ms=0)
    wait_until(lambda: 1 in chans[2].resolved and 2 in chans[1].resolved, chans.values(),
               "both peers resolved")
    assert chans[1].resolved[2] == addr(2, 0x102) and chans[2].resolved[1] == addr(1, 0x101)
    assert updates[1] == [addr(2, 0x102)] and updates[2] == [addr(1, 0x101)]
    assert chans[1].counters()["peers_resolved"] == 1


def test_restarted_peer_is_updated_and_repeats_are_not(pair):
    chans, updates, peers = pair()
    chans[1].announce(0)
    wait_until(lambda: 2 in chans[1].resolved and 1 in chans[2].resolved, chans.values(), "resolve")
    # Node 2 restarts: a new QP number and incarnation, announced from the same address.
    chans[2].me = addr(2, 0x999, inc=2)
    chans[2].announce(0)
    wait_until(lambda: chans[1].resolved[2].qpn == 0x999, chans.values(), "the update")
    assert updates[1] == [addr(2, 0x102), addr(2, 0x999, inc=2)]
    chans[2].announce(0)                  # the same address again: no new update
    wait_until(lambda: chans[1].hello_rx >= 3, chans.values(), "the repeat")
    assert len(updates[1]) == 2 and chans[1].peer_updates == 2


def test_hello_from_another_ip_or_link_is_ignored(pair):
    chans, updates, peers = pair()
    forger = bound("127.0.0.2")           # claims to be node 2 from the wrong address
    try:
        forger.sendto(pack_hello(KIND_HELLO, 0, addr(2, 0x666)), peers[1])
        wait_until(lambda: chans[1].hello_unlisted == 1, [chans[1]], "the forged HELLO")
        chans[2].sock.sendto(pack_hello(KIND_HELLO, 1, addr(2, 0x102)), peers[1])
        wait_until(lambda: chans[1].hello_wrong_link == 1, [chans[1]], "the link-1 HELLO")
        chans[2].sock.sendto(b"garbage", peers[1])
        wait_until(lambda: chans[1].hello_bad == 1, [chans[1]], "the garbage")
    finally:
        forger.close()
    assert 2 not in chans[1].resolved and updates[1] == []


def test_requests_are_rate_limited_per_peer(pair):
    chans, _, _ = pair()
    assert chans[1].request(2, now_ms=0) is True
    assert chans[1].request(2, now_ms=999) is False
    assert chans[1].request(2, now_ms=1000) is True
    assert chans[1].request(1, now_ms=5000) is False          # never ourselves
    chans[1].maintain(now_ms=1500)                             # 2 unresolved, but asked at 1000
    assert chans[1].hello_tx == 2
    chans[1].maintain(now_ms=2000)
    assert chans[1].hello_tx == 3
