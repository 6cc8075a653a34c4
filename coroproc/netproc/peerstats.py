"""Per-peer traffic counters of one secure link: Corosync's stats.knet.node<N>.link<L>.*.

One small list per peer, indexed by constants (the hot path does `row[TX_DATA_P] += 1`,
no dict lookups by name); `as_dict` names them as exec/stats.c does. Link state
(enabled, connected, mtu, latency, up/down counts) comes from the link's health, not from
here — secure_link.py merges the two.
"""
from __future__ import annotations

from coroproc.netproc.secure.frame import (FTYPE_DATA as FT_DATA, FTYPE_PING as FT_PING,
                                           FTYPE_PMTU_PROBE as FT_PMTU_PROBE,
                                           FTYPE_PMTU_REPLY as FT_PMTU_REPLY,
                                           FTYPE_PONG as FT_PONG)

NAMES = ("tx_data_packets", "tx_data_bytes", "rx_data_packets", "rx_data_bytes",
         "tx_ping_packets", "tx_ping_bytes", "rx_ping_packets", "rx_ping_bytes",
         "tx_pong_packets", "tx_pong_bytes", "rx_pong_packets", "rx_pong_bytes",
         "tx_pmtu_packets", "tx_pmtu_bytes", "rx_pmtu_packets", "rx_pmtu_bytes",
         "tx_data_errors", "tx_ping_errors", "tx_pong_errors", "tx_pmtu_errors")
_INDEX = {name: i for i, name in enumerate(NAMES)}
_KIND = {FT_DATA: "data", FT_PING: "ping", FT_PONG: "pong", FT_PMTU_PROBE: "pmtu",
         FT_PMTU_REPLY: "pmtu"}
# frame type → (packets index, bytes index, errors index) per direction
TX = {ft: (_INDEX[f"tx_{k}_packets"], _INDEX[f"tx_{k}_bytes"], _INDEX[f"tx_{k}_errors"])
      for ft, k in _KIND.items()}
RX = {ft: (_INDEX[f"rx_{k}_packets"], _INDEX[f"rx_{k}_bytes"]) for ft, k in _KIND.items()}


# the DATA columns the jitted data path counts in its own array (jit/secure_loop.py
# P_* order), added in by as_dict
FAST_NAMES = ("tx_data_packets", "tx_data_bytes", "rx_data_packets", "rx_data_bytes",
              "tx_data_errors")


class PeerStats:
    def __init__(self, peers):
        self.rows = {int(n): [0] * len(NAMES) for n in peers}
        self._fast = None              # (int64[rows, len(FAST_NAMES)], {node: row})

    def add_fast(self, counts, row_of: dict) -> None:
        """Report the jitted path's per-peer DATA counts too (counts[row_of[node]])."""
        self._fast = (counts, row_of)

    def sent(self, ftype: int, node: int, nbytes: int) -> None:
        row = self.rows.get(node)
        if row is not None:
            p, b, _ = TX[ftype]
            row[p] += 1
            row[b] += nbytes

    def send_failed(self, ftype: int, node: int) -> None:
        row = self.rows.get(node)
        if row is not None:
            row[TX[ftype][2]] += 1

    def received(self, ftype: int, node: int, nbytes: int) -> None:
        row = self.rows.get(node)
        if row is not None:
            p, b = RX[ftype]
            row[p] += 1
            row[b] += nbytes

    def as_dict(self, node: int) -> dict:
        row = self.rows[node]
        d = dict(zip(NAMES, row))
        if self._fast is not None and node in self._fast[1]:
            counts = self._fast[0][self._fast[1][node]]
            for name, v in zip(FAST_NAMES, counts):
                d[name] += int(v)
        for way in ("tx", "rx"):
            d[f"{way}_total_packets"] = sum(d[f"{way}_{k}_packets"]
                                            for k in ("data", "ping", "pong", "pmtu"))
            d[f"{way}_total_bytes"] = sum(d[f"{way}_{k}_bytes"]
                                          for k in ("data", "ping", "pong", "pmtu"))
        d["tx_total_errors"] = sum(d[f"tx_{k}_errors"] for k in ("data", "ping", "pong", "pmtu"))
        return d
