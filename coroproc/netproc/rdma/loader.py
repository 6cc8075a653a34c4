"""Importing pyverbs (rdma-core's Python binding) into coroproc's Python, explicitly.

pyverbs is not on PyPI in a usable form (the sdist does not build without rdma-core's
tree); distributions ship it compiled for their system Python, e.g. Debian 12's
python3-pyverbs in /usr/lib/python3/dist-packages/pyverbs (cpython-311). coroproc runs in
a virtualenv that does not see dist-packages, and putting the whole of dist-packages on
sys.path would let Debian's copies of numpy & co. shadow the venv's. So:

1. ``import pyverbs`` as is (a venv built with --system-site-packages, or a pyverbs built
   for this Python, just works);
2. else, for each directory in $COROPROC_PYVERBS_PATH (os.pathsep-separated) and then
   /usr/lib/python3/dist-packages: if it holds ``pyverbs/``, check that its compiled
   modules carry this interpreter's ABI tag (cpython-311 ...) and load *only that package*
   under the name ``pyverbs`` (its submodules are found through the package's own
   __path__; nothing else from that directory becomes importable);
3. else raise RdmaUnavailable saying what to install or which Python versions mismatch.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

from coroproc.netproc.rdma.errors import RdmaUnavailable

ENV_PATH = "COROPROC_PYVERBS_PATH"
SYSTEM_DIRS = ("/usr/lib/python3/dist-packages",)
INSTALL_HINT = ("install python3-pyverbs (Debian/Ubuntu: apt-get install python3-pyverbs "
                "rdma-core ibverbs-providers) or rdma-core's pyverbs built for this Python")


def search_dirs() -> list[str]:
    """Where load_pyverbs() looks after a plain import fails, in order."""
    extra = [d for d in os.environ.get(ENV_PATH, "").split(os.pathsep) if d]
    return extra + list(SYSTEM_DIRS)


def _abi_tags(package_dir: Path) -> set[str]:
    """The 'cpython-311'-style tags of the package's compiled modules (file names only)."""
    tags = set()
    for so in package_dir.glob("*.so"):
        parts = so.name.split(".")
        if len(parts) >= 3:
            tags.add("-".join(parts[-2].split("-")[:2]))   # 'cpython-311-x86_64-linux-gnu'
    return tags


def _load_from(package_dir: Path):
    init = package_dir / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        "pyverbs", init, submodule_search_locations=[str(package_dir)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["pyverbs"] = module
    try:
        spec.loader.exec_module(module)
        importlib.import_module("pyverbs.device")   # the first compiled module: fails now, not later
    except ImportError as e:
        for name in [m for m in sys.modules if m == "pyverbs" or m.startswith("pyverbs.")]:
            del sys.modules[name]
        raise RdmaUnavailable(
            f"pyverbs in {package_dir} does not load into {sys.executable}: {e}; is "
            f"libibverbs1 (rdma-core) installed? {INSTALL_HINT}") from None
    return module


def load_pyverbs(dirs: list[str] | None = None):
    """Return the pyverbs package, importing it as the module doc says; RdmaUnavailable if not.

    `dirs` replaces search_dirs() (tests use it to exercise the not-installed paths).
    """
    if "pyverbs" in sys.modules and dirs is None:
        return sys.modules["pyverbs"]
    if dirs is None:
        try:
            return importlib.import_module("pyverbs")
        except ImportError:
            pass
    want = sys.implementation.cache_tag                      # e.g. 'cpython-311'
    mismatched = []
    for d in (search_dirs() if dirs is None else dirs):
        package_dir = Path(d) / "pyverbs"
        if not (package_dir / "__init__.py").is_file():
            continue
        tags = _abi_tags(package_dir)
        if want not in tags:
            mismatched.append(f"{package_dir} (built for {', '.join(sorted(tags)) or 'nothing'})")
            continue
        return _load_from(package_dir)
    looked = ", ".join(search_dirs() if dirs is None else dirs) or "(no directories)"
    if mismatched:
        raise RdmaUnavailable(
            f"pyverbs was found but not for this Python ({want}, {sys.executable}): "
            f"{'; '.join(mismatched)}. Run coroproc with a Python of that version, or build "
            f"rdma-core's pyverbs for this one and point ${ENV_PATH} at its parent directory")
    raise RdmaUnavailable(
        f"pyverbs is not installed: 'import pyverbs' failed and no pyverbs/ package was found "
        f"in {looked} (${ENV_PATH} adds directories); {INSTALL_HINT}")
