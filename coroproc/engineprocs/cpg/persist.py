"""What a CPG engine keeps across a restart of its process alone, and how it hands back the
processes of the clients that restart disconnected.

Kept (replicated state, identical on every node outside a sync): the cluster-wide process
list in its exact order, CpgSync's member lists / ring id / downlist / step / joinlists,
whether a sync has activated, and the next connection source id. Not kept: connections,
their iteration and zero-copy handles, deferred PROCLEAVEs — all bound to connections,
which a restart loses.

Handing back the old local processes (the restart fence). The old process may have
multicast PROCJOINs and PROCLEAVEs that are still in flight when the new one goes live:
a leave sent now for a process whose leave is in flight would reach every node twice (cpg.c
notifies a leave even for an unknown process), and a join in flight would re-add a process
nobody owns. So the restarted engine first multicasts a fence — a DOWNLIST_OLD message,
which every node (Corosync 3.1 included) only logs — carrying a random nonce. One node's
messages are delivered in the order it submitted them, so when the fence comes back every
message of the old process has been delivered: the local processes still in the list are
exactly the orphans, and each gets one PROCLEAVE with reason PROCDOWN (what a client
disconnect causes). Until then new joins answer CS_ERR_TRY_AGAIN (libcpg callers retry),
so no new process can mix with the old ones; everything else is served at once.
"""
from __future__ import annotations

import os
import struct

import orjson

from coroproc.engineprocs.api import RingId

from . import exec_msgs as xm
from .groups import ProcessList
from .notify import CONFCHG_CPG_REASON_PROCDOWN
from .sync import CpgSync, SyncStep

SNAPSHOT_VERSION = 1
FENCE_MAGIC = b"coroproc-cpg-restart-fence\0"
FENCE_RETRY_MS = 5.0
_NONCE = struct.Struct("<Q")
_LEFT_NODES = struct.Struct("<I4x")     # req_exec_cpg_downlist_old.left_nodes (aligned 8)


# ---- snapshot ---------------------------------------------------------------------------
def dump(procs: ProcessList, sync: CpgSync, view_known: bool, next_source_id: int) -> bytes:
    return orjson.dumps({
        "v": SNAPSHOT_VERSION,
        "procs": [[p.group.hex(), p.nodeid, p.pid] for p in procs],
        "sync": {"old_members": list(sync.old_members), "members": list(sync.members),
                 "stayed": None if sync.stayed is None else list(sync.stayed),
                 "ring": [sync.ring_id.nodeid, sync.ring_id.seq],
                 "downlist": list(sync.downlist), "step": sync.step.value,
                 "joinlists": [[s, g.hex(), pid] for s, g, pid in sync.joinlists],
                 "joinlist_overflow": sync.joinlist_overflow},
        "view_known": view_known, "next_source_id": next_source_id})


def load(data: bytes, procs: ProcessList, sync: CpgSync) -> tuple[bool, int]:
    """Fill the (empty) `procs` and `sync` from a snapshot; (view_known, next_source_id)."""
    st = orjson.loads(data)
    if st.get("v") != SNAPSHOT_VERSION:
        raise ValueError(f"CPG snapshot version {st.get('v')!r}: this engine reads "
                         f"{SNAPSHOT_VERSION} only")
    assert len(procs) == 0, "restore into a fresh engine only"
    for group_hex, nodeid, pid in st["procs"]:
        # re-adding in list order keeps equal (nodeid, pid) keys in insertion order
        if not procs.add(bytes.fromhex(group_hex), nodeid, pid):
            raise ValueError(f"CPG snapshot lists {nodeid}/{pid} in {group_hex} twice or "
                             f"more than processes_max={procs.max_entries} processes")
    s = st["sync"]
    sync.old_members = tuple(s["old_members"])
    sync.members = tuple(s["members"])
    stayed = s.get("stayed")       # absent from snapshots of earlier versions: all stayed
    sync.stayed = None if stayed is None else tuple(stayed)
    sync.ring_id = RingId(*s["ring"])
    sync.downlist = tuple(s["downlist"])
    sync.step = SyncStep(s["step"])
    sync.joinlists = [(sender, bytes.fromhex(g), pid) for sender, g, pid in s["joinlists"]]
    sync.joinlist_overflow = s["joinlist_overflow"]
    return bool(st["view_known"]), int(st["next_source_id"])


# ---- the restart fence --------------------------------------------------------------------
def pack_fence(nonce: int) -> bytes:
    body = _LEFT_NODES.pack(0) + FENCE_MAGIC + _NONCE.pack(nonce)
    return body.ljust(xm.DOWNLIST_OLD_BYTES, b"\0")


def fence_nonce(body) -> int | None:
    """The nonce of a restart fence, or None for any other DOWNLIST_OLD."""
    at = _LEFT_NODES.size
    end = at + len(FENCE_MAGIC)
    if len(body) < end + _NONCE.size or bytes(body[at:end]) != FENCE_MAGIC:
        return None
    return _NONCE.unpack_from(body, end)[0]


class RestartFence:
    """One restart's fence: sent after the replay, resolved when it is delivered back."""

    def __init__(self, engine):
        self.engine = engine
        self.ctx = engine.ctx
        self.nonce: int | None = None
        self._timer = None
        self.fences_sent = 0
        self.orphans_left = 0

    @property
    def pending(self) -> bool:
        return self.nonce is not None

    def start(self) -> None:
        self.nonce = _NONCE.unpack(os.urandom(_NONCE.size))[0]
        self.send()

    def send(self) -> None:
        """(Re)send the fence; a full submit ring retries it, a lost ring resends it."""
        self._timer = None
        if self.nonce is None:
            return
        if self.ctx.mcast(xm.MESSAGE_REQ_EXEC_CPG_DOWNLIST_OLD, pack_fence(self.nonce)):
            self.fences_sent += 1
        else:
            self._timer = self.ctx.timer_add(FENCE_RETRY_MS, self.send)

    def on_delivered(self, sender: int, body) -> bool:
        """A DOWNLIST_OLD was delivered; True if it was our fence (orphans then left)."""
        if self.nonce is None or sender != self.ctx.nodeid or fence_nonce(body) != self.nonce:
            return False
        self.nonce = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        eng = self.engine
        owned = {(c.group, c.pid) for c in eng.active_conns() if c.group is not None}
        orphans = [p for p in eng.procs.of_node(self.ctx.nodeid)
                   if (p.group, p.pid) not in owned]
        for proc in orphans:
            eng.send_leave(proc.group, proc.pid, CONFCHG_CPG_REASON_PROCDOWN)
        self.orphans_left += len(orphans)
        self.ctx.notice(f"CPG engine restarted: {len(orphans)} process(es) of clients of the "
                        "previous engine process leave (PROCDOWN); joins admitted again")
        return True

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
