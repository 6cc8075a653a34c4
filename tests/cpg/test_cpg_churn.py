"""EVS property 13 at the CPG layer on real daemons under churn: three loopback nodes,
client processes on every node that join, multicast under load, and then leave, finalize
while joined, or are killed with SIGKILL, while others join late; one whole node is
killed and restarted in the middle. Every client records every callback; the checker
(coroproc/engineprocs/cpg/checker.py) then holds all records to property 13: own join
first, one order of common events, the same messages between the same confchgs, no
duplicates. The schedule comes from a seed; nothing about timing is asserted."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from coroproc.engineprocs.cpg.checker import ClientRecord, check_cpg_evs
from coroproc.localcluster import LocalCluster

CLIENT = str(Path(__file__).with_name("cpg_churn_client.py"))
GROUP = "churn"
RATE_MSGS_PER_S = 40
REPO = str(Path(__file__).resolve().parents[2])


def _spawn(lc, node, out, life_s, end):
    env = {**os.environ, "PYTHONPATH": REPO}
    return subprocess.Popen([sys.executable, CLIENT, lc.suffix(node), GROUP, str(out),
                             str(RATE_MSGS_PER_S), str(life_s), end], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(str(out) + ".err", "wb"))


def _read(path: Path) -> ClientRecord | None:
    events, local = [], None
    for line in path.read_bytes().splitlines():
        try:
            ev = orjson.loads(line)
        except orjson.JSONDecodeError:
            break                       # the line a SIGKILL cut
        kind = ev[0]
        if kind == "local":
            local = (ev[1], ev[2])
        elif kind == "deliver":
            events.append(("deliver", ev[1].encode("latin-1"), ev[2], ev[3], bytes.fromhex(ev[4])))
        elif kind == "confchg":
            events.append(("confchg", ev[1].encode("latin-1"), ev[2], ev[3], ev[4]))
        elif kind == "totem":
            events.append(("totem", tuple(ev[1]), ev[2]))
    if local is None:
        return None
    return ClientRecord(path.stem, local[0], local[1], events)


@pytest.mark.parametrize("seed", [7, 8])
def test_clients_join_leave_and_crash_under_load(tmp_path, seed):
    rng = random.Random(seed)
    lc = LocalCluster(tmp_path, 3, token_ms=1000, rate_msgs_per_s=20)
    procs, outs = [], []
    try:
        lc.start_all()
        lc.wait_members([1, 2, 3], (1, 2, 3), timeout_s=90)
        lc.wait_synced((1, 2, 3), 30)

        def client(node, life_s, end):
            out = tmp_path / f"c{len(outs)}-n{node}-{end}.jsonl"
            outs.append(out)
            procs.append((_spawn(lc, node, out, life_s, end), node, end))

        for node in (1, 2, 3):           # long-lived members on every node
            client(node, 0, "stay")
        time.sleep(2)
        for step in range(12):           # churn under their load
            node = rng.choice([1, 2, 3])
            end = rng.choice(["leave", "finalize", "kill", "stay"])
            client(node, rng.uniform(1.0, 4.0), "stay" if end == "kill" else end)
            time.sleep(rng.uniform(0.3, 1.0))
            if end == "kill":
                victim = procs[-1][0]
                time.sleep(rng.uniform(0.5, 2.0))
                victim.send_signal(signal.SIGKILL)
            if step == 6:                # a whole node fails and comes back
                lc.kill(3)
                for p, n, _e in procs:
                    if n == 3:
                        p.send_signal(signal.SIGKILL)
                lc.wait_members([1, 2], (1, 2), timeout_s=60)
                lc.start(3)
                lc.wait_members([1, 2, 3], (1, 2, 3), timeout_s=90)
                lc.wait_synced((3,), 60)
                client(3, 0, "stay")
        time.sleep(3)
        for p, _n, _e in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p, _n, _e in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
    finally:
        for p, _n, _e in procs:
            if p.poll() is None:
                p.kill()
        lc.stop_all()
    records = [r for r in (_read(o) for o in outs if o.exists()) if r is not None]
    assert len(records) >= 10
    delivered = sum(1 for r in records for e in r.events if e[0] == "deliver")
    assert delivered > 1000, delivered
    reasons = {left[2] for r in records for e in r.events if e[0] == "confchg"
               for left in e[3]}
    # LEAVE (cpg_leave), NODEDOWN (node 3 killed), PROCDOWN (finalize / SIGKILL)
    assert {2, 3, 5} <= reasons, reasons
    problems = check_cpg_evs(records)
    assert problems == [], "\n".join(problems[:20])
