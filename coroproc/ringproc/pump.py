"""The ring process's hot loop: shm rings in, the jitted Totem core, shm rings out.

One `pump` call fires due timers, feeds every waiting frame of the rx rings and every
waiting submission of the engines' submit rings to the core, and moves what the core
emits — frames to the tx rings, ordered messages (unpacked by totempg) and configuration
changes to every delivery ring — without a Python object per message. It returns to
Python only for what happens a few times per second: operator log events, configuration
changes and ring-id persistence (rows copied to `pyev`), or when its budget is spent.

Back-pressure: a submission the core's queue cannot take stays in its ring (counted);
frames are read only while every delivery ring has `headroom_bytes` free, because one
frame can release every frame the sort queue holds (filling a gap) and an ordered
message may never be dropped. A full tx ring drops the frame (counted): to Totem that is
a lost datagram, which it retransmits.
"""
from collections import namedtuple

import numpy as np

from coroproc.njit import njit

from coroproc.jitcache import compiled_entry  # noqa: F401  (callers use P.compiled_entry)
from coroproc.shm.kernels import (PEEK_CORRUPT, PEEK_EMPTY, PEEK_RECORD, PUSH_OK_WAKE,
                                  ring_commit, ring_head, ring_peek, ring_release, ring_reserve,
                                  ring_tail)
from coroproc.shm.layout import RECORD_HEADER_BYTES, RTYPE_PAD
from coroproc.shm.lazymem import lazy_zeros

from . import totempg as pg
from .records import (CFG_HDR_BYTES, DLV_HDR_BYTES, RT_CONFIG, RT_DELIVER, RT_FRAME,
                      RT_SUBMIT, RT_TRANS_ACK, SUBMIT_SAFE, SUBMIT_SYNC, TRANS_ACK_BYTES,
                      TX_HDR_BYTES)
from .srp import srp_leave, srp_on_frame, srp_on_timer, srp_start, srp_submit, srp_trans_ack
from .state import (EV_CONFIG, EV_DELIVER, EV_RINGID, OPERATIONAL, S_EV_IOFF, S_EV_N, S_EV_OFF,
                    S_MY_ID, S_SEQ_UNCHANGED, S_STATE, S_TX_N, S_TX_OFF, S_WAITING_TRANS_ACK)
from .wire import copy_bytes, rd_u32, rd_u64, wr_u16, wr_u32, wr_u64

# Return codes
RET_IDLE = 0        # every input consumed; sleep until the deadline or a doorbell
RET_EVENTS = 1      # pyev holds rows for Python (logs, configuration changes)
RET_PERSIST = 2     # a new ring seq must be persisted before the core's outputs go out
RET_BUDGET = 3      # budget spent with input left; call again after a look at control
RET_STALLED = 4     # a delivery ring lacks headroom; wait for its consumer
RET_CORRUPT = 5     # an input ring's framing is broken (ps[P_CORRUPT_RING] says which)

# Pump state (ps) and counters (pc)
P_DEADLINE_US = 0
P_PERSIST_PENDING = 1    # set by pump, cleared by Python once the seq is on disk
P_WAKE_MASK = 2          # bit i: tx ring i, bit 16+i: delivery ring i needs a doorbell
P_PYEV_N = 3
P_PYEV_IOFF = 4
P_SUBMIT_BLOCKED = 5     # a submission waits for room in the core's queue
P_CORRUPT_RING = 6       # rx ring i, or 16 + submit ring i
# How many rings of each kind are real: numba cannot type an empty tuple of arrays, so
# the caller pads an empty group with one placeholder (see padded()).
P_N_RX = 7
P_N_SUB = 8
P_N_TX = 9
P_N_DL = 10
P_COMMAND = 11           # CMD_*: set by Python, carried out (and cleared) by the next pump
P_LOOP_HEAD = 12         # frames to this node itself, waiting in bufs.loop_* (FIFO)
P_LOOP_N = 13
P_LOOP_FRESH = 14        # a submission was taken since the last looped frame
P_LOOP_DUE_US = 15       # an idle looped token waits until then (see _loop_now)
P_INTAKE_BYTES = 16      # application submissions wait in their ring while the core's
                         # queue holds this much (0: no limit); see intake_bytes()
