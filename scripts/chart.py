#!/usr/bin/env python3
"""Chart and table of the comparison bench, from criterion's own output.

    cargo bench --manifest-path benches/compare/Cargo.toml
    python3 scripts/chart.py [CRITERION_DIR] [OUT_SVG]

Reads `<group>/<contender>/<n>/new/estimates.json` (criterion's median time per iteration)
under CRITERION_DIR (default `benches/compare/target/criterion`), prints a Markdown table of
median throughputs with the ratios (a)/(b) and (a)/(c) as time ratios (above 1 means (a) is
slower), and writes an SVG (default `benches/chart.svg`): one panel per workload, one bar per
contender, in events or commands per second. Plain SVG, no plotting library.
"""
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "benches", "compare", "target", "criterion")
OUT = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "benches", "chart.svg")

WORKLOADS = [
    ("w1_load", "10000", "W1 rehydrate 10,000 events (load path)", "events/s"),
    ("w1_load", "100000", "W1 rehydrate 100,000 events (load path)", "events/s"),
    ("w1_core", "10000", "W1 core: decode + apply 10,000 events", "events/s"),
    ("w1_core", "100000", "W1 core: decode + apply 100,000 events", "events/s"),
    ("w2_commands", "100000", "W2 100,000 commands / 1,000 aggregates", "commands/s"),
    ("w3_rebuild", "100000", "W3 rebuild read model, 1,000 × 100 events", "events/s"),
    ("w4_decide_apply", "100000", "W4 decide + apply, no store", "commands/s"),
]
CONTENDERS = [
    ("generated", "(a) macros", "#2b6cb0"),
    ("hand_written", "(b) hand-written", "#718096"),
    ("cqrs_es", "(c) cqrs-es (persist)", "#dd6b20"),
    ("cqrs_es_memstore", "(c) cqrs-es MemStore", "#f6ad55"),
]


def median_ns(group, contender, n):
    path = os.path.join(SRC, group, contender, n, "new", "estimates.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"]


def human(x):
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= div:
            return f"{x / div:.3g} {unit}"
    return f"{x:.3g}"


def main():
    rows = []
    for group, n, title, unit in WORKLOADS:
        times = {c: median_ns(group, c, n) for c, _, _ in CONTENDERS}
        if times["generated"] is None:
            continue
        rows.append((group, n, title, unit, times))
    if not rows:
        sys.exit(f"no criterion results under {SRC}")

    print("| workload | (a) macros | (b) hand-written | (c) cqrs-es | (a)/(b) | (a)/(c) |")
    print("|---|---:|---:|---:|---:|---:|")
    for group, n, title, unit, t in rows:
        rate = lambda c: f"{human(int(n) / t[c] * 1e9)} {unit}" if t[c] else "–"
        c_cell = rate("cqrs_es")
        if t["cqrs_es_memstore"]:
            c_cell += f" (MemStore: {rate('cqrs_es_memstore')})"
        ab = f"{t['generated'] / t['hand_written']:.2f}×"
        ac = f"{t['generated'] / t['cqrs_es']:.2f}×" if t["cqrs_es"] else "–"
        if t["cqrs_es_memstore"]:
            ac += f" (MemStore {t['generated'] / t['cqrs_es_memstore']:.2f}×)"
        print(f"| {title} | {rate('generated')} | {rate('hand_written')} | {c_cell} | {ab} | {ac} |")

    # SVG: one panel per workload, horizontal bars scaled to the panel's fastest contender.
    width, label_w, bar_h, gap, pad = 860, 190, 18, 4, 14
    panels = []
    y = 50
    for group, n, title, unit, t in rows:
        present = [(c, name, color) for c, name, color in CONTENDERS if t[c]]
        rates = {c: int(n) / t[c] * 1e9 for c, _, _ in present}
        top = max(rates.values())
        parts = [f'<text x="{pad}" y="{y}" font-weight="bold">{title}</text>']
        y += 8
        for c, name, color in present:
            w = (width - label_w - 150) * rates[c] / top
            parts.append(f'<text x="{label_w - 6}" y="{y + bar_h - 5}" text-anchor="end">{name}</text>')
            parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}"/>')
            parts.append(
                f'<text x="{label_w + w + 6:.1f}" y="{y + bar_h - 5}">{human(rates[c])} {unit}</text>'
            )
            y += bar_h + gap
        y += 26
        panels.append("\n".join(parts))
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" '
        f'font-family="sans-serif" font-size="12">\n<rect width="100%" height="100%" fill="white"/>\n'
        f'<text x="{pad}" y="24" font-size="15" font-weight="bold">Median throughput per workload '
        f"(criterion; longer is faster; each panel has its own scale)</text>\n"
        + "\n".join(panels)
        + "\n</svg>\n"
    )
    with open(OUT, "w") as f:
        f.write(svg)
    print(f"\nchart: {os.path.relpath(OUT, ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
