"""Segment naming (sanitising, NAME_MAX) and cleanup of one node's segments."""

import pytest
from shm_helpers import unique_cluster

from coroproc.shm import (
    ShmError,
    ShmRing,
    node_segments,
    remove_node_segments,
    segment_name,
)
from coroproc.shm.names import NAME_MAX


def test_name_shape():
    assert segment_name("mycluster", 3, "rx0") == "/coroproc.mycluster.3.rx0"
    assert segment_name("my cluster/ä.x", 3, "submit.cpg") == "/coroproc.my_cluster___x.3.submit.cpg"
    assert segment_name("", 0, "tx") == "/coroproc._.0.tx"


@pytest.mark.parametrize("role", ["", "a/b", "a..b", ".x", "x y", None])
def test_bad_roles_are_refused(role):
    with pytest.raises(ShmError, match="role"):
        segment_name("c", 1, role)


@pytest.mark.parametrize("nodeid", [-1, 2**32, "1", 1.0])
def test_bad_nodeids_are_refused(nodeid):
    with pytest.raises(ShmError, match="nodeid"):
        segment_name("c", nodeid, "rx")


def test_name_max():
    fixed = len("coroproc..1.rx")
    assert len(segment_name("c" * (NAME_MAX - fixed), 1, "rx")) == NAME_MAX + 1  # + leading '/'
    with pytest.raises(ShmError, match="NAME_MAX"):
        segment_name("c" * (NAME_MAX - fixed + 1), 1, "rx")


def test_node_cleanup_removes_only_that_node():
    cluster = unique_cluster()
    mine = [segment_name(cluster, 1, r) for r in ("rx0", "tx0", "deliver.cpg")]
    other_node = segment_name(cluster, 12, "rx0")  # prefix "…1" must not match node 12
    other_cluster = segment_name(cluster + "x", 1, "rx0")
    made = mine + [other_node, other_cluster]
    for nm in made:
        ShmRing.create(nm, 4096).close()
    try:
        assert node_segments(cluster, 1) == sorted(mine)
        assert remove_node_segments(cluster, 1) == sorted(mine)
        assert node_segments(cluster, 1) == []
        assert node_segments(cluster, 12) == [other_node]
        assert remove_node_segments(cluster, 1) == []
    finally:
        remove_node_segments(cluster, 12)
        remove_node_segments(cluster + "x", 1)
    assert node_segments(cluster + "x", 1) == []
