"""The engines a node can run, by name; each runs in its own process (see supervisor/roles.py).

Issue-by-issue this grows to Corosync's services (cpg, cmap, votequorum, cfg, sam). Today
it holds `load`, the workload engine that drives a steady message stream through the
rings and writes the event log the EVS checker reads.
"""
from __future__ import annotations


def run_engine(plan, eng, doorbell, control, log) -> int:
    if eng.name == "load":
        from .loadgen import LoadEngine
        engine = LoadEngine(plan, eng, doorbell, control, log)
        try:
            return engine.run()
        finally:
            engine.close()
    raise ValueError(f"unknown engine {eng.name!r} (known: load)")


KNOWN_ENGINES = ("load",)
