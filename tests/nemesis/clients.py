"""CPG recorder processes of a nemesis run: start one per node inside its namespace, stop
them, and read what they recorded into the CPG checker's records.

One recorder file per node holds several connections (the recorder reconnects after its
daemon or cpg engine dies); each connection becomes one `ClientRecord`, named
"n<node>c<connection>", because the checker's own-join-first rule is per connection.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from coroproc.engineprocs.cpg.checker import ClientRecord
from netns.harness import stop_popen

RECORDER = str(Path(__file__).with_name("cpg_recorder.py"))
REPO = str(Path(__file__).resolve().parents[2])
STOP_GRACE_S = 10.0


@dataclass
class ClientLog:
    """What one node's recorder file says, beyond the records themselves."""
    node: int
    records: list[ClientRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)   # per-sender checks (cpghum_check)
    sent: int = 0
    delivered: int = 0
    connections: int = 0
    lost: list[str] = field(default_factory=list)
    ended: bool = False
    # per record name: [(t_us of the latest clock line before it, sender nodeid)]
    dated: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    def senders_after(self, t_us: int) -> set[int]:
        """Nodes whose messages the node's last connection delivered after t_us."""
        if not self.records:
            return set()
        return {n for t, n in self.dated.get(self.records[-1].name, []) if t > t_us}


def start_recorder(host, out_path: Path, group: str, rate_msgs_per_s: float,
                   size_bytes: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": REPO}
    err = open(str(out_path) + ".err", "ab")
    try:
        return host.popen([sys.executable, RECORDER, str(out_path), group,
                           str(rate_msgs_per_s), str(size_bytes)], env=env,
                          stdout=subprocess.DEVNULL, stderr=err)
    finally:
        err.close()


def stop_recorder(proc: subprocess.Popen) -> int | None:
    """SIGTERM (the recorder writes its last lines), SIGKILL after STOP_GRACE_S."""
    return stop_popen(proc, grace_s=STOP_GRACE_S)


def read_client_log(node: int, path: Path) -> ClientLog:
    out = ClientLog(node)
    rec: ClientRecord | None = None
    clock_us = 0
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        try:
            ev = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue                     # a line cut by a kill
        kind = ev[0]
        if kind == "local":
            rec = ClientRecord(f"n{node}c{ev[3]}", ev[1], ev[2], [])
            out.records.append(rec)
            out.connections += 1
        elif kind == "deliver" and rec is not None:
            rec.events.append(("deliver", ev[1].encode("latin-1"), ev[2], ev[3], ev[4].encode()))
            out.delivered += 1
            out.dated.setdefault(rec.name, []).append((clock_us, ev[2]))
        elif kind == "confchg" and rec is not None:
            rec.events.append(("confchg", ev[1].encode("latin-1"), ev[2], ev[3], ev[4]))
        elif kind == "totem" and rec is not None:
            rec.events.append(("totem", tuple(ev[1]), ev[2]))
        elif kind == "problem":
            out.problems.append(f"node {node} client {rec.name if rec else '?'}: {ev[1]}")
        elif kind == "t":
            clock_us = ev[1]
        elif kind == "sent":
            out.sent += ev[1]
        elif kind == "lost":
            out.lost.append(ev[1])
        elif kind == "end":
            out.ended = True
    return out
