"""Debian's unmodified corosync-notifyd (`-f -o -n`: events on stderr, no DNS) against a
coroproc node: it tracks runtime.members.* in cmap (node joined / left), stats.ipcs.* in
the stats map (an application connected / disconnected) and the quorum service (quorate /
lost quorum), and asks CFG for the local node id. The stats map is refreshed once a
second while tracked (engineprocs/cmap/stats_map.py), so an application shows up once
it has stayed connected across a refresh: a connection shorter than that goes unreported
(Corosync adds and removes the keys as connections open and close)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess

import pytest

from netns.harness import DEFAULT_PREFIX, Cluster

from .conftest import skip_reason
from .coroproc_runner import CoroprocNode, wait_for
from .corosync_runner import corosync_conf

_REASON = skip_reason() or (None if shutil.which("corosync-notifyd")
                            else "needs corosync-notifyd (Debian package corosync-notifyd)")
pytestmark = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")
ENGINES = "service {\n    name: votequorum\n}\nservice {\n    name: quorum\n}\n"


def test_notifyd_reports_members_applications_and_quorum(tmp_path):
    with Cluster(DEFAULT_PREFIX, 2) as net:
        nodes = [(h.index, h.addr) for h in net]
        daemons = {}
        for h in net:
            nd = tmp_path / f"n{h.index}"
            conf = corosync_conf(cluster_name=f"nd{os.getpid()}", nodes=nodes,
                                 logfile=str(nd / "corosync.log"),
                                 state_dir=str(nd / "state"))
            daemons[h.index] = CoroprocNode(h, h.index, conf + ENGINES, str(nd))
        events = tmp_path / "notifyd.txt"
        notifyd = None
        try:
            for d in daemons.values():
                d.start()
            for d in daemons.values():
                wait_for(lambda d=d: "Members[2]: 1 2" in d.log_text(), "both members", 90)
            with open(events, "wb") as out:
                notifyd = net.host(1).popen(["corosync-notifyd", "-f", "-o", "-n"],
                                            stdout=out, stderr=subprocess.STDOUT)
            text = lambda: events.read_text(errors="replace")         # noqa: E731
            a1, a2 = net.host(1).addr, net.host(2).addr
            wait_for(lambda: "] is now quorate" in text(), "the quorate event", 30)
            # an application that stays connected past a stats refresh (1 s) comes and
            # goes: corosync-cmapctl tracking a key waits until it is stopped
            # (it reads "q" from stdin to finish: a pipe held open keeps it waiting)
            tracker = net.host(1).popen(["corosync-cmapctl", "-t", "test.notifyd."],
                                        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
            try:
                wait_for(lambda: "corosync-cmapct is now connected to corosync" in text(),
                         "the application's connect event", 30)
            finally:
                tracker.communicate(b"q\n", timeout=10)
            wait_for(lambda: "corosync-cmapct is now disconnected from corosync" in text(),
                     "the application's disconnect event", 30)
            daemons[2].stop()
            wait_for(lambda: f"[2] ip:{a2} left" in text(), "node 2 left", 60)
            wait_for(lambda: "has lost quorum" in text(), "quorum lost", 30)
            daemons[2].start()
            wait_for(lambda: f"[2] ip:{a2} joined" in text(), "node 2 joined again", 90)
            wait_for(lambda: text().count("] is now quorate") == 2, "quorate again", 60)
            assert notifyd.poll() is None, text()
            assert f"ip:{a1} left" not in text(), text()
        finally:
            if notifyd is not None and notifyd.poll() is None:
                notifyd.send_signal(signal.SIGTERM)
                try:
                    notifyd.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    notifyd.kill()
                    notifyd.wait()
            for d in daemons.values():
                d.stop()
