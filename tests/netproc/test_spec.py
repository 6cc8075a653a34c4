"""LinkSpec validation and socket set-up errors: each names the link, the field and the rule."""
import socket

import pytest
from netproc_harness import free_udp_port

from coroproc.netproc.addresses import packed_host, sockaddr, sockaddr_bytes
from coroproc.netproc.sockets import LinkSocketError, open_link_sockets
from coroproc.netproc.spec import LinkSpec, LinkSpecError

PEERS = {1: ("127.0.0.1", 5405), 2: ("127.0.0.2", 5405)}


def spec(**kw):
    base = {"linknumber": 0, "transport": "udpu", "family": socket.AF_INET, "local_nodeid": 1,
                "bind_addr": "127.0.0.1", "port": 5405, "peers": PEERS}
    base.update(kw)
    return LinkSpec(**base)


@pytest.mark.parametrize("kw, peers, nobody", [
    ({}, (2,), False),
    ({"peers": {1: ("127.0.0.1", 5405)}}, (), True),
    ({"transport": "knet", "peers": {1: ("127.0.0.1", 5405)}}, (), True),
    ({"local_nodeid": 2, "peers": {**PEERS, 3: ("127.0.0.3", 5405)}}, (1, 3), False),
    # a udp group may have listeners outside the nodelist: never "nobody"
    ({"transport": "udp", "mcast_addr": "239.1.1.1", "peers": {1: ("127.0.0.1", 5405)}},
     (), False),
])
def test_who_a_multicast_frame_reaches(kw, peers, nobody):
    s = spec(**kw)
    assert s.multicast_peers() == peers
    assert s.multicast_reaches_nobody() is nobody


@pytest.mark.parametrize("kw, message", [
    ({"transport": "sctp"}, "transport 'sctp' is not one of"),
    ({"local_nodeid": 3}, "must include this node 3"),
    ({"local_nodeid": 0}, "local_nodeid 0 is outside"),
    ({"bind_addr": "node1.example"}, "not a numeric IP address"),
    ({"bind_addr": "::1"}, "is IPv6 but the link family is IPv4"),
    ({"port": 70000}, "port 70000 is not a port number"),
    ({"peers": {1: ("127.0.0.1", 5405), 2: "127.0.0.2"}}, "peer 2 must be (addr, port)"),
    ({"netmtu": 100}, "netmtu 100 is outside"),
    ({"rcvbuf_bytes": 1000}, "rcvbuf_bytes 1000 is outside"),
    ({"transport": "udp"}, "transport udp needs mcast_addr"),
    ({"transport": "udp", "mcast_addr": "10.0.0.1"}, "is not a multicast address"),
    ({"transport": "udp", "mcast_addr": "239.1.1.1", "ttl": 0}, "ttl 0 is outside"),
])
def test_bad_specs_are_refused_with_a_clear_message(kw, message):
    with pytest.raises(LinkSpecError) as e:
        spec(**kw)
    assert message in str(e.value)
    assert str(e.value).startswith("link 0 (node ")


def test_good_spec_defaults():
    s = spec()
    assert s.rx_limit_bytes == 1564
    assert s.rcvbuf_bytes == s.sndbuf_bytes == 4 * 1024 * 1024
    assert s.block_unlisted_ips is True


def test_port_in_use_is_a_clear_error():
    port = free_udp_port()
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("127.0.0.1", port))
    try:
        with pytest.raises(LinkSocketError) as e:
            open_link_sockets(spec(port=port, peers={1: ("127.0.0.1", port)}))
        assert f"cannot bind udpu socket to [127.0.0.1]:{port}" in str(e.value)
    finally:
        holder.close()


def test_socket_buffers_are_granted():
    port = free_udp_port()
    socks = open_link_sockets(spec(port=port, peers={1: ("127.0.0.1", port)},
                                   rcvbuf_bytes=1 << 21, sndbuf_bytes=1 << 21))
    try:
        # As root SO_*BUFFORCE gets the full size; otherwise rmem_max caps it.
        assert 0 < socks.buffer_bytes["rcvbuf"] <= 1 << 21
        assert 0 < socks.buffer_bytes["sndbuf"] <= 1 << 21
    finally:
        socks.close()


def test_packed_host_is_one_value_for_every_spelling_of_an_ip():
    # what the jitted link loop compares a received source with (block_unlisted_ips)
    assert packed_host("2001:DB8:0:0::1") == packed_host("2001:db8::1")
    assert packed_host("fe80::1%lo") == packed_host("fe80::1")
    assert packed_host("127.0.0.1") == bytes([127, 0, 0, 1])
    assert packed_host("127.0.0.2") != packed_host("127.0.0.1")
    with pytest.raises(ValueError):
        packed_host("not an address")


def test_sockaddr_bytes_are_what_the_kernel_reports():
    # a socket bound by the tuple reports, via getsockname's raw form, the same bytes
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind(sockaddr(family, host, 0))
            raw = sockaddr_bytes(family, s.getsockname())
            want = 16 if family == socket.AF_INET else 28
            assert len(raw) == want
            assert int.from_bytes(raw[:2], "little") == family
            assert int.from_bytes(raw[2:4], "big") == s.getsockname()[1]
            assert packed_host(host) in raw


def test_ipv6_scope_is_resolved():
    assert sockaddr(socket.AF_INET6, "fe80::1%lo", 5405)[3] == socket.if_nametoindex("lo")
    assert sockaddr(socket.AF_INET6, "ff12::1", 5405, default_scope_id=7)[3] == 7
