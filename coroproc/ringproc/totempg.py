"""totempg: Corosync 3.1.7's packing / fragmentation / reassembly layer, in numba.

Corosync's ``exec/totempg.c`` sits between the services and Totem SRP.  On the way down
it packs many small application messages into one Totem mcast payload ("packet") and
splits large ones over several packets; on the way up it reassembles each sender's
messages and throws away the pieces it cannot complete.  This module reproduces that
layer byte for byte (verified against the real ``totempg.c`` of v3.1.7, compiled with
Totem SRP stubbed out -- see tests/unit/test_totempg.py), as ``@njit(cache=True)``
functions over numpy arrays so it can run in the ring process's hot path without a
Python object per message.  Every function returns an int status/count (or a tuple of
ints); none raises on bad input.  Arrays are caller-owned; configuration is passed as
arguments (``cache=True`` would freeze module globals).

Wire format (all little-endian; Corosync does not convert on send, receivers swap when
the Totem header says the sender has the other byte order)::

    struct totempg_mcast {                     8 bytes, no padding
        short version;           @0  always 0 (never checked on receive)
        short type;              @2  always 0 (never checked on receive)
        unsigned char fragmented;   @4  0, or a fragment number 1..255: the LAST message
                                        in this packet continues in the next packet
        unsigned char continuation; @5  0, or the fragment number of the previous packet:
                                        the FIRST message here is the rest of that one
        unsigned short msg_count;   @6  number of msg_len entries, the partial ones counted
    }
    unsigned short msg_len[msg_count];         @8
    data: the message bytes, back to back      @8 + 2*msg_count

Fragment numbers come from one sender-wide counter (Corosync's ``next_fragment``): it
restarts at 1 whenever a piece fits whole into the packet and otherwise counts up,
wrapping 255 -> 1 (0 is skipped: 0 means "not fragmented").  A receiver accepts a packet
only if its ``continuation`` equals the previous packet's ``fragmented`` ("last_frag_num").

Every application message starts with the totempg group header Corosync's
``totempg_groups_mcast_joined`` prepends::

    unsigned short group_len[0]      = number of groups g
    unsigned short group_len[1..g]   = length of each group name
    char names[]                     = the names, back to back, no terminator
    payload

Corosync's engines use one group, "a"; the sync engine uses "sync".  So a service
message to "a" is ``01 00 01 00 61`` + payload.

Packet size.  Corosync: ``TOTEMPG_PACKET_SIZE = net_mtu - sizeof(struct totempg_mcast)``
where ``net_mtu`` has already been reduced by ``totemsrp_net_mtu_adjust`` by
``2 * sizeof(struct mcast)`` = 2 * 45 (one Totem mcast header plus room for the second
header an encapsulated re-send gets during RECOVERY).  The transports'
``*_net_mtu_adjust`` (UDP/IP header) is never called in 3.1.7.  So the largest whole
totempg packet (8-byte header + lengths + data) is ``netmtu - 90``: **1410 bytes for
netmtu 1500** (frame = 45 + 1410 = 1455 bytes; encapsulated 1500).  Pass that as
``max_packet_bytes`` (see ``max_packet_bytes_for_netmtu``).  knet: net_mtu defaults to
65536 and is never lowered by PMTUd in totemsrp, so 65446.

Array layouts
-------------
New-message queue (application -> core), single-threaded (owned by the ring process; it
is not a cross-process ring: there are no atomics or fences)::

    q_data : uint8[cap_bytes]      circular; entries are 8-byte aligned:
             @0  u32 message length (bytes, group header included); 0xFFFFFFFF = wrap pad
             @4  u32 level (0 = agreed, 1 = safe)
             @8  u32 split: offset inside the message of one extra iovec boundary the
                 sender used (Corosync's CPG passes exec header and data as two iovecs;
                 fragmentation decisions depend on iovec boundaries), 0 = none
             @12 u32 tag 0x31514750 ("PGQ1"), to detect a corrupt queue
             @16 the message bytes, padded to a multiple of 8
             When an entry does not fit before the end, the rest of the buffer is pad
             (marked when at least 16 bytes remain) and the entry starts at 0.
    q_meta : int64[Q_META_LEN]     see the Q_* indices below

Send-side fragmentation state (Corosync's statics; zeros = initial state)::

    frag_state : int64[FRAG_STATE_LEN]   F_MSG_OFF, F_NEXT_FRAGMENT, F_CONTINUATION

Reassembly, one slot per sender (per (sender, transitional-or-not) to mirror Corosync's
two assembly lists -- see pg_unpack).  Zeros = fresh slot::

    asm_data : uint8[n_slots, asm_cap_bytes]   the partial message of each slot
    asm_meta : int64[n_slots, ASM_META_LEN]    see the A_* indices below

Output of pg_unpack::

    out_data : uint8[:]                        complete messages, back to back
    out_meta : int64[rows, >= OUT_META_LEN]    OUT_OFF, OUT_LEN, OUT_SLOT, OUT_FLAGS
"""
from __future__ import annotations

import numpy as np

from coroproc.njit import njit

# ---------------------------------------------------------------------------------------
# sizes and limits

