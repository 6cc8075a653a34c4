"""Benchmark: link failover of coroproc's secure links — cut the preferred link of a
running 3-host ring and time what the deliveries see, then heal it and time the way back.

    python bench/bench_knet_failover.py [--runs 3] [--seconds 6] [--token-ms 1000]
                                        [--out bench/results/knet.md]

Three network namespaces with two links each (tests/netns/harness.py, `links=2`), one
coroproc daemon per host, transport knet, link_mode passive with link 0 preferred
(knet_link_priority 2 vs 1), crypto AES-256-GCM, each node's load engine sending
50 msgs/s and writing its event log (t_us = CLOCK_MONOTONIC µs, comparable with this
process's time.monotonic_ns() // 1000). Per run (one cluster, `--runs` cut/heal cycles):
  * wait until every node sees both links of every peer connected, then 2 s of steady load;
  * cut link 0 (iptables DROP on eth0 of every host, both ways) and, after `--seconds`:
      - per node: link 0 seen down for each peer (log "link: host: N link: 0 is down"),
        time from the cut;
      - per node: the first delivery after the cut, and the largest gap between consecutive
        deliveries from 1 s before the cut to the heal (and, for scale, the largest gap in
        the 2 s before the cut);
      - new memberships (log "A new membership (" ): the point of failover is 0;
  * heal and time, per node, until its log says link 0 is up for every peer and passive
    mode chose link 0 again ("(passive) best link: 0"), then check with
    `coroproc-cfgtool -n --json` and cmap stats.knet.*.link0.tx_data_packets (run inside the
    namespace) that data frames flow on link 0 again.
Figures are compared with the ping interval and timeout the daemon logged (Corosync's
derivation from the effective token). Log times are wall-clock (timestamp: hires, ms):
they are converted to the monotonic clock with the offset measured here. No thresholds.
Needs root; every daemon and namespace is removed on exit, also on error or Ctrl-C.
"""
from __future__ import annotations

import argparse
import datetime
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from bench_knet import DEFAULT_OUT, versions, write_section  # noqa: E402
from interop.coroproc_runner import CoroprocNode, wait_for  # noqa: E402
from netns.harness import Cluster, unavailable_reason  # noqa: E402
from netns.knet_conf import knet_conf, write_authkey  # noqa: E402

from coroproc.shm.names import node_segments, remove_node_segments  # noqa: E402

N = 3
LOAD_MSGS_PER_S = 50
STEADY_S = 2.0
WAIT_GUARD_S = 90.0            # a state never reached becomes an error, not a hang
PING_RE = re.compile(r"ping interval (\d+) ms, timeout (\d+) ms")
LOG_TIME_RE = re.compile(r"^(\w{3} +\d+ \d\d:\d\d:\d\d\.\d{3})")


# ---- clocks and logs ---------------------------------------------------------------------
def _now_us() -> int:
    return time.monotonic_ns() // 1000


def _wall_to_mono_us() -> float:
    """Offset to add to a wall-clock µs value to get CLOCK_MONOTONIC µs (same host)."""
    return time.monotonic_ns() / 1000 - time.time() * 1e6


def _log_events(daemon, pattern: re.Pattern, offset_us: float) -> list[tuple[int, re.Match]]:
    """(monotonic µs, match) for every log line matching `pattern`."""
    year = datetime.datetime.now().year
    out = []
    for line in daemon.log_text().splitlines():
        m = pattern.search(line)
        t = LOG_TIME_RE.match(line)
        if m and t:
            wall = datetime.datetime.strptime(f"{year} {t.group(1)}", "%Y %b %d %H:%M:%S.%f")
            out.append((int(wall.timestamp() * 1e6 + offset_us), m))
    return out


LINK_RE = re.compile(r"link: host: (\d+) link: 0 is (up|down)")
RING_RE = re.compile(r"(A new membership \(|A processor failed|Token has not been received)")
BEST0_RE = re.compile(r"host: host: (\d+) \(passive\) best link: 0 ")


def _memberships(daemon) -> int:
    return daemon.log_text().count("A new membership (")