P_TX_MCAST_NOBODY = 17   # bit i: a multicast frame on tx ring i reaches no one (a
                         # one-node udpu/knet cluster), so it is not written there
P_LEN = 18

CMD_NONE = 0
CMD_START = 1            # srp_start: boot into GATHER
CMD_LEAVE = 2            # srp_leave: clean leave, timers stopped

PC_RX_FRAMES = 0
PC_RX_REJECTED = 1
PC_SUBMITTED = 2
PC_SUBMIT_QUEUE_FULL = 3
PC_TX_FRAMES = 4
PC_TX_RING_FULL = 5
PC_DELIVERED_MSGS = 6
PC_DELIVERED_BYTES = 7
PC_DELIVERY_STALLS = 8
PC_DELIVERY_LOST = 9       # a push failed despite the headroom rule: must stay 0
PC_UNPACK_ERRORS = 10
PC_SENDER_SLOTS_FULL = 11
PC_PYEV_FULL = 12
PC_TIMER_RUNS = 13
PC_UNROUTED = 14           # ordered messages no engine of this node takes (another
                           # node's service, e.g. Corosync's pload): dropped here, as
                           # totempg drops a group nobody joined
PC_TRANS_ACKS = 15         # acknowledgements that ended a wait (stale ones not counted)
PC_SYNC_AHEAD = 16         # sync submissions taken from behind a blocked application one
PC_SUBMIT_MALFORMED = 17   # submit records of an unknown type, a short TRANS_ACK or a
                           # message the core refuses (larger than its queue): dropped
PC_LOOPED_FRAMES = 18      # frames to this node itself, fed back without the network
PC_INTAKE_HELD = 19        # pump turns that left submissions in their ring (intake bound)
PC_MCAST_UNSENT = 20       # multicast frames kept off links where they reach no one
PC_LEN = 21
PC_NAMES = ("rx_frames", "rx_rejected", "submitted", "submit_queue_full", "tx_frames",
            "tx_ring_full", "delivered_msgs", "delivered_bytes", "delivery_stalls",
            "delivery_lost", "unpack_errors", "sender_slots_full", "pyev_full",
            "timer_runs", "unrouted", "trans_acks", "sync_ahead", "submit_malformed",
            "looped_frames", "intake_held", "mcast_unsent")

# Routing of ordered messages to delivery rings (route[ei] = [service_mask, flags]):
# Corosync's services share totempg group "a" and tell their messages apart by the
# service id in the exec header ((service << 16) | fn); sync uses group "sync". An engine
# gets the "a" messages of the services in its mask, "sync" if ROUTE_SYNC, and every
# message of any group if ROUTE_ALL (the load engine). Configurations go to every ring.
ROUTE_COLS = 2
ROUTE_SYNC = 1
ROUTE_ALL = 2
_GROUP_A = 97                         # b"a"
_GROUP_SYNC = np.array([115, 121, 110, 99], np.uint8)   # b"sync"

PYEV_COLS = 8  # same columns as the core's ev_meta rows; off/len index pyev_ints
WAKE_DLV_SHIFT = 16


# The tokens of a one-member ring go to the node itself (Corosync sends them to its own
# address): the pump feeds them straight back to the core, which spares the network
# process and a wake-up of its own per token rotation of an idle one-node cluster.
LOOP_FRAMES = 4
# A token going round a one-member ring with nothing to carry is fed back at most once per
# this long. Fed back at once, it went round ~17 times per message until the core held it
# (Corosync's seqno_unchanged_const rotations), costing a busy ring process ~80 µs of CPU
# per message at 8,000 messages/s. The ring process sleeps until then or a submission.
LOOP_IDLE_US = 1000
SUBMITS_PER_TURN = 64     # submissions taken from each submit ring per turn of the pump
LOOP_SLACK_BYTES = 256


# The most the core's queue takes from the submit rings, whatever the frame size. A
# window of knet's 65,000-byte frames is 3.25 MB: a 1 KiB flood on 3 nodes then waited
# ~60 ms in the core's queue, out of the engines' sight, on top of the 20 ms their flow
# control allows (own-delivery p50 55-90 ms). Capped here, the p50 came down to ~22 ms at
# the same rate (50-60k msgs/s), and a 64 KiB flood kept its rate (1,750-2,150 msgs/s
# against 2,090-2,400) with p50 40 -> 25 ms; 128 KiB cost the 64 KiB flood ~20 % (2
# messages per token visit). Measured with bench/sbs_daemons.py sessions, knet, 3 nodes.
INTAKE_MAX_BYTES = 256 * 1024


