"""The flight recorder's byte ring (coroproc/blackbox/logring.py): lines read back in
order with their pid, level and subsystem; the oldest go first when it wraps; and a
reader in another process gets whole, consecutive lines while the writer keeps writing,
and all of them after the writer is killed."""
from __future__ import annotations

import os
import signal

import pytest

from coroproc.blackbox import logring
from coroproc.blackbox.recorder import private_ring, shared_ring


def test_lines_read_back_in_order_with_what_they_carry():
    buf = private_ring(4096)
    ring = logring.LogRing(buf)
    ring.add(1_000, 42, 5, "TOTEM", "A new membership")
    ring.add(2_000, 43, 7, "CPG", "déjà vu")
    ring.add(3_000, 42, 2, "", "")
    assert logring.read(buf) == [(1_000, 5, "TOTEM", "A new membership", 42),
                                 (2_000, 7, "CPG", "déjà vu", 43), (3_000, 2, "", "", 42)]
    ring.clear()
    assert logring.read(buf) == [] and ring.dropped == 0


@pytest.mark.parametrize("size", [17, 40, 333])      # record lengths that wrap unevenly
def test_a_full_ring_keeps_the_newest_lines_whole(size):
    buf = private_ring(4096)
    ring = logring.LogRing(buf)
    for i in range(500):
        ring.add(i, 1, 6, "S", f"{i:06d}" + "x" * size)
    rows = logring.read(buf)
    numbers = [int(r[3][:6]) for r in rows]
    assert numbers == list(range(500 - len(numbers), 500)) and len(numbers) > 4
    assert all(r[3] == f"{int(r[3][:6]):06d}" + "x" * size for r in rows)
    assert ring.dropped == 500 - len(numbers)
    again = logring.LogRing(buf)                       # a writer that takes the ring over
    again.add(999, 2, 6, "S", "after")
    assert logring.read(buf)[-1] == (999, 6, "S", "after", 2)


def test_a_line_longer_than_a_quarter_of_the_ring_is_cut():
    buf = private_ring(4096)
    logring.LogRing(buf).add(1, 1, 3, "MAIN", "y" * 5000)
    (row,) = logring.read(buf)
    assert row[3].endswith("...") and len(row[3]) == 1024 - logring.RECORD.size - 4


def test_a_buffer_that_is_not_a_ring_is_refused():
    with pytest.raises(ValueError, match="not a version-1 log ring"):
        logring.read(bytearray(8192))
    with pytest.raises(ValueError, match=">= 4096 bytes"):
        logring.init(bytearray(logring.HEADER_BYTES + 100))


def test_another_process_reads_whole_consecutive_lines_while_they_are_written():
    buf = shared_ring(8192)
    pid = os.fork()
    if pid == 0:                                        # the writer, until killed
        ring = logring.LogRing(buf)
        i = 0
        while True:
            ring.add(i, os.getpid(), 6, "LOAD", f"{i:08d}" + "z" * (i % 97))
            i += 1
    try:
        reads = 0
        while reads < 300:
            rows = logring.read(buf)
            if not rows:
                continue
            numbers = [int(r[3][:8]) for r in rows]
            assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
            assert all(r[3][8:] == "z" * (n % 97) and r[0] == n for r, n in zip(rows, numbers))
            reads += 1
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    rows = logring.read(buf)                            # the dead writer's last lines
    assert rows and {r[4] for r in rows} == {pid}
    last = int(rows[-1][3][:8])
    assert [int(r[3][:8]) for r in rows] == list(range(last - len(rows) + 1, last + 1))
