"""The CPG delivery lane: ordered MCAST messages to their local readers, with no Python
per message.

What it does is exactly what the Python path does for one delivery-ring record that is a
CPG MCAST exec message in the exec group alone (host.EngineHost._record → cpg
engine._exec_mcast → notify.Notifier.deliver): find the group's local connections that
receive events, check that the sender's node has a process in the group, and queue one
res_lib_cpg_deliver_callback per such connection (ipc/jit/evqueue.py). At the end of a
run it sends what it queued, each connection's events in one sendmmsg.

It runs on a table the engine builds from its Python state (engineprocs/cpg/lane.py) and
rebuilds whenever that state may have changed; delivering MCASTs changes none of it, so
the table holds for a whole run. Anything else stops the run at that record, before
anything was queued for it, and Python handles it: another record type or exec message,
a malformed MCAST, a sender's node not in the group (Corosync logs "Unknown node"), a
group the table marks slow, or a reader whose queue is at its bound or whose event would
exceed its IPC maximum.

Table (see lane.py): gmeta int64[groups, GM_WORDS]; gnames uint8[groups, 128];
grecv int64[groups, recv_max] (event-queue slots of the receiving connections);
gnodes int64[groups, nodes_max] (nodeids with a process in the group); slot_msg_max
int64[slots] (each connection's IPC maximum message size).
"""
from __future__ import annotations

from coroproc.njit import njit

from coroproc.ipc.jit.evqueue import Q_FD, Q_IN_USE, evq_commit, evq_flush, evq_reserve
from coroproc.shm.kernels import PEEK_CORRUPT, PEEK_EMPTY, ring_peek

GM_NAME_LEN = 0
GM_RECV = 1            # receiving connections (rows of grecv)
GM_NODES = 2           # nodes with a process in the group (rows of gnodes)
GM_SLOW = 3            # 1: every message to this group goes through Python
GM_WORDS = 4

# out[]: what a run did
OUT_POS = 0            # cursor after the handled records
OUT_RECORDS = 1        # records handled
OUT_REASON = 2         # why it stopped: R_*
OUT_DELIVERED = 3      # messages that reached at least one local reader
OUT_EVENTS = 4         # events queued
OUT_TOUCHED = 5        # rows of `touched` filled: slots that got events
OUT_WORDS = 6

R_EMPTY = 0            # every record up to the ring's head is handled
R_LIMIT = 1            # max_records handled, more may wait
R_PYTHON = 2           # the record at OUT_POS is for the Python path
R_CORRUPT = 3          # the ring's framing at OUT_POS is broken

# touched[] columns: slot (by row), marker (by slot id), flush errno (by row)
T_SLOT = 0
T_MARK = 1
T_ERRNO = 2
T_WORDS = 3

RT_DELIVER = 1                         # ringproc/records.py
DLV_HDR_BYTES = 24
EXEC_ONLY_PREFIX = (1, 0, 1, 0, 97)    # host.group_prefix(b"a"): count 1, length 1, "a"
EXEC_HEADER_BYTES = 16
EXEC_AT = DLV_HDR_BYTES + 5
BODY_AT = EXEC_AT + EXEC_HEADER_BYTES
CPG_MCAST_EXEC_ID = (2 << 16) | 3      # SERVICE_CPG, MESSAGE_REQ_EXEC_CPG_MCAST
MCAST_HEADER_BYTES = 168               # exec_msgs.py: group, msglen @136, pid @144, source
NAME_MAX = 128
RES_DELIVER_CALLBACK = 5               # MESSAGE_RES_CPG_DELIVER_CALLBACK
# res_lib_cpg_deliver_callback: response header (id @0, size @8, error @16), group name
# (length @24, value @32), msglen @160, nodeid @168, pid @176, message @184
EVENT_HEADER_BYTES = 184


@njit(cache=True, inline="always")
def _u32(a, off):
    return (a[off] | (a[off + 1] << 8) | (a[off + 2] << 16)) | (a[off + 3] << 24)


@njit(cache=True, inline="always")
def _put_u64(a, off, v):
    for i in range(8):
        a[off + i] = (v >> (8 * i)) & 0xFF


@njit(cache=True)
def _find_group(ddata, name_at, name_len, gmeta, gnames, ngroups):
    for g in range(ngroups):
        if gmeta[g, GM_NAME_LEN] != name_len:
            continue
        same = True
        for i in range(name_len):
            if gnames[g, i] != ddata[name_at + i]:
                same = False
                break
        if same:
            return g
    return -1


