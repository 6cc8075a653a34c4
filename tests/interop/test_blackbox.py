"""The flight recorder as Corosync's users reach it: Debian's unmodified
`corosync-blackbox` (cmapctl sets runtime.blackbox.dump_state and dump_flight_data, then
`qb-blackbox /var/lib/corosync/fdata`) against a coroproc node, its state dir mounted at
/var/lib/corosync in a mount namespace of the tool's own. The dump holds every process's
lines in time order, debug ones the log file (priority info) does not have, and the
file and symlink carry Corosync's names."""
from __future__ import annotations

import os
import re
import shutil
import struct

import pytest

from netns.harness import DEFAULT_PREFIX, Cluster

from .conftest import skip_reason
from .coroproc_runner import CoroprocNode, wait_for
from .corosync_runner import corosync_conf

_REASON = skip_reason() or (None if shutil.which("qb-blackbox") and shutil.which(
    "corosync-blackbox") else "needs qb-blackbox (libqb-tools) and corosync-blackbox")
pytestmark = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")
LINE = re.compile(r"^(\w+)\s+(\w{3} \d\d \d\d:\d\d:\d\d\.\d{3}) (coroproc: [\w ]+)\((\d+)\):0: "
                  r"\[(\w+)\s*\] (.*)$")


def _timestamps_ns(path) -> list[int]:
    """Each entry's timespec, walking the chunks as libqb's reader does."""
    raw = open(path, "rb").read()
    _word_size, write_pt, _read_pt = struct.unpack_from("<3I", raw, 20)
    data, pos, out = raw[40:], 0, []
    while pos < write_pt:
        size, magic = struct.unpack_from("<II", data, pos * 4)
        assert magic == 0xA1A1A1A1
        entry = data[pos * 4 + 8:pos * 4 + 8 + size]
        fn_size = struct.unpack_from("<I", entry, 9)[0]
        sec, nsec = struct.unpack_from("<qq", entry, 13 + fn_size)
        out.append(sec * 1_000_000_000 + nsec)
        pos += 2 + (size + 3) // 4
    return out


def test_corosync_blackbox_dumps_every_process_of_the_node(tmp_path):
    with Cluster(DEFAULT_PREFIX, 1) as net:
        host = net.host(1)
        nd = tmp_path / "n1"
        conf = corosync_conf(cluster_name=f"bb{os.getpid()}", nodes=[(1, host.addr)],
                             logfile=str(nd / "corosync.log"), state_dir=str(nd / "state"))
        node = CoroprocNode(host, 1, conf, str(nd))
        try:
            node.start()
            wait_for(lambda: "Completed service synchronization" in node.log_text(), "sync")
            script = (f"mount --bind {nd}/state /var/lib/corosync && exec corosync-blackbox")
            out = host.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                           check=False, timeout_s=60)
            assert "Dumping the contents of /var/lib/corosync/fdata" in out.stdout, \
                out.stdout + out.stderr
            lines = [m.groups() for m in map(LINE.match, out.stdout.splitlines()) if m]
            processes = {proc for _p, _t, proc, _pid, _s, _m in lines}
            assert {"coroproc: supervisor", "coroproc: ring", "coroproc: cmap",
                    "coroproc: votequorum"} <= processes, processes
            texts = [f"[{s}] {m}" for _p, _t, _proc, _pid, s, m in lines]
            assert any("[MAIN] Corosync Cluster Engine (coroproc) started" in t for t in texts)
            assert any(t.startswith("[TOTEM] A new membership") for t in texts)
            # debug lines the log file (logfile_priority info) leaves out are recorded
            debug = [m for p, _t, _proc, _pid, _s, m in lines if p == "debug"]
            assert debug and not any(m in node.log_text() for m in debug[:5]), debug[:5]
            # in time order across processes, to the nanosecond the file keeps
            stamps = _timestamps_ns(nd / "state" / "fdata")
            assert len(stamps) == len(lines) and stamps == sorted(stamps)
            target = os.readlink(nd / "state" / "fdata")
            assert re.fullmatch(rf"{nd}/state/fdata-\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d-\d+",
                                target), target
            # dump_state: the supervisor's state dump, as after SIGUSR2
            wait_for(lambda: "coroproc: ring: pid" in node.log_text(), "the state dump")
        finally:
            node.stop()
