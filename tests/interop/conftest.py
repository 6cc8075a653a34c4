"""pytest wiring for the real-Corosync tests: skip reasons, stale-namespace sweep, and a
`corosync_cluster(n, transport=…, token_ms=…)` factory that tears everything down."""

from __future__ import annotations

import pytest

from netns.harness import DEFAULT_PREFIX, Cluster, sweep_stale
from netns.harness import unavailable_reason as netns_unavailable

from .corosync_runner import CorosyncCluster
from .corosync_runner import unavailable_reason as corosync_unavailable


def skip_reason() -> str | None:
    return netns_unavailable() or corosync_unavailable()


@pytest.fixture(scope="session", autouse=True)
def _sweep_stale_namespaces():
    if netns_unavailable() is None:
        sweep_stale(DEFAULT_PREFIX)
    yield


@pytest.fixture
def corosync_cluster(tmp_path):
    """Factory: corosync_cluster(3) -> started CorosyncCluster on a fresh netns Cluster."""
    made: list[tuple[Cluster, CorosyncCluster]] = []

    def make(n_hosts: int, *, transport: str = "udpu", token_ms: int = 1000, ipv6: bool = False,
             start: bool = True) -> CorosyncCluster:
        net = Cluster(DEFAULT_PREFIX, n_hosts, ipv6=ipv6).__enter__()
        try:
            cc = CorosyncCluster(net, tmp_path / f"cluster{len(made)}", transport=transport, token_ms=token_ms)
        except BaseException:
            net.close()
            raise
        made.append((net, cc))
        if start:
            cc.start_all()
        return cc

    yield make
    for net, cc in reversed(made):
        try:
            cc.stop_all()
        finally:
            net.close()
