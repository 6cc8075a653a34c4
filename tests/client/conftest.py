"""A real Corosync 3.1.7 daemon for the client-library tests, one per test module.

The daemon runs single-node (udpu) in its own network + mount namespace with
`qb_ipc_type: socket`, so coroproc's Python client (socket mode only) can talk to it.
Clients must live in the daemon's namespaces (abstract sockets are per network
namespace, the control files sit in its private /dev/shm), so every client here —
our Python code, our tools and Corosync's own tools — runs through `nsenter`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from interop.corosync_runner import CorosyncCluster
from interop.corosync_runner import unavailable_reason as corosync_unavailable
from netns.harness import DEFAULT_PREFIX, Cluster
from netns.harness import unavailable_reason as netns_unavailable

REPO_ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CLIENT_TIMEOUT_S = 120.0   # a hung client is a failure, not a hang of the suite
READY_TIMEOUT_S = 60.0


def skip_reason() -> str | None:
    missing = [t for t in ("corosync-cpgtool", "stdbuf") if shutil.which(t) is None]
    if missing:
        return f"missing {', '.join(missing)} (apt-get install corosync coreutils)"
    return netns_unavailable() or corosync_unavailable()


class Daemon:
    """Run programs inside one real corosync's namespaces."""

    def __init__(self, node):
        self.node = node

    @property
    def pid(self) -> int:
        return self.node.pid

    def argv(self, argv) -> list[str]:
        env = ["env", f"PYTHONPATH={REPO_ROOT}", "PYTHONDONTWRITEBYTECODE=1"]
        return self.node.client_argv([*env, *argv])

    def run(self, argv, *, input: str | bytes | None = None, text: bool = True,
            check: bool = False) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.argv(argv), check=False, input=input, capture_output=True, text=text,
                              timeout=CLIENT_TIMEOUT_S)
        if check and proc.returncode != 0:
            raise AssertionError(f"{argv} exited {proc.returncode}:\n{proc.stderr}")
        return proc

    def python(self, *args, **kw) -> subprocess.CompletedProcess:
        return self.run([sys.executable, *args], **kw)

    def scenario(self, name: str, *args) -> subprocess.CompletedProcess:
        return self.python(str(HERE / name), *args, check=True)

    def popen(self, argv, **kw) -> subprocess.Popen:
        return subprocess.Popen(self.argv(argv), **kw)


class _CoroprocInNetns:
    """A coroproc node in its own netns, with CorosyncNode's client_argv."""

    def __init__(self, host, node):
        self.host = host
        self.node = node

    @property
    def pid(self) -> int:
        return self.node.proc.pid

    def client_argv(self, argv) -> list[str]:
        return self.host.wrap(list(argv))


@pytest.fixture(scope="module", params=["corosync", "coroproc"])
def daemon(request, tmp_path_factory):
    """The same client tests against the real Corosync and against coroproc: our client
    and tools must give the same answers as Corosync's own tools, on either daemon."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    net = Cluster(DEFAULT_PREFIX, 1).__enter__()
    try:
        if request.param == "coroproc":
            yield from _coroproc_daemon(net, tmp_path_factory)
            return
        cc = CorosyncCluster(net, tmp_path_factory.mktemp("corosync"),
                             cluster_name=f"cl{os.getpid() % 100000}")
        try:
            cc[1].use_socket_ipc()
            cc.start_all()
            cc.wait_membership([[1]], READY_TIMEOUT_S)
            yield Daemon(cc[1])
        finally:
            cc.stop_all()
    finally:
        net.close()


def _coroproc_daemon(net, tmp_path_factory):
    from interop.coroproc_runner import CoroprocNode, wait_for
    from interop.corosync_runner import corosync_conf
    host = net.host(1)
    nd = tmp_path_factory.mktemp("coroproc")
    conf = corosync_conf(cluster_name=f"cl{os.getpid() % 100000}", nodes=[(1, host.addr)],
                         logfile=str(nd / "corosync.log"), state_dir=str(nd / "state"))
    node = CoroprocNode(host, 1, conf, str(nd))
    node.start()
    try:
        wait_for(lambda: "Completed service synchronization" in node.log_text(),
                 "coroproc to finish its first sync", READY_TIMEOUT_S)
        # votequorum publishes its runtime.votequorum.* keys just after its first sync:
        # wait for them, or a dump taken twice differs by those keys
        wait_for(lambda: host.run(["corosync-cmapctl", "-g", "runtime.votequorum.this_node_id"],
                                  check=False).returncode == 0,
                 "coroproc's votequorum runtime keys", READY_TIMEOUT_S)
        yield Daemon(_CoroprocInNetns(host, node))
    finally:
        node.stop()
