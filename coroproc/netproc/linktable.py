"""LinkTable: the node's shared table of link state, one row per link, one slot per peer.

This file owns the segment (create / attach with validation / close / unlink), its byte
layout and the only code that writes it. Every link process of a node writes its own row
(single writer per row); the other link processes read the whole table to decide who
sends a frame (select.py), and the cfg engine / supervisor read it for `cfgtool -s/-n`
and `stats.knet.*` (snapshot()).

Layout (little-endian, every region 64-byte aligned):

    header   64 B   magic u64, version u32, n_peers u32, local_nodeid u32, links u32,
                    nodeids_off u32, linkhdr_off u32, state_off u32, stats_off u32,
                    total_bytes u64, state_gen u16[8]
    nodeids  u32[n_peers]               slot order: the order create() was given
    linkhdr  8 x 64 B                   per link: heartbeat_us u64, pid u32
    state    u32[n_peers][8]            per (peer, link) one word, peer-major
    stats    8 x n_peers x 64 B         per (link, peer): latency, mtu, counters

The state word holds the four fields a sender decides on: byte 0 configured, 1 enabled,
2 connected, 3 priority. It is written with one aligned 4-byte store, so a reader sees
the four of one link together (never half an update), and a peer's eight words are one
32-byte run so select.py reads a peer's links without touching the stats. The stats
fields are written one by one: a reader may see a torn mix of old and new statistics,
which status output tolerates.

state_gen[link] is bumped (mod 2**16) after every write of that link's state words, so
a reader can cache decisions and re-read the words only when some generation moved
(two u64 loads cover all eight links). x86 keeps stores in order (word, then
generation) and loads in order (generation, then words), so a reader never caches a
decision under a generation newer than the words it read.

Changing the layout: bump LAYOUT_VERSION so a process of another build refuses to attach.
"""
from __future__ import annotations

import mmap

import numpy as np
import posix_ipc

from coroproc.shm.errors import ShmError

LINKS_MAX = 8                    # knet: linknumber 0..7 (INTERFACE_MAX)
PEERS_MAX = 384                  # Corosync PROCESSOR_COUNT_MAX
TABLE_MAGIC = 0x314B4E494C4F5243  # b"CROLINK1" read as a little-endian u64
LAYOUT_VERSION = 1
ALIGN_BYTES = 64

HEADER_DTYPE = np.dtype([
    ("magic", "<u8"), ("version", "<u4"), ("n_peers", "<u4"), ("local_nodeid", "<u4"),
    ("links", "<u4"), ("nodeids_off", "<u4"), ("linkhdr_off", "<u4"), ("state_off", "<u4"),
    ("stats_off", "<u4"), ("total_bytes", "<u8"), ("state_gen", "<u2", (LINKS_MAX,))])
LINKHDR_DTYPE = np.dtype([("heartbeat_us", "<u8"), ("pid", "<u4"), ("reserved", "V52")])
STATE_DTYPE = np.dtype([("configured", "u1"), ("enabled", "u1"), ("connected", "u1"),
                        ("priority", "u1")])
STATS_DTYPE = np.dtype([
    ("latency_us", "<u4"),        # average RTT (knet: mean capped at `precision` samples)
    ("latency_min_us", "<u4"), ("latency_max_us", "<u4"),
    ("mtu_bytes", "<u4"),         # Totem-frame bytes one datagram carries; 0 = unknown
    ("latency_samples", "<u4"), ("down_count", "<u4"), ("up_count", "<u4"),
    ("malformed", "<u4"),         # ping/pong payloads from this peer that did not parse
    ("pings_sent", "<u8"), ("pongs_received", "<u8"),
    ("last_change_us", "<u8"),    # CLOCK_MONOTONIC µs of the last up/down
    ("pongs_late", "<u8")])       # pongs discarded: RTT above ping_timeout (knet does too)
assert HEADER_DTYPE.itemsize == 64 and LINKHDR_DTYPE.itemsize == 64
assert STATE_DTYPE.itemsize == 4 and STATS_DTYPE.itemsize == 64

# state word bits (byte 0 configured, 1 enabled, 2 connected, 3 priority)
CONFIGURED = 0x01
ENABLED = 0x0100
CONNECTED = 0x010000
PRIORITY_SHIFT = 24


def state_word(configured: bool, enabled: bool, connected: bool, priority: int) -> int:
    if not 0 <= priority <= 255:
        raise ValueError(f"link priority {priority} is out of range; allowed 0..255 "
                         "(knet_link_priority)")
    return ((CONFIGURED if configured else 0) | (ENABLED if enabled else 0)
            | (CONNECTED if connected else 0) | (priority << PRIORITY_SHIFT))


