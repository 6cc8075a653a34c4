"""Who may talk to a node (Corosync's cs_ipcs_connection_accept), with Debian's libcpg:
root always; any other uid/gid only if `uidgid` allows it — a corosync.conf section, a
uidgid.d/ file next to it, or a uidgid.uid.N / uidgid.gid.N key set at run time with
corosync-cmapctl. The client runs as real other users, inside the node's namespace."""
from __future__ import annotations

import os
import subprocess

import pytest

from netns.harness import DEFAULT_PREFIX, Cluster

from . import cpg_probe
from .conftest import skip_reason
from .coroproc_runner import CoroprocNode, wait_for
from .corosync_runner import corosync_conf

_REASON = skip_reason() or cpg_probe.unavailable_reason() or (
    None if os.geteuid() == 0 else "needs root to run clients as other users")
pytestmark = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")
NOBODY = 65534        # nobody:nogroup on Debian
DAEMON = 1            # daemon:daemon
CS_OK, CS_ERR_ACCESS = 1, 11


def _connect_as(host, binary: str, uid: int, gid: int) -> int:
    # enter the namespace as root, then become the user (util-linux setpriv)
    out = subprocess.run(host.wrap(["setpriv", f"--reuid={uid}", f"--regid={gid}",
                                    "--clear-groups", binary]),
                         capture_output=True, text=True, timeout=30, cwd="/")
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip())


def test_uidgid_sections_files_and_runtime_keys(tmp_path):
    os.chmod(tmp_path, 0o755)
    binary = cpg_probe.build(tmp_path, "cpg_connect")
    os.chmod(binary, 0o755)
    with Cluster(DEFAULT_PREFIX, 1) as net:
        host = net.host(1)
        nd = tmp_path / "n1"
        conf = corosync_conf(cluster_name=f"acl{os.getpid()}", nodes=[(1, host.addr)],
                             logfile=str(nd / "corosync.log"), state_dir=str(nd / "state"))
        node = CoroprocNode(host, 1, conf, str(nd))
        (nd / "uidgid.d").mkdir()
        (nd / "uidgid.d" / "daemons").write_text(f"uidgid {{\n    gid: {DAEMON}\n}}\n")
        try:
            node.start()
            wait_for(lambda: "Completed service synchronization" in node.log_text(), "sync")
            assert _connect_as(host, binary, 0, 0) == CS_OK
            assert _connect_as(host, binary, NOBODY, NOBODY) == CS_ERR_ACCESS
            assert f"Denied connection attempt from {NOBODY}:{NOBODY}" in node.log_text()
            assert _connect_as(host, binary, DAEMON, DAEMON) == CS_OK          # uidgid.d/
            set_key = host.run(["corosync-cmapctl", "-s", f"uidgid.uid.{NOBODY}", "u8", "1"])
            assert set_key.returncode == 0
            assert _connect_as(host, binary, NOBODY, NOBODY) == CS_OK          # runtime key
            host.run(["corosync-cmapctl", "-d", f"uidgid.uid.{NOBODY}"])
            assert _connect_as(host, binary, NOBODY, NOBODY) == CS_ERR_ACCESS
        finally:
            node.stop()
