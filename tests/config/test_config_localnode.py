"""Local node identification: Corosync's order (hostname, then local addresses), the
coroproc override (argument or coroproc { nodeid }), and refusing to guess.

127.0.0.1 and 127.0.0.2 are both local on Linux (all of 127.0.0.0/8 is on lo), which
is exactly the several-nodes-on-one-host case the override exists for.
"""
from __future__ import annotations

import os
import uuid

import pytest

from coroproc.config import ConfigParseError, load


def _write(tmp_path, nodes: list[tuple[str, int, str]], tail: str = "") -> str:
    body = "".join(f"    node {{\n        ring0_addr: {addr}\n        nodeid: {nodeid}\n"
                   f"        name: {name}\n    }}\n" for addr, nodeid, name in nodes)
    path = tmp_path / f"corosync-{uuid.uuid4().hex[:8]}.conf"
    path.write_text("totem {\n    version: 2\n    cluster_name: local\n    transport: udpu\n}\n"
                    f"nodelist {{\n{body}}}\n{tail}")
    return str(path)


def _unique_name() -> str:
    return f"coroproc-test-{uuid.uuid4().hex[:10]}"  # never this host's name


def test_two_loopback_nodes_are_ambiguous(tmp_path):
    path = _write(tmp_path, [("127.0.0.1", 1, _unique_name()), ("127.0.0.2", 2, _unique_name())])
    with pytest.raises(ConfigParseError) as info:
        load(path)
    assert info.value.message == ("nodes 1 and 2 both have local addresses "
                                  "127.0.0.1/127.0.0.2; set coroproc { nodeid: N } or "
                                  "pass --nodeid")


def test_three_local_nodes_say_all(tmp_path):
    path = _write(tmp_path, [("127.0.0.1", 1, _unique_name()), ("127.0.0.2", 2, _unique_name()),
                             ("127.0.0.3", 3, _unique_name())])
    with pytest.raises(ConfigParseError, match="nodes 1, 2 and 3 all have local addresses"):
        load(path)


def test_override_argument_picks_the_node(tmp_path):
    path = _write(tmp_path, [("127.0.0.1", 1, _unique_name()), ("127.0.0.2", 2, _unique_name())])
    config, _ = load(path, nodeid_override=2)
    assert config.local_nodeid == 2
    assert config.local_addrs == {0: "127.0.0.2"}
    assert config.links[0].bindnetaddr == "127.0.0.2"
    assert config.keys["nodelist.local_node_pos"].value == "1"


def test_coroproc_section_picks_the_node_and_argument_wins(tmp_path):
    path = _write(tmp_path, [("127.0.0.1", 1, _unique_name()), ("127.0.0.2", 2, _unique_name())],
                  tail="coroproc {\n    nodeid: 1\n}\n")
    assert load(path)[0].local_nodeid == 1
    assert load(path, nodeid_override=2)[0].local_nodeid == 2


def test_override_not_in_nodelist(tmp_path):
    path = _write(tmp_path, [("127.0.0.1", 1, _unique_name())])
    with pytest.raises(ConfigParseError, match=r"--nodeid: node id 5 is not in the nodelist"):
        load(path, nodeid_override=5)


def test_single_local_address_is_found(tmp_path):
    path = _write(tmp_path, [("203.0.113.50", 50, _unique_name()),
                             ("127.0.0.1", 51, _unique_name())])
    assert load(path)[0].local_nodeid == 51


def test_no_local_node_is_an_error_naming_the_fix(tmp_path):
    path = _write(tmp_path, [("203.0.113.50", 50, _unique_name()),
                             ("203.0.113.51", 51, _unique_name())])
    with pytest.raises(ConfigParseError, match="No valid name found for local host.*"
                                               "set coroproc { nodeid: N } or pass --nodeid"):
        load(path)


def test_hostname_match_comes_first_as_in_corosync(tmp_path):
    hostname = os.uname().nodename
    path = _write(tmp_path, [("203.0.113.60", 60, hostname), ("127.0.0.1", 61, _unique_name())])
    assert load(path)[0].local_nodeid == 60


def test_short_hostname_matches_fqdn_node_name(tmp_path):
    short = os.uname().nodename.split(".")[0]
    path = _write(tmp_path, [("203.0.113.70", 70, f"{short}.cluster.example"),
                             ("127.0.0.1", 71, _unique_name())])
    assert load(path)[0].local_nodeid == 70