def intake_bytes(window_size: int, netmtu: int) -> int:
    """How much of the core's application queue the pump fills from the submit rings: a
    full window of frames — at least two token visits' worth (max_messages <= window_size)
    of UDP-sized frames — but no more than INTAKE_MAX_BYTES: with knet's 64 KiB frames a
    window is 3.25 MB, while four such frames per token visit already keep a flood's rate.

    The rest of a backlog waits in the engines' submit rings, where the engine sees it
    and its flow control can bound how long a message queues (engineprocs/submit_delay.py).
    Taken all the way into the core's 4 MiB queue instead, a flood of 1 KiB messages on
    3 nodes queued ~0.6 s before it was sent, out of the engines' sight. A message is
    taken whole while the queue holds less than this, so any size up to the maximum goes.
    """
    return min(window_size * netmtu, INTAKE_MAX_BYTES)


PumpBufs = namedtuple("PumpBufs", "ps pc slot_ids asm_data asm_meta out_data out_meta pyev "
                                   "pyev_ints route loop_data loop_len")


def new_pump_bufs(n_senders: int, max_message_bytes: int, netmtu: int,
                  route=None) -> PumpBufs:
    """Pump state, counters, totempg reassembly (one slot per sender), python events and
    the delivery routes (route_table(); default: every ring takes every message).

    The reassembly rows are max_message_bytes each but zero-filled lazily by the kernel
    (shm/lazymem.py: in 4 KiB pages), so memory is only spent on what senders actually
    fragment."""
    return PumpBufs(
        ps=np.zeros(P_LEN, np.int64),
        pc=np.zeros(PC_LEN, np.int64),
        slot_ids=np.zeros(n_senders, np.int64),
        asm_data=lazy_zeros((n_senders, max_message_bytes + 64), np.uint8),
        asm_meta=np.zeros((n_senders, pg.ASM_META_LEN), np.int64),
        out_data=np.zeros(max_message_bytes + netmtu * 4, np.uint8),
        out_meta=np.zeros((netmtu, pg.OUT_META_LEN), np.int64),
        pyev=np.zeros((256, PYEV_COLS), np.int64),
        pyev_ints=np.zeros(256 * 64, np.int64),
        route=route if route is not None else route_table([((), False, True)] * 16),
        loop_data=np.zeros((LOOP_FRAMES, netmtu + LOOP_SLACK_BYTES), np.uint8),
        loop_len=np.zeros(LOOP_FRAMES, np.int64),
    )


def route_table(entries) -> np.ndarray:
    """route rows for delivery rings: entries = [(service_ids, wants_sync, wants_all)]."""
    table = np.zeros((max(len(entries), 1), ROUTE_COLS), np.int64)
    for i, (services, wants_sync, wants_all) in enumerate(entries):
        mask = 0
        for sid in services:
            if not 0 <= sid < 63:
                raise ValueError(f"service id {sid}: allowed 0..62")
            mask |= 1 << sid
        table[i, 0] = mask
        table[i, 1] = (ROUTE_SYNC if wants_sync else 0) | (ROUTE_ALL if wants_all else 0)
    return table


def padded(rings, slots: int = 1) -> tuple[tuple, tuple]:
    """(hdr tuple, data tuple) of ShmRings, padded with an unused placeholder ring up to
    `slots` entries (at least one: numba cannot type an empty tuple). The pump reads only
    the first ps[P_N_*] of them."""
    hdrs, datas = [r.hdr for r in rings], [r.data for r in rings]
    if len(hdrs) < slots:
        hdr, data = np.zeros(64, np.int64), np.zeros(4096, np.uint8)
        hdrs += [hdr] * (slots - len(hdrs))
        datas += [data] * (slots - len(datas))
    return tuple(hdrs), tuple(datas)


