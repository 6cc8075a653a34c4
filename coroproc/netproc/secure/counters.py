"""Counters of one link's codec: frames sealed, frames opened, every reason one was refused.

The names are a contract: the network process exports them as cmap stats. Plain slot
attributes because the codec bumps one per frame; as_dict() is for status and stats.
open() checks in the order the rx_* names are listed and counts the first failure.
"""
from __future__ import annotations

RX_REFUSAL_NAMES = (
    "rx_truncated",          # shorter than the header, or than header + tag/MAC
    "rx_bad_magic",          # not 0xC07E: not a link frame
    "rx_bad_version",
    "rx_bad_type",           # type outside 1..5
    "rx_bad_reserved",       # reserved byte not 0
    "rx_wrong_link",         # linknumber is not this link's
    "rx_wrong_dest",         # dest is not the local nodeid
    "rx_unknown_sender",     # sender not in the nodelist
    "rx_clear_refused",      # crypto on and the frame is clear (flags 0)
    "rx_crypto_unexpected",  # crypto off and flags != 0, or flags not the suite's
    "rx_unknown_key",        # no key in the ring has the frame's key_id (clear: key_id != 0)
    "rx_old_session",        # session older than the one accepted from that sender
    "rx_auth_failed",        # tag or MAC wrong under every key with that key_id
    "rx_replayed",           # seq seen already, or older than the 1024-seq window
)
COUNTER_NAMES = RX_REFUSAL_NAMES + ("rx_ok", "tx_sealed")


class CodecCounters:
    __slots__ = COUNTER_NAMES

    def __init__(self):
        for name in COUNTER_NAMES:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTER_NAMES}

    def rx_refused(self) -> int:
        """Frames open() returned None for, all reasons together."""
        return sum(getattr(self, name) for name in RX_REFUSAL_NAMES)
