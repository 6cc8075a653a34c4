"""CPU per message of the ring process's pump, and what numba's reference counting costs it.

One node, in this process: the pump (coroproc/ringproc/pump.py) over real shm rings and
a one-member Totem core on a virtual clock, as the ring process runs it. A jitted loop
plays the engine and the network process: it fills the submit ring with group-"a"
messages and empties the tx and delivery rings, so nothing but the pump's own work is
timed. Each run submits --messages messages and pumps until every one was delivered
(counted by the pump and checked against what the delivery ring received).

The second table is what numba's reference counting (NRT) cost the core and why its
kernels compile without it (coroproc/njit.py). With NRT, numba hands a tuple argument to a
function by incrementing the reference count of every array in it on entry and
decrementing each on exit, with atomic instructions. The core's state (TotemState) is a
tuple of 33 arrays and nearly every core function takes it. The table times one call of a
jitted function that takes the whole state, compiled as the core is (no NRT) and with
numba's default (NRT), against one with the same body that takes two of its arrays (whose
counts cancel out once LLVM inlines it), and against the same state's arrays held by one
numba StructRef (one reference to count).

    .venv/bin/python bench/bench_pump.py [--quick]

prints a Markdown report; bench/results/pump.md records one with its command.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time


def _parse():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer messages, 1 run")
    ap.add_argument("--runs", type=int, default=5, help="runs per size (median reported)")
    ap.add_argument("--messages", type=int, default=20_000)
    return ap.parse_args()


ARGS = _parse() if __name__ == "__main__" else None

import numba  # noqa: E402
from numba import types  # noqa: E402
from numba.experimental import structref  # noqa: E402

from coroproc.njit import njit  # noqa: E402  (as the core compiles: no NRT)
from coroproc.ringproc import pump as P  # noqa: E402
from coroproc.ringproc import totempg as pg  # noqa: E402
from coroproc.ringproc.config import TotemConfig  # noqa: E402
from coroproc.ringproc.records import RT_DELIVER, RT_SUBMIT  # noqa: E402
from coroproc.ringproc.state import OPERATIONAL, S_STATE, TotemState, new_state  # noqa: E402
from coroproc.shm.ring import (PEEK_RECORD, PUSH_OK, ShmRing, ring_peek,  # noqa: E402
                               ring_push, ring_release, ring_tail)

SIZES = (64, 1024, 16384)
STEP_US = 50                  # virtual time per pump call
CALLS = 1_000_000             # calls per timing of the second table


@njit(cache=True)
def _fill(hdr, data, msg, n):
    """Push up to n copies of msg; returns how many went in (stops when the ring is full)."""
    for i in range(n):
        if ring_push(hdr, data, RT_SUBMIT, 0, msg, 0, msg.shape[0]) < PUSH_OK:
            return i
    return n


@njit(cache=True)
def _drain(hdr, data, want_rtype):
    """Release every record; returns how many had rtype want_rtype."""
    pos = ring_tail(hdr)
    records = nbytes = hits = 0
    while True:
        st, _off, n, rtype, _flags, nxt = ring_peek(hdr, data, pos)
        if st != PEEK_RECORD:
            break
        if rtype == want_rtype:
            hits += 1
        records += 1
        nbytes += n
        pos = nxt
    if records:
        ring_release(hdr, pos, records, nbytes)
    return hits


class OneNode:
    def __init__(self, tag: str):
        self.rings = {k: ShmRing.create(f"{tag}.{k}", size) for k, size in
                      (("rx", 1 << 20), ("tx", 1 << 22), ("sub", 1 << 24), ("dl", 1 << 24))}
        r = self.rings
        cfg = TotemConfig(token_ms=1000, nodelist=(1,))
        self.st = new_state(cfg.to_array(), 1, 0, cfg.new_message_queue_bytes)
        self.bufs = P.new_pump_bufs(4, cfg.max_message_bytes, cfg.netmtu)
        P.set_ring_counts(self.bufs.ps, 1, 1, 1, 1)
        P.set_mcast_nobody(self.bufs.ps, [False])   # the frames go to the tx ring, as on 3 nodes
        self.bufs.ps[P.P_INTAKE_BYTES] = P.intake_bytes(cfg.window_size, cfg.netmtu)
        self.bufs.ps[P.P_COMMAND] = P.CMD_START
        links, engines = P.LINK_SLOTS, P.ENGINE_SLOTS      # the ring process's pump
        self.pump = P.bind_pump(self.st, P.padded([r["rx"]], links), P.padded([r["sub"]], engines),
                                P.padded([r["tx"]], links), P.padded([r["dl"]], engines),
                                self.bufs, 64, 1 << 20)
        self.now = 0
        self.calls = 0
        self.delivered = 0

    def step(self) -> None:
        self.now += STEP_US
        if self.pump(self.now) == P.RET_PERSIST:
            self.bufs.ps[P.P_PERSIST_PENDING] = 0
        self.calls += 1
        self.bufs.ps[P.P_PYEV_N] = self.bufs.ps[P.P_PYEV_IOFF] = 0
        tx, dl = self.rings["tx"], self.rings["dl"]
        _drain(tx.hdr, tx.data, -1)
        self.delivered += _drain(dl.hdr, dl.data, RT_DELIVER)

    def form(self) -> None:
        while self.st.s[S_STATE] != OPERATIONAL:
            self.step()
            if self.now > 60_000_000:
                raise RuntimeError("the one-node ring did not form in 60 virtual seconds")

    def run(self, size: int, messages: int) -> tuple[float, float]:
        """(CPU µs per message, messages per pump call) for `messages` of `size` bytes."""
        sub = self.rings["sub"]
        msg = pg.build_group_message(b"a", bytes(size))
        start_pc = int(self.bufs.pc[P.PC_DELIVERED_MSGS])
        start_dl, start_calls = self.delivered, self.calls
        queued = 0
        t0 = time.process_time()
        while self.delivered - start_dl < messages:
            if queued < messages:
                queued += _fill(sub.hdr, sub.data, msg, messages - queued)
            self.step()
            if self.calls - start_calls > 200 * messages + 100_000:
                raise RuntimeError(f"{size} B: {self.delivered - start_dl} of {messages} "
                                   "delivered; the pump stopped making progress")
        dt = time.process_time() - t0
        got = int(self.bufs.pc[P.PC_DELIVERED_MSGS]) - start_pc
        if got != messages or self.delivered - start_dl != messages:
            raise RuntimeError(f"{size} B: pump counted {got}, delivery ring held "
                               f"{self.delivered - start_dl}, {messages} submitted")
        return dt / messages * 1e6, messages / (self.calls - start_calls)

    def close(self) -> None:
        for r in self.rings.values():
            r.unlink()


@njit(cache=True)
def _touch_state(st, i):
    if i < 0:                  # never: keeps the body out of the caller
        st.s[1] = i
        st.cnt[2] = i
        return 1
    st.s[0] += 1
    return 0


# not cached: numba's cache names an entry after the Python function, which the two share
_touch_state_nrt = numba.njit(_touch_state.py_func)


@numba.njit(cache=True)
def _call_with_state_nrt(st, n):
    r = 0
    for i in range(n):
        r += _touch_state_nrt(st, i)
    return r


@njit(cache=True)
def _touch_one(s, cnt, i):
    if i < 0:
        s[1] = i
        cnt[2] = i
        return 1
    s[0] += 1
    return 0


@njit(cache=True)
def _call_with_state(st, n):
    r = 0
    for i in range(n):
        r += _touch_state(st, i)
    return r


@njit(cache=True)
def _call_with_arrays(st, n):
    r = 0
    s, cnt = st.s, st.cnt
    for i in range(n):
        r += _touch_one(s, cnt, i)
    return r


@structref.register
class _StateRefType(types.StructRef):
    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(t)) for name, t in fields)


class _StateRef(structref.StructRefProxy):
    """The state's arrays behind one reference: what passing it would cost instead."""


