"""Byte layout of a ring segment: header word indices, record framing, size rules.

This file owns the numbers both sides of a ring must agree on. A segment is
`HEADER_BYTES` of int64 header words followed by a data area of `capacity_bytes`
(a power of two). Words written by the producer, by the consumer, and the
sleeping flag written by both live on separate 64-byte cache lines so the two
processes do not bounce one line between cores on every record.

Changing anything here is a layout change: bump LAYOUT_VERSION so that a process
built from other sources refuses to attach instead of misreading the ring.
"""

RING_MAGIC = 0x314D48534F524F43  # b"COROSHM1" read as a little-endian int64
LAYOUT_VERSION = 1

HEADER_WORDS = 64
HEADER_BYTES = HEADER_WORDS * 8
CACHE_LINE_WORDS = 8

# line 0: identity, written once at create (magic last, with release ordering)
W_MAGIC = 0
W_VERSION = 1
W_CAPACITY_BYTES = 2
W_HEADER_BYTES = 3
W_PRODUCER_PID = 4
W_CONSUMER_PID = 5
# line 1: producer's publication cursor
W_HEAD = 8
# line 2: consumer's release cursor
W_TAIL = 16
# line 3: doorbell flag, written by both sides with seq_cst exchanges
W_SLEEPING = 24
# line 4: producer-only counters
W_RECORDS_PUSHED = 32
W_BYTES_PUSHED = 33
W_PUSH_FULL = 34
W_WAKEUPS_REQUESTED = 35
# line 5: consumer-only counters
W_RECORDS_POPPED = 40
W_BYTES_POPPED = 41
W_SLEEPS = 42
# words 48..63 are reserved (zero) for later layout versions

COUNTER_WORDS = {
    "records_pushed": W_RECORDS_PUSHED,
    "bytes_pushed": W_BYTES_PUSHED,
    "push_full": W_PUSH_FULL,
    "wakeups_requested": W_WAKEUPS_REQUESTED,
    "records_popped": W_RECORDS_POPPED,
    "bytes_popped": W_BYTES_POPPED,
    "sleeps": W_SLEEPS,
}

# Record framing: [u32 payload_len][u16 rtype][u16 flags] little-endian, then the
# payload padded to 8 bytes. rtype 0 is a PAD record that fills to the end of the
# data area so that no record ever wraps.
RECORD_HEADER_BYTES = 8
RECORD_ALIGN_BYTES = 8
RTYPE_PAD = 0
RTYPE_MAX = 0xFFFF
FLAGS_MAX = 0xFFFF

MIN_CAPACITY_BYTES = 4096
# A bound so a typo cannot ask /dev/shm for terabytes; 1 GiB is far above any ring
# the executive needs (Totem frames are <= 64 KiB).
MAX_CAPACITY_BYTES = 1 << 30


def record_bytes(payload_len: int) -> int:
    """Bytes one record of `payload_len` occupies in the data area (header + padded payload)."""
    return RECORD_HEADER_BYTES + ((payload_len + RECORD_ALIGN_BYTES - 1) & ~(RECORD_ALIGN_BYTES - 1))


def max_payload_bytes(capacity_bytes: int) -> int:
    """Largest payload a ring accepts: the whole record must fit in half the data area.

    Half, because a record that does not fit before the end of the data area is
    placed at offset 0 after a PAD; with records <= capacity/2 an empty ring can
    always take any allowed record, so a refused push means "full", never "never".
    """
    return capacity_bytes // 2 - RECORD_HEADER_BYTES


def segment_bytes(capacity_bytes: int) -> int:
    return HEADER_BYTES + capacity_bytes


def check_capacity(capacity_bytes: int, segment: str) -> None:
    """Raise ValueError (caller wraps it) unless capacity is an allowed power of two."""
    c = capacity_bytes
    if not isinstance(c, int) or c < MIN_CAPACITY_BYTES or c > MAX_CAPACITY_BYTES or c & (c - 1):
        raise ValueError(
            f"shm ring {segment!r}: capacity_bytes={capacity_bytes!r} is not allowed; "
            f"use a power of two from {MIN_CAPACITY_BYTES} to {MAX_CAPACITY_BYTES}"
        )
