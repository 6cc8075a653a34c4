"""Totem SRP core (sans-I/O, numba), totempg, and the wire format.

numba's on-disk cache checks only the timestamp of the file that defines a function, not
of the modules it calls into, so a change to ``totempg.py`` would leave stale machine code
of ``token.py`` in the cache. The cache therefore lives in a directory named after a hash
of every source file of this package: any change to any of them starts a fresh cache, and
a cache is never shared between different sources. ``COROPROC_NUMBA_CACHE`` overrides the
parent directory (default ``~/.cache/coroproc/numba``).
"""
import hashlib
import os
import pathlib

import numba


def _cache_dir() -> str:
    h = hashlib.sha256(numba.__version__.encode())
    for path in sorted(pathlib.Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    base = os.environ.get("COROPROC_NUMBA_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "coroproc", "numba")
    return os.path.join(base, h.hexdigest()[:16])


CACHE_DIR = _cache_dir()
numba.config.CACHE_DIR = CACHE_DIR
