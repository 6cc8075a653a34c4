"""A secure (knet) link's data path, jitted: frames in clear, AES-GCM or HMAC.

A clear link frame is a 32-byte header (secure/frame.py) and a Totem frame; an AES-GCM
one is the header, the Totem frame encrypted, and a 16-byte tag, the header being the
associated data; an HMAC one is the header, the frame and the digest of both. Sealing
and opening any is a header write or a handful of compares, one call into OpenSSL
(aead.py, mac.py) and the replay window, so nothing in it needs Python,
and Python was most of what the link cost per frame and per wake-up: a token hop wakes
a link process twice on every node. This loop does what the plain links' loop
(link_loop.py) does — drain the socket into the rx ring, drain the tx ring onto the
socket, pay the ring process's deferred wake-up, sleep in poll() with the tx ring's
sleeping-flag handshake — for the frames that are plain DATA, and hands everything else
back to the Python link process (secure_link.py) untouched:

* receive: a datagram (or one segment of a GRO train) goes on here only if it is a DATA
  frame of this link's flags for this node, from a nodelist member whose configured
  address and port it came from, in the session already accepted from that sender and
  under the key id of the session key held for it (rk_id; -1 while none is). An AES-GCM
  body is opened into cbuf, an HMAC frame's digest computed there; either must
  authenticate. Then the replay window
  (replay_window.py, shared with the codec) and the Totem framing checks decide, counted
  as the codec and secure_link.py count them. Anything else — a ping, a pong, a PMTU
  probe, a new session, a header that fails a check, a tag that does not
  verify under the held key, a source that is not the sender's own address — stops the
  loop with RET_SLOW_RX and the train's position in io, and the Python path opens it from
  there (UdpCarrier.adopt_train), with every check, every key and every counter it has.
  Nothing a refused frame carries changes the window: the tag is checked first.
  Fragments (jit/fragments.py) go into the carrier's reassembly table here when they
  come from the address of the sender they name; the frame one completes is opened as
  above, or handed to Python with RET_SLOW_FRAME (its slot in io[SIO_SLOW_SLOT], the
  train's position after the fragment in SIO_SLOW_*).
* send: a tx record goes out here, to each peer it goes to, whole if that peer's path MTU
  is unknown or at least the sealed frame, else as fragments of it (frag_send: GSO
  sends of the datagrams laid out in the carrier's fbuf). AES-GCM and HMAC seal it per
  peer (dest and seq are in the header, so each copy has its own ciphertext or digest)
  into cbuf under the tx context (io[SIO_TX_CTX]). A record no path can take (above a
  datagram with the MTU unknown, or more than SEND_FRAGS_MAX fragments) stops the loop
  with RET_SLOW_TX before it is taken, and Python sends it through the carrier. Which peers
  THIS link serves is the link selector's rule per peer (select.py: send frame k iff
  k % n == index), which Python computes for the link table's state generations in
  rgen; when the table moved, the loop stops with RET_RULES before the record, and
  Python recomputes them.

The sealed seq (useq[0]) is the codec's own counter, so control frames Python seals and
data frames sealed here never share a seq (nor, under one session key, a nonce).

Arrays (built by SecureFastPath, secure_fast.py):
  io     int64 words, SIO_*                 useq  uint64[1]: the last seq sealed
  pfd    struct pollfd[]: [tx doorbell, the socket, control fds...]
  buf    the carrier's train buffer; src uint8[128] its source; rxm recvmsg scratch
  hdr    uint8[32]: the DATA header, dest and seq written per datagram; sm sendmsg scratch
  peers, one row per nodelist member in the codec's order (ReplayTable):
    p_node int64   p_addr uint8[17] (packed host)   p_port int64   p_sa uint8[28] sockaddr
    p_salen int64  p_tslot int64 (link table slot, -1 none)  p_rule int64[2] (n, index)
    p_mtu int64 (largest whole datagram, 0 unknown)  p_stats int64[P_STAT_WORDS]
  fanout int64[]: the rows a multicast (dest 0) goes to
  gens   uint64[2]: the link table's state generations; rgen uint64[2] those of p_rule
  rp_*   the replay windows (replay_window.py)
  rk_id int64[rows]: the key id a row's frames must carry here (0 clear, -1 none yet)
  rk_ctx int64[rows]: the row's opening context (aead.GcmContext / mac.MacContext .ptr);
         iv uint8[12], cbuf (sealed, opened or digested bodies), outl int32[1]: scratch
  cnt    int64[C_WORDS] (link_loop's counter layout); sc int64[SC_WORDS]; errs as link_loop's
"""
from __future__ import annotations

