"""Workload: payload identity, sizes, bounded client queues, determinism."""
import random

from coroproc.sim import params
from coroproc.sim.workload import HEADER, Workload, crc32, decode_id

NODES = (1, 2, 3)


def make(seed=5, bursts_per_s=200.0, **kw):   # 200/s at 5 ms ticks: a burst every tick
    return Workload(random.Random(seed), NODES, stop_us=10**9, bursts_per_s=bursts_per_s, **kw)


def test_payload_header_and_hash():
    w = make()
    p = w.payload(2, 77, 100)
    assert len(p) == 100 and decode_id(p) == (2, 77)
    assert HEADER.unpack_from(p) == (2, 77)
    assert crc32(p) == crc32(bytes(p)) and crc32(p) != crc32(w.payload(2, 78, 100))
    assert len(w.payload(1, 1, params.SIZE_LARGE_MAX_BYTES)) == params.SIZE_LARGE_MAX_BYTES
    assert decode_id(b"short") == (0, 0)


def test_sizes_mostly_small_some_large():
    w = make()
    sizes = [w.draw_size() for _ in range(5000)]
    assert min(sizes) >= params.SIZE_SMALL_MIN_BYTES and max(sizes) <= params.SIZE_LARGE_MAX_BYTES
    large = sum(s > params.SIZE_SMALL_MAX_BYTES for s in sizes)
    assert 0 < large < 0.05 * len(sizes)
    assert sum(s < 256 for s in sizes) > 0.3 * len(sizes)


def test_client_queue_is_bounded_and_dead_nodes_get_nothing():
    w = make(queue_messages_max=20)
    alive = {1: True, 2: True, 3: False}
    for t in range(200):
        w.tick(t, alive)
    assert all(len(q) <= 20 for q in w.pending.values())
    assert not w.pending[3] and w.dropped_no_client > 0 and w.dropped_queue_full > 0
    assert w.drop_client(1) == len(w.pending[1]) or not w.pending[1]
    assert not w.pending[1]


def test_ticks_stop_and_plan_is_seeded():
    def plan(seed):
        w = Workload(random.Random(seed), NODES, stop_us=50, bursts_per_s=100_000.0, tick_us=5)  # p = 0.5
        alive = dict.fromkeys(NODES, True)
        cont = [w.tick(t, alive) for t in range(0, 100, 5)]
        return cont, {n: list(q) for n, q in w.pending.items()}
    cont, pending = plan(9)
    assert cont == [True] * 10 + [False] * 10
    assert plan(9) == (cont, pending) and plan(10) != (cont, pending)
    safe = [s for q in pending.values() for _, s in q]
    assert safe and any(safe) and not all(safe)


def test_rate_and_storms():
    w = make(bursts_per_s=10.0, storms=0)
    alive = dict.fromkeys(NODES, True)
    for t in range(0, 10_000_000, w.tick_us):
        w.tick(t, alive)
    assert 60 <= w.bursts <= 140          # ~10 per second over 10 s
    stormy = Workload(random.Random(3), NODES, stop_us=2_000_000, bursts_per_s=0.0, storms=2)
    assert len(stormy.storms) == 2
    for lo, hi in stormy.storms:
        assert 0 <= lo < hi <= 2_000_000 and hi - lo <= 200_000
    for t in range(0, 2_000_000, stormy.tick_us):
        stormy.tick(t, alive)
    ticks_in_storms = sum(stormy.in_storm(t) for t in range(0, 2_000_000, stormy.tick_us))
    assert stormy.bursts == 3 * ticks_in_storms > 0   # every node, every storm tick, nothing else
