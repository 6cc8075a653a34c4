"""totem timers, logging, quorum, system and coroproc { } → their typed model objects.

Timer defaults and "0 means the default" follow totem_volatile_config_read (Corosync
3.1): most timers and counters treat 0 as unset; token_warning, send_join and
heartbeat_failures_allowed accept 0. The derivations themselves (effective token with
token_coefficient, token_retransmit, hold, consensus) belong to TotemConfig.
"""
from __future__ import annotations

import os
import re

from coroproc.config.context import Keys
from coroproc.config.errors import ConfigParseError
from coroproc.config.model import (DEFAULT_STATE_DIR, OWN_DELIVERY_SPIN_US_DEFAULT,
                                   CoroprocSection, LoggingConfig,
                                   QuorumConfig, SchedulingConfig, ServiceSection,
                                   SubsysLogging)
from coroproc.ringproc.config import MINIMUM_TIMEOUT_MS, ConfigError, TotemConfig

UDP_NETMTU_BYTES = 1500
# key → (TotemConfig field, zero means default)
_TOTEM_FIELDS = {
    "token": ("token_ms", True),
    "token_coefficient": ("token_coefficient_ms", False),
    "token_warning": ("token_warning_pct", False),
    "token_retransmits_before_loss_const": ("token_retransmits_before_loss_const", True),
    "token_retransmit": ("token_retransmit_ms", True),
    "hold": ("hold_ms", True),
    "join": ("join_ms", True),
    "send_join": ("send_join_ms", False),
    "consensus": ("consensus_ms", True),
    "merge": ("merge_ms", True),
    "fail_recv_const": ("fail_recv_const", True),
    "seqno_unchanged_const": ("seqno_unchanged_const", True),
    "miss_count_const": ("miss_count_const", True),
    "max_messages": ("max_messages", True),
    "window_size": ("window_size", True),
}
_EXTRA_DEFAULTS = {"downcheck": 1000, "max_network_delay": 50}
_SERVICE_SUFFIX_RE = re.compile(r"[A-Za-z0-9_.-]{0,32}")
# coroproc { idle_token_pace_us } when unset: a quiet ring's token goes round at most
# about once a ms (docs/executive.md "Idle token pacing"); the bare core's default is 0
IDLE_TOKEN_PACE_US_DEFAULT = 1000
# coroproc { sched_slice_us } when unset: a woken process of the node preempts a normal
# task on its CPU at once (supervisor/slice.py; docs/executive.md "Scheduling")
SCHED_SLICE_US_DEFAULT = 100
SLICE_MIN_US = 100       # what the kernel clamps a shorter request to
RING_CPU_MAX = 8191      # the kernel numbers at most 8,192 CPUs (NR_CPUS with CONFIG_MAXSMP)
_RING_CPU_RE = re.compile(r"auto|none|[0-9]{1,5}")


def _key_named_in(message: str) -> str:
    """The totem key a TotemConfig.validate message is about, for its file:line."""
    m = re.search(r"totem\.([a-z_]+)", message)
    if m:
        return f"totem.{m.group(1)}"
    named = [k for k in (*_TOTEM_FIELDS, "netmtu") if re.search(rf"\b{k}\b", message)]
    return f"totem.{named[0]}" if named else "totem"


# A sort queue holds queue_slots frames of netmtu + 64 bytes each (ringproc/state.py, two
# queues and a retransmit store, touched slot by slot as the ring turns): 4,096 slots up to
# 16 KiB frames, fewer above (1,024 at 64 KiB) but as many as 4 x window_size needs; a
# window beyond 4,096 slots is refused (TotemConfig.validate).
SORT_QUEUE_SLOTS_MAX = 4096
SORT_QUEUE_BYTES_MAX = SORT_QUEUE_SLOTS_MAX * (16384 + 64)


def queue_slots_for(netmtu: int, window_size: int) -> int:
    """Slots per sort queue for frames of netmtu: a power of two (seq % slots), the most
    that keeps a queue within SORT_QUEUE_BYTES_MAX, raised (up to SORT_QUEUE_SLOTS_MAX)
    to 4 x window_size."""
    slots = SORT_QUEUE_SLOTS_MAX
    while slots * (netmtu + 64) > SORT_QUEUE_BYTES_MAX:
        slots //= 2
    while slots < 4 * window_size and slots < SORT_QUEUE_SLOTS_MAX:
        slots *= 2
    return slots


