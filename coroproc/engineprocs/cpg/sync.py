"""CPG's part of the sync protocol (exec/cpg.c cpg_sync_*): downlist, joinlists, activation.

This file owns the sync-time state — the member lists of the last two syncs, the
downlist, the joinlists received — and the pure computations activation needs. The
engine (engine.py) turns the computed changes into client confchgs.

What cpg.c does, and so what we do:
* init: remember the new member list and ring id; the downlist is every member of the
  previous *activated* membership that is not in the transitional list — of this ring,
  or of any ring whose sync was aborted since that activation (below, `stayed`).
* process: multicast DOWNLIST (informational: receivers only log it), then JOINLIST with
  every local (group, pid) — nothing when there is none. Either send may find the submit
  ring full; `process` then returns False and is called again.
* activate, in this order: the previous membership becomes the new one; processes of
  downlisted nodes are removed (one NODEDOWN confchg per group); processes named in other
  nodes' joinlists and not yet known are added (one NODEUP confchg per group, joinlist
  entries in reverse order of receipt, as cpg.c's list pushes at its head); processes of
  other nodes that no joinlist names are removed one by one (PROCDOWN: they left while we
  were apart); then every client gets a totem confchg.
* abort: the joinlists are dropped. Nothing else changed before activation, so the
  pre-sync view is intact.

Where we differ from cpg.c: cpg.c takes the downlist against the new ring's
transitional list alone. When a ring's sync is aborted, the clients never see that ring,
yet its members are in the next ring's transitional list: a node that left us, ran on
alone (its clients delivering messages we never got) and came back in a ring whose sync
was aborted, was never in any downlist, and our clients saw its processes stay in the
view while they missed its messages — a break of virtual synchrony that a 30-minute
knet soak with SIGSTOPs and partitions hit (a per-sender gap of 67 messages from such a
node). So the downlist is every node of the last activated membership that was not in
*every* transitional list since then; such a node's processes go (NODEDOWN) and come
back from its joinlist (NODEUP), and the clients see the break. The process list after
the sync is the same as cpg.c's; only the confchgs the local clients get differ.
"""
from __future__ import annotations

import enum
from typing import Callable, Optional

from coroproc.engineprocs.api import PROCESSOR_COUNT_MAX, RingId

from .groups import Proc, ProcessList


class SyncStep(enum.Enum):
    DOWNLIST = "downlist"
    JOINLIST = "joinlist"
    DONE = "done"


# Joinlist entries kept per sync: every process of every node, bounded so a hostile or
# broken peer cannot grow us without limit (one IPC-sized joinlist per node holds ~7 000).
JOINLIST_ENTRIES_MAX = 1 << 20


class CpgSync:
    def __init__(self, nodeid: int):
        self.nodeid = nodeid
        self.old_members: tuple[int, ...] = ()      # my_old_member_list (last activated)
        # old members in every transitional list since the last activation (None: all)
        self.stayed: Optional[tuple[int, ...]] = None
        self.members: tuple[int, ...] = ()          # my_member_list (this sync)
        self.ring_id = RingId(0, 0)                 # last_sync_ring_id (set at init)
        self.downlist: tuple[int, ...] = ()
        self.step = SyncStep.DONE
        self.joinlists: list[tuple[int, bytes, int]] = []   # (sender, group, pid), receipt order
        self.joinlist_overflow = 0

    def init(self, trans_list, member_list, ring_id: RingId) -> None:
        assert len(member_list) <= PROCESSOR_COUNT_MAX
        self.step = SyncStep.DOWNLIST
        self.members = tuple(member_list)
        self.ring_id = ring_id
        trans = set(trans_list)
        before = self.old_members if self.stayed is None else self.stayed
        self.stayed = tuple(n for n in before if n in trans)
        self.downlist = tuple(n for n in self.old_members if n not in self.stayed)

    def process(self, send_downlist: Callable[[int, tuple], bool],
                send_joinlist: Callable[[], Optional[bool]]) -> bool:
        """One round of sync work; True when both messages are out."""
        if self.step == SyncStep.DOWNLIST:
            if not send_downlist(len(self.old_members), self.downlist):
                return False
            self.step = SyncStep.JOINLIST
        if self.step == SyncStep.JOINLIST:
            if send_joinlist() is False:
                return False
            self.step = SyncStep.DONE
        return True

    def on_joinlist(self, sender: int, entries) -> None:
        for group, pid in entries:
            if len(self.joinlists) >= JOINLIST_ENTRIES_MAX:
                self.joinlist_overflow += 1
                continue
            self.joinlists.append((sender, group, pid))

    def start_activate(self) -> None:
        self.old_members = self.members
        self.stayed = None

    def finish(self) -> None:
        """Activation done or sync aborted: the joinlists are spent."""
        self.joinlists = []
        self.step = SyncStep.DONE

    def forget_ring(self) -> None:
        """The ring process restarted: only this node remains of the old membership."""
        self.old_members = (self.nodeid,)
        self.members = (self.nodeid,)
        self.stayed = None
        self.finish()

    # ---- activation computations (they change `procs`) ----------------------------------
    def remove_downlisted(self, procs: ProcessList, left_nodes) -> list[tuple[bytes, list]]:
        """Remove every process of `left_nodes`; [(group, [(nodeid, pid)])] by group name."""
        left_nodes = set(left_nodes)
        by_group: dict[bytes, list] = {}
        for proc in procs:
            if proc.nodeid in left_nodes:
                by_group.setdefault(proc.group, []).append((proc.nodeid, proc.pid))
                procs.remove(proc.group, proc.nodeid, proc.pid)
        return sorted(by_group.items())

    def add_joinlisted(self, procs: ProcessList) -> tuple[list[tuple[bytes, list]], int]:
        """Add other nodes' unknown processes; [(group, [(nodeid, pid)])], refused count."""
        by_group: dict[bytes, list] = {}
        refused = 0
        for sender, group, pid in reversed(self.joinlists):
            if sender == self.nodeid or procs.contains(group, sender, pid):
                continue
            if not procs.add(group, sender, pid):
                refused += 1
                continue
            by_group.setdefault(group, []).append((sender, pid))
        return sorted(by_group.items()), refused

    def zombies(self, procs: ProcessList) -> list[Proc]:
        """Processes of other nodes that no joinlist of this sync names, in list order."""
        named = {(sender, group, pid) for sender, group, pid in self.joinlists
                 if sender != self.nodeid}
        return [p for p in procs
                if p.nodeid != self.nodeid and (p.nodeid, p.group, p.pid) not in named]
