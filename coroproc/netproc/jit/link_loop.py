"""The loop of a plain (udpu / udp) link process, jitted: no Python per frame or per wake-up.

Each turn: drain every socket into the rx ring (a bounded batch per socket), drain the tx
ring onto the socket (a bounded batch), pay a deferred wake-up of the ring process that
fell due (waker.py); if no bound was hit, sleep in poll() on the tx doorbell, the sockets
and the control fds with the ring's sleeping-flag handshake (shm/kernels.py), so the ring
process pays an eventfd write only while this process sleeps. The loop returns to Python
only when a control fd is readable, the caller's deadline (its next heartbeat) has come,
or a signal interrupted the sleep: a few times a second on a busy link.

Why: the same loop in Python cost 120-200 µs of CPU per wake-up on a 2-vCPU VM (its share
of the interpreter, two dispatcher calls per ring handshake, a poll object per sleep), and
a token hop wakes a link process twice on every node.

Per received datagram, the framing checks of the Python path, in its order and with its
counters (see rx checks in docs/netproc.md): source not in the nodelist, our own looped
multicast (udp), runt, oversize, no Totem magic, rx ring full. Per tx record: rtype and
length, then the destination (0 = the link's multicast fan-out, else one nodeid); runs of
full frames to one destination go out as one GSO send (_drain_tx). Socket errors are
counted per errno and are never fatal.

Arrays (built once by LinkProcess; see link.py):
  io     int64 scalars, IO_*; the loop writes IO_CORRUPT_* when the tx ring is corrupt
  pfd    struct pollfd[]: [tx doorbell, receive sockets..., control fds...]
  rx_mcast uint8 per receive socket: 1 = the udp mcast_recv socket
  allowed uint8[k, 17]: packed source addresses the filter lets in (byte 16 = length)
  own    uint8[17]: packed address of our own multicast source (udp)
  dests  uint8[m, 28] sockaddrs; dest_len int64[m]; dest_node int64[m] (0: the group)
  fanout int64[]: rows of dests a multicast goes to
  cnt    int64 counters (C_*, counters.COUNTER_NAMES order); errs int64[2, ERRNO_SLOTS]
  gso    int64[GSO_WORDS]: the sendmsg scratch (GSO_* below)
  buf    uint8[IO_RECV_BYTES]: one receive; src uint8[128]: its source sockaddr
  rxm    int64[RXM_WORDS]: the recvmsg scratch (RXM_* below)
  wk     the waker's words (waker.py)
"""
from __future__ import annotations

import numpy as np

from coroproc.njit import njit

from coroproc.shm.syscalls import (
    EAGAIN,
    EINTR,
    IOVEC_WORDS,
    MMSG_CONTROL,
    MMSG_CONTROLLEN,
    MMSG_FLAGS,
    MMSG_IOV,
    MMSG_IOVLEN,
    MMSG_NAME,
    MMSG_NAMELEN,
    MMSGHDR_WORDS,
    eventfd_drain,
    eventfd_write_one,
    monotonic_ns,
    poll,
    readable,
    recvmsg,
    sendmsg,
)
from coroproc.netproc.jit.waker import (
    waker_note_drain,
    waker_paid,
    waker_pushed,
    waker_settle,
)
from coroproc.ringproc import wire
from coroproc.shm.kernels import (
    PEEK_CORRUPT,
    PEEK_EMPTY,
    PUSH_FULL,
    ring_cancel_sleep,
    ring_peek,
    ring_prepare_sleep,
    ring_push,
    ring_release,
    ring_tail,
)

RTYPE_FRAME = 1
DEST_PREFIX_BYTES = 4          # tx record: [u32 LE dest nodeid][Totem frame]
MAGIC_BYTE0 = wire.MAGIC & 0xFF
MAGIC_BYTE1 = wire.MAGIC >> 8
HDR_BYTES = wire.HDR_BYTES
ADDR_SLOT_BYTES = 17           # 16 address bytes + their length (4 or 16)
SOCKADDR_BYTES = 28            # sockaddr_in6; a sockaddr_in uses the first 16
ERRNO_SLOTS = 256              # errs[direction, errno]; larger errnos share the last slot
ERR_RX, ERR_TX = 0, 1
AF_INET, AF_INET6 = 2, 10

