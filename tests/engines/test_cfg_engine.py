"""The CFG engine's read-only calls, byte for byte as exec/cfg.c answers them."""
import socket
import struct
from pathlib import Path

import orjson

from coroproc.config.loader import load
from coroproc.engineprocs.cfg import engine as E
from coroproc.engineprocs.simbus import SimBus

CORPUS = Path(__file__).resolve().parents[1] / "config" / "corpus" / "good"


def bus_for(name):
    expected = orjson.loads((CORPUS / "expected.json").read_bytes())[name]
    config, _ = load(str(CORPUS / name), expected.get("nodeid_override"))
    bus = SimBus([E.CfgEngine], [config.local_nodeid], config_for=lambda n: config)
    bus.configure([[config.local_nodeid]])
    bus.run()
    return bus, config


def test_local_get_and_node_addrs_ipv6():
    bus, config = bus_for("ipv6-udpu.conf")
    c = bus.connect(config.local_nodeid, 1, pid=5)
    assert bus.request(c, E.REQ_LOCAL_GET, b"") == (E.RES_LOCAL_GET, E.CS_OK,
                                                   struct.pack("<I", 61))
    rid, err, body = bus.request(c, E.REQ_GET_NODE_ADDRS, struct.pack("<I4x", 62))
    assert (rid, err) == (E.RES_GET_NODE_ADDRS, E.CS_OK)
    family, count = struct.unpack_from("<II", body)
    assert (family, count, len(body)) == (socket.AF_INET6, 1, 8 + 16)
    assert socket.inet_ntop(socket.AF_INET6, body[8:24]) == "2001:db8::62"
    # nodeid 0 = this node
    _rid, _err, local = bus.request(c, E.REQ_GET_NODE_ADDRS, struct.pack("<I4x", 0))
    assert socket.inet_ntop(socket.AF_INET6, local[8:24]) == "::1"


def test_unknown_node_and_unsupported_calls_say_so():
    bus, config = bus_for("five-node-udpu.conf")
    c = bus.connect(config.local_nodeid, 1, pid=5)
    rid, err, body = bus.request(c, E.REQ_GET_NODE_ADDRS, struct.pack("<I4x", 999))
    assert (rid, err, body) == (E.RES_GET_NODE_ADDRS, E.CS_ERR_NOT_EXIST, bytes(8))
    assert bus.request(c, E.REQ_KILLNODE, bytes(300)) == (8, E.CS_ERR_NOT_SUPPORTED, b"")
    assert any("kill node" in msg for _n, _p, msg in bus.nodes[config.local_nodeid].log)
    assert bus.request(c, 42, b"") == (0, 7, b"")        # unknown id: CS_ERR_INVALID_PARAM
    assert bus.request(c, E.REQ_GET_NODE_ADDRS, b"\x01") == (0, 7, b"")   # short body


def test_ipv4_addresses_are_zero_padded_to_sixteen_bytes():
    body = E.pack_node_addrs(["10.0.0.1", "192.168.1.7"])
    assert struct.unpack_from("<II", body) == (socket.AF_INET, 2)
    assert body[8:24] == bytes([10, 0, 0, 1]) + bytes(12)
    assert body[24:28] == bytes([192, 168, 1, 7])
