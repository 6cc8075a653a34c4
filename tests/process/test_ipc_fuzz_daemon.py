"""Hostile IPC clients against a real daemon's engines (cmap, cpg, example): random
request ids, sizes and bytes, lying headers, truncated datagrams, clients that vanish
mid-request. The daemon must keep serving a well-behaved client throughout, no engine
process may crash or restart, and the engines must count what they refused."""
from __future__ import annotations

import random
import struct
import subprocess
import sys

import orjson
import pytest

from coroproc.client.cmap import Cmap
from coroproc.engineprocs.example.client import ExampleClient
from coroproc.ipc.client import IpcClient, IpcDisconnected, IpcTryAgain
from coroproc.localcluster import LocalCluster

SERVICES = ("cmap", "cpg", "coroproc_example")
ROUNDS = 300


@pytest.fixture
def node(tmp_path):
    c = LocalCluster(tmp_path, 1, token_ms=1000, rate_msgs_per_s=5,
                     extra_sections="service {\n    name: example\n}\n")
    try:
        c.start(1)
        c.wait_for_log(1, "Completed service synchronization", timeout_s=90)
        yield c
    finally:
        c.stop_all()


def _status(c) -> dict:
    out = subprocess.run([sys.executable, "-m", "coroproc.tools.ctl", "-c", c.conf(1), "--json",
                          "status"], capture_output=True, timeout=30, check=True)
    return orjson.loads(out.stdout)


def _hostile_round(rng: random.Random, suffix: str) -> None:
    service = rng.choice(SERVICES)
    try:
        client = IpcClient(service, suffix=suffix, timeout_ms=5000)
    except (ConnectionError, OSError):
        return
    try:
        for _ in range(rng.randint(1, 6)):
            kind = rng.random()
            msg_id = rng.choice([-3, -1, 0, 1, 2, 3, 5, 7, 9, 12, 13, 99, 2**31 - 1])
            body = rng.randbytes(rng.choice([0, 1, 7, 8, 16, 120, 136, 280, 300, 4000]))
            if kind < 0.5:
                client.send(msg_id, body)            # well-framed, arbitrary content
            elif kind < 0.7:
                raw = struct.pack("<i4xi4x", msg_id, rng.randint(-10, 1 << 22)) + body
                client._request.send(raw)            # a header that lies about its size
            elif kind < 0.8:
                client._request.send(rng.randbytes(rng.randint(0, 15)))   # shorter than a header
            else:
                client.send(msg_id, body)
                break                                # vanish without reading the answer
            if rng.random() < 0.5:
                try:
                    client.recv_response(timeout_ms=200)
                except (TimeoutError, IpcDisconnected, Exception):
                    pass
    except (IpcDisconnected, IpcTryAgain, OSError, ValueError):
        pass
    finally:
        client.close()


@pytest.mark.parametrize("seed", [1, 2])
def test_hostile_clients_do_not_disturb_the_daemon(node, seed):
    suffix = node.suffix(1)
    before = _status(node)["children"]
    rng = random.Random(seed)
    with Cmap(suffix=suffix) as good, ExampleClient(suffix=suffix) as counter:
        for i in range(ROUNDS):
            _hostile_round(rng, suffix)
            if i % 25 == 0:
                # the well-behaved client is served all along
                good.set_uint32(f"fuzz.check.{seed}", i)
                assert good.get(f"fuzz.check.{seed}")[1] == i
                assert counter.add(f"fuzz{seed}", 1) == i // 25 + 1
    after = _status(node)["children"]
    for role in ("cmap", "cpg", "example", "ring", "net0"):
        assert after[role]["pid"] == before[role]["pid"], f"{role} restarted"
        assert after[role]["restarts"] == before[role]["restarts"]
    after = _status(node)["children"]   # counters as of now: the status asks for them
    refused = sum(h["counters"].get("core", {}).get("lib_invalid", 0)
                  for r, h in after.items() if r in ("cmap", "cpg", "example"))
    assert refused > 0
