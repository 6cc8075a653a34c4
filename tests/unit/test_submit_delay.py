"""SubmitDelay: the flow-control bound on the submit ring's backlog, learnt from how fast
the ring process drains it. Positions and times are explicit (no clock, no sleeping):
head and tail are the ring's byte positions, as ShmRing reports them."""
from __future__ import annotations

import pytest

from coroproc.engineprocs.submit_delay import FLOOR_BYTES, RATE_WINDOW_S, SubmitDelay

W = RATE_WINDOW_S
MB = 1_000_000


def _learnt(rate_bytes_per_s: float, target_ms: float = 20) -> SubmitDelay:
    """A SubmitDelay that watched one busy window draining at rate_bytes_per_s."""
    d = SubmitDelay(target_ms)
    backlog = 4 * MB
    d.update(backlog, 0, 0.0)
    taken = int(rate_bytes_per_s * W)
    d.update(backlog + taken, taken, W)       # backlog at both ends: the ring was busy
    return d


def test_before_any_measurement_the_floor_bounds_the_backlog():
    d = SubmitDelay(target_ms=20)
    assert not d.update(FLOOR_BYTES - 1, 0, 0.0)
    assert d.update(FLOOR_BYTES, 0, 0.0) and d.activations == 1


def test_a_busy_window_sets_the_limit_to_rate_times_target():
    d = _learnt(12 * MB)
    assert d.rate_bytes_per_s == pytest.approx(12 * MB, rel=1e-3)
    assert d.limit_bytes == pytest.approx(12 * MB * 0.020, rel=1e-3)
    assert d.limit_bytes > FLOOR_BYTES


def test_the_limit_never_goes_below_the_floor():
    assert _learnt(1 * MB).limit_bytes == FLOOR_BYTES       # 1 MB/s x 20 ms = 20 kB


def test_a_window_that_emptied_the_ring_only_raises_the_rate():
    """The ring took all there was: it is at least that fast, maybe faster."""
    d = SubmitDelay(target_ms=20)
    d.update(100_000, 0, 0.0)
    d.update(160_000, 60_000, W)              # busy throughout: 12 MB/s
    assert d.rate_bytes_per_s == pytest.approx(12 * MB, rel=1e-3)
    d.update(160_000, 160_000, 2 * W)         # took 100 kB and emptied: 20 MB/s or more
    assert d.rate_bytes_per_s == pytest.approx(20 * MB, rel=1e-3)
    d.update(170_000, 160_000, 3 * W)         # began empty: nothing learnt
    d.update(170_000, 170_000, 4 * W)         # 10 kB and emptied: 2 MB/s, a lower bound
    assert d.rate_bytes_per_s == pytest.approx(20 * MB, rel=1e-3)


def test_a_window_that_began_empty_teaches_nothing():
    d = _learnt(12 * MB)
    d.update(0, 0, 1.0)
    d.update(1000, 1000, 1.0 + W)
    assert d.rate_bytes_per_s == pytest.approx(12 * MB, rel=1e-3)


def test_busy_windows_average_and_a_stalled_ring_falls_to_the_floor():
    d = _learnt(12 * MB)
    t, tail, head = W, int(12 * MB * W), 4 * MB + int(12 * MB * W)
    for _ in range(40):                       # the ring takes nothing, the backlog stays
        t += W
        d.update(head, tail, t)
    assert d.rate_bytes_per_s < 0.01 * 12 * MB
    assert d.limit_bytes == FLOOR_BYTES
    assert d.active                           # 4 MB waiting on a stalled ring


def test_on_at_the_limit_off_below_half_of_it():
    d = _learnt(12 * MB)
    limit = d.limit_bytes
    base = 10 * MB
    t = 1.5 * W                               # inside the next window: nothing is learnt
    assert not d.update(base, base, t)        # (the 4 MB of the learning window had it on)
    before = d.activations
    assert not d.update(base + limit - 1, base, t)
    assert d.update(base + limit, base, t)
    assert d.update(base + limit // 2, base, t)          # half: still on
    assert not d.update(base + limit // 2 - 1, base, t)  # below half: off
    assert d.activations == before + 1
    assert d.recheck_s() is None


def test_unread_requests_count_toward_the_backlog_but_not_the_rate():
    d = _learnt(12 * MB)
    base, t = 10 * MB, 1.5 * W
    d.update(base, base, t)
    assert not d.update(base + 1000, base, t, unread_bytes=0)
    assert d.update(base + 1000, base, t, unread_bytes=d.limit_bytes)
    assert d.rate_bytes_per_s == pytest.approx(12 * MB, rel=1e-3)
    assert d.recheck_s() == RATE_WINDOW_S


def test_a_ring_restart_forgets_what_was_learnt():
    d = _learnt(12 * MB)
    d.update(10 * MB + d.limit_bytes, 10 * MB, 1.0)
    assert d.active
    d.reset()
    assert not d.active and d.rate_bytes_per_s == 0 and d.limit_bytes == FLOOR_BYTES


def test_a_target_must_be_positive():
    with pytest.raises(ValueError, match="fc_queue_delay_ms=0"):
        SubmitDelay(target_ms=0)
