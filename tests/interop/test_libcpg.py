"""Debian's libcpg against coroproc: a C client (tests/interop/c/cpg_probe.c, built with
libcpg-dev at test time) on every node joins one group, multicasts, and reports every
callback. The same probe runs against the real Corosync 3.1.7 first (it is the reference
for what the probe must see), then across three coroproc nodes."""
from __future__ import annotations

import os
import subprocess

import pytest

from netns.harness import DEFAULT_PREFIX, Cluster

from . import cpg_probe
from .conftest import skip_reason
from .coroproc_runner import CoroprocNode, wait_for
from .corosync_runner import CorosyncNode, corosync_conf

_REASON = skip_reason() or cpg_probe.unavailable_reason()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")
SEND = 200
MSG_BYTES = 700
START_DELAY_MS = 3000       # every probe has joined before anyone sends
TIMEOUT_S = 60


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    return cpg_probe.build(tmp_path_factory.mktemp("cpg_probe"))


def _cluster(tmp_path, net, kinds):
    nodes = [(h.index, h.addr) for h in net]
    daemons = {}
    for h in net:
        nd = tmp_path / f"n{h.index}"
        nd.mkdir()
        # unique per xdist worker: coroproc's shm segments are named after the cluster
        conf = corosync_conf(cluster_name=f"cpg{os.getpid()}", nodes=nodes,
                             logfile=str(nd / "corosync.log"),
                             state_dir=str(nd / "state"), token_ms=1000)
        if kinds[h.index] == "corosync":
            daemons[h.index] = CorosyncNode(h, h.index, conf, nd)
        else:
            daemons[h.index] = CoroprocNode(h, h.index, conf, str(nd))
    return daemons


def _run_probes(tmp_path, net, daemons, probe, group="probe", send=SEND, msg_bytes=MSG_BYTES):
    n = len(daemons)
    procs, outs = {}, {}
    for i, d in daemons.items():
        args = cpg_probe.argv(probe, group, send, msg_bytes, send * n, TIMEOUT_S, START_DELAY_MS)
        outs[i] = tmp_path / f"probe{i}.jsonl"
        # libcpg itself prints "sleep. counter=N" to stderr while it retries a fragment
        with open(outs[i], "wb") as f, open(tmp_path / f"probe{i}.stderr", "wb") as err:
            if isinstance(d, CorosyncNode):
                procs[i] = subprocess.Popen(d.client_argv(args), stdout=f, stderr=err)
            else:
                procs[i] = net.host(i).popen(args, stdout=f, stderr=err)
    for i, p in procs.items():
        try:
            p.wait(timeout=TIMEOUT_S + 30)
        finally:
            if p.poll() is None:
                p.kill()
    views = {f"node{i}": cpg_probe.read_events(outs[i]) for i in procs}
    for i, p in procs.items():
        assert p.returncode == 0, (i, views[f"node{i}"][-3:])
    cpg_probe.check_views(views, send * n)
    return views


def _fast_lane(daemon) -> dict:
    """The cpg engine's fast-lane counters (docs/cpg.md), as the status reports them."""
    status = daemon.status() or {}
    hb = ((status.get("children") or {}).get("cpg") or {}).get("counters") or {}
    return (hb.get("engine") or {}).get("fast_lane") or {}


def _assert_fast_lane_carried(daemons, send):
    """The probes' traffic went through the jitted lane (not only through Python): every
    coroproc node delivered most of the 3 x send messages there, and took its own
    probe's requests there (a few may stop for Python, e.g. behind a join); its engine
    slept in the jitted delivery loop (jit/loop.py) at least once."""
    for i, d in daemons.items():
        if isinstance(d, CorosyncNode):
            continue
        wait_for(lambda d=d: _fast_lane(d).get("records", 0) >= send, f"node {i} lane counters",
                 timeout_s=30)
        lane = _fast_lane(d)
        assert lane["requests"] >= send // 2, (i, lane)
        assert lane["loops"] >= 1 and lane["loop_sleeps"] >= 1, (i, lane)


def _start(daemons):
    for d in daemons.values():
        d.start()
    everyone = set(daemons)
    for i, d in daemons.items():
        wait_for(lambda d=d: d.members() == everyone, f"node {i} to see {everyone}")


@pytest.mark.parametrize("kinds", [
    {1: "corosync", 2: "corosync", 3: "corosync"},
    {1: "coroproc", 2: "coroproc", 3: "coroproc"},
    {1: "corosync", 2: "corosync", 3: "coroproc"},
    {1: "coroproc", 2: "corosync", 3: "coroproc"},
], ids=["corosync-reference", "coroproc", "mixed-2-corosync", "mixed-1-corosync"])
def test_libcpg_clients_agree_on_one_order(tmp_path, probe, kinds):
    with Cluster(DEFAULT_PREFIX, len(kinds)) as net:
        daemons = _cluster(tmp_path, net, kinds)
        try:
            _start(daemons)
            views = _run_probes(tmp_path, net, daemons, probe)
            _assert_fast_lane_carried(daemons, SEND)
            # the initial totem confchg (model V1) names the whole ring
            for name, events in views.items():
                totem = [e for e in events if e["ev"] == "totem"]
                assert totem and sorted(totem[0]["members"]) == [1, 2, 3], (name, totem)
        finally:
            for d in daemons.values():
                d.stop()


@pytest.mark.parametrize("msg_bytes", [1_047_552, 3_000_000], ids=["max-atomic", "partial-mcast"])
def test_libcpg_large_messages_across_coroproc_nodes(tmp_path, probe, msg_bytes):
    """The largest message libcpg sends in one request (IPC_REQUEST_SIZE - 1024 bytes: one
    socket-mode datagram), and a larger one it splits into PARTIAL_MCAST fragments."""
    kinds = {1: "coroproc", 2: "coroproc", 3: "coroproc"}
    with Cluster(DEFAULT_PREFIX, len(kinds)) as net:
        daemons = _cluster(tmp_path, net, kinds)
        try:
            _start(daemons)
            _run_probes(tmp_path, net, daemons, probe, send=4, msg_bytes=msg_bytes)
        finally:
            for d in daemons.values():
                d.stop()
