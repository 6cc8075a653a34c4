"""pytest wiring for the nemesis tests: remove a crashed earlier run's namespaces first
(only names `nem-<pid>-…` whose creator pid is dead, so parallel workers are safe)."""
from __future__ import annotations

import pytest

from netns.harness import sweep_stale, unavailable_reason

from .runner import PREFIX


@pytest.fixture(scope="session", autouse=True)
def _sweep_stale_nemesis_namespaces():
    if unavailable_reason() is None:
        sweep_stale(PREFIX)
    yield
