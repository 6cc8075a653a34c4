"""UdpCarrier (the secure link's UDP carrier) on loopback: a datagram's source maps to its
node by address and port, an unlisted source is dropped (or reported as 0), and the
remembered sources stay bounded however many an attacker forges."""
import socket

from netproc_harness import carrier_recv as recv
from netproc_harness import free_udp_port, knet_spec

from coroproc.netproc import carrier_udp
from coroproc.netproc.carrier_udp import SOURCE_CACHE_ENTRIES_MAX, UdpCarrier


def unlisted_socket():
    """A sender on a loopback address no node uses (the nodes share 127.0.0.1: an unknown
    port there means "some member", 0)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.9", 0))
    return s


def test_sources_map_to_nodes_and_unlisted_ones_are_dropped():
    peers = {n: ("127.0.0.1", free_udp_port("127.0.0.1", socket.AF_INET)) for n in (1, 2, 3)}
    a, b, c = (UdpCarrier(knet_spec(peers, n)) for n in (1, 2, 3))
    stranger = unlisted_socket()
    try:
        buf = bytearray(2048)
        for _ in range(3):                       # the second and third are cache hits
            b.send(b"from 2", 1)
            c.send(b"from 3", 1)
            assert recv(a, buf) == (6, 2)
            assert recv(a, buf) == (6, 3)
        stranger.sendto(b"who", peers[1])
        b.send(b"late", 1)
        assert recv(a, buf) == (4, 2)            # the stranger's datagram was dropped
        assert a.counters()["rx_unlisted"] == 1
        assert len(a._source_cache) == 3         # nodes 2 and 3, and the stranger
    finally:
        stranger.close()
        for x in (a, b, c):
            x.close()


def test_unlisted_source_is_node_zero_when_not_blocked():
    peers = {n: ("127.0.0.1", free_udp_port("127.0.0.1", socket.AF_INET)) for n in (1, 2)}
    a = UdpCarrier(knet_spec(peers, 1, block_unlisted_ips=False))
    stranger = unlisted_socket()
    try:
        stranger.sendto(b"who", peers[1])
        assert recv(a, bytearray(64)) == (3, 0)
    finally:
        stranger.close()
        a.close()


def test_remembered_sources_stay_bounded(monkeypatch):
    monkeypatch.setattr(carrier_udp, "SOURCE_CACHE_ENTRIES_MAX", 8)
    peers = {n: ("127.0.0.1", free_udp_port("127.0.0.1", socket.AF_INET)) for n in (1, 2)}
    a = UdpCarrier(knet_spec(peers, 1))
    try:
        for port in range(40000, 40100):          # forged sources, as recvfrom gives them
            assert a._source_node(("127.0.0.9", port)) is None
            assert len(a._source_cache) <= 8
        assert a._source_node(peers[2]) == 2
        assert a._source_node(("127.0.0.1", 40000)) == 0   # a member's address, unknown port
        assert a._source_node(("not an address", 1)) is None
    finally:
        a.close()
    assert SOURCE_CACHE_ENTRIES_MAX >= 64        # room for every node of a large cluster