structref.define_proxy(_StateRef, _StateRefType, list(TotemState._fields))


def call_costs(st) -> list[float]:
    """ns per call of a jitted helper taking the whole state (no NRT, then NRT), taking
    two of its arrays, and taking the same arrays as one StructRef (NRT)."""
    ref = _StateRef(*st)
    out = []
    for fn, arg in ((_call_with_state, st), (_call_with_state_nrt, st),
                    (_call_with_arrays, st), (_call_with_state_nrt, ref)):
        fn(arg, 10)
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            fn(arg, CALLS)
            best = min(best, time.perf_counter() - t0)
        out.append(best / CALLS * 1e9)
    return out


def main() -> int:
    args = ARGS
    runs = 1 if args.quick else args.runs
    messages = 2_000 if args.quick else args.messages
    node = OneNode(f"/coroproc.benchpump{os.getpid()}")
    try:
        node.form()
        node.run(1024, 1_000)                 # warm: first fills, first deliveries
        rows = []
        for size in SIZES:
            n = max(messages * 1024 // max(size, 1024), 500)
            res = [node.run(size, n) for _ in range(runs)]
            rows.append((size, n, statistics.median(r[0] for r in res),
                         statistics.median(r[1] for r in res)))
        with_state, with_state_nrt, with_arrays, with_ref = call_costs(node.st)
    finally:
        node.close()
    print("# The ring process's pump: CPU per message (bench/bench_pump.py)\n")
    print(f"{platform.node()} · {os.cpu_count()} CPUs · Python {platform.python_version()} · "
          f"numba {numba.__version__} · median of {runs} run(s)\n")
    print("| message | messages per run | CPU µs per message | messages per pump call |")
    print("|---:|---:|---:|---:|")
    for size, n, us, per_call in rows:
        print(f"| {size} B | {n:,} | {us:.2f} | {per_call:.1f} |")
    print("\n| one call of a jitted helper that takes | ns per call |")
    print("|---|---:|")
    print(f"| the core's state (a tuple of {len(node.st)} arrays), compiled as the core is "
          f"(no NRT) | {with_state:.1f} |")
    print(f"| the same, with numba's reference counting (NRT, numba's default) "
          f"| {with_state_nrt:.1f} |")
    print(f"| two of its arrays | {with_arrays:.1f} |")
    print(f"| the same arrays as one numba StructRef, with NRT | {with_ref:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
