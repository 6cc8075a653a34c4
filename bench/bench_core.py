"""Ordered application messages per CPU second of the jitted Totem core (sans-I/O).

N cores in one process over a perfect virtual network: the driver loop (``_pump``) is
itself @njit over a numba typed List of TotemState, so no Python runs per frame. Each
sweep advances a virtual clock by ``STEP_US``, tops every node's new-message queue up
with group-"a" messages (srp_submit -> pg_submit), fires due timers, hands every frame
a core emitted to its destinations (0 = every other node; a unicast to oneself loops
back), unpacks every EV_DELIVER packet with pg_unpack and checks what comes out, then
clears the outputs. One CPU does the work of all N nodes, so "deliveries per CPU-second"
(messages x nodes) is what one node's core could do with a CPU of its own.

Correctness is checked inside the loop, not assumed: every payload carries its sender's
message counter, each receiver checks per-sender FIFO with no gap or duplicate and folds
(sender, totem seq, counter) into an order hash; every node's hash at a run's last
message must agree, and after the runs a drain must leave every node with every message
ever submitted and one hash. A membership change, a rejected frame or a stall during a
measured run is an error.

The same functions run as Python under NUMBA_DISABLE_JIT=1 (a child process started by
this script), with fewer messages; the report prints jit / no-jit.

    .venv/bin/python bench/bench_core.py [--quick]

writes bench/results/core.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
from numba import njit, typed, types
from numba.extending import overload

from coroproc.ringproc import srp
from coroproc.ringproc import totempg as pg
from coroproc.ringproc.config import C_PACKET_BYTES, TotemConfig
from coroproc.ringproc.state import (EV_CONFIG, EV_DELIVER, EV_LOG, L_MEMB, OPERATIONAL,
                                     S_EV_N, S_RING_REP, S_RING_SEQ, S_STATE, S_TX_N,
                                     new_state)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULT_MD = os.path.join(HERE, "results", "core.md")

NODES = (3, 16)
SIZES = (64, 1024)                 # payload bytes; the message adds the 5-byte group header
GROUP = b"a"
HDR_BYTES = 5                      # 01 00 01 00 'a'
STEP_US = 10                       # virtual µs per sweep while measuring
FORM_STEP_US = 1000                # ... while the ring forms (join/consensus timers)
FORM_STEPS_MAX = 200_000
REPEATS = 3
UDP_DGRAMS_PER_S = 350_000         # top rate of one Python UDP receiver on this machine type

# _pump modes
MODE_FORM = 0
MODE_RUN = 1
MODE_DRAIN = 2

# stats[] indices
ST_STEPS = 0
ST_TX_FRAMES = 1       # frames emitted (a multicast counts once, as on the wire)
ST_TX_UNICAST = 2      # of which unicast (the token, in operation)
ST_TX_BYTES = 3
ST_RX_FRAMES = 4       # srp_on_frame calls
ST_PACKETS = 5         # EV_DELIVER rows (totempg packets) over all nodes
ST_DELIVERIES = 6      # application messages delivered, over all nodes
ST_SUBMITTED = 7
ST_SUBMIT_FULL = 8
ST_TIMERS = 9          # timers fired
ST_CONFIGS = 10
ST_LOGS = 11
ST_ERR = 12            # first error (ERR_*), its node index and a detail value
ST_ERR_NODE = 13
ST_ERR_A = 14
ST_LEN = 16

ERR_NONE = 0
ERR_REJECTED = 1       # a core rejected a frame of the perfect network (detail: reason)
ERR_DEST = 2           # a frame to an unknown nodeid
ERR_CONFIG = 3         # membership changed during a measured run
ERR_UNPACK = 4         # pg_unpack failed (detail: code)
ERR_MSG = 5            # wrong length or group header
ERR_ORDER = 6          # per-sender counter out of sequence (detail: counter seen)
ERR_STEPS = 7          # did not finish within the step budget
ERR_SENDER = 8         # delivery from an unknown sender
ERR_NAMES = ("none", "frame rejected", "unknown destination", "membership changed",
             "pg_unpack failed", "bad message", "per-sender order broken", "stalled",
             "unknown sender")

MIX_PRIME = 1099511628211          # FNV-64 prime; results masked to 62 bits so the jitted
MIX_MASK = (1 << 62) - 1           # (wrapping int64) and Python (bigint) paths agree


# ---------------------------------------------------------------------------------------
# the jitted driver


def _first(x):
    """An entry point's status: the int itself, or the first of (status, next deadline)
    (the core's entry points have returned both shapes; this runs against either)."""
    return x[0] if isinstance(x, tuple) else x


@overload(_first)
def _first_jit(x):
    if isinstance(x, types.BaseTuple):
        return lambda x: x[0]
    return lambda x: x


@njit(cache=True)
def _mix(h, x):
    return ((h ^ x) * MIX_PRIME) & MIX_MASK


@njit(cache=True)
def _fail(stats, code, node, a):
    if stats[ST_ERR] == ERR_NONE:
        stats[ST_ERR] = code
        stats[ST_ERR_NODE] = node
        stats[ST_ERR_A] = a
    return code


@njit(cache=True)
def _send_all(states, i, now_us, wire, stats):
    """Carry node i's frames to their destinations, in order on every link. Frames are
    handed over per destination (one typed-List lookup per peer, not per frame); a frame
    to itself goes through a copy, since the core appends to the buffer it came from."""
    n = len(states)
    st = states[i]
    k0 = 0
    while k0 < st.s[S_TX_N]:
        k1 = st.s[S_TX_N]
        for k in range(k0, k1):
            dest = st.tx_meta[k, 2]
            if dest < 0 or dest > n:
                return _fail(stats, ERR_DEST, i, dest)
            stats[ST_TX_FRAMES] += 1
            stats[ST_TX_BYTES] += st.tx_meta[k, 1]
            if dest != 0:
                stats[ST_TX_UNICAST] += 1
        for j in range(n):
            peer = states[j]
            for k in range(k0, k1):
                dest = st.tx_meta[k, 2]
                if not ((dest == 0 and j != i) or dest == j + 1):
                    continue
                off = st.tx_meta[k, 0]
                ln = st.tx_meta[k, 1]
                src = st.tx_data[off:off + ln]
                if j == i:
                    w = wire[:ln]
                    for b in range(ln):
                        w[b] = src[b]
                    src = w
                r = _first(srp.srp_on_frame(peer, now_us, src, ln))
                stats[ST_RX_FRAMES] += 1
                if r != 0:
                    return _fail(stats, ERR_REJECTED, j, r)
        k0 = k1
    return ERR_NONE


@njit(cache=True)
def _take_events(states, i, asm_data, asm_meta, out_data, out_meta, delivered, hashes,
                 expect, ckpt, target, msg_len, strict, stats):
    """Unpack node i's deliveries and check each message; count the other events.
    ckpt[i] = the order hash at the moment node i delivered its target-th message."""
    n = len(states)
    st = states[i]
    h = int(hashes[i])
    for e in range(st.s[S_EV_N]):
        kind = st.ev_meta[e, 0]
        if kind == EV_DELIVER:
            sender = int(st.ev_meta[e, 1])
            tseq = int(st.ev_meta[e, 4])
            off = st.ev_meta[e, 6]
            ln = st.ev_meta[e, 7]
            if sender < 1 or sender > n:
                return _fail(stats, ERR_SENDER, i, sender)
            slot = sender - 1
            cnt = pg.pg_unpack(st.ev_data[off:off + ln], ln, slot, asm_data[i], asm_meta[i],
                               out_data, out_meta, 0)
            if cnt < 0:
                return _fail(stats, ERR_UNPACK, i, cnt)
            stats[ST_PACKETS] += 1
            for m in range(cnt):
                o = out_meta[m, 0]
                if (out_meta[m, 1] != msg_len or out_data[o] != 1 or out_data[o + 2] != 1
                        or out_data[o + 4] != 97):
                    return _fail(stats, ERR_MSG, i, out_meta[m, 1])
                c = np.int64(0)
                for b in range(8):
                    c |= np.int64(out_data[o + HDR_BYTES + b]) << (8 * b)
                if c != expect[i, slot]:
                    return _fail(stats, ERR_ORDER, i, c)
                expect[i, slot] = c + 1
                h = _mix(_mix(_mix(h, sender), tseq), int(c))
                if delivered[i] + m + 1 == target:
                    ckpt[i] = h
            delivered[i] += cnt
            stats[ST_DELIVERIES] += cnt
        elif kind == EV_CONFIG:
            stats[ST_CONFIGS] += 1
            if strict:
                return _fail(stats, ERR_CONFIG, i, st.ev_meta[e, 1])
            if st.ev_meta[e, 1] == 1:
                # a regular configuration: partial messages of the old ring never complete
                pg.pg_assembly_reset_all(asm_meta[i])
        elif kind == EV_LOG:
            stats[ST_LOGS] += 1
    hashes[i] = h
    return ERR_NONE


@njit(cache=True)
def _formed(states):
    n = len(states)
    rep = states[0].s[S_RING_REP]
    seq = states[0].s[S_RING_SEQ]
    for i in range(n):
        st = states[i]
        if (st.s[S_STATE] != OPERATIONAL or st.s[S_RING_REP] != rep
                or st.s[S_RING_SEQ] != seq or st.lists[L_MEMB, 0] != n):
            return False
    return True


@njit(cache=True)
def _top_up(states, now_us, msg, msg_len, sent, left, backlog_low, stats):
    """Keep each node's queue at >= backlog_low packets until `left` messages are queued."""
    n = len(states)
    queued = 0
    for i in range(n):
        st = states[i]
        mp = st.cfg[C_PACKET_BYTES]
        while queued < left and pg.pg_backlog_packets(st.pg_q_meta, mp) < backlog_low:
            c = sent[i]
            for b in range(8):
                msg[HDR_BYTES + b] = (c >> (8 * b)) & 0xFF
            if _first(srp.srp_submit(st, now_us, msg, msg_len, 0, 0)) != 1:
                stats[ST_SUBMIT_FULL] += 1
                break
            sent[i] = c + 1
            queued += 1
    stats[ST_SUBMITTED] += queued
    return queued


@njit(cache=True)
def _done(states, mode, delivered, target, sent):
    n = len(states)
    if mode == MODE_FORM:
        return _formed(states)
    if mode == MODE_DRAIN:
        target = 0
        for i in range(n):
            target += sent[i]
    for i in range(n):
        if delivered[i] < target:
            return False
    return True


@njit(cache=True)
def _pump(states, mode, now_us, step_us, target, max_steps, msg, msg_len, backlog_low,
          asm_data, asm_meta, out_data, out_meta, wire, delivered, hashes, expect, sent,
          ckpt, stats):
    """Sweep the ring until it is done; returns the virtual clock.

    MODE_FORM: until one ring holds every node (then a few sweeps to take the last
    formation events). MODE_RUN: keep every queue topped up until every node delivered
    `target` messages in all (a steady state: nothing drains between runs). MODE_DRAIN:
    no new messages, until every node delivered everything ever submitted."""
    n = len(states)
    strict = mode != MODE_FORM
    steps = 0
    settle = -1
    while True:
        steps += 1
        if steps > max_steps:
            _fail(stats, ERR_STEPS, -1, steps)
            break
        now_us += step_us
        if mode == MODE_RUN:
            _top_up(states, now_us, msg, msg_len, sent, 1 << 62, backlog_low, stats)
        for i in range(n):
            st = states[i]
            d = srp.srp_next_deadline(st)
            if d >= 0 and d <= now_us:
                stats[ST_TIMERS] += _first(srp.srp_on_timer(st, now_us))
        err = ERR_NONE
        for i in range(n):
            err = _send_all(states, i, now_us, wire, stats)
            if err != ERR_NONE:
                break
            err = _take_events(states, i, asm_data, asm_meta, out_data, out_meta, delivered,
                               hashes, expect, ckpt, target, msg_len, strict, stats)
            if err != ERR_NONE:
                break
            srp.srp_clear_outputs(states[i])
        if err != ERR_NONE:
            break
        if settle < 0 and _done(states, mode, delivered, target, sent):
            settle = 2 * n if mode == MODE_FORM else 0
        if settle == 0:
            break
        if settle > 0:
            settle -= 1
    stats[ST_STEPS] += steps
    return now_us


# ---------------------------------------------------------------------------------------
# one ring


class CoreError(RuntimeError):
    """The ring misbehaved under the benchmark: what happened, where, and the counters."""


class Ring:
    """N started cores and the benchmark's per-node reassembly and check arrays."""

    def __init__(self, nodes: int, size: int):
        self.n = nodes
        self.cfg = TotemConfig(token_ms=1000, nodelist=tuple(range(1, nodes + 1)),
                               queue_slots=1024, new_message_queue_bytes=4 << 20,
                               max_message_bytes=65536)
        arr = self.cfg.to_array()
        self.states = typed.List()
        for nodeid in self.cfg.nodelist:
            st = new_state(arr, nodeid, 0, self.cfg.new_message_queue_bytes)
            self.states.append(st)
        cap = self.cfg.max_message_bytes + 64                  # as TotemNode sizes it
        self.asm_data = np.zeros((nodes, nodes, cap), np.uint8)
        self.asm_meta = np.zeros((nodes, nodes, pg.ASM_META_LEN), np.int64)
        self.out_data = np.zeros(self.cfg.max_message_bytes + self.cfg.netmtu * 4, np.uint8)
        self.out_meta = np.zeros((self.cfg.netmtu, pg.OUT_META_LEN), np.int64)
        self.wire = np.zeros(self.cfg.frame_bytes, np.uint8)
        self.delivered = np.zeros(nodes, np.int64)
        self.hashes = np.zeros(nodes, np.int64)
        self.expect = np.zeros((nodes, nodes), np.int64)
        self.sent = np.zeros(nodes, np.int64)
        self.msg = pg.build_group_message(GROUP, bytes(size))
        assert self.msg.shape[0] == HDR_BYTES + size and size >= 8
        # two visits' worth of frames queued: every token visit can send its full share
        self.backlog_low = 2 * self.cfg.max_messages
        self.ckpt = np.zeros(nodes, np.int64)
        self.target = 0           # messages every node has delivered by the end of run()
        self.now_us = 0

    def _call(self, mode, step_us, max_steps):
        stats = np.zeros(ST_LEN, np.int64)
        self.now_us = int(_pump(self.states, mode, self.now_us, step_us, self.target,
                                max_steps, self.msg, self.msg.shape[0], self.backlog_low,
                                self.asm_data, self.asm_meta, self.out_data, self.out_meta,
                                self.wire, self.delivered, self.hashes, self.expect,
                                self.sent, self.ckpt, stats))
        if stats[ST_ERR] != ERR_NONE:
            raise CoreError(self._describe(stats))
        return stats

    def _describe(self, stats) -> str:
        code = int(stats[ST_ERR])
        rows = []
        for i, st in enumerate(self.states):
            rows.append(f"  node {i + 1}: state {int(st.s[S_STATE])} ring "
                        f"({int(st.s[S_RING_REP])}, {int(st.s[S_RING_SEQ])}) members "
                        f"{int(st.lists[L_MEMB, 0])} delivered {int(self.delivered[i])} "
                        f"sent {int(self.sent[i])} queued {int(st.pg_q_meta[pg.Q_COUNT])}")
        return (f"{self.n} nodes, {self.msg.shape[0] - HDR_BYTES} B: "
                f"{ERR_NAMES[code]} at node index {int(stats[ST_ERR_NODE])} "
                f"(detail {int(stats[ST_ERR_A])}) after {int(stats[ST_STEPS])} steps, "
                f"virtual time {self.now_us} us\n" + "\n".join(rows))

    def form(self) -> None:
        for st in self.states:
            srp.srp_start(st, self.now_us)
        self._call(MODE_FORM, FORM_STEP_US, FORM_STEPS_MAX)

    def run(self, n_msgs: int) -> tuple[float, np.ndarray]:
        """Steady state until every node delivered n_msgs more; returns (CPU s, stats).

        The queues stay full across runs, so a run has no ramp-up or drain; the messages
        ordered in it are counted from the deliveries (all nodes' / N), not assumed."""
        # every node passes the target during this run (it may be past the old one)
        self.target = max(self.target, int(self.delivered.max())) + n_msgs
        self.ckpt[:] = -1
        # a healthy ring orders at least one message per sweep; 20x less is a stall
        max_steps = 1000 + 20 * n_msgs
        t0 = time.process_time()
        stats = self._call(MODE_RUN, STEP_US, max_steps)
        cpu = time.process_time() - t0
        if (self.ckpt < 0).any() or len(set(self.ckpt.tolist())) != 1:
            raise CoreError(f"{self.n} nodes, {self.msg.shape[0] - HDR_BYTES} B: order "
                            f"differs: hash after message {self.target} per node "
                            f"{self.ckpt.tolist()}")
        return cpu, stats

    def drain(self) -> int:
        """Stop submitting; every node must deliver everything, in one order."""
        self._call(MODE_DRAIN, STEP_US, 1000 + 20 * int(self.sent.sum()))
        total = int(self.sent.sum())
        if not (self.delivered == total).all() or len(set(self.hashes.tolist())) != 1:
            raise CoreError(f"{self.n} nodes: after draining, delivered "
                            f"{self.delivered.tolist()} of {total}, order hashes "
                            f"{self.hashes.tolist()}")
        return total


# ---------------------------------------------------------------------------------------
# measurement


def measure(nodes: int, size: int, target_cpu_s: float, repeats: int) -> dict:
    """Form a ring, warm it up, size the runs for target_cpu_s, time `repeats` runs, then
    drain and check that every node delivered every message in the same order."""
    t0 = time.perf_counter()
    ring = Ring(nodes, size)
    ring.form()
    ring.run(100)                                  # first messages (and, jitted, compile)
    warm_s = time.perf_counter() - t0
    n = 100
    while True:                                    # calibrate on the warm ring
        cpu, st = ring.run(n)
        if cpu >= target_cpu_s / 10 or n >= 1 << 26:
            break
        n *= 4
    msgs = st[ST_DELIVERIES] / nodes
    per_rotation = ring.cfg.window_size * msgs / max(1, st[ST_TX_FRAMES] - st[ST_TX_UNICAST])
    # at least one flow-control window per run (the no-jit runs are that short)
    n_msgs = max(int(per_rotation), int(n * target_cpu_s / max(cpu, 1e-6)))
    runs = [ring.run(n_msgs) for _ in range(repeats)]
    total = ring.drain()
    rates = [(s[ST_DELIVERIES] / nodes) / c for c, s in runs]
    med = statistics.median(rates)
    cpu, stats = runs[rates.index(med)]
    msgs = stats[ST_DELIVERIES] / nodes
    mcasts = max(1, stats[ST_TX_FRAMES] - stats[ST_TX_UNICAST])
    return {
        "nodes": nodes, "size": size, "n_msgs": n_msgs, "cpu_s": cpu,
        "cpu_all": [c for c, _ in runs], "rates_all": rates, "warm_s": warm_s,
        "checked_msgs": total,
        "msgs_per_s": med,
        "deliveries_per_s": med * nodes,
        "frames_per_msg": stats[ST_TX_FRAMES] / msgs,
        "tokens_per_msg": stats[ST_TX_UNICAST] / msgs,
        "msgs_per_packet": msgs / mcasts,
        "frame_bytes": stats[ST_TX_BYTES] / max(1, stats[ST_TX_FRAMES]),
        "rx_frames_per_s": stats[ST_RX_FRAMES] / cpu,
        "ns_per_rx_frame": cpu / max(1, stats[ST_RX_FRAMES]) * 1e9,
        "steps": int(stats[ST_STEPS]), "timers": int(stats[ST_TIMERS]),
        "logs": int(stats[ST_LOGS]), "submit_full": int(stats[ST_SUBMIT_FULL]),
    }


def measure_all(target_cpu_s: float, repeats: int) -> list[dict]:
    out = []
    for nodes in NODES:
        for size in SIZES:
            r = measure(nodes, size, target_cpu_s, repeats)
            print(f"  {'jit' if not _jit_disabled() else 'no-jit'} {nodes:>2} nodes "
                  f"{size:>5} B: {r['msgs_per_s']:>12,.0f} msgs/CPU-s  "
                  f"(runs {', '.join(f'{c:.2f}' for c in r['cpu_all'])} s of "
                  f"{r['n_msgs']:,} msgs)", file=sys.stderr, flush=True)
            out.append(r)
    return out


def _jit_disabled() -> bool:
    from numba.core import config as ncfg
    return bool(ncfg.DISABLE_JIT)


# ---------------------------------------------------------------------------------------
# child processes: the no-jit run, and compile/load time of the core


# Run as `python -c` in a fresh process, so its imports are timed too (this file imports
# numba and the core at the top). It forms a 3-node ring through TotemNode, the Python
# driver, the way a fresh daemon or test process first meets the core.
PROBE_SRC = """
import json, time
t0 = time.perf_counter()
import numba
t1 = time.perf_counter()
from coroproc.ringproc.config import TotemConfig
from coroproc.ringproc.node import TotemNode
t2 = time.perf_counter()
cfg = TotemConfig(token_ms=1000, nodelist=(1, 2, 3), queue_slots=1024,
                  new_message_queue_bytes=4 << 20, max_message_bytes=65536)
nodes = {i: TotemNode(cfg, i) for i in cfg.nodelist}
now = 0
for nd in nodes.values():
    nd.start(now)
delivered = 0
submitted = False
for _ in range(100_000):
    now += 1000
    for nd in nodes.values():
        d = nd.next_deadline_us()
        if 0 <= d <= now:
            nd.on_timer(now)
    for nid, nd in nodes.items():
        for out in nd.take_outputs():
            if out[0] == "send":
                for k in ([k for k in nodes if k != nid] if out[1] == 0 else [out[1]]):
                    nodes[k].on_frame(now, out[2])
            elif out[0] == "deliver":
                delivered += 1
    # one ring of all three (at boot each node first forms its own singleton ring)
    if (not submitted and all(nd.state == 1 for nd in nodes.values())
            and len({nd.ring_id for nd in nodes.values()}) == 1):
        nodes[1].submit(b"x" * 64)
        submitted = True
    if delivered >= 3:
        break
t3 = time.perf_counter()
assert delivered >= 3, "the probe ring delivered nothing"
print(json.dumps({"import_numba_s": t1 - t0, "import_core_s": t2 - t1,
                  "first_ring_s": t3 - t2, "delivered": delivered}))
"""


def _child(args: list[str], env_extra: dict, timeout_s: float) -> dict:
    """Run a child Python; returns the JSON of its last line plus its wall and CPU time."""
    import resource
    env = dict(os.environ, **env_extra)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, *args], env=env, cwd=ROOT, capture_output=True,
                       text=True, timeout=timeout_s)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    sys.stderr.write(p.stderr)
    if p.returncode != 0:
        raise CoreError(f"child {' '.join(args)[:80]} failed ({p.returncode}):\n{p.stderr}")
    res = json.loads(p.stdout.strip().splitlines()[-1])
    res["process_wall_s"] = wall
    res["process_cpu_s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return res


def compile_times() -> dict:
    tmp = tempfile.mkdtemp(prefix="coroproc-bench-cache-")
    try:
        env = {"COROPROC_NUMBA_CACHE": tmp}
        cold = _child(["-c", PROBE_SRC], env, 1200)
        cached = _child(["-c", PROBE_SRC], env, 600)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"cold": cold, "cached": cached}


