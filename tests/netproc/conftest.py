"""Fixtures for the netproc tests: link processes and network namespaces that always go away."""
import subprocess

import pytest
from netproc_harness import LinkHarness, NetNs


@pytest.fixture
def links():
    """start(spec, **kw) -> LinkHarness; every harness started is closed at teardown."""
    started = []

    def start(spec, **kw):
        h = LinkHarness(spec, **kw)
        started.append(h)
        return h

    yield start
    for h in started:
        h.close()


@pytest.fixture
def netns_factory():
    """make(veth=False) -> NetNs; skips with the reason if namespaces can't be made; all deleted."""
    made = []

    def make(veth=False):
        try:
            ns = NetNs(veth=veth)
        except (RuntimeError, subprocess.CalledProcessError, OSError) as e:
            pytest.skip(f"cannot create a network namespace here (needs root and iproute2): {e}")
        made.append(ns)
        return ns

    yield make
    for ns in made:
        ns.delete()
