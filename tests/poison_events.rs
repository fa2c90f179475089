//! What the store accepts, it can read back: an event that could not be loaded again (a
//! non-finite float, which JSON would store as `null`; a NUL character; nesting deeper than
//! the store reads) is refused when the command encodes it, with a typed error, and nothing of
//! the command is stored. The aggregate keeps loading.
#![allow(missing_docs, reason = "test fixtures")]

use cqrs_runtime::error::CommandError;
use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Command)]
#[command(aggregate = Sensor)]
pub struct Record {
    #[id]
    pub sensor: String,
    pub value: f64,
    pub note: String,
    pub depth: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "reading_recorded", version = 1)]
pub struct Recorded {
    pub value: f64,
    pub note: String,
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum SensorEvent {
    Recorded(Recorded),
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Never;

#[derive(Debug, Default)]
pub struct Sensor {
    pub readings: Vec<f64>,
}

#[aggregate(name = "sensor", id = String, events = SensorEvent, error = Never)]
impl Sensor {
    #[command(any)]
    fn record(&self, cmd: Record) -> Result<Recorded, Never> {
        let mut detail = serde_json::json!(1);
        for _ in 0..cmd.depth {
            detail = serde_json::json!([detail]);
        }
        Ok(Recorded {
            value: cmd.value,
            note: cmd.note,
            detail,
        })
    }

    #[apply]
    fn recorded(&mut self, e: &Recorded) {
        self.readings.push(e.value);
    }
}

fn record(value: f64, note: &str, depth: usize) -> Record {
    Record {
        sensor: "s-1".into(),
        value,
        note: note.into(),
        depth,
    }
}

async fn refused_and_nothing_stored<S: EventStore + Clone>(store: S) {
    let sensors = Repository::<Sensor, _>::new(store.clone());
    sensors
        .execute(record(1.5, "fine", 3))
        .await
        .expect("a storable event");
    for (what, command) in [
        ("NaN", record(f64::NAN, "x", 0)),
        ("+infinity", record(f64::INFINITY, "x", 0)),
        ("-infinity", record(f64::NEG_INFINITY, "x", 0)),
        ("a NUL character", record(2.0, "a\0b", 0)),
        ("127 levels of nesting", record(2.0, "x", 127)),
    ] {
        match sensors.execute(command).await {
            Err(CommandError::Encode { event_type, .. }) => {
                assert_eq!(event_type, "reading_recorded", "{what}");
            }
            other => panic!("{what}: expected an encode error, got {other:?}"),
        }
    }
    assert_eq!(
        store.head().await.expect("head").position,
        1,
        "nothing more stored"
    );
    let loaded = sensors.load(&"s-1".to_owned()).await.expect("still loads");
    assert_eq!((loaded.version, loaded.state.readings), (1, vec![1.5]));
}

#[tokio::test]
async fn in_memory() {
    refused_and_nothing_stored(InMemoryEventStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let dir = std::env::temp_dir().join(format!("cqrs-poison-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("dir");
    let store = cqrs_runtime::sqlite::SqliteEventStore::open(dir.join("events.sqlite"))
        .await
        .expect("open");
    refused_and_nothing_stored(store).await;
    let _ = std::fs::remove_dir_all(&dir);
}