@njit(cache=True)
def _is_cpg_mcast(ddata, off, n):
    """The record at ddata[off:off+n] is a well-formed CPG MCAST in the exec group alone."""
    if n < BODY_AT + MCAST_HEADER_BYTES:
        return False
    for i in range(5):
        if ddata[off + DLV_HDR_BYTES + i] != EXEC_ONLY_PREFIX[i]:
            return False
    if _u32(ddata, off + EXEC_AT) != CPG_MCAST_EXEC_ID:
        return False
    body = off + BODY_AT
    if _u32(ddata, body) > NAME_MAX:
        return False
    return MCAST_HEADER_BYTES + _u32(ddata, body + 136) <= n - BODY_AT


@njit(cache=True)
def _write_event(arena, at, ddata, body, sender, name_len, msglen):
    size = EVENT_HEADER_BYTES + msglen
    _put_u64(arena, at, RES_DELIVER_CALLBACK)
    _put_u64(arena, at + 8, size)
    _put_u64(arena, at + 16, 0)
    _put_u64(arena, at + 24, name_len)
    for i in range(NAME_MAX):
        arena[at + 32 + i] = ddata[body + 8 + i] if i < name_len else 0
    _put_u64(arena, at + 160, msglen)
    _put_u64(arena, at + 168, sender)
    _put_u64(arena, at + 176, _u32(ddata, body + 144))
    src = ddata[body + MCAST_HEADER_BYTES:body + MCAST_HEADER_BYTES + msglen]
    dst = arena[at + EVENT_HEADER_BYTES:at + size]
    for i in range(msglen):
        dst[i] = src[i]


@njit(cache=True)
def deliver_run(dhdr, ddata, pos, max_records, gmeta, gnames, grecv, gnodes, ngroups,
                table_complete, slot_msg_max, qs, rows, arena, mm, iov, touched, out):
    """Handle MCAST records from cursor pos (see the module docstring); fills out[]."""
    records = delivered = events = ntouched = 0
    reason = R_LIMIT
    while records < max_records:
        st, off, n, rtype, _flags, nxt = ring_peek(dhdr, ddata, pos)
        if st == PEEK_EMPTY:
            reason = R_EMPTY
            break
        if st == PEEK_CORRUPT:
            reason = R_CORRUPT
            break
        if rtype != RT_DELIVER or not _is_cpg_mcast(ddata, off, n):
            reason = R_PYTHON
            break
        body = off + BODY_AT
        name_len = _u32(ddata, body)
        msglen = _u32(ddata, body + 136)
        g = _find_group(ddata, body + 8, name_len, gmeta, gnames, ngroups)
        if g < 0:
            if not table_complete:
                reason = R_PYTHON
                break
            records += 1         # no local connection in the group: nothing to send
            pos = nxt
            continue
        if gmeta[g, GM_SLOW]:
            reason = R_PYTHON
            break
        nrecv = gmeta[g, GM_RECV]
        if nrecv == 0:
            records += 1
            pos = nxt
            continue
        sender = _u32(ddata, off)
        known = False
        for i in range(gmeta[g, GM_NODES]):
            if gnodes[g, i] == sender:
                known = True
                break
        size = EVENT_HEADER_BYTES + msglen
        ok = known
        for i in range(nrecv):
            if not ok:
                break
            s = grecv[g, i]
            ok = (qs[s, Q_IN_USE] == 1 and size <= slot_msg_max[s]
                  and evq_reserve(qs, rows, arena, s, size) >= 0)
        if not ok:
            reason = R_PYTHON
            break
        for i in range(nrecv):
            s = grecv[g, i]
            at = evq_reserve(qs, rows, arena, s, size)
            _write_event(arena, at, ddata, body, sender, name_len, msglen)
            evq_commit(qs, rows, arena, s, size)
            if touched[s, T_MARK] == 0:
                touched[s, T_MARK] = 1
                touched[ntouched, T_SLOT] = s
                ntouched += 1
        events += nrecv
        delivered += 1
        records += 1
        pos = nxt
    for i in range(ntouched):
        s = touched[i, T_SLOT]
        touched[s, T_MARK] = 0
        touched[i, T_ERRNO] = 0
        if qs[s, Q_FD] >= 0:
            _sent, err = evq_flush(qs, rows, arena, mm, iov, s)
            touched[i, T_ERRNO] = err
    out[OUT_POS] = pos
    out[OUT_RECORDS] = records
    out[OUT_REASON] = reason
    out[OUT_DELIVERED] = delivered
    out[OUT_EVENTS] = events
    out[OUT_TOUCHED] = ntouched
