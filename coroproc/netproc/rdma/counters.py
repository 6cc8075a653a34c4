"""Counters of the RDMA carrier: the UDP link's names where they mean the same, plus RDMA's.

Same meaning as the UDP carrier: tx_datagrams / tx_bytes (link frames sent and their
bytes), rx_frames / rx_bytes (link frames returned by recv_into), tx_errors and
tx_error_<NAME> (every OSError send() raised, by errno name).
RDMA only: fragments (UD messages) each way, completion errors by ibv_wc_status name
(tx_wc_<STATUS> / rx_wc_<STATUS>), receive drops by reason, queue recoveries; the
reassembler's reasm_* and the side channel's hello_* / peer_* are merged in by the
carrier.
"""
from __future__ import annotations

import errno as _errno

COUNTER_NAMES = (
    "tx_datagrams", "tx_bytes", "tx_errors",
    "tx_fragments",            # UD messages posted
    "tx_partial_frames",       # post failed after some fragments of a frame went out
    "tx_unresolved",           # send() to a peer whose QPN is not known yet (EHOSTUNREACH)
    "tx_slots_exhausted",      # no free registered send slot (ENOBUFS)
    "tx_completions",          # send completions reaped (signalled + flushed)
    "tx_sq_recovered",         # send queue moved back from SQE to RTS after an error
    "rx_frames", "rx_bytes",
    "rx_fragments",            # UD messages received successfully
    "rx_frag_bad",             # not a fragment header we accept (wire.FragmentError)
    "rx_unknown_source",       # sender QPN/GID is not the one resolved for its nodeid
    "rx_truncated",            # frame longer than the caller's buffer: dropped
    "rx_post_errors",          # reposting a receive buffer failed (buffer lost until restart)
    "cq_events",               # completion channel events acked
)


class Counters:
    __slots__ = COUNTER_NAMES + ("_by_name",)

    def __init__(self):
        for name in COUNTER_NAMES:
            setattr(self, name, 0)
        self._by_name: dict[str, int] = {}

    def count_tx_errno(self, err: int) -> None:
        self.tx_errors += 1
        self.bump(f"tx_error_{_errno.errorcode.get(err, str(err))}")

    def bump(self, key: str) -> None:
        """A counter whose name is only known at run time (errno, wc status); bounded by
        the number of errno / ibv_wc_status values."""
        self._by_name[key] = self._by_name.get(key, 0) + 1

    def as_dict(self) -> dict[str, int]:
        out = {name: getattr(self, name) for name in COUNTER_NAMES}
        out.update(self._by_name)
        return out
