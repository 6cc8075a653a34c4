"""totem.config_version across the cluster on simbus (exec/cmap.c sync): every member
learns every member's version; a node whose first multi-node sync finds a different
(higher) version elsewhere stops the node (NodeFatal) with Corosync's message."""
from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest

from coroproc.config.errors import Entry
from coroproc.engineprocs.api import NodeFatal
from coroproc.engineprocs.cmap import keys as K
from coroproc.engineprocs.cmap.engine import CmapEngine
from coroproc.engineprocs.simbus import SimBus

from .cmap_helpers import req_set


def bus_with(versions: dict, seed: int) -> SimBus:
    def config_for(nodeid):
        version = versions[nodeid]
        keys = {} if version is None else {
            "totem.config_version": Entry(str(version), "corosync.conf", 3, "u64")}
        return SimpleNamespace(keys=keys, nodes=())
    return SimBus([CmapEngine], sorted(versions), seed=seed, config_for=config_for)


def member_versions(bus, nodeid):
    store = bus.engine(nodeid, 0).store
    return {n: store.get_value(f"runtime.members.{n}.config_version") for n in bus.nodes}


@pytest.mark.parametrize("seed", range(10))
def test_equal_versions_are_exchanged(seed):
    bus = bus_with({1: 5, 2: 5, 3: 5}, seed)
    bus.configure([[1, 2], [3]])
    bus.run()
    bus.configure([[1, 2, 3]])
    bus.run()
    for n in (1, 2, 3):
        assert member_versions(bus, n) == {1: 5, 2: 5, 3: 5}
        assert bus.engine(n, 0).store.get("runtime.members.1.config_version")[0] == K.UINT64
        assert bus.engine(n, 0).store.get_value("runtime.services.cmap.0.rx") >= 3


@pytest.mark.parametrize("seed", range(10))
def test_lower_version_joining_stops_that_node(seed):
    bus = bus_with({1: 5, 2: 5, 3: 3}, seed)
    bus.configure([[1, 2], [3]])
    bus.run()
    bus.configure([[1, 2, 3]])
    with pytest.raises(NodeFatal) as info:
        bus.run()
    assert str(info.value) == ("Received config version (5) is different than my config "
                               "version (3)! Exiting")


@pytest.mark.parametrize("seed", range(5))
def test_version_zero_or_absent_never_stops(seed):
    bus = bus_with({1: 5, 2: 5, 3: None}, seed)
    bus.configure([[1, 2], [3]])
    bus.run()
    bus.configure([[1, 2, 3]])
    bus.run()
    assert member_versions(bus, 1)[3] == 0
    assert any("My config version is 0" in msg for _, _, msg in bus.nodes[3].log)


@pytest.mark.parametrize("seed", range(5))
def test_only_the_first_multi_node_sync_is_checked(seed):
    bus = bus_with({1: 5, 2: 5, 3: 7}, seed)
    bus.configure([[1, 2], [3]])
    bus.run()
    bus.configure([[1, 2], [3]])      # 1 and 2 have their first multi-node sync (equal)
    bus.run()
    bus.configure([[1, 2, 3]])        # 3 is highest; 1 and 2 are past their first sync
    bus.run()
    assert member_versions(bus, 3) == {1: 5, 2: 5, 3: 7}
    assert bus.engine(1, 0).highest_config_version == 7


@pytest.mark.parametrize("seed", range(5))
def test_new_config_version_is_announced(seed):
    bus = bus_with({1: 5, 2: 5, 3: 5}, seed)
    bus.configure([[1, 2, 3]])
    bus.run()
    conn = bus.connect(1, 0, pid=100)
    reply = bus.request(conn, 0, req_set("totem.config_version", K.UINT64,
                                         struct.pack("<Q", 6)))
    assert reply == (0, K.CS_OK, b"")
    bus.run()
    for n in (1, 2, 3):
        assert member_versions(bus, n)[1] == 6


def test_malformed_request_is_invalid_param_through_the_host_rules():
    bus = bus_with({1: 5}, 0)
    bus.configure([[1]])
    bus.run()
    conn = bus.connect(1, 0, pid=100)
    assert bus.request(conn, 0, req_set("test.x", 99, b"\1"))[1] == K.CS_ERR_INVALID_PARAM
    assert bus.request(conn, 2, b"short")[1] == K.CS_ERR_INVALID_PARAM
    assert bus.request(conn, 0, req_set("test.x", K.UINT8, b"\1")) == (0, K.CS_OK, b"")
