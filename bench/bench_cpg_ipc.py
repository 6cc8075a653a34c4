"""CPG through unmodified libcpg on one node: coroproc vs Corosync 3.1.7, and what
libqb's socket mode costs Corosync itself (the mode coroproc serves).

One node each, in its own network namespace, udpu: Corosync with its default IPC
(`native`: shared-memory ring buffers), Corosync with `qb_ipc_type: socket`, and coroproc.
The same C client (bench/c/cpgflood.c, built against Debian's libcpg) floods one group
for --seconds per message size and reports own-delivery throughput and latency. Ratios
are against Corosync (shm) measured in the same run.

    .venv/bin/python bench/bench_cpg_ipc.py [--seconds 5] [--sizes 64,1024,16384,65536]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from interop.coroproc_runner import CoroprocNode, wait_for  # noqa: E402
from interop.corosync_runner import CorosyncNode, corosync_conf, with_socket_ipc  # noqa: E402
from netns.harness import Cluster  # noqa: E402

SOURCE = Path(__file__).resolve().parent / "c" / "cpgflood.c"


def build(out_dir: str) -> str:
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libcpg"], capture_output=True,
                           text=True, check=True).stdout.split()
    binary = os.path.join(out_dir, "cpgflood")
    subprocess.run(["gcc", "-O2", "-Wall", "-o", binary, str(SOURCE), *flags], check=True)
    return binary


def run_kind(kind: str, binary: str, sizes: list[int], seconds: float, work: str) -> dict:
    with Cluster("cpgipc", 1) as net:
        host = net.host(1)
        nd = Path(work) / kind
        nd.mkdir()
        conf = corosync_conf(cluster_name=f"bench{os.getpid()}", nodes=[(1, host.addr)],
                             logfile=str(nd / "corosync.log"), state_dir=str(nd / "state"))
        if kind == "corosync-socket":
            conf = with_socket_ipc(conf)
        node = (CoroprocNode(host, 1, conf, str(nd)) if kind == "coroproc"
                else CorosyncNode(host, 1, conf, nd))
        node.start()
        try:
            wait_for(lambda: "Completed service synchronization" in
                     (node.log_text() if kind == "coroproc" else "\n".join(node.log_lines())),
                     f"{kind} to be ready", 120)
            out = {}
            for size in sizes:
                argv = [binary, f"flood{size}", str(size), str(seconds)]
                argv = argv if kind == "coroproc" else node.client_argv(argv)
                cmd = host.wrap(argv) if kind == "coroproc" else argv
                res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 90)
                line = (res.stdout.strip().splitlines() or ["{}"])[-1]
                out[size] = json.loads(line)
                time.sleep(0.5)
            return out
        finally:
            node.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--sizes", default="64,1024,16384,65536")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as work:
        binary = build(work)
        results = {k: run_kind(k, binary, sizes, args.seconds, work)
                   for k in ("corosync-shm", "corosync-socket", "coroproc")}
    print(f"\nCPG, one node, libcpg cpgflood, {args.seconds:.0f} s per size "
          f"(own deliveries/s; latency send→own delivery)\n")
    print("| size B | kind | msgs/s | MB/s | p50 µs | p99 µs | TRY_AGAIN | ratio vs corosync-shm |")
    print("|---|---|---|---|---|---|---|---|")
    for size in sizes:
        base = results["corosync-shm"][size].get("msgs_per_s") or 0
        for kind, res in results.items():
            r = res[size]
            if "error" in r or not r:
                print(f"| {size} | {kind} | error {r} | | | | | |")
                continue
            ratio = r["msgs_per_s"] / base if base else float("nan")
            print(f"| {size} | {kind} | {r['msgs_per_s']:.0f} | {r['mb_per_s']:.1f} | "
                  f"{r['lat_us']['p50']} | {r['lat_us']['p99']} | {r['try_again']} | "
                  f"{ratio:.2f} |")


if __name__ == "__main__":
    main()
