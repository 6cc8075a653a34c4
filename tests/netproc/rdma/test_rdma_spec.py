"""spec.py: every RdmaSpec field is checked with a message naming link, node and field."""
import pytest

from coroproc.netproc.rdma.errors import RdmaSpecError
from coroproc.netproc.rdma.spec import RdmaSpec, worst_case_fragments

PEERS = {1: ("10.0.0.1", 5405), 2: ("10.0.0.2", 5405)}


def spec(**kw):
    base = dict(linknumber=1, local_nodeid=1, local_ip="10.0.0.1", side_port=5405,
                peers=PEERS)
    base.update(kw)
    return RdmaSpec(**base)


def test_defaults_are_valid():
    s = spec()
    assert s.tx_depth >= worst_case_fragments(s.max_datagram_bytes) == 276


@pytest.mark.parametrize("kw, message", [
    ({"linknumber": 8}, "linknumber 8 is outside 0..7"),
    ({"local_ip": "node1"}, "local_ip 'node1' is not a numeric IP"),
    ({"side_port": 0}, "side_port 0 is not a UDP port"),
    ({"local_nodeid": 3}, "must include this node 3"),
    ({"peers": {1: ("10.0.0.1", 5405), 2: ("fd00::2", 5405)}}, "is IPv6 but local_ip"),
    ({"peers": {1: ("10.0.0.1", 5405), 2: "10.0.0.2"}}, "must be \\(ip, side_port\\)"),
    ({"peers": {1: ("10.0.0.9", 5405), 2: ("10.0.0.2", 5405)}}, "must be this node's"),
    ({"device": ""}, "device '' must be a device name"),
    ({"port_num": 0}, "port_num 0 is outside 1..255"),
    ({"rx_depth": 8}, "rx_depth 8 is outside 16..32768"),
    ({"tx_depth": 64}, "tx_depth 64 cannot hold one 65000-byte frame"),
    ({"signal_every": 300}, "signal_every 300 is outside 1..256"),
    ({"ud_mtu_cap_bytes": 1500}, "ud_mtu_cap_bytes 1500 is not one of"),
    ({"qkey": 0x80000000}, "qkey 2147483648 is outside"),
    ({"hop_limit": 1}, "hop_limit 1 is outside 2..255"),
    ({"max_datagram_bytes": 70000}, "max_datagram_bytes 70000 is outside 64..65000"),
])
def test_bad_fields_are_named(kw, message):
    with pytest.raises(RdmaSpecError, match=message) as info:
        spec(**kw)
    assert str(info.value).startswith("link ")


def test_small_frames_allow_a_small_send_pool():
    s = spec(max_datagram_bytes=1400, tx_depth=16, signal_every=8)
    assert s.tx_depth == 16
