//! Repository snapshots on every store: load = snapshot + tail; stale shapes and unreadable
//! payloads are ignored.

use std::sync::Arc;

use cqrs_runtime::prelude::*;
use cqrs_runtime::repository::Snapshotting;
use cqrs_runtime::schema::Shape;
use cqrs_runtime::store::{Snapshot, SnapshotStore};
use serde::{Deserialize, Serialize};

use super::Backend;

#[derive(Debug, Clone, Command)]
#[command(aggregate = Counter)]
pub struct Start {
    #[id]
    pub counter: String,
}

#[derive(Debug, Clone, Command)]
#[command(aggregate = Counter)]
pub struct Add {
    #[id]
    pub counter: String,
    pub by: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "counter_started", version = 1)]
pub struct Started {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "counter_added", version = 1)]
pub struct Added {
    pub by: u32,
}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum CounterEvent {
    Started(Started),
    Added(Added),
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Never;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counter {
    pub total: u64,
    pub adds: u64,
}

/// Written by hand until the derive lands.
impl Shape for Counter {
    const FINGERPRINT: u64 = 0x0c0f_fee5_u64;
}

#[aggregate(name = "counter", id = String, events = CounterEvent, error = Never)]
impl Counter {
    #[command(create)]
    fn start(&self, _: Start) -> Result<Started, Never> {
        Ok(Started {})
    }

    #[command]
    fn add(&self, cmd: Add) -> Result<Added, Never> {
        Ok(Added { by: cmd.by })
    }

    #[apply]
    fn started(&mut self, _: &Started) {}

    #[apply]
    fn added(&mut self, e: &Added) {
        self.total += u64::from(e.by);
        self.adds += 1;
    }
}

pub async fn repository_loads_snapshot_plus_tail<B: Backend>(b: &Arc<B>) {
    let policy = Snapshotting::new(b.snapshots(), 3).inline();
    let repo = Repository::<Counter, _>::new(b.events()).with_snapshot_policy(policy);
    let plain = Repository::<Counter, _>::new(b.events());
    for id in ["s1", "s2", "s3"] {
        repo.execute(Start { counter: id.into() })
            .await
            .expect("start");
        for by in 1..=7 {
            repo.execute(Add {
                counter: id.into(),
                by,
            })
            .await
            .expect("add");
        }
        let loaded = repo.load(&id.to_owned()).await.expect("load");
        assert_eq!(loaded, plain.load(&id.to_owned()).await.expect("replay"));
        assert_eq!(
            (loaded.version, loaded.state.total, loaded.state.adds),
            (8, 28, 7)
        );
        let snapshot = b
            .snapshots()
            .load_snapshot("counter", id)
            .await
            .expect("load");
        let snapshot = snapshot.expect("a snapshot was taken");
        assert_eq!(snapshot.version, 6, "every 3 events, after the append");
    }

    // The tail after the snapshot is applied on top of it (a doctored state proves it).
    let doctored = |id: &str, fingerprint: u64, payload: &[u8]| Snapshot {
        stream_type: "counter".into(),
        stream_id: id.into(),
        version: 7,
        state_fingerprint: fingerprint,
        payload: payload.to_vec(),
    };
    let state = serde_json::to_vec(&Counter {
        total: 1000,
        adds: 0,
    })
    .expect("json");
    let snapshots = b.snapshots();
    snapshots
        .save_snapshot(doctored("s1", Counter::FINGERPRINT, &state))
        .await
        .expect("save");
    let loaded = repo.load(&"s1".to_owned()).await.expect("load");
    assert_eq!(
        (loaded.version, loaded.state.total, loaded.state.adds),
        (8, 1007, 1)
    );

    // Another shape's snapshot, or an unreadable one, is ignored: rebuilt from events.
    let other_shape = doctored("s2", Counter::FINGERPRINT ^ 1, &state);
    snapshots.save_snapshot(other_shape).await.expect("save");
    let unreadable = doctored("s3", Counter::FINGERPRINT, b"{not json");
    snapshots.save_snapshot(unreadable).await.expect("save");
    for id in ["s2", "s3"] {
        let loaded = repo.load(&id.to_owned()).await.expect("load");
        assert_eq!(
            (loaded.version, loaded.state.total, loaded.state.adds),
            (8, 28, 7)
        );
    }
    // The next commands replace the ignored snapshot once enough events were applied.
    for by in 1..=3 {
        repo.execute(Add {
            counter: "s2".into(),
            by,
        })
        .await
        .expect("add");
    }
    let snapshot = snapshots
        .load_snapshot("counter", "s2")
        .await
        .expect("load");
    let snapshot = snapshot.expect("snapshot");
    assert_eq!(
        (snapshot.version, snapshot.state_fingerprint),
        (9, Counter::FINGERPRINT)
    );

    // A snapshot ahead of its stream (a tampered table, a stream restored from an older
    // backup) is ignored: the state comes from the events, and commands still commit.
    let mut ahead = doctored("s3", Counter::FINGERPRINT, &state);
    ahead.version = 1000;
    snapshots.save_snapshot(ahead).await.expect("save");
    let loaded = repo.load(&"s3".to_owned()).await.expect("load");
    assert_eq!(
        (loaded.version, loaded.state.total, loaded.state.adds),
        (8, 28, 7)
    );
    let committed = repo
        .execute(Add {
            counter: "s3".into(),
            by: 2,
        })
        .await
        .expect("a command after a snapshot ahead of the stream");
    assert_eq!((committed.version, committed.state.total), (9, 30));
}