# ---- what cfgtool / cmap say inside a namespace -------------------------------------------
def _link_view(daemon) -> dict:
    out = subprocess.run(daemon.host.wrap([sys.executable, "-m", "coroproc.tools.cfgtool", "-n",
                                           "--json"]), capture_output=True, timeout=60)
    if out.returncode != 0:
        return {}
    return {(n["nodeid"], ln["link"]): bool(ln.get("connected"))
            for n in orjson.loads(out.stdout).get("nodes", []) for ln in n.get("links", [])}


def _all_connected(daemons, links=(0, 1)) -> bool:
    return all(_link_view(d).get((p, k)) for i, d in daemons.items() for p in daemons if p != i
               for k in links)


def _tx_link0(daemon) -> dict[int, int]:
    """{peer: stats.knet.node<peer>.link0.tx_data_packets} on this node."""
    out = subprocess.run(daemon.host.wrap([sys.executable, "-m", "coroproc.tools.cmapctl", "-m",
                                           "stats", "stats.knet."]),
                         capture_output=True, text=True, timeout=60)
    got = re.findall(r"stats\.knet\.node(\d+)\.link0\.tx_data_packets \(u64\) = (\d+)", out.stdout)
    return {int(p): int(v) for p, v in got}


# ---- one cut / heal cycle ----------------------------------------------------------------
def _deliveries_us(daemon) -> list[int]:
    return sorted(e["t_us"] for e in daemon.event_log() if e["ev"] == "deliver")


def _max_gap(ts: list[int], lo_us: int, hi_us: int) -> tuple[float, int | None]:
    """(largest gap in ms between consecutive deliveries in [lo, hi], the time its
    closing delivery arrived: when delivery resumed)."""
    window = [t for t in ts if lo_us <= t <= hi_us]
    gaps = [(b - a, b) for a, b in zip(window, window[1:])]
    if not gaps:
        return float("nan"), None
    gap_us, end_us = max(gaps)
    return gap_us / 1000, end_us


def one_cycle(net, daemons, seconds: float) -> dict:
    wait_for(lambda: _all_connected(daemons), "both links of every peer connected", WAIT_GUARD_S)
    time.sleep(STEADY_S)
    before_memb = {i: _memberships(d) for i, d in daemons.items()}
    offset_us = _wall_to_mono_us()
    t_cut = _now_us()
    net.cut_link(0)
    cut_took_ms = (_now_us() - t_cut) / 1000
    time.sleep(seconds)
    t_heal = _now_us()
    net.heal()
    tx0_at_heal = {i: _tx_link0(d) for i, d in daemons.items()}
    res: dict = {"cut_took_ms": cut_took_ms, "nodes": {}}
    peers = {i: [p for p in daemons if p != i] for i in daemons}

    def back(i):   # node i logged link 0 up and "best link: 0" for every peer since the heal
        ups = {int(m.group(1)) for t, m in _log_events(daemons[i], LINK_RE, offset_us)
               if t >= t_heal and m.group(2) == "up"}
        best = {int(m.group(1)) for t, m in _log_events(daemons[i], BEST0_RE, offset_us)
                if t >= t_heal}
        return set(peers[i]) <= ups and set(peers[i]) <= best
    wait_for(lambda: all(back(i) for i in daemons), "link 0 up and chosen again everywhere",
             WAIT_GUARD_S)
    wait_for(lambda: _all_connected(daemons, (0,)), "cfgtool: link 0 connected everywhere",
             WAIT_GUARD_S)
    time.sleep(1.0)   # let some data flow on link 0 before reading its counters
    for i, d in daemons.items():
        downs = [t for t, m in _log_events(d, LINK_RE, offset_us)
                 if t_cut <= t < t_heal and m.group(2) == "down"]
        ups = [t for t, m in _log_events(d, LINK_RE, offset_us) if t >= t_heal and m.group(2) == "up"]
        best = [t for t, m in _log_events(d, BEST0_RE, offset_us) if t >= t_heal]
        ts = _deliveries_us(d)
        first_after = next((t for t in ts if t > t_cut), None)
        gap_ms, resumed_us = _max_gap(ts, t_cut - 1_000_000, t_heal)
        tx_now = _tx_link0(d)
        res["nodes"][i] = {
            "down_ms": (max(downs) - t_cut) / 1000 if len(downs) >= len(peers[i]) else None,
            "first_delivery_ms": (first_after - t_cut) / 1000 if first_after else None,
            "max_gap_ms": gap_ms,
            "resumed_ms": (resumed_us - t_cut) / 1000 if resumed_us else None,
            "steady_gap_ms": _max_gap(ts, t_cut - int(STEADY_S * 1e6), t_cut)[0],
            "delivered_while_cut": sum(t_cut < t <= t_heal for t in ts),
            "new_memberships": _memberships(d) - before_memb[i],
            # when the ring noticed anything, so a re-formation can be placed: during the
            # cut (failover too slow) or after the heal (link 0 coming back)
            "ring_events": [f"{m.group(1).rstrip(' (')} @{(t - t_cut) / 1000:.0f}"
                            for t, m in _log_events(d, RING_RE, offset_us) if t >= t_cut],
            "up_ms": (max(ups[:len(peers[i])]) - t_heal) / 1000 if ups else None,
            "best0_ms": (max(best[:len(peers[i])]) - t_heal) / 1000 if best else None,
            "link0_tx_after_heal": sum(tx_now.get(p, 0) - tx0_at_heal[i].get(p, 0) for p in peers[i]),
        }
    return res


