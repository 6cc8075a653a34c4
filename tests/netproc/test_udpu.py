"""udpu links between real processes on loopback: frames arrive byte-identical, fan-out,
own-id loopback, unknown destinations counted — and nothing else lost or duplicated."""
import socket

import pytest
from netproc_harness import frame, free_udp_port

from coroproc.netproc.spec import LinkSpec


def udpu_specs(addrs, family=socket.AF_INET, **kw):
    """One LinkSpec per node 1..n; addrs[i] is node i+1's address (ports picked free)."""
    peers = {i + 1: (a, free_udp_port(a, family)) for i, a in enumerate(addrs)}
    return [LinkSpec(linknumber=0, transport="udpu", family=family, local_nodeid=n,
                     bind_addr=peers[n][0], port=peers[n][1], peers=peers, **kw)
            for n in peers]


def assert_clean(counters, rx_frames, tx_datagrams=None):
    """Only the expected traffic: no drop of any kind."""
    drops = {k: v for k, v in counters.items()
             if (k.startswith("rx_") and k not in ("rx_frames", "rx_bytes", "rx_gro_trains")
                 or k.startswith("tx_error") or k in ("tx_unknown_dest", "tx_bad_record"))
             and v}
    assert drops == {}
    assert counters["rx_frames"] == rx_frames
    if tx_datagrams is not None:
        assert counters["tx_datagrams"] == tx_datagrams


def test_unicast_arrives_byte_identical_and_in_order(links):
    a_spec, b_spec = udpu_specs(["127.0.0.1", "127.0.0.1"])
    a, b = links(a_spec), links(b_spec)
    sent = [frame(i, size) for i, size in enumerate([13, 64, 1000, 1500, 1564, 200] * 20)]
    for f in sent:
        a.send(2, f)
    assert b.receive(len(sent)) == sent
    assert b.rx.empty()
    ca, cb = a.stop(), b.stop()
    assert_clean(ca, 0, tx_datagrams=len(sent))
    assert ca["tx_frames"] == len(sent)
    assert ca["tx_bytes"] == sum(map(len, sent))
    assert_clean(cb, len(sent))
    assert cb["rx_bytes"] == sum(map(len, sent))


def test_dest_zero_fans_out_to_every_other_member(links):
    specs = udpu_specs(["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"])
    hs = [links(s) for s in specs]
    sent = [frame(100 + i) for i in range(10)]
    for f in sent:
        hs[0].send(0, f)
    for h in hs[1:]:
        assert h.receive(len(sent)) == sent
    counters = [h.stop() for h in hs]
    assert hs[0].rx.empty()                       # the sender does not hear itself
    assert_clean(counters[0], 0, tx_datagrams=3 * len(sent))
    for c in counters[1:]:
        assert_clean(c, len(sent), tx_datagrams=0)


def test_own_nodeid_comes_back_through_the_socket(links):
    (spec,) = udpu_specs(["127.0.0.1"])           # a one-member ring tokens itself
    h = links(spec)
    token = frame(7, 57)
    h.send(1, token)
    h.send(0, frame(8))                           # mcast with no other member: no datagram
    h.send(1, token)
    assert h.receive(2) == [token, token]
    c = h.stop()
    assert_clean(c, 2, tx_datagrams=2)
    assert c["tx_frames"] == 3


def test_unknown_dest_and_bad_records_are_counted_and_dropped(links):
    a_spec, b_spec = udpu_specs(["127.0.0.1", "127.0.0.1"])
    a, b = links(a_spec), links(b_spec)
    a.send(99, frame(1))                          # not in the nodelist
    assert a.tx.push(2, b"\0\0\0\0" + frame(2))   # not a FRAME record
    assert a.tx.push(1, b"\2\0\0")                # shorter than the dest prefix
    a.send(2, frame(3))
    assert b.receive(1) == [frame(3)]
    ca, cb = a.stop(), b.stop()
    assert (ca["tx_unknown_dest"], ca["tx_bad_record"], ca["tx_frames"]) == (1, 2, 4)
    assert ca["tx_datagrams"] == 1
    assert_clean(cb, 1)


def test_ipv6_loopback(links):
    if not socket.has_ipv6:
        pytest.skip("Python built without IPv6")
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        probe.bind(("::1", 0))
        probe.close()
    except OSError as e:
        pytest.skip(f"no IPv6 loopback (::1) on this host: {e}")
    specs = udpu_specs(["::1", "::1", "::1"], family=socket.AF_INET6)
    hs = [links(s) for s in specs]
    sent = [frame(i, 900) for i in range(20)]
    for f in sent:
        hs[0].send(0, f)
    hs[2].send(1, frame(55))
    for h in hs[1:]:
        assert h.receive(len(sent)) == sent
    assert hs[0].receive(1) == [frame(55)]
    counters = [h.stop() for h in hs]
    assert_clean(counters[0], 1, tx_datagrams=2 * len(sent))
    assert_clean(counters[1], len(sent))
    assert_clean(counters[2], len(sent), tx_datagrams=1)