import numpy as np

from coroproc.netproc.jit.link_loop import (
    C_RX_BYTES,
    C_RX_FRAMES,
    C_RX_GRO_TRAINS,
    C_TX_BAD_RECORD,
    C_TX_BYTES,
    C_TX_DATAGRAMS,
    C_TX_ERRORS,
    C_TX_FRAMES,
    C_TX_UNKNOWN_DEST,
    DEST_PREFIX_BYTES,
    ERR_TX,
    ERRNO_SLOTS,
    RET_GO_ON,
    RET_TX_CORRUPT,
    RTYPE_FRAME,
    count_rx_errno,
    end_turn,
    peek_tx,
    recv_train,
    source_matches,
    take_frame,
    u32_at,
)
from coroproc.netproc.jit.aead import gcm_open, gcm_seal, set_iv
from coroproc.netproc.jit.fragments import (frag_send, frag_take, fragment_sender,
                                            is_fragment, sendable, taken_frame)
from coroproc.netproc.jit.mac import mac_compute, mac_verify
from coroproc.netproc.jit.replay_window import window_accept
from coroproc.netproc.jit.waker import (
    waker_note_drain,
)
from coroproc.njit import njit
from coroproc.shm.kernels import (
    PEEK_CORRUPT,
    PEEK_EMPTY,
    ring_release,
    ring_tail,
)
from coroproc.shm.layout import W_RECORDS_POPPED
from coroproc.shm.syscalls import (
    EAGAIN,
    IOVEC_WORDS,
    monotonic_ns,
    MMSG_CONTROL,
    MMSG_CONTROLLEN,
    MMSG_FLAGS,
    MMSG_IOV,
    MMSG_IOVLEN,
    MMSG_NAME,
    MMSG_NAMELEN,
    MMSGHDR_WORDS,
    sendmsg,
)

# the link frame header (secure/frame.py; tests pin the two together)
LINK_HDR_BYTES = 32
LINK_MAGIC_BYTE0, LINK_MAGIC_BYTE1 = 0x7E, 0xC0      # 0xC07E little-endian
LINK_VERSION = 1
LINK_FTYPE_DATA = 1
LINK_FLAGS_CLEAR = 0
LINK_FLAGS_AEAD = 1
LINK_FLAGS_MAC = 2
O_VERSION, O_FTYPE, O_FLAGS, O_KEY_ID, O_LINK, O_RESERVED = 2, 3, 4, 5, 6, 7
O_SENDER, O_DEST, O_SESSION, O_SEQ = 8, 12, 16, 24

# io words
SIO_FD = 0
SIO_RING_WAKE_FD = 1           # -1: the rx ring has no consumer eventfd
SIO_LIMIT_BYTES = 2            # the longest Totem frame taken (LinkSpec.rx_limit_bytes)
SIO_RECV_BYTES = 3             # the train buffer's size
SIO_RX_BATCH = 4
SIO_TX_BATCH = 5
SIO_N_CTRL = 6
SIO_LOCAL_NODEID = 7
SIO_LINKNUMBER = 8
SIO_SLOW_POS = 9               # RET_SLOW_RX: where in buf the Python path takes over,
SIO_SLOW_END = 10              # the train's length
SIO_SLOW_SEG = 11              # and its segment size
SIO_CORRUPT_POS = 12           # ... OFF and LEN follow it (link_loop.peek_tx)
SIO_CORRUPT_OFF = 13
SIO_CORRUPT_LEN = 14
SIO_POLL_ERRNO = 15
SIO_FLAGS = 16                 # LINK_FLAGS_*: what this link's frames carry
SIO_TAG_BYTES = 17             # the AES-GCM tag's 16, the HMAC digest's length, or 0
SIO_TX_CTX = 18                # the sealing context: aead.GcmContext / mac.MacContext .ptr
SIO_SLOW_SLOT = 19             # RET_SLOW_FRAME: the fragment slot of the frame
SIO_WORDS = 20