TOTEMPG_HDR_BYTES = 8            # sizeof(struct totempg_mcast)
TOTEM_MCAST_HDR_BYTES = 45       # sizeof(struct mcast), packed: 13 + 4 + 4 + 4 + 12 + 4 + 4
MAX_GROUPS_PER_MSG = 32          # Corosync's send-side limit (totempg.c)
MESSAGE_SIZE_MAX = 1024 * 1024   # Corosync's MESSAGE_SIZE_MAX
KNET_MAX_PACKET_SIZE = 65536
# Corosync's assembly buffer is MESSAGE_SIZE_MAX + KNET_MAX_PACKET_SIZE; a slot this big
# accepts every stream Corosync accepts.
ASM_CAP_BYTES_COROSYNC = MESSAGE_SIZE_MAX + KNET_MAX_PACKET_SIZE

PG_MIN_PACKET_BYTES = 16         # below this a packet carries (almost) nothing
PG_MAX_PACKET_BYTES = 65536      # msg_len is 16 bits; knet's effective size is 65446

LEVEL_AGREED = 0
LEVEL_SAFE = 1

# return codes (negative; 0 and up are counts)
PG_E_ARGS = -1        # bad argument (slot, sizes, lengths, level ...)
PG_E_SHORT = -2       # packet shorter than struct totempg_mcast
PG_E_COUNT = -3       # msg_count does not fit in the packet
PG_E_LENGTH = -4      # 8 + 2*msg_count + sum(msg_len) != packet length
PG_E_OVERSIZE = -5    # a (partial) message would exceed asm_cap_bytes
PG_E_NO_ROOM = -6     # out_data / out_meta too small: drain and call again (nothing consumed)
PG_E_QUEUE = -7       # q_meta / q_data / frag_state inconsistent (corrupt queue)
PG_E_TOO_BIG = -8     # message can never fit in the queue
PG_E_GROUPS = -9      # malformed group header

# ---- q_meta indices
Q_CAP = 0             # capacity in bytes (multiple of 8)
Q_HEAD = 1            # byte offset of the oldest entry (or of the pad before it)
Q_TAIL = 2            # byte offset where the next entry goes
Q_USED = 3            # bytes in use, headers and pad included
Q_COUNT = 4           # entries queued (a partly packed one included)
Q_PENDING_BYTES = 5   # message bytes not yet put into a packet
Q_SUBMITTED = 6       # messages accepted
Q_FULL = 7            # submits refused for lack of room (back-pressure)
Q_BAD = 8             # submits refused as invalid
Q_BYTES_SUBMITTED = 9
Q_PACKETS = 10        # packets built
Q_MSGS_PACKED = 11    # messages completely packed
Q_FRAG_PACKETS = 12   # packets whose last message continues in the next one
Q_HIGH_WATER = 13     # largest Q_USED seen
Q_MAGIC = 14          # Q_MAGIC_VALUE once pg_queue_init ran
Q_META_LEN = 16
Q_MAGIC_VALUE = 0x7067715F31  # "pgq_1"

Q_ENTRY_HDR_BYTES = 16
Q_PAD = 0xFFFFFFFF
Q_ENTRY_TAG = 0x31514750

# ---- frag_state indices (zeros are Corosync's initial state)
F_MSG_OFF = 0         # bytes of the head message already packed
F_NEXT_FRAGMENT = 1   # Corosync's next_fragment (0 behaves as its initial 1)
F_CONTINUATION = 2    # Corosync's fragment_continuation: continuation of the next packet
FRAG_STATE_LEN = 4

# ---- asm_meta indices (zeros = fresh slot, as Corosync's assembly_ref hands out)
A_INDEX = 0           # bytes of the partial message held (Corosync's assembly->index)
A_LAST_FRAG = 1       # last_frag_num: `fragmented` of the previous accepted packet
A_THROW_AWAY = 2      # 1 = THROW_AWAY_ACTIVE
A_JUNK = 3            # 1 = the held bytes are what Corosync would hold as garbage
A_PACKETS = 4         # packets processed (not rejected)
A_REJECTED = 5        # packets rejected (malformed / oversize)
A_DELIVERED = 6       # messages delivered
A_DISCARDED = 7       # messages thrown away (throw-away mode, continuation mismatch)
A_MISMATCH = 8        # continuation mismatches seen (entries into throw-away)
A_OVERSIZE = 9        # packets rejected with PG_E_OVERSIZE
A_RESETS = 10         # pg_assembly_reset calls
A_LAST_ERROR = 11     # last negative code returned for this slot
A_JUNK_DROPS = 12     # messages Corosync would deliver corrupted; dropped here
A_NO_ROOM = 13        # PG_E_NO_ROOM returns
ASM_META_LEN = 16
A_STATE_FIELDS = 4    # A_INDEX .. A_JUNK: what a reset clears

# ---- out_meta columns
OUT_OFF = 0           # offset of the message in out_data
OUT_LEN = 1           # its length (group header included)
OUT_SLOT = 2          # the slot (sender) it came from
OUT_FLAGS = 3         # OUT_F_* bits
OUT_META_LEN = 4
OUT_F_REASSEMBLED = 1  # the message spanned more than one packet


def max_packet_bytes_for_netmtu(netmtu: int) -> int:
    """Largest whole totempg packet Corosync 3.1.7 builds for totem.netmtu (1500 -> 1410)."""
    return int(netmtu) - 2 * TOTEM_MCAST_HDR_BYTES


