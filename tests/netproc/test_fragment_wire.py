"""fragments/wire.py's two spellings of the fragment header agree: the struct that packs
and checks one header (RDMA carrier, single fragments) and the numpy record the UDP
carrier builds and compares whole trains with. (Header checks: tests/netproc/rdma/
test_rdma_wire.py.)"""
import numpy as np

from coroproc.netproc.fragments.wire import (FRAG_HEADER_BYTES, FRAG_MAGIC, FRAG_VERSION,
                                             HEADER_DTYPE, pack_header, unpack_header)


def test_the_numpy_record_is_byte_for_byte_the_packed_header():
    fields = dict(src=0x01020304, frame_id=0xA0B0C0D0, index=3, count=45, chunk=1452,
                  total=65000)
    packed = bytearray(FRAG_HEADER_BYTES)
    pack_header(packed, 0, fields["src"], fields["frame_id"], fields["index"],
                fields["count"], fields["chunk"], fields["total"])
    record = np.zeros(1, HEADER_DTYPE)
    record[0] = (FRAG_MAGIC, FRAG_VERSION, 0, fields["src"], fields["frame_id"],
                 fields["index"], fields["count"], fields["chunk"], fields["total"])
    assert record.tobytes() == bytes(packed)
    parsed = np.frombuffer(bytes(packed), HEADER_DTYPE)[0]
    assert {k: int(parsed[k]) for k in fields} == fields
    # and what unpack_header reads back from the record's bytes (fragment 3 of 45 is full)
    datagram = record.tobytes() + bytes(fields["chunk"])
    assert unpack_header(datagram, 0, len(datagram)) == (
        fields["src"], fields["frame_id"], fields["index"], fields["count"],
        fields["chunk"], fields["total"])
