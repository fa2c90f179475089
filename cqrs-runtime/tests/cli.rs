//! The `cli` module driven in process, against SQLite files and PostgreSQL schemas: verify
//! reports every damaged event and stream with its location, the listings show what is stored,
//! export / import and copy give identical stores, and a copy resumes after an interruption.
//!
//! PostgreSQL tests read `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`),
//! use a schema of their own, skip with a printed reason when the server is unreachable, and
//! fail instead when `CI=true`.
#![cfg(all(feature = "cli", feature = "postgres"))]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::Account;
use cqrs_runtime::cli::{Cli, ExportedEvent};
use cqrs_runtime::envelope::Metadata;
use cqrs_runtime::postgres::{PostgresConfig, PostgresEventStore};
use cqrs_runtime::sqlite::SqliteEventStore;
use cqrs_runtime::store::{EventStore, ExpectedVersion, NewEvent};
use serde_json::Value;

fn cli() -> Cli {
    Cli::new("bank").aggregate::<Account>()
}

/// Runs the tool with `args`, giving the exit code and the output.
async fn run(cli: &Cli, args: &[&str]) -> (i32, String) {
    let mut out = Vec::new();
    let code = cli
        .run_with_args(
            std::iter::once("bank").chain(args.iter().copied()),
            &mut out,
        )
        .await;
    (code, String::from_utf8(out).expect("utf-8 output"))
}

async fn run_json(cli: &Cli, args: &[&str]) -> (i32, Value) {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, out) = run(cli, &all).await;
    let value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    (code, value)
}

fn temp_db(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cqrs-cli-{name}-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join("events.db")
}

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A PostgreSQL store in a fresh schema and the URL that names it, or `None` (skipped).
async fn pg(name: &str) -> Option<(PostgresEventStore, String)> {
    let url = database_url();
    let schema = format!("cqrs_cli_{name}_{}", uuid::Uuid::now_v7().simple());
    let config = PostgresConfig::new(&url)
        .expect("url")
        .schema(&schema)
        .expect("schema");
    let store = match tokio::time::timeout(Duration::from_secs(5), config.open()).await {
        Ok(Ok(store)) => store,
        Ok(Err(e)) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipping a PostgreSQL test: cannot connect to {url}: {e}");
            return None;
        }
        Ok(Err(e)) => panic!("PostgreSQL is unreachable at {url} and CI=true: {e}"),
        Err(_) => panic!("connecting to PostgreSQL at {url} timed out"),
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    Some((store, format!("{url}{sep}schema={schema}")))
}

async fn pg_sql(schema: &str, statement: &str) {
    let (client, connection) = tokio_postgres::connect(&database_url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("SET search_path TO {schema}; {statement}"))
        .await
        .expect("sql");
}

fn event(name: &str, version: u32, payload: &str) -> NewEvent {
    NewEvent::new(
        name.to_owned(),
        version,
        payload.as_bytes().to_vec(),
        Metadata::new(),
    )
}

async fn append<S: EventStore>(store: &S, stream_type: &str, id: &str, events: Vec<NewEvent>) {
    store
        .append(stream_type, id, ExpectedVersion::Any, events)
        .await
        .expect("append");
}