# ---------------------------------------------------------------------------------------
# small helpers


@njit(cache=True)
def _copy(dst, doff, src, soff, n):
    # Explicit index loop over slice views: 20-45x faster than slice assignment in numba.
    d = dst[doff:doff + n]
    s = src[soff:soff + n]
    for i in range(n):
        d[i] = s[i]


@njit(cache=True)
def _u16(b, i, swap):
    lo = np.int64(b[i])
    hi = np.int64(b[i + 1])
    if swap != 0:
        return (lo << 8) | hi
    return lo | (hi << 8)


@njit(cache=True)
def _w16(b, i, v):
    b[i] = v & 0xFF
    b[i + 1] = (v >> 8) & 0xFF


@njit(cache=True)
def _r32(b, i):
    return (np.int64(b[i]) | (np.int64(b[i + 1]) << 8) | (np.int64(b[i + 2]) << 16)
            | (np.int64(b[i + 3]) << 24))


@njit(cache=True)
def _w32(b, i, v):
    b[i] = v & 0xFF
    b[i + 1] = (v >> 8) & 0xFF
    b[i + 2] = (v >> 16) & 0xFF
    b[i + 3] = (v >> 24) & 0xFF


@njit(cache=True)
def _align8(n):
    return (n + 7) & ~np.int64(7)


# ---------------------------------------------------------------------------------------
# group header


@njit(cache=True)
def pg_parse_groups(msg, off, n, swap_bytes=0):
    """Validate the group header of the message msg[off:off+n].

    Returns (status, payload_off, n_groups, name_off, name_len): status 0 = ok or a
    negative code; payload_off and name_off are absolute indices into msg; the name span
    is the first group's (0, 0 when there are no groups).  Corosync itself does not
    validate (it trusts the sender); we never read outside msg[off:off+n].
    """
    if off < 0 or n < 0 or off + n > msg.shape[0]:
        return PG_E_ARGS, 0, 0, 0, 0
    if n < 2:
        return PG_E_GROUPS, 0, 0, 0, 0
    g = _u16(msg, off, swap_bytes)
    hdr = 2 * (g + 1)
    if hdr > n:
        return PG_E_GROUPS, 0, 0, 0, 0
    total = hdr
    for i in range(g):
        total += _u16(msg, off + 2 + 2 * i, swap_bytes)
    if total > n:
        return PG_E_GROUPS, 0, 0, 0, 0
    if g == 0:
        return 0, off + hdr, 0, 0, 0
    return 0, off + total, g, off + hdr, _u16(msg, off + 2, swap_bytes)


@njit(cache=True)
def group_payload_offset(msg):
    """Offset of the payload in a whole message (group header stripped), or < 0."""
    st, payload_off, g, name_off, name_len = pg_parse_groups(msg, 0, msg.shape[0], 0)
    if st < 0:
        return st
    return payload_off


@njit(cache=True)
def pg_group_matches(msg, off, n, name, name_len, swap_bytes=0):
    """1 if any group of the message is `name` (Corosync's group_matches), 0 if not, < 0 bad."""
    st, payload_off, g, name_off, first_len = pg_parse_groups(msg, off, n, swap_bytes)
    if st < 0:
        return st
    if name_len < 0 or name_len > name.shape[0]:
        return PG_E_ARGS
    p = off + 2 * (g + 1)
    for i in range(g):
        ln = _u16(msg, off + 2 + 2 * i, swap_bytes)
        if ln == name_len:
            same = True
            for j in range(ln):
                if msg[p + j] != name[j]:
                    same = False
                    break
            if same:
                return 1
        p += ln
    return 0


@njit(cache=True)
def pg_build_group_msg(out, groups_concat, group_lens, n_groups, payload, n):
    """Write group header + payload[:n] to out; returns the length or a negative code.

    groups_concat holds the names back to back, group_lens[i] the length of each.
    """
    if n_groups < 0 or n_groups > MAX_GROUPS_PER_MSG or n_groups > group_lens.shape[0]:
        return PG_E_ARGS
    if n < 0 or n > payload.shape[0]:
        return PG_E_ARGS
    names = 0
    for i in range(n_groups):
        ln = np.int64(group_lens[i])
        if ln < 0 or ln > 0xFFFF:
            return PG_E_ARGS
        names += ln
    if names > groups_concat.shape[0]:
        return PG_E_ARGS
    hdr = 2 * (n_groups + 1)
    total = hdr + names + n
    if total > out.shape[0]:
        return PG_E_ARGS
    _w16(out, 0, n_groups)
    for i in range(n_groups):
        _w16(out, 2 + 2 * i, np.int64(group_lens[i]))
    _copy(out, hdr, groups_concat, 0, names)
    _copy(out, hdr + names, payload, 0, n)
    return total


def build_group_message(group: bytes, payload: bytes) -> np.ndarray:
    """Python helper: one-group message (``01 00 <len> <name> <payload>``) as a uint8 array."""
    g = np.frombuffer(bytes(group), np.uint8)
    p = np.frombuffer(bytes(payload), np.uint8)
    out = np.empty(4 + g.shape[0] + p.shape[0], np.uint8)
    n = pg_build_group_msg(out, g, np.array([g.shape[0]], np.int64), 1, p, p.shape[0])
    if n < 0:
        raise ValueError(f"group name of {len(group)} bytes is not allowed")
    return out


