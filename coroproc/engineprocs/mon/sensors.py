"""What MON measures: percent of memory+swap in use and the 15-minute load average.

Corosync reads these through libstatgrab; its Linux figures come from /proc/meminfo
(free = MemFree, so page cache counts as used) and the kernel's load average, which is
what this file reads directly. A reading that cannot be taken is None, never a guess.
"""
from __future__ import annotations

import os

MEMINFO_PATH = "/proc/meminfo"


def memory_used_percent(meminfo_path: str = MEMINFO_PATH):
    """(total - free) * 100 // total over RAM and swap, as Corosync's mon.c; None if
    /proc/meminfo is unreadable or says nothing usable."""
    fields = {}
    try:
        with open(meminfo_path, "rb") as fh:
            for line in fh:
                name, _, rest = line.partition(b":")
                parts = rest.split()
                if parts:
                    fields[name.decode("ascii", "replace")] = int(parts[0])
    except (OSError, ValueError):
        return None
    total_kib = fields.get("MemTotal", 0) + fields.get("SwapTotal", 0)
    free_kib = fields.get("MemFree", 0) + fields.get("SwapFree", 0)
    if total_kib <= 0:
        return None
    return (total_kib - free_kib) * 100 // total_kib


def load_15min():
    try:
        return float(os.getloadavg()[2])
    except OSError:
        return None
