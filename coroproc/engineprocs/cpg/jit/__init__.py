"""coroproc.engineprocs.cpg.jit — the CPG engine's jitted lane (its MCAST traffic).

deliver.py   ordered CPG MCAST records → the deliver events of the group's local clients
requests.py  a client's MCAST requests → exec messages in the submit ring

Compiled code is cached per source hash with the other jitted packages: see
coroproc/jitcache.py.
"""
from coroproc.jitcache import CACHE_DIR  # noqa: F401  (must run before any @njit(cache=True))
