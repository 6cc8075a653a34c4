"""RdmaCarrier on a real device: two carriers on one device/port, loopback between QPs.

Skipped (with the reason shown) where there is no RDMA device — e.g. the build VM and CI,
which have neither hardware nor kernel InfiniBand support for rdma_rxe. On a host with
RoCE/IB or Soft-RoCE (rdma link add rxe0 type rxe netdev eth0), set
COROPROC_RDMA_TEST_IP to an address of the RDMA port's netdev (RoCE) or its IPoIB address.
"""
import os
import select
import socket

import pytest
from rdma_env import ACTIVE, NO_DEVICE_REASON

from coroproc.netproc.rdma import RdmaSpec

pytestmark = pytest.mark.skipif(not ACTIVE, reason=NO_DEVICE_REASON)


def _test_ip() -> str:
    ip = os.environ.get("COROPROC_RDMA_TEST_IP")
    if ip:
        return ip
    for dev in ACTIVE:            # an IPv4-mapped RoCE GID names a local IPv4 address
        for port in dev["ports"]:
            for g in port["gids"]:
                if g["gid"].startswith("0000:0000:0000:0000:0000:ffff:"):
                    b = bytes.fromhex(g["gid"].replace(":", "")[-8:])
                    return socket.inet_ntoa(b)
    pytest.skip("no IPv4 RoCE GID found; set COROPROC_RDMA_TEST_IP")


@pytest.fixture
def carriers():
    from coroproc.netproc.rdma.carrier import RdmaCarrier
    ip = _test_ip()
    socks = {n: socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for n in (1, 2)}
    for s in socks.values():
        s.bind((ip, 0))
    peers = {n: (ip, s.getsockname()[1]) for n, s in socks.items()}
    for s in socks.values():
        s.close()      # the carrier binds the same port again (tiny reuse window)
    made = {}
    try:
        for n in (1, 2):
            made[n] = RdmaCarrier(RdmaSpec(linknumber=0, local_nodeid=n, local_ip=ip,
                                           side_port=peers[n][1], peers=peers,
                                           ud_mtu_cap_bytes=1024, rx_depth=256))
        yield made
    finally:
        for c in made.values():
            c.close()


def _receive(carrier, others, want: int, buf) -> list:
    got = []
    while len(got) < want:
        fds = [fd for c in [carrier] + others for fd in c.fds()]
        ready, _, _ = select.select(fds, [], [], 10.0)
        assert ready, f"nothing arrived; counters {carrier.counters()}"
        for c in others:
            while c.recv_into(bytearray(70000)) is not None:
                pass          # lets the peers answer HELLOs
        while (r := carrier.recv_into(buf)) is not None:
            got.append((bytes(buf[:r[0]]), r[1]))
    return got


def _resolve(c1, c2):
    buf = bytearray(70000)
    while 2 not in c1.side.resolved or 1 not in c2.side.resolved:
        ready, _, _ = select.select(c1.fds() + c2.fds(), [], [], 10.0)
        assert ready, "address exchange did not complete"
        c1.recv_into(buf), c2.recv_into(buf)


def test_small_large_and_self_frames(carriers):
    c1, c2 = carriers[1], carriers[2]
    _resolve(c1, c2)
    small, large = b"\xc0\x70" + b"s" * 98, bytes(range(256)) * 250    # 64,000 bytes
    assert c1.send(small, 2) == len(small)
    assert c2.send(large, 1) == len(large)
    assert c1.send(small, 1) == len(small)                               # to ourselves
    buf = bytearray(c1.max_datagram_bytes)
    assert _receive(c2, [c1], 1, buf) == [(small, 1)]
    assert sorted(_receive(c1, [c2], 2, buf)) == sorted([(large, 2), (small, 1)])
    k = c2.counters()
    assert k["tx_datagrams"] == 1 and k["tx_fragments"] == -(-len(large) // (1024 - 20))
    assert c1.counters()["reasm_frames"] == 1 and c1.counters()["rx_unknown_source"] == 0


def test_many_frames_recycle_slots(carriers):
    c1, c2 = carriers[1], carriers[2]
    _resolve(c1, c2)
    buf = bytearray(c1.max_datagram_bytes)
    sent = 0
    for i in range(2000):
        try:
            c1.send(i.to_bytes(4, "little") * 100, 2)
            sent += 1
        except OSError:
            pass              # ENOBUFS when the HCA is behind: counted, like UDP drops
        while c2.recv_into(buf) is not None:
            pass
    k1 = c1.counters()
    assert k1["tx_datagrams"] == sent and k1["tx_in_flight"] <= c1.spec.tx_depth
    assert c2.counters()["rx_posted"] == c2.spec.rx_depth     # every buffer reposted


def test_oversize_and_unknown_destination_raise_with_errno(carriers):
    import errno
    c1 = carriers[1]
    with pytest.raises(OSError) as e:
        c1.send(b"x" * 65001, 2)
    assert e.value.errno == errno.EMSGSIZE
    with pytest.raises(OSError) as e:
        c1.send(b"x", 99)
    assert e.value.errno == errno.EINVAL
    assert c1.counters()["tx_error_EMSGSIZE"] == 1 and c1.counters()["tx_error_EINVAL"] == 1