# io words
IO_SENDER_FD = 0
IO_N_RECV = 1
IO_N_CTRL = 2
IO_RING_WAKE_FD = 3            # -1: the rx ring has no consumer eventfd
IO_LIMIT_BYTES = 4             # netmtu + 64: longer datagrams are oversize
IO_FILTER = 5                  # 1: block_unlisted_ips
IO_OWN_PORT = 6                # udp: the port our multicasts come from; -1 otherwise
IO_RX_BATCH = 7
IO_TX_BATCH = 8
IO_CORRUPT_POS = 9             # ... OFF and LEN follow it (peek_tx writes all three)
IO_CORRUPT_OFF = 10
IO_CORRUPT_LEN = 11
IO_POLL_ERRNO = 12             # why poll() failed (RET_POLL_FAILED)
IO_GSO_SEGS = 13               # most frames per GSO send; 0 or 1: one sendmsg per frame
IO_GSO_ERRNO = 14              # why the kernel refused a GSO send (IO_GSO_SEGS went to 0)
IO_RECV_BYTES = 15             # receive buffer: 65,536 with UDP_GRO on, else netmtu + 65
IO_WORDS = 16

# rxm: int64 scratch of one recvmsg: a msghdr, the iovec onto buf, a 64-byte control
# buffer where a GRO receive's UDP_GRO message (the segment size) comes back
RXM_MH = 0
RXM_IOV = MMSGHDR_WORDS
RXM_CTRL = RXM_IOV + IOVEC_WORDS
RXM_CTRL_BYTES = 64
RXM_WORDS = RXM_CTRL + RXM_CTRL_BYTES // 8
UDP_GRO = 104
CMSG_HDR_BYTES = 16

# gso: int64 scratch of one sendmsg: a msghdr (syscalls.MMSGHDR_WORDS layout), one
# UDP_SEGMENT control message (CMSG_SPACE(2) = 24 bytes: cmsg_len, level | type << 32,
# the segment size), then GSO_SEGS_MAX iovecs pointing into the tx ring
GSO_SEGS_MAX = 64              # the kernel's UDP_MAX_SEGMENTS before 6.x
GSO_BYTES_MAX = 65000          # one IPv4/IPv6 datagram: 65,535 less the headers
GSO_MH = 0
GSO_CMSG = MMSGHDR_WORDS
GSO_IOV = GSO_CMSG + 3
GSO_WORDS = GSO_IOV + IOVEC_WORDS * GSO_SEGS_MAX
SOL_UDP = 17
UDP_SEGMENT = 103
CMSG_LEN_U16 = 18              # CMSG_LEN(sizeof(uint16_t)) on x86-64
CMSG_SPACE_U16 = 24
EINVAL, EIO, EMSGSIZE, EOPNOTSUPP = 22, 5, 90, 95

# counters, in counters.COUNTER_NAMES order (link.py checks the two agree)
(C_RX_FRAMES, C_RX_BYTES, C_RX_UNLISTED, C_RX_OWN_MCAST, C_RX_RUNT, C_RX_OVERSIZE,
 C_RX_FOREIGN, C_RX_RING_FULL, C_RX_GRO_TRAINS, C_TX_FRAMES, C_TX_DATAGRAMS, C_TX_BYTES,
 C_TX_UNKNOWN_DEST, C_TX_BAD_RECORD, C_TX_ERRORS, C_TX_GSO_SENDS, C_TX_GSO_REFUSED,
 C_SLEEPS) = range(18)
C_WORDS = 18

# why run_link returned
RET_DEADLINE = 0               # the caller's deadline came (its heartbeat is due)
RET_CONTROL = 1                # a control fd is readable
RET_INTERRUPTED = 2            # a signal interrupted the sleep: let Python run its handler
RET_TX_CORRUPT = 3             # tx ring framing broken at io[IO_CORRUPT_*]
RET_POLL_FAILED = 4            # poll() failed with io[IO_POLL_ERRNO] (a bad fd: a bug)
RET_GO_ON = -1                 # (end_turn: run another turn; never returned to Python)
POLL_TIMEOUT_MS_MAX = 1 << 30


