//! The bank-account example's printed story, checked against its committed transcript.
//! After an intended change, regenerate with `CQRS_BLESS=1 cargo test --test example_transcript`.

#[path = "../examples/bank_account/domain.rs"]
mod domain;
#[path = "../examples/bank_account/story.rs"]
mod story;

use cqrs_runtime::InMemoryEventStore;

const TRANSCRIPT: &str = "tests/transcripts/bank_account.txt";

#[tokio::test]
async fn bank_account_story_matches_its_transcript() {
    let mut out = Vec::new();
    let models = story::run(InMemoryEventStore::new(), &mut out)
        .await
        .expect("the story runs");
    let text = String::from_utf8(out).expect("utf-8");
    if std::env::var_os("CQRS_BLESS").is_some() {
        std::fs::write(TRANSCRIPT, &text).expect("write transcript");
    }
    let expected = std::fs::read_to_string(TRANSCRIPT).expect("transcript exists");
    assert_eq!(
        text, expected,
        "the story changed; if intended, bless it (see the module docs)"
    );
    // The queries' answers, independent of wording.
    assert_eq!(
        models.high_value(100_000),
        vec!["acc-alice", "acc-alice-savings"]
    );
    let alice = models.portfolio("alice");
    assert_eq!((alice.open_accounts, alice.total), (2, 1_230_000));
}
