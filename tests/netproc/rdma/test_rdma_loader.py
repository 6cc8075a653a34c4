"""loader.py: pyverbs import paths. Runs in fresh interpreters: loading pyverbs changes
sys.modules, which must not leak into other tests."""
import subprocess
import sys
import textwrap

import pytest
from rdma_env import PYVERBS_OK


def run(code: str, **env) -> subprocess.CompletedProcess:
    import os
    full_env = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=full_env, timeout=120)


def test_not_installed_names_the_package_and_the_places_looked(tmp_path):
    r = run(f"""
        from coroproc.netproc.rdma.loader import load_pyverbs
        from coroproc.netproc.rdma.errors import RdmaUnavailable
        try:
            load_pyverbs(dirs=[{str(tmp_path)!r}])
        except RdmaUnavailable as e:
            print(e)
        """)
    assert r.returncode == 0, r.stderr
    assert "pyverbs is not installed" in r.stdout
    assert "install python3-pyverbs" in r.stdout and str(tmp_path) in r.stdout


def test_wrong_python_version_is_explained(tmp_path):
    pkg = tmp_path / "pyverbs"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "device.cpython-39-x86_64-linux-gnu.so").write_bytes(b"")
    r = run(f"""
        from coroproc.netproc.rdma.loader import load_pyverbs
        from coroproc.netproc.rdma.errors import RdmaUnavailable
        try:
            load_pyverbs(dirs=[{str(tmp_path)!r}])
        except RdmaUnavailable as e:
            print(e)
        """)
    assert r.returncode == 0, r.stderr
    assert "found but not for this Python" in r.stdout and "built for cpython-39" in r.stdout


def test_broken_compiled_module_is_reported_and_not_left_imported(tmp_path):
    pkg = tmp_path / "pyverbs"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    tag = sys.implementation.cache_tag
    (pkg / f"device.{tag}-x86_64-linux-gnu.so").write_bytes(b"not an ELF file")
    r = run(f"""
        import sys
        from coroproc.netproc.rdma.loader import load_pyverbs
        from coroproc.netproc.rdma.errors import RdmaUnavailable
        try:
            load_pyverbs(dirs=[{str(tmp_path)!r}])
        except RdmaUnavailable as e:
            print(e)
        print("left:", [m for m in sys.modules if m.startswith("pyverbs")])
        """)
    assert r.returncode == 0, r.stderr
    assert "does not load into" in r.stdout and "left: []" in r.stdout


@pytest.mark.skipif(not PYVERBS_OK, reason="python3-pyverbs is not installed on this host")
def test_system_pyverbs_loads_without_exposing_dist_packages():
    r = run("""
        import sys
        from coroproc.netproc.rdma.loader import load_pyverbs
        pv = load_pyverbs()
        import pyverbs.device
        print("path:", any("dist-packages" in p for p in sys.path))
        print("file:", pv.__file__)
        """)
    assert r.returncode == 0, r.stderr
    assert "path: False" in r.stdout and "file: " in r.stdout
