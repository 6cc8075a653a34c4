"""The public engine API: what a service engine is and what the node gives it.

An engine is one Corosync-style service (cmap, cpg, …) running in its own process. The
host (engineprocs/host.py) feeds it, in the cluster's total order, the Totem
configurations and the exec messages addressed to its service id, drives Corosync's sync
protocol, and serves its IPC clients through the libqb socket-mode server. The built-in
engines use nothing but this file; an engine written elsewhere is a subclass of `Engine`
named in corosync.conf (`service { name: NAME }`) or published under the entry-point group
`coroproc.engines` (docs/engines.md). `coroproc/engineprocs/example/` is the template.

Threading model: none. Every callback runs on the engine process's one loop and must not
block; long work is split across `sync_process` calls or timers.

Wire conventions (Corosync's, so mixed rings work):
* exec messages travel in totempg group "a" with a 16-byte qb_ipc_request_header whose
  id is `(service_id << 16) | fn` and size the whole message; handlers get the body after
  that header. Integers little-endian (x86-64 only, as Corosync on Linux in practice).
* lib requests: handlers get the body after the 16-byte request header; a reply is
  `(response_id, cs_error, body)` where body follows the 24-byte response header.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable, ClassVar, Optional

from coroproc.ipc.server import DEFER  # noqa: F401 (part of the engine API: see LibReply)

# Corosync's service ids (include/corosync/corodefs.h)
SERVICE_CMAP = 0
SERVICE_CFG = 1
SERVICE_CPG = 2
SERVICE_QUORUM = 3
SERVICE_PLOAD = 4
SERVICE_VOTEQUORUM = 5
SERVICE_MON = 6
SERVICE_WD = 7
SERVICES_COUNT_MAX = 64
PROCESSOR_COUNT_MAX = 384

EXEC_GROUP = b"a"       # Corosync's corosync_group: every service's exec messages
SYNC_GROUP = b"sync"    # exec/sync.c's group: service list and barriers

EXEC_HEADER = struct.Struct("<i4xi4x")     # qb_ipc_request_header, 16 bytes
EXEC_HEADER_BYTES = 16

CONFIG_TRANSITIONAL = 0
CONFIG_REGULAR = 1


class NodeFatal(Exception):
    """Raise from a callback to stop the whole node, as Corosync's corosync_exit_error
    (e.g. cmap: this node's config_version is older than the cluster's). The message is
    logged; the supervisor then shuts the node down."""


def exec_id(service_id: int, fn: int) -> int:
    return (service_id << 16) | fn


@dataclass(frozen=True, order=True)
class RingId:
    """Corosync's struct memb_ring_id {u32 nodeid; u64 seq} (packed, 12 bytes)."""
    nodeid: int
    seq: int

    WIRE: ClassVar[struct.Struct] = struct.Struct("<IQ")

    def pack(self) -> bytes:
        return self.WIRE.pack(self.nodeid, self.seq)

    @classmethod
    def unpack_from(cls, buf, offset: int = 0) -> "RingId":
        return cls(*cls.WIRE.unpack_from(buf, offset))

    def __str__(self) -> str:
        return f"{self.nodeid:x}.{self.seq:x}"


@dataclass(frozen=True)
class Configuration:
    """One Totem configuration as delivered to every engine, in the total order."""
    kind: int                    # CONFIG_TRANSITIONAL or CONFIG_REGULAR
    ring_id: RingId
    members: tuple[int, ...]     # sorted nodeids
    left: tuple[int, ...]        # members of the previous configuration not in this one
    joined: tuple[int, ...]      # members not in the previous configuration

    @property
    def regular(self) -> bool:
        return self.kind == CONFIG_REGULAR


# Why a fast lane's run() stopped (Engine.fast_lane): the budget is taken or nothing more
# waits; the record at the cursor is for the Python path; the ring's framing is broken there
LANE_DONE, LANE_PYTHON, LANE_CORRUPT = 0, 1, 2

# (response_id, cs_error, body) or None (no reply: e.g. cpg MCAST), or DEFER: "offer me
# this request again soon" (the server reads nothing more from that client meanwhile)
LibReply = Optional[tuple[int, int, bytes]]
LibHandler = Callable[["object", memoryview], LibReply]     # (conn, body)
ExecHandler = Callable[[int, memoryview], None]              # (sender nodeid, body)


