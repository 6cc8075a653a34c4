"""Throughput of one shm ring between two processes, against memcpy and a pipe.

A forked producer pushes records in a jitted loop (ring_push; it returns to Python only
to write the consumer's eventfd when ring_push says the consumer sleeps, or to yield when
the ring is full). The consumer (this process) drains in a jitted loop (ring_peek, copy
the payload out, check its sequence number, release) and sleeps on its Doorbell when the
ring is empty. Every record carries its sequence number; a gap, duplicate or reordering
fails the run.

In the same run: memcpy bandwidth (numpy copy of a 64 MiB buffer) and a plain os.pipe
between two processes with the same record sizes (one os.write per record, the reader
reads 1 MiB at a time). Each shm result is printed as a ratio to those limits.

    .venv/bin/python bench/bench_shm.py [--quick] [--runs 3]

prints a Markdown report; bench/results/shm.md records one with its command.
"""

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np
from numba import njit

from coroproc.shm import Doorbell, ShmRing
from coroproc.shm.layout import W_TAIL
from coroproc.shm.ring import (
    PEEK_RECORD,
    PUSH_FULL,
    PUSH_OK_WAKE,
    ring_peek,
    ring_push,
    ring_release,
)

RING_CAPACITY_BYTES = 1 << 20
# records per run: about 0.3-1 s each on the 2-vCPU VM
SHM_RECORDS = {64: 4_000_000, 1024: 1_000_000, 65536: 30_000}
PIPE_RECORDS = {64: 300_000, 1024: 200_000, 65536: 15_000}
MEMCPY_BYTES = 64 << 20


@njit(cache=True)
def _produce(hdr, data, src, n, seq, end_seq):
    """Push records seq..end_seq-1; return (next seq, 0 full | 1 done | 2 wake needed)."""
    while seq < end_seq:
        for b in range(8):
            src[b] = (seq >> (8 * b)) & 0xFF
        rc = ring_push(hdr, data, 1, 0, src, 0, n)
        if rc == PUSH_FULL:
            return seq, 0
        seq += 1
        if rc == PUSH_OK_WAKE:
            return seq, 2
    return seq, 1


@njit(cache=True)
def _drain(hdr, data, dst, expect_seq, release_every_bytes):
    """Consume everything available; returns (records, next expected seq, errors)."""
    pos = hdr[W_TAIL]  # only this consumer writes tail
    released = pos
    count = 0
    nbytes = 0
    errors = 0
    while True:
        st, off, n, _rtype, _flags, nxt = ring_peek(hdr, data, pos)
        if st != PEEK_RECORD:
            break
        s = data[off : off + n]
        for i in range(n):
            dst[i] = s[i]
        seq = np.int64(0)
        for b in range(8):
            seq |= np.int64(dst[b]) << (8 * b)
        if seq != expect_seq:
            errors += 1
        expect_seq = seq + 1
        count += 1
        nbytes += n
        pos = nxt
        if pos - released >= release_every_bytes:  # let a blocked producer go on
            ring_release(hdr, pos, 0, 0)
            released = pos
    if count:
        ring_release(hdr, pos, count, nbytes)
    return count, expect_seq, errors


def _producer_child(name, wake_fd, go_r, n, total):
    ring = ShmRing.attach(name, role="producer")
    src = np.zeros(n, np.uint8)
    src[8:] = np.arange(n - 8, dtype=np.int64) % 251
    os.read(go_r, 1)
    seq = 0
    while seq < total:
        seq, st = _produce(ring.hdr, ring.data, src, n, seq, total)
        if st == 2:
            os.eventfd_write(wake_fd, 1)
        elif st == 0:
            os.sched_yield()
    ring.close()
    os._exit(0)


