"""The receive-side checks: every datagram that isn't a plausible Totem frame from a listed
node is dropped and counted under its reason, and nothing valid around it is lost.

Datagrams from one thread's sendto calls land in the receiver's socket queue in call order
on loopback, so "send junk, then a valid frame, receive the valid frame" proves the junk
was processed before the counters are read.
"""
import socket

from netproc_harness import frame
from test_udpu import assert_clean, udpu_specs

from coroproc.netproc.spec import LinkSpec

NETMTU = 1500
LIMIT = NETMTU + 64


def plain_socket(addr="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 0))
    return s


def test_runt_oversize_foreign_are_counted_and_valid_frames_survive(links):
    (spec,) = udpu_specs(["127.0.0.1"], netmtu=NETMTU)
    h = links(spec)
    dest = (spec.bind_addr, spec.port)
    good = [frame(1, 13), frame(2, LIMIT), frame(3, 100)]
    junk = {
        "rx_runt": [b"", b"\x70", frame(9, 13)[:12]],
        "rx_oversize": [frame(9, LIMIT + 1), frame(9, 9000)],
        "rx_foreign": [b"\xc0\x70" + bytes(100), b"GET / HTTP/1.0\r\n\r\n", bytes(13)],
    }
    with plain_socket() as s:
        s.sendto(good[0], dest)
        for datagrams in junk.values():
            for d in datagrams:
                s.sendto(d, dest)
        s.sendto(good[1], dest)
        s.sendto(good[2], dest)
    assert h.receive(3) == good
    c = h.stop()
    for reason, datagrams in junk.items():
        assert c[reason] == len(datagrams), reason
    assert c["rx_frames"] == 3
    assert h.rx.empty()


def test_unlisted_source_ip_is_dropped(links):
    (spec,) = udpu_specs(["127.0.0.1"])
    h = links(spec)
    dest = (spec.bind_addr, spec.port)
    with plain_socket("127.0.0.9") as stranger, plain_socket("127.0.0.1") as listed:
        for i in range(4):
            stranger.sendto(frame(i), dest)
        listed.sendto(frame(77), dest)            # any port of a listed IP is fine
    assert h.receive(1) == [frame(77)]
    c = h.stop()
    assert c["rx_unlisted"] == 4
    assert_clean({**c, "rx_unlisted": 0}, 1)


def test_unlisted_allowed_when_block_unlisted_ips_is_off(links):
    (spec,) = udpu_specs(["127.0.0.1"], block_unlisted_ips=False)
    h = links(spec)
    with plain_socket("127.0.0.9") as stranger:
        stranger.sendto(frame(5), (spec.bind_addr, spec.port))
    assert h.receive(1) == [frame(5)]
    assert_clean(h.stop(), 1)


def test_full_rx_ring_is_counted_never_silent(links):
    (spec,) = udpu_specs(["127.0.0.1"])
    capacity_bytes = 16384                        # 1 KiB frames: at most 16 fit
    h = links(spec, rx_capacity_bytes=capacity_bytes)
    sent = [frame(i, 1000) for i in range(40)]
    with plain_socket() as s:
        for f in sent:
            s.sendto(f, (spec.bind_addr, spec.port))
    # We consume nothing until the link has pushed or refused every datagram: the ring's
    # own counters say when (records_pushed + push_full == sent).
    h.wait_ring_accounted(len(sent))
    pushed = h.rx.counters()["records_pushed"]
    assert 0 < pushed < len(sent)
    assert h.receive(pushed) == sent[:pushed]     # the oldest survive, in order
    c = h.stop()
    assert c["rx_frames"] == pushed
    assert c["rx_ring_full"] == len(sent) - pushed
    assert h.rx.empty()


def test_send_errors_are_counted_per_errno_and_not_fatal(links, netns_factory):
    """In a namespace with only lo, a peer on 10.77.0.2 is unreachable: ENETUNREACH."""
    ns = netns_factory()
    port_a, port_b = 5405, 5407                  # private namespace: no one else's ports
    peers = {1: ("127.0.0.1", port_a), 2: ("127.0.0.1", port_b), 3: ("10.77.0.2", 5405)}
    mk = lambda n: LinkSpec(0, "udpu", socket.AF_INET, n, peers[n][0], peers[n][1], peers)
    a = links(mk(1), netns=ns.name)
    b = links(mk(2), netns=ns.name)
    for i in range(3):
        a.send(0, frame(i))                       # node 2 gets it, node 3 errors
    a.send(3, frame(9))
    assert b.receive(3) == [frame(i) for i in range(3)]
    ca = a.stop()
    assert ca["tx_error_ENETUNREACH"] == 4
    assert ca["tx_errors"] == 4
    assert ca["tx_datagrams"] == 3
    assert_clean(b.stop(), 3)