# sm: one sendmsg: a msghdr, then two iovecs (the header, the frame in the tx ring)
SM_MH = 0
SM_IOV = MMSGHDR_WORDS
SM_WORDS = SM_IOV + 2 * IOVEC_WORDS

# p_stats columns (peerstats.py names)
P_TX_PACKETS, P_TX_BYTES, P_RX_PACKETS, P_RX_BYTES, P_TX_ERRORS = range(5)
P_STAT_WORDS = 5

# sc: the secure link's own counters, named as secure_link.py / the codec / the carrier
# (rx_handed_back / tx_handed_back: how often it left a datagram or record to Python)
(SC_TX_NOT_CHOSEN, SC_RX_OK, SC_RX_REPLAYED, SC_TX_SEALED, SC_RX_EMPTY, SC_RX_TOO_LONG,
 SC_TX_SEAL_FAILED, SC_RX_HANDED_BACK, SC_TX_HANDED_BACK) = range(9)
SC_NAMES = ("tx_not_chosen", "rx_ok", "rx_replayed", "tx_sealed", "rx_empty",
            "rx_too_long", "tx_seal_failed", "rx_handed_back", "tx_handed_back")
SC_WORDS = 9

# why run_secure returned, beyond link_loop's RET_* (0..4)
RET_SLOW_RX = 5                # buf[io[SIO_SLOW_POS]:] is the Python path's to open
RET_SLOW_TX = 6                # the tx ring's next record is the Python path's to send
RET_RULES = 7                  # the link table moved: recompute p_rule, then call again
RET_SLOW_FRAME = 8             # a frame reassembled in fragment slot io[SIO_SLOW_SLOT] is
                               # the Python path's to open, then buf from SIO_SLOW_POS on


@njit(cache=True, inline="always")
def _u64_at(buf, at):
    v = np.uint64(0)
    for i in range(8):
        v |= np.uint64(buf[at + i]) << np.uint64(8 * i)
    return v


@njit(cache=True, inline="always")
def _row_of(p_node, nodeid):
    for r in range(p_node.shape[0]):
        if p_node[r] == nodeid:
            return r
    return -1


@njit(cache=True, inline="always")
def _from_row(src, p_addr, p_port, row):
    """Did the datagram come from row's configured address and port?"""
    return (((np.int64(src[2]) << 8) | src[3]) == p_port[row]
            and source_matches(src, p_addr[row]))


@njit(cache=True, inline="always")
def _fast_row(io, buf, off, k, src, p_node, p_addr, p_port, rp_session, rk_id):
    """The sender's row if buf[off:off+k] is a DATA frame this loop may open (this link's
    flags, and the key id of the session key it holds for the sender), else -1 (the
    Python path opens it, with its checks and counters)."""
    if k < LINK_HDR_BYTES + io[SIO_TAG_BYTES]:
        return -1
    if (buf[off] != LINK_MAGIC_BYTE0 or buf[off + 1] != LINK_MAGIC_BYTE1
            or buf[off + O_VERSION] != LINK_VERSION or buf[off + O_FTYPE] != LINK_FTYPE_DATA
            or buf[off + O_FLAGS] != io[SIO_FLAGS]
            or buf[off + O_LINK] != io[SIO_LINKNUMBER] or buf[off + O_RESERVED] != 0):
        return -1
    if u32_at(buf, off + O_DEST) != io[SIO_LOCAL_NODEID]:
        return -1
    row = _row_of(p_node, u32_at(buf, off + O_SENDER))
    if row < 0 or buf[off + O_KEY_ID] != rk_id[row] or not _from_row(src, p_addr, p_port, row):
        return -1
    session = _u64_at(buf, off + O_SESSION)
    if rp_session[row] == 0 or session != rp_session[row]:
        return -1
    return row


