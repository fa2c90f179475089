//! Snapshot and checkpoint tables.

use std::sync::Arc;

use cqrs_runtime::store::{CheckpointStore, Cursor, Snapshot, SnapshotStore};

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

pub async fn checkpoints_round_trip<B: Backend>(b: &Arc<B>) {
    let checkpoints = b.checkpoints();
    assert_eq!(checkpoints.load_checkpoint("p").await.expect("load"), None);
    let first = Cursor {
        tx: 7,
        position: 42,
    };
    checkpoints.save_checkpoint("p", first).await.expect("save");
    checkpoints
        .save_checkpoint("q", Cursor::START)
        .await
        .expect("save");
    assert_eq!(
        checkpoints.load_checkpoint("p").await.expect("load"),
        Some(first)
    );
    let second = Cursor {
        tx: 9,
        position: 40,
    };
    checkpoints
        .save_checkpoint("p", second)
        .await
        .expect("overwrite");
    assert_eq!(
        checkpoints.load_checkpoint("p").await.expect("load"),
        Some(second)
    );
    checkpoints.reset_checkpoint("p").await.expect("reset");
    assert_eq!(checkpoints.load_checkpoint("p").await.expect("load"), None);
    assert_eq!(
        checkpoints.load_checkpoint("q").await.expect("load"),
        Some(Cursor::START)
    );
}
