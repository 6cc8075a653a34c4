"""coroproc.sched_slice_us: the scheduler slice every process of the node asks for.

Linux's fair scheduler (EEVDF, 6.6+) gives each task a slice, the time it may run before
a task with an earlier virtual deadline takes its CPU (0.75 ms × (1 + log2 of the CPUs,
up to 8): 1.4 ms on a 2-CPU host). From 6.12 a SCHED_OTHER task may ask for its own
slice, between 100 µs and 100 ms, with sched_setattr's sched_runtime; a shorter slice
gives the task an earlier deadline, and a task woken with a shorter slice than the one
running preempts it at once (the scheduler's PREEMPT_SHORT) instead of waiting for it to
use up its slice. It changes
no task's share of the CPU (that is still its nice weight), and it needs no privilege.

Every hop of a coroproc message is a wake-up of a short-running process (client → CPG
engine → ring process → link process → … → engine → client), so the time a woken process
waits for a CPU that something else holds is what the latency's tail is made of. The
supervisor asks for the slice on itself before its first fork; every child and every
thread inherits it (fork copies the parent's scheduling attributes). A kernel without
custom slices (before 6.12) takes the call and ignores the runtime: the supervisor reads
the slice back from /proc/thread-self/sched to know.
"""
from __future__ import annotations

import ctypes
import os
import platform
import struct

# struct sched_attr as SCHED_ATTR_SIZE_VER0: size, policy, flags, nice, priority,
# runtime, deadline, period
_SCHED_ATTR = struct.Struct("<IIQiIQQQ")
_SYS_SCHED_SETATTR = {"x86_64": 314, "aarch64": 274, "riscv64": 274, "ppc64le": 355,
                      "s390x": 345, "i686": 351, "armv7l": 380}
_libc = ctypes.CDLL(None, use_errno=True)


def request(slice_us: int) -> None:
    """Ask for a slice of slice_us for the calling thread, keeping its nice value.
    OSError when the kernel refuses the call (a kernel that takes it but has no custom
    slices is found by granted_ns, not here)."""
    nr = _SYS_SCHED_SETATTR.get(platform.machine())
    if nr is None:
        raise OSError(0, f"sched_setattr: no system call number known for "
                         f"{platform.machine()}")
    nice = os.getpriority(os.PRIO_PROCESS, 0)          # 0: this thread (per thread on Linux)
    attr = ctypes.create_string_buffer(_SCHED_ATTR.pack(
        _SCHED_ATTR.size, os.SCHED_OTHER, 0, nice, 0, slice_us * 1000, 0, 0))
    if _libc.syscall(nr, 0, attr, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"sched_setattr: {os.strerror(err)}")


def slice_ns(pid: int | str = "thread-self") -> int | None:
    """The fair-class slice the kernel keeps for a task (se.slice in its sched file), or
    None when the kernel shows none (before EEVDF) or the task is gone."""
    try:
        with open(f"/proc/{pid}/sched") as f:
            for line in f:
                if line.startswith("se.slice"):
                    return int(line.rsplit(":", 1)[1])
    except (OSError, ValueError):
        return None
    return None
