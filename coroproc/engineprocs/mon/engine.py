"""The MON engine (service 6, no IPC): Corosync's exec/mon.c on coroproc's engine API.

Two resources, `resources.system.memory_used` (percent, integer max) and
`resources.system.load_15min` (double max). For each it owns the cmap keys
`current`, `last_updated` (ns since the epoch) and `state` (stopped | running | failed),
and reads `poll_period` (ms, 500..120000, default 3000) and `max` (usually from
corosync.conf `resources { system { memory_used { max: 80 … } } }`). With a usable max
the resource runs: every poll_period it publishes the reading and the timestamp, and a
reading above max moves it to failed once. The WD engine watches those keys and applies
the resource's `recovery` key. Without max the resource stays stopped (Corosync's rule).

Corosync tracks the keys in-process; here cmap is another process (wd/cmapview.py), so
changes of max / poll_period are noticed by a re-read every `scan_period_ms` (option,
default 1000). Differences from Corosync 3.1.7, on purpose: poll_period is accepted as
an integer key as well as a string (coroparse stores it as u64, which 3.1.7's mon reads
as a string and so ignores), and a load of exactly 0.00 is published (3.1.7 skips it,
which lets an idle machine's timestamp go stale).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from coroproc.client.cmap import DOUBLE, INT32, UINT32
from coroproc.engineprocs.api import SERVICE_MON, Engine
from coroproc.engineprocs.wd.cmapview import CmapView, as_int, as_str

from . import sensors

DEFAULT_PERIOD_MS = 3000
MIN_PERIOD_MS = 500
MAX_PERIOD_MS = 120_000
INT32_MAX = 2**31 - 1
SCAN_PERIOD_MS = 1000

STOPPED, RUNNING, FAILED = "stopped", "running", "failed"
_FSM = {   # (state, event) -> allowed next states; as mon_fsm_table
    (STOPPED, "config_changed"): (STOPPED, RUNNING),
    (RUNNING, "config_changed"): (RUNNING, STOPPED),
    (FAILED, "config_changed"): (RUNNING, STOPPED),
    (RUNNING, "failure"): (FAILED,),
}


@dataclass(eq=False)
class Instance:
    name: str
    integer: bool                 # max and current are integers (memory) or doubles (load)
    period_ms: int = DEFAULT_PERIOD_MS
    max_value: float = INT32_MAX
    state: str = STOPPED
    timer: object = None
    seen: tuple = ()              # (max, poll_period) raw values at the last read
    initialised: bool = False

    @property
    def path(self) -> str:
        return f"resources.system.{self.name}."


def parse_max(raw, integer: bool):
    """The max threshold from a cmap value (string in config files), or None."""
    if raw is None:
        return None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return int(raw) if integer else float(raw)
    text = as_str(raw).strip()
    try:
        return int(text, 10) if integer else float(text)
    except ValueError:
        return None


class MonEngine(Engine):
    name = "mon"
    service_id = SERVICE_MON
    ipc_service = None
    log_subsys = "MON"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.scan_period_ms = int((ctx.options or {}).get("scan_period_ms", SCAN_PERIOD_MS))
        if not 10 <= self.scan_period_ms <= 60_000:
            raise ValueError(f"mon option scan_period_ms={self.scan_period_ms}: allowed "
                             f"10..60000")
        self.cmap = CmapView(ctx.service_suffix, ctx)
        self.instances = (Instance("memory_used", True), Instance("load_15min", False))
        self.readers = {"memory_used": sensors.memory_used_percent,
                        "load_15min": sensors.load_15min}
        self.stats = {"updates": 0, "failures": 0, "unreadable": 0}

    def start(self) -> None:
        self.ctx.timer_add(0, self._scan)

    def close(self) -> None:
        for inst in self.instances:
            if inst.timer is not None:
                inst.timer.cancel()
        self.cmap.close()

    def counters(self) -> dict:
        return dict(self.stats, **{i.name: i.state for i in self.instances})

    # ---- configuration --------------------------------------------------------------------
    def _scan(self) -> None:
        self.ctx.timer_add(self.scan_period_ms, self._scan)
        if not self.ctx.first_sync_done:
            return
        for inst in self.instances:
            if not inst.initialised:
                self._init(inst)
                continue
            seen = self._read(inst)
            if seen is not None and seen != inst.seen:
                self._config_changed(inst, seen)

    def _read(self, inst: Instance):
        out = []
        for leaf in ("max", "poll_period"):
            probe = self.cmap.probe(inst.path + leaf)
            if probe is None:
                return None
            out.append(probe[1])
        return tuple(out)

    def _init(self, inst: Instance) -> None:
        """mon_instance_init: zero the published keys, default poll_period, then apply."""
        view = self.cmap
        if not (view.set(inst.path + "current", 0, INT32 if inst.integer else DOUBLE)
                and view.set_uint64(inst.path + "last_updated", 0)
                and view.set_string(inst.path + "state", STOPPED)):
            return                           # cmap not reachable yet: next scan
        seen = self._read(inst)
        if seen is None:
            return
        inst.initialised = True
        period = as_int(seen[1])
        if seen[1] is None or period is None:
            view.set_uint64(inst.path + "poll_period", inst.period_ms)
        elif MIN_PERIOD_MS <= period <= MAX_PERIOD_MS:
            inst.period_ms = period
        else:
            self.ctx.warning(f"Could NOT use poll_period:{period} ms for resource {inst.name}")
        self._config_changed(inst, self._read(inst) or seen)

    def _set_state(self, inst: Instance, event: str, to: str) -> None:
        if to not in _FSM.get((inst.state, event), ()):
            return
        before, inst.state = inst.state, to
        if before != to:
            self.ctx.info(f'Fsm:{inst.name} event "{event}", state "{before}" --> "{to}"')
            self.cmap.set_string(inst.path + "state", to)

    def _config_changed(self, inst: Instance, seen: tuple) -> None:
        inst.seen = seen
        raw_max, raw_period = seen
        if raw_period is not None:
            period = as_int(raw_period)
            if period is not None and MIN_PERIOD_MS <= period <= MAX_PERIOD_MS:
                inst.period_ms = period
            else:
                self.ctx.warning(f"Could NOT use poll_period:{as_str(raw_period)} ms for "
                                 f"resource {inst.name}")
        if inst.timer is not None:
            inst.timer.cancel()
            inst.timer = None
        if raw_max is None:
            return
        value = parse_max(raw_max, inst.integer)
        if value is None:
            inst.max_value = INT32_MAX
            self._set_state(inst, "config_changed", STOPPED)
            return
        inst.max_value = value
        self._set_state(inst, "config_changed", RUNNING)
        self._update(inst)      # at once: the period may have shortened

    # ---- measuring ------------------------------------------------------------------------
    def _update(self, inst: Instance) -> None:
        inst.timer = self.ctx.timer_add(inst.period_ms, lambda: self._update(inst))
        value = self.readers[inst.name]()
        if value is None or value < 0:
            self.stats["unreadable"] += 1
            self.ctx.error(f"Unable to get {inst.name} stats")
            return
        self.stats["updates"] += 1
        self.cmap.set(inst.path + "current", value, UINT32 if inst.integer else DOUBLE)
        self.cmap.set_uint64(inst.path + "last_updated", time.time_ns())
        if value > inst.max_value and inst.state != FAILED:
            self.stats["failures"] += 1
            self._set_state(inst, "failure", FAILED)