# The pump is compiled once per tuple length of each ring group, and a compile takes
# 1-2 minutes on a 2-vCPU VM. So the ring process pads its groups to these sizes and
# every node with at most 2 links and 8 engines runs the one pump `make warm` compiled
# (before, the 4-, 5- and 6-engine nodes of the tests each compiled their own on first
# start, in parallel, and the first daemon tests timed out waiting for it).
LINK_SLOTS = 2
ENGINE_SLOTS = 8


def ring_slots(n: int, at_least: int) -> int:
    """Tuple length for a group of n rings: at_least, else the next power of two."""
    return at_least if n <= at_least else 1 << (n - 1).bit_length()


def set_ring_counts(ps, n_rx: int, n_sub: int, n_tx: int, n_dl: int) -> None:
    ps[P_N_RX], ps[P_N_SUB], ps[P_N_TX], ps[P_N_DL] = n_rx, n_sub, n_tx, n_dl


def set_mcast_nobody(ps, nobody) -> None:
    """nobody[i]: a multicast frame on tx ring i has no receiver (LinkSpec.
    multicast_reaches_nobody). Such frames stay out of that ring: on a one-node cluster
    each message otherwise woke the network process to send nothing (~10 % of a CPU in a
    flood of 1 KiB messages). Frames to a nodeid (the token) are not affected."""
    ps[P_TX_MCAST_NOBODY] = sum(1 << i for i, flag in enumerate(nobody) if flag)


@njit(cache=True)
def _sender_slot(slot_ids, sender):
    for i in range(slot_ids.shape[0]):
        if slot_ids[i] == sender:
            return i
        if slot_ids[i] == 0:
            slot_ids[i] = sender
            return i
    return -1


@njit(cache=True)
def _free_bytes(hdr, data):
    return data.shape[0] - (ring_head(hdr) - ring_tail(hdr))


@njit(cache=True, inline="always")
def _commit(ps, h, d, rtype, n, wake_bit):
    """Publish the record written at ring_reserve's offset; note a consumer to wake."""
    if ring_commit(h, d, rtype, 0, n) == PUSH_OK_WAKE:
        ps[P_WAKE_MASK] |= np.int64(1) << wake_bit


@njit(cache=True)
def _loop_back(st, ps, pc, bufs, off, ln):
    """Keep a frame to this node for the pump's next turn; False if there is no room (it
    then goes through the network like any frame)."""
    n = ps[P_LOOP_N]
    if n >= LOOP_FRAMES or ln > bufs.loop_data.shape[1]:
        return False
    k = (ps[P_LOOP_HEAD] + n) % LOOP_FRAMES
    copy_bytes(bufs.loop_data[k], 0, st.tx_data, off, ln)
    bufs.loop_len[k] = ln
    ps[P_LOOP_N] = n + 1
    pc[PC_LOOPED_FRAMES] += 1
    return True


@njit(cache=True)
def _loop_now(st, ps, now_us):
    """Feed the looped frame back this turn? At once while there is something new to
    carry (a submission taken, or the token's seq moved on its last visit) or while the
    ring is not operational; an idle token only every LOOP_IDLE_US."""
    return (ps[P_LOOP_FRESH] == 1 or st.s[S_SEQ_UNCHANGED] == 0
            or st.s[S_STATE] != OPERATIONAL or now_us >= ps[P_LOOP_DUE_US])


@njit(cache=True)
def _push_frames(st, ps, pc, tx_h, tx_d, bufs):
    me = st.s[S_MY_ID]
    for row in range(st.s[S_TX_N]):
        off = st.tx_meta[row, 0]
        ln = st.tx_meta[row, 1]
        dest = st.tx_meta[row, 2]
        if dest == me and _loop_back(st, ps, pc, bufs, off, ln):
            continue
        for li in range(ps[P_N_TX]):
            if dest == 0 and ps[P_TX_MCAST_NOBODY] >> li & 1:
                pc[PC_MCAST_UNSENT] += 1
                continue
            o = ring_reserve(tx_h[li], tx_d[li], TX_HDR_BYTES + ln)
            if o < 0:
                pc[PC_TX_RING_FULL] += 1
                continue
            wr_u32(tx_d[li], o, dest)  # destination nodeid
            copy_bytes(tx_d[li], o + TX_HDR_BYTES, st.tx_data, off, ln)
            _commit(ps, tx_h[li], tx_d[li], RT_FRAME, TX_HDR_BYTES + ln, li)
            pc[PC_TX_FRAMES] += 1
    st.s[S_TX_N] = 0
    st.s[S_TX_OFF] = 0


