#!/usr/bin/env bash
# Rates and peak memory of the operating commands on a store of 1,000,000 events (OPERATING.md,
# "Rates and memory"): the bulk read (`streams`), `verify`, `copy` into SQLite and into
# PostgreSQL, and, for comparison, each target database's own bulk insert of the same rows
# (one INSERT ... SELECT inside the database). Needs python3, sqlite3, psql and a PostgreSQL at
# $DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test).
#
#   bash scripts/cli_rates.sh [ACCOUNTS EVENTS_PER_ACCOUNT RUN]    # default 1000 1000 1
set -euo pipefail
cd "$(dirname "$0")/.."
ACCOUNTS=${1:-1000} PER=${2:-1000} RUN=${3:-1}
DB_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
cargo build --release -q -p cqrs-cli
cargo build --release -q --features cli,postgres --example bank_admin
CLI=$PWD/target/release/cqrs-cli
ADMIN=$PWD/target/release/examples/bank_admin
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"; psql -q "$DB_URL" -c "DROP SCHEMA IF EXISTS cli_rates CASCADE" >/dev/null 2>&1 || true' EXIT
TIME=(/usr/bin/time -f "%e s wall, %M KB peak RSS")

python3 scripts/gen_log.py "$ACCOUNTS" "$PER" "$RUN" > "$DIR/log.jsonl"
echo "== import ($(wc -l < "$DIR/log.jsonl") events, runs of $RUN)"
"${TIME[@]}" "$CLI" -q import --store "sqlite:$DIR/source.db" "$DIR/log.jsonl"
for i in 1 2 3; do
  echo "== streams (bulk read), run $i"; "${TIME[@]}" "$CLI" -q streams --store "sqlite:$DIR/source.db" > /dev/null
  echo "== verify (bank types), run $i"; "${TIME[@]}" "$ADMIN" -q --store "sqlite:$DIR/source.db" verify > /dev/null
done
echo "== copy -> SQLite"
"${TIME[@]}" "$CLI" -q copy --no-verify --from "sqlite:$DIR/source.db" --to "sqlite:$DIR/copy.db"
echo "== SQLite's own INSERT ... SELECT of the same rows"
sqlite3 "$DIR/floor.db" "$(sqlite3 "$DIR/source.db" "SELECT group_concat(sql, ';') FROM sqlite_master WHERE tbl_name = 'events' AND sql IS NOT NULL")" "PRAGMA journal_mode=WAL" > /dev/null
"${TIME[@]}" sqlite3 "$DIR/floor.db" "ATTACH '$DIR/source.db' AS src; INSERT INTO events SELECT * FROM src.events ORDER BY global_position"
psql -q "$DB_URL" -c "DROP SCHEMA IF EXISTS cli_rates CASCADE" > /dev/null 2>&1
echo "== copy -> PostgreSQL (with verification)"
"${TIME[@]}" "$CLI" -q copy --from "sqlite:$DIR/source.db" --to "$DB_URL?schema=cli_rates"
echo "== copy -> PostgreSQL, verification only (a second run: nothing to copy)"
"${TIME[@]}" "$CLI" -q copy --from "sqlite:$DIR/source.db" --to "$DB_URL?schema=cli_rates"
echo "== PostgreSQL's own INSERT ... SELECT of the same rows"
psql -q "$DB_URL" -c "CREATE TABLE cli_rates.floor (LIKE cli_rates.events INCLUDING ALL)"
"${TIME[@]}" psql -q "$DB_URL" -c "INSERT INTO cli_rates.floor (stream_type, stream_id, stream_version, event_id, event_type, event_version, payload, metadata, recorded_at) SELECT stream_type, stream_id, stream_version, event_id, event_type, event_version, payload::text::jsonb, metadata::text::jsonb, recorded_at FROM cli_rates.events ORDER BY global_position"
for i in 1 2 3; do
  echo "== streams on PostgreSQL, run $i"; "${TIME[@]}" "$CLI" -q streams --store "$DB_URL?schema=cli_rates" > /dev/null
done