def build_totem(keys: Keys, nodeids: tuple[int, ...], netmtu: int) -> TotemConfig:
    kwargs: dict = {"nodelist": nodeids, "netmtu": netmtu}
    for key, (name, zero_is_default) in _TOTEM_FIELDS.items():
        value = keys.get(f"totem.{key}")
        if value is None or (zero_is_default and value == 0):
            continue
        kwargs[name] = value
    window_size = kwargs.get("window_size", TotemConfig.window_size)
    kwargs["queue_slots"] = queue_slots_for(netmtu, window_size)
    kwargs["cancel_token_hold_on_retransmit"] = keys.flag(
        "totem.cancel_token_hold_on_retransmit", False)
    kwargs["idle_token_pace_us"] = keys.get("coroproc.idle_token_pace_us",
                                            IDLE_TOKEN_PACE_US_DEFAULT)
    extra = {}
    for key, default in _EXTRA_DEFAULTS.items():
        value = keys.get(f"totem.{key}") or default
        if value < MINIMUM_TIMEOUT_MS:
            raise keys.fail(f"totem.{key}", f"The {key} parameter ({value} ms) may not be "
                            f"less than ({MINIMUM_TIMEOUT_MS} ms).")
        extra[f"{key}_ms"] = value
    extra["heartbeat_failures_allowed"] = keys.get("totem.heartbeat_failures_allowed", 0)
    totem = TotemConfig(**kwargs, extra=extra)
    try:
        totem.validate()
    except ConfigError as exc:
        raise keys.fail(_key_named_in(str(exc)), str(exc)) from None
    return totem


def _subsys_logging(keys: Keys, subsys: str) -> SubsysLogging:
    prefix = f"logging.logger_subsys.{subsys}."

    def flag(key: str) -> bool | None:
        return keys.flag(prefix + key, False) if prefix + key in keys.values else None

    return SubsysLogging(
        subsys=subsys, debug=keys.get(prefix + "debug"), to_stderr=flag("to_stderr"),
        to_logfile=flag("to_logfile"), to_syslog=flag("to_syslog"),
        logfile=keys.get(prefix + "logfile"),
        logfile_priority=keys.get(prefix + "logfile_priority"),
        syslog_priority=keys.get(prefix + "syslog_priority"),
        syslog_facility=keys.get(prefix + "syslog_facility"))


def build_logging(keys: Keys) -> LoggingConfig:
    subsystems = {k.split(".")[2] for k in keys.prefixed("logging.logger_subsys.")
                  if len(k.split(".")) == 4}
    config = LoggingConfig(
        to_stderr=keys.flag("logging.to_stderr", True),
        to_logfile=keys.flag("logging.to_logfile", False),
        to_syslog=keys.flag("logging.to_syslog", True),
        logfile=keys.get("logging.logfile"),
        logfile_priority=keys.get("logging.logfile_priority", "info"),
        syslog_priority=keys.get("logging.syslog_priority", "info"),
        syslog_facility=keys.get("logging.syslog_facility", "daemon"),
        timestamp=keys.get("logging.timestamp", "hires"),
        debug=keys.get("logging.debug", "off"),
        fileline=keys.get("logging.fileline") == "on",
        function_name=keys.get("logging.function_name") == "on",
        blackbox=keys.get("logging.blackbox", "on") == "on",
        subsys={s: _subsys_logging(keys, s) for s in sorted(subsystems)})
    if config.to_logfile and not config.logfile:
        keys.warn("logging.to_logfile", "to_logfile is yes but logging.logfile is not set; "
                  "nothing will be written to a file")
    return config


def build_quorum(keys: Keys, node_count: int) -> QuorumConfig:
    two_node = bool(keys.get("quorum.two_node", 0))
    if two_node and node_count > 2:
        keys.warn("quorum.two_node", f"two_node is ignored: the nodelist has {node_count} "
                  "nodes (votequorum disables it above 2)")
        two_node = False
    atb_node = keys.get("quorum.auto_tie_breaker_node", "lowest")
    if atb_node not in ("lowest", "highest") and not all(
            w.isdigit() for w in atb_node.split()):
        raise keys.fail("quorum.auto_tie_breaker_node", f"{atb_node!r} is not allowed "
                        "(allowed: lowest, highest, or a space-separated list of node ids)")
    return QuorumConfig(
        provider=keys.get("quorum.provider"),
        expected_votes=keys.get("quorum.expected_votes"),
        two_node=two_node,
        wait_for_all=bool(keys.get("quorum.wait_for_all", int(two_node))),
        last_man_standing=bool(keys.get("quorum.last_man_standing", 0)),
        last_man_standing_window_ms=keys.get("quorum.last_man_standing_window", 10000),
        auto_tie_breaker=bool(keys.get("quorum.auto_tie_breaker", 0)),
        auto_tie_breaker_node=atb_node,
        allow_downscale=bool(keys.get("quorum.allow_downscale", 0)),
        expected_votes_tracking=bool(keys.get("quorum.expected_votes_tracking", 0)))


def build_system(keys: Keys) -> str:
    """The state directory (system.state_dir, else $STATE_DIRECTORY, else the default)."""
    return keys.get("system.state_dir") or os.environ.get("STATE_DIRECTORY") \
        or DEFAULT_STATE_DIR


