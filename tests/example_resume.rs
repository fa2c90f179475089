//! The bank-account story on a durable store: a second run resumes next to the first one's
//! accounts instead of failing on them, and its SQL read model resumes from its checkpoint
//! instead of replaying the log from zero.

#[path = "../examples/bank_account/domain.rs"]
mod domain;
#[path = "../examples/bank_account/story.rs"]
mod story;
#[path = "../examples/bank_account/summary.rs"]
mod summary;

use cqrs_runtime::memory::InMemoryLeases;
use cqrs_runtime::projection::ProjectionRunner;
use cqrs_runtime::projection::SqlReadModel;
use cqrs_runtime::sqlite::SqliteEventStore;
use cqrs_runtime::store::EventStore;
use summary::AccountSummary;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cqrs-{name}-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[tokio::test]
async fn the_story_runs_twice_on_one_sqlite_file() {
    let dir = temp_dir("resume");
    let path = dir.join("bank.sqlite");
    for run in 1..=2 {
        // A fresh open each time, as a second process would.
        let store = SqliteEventStore::open(&path).await.expect("open");
        let mut out = Vec::new();
        let models = story::run_numbered(store, &mut out, run)
            .await
            .unwrap_or_else(|e| panic!("run {run} failed: {e}"));
        let alice = models.portfolio("alice");
        assert_eq!(
            alice.open_accounts as u64,
            2 * run,
            "run {run} sees every run's accounts"
        );
        assert!(
            models
                .details
                .read(|d| d.accounts.contains_key("acc-alice"))
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

const DUMP: &str = "SELECT account, owner, balance, closed FROM account_summary ORDER BY account";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_read_model_resumes_from_its_checkpoint() {
    let dir = temp_dir("resume-sql");
    let path = dir.join("bank.sqlite");
    let mut head_before = 0;
    for run in 1..=2 {
        // What the example does on each start: a fresh open of the file, as a new process.
        let store = SqliteEventStore::open(&path).await.expect("open");
        let model = SqlReadModel::<AccountSummary, _>::open(store.clone())
            .await
            .expect("open model");
        let mut out = Vec::new();
        let [before, after] = summary::run_durable(store.clone(), &model, store.clone(), &mut out)
            .await
            .unwrap_or_else(|e| panic!("run {run} failed: {e}"));
        let text = String::from_utf8(out).expect("utf-8");
        let head = store.head().await.expect("head").position;
        if run == 1 {
            assert_eq!(before.resumed_at, None, "a new file has no checkpoint");
            assert!(text.contains("built projection account_summary from the start of the log"));
        } else {
            // The second run starts from the first run's checkpoint, with nothing to replay.
            assert_eq!(before.resumed_at, Some(head_before));
            assert_eq!(before.processed, 0, "nothing was replayed from zero");
            let line = format!("resumed projection account_summary at position {head_before}");
            assert!(text.contains(&line), "no `{line}` in:\n{text}");
            assert!(text.contains("1 earlier run(s)"), "{text}");
        }
        // After the story: only this run's events were processed, up to the head.
        assert_eq!(after.resumed_at, Some(before.position).filter(|_| run > 1));
        assert_eq!(after.processed, head - head_before);
        assert_eq!(after.position, head);
        head_before = head;
    }

    // The resumed model equals a clean rebuild into another file.
    let store = SqliteEventStore::open(&path).await.expect("open");
    let resumed = SqlReadModel::<AccountSummary, _>::open(store.clone())
        .await
        .expect("open model");
    let other = SqliteEventStore::open(dir.join("rebuilt.sqlite"))
        .await
        .expect("open the other file");
    let rebuilt = SqlReadModel::<AccountSummary, _>::open(other)
        .await
        .expect("open rebuild");
    ProjectionRunner::new(store, rebuilt.clone())
        .with_leases(InMemoryLeases::new())
        .rebuild()
        .await
        .expect("rebuild");
    let rows = resumed.fetch_all(DUMP, &[]).await.expect("dump");
    assert_eq!(rows.len(), 6, "two runs of three accounts");
    assert_eq!(rows, rebuilt.fetch_all(DUMP, &[]).await.expect("dump"));
    let _ = std::fs::remove_dir_all(&dir);
}