# ---------------------------------------------------------------------------------------
# new-message queue


@njit(cache=True)
def pg_queue_init(q_meta, cap_bytes):
    """Empty the queue and zero its counters. 0 ok, PG_E_ARGS if cap_bytes is unusable."""
    if q_meta.shape[0] < Q_META_LEN:
        return PG_E_ARGS
    if cap_bytes < 2 * Q_ENTRY_HDR_BYTES or cap_bytes % 8 != 0:
        return PG_E_ARGS
    for i in range(Q_META_LEN):
        q_meta[i] = 0
    q_meta[Q_CAP] = cap_bytes
    q_meta[Q_MAGIC] = Q_MAGIC_VALUE
    return 0


@njit(cache=True)
def pg_frag_init(frag_state):
    """Reset the send-side fragmentation state (only with an emptied queue)."""
    if frag_state.shape[0] < FRAG_STATE_LEN:
        return PG_E_ARGS
    for i in range(FRAG_STATE_LEN):
        frag_state[i] = 0
    return 0


@njit(cache=True)
def pg_restart_partial(q_meta, frag_state):
    """Send the partly packed head message again from its start (a new ring began).

    Receivers discard partial assemblies when a regular configuration is installed, so
    the fragments already sent in the old ring are gone; the whole message goes out in
    the new ring instead and is delivered there. Returns the bytes re-queued.
    """
    done = frag_state[F_MSG_OFF]
    if done > 0:
        q_meta[Q_PENDING_BYTES] += done
    frag_state[F_MSG_OFF] = 0
    frag_state[F_CONTINUATION] = 0
    return done


@njit(cache=True)
def _queue_check(q_data, q_meta):
    if q_meta.shape[0] < Q_META_LEN or q_meta[Q_MAGIC] != Q_MAGIC_VALUE:
        return PG_E_QUEUE
    cap = q_meta[Q_CAP]
    if cap < 2 * Q_ENTRY_HDR_BYTES or cap % 8 != 0 or cap > q_data.shape[0]:
        return PG_E_QUEUE
    head = q_meta[Q_HEAD]
    tail = q_meta[Q_TAIL]
    used = q_meta[Q_USED]
    count = q_meta[Q_COUNT]
    if head < 0 or head >= cap or tail < 0 or tail >= cap or head % 8 != 0 or tail % 8 != 0:
        return PG_E_QUEUE
    if used < 0 or used > cap or count < 0 or (count == 0) != (used == 0):
        return PG_E_QUEUE
    return 0


@njit(cache=True)
def _queue_reserve(q_data, q_meta, n, level, split):
    """Claim room for an n-byte message and write its entry header; returns the offset
    of the message bytes, -100 when the queue is full, or a negative PG_E_* code."""
    if _queue_check(q_data, q_meta) != 0:
        return PG_E_QUEUE
    if n < 1 or n > 0xFFFFFFFE or (level != 0 and level != 1) or split < 0 or split >= n:
        q_meta[Q_BAD] += 1
        return PG_E_ARGS
    cap = q_meta[Q_CAP]
    need = Q_ENTRY_HDR_BYTES + _align8(n)
    if need > cap:
        q_meta[Q_BAD] += 1
        return PG_E_TOO_BIG
    used = q_meta[Q_USED]
    if used == 0:
        # Empty: start over at 0 so the largest message fits (single-threaded queue).
        q_meta[Q_HEAD] = 0
        q_meta[Q_TAIL] = 0
    head = q_meta[Q_HEAD]
    tail = q_meta[Q_TAIL]
    at = -1
    pad = 0
    if used > 0 and tail == head:
        at = -1                                   # completely full
    elif tail >= head:
        if cap - tail >= need:
            at = tail
        elif head >= need:
            at = 0                                # wrap: the end of the buffer is pad
            pad = cap - tail
    elif head - tail >= need:
        at = tail
    if at < 0:
        q_meta[Q_FULL] += 1
        return -100
    if pad >= Q_ENTRY_HDR_BYTES:
        _w32(q_data, tail, Q_PAD)                 # < 16 bytes of pad: the reader knows
    _w32(q_data, at, n)
    _w32(q_data, at + 4, level)
    _w32(q_data, at + 8, split)
    _w32(q_data, at + 12, Q_ENTRY_TAG)
    nt = at + need
    if nt == cap:
        nt = 0
    q_meta[Q_TAIL] = nt
    q_meta[Q_USED] = used + pad + need
    if q_meta[Q_USED] > q_meta[Q_HIGH_WATER]:
        q_meta[Q_HIGH_WATER] = q_meta[Q_USED]
    q_meta[Q_COUNT] += 1
    q_meta[Q_PENDING_BYTES] += n
    q_meta[Q_SUBMITTED] += 1
    q_meta[Q_BYTES_SUBMITTED] += n
    return at + Q_ENTRY_HDR_BYTES


