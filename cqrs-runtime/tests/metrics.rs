//! The documented metrics, recorded through the `metrics` facade.

mod common;

use common::*;
use cqrs_runtime::error::CommandError;
use cqrs_runtime::telemetry::names;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::{CompositeKey, MetricKind};

/// What was recorded since the last snapshot (taking one drains the recorder).
struct Recorded(Vec<(CompositeKey, DebugValue)>);

impl Recorded {
    fn take(snapshotter: &Snapshotter) -> Self {
        let all = snapshotter.snapshot().into_vec();
        Self(
            all.into_iter()
                .map(|(key, _, _, value)| (key, value))
                .collect(),
        )
    }
}

/// The value of the metric `name` with exactly `labels`, if it was registered.
fn value<'r>(
    recorded: &'r Recorded,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'r DebugValue> {
    let matches = |key: &CompositeKey| {
        let key = key.key();
        let mut found: Vec<(&str, &str)> = key.labels().map(|l| (l.key(), l.value())).collect();
        found.sort();
        let mut wanted = labels.to_vec();
        wanted.sort();
        key.name() == name && found == wanted
    };
    recorded
        .0
        .iter()
        .find(|(key, _)| matches(key))
        .map(|(_, value)| value)
}

fn counter(snapshotter: &Recorded, name: &str, labels: &[(&str, &str)]) -> u64 {
    match value(snapshotter, name, labels) {
        Some(DebugValue::Counter(n)) => *n,
        other => panic!("{name} {labels:?} is no counter: {other:?}"),
    }
}

fn samples(snapshotter: &Recorded, name: &str, labels: &[(&str, &str)]) -> usize {
    match value(snapshotter, name, labels) {
        Some(DebugValue::Histogram(samples)) => samples.len(),
        other => panic!("{name} {labels:?} is no histogram: {other:?}"),
    }
}

#[tokio::test]
async fn a_repository_counts_commands_by_outcome_and_times_them() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // Handles are registered when the repository is built, with the recorder current then.
    let repo = metrics::with_local_recorder(&recorder, repo);

    open(&repo, "acc-1").await;
    repo.execute(Deposit {
        id: id("acc-1"),
        amount: 5,
    })
    .await
    .unwrap();
    let refused = repo
        .execute(Withdraw {
            id: id("acc-1"),
            amount: 1_000,
        })
        .await;
    assert!(matches!(refused, Err(CommandError::Rejected(_))));
    let missing = repo
        .execute(Deposit {
            id: id("nobody"),
            amount: 1,
        })
        .await;
    assert!(matches!(missing, Err(CommandError::NotFound { .. })));

    let recorded = Recorded::take(&snapshotter);
    let account = [("aggregate", "account")];
    let outcome = |o| [("aggregate", "account"), ("outcome", o)];
    assert_eq!(
        counter(&recorded, names::COMMANDS, &outcome("committed")),
        2
    );
    assert_eq!(counter(&recorded, names::COMMANDS, &outcome("rejected")), 1);
    assert_eq!(
        counter(&recorded, names::COMMANDS, &outcome("not_found")),
        1
    );
    assert_eq!(counter(&recorded, names::COMMANDS, &outcome("conflict")), 0);
    assert_eq!(counter(&recorded, names::EVENTS_APPENDED, &account), 2);
    assert_eq!(counter(&recorded, names::COMMAND_RETRIES, &account), 0);
    assert_eq!(samples(&recorded, names::COMMAND_DURATION, &account), 4);
    assert_eq!(samples(&recorded, names::LOAD_DURATION, &account), 4);
    assert_eq!(samples(&recorded, names::APPEND_DURATION, &account), 2);

    // A clone records into the same handles.
    repo.clone().load(&id("acc-1")).await.unwrap();
    let recorded = Recorded::take(&snapshotter);
    assert_eq!(samples(&recorded, names::LOAD_DURATION, &account), 1);

    // Kinds as documented.
    let kind = |name: &str| {
        let found = recorded.0.iter().find(|(key, _)| key.key().name() == name);
        found.map(|(key, _)| key.kind())
    };
    assert_eq!(kind(names::COMMAND_DURATION), Some(MetricKind::Histogram));
    assert_eq!(kind(names::COMMANDS), Some(MetricKind::Counter));
}

mod runner {
    use super::*;
    use cqrs_runtime::Event;
    use cqrs_runtime::memory::InMemoryEventStore;
    use cqrs_runtime::projection::{ErrorPolicy, EventMeta, InMemoryReadModel, ProjectionRunner};
    use cqrs_runtime::store::{EventStore, ExpectedVersion, NewEvent};
    use cqrs_runtime::{EventEnum, Metadata, projection};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
    #[event(name = "ticked", version = 1)]
    pub struct Ticked {
        pub n: u64,
    }

    #[derive(Debug, Clone, PartialEq, EventEnum)]
    pub enum ClockEvent {
        Ticked(Ticked),
    }

    #[derive(Debug, Default, Clone)]
    pub struct Ticks {
        sum: u64,
    }

