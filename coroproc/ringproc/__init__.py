"""Totem SRP core (sans-I/O, numba), totempg, the wire format, and the ring process.

Compiled code is cached per source hash: see coroproc/jitcache.py.
"""
from coroproc.jitcache import CACHE_DIR  # noqa: F401  (must run before any @njit(cache=True))