# ---- report ------------------------------------------------------------------------------
def _fmt(x) -> str:
    return "—" if x is None or x != x else f"{x:.0f}"


def report(runs: list[dict], ping: tuple[int, int], token_ms: int, seconds: float,
           command: str) -> str:
    rows = ["| run | node | link 0 down (all peers) ms | first delivery after cut ms | "
            "largest gap ms (steady before) | gap ended, ms after cut | delivered while cut | new memberships | "
            "link 0 up after heal ms | chosen again ms | link-0 data frames sent after heal | "
            f"ring log lines, ms after the cut (heal at the cut + {seconds:g} s + cut time) |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for k, r in enumerate(runs, 1):
        for i, n in r["nodes"].items():
            rows.append(f"| {k} | {i} | {_fmt(n['down_ms'])} | {_fmt(n['first_delivery_ms'])} | "
                        f"{_fmt(n['max_gap_ms'])} ({_fmt(n['steady_gap_ms'])}) | {_fmt(n['resumed_ms'])} | "
                        f"{n['delivered_while_cut']} | {n['new_memberships']} | {_fmt(n['up_ms'])} | "
                        f"{_fmt(n['best0_ms'])} | {n['link0_tx_after_heal']} | "
                        f"{'; '.join(n['ring_events']) or '—'} |")
    allv = lambda key: [n[key] for r in runs for n in r["nodes"].values()  # noqa: E731
                        if n[key] is not None and n[key] == n[key]]
    def med(key):
        xs = allv(key)
        return f"{statistics.median(xs):.0f} ({min(xs):.0f}–{max(xs):.0f})" if xs else "—"
    interval_ms, timeout_ms = ping
    summary = [
        "| figure (all runs × nodes) | median (min–max) ms | compare with |", "|---|---:|---|",
        f"| cut → link 0 seen down for every peer | {med('down_ms')} | last pong + ping timeout: "
        f"{timeout_ms - interval_ms}–{timeout_ms} ms after the cut |",
        f"| cut → first delivery (frames already through) | {med('first_delivery_ms')} | "
        "steady gap below |",
        f"| largest gap between deliveries around the cut | {med('max_gap_ms')} | ping timeout "
        f"{timeout_ms} ms; token {token_ms} ms |",
        f"| cut → end of that gap (delivery resumed on link 1) | {med('resumed_ms')} | link 0 "
        "seen down, above |",
        f"| largest gap in the 2 s before the cut | {med('steady_gap_ms')} | — |",
        f"| heal → link 0 up for every peer | {med('up_ms')} | pong_count 2 pongs, pings "
        f"{interval_ms} ms apart: {interval_ms}–{2 * interval_ms} ms |",
        f"| heal → passive mode chose link 0 again | {med('best0_ms')} | same |",
    ]
    total_new = sum(allv("new_memberships"))
    cut_ms = ", ".join(f"{r['cut_took_ms']:.0f}" for r in runs)
    return "\n".join([
        "## 2. Link failover: 3 netns hosts, 2 links, passive, link 0 preferred, AES-256-GCM", "",
        f"Command: `{command}`  ", f"Measured: {versions()}", "",
        f"token {token_ms} ms → ping interval {interval_ms} ms, ping timeout {timeout_ms} ms "
        f"(from node 1's log); load engines {LOAD_MSGS_PER_S} msgs/s per node; link 0 cut for "
        f"{seconds:g} s per run (iptables on every host; applying the rules took "
        f"{cut_ms} ms, timed from the first "
        f"rule); {len(runs)} cut/heal cycles on one cluster.", "",
        *summary, "",
        f"New memberships over all runs and nodes: **{total_new}**.", "",
        *rows, "",
        "What limits these figures: link-down detection is bounded by the ping timeout plus "
        "the phase of the last pong; deliveries continue only once passive mode has moved "
        "data to link 1 (Totem retransmits what was lost meanwhile), so the gap is set by "
        "the ping timeout, not by Totem. Log times have 1 ms resolution and are converted "
        "from the wall clock; link-up needs pong_count pongs one ping interval apart; the "
        "cut is 6 iptables calls applied host after host, so the path fails over a few tens "
        "of ms, not at one instant. 3 daemons share 2 vCPUs with other jobs.",
    ])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="cut/heal cycles (3)")
    ap.add_argument("--seconds", type=float, default=6.0, help="how long link 0 stays cut (6)")
    ap.add_argument("--token-ms", type=int, default=1000, help="totem.token (1000)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown file to update")
    a = ap.parse_args(argv)
    if a.runs < 1 or a.seconds <= 0:
        ap.error(f"--runs {a.runs} must be >= 1 and --seconds {a.seconds} > 0")
    why = unavailable_reason()
    if why:
        print(f"bench_knet_failover: {why}", file=sys.stderr)
        return 2
    command = shlex.join([sys.executable, *sys.argv])
    cluster = f"kfo{os.getpid() % 100000}"
    runs = []
    with tempfile.TemporaryDirectory(prefix="coroproc-bench-knetfo-") as wd, \
            Cluster("kfo", N, links=2) as net:
        key = write_authkey(Path(wd) / "authkey")
        conf = knet_conf(cluster_name=cluster, hosts=list(net), links=2, keyfile=key,
                         token_ms=a.token_ms, priorities={0: 2, 1: 1})
        daemons = {h.index: CoroprocNode(h, h.index, conf, str(Path(wd) / f"n{h.index}"),
                                         workload_msgs_per_s=LOAD_MSGS_PER_S) for h in net}
        try:
            for d in daemons.values():
                d.start()
            wait_for(lambda: all(d.members() == set(daemons) for d in daemons.values()),
                     "one ring of 3", WAIT_GUARD_S)
            m = PING_RE.search(daemons[1].log_text())
            ping = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
            for k in range(a.runs):
                r = one_cycle(net, daemons, a.seconds)
                runs.append(r)
                for i, n in r["nodes"].items():
                    print(f"run {k + 1} node {i}: down {_fmt(n['down_ms'])} ms, first delivery "
                          f"{_fmt(n['first_delivery_ms'])} ms, max gap {_fmt(n['max_gap_ms'])} ms ending at "
                          f"{_fmt(n['resumed_ms'])} ms "
                          f"(steady {_fmt(n['steady_gap_ms'])}), new memberships "
                          f"{n['new_memberships']}, up {_fmt(n['up_ms'])} ms, chosen "
                          f"{_fmt(n['best0_ms'])} ms, link-0 tx {n['link0_tx_after_heal']}",
                          flush=True)
        finally:
            net.heal()
            for d in daemons.values():
                try:
                    d.stop()
                except Exception as exc:          # keep stopping the others
                    print(f"stopping node {d.nodeid}: {exc}", file=sys.stderr)
            for i in daemons:
                if node_segments(cluster, i):
                    remove_node_segments(cluster, i)
    text = report(runs, ping, a.token_ms, a.seconds, command)
    print("\n" + text)
    write_section(a.out, "bench_knet_failover", text)
    print(f"\nwrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
