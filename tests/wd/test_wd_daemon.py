"""The WD engine in a real daemon, kicking a watchdog stand-in: kicks while healthy, the
timeout follows resources.watchdog_timeout at run time, a stale or failed resource stops
the kicks for good, a deleted resource is forgotten, and a clean stop closes with 'V'."""
from __future__ import annotations

import os
import time

from wd_daemon import kicks, log_has, wait_until, wd_node

from coroproc.client.cmap import STRING, UINT32, UINT64, Cmap


def test_kicks_follow_the_timeout_and_close_magically(tmp_path):
    with wd_node(tmp_path, timeout_s=2) as (lc, dog):
        wait_until(lambda: kicks(dog) >= 2, "two kicks", lc)
        assert dog.read_text().startswith("timeout 2\nopen 2\nkeepalive\n")
        assert log_has(lc, f"Watchdog {dog} is now being tickled by corosync.")
        with Cmap(suffix=lc.suffix(1)) as cmap:
            assert cmap.get("resources.watchdog_timeout")[1] == 2
            cmap.set("resources.watchdog_timeout", 3, UINT32)
            wait_until(lambda: "timeout 3\n" in dog.read_text(), "timeout 3 applied", lc)
            cmap.set("resources.watchdog_timeout", 200, UINT32)       # out of 2..120
            wait_until(lambda: cmap.get("resources.watchdog_timeout")[1] == 3,
                       "out-of-range timeout put back", lc)
            assert log_has(lc, "Set watchdog_timeout is out of range (2..120).")
            before = kicks(dog)
            wait_until(lambda: kicks(dog) > before, "kicks at the new period", lc)
    assert dog.read_text().endswith("keepalive\nV")
    assert "timeout 200" not in dog.read_text()


def test_stale_resource_stops_kicks_and_deleted_one_is_forgotten(tmp_path):
    with wd_node(tmp_path, timeout_s=2) as (lc, dog), Cmap(suffix=lc.suffix(1)) as cmap:
        for name in ("stale", "gone"):
            p = f"resources.process.{name}{os.getpid()}."
            cmap.set(p + "recovery", "watchdog", STRING)
            cmap.set(p + "poll_period", 500, UINT64)
            cmap.set(p + "last_updated", time.time_ns(), UINT64)
            cmap.set(p + "state", "running", STRING)
        gone = f"resources.process.gone{os.getpid()}."
        wait_until(lambda: log_has(lc, f'Fsm:gone{os.getpid()} event "config_changed", '
                                       f'state "stopped" --> "running"'), "resource seen", lc)
        cmap.delete(gone + "state")
        wait_until(lambda: log_has(lc, f'resource "gone{os.getpid()}" deleted from cmap!'),
                   "deleted resource forgotten", lc)
        # nobody updates stale<pid>.last_updated: the first check (6 s) finds it too old
        wait_until(lambda: log_has(lc, f'watchdog resource "stale{os.getpid()}" failed!'),
                   "stale resource failed", lc)
        wait_until(lambda: log_has(lc, "NOT tickling the watchdog!"), "kicks stopped", lc)
        assert log_has(lc, "ms too late, period:500.")
        assert not log_has(lc, f'resource "gone{os.getpid()}" failed!')
        stopped_at = kicks(dog)
        time.sleep(2.5)            # longer than a kick period: none may come
        assert kicks(dog) == stopped_at


def test_mon_memory_over_max_fails_and_stops_kicks(tmp_path):
    system = ("    system {\n        memory_used {\n            max: 0\n"
              "            poll_period: 1000\n            recovery: watchdog\n        }\n"
              "    }\n")
    with wd_node(tmp_path, timeout_s=2, system=system, mon=True) as (lc, _dog):
        wait_until(lambda: log_has(lc, "NOT tickling the watchdog!"), "kicks stopped", lc)
        assert log_has(lc, 'watchdog resource "memory_used" failed!')
        with Cmap(suffix=lc.suffix(1)) as cmap:
            p = "resources.system.memory_used."
            assert cmap.get(p + "state")[1] == "failed"
            assert cmap.get(p + "current")[1] > 0
            assert cmap.get(p + "last_updated")[1] > 0
            # load_15min has no max: MON leaves it stopped, WD lacks its recovery key
            assert cmap.get("resources.system.load_15min.state")[1] == "stopped"
        assert log_has(lc, "resource load_15min missing a recovery key.")


def test_watchdog_off_opens_nothing(tmp_path):
    with wd_node(tmp_path, device="off") as (lc, dog):
        wait_until(lambda: log_has(lc, "Watchdog disabled by configuration"), "off logged", lc)
        with Cmap(suffix=lc.suffix(1)) as cmap:     # the engine still runs its scans
            wait_until(lambda: cmap.get("resources.watchdog_timeout")[1] == 2,
                       "timeout published", lc)
    assert dog.read_text() == ""
