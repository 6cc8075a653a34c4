"""system.move_to_root_cgroup: leave the service's cpu cgroup for the root one.

On a kernel built with CONFIG_RT_GROUP_SCHED a realtime task runs only on its cgroup's
realtime budget (cgroup v1 `cpu.rt_runtime_us`), and a cgroup systemd creates for a unit
has none: sched_setscheduler(SCHED_RR) fails there with EPERM even as root. Corosync
3.1's answer is to write its pid into the root cgroup's task list, and coroproc does the
same with the same files — v1 when `/sys/fs/cgroup/cpu/cpu.rt_runtime_us` exists, else
v2's `/sys/fs/cgroup/cgroup.procs`, else nothing (no cgroup file system, or no realtime
group scheduling) — writing `cgroup.procs` so that every thread of the supervisor moves;
the children it forks afterwards start in the root cgroup. Corosync moves only its cpu
hierarchy under v1, and so does this; under v2 the move takes every controller with it,
which also takes the node's log lines out of its unit's journal metadata (corosync.conf(5)).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

CPU_V1_DIR = "/sys/fs/cgroup/cpu"     # Corosync's paths: systemd mounts cgroups here
V2_DIR = "/sys/fs/cgroup"


@dataclass(frozen=True)
class Hierarchy:
    procs_file: str    # the root cgroup's cgroup.procs
    version: int       # 1: the v1 cpu controller's hierarchy; 2: the unified one


@dataclass(frozen=True)
class Move:
    moved: bool
    note: tuple[str, str] | None    # (level, text) for the log; None: nothing to say


def realtime_hierarchy(v1_dir: str = CPU_V1_DIR, v2_dir: str = V2_DIR) -> Hierarchy | None:
    """Where a process's realtime budget comes from, as Corosync 3.1.7 looks for it."""
    if os.path.exists(os.path.join(v1_dir, "cpu.rt_runtime_us")):
        return Hierarchy(os.path.join(v1_dir, "cgroup.procs"), 1)
    if os.path.exists(os.path.join(v2_dir, "cgroup.procs")):
        return Hierarchy(os.path.join(v2_dir, "cgroup.procs"), 2)
    return None


def cgroup_of(pid: int | str, version: int) -> str | None:
    """The process's cgroup path in that hierarchy ("/" is the root), from
    /proc/<pid>/cgroup: v1 the line whose controllers include cpu, v2 the "0::" line."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        hier_id, controllers, path = line.split(":", 2)
        if version == 2 and hier_id == "0" and controllers == "":
            return path
        if version == 1 and "cpu" in controllers.split(","):
            return path
    return None


def move_to_root(hierarchy: Hierarchy | None = None) -> Move:
    """Move this process (every thread) to the root cgroup of the realtime hierarchy."""
    h = hierarchy if hierarchy is not None else realtime_hierarchy()
    if h is None:
        return Move(False, None)       # nothing there gives or withholds a realtime budget
    before = cgroup_of("self", h.version)
    if before == "/":
        return Move(False, None)
    try:
        with open(h.procs_file, "w") as f:
            f.write(f"{os.getpid()}\n")
    except OSError as exc:
        return Move(False, ("warning", f"Could not move to the root cgroup ({h.procs_file}): "
                                       f"{exc.strerror or exc} (system.move_to_root_cgroup)"))
    return Move(True, ("notice", f"Moved from cgroup {before} to the root cgroup "
                                 f"(cgroup v{h.version}, {h.procs_file}; "
                                 "system.move_to_root_cgroup)"))