# ---------------------------------------------------------------------------------------
# report


def _machine() -> dict:
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import numba
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "numba": numba.__version__, "numpy": np.__version__,
            "kernel": platform.release()}


def _gbe_frames_per_s(frame_bytes: float) -> float:
    """Frames/s that fill 1 Gbit/s: UDP 8 + IPv4 20 + Ethernet 14 + FCS 4 + preamble 8 +
    inter-frame gap 12 bytes around each Totem frame."""
    return 125e6 / (frame_bytes + 66)


def render(jit: list[dict], nojit: list[dict], comp: dict) -> str:
    nj = {(r["nodes"], r["size"]): r for r in nojit}
    lines = [
        "| nodes | payload | msgs ordered / CPU-s | deliveries / CPU-s | frames / msg "
        "| msgs / packet | µs / frame received | no-jit msgs / CPU-s | jit ÷ no-jit "
        "| frames received / CPU-s ÷ 1 GbE line rate | ÷ Python UDP 350 k/s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in jit:
        o = nj.get((r["nodes"], r["size"]))
        nomps = f"{o['msgs_per_s']:,.0f}" if o else "–"
        ratio = f"{r['msgs_per_s'] / o['msgs_per_s']:,.0f}×" if o else "–"
        gbe = r["rx_frames_per_s"] / _gbe_frames_per_s(r["frame_bytes"])
        udp = r["rx_frames_per_s"] / UDP_DGRAMS_PER_S
        lines.append(
            f"| {r['nodes']} | {r['size']} B | {r['msgs_per_s']:,.0f} | "
            f"{r['deliveries_per_s']:,.0f} | {r['frames_per_msg']:.3f} | "
            f"{r['msgs_per_packet']:.2f} | {r['ns_per_rx_frame'] / 1000:.2f} | {nomps} | "
            f"{ratio} | {gbe:.2f} | {udp:.2f} |")
    c, k = comp["cold"], comp["cached"]
    lines += [
        "",
        "| core compile / load: fresh process, 3-node ring formed through TotemNode "
        "| import numba | import core | first ring + message | process wall | process CPU |",
        "|---|---:|---:|---:|---:|---:|",
        f"| cold (empty COROPROC_NUMBA_CACHE) | {c['import_numba_s']:.2f} s | "
        f"{c['import_core_s']:.2f} s | {c['first_ring_s']:.2f} s | {c['process_wall_s']:.2f} s "
        f"| {c['process_cpu_s']:.2f} s |",
        f"| cached | {k['import_numba_s']:.2f} s | {k['import_core_s']:.2f} s | "
        f"{k['first_ring_s']:.2f} s | {k['process_wall_s']:.2f} s | {k['process_cpu_s']:.2f} s |",
    ]
    return "\n".join(lines)


def _source() -> str:
    """Which core was measured: commit, modified core files, and the cache's source hash."""
    import coroproc.ringproc as rp

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"
    head = git("rev-parse", "--short", "HEAD") or "?"
    dirty = git("status", "--porcelain", "--", "coroproc/ringproc").splitlines()
    files = ", ".join(line.split()[-1] for line in dirty if line.strip()) or "none"
    return (f"commit {head}; core files modified in the working tree: {files}; "
            f"core source hash {os.path.basename(rp.CACHE_DIR)}")


def write_md(table: str, jit, nojit, meta) -> None:
    os.makedirs(os.path.dirname(RESULT_MD), exist_ok=True)
    m = meta["machine"]
    detail = ["| run | nodes | payload | msgs / run | msgs / CPU-s (3 runs) | CPU s (3 runs) "
              "| token frames / msg | frame bytes | sweeps | timers fired | log events "
              "| msgs checked |",
              "|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    for tag, rows in (("jit", jit), ("no-jit", nojit)):
        for r in rows:
            detail.append(
                f"| {tag} | {r['nodes']} | {r['size']} B | {r['n_msgs']:,} | "
                f"{', '.join(f'{x:,.0f}' for x in r['rates_all'])} | "
                f"{', '.join(f'{c:.3f}' for c in r['cpu_all'])} | {r['tokens_per_msg']:.3f} | "
                f"{r['frame_bytes']:.0f} | {r['steps']:,} | {r['timers']} | {r['logs']} | "
                f"{r['checked_msgs']:,} |")
    text = f"""# Totem core throughput (bench/bench_core.py)

Ordered application messages per CPU second of the jitted core: N cores in one process
over a perfect virtual network, driven by an @njit loop over a typed List of TotemState
(no Python per frame). Median of {REPEATS} runs (CPU time, `time.process_time()`) after
forming the ring and warming up; the queues stay full between runs (steady state), and a
run's messages are counted from what the nodes delivered.

* msgs ordered / CPU-s: distinct application messages (deliveries ÷ N).
* deliveries / CPU-s = messages × nodes. One CPU did every node's work, so this is what
  one node's core sustains on a CPU of its own.
* frames / msg: frames put on the wire per message (a multicast once, tokens included);
  msgs / packet: messages per mcast frame (totempg packing; 1 KiB messages fragment).
* µs / frame received: CPU time ÷ frames handed to srp_on_frame; everything is in it
  (submit, packing, ordering, delivery, pg_unpack, the benchmark's checks).
* The last two columns compare frames received per CPU-s (per-node core capacity) with
  the frame rate that fills a 1 Gbit/s link at the measured frame size, and with
  {UDP_DGRAMS_PER_S:,} datagrams/s, the best one-receiver Python UDP rate measured earlier on this
  machine type (a constant here, not measured in this run). Above 1 = the core keeps up.
* no-jit: the same functions under NUMBA_DISABLE_JIT=1 (a child process; fewer messages,
  same steady-state method).

Checked in every run: per-sender FIFO with no gap or duplicate at every node, and the
same order hash over (sender, totem seq, counter) on every node at the run's last message;
after the runs the ring is drained and every node must have delivered every message ever
submitted, in one order ("msgs checked"). Any membership change, rejected frame or stall
fails the benchmark.

Config: `TotemConfig(token_ms=1000, nodelist=1..n, queue_slots=1024,
new_message_queue_bytes=4<<20, max_message_bytes=65536)`, Corosync defaults otherwise
(netmtu 1500 → 1410-byte totempg packets, max_messages 17, window_size 50). Each node's
queue is kept at ≥ {2 * 17} packets (two visits' worth) with group-"a" messages through
srp_submit. Virtual clock: {STEP_US} µs per sweep.

{table}

Command: `{meta['command']}`
Date: {meta['date']}
Machine: {m['nproc']} CPUs, {m['cpu']}, Linux {m['kernel']}; load average at start
{meta['load']} (other work was running; CPU time, not wall time, is measured)
Versions: Python {m['python']}, numba {m['numba']}, numpy {m['numpy']}
Core: {meta['source']}

## Runs

{chr(10).join(detail)}
"""
    with open(RESULT_MD, "w") as f:
        f.write(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    ap.add_argument("--child", choices=("nojit",), help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child == "nojit":
        assert _jit_disabled(), "the no-jit child needs NUMBA_DISABLE_JIT=1"
        warnings.simplefilter("ignore", RuntimeWarning)
        print(json.dumps({"results": measure_all(a.seconds, REPEATS)}, default=float))
        return

    meta = {"command": "python bench/bench_core.py" + (" --quick" if a.quick else ""),
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "load": " ".join(f"{x:.1f}" for x in os.getloadavg())}
    jit_s = 0.3 if a.quick else 2.0
    nojit_s = 0.1 if a.quick else 1.0
    print(f"jitted runs (~{jit_s} CPU-s each):", file=sys.stderr)
    jit = measure_all(jit_s, REPEATS)
    print(f"no-jit runs (~{nojit_s} CPU-s each, child process):", file=sys.stderr)
    t0 = time.perf_counter()
    nojit = _child([os.path.abspath(__file__), "--child", "nojit", "--seconds", str(nojit_s)],
                   {"NUMBA_DISABLE_JIT": "1"}, 900)["results"]
    print(f"  no-jit child took {time.perf_counter() - t0:.0f} s wall", file=sys.stderr)
    print("core compile / load (children with a fresh cache):", file=sys.stderr)
    comp = compile_times()
    meta["machine"] = _machine()
    meta["source"] = _source()
    table = render(jit, nojit, comp)
    print(table)
    write_md(table, jit, nojit, meta)
    print(f"\nwrote {os.path.relpath(RESULT_MD, ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
