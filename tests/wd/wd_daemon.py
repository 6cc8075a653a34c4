"""One real coroproc node running the wd (and optionally mon) engine, with a watchdog
stand-in file the test reads (coroproc/engineprocs/wd/device.py: one line per action)."""
from __future__ import annotations

import contextlib
import os
import time

from coroproc.localcluster import LocalCluster
from coroproc.shm.names import node_segments

WAIT_S = 60      # hang guards only: every wait below ends on an event


def conf_sections(dog: str, timeout_s: int = 2, system: str = "", mon: bool = False,
                  device: str | None = None) -> str:
    device_line = f"    watchdog_device: {device if device is not None else dog}\n"
    text = f"resources {{\n{device_line}    watchdog_timeout: {timeout_s}\n{system}}}\n"
    text += "service {\n    name: wd\n    recovery_actions: log\n    scan_period_ms: 200\n}\n"
    if mon:
        text += "service {\n    name: mon\n    scan_period_ms: 200\n}\n"
    return text


@contextlib.contextmanager
def wd_node(tmp_path, **kw):
    dog = tmp_path / f"dog.{os.getpid()}"
    dog.write_text("")
    lc = LocalCluster(tmp_path, 1, token_ms=1000, rate_msgs_per_s=5,
                      extra_sections=conf_sections(str(dog), **kw))
    try:
        lc.start_all()
        lc.wait_for_log(1, "Completed service synchronization", timeout_s=WAIT_S)
        yield lc, dog
    finally:
        lc.stop_all()
        assert node_segments(lc.cluster, 1) == []


def kicks(dog) -> int:
    return dog.read_text().count("keepalive\n")


def wait_until(predicate, what: str, lc=None):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{lc.tail(1, 30)}" if lc else ""))


def log_has(lc, text: str) -> bool:
    return any(text in line for line in lc.log_lines(1))
