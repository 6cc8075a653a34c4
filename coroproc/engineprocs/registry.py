"""Which engines a node runs, and where their code comes from.

Every node runs the built-in Corosync services (cmap, cpg). More engines come from:
* corosync.conf `service { name: NAME }` sections (as Corosync 1.x/2.x loaded service
  modules; any further keys of the section are the engine's options), and
* `coroproc --workload` (the `load` engine).
A NAME resolves to a built-in, then to an entry point of group `coroproc.engines` (a
package publishes `NAME = "pkg.module:EngineClass"`), then to "pkg.module:Class" written
out in full. Resolution happens in the supervisor before anything forks, so a bad name
stops the daemon at start with a message that says what was tried.
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from .api import Engine

ENTRY_POINT_GROUP = "coroproc.engines"
BUILTIN = {
    "cmap": "coroproc.engineprocs.cmap.engine:CmapEngine",
    "cpg": "coroproc.engineprocs.cpg.engine:CpgEngine",
    "cfg": "coroproc.engineprocs.cfg.engine:CfgEngine",
    "example": "coroproc.engineprocs.example.engine:ExampleEngine",
    "quorum": "coroproc.engineprocs.quorum.engine:QuorumEngine",
    "votequorum": "coroproc.engineprocs.votequorum.engine:VotequorumEngine",
    "wd": "coroproc.engineprocs.wd.engine:WdEngine",
    "mon": "coroproc.engineprocs.mon.engine:MonEngine",
}
DEFAULT_ENGINES = ("cmap", "cfg", "cpg", "quorum")
QUORUM_PROVIDERS = {"corosync_votequorum": "votequorum"}   # quorum { provider } -> engine


def node_engine_names(cfg) -> list[str]:
    """The built-in engines a node runs: Corosync's services; the quorum provider's engine
    when `quorum { provider }` names one (quorum then runs in its process, as Corosync's
    quorum service sits on votequorum); the watchdog engine when `resources {
    watchdog_device }` names a device or resources are to be watched, and the resource
    monitor when `resources { system { } }` is configured."""
    names = list(DEFAULT_ENGINES)
    if cfg.quorum.provider in QUORUM_PROVIDERS:
        names.append(QUORUM_PROVIDERS[cfg.quorum.provider])
    keys = cfg.keys or {}
    device = keys.get("resources.watchdog_device")
    watched = any(k.startswith(("resources.process.", "resources.system.")) for k in keys)
    if (device is not None and device.value != "off") or watched:
        names.append("wd")
    if any(k.startswith("resources.system.") for k in keys):
        names.append("mon")
    return names
LOAD_ENGINE = "load"      # the workload generator (its own loop: engineprocs/loadgen.py)


class EngineLoadError(ValueError):
    pass


def _import(target: str, name: str):
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise EngineLoadError(f"engine {name!r}: cannot load {target}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Engine)):
        raise EngineLoadError(f"engine {name!r}: {target} is not a coroproc Engine subclass")
    return cls


def resolve(name: str) -> type[Engine]:
    """The Engine class for a name (built-in, entry point or module:Class)."""
    if name in BUILTIN:
        return _import(BUILTIN[name], name)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return _import(ep.value, name)
    if ":" in name:
        return _import(name, name)
    known = sorted(set(BUILTIN) | {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})
    raise EngineLoadError(f"unknown engine {name!r} (built-in or installed: "
                          f"{', '.join(known)}; or give module:Class)")


def check_set(classes: dict[str, type[Engine]]) -> None:
    """Refuse two engines with one service id or one IPC name."""
    by_id, by_ipc = {}, {}
    for name, cls in classes.items():
        if not 0 <= cls.service_id < 63:
            raise EngineLoadError(f"engine {name!r}: service_id {cls.service_id} (allowed 0..62)")
        if cls.service_id in by_id:
            raise EngineLoadError(f"engines {by_id[cls.service_id]!r} and {name!r} both use "
                                  f"service id {cls.service_id}")
        by_id[cls.service_id] = name
        if cls.ipc_service:
            if cls.ipc_service in by_ipc:
                raise EngineLoadError(f"engines {by_ipc[cls.ipc_service]!r} and {name!r} both "
                                      f"serve IPC {cls.ipc_service!r}")
            by_ipc[cls.ipc_service] = name


def run_engine(plan, eng, doorbell, control, log) -> int:
    """The body of an engine child process."""
    if eng.name == LOAD_ENGINE:
        from .loadgen import LoadEngine
        engine = LoadEngine(plan, eng, doorbell, control, log)
        try:
            return engine.run()
        finally:
            engine.close()
    from .host import EngineHost
    classes = [resolve(eng.target or eng.name)] + [resolve(t) for t in eng.hosted]
    host = EngineHost(plan, eng, classes, doorbell, control, log,
                      hosted_options=eng.hosted_options)
    try:
        return host.run()
    finally:
        host.close()