class LinkTableError(ShmError):
    """The link table segment could not be created, attached or used as asked."""


def _align(n: int) -> int:
    return (n + ALIGN_BYTES - 1) // ALIGN_BYTES * ALIGN_BYTES


def _layout(n_peers: int) -> tuple[int, int, int, int, int]:
    """(nodeids_off, linkhdr_off, state_off, stats_off, total_bytes) for n_peers."""
    nodeids_off = HEADER_DTYPE.itemsize
    linkhdr_off = _align(nodeids_off + 4 * n_peers)
    state_off = linkhdr_off + LINKS_MAX * LINKHDR_DTYPE.itemsize
    stats_off = _align(state_off + 4 * LINKS_MAX * n_peers)
    total = stats_off + LINKS_MAX * n_peers * STATS_DTYPE.itemsize
    return nodeids_off, linkhdr_off, state_off, stats_off, total


def _check_name(name) -> None:
    if not isinstance(name, str) or not name.startswith("/") or "/" in name[1:] \
            or len(name) < 2:
        raise LinkTableError(f"link table name {name!r} is not a POSIX shm name; use "
                             "'/<name>' without further '/', e.g. "
                             "coroproc.shm.names.segment_name(cluster, nodeid, 'links')")


def _check_peers(peer_nodeids, local_nodeid: int) -> tuple[int, ...]:
    peers = tuple(int(n) for n in peer_nodeids)
    if not 1 <= len(peers) <= PEERS_MAX:
        raise LinkTableError(f"link table: {len(peers)} peer nodeids given; allowed "
                             f"1..{PEERS_MAX} (the nodelist, this node included)")
    bad = [n for n in peers if not 1 <= n <= 0xFFFFFFFF]
    if bad:
        raise LinkTableError(f"link table: nodeids {bad} are invalid; allowed 1..4294967295")
    if len(set(peers)) != len(peers):
        raise LinkTableError(f"link table: nodeids {list(peers)} contain duplicates")
    if local_nodeid and local_nodeid not in peers:
        raise LinkTableError(f"link table: local nodeid {local_nodeid} is not among the "
                             f"peer nodeids {list(peers)}")
    return peers


