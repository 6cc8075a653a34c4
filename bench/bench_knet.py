"""Benchmark: what coroproc's secure links (transport knet) cost against plain udpu —
CPG flood throughput and fixed-rate latency, 3 daemons on loopback, crypto off and on.

    python bench/bench_knet.py [--runs 3] [--seconds 3] [--links 1] [--no-hmac]
                               [--codec-frames 20000] [--out bench/results/knet.md]

Configurations (coroproc.localcluster.LocalCluster, token 1000 ms, no load engine traffic):
  udpu        transport udpu (Corosync's wire format, no link header, no crypto)
  knet-clear  transport knet, crypto_cipher none / crypto_hash none (32-byte link header)
  knet-hmac   transport knet, crypto_cipher none / crypto_hash sha256 (HMAC-SHA256 only)
  knet-aes    transport knet, crypto_cipher aes256 / crypto_hash sha256 (AES-256-GCM)
Per configuration and run: start 3 nodes, wait for one ring, then from node 1's IPC
  * coroproc-cpgbench at 64 B, then at 1 KiB (`--seconds` each, one sender, node 1's
    client counts what it receives: cpgbench's TP/s and MB/s), recording the CPU time
    every daemon process (by role, all nodes) and the client used meanwhile;
  * coroproc-cpghum --size 1024 --rate 1000 (`--seconds`): own-message delivery latency.
Runs alternate the configuration order (forward, reversed, forward, …) so a slow phase
of the shared 2-vCPU VM does not land on one configuration. Medians and min–max spread
are printed and written as the "loopback" section of bench/results/knet.md, together with
bench/bench_link_codec.py's µs per frame (the codec alone, no sockets).
No thresholds: a benchmark, not a test. Every daemon and shm segment is removed on exit,
also on error or Ctrl-C.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from coroproc.localcluster import LocalCluster  # noqa: E402
from coroproc.shm.names import node_segments, remove_node_segments  # noqa: E402

NODES = (1, 2, 3)
TOKEN_MS = 1000
FLOOD_SIZES_BYTES = (64, 1024)
HUM_SIZE_BYTES = 1024
HUM_RATE_MSGS_PER_S = 1000
CLIENT_GUARD_S = 120          # a hung client becomes an error, not a hang
CLK_TCK = os.sysconf("SC_CLK_TCK")
CONFIGS = {
    # name: (LocalCluster kwargs, (crypto_cipher, crypto_hash) to write into the conf)
    "udpu": ({"transport": "udpu"}, None),
    "knet-clear": ({"transport": "knet", "crypto": False}, None),
    "knet-hmac": ({"transport": "knet", "crypto": True}, ("none", "sha256")),
    "knet-aes": ({"transport": "knet", "crypto": True}, ("aes256", "sha256")),
}
DEFAULT_OUT = ROOT / "bench" / "results" / "knet.md"


# ---- the markdown file, shared with bench_knet_failover.py ----------------------------------
def write_section(path: Path, name: str, body: str) -> None:
    """Replace (or append) the text between this section's markers in `path`, so the
    loopback and the failover benchmark each rewrite only their own part of knet.md."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.exists() else "# Secure links (transport knet): benchmarks\n"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def versions() -> str:
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    mods = []
    for mod in ("numba", "numpy", "zmq", "cryptography"):
        try:
            mods.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            pass
    return (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; coroproc "
            f"{rev}{' + uncommitted changes' if dirty else ''}; Python {platform.python_version()}, "
            f"{', '.join(mods)}; {platform.system()} {platform.release()}, {os.cpu_count()} CPUs")


# ---- one cluster -------------------------------------------------------------------------
def _set_crypto(lc: LocalCluster, suite: tuple[str, str]) -> None:
    """LocalCluster writes aes256/sha256; rewrite the two keys for another suite."""
    cipher, hash_ = suite
    for i in NODES:
        conf = Path(lc.conf(i))
        text = conf.read_text()
        assert "crypto_cipher: aes256" in text, f"{conf}: no crypto_cipher line to rewrite"
        conf.write_text(text.replace("crypto_cipher: aes256", f"crypto_cipher: {cipher}")
                        .replace("crypto_hash: sha256", f"crypto_hash: {hash_}"))


def _status(lc: LocalCluster, i: int) -> dict:
    out = subprocess.run([sys.executable, "-m", "coroproc.tools.ctl", "-c", lc.conf(i), "--json",
                          "status"], capture_output=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"node {i}: coroproc-ctl status failed: {out.stderr.decode()[-500:]}")
    return orjson.loads(out.stdout)


