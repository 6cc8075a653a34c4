"""Debian's unmodified corosync-cfgtool against coroproc, held to what it prints against
the real Corosync 3.1.7: the same three-host udpu cluster (node 3 configured, never
started) is run once with Corosync and once with coroproc, and every answer must match.

Covered: -s, -sb, -n, -a, -k of a non-member, -L, -R (and the CFG log line on every
node), -k of a member (it stops, the others see it leave) and -H (the node shuts down
cleanly), plus coroproc-cfgtool printing the same bytes as the C tool.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from interop.conftest import skip_reason
from interop.coroproc_runner import CoroprocNode, wait_for
from interop.corosync_runner import READY_LINE, CorosyncNode, corosync_conf
from netns.harness import DEFAULT_PREFIX, Cluster

_REASON = skip_reason()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")
RUNNING = (1, 2)             # node 3 is in the nodelist but never started
TIMEOUT_S = 90.0
TRY_AGAIN_REPEATS = 50


class Daemons:
    """Daemons on hosts 1 and 2 of a netns cluster (`kind`: "corosync", "coroproc" or
    "mixed" = Corosync on 1, coroproc on 2); tools run beside them."""

    def __init__(self, kind: str, net, tmp_path):
        self.kind, self.net = kind, net
        self.kinds = {1: "corosync" if kind == "mixed" else kind,
                      2: "coroproc" if kind == "mixed" else kind}
        nodes = [(h.index, h.addr) for h in net]
        self.d = {}
        for h in net:
            if h.index not in RUNNING:
                continue
            nd = tmp_path / f"{kind}{h.index}"
            nd.mkdir()
            conf = corosync_conf(cluster_name=f"cfg{os.getpid()}", nodes=nodes,
                                 logfile=str(nd / "corosync.log"), state_dir=str(nd / "state"))
            if self.kinds[h.index] == "corosync":
                self.d[h.index] = CorosyncNode(h, h.index, conf, nd)
                self.d[h.index].use_socket_ipc()     # so the Python tool can talk to it
            else:
                self.d[h.index] = CoroprocNode(h, h.index, conf, str(nd))

    def start(self) -> None:
        for d in self.d.values():
            d.start()
        for i in RUNNING:
            wait_for(lambda i=i: self.members(i) == set(RUNNING) and self.synced(i),
                     f"node {i} membership and sync", TIMEOUT_S)

    def synced(self, i) -> bool:
        """The last sync finished: flow-controlled calls (-R, -k, -H) would get
        CS_ERR_TRY_AGAIN during a sync, from both daemons."""
        text = self.log(i)
        return text.rfind(READY_LINE) > text.rfind("A new membership")

    def members(self, i):
        d = self.d[i]
        if self.kinds[i] == "coroproc":
            return d.members()
        return d.members() if d.running() else None

    def argv(self, i, args):
        if self.kinds[i] == "corosync":
            return self.d[i].client_argv(args)
        return self.net.host(i).wrap(args)

    def tool(self, i, args, timeout_s=60.0) -> subprocess.CompletedProcess:
        """Run a tool; a flow-controlled call that met the tail of a sync (an engine
        process may finish its sync a moment after the leader logged it) is repeated,
        as an operator would, a bounded number of times."""
        for _ in range(TRY_AGAIN_REPEATS):
            r = subprocess.run(self.argv(i, args), check=False, capture_output=True, text=True,
                               timeout=timeout_s)
            if "CS_ERR_TRY_AGAIN" not in r.stderr:
                return r
            time.sleep(0.2)
        return r

    def conf_path(self, i) -> str:
        d = self.d[i]
        return d.conf if self.kinds[i] == "coroproc" else str(d.conf_path)

    def log(self, i) -> str:
        d = self.d[i]
        if self.kinds[i] == "coroproc":
            return d.log_text()
        return d.logfile.read_text(errors="replace")

    def exited(self, i) -> bool:
        proc = self.d[i].proc
        return proc is not None and proc.poll() is not None

    def stop(self) -> None:
        for d in self.d.values():
            if not self.exited(d.nodeid):
                d.stop()


def _daemons(kind, tmp_path):
    with Cluster(DEFAULT_PREFIX, 3) as net:
        ds = Daemons(kind, net, tmp_path)
        try:
            ds.start()
            yield ds
        finally:
            ds.stop()


@pytest.fixture(params=["corosync", "coroproc"])
def daemons(request, tmp_path):
    yield from _daemons(request.param, tmp_path)


@pytest.fixture
def mixed(tmp_path):
    yield from _daemons("mixed", tmp_path)


def addr(ds, i):
    return ds.net.host(i).addr


def test_status_views_match_corosync(daemons):
    a3 = addr(daemons, 3)
    r = daemons.tool(1, ["corosync-cfgtool", "-s"])
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == ("Local node ID 1, transport udpu\nLINK ID 0 \n"
                        f"\taddr\t= {a3}\n\tstatus:\n"
                        "\t\tnodeid:          1:\tlocalhost\n"
                        "\t\tnodeid:          2:\tconnected\n"
                        "\t\tnodeid:          3:\tdisconnected\n")
    r = daemons.tool(2, ["corosync-cfgtool", "-sb"])
    assert r.stdout == ("Local node ID 2, transport udpu\nLINK ID 0 \n"
                        f"\taddr\t= {a3}\n\tstatus\t= 3n1\n")
    r = daemons.tool(1, ["corosync-cfgtool", "-n"])
    assert r.stdout == ("Local node ID 1, transport udpu\nnodeid: 2 reachable\n"
                        f"   LINK: 0  ({addr(daemons, 2)}) enabled connected mtu: 1410\n\n")
    r = daemons.tool(1, ["corosync-cfgtool", "-a", "2"])
    assert (r.returncode, r.stdout) == (0, f"{addr(daemons, 2)}\n")
    r = daemons.tool(1, ["corosync-cfgtool", "-k", "9"])
    assert (r.returncode, r.stdout, r.stderr) == (
        1, "Killing node 9\n", "Could not kill node (error = CS_ERR_NOT_EXIST)\n")
    r = daemons.tool(1, ["corosync-cfgtool", "-L"])
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    # coroproc-cfgtool prints what the C tool prints (socket IPC on both daemons)
    for args in (["-s"], ["-sb"], ["-n"], ["-a", "1"], ["-k", "9"]):
        c = daemons.tool(1, ["corosync-cfgtool", *args])
        py = daemons.tool(1, [sys.executable, "-m", "coroproc.tools.cfgtool", *args])
        assert (py.returncode, py.stdout, py.stderr) == (c.returncode, c.stdout, c.stderr), args


def _wait_logged(daemons, i: int, text: str) -> None:
    """Wait for node i's log to hold text. coroproc must log it. Corosync, the reference,
    writes its log from a separate thread, and a reload re-applies the logging section
    while the reload's own lines may still be queued: once (CI, 2 vCPUs under load) node
    2's file never got them within the timeout although the tool had its "Done". That run
    proves nothing about coroproc, so it is reported as a skip, not a failure."""
    try:
        wait_for(lambda: text in daemons.log(i), f"node {i} to log {text!r}", TIMEOUT_S)
    except AssertionError:
        if daemons.kinds[i] != "corosync":
            raise
        pytest.skip(f"Corosync 3.1.7 (the reference) did not write {text!r} to node {i}'s "
                    f"log within {TIMEOUT_S:.0f} s")


def test_reload_runs_everywhere_and_answers_done(daemons):
    # node 2's file now sets a key that cannot change at run time
    path = daemons.conf_path(2)
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace("totem {", "totem {\n    netmtu: 1400", 1))
    r = daemons.tool(2, ["corosync-cfgtool", "-R"])
    assert (r.returncode, r.stdout, r.stderr) == (0, "Reloading corosync.conf...\nDone\n", "")
    for i in RUNNING:
        _wait_logged(daemons, i, "[CFG   ] Config reload requested by node 2")
    ro = "Modified entry 'totem.netmtu' in corosync.conf cannot be changed at run-time"
    _wait_logged(daemons, 2, ro)
    assert ro not in daemons.log(1)
    if daemons.kind == "coroproc":
        r = daemons.tool(1, [sys.executable, "-m", "coroproc.tools.cfgtool", "-s", "--json"])
        doc = json.loads(r.stdout)
        assert doc["local_nodeid"] == 1 and doc["transport"] == "udpu"
        assert [(n["nodeid"], n["reachable"]) for n in doc["nodes"]] == [
            (1, True), (2, True), (3, False)]


def test_kill_node_then_shutdown(daemons):
    r = daemons.tool(1, ["corosync-cfgtool", "-k", "2"])
    assert (r.returncode, r.stdout, r.stderr) == (0, "Killing node 2\n", "")
    wait_for(lambda: daemons.exited(2), "node 2 to exit", TIMEOUT_S)
    assert "Killed by node 1 : Killed by corosync-cfgtool" in daemons.log(2)
    wait_for(lambda: daemons.members(1) == {1}, "node 1 to see node 2 leave", TIMEOUT_S)
    r = daemons.tool(1, ["corosync-cfgtool", "-H"])
    assert (r.returncode, r.stdout, r.stderr) == (0, "Shutting down corosync\n", "")
    wait_for(lambda: daemons.exited(1), "node 1 to shut down", TIMEOUT_S)
    assert "Node 1 was shut down by sysadmin" in daemons.log(1)
    assert daemons.d[1].proc.returncode == 0


def test_mixed_ring_exec_messages(mixed):
    """Corosync (node 1) and coroproc (node 2) understand each other's CFG messages:
    a reload from coroproc runs on Corosync, Corosync's kill stops coroproc."""
    r = mixed.tool(2, ["corosync-cfgtool", "-R"])
    assert (r.returncode, r.stdout) == (0, "Reloading corosync.conf...\nDone\n")
    wait_for(lambda: "[CFG   ] Config reload requested by node 2" in mixed.log(1),
             "Corosync to run coroproc's reload", TIMEOUT_S)
    r = mixed.tool(1, ["corosync-cfgtool", "-k", "2"])
    assert (r.returncode, r.stdout, r.stderr) == (0, "Killing node 2\n", "")
    wait_for(lambda: mixed.exited(2), "coroproc node 2 to exit", TIMEOUT_S)
    assert "Killed by node 1 : Killed by corosync-cfgtool" in mixed.log(2)
    wait_for(lambda: mixed.members(1) == {1}, "Corosync to see node 2 leave", TIMEOUT_S)
