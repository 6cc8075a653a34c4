"""udp (multicast) links inside a private network namespace: several nodes on one host hear
each other's multicasts exactly once, never their own, and tokens (unicast) still flow —
including a token to this node itself."""
import socket

from netproc_harness import frame
from test_udpu import assert_clean

from coroproc.netproc.spec import LinkSpec


def udp_specs(peers, family, mcast_addr, mcast_port=5405):
    return [LinkSpec(linknumber=0, transport="udp", family=family, local_nodeid=n,
                     bind_addr=peers[n][0], port=peers[n][1], peers=peers,
                     mcast_addr=mcast_addr, mcast_port=mcast_port)
            for n in sorted(peers)]


def exercise_three_nodes(links, ns, specs):
    a, b, c = (links(s, netns=ns.name) for s in specs)
    mcasts = [frame(i, 700) for i in range(8)]
    for f in mcasts:
        a.send(0, f)
    a.send(3, frame(60))                          # token to node 3
    c.send(3, frame(61))                          # token to itself (one-member-ring path)
    assert b.receive(8) == mcasts
    # only now: a's own looped-back copies are already in its group socket, so when a
    # reads b's frame it has read (and dropped, counted) all eight of its own
    b.send(0, frame(50))
    # c reads two sockets (group and token): order across them isn't promised
    assert sorted(c.receive(11)) == sorted(mcasts + [frame(50), frame(60), frame(61)])
    assert a.receive(1) == [frame(50)]
    ca, cb, cc = a.stop(), b.stop(), c.stop()
    assert ca["rx_own_mcast"] == 8 and cb["rx_own_mcast"] == 1 and cc["rx_own_mcast"] == 0
    assert_clean({**ca, "rx_own_mcast": 0}, 1, tx_datagrams=9)
    assert_clean({**cb, "rx_own_mcast": 0}, 8, tx_datagrams=1)
    assert_clean(cc, 11, tx_datagrams=1)
    for h in (a, b, c):
        assert h.rx.empty()


def test_ipv4_multicast_on_loopback_in_a_namespace(links, netns_factory):
    ns = netns_factory()
    peers = {1: ("127.0.0.1", 5405), 2: ("127.0.0.1", 5407), 3: ("127.0.0.2", 5405)}
    exercise_three_nodes(links, ns, udp_specs(peers, socket.AF_INET, "239.192.112.1"))


def test_ipv6_multicast_over_veth_in_a_namespace(links, netns_factory):
    """Linux doesn't loop IPv6 multicast through lo: nodes 1, 3 on va and 2 on vb. The group is
    link-scoped (ff12::) so each socket hears only its own interface's copy."""
    ns = netns_factory(veth=True)
    peers = {1: ("fd00::1", 5405), 2: ("fd00::2", 5405), 3: ("fd00::1", 5407)}
    exercise_three_nodes(links, ns, udp_specs(peers, socket.AF_INET6, "ff12::c070"))
