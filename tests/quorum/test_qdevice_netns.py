"""Debian's unmodified corosync-qdevice and corosync-qnetd with coroproc nodes, and in
mixed rings with Corosync 3.1.7 (either kind the tie-breaker): a two-node cluster with `quorum { device { model: net … } }` (algorithm ffsplit, TLS off),
qnetd on a third host. Each node's qdevice registers with coroproc's votequorum
(libvotequorum's qdevice calls) and casts its vote as qnetd decides: both nodes count
3 votes; cut apart, the tie-breaker (the lowest node id) keeps quorum with the device's
vote and the other loses it; healed, both count 3 again. corosync-qdevice reads
runtime.votequorum.this_node_id from cmap as it starts (engineprocs/cmap/runtime.py)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from interop.conftest import skip_reason
from interop.coroproc_runner import CoroprocNode
from interop.corosync_runner import CorosyncNode, corosync_conf
from netns.harness import DEFAULT_PREFIX, Cluster

from test_quorum_netns import ENGINES, quorumtool, status_fields, wait_status

_REASON = skip_reason() or (None if shutil.which("corosync-qdevice") and shutil.which(
    "corosync-qnetd") else "needs corosync-qdevice and corosync-qnetd (Debian packages)")
pytestmark = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")
DEVICE = """
    device {{
        votes: 1
        model: net
        net {{
            tls: off
            host: {host}
            algorithm: ffsplit
        }}
    }}"""


def _stop(proc) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _membership(text: str) -> dict[str, tuple[str, str]]:
    """Nodeid → (votes, qdevice state) from corosync-quorumtool -s's membership table."""
    rows = re.findall(r"^\s+(\d+)\s+(\d+)\s+(\S*?)\s*(n\d|Qdevice)", text, re.M)
    return {nodeid: (votes, state) for nodeid, votes, state, _name in rows}


def _qdevice(d, argv: list[str], log) -> subprocess.Popen:
    """corosync-qdevice beside the daemon: in Corosync's mount namespace for a Corosync
    node (its IPC), in the host's network namespace for either."""
    if isinstance(d, CorosyncNode):
        return subprocess.Popen(d.client_argv(argv), stdout=log, stderr=subprocess.STDOUT)
    return d.host.popen(argv, stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.parametrize("kinds", [
    {1: "coroproc", 2: "coroproc"},
    {1: "corosync", 2: "coroproc"},
    {1: "coroproc", 2: "corosync"},
], ids=["coroproc", "mixed-tie-breaker-corosync", "mixed-tie-breaker-coroproc"])
def test_qdevice_ffsplit_keeps_the_tie_breaker_quorate(tmp_path, kinds):
    with Cluster(DEFAULT_PREFIX, 3) as net:
        qnetd_host = net.host(3)
        nodes = [(1, net.host(1).addr), (2, net.host(2).addr)]
        daemons, procs = {}, []
        for i in (1, 2):
            nd = tmp_path / f"n{i}"
            conf = corosync_conf(cluster_name=f"qd{os.getpid()}", nodes=nodes,
                                 logfile=str(nd / "corosync.log"), state_dir=str(nd / "state"))
            conf = conf.replace("    provider: corosync_votequorum",
                                "    provider: corosync_votequorum"
                                + DEVICE.format(host=qnetd_host.addr))
            if kinds[i] == "corosync":
                nd.mkdir(parents=True)
                daemons[i] = CorosyncNode(net.host(i), i, conf, nd)
            else:
                daemons[i] = CoroprocNode(net.host(i), i, conf + ENGINES, str(nd))
        try:
            procs.append(qnetd_host.popen(
                ["corosync-qnetd", "-f", "-s", "off", "-l", qnetd_host.addr],
                stdout=open(tmp_path / "qnetd.log", "wb"), stderr=subprocess.STDOUT))
            for d in daemons.values():
                d.start()
            wait_status(daemons, [1, 2], {"Nodes": "2"}, 90)
            for i in (1, 2):
                # one host's file system: each qdevice its own lock and socket
                procs.append(_qdevice(daemons[i], [
                    "corosync-qdevice", "-f", "-d", "-S",
                    f"lock_file={tmp_path}/qdevice{i}.pid,"
                    f"local_socket_file={tmp_path}/qdevice{i}.sock"],
                    open(tmp_path / f"qdevice{i}.log", "wb")))
            wait_status(daemons, [1, 2], {"Quorate": "Yes", "Expected votes": "3",
                                          "Total votes": "3", "Flags": "Quorate Qdevice"}, 60)
            table = _membership(quorumtool(daemons[1], ["-s"]).stdout)
            assert table == {"1": ("1", "A,V,NMW"), "2": ("1", "A,V,NMW"), "0": ("1", "")}, \
                table
            tool = subprocess.run(["corosync-qdevice-tool", "-s", "-p",
                                   f"{tmp_path}/qdevice1.sock"], capture_output=True,
                                  text=True, timeout=30)
            assert "State:\t\t\tConnected" in tool.stdout, tool.stdout + tool.stderr

            net.block(1, 2)                    # the nodes lose each other, not qnetd
            wait_status(daemons, [1], {"Quorate": "Yes", "Total votes": "2",
                                       "Flags": "Quorate Qdevice"}, 60)
            wait_status(daemons, [2], {"Quorate": "No", "Total votes": "1"}, 60)
            after = _membership(quorumtool(daemons[2], ["-s"]).stdout)
            assert after == {"2": ("1", "A,NV,NMW"), "0": ("0", "")}, after   # device: no vote
            net.heal()
            wait_status(daemons, [1, 2], {"Quorate": "Yes", "Total votes": "3"}, 90)
            for i in (1, 2):
                assert status_fields(quorumtool(daemons[i], ["-s"]).stdout)["Flags"] \
                    == "Quorate Qdevice"
        finally:
            for proc in reversed(procs):
                _stop(proc)
            for d in daemons.values():
                d.stop()