class LinkTable:
    """A mapped link table. Use LinkTable.create() (supervisor) or .attach() (everyone else)."""

    def __init__(self, name: str, mm: mmap.mmap):
        self._name = name
        self._mm = mm
        self._header = np.frombuffer(mm, HEADER_DTYPE, 1, 0)
        self.peer_nodeids: tuple[int, ...] = ()
        self.local_nodeid = 0
        self._slot_of: dict[int, int] = {}
        self._linkhdr = self._state = self._words = self._stats = self._gens = None
        self.words_mv: memoryview | None = None   # u32 state words, peer-major (select.py)
        self.gens_mv: memoryview | None = None    # state_gen as two u64 (select.py)

    # ---- life cycle -------------------------------------------------------------------

    @classmethod
    def create(cls, name: str, peer_nodeids, local_nodeid: int = 0) -> LinkTable:
        """Create the node's table (a stale segment of that name is unlinked first)."""
        _check_name(name)
        peers = _check_peers(peer_nodeids, local_nodeid)
        nodeids_off, linkhdr_off, state_off, stats_off, total = _layout(len(peers))
        try:
            posix_ipc.unlink_shared_memory(name)   # a crashed run's table: replace it
        except posix_ipc.ExistentialError:
            pass
        try:
            shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o600, size=total)
        except (ValueError, posix_ipc.Error) as e:
            raise LinkTableError(f"link table {name!r}: cannot create a segment of "
                                 f"{total} bytes: {e}") from None
        try:
            mm = mmap.mmap(shm.fd, total)
        finally:
            shm.close_fd()
        table = cls(name, mm)
        np.frombuffer(mm, np.uint8)[:] = 0
        np.frombuffer(mm, "<u4", len(peers), nodeids_off)[:] = peers
        h = table._header[0]
        h["version"], h["n_peers"], h["local_nodeid"] = LAYOUT_VERSION, len(peers), local_nodeid
        h["links"], h["nodeids_off"], h["linkhdr_off"] = LINKS_MAX, nodeids_off, linkhdr_off
        h["state_off"], h["stats_off"], h["total_bytes"] = state_off, stats_off, total
        # magic last: x86 keeps stores in order, so an attacher that sees it sees the rest
        h["magic"] = TABLE_MAGIC
        del h
        table._map()
        return table

    @classmethod
    def attach(cls, name: str) -> LinkTable:
        """Map an existing table after checking magic, layout version and size."""
        _check_name(name)
        try:
            shm = posix_ipc.SharedMemory(name)
        except posix_ipc.ExistentialError:
            raise LinkTableError(f"link table {name!r} does not exist (no /dev/shm{name}); "
                                 "the supervisor creates it before starting link "
                                 "processes") from None
        size = shm.size
        if size < HEADER_DTYPE.itemsize:
            shm.close_fd()
            raise LinkTableError(f"link table {name!r} is {size} bytes, smaller than its "
                                 f"{HEADER_DTYPE.itemsize}-byte header: not a link table")
        try:
            mm = mmap.mmap(shm.fd, size)
        finally:
            shm.close_fd()
        table = cls(name, mm)
        problem = table._validate(size)
        if problem is not None:
            table.close()
            raise LinkTableError(problem)
        table._map()
        return table

    def _validate(self, size: int) -> str | None:
        h, name = self._header[0], self._name
        magic, version = int(h["magic"]), int(h["version"])
        if magic != TABLE_MAGIC:
            return (f"link table {name!r}: bad magic {magic:#018x} (expected "
                    f"{TABLE_MAGIC:#018x}); not a link table, or not yet initialised")
        if version != LAYOUT_VERSION:
            return (f"link table {name!r}: layout version {version}, this build reads "
                    f"version {LAYOUT_VERSION}; stop every process of the node and restart "
                    "them from one build")
        n_peers = int(h["n_peers"])
        if not 1 <= n_peers <= PEERS_MAX or int(h["links"]) != LINKS_MAX:
            return (f"link table {name!r}: header says {n_peers} peers and {int(h['links'])} "
                    f"links; allowed 1..{PEERS_MAX} peers and {LINKS_MAX} links")
        expect = _layout(n_peers)
        found = (int(h["nodeids_off"]), int(h["linkhdr_off"]), int(h["state_off"]),
                 int(h["stats_off"]), int(h["total_bytes"]))
        if found != expect or size != expect[4]:
            return (f"link table {name!r}: segment is {size} bytes with offsets {found}, but "
                    f"{n_peers} peers need offsets {expect}")
        return None

    def _map(self) -> None:
        h = self._header[0]
        n = int(h["n_peers"])
        nodeids_off, linkhdr_off, state_off, stats_off, _ = _layout(n)
        self.peer_nodeids = tuple(int(x) for x in
                                  np.frombuffer(self._mm, "<u4", n, nodeids_off))
        self.local_nodeid = int(h["local_nodeid"])
        self._slot_of = {nodeid: i for i, nodeid in enumerate(self.peer_nodeids)}
        self._linkhdr = np.frombuffer(self._mm, LINKHDR_DTYPE, LINKS_MAX, linkhdr_off)
        self._state = np.frombuffer(self._mm, STATE_DTYPE, n * LINKS_MAX,
                                    state_off).reshape(n, LINKS_MAX)
        self._words = np.frombuffer(self._mm, "<u4", n * LINKS_MAX,
                                    state_off).reshape(n, LINKS_MAX)
        self._stats = np.frombuffer(self._mm, STATS_DTYPE, LINKS_MAX * n,
                                    stats_off).reshape(LINKS_MAX, n)
        base = memoryview(self._mm)
        gen_off = HEADER_DTYPE.fields["state_gen"][1]
        try:
            self.words_mv = base[state_off:state_off + 4 * n * LINKS_MAX].cast("I")
            self.gens_mv = base[gen_off:gen_off + 2 * LINKS_MAX].cast("Q")
        finally:
            base.release()
        self._gens = self._header["state_gen"][0]

    def gens_array(self) -> np.ndarray:
        """The two state-generation words as a uint64 view (the jitted secure loop reads
        them per frame, as select.py reads gens_mv); drop it before close()."""
        gen_off = HEADER_DTYPE.fields["state_gen"][1]
        return np.frombuffer(self._mm, "<u8", 2, gen_off)

    def close(self) -> None:
        """Unmap. Views taken from .state/.stats/.words_mv die with it. Idempotent."""
        if self._mm is None:
            return
        for mv in (self.words_mv, self.gens_mv):
            if mv is not None:
                mv.release()
        self.words_mv = self.gens_mv = None
        self._header = self._linkhdr = self._state = self._words = self._stats = None
        self._gens = None
        try:
            self._mm.close()
        except BufferError:
            raise LinkTableError(f"link table {self._name!r}: cannot unmap, numpy views of "
                                 "it are still alive; drop them before close()") from None
        self._mm = None

    def unlink(self) -> None:
        """Remove the name from /dev/shm (mappings stay valid until closed). Idempotent."""
        try:
            posix_ipc.unlink_shared_memory(self._name)
        except posix_ipc.ExistentialError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- lookups ----------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def n_peers(self) -> int:
        return len(self.peer_nodeids)

    def slot_of(self, nodeid: int) -> int:
        slot = self._slot_of.get(nodeid)
        if slot is None:
            raise LinkTableError(f"link table {self._name!r}: nodeid {nodeid} has no slot; "
                                 f"the table holds {list(self.peer_nodeids)}")
        return slot

    @property
    def state(self) -> np.ndarray:
        """Structured (n_peers, 8) view: configured/enabled/connected/priority. Don't keep."""
        return self._state

    @property
    def stats(self) -> np.ndarray:
        """Structured (8, n_peers) view of the statistics. Don't keep it past close()."""
        return self._stats

    def state_of(self, linknumber: int, slot: int) -> tuple[int, int, int, int]:
        """(configured, enabled, connected, priority), read as one word."""
        w = int(self._words[slot, linknumber])
        return w & 0xFF, (w >> 8) & 0xFF, (w >> 16) & 0xFF, w >> PRIORITY_SHIFT

    # ---- writers (the row's owner; the supervisor only for a dead link) ---------------

    def set_state(self, linknumber: int, slot: int, configured: bool, enabled: bool,
                  connected: bool, priority: int) -> None:
        """One aligned 4-byte store: readers see all four fields of one update."""
        _check_link(linknumber)
        self._words[slot, linknumber] = state_word(configured, enabled, connected, priority)
        self._bump(linknumber)

    def _bump(self, linknumber: int) -> None:
        self._gens[linknumber] = (int(self._gens[linknumber]) + 1) & 0xFFFF

    def update_stats(self, linknumber: int, slot: int, **fields) -> None:
        rec = self._stats[linknumber, slot]
        for key, value in fields.items():
            rec[key] = value

    def add_stat(self, linknumber: int, slot: int, field: str, n: int = 1) -> None:
        self._stats[field][linknumber, slot] += n

    def beat(self, linknumber: int, now_us: int, pid: int | None = None) -> None:
        """The link process's heartbeat (and pid, when it starts)."""
        self._linkhdr["heartbeat_us"][linknumber] = now_us
        if pid is not None:
            self._linkhdr["pid"][linknumber] = pid

    def snapshot_beats(self) -> list[int]:
        """Each link's last heartbeat (µs, CLOCK_MONOTONIC; 0 = never beat)."""
        return [int(v) for v in self._linkhdr["heartbeat_us"]]

    def reset_link(self, linknumber: int) -> None:
        """A link process is gone: not enabled, not connected (supervisor, after waitpid).

        Without this a dead link's last `connected` would keep other links thinking it
        carries the traffic. configured and priority stay: the link is still in the config.
        """
        _check_link(linknumber)
        col = self._words[:, linknumber]
        col &= ~np.uint32(ENABLED | CONNECTED)
        del col
        self._bump(linknumber)
        self._linkhdr["pid"][linknumber] = 0

    # ---- status -----------------------------------------------------------------------

    def snapshot(self) -> dict:
        """Plain data for cfgtool -s/-n, cmap stats.knet.* and `coroproc status`."""
        links = []
        for link in range(LINKS_MAX):
            peers = []
            for slot, nodeid in enumerate(self.peer_nodeids):
                configured, enabled, connected, priority = self.state_of(link, slot)
                rec = self._stats[link, slot]
                peer = {"nodeid": nodeid, "configured": bool(configured),
                        "enabled": bool(enabled), "connected": bool(connected),
                        "priority": priority}
                peer.update({k: int(rec[k]) for k in STATS_DTYPE.names})
                del rec
                peers.append(peer)
            hdr = self._linkhdr[link]
            pid, beat = int(hdr["pid"]), int(hdr["heartbeat_us"])
            del hdr
            if pid or beat or any(p["configured"] for p in peers):
                links.append({"linknumber": link, "pid": pid, "heartbeat_us": beat,
                              "peers": peers})
        return {"name": self._name, "version": LAYOUT_VERSION,
                "local_nodeid": self.local_nodeid, "peer_nodeids": list(self.peer_nodeids),
                "links": links}

    def __repr__(self) -> str:
        return f"LinkTable({self._name!r}, peers={list(self.peer_nodeids)})"


def _check_link(linknumber: int) -> None:
    if not 0 <= linknumber < LINKS_MAX:
        raise LinkTableError(f"linknumber {linknumber} is out of range; allowed "
                             f"0..{LINKS_MAX - 1}")
