//! The order-fulfilment example's printed story, checked against its committed transcript.
//! After an intended change, regenerate with
//! `CQRS_BLESS=1 cargo test --test order_fulfilment_transcript`.

#[allow(dead_code)] // the shared domain is used only in part here
#[path = "../examples/order_fulfilment/domain.rs"]
mod domain;
#[path = "../examples/order_fulfilment/story.rs"]
mod story;

const TRANSCRIPT: &str = "tests/transcripts/order_fulfilment.txt";

#[tokio::test]
async fn order_fulfilment_story_matches_its_transcript() {
    let out = story::Story::new(Vec::new())
        .run()
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
}
