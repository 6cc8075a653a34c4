"""Debian's unmodified corosync-cmapctl against a real coroproc node (one network
namespace, no IPC suffix, so the tool finds "cmap"): dump, -g, -s, -d, -t and -m stats."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from interop.coroproc_runner import CoroprocNode, wait_for
from interop.corosync_runner import corosync_conf
from netns.harness import DEFAULT_PREFIX, Cluster, unavailable_reason

CMAPCTL = shutil.which("corosync-cmapctl") or "/usr/sbin/corosync-cmapctl"
pytestmark = pytest.mark.skipif(
    unavailable_reason() is not None or not os.path.exists(CMAPCTL),
    reason=unavailable_reason() or "corosync-cmapctl is not installed")

TOKEN_MS = 1000


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cmapctl")
    cluster = f"cm{os.getpid() % 100000}"
    with Cluster(DEFAULT_PREFIX, 1) as net:
        host = net.host(1)
        conf = corosync_conf(cluster_name=cluster, nodes=[(1, host.addr)],
                             logfile=str(tmp / "x.log"), state_dir=str(tmp / "state"),
                             token_ms=TOKEN_MS, extra_totem={"config_version": 3})
        conf += "service {\n    name: cmap\n}\n"
        daemon = CoroprocNode(host, 1, conf, str(tmp / "n1"))
        try:
            daemon.start()
            wait_for(lambda: "Completed service synchronization" in daemon.log_text(),
                     "the node's first sync", 60)
            yield host, daemon
        finally:
            daemon.stop()


def cmapctl(host, *args, check=True):
    proc = host.run([CMAPCTL, *args], check=False, timeout_s=30)
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def test_dump_has_config_runtime_and_members(node):
    host, _ = node
    lines = set(cmapctl(host).stdout.splitlines())
    assert "totem.token (u32) = 1000" in lines
    assert "totem.config_version (u64) = 3" in lines
    assert "totem.transport (str) = udpu" in lines
    assert "runtime.config.totem.token (u32) = 1000" in lines
    assert "runtime.config.totem.consensus (u32) = 1200" in lines
    assert "nodelist.node.0.nodeid (u32) = 1" in lines
    assert "nodelist.local_node_pos (u32) = 0" in lines
    assert "runtime.services.cmap.service_id (u16) = 0" in lines
    assert f"runtime.members.1.ip (str) = r(0) ip({host.addr}) " in lines
    assert "runtime.members.1.status (str) = joined" in lines
    assert "runtime.members.1.config_version (u64) = 3" in lines
    # a prefix argument filters
    totem_only = cmapctl(host, "runtime.config.").stdout.splitlines()
    assert totem_only and all(line.startswith("runtime.config.") for line in totem_only)


def test_get_set_delete(node):
    host, _ = node
    assert cmapctl(host, "-g", "totem.token").stdout == "totem.token (u32) = 1000\n"
    key = f"test.cmapctl.{os.getpid()}"
    for type_name, value, shown in (("u32", "42", "42"), ("i8", "5", "5"),
                                    ("str", "hello world", "hello world"),
                                    ("u64", "18446744073709551615", "18446744073709551615"),
                                    ("dbl", "1.5", "1.500000")):
        cmapctl(host, "-s", key, type_name, value)
        assert cmapctl(host, "-g", key).stdout == f"{key} ({type_name}) = {shown}\n"
    cmapctl(host, "-d", key)
    missing = cmapctl(host, "-g", key, check=False)
    assert missing.returncode != 0 and "CS_ERR_NOT_EXIST" in missing.stderr
    ro = cmapctl(host, "-s", "nodelist.node.0.nodeid", "u32", "7", check=False)
    assert "CS_ERR_ACCESS" in ro.stderr
    assert cmapctl(host, "-g", "nodelist.node.0.nodeid").stdout.endswith("= 1\n")


def test_track_prints_changes(node):
    host, _ = node
    key = f"test.track.{os.getpid()}"
    # the tool's stdout is a pipe (fully buffered): it must end by "q" to flush, not a signal
    proc = host.popen([CMAPCTL, "-t", key], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                      stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: any(c["connections"] for c in _cmap_counters(node)),
                 "the tracking tool to connect", 30)
        wait_for(lambda: _cmap_counters(node)[0]["tracks"] >= 2, "its track", 30)
        for value in (1, 2):
            cmapctl(host, "-s", key, "u8", str(value))
        cmapctl(host, "-d", key)
        out, _ = proc.communicate("q\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert f"create> {key} (u8) = 1" in out, out
    assert f"modify> {key} (u8) = 2" in out, out
    assert f"delete> {key}" in out, out


def _cmap_counters(node):
    status = node[1].status() or {}
    cmap = status.get("children", {}).get("cmap", {}).get("counters", {})
    return [cmap.get("engine", {"connections": 0, "tracks": 0})]


def test_stats_map(node):
    host, _ = node
    wait_for(lambda: "stats.srp.orf_token_rx (u64) = 0" not in
             cmapctl(host, "-m", "stats").stdout, "ring counters in the stats map", 30)
    lines = cmapctl(host, "-m", "stats").stdout.splitlines()
    names = [line.split(" ", 1)[0] for line in lines]
    assert names == sorted(names)
    for key in ("stats.srp.orf_token_tx", "stats.srp.mcast_tx", "stats.pg.msg_queue_avail",
                "stats.ipcs.global.active"):
        assert key in names, key
    assert any(line.startswith("stats.srp.operational_entered (u64) = ") for line in lines)
    got = cmapctl(host, "-m", "stats", "-g", "stats.srp.orf_token_rx").stdout
    assert got.startswith("stats.srp.orf_token_rx (u64) = ")
    assert cmapctl(host, "-C", "totem").returncode == 0
    ro = cmapctl(host, "-m", "stats", "-s", "stats.srp.mcast_tx", "u64", "1", check=False)
    assert "CS_ERR_ACCESS" in ro.stderr