@njit(cache=True)
def _route_of(src, soff, n):
    """(service bit mask of group "a", 1 if group "sync") of one unpacked message."""
    st, payload_off, g, name_off, first_len = pg.pg_parse_groups(src, soff, n, 0)
    if st < 0:
        return np.int64(0), 0
    mask = np.int64(0)
    sync = 0
    p = soff + 2 * (g + 1)
    for i in range(g):
        ln = np.int64(src[soff + 2 + 2 * i]) | (np.int64(src[soff + 3 + 2 * i]) << 8)
        if ln == 1 and src[p] == _GROUP_A and payload_off + 4 <= soff + n:
            service = (np.int64(src[payload_off + 2])
                       | (np.int64(src[payload_off + 3]) << 8))
            if service < 63:
                mask |= np.int64(1) << service
        elif ln == 4:
            same = True
            for j in range(4):
                if src[p + j] != _GROUP_SYNC[j]:
                    same = False
            if same:
                sync = 1
        p += ln
    return mask, sync


@njit(cache=True)
def _deliver_msg(ps, pc, dl_h, dl_d, route, sender, rep, seq, tseq, rpos, level, src, soff, n):
    mask, sync = _route_of(src, soff, n)
    taken = False
    for ei in range(ps[P_N_DL]):
        flags = route[ei, 1]
        if not ((route[ei, 0] & mask) != 0 or (sync == 1 and (flags & ROUTE_SYNC) != 0)
                or (flags & ROUTE_ALL) != 0):
            continue
        taken = True
        d = dl_d[ei]
        o = ring_reserve(dl_h[ei], d, DLV_HDR_BYTES + n)
        if o < 0:
            pc[PC_DELIVERY_LOST] += 1
            continue
        wr_u32(d, o, sender)
        wr_u32(d, o + 4, rep)
        wr_u64(d, o + 8, seq)
        wr_u32(d, o + 16, tseq)
        wr_u16(d, o + 20, rpos)
        d[o + 22] = level
        d[o + 23] = 0
        copy_bytes(d, o + DLV_HDR_BYTES, src, soff, n)
        _commit(ps, dl_h[ei], d, RT_DELIVER, DLV_HDR_BYTES + n, WAKE_DLV_SHIFT + ei)
    if not taken:
        pc[PC_UNROUTED] += 1
        return
    pc[PC_DELIVERED_MSGS] += 1
    pc[PC_DELIVERED_BYTES] += n


@njit(cache=True)
def _deliver_config(ps, pc, dl_h, dl_d, kind, rep, seq, ints, ioff, count):
    n = CFG_HDR_BYTES + 4 * count
    for ei in range(ps[P_N_DL]):
        d = dl_d[ei]
        o = ring_reserve(dl_h[ei], d, n)
        if o < 0:
            pc[PC_DELIVERY_LOST] += 1
            continue
        wr_u32(d, o, kind)
        wr_u32(d, o + 4, rep)
        wr_u64(d, o + 8, seq)
        wr_u32(d, o + 16, count)
        wr_u32(d, o + 20, 0)
        for k in range(count):
            wr_u32(d, o + CFG_HDR_BYTES + 4 * k, ints[ioff + k])
        _commit(ps, dl_h[ei], d, RT_CONFIG, n, WAKE_DLV_SHIFT + ei)


@njit(cache=True)
def _to_pyev(ps, pc, pyev, pyev_ints, row, ints):
    """Copy one core event row (and its node list) for Python."""
    r = ps[P_PYEV_N]
    io = ps[P_PYEV_IOFF]
    ln = row[7]
    if r >= pyev.shape[0] or io + ln > pyev_ints.shape[0]:
        pc[PC_PYEV_FULL] += 1
        return
    for c in range(6):
        pyev[r, c] = row[c]
    pyev[r, 6] = io
    pyev[r, 7] = ln
    for k in range(ln):
        pyev_ints[io + k] = ints[row[6] + k]
    ps[P_PYEV_N] = r + 1
    ps[P_PYEV_IOFF] = io + ln


