"""Fragments of link frames above the path MTU, jitted: the UDP carrier's send and reassembly.

The wire format is fragments/wire.py's (a 20-byte header per datagram); these kernels are
the carrier's only implementation of it, called from the jitted secure loop
(secure_loop.py) for DATA frames and from UdpCarrier (carrier_udp.py) for what the Python
path sends and receives, on one shared state — so a frame whose fragments are split
between the two paths (a ping in the middle of a train hands the rest to Python) still
completes. Done in Python, this was most of a knet link's work in a 64 KiB flood: ~100 µs
per frame per peer on each side, on every token hop's critical path.

Send (frag_send): the link frame — a header and a body, two pieces as the secure loop
seals them — is laid out once in fbuf as the datagrams it becomes, [fragment header]
[chunk] back to back, each exactly `mtu` bytes but the last, and handed to the kernel as
UDP GSO sends (one sendmsg with a UDP_SEGMENT control message per run of at most
GSO_SEGS_MAX fragments and GSO_BYTES_MAX bytes); where the kernel refuses GSO (EINVAL,
EIO, EMSGSIZE, EOPNOTSUPP) the run goes one datagram per send and GSO stays off (gso[1]
keeps why). Frame ids: one per-carrier counter (fid), +1 per frame per peer, wrapping.

Receive (frag_take): a bounded table, REASM_ENTRIES_PER_PEER frames in progress per peer,
each in its own 64 KiB slot. A fragment is checked as wire.unpack_header checks it, must
name a peer of the table, and is placed by its index (no other fragment needed); a frame
completes when every index has arrived, and frag_take then returns its slot. A frame
started more than REASM_TIMEOUT_MS ago is given up when its peer starts another (a lost
fragment: Totem retransmits the frame), the oldest is evicted when both slots are busy,
and each peer's last DONE_IDS completed ids make a late duplicate fragment a duplicate
instead of the start of a frame that can never complete.

Arrays (FragState, fragments/table.py, builds them; the kernels take them as one tuple,
`fr`, in this order):
  ra_node int64[P]       the peers' nodeids (row r's entries: r*E .. r*E + E - 1)
  ra_data uint8[P*E, FRAME_SLOT_BYTES]   frames being reassembled
  ra_meta int64[P*E, M_WORDS]            M_*: in progress, id, count, chunk, total, got, start
  ra_have uint8[P*E, FRAG_COUNT_MAX]     1 per fragment index received
  ra_done int64[P, DONE_IDS + 1]         recent completed ids (-1 none), next position
  fcnt   int64[F_WORDS]                  F_* counters (carrier_udp.py names them)
  fid    int64[1]                        the last frame id sent
  gso    int64[2]                        most fragments per GSO send (0: one each), refusal errno
  fbuf   uint8[FBUF_BYTES]               one frame's datagrams, laid out for sending
  fw     int64[FW_WORDS]                 sendmsg scratch: msghdr, UDP_SEGMENT cmsg, one iovec
"""
from __future__ import annotations

import numpy as np

from coroproc.netproc.jit.link_loop import (CMSG_LEN_U16, CMSG_SPACE_U16, EINVAL, EIO,
                                            EMSGSIZE, EOPNOTSUPP, GSO_BYTES_MAX,
                                            GSO_SEGS_MAX, SOL_UDP, UDP_SEGMENT)
from coroproc.netproc.secure.frame import DATAGRAM_MAX_BYTES   # the largest frame taken
from coroproc.njit import njit
from coroproc.shm.syscalls import (IOVEC_WORDS, MMSG_CONTROL, MMSG_CONTROLLEN, MMSG_FLAGS,
                                   MMSG_IOV, MMSG_IOVLEN, MMSG_NAME, MMSG_NAMELEN,
                                   MMSGHDR_WORDS, sendmsg)

# the header (fragments/wire.py; tests pin the two together)
FRAG_HEADER_BYTES = 20
FRAG_MAGIC_BYTE0, FRAG_MAGIC_BYTE1 = 0x44, 0x52       # 0x5244 little-endian ("DR")
FRAG_VERSION = 1
FRAME_SLOT_BYTES = 65536
# fragments of one frame the table takes: 65,535 bytes in chunks of >= 32. A sender with
# a path MTU of 576 needs 118; more is nothing coroproc sends (counted rx_frag_bad)
FRAG_COUNT_MAX = 2048
# fragments of one frame frag_send lays out (a path MTU of 276 bytes or more)
SEND_FRAGS_MAX = 256
FBUF_BYTES = FRAME_SLOT_BYTES + SEND_FRAGS_MAX * FRAG_HEADER_BYTES
REASM_ENTRIES_PER_PEER = 2      # fragments of a frame arrive back to back: a second
                                # frame in progress means loss or reordering
REASM_TIMEOUT_MS = 1000         # Totem has asked for a lost frame again long before
DONE_IDS = 8

