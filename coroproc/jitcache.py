"""Where numba caches the project's compiled kernels, keyed by the sources that feed them.

numba's on-disk cache checks only the timestamp of the file that defines a function, not
of the modules it calls into: a change to ``shm/kernels.py`` would leave stale machine
code of ``ringproc/pump.py`` (which inlines it) in the cache. The cache therefore lives in
a directory named after a hash of every source file of the jitted packages
(JITTED_PACKAGES), of the module that sets how they compile (JIT_MODULES) and the numba
version: any change starts a fresh cache, and a cache is never shared
between different sources. ``COROPROC_NUMBA_CACHE`` overrides the parent directory
(default ``~/.cache/coroproc/numba``). Each of those packages imports this module first.
"""
import hashlib
import os
import pathlib

import numba

JITTED_PACKAGES = ("ringproc", "shm", "netproc/jit", "ipc/jit", "engineprocs/cpg/jit")
# how those packages compile (coroproc/njit.py): its options are in the machine code too
JIT_MODULES = ("njit.py",)


def _cache_dir() -> str:
    h = hashlib.sha256(numba.__version__.encode())
    root = pathlib.Path(__file__).parent
    for pkg in JITTED_PACKAGES:
        for path in sorted((root / pkg).glob("*.py")):
            h.update(f"{pkg}/{path.name}".encode())
            h.update(path.read_bytes())
    for name in JIT_MODULES:
        h.update(name.encode())
        h.update((root / name).read_bytes())
    base = os.environ.get("COROPROC_NUMBA_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "coroproc", "numba")
    return os.path.join(base, h.hexdigest()[:16])


CACHE_DIR = _cache_dir()
numba.config.CACHE_DIR = CACHE_DIR


def compiled_entry(fn, example_args):
    """numba's compiled entry point of the jitted `fn` for the types of example_args.

    The dispatcher types every argument on every call: with the ring tuples, a TotemState
    and PumpBufs (some fifty arrays) that was 7.7 µs per call of an idle pump against
    2.9 µs through the entry point (measured on this 2-vCPU VM), and a kernel of twenty
    arrays pays a few µs per call the same way. The caller must keep passing arguments of
    the same types (the very objects, for tuples of arrays). Under NUMBA_DISABLE_JIT, fn
    itself."""
    compile_ = getattr(fn, "compile", None)
    if compile_ is None:
        return fn
    return compile_(tuple(fn.typeof_pyval(a) for a in example_args))
