"""The stats map (cmap_initialize_map(CMAP_MAP_STATS)): Corosync's exec/stats.c keys, built
from the node's counters instead of read live from one process.

coroproc is several processes, so the CMAP engine asks the supervisor for every
process's counters (EngineContext.request_node_counters; the supervisor asks each process
for a report) and turns the answer into a flat {key: (icmap type, value)} snapshot with
Corosync's names and types:

* stats.srp.*             ← role "ring": its "counters" (state_dump), flat names = srp names
* stats.pg.msg_queue_avail / msg_reserved ← role "ring": its "pg" dict, else 0
* stats.ipcs.global.{active,closed}       ← sum of every engine's ipc.global
* stats.ipcs.service<S>.<pid>.<id>.*      ← every engine's ipc.connections
* stats.schedmiss.<i>.{timestamp,delay}   ← role "ring": "schedmiss.<i>.*" counters
* stats.knet.node<N>.link<L>.* ← role "net<L>" of a transport-knet node: its
                            "knet_peers" dict (secure_link.py, one entry per peer); udp/udpu
                            have no knet links, so no such keys (as Corosync with udpu)

stats.clear.{totem,ipc,knet,schedmiss,all} zero *our view*: the engine remembers the
counter values at the clear and subtracts them; gauges (queue lengths, flags, averages,
names) are never subtracted.
"""
from __future__ import annotations

from . import keys as K

# (name, icmap type, is a counter that a clear zeroes) — exec/stats.c cs_srp_stats
SRP_STATS = tuple((n, K.UINT64, True) for n in (
    "orf_token_tx", "orf_token_rx", "memb_merge_detect_tx", "memb_merge_detect_rx",
    "memb_join_tx", "memb_join_rx", "mcast_tx", "mcast_retx", "mcast_rx",
    "memb_commit_token_tx", "memb_commit_token_rx", "token_hold_cancel_tx",
    "token_hold_cancel_rx", "operational_entered", "operational_token_lost",
    "gather_entered", "gather_token_lost", "commit_entered", "commit_token_lost",
    "recovery_entered", "recovery_token_lost", "consensus_timeouts", "rx_msg_dropped")) + (
    ("time_since_token_last_received", K.UINT64, False),
    ("continuous_gather", K.UINT32, False),
    ("continuous_sendmsg_failures", K.UINT32, False),
    ("firewall_enabled_or_nic_failure", K.UINT8, False),
    ("mtt_rx_token", K.UINT32, False),
    ("avg_token_workload", K.UINT32, False),
    ("avg_backlog_calc", K.UINT32, False))

# exec/stats.c cs_knet_stats: per peer and link; the link process exports these names
KNET_LINK_STATS = tuple((n, K.UINT8, False) for n in ("enabled", "connected")) + (
    ("mtu", K.UINT32, False),) + tuple((n, K.UINT64, True) for n in (
        "tx_data_packets", "rx_data_packets", "tx_data_bytes", "rx_data_bytes",
        "tx_ping_packets", "rx_ping_packets", "tx_ping_bytes", "rx_ping_bytes",
        "tx_pong_packets", "rx_pong_packets", "tx_pong_bytes", "rx_pong_bytes",
        "tx_pmtu_packets", "rx_pmtu_packets", "tx_pmtu_bytes", "rx_pmtu_bytes",
        "tx_total_packets", "rx_total_packets", "tx_total_bytes", "rx_total_bytes",
        "tx_total_errors")) + tuple((n, K.UINT32, True) for n in (
            "tx_data_errors", "tx_ping_errors", "tx_pong_errors", "tx_pmtu_errors")) + (
    ("latency_min", K.UINT32, False), ("latency_max", K.UINT32, False),
    ("latency_ave", K.UINT32, False), ("latency_samples", K.UINT32, False),
    ("down_count", K.UINT32, True), ("up_count", K.UINT32, True))

PG_STATS = (("msg_queue_avail", K.UINT32, False), ("msg_reserved", K.UINT32, False))

# exec/stats.c cs_ipcs_conn_stats; the host's ipc connection dict uses the same names
IPCS_CONN_STATS = (
    ("queueing", K.INT32, False), ("queued", K.UINT32, False),
    ("invalid_request", K.UINT64, True), ("overload", K.UINT64, True),
    ("sent", K.UINT32, True), ("procname", K.STRING, False),
    ("requests", K.UINT64, True), ("responses", K.UINT64, True),
    ("dispatched", K.UINT64, True), ("send_retries", K.UINT64, True),
    ("recv_retries", K.UINT64, True), ("flow_control", K.UINT32, False),
    ("flow_control_count", K.UINT64, True))

SCHEDMISS_EVENTS_MAX = 10
CLEAR_PREFIX = "stats.clear."
CLEAR_WORDS = ("knet", "ipc", "totem", "schedmiss", "all")


def _number(value, value_type: int):
    if value_type == K.STRING:
        return str(value if value is not None else "")
    if value_type in (K.FLOAT, K.DOUBLE):
        return float(value or 0.0)
    try:
        return K.wrap_integer(value_type, int(value or 0))
    except (TypeError, ValueError):
        return 0


