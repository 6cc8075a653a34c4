"""Names of a node's shm segments, and their cleanup.

This file owns the naming rule "/coroproc.<cluster>.<nodeid>.<role>" (cluster name
sanitised to [A-Za-z0-9_-]) so that several nodes, and several clusters, can share
one host; and the listing/unlinking of one node's segments, which the supervisor
runs at exit and before start (to clear what a crashed run left behind).
"""

import os
import re

import posix_ipc

from coroproc.shm.errors import ShmError

PREFIX = "coroproc"
SHM_DIR = "/dev/shm"
NAME_MAX = 255  # bytes of a file name under /dev/shm (the leading '/' is not part of it)
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_ROLE_OK = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


def sanitise_cluster_name(cluster_name):
    s = _UNSAFE.sub("_", cluster_name)
    return s if s else "_"


def _node_prefix(cluster_name, nodeid):
    if not isinstance(nodeid, int) or nodeid < 0 or nodeid > 0xFFFFFFFF:
        raise ShmError(f"shm names: nodeid must be an integer 0..4294967295, got {nodeid!r}")
    return f"{PREFIX}.{sanitise_cluster_name(cluster_name)}.{nodeid}."


def segment_name(cluster_name, nodeid, role):
    """'/coroproc.<cluster>.<nodeid>.<role>'; role is e.g. 'rx0', 'submit.cpg' ([A-Za-z0-9_-.])."""
    if not isinstance(role, str) or not _ROLE_OK.match(role):
        raise ShmError(
            f"shm names: role {role!r} is not allowed; use [A-Za-z0-9_-] words joined by '.'"
        )
    base = _node_prefix(cluster_name, nodeid) + role
    if len(base.encode()) > NAME_MAX:
        raise ShmError(
            f"shm names: {base!r} is {len(base.encode())} bytes, more than NAME_MAX={NAME_MAX}; "
            f"use a shorter cluster name or role"
        )
    return "/" + base


def node_segments(cluster_name, nodeid):
    """Names ('/coroproc...') of every segment of this node now in /dev/shm, sorted."""
    prefix = _node_prefix(cluster_name, nodeid)
    try:
        entries = os.listdir(SHM_DIR)
    except FileNotFoundError:
        return []
    return sorted("/" + e for e in entries if e.startswith(prefix))


def remove_node_segments(cluster_name, nodeid):
    """Unlink every segment of this node; returns the names removed."""
    removed = []
    for name in node_segments(cluster_name, nodeid):
        try:
            posix_ipc.unlink_shared_memory(name)
        except posix_ipc.ExistentialError:
            continue  # someone else removed it between listing and unlinking
        removed.append(name)
    return removed
