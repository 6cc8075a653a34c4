"""Benchmark: frames/s through two udpu link processes (tx ring → UDP → rx ring) on loopback,
as a ratio to raw Python UDP (sendto + recvfrom_into in one process, same window).

The parent plays the ring process of both nodes: it pushes a window of W frames into A's
tx ring, then takes W frames from B's rx ring, and repeats; so nothing is lost and the
figure is throughput with W frames in flight. Run: .venv/bin/python bench/bench_udp.py
"""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "netproc"))
from netproc_harness import LinkHarness, frame, free_udp_port

from coroproc.netproc.spec import LinkSpec

WINDOW_FRAMES = 128
TOTAL_FRAMES = 40_000


def raw_udp(size_bytes):
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dest, buf, f = rx.getsockname(), bytearray(65536), frame(1, size_bytes)
    t0 = time.perf_counter()
    for _ in range(TOTAL_FRAMES // WINDOW_FRAMES):
        for _ in range(WINDOW_FRAMES):
            tx.sendto(f, dest)
        for _ in range(WINDOW_FRAMES):
            rx.recvfrom_into(buf)
    dt = time.perf_counter() - t0
    rx.close(), tx.close()
    return TOTAL_FRAMES // WINDOW_FRAMES * WINDOW_FRAMES / dt


def via_links(size_bytes):
    peers = {n: ("127.0.0.1", free_udp_port()) for n in (1, 2)}
    mk = lambda n: LinkSpec(0, "udpu", socket.AF_INET, n, "127.0.0.1", peers[n][1], peers,
                            netmtu=max(1500, size_bytes))
    a, b = LinkHarness(mk(1), rx_capacity_bytes=4 << 20), LinkHarness(mk(2), rx_capacity_bytes=4 << 20)
    try:
        f = frame(2, size_bytes)
        b.receive(0)
        rounds = TOTAL_FRAMES // WINDOW_FRAMES
        t0 = time.perf_counter()
        for _ in range(rounds):
            for _ in range(WINDOW_FRAMES):
                a.send(2, f)
            got = b.receive(WINDOW_FRAMES)
        dt = time.perf_counter() - t0
        assert got[-1] == f
        cb = b.stop()
        assert cb["rx_frames"] == rounds * WINDOW_FRAMES, cb
        return rounds * WINDOW_FRAMES / dt
    finally:
        a.close()
        b.close()


def main():
    print(f"window {WINDOW_FRAMES} frames, {TOTAL_FRAMES} frames per run, 2 link processes")
    print(f"{'size':>6} {'raw UDP frames/s':>17} {'link frames/s':>14} {'ratio':>6}")
    for size in (64, 1400, 4000):
        raw = max(raw_udp(size) for _ in range(3))
        link = max(via_links(size) for _ in range(3))
        print(f"{size:>6} {raw:>17,.0f} {link:>14,.0f} {link / raw:>6.2f}")


if __name__ == "__main__":
    main()