class StatsView:
    """Raw counters in, Corosync-named snapshot out; remembers what clears subtract."""

    def __init__(self):
        self.raw: dict = {}
        self._baseline: dict[str, float] = {}     # stats key → value at the last clear
        self._schedmiss_cleared_ms = -1            # events at or before it are hidden

    def update(self, node_counters: dict) -> None:
        self.raw = node_counters if isinstance(node_counters, dict) else {}

    def clear(self, key: str) -> bool:
        """A set of stats.clear.<what>; False when <what> is not one Corosync knows."""
        what = key[len(CLEAR_PREFIX):] if key.startswith(CLEAR_PREFIX) else ""
        words = [w for w in CLEAR_WORDS if what.startswith(w)]
        if not words:
            return False
        snapshot = self.snapshot(raw_only=True)
        for word in ("totem", "ipc", "knet") if words == ["all"] else words:
            prefix = {"totem": "stats.srp.", "ipc": "stats.ipcs.",
                      "knet": "stats.knet."}.get(word)
            if prefix is None:
                continue
            for name, (_, value) in snapshot.items():
                if name.startswith(prefix) and isinstance(value, int):
                    self._baseline[name] = value
        if "schedmiss" in words or "all" in words:
            stamps = [v for k, (_, v) in snapshot.items() if k.endswith(".timestamp")
                      and k.startswith("stats.schedmiss.")]
            self._schedmiss_cleared_ms = max(stamps + [self._schedmiss_cleared_ms])
        return True

    def _counter(self, key: str, value_type: int, value, is_counter: bool, raw_only: bool):
        value = _number(value, value_type)
        if is_counter and not raw_only:
            value = max(value - self._baseline.get(key, 0), 0)
        return value_type, value

    def snapshot(self, raw_only: bool = False) -> dict[str, tuple[int, object]]:
        out: dict[str, tuple[int, object]] = {}
        ring = self.raw.get("ring") if isinstance(self.raw.get("ring"), dict) else {}
        # the ring process's report nests its counters (process.py state_dump)
        if isinstance(ring.get("counters"), dict):
            ring = ring["counters"]
        srp = ring.get("srp") if isinstance(ring.get("srp"), dict) else ring
        for name, value_type, is_counter in SRP_STATS:
            key = f"stats.srp.{name}"
            out[key] = self._counter(key, value_type, srp.get(name), is_counter, raw_only)
        pg = ring.get("pg") if isinstance(ring.get("pg"), dict) else {}
        for name, value_type, _ in PG_STATS:
            out[f"stats.pg.{name}"] = (value_type, _number(pg.get(name), value_type))
        self._ipcs(out, raw_only)
        self._schedmiss(out, ring, raw_only)
        self._knet(out, raw_only)
        return out

    def _knet(self, out: dict, raw_only: bool) -> None:
        for role, counters in self.raw.items():
            if not (isinstance(role, str) and role.startswith("net") and role[3:].isdigit()
                    and isinstance(counters, dict)):
                continue
            peers = counters.get("knet_peers")
            if not isinstance(peers, dict):
                continue
            for nodeid, values in peers.items():
                if not isinstance(values, dict):
                    continue
                base = f"stats.knet.node{nodeid}.link{role[3:]}"
                for name, value_type, is_counter in KNET_LINK_STATS:
                    key = f"{base}.{name}"
                    out[key] = self._counter(key, value_type, values.get(name), is_counter,
                                             raw_only)

    def _ipcs(self, out: dict, raw_only: bool) -> None:
        active = closed = 0
        for role, counters in sorted(self.raw.items(), key=lambda kv: str(kv[0])):
            ipc = counters.get("ipc") if isinstance(counters, dict) else None
            if not isinstance(ipc, dict):
                continue
            glob = ipc.get("global") or {}
            active += int(glob.get("active", 0) or 0)
            closed += int(glob.get("closed", 0) or 0)
            service_id = ipc.get("service_id")
            for conn_id, conn in (ipc.get("connections") or {}).items():
                base = f"stats.ipcs.service{service_id}.{conn_id}"
                if not K.key_name_valid(f"{base}.flow_control_count".encode()):
                    continue    # a connection id cmap cannot name: leave it out
                for name, value_type, is_counter in IPCS_CONN_STATS:
                    key = f"{base}.{name}"
                    value = conn.get(name, conn.get("events") if name == "dispatched" else None)
                    out[key] = self._counter(key, value_type, value, is_counter,
                                             raw_only)
        out["stats.ipcs.global.active"] = (K.UINT64, active)
        out["stats.ipcs.global.closed"] = self._counter(
            "stats.ipcs.global.closed", K.UINT64, closed, True, raw_only)

    def _schedmiss(self, out: dict, ring: dict, raw_only: bool) -> None:
        index = 0
        for i in range(SCHEDMISS_EVENTS_MAX):
            stamp = ring.get(f"schedmiss.{i}.timestamp")
            if stamp is None:
                break
            if not raw_only and int(stamp) <= self._schedmiss_cleared_ms:
                continue
            out[f"stats.schedmiss.{index}.timestamp"] = (K.UINT64, _number(stamp, K.UINT64))
            out[f"stats.schedmiss.{index}.delay"] = (
                K.FLOAT, float(ring.get(f"schedmiss.{i}.delay", 0.0)))
            index += 1