@njit(cache=True, inline="always")
def count_rx_errno(errs, e):
    errs[ERR_RX, min(e, ERRNO_SLOTS - 1)] += 1


@njit(cache=True, inline="always")
def source_matches(src, slot):
    """Does the sockaddr in src carry the packed address in slot (ADDR_SLOT_BYTES)?"""
    n = slot[16]
    fam = src[0] | (src[1] << 8)
    if fam == AF_INET and n == 4:
        at = 4
    elif fam == AF_INET6 and n == 16:
        at = 8
    else:
        return False
    for i in range(n):
        if src[at + i] != slot[i]:
            return False
    return True


@njit(cache=True, inline="always")
def _allowed(src, allowed):
    for k in range(allowed.shape[0]):
        if source_matches(src, allowed[k]):
            return True
    return False


@njit(cache=True, inline="always")
def recv_train(fd, buf, n_max, src, rxm):
    """One receive into buf[:n_max]: (its length or -errno, the segment size of a GRO
    train or 0). The source sockaddr lands in src."""
    base = rxm.ctypes.data
    rxm[RXM_MH + MMSG_NAME] = src.ctypes.data
    rxm[RXM_MH + MMSG_NAMELEN] = src.shape[0]
    rxm[RXM_MH + MMSG_IOV] = base + 8 * RXM_IOV
    rxm[RXM_MH + MMSG_IOVLEN] = 1
    rxm[RXM_MH + MMSG_CONTROL] = base + 8 * RXM_CTRL
    rxm[RXM_MH + MMSG_CONTROLLEN] = RXM_CTRL_BYTES
    rxm[RXM_MH + MMSG_FLAGS] = 0
    rxm[RXM_IOV] = buf.ctypes.data
    rxm[RXM_IOV + 1] = n_max
    n = recvmsg(fd, rxm)
    seg = 0
    if n > 0:
        clen = rxm[RXM_MH + MMSG_CONTROLLEN]
        off = 0
        while off + CMSG_HDR_BYTES <= clen:
            w = RXM_CTRL + off // 8
            c_len = rxm[w]
            if c_len < CMSG_HDR_BYTES:
                break
            if (rxm[w + 1] & 0xFFFFFFFF) == SOL_UDP and (rxm[w + 1] >> 32) == UDP_GRO:
                seg = rxm[w + 2] & 0xFFFFFFFF
                break
            off += (c_len + 7) & ~7
    return n, seg


@njit(cache=True, inline="always")
def take_frame(limit_bytes, wake_fd, rx_h, rx_d, buf, off, n, cnt, wk, ts, u64):
    """The per-frame checks and the push of buf[off:off+n] (this loop's and the secure
    links', secure_loop.py); True if pushed."""
    if n < HDR_BYTES:
        cnt[C_RX_RUNT] += 1
        return False
    if n > limit_bytes:
        cnt[C_RX_OVERSIZE] += 1
        return False
    if buf[off] != MAGIC_BYTE0 or buf[off + 1] != MAGIC_BYTE1:
        cnt[C_RX_FOREIGN] += 1
        return False
    rc = ring_push(rx_h, rx_d, RTYPE_FRAME, 0, buf, off, n)
    if rc == PUSH_FULL:
        cnt[C_RX_RING_FULL] += 1       # Totem retransmits; counted, never silent
        return False
    if waker_pushed(wk, rc, buf[off + wire.O_TYPE], n, monotonic_ns(ts)):
        eventfd_write_one(wake_fd, u64)
        waker_paid(wk)
    return True