_NICE_OF = {"max": -20, "min": 19}


def build_scheduling(keys: Keys) -> SchedulingConfig:
    """system.sched_rr (yes, or no: coroproc's default, where Corosync's is yes;
    supervisor/scheduling.py), system.priority: max, min or a nice value -20..19, and
    system.move_to_root_cgroup: yes, no or auto (supervisor/cgroup.py; the schema checks
    the value); coroproc.sched_slice_us: 0 (the kernel's default) or 100..100,000 µs
    (supervisor/slice.py)."""
    priority = keys.get("system.priority")
    nice = None
    if priority is not None:
        if priority in _NICE_OF:
            nice = _NICE_OF[priority]
        elif re.fullmatch(r"[+-]?[0-9]+", priority) and -20 <= int(priority) <= 19:
            nice = int(priority)
        else:
            raise keys.fail("system.priority", f"{priority!r} is not allowed (allowed: max, "
                            "min, or a nice value -20..19)")
    slice_us = keys.get("coroproc.sched_slice_us", SCHED_SLICE_US_DEFAULT)
    if 0 < slice_us < SLICE_MIN_US:
        raise keys.fail("coroproc.sched_slice_us", f"{slice_us} us is below the kernel's "
                        f"shortest slice, {SLICE_MIN_US} us (0: the kernel's default)")
    return SchedulingConfig(sched_rr=keys.get("system.sched_rr", "no") == "yes", nice=nice,
                            move_to_root_cgroup=keys.get("system.move_to_root_cgroup", "auto"),
                            slice_us=slice_us)


def build_coroproc(keys: Keys) -> CoroprocSection:
    suffix = keys.get("coroproc.service_suffix", "")
    if not _SERVICE_SUFFIX_RE.fullmatch(suffix):
        raise keys.fail("coroproc.service_suffix", f"{suffix!r} is not allowed (allowed: up "
                        "to 32 letters, digits, '_', '-', '.')")
    run_dir = keys.get("coroproc.run_dir")
    if run_dir is not None and not os.path.isabs(run_dir):
        raise keys.fail("coroproc.run_dir", f"{run_dir!r} is not an absolute path")
    ring_cpu = keys.get("coroproc.ring_cpu", "auto")
    if not _RING_CPU_RE.fullmatch(ring_cpu):
        raise keys.fail("coroproc.ring_cpu", f"{ring_cpu!r} is not allowed (allowed: auto, "
                        f"none, or a CPU number 0..{RING_CPU_MAX})")
    if ring_cpu not in ("auto", "none"):
        ring_cpu = str(int(ring_cpu))          # "01" → "1"
        if int(ring_cpu) > RING_CPU_MAX:
            raise keys.fail("coroproc.ring_cpu", f"CPU {ring_cpu} is above {RING_CPU_MAX}")
    return CoroprocSection(nodeid=keys.get("coroproc.nodeid"), run_dir=run_dir,
                           service_suffix=suffix,
                           heartbeat_timeout_ms=keys.get("coroproc.heartbeat_timeout_ms", 10000),
                           udp_gso=keys.flag("coroproc.udp_gso", True), ring_cpu=ring_cpu,
                           own_delivery_spin_us=keys.get("coroproc.own_delivery_spin_us",
                                                         OWN_DELIVERY_SPIN_US_DEFAULT))


_SERVICE_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*(:[A-Za-z_][A-Za-z0-9_]*)?")


def build_services(keys: Keys) -> tuple[ServiceSection, ...]:
    """service { name: NAME … } sections: engines to load (registry.resolve checks NAME)."""
    numbers = sorted({int(k.split(".")[1]) for k in keys.entries
                      if k.startswith("service.") and k.split(".")[1].isdigit()})
    out, seen = [], {}
    for n in numbers:
        prefix = f"service.{n}."
        items = {k[len(prefix):]: keys.entries[k] for k in keys.entries if k.startswith(prefix)}
        if "name" not in items:
            first = min(items.values(), key=lambda e: e.line)
            raise ConfigParseError(keys.file, first.line, f"{prefix}name", "a service section "
                                   "needs `name: ENGINE` (a built-in, an installed "
                                   "coroproc.engines entry point, or module:Class)")
        entry = items.pop("name")
        name = entry.value
        if not _SERVICE_NAME_RE.fullmatch(name):
            raise ConfigParseError(keys.file, entry.line, f"{prefix}name", f"{name!r} is not "
                                   "an engine name (letters, digits, '_', '.', one ':')")
        if name in seen:
            raise ConfigParseError(keys.file, entry.line, f"{prefix}name", f"engine {name!r} "
                                   f"is already loaded by the service section of line {seen[name]}")
        seen[name] = entry.line
        out.append(ServiceSection(name=name, options={k: e.value for k, e in items.items()},
                                  line=entry.line))
    return tuple(out)
