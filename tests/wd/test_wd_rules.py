"""The WD/MON rules without a daemon: the resource check and state table (wd.c), the
device stand-in protocol (file and FIFO), and the engine's device handling and kick
cadence on a virtual clock (BaseContext timers)."""
from __future__ import annotations

import os
import stat
from types import SimpleNamespace

import pytest

from coroproc.engineprocs.context import BaseContext
from coroproc.engineprocs.mon import sensors
from coroproc.engineprocs.mon.engine import parse_max
from coroproc.engineprocs.wd import resources as R
from coroproc.engineprocs.wd.device import WatchdogDevice, WatchdogUnavailable
from coroproc.engineprocs.wd.engine import WdEngine

MS = 1_000_000
NOW = 1_700_000_000_000 * MS


@pytest.mark.parametrize("last, state, ok", [
    (None, "running", False),               # no timestamp key
    (NOW, None, False),                     # no state key
    (NOW, "disabled", False),
    (0, "running", True),                   # the monitor has not started yet
    (0, "failed", True),                    # wd.c checks the 0 before "failed"
    (NOW - 1500 * MS, "running", True),     # exactly 1.5 × poll_period old
    (NOW - 1501 * MS, "running", False),
    (NOW, "failed", False),
    (NOW, "stopped", True),
])
def test_check_rules(last, state, ok):
    assert R.check(last, state, 1000, NOW)[0] is ok


def test_check_says_how_late():
    ok, why = R.check(NOW - 2000 * MS, "running", 1000, NOW)
    assert not ok and why == "last_updated 500 ms too late, period:1000."


def test_state_table_acts_on_failure_only_when_running():
    res = R.Resource("process", "1")
    assert not res.transition(R.EVENT_FAILURE, R.FAILED) and res.fsm == R.STOPPED
    assert res.transition(R.EVENT_CONFIG_CHANGED, R.RUNNING)
    assert res.transition(R.EVENT_FAILURE, R.FAILED)
    assert not res.transition(R.EVENT_FAILURE, R.FAILED)
    assert res.transition(R.EVENT_CONFIG_CHANGED, R.RUNNING)


def test_key_parsing_and_periods():
    assert R.split_key("resources.process.123.state") == ("process", "123", "state")
    assert R.split_key("resources.system.memory_used.max") == ("system", "memory_used", "max")
    assert R.split_key("resources.watchdog_timeout") is None
    assert R.split_key("resources.process..state") is None
    assert [R.poll_period_usable(v) for v in (499, 500, 120000, 120001, "600")] == \
        [False, True, True, False, False]
    assert R.first_check_delay_ms(1000) == 6000 and R.first_check_delay_ms(5000) == 10000


def test_mon_max_and_sensors():
    assert parse_max("80", True) == 80 and parse_max("1.5", False) == 1.5
    assert parse_max("x", True) is None and parse_max(None, False) is None
    assert parse_max(7, False) == 7.0
    used = sensors.memory_used_percent()
    assert 0 <= used <= 100
    assert sensors.load_15min() >= 0
    assert sensors.memory_used_percent("/nonexistent/meminfo") is None


def test_standin_file_records_actions(tmp_path):
    path = tmp_path / "dog"
    path.write_text("")
    dev = WatchdogDevice(str(path))
    dev.open()
    assert dev.is_standin
    assert dev.set_timeout_s(4) == 4
    dev.enable(4)
    assert dev.kick() and dev.kick()
    assert dev.magic_close() and not dev.is_open
    assert path.read_text() == "timeout 4\nopen 4\nkeepalive\nkeepalive\nV"


def test_standin_fifo_never_blocks(tmp_path):
    path = tmp_path / "dogfifo"
    os.mkfifo(path)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        dev = WatchdogDevice(str(path))
        dev.open()
        assert stat.S_ISFIFO(os.stat(path).st_mode) and dev.is_standin
        assert dev.kick()
        assert os.read(reader, 100) == b"keepalive\n"
        while dev.kick():             # fill the pipe: kicks fail, none blocks
            pass
        assert dev.kick_failures == 1
        dev.abandon()
    finally:
        os.close(reader)


def test_missing_device_is_reported(tmp_path):
    with pytest.raises(WatchdogUnavailable, match="No watchdog .*try modprobe"):
        WatchdogDevice(str(tmp_path / "absent")).open()


class _Clock:
    def __init__(self):
        self.now_s = 0.0

    def __call__(self):
        return self.now_s


def _engine(tmp_path, device, timeout="2"):
    clock, logs = _Clock(), []
    keys = {"resources.watchdog_timeout": SimpleNamespace(value=timeout)}
    if device is not None:
        keys["resources.watchdog_device"] = SimpleNamespace(value=device)
    ctx = BaseContext(nodeid=1, cluster_name="t", config=SimpleNamespace(keys=keys),
                      options={"recovery_actions": "log"}, clock_s=clock,
                      log_fn=lambda prio, msg: logs.append((prio, msg)),
                      service_suffix=f"nosuch{os.getpid()}")
    engine = WdEngine(ctx)
    engine.start()
    return engine, ctx, clock, logs


def _advance(ctx, clock, seconds):
    start_s, steps = clock.now_s, round(seconds * 10)
    for k in range(1, steps + 1):            # 100 ms steps, no accumulated rounding
        clock.now_s = start_s + k / 10
        ctx.run_timers()


@pytest.mark.parametrize("device, message", [
    (None, "Watchdog not enabled by configuration"),
    ("off", "Watchdog disabled by configuration"),
    ("", "Watchdog disabled by configuration"),
])
def test_engine_without_device(tmp_path, device, message):
    engine, ctx, clock, logs = _engine(tmp_path, device)
    assert ("warning", message) in logs and engine.device is None
    _advance(ctx, clock, 3)              # the tickle still runs, with nothing to kick
    engine.close()


def test_engine_kicks_every_half_timeout_until_a_failure(tmp_path):
    path = tmp_path / "dog"
    path.write_text("")
    engine, ctx, clock, logs = _engine(tmp_path, str(path), timeout="4")
    _advance(ctx, clock, 10.5)           # kicks at 2, 4, 6, 8, 10 s
    assert path.read_text().count("keepalive") == 5
    res = R.Resource("process", "42", recovery="quit", fsm=R.RUNNING)
    engine.resources[res.path] = res
    engine._failed(res)
    assert ("crit", 'quit resource "42" failed!') in logs and res.fsm == R.FAILED
    _advance(ctx, clock, 6)
    assert path.read_text().count("keepalive") == 5
    assert ("alert", "NOT tickling the watchdog!") in logs
    engine.close()
    assert path.read_text().endswith("V")


def test_engine_reboot_recovery_is_only_logged_in_log_mode(tmp_path):
    engine, _ctx, _clock, logs = _engine(tmp_path, None)
    res = R.Resource("system", "load_15min", recovery="reboot", fsm=R.RUNNING)
    engine.resources[res.path] = res
    engine._failed(res)
    assert ("crit", "would reboot the machine now (recovery_actions: log)") in logs
    assert engine.watchdog_ok           # reboot does not stop the kicks
    engine.close()


def test_engine_out_of_range_timeout_uses_default(tmp_path):
    engine, _ctx, _clock, logs = _engine(tmp_path, None, timeout="1")
    assert engine.watchdog_timeout_s == 6
    assert ("warning", "Set watchdog_timeout is out of range (2..120).") in logs
    engine.close()
