"""Helpers for the shm tests: unique segment names, forked children that are always reaped.

Names carry the pid and a uuid so pytest-xdist workers never collide. Children are
forked (they inherit the parent's already-compiled numba kernels, so they start in
milliseconds) and report through an exit code; `Children` kills and reaps whatever
is still alive when the test ends, passing or failing.
"""

import multiprocessing
import os
import signal
import uuid

import posix_ipc

# A guard against a hung child turning into a hung test run, not a performance bound:
# every child here finishes in well under a second when the code is right.
HANG_GUARD_S = 120.0

_ctx = multiprocessing.get_context("fork")


def unique_cluster():
    return f"t{os.getpid()}x{uuid.uuid4().hex[:10]}"


def unique_name(tag="r"):
    return f"/coroproc.{unique_cluster()}.1.{tag}"


def unlink_quietly(name):
    try:
        posix_ipc.unlink_shared_memory(name)
    except posix_ipc.ExistentialError:
        pass


class Children:
    """Start forked children; on exit kill and reap every one still running."""

    def __init__(self):
        self.procs = []

    def start(self, target, *args):
        p = _ctx.Process(target=_run_child, args=(target, args), daemon=True)
        p.start()
        self.procs.append(p)
        return p

    def join_ok(self, p):
        """Wait for p; it must exit 0 (the child's asserts turn into exit code 1)."""
        p.join(HANG_GUARD_S)
        if p.is_alive():
            os.kill(p.pid, signal.SIGKILL)
            p.join()
            raise AssertionError(f"child {p.pid} did not finish within the hang guard")
        assert p.exitcode == 0, f"child {p.pid} failed with exit code {p.exitcode} (see its stderr)"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            if p.is_alive():
                os.kill(p.pid, signal.SIGKILL)
            p.join()


def _run_child(target, args):
    try:
        target(*args)
    except BaseException:  # noqa: BLE001 — any failure must become exit code 1
        import traceback

        traceback.print_exc()
        os._exit(1)
    os._exit(0)
