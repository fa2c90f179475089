#!/usr/bin/env bash
# Compile-time cost of the macros: the synthetic domain of scripts/gen_domain.py, written with
# the macros and by hand, built in a scratch workspace with its own CARGO_TARGET_DIRs (never the
# repository's target dir). Uses hyperfine (`apt-get install -y hyperfine`); each figure is the
# median of RUNS runs (default 5; FULL_RUNS, default 3, for the builds that include every
# dependency). Results: target/compile-bench/results/*.json and a Markdown table on stdout.
#
#   scripts/compile_bench.sh            # everything (about 25 minutes on 2 cores)
#   scripts/compile_bench.sh check incr # a subset: deps clean check incr full macros
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="$ROOT/target/compile-bench"
DOMAIN="$BENCH/domain"
RESULTS="$BENCH/results"
RUNS="${RUNS:-5}"
FULL_RUNS="${FULL_RUNS:-3}"
STEPS="${*:-deps clean check incr full macros}"
mkdir -p "$RESULTS"

python3 "$ROOT/scripts/gen_domain.py" "$DOMAIN" >/dev/null
cd "$DOMAIN"
export CARGO_TARGET_DIR="$BENCH/target"

load() { echo "$(date +%T) load: $(cut -d' ' -f1-3 /proc/loadavg) ($1)" | tee -a "$RESULTS/load.txt"; }
# pair NAME PREPARE COMMAND: RUNS rounds, each timing the macro and the hand-written variant once
# (alternating which goes first), so that the load of the shared machine drifts over both alike.
# `{v}` in PREPARE and COMMAND stands for the variant (macro, hand).
pair() {
  local name="$1" prepare="$2" command="$3" runs="${4:-$RUNS}"
  load "$name start"
  for round in $(seq 1 "$runs"); do
    local order="macro hand"; [ $((round % 2)) -eq 0 ] && order="hand macro"
    for v in $order; do
      hyperfine --style none --runs 1 --prepare "${prepare//\{v\}/$v}" \
        --export-json "$RESULTS/$name-$v-$round.json" "${command//\{v\}/$v}" >/dev/null
    done
  done
  load "$name end"
}
# single NAME PREPARE COMMAND: RUNS runs of one command.
single() {
  load "$1 start"
  hyperfine --style none --runs "$RUNS" --prepare "$2" --export-json "$RESULTS/$1.json" "$3" >/dev/null
  load "$1 end"
}
edit='sed -i -e "/BENCH-EDIT/s/< 0 {/< 9 {/;t" -e "/BENCH-EDIT/s/< 9 {/< 0 {/" '"$DOMAIN"'/{v}_domain/src/agg0.rs'

for step in $STEPS; do
  case "$step" in
  deps) # build every dependency once (debug, release, check) so the next steps time the domain
    cargo build -q -p macro_domain -p hand_domain
    cargo build -q --release -p macro_domain -p hand_domain
    cargo check -q -p macro_domain -p hand_domain
    ;;
  clean) # the domain crate alone, from clean, dependencies built
    pair clean-debug "cargo clean -q -p {v}_domain" "cargo build -q -p {v}_domain"
    pair clean-release "cargo clean -q --release -p {v}_domain" "cargo build -q --release -p {v}_domain"
    ;;
  check) # what expansion adds: `cargo check` of the domain crate, from clean
    pair check "cargo clean -q -p {v}_domain" "cargo check -q -p {v}_domain"
    ;;
  incr) # incremental debug rebuild (and check) after a one-line change in agg0.rs
    cargo build -q -p macro_domain -p hand_domain
    pair incr-debug "$edit" "cargo build -q -p {v}_domain"
    cargo check -q -p macro_domain -p hand_domain
    pair incr-check "$edit" "cargo check -q -p {v}_domain"
    ;;
  full) # everything from an empty target dir: dependencies included
    pair full-debug "rm -rf $BENCH/target-full" "CARGO_TARGET_DIR=$BENCH/target-full cargo build -q -p {v}_domain" "$FULL_RUNS"
    pair full-release "rm -rf $BENCH/target-full" "CARGO_TARGET_DIR=$BENCH/target-full cargo build -q --release -p {v}_domain" "$FULL_RUNS"
    ;;
  macros) # dependency cost: cqrs-macros and its dependencies, next to serde_derive alone
    single deps-cqrs-macros "rm -rf $BENCH/target-macros" \
      "CARGO_TARGET_DIR=$BENCH/target-macros cargo build -q --locked --manifest-path $ROOT/Cargo.toml -p cqrs-macros"
    single deps-serde-derive "rm -rf $BENCH/target-serde" \
      "CARGO_TARGET_DIR=$BENCH/target-serde cargo build -q -p serde_derive_only"
    (cd "$ROOT" && cargo tree -p cqrs-macros -e normal --prefix none | sort -u) >"$RESULTS/tree-cqrs-macros.txt"
    cargo tree -p serde_derive_only -e normal --prefix none | sort -u >"$RESULTS/tree-serde-derive.txt"
    ;;
  *) echo "unknown step $step" >&2; exit 2 ;;
  esac
done

python3 - "$RESULTS" <<'PY'
import glob, json, os, statistics, sys
d = sys.argv[1]
def runs(pattern):
    out = []
    for p in glob.glob(os.path.join(d, pattern)):
        for r in json.load(open(p))["results"]:
            # hyperfine keeps each run's wall time but only the mean user and system time.
            out += [(t, r["user"] + r["system"]) for t in r["times"]]
    return out
def med(pattern):
    r = runs(pattern)
    if not r: return None
    return statistics.median(t for t, _ in r), statistics.median(c for _, c in r), len(r)
rows = [("clean build, domain crate, debug", "clean-debug"), ("clean build, domain crate, release", "clean-release"),
        ("`cargo check`, domain crate, from clean", "check"), ("incremental build after a one-line change (debug)", "incr-debug"),
        ("incremental check after a one-line change", "incr-check"), ("full clean build with dependencies, debug", "full-debug"),
        ("full clean build with dependencies, release", "full-release")]
print("| measurement (median of n) | macros: wall / CPU | hand-written: wall / CPU | ratio wall / CPU |")
print("|---|---:|---:|---:|")
for label, key in rows:
    m, h = med(f"{key}-macro-*.json"), med(f"{key}-hand-*.json")
    if m and h:
        print(f"| {label} (n={m[2]}) | {m[0]:.2f} s / {m[1]:.2f} s | {h[0]:.2f} s / {h[1]:.2f} s | {m[0] / h[0]:.2f}× / {m[1] / h[1]:.2f}× |")
a, b = med("deps-cqrs-macros.json"), med("deps-serde-derive.json")
if a and b:
    print(f"| cqrs-macros + its dependencies (n={a[2]}) vs serde_derive + its dependencies (n={b[2]}), debug | {a[0]:.2f} s / {a[1]:.2f} s | {b[0]:.2f} s / {b[1]:.2f} s | {a[0] / b[0]:.2f}× / {a[1] / b[1]:.2f}× |")
PY
