"""Zeroed arrays whose memory arrives 4 KiB at a time, as it is first written.

For the big buffers a process fills a little further with every message: the ring
process's sort and retransmit queues (indexed by sequence number), the IPC event queues'
per-client byte rings. NumPy asks for transparent huge pages on any allocation of 4 MiB
or more (madvise MADV_HUGEPAGE); the first write into each 2 MiB of such a buffer then
faults in and zeroes the whole huge page at once. Measured on the benchmark VMs (3 nodes,
1 KiB at 1,000 msgs/s, `perf`): every ring process spent 5.6-8.2 ms at a stretch in
`clear_page_erms` under `do_huge_pmd_anonymous_page` once every ~1.3 s, the time its sort
queue took to reach the next 2 MiB, and the messages sent meanwhile waited those
milliseconds; that lasted until each queue had been written once (at one message a
second, about an hour). With 4 KiB pages the same zeroing is spread over the messages that
cause it. Memory stays lazy (a node does not pay for queue depth it never uses).
"""
from __future__ import annotations

import mmap

import numpy as np


def lazy_zeros(shape: int | tuple[int, ...], dtype) -> np.ndarray:
    """A zeroed C-ordered array on its own anonymous private mapping, kept off huge
    pages (MADV_NOHUGEPAGE where the kernel has it). The mapping lives as long as the
    array (it is the array's base); a fork copies it on write like any heap memory."""
    dt = np.dtype(dtype)
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    if any(d < 0 for d in dims):
        raise ValueError(f"lazy_zeros: negative dimension in {dims}")
    count = int(np.prod(dims, dtype=np.int64))
    nbytes = count * dt.itemsize
    if nbytes == 0:
        return np.zeros(dims, dt)
    m = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    advice = getattr(mmap, "MADV_NOHUGEPAGE", None)
    if advice is not None:
        m.madvise(advice)
    return np.frombuffer(m, dt, count).reshape(dims)
