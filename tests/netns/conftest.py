"""pytest wiring for the netns tests: remove a crashed earlier run's namespaces first.

The sweep only removes namespaces named with our prefix whose creator pid is dead, so it
is safe while other xdist workers have live clusters. Skipping (not root, no `ip netns`)
is each test module's `pytestmark`, from `harness.unavailable_reason()`.
"""

from __future__ import annotations

import pytest

from .harness import DEFAULT_PREFIX, sweep_stale, unavailable_reason


@pytest.fixture(scope="session", autouse=True)
def _sweep_stale_namespaces():
    if unavailable_reason() is None:
        sweep_stale(DEFAULT_PREFIX)
    yield
