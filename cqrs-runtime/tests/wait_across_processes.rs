//! Read-your-writes across processes: a projection runs in another process (this test binary
//! re-executed as `child_runner`, which does nothing unless `CQRS_WAIT_CHILD` is set); this
//! process appends, waits for the position through the checkpoint in the database
//! (`wait_for_checkpoint`, and on PostgreSQL a `CheckpointWatch` woken by the checkpoint
//! notifications), then reads the model and sees its write. PostgreSQL tests read
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`), use a schema of their
//! own, skip with a printed reason when the server is unreachable, and fail when `CI=true`.
#![allow(missing_docs, reason = "test fixtures")]

use std::process::{Child, Command};
use std::time::Duration;

use cqrs_runtime::processing::{CheckpointWatch, WaitError, wait_for_checkpoint};
use cqrs_runtime::projection::{EventMeta, ProjectionRunner, SqlProjection, SqlReadModel};
use cqrs_runtime::store::{
    CheckpointStore, EventStore, ExpectedVersion, NewEvent, SqlBackend, SqlBatch, SqlValue,
};
use cqrs_runtime::{Event, EventEnum, Metadata, projection};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "note_written", version = 1)]
pub struct NoteWritten {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum NoteEvent {
    Written(NoteWritten),
}

/// One row per note stream: its last text.
#[derive(Default)]
pub struct Notes;

const NAME: &str = "wait_notes";

#[projection(name = "wait_notes", events = NoteEvent, transaction = SqlBatch)]
impl Notes {
    #[on]
    fn written(&mut self, e: &NoteWritten, meta: &EventMeta<'_>, db: &mut SqlBatch) {
        db.execute(
            "INSERT INTO notes (id, text) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET text = $2",
            [meta.stream_id.into(), e.text.as_str().into()],
        );
    }
}

impl SqlProjection for Notes {
    fn create_tables(db: &mut SqlBatch) {
        db.execute(
            "CREATE TABLE IF NOT EXISTS notes (id TEXT PRIMARY KEY, text TEXT NOT NULL)",
            [],
        );
    }

    fn clear_tables(db: &mut SqlBatch) {
        db.execute("DELETE FROM notes", []);
    }
}

fn note(text: &str) -> NewEvent {
    let payload = serde_json::json!({ "text": text }).to_string().into_bytes();
    NewEvent::new("note_written", 1, payload, Metadata::new())
}

fn noise() -> NewEvent {
    NewEvent::new("noise_made", 1, b"{}".to_vec(), Metadata::new())
}

/// The runner process: runs the projection live until it is killed.
#[test]
fn child_runner() {
    let Ok(backend) = std::env::var("CQRS_WAIT_CHILD") else {
        return; // an ordinary test run: nothing to do
    };
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        match backend.as_str() {
            "sqlite" => {
                use cqrs_runtime::sqlite::SqliteEventStore;
                let store = SqliteEventStore::open(var("CQRS_WAIT_DB"))
                    .await
                    .expect("open");
                let model = SqlReadModel::<Notes, _>::open(store.clone())
                    .await
                    .expect("model");
                let runner = ProjectionRunner::new(store, model)
                    .poll_interval(Duration::from_millis(5), Duration::from_millis(50));
                let ended = runner.run(std::future::pending()).await;
                panic!("the runner ended: {ended:?}");
            }
            #[cfg(feature = "postgres")]
            "postgres" => {
                use cqrs_runtime::postgres::PostgresConfig;
                let store = PostgresConfig::new(&var("CQRS_WAIT_DB"))
                    .expect("url")
                    .schema(&var("CQRS_WAIT_SCHEMA"))
                    .expect("schema")
                    .notify(&var("CQRS_WAIT_CHANNEL"))
                    .expect("channel")
                    .open()
                    .await
                    .expect("open");
                let model = SqlReadModel::<Notes, _>::open(store.clone())
                    .await
                    .expect("model");
                let appends = store.listen().await.expect("listen");
                let runner = ProjectionRunner::new(store, model)
                    .wake_on(appends)
                    .poll_interval(Duration::from_millis(5), Duration::from_millis(200));
                let ended = runner.run(std::future::pending()).await;
                panic!("the runner ended: {ended:?}");
            }
            other => panic!("unknown backend {other}"),
        }
    });
}

/// The runner process, killed when dropped.
struct RunnerProcess(Child);

impl RunnerProcess {
    fn spawn(env: &[(&str, String)]) -> Self {
        let mut command = Command::new(std::env::current_exe().expect("test binary"));
        command
            .args(["--exact", "child_runner", "--nocapture", "--test-threads=1"])
            .stdout(std::process::Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        Self(command.spawn().expect("spawn the runner process"))
    }
}

impl Drop for RunnerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The note of `id` in the model, read by this process.
async fn read_note<B: SqlBackend>(model: &SqlReadModel<Notes, B>, id: &str) -> Option<String> {
    let rows = model
        .fetch_all(
            "SELECT text FROM notes WHERE id = $1",
            &[SqlValue::from(id)],
        )
        .await
        .expect("read the model");
    rows.into_iter().next().map(|row| match row.as_slice() {
        [SqlValue::Text(text)] => text.clone(),
        other => panic!("unexpected row {other:?}"),
    })
}

async fn append<S: EventStore>(store: &S, stream_type: &str, id: &str, event: NewEvent) -> u64 {
    store
        .append(stream_type, id, ExpectedVersion::Any, vec![event])
        .await
        .expect("append")
        .positions
        .last()
        .copied()
        .expect("a position")
}

/// Appends, waits for the other process's runner through the database, reads the write;
/// then a position nobody reaches times out, saying where the checkpoint is.
async fn read_your_writes<S, B, W>(store: &S, model: &SqlReadModel<Notes, B>, wait: W)
where
    S: EventStore + CheckpointStore,
    B: SqlBackend,
    W: AsyncFn(u64, Duration) -> Result<u64, WaitError>,
{
    let mut last = 0;
    for round in 0..5 {
        // Noise before and after: the runner moves past it without a note to show.
        append(store, "noise", "x", noise()).await;
        let id = format!("note-{round}");
        let text = format!("written in round {round}");
        let position = append(store, "note", &id, note(&text)).await;
        append(store, "noise", "x", noise()).await;
        let reached = wait(position, Duration::from_secs(30))
            .await
            .expect("the other process's runner reaches the position");
        assert!(reached >= position);
        assert_eq!(
            read_note(model, &id).await.as_deref(),
            Some(text.as_str()),
            "the write is in the model once the wait returns"
        );
        last = position;
    }
    // Eventually the checkpoint moves past the trailing noise too: no note is pending.
    let head = store.head().await.expect("head").position;
    wait(head, Duration::from_secs(30))
        .await
        .expect("the runner reaches the head");

    // A position nobody has written: the wait times out and says how far the reader is.
    let far = head + 1_000;
    let started = std::time::Instant::now();
    let timeout = wait(far, Duration::from_millis(300))
        .await
        .expect_err("nothing reaches it");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(started.elapsed() < Duration::from_secs(10));
    match timeout {
        WaitError::Timeout {
            name,
            wanted,
            reached,
            ..
        } => {
            assert_eq!(name, NAME);
            assert_eq!(wanted, far);
            assert!(reached >= last && reached <= head, "{reached}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    // A reader that never ran has no checkpoint: the wait times out at 0.
    let nobody = wait_for_checkpoint(store, "nobody_runs_this", 1, Duration::from_millis(100))
        .await
        .expect_err("no reader");
    assert!(
        matches!(nobody, WaitError::Timeout { reached: 0, .. }),
        "{nobody:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_read_your_writes_across_processes() {
    use cqrs_runtime::sqlite::SqliteEventStore;
    let dir = std::env::temp_dir().join(format!("cqrs-wait-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("events.sqlite");
    let store = SqliteEventStore::open(&path).await.expect("open");
    let model = SqlReadModel::<Notes, _>::open(store.clone())
        .await
        .expect("model");
    let child = RunnerProcess::spawn(&[
        ("CQRS_WAIT_CHILD", "sqlite".into()),
        ("CQRS_WAIT_DB", path.display().to_string()),
    ]);
    let waiting = async |position, timeout| {
        wait_for_checkpoint(&store, NAME, position, timeout)
            .await
            .map(|c| c.cursor.position)
    };
    read_your_writes(&store, &model, waiting).await;
    drop(child);
    drop((model, store));
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(feature = "postgres")]
mod pg {
    use super::*;
    use cqrs_runtime::postgres::{PostgresConfig, PostgresEventStore};

    fn url() -> String {
        std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    async fn client(url: &str) -> Result<tokio_postgres::Client, String> {
        let connect = tokio_postgres::connect(url, tokio_postgres::NoTls);
        let (client, connection) = tokio::time::timeout(Duration::from_secs(5), connect)
            .await
            .map_err(|_| "timed out after 5 s".to_owned())?
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// A store in a schema of its own (notifying `channel`, if given), or `None` to skip.
    async fn setup(channel: Option<&str>) -> Option<(String, String, PostgresEventStore)> {
        let url = url();
        if let Err(e) = client(&url).await {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("PostgreSQL is unreachable at {url} and CI=true: {e}");
            }
            eprintln!("skipping a PostgreSQL test: cannot connect to {url}: {e}");
            return None;
        }
        let schema = format!("cqrs_w_{}", uuid::Uuid::now_v7().simple());
        let mut config = PostgresConfig::new(&url)
            .expect("url")
            .schema(&schema)
            .expect("schema");
        if let Some(channel) = channel {
            config = config.notify(channel).expect("channel");
        }
        let store = config.open().await.expect("open");
        Some((url, schema, store))
    }

    async fn teardown(url: &str, schema: &str) {
        if let Ok(client) = client(url).await {
            let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
            let _ = client.batch_execute(&drop).await;
        }
    }

    /// Polling only: the waiting process has no notifications configured.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_read_your_writes_across_processes() {
        let Some((url, schema, store)) = setup(None).await else {
            return;
        };
        let channel = format!("w_{}", &schema[7..]);
        let model = SqlReadModel::<Notes, _>::open(store.clone())
            .await
            .expect("model");
        let child = RunnerProcess::spawn(&[
            ("CQRS_WAIT_CHILD", "postgres".into()),
            ("CQRS_WAIT_DB", url.clone()),
            ("CQRS_WAIT_SCHEMA", schema.clone()),
            ("CQRS_WAIT_CHANNEL", channel),
        ]);
        let waiting = async |position, timeout| {
            wait_for_checkpoint(&store, NAME, position, timeout)
                .await
                .map(|c| c.cursor.position)
        };
        read_your_writes(&store, &model, waiting).await;
        drop(child);
        drop((model, store));
        teardown(&url, &schema).await;
    }

    /// Woken by the checkpoint notifications: with a poll interval far longer than the
    /// timeout, only a notification can end the wait in time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_checkpoint_notifications_wake_the_waiter() {
        let channel = format!("w_{}", uuid::Uuid::now_v7().simple());
        let Some((url, schema, store)) = setup(Some(&channel)).await else {
            return;
        };
        assert_eq!(
            store.checkpoint_channel().as_deref(),
            Some(format!("{channel}_checkpoints").as_str())
        );
        let model = SqlReadModel::<Notes, _>::open(store.clone())
            .await
            .expect("model");
        let child = RunnerProcess::spawn(&[
            ("CQRS_WAIT_CHILD", "postgres".into()),
            ("CQRS_WAIT_DB", url.clone()),
            ("CQRS_WAIT_SCHEMA", schema.clone()),
            ("CQRS_WAIT_CHANNEL", channel.clone()),
        ]);
        // The runner process is up once it committed a first checkpoint.
        let first = append(&store, "note", "first", note("first")).await;
        wait_for_checkpoint(&store, NAME, first, Duration::from_secs(60))
            .await
            .expect("the runner process starts");
        let commits = store.listen_checkpoints().await.expect("listen");
        let waiting = async |position, timeout: Duration| {
            CheckpointWatch::new(&store, NAME)
                .wake_on(commits.clone())
                .poll_interval(Duration::from_secs(600), Duration::from_secs(600))
                .wait_for(position, timeout)
                .await
                .map(|c| c.cursor.position)
        };
        read_your_writes(&store, &model, waiting).await;
        drop(child);
        drop((model, store));
        teardown(&url, &schema).await;
    }
}
