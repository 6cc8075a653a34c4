"""Build and run tests/interop/c/cpg_probe.c (a libcpg client) and check what clients saw.

The probe prints one JSON line per callback (see the C file). `check_views` holds every
probe to CPG's promises: the same deliveries in the same order at every member (EVS
property 13 for messages), all of them intact, and a confchg history in which each
client's own join comes before any message it is delivered.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import orjson

SOURCE = Path(__file__).parent / "c" / "cpg_probe.c"


def unavailable_reason() -> str | None:
    if shutil.which("gcc") is None or shutil.which("pkg-config") is None:
        return "gcc/pkg-config missing (apt-get install gcc pkg-config)"
    if subprocess.run(["pkg-config", "--exists", "libcpg"]).returncode != 0:
        return "libcpg-dev missing (apt-get install libcpg-dev)"
    return None


def build(out_dir: Path, program: str = "cpg_probe") -> str:
    """Compile tests/interop/c/<program>.c against the system's libcpg."""
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libcpg"], capture_output=True,
                           text=True, check=True).stdout.split()
    binary = str(out_dir / program)
    subprocess.run(["gcc", "-O2", "-Wall", "-Werror", "-o", binary,
                    str(SOURCE.with_name(f"{program}.c")), *flags], check=True)
    return binary


def argv(binary: str, group: str, send: int, msg_bytes: int, expect: int, timeout_s: float,
         start_delay_ms: int = 0) -> list[str]:
    return [binary, group, str(send), str(msg_bytes), str(expect), str(timeout_s),
            str(start_delay_ms)]


def read_events(path: str | os.PathLike) -> list[dict]:
    out = []
    with open(path, "rb") as f:
        for line in f:
            line = line.strip()
            if line:
                out.append(orjson.loads(line))
    return out


def deliveries(events: list[dict]) -> list[tuple[int, int, int]]:
    return [(e["nodeid"], e["pid"], e["sender_seq"]) for e in events if e["ev"] == "deliver"]


def check_views(views: dict[str, list[dict]], total: int) -> None:
    """Every probe delivered all `total` messages intact, in one identical order, each
    after its own join confchg, and finished with its own leave."""
    orders = {}
    for name, events in views.items():
        kinds = [e["ev"] for e in events]
        assert "error" not in kinds, (name, [e for e in events if e["ev"] == "error"])
        local = next(e for e in events if e["ev"] == "local")
        me = [local["nodeid"], local["pid"]]
        first_deliver = kinds.index("deliver") if "deliver" in kinds else len(kinds)
        joins = [i for i, e in enumerate(events) if e["ev"] == "confchg"
                 and any(j[:2] == me for j in e["joined"])]
        assert joins and joins[0] < first_deliver, f"{name}: own join confchg after a delivery"
        assert all(e["ok"] for e in events if e["ev"] == "deliver"), f"{name}: payload error"
        done = events[-1]
        assert done["ev"] == "done" and done["left"], f"{name}: did not finish: {done}"
        orders[name] = deliveries(events)
        assert len(orders[name]) == total, f"{name}: {len(orders[name])} of {total} delivered"
    # confchgs agree: when the first message arrives, every probe sees the same group
    at_first = {}
    for name, events in views.items():
        members = None
        for e in events:
            if e["ev"] == "confchg":
                members = sorted(map(tuple, e["members"]))
            elif e["ev"] == "deliver":
                break
        at_first[name] = members
    assert len({tuple(m) for m in at_first.values()}) == 1, f"group views differ: {at_first}"
    assert len(next(iter(at_first.values()))) == len(views), at_first
    first = next(iter(orders.values()))
    for name, order in orders.items():
        assert order == first, f"{name} delivered in another order"
    per_sender = {}
    for node, pid, seq in first:
        per_sender.setdefault((node, pid), []).append(seq)
    for sender, seqs in per_sender.items():
        assert seqs == list(range(len(seqs))), f"sender {sender}: not FIFO/complete: {seqs[:10]}"
