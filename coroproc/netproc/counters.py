"""Counters of one link process: what was moved, and every reason something was dropped.

COUNTER_NAMES is the list both kinds of link report. The secure links count in a Counters
object: plain attributes (an attribute increment is the cheapest counter Python has) on
the hot path; `as_dict()` is what their `counters()` and the supervisor's stats show. The
plain links' jitted loop counts in an int64 array in this order (jit/link_loop.py C_*).
Socket errors are counted per errno name (tx_error_ENOBUFS, rx_error_ECONNREFUSED, ...)
in a dict bounded by the number of errno values.
"""
from __future__ import annotations

import errno as _errno

COUNTER_NAMES = (
    # receive path
    "rx_frames", "rx_bytes",          # pushed into the rx ring
    "rx_unlisted",                    # source IP not in the nodelist (block_unlisted_ips)
    "rx_own_mcast",                   # our own multicast looped back (udp)
    "rx_runt",                        # shorter than the Totem header
    "rx_oversize",                    # longer than netmtu + 64
    "rx_foreign",                     # no Totem magic
    "rx_ring_full",                   # rx ring full: dropped, Totem will retransmit
    "rx_gro_trains",                  # receives that carried several frames (UDP GRO)
    # transmit path
    "tx_frames",                      # records taken from the tx ring
    "tx_datagrams", "tx_bytes",       # handed to the kernel (a udpu mcast is several)
    "tx_unknown_dest",                # dest nodeid not in the nodelist
    "tx_bad_record",                  # rtype != FRAME or shorter than the dest prefix
    "tx_errors",                      # sum of tx_error_<ERRNO>
    "tx_gso_sends",                   # sends that carried several frames (UDP GSO)
    "tx_gso_refused",                 # GSO sends the kernel refused: GSO is then off
    # loop
    "sleeps",                         # times the loop slept on the doorbell
)


class Counters:
    __slots__ = COUNTER_NAMES + ("_errnos",)

    def __init__(self):
        for name in COUNTER_NAMES:
            setattr(self, name, 0)
        self._errnos: dict[str, int] = {}

    def count_errno(self, direction: str, err: int | None) -> None:
        """Count one failed send/recv under '<direction>_error_<ERRNO>' (never fatal)."""
        key = f"{direction}_error_{_errno.errorcode.get(err, str(err))}"
        self._errnos[key] = self._errnos.get(key, 0) + 1
        if direction == "tx":
            self.tx_errors += 1

    def as_dict(self) -> dict:
        d = {name: getattr(self, name) for name in COUNTER_NAMES}
        d.update(self._errnos)
        return d