/// A clean store: two accounts (one with an upcast v1 deposit), an unregistered `audit`
/// stream and a `$decisions` record.
async fn seed_clean<S: EventStore>(store: &S) {
    let opened = || event("account_opened", 1, r#"{"owner":"Ada"}"#);
    append(
        store,
        "account",
        "a-1",
        vec![
            opened(),
            event("money_deposited", 1, r#"{"amt":"5"}"#),
            event("money_deposited", 2, r#"{"amount":7}"#),
        ],
    )
    .await;
    append(
        store,
        "account",
        "a-2",
        vec![opened(), event("money_withdrawn", 1, r#"{"amount":0}"#)],
    )
    .await;
    append(
        store,
        "audit",
        "x-1",
        vec![event("noted", 1, r#"{"by":"me"}"#)],
    )
    .await;
    append(
        store,
        cqrs_runtime::repository::DECISIONS_STREAM_TYPE,
        "d-1",
        vec![event("decided", 1, r#"{}"#)],
    )
    .await;
}

/// The clean store, plus a corrupt payload (`bad-1` v2), an unknown newer version (`bad-2`
/// v2) and a stream whose version 2 is about to be deleted (`gap-1`).
async fn seed_damaged<S: EventStore>(store: &S) {
    seed_clean(store).await;
    let opened = || event("account_opened", 1, r#"{"owner":"Bo"}"#);
    append(
        store,
        "account",
        "bad-1",
        vec![
            opened(),
            event("money_deposited", 2, r#"{"amount":"lots"}"#),
        ],
    )
    .await;
    append(
        store,
        "account",
        "bad-2",
        vec![opened(), event("money_deposited", 3, r#"{"amount":1}"#)],
    )
    .await;
    append(
        store,
        "account",
        "gap-1",
        vec![
            opened(),
            event("money_deposited", 2, r#"{"amount":1}"#),
            event("money_withdrawn", 1, r#"{"amount":1}"#),
        ],
    )
    .await;
}

const MAKE_GAP: &str = "DELETE FROM events WHERE stream_id = 'gap-1' AND stream_version = 2";

/// Positions of the damaged store (every append above is one batch, in order).
const BAD_1_V2: u64 = 9;
const BAD_2_V2: u64 = 11;
const GAP_1_V3: u64 = 14;

fn assert_damage_reported(text: &str, json: &Value) {
    assert!(
        text.contains(&format!(
            "account/bad-1 version 2 (global position {BAD_1_V2}): corrupt payload for event `money_deposited` version 2"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "account/bad-2 version 2 (global position {BAD_2_V2}): event `money_deposited` has version 3, but this binary knows versions up to 2"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "account/gap-1 version 3 (global position {GAP_1_V3}): gap after version 1"
        )),
        "{text}"
    );
    assert!(
        text.contains("verify: FAILED (2 failures, 1 integrity problems)"),
        "{text}"
    );

    assert_eq!(json["ok"], false);
    let failures = json["failures"].as_array().expect("failures");
    assert_eq!(failures.len(), 2, "{json:#}");
    assert_eq!(failures[0]["stream_id"], "bad-1");
    assert_eq!(failures[0]["stream_version"], 2);
    assert_eq!(failures[0]["global_position"], BAD_1_V2);
    assert_eq!(failures[0]["event_version"], 2);
    assert_eq!(failures[1]["stream_id"], "bad-2");
    assert_eq!(failures[1]["global_position"], BAD_2_V2);
    assert_eq!(failures[1]["event_version"], 3);
    let integrity = json["integrity"].as_array().expect("integrity");
    assert_eq!(integrity.len(), 1, "{json:#}");
    assert_eq!(integrity[0]["stream_id"], "gap-1");
    assert_eq!(integrity[0]["problem"], "gap");
    assert_eq!(integrity[0]["previous_version"], 1);
    assert_eq!(integrity[0]["stream_version"], 3);
    assert_eq!(integrity[0]["global_position"], GAP_1_V3);
}

fn assert_clean_counts(json: &Value) {
    assert_eq!(json["ok"], true, "{json:#}");
    assert_eq!(json["events"], 7);
    assert_eq!(json["system_events"], 1);
    let decoded = json["decoded"].as_array().expect("decoded");
    let row = |name: &str, version: u32| {
        decoded
            .iter()
            .find(|r| r["event_type"] == name && r["event_version"] == version)
            .unwrap_or_else(|| panic!("no row for {name} v{version}: {json:#}"))
    };
    assert_eq!(row("account_opened", 1)["decoded"], 2);
    assert_eq!(row("account_opened", 1)["upcast"], 0);
    assert_eq!(row("money_deposited", 1)["decoded"], 1);
    assert_eq!(row("money_deposited", 1)["upcast"], 1);
    assert_eq!(row("money_deposited", 2)["upcast"], 0);
    let unregistered = json["unregistered"].as_array().expect("unregistered");
    assert_eq!(unregistered.len(), 1);
    assert_eq!(unregistered[0]["stream_type"], "audit");
    assert_eq!(unregistered[0]["streams"], 1);
    assert_eq!(unregistered[0]["events"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_reports_each_damaged_event_and_stream_on_sqlite() {
    let path = temp_db("verify");
    let store = SqliteEventStore::open(&path).await.expect("open");
    seed_damaged(&store).await;
    rusqlite::Connection::open(&path)
        .expect("open")
        .execute_batch(MAKE_GAP)
        .expect("tamper");
    let url = format!("sqlite:{}", path.display());
    let (code, text) = run(&cli(), &["--store", &url, "verify"]).await;
    assert_eq!(code, 1, "{text}");
    let (json_code, json) = run_json(&cli(), &["verify", "--store", &url]).await;
    assert_eq!(json_code, 1);
    assert_damage_reported(&text, &json);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_reports_a_row_the_store_cannot_read_and_goes_on() {
    let path = temp_db("unreadable");
    let store = SqliteEventStore::open(&path).await.expect("open");
    seed_clean(&store).await;
    append(
        &store,
        "account",
        "a-3",
        vec![event("account_opened", 1, r#"{"owner":"Di"}"#)],
    )
    .await;
    rusqlite::Connection::open(&path)
        .expect("open")
        .execute_batch(
            "UPDATE events SET metadata = 'nope' WHERE stream_id = 'a-2' AND stream_version = 2",
        )
        .expect("tamper");
    let url = path.display().to_string();
    let (code, json) = run_json(&cli(), &["verify", "--store", &url, "--batch", "2"]).await;
    assert_eq!(code, 1, "{json:#}");
    let failures = json["failures"].as_array().expect("failures");
    assert_eq!(failures.len(), 1, "{json:#}");
    assert_eq!(failures[0]["stream_id"], "a-2");
    assert_eq!(failures[0]["stream_version"], 2);
    assert_eq!(failures[0]["global_position"], 5);
    // Every other event was read: the one after the damaged row too.
    assert_eq!(json["events"], 8);
    assert!(
        json["integrity"].as_array().is_some_and(Vec::is_empty),
        "{json:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_reports_each_damaged_event_and_stream_on_postgres() {
    let Some((store, url)) = pg("verify").await else {
        return;
    };
    seed_damaged(&store).await;
    pg_sql(store.schema(), MAKE_GAP).await;
    let (code, text) = run(&cli(), &["verify", "--store", &url]).await;
    assert_eq!(code, 1, "{text}");
    let (_, json) = run_json(&cli(), &["verify", "--store", &url]).await;
    assert_damage_reported(&text, &json);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_passes_a_clean_store_and_strict_fails_unregistered_types() {
    let path = temp_db("clean");
    seed_clean(&SqliteEventStore::open(&path).await.expect("open")).await;
    let url = path.display().to_string();
    let (code, text) = run(&cli(), &["verify", "--store", &url]).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("verify: OK"), "{text}");
    assert!(text.contains("audit: 1 streams, 1 events"), "{text}");
    let (code, json) = run_json(&cli(), &["verify", "--store", &url]).await;
    assert_eq!(code, 0);
    assert_clean_counts(&json);

    let (code, text) = run(&cli(), &["verify", "--strict", "--store", &url]).await;
    assert_eq!(code, 1, "{text}");
    // Registering the audit stream's events is what --strict asks for; the generic tool
    // registers nothing and still checks every stream's versions.
    let (code, json) = run_json(&Cli::new("raw"), &["verify", "--store", &url]).await;
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["unregistered"].as_array().map(Vec::len), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_on_postgres_passes_a_clean_store() {
    let Some((store, url)) = pg("clean").await else {
        return;
    };
    seed_clean(&store).await;
    let (code, json) = run_json(&cli(), &["verify", "--store", &url]).await;
    assert_eq!(code, 0, "{json:#}");
    assert_clean_counts(&json);
}

/// An event committed while an older transaction of another session is open is held back by
/// PostgreSQL's gap-safe read; `verify` (like every whole-log read of the tool) waits for the
/// transactions that were open when it started instead of reporting a shorter log.
#[tokio::test(flavor = "multi_thread")]
async fn verify_on_postgres_waits_for_transactions_open_when_it_started() {
    let Some((store, url)) = pg("held").await else {
        return;
    };
    let (mut client, connection) = tokio_postgres::connect(&database_url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let open = client.transaction().await.expect("begin");
    open.query_one("SELECT pg_current_xact_id()", &[])
        .await
        .expect("take a transaction id");
    seed_clean(&store).await;
    let verify = tokio::spawn(async move { run_json(&cli(), &["verify", "--store", &url]).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !verify.is_finished(),
        "verify ended while an older transaction held events back"
    );
    open.commit().await.expect("commit");
    let (code, json) = verify.await.expect("verify");
    assert_eq!(code, 0, "{json:#}");
    assert_clean_counts(&json);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_store_file_is_an_error_not_a_new_store() {
    let path = temp_db("missing");
    let (code, _) = run(&cli(), &["verify", "--store", &path.display().to_string()]).await;
    assert_eq!(code, 2);
    assert!(!path.exists());
    let (code, _) = run(&cli(), &["verify"]).await;
    assert_eq!(code, 2, "--store is required");
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_and_events_show_what_is_stored() {
    let path = temp_db("streams");
    seed_clean(&SqliteEventStore::open(&path).await.expect("open")).await;
    let url = format!("sqlite:{}", path.display());

    let (code, text) = run(&cli(), &["streams", "--store", &url]).await;
    assert_eq!(code, 0, "{text}");
    let header = text.lines().next().unwrap_or_default();
    assert!(header.starts_with("STREAM TYPE"), "{text}");
    assert!(
        text.lines().any(|l| l
            .split_whitespace()
            .take(4)
            .eq(["account", "a-1", "3", "3"])),
        "{text}"
    );
    assert!(text.contains("4 streams"), "{text}");
    let (_, json) = run_json(&cli(), &["streams", "--store", &url]).await;
    let streams = json.as_array().expect("array");
    assert_eq!(streams.len(), 4);
    let a1 = streams
        .iter()
        .find(|s| s["stream_id"] == "a-1")
        .expect("a-1");
    assert_eq!(a1["version"], 3);
    assert_eq!(a1["events"], 3);
    assert!(a1["last_write"].is_string());

    let (code, text) = run(&cli(), &["events", "--store", &url, "account", "a-1"]).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("#2 money_deposited v1"), "{text}");
    assert!(text.contains(r#"payload:  {"amt":"5"}"#), "{text}");
    assert!(
        text.contains("decoded:  Deposited(MoneyDeposited { amount: 5 })"),
        "{text}"
    );
    assert!(text.contains("correlation_id"), "{text}");
    let (_, json) = run_json(&cli(), &["events", "--store", &url, "account", "a-1"]).await;
    let events = json.as_array().expect("array");
    assert_eq!(events.len(), 3);
    assert_eq!(events[2]["payload"]["amount"], 7);
    assert_eq!(
        events[2]["decoded"],
        "Deposited(MoneyDeposited { amount: 7 })"
    );

    let (code, text) = run(&cli(), &["events", "--store", &url, "audit", "x-1"]).await;
    assert_eq!(code, 0);
    assert!(text.contains("not registered"), "{text}");
    assert!(!text.contains("decoded:"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_describe_and_diff_against_a_lock() {
    let (code, text) = run(&cli(), &["schema", "describe"]).await;
    assert_eq!(code, 0);
    assert!(text.starts_with("account ("), "{text}");
    assert!(text.contains("money_deposited v2"), "{text}");

    let dir = temp_db("lock");
    let lock = dir.with_file_name("events.lock");
    let exact = cqrs_runtime::schema::lock::blessed_exactly::<common::AccountEvent>();
    std::fs::write(&lock, &exact).expect("write");
    let lock_path = lock.display().to_string();
    let (code, text) = run(&cli(), &["schema", "diff", &lock_path]).await;
    assert_eq!(code, 0, "{text}");

    let without_deposit: String = exact
        .lines()
        .filter(|l| !l.starts_with("money_deposited"))
        .map(|l| format!("{l}\nold_event 1 0x0000000000000001 Old {{ }}\n"))
        .take(1)
        .chain(
            exact
                .lines()
                .filter(|l| !l.starts_with("money_deposited"))
                .skip(1)
                .map(|l| format!("{l}\n")),
        )
        .collect();
    std::fs::write(&lock, without_deposit).expect("write");
    let (code, json) = run_json(&cli(), &["schema", "diff", &lock_path]).await;
    assert_eq!(code, 1, "{json:#}");
    let missing = json["missing"].as_array().expect("missing");
    assert_eq!(missing.len(), 1, "{json:#}");
    assert!(
        missing[0]
            .as_str()
            .is_some_and(|l| l.starts_with("money_deposited 2"))
    );
    let stale = json["stale"].as_array().expect("stale");
    assert_eq!(stale.len(), 1, "{json:#}");
    assert!(
        stale[0]
            .as_str()
            .is_some_and(|l| l.starts_with("old_event 1"))
    );
}

/// An export's events, compared by content: the global position is the store's own, and
/// PostgreSQL's `jsonb` normalizes the payload's whitespace.
fn exported(text: &str) -> Vec<(String, Value, Value)> {
    text.lines()
        .map(|l| {
            let e: ExportedEvent = serde_json::from_str(l).expect("line");
            let mut whole: Value = serde_json::from_str(l).expect("line");
            whole["global_position"] = Value::Null;
            whole["payload"] = Value::Null;
            let payload: Value = serde_json::from_str(e.payload.get()).expect("payload");
            (e.event_id.to_string(), whole, payload)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn export_then_import_gives_an_identical_store_and_reimport_is_a_no_op() {
    let source = temp_db("export");
    seed_clean(&SqliteEventStore::open(&source).await.expect("open")).await;
    let (code, export) = run(
        &cli(),
        &["export", "--store", &source.display().to_string()],
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(export.lines().count(), 7);
    let file = source.with_file_name("export.jsonl");
    std::fs::write(&file, &export).expect("write");

    let target = temp_db("import");
    let target_url = format!("sqlite:{}", target.display());
    let file_arg = file.display().to_string();
    let (code, text) = run(&cli(), &["import", "--store", &target_url, &file_arg]).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("imported 7 events of 4 streams"), "{text}");
    let (_, again) = run(&cli(), &["export", "--store", &target_url]).await;
    // Same positions too: the target was empty and the import appends in commit order.
    assert_eq!(again, export);

    let (code, text) = run(&cli(), &["import", "--store", &target_url, &file_arg]).await;
    assert_eq!(code, 0, "{text}");
    let (_, after_reimport) = run(&cli(), &["export", "--store", &target_url]).await;
    assert_eq!(after_reimport, export, "re-importing appended nothing");

    let (_, one) = run(
        &cli(),
        &[
            "export",
            "--store",
            &target_url,
            "--stream-type",
            "account",
            "--stream-id",
            "a-1",
        ],
    )
    .await;
    assert_eq!(one.lines().count(), 3);
    let (_, accounts) = run(
        &cli(),
        &["export", "--store", &target_url, "--stream-type", "account"],
    )
    .await;
    assert_eq!(accounts.lines().count(), 5);

    // An import that clashes with other events at the same versions stops with an error.
    let other = temp_db("clash");
    let store = SqliteEventStore::open(&other).await.expect("open");
    append(
        &store,
        "account",
        "a-1",
        vec![event("account_opened", 1, r#"{"owner":"Cy"}"#)],
    )
    .await;
    let (code, _) = run(
        &cli(),
        &["import", "--store", &other.display().to_string(), &file_arg],
    )
    .await;
    assert_eq!(code, 2);
}

async fn seed_many<S: EventStore>(store: &S, streams: usize, per_stream: usize) {
    for s in 0..streams {
        let id = format!("acc-{s}");
        // Two appends per stream, interleaved with other streams, so that commit order mixes
        // streams.
        let half = per_stream / 2;
        let mut first = vec![event("account_opened", 1, r#"{"owner":"Ada"}"#)];
        first.extend(
            (1..half).map(|i| event("money_deposited", 2, &format!(r#"{{"amount":{i}}}"#))),
        );
        append(store, "account", &id, first).await;
    }
    for s in 0..streams {
        let id = format!("acc-{s}");
        let half = per_stream / 2;
        let rest: Vec<_> = (half..per_stream)
            .map(|i| event("money_deposited", 1, &format!(r#"{{"amt":"{i}"}}"#)))
            .collect();
        append(store, "account", &id, rest).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_copy_to_postgres_resumes_and_the_stores_are_identical() {
    let Some((_target, target_url)) = pg("copy").await else {
        return;
    };
    let source = temp_db("copy");
    seed_many(
        &SqliteEventStore::open(&source).await.expect("open"),
        60,
        50,
    )
    .await;
    let source_url = format!("sqlite:{}", source.display());
    let base = [
        "copy",
        "--from",
        &source_url,
        "--to",
        &target_url,
        "--batch",
        "250",
    ];

    let mut first = base.to_vec();
    first.extend(["--limit", "1234"]);
    let (code, json) = run_json(&cli(), &first).await;
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["complete"], false);
    assert_eq!(json["events"], 1234);
    assert!(json["verification"].is_null());

    // An interruption inside a batch: the future is dropped while the copy runs.
    let cancelled = tokio::time::timeout(Duration::from_millis(30), run(&cli(), &base)).await;
    if let Ok((code, out)) = &cancelled {
        assert_eq!(*code, 0, "{out}");
    }

    let (code, json) = run_json(&cli(), &base).await;
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["complete"], true);
    assert!(
        json["resumed_after"].as_u64().is_some_and(|p| p >= 1234),
        "{json:#}"
    );
    let verification = &json["verification"];
    assert_eq!(verification["ok"], true, "{json:#}");
    assert_eq!(verification["source_events"], 3000);
    assert_eq!(verification["target_events"], 3000);
    assert_eq!(verification["target_streams"], 60);

    let (_, from) = run(&cli(), &["export", "--store", &source_url]).await;
    let (_, to) = run(&cli(), &["export", "--store", &target_url]).await;
    assert_eq!(exported(&from), exported(&to));
    let (code, _) = run(&cli(), &["verify", "--store", &target_url]).await;
    assert_eq!(code, 0);

    // A second complete run has nothing left to copy and verifies again.
    let (code, json) = run_json(&cli(), &base).await;
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["events"], 0);
    assert_eq!(json["verification"]["ok"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_resumes_from_its_checkpoint_and_reports_a_differing_target() {
    let source = temp_db("copy-sqlite");
    seed_many(
        &SqliteEventStore::open(&source).await.expect("open"),
        10,
        10,
    )
    .await;
    let target = temp_db("copy-sqlite-target");
    let (from, to) = (source.display().to_string(), target.display().to_string());
    let base = ["copy", "--from", &from, "--to", &to, "--batch", "7"];
    let mut limited = base.to_vec();
    limited.extend(["--limit", "42"]);
    let (code, text) = run(&cli(), &limited).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("stopped at --limit"), "{text}");
    let (code, text) = run(&cli(), &base).await;
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("copied 58 events (resumed after source position 42, now at 100)"),
        "{text}"
    );
    assert!(
        text.contains("verified: every stream is identical"),
        "{text}"
    );

    // Without the checkpoint (another name), every event is appended again: batches that
    // landed whole, or in part (a stream's run across the first copy's end), are no-ops.
    let target2 = temp_db("copy-sqlite-target2");
    let to2 = target2.display().to_string();
    let mut limited = vec!["copy", "--from", &from, "--to", &to2, "--batch", "7"];
    limited.extend(["--limit", "42"]);
    assert_eq!(run(&cli(), &limited).await.0, 0);
    let again = [
        "copy",
        "--from",
        &from,
        "--to",
        &to2,
        "--batch",
        "5",
        "--checkpoint",
        "fresh",
    ];
    let (code, text) = run(&cli(), &again).await;
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("copied 100 events (resumed after source position 0, now at 100)"),
        "{text}"
    );
    assert!(
        text.contains("verified: every stream is identical"),
        "{text}"
    );

    // A log that interleaves streams one event at a time (every batch a transaction of many
    // one-event runs), copied in slices and then again under another checkpoint with batches
    // that straddle the slices: identical either way.
    let interleaved = temp_db("copy-interleaved");
    {
        let store = SqliteEventStore::open(&interleaved).await.expect("open");
        for round in 0..6u64 {
            for s in 0..7 {
                let e = if round == 0 {
                    event("account_opened", 1, r#"{"owner":"Ada"}"#)
                } else {
                    event("money_deposited", 2, &format!(r#"{{"amount":{round}}}"#))
                };
                store
                    .append(
                        "account",
                        &format!("i-{s}"),
                        ExpectedVersion::from_version(round),
                        vec![e],
                    )
                    .await
                    .expect("append");
            }
        }
    }
    let from_i = interleaved.display().to_string();
    let target_i = temp_db("copy-interleaved-target");
    let to_i = target_i.display().to_string();
    let sliced = [
        "copy", "--from", &from_i, "--to", &to_i, "--batch", "8", "--limit", "20",
    ];
    assert_eq!(run(&cli(), &sliced).await.0, 0);
    let (code, text) = run(&cli(), &["copy", "--from", &from_i, "--to", &to_i]).await;
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("copied 22 events (resumed after source position 20, now at 42)"),
        "{text}"
    );
    let straddling = [
        "copy",
        "--from",
        &from_i,
        "--to",
        &to_i,
        "--batch",
        "6",
        "--checkpoint",
        "again",
    ];
    let (code, text) = run(&cli(), &straddling).await;
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("verified: every stream is identical"),
        "{text}"
    );
    let copied = SqliteEventStore::open(&target_i).await.expect("open");
    assert_eq!(
        copied
            .read_after(Cursor::START, usize::MAX)
            .await
            .expect("read")
            .len(),
        42,
        "no event was stored twice"
    );

    // An event the source does not hold makes the comparison fail.
    let store = SqliteEventStore::open(&target).await.expect("open");
    append(
        &store,
        "account",
        "extra",
        vec![event("account_opened", 1, r#"{"owner":"Z"}"#)],
    )
    .await;
    let (code, text) = run(&cli(), &base).await;
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("differs: account/extra: source absent"),
        "{text}"
    );
}

// ---- tail, projections, dead letters, rebuild ------------------------------------------------

use cqrs_runtime::projection::{EventMeta, Projection, SqlProjection, SqlReadModel};
use cqrs_runtime::store::{
    CheckpointChange, CheckpointCommit, CheckpointStore, Cursor, DeadLetter, LeaseStore,
    SqlBackend, SqlBatch, SqlValue,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, cqrs_runtime::Event)]
#[event(name = "cli_deposited", version = 1)]
pub struct CliDeposited {
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, cqrs_runtime::EventEnum)]
pub enum CliEvent {
    Deposited(CliDeposited),
}

/// The total of every deposit, in the store's own database.
#[derive(Default)]
pub struct Totals;

#[cqrs_runtime::projection(name = "cli_totals", events = CliEvent, transaction = SqlBatch)]
impl Totals {
    #[on]
    fn deposited(&mut self, e: &CliDeposited, _: &EventMeta<'_>, db: &mut SqlBatch) {
        db.execute(
            "UPDATE cli_totals SET total = total + $1 WHERE id = 1",
            [e.amount.into()],
        );
    }
}

impl SqlProjection for Totals {
    fn create_tables(db: &mut SqlBatch) {
        db.execute(
            "CREATE TABLE IF NOT EXISTS cli_totals (id INTEGER PRIMARY KEY, total BIGINT NOT NULL)",
            [],
        );
        db.execute(
            "INSERT INTO cli_totals (id, total) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
            [],
        );
    }

    fn clear_tables(db: &mut SqlBatch) {
        db.execute("UPDATE cli_totals SET total = 0", []);
    }
}

fn ops_cli() -> Cli {
    Cli::new("bank")
        .events::<CliEvent>("acct")
        .projection::<Totals>()
}

fn deposit(amount: &str) -> NewEvent {
    event("cli_deposited", 1, &format!(r#"{{"amount":{amount}}}"#))
}

async fn total<B: SqlBackend>(store: B) -> i64 {
    let model = SqlReadModel::<Totals, _>::open(store).await.expect("model");
    let rows = model
        .fetch_all("SELECT total FROM cli_totals WHERE id = 1", &[])
        .await
        .expect("fetch");
    match rows.first().and_then(|r| r.first()) {
        Some(SqlValue::Int(n)) => *n,
        other => panic!("unexpected {other:?}"),
    }
}

/// `rebuild`, `projections` and `dead-letters` on one store: a rebuild, a lease held, two
/// dead letters (one that the projection takes on retry, one that fails again), a discard.
async fn projections_and_dead_letters<S>(store: S, url: &str, holder: &str)
where
    S: EventStore + CheckpointStore + LeaseStore + SqlBackend + Clone,
{
    let cli = ops_cli();
    append(&store, "acct", "t-1", vec![deposit("5"), deposit("7")]).await;

    let (code, text) = run(&cli, &["rebuild", "cli_totals", "--store", url]).await;
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("rebuilt cli_totals: 2 events, now at position 2"),
        "{text}"
    );
    assert_eq!(total(store.clone()).await, 12);
    let (code, json) = run_json(&cli, &["rebuild", "cli_totals", "--store", url]).await;
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["events"], 2);
    assert_eq!(total(store.clone()).await, 12, "a rebuild starts from zero");
    let (code, _) = run(&cli, &["rebuild", "nobody", "--store", url]).await;
    assert_eq!(code, 2, "an unregistered projection");

    // A lease held elsewhere: shown, and a rebuild refuses to run beside it.
    let lease = store
        .try_acquire("cli_totals")
        .await
        .expect("lease")
        .expect("free");
    let (code, json) = run_json(&cli, &["projections", "--store", url]).await;
    assert_eq!(code, 0);
    let reader = json
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == "cli_totals"))
        .unwrap_or_else(|| panic!("{json:#}"))
        .clone();
    assert!(
        reader["lease_holder"]
            .as_str()
            .is_some_and(|h| h.starts_with(holder)),
        "{reader:#}"
    );
    assert_eq!(reader["position"], 2);
    assert_eq!(reader["head"], 2);
    assert_eq!(reader["lag"], 0);
    assert_eq!(reader["registered"], true);
    let (code, _) = run(&cli, &["rebuild", "cli_totals", "--store", url]).await;
    assert_eq!(code, 2, "the lease is held");
    drop(lease);

    // Two more events, both set aside as dead letters by a runner: one its projection can
    // take (a failure that went away), one it cannot decode.
    append(
        &store,
        "acct",
        "t-1",
        vec![deposit(r#""lots""#), deposit("1")],
    )
    .await;
    let tail = store.read_after(Cursor::START, 10).await.expect("read");
    let claim = store.claim("cli_totals").await.expect("claim");
    let letters: Vec<DeadLetter> = tail[2..]
        .iter()
        .map(|(cursor, e)| DeadLetter::of(*cursor, e, "set aside"))
        .collect();
    store
        .commit(
            "cli_totals",
            CheckpointCommit {
                fence: claim.fence,
                change: CheckpointChange::Advance {
                    cursor: tail[3].0,
                    version: Totals::VERSION,
                    fingerprint: Totals::FINGERPRINT,
                },
                record: letters,
                remove: Vec::new(),
            },
        )
        .await
        .expect("commit");

    let (code, text) = run(&cli, &["projections", "--store", url]).await;
    assert_eq!(code, 0, "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("cli_totals"))
        .unwrap_or_else(|| panic!("{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cells[..6],
        ["cli_totals", "4", "4", "0", "-", "2"],
        "{text}"
    );

    let (code, json) = run_json(&cli, &["dead-letters", "list", "--store", url]).await;
    assert_eq!(code, 0);
    let positions: Vec<u64> = json
        .as_array()
        .expect("array")
        .iter()
        .map(|l| l["position"].as_u64().expect("position"))
        .collect();
    assert_eq!(positions, [3, 4], "{json:#}");
    assert_eq!(json[0]["name"], "cli_totals");
    assert_eq!(json[0]["event_type"], "cli_deposited");
    let (_, text) = run(
        &cli,
        &["dead-letters", "list", "cli_totals", "--store", url],
    )
    .await;
    assert!(text.contains("acct/t-1 #3"), "{text}");
    assert!(text.contains("2 dead letters"), "{text}");

    let (code, text) = run(
        &cli,
        &["dead-letters", "retry", "cli_totals", "4", "--store", url],
    )
    .await;
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("retried 1 dead letters (positions 4)"),
        "{text}"
    );
    assert_eq!(total(store.clone()).await, 13);
    let (code, json) = run_json(
        &cli,
        &[
            "dead-letters",
            "retry",
            "cli_totals",
            "--all",
            "--store",
            url,
        ],
    )
    .await;
    assert_eq!(code, 1, "{json:#}");
    assert_eq!(json["failed"][0][0], 3, "{json:#}");
    let (code, _) = run(
        &Cli::new("raw"),
        &["dead-letters", "retry", "cli_totals", "3", "--store", url],
    )
    .await;
    assert_eq!(code, 2, "retrying needs the projection registered");
    let (code, text) = run(
        &Cli::new("raw"),
        &[
            "dead-letters",
            "discard",
            "cli_totals",
            "3",
            "9",
            "--store",
            url,
        ],
    )
    .await;
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("discarded 1 dead letters (positions 3)"),
        "{text}"
    );
    assert!(text.contains("no dead letter at position 9"), "{text}");
    let (_, json) = run_json(&cli, &["dead-letters", "list", "--store", url]).await;
    assert_eq!(json, serde_json::json!([]));

    // A rebuild never skips: the event that does not decode stops it.
    let (code, _) = run(&cli, &["rebuild", "cli_totals", "--store", url]).await;
    assert_eq!(code, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn projections_dead_letters_and_rebuild_on_sqlite() {
    let path = temp_db("ops");
    let store = SqliteEventStore::open(&path).await.expect("open");
    let holder = format!("pid {}", std::process::id());
    projections_and_dead_letters(store, &path.display().to_string(), &holder).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn projections_dead_letters_and_rebuild_on_postgres() {
    let Some((store, url)) = pg("ops").await else {
        return;
    };
    projections_and_dead_letters(store.clone(), &url, "pg backend ").await;
    drop_schema(store.schema()).await;
}

async fn drop_schema(schema: &str) {
    pg_sql("public", &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await;
}

/// `tail` from a position, with `--limit`, as text and JSON lines; then live, while events
/// are appended.
async fn tail_prints_the_log<S: EventStore + Clone + 'static>(store: S, url: &str, writer: S) {
    seed_clean(&store).await;
    let cli = cli();
    let (code, text) = run(
        &cli,
        &["tail", "--from", "3", "--limit", "2", "--store", url],
    )
    .await;
    assert_eq!(code, 0, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("4  "), "{text}");
    assert!(
        lines[0].contains("account/a-2 #1  account_opened v1  {"),
        "{text}"
    );
    assert!(lines[1].starts_with("5  "), "{text}");

    let (code, text) = run(
        &cli,
        &[
            "tail", "--from", "0", "--limit", "3", "--json", "--store", url,
        ],
    )
    .await;
    assert_eq!(code, 0, "{text}");
    let events: Vec<ExportedEvent> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let positions: Vec<u64> = events.iter().map(|e| e.global_position).collect();
    assert_eq!(positions, [1, 2, 3]);

    // From the head: only what is appended after it starts.
    let live = tokio::spawn({
        let url = url.to_owned();
        async move {
            let args = [
                "tail",
                "--limit",
                "2",
                "--json",
                "--poll-ms",
                "20",
                "--stream-type",
                "live",
                "--store",
                &url,
            ];
            run(&cli, &args).await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    append(&writer, "other", "o-1", vec![event("noted", 1, "{}")]).await;
    append(
        &writer,
        "live",
        "l-1",
        vec![event("noted", 1, r#"{"n":1}"#)],
    )
    .await;
    append(
        &writer,
        "live",
        "l-1",
        vec![event("noted", 1, r#"{"n":2}"#)],
    )
    .await;
    let (code, text) = tokio::time::timeout(Duration::from_secs(20), live)
        .await
        .expect("tail stops after --limit events")
        .expect("task");
    assert_eq!(code, 0, "{text}");
    let versions: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<ExportedEvent>(l)
                .expect("line")
                .stream_version
        })
        .collect();
    assert_eq!(versions, [1, 2], "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tail_follows_a_sqlite_store() {
    let path = temp_db("tail");
    let store = SqliteEventStore::open(&path).await.expect("open");
    tail_prints_the_log(store.clone(), &path.display().to_string(), store).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tail_follows_a_postgres_store_with_notifications() {
    let Some((store, url)) = pg("tail").await else {
        return;
    };
    let writer = PostgresConfig::new(&database_url())
        .expect("url")
        .schema(store.schema())
        .expect("schema")
        .notify("cli_tail")
        .expect("channel")
        .open()
        .await
        .expect("open");
    tail_prints_the_log(store.clone(), &format!("{url}&notify=cli_tail"), writer).await;
    drop_schema(store.schema()).await;
}

/// The subcommands that only read leave a file that is not a store as it is.
#[tokio::test(flavor = "multi_thread")]
async fn read_only_subcommands_do_not_migrate_a_sqlite_file() {
    let path = temp_db("not-a-store");
    {
        let conn = rusqlite::Connection::open(&path).expect("sqlite");
        conn.execute_batch("CREATE TABLE notes (body TEXT)")
            .expect("table");
    }
    let url = path.display().to_string();
    let cli = cli();
    for args in [
        &["streams"][..],
        &["events", "account", "a-1"],
        &["verify"],
        &["tail", "--from", "0", "--limit", "1"],
        &["projections"],
        &["dead-letters", "list"],
        &["export"],
    ] {
        let mut all = args.to_vec();
        all.extend(["--store", &url]);
        let (code, out) = run(&cli, &all).await;
        assert_eq!(code, 2, "{args:?}: {out}");
    }
    let conn = rusqlite::Connection::open(&path).expect("sqlite");
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("tables");
    assert_eq!(tables, ["notes"]);
    let journal: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("journal mode");
    assert_ne!(
        journal.to_lowercase(),
        "wal",
        "the file was switched to WAL"
    );
}

/// ... and do not create a PostgreSQL schema.
#[tokio::test(flavor = "multi_thread")]
async fn read_only_subcommands_do_not_create_a_postgres_schema() {
    let Some((store, url)) = pg("ro").await else {
        return;
    };
    drop_schema(store.schema()).await;
    let absent = store.schema().to_owned();
    let cli = cli();
    for args in [
        &["streams"][..],
        &["verify"],
        &["tail", "--from", "0", "--limit", "1"],
        &["projections"],
        &["dead-letters", "list"],
    ] {
        let mut all = args.to_vec();
        all.extend(["--store", &url]);
        let (code, out) = run(&cli, &all).await;
        assert_eq!(code, 2, "{args:?}: {out}");
    }
    let (client, connection) = tokio_postgres::connect(&database_url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1",
            &[&absent],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(n, 0, "schema {absent} was created");
}

// ---- a copy killed with SIGKILL --------------------------------------------------------------

/// The copy process of `a_copy_killed_midway_resumes_to_identical_stores` (does nothing
/// unless `CQRS_CLI_COPY_CHILD` is set): copies `--from` to `--to` until killed.
#[test]
fn child_copy() {
    let Ok(from) = std::env::var("CQRS_CLI_COPY_CHILD") else {
        return; // an ordinary test run
    };
    let to = std::env::var("CQRS_CLI_COPY_TO").expect("target");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let args = [
            "copy", "--from", &from, "--to", &to, "--batch", "500", "--quiet",
        ];
        let (code, out) = run(&cli(), &args).await;
        eprintln!("the copy ended before it was killed: {code} {out}");
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_killed_midway_resumes_to_identical_stores() {
    const STREAMS: usize = 500;
    const PER_STREAM: usize = 200;
    const TOTAL: u64 = (STREAMS * PER_STREAM) as u64;
    let Some((target, target_url)) = pg("kill").await else {
        return;
    };
    let path = temp_db("kill-source");
    let source = SqliteEventStore::open(&path).await.expect("open");
    seed_many(&source, STREAMS, PER_STREAM).await;
    let source_url = format!("sqlite:{}", path.display());

    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "child_copy", "--nocapture", "--test-threads=1"])
        .env("CQRS_CLI_COPY_CHILD", &source_url)
        .env("CQRS_CLI_COPY_TO", &target_url)
        .spawn()
        .expect("spawn the copy");
    // Kill it midway: once its checkpoint passed a third of the source.
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let at = target
            .checkpoint("cqrs-cli.copy")
            .await
            .expect("checkpoint")
            .map_or(0, |c| c.cursor.position);
        if at >= TOTAL / 3 {
            break;
        }
        assert!(
            child.try_wait().expect("child").is_none(),
            "the copy ended before it was killed"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the copy is stuck at {at}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let copied = target
        .read_after(Cursor::START, usize::MAX)
        .await
        .expect("read")
        .len() as u64;
    assert!(
        copied < TOTAL,
        "the copy was killed midway ({copied} events)"
    );

    let base = [
        "copy",
        "--from",
        &source_url,
        "--to",
        &target_url,
        "--quiet",
    ];
    let (code, json) = run_json(&cli(), &base).await;
    assert_eq!(code, 0, "{json:#}");
    assert!(
        json["resumed_after"]
            .as_u64()
            .is_some_and(|p| p >= TOTAL / 3),
        "{json:#}"
    );
    let verification = &json["verification"];
    assert_eq!(verification["ok"], true, "{json:#}");
    assert_eq!(verification["source_events"], TOTAL);
    assert_eq!(verification["target_events"], TOTAL);
    assert_eq!(verification["target_streams"], STREAMS as u64);
    let (code, _) = run(&cli(), &["verify", "--quiet", "--store", &target_url]).await;
    assert_eq!(code, 0);
    drop_schema(target.schema()).await;
}
