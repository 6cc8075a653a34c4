"""The CPG engine (Corosync's closed process group service, id 2): see engine.py."""
from .engine import CpgEngine

__all__ = ["CpgEngine"]
