"""CFG struct codecs: sizes and offsets of ipc_cfg.h / cfg.c (3.1.7, gcc offsetof), round
trips, and one clear error for malformed input."""
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coroproc.engineprocs.cfg import exec_msgs as X
from coroproc.ipc import cfg_structs as S
from coroproc.ipc.mar import StructError


def test_sizes_and_offsets_are_corosyncs():
    # res_lib_cfg_nodestatusget_v1 = 24 + 4176; link_status at 16, 520 bytes each
    body = S.pack_node_status(S.NodeStatus(7, True, links=(
        S.LinkStatus(True, True, False, 1410, "10.0.0.7", "x"),) + (S.LinkStatus(),) * 7))
    assert len(body) == 4176
    assert body[:16] == bytes([1, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    assert body[16:24] == bytes([1, 1, 0, 0]) + (1410).to_bytes(4, "little")
    assert body[24:32] == b"10.0.0.7" and body[24 + 256] == ord("x")
    # req_lib_cfg_killnode: nodeid @16, cs_name_t {u16 length @24, value @26}, 288 total
    req = S.pack_killnode_req(3, "why")
    assert len(req) == 288 - 16 and req[:4] == bytes([3, 0, 0, 0])
    assert req[8:10] == bytes([4, 0]) and req[10:14] == b"why\0"
    # req_exec_cfg_killnode: nodeid @16, mar_name_t {length @24 (8-byte slot), value @32}
    ex = X.pack_killnode(3, 4, b"why\0")
    assert len(ex) == 288 - 16 and ex[8:10] == bytes([4, 0]) and ex[16:20] == b"why\0"
    assert X.unpack_killnode(ex) == (3, "why")
    assert len(S.pack_ring_status([("0 10.0.0.1", "OK")])) == 10272 - 24
    assert S.pack_nodestatus_req(5) == bytes([5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    assert len(X.pack_source(1, 2)) == 16 and len(X.pack_crypto_reconfig(1)) == 8


@given(nodeid=st.integers(0, 2**32 - 1), reachable=st.booleans(),
       links=st.lists(st.tuples(st.booleans(), st.booleans(), st.integers(0, 65535),
                                st.text(st.characters(min_codepoint=33, max_codepoint=126),
                                        max_size=255)), min_size=8, max_size=8))
def test_node_status_round_trips(nodeid, reachable, links):
    status = S.NodeStatus(nodeid, reachable, links=tuple(
        S.LinkStatus(e, c, False, m, a, a[::-1]) for e, c, m, a in links))
    assert S.unpack_node_status(S.pack_node_status(status)) == status


def test_ring_status_and_addresses_round_trip():
    pairs = [(f"{i} 10.0.0.{i}", "OK") for i in range(S.MAX_INTERFACES)]
    assert S.unpack_ring_status(S.pack_ring_status(pairs)) == pairs
    raw = [(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, "2001:db8::1")),
           (socket.AF_INET6, socket.inet_pton(socket.AF_INET6, "::1"))]
    family, got = S.unpack_node_addrs(S.pack_node_addrs(raw))
    assert family == socket.AF_INET6 and got == [r for _f, r in raw]


def test_malformed_input_is_one_error_type():
    with pytest.raises(StructError, match="at least 8"):
        S.unpack_u32_req(b"\x01", "req_lib_cfg_tryshutdown")
    with pytest.raises(StructError, match="reason"):
        S.pack_killnode_req(1, "x" * 256)
    with pytest.raises(StructError, match="num_addrs=3"):
        S.unpack_node_addrs(struct.pack("<II", socket.AF_INET, 3) + bytes(16))
    with pytest.raises(StructError, match="interface_count=17"):
        S.unpack_ring_status((17).to_bytes(4, "little") + bytes(S.RING_STATUS_BYTES - 4))
    with pytest.raises(StructError, match="length=300"):
        S.unpack_killnode_req(bytes(8) + (300).to_bytes(2, "little") + bytes(262))
    with pytest.raises(ValueError, match="killnode"):
        X.unpack_killnode(bytes(10))
