"""coroproc.ipc.jit — jitted pieces of the IPC server an engine's own jitted code calls.

evqueue.py  per-connection event queues: append, and send with sendmmsg

Compiled code is cached per source hash with the other jitted packages: see
coroproc/jitcache.py.
"""
from coroproc.jitcache import CACHE_DIR  # noqa: F401  (must run before any @njit(cache=True))
