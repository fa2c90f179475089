//! The bank-account story on a durable store: a second run resumes next to the first one's
//! accounts instead of failing on them.

#[path = "../examples/bank_account/domain.rs"]
mod domain;
#[path = "../examples/bank_account/story.rs"]
mod story;

use cqrs_runtime::store::SqliteEventStore;

#[tokio::test]
async fn the_story_runs_twice_on_one_sqlite_file() {
    let dir = std::env::temp_dir().join(format!("cqrs-resume-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
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
