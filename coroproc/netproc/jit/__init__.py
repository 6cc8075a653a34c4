"""coroproc.netproc.jit — the jitted data path of a plain (udpu / udp) link process.

waker.py     when a received frame wakes the ring process (the RingWaker policy)
link_loop.py the link's loop: sockets → rx ring, tx ring → sockets, sleep on the doorbell
(its syscalls are shm/syscalls.py's)

Compiled code is cached per source hash with ringproc and shm: see coroproc/jitcache.py.
"""
from coroproc.jitcache import CACHE_DIR  # noqa: F401  (must run before any @njit(cache=True))
