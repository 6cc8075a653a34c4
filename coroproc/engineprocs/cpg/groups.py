"""The cluster-wide CPG process list: which (nodeid, pid) is a member of which group.

This file owns exec/cpg.c's process_info list and the orders that clients can observe:
* the list is kept sorted by (nodeid, pid); equal keys (one process in several groups)
  stay in insertion order — so membership_get and confchg member lists come out in the
  same order on every node, as in Corosync;
* `iteration_snapshot` reproduces cpg_iteration_initialize's "grouped by name" copy:
  a group not seen yet goes to the front, a further member of a seen group goes right
  after that group's first entry (what corosync-cpgtool prints).
Every node applies the same ordered changes, so every node's list is identical outside
of a sync. The list is bounded by what the cluster sends: PROCESSOR_COUNT_MAX nodes times
their clients; `add` refuses beyond `max_entries` (counted by the engine).
"""
from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass

CPG_ITERATION_NAME_ONLY = 1
CPG_ITERATION_ONE_GROUP = 2
CPG_ITERATION_ALL = 3


@dataclass(frozen=True)
class Proc:
    group: bytes
    nodeid: int
    pid: int


class ProcessList:
    def __init__(self, max_entries: int = 1 << 20):
        assert max_entries > 0
        self.max_entries = max_entries
        self._procs: list[Proc] = []
        self._keys: list[tuple[int, int]] = []        # parallel to _procs, for bisect
        self._present: set[Proc] = set()
        self._group_nodes: dict[bytes, Counter] = {}  # group -> processes per nodeid

    def __len__(self) -> int:
        return len(self._procs)

    def __iter__(self):
        return iter(tuple(self._procs))

    def group_count(self) -> int:
        return len(self._group_nodes)

    def contains(self, group: bytes, nodeid: int, pid: int) -> bool:
        return Proc(group, nodeid, pid) in self._present

    def node_in_group(self, group: bytes, nodeid: int) -> bool:
        """cpg.c's "known node" test before delivering a message."""
        nodes = self._group_nodes.get(group)
        return nodes is not None and nodes[nodeid] > 0

    def add(self, group: bytes, nodeid: int, pid: int) -> bool:
        """Insert after every entry with key <= (nodeid, pid); False if present or full."""
        proc = Proc(group, nodeid, pid)
        if proc in self._present or len(self._procs) >= self.max_entries:
            return False
        at = bisect.bisect_right(self._keys, (nodeid, pid))
        self._procs.insert(at, proc)
        self._keys.insert(at, (nodeid, pid))
        self._present.add(proc)
        self._group_nodes.setdefault(group, Counter())[nodeid] += 1
        assert len(self._procs) == len(self._keys) == len(self._present)
        return True

    def remove(self, group: bytes, nodeid: int, pid: int) -> bool:
        proc = Proc(group, nodeid, pid)
        if proc not in self._present:
            return False
        at = self._procs.index(proc)
        del self._procs[at]
        del self._keys[at]
        self._present.discard(proc)
        nodes = self._group_nodes[group]
        nodes[nodeid] -= 1
        if nodes[nodeid] == 0:
            del nodes[nodeid]
            if not nodes:
                del self._group_nodes[group]
        return True

    def members(self, group: bytes) -> list[tuple[int, int]]:
        """(nodeid, pid) of the group, in list order."""
        if group not in self._group_nodes:
            return []
        return [(p.nodeid, p.pid) for p in self._procs if p.group == group]

    def of_node(self, nodeid: int) -> list[Proc]:
        return [p for p in self._procs if p.nodeid == nodeid]

    def iteration_snapshot(self, iteration_type: int, group: bytes) -> list[Proc]:
        """The copy cpg_iteration_initialize makes (see the file comment for the order)."""
        out: list[Proc] = []
        first_of: dict[bytes, int] = {}
        for proc in self._procs:
            if iteration_type == CPG_ITERATION_NAME_ONLY:
                if proc.group in first_of:
                    continue
                proc = Proc(proc.group, 0, 0)
            elif iteration_type == CPG_ITERATION_ONE_GROUP and proc.group != group:
                continue
            if proc.group in first_of:
                out.insert(first_of[proc.group] + 1, proc)
                for name, index in first_of.items():
                    if index > first_of[proc.group]:
                        first_of[name] = index + 1
            else:
                out.insert(0, proc)
                first_of = {name: index + 1 for name, index in first_of.items()}
                first_of[proc.group] = 0
        return out
