"""The README's main command end to end: `python -m coroproc.demo` with shorter steady
phases. It must pass its own checks (exit 0), show the kill, the rejoin and the engine
restart in its progress lines, and leave no daemon process and no shm segment behind —
also when interrupted with SIGINT (Ctrl-C) in the middle of the run."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

HANG_GUARD_S = 240
CLUSTER = re.compile(r"cluster (lc\d+x\d+),.*configs and logs in (\S+)\)")


def _leftovers(cluster: str, tmp_dir: str) -> list[str]:
    """The cluster's shm segments, and processes started with a config in its dir."""
    shm = [f for f in os.listdir("/dev/shm") if f.startswith(f"coroproc.{cluster}.")]
    ps = subprocess.run(["pgrep", "-f", re.escape(tmp_dir + "/")],
                        check=False, capture_output=True, text=True).stdout.split()
    return shm + [f"pid {p}" for p in ps]


def _wait_gone(found: re.Match) -> list[str]:
    """Daemons stopped by the demo may take a moment to exit after their parent; the
    deadline only bounds a hang."""
    deadline = time.monotonic() + 30
    while _leftovers(*found.groups()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _leftovers(*found.groups()) + (
        [found.group(2)] if os.path.exists(found.group(2)) else [])


@pytest.mark.slow
def test_demo_runs_end_to_end_and_cleans_up():
    out = subprocess.run([sys.executable, "-m", "coroproc.demo", "--steady-s", "2"],
                         check=False, capture_output=True, text=True, timeout=HANG_GUARD_S)
    text = out.stdout
    assert out.returncode == 0, text + out.stderr
    found = CLUSTER.search(text)
    for needed in (">>> kill -9 node 3", "formed a new ring", "-3/", "nodedown",
                   "node 3 rejoined", "--restart-engine cpg on node 2", "procdown",
                   "node 2's client reconnected",
                   "EVS checker over the daemons' event logs: no violations", "result: all checks passed"):
        assert needed in text, f"{needed!r} missing from:\n{text}"
    assert re.search(r"ring \[1 2 3\] +\d+ deliveries/s +p50 +[\d.]+ ms +p99", text)
    assert _wait_gone(found) == []


@pytest.mark.slow
def test_interrupted_demo_stops_everything():
    # a shell's background job inherits SIGINT ignored, and Python then keeps it ignored:
    # the demo must start with the disposition a terminal gives it
    p = subprocess.Popen([sys.executable, "-m", "coroproc.demo", "--steady-s", "30"],
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    found, seen = None, []
    try:
        for line in p.stdout:        # interrupt once the load runs on the whole ring
            seen.append(line)
            found = found or CLUSTER.search(line)
            if "ring [1 2 3]" in line and "deliveries/s" in line:
                break
        assert found, "".join(seen)
        p.send_signal(signal.SIGINT)
        rest, _ = p.communicate(timeout=HANG_GUARD_S)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, "".join(seen) + rest
    assert "interrupted: every daemon stopped" in rest
    assert _wait_gone(found) == []
