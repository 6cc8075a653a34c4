"""Tables and plots of bench/bench_side_by_side.py from its raw rows.

A row is one measurement of one run: {"run", "kind", "nodes", "what": "load"|"idle"|
"failover", "cell" (load), figures...}. Medians are over runs with [min–max]; a ratio
is computed per run (coroproc and its baseline measured in the same run) and then
summarised the same way, so a slow phase of the shared machine hits both sides of it.
"""
from __future__ import annotations

import statistics
from pathlib import Path

from sbs_daemons import KINDS


def _summary(xs: list[float], fmt: str = "{:.0f}") -> str:
    if not xs:
        return "–"
    med = fmt.format(statistics.median(xs))
    return med if len(xs) == 1 else f"{med} [{fmt.format(min(xs))}–{fmt.format(max(xs))}]"


def _values(rows, kind, match, key) -> dict[int, float]:
    """run → value of `key` for `kind` in ok rows satisfying `match`; several rows of one
    run (idle: one per node) give their mean."""
    per_run: dict[int, list[float]] = {}
    for r in rows:
        if r["kind"] == kind and match(r) and r.get("ok", True) and r.get(key) is not None:
            per_run.setdefault(r["run"], []).append(r[key])
    return {run: sum(xs) / len(xs) for run, xs in per_run.items()}


def _all_values(rows, kind, match, key) -> list[float]:
    return [r[key] for r in rows if r["kind"] == kind and match(r) and r.get("ok", True)
            and r.get(key) is not None]


def _ratios(rows, kind, base, match, key) -> list[float]:
    ours, theirs = _values(rows, kind, match, key), _values(rows, base, match, key)
    return [ours[r] / theirs[r] for r in ours if theirs.get(r)]


def _kinds(rows, transport) -> list[str]:
    present = {r["kind"] for r in rows}
    return [k for k, v in KINDS.items() if v.transport == transport and k in present]


def _cell_order(cell: str) -> tuple:
    """Floods before paced cells; then nodes, size, senders (numerically)."""
    nodes, size, senders, rate = cell.split("|")
    return (rate != "max", int(nodes.rstrip("n")), int(size), int(senders))


def load_table(rows, transport: str, key: str, fmt: str) -> list[str]:
    kinds = _kinds(rows, transport)
    ours = [k for k in kinds if KINDS[k].baseline]
    if not kinds:
        return []
    cells = sorted({r["cell"] for r in rows if r["what"] == "load" and r["kind"] in kinds},
                   key=_cell_order)
    head = ["nodes", "size B", "senders", "rate", *kinds,
            *(f"{k} / {KINDS[k].baseline}" for k in ours)]
    out = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for c in cells:
        nodes, size, senders, rate = c.split("|")
        match = lambda r, c=c: r["what"] == "load" and r["cell"] == c  # noqa: E731
        vals = [_summary(list(_values(rows, k, match, key).values()), fmt) for k in kinds]
        fails = {k: sum(1 for r in rows if r["kind"] == k and match(r) and not r.get("ok"))
                 for k in kinds}
        vals = [v + (f" ({fails[k]} failed)" if fails[k] else "") for v, k in zip(vals, kinds)]
        ratios = [_summary(_ratios(rows, k, KINDS[k].baseline, match, key), "{:.2f}")
                  for k in ours]
        out.append(f"| {nodes} | {size} | {senders} | {rate} | " + " | ".join(vals + ratios) + " |")
    return out


def simple_table(rows, what: str, keys: list[tuple[str, str, str]]) -> list[str]:
    """One line per (kind, nodes) of `what` rows; keys = (field, header, fmt)."""
    groups = sorted({(r["nodes"], r["kind"]) for r in rows if r["what"] == what},
                    key=lambda g: (g[0], list(KINDS).index(g[1])))
    if not groups:
        return []
    head = ["nodes", "kind", *(h for _, h, _ in keys), *(f"{h}: ratio" for _, h, _ in keys)]
    out = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for nodes, kind in groups:
        match = lambda r, n=nodes: r["what"] == what and r["nodes"] == n  # noqa: E731
        vals = [_summary(_all_values(rows, kind, match, f), fmt) for f, _, fmt in keys]
        base = KINDS[kind].baseline
        ratios = [_summary(_ratios(rows, kind, base, match, f), "{:.2f}") if base else "–"
                  for f, _, _ in keys]
        out.append(f"| {nodes} | {kind} | " + " | ".join(vals + ratios) + " |")
    return out


