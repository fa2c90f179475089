#!/usr/bin/env bash
# Compile-time cost of the macros: the synthetic domain of scripts/gen_domain.py, written with
# the macros and by hand, built in a scratch workspace with its own CARGO_TARGET_DIRs (never the
# repository's target dir). Uses hyperfine (`apt-get install -y hyperfine`); each figure is the
# median of RUNS runs (default 5; FULL_RUNS, default 3, for the builds that include every
# dependency). Results: target/compile-bench/results/*.json and a Markdown table on stdout.
#
#   scripts/compile_bench.sh            # everything (about 20 minutes on 2 idle cores)
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

load() { echo "load: $(cut -d' ' -f1-3 /proc/loadavg) ($1)" | tee -a "$RESULTS/load.txt"; }
hf() { # name, hyperfine args...
  local name="$1"; shift
  load "$name"
  hyperfine --style basic --export-json "$RESULTS/$name.json" "$@"
}
edit_line() { # toggles the literal on the BENCH-EDIT line of a variant's agg0.rs
  echo "sed -i -e '/BENCH-EDIT/s/< 0 {/< 9 {/;t' -e '/BENCH-EDIT/s/< 9 {/< 0 {/' $DOMAIN/$1/src/agg0.rs"
}

for step in $STEPS; do
  case "$step" in
  deps) # build every dependency once (debug, release, check) so the next steps time the domain
    cargo build -q -p macro_domain -p hand_domain
    cargo build -q --release -p macro_domain -p hand_domain
    cargo check -q -p macro_domain -p hand_domain
    ;;
  clean) # the domain crate alone, from clean, dependencies built
    for v in macro hand; do
      hf "clean-debug-$v" --runs "$RUNS" --prepare "cargo clean -q -p ${v}_domain" "cargo build -q -p ${v}_domain"
      hf "clean-release-$v" --runs "$RUNS" --prepare "cargo clean -q --release -p ${v}_domain" "cargo build -q --release -p ${v}_domain"
    done
    ;;
  check) # what expansion adds: `cargo check` of the domain crate, from clean
    for v in macro hand; do
      hf "check-$v" --runs "$RUNS" --prepare "cargo clean -q -p ${v}_domain" "cargo check -q -p ${v}_domain"
    done
    ;;
  incr) # incremental debug rebuild after a one-line change in agg0.rs
    for v in macro hand; do
      cargo build -q -p ${v}_domain
      hf "incr-debug-$v" --runs "$RUNS" --prepare "$(edit_line ${v}_domain)" "cargo build -q -p ${v}_domain"
      hf "incr-check-$v" --runs "$RUNS" --prepare "$(edit_line ${v}_domain)" "cargo check -q -p ${v}_domain"
    done
    ;;
  full) # everything from an empty target dir: dependencies included
    for v in macro hand; do
      for profile in debug release; do
        flag=""; [ "$profile" = release ] && flag="--release"
        hf "full-$profile-$v" --runs "$FULL_RUNS" --prepare "rm -rf $BENCH/target-full" \
          "CARGO_TARGET_DIR=$BENCH/target-full cargo build -q $flag -p ${v}_domain"
      done
    done
    ;;
  macros) # dependency cost: cqrs-macros and its dependencies, next to serde_derive alone
    hf "deps-cqrs-macros" --runs "$RUNS" --prepare "rm -rf $BENCH/target-macros" \
      "CARGO_TARGET_DIR=$BENCH/target-macros cargo build -q --locked --manifest-path $ROOT/Cargo.toml -p cqrs-macros"
    hf "deps-serde-derive" --runs "$RUNS" --prepare "rm -rf $BENCH/target-serde" \
      "CARGO_TARGET_DIR=$BENCH/target-serde cargo build -q -p serde_derive_only"
    (cd "$ROOT" && cargo tree -p cqrs-macros -e normal --prefix none | sort -u) >"$RESULTS/tree-cqrs-macros.txt"
    cargo tree -p serde_derive_only -e normal --prefix none | sort -u >"$RESULTS/tree-serde-derive.txt"
    ;;
  *) echo "unknown step $step" >&2; exit 2 ;;
  esac
done

python3 - "$RESULTS" <<'PY'
import json, os, sys
d = sys.argv[1]
def med(name):
    p = os.path.join(d, name + ".json")
    if not os.path.exists(p): return None
    return json.load(open(p))["results"][0]["median"]
rows = [("clean build, domain crate, debug", "clean-debug"), ("clean build, domain crate, release", "clean-release"),
        ("cargo check, domain crate, from clean", "check"), ("incremental build after a one-line change (debug)", "incr-debug"),
        ("incremental check after a one-line change", "incr-check"), ("full clean build with dependencies, debug", "full-debug"),
        ("full clean build with dependencies, release", "full-release")]
print("| measurement | macros | hand-written | ratio |\n|---|---:|---:|---:|")
for label, key in rows:
    m, h = med(f"{key}-macro"), med(f"{key}-hand")
    if m and h: print(f"| {label} | {m:.2f} s | {h:.2f} s | {m / h:.2f}× |")
a, b = med("deps-cqrs-macros"), med("deps-serde-derive")
if a and b: print(f"| clean build of cqrs-macros + deps vs serde_derive alone (debug) | {a:.2f} s | {b:.2f} s (serde_derive) | {a / b:.2f}× |")
PY
