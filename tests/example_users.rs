//! The users example's printed story, checked against its committed transcript, on the
//! in-memory and SQLite stores. After an intended change, regenerate with
//! `CQRS_BLESS=1 cargo test --test example_users`.

#[path = "../examples/users/domain.rs"]
mod domain;
#[path = "../examples/users/story.rs"]
mod story;

use cqrs_runtime::InMemoryEventStore;
use cqrs_runtime::sqlite::SqliteEventStore;

const TRANSCRIPT: &str = "tests/transcripts/users.txt";

fn check(text: &str, outcome: &story::Outcome) {
    let expected = std::fs::read_to_string(TRANSCRIPT).expect("transcript exists");
    assert_eq!(
        text, expected,
        "the story changed; if intended, bless it (see the module docs)"
    );
    // The answers, independent of wording.
    assert_eq!((outcome.race_won, outcome.race_taken), (1, 7));
    let holder = |email: &str| outcome.holders.get(email).map(String::as_str);
    assert_eq!(holder("ann@example.com"), Some("eve"));
    assert_eq!(holder("ann@work.example"), Some("ann"));
    assert_eq!(holder("bob@example.com"), Some("bob"));
    assert_eq!(holder("eve-at-example.com"), None);
    assert!(holder("sam@example.com").is_some_and(|h| h.starts_with("racer-")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_story_matches_its_transcript() {
    let mut out = Vec::new();
    let outcome = story::run(InMemoryEventStore::new(), &mut out)
        .await
        .expect("the story runs");
    let text = String::from_utf8(out).expect("utf-8");
    if std::env::var_os("CQRS_BLESS").is_some() {
        std::fs::write(TRANSCRIPT, &text).expect("write transcript");
    }
    check(&text, &outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_story_reads_the_same_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("cqrs-users-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store = SqliteEventStore::open(dir.join("users.sqlite"))
        .await
        .expect("open");
    let mut out = Vec::new();
    let outcome = story::run(store, &mut out).await.expect("the story runs");
    check(&String::from_utf8(out).expect("utf-8"), &outcome);
    let _ = std::fs::remove_dir_all(&dir);
}
