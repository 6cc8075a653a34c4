"""A real one-node daemon under its built-in load: no process of the node holds memory
NumPy asked huge pages for (VmFlags `hg` in /proc/<pid>/smaps).

tests/shm/test_lazymem.py checks the buffers known to fill with every message; this
checks the whole node, so a new 4 MiB np.zeros anywhere in the supervisor, the ring,
link or engine processes (whose first writes would zero 2 MiB at a time and stall the
process, docs/executive.md "Big buffers stay off huge pages") fails here. NumPy sets the
flag when it allocates, whatever the kernel's THP mode, so this holds on any Linux.
"""
from __future__ import annotations

import time

from coroproc.localcluster import LocalCluster


def _huge_page_mappings(pid: int) -> list[str]:
    """Address ranges (and backing names) of pid's mappings advised MADV_HUGEPAGE."""
    found, current = [], ""
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split(maxsplit=1)[0]
            if "-" in head and not head.endswith(":"):
                current = line.strip()
            elif head == "VmFlags:" and "hg" in line.split()[1:]:
                found.append(current)
    return found


def test_no_process_of_a_running_node_asked_for_huge_pages(tmp_path):
    c = LocalCluster(tmp_path, 1)
    try:
        c.start(1)
        c.wait_members([1], [1], timeout_s=120)
        time.sleep(2)    # the load engine's messages go round; engines have served them
        pids = {**c.child_titles(1), "supervisor": c.procs[1].pid}
        assert "coroproc: ring" in pids and "coroproc: cpg" in pids
        huge = {title: m for title, pid in pids.items() if (m := _huge_page_mappings(pid))}
        assert huge == {}, huge
    finally:
        c.stop_all()
