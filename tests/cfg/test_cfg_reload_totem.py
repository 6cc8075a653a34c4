"""`cfgtool -R` on real daemons: every node re-reads its corosync.conf; the ring process
applies the new Totem timers (Corosync's volatile totem values) and coroproc's idle token
pace at once, cmap shows the new effective values, a key that cannot change at run time
keeps its value, and the ring stays formed."""
from __future__ import annotations

import subprocess
import sys
import time

from coroproc.client.cmap import Cmap
from coroproc.localcluster import LocalCluster


def _runtime_token(suffix: str):
    with Cmap(suffix=suffix) as cmap:
        return cmap.get("runtime.config.totem.token")[1]


def test_reload_changes_the_token_on_every_node(tmp_path):
    lc = LocalCluster(tmp_path, 3, token_ms=1000, rate_msgs_per_s=10)
    try:
        lc.start_all()
        lc.wait_members([1, 2, 3], (1, 2, 3), timeout_s=90)
        lc.wait_synced((1, 2, 3), 30)
        assert _runtime_token(lc.suffix(1)) == 1650        # 1000 + (3 - 2) * 650
        mark = lc.mark()
        for i in (1, 2, 3):
            text = open(lc.conf(i)).read()
            text = text.replace("token: 1000", "token: 2000")
            text = text.replace(f"cluster_name: {lc.cluster}", f"cluster_name: {lc.cluster}x")
            text += "coroproc {\n    idle_token_pace_us: 0\n}\n"
            open(lc.conf(i), "w").write(text)
        out = subprocess.run([sys.executable, "-m", "coroproc.tools.cfgtool", "--suffix",
                              lc.suffix(1), "-R"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, (out.stdout, out.stderr)
        # the ring process (the timers) and the CFG engine (the refused key) log the
        # reload separately, each when the supervisor's message reaches it
        def _timers_changed(ln):
            return ("runtime configuration changed: token_us 1650000 -> 2650000" in ln
                    and "idle_token_pace_us 1000 -> 0" in ln)

        def _name_refused(ln):
            return "cluster_name" in ln and "cannot be changed at run-time" in ln

        def _logged(i):
            lines = lc.log_lines(i)[mark[i]:]
            return any(map(_timers_changed, lines)) and any(map(_name_refused, lines))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(map(_logged, (1, 2, 3))):
            time.sleep(0.2)
        for i in (1, 2, 3):
            lines = lc.log_lines(i)[mark[i]:]
            assert any(map(_timers_changed, lines)), lc.tail(i)
            assert any(map(_name_refused, lines)), lc.tail(i)
            assert not any("A new membership" in ln for ln in lines)
        deadline = time.monotonic() + 10
        while _runtime_token(lc.suffix(2)) != 2650 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _runtime_token(lc.suffix(2)) == 2650
        with Cmap(suffix=lc.suffix(3)) as cmap:
            assert cmap.get("totem.cluster_name")[1] == lc.cluster     # kept
            assert cmap.get("totem.token")[1] == 2000
    finally:
        lc.stop_all()
