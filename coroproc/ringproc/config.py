"""Totem timers and limits: Corosync 3.1 defaults and the values derived from them.

Mirrors exec/totemconfig.c of Corosync 3.1: the effective token timeout grows by
``token_coefficient`` per node above two when the nodelist has three or more nodes, and
token_retransmit, hold and consensus derive from the effective token unless set. Values
are kept in milliseconds here (as in corosync.conf) and converted to microseconds for the
core, which reads them from an int64 array (numba caches freeze module globals, so
configuration always travels as arguments).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

HZ = 100  # Corosync divides by the kernel tick it was built for; Debian builds use 100.
MINIMUM_TIMEOUT_MS = (1000 // HZ) * 3
MINIMUM_TIMEOUT_HOLD_MS = int(MINIMUM_TIMEOUT_MS * 0.8 - (1000 // HZ))

# Index of each value in the int64 array the core reads (C_*).
C_TOKEN_US = 0
C_TOKEN_RETRANSMIT_US = 1
C_HOLD_US = 2
C_JOIN_US = 3
C_CONSENSUS_US = 4
C_MERGE_US = 5
C_FAIL_RECV_CONST = 6
C_SEQNO_UNCHANGED_CONST = 7
C_MISS_COUNT_CONST = 8
C_MAX_MESSAGES = 9
C_WINDOW_SIZE = 10
C_NETMTU = 11
C_QUEUE_SLOTS = 12
C_FRAME_BYTES = 13
C_SEQNO_START = 14
C_CANCEL_HOLD_ON_RETRANSMIT = 15
C_PACKET_BYTES = 16
C_TOKEN_WARNING_US = 17
C_RETRANSMITS_BEFORE_LOSS = 18
C_WAIT_TRANS_ACK = 19
C_IDLE_TOKEN_PACE_US = 20
C_COUNT = 21


class ConfigError(ValueError):
    """A Totem setting outside what Corosync accepts; the message names the key."""


@dataclass(frozen=True)
class TotemConfig:
    """Totem settings in corosync.conf units; None means "derive as Corosync does"."""

    nodelist: tuple[int, ...] = ()
    token_ms: int = 3000
    token_coefficient_ms: int = 650
    token_warning_pct: int = 75
    token_retransmits_before_loss_const: int = 4
    token_retransmit_ms: int | None = None
    hold_ms: int | None = None
    join_ms: int = 50
    consensus_ms: int | None = None
    merge_ms: int = 200
    fail_recv_const: int = 2500
    seqno_unchanged_const: int = 30
    miss_count_const: int = 5
    max_messages: int = 17
    window_size: int = 50
    netmtu: int = 1500
    send_join_ms: int = 0
    cancel_token_hold_on_retransmit: bool = False
    # coroproc limits (not Corosync keys): slots of each sort queue (Corosync:
    # QUEUE_RTR_ITEMS_SIZE_MAX = 16384) and bytes of the application's new-message queue.
    queue_slots: int = 4096
    new_message_queue_bytes: int = 4 * 1024 * 1024
    max_message_bytes: int = 1024 * 1024
    # coroproc { idle_token_pace_us }: once the ring has been quiet for
    # PACE_AFTER_QUIET_ROTATIONS, the representative keeps the token this long on each
    # visit before it goes round again (0: at once, as Corosync). docs/executive.md
    # "Idle token pacing".
    idle_token_pace_us: int = 0
    # Corosync's waiting_trans_ack: after each regular configuration only messages
    # submitted as sync traffic go out until the node's service sync completes
    # (srp_trans_ack), so nothing queued before the change is ordered during the sync.
    # Off where nothing runs a sync to end the wait (bare cores, benchmarks).
    wait_trans_ack: bool = False
    # Test hook, as Corosync's commented-out SEQNO_START_MSG: first seq of every new ring.
    seqno_start: int = 0
    extra: dict = field(default_factory=dict, compare=False)

    # -- derived values (Corosync's totem_volatile_config_read) --
    @property
    def effective_token_ms(self) -> int:
        if len(self.nodelist) > 2:
            return self.token_ms + (len(self.nodelist) - 2) * self.token_coefficient_ms
        return self.token_ms

    @property
    def effective_token_retransmit_ms(self) -> int:
        if self.token_retransmit_ms is not None:
            return self.token_retransmit_ms
        return int(self.effective_token_ms / (self.token_retransmits_before_loss_const + 0.2))

    @property
    def effective_hold_ms(self) -> int:
        if self.hold_ms is not None:
            return self.hold_ms
        return int(self.effective_token_retransmit_ms * 0.8 - (1000 / HZ))

    @property
    def effective_consensus_ms(self) -> int:
        if self.consensus_ms is not None:
            return self.consensus_ms
        return int(1.2 * self.effective_token_ms)

    @property
    def packet_bytes(self) -> int:
        """Largest totempg packet the core builds: netmtu less two 45-byte mcast headers.

        Corosync's totemsrp_net_mtu_adjust reserves room for the second header an
        encapsulated re-send carries during recovery, so even that frame fits the MTU:
        1410 bytes of totempg packet for netmtu 1500.
        """
        return self.netmtu - 2 * 45

    @property
    def frame_bytes(self) -> int:
        # One frame slot holds a whole received frame (an encapsulated one fits netmtu);
        # the margin admits peers configured with a slightly larger netmtu.
        return self.netmtu + 64

    def validate(self) -> None:
        checks = (
            ("token", self.effective_token_ms, MINIMUM_TIMEOUT_MS),
            ("token_retransmit", self.effective_token_retransmit_ms, MINIMUM_TIMEOUT_MS),
            ("hold", self.effective_hold_ms, MINIMUM_TIMEOUT_HOLD_MS),
            ("join", self.join_ms, MINIMUM_TIMEOUT_MS),
            ("consensus", self.effective_consensus_ms, MINIMUM_TIMEOUT_MS),
            ("merge", self.merge_ms, MINIMUM_TIMEOUT_MS),
        )
        for key, value, minimum in checks:
            if value < minimum:
                raise ConfigError(f"totem.{key} is {value} ms; the minimum is {minimum} ms")
        # Corosync 3.1.7 derives consensus as 1.2 × token but accepts any explicit value
        # down to join; so does coroproc.
        if self.effective_consensus_ms < self.join_ms:
            raise ConfigError(
                f"totem.consensus: The consensus timeout parameter ({self.effective_consensus_ms} "
                f"ms) may not be less than join timeout ({self.join_ms} ms).")
        if self.max_messages < 1 or self.window_size < self.max_messages:
            raise ConfigError("totem.window_size must be >= totem.max_messages >= 1")
        if self.queue_slots < 4 * self.window_size or self.queue_slots & (self.queue_slots - 1):
            raise ConfigError("queue_slots must be a power of two and at least 4 × window_size")
        if not 576 <= self.netmtu <= 65536:
            raise ConfigError(f"totem.netmtu is {self.netmtu}; allowed 576..65536")
        if len(set(self.nodelist)) != len(self.nodelist) or any(
                not 0 < n < 2**32 for n in self.nodelist):
            raise ConfigError("nodelist nodeids must be unique and in 1..2^32-1")

    def to_array(self) -> np.ndarray:
        self.validate()
        c = np.zeros(C_COUNT, dtype=np.int64)
        c[C_TOKEN_US] = self.effective_token_ms * 1000
        c[C_TOKEN_RETRANSMIT_US] = self.effective_token_retransmit_ms * 1000
        c[C_HOLD_US] = self.effective_hold_ms * 1000
        c[C_JOIN_US] = self.join_ms * 1000
        c[C_CONSENSUS_US] = self.effective_consensus_ms * 1000
        c[C_MERGE_US] = self.merge_ms * 1000
        c[C_FAIL_RECV_CONST] = self.fail_recv_const
        c[C_SEQNO_UNCHANGED_CONST] = self.seqno_unchanged_const
        c[C_MISS_COUNT_CONST] = self.miss_count_const
        c[C_MAX_MESSAGES] = self.max_messages
        c[C_WINDOW_SIZE] = self.window_size
        c[C_NETMTU] = self.netmtu
        c[C_QUEUE_SLOTS] = self.queue_slots
        c[C_FRAME_BYTES] = self.frame_bytes
        c[C_SEQNO_START] = self.seqno_start
        c[C_CANCEL_HOLD_ON_RETRANSMIT] = int(self.cancel_token_hold_on_retransmit)
        c[C_PACKET_BYTES] = self.packet_bytes
        c[C_TOKEN_WARNING_US] = self.effective_token_ms * 10 * self.token_warning_pct
        c[C_RETRANSMITS_BEFORE_LOSS] = self.token_retransmits_before_loss_const
        c[C_WAIT_TRANS_ACK] = int(self.wait_trans_ack)
        c[C_IDLE_TOKEN_PACE_US] = self.idle_token_pace_us
        return c