@njit(cache=True)
def _drain_socket(io, fd, is_mcast, rx_h, rx_d, buf, src, rxm, allowed, own, cnt, errs,
                  wk, ts, u64):
    """Receive until EAGAIN or the batch bound; True if the bound stopped us.

    With UDP_GRO on the socket a receive may return a train of frames the kernel kept
    together (a peer's GSO send, or packets a NIC coalesced): segments of the size the
    UDP_GRO control message gives, the last possibly shorter. Each is checked and pushed
    as the datagram it was on the wire."""
    n_max = io[IO_RECV_BYTES]
    limit = io[IO_LIMIT_BYTES]
    wake_fd = io[IO_RING_WAKE_FD]
    frames = 0
    nbytes = 0
    bound = True
    for _ in range(io[IO_RX_BATCH]):
        n, seg = recv_train(fd, buf, n_max, src, rxm)
        if n < 0:
            if -n == EAGAIN:
                bound = False
                break
            count_rx_errno(errs, -n)   # e.g. ECONNREFUSED from an earlier ICMP
            continue
        train = seg > 0 and n > seg
        in_train = (n + seg - 1) // seg if train else 1     # drops count frames
        if io[IO_FILTER] != 0 and not _allowed(src, allowed):
            cnt[C_RX_UNLISTED] += in_train
            continue
        if (is_mcast != 0 and ((src[2] << 8) | src[3]) == io[IO_OWN_PORT]
                and source_matches(src, own)):
            cnt[C_RX_OWN_MCAST] += in_train
            continue
        if n > n_max:                  # cut off (MSG_TRUNC gave the real length)
            cnt[C_RX_OVERSIZE] += 1
            continue
        if not train:
            if take_frame(limit, wake_fd, rx_h, rx_d, buf, 0, n, cnt, wk, ts, u64):
                frames += 1
                nbytes += n
            continue
        cnt[C_RX_GRO_TRAINS] += 1
        off = 0
        while off < n:
            k = min(seg, n - off)
            if take_frame(limit, wake_fd, rx_h, rx_d, buf, off, k, cnt, wk, ts, u64):
                frames += 1
                nbytes += k
            off += k
    cnt[C_RX_FRAMES] += frames
    cnt[C_RX_BYTES] += nbytes
    waker_note_drain(wk, frames)
    return bound


@njit(cache=True, inline="always")
def u32_at(tx_d, off):
    """The little-endian u32 at tx_d[off:off+4] (a tx record's dest, a header field)."""
    return (np.int64(tx_d[off]) | (np.int64(tx_d[off + 1]) << 8)
            | (np.int64(tx_d[off + 2]) << 16) | (np.int64(tx_d[off + 3]) << 24))


@njit(cache=True, inline="always")
def _count_tx_errno(errs, cnt, e, frames):
    errs[ERR_TX, min(e, ERRNO_SLOTS - 1)] += frames
    cnt[C_TX_ERRORS] += frames


@njit(cache=True)
def _send_group_to(io, gso, g_n, g_seg, dests, row, dest_len, cnt, errs):
    """Send the group's g_n frames (gso's iovecs) to dests[row]: one GSO sendmsg when
    there are several and the link may, else one sendmsg per frame."""
    fd = io[IO_SENDER_FD]
    base = gso.ctypes.data
    gso[GSO_MH + MMSG_NAME] = dests.ctypes.data + row * dests.shape[1]
    gso[GSO_MH + MMSG_NAMELEN] = dest_len[row]
    if g_n > 1 and io[IO_GSO_SEGS] > 1:
        gso[GSO_MH + MMSG_IOV] = base + 8 * GSO_IOV
        gso[GSO_MH + MMSG_IOVLEN] = g_n
        gso[GSO_MH + MMSG_CONTROL] = base + 8 * GSO_CMSG
        gso[GSO_MH + MMSG_CONTROLLEN] = CMSG_SPACE_U16
        gso[GSO_CMSG] = CMSG_LEN_U16
        gso[GSO_CMSG + 1] = SOL_UDP | (UDP_SEGMENT << 32)
        gso[GSO_CMSG + 2] = g_seg
        sent = sendmsg(fd, gso)
        if sent >= 0:
            cnt[C_TX_GSO_SENDS] += 1
            cnt[C_TX_DATAGRAMS] += g_n
            cnt[C_TX_BYTES] += sent
            return
        e = -sent
        if e != EINVAL and e != EIO and e != EMSGSIZE and e != EOPNOTSUPP:
            _count_tx_errno(errs, cnt, e, g_n)   # ENOBUFS, EAGAIN, ...: Totem retransmits
            return
        # the kernel will not segment for this socket or route (e.g. a frame that needs
        # IP fragmentation): frames go one by one from now on, this group included
        io[IO_GSO_SEGS] = 0
        io[IO_GSO_ERRNO] = e
        cnt[C_TX_GSO_REFUSED] += 1
    gso[GSO_MH + MMSG_IOVLEN] = 1
    gso[GSO_MH + MMSG_CONTROL] = 0
    gso[GSO_MH + MMSG_CONTROLLEN] = 0
    for i in range(g_n):
        gso[GSO_MH + MMSG_IOV] = base + 8 * (GSO_IOV + IOVEC_WORDS * i)
        sent = sendmsg(fd, gso)
        if sent < 0:     # ENOBUFS, EHOSTUNREACH, ECONNREFUSED, EAGAIN (full sndbuf)
            _count_tx_errno(errs, cnt, -sent, 1)
            continue
        cnt[C_TX_DATAGRAMS] += 1
        cnt[C_TX_BYTES] += sent


