"""`coroproc-cpgbench`: Corosync's test/cpgbench.c — CPG flood throughput per message size.

    coroproc-cpgbench [--sizes 64,320,…] [--seconds 10] [--group cpg_bm]
                      [--ipc-suffix S] [--json]

As cpgbench.c: join group "cpg_bm", then for each size flood cpg_mcast_joined(AGREED)
for 10 s, retrying CS_ERR_TRY_AGAIN at once (no pause: the C loop spins on it), count
every message of the group delivered meanwhile, and print one line per size in its exact
format. The default sizes are cpgbench's series: 64 bytes, times 5 while below 1 MiB - 100
(64, 320, 1600, 8000, 40000, 200000, 1000000). Any other error ends the size's run, as
in the C loop.

cpgbench.c counts deliveries in a second thread; Python has one thread's worth of
interpreter, so this loop drains the event socket before every send instead (the daemon
disconnects a client whose event queue fills up, so reading comes first). Deliveries still in flight when a size's
time is up are drained and not counted, as cpgbench.c's reset of write_count drops them.
"""
from __future__ import annotations

import argparse
import os
import select
import sys
import time

import numpy as np
import orjson

from coroproc.client.cpg import TYPE_AGREED, Cpg
from coroproc.ipc.cserror import CS_ERR_TRY_AGAIN, CS_OK, CsError

ONE_MEG = 1048576
DRAIN_GUARD_S = 30.0      # waiting for own messages after a size: only against a hang


def default_sizes() -> list[int]:
    sizes, size = [], 64
    for _ in range(10):                 # cpgbench.c: at most 10 repetitions
        sizes.append(size)
        size *= 5
        if size >= ONE_MEG - 100:
            break
    return sizes


def format_line(write_count: int, write_size: int, elapsed_s: float) -> str:
    """cpgbench.c's five printf()s. TP/s and MB/s are computed as C does: write_count
    (and write_size) cast to float, i.e. IEEE single precision, before the division."""
    count_f = np.float32(write_count)
    tps = float(count_f) / elapsed_s
    mbs = float(np.float32(count_f * np.float32(write_size))) / (elapsed_s * 1000000.0)
    return (f"{write_count:5d} messages received {write_size:5d} bytes per write "
            f"{elapsed_s:7.3f} Seconds runtime {tps:9.3f} TP/s {mbs:7.3f} MB/s.")


class Bench:
    def __init__(self, suffix: str, group: str):
        self.group = group.encode()
        self.write_count = 0          # every delivery in the group (cpg_bm_deliver_fn)
        self.own_delivered = 0
        self.cpg = Cpg(deliver_fn=self._deliver, confchg_fn=lambda *a: None, suffix=suffix)
        self.nodeid = self.cpg.local_get()
        self.cpg.join(self.group)
        self._poller = select.poll()
        self._poller.register(self.cpg.fileno(), select.POLLIN)
        self._own_pid = os.getpid()

    def _deliver(self, _h, _group, nodeid, pid, _msg) -> None:
        self.write_count += 1
        if nodeid == self.nodeid and pid == self._own_pid:
            self.own_delivered += 1

    def _pump(self, timeout_ms: int = 0) -> None:
        while self._poller.poll(timeout_ms):
            if not self.cpg.dispatch():
                return
            timeout_ms = 0

    def run_size(self, write_size: int, seconds: float) -> dict:
        data = bytes(write_size)
        self._pump()
        self.write_count = self.own_delivered = 0
        sent = retries = 0
        res = CS_OK
        t1 = time.monotonic()
        deadline = t1 + seconds
        while True:
            try:
                self.cpg.mcast_joined(TYPE_AGREED, data)
                res = CS_OK
                sent += 1
            except CsError as exc:
                res = exc.code
                if res == CS_ERR_TRY_AGAIN:
                    retries += 1
                    self._pump()
            if res not in (CS_OK, CS_ERR_TRY_AGAIN) or time.monotonic() >= deadline:
                break
            self._pump()     # reading first keeps the daemon's event queue short
        elapsed_s = time.monotonic() - t1
        received = self.write_count
        guard = time.monotonic() + DRAIN_GUARD_S
        while self.own_delivered < sent and time.monotonic() < guard:
            self._pump(100)
        return {"size_bytes": write_size, "received": received, "elapsed_s": elapsed_s,
                "tp_per_s": received / elapsed_s,
                "mb_per_s": received * write_size / (elapsed_s * 1e6),
                "sent": sent, "try_again": retries, "own_undelivered": sent - self.own_delivered,
                "last_result": res}

    def close(self) -> None:
        self.cpg.close()


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a comma-separated list of byte counts, "
                                         f"e.g. 64,320,1600") from None
    if not sizes or any(s < 1 or s > ONE_MEG * 20 for s in sizes):
        raise argparse.ArgumentTypeError(f"{text!r}: every size must be 1 to {ONE_MEG * 20}")
    return sizes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="coroproc-cpgbench", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=_sizes, default=default_sizes(),
                   help="comma-separated bytes per write (default: cpgbench's 64 x5 series)")
    p.add_argument("--seconds", type=float, default=10.0, help="flood time per size (10)")
    p.add_argument("--group", default="cpg_bm", help="CPG group (default cpg_bm)")
    p.add_argument("--ipc-suffix", default="", help="IPC service-name suffix of the node")
    p.add_argument("--json", action="store_true", help="one JSON object per size")
    a = p.parse_args(argv)
    if a.seconds <= 0:
        p.error(f"--seconds {a.seconds}: must be > 0")
    try:
        bench = Bench(a.ipc_suffix, a.group)
    except CsError as exc:
        print(f"cpg_initialize failed with result {exc.code}")      # as cpgbench.c
        return 1
    try:
        for size in a.sizes:
            r = bench.run_size(size, a.seconds)
            if a.json:
                print(orjson.dumps({**r, "nodeid": bench.nodeid}).decode(), flush=True)
            else:
                print(format_line(r["received"], size, r["elapsed_s"]), flush=True)
    except CsError as exc:
        print(f"coroproc-cpgbench: {exc}", file=sys.stderr)
        return 1
    finally:
        bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