# ra_meta columns
M_ACTIVE, M_ID, M_COUNT, M_CHUNK, M_TOTAL, M_GOT, M_START_MS = range(7)
M_WORDS = 8

# fcnt: counters, in carrier_udp.FRAG_COUNTER_NAMES order
(F_RX_FRAGMENTS, F_RX_FRAG_BAD, F_RX_FRAG_SENDER_MISMATCH, F_REASM_FRAMES,
 F_REASM_DUPLICATE, F_REASM_INCONSISTENT, F_REASM_OVERSIZE, F_REASM_TIMED_OUT,
 F_REASM_EVICTED, F_TX_FRAGMENTED_FRAMES, F_TX_FRAGMENTS, F_TX_GSO_SENDS,
 F_TX_GSO_REFUSED) = range(13)
F_WORDS = 13

# frag_take's results below 0 (0 and up: the slot of a frame it completed)
TAKE_PENDING = -1               # kept: the frame still misses fragments
TAKE_REFUSED = -2               # malformed, unknown sender, duplicate, ...: counted

# fw: one sendmsg (syscalls.MMSGHDR_WORDS layout), a UDP_SEGMENT control message, an iovec
FW_MH = 0
FW_CMSG = MMSGHDR_WORDS
FW_IOV = FW_CMSG + 3
FW_WORDS = FW_IOV + IOVEC_WORDS


@njit(cache=True, inline="always")
def _u16(b, i):
    return np.int64(b[i]) | (np.int64(b[i + 1]) << 8)


@njit(cache=True, inline="always")
def _u32(b, i):
    return (np.int64(b[i]) | (np.int64(b[i + 1]) << 8) | (np.int64(b[i + 2]) << 16)
            | (np.int64(b[i + 3]) << 24))


@njit(cache=True, inline="always")
def _put(b, i, v, nbytes):
    for j in range(nbytes):
        b[i + j] = (v >> (8 * j)) & 0xFF


@njit(cache=True, inline="always")
def is_fragment(buf, off, k):
    return k >= 2 and buf[off] == FRAG_MAGIC_BYTE0 and buf[off + 1] == FRAG_MAGIC_BYTE1


@njit(cache=True, inline="always")
def fragment_sender(buf, off, k):
    """The sender nodeid a fragment's header names, -1 if it is too short to name one."""
    if k < FRAG_HEADER_BYTES:
        return -1
    return _u32(buf, off + 4)


