"""The fragment header: how a link frame bigger than the path MTU travels as 1..N datagrams.

Carriers whose path cannot take a whole link frame in one datagram cut it into fragments
(the RDMA carrier always — UD messages are at most 4,096 bytes; the UDP carrier when the
frame is bigger than the path MTU discovered for the peer), each with this 20-byte
little-endian header (a frame sent whole by the RDMA carrier travels as fragment 0 of 1):

    off size field
      0   2  magic 0x5244 ('DR' on the wire; a link frame starts 0xC07E, a Totem frame
             0xC070, so none can be taken for another)  -- else rx_frag_bad
      2   1  version (1)
      3   1  flags (0; reserved)
      4   4  src_nodeid     the sender's nodeid (checked against the source the carrier saw)
      8   4  frame_id       per sender, +1 per frame, wraps
     12   2  frag_index     0..frag_count-1
     14   2  frag_count     1..
     16   2  chunk_bytes    data bytes of every fragment but the last
     18   2  frame_bytes    total data bytes of the frame (<= 65,000 fits u16)

Fragment i carries frame[i*chunk : min((i+1)*chunk, frame_bytes)]; the receiver needs no
other fragment to place it, and checks frag_count == ceil(frame_bytes / chunk_bytes).
Fragments are not authenticated on their own: the reassembled link frame is (secure/codec),
so a forged fragment can only spoil the frame it lands in — which Totem retransmits.
"""
from __future__ import annotations

import struct

FRAG_MAGIC = 0x5244
FRAG_MAGIC_BYTES = FRAG_MAGIC.to_bytes(2, "little")
FRAG_VERSION = 1
_HEADER = struct.Struct("<HBBIIHHHH")
FRAG_HEADER_BYTES = _HEADER.size                 # 20
assert FRAG_HEADER_BYTES == 20
FRAME_BYTES_MAX = 0xFFFF


class FragmentError(ValueError):
    """A received fragment header is malformed; the message says which field and why."""


def chunk_bytes_for(mtu_bytes: int) -> int:
    """Data bytes per fragment when a fragment (header included) may be mtu_bytes long:
    the UDP carrier's path MTU in datagram bytes, the RDMA carrier's UD MTU (which does
    not count the GRH area)."""
    assert mtu_bytes > FRAG_HEADER_BYTES, mtu_bytes
    return mtu_bytes - FRAG_HEADER_BYTES


def frag_count_for(frame_bytes: int, chunk_bytes: int) -> int:
    assert chunk_bytes > 0
    return max(1, -(-frame_bytes // chunk_bytes))


def pack_header(into, offset: int, src_nodeid: int, frame_id: int, frag_index: int,
                frag_count: int, chunk_bytes: int, frame_bytes: int) -> None:
    assert 0 <= frag_index < frag_count <= 0xFFFF, (frag_index, frag_count)
    assert 0 <= frame_bytes <= FRAME_BYTES_MAX and 0 < chunk_bytes <= 0xFFFF
    _HEADER.pack_into(into, offset, FRAG_MAGIC, FRAG_VERSION, 0, src_nodeid,
                      frame_id & 0xFFFFFFFF, frag_index, frag_count, chunk_bytes, frame_bytes)


def fragment_span(frag_index: int, chunk_bytes: int, frame_bytes: int) -> tuple[int, int]:
    """(start, stop) of fragment frag_index's data within the frame."""
    start = frag_index * chunk_bytes
    return start, min(start + chunk_bytes, frame_bytes)


def unpack_header(buf, offset: int, length: int) -> tuple[int, int, int, int, int, int]:
    """(src_nodeid, frame_id, frag_index, frag_count, chunk_bytes, frame_bytes) of a fragment
    whose header starts at `offset` and which is `length` bytes long including the header.
    Raises FragmentError on anything that cannot be a fragment we sent."""
    if length < FRAG_HEADER_BYTES:
        raise FragmentError(f"{length} bytes is shorter than the {FRAG_HEADER_BYTES}-byte "
                            "fragment header")
    magic, version, _flags, src, frame_id, index, count, chunk, total = \
        _HEADER.unpack_from(buf, offset)
    if magic != FRAG_MAGIC:
        raise FragmentError(f"magic {magic:#06x} is not {FRAG_MAGIC:#06x}")
    if version != FRAG_VERSION:
        raise FragmentError(f"version {version} is not {FRAG_VERSION}")
    if chunk == 0 or count == 0 or index >= count:
        raise FragmentError(f"fragment {index} of {count} with chunk {chunk} is impossible")
    if count != frag_count_for(total, chunk):
        raise FragmentError(f"frag_count {count} does not match frame_bytes {total} / "
                            f"chunk_bytes {chunk}")
    start, stop = fragment_span(index, chunk, total)
    if length - FRAG_HEADER_BYTES != stop - start:
        raise FragmentError(f"fragment {index}/{count} carries {length - FRAG_HEADER_BYTES} "
                            f"bytes, expected {stop - start}")
    return src, frame_id, index, count, chunk, total


def write_fragment(view, offset: int, frame, src_nodeid: int, frame_id: int, frag_index: int,
                   frag_count: int, chunk_bytes: int) -> int:
    """Write header + data of fragment frag_index of `frame` at view[offset:]; return its length."""
    frame_bytes = len(frame)
    start, stop = fragment_span(frag_index, chunk_bytes, frame_bytes)
    pack_header(view, offset, src_nodeid, frame_id, frag_index, frag_count, chunk_bytes,
                frame_bytes)
    body = offset + FRAG_HEADER_BYTES
    view[body:body + stop - start] = frame[start:stop]
    return FRAG_HEADER_BYTES + stop - start