    #[projection(name = "metrics_ticks", events = ClockEvent)]
    impl Ticks {
        #[on]
        fn ticked(&mut self, e: &Ticked, _meta: &EventMeta<'_>) {
            self.sum += e.n;
        }
    }

    #[tokio::test]
    async fn a_runner_reports_events_batches_position_head_and_lag() {
        let store = InMemoryEventStore::new();
        for n in 0..10u64 {
            let payload = format!(r#"{{"n":{n}}}"#).into_bytes();
            let event = NewEvent::new("ticked", 1, payload, Metadata::new());
            let expected = ExpectedVersion::from_version(n);
            store
                .append("clock", "c-1", expected, vec![event])
                .await
                .unwrap();
        }
        // A poison event: a skipped dead letter under `SkipAndRecord`.
        let poison = NewEvent::new("ticked", 1, br#"{"n":"x"}"#.to_vec(), Metadata::new());
        let expected = ExpectedVersion::from_version(10);
        store
            .append("clock", "c-1", expected, vec![poison])
            .await
            .unwrap();

        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let model = InMemoryReadModel::<Ticks>::new();
        let runner = metrics::with_local_recorder(&recorder, || {
            ProjectionRunner::new(store.clone(), model.clone())
                .batch_size(4)
                .error_policy(ErrorPolicy::SkipAndRecord)
        });
        assert_eq!(runner.catch_up().await.unwrap(), 11);
        assert_eq!(model.read(|t| t.sum), 45);

        let recorded = Recorded::take(&snapshotter);
        let labels = [("runner", "metrics_ticks"), ("partition", "all")];
        assert_eq!(counter(&recorded, names::RUNNER_EVENTS, &labels), 11);
        assert_eq!(counter(&recorded, names::RUNNER_BATCHES, &labels), 3);
        assert_eq!(counter(&recorded, names::RUNNER_DEAD_LETTERS, &labels), 1);
        let gauge = |name| match value(&recorded, name, &labels) {
            Some(DebugValue::Gauge(v)) => v.into_inner(),
            other => panic!("{name} is no gauge: {other:?}"),
        };
        assert_eq!(gauge(names::RUNNER_POSITION), 11.0);
        assert_eq!(gauge(names::RUNNER_HEAD), 11.0);
        assert_eq!(gauge(names::RUNNER_LAG), 0.0);
        let transient = [
            ("runner", "metrics_ticks"),
            ("partition", "all"),
            ("kind", "transient"),
        ];
        assert_eq!(counter(&recorded, names::RUNNER_ERRORS, &transient), 0);
    }

    struct Count;

    impl cqrs_runtime::processing::reaction::Reactor<()> for Count {
        const NAME: &'static str = "metrics_count";
        const VERSION: u32 = 1;
        const HANDLED: &'static [&'static str] = &["ticked"];

        async fn react(
            &self,
            _event: &cqrs_runtime::store::StoredEvent,
            _ctx: &mut cqrs_runtime::processing::reaction::ReactionContext<'_, ()>,
        ) -> Result<projection::Outcome, cqrs_runtime::processing::reaction::ReactionError>
        {
            Ok(projection::Outcome::Applied)
        }
    }

    /// The runner of one partition reports under the handler's name and `{index}/{count}`.
    #[tokio::test]
    async fn a_partition_runner_reports_its_partition() {
        use cqrs_runtime::processing::reaction::{InMemoryReactions, reactor};
        use cqrs_runtime::processing::{Partition, PartitionKey};
        let store = InMemoryEventStore::new();
        for n in 0..20u64 {
            let payload = format!(r#"{{"n":{n}}}"#).into_bytes();
            let event = NewEvent::new("ticked", 1, payload, Metadata::new());
            store
                .append(
                    "clock",
                    &format!("c-{n}"),
                    ExpectedVersion::Any,
                    vec![event],
                )
                .await
                .unwrap();
        }
        let partition = Partition::new("metrics_count", 1, 2, PartitionKey::StreamId);
        let mut owned = 0;
        for n in 0..20u64 {
            let id = format!("c-{n}");
            if cqrs_runtime::processing::partition_of(&id, 2) == 1 {
                owned += 1;
            }
        }
        assert!(owned > 0 && owned < 20);

        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let runner = metrics::with_local_recorder(&recorder, || {
            let handler = reactor(Count, (), InMemoryReactions::new()).partition(&partition);
            ProjectionRunner::new(partition.source(store.clone()), handler).batch_size(3)
        });
        assert_eq!(runner.catch_up().await.unwrap(), owned);

        let recorded = Recorded::take(&snapshotter);
        let labels = [("runner", "metrics_count"), ("partition", "1/2")];
        assert_eq!(counter(&recorded, names::RUNNER_EVENTS, &labels), owned);
        let unlabelled = [("runner", "metrics_count#p1/2"), ("partition", "all")];
        assert!(value(&recorded, names::RUNNER_EVENTS, &unlabelled).is_none());
    }
}