@njit(cache=True)
def _unpack_deliver(st, ps, pc, dl_h, dl_d, bufs, row):
    sender = row[1]
    slot = _sender_slot(bufs.slot_ids, sender)
    if slot < 0:
        pc[PC_SENDER_SLOTS_FULL] += 1
        return
    pkt = st.ev_data[row[6]:row[6] + row[7]]
    count = pg.pg_unpack(pkt, row[7], slot, bufs.asm_data, bufs.asm_meta, bufs.out_data,
                         bufs.out_meta, 0)
    if count < 0:
        pc[PC_UNPACK_ERRORS] += 1
        return
    level = 1 if row[5] == 1 else 0
    for i in range(count):
        off = bufs.out_meta[i, 0]
        ln = bufs.out_meta[i, 1]
        _deliver_msg(ps, pc, dl_h, dl_d, bufs.route, sender, row[2], row[3], row[4], i, level,
                     bufs.out_data, off, ln)


@njit(cache=True)
def _flush(st, ps, pc, tx_h, tx_d, dl_h, dl_d, bufs):
    """Move the core's outputs to the rings, in the order they happened."""
    _push_frames(st, ps, pc, tx_h, tx_d, bufs)
    n = st.s[S_EV_N]
    for r in range(n):
        row = st.ev_meta[r]
        kind = row[0]
        if kind == EV_DELIVER:
            _unpack_deliver(st, ps, pc, dl_h, dl_d, bufs, row)
        elif kind != 0:
            if kind == EV_CONFIG:
                if row[1] == 1:
                    # the old ring is fully delivered: a partial message can never complete
                    pg.pg_assembly_reset_all(bufs.asm_meta)
                _deliver_config(ps, pc, dl_h, dl_d, row[1], row[2], row[3], st.ev_ints,
                                row[6], row[7])
            _to_pyev(ps, pc, bufs.pyev, bufs.pyev_ints, row, st.ev_ints)
    st.s[S_EV_N] = 0
    st.s[S_EV_OFF] = 0
    st.s[S_EV_IOFF] = 0


@njit(cache=True)
def _ringid_pending(st):
    for r in range(st.s[S_EV_N]):
        if st.ev_meta[r, 0] == EV_RINGID:
            return True
    return False


@njit(cache=True)
def _after_core(st, ps, pc, tx_h, tx_d, dl_h, dl_d, bufs):
    """Outputs of one core call: hold them while a new ring seq is not yet on disk."""
    if _ringid_pending(st):
        ps[P_PERSIST_PENDING] = 1
        # Python needs the seq now; the rest of the row list goes out after persisting
        for r in range(st.s[S_EV_N]):
            if st.ev_meta[r, 0] == EV_RINGID:
                _to_pyev(ps, pc, bufs.pyev, bufs.pyev_ints, st.ev_meta[r], st.ev_ints)
                st.ev_meta[r, 0] = 0  # consumed; _flush skips kind 0 rows for Python
        return RET_PERSIST
    _flush(st, ps, pc, tx_h, tx_d, dl_h, dl_d, bufs)
    return RET_EVENTS if ps[P_PYEV_N] > 0 else RET_IDLE


@njit(cache=True)
def _headroom_ok(ps, dl_h, dl_d, headroom_bytes):
    for ei in range(ps[P_N_DL]):
        if _free_bytes(dl_h[ei], dl_d[ei]) < headroom_bytes:
            return False
    return True


