#!/usr/bin/env python3
"""Instruction counts (callgrind) for every workload and contender of the benchmark suite.

Each pair runs twice under `valgrind --tool=callgrind`: once with `CQRS_COUNT=<w>:<c>` (build
the input, run the workload once) and once with `CQRS_COUNT_SETUP=1` as well (build the input
only). The difference is the workload's instruction count, which does not depend on the load of
the machine. Counts vary by well under 1% between runs (UUIDv7s and hash seeds are random).

    cargo bench --manifest-path benches/compare/Cargo.toml --no-run
    python3 scripts/count.py [--jobs 2] [--only w4] > target/counts.md

Prints a Markdown table; writes `benches/compare/target/counts.json` for `scripts/chart.py`.
"""
import argparse
import concurrent.futures
import glob
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPARE = os.path.join(ROOT, "benches", "compare")

# workload -> (units, unit name, contenders)
WORKLOADS = {
    "w1_core": (100_000, "event", ["generated", "hand_written"]),
    "w1_load": (100_000, "event", ["generated", "hand_written", "cqrs_es"]),
    "w2": (10_000, "command", ["generated", "hand_written", "cqrs_es", "cqrs_es_memstore"]),
    "w3": (100_000, "event", ["generated", "hand_written", "cqrs_es"]),
    "w4": (100_000, "command", ["generated", "hand_written", "cqrs_es"]),
}


def binary():
    found = [
        p
        for p in glob.glob(os.path.join(COMPARE, "target", "release", "deps", "compare-*"))
        if os.access(p, os.X_OK) and not p.endswith(".d")
    ]
    if not found:
        sys.exit("build first: cargo bench --manifest-path benches/compare/Cargo.toml --no-run")
    return max(found, key=os.path.getmtime)


def collected(exe, which, setup):
    env = dict(os.environ, CQRS_COUNT=which)
    env.pop("CQRS_COUNT_SETUP", None)
    if setup:
        env["CQRS_COUNT_SETUP"] = "1"
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", exe, "--bench"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"Collected : (\d+)", out.stderr)
    if not match:
        sys.exit(f"no count for {which}:\n{out.stderr}")
    return int(match.group(1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", help="one workload")
    args = parser.parse_args()
    exe = binary()
    jobs = [
        (w, c, setup)
        for w, (_, _, contenders) in WORKLOADS.items()
        if not args.only or w == args.only
        for c in contenders
        for setup in (False, True)
    ]
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {job: pool.submit(collected, exe, f"{job[0]}:{job[1]}", job[2]) for job in jobs}
        raw = {job: f.result() for job, f in futures.items()}

    results = {}
    print("| workload | contender | instructions | per unit | vs hand-written | vs cqrs-es |")
    print("|---|---|---:|---:|---:|---:|")
    for w, (units, unit, contenders) in WORKLOADS.items():
        if args.only and w != args.only:
            continue
        net = {c: raw[(w, c, False)] - raw[(w, c, True)] for c in contenders}
        results[w] = {"units": units, "unit": unit, "instructions": net}
        for c in contenders:
            vs_b = net[c] / net["hand_written"]
            vs_c = f"{net[c] / net['cqrs_es']:.3f}×" if "cqrs_es" in net else "–"
            print(
                f"| {w} | {c} | {net[c] / 1e6:,.1f} M | {net[c] / units:,.0f} / {unit} "
                f"| {vs_b:.3f}× | {vs_c} |"
            )
    os.makedirs(os.path.join(COMPARE, "target"), exist_ok=True)
    with open(os.path.join(COMPARE, "target", "counts.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