@njit(cache=True)
def fragment_header_ok(buf, off, k):
    """wire.unpack_header's checks: magic, version, a possible (index, count, chunk,
    total) and this fragment's length."""
    if k < FRAG_HEADER_BYTES or not is_fragment(buf, off, k):
        return False
    if buf[off + 2] != FRAG_VERSION:
        return False
    index, count = _u16(buf, off + 12), _u16(buf, off + 14)
    chunk, total = _u16(buf, off + 16), _u16(buf, off + 18)
    if chunk == 0 or count == 0 or index >= count:
        return False
    if count != max(1, (total + chunk - 1) // chunk):
        return False
    start = index * chunk
    return k - FRAG_HEADER_BYTES == min(start + chunk, total) - start


@njit(cache=True)
def _is_done(ra_done, row, frame_id):
    for i in range(DONE_IDS):
        if ra_done[row, i] == frame_id:
            return True
    return False


@njit(cache=True)
def _entry_for(ra_meta, ra_have, fcnt, row, frame_id, count, chunk, total, now_ms):
    """The slot of row's frame frame_id (started if new: a stale one given up, else the
    oldest evicted if both are busy), or -1 if the fragment contradicts the frame held."""
    first = row * REASM_ENTRIES_PER_PEER
    free = -1
    oldest = -1
    for e in range(first, first + REASM_ENTRIES_PER_PEER):
        if ra_meta[e, M_ACTIVE]:
            if ra_meta[e, M_ID] == frame_id:
                if (ra_meta[e, M_COUNT] != count or ra_meta[e, M_CHUNK] != chunk
                        or ra_meta[e, M_TOTAL] != total):
                    fcnt[F_REASM_INCONSISTENT] += 1
                    return -1
                return e
            if now_ms - ra_meta[e, M_START_MS] > REASM_TIMEOUT_MS:
                ra_meta[e, M_ACTIVE] = 0
                fcnt[F_REASM_TIMED_OUT] += 1
            elif oldest < 0 or ra_meta[e, M_START_MS] < ra_meta[oldest, M_START_MS]:
                oldest = e
        if not ra_meta[e, M_ACTIVE] and free < 0:
            free = e
    if free < 0:
        free = oldest
        fcnt[F_REASM_EVICTED] += 1
    ra_meta[free, M_ACTIVE] = 1
    ra_meta[free, M_ID] = frame_id
    ra_meta[free, M_COUNT] = count
    ra_meta[free, M_CHUNK] = chunk
    ra_meta[free, M_TOTAL] = total
    ra_meta[free, M_GOT] = 0
    ra_meta[free, M_START_MS] = now_ms
    have = ra_have[free]
    for i in range(count):
        have[i] = 0
    return free


@njit(cache=True)
def frag_take(fr, buf, off, k, expect_sender, now_ms):
    """Take the fragment buf[off:off+k], which came from the address of node
    expect_sender (0: of no one node, e.g. loopback clusters sharing one): the slot of
    the frame it completes (ra_data[slot, :ra_meta[slot, M_TOTAL]], valid until that
    peer's next frames), TAKE_PENDING, or TAKE_REFUSED (counted)."""
    ra_node, ra_data, ra_meta, ra_have, ra_done, fcnt = fr[0], fr[1], fr[2], fr[3], fr[4], fr[5]
    fcnt[F_RX_FRAGMENTS] += 1
    if not fragment_header_ok(buf, off, k):
        fcnt[F_RX_FRAG_BAD] += 1
        return TAKE_REFUSED
    if expect_sender and _u32(buf, off + 4) != expect_sender:
        fcnt[F_RX_FRAG_SENDER_MISMATCH] += 1
        return TAKE_REFUSED
    count, chunk, total = _u16(buf, off + 14), _u16(buf, off + 16), _u16(buf, off + 18)
    if count > FRAG_COUNT_MAX:
        fcnt[F_RX_FRAG_BAD] += 1
        return TAKE_REFUSED
    if total > DATAGRAM_MAX_BYTES:
        fcnt[F_REASM_OVERSIZE] += 1
        return TAKE_REFUSED
    sender = _u32(buf, off + 4)
    row = -1
    for r in range(ra_node.shape[0]):
        if ra_node[r] == sender:
            row = r
            break
    if row < 0:
        fcnt[F_RX_FRAG_SENDER_MISMATCH] += 1     # no peer of ours sent it
        return TAKE_REFUSED
    frame_id = _u32(buf, off + 8)
    if _is_done(ra_done, row, frame_id):
        fcnt[F_REASM_DUPLICATE] += 1
        return TAKE_REFUSED
    e = _entry_for(ra_meta, ra_have, fcnt, row, frame_id, count, chunk, total, now_ms)
    if e < 0:
        return TAKE_REFUSED
    index = _u16(buf, off + 12)
    if ra_have[e, index]:
        fcnt[F_REASM_DUPLICATE] += 1
        return TAKE_REFUSED
    dst = ra_data[e, index * chunk:index * chunk + k - FRAG_HEADER_BYTES]
    src = buf[off + FRAG_HEADER_BYTES:off + k]
    for i in range(k - FRAG_HEADER_BYTES):
        dst[i] = src[i]
    ra_have[e, index] = 1
    ra_meta[e, M_GOT] += 1
    if ra_meta[e, M_GOT] < count:
        return TAKE_PENDING
    ra_meta[e, M_ACTIVE] = 0
    at = ra_done[row, DONE_IDS]
    ra_done[row, at] = frame_id
    ra_done[row, DONE_IDS] = (at + 1) % DONE_IDS
    fcnt[F_REASM_FRAMES] += 1
    return e


@njit(cache=True, inline="always")
def taken_frame(fr, slot):
    """The frame frag_take completed in `slot`: (its slot's bytes, how many of them)."""
    return fr[1][slot], fr[2][slot, M_TOTAL]


@njit(cache=True, inline="always")
def sendable(size, mtu):
    """Can a size-byte link frame go to a peer whose path takes mtu bytes: whole (mtu 0:
    not known yet) or as frag_send's fragments?"""
    if size > DATAGRAM_MAX_BYTES:
        return False
    if mtu <= 0 or size <= mtu:
        return True
    chunk = mtu - FRAG_HEADER_BYTES
    return chunk > 0 and (size + chunk - 1) // chunk <= SEND_FRAGS_MAX


@njit(cache=True)
def _lay_out(fbuf, hdr, hdr_bytes, body, body_off, body_bytes, mtu, local_nodeid, frame_id):
    """Write the frame hdr[:hdr_bytes] + body[body_off:][:body_bytes] into fbuf as its
    datagrams (sendable() said it can); returns how many."""
    total = hdr_bytes + body_bytes
    chunk = mtu - FRAG_HEADER_BYTES
    count = max(1, (total + chunk - 1) // chunk)
    for i in range(count):
        at = i * mtu
        fbuf[at] = FRAG_MAGIC_BYTE0
        fbuf[at + 1] = FRAG_MAGIC_BYTE1
        fbuf[at + 2] = FRAG_VERSION
        fbuf[at + 3] = 0
        _put(fbuf, at + 4, local_nodeid, 4)
        _put(fbuf, at + 8, frame_id, 4)
        _put(fbuf, at + 12, i, 2)
        _put(fbuf, at + 14, count, 2)
        _put(fbuf, at + 16, chunk, 2)
        _put(fbuf, at + 18, total, 2)
        # this fragment's bytes [start, stop) of the frame: from the header, the body
        start = i * chunk
        stop = min(start + chunk, total)
        d = at + FRAG_HEADER_BYTES - start
        for j in range(start, min(stop, hdr_bytes)):
            fbuf[d + j] = hdr[j]
        lo = max(start, hdr_bytes)
        if lo < stop:
            dst = fbuf[d + lo:d + stop]
            src = body[body_off + lo - hdr_bytes:body_off + stop - hdr_bytes]
            for j in range(stop - lo):
                dst[j] = src[j]
    return count


@njit(cache=True)
def _send_one_by_one(fd, fw, fbuf, first, n, mtu, last_bytes):
    """Fragments first .. first + n - 1 of fbuf, one sendmsg each: bytes sent or -errno."""
    fw[FW_MH + MMSG_IOVLEN] = 1
    fw[FW_MH + MMSG_CONTROL] = 0
    fw[FW_MH + MMSG_CONTROLLEN] = 0
    sent = 0
    for i in range(first, first + n):
        fw[FW_IOV] = fbuf.ctypes.data + i * mtu
        fw[FW_IOV + 1] = last_bytes if i == first + n - 1 else mtu
        rc = sendmsg(fd, fw)
        if rc < 0:
            return rc
        sent += rc
    return sent


@njit(cache=True)
def frag_send(fd, sa, salen, hdr, hdr_bytes, body, body_off, body_bytes, mtu, local_nodeid,
              fr):
    """Send the link frame hdr[:hdr_bytes] + body[body_off:][:body_bytes] to the sockaddr
    sa[:salen] as fragments of mtu bytes: the bytes handed to the kernel, or -errno
    (EMSGSIZE if it is not sendable(); else the first error, the rest of the frame not
    sent: Totem retransmits it)."""
    fcnt, fid, gso, fbuf, fw = fr[5], fr[6], fr[7], fr[8], fr[9]
    if mtu <= 0 or not sendable(hdr_bytes + body_bytes, mtu):
        return -EMSGSIZE
    frame_id = (fid[0] + 1) & 0xFFFFFFFF
    count = _lay_out(fbuf, hdr, hdr_bytes, body, body_off, body_bytes, mtu, local_nodeid,
                     frame_id)
    fid[0] = frame_id
    fcnt[F_TX_FRAGMENTED_FRAMES] += 1
    fcnt[F_TX_FRAGMENTS] += count
    laid = count * FRAG_HEADER_BYTES + hdr_bytes + body_bytes
    fw[FW_MH + MMSG_NAME] = sa.ctypes.data
    fw[FW_MH + MMSG_NAMELEN] = salen
    fw[FW_MH + MMSG_IOV] = fw.ctypes.data + 8 * FW_IOV
    fw[FW_MH + MMSG_FLAGS] = 0
    sent = 0
    first = 0
    while first < count:
        run = max(1, min(gso[0], GSO_SEGS_MAX, GSO_BYTES_MAX // mtu))
        n = min(run, count - first)
        run_bytes = min(n * mtu, laid - first * mtu)
        last_bytes = run_bytes - (n - 1) * mtu
        rc = -1
        if n > 1 and gso[0] > 1:
            fw[FW_MH + MMSG_IOVLEN] = 1
            fw[FW_MH + MMSG_CONTROL] = fw.ctypes.data + 8 * FW_CMSG
            fw[FW_MH + MMSG_CONTROLLEN] = CMSG_SPACE_U16
            fw[FW_CMSG] = CMSG_LEN_U16
            fw[FW_CMSG + 1] = SOL_UDP | (UDP_SEGMENT << 32)
            fw[FW_CMSG + 2] = mtu
            fw[FW_IOV] = fbuf.ctypes.data + first * mtu
            fw[FW_IOV + 1] = run_bytes
            rc = sendmsg(fd, fw)
            if rc >= 0:
                fcnt[F_TX_GSO_SENDS] += 1
            elif -rc == EINVAL or -rc == EIO or -rc == EMSGSIZE or -rc == EOPNOTSUPP:
                # the kernel will not segment on this socket or route: one send per
                # fragment from now on, this run included
                gso[0] = 0
                gso[1] = -rc
                fcnt[F_TX_GSO_REFUSED] += 1
                rc = _send_one_by_one(fd, fw, fbuf, first, n, mtu, last_bytes)
        else:
            rc = _send_one_by_one(fd, fw, fbuf, first, n, mtu, last_bytes)
        if rc < 0:
            return rc
        sent += rc
        first += n
    return sent
