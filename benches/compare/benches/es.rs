//! (c) The same account in cqrs-es 0.5: a serde-tagged event enum implementing `DomainEvent`,
//! an `Aggregate` whose `handle` writes to the `EventSink`, and, for stored JSON, the persist
//! module (`PersistedEventStore`, `SemanticVersionEventUpcaster`, `QueryReplay`) over
//! [`MemRepo`], an in-memory `PersistedEventRepository` written here.
//!
//! `MemRepo` keeps each row's payload and metadata as JSON bytes and turns them into
//! `serde_json::Value` on every read, the way a database driver hands a `jsonb` column to
//! cqrs-es's repositories, so every contender starts from stored bytes. cqrs-es stores its
//! event enum externally tagged (`{"Deposited":{...}}`), so its payloads carry the variant name
//! on top of the same fields.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use cqrs_es::event_sink::EventSink;
use cqrs_es::mem_store::MemStore;
use cqrs_es::persist::{
    EventUpcaster, PersistedEventRepository, PersistedEventStore, PersistenceError, QueryReplay,
    ReplayStream, SemanticVersionEventUpcaster, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::{
    Aggregate, AggregateError, CqrsFramework, DomainEvent, EventEnvelope, EventStore, Query,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::runtime::Runtime;

use crate::common::data::{Logical, Outcome, Step, stream_id};
use crate::common::domain::{
    Account, AccountError, Deposit, Deposited, Open, Opened, Withdraw, Withdrawn,
};
use crate::common::work::{Portfolio, TYPE};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EsEvent {
    Opened(Opened),
    Deposited(Deposited),
    Withdrawn(Withdrawn),
}

impl DomainEvent for EsEvent {
    fn event_type(&self) -> String {
        match self {
            EsEvent::Opened(_) => "bench_opened",
            EsEvent::Deposited(_) => "bench_deposited",
            EsEvent::Withdrawn(_) => "bench_withdrawn",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        match self {
            EsEvent::Deposited(_) => "2.0",
            _ => "1.0",
        }
        .to_string()
    }
}

#[derive(Debug, Clone)]
pub enum EsCommand {
    Open(Open),
    Deposit(Deposit),
    Withdraw(Withdraw),
}

impl EsCommand {
    pub fn from_step(step: Step) -> Self {
        match step {
            Step::Open(a) => EsCommand::Open(Open {
                id: stream_id(a),
                owner: format!("owner-{a}"),
            }),
            Step::Deposit(a, amount) => EsCommand::Deposit(Deposit {
                id: stream_id(a),
                amount,
            }),
            Step::Withdraw(a, amount) => EsCommand::Withdraw(Withdraw {
                id: stream_id(a),
                amount,
            }),
        }
    }

    pub fn id(&self) -> &str {
        match self {
            EsCommand::Open(c) => &c.id,
            EsCommand::Deposit(c) => &c.id,
            EsCommand::Withdraw(c) => &c.id,
        }
    }
}

/// The same state; cqrs-es wants it `Serialize + Deserialize` (for its snapshots).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EsAccount(pub Account);

impl Aggregate for EsAccount {
    const TYPE: &'static str = TYPE;
    type Command = EsCommand;
    type Event = EsEvent;
    type Error = AccountError;
    type Services = ();

    async fn handle(
        &mut self,
        command: EsCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), AccountError> {
        // cqrs-es has no creation policies: the handler checks what `#[command(create)]` and
        // the default `existing` check in this project's repository.
        let opened = !self.0.owner.is_empty();
        let event = match command {
            EsCommand::Open(c) => {
                if opened {
                    return Err(AccountError::Policy("already exists"));
                }
                EsEvent::Opened(Opened { owner: c.owner })
            }
            EsCommand::Deposit(c) => {
                if !opened {
                    return Err(AccountError::Policy("not found"));
                }
                Account::check_deposit(c.amount)?;
                EsEvent::Deposited(Deposited {
                    amount: c.amount,
                    currency: "EUR".into(),
                })
            }
            EsCommand::Withdraw(c) => {
                if !opened {
                    return Err(AccountError::Policy("not found"));
                }
                self.0.check_withdraw(c.amount)?;
                EsEvent::Withdrawn(Withdrawn { amount: c.amount })
            }
        };
        sink.write(event, self).await; // applies the event to `self`, then records it
        Ok(())
    }

    fn apply(&mut self, event: EsEvent) {
        let state = &mut self.0;
        match event {
            EsEvent::Opened(e) => state.owner = e.owner,
            EsEvent::Deposited(e) => {
                state.balance += e.amount;
                state.deposits += 1;
            }
            EsEvent::Withdrawn(e) => state.balance -= e.amount,
        }
    }
}

/// The step from version 1 of `bench_deposited` (no currency) to 2.0, on the JSON value.
fn upcast_deposited(mut payload: Value) -> Value {
    if let Some(inner) = payload.get_mut("Deposited").and_then(Value::as_object_mut) {
        inner.insert("currency".into(), Value::from("EUR"));
    }
    payload
}

pub fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
    vec![Box::new(SemanticVersionEventUpcaster::new(
        "bench_deposited",
        "2.0",
        Box::new(upcast_deposited),
    ))]
}

// ---- the in-memory PersistedEventRepository ---------------------------------------------------

struct Row {
    aggregate_type: String,
    aggregate_id: String,
    sequence: usize,
    event_type: String,
    event_version: String,
    payload: Vec<u8>,
    metadata: Vec<u8>,
}

impl Row {
    fn read(&self) -> Result<SerializedEvent, PersistenceError> {
        Ok(SerializedEvent::new(
            self.aggregate_id.clone(),
            self.sequence,
            self.aggregate_type.clone(),
            self.event_type.clone(),
            self.event_version.clone(),
            serde_json::from_slice(&self.payload)?,
            serde_json::from_slice(&self.metadata)?,
        ))
    }
}

#[derive(Default)]
struct Log {
    rows: Vec<Row>,
    streams: HashMap<String, Vec<usize>>,
}

/// An in-memory `PersistedEventRepository`: a global log of rows, an index per stream, and an
/// optimistic check on append (the first new sequence must follow the stream's last). No
/// snapshots.
#[derive(Clone, Default)]
pub struct MemRepo(Arc<RwLock<Log>>);

impl MemRepo {
    /// A repository holding `events` in this order (setup; not measured).
    pub fn with<'a>(events: impl IntoIterator<Item = (usize, &'a Logical)>) -> Self {
        let repo = MemRepo::default();
        {
            let mut log = repo.0.write().unwrap();
            for (stream, event) in events {
                let (event_type, event_version, payload) = match event {
                    Logical::Opened(owner) => (
                        "bench_opened",
                        "1.0",
                        EsEvent::Opened(Opened {
                            owner: owner.clone(),
                        }),
                    ),
                    Logical::DepositedV1(n) => {
                        let bytes = format!(r#"{{"Deposited":{{"amount":{n}}}}}"#).into_bytes();
                        log.push(TYPE, &stream_id(stream), "bench_deposited", "1.0", bytes);
                        continue;
                    }
                    Logical::Deposited(n) => (
                        "bench_deposited",
                        "2.0",
                        EsEvent::Deposited(Deposited {
                            amount: *n,
                            currency: "EUR".into(),
                        }),
                    ),
                    Logical::Withdrawn(n) => (
                        "bench_withdrawn",
                        "1.0",
                        EsEvent::Withdrawn(Withdrawn { amount: *n }),
                    ),
                };
                let bytes = serde_json::to_vec(&payload).unwrap();
                log.push(TYPE, &stream_id(stream), event_type, event_version, bytes);
            }
        }
        repo
    }

    fn read_rows(
        &self,
        stream: Option<&str>,
        after: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        let log = self.0.read().unwrap();
        match stream {
            Some(id) => log
                .streams
                .get(id)
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .skip(after)
                .map(|&i| log.rows[i].read())
                .collect(),
            None => log.rows.iter().map(Row::read).collect(),
        }
    }
}

impl Log {
    fn push(
        &mut self,
        ty: &str,
        id: &str,
        event_type: &str,
        event_version: &str,
        payload: Vec<u8>,
    ) {
        let stream = self.streams.entry(id.to_owned()).or_default();
        stream.push(self.rows.len());
        self.rows.push(Row {
            aggregate_type: ty.to_owned(),
            aggregate_id: id.to_owned(),
            sequence: stream.len(),
            event_type: event_type.to_owned(),
            event_version: event_version.to_owned(),
            payload,
            metadata: b"{}".to_vec(),
        });
    }
}

impl PersistedEventRepository for MemRepo {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.read_rows(Some(aggregate_id), 0)
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.read_rows(Some(aggregate_id), last_sequence)
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        _: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        Ok(None)
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        _snapshot: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        let Some(first) = events.first() else {
            return Ok(());
        };
        let mut log = self.0.write().unwrap();
        let head = log.streams.get(&first.aggregate_id).map_or(0, Vec::len);
        if first.sequence != head + 1 {
            return Err(PersistenceError::OptimisticLockError);
        }
        for event in events {
            let payload = serde_json::to_vec(&event.payload)?;
            let metadata = serde_json::to_vec(&event.metadata)?;
            let position = log.rows.len();
            log.streams
                .entry(event.aggregate_id.clone())
                .or_default()
                .push(position);
            log.rows.push(Row {
                aggregate_type: event.aggregate_type.clone(),
                aggregate_id: event.aggregate_id.clone(),
                sequence: event.sequence,
                event_type: event.event_type.clone(),
                event_version: event.event_version.clone(),
                payload,
                metadata,
            });
        }
        Ok(())
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        replay(self.read_rows(Some(aggregate_id), 0)?).await
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        replay(self.read_rows(None, 0)?).await
    }
}

