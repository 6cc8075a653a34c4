"""The fragment header: wire.py's packing and checks, and the jitted kernels'
(jit/fragments.py) agreeing with them on every header, sound or broken."""
import random

import numpy as np

from coroproc.netproc.fragments.wire import (FRAG_HEADER_BYTES, FragmentError, pack_header,
                                             unpack_header)
from coroproc.netproc.jit.fragments import fragment_header_ok, fragment_sender


def test_a_packed_header_reads_back_field_for_field():
    fields = (0x01020304, 0xA0B0C0D0, 3, 45, 1452, 65000)
    packed = bytearray(FRAG_HEADER_BYTES)
    pack_header(packed, 0, *fields)
    datagram = bytes(packed) + bytes(1452)             # fragment 3 of 45 is full
    assert unpack_header(datagram, 0, len(datagram)) == fields
    arr = np.frombuffer(datagram, np.uint8)
    assert fragment_header_ok(arr, 0, len(arr)) and fragment_sender(arr, 0, len(arr)) == fields[0]


def _wire_ok(d: bytes) -> bool:
    try:
        unpack_header(d, 0, len(d))
        return True
    except FragmentError:
        return False


def test_the_jitted_check_accepts_exactly_what_unpack_header_accepts():
    """Seeded: sound fragments, then each with one byte of its header or its length
    changed; the jitted check and wire.py give the same verdict on every one."""
    rng = random.Random(20261202)
    seen = {True: 0, False: 0}
    for _ in range(3000):
        total = rng.randrange(0, 65536)
        chunk = rng.randrange(1, 9000)
        count = max(1, -(-total // chunk))
        index = rng.randrange(count)
        start = index * chunk
        head = bytearray(FRAG_HEADER_BYTES)
        pack_header(head, 0, rng.getrandbits(32), rng.getrandbits(32), index, count, chunk,
                    total)
        d = bytearray(head + bytes(min(start + chunk, total) - start))
        what = rng.randrange(4)
        if what == 1:
            d[rng.randrange(FRAG_HEADER_BYTES)] = rng.randrange(256)
        elif what == 2:
            d = d[:rng.randrange(len(d) + 1)]
        elif what == 3:
            d += bytes(rng.randrange(1, 4))
        arr = np.frombuffer(bytes(d), np.uint8)
        verdict = _wire_ok(bytes(d))
        assert fragment_header_ok(arr, 0, len(arr)) == verdict, (what, bytes(d[:20]).hex())
        seen[verdict] += 1
    assert seen[True] > 500 and seen[False] > 500