@njit(cache=True)
def _take_submission(st, now_us, ps, pc, d, off, ln, rtype, flags):
    """Hand one submit record to the core: 1 taken (or dropped as malformed), 0 the
    core's queue is full or already holds its intake (P_INTAKE_BYTES)."""
    if rtype == RT_TRANS_ACK:
        if ln < TRANS_ACK_BYTES:
            pc[PC_SUBMIT_MALFORMED] += 1
            return 1
        ended, nd = srp_trans_ack(st, now_us, rd_u32(d, off), rd_u64(d, off + 8))
        ps[P_DEADLINE_US] = nd
        pc[PC_TRANS_ACKS] += ended
        return 1
    if rtype != RT_SUBMIT:
        pc[PC_SUBMIT_MALFORMED] += 1
        return 1
    to_sync_queue = (flags & SUBMIT_SYNC) != 0 and st.s[S_WAITING_TRANS_ACK] == 1
    if (not to_sync_queue and ps[P_INTAKE_BYTES] > 0
            and st.pg_q_meta[pg.Q_USED] >= ps[P_INTAKE_BYTES]):
        pc[PC_INTAKE_HELD] += 1
        return 0                       # as full: a token visit makes room
    ok, nd = srp_submit(st, now_us, d[off:off + ln], ln, 1 if (flags & SUBMIT_SAFE) else 0,
                        1 if (flags & SUBMIT_SYNC) else 0)
    ps[P_DEADLINE_US] = nd
    if ok < 0:
        pc[PC_SUBMIT_MALFORMED] += 1   # too big for the queue, or an empty message
        return 1
    if ok == 1:
        pc[PC_SUBMITTED] += 1
    return ok


@njit(cache=True)
def _take_sync_ahead(st, now_us, ps, pc, h, d, pos, tx_h, tx_d, dl_h, dl_d, bufs):
    """The ring's first record waits for room in the application queue, which cannot drain
    while the node waits for its service sync to end; the sync traffic and the trans-ack
    behind it are what end that wait, so take them now (in their order) and turn each
    taken record into padding, which the ring's reader skips once the tail gets there.
    Records between tail and head belong to the consumer, so rewriting one is safe."""
    while True:
        status, off, ln, rtype, flags, nxt = ring_peek(h, d, pos)
        if status != PEEK_RECORD:
            return RET_IDLE
        if rtype == RT_TRANS_ACK or (flags & SUBMIT_SYNC) != 0:
            if _take_submission(st, now_us, ps, pc, d, off, ln, rtype, flags) == 0:
                return RET_IDLE          # the sync queue is full: keep the rest in order
            hdr_at = off - RECORD_HEADER_BYTES
            d[hdr_at + 4] = RTYPE_PAD & 0xFF
            d[hdr_at + 5] = (RTYPE_PAD >> 8) & 0xFF
            ring_release(h, ring_tail(h), 1, ln)   # tail stays; counts the record popped
            pc[PC_SYNC_AHEAD] += 1
            ret = _after_core(st, ps, pc, tx_h, tx_d, dl_h, dl_d, bufs)
            if ret != RET_IDLE:
                return ret
            if st.s[S_WAITING_TRANS_ACK] == 0:
                return RET_IDLE          # the wait is over: back to ring order
        pos = nxt