@njit(cache=True)
def pg_submit_split(q_data, q_meta, msg, n, level, split_at):
    """Queue msg[:n] (group header included) at level 0 (agreed) / 1 (safe).

    split_at: offset inside the message where the sender's second payload iovec starts
    (0 = one iovec).  Returns 1 queued, 0 queue full (back-pressure), < 0 bad input.
    """
    if n < 0 or n > msg.shape[0]:
        if q_meta.shape[0] >= Q_META_LEN:
            q_meta[Q_BAD] += 1
        return PG_E_ARGS
    p = _queue_reserve(q_data, q_meta, n, level, split_at)
    if p == -100:
        return 0
    if p < 0:
        return p
    _copy(q_data, p, msg, 0, n)
    return 1


@njit(cache=True)
def pg_submit(q_data, q_meta, msg, n, level):
    """Queue msg[:n] (group header included). 1 queued, 0 full, < 0 bad input."""
    return pg_submit_split(q_data, q_meta, msg, n, level, 0)


@njit(cache=True)
def pg_submit_group(q_data, q_meta, name, name_len, payload, n, level, payload_split):
    """Queue a one-group message, writing the group header straight into the queue.

    payload_split: offset inside the payload of the second iovec (Corosync's CPG sends
    the exec header and the data as two iovecs), 0 = none.  1 / 0 / < 0 as pg_submit.
    """
    if (name_len < 0 or name_len > 0xFFFF or name_len > name.shape[0] or n < 0
            or n > payload.shape[0] or payload_split < 0 or payload_split >= max(n, 1)):
        if q_meta.shape[0] >= Q_META_LEN:
            q_meta[Q_BAD] += 1
        return PG_E_ARGS
    hdr = 4 + name_len
    split = hdr + payload_split if payload_split > 0 else 0
    p = _queue_reserve(q_data, q_meta, hdr + n, level, split)
    if p == -100:
        return 0
    if p < 0:
        return p
    _w16(q_data, p, 1)
    _w16(q_data, p + 2, name_len)
    _copy(q_data, p + 4, name, 0, name_len)
    _copy(q_data, p + hdr, payload, 0, n)
    return 1


@njit(cache=True)
def pg_backlog_packets(q_meta, max_packet_bytes):
    """Estimate of the packets the queued messages need (for Totem's flow control,
    which Corosync feeds with the number of packets totempg already queued)."""
    if q_meta.shape[0] < Q_META_LEN or max_packet_bytes < PG_MIN_PACKET_BYTES:
        return 0
    count = q_meta[Q_COUNT]
    if count <= 0:
        return 0
    room = max_packet_bytes - TOTEMPG_HDR_BYTES
    need = q_meta[Q_PENDING_BYTES] + 2 * count
    return (need + room - 1) // room


# ---------------------------------------------------------------------------------------
# packing (Corosync's mcast_msg + the token-time flush, callback_token_received_fn)


@njit(cache=True)
def _iov_span(q, base, mlen, split, off):
    """The iovec [s, e) of the queued message q[base:base+mlen] that holds byte `off`.

    Corosync fragments per iovec, and totempg_groups_mcast_joined hands it the message as
    [group_len array][each group name][the service's iovecs]; zero-length iovecs are
    dropped.  A message without a sane group header is treated as one iovec.
    """
    s = np.int64(0)
    if mlen >= 2:
        g = _u16(q, base, 0)
        hdr = 2 * (g + 1)
        if g <= MAX_GROUPS_PER_MSG and hdr <= mlen:
            total = hdr
            for i in range(g):
                total += _u16(q, base + 2 + 2 * i, 0)
            if total <= mlen:
                if off < hdr:
                    return np.int64(0), hdr
                e = hdr
                for i in range(g):
                    ln = _u16(q, base + 2 + 2 * i, 0)
                    if off < e + ln:
                        return e, e + ln
                    e += ln
                s = total
    if split > s and split < mlen:
        if off < split:
            return s, split
        return np.int64(split), mlen
    return s, mlen


@njit(cache=True)
def _entry_at(q_data, cap, pos):
    """Skip a wrap pad at pos; returns (entry offset, pad bytes skipped)."""
    if cap - pos < Q_ENTRY_HDR_BYTES or _r32(q_data, pos) == Q_PAD:
        return np.int64(0), cap - pos
    return pos, np.int64(0)