@njit(cache=True)
def _send_group(io, gso, g_dest, g_n, g_seg, dests, dest_len, dest_node, fanout, cnt,
                errs):
    """Send the group to its destination: 0 = the link's multicast fan-out, else a nodeid."""
    if g_dest == 0:
        for k in range(fanout.shape[0]):
            _send_group_to(io, gso, g_n, g_seg, dests, fanout[k], dest_len, cnt, errs)
        return
    for row in range(dest_node.shape[0]):
        if dest_node[row] == g_dest:
            _send_group_to(io, gso, g_n, g_seg, dests, row, dest_len, cnt, errs)
            return
    cnt[C_TX_UNKNOWN_DEST] += g_n


@njit(cache=True)
def _drain_tx(io, tx_h, tx_d, dests, dest_len, dest_node, fanout, cnt, errs, gso):
    """Send up to one batch, then release it (the kernel read the frames straight from
    the mapping). Returns 1 if the bound stopped us, 0 if the ring is empty, -1 corrupt.

    Consecutive records for one destination whose frames have one length (the last may
    be shorter) form a group, sent as one GSO datagram train per destination: the kernel
    segments it back into those frames, so the wire carries exactly the datagrams one
    send per frame would, in the same order, for one pass through the stack (a udpu
    multicast of full frames was most of a busy sender's CPU: docs/netproc.md)."""
    pos = ring_tail(tx_h)
    records = 0
    nbytes = 0
    more = 1
    data = tx_d.ctypes.data
    g_n = 0
    g_dest = -1
    g_seg = 0
    g_bytes = 0
    g_open = True
    for _ in range(io[IO_TX_BATCH]):
        st, off, n, rtype, nxt = peek_tx(tx_h, tx_d, pos, io, IO_CORRUPT_POS)
        if st == PEEK_EMPTY:
            more = 0
            break
        if st == PEEK_CORRUPT:
            more = -1
            break
        records += 1
        nbytes += n
        pos = nxt
        if rtype != RTYPE_FRAME or n <= DEST_PREFIX_BYTES:
            cnt[C_TX_BAD_RECORD] += 1
            continue
        dest = u32_at(tx_d, off)
        f_len = n - DEST_PREFIX_BYTES
        seg_max = max(io[IO_GSO_SEGS], 1)    # a refused GSO send turns it off mid-batch
        if g_n and (dest != g_dest or not g_open or f_len > g_seg or g_n >= seg_max
                    or g_bytes + f_len > GSO_BYTES_MAX):
            _send_group(io, gso, g_dest, g_n, g_seg, dests, dest_len, dest_node, fanout,
                        cnt, errs)
            g_n = 0
        if g_n == 0:
            g_dest = dest
            g_seg = f_len
            g_bytes = 0
            g_open = True
        at = GSO_IOV + IOVEC_WORDS * g_n
        gso[at] = data + off + DEST_PREFIX_BYTES
        gso[at + 1] = f_len
        g_n += 1
        g_bytes += f_len
        if f_len < g_seg:
            g_open = False                   # only the last segment may be shorter
    if g_n:
        _send_group(io, gso, g_dest, g_n, g_seg, dests, dest_len, dest_node, fanout, cnt,
                    errs)
    if records:
        ring_release(tx_h, pos, records, nbytes)
    cnt[C_TX_FRAMES] += records
    return more


