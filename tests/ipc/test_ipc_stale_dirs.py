"""A killed server's connection directories (their clients dead too) are removed by the
next server of that name — and only those: a live server's, another service's and other
programs' /dev/shm entries are left alone."""
import os
import subprocess
import sys
import uuid

from coroproc.ipc.server import IpcHandler, IpcServer


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_dirs_of_a_dead_server_are_removed(tmp_path):
    service = f"stale{uuid.uuid4().hex[:8]}"
    dead = _dead_pid()

    def make(pid, control):
        d = f"/dev/shm/qb-{pid}-{os.getpid()}-77-{uuid.uuid4().hex[:6]}"
        os.mkdir(d)
        open(os.path.join(d, control), "wb").close()
        return d

    stale = make(dead, f"qb-control-{service}")
    other_service = make(dead, f"qb-control-{service}x")
    live = make(os.getpid(), f"qb-control-{service}")
    try:
        server = IpcServer(service, IpcHandler())
        try:
            assert not os.path.exists(stale)
            assert os.path.exists(other_service) and os.path.exists(live)
            assert server.stats["stale_dirs_removed"] == 1
        finally:
            server.close()
    finally:
        for d in (stale, other_service, live):
            if os.path.exists(d):
                for f in os.listdir(d):
                    os.unlink(os.path.join(d, f))
                os.rmdir(d)


def test_a_killed_nodes_dirs_are_found_by_its_suffix():
    from coroproc.ipc.names import remove_stale_connection_dirs
    suffix = f"lc{uuid.uuid4().hex[:6]}.3"
    dead = _dead_pid()
    dirs = []
    for control in (f"qb-control-cmap{suffix}", f"qb-control-cpg{suffix}",
                    f"qb-control-cpg{suffix}0"):          # another node's: kept
        d = f"/dev/shm/qb-{dead}-{os.getpid()}-5-{uuid.uuid4().hex[:6]}"
        os.mkdir(d)
        open(os.path.join(d, control), "wb").close()
        dirs.append(d)
    try:
        assert remove_stale_connection_dirs(suffix, suffix_only=True) == 2
        assert [os.path.exists(d) for d in dirs] == [False, False, True]
    finally:
        for d in dirs:
            if os.path.exists(d):
                for f in os.listdir(d):
                    os.unlink(os.path.join(d, f))
                os.rmdir(d)