@njit(cache=True)
def _open_data(io, rx_h, rx_d, buf, off, k, row, p_stats, rp_top, rp_bits, rk_ctx, iv, cbuf,
               outl, cnt, sc, wk, ts, u64):
    """A DATA frame from row: authentication (AEAD: opened into cbuf), the replay window,
    then the Totem framing checks and the push (the codec's and secure_link.py
    _push_frame's order and counters). 1 pushed, 0 refused, -1 it did not authenticate
    under the session key held for row: the Python path tries every key with its id."""
    seq = _u64_at(buf, off + O_SEQ)
    n = k - LINK_HDR_BYTES - io[SIO_TAG_BYTES]
    frame, at = buf, off + LINK_HDR_BYTES
    if io[SIO_FLAGS] == LINK_FLAGS_MAC:
        if not mac_verify(rk_ctx[row], io[SIO_TAG_BYTES], buf, off, LINK_HDR_BYTES + n,
                          cbuf, outl):
            return -1
    elif io[SIO_FLAGS] == LINK_FLAGS_AEAD:
        if n > cbuf.shape[0]:
            return -1       # not one datagram's body (a train without its segment size)
        set_iv(iv, seq)
        base = buf.ctypes.data + off
        if not gcm_open(rk_ctx[row], iv, base, LINK_HDR_BYTES, base + LINK_HDR_BYTES, n,
                        cbuf.ctypes.data, outl):
            return -1
        frame, at = cbuf, 0
    if not window_accept(rp_top, rp_bits, row, seq):
        sc[SC_RX_REPLAYED] += 1
        return 0
    sc[SC_RX_OK] += 1
    p_stats[row, P_RX_PACKETS] += 1
    p_stats[row, P_RX_BYTES] += k
    if not take_frame(io[SIO_LIMIT_BYTES], io[SIO_RING_WAKE_FD], rx_h, rx_d, frame, at, n,
                      cnt, wk, ts, u64):
        return 0
    cnt[C_RX_FRAMES] += 1
    cnt[C_RX_BYTES] += n
    return 1