def limits_lines(rows) -> list[str]:
    """Per coroproc flood cell: how much of the machine the daemons used (against the
    baseline's daemons in the same cell), how busy the machine was, and the busiest
    processes (median over runs, % of one core) — what bounds coroproc's figure."""
    out = []
    cells = sorted({(r["kind"], r["cell"]) for r in rows if r["what"] == "load"
                    and KINDS[r["kind"]].baseline and r.get("top_procs")},
                   key=lambda kc: (list(KINDS).index(kc[0]), _cell_order(kc[1])))
    for kind, cell in cells:
        mine = [r for r in rows if r["kind"] == kind and r.get("cell") == cell
                and r.get("top_procs") and r.get("ok")]
        base = [r for r in rows if r["kind"] == KINDS[kind].baseline and r.get("cell") == cell
                and "daemons_pct_of_machine" in r]
        if not mine:
            continue
        procs: dict[str, list[float]] = {}
        for r in mine:
            for name, pct in r["top_procs"]:
                procs.setdefault(name, []).append(pct)
        top = sorted(procs.items(), key=lambda kv: -sum(kv[1]) / len(mine))[:3]
        names = ", ".join(f"{n} {sum(p) / len(mine):.0f} %" for n, p in top)
        med = lambda rs, k: _summary([r[k] for r in rs if k in r])  # noqa: E731
        out.append(f"| {kind} | {cell.replace('|', ' · ')} | {med(mine, 'daemons_pct_of_machine')} | "
                   f"{med(base, 'daemons_pct_of_machine')} | {med(mine, 'machine_busy_pct')} | {names} |")
    if not out:
        return []
    return ["| kind | cell (nodes · size · senders · rate) | its daemons, % of machine | "
            "baseline's daemons, % of machine | machine busy % (all processes) | "
            "busiest processes, mean % of one core |",
            "|---|---|---:|---:|---:|---|", *out]


def plots(rows, plot_dir: Path, prefix: str = "sbs") -> list[Path]:
    """msgs/s vs size for (1 node), (3 nodes, 1 sender), (3 nodes, 3 senders); latency.
    File names start with `prefix` (a report of a subset must not overwrite the full
    report's plots)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir.mkdir(parents=True, exist_ok=True)
    made = []
    series = [("1 node, 1 sender", 1, 1, f"{prefix}_msgs_1n.png"),
              ("3 nodes, 1 sender", 3, 1, f"{prefix}_msgs_3n_1s.png"),
              ("3 nodes, a sender per node", 3, 3, f"{prefix}_msgs_3n_3s.png")]
    for title, nodes, senders, fname in series:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        drawn = False
        for kind in KINDS:
            pts = []
            for size in sorted({int(r["cell"].split("|")[1]) for r in rows if r["what"] == "load"}):
                c = f"{nodes}n|{size}|{senders}|max"
                xs = list(_values(rows, kind, lambda r, c=c: r.get("cell") == c, "msgs_per_s").values())
                if xs:
                    pts.append((size, statistics.median(xs), min(xs), max(xs)))
            if pts:
                drawn = True
                s, m, lo, hi = zip(*pts)
                ax.errorbar(s, m, yerr=[[a - b for a, b in zip(m, lo)], [b - a for a, b in zip(m, hi)]],
                            marker="o", capsize=3, label=kind,
                            linestyle=(":" if KINDS[kind].rr else
                                       "--" if KINDS[kind].transport == "knet" else "-"))
        if drawn:
            ax.set(xscale="log", yscale="log", xlabel="message size (bytes)",
                   ylabel="messages/s delivered (median, min–max)", title=f"CPG flood: {title}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
            fig.tight_layout()
            fig.savefig(plot_dir / fname, dpi=100)
            made.append(plot_dir / fname)
        plt.close(fig)
    made += _latency_plot(rows, plot_dir, plt, prefix)
    return made


def _latency_plot(rows, plot_dir: Path, plt, prefix: str) -> list[Path]:
    lat = [r for r in rows if r["what"] == "load" and r["cell"].endswith("/s")]
    groups = [(n, k) for n in (1, 3) for k in KINDS if any(r["nodes"] == n and r["kind"] == k for r in lat)]
    if not groups:
        return []
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for i, (n, k) in enumerate(groups):
        for j, (key, color) in enumerate((("own_p50_us", "tab:blue"), ("own_p99_us", "tab:orange"))):
            xs = list(_values(lat, k, lambda r, n=n: r["nodes"] == n, key).values())
            if xs:
                ax.bar(i + j * 0.4, statistics.median(xs), width=0.4, color=color,
                       label=key.split("_")[1] if i == 0 else None)
    ax.set_xticks([i + 0.2 for i in range(len(groups))], [f"{n}n {k}" for n, k in groups],
                  rotation=30, ha="right", fontsize=8)
    ax.set(yscale="log", ylabel="send → own delivery, µs (median of runs)",
           title="Latency at 1,000 msgs/s offered, 1 KiB")
    ax.legend()
    fig.tight_layout()
    path = plot_dir / f"{prefix}_latency.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]