/// A replay stream pre-filled with `events` (the channel holds them all).
async fn replay(events: Vec<SerializedEvent>) -> Result<ReplayStream, PersistenceError> {
    let (mut feed, stream) = ReplayStream::new(events.len().max(1));
    for event in events {
        feed.push(Ok(event)).await?;
    }
    Ok(stream)
}

// ---- the workloads ----------------------------------------------------------------------------

pub type PersistedStore = PersistedEventStore<MemRepo, EsAccount>;

pub fn persisted_store(repo: MemRepo) -> PersistedStore {
    PersistedEventStore::new_event_store(repo).with_upcasters(upcasters())
}

/// W1, (c): `PersistedEventStore::load_aggregate` with the upcaster.
pub fn w1_load(rt: &Runtime, store: &PersistedStore, id: &str) -> Account {
    let mut context = rt.block_on(store.load_aggregate(id)).expect("loads");
    std::mem::take(&mut context.aggregate.0)
}

fn run_commands<ES: EventStore<EsAccount>>(
    rt: &Runtime,
    cqrs: &CqrsFramework<EsAccount, ES>,
    commands: Vec<EsCommand>,
) -> Outcome {
    let mut outcome = Outcome::default();
    rt.block_on(async {
        for command in commands {
            let id = command.id().to_owned();
            match cqrs.execute(&id, command).await {
                Ok(()) => outcome.accepted += 1,
                Err(AggregateError::UserError(_)) => outcome.rejected += 1,
                Err(other) => panic!("{other}"),
            }
        }
    });
    outcome
}