def _role_pids(lc: LocalCluster) -> dict[tuple[int, str], int]:
    """{(node, role): pid} for every supervisor and child of every node."""
    pids = {}
    for i in NODES:
        st = _status(lc, i)
        pids[(i, "supervisor")] = st["pid"]
        for role, child in st["children"].items():
            if child.get("pid"):
                pids[(i, role)] = child["pid"]
    return pids


def _cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except FileNotFoundError:
        return 0
    return int(fields[11]) + int(fields[12])        # utime + stime (fields 14, 15)


def _client(argv: list[str]) -> tuple[list[dict], float]:
    """Run a client tool; returns its JSON lines and the CPU seconds it used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True,
                         timeout=CLIENT_GUARD_S)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"`{shlex.join(argv)}` exited {out.returncode}: "
                           f"{(out.stderr or out.stdout)[-800:]}")
    cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return [orjson.loads(line) for line in out.stdout.splitlines() if line.startswith("{")], cpu_s


def _flood(lc: LocalCluster, pids: dict, size: int, seconds: float) -> dict:
    t0 = {k: _cpu_ticks(p) for k, p in pids.items()}
    rows, client_cpu_s = _client(["coroproc.tools.cpgbench", "--ipc-suffix", lc.suffix(1),
                                  "--sizes", str(size), "--seconds", str(seconds), "--json"])
    cpu_s: dict[str, float] = {}
    for (node, role), p in pids.items():
        cpu_s[role] = cpu_s.get(role, 0.0) + (_cpu_ticks(p) - t0[(node, role)]) / CLK_TCK
    cpu_s["client"] = client_cpu_s
    r = rows[0]
    return {"tp_per_s": r["tp_per_s"], "mb_per_s": r["mb_per_s"], "received": r["received"],
            "own_undelivered": r["own_undelivered"], "cpu_s": cpu_s, "elapsed_s": r["elapsed_s"]}


def one_cluster(name: str, seconds: float, links: int, workdir: Path) -> dict:
    kwargs, suite = CONFIGS[name]
    if kwargs["transport"] == "knet":
        kwargs = {**kwargs, "links": links}
    lc = LocalCluster(workdir, len(NODES), token_ms=TOKEN_MS, rate_msgs_per_s=0, **kwargs)
    if suite:
        _set_crypto(lc, suite)
    try:
        for i in NODES:
            lc.start(i)
        lc.wait_members(NODES, NODES)
        suite_line = next((ln.split("] ", 2)[-1] for ln in lc.log_lines(1) if "link 0: " in ln
                           and "KNET" in ln), "")
        pids = _role_pids(lc)
        res = {"suite_line": suite_line, "loadavg_1min": os.getloadavg()[0]}
        try:
            for size in FLOOD_SIZES_BYTES:
                res[f"flood{size}"] = _flood(lc, pids, size, seconds)
            rows, _ = _client(["coroproc.tools.cpghum", "--ipc-suffix", lc.suffix(1), "--size",
                               str(HUM_SIZE_BYTES), "--rate", str(HUM_RATE_MSGS_PER_S),
                               "--seconds", str(seconds), "--json", "--quiet"])
            res["hum"] = rows[0]
        except RuntimeError as exc:
            # a client the daemon dropped is a result to report, not a reason to lose
            # the other runs: keep what the node logged about it
            logged = [ln for ln in lc.log_lines(1) if " error " in ln or " warning " in ln
                      or "disconnect" in ln.lower()]
            res["error"] = f"{exc}".strip() + ("; node 1 logged: " + " / ".join(logged[-3:])
                                                if logged else "")
        return res
    finally:
        lc.stop_all()
        for i in NODES:
            if node_segments(lc.cluster, i):
                remove_node_segments(lc.cluster, i)


# ---- tables ------------------------------------------------------------------------------
def _med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _cell(xs: list[float], fmt: str) -> str:
    """median (min–max): the spread over runs is part of the figure on this VM."""
    return f"{_med(xs):{fmt}} ({min(xs):{fmt}}–{max(xs):{fmt}})"


def _ok(results: dict[str, list[dict]]) -> dict[str, list[dict]]:
    return {n: [r for r in rs if "error" not in r] for n, rs in results.items()
            if any("error" not in r for r in rs)}


def tables(results: dict[str, list[dict]]) -> str:
    results = _ok(results)
    names = list(results)
    lines = ["| config | 64 B msgs/s | 64 B MB/s | 1 KiB msgs/s | 1 KiB MB/s | "
             "1 KiB @1000/s p50 µs | p99 µs | max µs |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for n in names:
        rs = results[n]
        lat = [r["hum"]["latency_us"] for r in rs]
        lines.append(
            f"| {n} | {_cell([r['flood64']['tp_per_s'] for r in rs], ',.0f')} | "
            f"{_cell([r['flood64']['mb_per_s'] for r in rs], '.2f')} | "
            f"{_cell([r['flood1024']['tp_per_s'] for r in rs], ',.0f')} | "
            f"{_cell([r['flood1024']['mb_per_s'] for r in rs], '.2f')} | "
            f"{_cell([x['p50_us'] for x in lat], '.0f')} | {_cell([x['p99_us'] for x in lat], '.0f')} | "
            f"{_cell([x['max_us'] for x in lat], '.0f')} |")
    lines += ["", "Ratios of medians (throughput: higher is better; latency: lower is better):", "",
              "| ratio | 64 B msgs/s | 1 KiB msgs/s | p50 | p99 |", "|---|---:|---:|---:|---:|"]
    med = {n: {"t64": _med([r["flood64"]["tp_per_s"] for r in results[n]]),
               "t1k": _med([r["flood1024"]["tp_per_s"] for r in results[n]]),
               "p50": _med([r["hum"]["latency_us"]["p50_us"] for r in results[n]]),
               "p99": _med([r["hum"]["latency_us"]["p99_us"] for r in results[n]])}
           for n in names}
    pairs = [(a, b) for a, b in (("knet-clear", "udpu"), ("knet-hmac", "knet-clear"),
                                 ("knet-aes", "knet-clear"), ("knet-aes", "udpu")) if a in med and b in med]
    for a, b in pairs:
        lines.append(f"| {a} / {b} | " + " | ".join(
            f"{med[a][k] / med[b][k]:.2f}" for k in ("t64", "t1k", "p50", "p99")) + " |")
    return "\n".join(lines)


def cpu_table(results: dict[str, list[dict]]) -> str:
    """Where the time goes during the 1 KiB flood: each process role's CPU as % of one
    vCPU, summed over the 3 nodes (median over runs), and the whole cluster's CPU ms per
    1000 messages node 1's client received. A role near 100 % is the bottleneck; the
    client and the cpg engine also spin on TRY_AGAIN, so their share grows with any
    stall downstream."""
    results = _ok(results)
    roles = sorted({role for rs in results.values() for r in rs for role in r["flood1024"]["cpu_s"]},
                   key=lambda x: (x != "client", x))
    lines = ["| config | " + " | ".join(f"{r} %" for r in roles) + " | all % (of 200) | "
             "CPU ms / 1000 msgs |", "|---|" + "---:|" * (len(roles) + 2)]
    for n, rs in results.items():
        pct = {role: _med([r["flood1024"]["cpu_s"].get(role, 0.0) / r["flood1024"]["elapsed_s"]
                           * 100 for r in rs]) for role in roles}
        per_k = _med([sum(r["flood1024"]["cpu_s"].values()) * 1e6 /
                      max(r["flood1024"]["received"], 1) for r in rs])
        lines.append(f"| {n} | " + " | ".join(f"{pct[r]:.0f}" for r in roles) +
                     f" | {_med([sum(r['flood1024']['cpu_s'].values()) / r['flood1024']['elapsed_s'] * 100 for r in rs]):.0f} | {per_k:.0f} |")
    return "\n".join(lines)


def codec_table(frames: int) -> str:
    if frames <= 0:
        return "(skipped: --codec-frames 0)"
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_link_codec.py"), str(frames)],
                         capture_output=True, text=True, timeout=600)
    return (out.stdout or out.stderr).rstrip()


# ---- main --------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="clusters per configuration (3)")
    ap.add_argument("--seconds", type=float, default=3.0,
                    help="per flood size and for the latency run (3)")
    ap.add_argument("--links", type=int, default=1, choices=range(1, 9), metavar="1..8",
                    help="links per knet node (1; passive mode sends data on one anyway)")
    ap.add_argument("--no-hmac", action="store_true", help="skip the HMAC-only configuration")
    ap.add_argument("--codec-frames", type=int, default=20000,
                    help="frames for bench_link_codec.py (0 skips it)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown file to update")
    a = ap.parse_args(argv)
    if a.runs < 1 or a.seconds <= 0:
        ap.error(f"--runs {a.runs} must be >= 1 and --seconds {a.seconds} > 0")
    names = [n for n in CONFIGS if not (a.no_hmac and n == "knet-hmac")]
    results: dict[str, list[dict]] = {n: [] for n in names}
    suites: dict[str, str] = {}
    command = shlex.join([sys.executable, *sys.argv])
    with tempfile.TemporaryDirectory(prefix="coroproc-bench-knet-") as wd:
        for run in range(a.runs):
            order = names if run % 2 == 0 else names[::-1]
            for n in order:
                d = Path(wd) / f"r{run}-{n}"
                d.mkdir()
                r = one_cluster(n, a.seconds, a.links, d)
                suites[n] = r.pop("suite_line") or "(no link layer line: udpu)"
                results[n].append(r)
                if "error" in r:
                    print(f"run {run + 1} {n:<11} FAILED: {r['error']}", flush=True)
                    continue
                f64, f1k, lat = r["flood64"], r["flood1024"], r["hum"]["latency_us"]
                print(f"run {run + 1} {n:<11} 64 B {f64['tp_per_s']:8.0f}/s  1 KiB "
                      f"{f1k['tp_per_s']:7.0f}/s {f1k['mb_per_s']:6.2f} MB/s  @1000/s p50 "
                      f"{lat['p50_us']} µs p99 {lat['p99_us']} µs  hum ok={r['hum']['ok']}",
                      flush=True)
    table, cpu = tables(results), cpu_table(results)
    print("\n" + table + "\n\n" + cpu)
    codec = codec_table(a.codec_frames)
    print("\n" + codec)
    failed = [f"{n} run {k + 1}: {r['error']}" for n, rs in results.items()
              for k, r in enumerate(rs) if "error" in r]
    bad = [f"{n} run {k + 1}" for n, rs in _ok(results).items() for k, r in enumerate(rs)
           if not r["hum"]["ok"] or any(r[f"flood{s}"]["own_undelivered"] for s in FLOOD_SIZES_BYTES)]
    loads = [r["loadavg_1min"] for rs in results.values() for r in rs]
    body = "\n".join([
        "## 1. Crypto on vs off: 3 daemons on loopback", "",
        f"Command: `{command}`  ", f"Measured: {versions()}", "",
        f"3 nodes, token {TOKEN_MS} ms, knet with {a.links} link(s), link_mode passive; no "
        f"load-engine traffic. Flood: coroproc-cpgbench from node 1, {a.seconds:g} s per size, "
        "messages/s = what node 1's client received in that time (cpgbench's TP/s). Latency: "
        f"coroproc-cpghum on node 1, {HUM_SIZE_BYTES} B at {HUM_RATE_MSGS_PER_S} msgs/s for "
        f"{a.seconds:g} s, own messages, send → delivery. {a.runs} runs, configuration order "
        "alternating; each cell is median (min–max).", "",
        "Suites in force (node 1's log):", "",
        *[f"* {n}: {s}" for n, s in suites.items()], "",
        table, "",
        "Where the time goes during the 1 KiB flood: CPU % of one vCPU per process role, "
        "summed over the 3 nodes (ring = Totem, net0 = the link process, cpg = the CPG "
        "engine, load = the idle load engine, client = cpgbench), and the cluster's CPU ms "
        "per 1000 messages received; median over runs (from /proc/<pid>/stat):", "",
        cpu, "",
        f"Codec alone (`bench/bench_link_codec.py {a.codec_frames}`, one process, no sockets, "
        "best of 5):", "", "```", codec, "```", "",
        ("Checks: every cpghum run passed its order/CRC checks and every flood's messages "
         "came back." if not bad else f"Checks FAILED in: {', '.join(bad)}"),
        *([""] + [f"* Run left out (client failed): {f}" for f in failed] if failed else []), "",
        f"Machine load (1-min load average at each cluster's start): {min(loads):.1f}–"
        f"{max(loads):.1f} on 2 vCPUs (other engineers' jobs share the VM).", "",
        "What limits these figures: 3 daemons × ~8 processes plus the client share 2 vCPUs "
        "(the CPU column says how busy they were), so a flood measures the whole node's "
        "CPU cost per message, not a link's; the sender is one Python client that reads its "
        "own deliveries in the same loop (docs/benchmarks.md); loopback has no wire time, so "
        "latency is all process hand-offs and token rotation. Other engineers' jobs run on "
        "the same VM: compare within one table only.",
    ])
    write_section(a.out, "bench_knet", body)
    print(f"\nwrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