@njit(cache=True)
def pump(st, now_us, rx_h, rx_d, sub_h, sub_d, tx_h, tx_d, dl_h, dl_d, bufs, budget,
         headroom_bytes):
    """Feed up to `budget` inputs to the core; see the module docstring and RET_*."""
    ps = bufs.ps
    pc = bufs.pc
    if ps[P_PERSIST_PENDING] == 1:
        return RET_PERSIST
    # outputs held back for a persist, or left by a start/leave call
    if st.s[S_TX_N] > 0 or st.s[S_EV_N] > 0:
        _flush(st, ps, pc, tx_h, tx_d, dl_h, dl_d, bufs)
    if ps[P_PYEV_N] > 0:
        return RET_EVENTS
    # Start and leave go through pump too: one jitted entry point compiles the core once.
    cmd = ps[P_COMMAND]
    ps[P_COMMAND] = CMD_NONE
    if cmd == CMD_START:
        ps[P_DEADLINE_US] = srp_start(st, now_us)
    elif cmd == CMD_LEAVE:
        srp_leave(st, now_us)
        ps[P_DEADLINE_US] = -1
    if cmd != CMD_NONE:
        ret = _after_core(st, ps, pc, tx_h, tx_d, dl_h, dl_d, bufs)
        if ret != RET_IDLE:
            return ret
    done = 0
    ps[P_SUBMIT_BLOCKED] = 0
    while done < budget:
        ret = RET_IDLE
        dl = ps[P_DEADLINE_US]
        if dl >= 0 and dl <= now_us:
            fired, nd = srp_on_timer(st, now_us)
            ps[P_DEADLINE_US] = nd
            pc[PC_TIMER_RUNS] += 1
            ret = _after_core(st, ps, pc, tx_h, tx_d, dl_h, dl_d, bufs)
            done += 1
            if ret != RET_IDLE:
                return ret
            continue
        took = False
        if _headroom_ok(ps, dl_h, dl_d, headroom_bytes):
            if ps[P_LOOP_N] > 0 and _loop_now(st, ps, now_us):
                # one looped frame per turn, like one frame per rx ring: a token going
                # round a one-member ring must not keep the rings below from being read
                took = True
                ps[P_LOOP_FRESH] = 0
                ps[P_LOOP_DUE_US] = now_us + LOOP_IDLE_US
                k = ps[P_LOOP_HEAD]
                reason, nd = srp_on_frame(st, now_us, bufs.loop_data[k], bufs.loop_len[k])
                ps[P_DEADLINE_US] = nd
                if reason != 0:
                    pc[PC_RX_REJECTED] += 1
                ps[P_LOOP_HEAD] = (k + 1) % LOOP_FRAMES
                ps[P_LOOP_N] -= 1
                ret = _after_core(st, ps, pc, tx_h, tx_d, dl_h, dl_d, bufs)
                done += 1
                if ret != RET_IDLE:
                    return ret
            for li in range(ps[P_N_RX]):
                h = rx_h[li]
                d = rx_d[li]
                pos = ring_tail(h)
                status, off, ln, rtype, flags, nxt = ring_peek(h, d, pos)
                if status == PEEK_EMPTY:
                    continue
                if status == PEEK_CORRUPT:
                    ps[P_CORRUPT_RING] = li
                    return RET_CORRUPT
                took = True
                if rtype == RT_FRAME:
                    reason, nd = srp_on_frame(st, now_us, d[off:off + ln], ln)
                    ps[P_DEADLINE_US] = nd
                    pc[PC_RX_FRAMES] += 1
                    if reason != 0:
                        pc[PC_RX_REJECTED] += 1
                ring_release(h, nxt, 1, ln)
                ret = _after_core(st, ps, pc, tx_h, tx_d, dl_h, dl_d, bufs)
                done += 1
                if ret != RET_IDLE:
                    return ret
        else:
            pc[PC_DELIVERY_STALLS] += 1
            return RET_STALLED
        for ei in range(ps[P_N_SUB]):
            h = sub_h[ei]
            d = sub_d[ei]
            # several per turn: a token looping round a one-member ring comes back every
            # turn, and with one submission per turn it carried one message per rotation
            for _k in range(SUBMITS_PER_TURN):
                pos = ring_tail(h)
                status, off, ln, rtype, flags, nxt = ring_peek(h, d, pos)
                if status == PEEK_EMPTY:
                    break
                if status == PEEK_CORRUPT:
                    ps[P_CORRUPT_RING] = WAKE_DLV_SHIFT + ei
                    return RET_CORRUPT
                if _take_submission(st, now_us, ps, pc, d, off, ln, rtype, flags) == 0:
                    # the core's queue is full: leave it in the ring until a token drains it
                    pc[PC_SUBMIT_QUEUE_FULL] += 1
                    ps[P_SUBMIT_BLOCKED] = 1
                    if st.s[S_WAITING_TRANS_ACK] == 1 and (flags & SUBMIT_SYNC) == 0:
                        ret = _take_sync_ahead(st, now_us, ps, pc, h, d, nxt, tx_h, tx_d,
                                               dl_h, dl_d, bufs)
                        if ret != RET_IDLE:
                            return ret
                    break
                took = True
                ps[P_LOOP_FRESH] = 1
                ring_release(h, nxt, 1, ln)
                ret = _after_core(st, ps, pc, tx_h, tx_d, dl_h, dl_d, bufs)
                done += 1
                if ret != RET_IDLE:
                    return ret
        if not took:
            return RET_IDLE
    return RET_BUDGET


def bind_pump(st, rx_t, sub_t, tx_t, dl_t, bufs, budget: int, headroom_bytes: int):
    """pump() for one process's fixed arguments, through its compiled entry point: a
    function of the clock alone. The caller keeps these objects and does not replace them."""
    rest = (*rx_t, *sub_t, *tx_t, *dl_t, bufs, budget, headroom_bytes)
    entry = compiled_entry(pump, (st, 0, *rest))
    return lambda now_us: entry(st, now_us, *rest)