@njit(cache=True)
def pg_pack(q_data, q_meta, frag_state, out, max_packet_bytes):
    """Build ONE totempg packet in out from the head of the queue.

    Returns (nbytes, level): nbytes 0 when the queue is empty, < 0 on error (nothing
    changed); level is the guarantee of every message in the packet (packets never mix
    levels -- Corosync's totemsrp ignores `guarantee`, so this is our choice, and a level
    change is simply a flush point).

    The packets are exactly the ones Corosync 3.1.7 multicasts when the queued messages
    are handed to totempg_groups_mcast_joined one after another between two token visits
    (same iovec split, see pg_submit_split), plus a flush where the level changes: a
    packet goes out as soon as a message does not fit (its first part fills the packet,
    fragmented = next fragment number), and what remains when the queue runs dry goes
    out as Corosync's token-time flush does.  Quirks kept for byte equality: a piece
    only counts as fitting if the whole iovec (not just its unsent rest) leaves 2 spare
    bytes, so the tail of a long iovec always goes out alone at once; a message ending
    within 2 bytes of the limit also sends the packet at once.
    """
    if _queue_check(q_data, q_meta) != 0 or frag_state.shape[0] < FRAG_STATE_LEN:
        return PG_E_QUEUE, -1
    if (max_packet_bytes < PG_MIN_PACKET_BYTES or max_packet_bytes > PG_MAX_PACKET_BYTES
            or out.shape[0] < max_packet_bytes):
        return PG_E_ARGS, -1
    left = q_meta[Q_COUNT]
    if left == 0:
        return 0, -1
    cap = q_meta[Q_CAP]
    room = max_packet_bytes - TOTEMPG_HDR_BYTES      # Corosync's TOTEMPG_PACKET_SIZE
    msg_off = frag_state[F_MSG_OFF]
    next_frag = frag_state[F_NEXT_FRAGMENT] & 0xFF
    cont_state = frag_state[F_CONTINUATION] & 0xFF
    if msg_off < 0:
        return PG_E_QUEUE, -1
    pkt_cont = cont_state        # continuation of this packet = state at its start
    first_epos = np.int64(-1)
    first_off = msg_off
    pos = q_meta[Q_HEAD]
    n_msgs = np.int64(0)         # Corosync's mcast_packed_msg_count
    data_bytes = np.int64(0)     # Corosync's fragment_size
    level = np.int64(-1)
    freed = np.int64(0)
    popped = np.int64(0)
    frag = np.int64(0)
    emitted = False

    # ---- pass 1: decide the packet's contents (lengths only); msg_len[] goes to out
    while left > 0:
        epos, pad = _entry_at(q_data, cap, pos)
        mlen = _r32(q_data, epos)
        mlevel = _r32(q_data, epos + 4)
        split = _r32(q_data, epos + 8)
        esize = Q_ENTRY_HDR_BYTES + _align8(mlen)
        if (_r32(q_data, epos + 12) != Q_ENTRY_TAG or mlen < 1 or epos + esize > cap
                or mlevel > 1 or msg_off >= mlen):
            return PG_E_QUEUE, -1
        if n_msgs > 0 and mlevel != level:
            break                                   # never mix levels: flush here
        level = mlevel
        if first_epos < 0:
            first_epos = epos
        freed += pad
        base = epos + Q_ENTRY_HDR_BYTES
        max_data = room - 2 * (n_msgs + 1)          # Corosync's max_packet_size
        this_len = np.int64(0)
        while True:
            s, e = _iov_span(q_data, base, mlen, split, msg_off)
            rest = e - msg_off
            if (e - s) + data_bytes < max_data - 2:
                # Fits with room to spare (Corosync compares the WHOLE iovec length).
                data_bytes += rest
                this_len += rest
                next_frag = 1
                msg_off = e
                if e == mlen:
                    break
            else:
                # Fill the packet and send it now.
                take = min(rest, max_data - data_bytes)
                this_len += take
                if e != mlen or msg_off + take < e:
                    # the message goes on in the next packet
                    if next_frag == 0:
                        next_frag = 1
                    cont_state = next_frag
                    frag = next_frag
                    next_frag = (next_frag + 1) & 0xFF
                else:
                    cont_state = 0
                    frag = 0
                data_bytes += take
                msg_off += take
                emitted = True
                break
        if TOTEMPG_HDR_BYTES + 2 * (n_msgs + 1) > max_packet_bytes:
            return PG_E_QUEUE, -1                   # cannot happen; never write past out
        _w16(out, TOTEMPG_HDR_BYTES + 2 * n_msgs, this_len)
        n_msgs += 1
        if msg_off == mlen:
            freed += esize
            popped += 1
            left -= 1
            pos = epos + esize
            if pos >= cap:
                pos = 0
            msg_off = 0
        else:
            pos = epos                              # partly sent: stays at the head
        if emitted:
            break
    if n_msgs == 0:
        return 0, -1
    if not emitted:
        frag = 0
        cont_state = 0          # the token-time flush clears fragment_continuation
    nbytes = TOTEMPG_HDR_BYTES + 2 * n_msgs + data_bytes
    if nbytes > max_packet_bytes:
        return PG_E_QUEUE, -1                       # cannot happen; never write past out

    # ---- pass 2: header and data
    _w16(out, 0, 0)              # header.version
    _w16(out, 2, 0)              # header.type
    out[4] = frag
    out[5] = pkt_cont
    _w16(out, 6, n_msgs)
    p = TOTEMPG_HDR_BYTES + 2 * n_msgs
    epos = first_epos
    off = first_off
    for j in range(n_msgs):
        if j > 0:
            nxt = epos + Q_ENTRY_HDR_BYTES + _align8(_r32(q_data, epos))
            if nxt >= cap:
                nxt = 0
            epos, pad = _entry_at(q_data, cap, nxt)
            off = 0
        ln = _u16(out, TOTEMPG_HDR_BYTES + 2 * j, 0)
        _copy(out, p, q_data, epos + Q_ENTRY_HDR_BYTES + off, ln)
        p += ln

    # ---- commit
    q_meta[Q_HEAD] = pos
    q_meta[Q_USED] -= freed
    q_meta[Q_COUNT] -= popped
    if q_meta[Q_COUNT] == 0 and q_meta[Q_USED] == 0:
        q_meta[Q_HEAD] = 0      # empty: start over at 0 (single-threaded queue)
        q_meta[Q_TAIL] = 0
    q_meta[Q_PENDING_BYTES] -= data_bytes
    q_meta[Q_PACKETS] += 1
    q_meta[Q_MSGS_PACKED] += popped
    if frag != 0:
        q_meta[Q_FRAG_PACKETS] += 1
    frag_state[F_MSG_OFF] = msg_off
    frag_state[F_NEXT_FRAGMENT] = next_frag
    frag_state[F_CONTINUATION] = cont_state
    return nbytes, level


