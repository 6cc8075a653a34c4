"""Suite-wide rule: a test run leaves no coroproc shared-memory segment behind.

The controlling pytest process (not each xdist worker) lists /dev/shm before and after
the run; a segment that appeared and stayed fails the run, naming it.
"""
import os

import pytest

SHM_DIR = "/dev/shm"


def _coroproc_segments() -> set[str]:
    try:
        return {e for e in os.listdir(SHM_DIR) if e.startswith("coroproc.")}
    except FileNotFoundError:
        return set()


def pytest_sessionstart(session):
    session.config._coroproc_shm_before = _coroproc_segments()


def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: the controller checks once for everyone
    left = _coroproc_segments() - getattr(session.config, "_coroproc_shm_before", set())
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        msg = f"test run left shared-memory segments in {SHM_DIR}: {' '.join(sorted(left))}"
        if reporter:
            reporter.write_line(msg, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