@njit(cache=True)
def _take_fragment(io, rx_h, rx_d, buf, off, k, src, p_node, p_addr, p_port, p_stats,
                   rp_session, rp_top, rp_bits, rk_id, rk_ctx, iv, cbuf, outl, cnt, sc, wk,
                   ts, u64, fr):
    """A fragment: into the carrier's reassembly table (fr: fragments/table.py's arrays),
    and the frame it completes opened here. Frames pushed (0 or 1); -1: the Python path
    takes the fragment (a sender that is no peer, or not from that peer's address: its
    checks and counters); RET_SLOW_FRAME: the completed frame is the Python path's to
    open (io[SIO_SLOW_SLOT])."""
    sender = fragment_sender(buf, off, k)
    prow = _row_of(p_node, sender) if sender >= 0 else -1
    if prow < 0 or not _from_row(src, p_addr, p_port, prow):
        return -1
    slot = frag_take(fr, buf, off, k, sender, monotonic_ns(ts) // 1_000_000)
    if slot < 0:
        return 0
    frame, total = taken_frame(fr, slot)
    row = _fast_row(io, frame, 0, total, src, p_node, p_addr, p_port, rp_session, rk_id)
    opened = -1
    if row >= 0:
        opened = _open_data(io, rx_h, rx_d, frame, 0, total, row, p_stats, rp_top, rp_bits,
                            rk_ctx, iv, cbuf, outl, cnt, sc, wk, ts, u64)
    if opened < 0:
        io[SIO_SLOW_SLOT] = slot
        return RET_SLOW_FRAME
    return opened


@njit(cache=True)
def _drain_rx(io, rx_h, rx_d, buf, src, rxm, p_node, p_addr, p_port, p_stats, rp_session,
              rp_top, rp_bits, rk_id, rk_ctx, iv, cbuf, outl, cnt, sc, errs, wk, ts, u64,
              fr):
    """Receive until EAGAIN, the batch bound or a frame for the Python path: 0 drained,
    1 the bound stopped us, RET_SLOW_RX or RET_SLOW_FRAME (io's SIO_SLOW_* say where)."""
    fd = io[SIO_FD]
    n_max = io[SIO_RECV_BYTES]
    frames = 0
    result = 1
    for _ in range(io[SIO_RX_BATCH]):
        n, seg = recv_train(fd, buf, n_max, src, rxm)
        if n < 0:
            if -n == EAGAIN:
                result = 0
                break
            count_rx_errno(errs, -n)    # e.g. ECONNREFUSED from an earlier ICMP
            continue
        if n == 0:
            sc[SC_RX_EMPTY] += 1        # nothing to open: no link frame is empty
            continue
        if n > n_max:
            sc[SC_RX_TOO_LONG] += 1     # cut off (MSG_TRUNC gave the real length)
            continue
        if seg <= 0 or seg > n:
            seg = n
        elif seg < n:
            cnt[C_RX_GRO_TRAINS] += 1
        off = 0
        while off < n:
            k = min(seg, n - off)
            opened = -1
            if is_fragment(buf, off, k):
                opened = _take_fragment(io, rx_h, rx_d, buf, off, k, src, p_node, p_addr,
                                        p_port, p_stats, rp_session, rp_top, rp_bits, rk_id,
                                        rk_ctx, iv, cbuf, outl, cnt, sc, wk, ts, u64, fr)
                if opened == RET_SLOW_FRAME:
                    io[SIO_SLOW_POS] = off + k      # the train goes on after the frame
                    io[SIO_SLOW_END] = n
                    io[SIO_SLOW_SEG] = seg
                    waker_note_drain(wk, frames)
                    return RET_SLOW_FRAME
            else:
                row = _fast_row(io, buf, off, k, src, p_node, p_addr, p_port, rp_session,
                                rk_id)
                if row >= 0:
                    opened = _open_data(io, rx_h, rx_d, buf, off, k, row, p_stats, rp_top,
                                        rp_bits, rk_ctx, iv, cbuf, outl, cnt, sc, wk, ts,
                                        u64)
            if opened < 0:
                io[SIO_SLOW_POS] = off
                io[SIO_SLOW_END] = n
                io[SIO_SLOW_SEG] = seg
                waker_note_drain(wk, frames)
                return RET_SLOW_RX
            frames += opened
            off += k
    waker_note_drain(wk, frames)
    return result


@njit(cache=True)
def _send_to(io, useq, hdr, sm, tx_d, foff, f_len, row, p_node, p_sa, p_salen, p_mtu,
             p_stats, iv, cbuf, outl, cnt, sc, errs, fr):
    """Seal the f_len-byte frame at tx_d[foff:] for row (the header's dest and the next
    seq; AEAD: the body into cbuf; MAC: header, frame and digest into cbuf) and send it:
    one datagram, or fragments of the row's path MTU if it is bigger (fr: the carrier's
    fragment arrays, fragments/table.py)."""
    seq = useq[0] + np.uint64(1)
    useq[0] = seq
    dest = p_node[row]
    for i in range(4):
        hdr[O_DEST + i] = (dest >> (8 * i)) & 0xFF
    for i in range(8):
        hdr[O_SEQ + i] = np.uint8((seq >> np.uint64(8 * i)) & np.uint64(0xFF))
    flags = io[SIO_FLAGS]
    tag = io[SIO_TAG_BYTES]
    mtu = p_mtu[row]
    fragmented = 0 < mtu < LINK_HDR_BYTES + f_len + tag
    body_off = 0
    if flags == LINK_FLAGS_CLEAR:
        sm[SM_IOV + IOVEC_WORDS] = tx_d.ctypes.data + foff
        sm[SM_IOV + IOVEC_WORDS + 1] = f_len
    else:
        if flags == LINK_FLAGS_AEAD:
            set_iv(iv, seq)
            body = cbuf.ctypes.data
            sealed = gcm_seal(io[SIO_TX_CTX], iv, hdr.ctypes.data, LINK_HDR_BYTES,
                              tx_d.ctypes.data + foff, f_len, body, outl)
        else:
            # the MAC covers header + frame: both go into cbuf, the digest after them
            for i in range(LINK_HDR_BYTES):
                cbuf[i] = hdr[i]
            dst = cbuf[LINK_HDR_BYTES:LINK_HDR_BYTES + f_len]
            src = tx_d[foff:foff + f_len]
            for i in range(f_len):
                dst[i] = src[i]
            body_off = LINK_HDR_BYTES
            body = cbuf.ctypes.data + LINK_HDR_BYTES
            sealed = mac_compute(io[SIO_TX_CTX], cbuf.ctypes.data, LINK_HDR_BYTES + f_len,
                                 body + f_len, outl)
        if not sealed:
            sc[SC_TX_SEAL_FAILED] += 1
            cnt[C_TX_ERRORS] += 1
            p_stats[row, P_TX_ERRORS] += 1
            return
        sm[SM_IOV + IOVEC_WORDS] = body
        sm[SM_IOV + IOVEC_WORDS + 1] = f_len + tag
    sc[SC_TX_SEALED] += 1
    if not fragmented:
        sm[SM_MH + MMSG_NAME] = p_sa.ctypes.data + row * p_sa.shape[1]
        sm[SM_MH + MMSG_NAMELEN] = p_salen[row]
        sent = sendmsg(io[SIO_FD], sm)
    elif flags == LINK_FLAGS_CLEAR:
        sent = frag_send(io[SIO_FD], p_sa[row], p_salen[row], hdr, LINK_HDR_BYTES, tx_d,
                         foff, f_len, mtu, io[SIO_LOCAL_NODEID], fr)
    else:
        sent = frag_send(io[SIO_FD], p_sa[row], p_salen[row], hdr, LINK_HDR_BYTES, cbuf,
                         body_off, f_len + tag, mtu, io[SIO_LOCAL_NODEID], fr)
    if sent < 0:        # ENOBUFS, EHOSTUNREACH, ECONNREFUSED, EAGAIN: Totem retransmits
        errs[ERR_TX, min(-sent, ERRNO_SLOTS - 1)] += 1
        cnt[C_TX_ERRORS] += 1
        p_stats[row, P_TX_ERRORS] += 1
        return
    cnt[C_TX_DATAGRAMS] += 1
    cnt[C_TX_BYTES] += sent
    p_stats[row, P_TX_PACKETS] += 1
    p_stats[row, P_TX_BYTES] += sent


@njit(cache=True, inline="always")
def _chosen(p_rule, p_tslot, row, frame_no):
    return p_tslot[row] >= 0 and frame_no % p_rule[row, 0] == p_rule[row, 1]


@njit(cache=True)
def _drain_tx(io, useq, tx_h, tx_d, hdr, sm, p_node, p_sa, p_salen, p_tslot, p_rule, p_mtu,
              p_stats, fanout, gens, rgen, iv, cbuf, outl, cnt, sc, errs, fr):
    """Send up to one batch, then release what was taken: 0 the ring is empty, 1 the
    bound stopped us, -1 corrupt (io's SIO_CORRUPT_*), RET_SLOW_TX / RET_RULES (the
    record at the ring's tail is not taken)."""
    pos = ring_tail(tx_h)
    frame_no = tx_h[W_RECORDS_POPPED]
    records = 0
    nbytes = 0
    result = 1
    sm[SM_MH + MMSG_IOV] = sm.ctypes.data + 8 * SM_IOV
    sm[SM_MH + MMSG_IOVLEN] = 2
    sm[SM_MH + MMSG_CONTROL] = 0
    sm[SM_MH + MMSG_CONTROLLEN] = 0
    sm[SM_MH + MMSG_FLAGS] = 0
    sm[SM_IOV] = hdr.ctypes.data
    sm[SM_IOV + 1] = LINK_HDR_BYTES
    for _ in range(io[SIO_TX_BATCH]):
        st, off, n, rtype, nxt = peek_tx(tx_h, tx_d, pos, io, SIO_CORRUPT_POS)
        if st == PEEK_EMPTY:
            result = 0
            break
        if st == PEEK_CORRUPT:
            result = -1
            break
        if rtype != RTYPE_FRAME or n <= DEST_PREFIX_BYTES:
            cnt[C_TX_BAD_RECORD] += 1
        else:
            if gens[0] != rgen[0] or gens[1] != rgen[1]:
                result = RET_RULES
                break
            dest = u32_at(tx_d, off)
            f_len = n - DEST_PREFIX_BYTES
            row = -1
            if dest != 0:
                row = _row_of(p_node, dest)
                if row < 0 or p_tslot[row] < 0:
                    cnt[C_TX_UNKNOWN_DEST] += 1
                    records += 1
                    nbytes += n
                    pos = nxt
                    frame_no += 1
                    continue
            # every peer this link serves must take the frame whole or as fragments of
            # its path MTU, or Python sends it (and counts why it cannot)
            size = LINK_HDR_BYTES + f_len + io[SIO_TAG_BYTES]
            ok = True
            for i in range(1 if dest != 0 else fanout.shape[0]):
                r = row if dest != 0 else fanout[i]
                if _chosen(p_rule, p_tslot, r, frame_no) and not sendable(size, p_mtu[r]):
                    ok = False
            if not ok:
                result = RET_SLOW_TX
                break
            for i in range(1 if dest != 0 else fanout.shape[0]):
                r = row if dest != 0 else fanout[i]
                if p_tslot[r] < 0:
                    cnt[C_TX_UNKNOWN_DEST] += 1
                elif not _chosen(p_rule, p_tslot, r, frame_no):
                    sc[SC_TX_NOT_CHOSEN] += 1
                else:
                    _send_to(io, useq, hdr, sm, tx_d, off + DEST_PREFIX_BYTES, f_len, r,
                             p_node, p_sa, p_salen, p_mtu, p_stats, iv, cbuf, outl, cnt, sc,
                             errs, fr)
            frame_no += 1
        records += 1
        nbytes += n
        pos = nxt
    if records:
        ring_release(tx_h, pos, records, nbytes)
    cnt[C_TX_FRAMES] += records
    return result


@njit(cache=True)
def run_secure(io, useq, pfd, rx_h, rx_d, tx_h, tx_d, buf, src, rxm, hdr, sm, p_node,
               p_addr, p_port, p_sa, p_salen, p_tslot, p_rule, p_mtu, p_stats, fanout,
               gens, rgen, rp_session, rp_top, rp_bits, rk_id, rk_ctx, iv, cbuf, outl, cnt,
               sc, errs, wk, ts, u64, fr, deadline_ns):
    """Move DATA frames until deadline_ns (CLOCK_MONOTONIC), a readable control fd, a
    signal, or a frame or record for the Python path; returns RET_*."""
    while True:
        rx = _drain_rx(io, rx_h, rx_d, buf, src, rxm, p_node, p_addr, p_port, p_stats,
                       rp_session, rp_top, rp_bits, rk_id, rk_ctx, iv, cbuf, outl, cnt, sc,
                       errs, wk, ts, u64, fr)
        if rx == RET_SLOW_RX or rx == RET_SLOW_FRAME:
            sc[SC_RX_HANDED_BACK] += 1
            return rx
        tx = _drain_tx(io, useq, tx_h, tx_d, hdr, sm, p_node, p_sa, p_salen, p_tslot,
                       p_rule, p_mtu, p_stats, fanout, gens, rgen, iv, cbuf, outl, cnt, sc,
                       errs, fr)
        if tx < 0:
            return RET_TX_CORRUPT
        if tx == RET_SLOW_TX:
            sc[SC_TX_HANDED_BACK] += 1
            return tx
        if tx == RET_RULES:
            return tx
        ret = end_turn(rx != 0 or tx != 0, pfd, 2, io[SIO_N_CTRL], tx_h, wk,
                       io[SIO_RING_WAKE_FD], cnt, ts, u64, deadline_ns, io, SIO_POLL_ERRNO)
        if ret != RET_GO_ON:
            return ret