# ---------------------------------------------------------------------------------------
# reassembly (Corosync's totempg_deliver_fn)


@njit(cache=True)
def pg_assembly_reset(asm_meta, slot):
    """Forget slot's partial message (Corosync frees a left node's assemblies; the next
    packet then meets a fresh assembly).  Counters are kept.  0 ok, PG_E_ARGS."""
    if slot < 0 or slot >= asm_meta.shape[0] or asm_meta.shape[1] < ASM_META_LEN:
        return PG_E_ARGS
    for i in range(A_STATE_FIELDS):
        asm_meta[slot, i] = 0
    asm_meta[slot, A_RESETS] += 1
    return 0


@njit(cache=True)
def pg_assembly_reset_all(asm_meta):
    """pg_assembly_reset for every slot; returns the number of slots (or PG_E_ARGS)."""
    if asm_meta.shape[1] < ASM_META_LEN:
        return PG_E_ARGS
    for s in range(asm_meta.shape[0]):
        for i in range(A_STATE_FIELDS):
            asm_meta[s, i] = 0
        asm_meta[s, A_RESETS] += 1
    return asm_meta.shape[0]


@njit(cache=True)
def _reject(am, code):
    am[A_REJECTED] += 1
    am[A_LAST_ERROR] = code
    return code


@njit(cache=True)
def pg_unpack(pkt, n, slot, asm_data, asm_meta, out_data, out_meta, out_count_in,
              swap_bytes=0):
    """Feed one received totempg packet pkt[:n] from the sender mapped to `slot`.

    Appends every message it completes to out_data / out_meta starting at row
    out_count_in (data right after the previous row's message) and returns the new row
    count, or a negative code with nothing consumed: PG_E_SHORT / PG_E_COUNT /
    PG_E_LENGTH (Corosync's three sanity checks: it ignores such packets too),
    PG_E_OVERSIZE (a message beyond asm_cap_bytes; Corosync would assert),
    PG_E_NO_ROOM (drain out_* and call again), PG_E_ARGS.
    swap_bytes=1 for a sender of the other byte order (Totem header magic swapped).

    Decisions are Corosync 3.1.7's (verified against the real totempg.c):
    * continuation == last_frag_num: deliver the complete messages (the first one
      joined to the held partial), keep the last one if `fragmented`;
    * otherwise the whole packet is discarded and the slot enters throw-away mode;
      a mismatching packet with fragmented == 0 frees the assembly, so its mode is
      forgotten at once;
    * in throw-away mode every packet is discarded (complete messages too); a packet
      with fragmented 0 or 1 ends the mode (0 also frees the assembly);
    * last_frag_num only changes on delivery; fragmented == 0 resets everything.
    Where Corosync would deliver a message built from stale bytes (it moves the wrong
    bytes after a discarded packet with several messages), the slot is marked "junk"
    and that message is dropped instead (A_JUNK_DROPS) -- the only difference.

    Corosync keeps a second set of assemblies while waiting for the transitional
    configuration's ack (waiting_trans_ack) and frees a node's assemblies when it leaves:
    mirror that with one slot per (sender, trans flag) and pg_assembly_reset on left
    nodes' slots.
    """
    # ---- arguments (never touch anything out of range)
    if (slot < 0 or slot >= asm_meta.shape[0] or slot >= asm_data.shape[0]
            or asm_meta.shape[1] < ASM_META_LEN):
        return PG_E_ARGS
    am = asm_meta[slot]
    if n < 0 or n > pkt.shape[0]:
        return _reject(am, PG_E_ARGS)
    if (out_meta.shape[1] < OUT_META_LEN or out_count_in < 0
            or out_count_in > out_meta.shape[0]):
        return _reject(am, PG_E_ARGS)
    out_off = np.int64(0)
    if out_count_in > 0:
        out_off = out_meta[out_count_in - 1, OUT_OFF] + out_meta[out_count_in - 1, OUT_LEN]
        if out_off < 0 or out_off > out_data.shape[0]:
            return _reject(am, PG_E_ARGS)
    asm_cap = np.int64(asm_data.shape[1])
    idx = am[A_INDEX]
    lfn = am[A_LAST_FRAG]
    tam = am[A_THROW_AWAY]
    junk = am[A_JUNK]
    if idx < 0 or idx > asm_cap:
        return _reject(am, PG_E_ARGS)

    # ---- Corosync's sanity checks
    if n < TOTEMPG_HDR_BYTES:
        return _reject(am, PG_E_SHORT)
    c = _u16(pkt, 6, swap_bytes)
    datasize = TOTEMPG_HDR_BYTES + 2 * c
    if n < datasize:
        return _reject(am, PG_E_COUNT)
    total = datasize
    for i in range(c):
        total += _u16(pkt, TOTEMPG_HDR_BYTES + 2 * i, swap_bytes)
    if total != n:
        return _reject(am, PG_E_LENGTH)
    f = np.int64(pkt[4])
    k = np.int64(pkt[5])
    d = c - 1 if f != 0 else c                  # messages complete in this packet
    if d < 0:
        d = 0
    l0 = _u16(pkt, TOTEMPG_HDR_BYTES, swap_bytes) if c > 0 else np.int64(0)
    l_last = _u16(pkt, TOTEMPG_HDR_BYTES + 2 * (c - 1), swap_bytes) if c > 0 else np.int64(0)

    # ---- decide (no side effects yet)
    deliver = False
    n_idx = idx
    n_lfn = lfn
    n_tam = tam
    n_junk = junk
    store = 0               # 1: keep the packet's last message; 2: append msg 0 to held
    discarded = np.int64(0)
    mismatch = 0
    if tam == 0 and k == lfn:
        deliver = True
        n_lfn = f
        if f == 0:
            n_idx = 0
            n_lfn = 0
            n_junk = 0
        elif c > 1:
            n_idx = l_last
            n_junk = 0
            store = 1
        elif c == 1:
            n_idx = idx + l0
            store = 2
    else:
        discarded = d
        if tam == 0:
            mismatch = 1
        if f == 0:
            # Corosync frees the assembly after a packet with fragmented == 0: fresh.
            n_idx = 0
            n_lfn = 0
            n_tam = 0
            n_junk = 0
        else:
            if tam != 0 and f == 1:
                # Leaves throw-away: Corosync skips msg 0, keeps the last one (right
                # only when there are exactly two) -- still nothing delivered.
                n_tam = 0
                if c == 2:
                    n_idx = l_last
                    n_junk = 0
                    store = 1
                elif c > 2:
                    n_idx = l_last
                    n_junk = 1
                elif c == 1:
                    n_idx = idx + 2 * l0            # Corosync advances twice here
                    n_junk = 1
                else:
                    n_junk = 1                      # Corosync reads an unset length
            else:
                n_tam = 1
                if c > 1:
                    n_idx = l_last                  # Corosync moves the wrong bytes
                    n_junk = 1
                elif c == 1:
                    n_idx = idx + l0
                    n_junk = 1
    if n_idx == 0:
        n_junk = 0

    # ---- size checks (before consuming anything)
    rows = np.int64(0)
    need = np.int64(0)
    first_junk = False
    if deliver and d > 0:
        if idx > 0 and junk != 0:
            first_junk = True
        elif idx + l0 > asm_cap:
            am[A_OVERSIZE] += 1
            return _reject(am, PG_E_OVERSIZE)
        p = TOTEMPG_HDR_BYTES + 2 * c
        for i in range(d):
            li = _u16(pkt, TOTEMPG_HDR_BYTES + 2 * i, swap_bytes)
            if i == 0:
                if not first_junk:
                    rows += 1
                    need += idx + li
            else:
                rows += 1
                need += li
    if n_idx > asm_cap or n_idx < 0:
        am[A_OVERSIZE] += 1
        return _reject(am, PG_E_OVERSIZE)
    if out_count_in + rows > out_meta.shape[0] or out_off + need > out_data.shape[0]:
        am[A_NO_ROOM] += 1
        am[A_LAST_ERROR] = PG_E_NO_ROOM
        return PG_E_NO_ROOM

    # ---- act
    held = asm_data[slot]
    row = out_count_in
    p = TOTEMPG_HDR_BYTES + 2 * c
    if deliver:
        for i in range(d):
            li = _u16(pkt, TOTEMPG_HDR_BYTES + 2 * i, swap_bytes)
            if i == 0 and first_junk:
                am[A_JUNK_DROPS] += 1
                am[A_DISCARDED] += 1
            elif i == 0 and idx > 0:
                _copy(out_data, out_off, held, 0, idx)
                _copy(out_data, out_off + idx, pkt, p, li)
                out_meta[row, OUT_OFF] = out_off
                out_meta[row, OUT_LEN] = idx + li
                out_meta[row, OUT_SLOT] = slot
                out_meta[row, OUT_FLAGS] = OUT_F_REASSEMBLED
                out_off += idx + li
                row += 1
            else:
                _copy(out_data, out_off, pkt, p, li)
                out_meta[row, OUT_OFF] = out_off
                out_meta[row, OUT_LEN] = li
                out_meta[row, OUT_SLOT] = slot
                out_meta[row, OUT_FLAGS] = 0
                out_off += li
                row += 1
            p += li
    if store == 1:
        _copy(held, 0, pkt, n - l_last, l_last)
    elif store == 2 and n_junk == 0:
        _copy(held, idx, pkt, TOTEMPG_HDR_BYTES + 2 * c, l0)
    am[A_INDEX] = n_idx
    am[A_LAST_FRAG] = n_lfn
    am[A_THROW_AWAY] = n_tam
    am[A_JUNK] = n_junk
    am[A_PACKETS] += 1
    am[A_DELIVERED] += row - out_count_in
    am[A_DISCARDED] += discarded
    am[A_MISMATCH] += mismatch
    return row