@njit(cache=True)
def run_link(io, pfd, rx_mcast, rx_h, rx_d, tx_h, tx_d, buf, src, rxm, allowed, own,
             dests, dest_len, dest_node, fanout, cnt, errs, gso, wk, ts, u64, deadline_ns):
    """Move frames until deadline_ns (CLOCK_MONOTONIC), a readable control fd or a signal;
    returns RET_*."""
    n_recv = io[IO_N_RECV]
    ctrl = 1 + n_recv
    n_ctrl = io[IO_N_CTRL]
    while True:
        more = False
        for r in range(n_recv):
            if _drain_socket(io, pfd[2 * (1 + r)], rx_mcast[r], rx_h, rx_d, buf, src, rxm,
                             allowed, own, cnt, errs, wk, ts, u64):
                more = True
        tx_more = _drain_tx(io, tx_h, tx_d, dests, dest_len, dest_node, fanout, cnt, errs,
                            gso)
        if tx_more < 0:
            return RET_TX_CORRUPT
        if tx_more > 0:
            more = True
        ret = end_turn(more, pfd, ctrl, n_ctrl, tx_h, wk, io[IO_RING_WAKE_FD], cnt, ts, u64,
                       deadline_ns, io, IO_POLL_ERRNO)
        if ret != RET_GO_ON:
            return ret


@njit(cache=True, inline="always")
def peek_tx(tx_h, tx_d, pos, io, corrupt_at):
    """ring_peek of the tx ring's record at pos: (status, offset, length, type, next). A
    corrupt record's position, offset and length go to io[corrupt_at:corrupt_at + 3],
    where the Python side's tx_ring_corrupt reads them (this loop's and the secure
    links' both)."""
    st, off, n, rtype, _flags, nxt = ring_peek(tx_h, tx_d, pos)
    if st == PEEK_CORRUPT:
        io[corrupt_at] = pos
        io[corrupt_at + 1] = off
        io[corrupt_at + 2] = n
    return st, off, n, rtype, nxt


@njit(cache=True, inline="always")
def end_turn(more, pfd, ctrl, n_ctrl, tx_h, wk, wake_fd, cnt, ts, u64, deadline_ns, io,
             errno_word):
    """The end of a loop turn (this loop's and the secure links', secure_loop.py): pay
    the ring process's deferred wake-up if it fell due; then, if the turn hit no bound
    (`more` false), sleep in poll() on pfd's tx doorbell (slot 0), sockets and control
    fds (n_ctrl from slot ctrl) with the tx ring's sleeping-flag handshake. RET_GO_ON:
    run another turn; else what the loop returns (a failed poll's errno in
    io[errno_word])."""
    now = monotonic_ns(ts)
    pay, wait_ns = waker_settle(wk, now, deadline_ns - now)
    if pay:
        eventfd_write_one(wake_fd, u64)
        waker_paid(wk)
    if wait_ns <= 0:
        return RET_DEADLINE
    if more:
        # a busy link never sleeps: look at the control fds without sleeping
        if n_ctrl and poll(pfd, ctrl, n_ctrl, 0) > 0:
            return RET_CONTROL      # (an error here shows in the sleeping poll)
        return RET_GO_ON
    cnt[C_SLEEPS] += 1
    if ring_prepare_sleep(tx_h) == 0:
        ring_cancel_sleep(tx_h)          # a record came in: no sleep
        return RET_GO_ON
    timeout_ms = min((wait_ns + 999_999) // 1_000_000, POLL_TIMEOUT_MS_MAX)
    rc = poll(pfd, 0, ctrl + n_ctrl, timeout_ms)
    ring_cancel_sleep(tx_h)
    if rc == -EINTR:
        return RET_INTERRUPTED
    if rc < 0:
        io[errno_word] = -rc
        return RET_POLL_FAILED
    if rc > 0:
        if readable(pfd, 0):
            eventfd_drain(pfd[0], u64)
        for i in range(ctrl, ctrl + n_ctrl):
            if readable(pfd, i):
                return RET_CONTROL
    return RET_GO_ON