class Engine:
    """Subclass this. Class attributes describe the service; methods are callbacks."""

    name: ClassVar[str] = ""              # engine name: config, process title, logs
    service_id: ClassVar[int] = -1        # Corosync service id; custom engines use 8..63
    ipc_service: ClassVar[Optional[str]] = None   # libqb service name (None: no IPC)
    log_subsys: ClassVar[str] = ""        # "[CPG   ]" tag in logs (default: name upper)
    has_sync: ClassVar[bool] = False      # takes part in the sync protocol
    # lib requests answered CS_ERR_TRY_AGAIN while a sync runs (Corosync's flow_control
    # flag in lib_engine); the host also raises the clients' shared flow-control flag then
    flow_controlled_requests: ClassVar[frozenset] = frozenset()
    ipc_max_msg_bytes: ClassVar[int] = 1 << 20   # IPC_REQUEST_SIZE
    # Run in the process of that engine (by name) instead of a process of its own, as
    # Corosync's quorum service shares votequorum's state: ctx.sibling() reaches it
    hosted_with: ClassVar[Optional[str]] = None
    # Give this engine's IPC connections array-backed event queues (ipc/evqueue.py) and
    # ask it for a fast lane (fast_lane below); the service option `fast_lane: off`
    # keeps the plain Python path
    ipc_event_queues: ClassVar[bool] = False
    # Answer for a request id without a handler, as Corosync's cs_ipcs_msg_process
    unknown_request_reply: ClassVar[tuple[int, int]] = (0, 7)   # id 0, CS_ERR_INVALID_PARAM

    def __init__(self, ctx: "EngineContext"):
        self.ctx = ctx

    # ---- a jitted fast lane (optional) ------------------------------------------------------
    def fast_lane(self, event_queues) -> "Optional[object]":
        """The engine process host offers the IPC server's array-backed event queues
        (ipc/evqueue.py); an engine with a jitted lane for its hot traffic returns it,
        others None. Called once, after the IPC server exists. The host then calls:
        `bind_submit(ring, wake_fd, max_message_bytes, roomy_used_bytes)` once;
        `run(hdr, data, cursor, budget)` on the delivery ring → (records taken, cursor
        after them, LANE_DONE | LANE_PYTHON | LANE_CORRUPT); `read_requests(conn, buf,
        limit, avail, stop_used_bytes)` for a readable connection (see IpcHandler's
        read_fast); `invalidate()` after anything else ran engine code; and, if the lane
        has it, `loop(hdr, data, cursor, pos_limit, release, budget, pollfds, until_us,
        moved_until_us, ipc, ipc_idx, stop_used_bytes)` to sleep in instead of the host's
        own poll (EngineHost._lane_sleep). engineprocs/cpg/lane.py is the one there is."""
        return None

    # ---- handler tables (built once at start) -------------------------------------------
    def lib_handlers(self) -> dict[int, LibHandler]:
        return {}

    def exec_handlers(self) -> dict[int, ExecHandler]:
        return {}

    # ---- IPC clients ----------------------------------------------------------------------
    def on_connect(self, conn) -> "bool | int":
        """Admit a client (already past uid/gid checks and the first-sync gate)."""
        return True

    def on_disconnect(self, conn) -> None:
        pass

    def authorize(self, creds) -> "Optional[bool]":
        """Admit a non-root client (creds.pid/uid/gid)? None lets the host decide with
        Corosync's rule: uidgid.{uid,gid}.N or uidgid.config.{uid,gid}.N = 1 in cmap."""
        return None

    # ---- membership and sync (all in the cluster's total order) -------------------------
    def on_confchg(self, conf: Configuration) -> None:
        """Every transitional and regular configuration, before sync starts."""

    def sync_init(self, trans_list: tuple[int, ...], member_list: tuple[int, ...],
                  ring_id: RingId) -> None:
        pass

    def sync_process(self) -> bool:
        """Do (more of) this service's sync work; True when done (the barrier goes out)."""
        return True

    def sync_activate(self) -> None:
        pass

    def sync_abort(self) -> None:
        pass

    def on_sync_completed(self, ring_id: RingId, members: tuple[int, ...]) -> None:
        """Every service of the ring has activated (Corosync's sync_synchronization_completed)."""

    def on_reload(self, config) -> None:
        """corosync.conf was re-read (`corosync-cfgtool -R`); `config` is the new
        NodeConfig (already checked). Apply what may change at run time."""

    def on_config_keys(self, changed: tuple[str, ...], entries: dict) -> None:
        """A client changed keys under quorum. or nodelist. in cmap at run time
        (`corosync-cmapctl -s`; engineprocs/cmap/config_watch.py): `changed` names them,
        `entries` holds every key under those prefixes with its value now. Not called
        for a corosync.conf reload (on_reload is)."""

    def on_ring_lost(self) -> None:
        """The node's ring process restarted: every earlier membership is void, a new
        configuration follows. Forget other nodes' state as after a total partition."""

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Called once, after the context is complete and before the first message."""

    def counters(self) -> dict:
        return {}

    def close(self) -> None:
        pass

    # ---- restart without losing state (per-engine restart) ------------------------------
    def snapshot(self) -> Optional[bytes]:
        """The engine's replicated state as bytes (None: the engine keeps none). The host
        stores it with the position in the ordered stream it reflects; after a restart of
        this engine alone, `restore` gets it back and the host replays every ordered
        message after that position, so nothing ordered is lost."""
        return None

    def restore(self, data: bytes) -> None:
        """Load a snapshot (before the replay of the messages that followed it)."""

    def on_restarted(self, lost_connections: bool) -> None:
        """The replay is done and the engine is live again; its IPC clients of the old
        process are gone (e.g. cpg multicasts PROCDOWN leaves for their processes)."""


class EngineContext:
    """What the host gives an engine. Only the documented members are API."""

    nodeid: int
    cluster_name: str
    config: object               # coroproc.config.model.NodeConfig
    options: dict                # per-engine options from the plan
    ring_id: Optional[RingId]    # current regular configuration (None before the first)
    members: tuple[int, ...]     # its members
    node_engines: dict           # service id -> engine name, every engine of this node
    sync_in_progress: bool
    first_sync_done: bool

    def mcast(self, fn: int, body: bytes, *, safe: bool = False) -> bool:
        """Multicast exec message `fn` of this service to the ring (agreed order; safe if
        asked). False when the submit ring is full: nothing was sent, try again later."""
        raise NotImplementedError

    def mcast_space_bytes(self) -> int:
        """Bytes a message may have right now and still fit the submit ring."""
        raise NotImplementedError

    def monotonic_s(self) -> float:
        """The timers' clock (CLOCK_MONOTONIC seconds in a real host)."""
        raise NotImplementedError

    def timer_add(self, delay_ms: float, callback: Callable[[], None]) -> "Timer":
        raise NotImplementedError

    def connections(self) -> list:
        """The engine's live IPC connections (coroproc.ipc.connection.IpcConnection)."""
        raise NotImplementedError

    def disconnect(self, conn, why: str) -> None:
        raise NotImplementedError

    service_suffix: str          # the node's IPC name suffix (for clients of other engines)
    replaying: bool              # re-handling messages after a restart: mcast() is a no-op

    def sibling(self, service_id: int) -> Optional[Engine]:
        """An engine hosted in this same process (see Engine.hosted_with), or None."""
        raise NotImplementedError

    def supervisor_request(self, op: str, args: dict,
                           callback: Optional[Callable[[dict], None]] = None) -> None:
        """Ask the node's supervisor to act: "shutdown" {"reason"}, "reopen_logs" {},
        "reload" {} (re-read corosync.conf), "status" {}; the reply dict reaches the
        callback on a later loop turn."""
        raise NotImplementedError

    def config_keys_changed(self, changed: tuple[str, ...], entries: dict) -> None:
        """The CMAP engine's news for every other engine of the node: each gets
        Engine.on_config_keys(changed, entries) on a later loop turn."""
        raise NotImplementedError

    def request_node_counters(self, callback: Callable[[dict], None]) -> None:
        """Ask the supervisor for every process's counters (role -> dict): it asks each
        process for a report and answers once all reported or after 0.5 s (a silent one
        keeps its last report). The callback runs on a later loop turn (never if the
        supervisor does not answer)."""
        raise NotImplementedError

    def log(self, priority: str, message: str) -> None:
        raise NotImplementedError

    def error(self, message: str) -> None:
        self.log("error", message)

    def warning(self, message: str) -> None:
        self.log("warning", message)

    def notice(self, message: str) -> None:
        self.log("notice", message)

    def info(self, message: str) -> None:
        self.log("info", message)

    def debug(self, message: str) -> None:
        self.log("debug", message)


class Timer:
    """Returned by timer_add; cancel() is idempotent."""
    __slots__ = ("callback", "cancelled", "due_s")

    def __init__(self, due_s: float, callback):
        self.due_s = due_s
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: "Timer") -> bool:
        return self.due_s < other.due_s
