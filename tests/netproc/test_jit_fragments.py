"""The jitted fragment kernels (jit/fragments.py) against the wire format's Python
definition (fragments/wire.py): what frag_send puts on a real socket parses as the
fragments wire.py describes, and frag_take's table completes, refuses and forgets frames
as its docstring says — out of order, duplicated, contradicted, timed out, evicted."""
import random
import socket

import numpy as np
import pytest

from coroproc.netproc.fragments import wire
from coroproc.netproc.fragments.table import FragState
from coroproc.netproc.jit import fragments as F

SO_NO_CHECK = 11
SENDER = 2


def test_the_kernels_share_the_wire_format_with_wire_py():
    assert F.FRAG_HEADER_BYTES == wire.FRAG_HEADER_BYTES
    assert bytes([F.FRAG_MAGIC_BYTE0, F.FRAG_MAGIC_BYTE1]) == wire.FRAG_MAGIC_BYTES
    assert F.FRAG_VERSION == wire.FRAG_VERSION


@pytest.fixture
def sockets():
    """A sending socket and a plain receiver (no GRO: one recv per datagram)."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(2.0)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.bind(("127.0.0.1", 0))
    yield tx, rx
    tx.close()
    rx.close()


def _sockaddr(addr) -> np.ndarray:
    host, port = addr
    return np.frombuffer(socket.AF_INET.to_bytes(2, "little") + port.to_bytes(2, "big")
                         + socket.inet_aton(host) + bytes(8), np.uint8)


def _receive_frame(rx) -> tuple[int, bytes]:
    """(frame_id, frame) from the fragments of one frame, each parsed by wire.py."""
    parts, want, ids = {}, None, set()
    while want is None or len(parts) < want:
        d = rx.recv(65536)
        src, frame_id, index, count, chunk, total = wire.unpack_header(d, 0, len(d))
        assert src == SENDER
        ids.add(frame_id)
        want = count
        parts[index] = d[wire.FRAG_HEADER_BYTES:]
    assert len(ids) == 1
    return ids.pop(), b"".join(parts[i] for i in range(want))


@pytest.mark.parametrize("mtu", [576, 1400, 9000])
def test_frag_send_puts_wire_py_fragments_on_the_socket(sockets, mtu):
    tx, rx = sockets
    state = FragState([1], gso_segments=64)
    sa = _sockaddr(rx.getsockname())
    frames = [np.frombuffer(random.Random(mtu + n).randbytes(n), np.uint8)
              for n in (mtu - 19, 3 * mtu, 65000)]
    ids = []
    for f in frames:
        sent = state.send(tx.fileno(), sa, f, mtu, SENDER)
        count = wire.frag_count_for(len(f), wire.chunk_bytes_for(mtu))
        assert sent == len(f) + count * wire.FRAG_HEADER_BYTES
        frame_id, got = _receive_frame(rx)
        assert got == f.tobytes()
        ids.append(frame_id)
    assert ids == [(ids[0] + i) & 0xFFFFFFFF for i in range(3)]
    c = state.counters()
    assert c["tx_fragmented_frames"] == 3
    assert c["tx_fragments"] == sum(wire.frag_count_for(len(f), wire.chunk_bytes_for(mtu))
                                    for f in frames)
    # runs of at most 64 fragments and 65,000 bytes: one GSO send each (a run of one
    # fragment is a plain send)
    per_send = min(64, 65000 // mtu)
    runs = [min(per_send, count - first)
            for count in (wire.frag_count_for(len(f), wire.chunk_bytes_for(mtu)) for f in frames)
            for first in range(0, count, per_send)]
    assert c["tx_gso_sends"] == sum(1 for n in runs if n > 1)
    assert c["tx_gso_refused"] == 0


def test_a_refused_gso_send_goes_one_fragment_per_send_and_gso_stays_off(sockets):
    tx, rx = sockets
    # a socket without UDP checksums cannot be segmented by the kernel (EINVAL)
    tx.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
    state = FragState([1], gso_segments=64)
    sa = _sockaddr(rx.getsockname())
    for n in range(2):
        f = np.frombuffer(bytes(range(256)) * 20, np.uint8)
        state.send(tx.fileno(), sa, f, 1400, SENDER)
        assert _receive_frame(rx)[1] == f.tobytes()
    c = state.counters()
    assert (c["tx_gso_refused"], c["tx_gso_sends"]) == (1, 0)
    assert (state.gso_segments, state.gso_refused_errno) == (0, 22)      # EINVAL


def test_a_frame_needing_too_many_fragments_is_refused_with_emsgsize(sockets):
    tx, rx = sockets
    state = FragState([1], gso_segments=64)
    with pytest.raises(OSError, match="fragments of 100 bytes") as e:
        state.send(tx.fileno(), _sockaddr(rx.getsockname()), np.zeros(30000, np.uint8),
                   100, SENDER)
    assert e.value.errno == 90
    assert state.counters()["tx_fragmented_frames"] == 0


def _frags(frame: bytes, frame_id: int, chunk: int = 1000, src: int = SENDER) -> list:
    count = wire.frag_count_for(len(frame), chunk)
    out = []
    for i in range(count):
        b = bytearray(wire.FRAG_HEADER_BYTES + chunk)
        n = wire.write_fragment(b, 0, frame, src, frame_id, i, count, chunk)
        out.append(np.frombuffer(bytes(b[:n]), np.uint8))
    return out


def _take(state: FragState, d: np.ndarray, now_ms: int = 0, came_from: int = 0):
    got = state.take(d, 0, len(d), came_from, now_ms)
    return None if got is None else bytes(got)


def test_fragments_in_any_order_complete_their_frame_once():
    state = FragState([1, SENDER, 3], gso_segments=0)
    frame = random.Random(1).randbytes(7500)
    parts = _frags(frame, 40)
    order = [3, 0, 7, 5, 1, 6, 2, 4]
    got = [_take(state, parts[i]) for i in order]
    assert got[:-1] == [None] * 7 and got[-1] == frame
    assert _take(state, parts[2]) is None             # late: the frame is done
    c = state.counters()
    assert (c["rx_fragments"], c["reasm_frames"], c["reasm_duplicate"]) == (9, 1, 1)
    assert c["reasm_in_progress"] == 0


def test_duplicates_and_contradictions_are_counted_and_change_nothing():
    state = FragState([SENDER], gso_segments=0)
    frame = bytes(range(256)) * 10
    parts = _frags(frame, 7)
    assert _take(state, parts[0]) is None
    assert _take(state, parts[0]) is None                       # the same fragment again
    other = _frags(bytes(3000), 7)                              # same id, other length
    assert _take(state, other[1]) is None
    assert [_take(state, p) for p in parts[1:]][-1] == frame
    c = state.counters()
    assert (c["reasm_duplicate"], c["reasm_inconsistent"], c["reasm_frames"]) == (1, 1, 1)


def test_a_stale_frame_times_out_and_a_third_frame_evicts_the_oldest():
    state = FragState([SENDER], gso_segments=0)
    a, b, c_, d = (_frags(bytes([n]) * 3000, n) for n in (1, 2, 3, 4))
    _take(state, a[0], now_ms=0)
    _take(state, b[0], now_ms=10)
    _take(state, c_[0], now_ms=20)          # both slots busy and young: a is evicted
    counters = state.counters()
    assert (counters["reasm_evicted"], counters["reasm_in_progress"]) == (1, 2)
    _take(state, d[0], now_ms=20 + F.REASM_TIMEOUT_MS + 1)     # b and c are stale
    counters = state.counters()
    assert counters["reasm_timed_out"] == 2 and counters["reasm_in_progress"] == 1
    assert [_take(state, p, 1100) for p in d[1:]][-1] == bytes([4]) * 3000


def test_fragments_that_cannot_be_ours_are_refused_by_reason():
    state = FragState([SENDER], gso_segments=0)
    assert _take(state, _frags(bytes(3000), 1, src=9)[0]) is None         # no peer of ours
    assert _take(state, _frags(bytes(3000), 5)[0], came_from=3) is None   # 3's address
    bad = _frags(bytes(3000), 2)[0].copy()
    bad[2] = 9                                                              # version
    assert _take(state, bad, came_from=3) is None          # a bad header counts as bad
    assert _take(state, _frags(bytes(1000), 2)[0][:19]) is None             # cut short
    assert _take(state, _frags(bytes(3000), 3, chunk=1)[0]) is None         # 3,000 pieces
    assert _take(state, _frags(bytes(65520), 4, chunk=65000)[1]) is None    # > a datagram
    c = state.counters()
    assert c["rx_frag_sender_mismatch"] == 2 and c["rx_frag_bad"] == 3
    assert c["reasm_oversize"] == 1 and c["rx_fragments"] == 6
    assert c["reasm_in_progress"] == 0


def test_interleaved_senders_and_shuffled_duplicated_fragments_all_complete():
    """Seeded: frames of three senders, fragments shuffled within each sender's frame and
    some sent twice; every frame completes exactly once with its bytes."""
    rng = random.Random(2026)
    state = FragState([1, 2, 3], gso_segments=0)
    done = []
    for round_ in range(40):
        queues = {}
        for src in (1, 2, 3):
            frame = rng.randbytes(rng.randrange(1, 20000))
            parts = _frags(frame, round_, chunk=rng.choice((556, 1380, 8952)), src=src)
            parts += [rng.choice(parts) for _ in range(rng.randrange(3))]
            rng.shuffle(parts)
            queues[src] = (frame, parts)
        while any(q[1] for q in queues.values()):
            src = rng.choice([s for s, q in queues.items() if q[1]])
            got = _take(state, queues[src][1].pop())
            if got is not None:
                assert got == queues[src][0]
                done.append((round_, src))
    assert sorted(done) == [(r, s) for r in range(40) for s in (1, 2, 3)]
