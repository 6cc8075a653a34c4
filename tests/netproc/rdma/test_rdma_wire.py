"""wire.py: fragment header round trip and every rejection; GRH source parsing; GIDs."""
import ipaddress
import struct

import pytest

from coroproc.netproc.fragments.wire import (FRAG_HEADER_BYTES, FragmentError, chunk_bytes_for,
                                             frag_count_for, pack_header, unpack_header,
                                             write_fragment)
from coroproc.netproc.rdma.wire import (GRH_BYTES, gid_from_text, gid_of_ip, gid_text,
                                        grh_source_gid)


def _fragment(frame: bytes, index: int, chunk: int, src=7, frame_id=9) -> bytearray:
    out = bytearray(GRH_BYTES + FRAG_HEADER_BYTES + chunk)
    n = write_fragment(out, GRH_BYTES, frame, src, frame_id, index,
                       frag_count_for(len(frame), chunk), chunk)
    return out[:GRH_BYTES + n]


def test_header_round_trip_and_fragment_lengths():
    frame = bytes(range(256)) * 10                    # 2560 bytes
    chunk = chunk_bytes_for(1024)
    count = frag_count_for(len(frame), chunk)
    assert count == 3 and chunk == 1024 - FRAG_HEADER_BYTES
    rebuilt = bytearray()
    for i in range(count):
        msg = _fragment(frame, i, chunk)
        src, fid, idx, cnt, ch, total = unpack_header(msg, GRH_BYTES, len(msg) - GRH_BYTES)
        assert (src, fid, idx, cnt, ch, total) == (7, 9, i, 3, chunk, len(frame))
        assert len(msg) - GRH_BYTES <= 1024          # never more than the UD MTU
        rebuilt += msg[GRH_BYTES + FRAG_HEADER_BYTES:]
    assert rebuilt == frame


def test_empty_frame_is_one_fragment():
    msg = _fragment(b"", 0, 100)
    assert unpack_header(msg, GRH_BYTES, len(msg) - GRH_BYTES)[3:] == (1, 100, 0)


@pytest.mark.parametrize("mutate, why", [
    (lambda m: struct.pack_into("<H", m, 40, 0x1234), "magic"),
    (lambda m: struct.pack_into("<B", m, 42, 2), "version"),
    (lambda m: struct.pack_into("<H", m, 54, 9), "frag_count"),     # count != ceil(total/chunk)
    (lambda m: struct.pack_into("<H", m, 52, 5), "impossible"),     # index >= count
    (lambda m: struct.pack_into("<H", m, 56, 0), "impossible"),     # chunk 0
])
def test_bad_headers_are_rejected(mutate, why):
    msg = _fragment(b"x" * 300, 1, 100)
    mutate(msg)
    with pytest.raises(FragmentError, match=why):
        unpack_header(msg, GRH_BYTES, len(msg) - GRH_BYTES)


def test_wrong_length_and_runt_are_rejected():
    msg = _fragment(b"x" * 300, 1, 100)
    with pytest.raises(FragmentError, match="carries 99 bytes, expected 100"):
        unpack_header(msg, GRH_BYTES, len(msg) - GRH_BYTES - 1)
    with pytest.raises(FragmentError, match="shorter than the 20-byte"):
        unpack_header(msg, GRH_BYTES, 19)


def test_grh_source_ipv6_style_and_roce_v2_ipv4():
    grh = bytearray(GRH_BYTES)
    sgid = ipaddress.IPv6Address("fe80::1234:5678").packed
    grh[8:24] = sgid
    assert grh_source_gid(grh, roce_v2_ipv4=False) == sgid
    ipv4 = bytearray(GRH_BYTES)                        # IPv4 header at offset 20
    ipv4[20] = 0x45
    ipv4[32:36] = bytes([10, 1, 2, 3])
    assert grh_source_gid(ipv4, roce_v2_ipv4=True) == gid_of_ip("10.1.2.3")


def test_gids_of_ips_and_text_forms():
    assert gid_text(gid_of_ip("10.0.0.1")) == "0000:0000:0000:0000:0000:ffff:0a00:0001"
    assert gid_of_ip("fd00::5") == ipaddress.IPv6Address("fd00::5").packed
    g = gid_of_ip("192.168.1.9")
    assert gid_from_text(gid_text(g)) == g


def test_pack_header_asserts_bounds():
    with pytest.raises(AssertionError):
        pack_header(bytearray(20), 0, 1, 1, 3, 3, 100, 300)
