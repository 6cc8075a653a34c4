"""coroproc.client.cfg against the real Corosync 3.1.7 and against coroproc (socket-mode
IPC, single node): one scenario process (cfg_scenario.py) makes every call inside the
daemon's namespaces; both daemons must give the same answers."""
import json
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def report(daemon):
    return json.loads(daemon.python(str(HERE / "cfg_scenario.py"), check=True).stdout)


def test_status_calls(report):
    local = report["local"]
    addr = report["addrs"][0]
    assert report["status"] == [local, True, [[True, True, False, 1410, addr, ""]]]
    assert report["unknown_status"] == [4242, False, False, False, 0, 0, 0]
    assert report["ring"] == [[f"0 {addr}", "OK"]]


def test_admin_calls(report):
    assert report["kill_unknown"] == "CS_ERR_NOT_EXIST"
    assert report["reply_no_vote"] == "CS_ERR_ACCESS"
    assert report["reopen"] == "CS_OK"
    assert report["reload"] == "CS_OK"


def test_shutdown_votes(report):
    # a tracker that says no cancels; its callback got the REQUEST flag
    assert report["veto"] == ["CS_ERR_BUSY", [0]]
    # a silent tracker: after cfg.shutdown_timeout (set in cmap at run time) the request
    # is cancelled (the timeout notice skips trackers that never asked: Corosync's quirk)
    assert report["silent"] == ["CS_ERR_BUSY", [0]]
    assert report["exist"] == ["CS_ERR_BUSY", "CS_ERR_EXIST"]
