"""A bounded latency histogram: record microseconds, read p50/p90/p99/max.

This file owns the latency statistics of cpghum and the demo. Samples go into
log-linear buckets (values below 64 µs exact, above that 32 buckets per power of two,
so a percentile is within 1/32 ≈ 3 % of the true sample), in a fixed-size list: memory
does not grow with the run, and recording costs a few integer operations. The maximum
is kept exactly.
"""
from __future__ import annotations

SUB_BITS = 5                             # 2**5 = 32 buckets per power of two
_EXACT = 1 << (SUB_BITS + 1)             # 64: values below are their own bucket
_SHIFTS_MAX = 40                         # up to ~2**46 µs (two years): ample
BUCKETS = _EXACT + _SHIFTS_MAX * (1 << SUB_BITS)


def _bucket(value_us: int) -> int:
    if value_us < _EXACT:
        return max(value_us, 0)
    shift = value_us.bit_length() - (SUB_BITS + 1)
    top = value_us >> shift                              # in [32, 64)
    return min(_EXACT + (shift - 1) * (1 << SUB_BITS) + (top - (1 << SUB_BITS)), BUCKETS - 1)


def _bucket_value(index: int) -> int:
    """The largest value that falls in bucket `index` (percentiles never understate)."""
    if index < _EXACT:
        return index
    shift, top = divmod(index - _EXACT, 1 << SUB_BITS)
    shift += 1
    return (((top + (1 << SUB_BITS)) + 1) << shift) - 1


class LatencyHistogram:
    def __init__(self):
        self._counts = [0] * BUCKETS
        self.count = 0
        self.max_us = 0

    def record(self, value_us: int) -> None:
        self._counts[_bucket(value_us)] += 1
        self.count += 1
        self.max_us = max(self.max_us, value_us)

    def merge(self, other: LatencyHistogram) -> None:
        for i, n in enumerate(other._counts):
            if n:
                self._counts[i] += n
        self.count += other.count
        self.max_us = max(self.max_us, other.max_us)

    def percentile_us(self, pct: float) -> int:
        """The pct-th percentile (0 < pct <= 100) in µs; 0 with no samples."""
        if not 0 < pct <= 100:
            raise ValueError(f"percentile {pct}: allowed 0 < pct <= 100")
        if self.count == 0:
            return 0
        rank = max(1, -(-self.count * pct // 100))       # ceil: the nearest-rank method
        seen = 0
        for i, n in enumerate(self._counts):
            seen += n
            if seen >= rank:
                return min(_bucket_value(i), self.max_us)
        return self.max_us

    def summary(self) -> dict:
        return {"count": self.count, "p50_us": self.percentile_us(50),
                "p90_us": self.percentile_us(90), "p99_us": self.percentile_us(99),
                "max_us": self.max_us}
