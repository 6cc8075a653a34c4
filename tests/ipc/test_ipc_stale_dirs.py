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
