//! Snapshot and checkpoint tables.

use std::sync::Arc;

use cqrs_runtime::store::{
    CheckpointChange, CheckpointCommit, CheckpointStore, Cursor, DeadLetter, Snapshot,
    SnapshotStore, StoreError,
};

use super::Backend;

pub async fn snapshots_keep_the_newest<B: Backend>(b: &Arc<B>) {
    let snapshots = b.snapshots();
    let snap = |version: u64, fingerprint: u64| Snapshot {
        stream_type: "thing".into(),
        stream_id: "a".into(),
        version,
        state_fingerprint: fingerprint,
        payload: format!("{{\"v\":{version}}}").into_bytes(),
    };
    assert_eq!(
        snapshots.load_snapshot("thing", "a").await.expect("load"),
        None
    );
    snapshots
        .save_snapshot(snap(5, u64::MAX))
        .await
        .expect("save");
    assert_eq!(
        snapshots.load_snapshot("thing", "a").await.expect("load"),
        Some(snap(5, u64::MAX))
    );
    snapshots
        .save_snapshot(snap(3, 1))
        .await
        .expect("older is ignored");
    snapshots
        .save_snapshot(snap(5, 2))
        .await
        .expect("same version is ignored");
    assert_eq!(
        snapshots.load_snapshot("thing", "a").await.expect("load"),
        Some(snap(5, u64::MAX))
    );
    snapshots
        .save_snapshot(snap(9, 7))
        .await
        .expect("newer replaces");
    assert_eq!(
        snapshots.load_snapshot("thing", "a").await.expect("load"),
        Some(snap(9, 7))
    );
    assert_eq!(
        snapshots.load_snapshot("thing", "b").await.expect("load"),
        None
    );
    assert_eq!(
        snapshots.load_snapshot("other", "a").await.expect("load"),
        None
    );
}

pub async fn checkpoints_are_claimed_fenced_and_reset<B: Backend>(b: &Arc<B>) {
    let checkpoints = b.checkpoints();
    assert_eq!(checkpoints.checkpoint("p").await.expect("load"), None);

    let first = checkpoints.claim("p").await.expect("claim");
    assert_eq!(first.cursor, Cursor::START);
    assert_eq!(
        (first.generation, first.version, first.fingerprint),
        (0, 0, 0)
    );
    let at = Cursor {
        tx: 7,
        position: 42,
    };
    let committed = checkpoints
        .commit("p", CheckpointCommit::advance(first.fence, at, 3, u64::MAX))
        .await
        .expect("commit");
    assert_eq!(committed.cursor, at);
    assert_eq!(
        checkpoints.checkpoint("p").await.expect("load"),
        Some(committed),
        "the fingerprint's 64 bits and the cursor round-trip"
    );
    assert!(committed.written_by(3, u64::MAX));

    // A second claim fences the first out: its commits change nothing.
    let second = checkpoints.claim("p").await.expect("claim");
    assert!(second.fence > first.fence);
    assert_eq!(
        second.cursor, at,
        "a claim resumes from the committed cursor"
    );
    let later = Cursor {
        tx: 9,
        position: 50,
    };
    let refused = checkpoints
        .commit("p", CheckpointCommit::advance(first.fence, later, 3, 1))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Fenced { fence, current, .. }) if fence == first.fence && current == second.fence),
        "{refused:?}"
    );
    assert_eq!(
        checkpoints
            .checkpoint("p")
            .await
            .expect("load")
            .map(|c| c.cursor),
        Some(at)
    );
    let advanced = CheckpointCommit::advance(second.fence, later, 3, 1);
    checkpoints
        .commit("p", advanced.clone())
        .await
        .expect("commit");
    // The same commit again (its answer was lost): already there, nothing changes.
    let again = checkpoints.commit("p", advanced).await.expect("retry");
    assert_eq!(again.cursor, later);

    // Dead letters are recorded and removed with a commit.
    let letter = DeadLetter {
        cursor: Cursor {
            tx: 8,
            position: 45,
        },
        event_id: Some(uuid::Uuid::now_v7()),
        stream_type: "thing".into(),
        stream_id: "a".into(),
        stream_version: 3,
        event_type: "thing_happened".into(),
        event_version: 1,
        error: "corrupt payload".into(),
        recorded_at: chrono::DateTime::from_timestamp_micros(1_700_000_000_000_000).expect("time"),
    };
    let record = CheckpointCommit {
        fence: second.fence,
        change: CheckpointChange::Keep,
        record: vec![letter.clone()],
        remove: Vec::new(),
    };
    checkpoints.commit("p", record).await.expect("record");
    assert_eq!(
        checkpoints.dead_letters("p").await.expect("dead letters"),
        vec![letter.clone()]
    );
    assert!(
        checkpoints
            .dead_letters("q")
            .await
            .expect("none")
            .is_empty()
    );
    let remove = CheckpointCommit {
        fence: second.fence,
        change: CheckpointChange::Keep,
        record: Vec::new(),
        remove: vec![45],
    };
    checkpoints.commit("p", remove).await.expect("remove");
    assert!(
        checkpoints
            .dead_letters("p")
            .await
            .expect("empty")
            .is_empty()
    );

    // A reset goes back to the start in the next generation, dead letters gone.
    let mut with_letter = CheckpointCommit::advance(second.fence, later, 3, 1);
    with_letter.record.push(letter);
    checkpoints.commit("p", with_letter).await.expect("record");
    let reset = CheckpointCommit {
        fence: second.fence,
        change: CheckpointChange::Reset {
            at: Cursor::START,
            version: 4,
            fingerprint: 5,
        },
        record: Vec::new(),
        remove: Vec::new(),
    };
    let reset = checkpoints.commit("p", reset).await.expect("reset");
    assert_eq!(reset.cursor, Cursor::START);
    assert_eq!(
        (reset.generation, reset.version, reset.fingerprint),
        (1, 4, 5)
    );
    assert!(
        checkpoints
            .dead_letters("p")
            .await
            .expect("cleared")
            .is_empty()
    );

    // Names are independent, and a commit to a name nobody claimed is refused.
    assert_eq!(checkpoints.checkpoint("q").await.expect("load"), None);
    let unclaimed = checkpoints
        .commit("q", CheckpointCommit::advance(1, later, 1, 1))
        .await;
    assert!(
        matches!(unclaimed, Err(StoreError::Fenced { .. })),
        "{unclaimed:?}"
    );
}
