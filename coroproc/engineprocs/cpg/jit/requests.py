"""The CPG request lane: a client's cpg_mcast_joined requests straight into the submit
ring, with no Python per message.

What it does is exactly what the Python path does for a MCAST request of a connection
that may multicast (ipc/server.IpcServer._read_requests → core.EngineCore.on_lib_request
→ requests.LibRequests.mcast → host.EngineHost.submit_parts): read the datagram, check
its header and req_lib_cpg_mcast body, write the exec message (req_exec_cpg_mcast in the
exec group) as one submit-ring record, ring the ring process's doorbell if it sleeps,
and count the request off the client's control file.

The caller (engineprocs/cpg/lane.py) only runs it for a connection in state JOIN_STARTED
or JOIN_COMPLETED, with its request socket connected to the client (so only the client
can send on it), no request deferred, no response or event waiting to be sent, and no
sync running. The kernel stops and hands the datagram it has read to the Python path
(OUT_PENDING bytes in buf) for anything else: another request, a malformed one, a
message too large for Totem, or a submit ring fuller than `roomy_used_bytes` (where the
room checks need Python's arithmetic). It stops after a push that brings the ring to
`stop_used_bytes`, so Python runs its flow-control checks.
"""
from __future__ import annotations

from coroproc.njit import njit

from coroproc.shm.atomics import fetch_add_i32_at, load_acquire
from coroproc.shm.kernels import PUSH_OK_WAKE, RESERVE_FULL, ring_commit, ring_reserve
from coroproc.shm.layout import W_HEAD, W_TAIL
from coroproc.shm.syscalls import EAGAIN, eventfd_write_one, recvfrom

from .deliver import CPG_MCAST_EXEC_ID, EXEC_ONLY_PREFIX, MCAST_HEADER_BYTES, NAME_MAX

REQUEST_HEADER_BYTES = 16
MCAST_REQUEST_ID = 2               # MESSAGE_REQ_CPG_MCAST
MCAST_BODY_FIXED_BYTES = 24        # req_lib_cpg_mcast after the header: junk, guarantee, msglen
EXEC_OVERHEAD_BYTES = 256          # core.EXEC_OVERHEAD_BYTES: room asked beyond the request
RT_SUBMIT = 1
RECORD_FIXED_BYTES = 5 + 16 + MCAST_HEADER_BYTES   # prefix, exec header, req_exec_cpg_mcast

OUT_TAKEN = 0          # requests multicast
OUT_PENDING = 1        # length of the datagram left in buf for Python (0: none)
OUT_REASON = 2         # RQ_*
OUT_ERRNO = 3          # with RQ_ERROR
OUT_WORDS = 4

RQ_EMPTY = 0           # the socket has nothing more (or `avail` requests were taken)
RQ_PYTHON = 1          # buf[:OUT_PENDING] is a request for the Python path
RQ_FLOW = 2            # the submit ring reached stop_used_bytes: run flow control
RQ_ERROR = 3           # recv failed with OUT_ERRNO (Python reads again and judges)


@njit(cache=True, inline="always")
def _u32(a, off):
    return (a[off] | (a[off + 1] << 8) | (a[off + 2] << 16)) | (a[off + 3] << 24)


@njit(cache=True, inline="always")
def _i32(a, off):
    v = _u32(a, off)
    return v - (1 << 32) if v >= (1 << 31) else v


@njit(cache=True, inline="always")
def _put(a, off, v, nbytes):
    for i in range(nbytes):
        a[off + i] = (v >> (8 * i)) & 0xFF


@njit(cache=True)
def _write_record(d, at, group, pid, nodeid, source_id, buf, msglen):
    for i in range(5):
        d[at + i] = EXEC_ONLY_PREFIX[i]
    e = at + 5
    _put(d, e, CPG_MCAST_EXEC_ID, 8)
    _put(d, e + 8, 16 + MCAST_HEADER_BYTES + msglen, 8)
    b = e + 16
    glen = group.shape[0]
    _put(d, b, glen, 8)
    for i in range(NAME_MAX):
        d[b + 8 + i] = group[i] if i < glen else 0
    _put(d, b + 136, msglen, 8)
    _put(d, b + 144, pid, 8)
    _put(d, b + 152, nodeid, 8)
    _put(d, b + 160, source_id, 8)
    src = buf[REQUEST_HEADER_BYTES + MCAST_BODY_FIXED_BYTES:
              REQUEST_HEADER_BYTES + MCAST_BODY_FIXED_BYTES + msglen]
    dst = d[b + MCAST_HEADER_BYTES:b + MCAST_HEADER_BYTES + msglen]
    for i in range(msglen):
        dst[i] = src[i]


@njit(cache=True)
def mcast_requests(fd, buf, limit, avail, ctrl_request_sent, group, pid, nodeid, source_id,
                   shdr, sdata, wake_fd, max_message_bytes, roomy_used_bytes,
                   stop_used_bytes, src, src_len, scratch, out):
    """Take up to `avail` requests from the connection's request socket fd (see the
    module docstring); fills out[]."""
    taken = 0
    reason = RQ_EMPTY
    out[OUT_PENDING] = 0
    out[OUT_ERRNO] = 0
    while taken < avail:
        n = recvfrom(fd, buf, limit + 1, src, src_len)
        if n < 0:
            if -n != EAGAIN:
                reason = RQ_ERROR
                out[OUT_ERRNO] = -n
            break
        fixed = REQUEST_HEADER_BYTES + MCAST_BODY_FIXED_BYTES
        ok = (fixed <= n <= limit and _i32(buf, 0) == MCAST_REQUEST_ID
              and _i32(buf, 8) == n and _u32(buf, fixed - 8) == n - fixed)
        msglen = n - fixed
        if ok:
            # core.on_lib_request's room check, and submit_parts' Totem maximum
            ok = (n + EXEC_OVERHEAD_BYTES <= max_message_bytes
                  and 16 + MCAST_HEADER_BYTES + msglen <= max_message_bytes
                  and shdr[W_HEAD] - load_acquire(shdr, W_TAIL) <= roomy_used_bytes)
        at = RESERVE_FULL
        if ok:
            at = ring_reserve(shdr, sdata, RECORD_FIXED_BYTES + msglen)
        if at < 0:
            reason = RQ_PYTHON
            out[OUT_PENDING] = n
            break
        _write_record(sdata, at, group, pid, nodeid, source_id, buf, msglen)
        if ring_commit(shdr, sdata, RT_SUBMIT, 0, RECORD_FIXED_BYTES + msglen) == PUSH_OK_WAKE \
                and wake_fd >= 0:
            eventfd_write_one(wake_fd, scratch)
        taken += 1
        if shdr[W_HEAD] - load_acquire(shdr, W_TAIL) >= stop_used_bytes:
            reason = RQ_FLOW
            break
    if taken and ctrl_request_sent != 0:
        fetch_add_i32_at(ctrl_request_sent, -taken)
    out[OUT_TAKEN] = taken
    out[OUT_REASON] = reason
