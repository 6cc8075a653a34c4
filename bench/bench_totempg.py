"""Throughput of totempg packing and reassembly (coroproc.ringproc.totempg).

Drives submit -> pack -> unpack from an @njit loop, as the ring process does, so the
numbers are the kernels' cost without Python dispatch per call.

    .venv/bin/python bench/bench_totempg.py [--seconds 1.0]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from numba import njit

from coroproc.ringproc import totempg as pg


@njit(cache=True)
def _pump(q, qm, fs, pkt, mp, msg, n, count, asm_data, asm_meta, out_data, out_meta):
    """Submit `count` messages of n bytes, packing/unpacking as the queue fills."""
    delivered = 0
    packets = 0
    submitted = 0
    while submitted < count or qm[pg.Q_COUNT] > 0:
        if submitted < count and pg.pg_submit(q, qm, msg, n, 0) == 1:
            submitted += 1
            continue
        nb, level = pg.pg_pack(q, qm, fs, pkt, mp)
        if nb <= 0:
            break
        packets += 1
        r = pg.pg_unpack(pkt, nb, 0, asm_data, asm_meta, out_data, out_meta, 0)
        if r < 0:
            return -1, packets
        delivered += r
    return delivered, packets


def run(size, mp, seconds):
    msg = pg.build_group_message(b"a", bytes(size))
    n = msg.shape[0]
    q = np.zeros(max(1 << 22, 4 * (n + 64)) // 8 * 8, np.uint8)
    qm = np.zeros(pg.Q_META_LEN, np.int64)
    fs = np.zeros(pg.FRAG_STATE_LEN, np.int64)
    assert pg.pg_queue_init(qm, q.shape[0]) == 0
    pkt = np.zeros(mp, np.uint8)
    asm_data = np.zeros((1, pg.ASM_CAP_BYTES_COROSYNC), np.uint8)
    asm_meta = np.zeros((1, pg.ASM_META_LEN), np.int64)
    out_data = np.zeros(pg.ASM_CAP_BYTES_COROSYNC + 4 * mp, np.uint8)
    out_meta = np.zeros((mp, pg.OUT_META_LEN), np.int64)
    args = (q, qm, fs, pkt, mp, msg, n)
    tail = (asm_data, asm_meta, out_data, out_meta)
    _pump(*args, 10, *tail)                      # compile / load
    count = 64
    while True:
        t = time.perf_counter()
        d, p = _pump(*args, count, *tail)
        dt = time.perf_counter() - t
        if dt > seconds or count > 1 << 26:
            break
        count *= 4
    assert d == count, (d, count)
    return count / dt, count * size / dt / 1e6, p / dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=0.5)
    a = ap.parse_args()
    print(f"{'max_packet':>10} {'payload':>8} {'msgs/s':>12} {'MB/s':>9} {'packets/s':>11}")
    for mp in (pg.max_packet_bytes_for_netmtu(1500), pg.max_packet_bytes_for_netmtu(65536)):
        for size in (0, 64, 1024, 64 * 1024, 1024 * 1024):
            mps, mbs, pps = run(size, mp, a.seconds)
            print(f"{mp:>10} {size:>8} {mps:>12,.0f} {mbs:>9,.0f} {pps:>11,.0f}")


if __name__ == "__main__":
    main()