def run_shm(n, total):
    name = f"/coroproc.bench{os.getpid()}.1.ring{n}"
    bell = Doorbell()
    ring = ShmRing.create(name, RING_CAPACITY_BYTES, role="consumer")
    go_r, go_w = os.pipe()
    try:
        pid = os.fork()
        if pid == 0:
            try:
                _producer_child(name, bell.fd, go_r, n, total)
            finally:
                os._exit(1)
        dst = np.zeros(n, np.uint8)
        got, expect, errors = 0, 0, 0
        t0 = time.perf_counter()
        os.write(go_w, b"g")
        while got < total:
            c, expect, e = _drain(ring.hdr, ring.data, dst, expect, RING_CAPACITY_BYTES // 4)
            got += c
            errors += e
            if c == 0:
                bell.wait([ring], timeout_s=1.0)
        dt = time.perf_counter() - t0
        _, status = os.waitpid(pid, 0)
        counters = ring.counters()
        if status != 0 or errors or got != total or counters["records_pushed"] != total:
            raise SystemExit(f"shm run {n} B failed: status {status}, {errors} sequence errors, got {got}/{total}")
        return dt, counters
    finally:
        os.close(go_r)
        os.close(go_w)
        ring.unlink()
        ring.close()
        bell.close()


def run_pipe(n, total):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        rec = bytes(n)
        for _ in range(total):
            os.write(w, rec)
        os._exit(0)
    os.close(w)
    buf = bytearray(1 << 20)
    want = n * total
    seen = 0
    t0 = time.perf_counter()
    with os.fdopen(r, "rb", buffering=0) as f:
        while seen < want:
            k = f.readinto(buf)
            if not k:
                break
            seen += k
    dt = time.perf_counter() - t0
    os.waitpid(pid, 0)
    if seen != want:
        raise SystemExit(f"pipe run {n} B: read {seen} of {want} bytes")
    return dt


def run_memcpy():
    src = np.ones(MEMCPY_BYTES, np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    best = []
    for _ in range(5):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best.append(time.perf_counter() - t0)
    return MEMCPY_BYTES / statistics.median(best) / 1e9


@njit(cache=True)
def _copy_loop(dst, src, reps):
    # the same explicit-loop copy the consumer does, on one cache-resident buffer
    for _ in range(reps):
        for i in range(src.shape[0]):
            dst[i] = src[i]


def run_copy_in_cache(n):
    """GB/s of copying n-byte records that stay in cache: the per-record copy's ceiling."""
    src = np.ones(n, np.uint8)
    dst = np.empty_like(src)
    reps = max(1, (256 << 20) // n)
    _copy_loop(dst, src, 1)
    t0 = time.perf_counter()
    _copy_loop(dst, src, reps)
    return reps * n / (time.perf_counter() - t0) / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a tenth of the records, 1 run")
    ap.add_argument("--runs", type=int, default=5, help="runs per size (median reported)")
    args = ap.parse_args()
    scale, runs = (10, 1) if args.quick else (1, args.runs)
    t_start = time.perf_counter()
    run_shm(64, 1000)  # compile (or load from cache) before measuring

    memcpy_gbs = run_memcpy()
    rows = []
    for n in sorted(SHM_RECORDS):
        total = SHM_RECORDS[n] // scale
        results = [run_shm(n, total) for _ in range(runs)]
        dt = statistics.median(r[0] for r in results)
        c = results[len(results) // 2][1]
        ptotal = PIPE_RECORDS[n] // scale
        pdt = statistics.median(run_pipe(n, ptotal) for _ in range(runs))
        rows.append((n, total / dt, total * n / dt / 1e9, ptotal / pdt, c, run_copy_in_cache(n)))

    print("# shm ring throughput (bench/bench_shm.py)\n")
    print(f"{platform.node()} · {os.cpu_count()} CPUs · Python {platform.python_version()} · "
          f"ring {RING_CAPACITY_BYTES >> 10} KiB · median of {runs} run(s)\n")
    print(f"memcpy (numpy, {MEMCPY_BYTES >> 20} MiB, from/to DRAM): {memcpy_gbs:.2f} GB/s\n")
    print("| record | shm records/s | shm GB/s | shm / memcpy | shm / in-cache copy | pipe records/s "
          "| shm / pipe | wakeups req. | consumer flag raises | push_full |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, rps, gbs, prps, c, copy_gbs in rows:
        size = f"{n} B" if n < 1024 else f"{n >> 10} KiB"
        print(f"| {size} | {rps:,.0f} | {gbs:.2f} | {gbs / memcpy_gbs:.2f} | {gbs / copy_gbs:.2f} | "
              f"{prps:,.0f} | {rps / prps:.1f} | {c['wakeups_requested']} | {c['sleeps']} | {c['push_full']} |")
    print(f"\n(wakeups/sleeps/push_full are the counters of the median run; "
          f"whole benchmark {time.perf_counter() - t_start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
