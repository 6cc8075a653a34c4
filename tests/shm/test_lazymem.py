"""lazy_zeros: zeroed arrays whose memory arrives 4 KiB at a time (shm/lazymem.py), and the
long-lived processes' big buffers that must use it.

Read from the kernel: /proc/self/smaps says, for the mapping that holds an array, how much
of it is resident and whether huge pages are refused for it (VmFlags `nh`).
"""
from __future__ import annotations

import numpy as np
import pytest

from coroproc.ipc.evqueue import EventQueues
from coroproc.ringproc import pump as P
from coroproc.ringproc.config import TotemConfig
from coroproc.ringproc.state import new_state
from coroproc.shm.lazymem import lazy_zeros

BIG_BYTES = 4 << 20        # NumPy asks for huge pages from this size up


def _mapping(arr: np.ndarray) -> dict:
    """The smaps entry of the mapping that holds arr's first byte: Rss (kB) and VmFlags."""
    addr = arr.__array_interface__["data"][0]
    entry = None
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and ":" not in head:
                lo, hi = (int(x, 16) for x in head.split("-"))
                entry = {"lo": lo, "hi": hi} if lo <= addr < hi else None
            elif entry is not None:
                key, _, value = line.partition(":")
                entry[key] = value.split() if key == "VmFlags" else int(value.split()[0])
                if key == "VmFlags":
                    return entry
    raise AssertionError(f"no mapping holds address {addr:#x}")


def test_lazy_zeros_is_a_zeroed_writable_c_array_of_the_shape_and_dtype():
    a = lazy_zeros((3, 5, 7), np.int32)
    assert a.shape == (3, 5, 7) and a.dtype == np.int32
    assert a.flags.c_contiguous and a.flags.writeable and a.flags.aligned
    assert not a.any()
    a[2, 4, 6] = -9
    assert a.sum() == -9
    assert lazy_zeros(10, np.uint8).shape == (10,)


def test_empty_and_negative_shapes():
    assert lazy_zeros((0, 4), np.int64).shape == (0, 4)
    with pytest.raises(ValueError, match="negative dimension"):
        lazy_zeros((-1, 4), np.uint8)


def test_memory_is_refused_huge_pages_and_arrives_a_page_per_first_write():
    a = lazy_zeros(8 << 20, np.uint8)
    m = _mapping(a)
    assert "nh" in m["VmFlags"]
    assert m["Rss"] == 0, "nothing is resident before the first write"
    a[(5 << 20) + 123] = 1          # the middle of a 2 MiB extent
    m = _mapping(a)
    assert m["Rss"] == 4, f"one write made {m['Rss']} kB resident, not one 4 KiB page"
    assert m.get("AnonHugePages", 0) == 0


def _big_arrays(obj) -> dict[str, np.ndarray]:
    return {name: arr for name, arr in obj._asdict().items()
            if isinstance(arr, np.ndarray) and arr.nbytes >= BIG_BYTES}


def test_every_big_buffer_of_the_ring_process_is_lazy():
    """The ring process's core state and pump buffers, sized as the ring process sizes
    them (default totem config): none of 4 MiB or more may sit on huge-page memory, where
    a first write stalls the token for milliseconds."""
    cfg = TotemConfig()
    st = new_state(cfg.to_array(), 1, 0, cfg.new_message_queue_bytes)
    bufs = P.new_pump_bufs(8, cfg.max_message_bytes, cfg.netmtu)
    big = {**_big_arrays(st), **{f"pump.{k}": v for k, v in _big_arrays(bufs).items()}}
    assert {"sq_data", "rq_data", "ev_data", "pg_q_data", "pump.asm_data"} <= set(big)
    for name, arr in big.items():
        assert "nh" in _mapping(arr)["VmFlags"], f"{name} ({arr.nbytes} bytes) may get huge pages"


def test_the_ipc_event_queues_are_lazy():
    q = EventQueues()
    for name in ("arena", "rows"):
        arr = getattr(q, name)
        assert arr.nbytes >= BIG_BYTES
        assert "nh" in _mapping(arr)["VmFlags"], f"EventQueues.{name} may get huge pages"
