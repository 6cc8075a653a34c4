"""The WD engine (service 7, no IPC): Corosync's exec/wd.c on coroproc's engine API.

It owns two loops on the engine's timers:
* the tickle: every watchdog_timeout / 2 it kicks the device while `watchdog_ok`; a
  resource that fails with recovery "watchdog" or "quit" clears watchdog_ok for good
  ("NOT tickling the watchdog!"), so the device resets the machine; "reboot" and
  "shutdown" act at once (reboot(2)), any other recovery only marks the resource failed.
  Because the kicks come from this process's loop, a hung engine process or a node whose
  supervisor stops the engine also stops the kicks.
* the watch: Corosync tracks icmap; here cmap is another process, so a scan every
  `scan_period_ms` (default 1000) lists `resources.*` over IPC, creates a resource for
  every new `…<name>.state` key, drops a resource whose state key is gone ("deleted from
  cmap!"), re-reads a resource's configuration when its state/recovery/poll_period
  changed, and applies `resources.watchdog_timeout` (2..120 s) changed at run time.
  Each resource is checked on its own timer (resources.py has the rules).

Configuration: `resources { watchdog_device: PATH | off; watchdog_timeout: S }` (no
device key: the watchdog is not used, as Corosync 3.1.7 — resources are still watched
and acted on). Engine options (`service { name: wd … }`): scan_period_ms, and
recovery_actions: real (default) | log — "log" replaces reboot(2) by a log line, for
test and demo machines.
"""
from __future__ import annotations

import ctypes
import os
import time

from coroproc.engineprocs.api import SERVICE_WD, Engine

from . import resources as R
from .cmapview import CmapView, as_int, as_str
from .device import WatchdogDevice, WatchdogUnavailable

DEFAULT_TIMEOUT_S = 6
TIMEOUT_MIN_S, TIMEOUT_MAX_S = 2, 120
SCAN_PERIOD_MS = 1000
RESOURCES_MAX = 4096          # a bound on what a runaway key writer can make us watch
RB_AUTOBOOT = 0x01234567
RB_POWER_OFF = 0x4321FEDC
KEY_TIMEOUT = "resources.watchdog_timeout"


def _config_value(config, key: str):
    entry = getattr(config, "keys", {}).get(key) if config is not None else None
    return None if entry is None else entry.value


