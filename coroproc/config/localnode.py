"""Which nodelist entry is this node — Corosync's find_local_node, made strict.

Corosync (exec/totemconfig.c) tries, in order: the uname nodename, then ever shorter
dot-truncations of it, against each node's ``name`` (or ``ring0_addr``); then this
host's interface addresses against the nodelist; and takes the first match. coroproc
adds an explicit choice first (``--nodeid`` or ``coroproc { nodeid: N }``), because
several coroproc nodes may share one host, and refuses to guess when more than one
entry has a local address (Corosync would silently take the first).
"""
from __future__ import annotations

import os

from coroproc.config.errors import ConfigParseError, Entry
from coroproc.config.model import NodeEntry
from coroproc.config.netaddr import is_local


def _by_name(nodes: list[NodeEntry], raw_ring0: dict[int, str], wanted: str,
             strip_domain: bool) -> NodeEntry | None:
    for node in nodes:
        for candidate in (node.name, raw_ring0.get(node.position)):
            if candidate is None:
                continue
            name = candidate.split(".", 1)[0] if strip_domain else candidate
            if name == wanted:
                return node
    return None


def _by_hostname(nodes: list[NodeEntry], raw_ring0: dict[int, str]) -> NodeEntry | None:
    hostname = os.uname().nodename
    found = _by_name(nodes, raw_ring0, hostname, False)
    shorter = hostname
    while found is None and "." in shorter:
        shorter = shorter.rsplit(".", 1)[0]
        found = _by_name(nodes, raw_ring0, shorter, False)
    if found is None:
        found = _by_name(nodes, raw_ring0, shorter, True)
    return found


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def find_local_node(nodes: list[NodeEntry], raw_ring0: dict[int, str], file: str,
                    override: int | None, override_entry: Entry | None) -> NodeEntry:
    """The local node; ``raw_ring0`` maps position → ring0_addr as written."""
    assert nodes, "the loader refuses an empty nodelist before asking for the local node"
    if override is not None:
        for node in nodes:
            if node.nodeid == override:
                return node
        where = override_entry.line if override_entry is not None else None
        source = "coroproc.nodeid" if override_entry is not None else "--nodeid"
        raise ConfigParseError(file, where, source, f"node id {override} is not in the "
                               f"nodelist (node ids: {', '.join(str(n.nodeid) for n in nodes)})")
    named = _by_hostname(nodes, raw_ring0)
    if named is not None:
        return named
    local = [n for n in nodes if any(is_local(a) for a in n.addrs.values())]
    if len(local) == 1:
        return local[0]
    if len(local) > 1:
        ids = _join([str(n.nodeid) for n in local])
        addrs = "/".join(a for n in local for a in n.addrs.values() if is_local(a))
        both = "both" if len(local) == 2 else "all"
        raise ConfigParseError(file, None, "nodelist", f"nodes {ids} {both} have local "
                               f"addresses {addrs}; set coroproc {{ nodeid: N }} or pass --nodeid")
    addrs = ", ".join(a for n in nodes for a in n.addrs.values())
    raise ConfigParseError(file, None, "nodelist", "No valid name found for local host: "
                           f"hostname {os.uname().nodename!r} matches no node name and none "
                           f"of the node addresses ({addrs}) is an address of this host; "
                           "set coroproc { nodeid: N } or pass --nodeid")