/// W2, (c): `CqrsFramework::execute` over the persisted store (JSON, upcasters).
pub fn w2_persisted(rt: &Runtime, repo: MemRepo, commands: Vec<EsCommand>) -> (Outcome, MemRepo) {
    let cqrs = CqrsFramework::new(persisted_store(repo.clone()), vec![], ());
    (run_commands(rt, &cqrs, commands), repo)
}

/// W2, (c) with `MemStore`: typed events kept in memory, no JSON. `MemStore` prints two lines
/// per command to stdout; they go to `/dev/null` (see [`Quiet`]).
pub fn w2_memstore(
    rt: &Runtime,
    store: MemStore<EsAccount>,
    commands: Vec<EsCommand>,
) -> (Outcome, MemStore<EsAccount>) {
    let _quiet = Quiet::new();
    let cqrs = CqrsFramework::new(store.clone(), vec![], ());
    (run_commands(rt, &cqrs, commands), store)
}

/// The read model behind cqrs-es's `Query` trait (dispatched one event at a time by
/// `QueryReplay`).
#[derive(Clone, Default)]
pub struct PortfolioQuery(pub Arc<Mutex<Portfolio>>);

#[async_trait]
impl Query<EsAccount> for PortfolioQuery {
    async fn dispatch(&self, aggregate_id: &str, events: &[EventEnvelope<EsAccount>]) {
        let mut model = self.0.lock().unwrap();
        for event in events {
            match &event.payload {
                EsEvent::Opened(e) => model.opened(aggregate_id, &e.owner),
                EsEvent::Deposited(e) => model.deposited(aggregate_id, e.amount),
                EsEvent::Withdrawn(e) => model.withdrawn(aggregate_id, e.amount),
            }
        }
    }
}

/// W3, (c): `QueryReplay::replay_all` with the upcaster into a fresh read model.
pub fn w3(rt: &Runtime, repo: &MemRepo) -> Portfolio {
    let query = PortfolioQuery::default();
    let replay = QueryReplay::new(repo.clone(), query.clone()).with_upcasters(upcasters());
    rt.block_on(replay.replay_all()).expect("replays");
    drop(replay);
    std::mem::take(&mut *query.0.lock().unwrap())
}

/// W4, (c): `Aggregate::handle` with a fresh `EventSink` (which applies each event as it is
/// written), then the sink's events collected.
pub fn w4(commands: Vec<EsCommand>) -> (Outcome, EsAccount) {
    let mut state = EsAccount::default();
    let mut outcome = Outcome::default();
    for command in commands {
        let sink = EventSink::default();
        match crate::common::now(state.handle(command, &(), &sink)) {
            Ok(()) => {
                drop(crate::common::now(sink.collect()));
                outcome.accepted += 1;
            }
            Err(_) => outcome.rejected += 1,
        }
    }
    outcome.balance = state.0.balance;
    (outcome, state)
}

/// Points stdout at `/dev/null` while alive (`MemStore` prints on every load and commit).
pub struct Quiet(libc::c_int);

impl Quiet {
    pub fn new() -> Self {
        std::io::stdout().flush().ok();
        // SAFETY: plain descriptor calls on this process's own stdout.
        unsafe {
            let saved = libc::dup(1);
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
            libc::dup2(null, 1);
            libc::close(null);
            Quiet(saved)
        }
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        std::io::stdout().flush().ok();
        // SAFETY: restores the descriptor saved in `new`.
        unsafe {
            libc::dup2(self.0, 1);
            libc::close(self.0);
        }
    }
}