class WdEngine(Engine):
    name = "wd"
    service_id = SERVICE_WD
    ipc_service = None
    log_subsys = "WD"

    def __init__(self, ctx):
        super().__init__(ctx)
        opts = ctx.options or {}
        self.scan_period_ms = int(opts.get("scan_period_ms", SCAN_PERIOD_MS))
        if not 10 <= self.scan_period_ms <= 60_000:
            raise ValueError(f"wd option scan_period_ms={self.scan_period_ms}: allowed "
                             f"10..60000")
        self.recovery_actions = opts.get("recovery_actions", "real")
        if self.recovery_actions not in ("real", "log"):
            raise ValueError(f"wd option recovery_actions={self.recovery_actions!r}: "
                             f"allowed real, log")
        self.watchdog_timeout_s = DEFAULT_TIMEOUT_S
        self.watchdog_ok = True
        self.device: WatchdogDevice | None = None
        self.resources: dict[str, R.Resource] = {}
        self.cmap = CmapView(ctx.service_suffix, ctx)
        self._tickle_timer = None
        self._scan_timer = None
        self.stats = {"scans": 0, "checks": 0, "failed": 0, "cmap_unreachable": 0}

    # ---- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        timeout_s = as_int(_config_value(self.ctx.config, KEY_TIMEOUT))
        if timeout_s is not None and TIMEOUT_MIN_S <= timeout_s <= TIMEOUT_MAX_S:
            self.watchdog_timeout_s = timeout_s
        elif timeout_s is not None:
            self.ctx.warning("Set watchdog_timeout is out of range (2..120).")
            self.ctx.info(f"use default value {DEFAULT_TIMEOUT_S} seconds.")
        self._setup_device(_config_value(self.ctx.config, "resources.watchdog_device"))
        self._arm_tickle()
        self._scan_timer = self.ctx.timer_add(0, self._scan)

    def _setup_device(self, path) -> None:
        if path is None:
            self.ctx.warning("Watchdog not enabled by configuration")
            return
        if path in ("", "off"):
            self.ctx.warning("Watchdog disabled by configuration")
            return
        device = WatchdogDevice(path)
        try:
            device.open()
        except WatchdogUnavailable as exc:
            self.ctx.warning(str(exc))
            return
        self.device = device
        self.ctx.info(f"Watchdog {path} is now being tickled by corosync.")
        if device.identity:
            self.ctx.debug(device.identity)
        self._apply_timeout(self.watchdog_timeout_s, force=True)
        device.enable(self.watchdog_timeout_s)

    def close(self) -> None:
        for res in self.resources.values():
            res.cancel_timer()
        if self.device is not None and self.device.is_open:
            self.ctx.info("magically closing the watchdog.")
            if not self.device.magic_close():
                self.ctx.error(f"failed to write V to dog({self.device.path}).")
        self.cmap.close()

    def on_reload(self, config) -> None:
        timeout_s = as_int(_config_value(config, KEY_TIMEOUT))
        if timeout_s is not None and TIMEOUT_MIN_S <= timeout_s <= TIMEOUT_MAX_S:
            self._apply_timeout(timeout_s)

    def counters(self) -> dict:
        device = self.device
        return dict(self.stats, watchdog_ok=int(self.watchdog_ok),
                    watchdog_timeout_s=self.watchdog_timeout_s,
                    device=device.path if device else "", kicks=device.kicks if device else 0,
                    kick_failures=device.kick_failures if device else 0,
                    resources={r.path: r.fsm for r in self.resources.values()})

    # ---- the tickle -----------------------------------------------------------------------
    def _tickle_ms(self) -> int:
        return self.watchdog_timeout_s * 1000 // 2

    def _arm_tickle(self) -> None:
        if self._tickle_timer is not None:
            self._tickle_timer.cancel()
        self._tickle_timer = self.ctx.timer_add(self._tickle_ms(), self._tickle)

    def _tickle(self) -> None:
        self._tickle_timer = None
        if not self.watchdog_ok:
            self.ctx.log("alert", "NOT tickling the watchdog!")
            return
        if self.device is not None and not self.device.kick():
            self.ctx.warning(f"watchdog {self.device.path}: keepalive failed")
        self._arm_tickle()

    def _apply_timeout(self, timeout_s: int, force: bool = False) -> None:
        assert TIMEOUT_MIN_S <= timeout_s <= TIMEOUT_MAX_S
        if timeout_s == self.watchdog_timeout_s and not force:
            return
        old_s = self.watchdog_timeout_s
        got_s = self.device.set_timeout_s(timeout_s) if self.device is not None else timeout_s
        if got_s != timeout_s:
            self.ctx.warning(f"Could not change the Watchdog timeout from {old_s} to "
                             f"{timeout_s} seconds")
            return
        self.watchdog_timeout_s = timeout_s
        if self.watchdog_ok:
            self._arm_tickle()      # a shorter timeout must not wait for the old period
        self.ctx.debug(f"The Watchdog timeout is {timeout_s} seconds")
        self.ctx.debug(f"The tickle timeout is {self._tickle_ms()} ms")

    # ---- the watch ------------------------------------------------------------------------
    def _scan(self) -> None:
        self._scan_timer = self.ctx.timer_add(self.scan_period_ms, self._scan)
        if not self.ctx.first_sync_done:
            return                   # cmap admits clients only after the first sync
        keys = self.cmap.keys("resources.")
        if keys is None:
            self.stats["cmap_unreachable"] += 1
            return
        self.stats["scans"] += 1
        self._scan_timeout(KEY_TIMEOUT in keys)
        present = {}
        for key in keys:
            parts = R.split_key(key)
            if parts is not None and parts[2] == "state" and parts[0] in ("process", "system"):
                present[R.resource_path(parts[0], parts[1])] = parts
        for path in [p for p in self.resources if p not in present]:
            self._forget(self.resources[path])
        for path, (rtype, name, _leaf) in present.items():
            res = self.resources.get(path)
            if res is None:
                if len(self.resources) >= RESOURCES_MAX:
                    self.ctx.warning(f"more than {RESOURCES_MAX} resources; {path} ignored")
                    continue
                self._create(rtype, name)
            else:
                seen = self._read_config(res)
                if seen is not None and seen != res.seen:
                    self._config_changed(res, seen)
        if not self.resources and self.stats["scans"] == 1:
            self.ctx.info("no resources configured.")

    def _scan_timeout(self, exists: bool) -> None:
        if not exists:
            self.cmap.set_uint32(KEY_TIMEOUT, self.watchdog_timeout_s)
            return
        value = as_int(self.cmap.get(KEY_TIMEOUT))
        if value is not None and TIMEOUT_MIN_S <= value <= TIMEOUT_MAX_S:
            self._apply_timeout(value)
            return
        self.ctx.warning("Set watchdog_timeout is out of range (2..120).")
        self.cmap.set_uint32(KEY_TIMEOUT, self.watchdog_timeout_s)

    def _read_config(self, res: R.Resource):
        """(state, recovery, poll_period) now, or None when cmap is unreachable."""
        out = []
        for leaf in ("state", "recovery", "poll_period"):
            probe = self.cmap.probe(res.path + leaf)
            if probe is None:
                return None
            out.append(probe[1])
        return tuple(out)

    def _create(self, rtype: str, name: str) -> None:
        res = R.Resource(rtype, name)
        self.resources[res.path] = res
        seen = self._read_config(res)
        if seen is None:
            del self.resources[res.path]          # try again on the next scan
            return
        res.seen = seen
        state, recovery, poll_period = seen
        if poll_period is None:
            self.cmap.set_uint64(res.path + "poll_period", res.check_timeout_ms)
            res.seen = (state, recovery, res.check_timeout_ms)
        elif R.poll_period_usable(as_int(poll_period)):
            res.check_timeout_ms = as_int(poll_period)
        else:
            self.ctx.warning(f"Could NOT use poll_period:{poll_period} ms for resource {name}")
        res.recovery = as_str(recovery)
        if recovery is None:
            self.ctx.warning(f"resource {name} missing a recovery key.")
            return
        if state is None:
            self.ctx.warning(f"resource {name} missing a state key.")
            return
        res.timer = self.ctx.timer_add(R.first_check_delay_ms(res.check_timeout_ms),
                                       lambda: self._check(res))
        self._set_state(res, R.EVENT_CONFIG_CHANGED, R.RUNNING)

    def _forget(self, res: R.Resource) -> None:
        self.ctx.warning(f'resource "{res.name}" deleted from cmap!')
        res.cancel_timer()
        del self.resources[res.path]

    def _set_state(self, res: R.Resource, event: str, to: str) -> None:
        before = res.fsm
        if not res.transition(event, to):
            self.ctx.error(f'Fsm:{res.name} Can\'t change state from "{before}" to "{to}" '
                           f'(event was "{event}")')
            return
        self.ctx.info(f'Fsm:{res.name} event "{event}", state "{before}" --> "{to}"')

    def _config_changed(self, res: R.Resource, seen: tuple) -> None:
        res.seen = seen
        state, recovery, poll_period = seen
        next_ms = res.check_timeout_ms
        if poll_period is not None:
            value = as_int(poll_period)
            if R.poll_period_usable(value):
                # the first check after a change waits the longer period, so the monitor
                # has time to follow the new one
                next_ms = max(value, res.check_timeout_ms)
                res.check_timeout_ms = value
            else:
                self.ctx.warning(f"Could NOT use poll_period:{poll_period} ms for resource "
                                 f"{res.name}")
        res.recovery = as_str(recovery)
        if recovery is None or state is None:
            which = "recovery" if recovery is None else "state"
            self.ctx.warning(f"resource {res.name} missing a {which} key.")
            self._set_state(res, R.EVENT_CONFIG_CHANGED, R.STOPPED)
            return
        res.cancel_timer()
        if as_str(state) == R.STOPPED:
            self._set_state(res, R.EVENT_CONFIG_CHANGED, R.STOPPED)
        else:
            res.timer = self.ctx.timer_add(next_ms, lambda: self._check(res))
            self._set_state(res, R.EVENT_CONFIG_CHANGED, R.RUNNING)

    def _check(self, res: R.Resource) -> None:
        res.timer = None
        if self.resources.get(res.path) is not res:
            return
        last = self.cmap.probe(res.path + "last_updated")
        state = self.cmap.probe(res.path + "state") if last is not None else None
        if last is None or state is None:
            # cmap unreachable: not evidence against the resource; look again soon
            self.stats["cmap_unreachable"] += 1
            res.timer = self.ctx.timer_add(res.check_timeout_ms, lambda: self._check(res))
            return
        self.stats["checks"] += 1
        ok, why = R.check(as_int(last[1]) if last[0] else None,
                          as_str(state[1]) if state[0] else None,
                          res.check_timeout_ms, self.now_ns())
        if ok:
            res.timer = self.ctx.timer_add(res.check_timeout_ms, lambda: self._check(res))
            return
        self.ctx.error(f"resource {res.name}: {why}")
        if res.fsm == R.RUNNING:
            self._failed(res)

    def _failed(self, res: R.Resource) -> None:
        res.cancel_timer()
        res.failures += 1
        self.stats["failed"] += 1
        self.ctx.log("crit", f'{res.recovery} resource "{res.name}" failed!')
        if res.recovery in R.RECOVERY_STOP_KICKING:
            self.watchdog_ok = False
        elif res.recovery == R.RECOVERY_REBOOT:
            self._machine(RB_AUTOBOOT, "reboot")
        elif res.recovery == R.RECOVERY_POWER_OFF:
            self._machine(RB_POWER_OFF, "power off")
        self._set_state(res, R.EVENT_FAILURE, R.FAILED)

    def _machine(self, how: int, what: str) -> None:
        if self.recovery_actions == "log":
            self.ctx.log("crit", f"would {what} the machine now (recovery_actions: log)")
            return
        self.ctx.log("crit", f"{what} of the machine now")
        os.sync()
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.reboot(ctypes.c_int(how)) != 0:
            self.ctx.error(f"reboot({what}) failed: {os.strerror(ctypes.get_errno())}")

    def now_ns(self) -> int:
        """Wall-clock ns since the epoch: the clock SAM and MON stamp last_updated with
        (Corosync's cs_timestamp_get)."""
        return time.time_ns()
