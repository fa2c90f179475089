#!/usr/bin/env bash
# Load-independent compile cost: the instructions rustc executes (callgrind) to check or build
# the domain crate of scripts/gen_domain.py, with the macros and by hand. A RUSTC_WRAPPER runs
# rustc under valgrind for the domain crates only; dependencies compile natively, in a target
# dir of their own. Macro expansion runs inside rustc (the proc-macro is a dylib it loads), so
# it is counted. Takes about 10 minutes on 2 cores; counts repeat within about 1%.
#
#   scripts/compile_count.sh            # check from clean, incremental check, incremental build
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="$ROOT/target/compile-bench"
DOMAIN="$BENCH/domain"
OUT="$BENCH/counts"
mkdir -p "$OUT"
python3 "$ROOT/scripts/gen_domain.py" "$DOMAIN" >/dev/null
cd "$DOMAIN"
export CARGO_TARGET_DIR="$BENCH/target-count"
WRAP="$OUT/rustc-wrapper.sh"
cat >"$WRAP" <<'SH'
#!/usr/bin/env bash
# Runs rustc under callgrind when it compiles a domain crate and CQRS_CG_OUT names a log file.
if [ -n "${CQRS_CG_OUT:-}" ] && [[ " $* " == *" --crate-name macro_domain "* || " $* " == *" --crate-name hand_domain "* ]]; then
  exec valgrind --tool=callgrind --callgrind-out-file=/dev/null --log-file="$CQRS_CG_OUT" "$@"
fi
exec "$@"
SH
chmod +x "$WRAP"
export RUSTC_WRAPPER="$WRAP"

count() { # label, variant, cargo args...
  local label="$1" v="$2"; shift 2
  CQRS_CG_OUT="$OUT/$label-$v.log" cargo "$@" -q -p "${v}_domain"
  echo "$label $v $(grep -o 'Collected : [0-9]*' "$OUT/$label-$v.log" | tr -dc 0-9)" | tee -a "$OUT/counts.txt"
}
edit() { sed -i -e "/BENCH-EDIT/s/< 0 {/< 9 {/;t" -e "/BENCH-EDIT/s/< 9 {/< 0 {/" "$DOMAIN/$1_domain/src/agg0.rs"; }

: >"$OUT/counts.txt"
cargo check -q -p macro_domain -p hand_domain # dependencies, natively
cargo build -q -p macro_domain -p hand_domain
for v in macro hand; do
  cargo clean -q -p "${v}_domain"
  count check-clean "$v" check
  edit "$v"
  count check-incr "$v" check
  cargo build -q -p "${v}_domain"
  edit "$v"
  count build-incr "$v" build
done
python3 - "$OUT/counts.txt" <<'PY'
import sys
c = {}
for line in open(sys.argv[1]):
    label, v, n = line.split()
    c[(label, v)] = int(n)
names = {"check-clean": "`cargo check` from clean", "check-incr": "`cargo check` after a one-line change",
         "build-incr": "debug build after a one-line change"}
print("| rustc instructions (callgrind) | macros | hand-written | ratio |\n|---|---:|---:|---:|")
for label, name in names.items():
    m, h = c.get((label, "macro")), c.get((label, "hand"))
    if m and h:
        print(f"| {name} | {m / 1e9:.2f} G | {h / 1e9:.2f} G | {m / h:.2f}× |")
PY
