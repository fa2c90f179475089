//! W1–W4 for (a) this project's macros and runtime and (b) the hand-written floor.
//!
//! (a) goes through the public API a user calls: `Repository::load`/`execute` and the generated
//! `EventEnum::decode`/`Aggregate::apply`/`Aggregate::handle`. (b) uses the same
//! `InMemoryEventStore` through the `EventStore` trait (the store is infrastructure either way;
//! what differs is the code generated or written around it), with the same event ids (UUIDv7),
//! metadata (correlation and causation ids) and expected-version appends the repository writes.

use std::collections::HashMap;

use cqrs_runtime::prelude::*;
use cqrs_runtime::projection::EventMeta;
use cqrs_runtime::store::{Cursor, NewEvent, StoredEvent};
use tokio::runtime::Runtime;
use uuid::Uuid;

use super::data::{Logical, Outcome, Step, stream_id};
use super::domain::{
    Account, AccountCommand, AccountEvent, Deposit, Deposited, Open, Opened, Withdraw, Withdrawn,
};
use super::hand;

/// The stream type every contender stores (the aggregate's `name`).
pub const TYPE: &str = "account";

/// The generated command enum's value for a script step.
pub fn command(step: Step) -> AccountCommand {
    match step {
        Step::Open(a) => Open {
            id: stream_id(a),
            owner: format!("owner-{a}"),
        }
        .into(),
        Step::Deposit(a, amount) => Deposit {
            id: stream_id(a),
            amount,
        }
        .into(),
        Step::Withdraw(a, amount) => Withdraw {
            id: stream_id(a),
            amount,
        }
        .into(),
    }
}

/// Appends `events` (stream number, event) to a fresh in-memory store, one append each.
pub fn store_with<'a>(
    rt: &Runtime,
    events: impl IntoIterator<Item = (usize, &'a Logical)>,
) -> InMemoryEventStore {
    let store = InMemoryEventStore::new();
    rt.block_on(async {
        for (stream, event) in events {
            let (name, version, payload) = event.wire();
            let new = NewEvent::new(name, version, payload, Metadata::new());
            store
                .append(TYPE, &stream_id(stream), ExpectedVersion::Any, vec![new])
                .await
                .expect("append");
        }
    });
    store
}

// ---- W1: rehydrate one aggregate -------------------------------------------------------------

/// W1 core, (a): the generated decoder and `apply` over stored events already in memory.
pub fn w1_core_generated(events: &[StoredEvent]) -> Account {
    let mut state = Account::default();
    for stored in events {
        AccountEvent::decode(&stored.event_type, stored.event_version, &stored.payload)
            .expect("decodes")
            .for_each(|event| state.apply(&event));
    }
    state
}

/// W1 core, (b).
pub fn w1_core_hand(events: &[StoredEvent]) -> Account {
    let mut state = Account::default();
    for stored in events {
        let event = hand::decode(&stored.event_type, stored.event_version, &stored.payload)
            .expect("decodes");
        hand::apply(&mut state, &event);
    }
    state
}

/// W1 load, (a): `Repository::load` (read the stream from the store, decode, apply).
pub fn w1_load_generated(
    rt: &Runtime,
    repo: &Repository<Account, InMemoryEventStore>,
    id: &String,
) -> Account {
    rt.block_on(repo.load(id)).expect("loads").state
}

/// W1 load, (b): `read_stream` from the same store, then the hand-written decoder.
pub fn w1_load_hand(rt: &Runtime, store: &InMemoryEventStore, id: &str) -> Account {
    // The store's borrowing replay, as `Repository::load` uses.
    let mut state = Account::default();
    rt.block_on(store.replay_stream(TYPE, id, 1, |e| {
        let event = hand::decode(e.event_type, e.event_version, e.payload).expect("decodes");
        hand::apply(&mut state, &event);
        true
    }))
    .expect("reads");
    state
}

// ---- W2: commands on the in-memory store (load, decide, append) ------------------------------

/// W2, (a): `Repository::execute` for every command.
pub fn w2_generated(
    rt: &Runtime,
    store: InMemoryEventStore,
    commands: Vec<AccountCommand>,
) -> (Outcome, InMemoryEventStore) {
    let repo = Repository::<Account, _>::new(store);
    let mut outcome = Outcome::default();
    rt.block_on(async {
        for command in commands {
            match repo.execute(command).await {
                Ok(committed) => {
                    outcome.accepted += 1;
                    outcome.balance += committed.state.balance;
                }
                Err(CommandError::Rejected(_)) => outcome.rejected += 1,
                Err(other) => panic!("{other}"),
            }
        }
    });
    (outcome, repo.store().clone())
}

/// W2, (b): replay the stream (the store's borrowing read), fold it with the hand-written decoder, check the creation rule,
/// decide, encode, append at the expected version with a fresh event id and the command's
/// correlation and causation ids, apply.
pub fn w2_hand(
    rt: &Runtime,
    store: InMemoryEventStore,
    commands: Vec<hand::Command>,
) -> (Outcome, InMemoryEventStore) {
    let mut outcome = Outcome::default();
    rt.block_on(async {
        for command in commands {
            let id = command.id().to_owned();
            // The store's borrowing replay, as the repository uses: what a careful hand-writer
            // would call too.
            let mut state = Account::default();
            let mut version = 0;
            store
                .replay_stream(TYPE, &id, 1, |e| {
                    let event =
                        hand::decode(e.event_type, e.event_version, e.payload).expect("decodes");
                    hand::apply(&mut state, &event);
                    version = e.stream_version;
                    true
                })
                .await
                .expect("reads");
            assert_eq!(command.creates(), version == 0, "creation rule");
            let event = match hand::decide(&state, command) {
                Ok(event) => event,
                Err(_) => {
                    outcome.rejected += 1;
                    continue;
                }
            };
            let (name, event_version, payload) = hand::encode(&event).expect("encodes");
            let command_id = Uuid::now_v7();
            let metadata = Metadata {
                correlation_id: command_id,
                causation_id: Some(command_id),
                user: Default::default(),
                trace: None,
            };
            let new = NewEvent::new(name, event_version, payload, metadata);
            store
                .append(TYPE, &id, ExpectedVersion::from_version(version), vec![new])
                .await
                .expect("appends");
            hand::apply(&mut state, &event);
            outcome.accepted += 1;
            outcome.balance += state.balance;
        }
    });
    (outcome, store)
}

// ---- W3: rebuild a read model from the global log --------------------------------------------

/// The read model: one row per account and totals. (a) is this struct as a `#[projection]`,
/// rebuilt by the `ProjectionRunner`; (b) folds into it by hand.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Portfolio {
    pub accounts: HashMap<String, Row>,
    pub total: i64,
    pub events: u64,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Row {
    pub owner: String,
    pub balance: i64,
    pub deposits: u64,
}

impl Portfolio {
    pub fn opened(&mut self, stream_id: &str, owner: &str) {
        self.events += 1;
        self.accounts.insert(
            stream_id.to_owned(),
            Row {
                owner: owner.to_owned(),
                ..Row::default()
            },
        );
    }

    pub fn deposited(&mut self, stream_id: &str, amount: i64) {
        self.events += 1;
        self.total += amount;
        if let Some(row) = self.accounts.get_mut(stream_id) {
            row.balance += amount;
            row.deposits += 1;
        }
    }

    pub fn withdrawn(&mut self, stream_id: &str, amount: i64) {
        self.events += 1;
        self.total -= amount;
        if let Some(row) = self.accounts.get_mut(stream_id) {
            row.balance -= amount;
        }
    }
}

/// Batch size of the catch-up reads of W3 (both (a) and (b)).
pub const BATCH: usize = 1_000;

#[projection(name = "w3_portfolio", events = AccountEvent)]
impl Portfolio {
    #[on]
    fn on_opened(&mut self, e: &Opened, meta: &EventMeta<'_>) {
        self.opened(meta.stream_id, &e.owner);
    }

    #[on]
    fn on_deposited(&mut self, e: &Deposited, meta: &EventMeta<'_>) {
        self.deposited(meta.stream_id, e.amount);
    }

    #[on]
    fn on_withdrawn(&mut self, e: &Withdrawn, meta: &EventMeta<'_>) {
        self.withdrawn(meta.stream_id, e.amount);
    }
}

/// W3, (a): the `#[projection]` above, rebuilt by a `ProjectionRunner` (pages of `BATCH` from
/// the global log, generated decoding and dispatch, checkpoint per page, lease) into an
/// `InMemoryReadModel`; the copy out at the end (1,000 rows) is part of the count.
pub fn w3_generated(rt: &Runtime, store: &InMemoryEventStore) -> Portfolio {
    let model = InMemoryReadModel::<Portfolio>::new();
    let runner = ProjectionRunner::new(store.clone(), model.clone()).batch_size(BATCH);
    rt.block_on(runner.rebuild()).expect("rebuilds");
    model.snapshot()
}

/// W3, (b): the same reads, the hand-written decoder, the same fold.
pub fn w3_hand(rt: &Runtime, store: &InMemoryEventStore) -> Portfolio {
    let mut model = Portfolio::default();
    rt.block_on(async {
        let mut after = Cursor::START;
        loop {
            let batch = store.read_after(after, BATCH).await.expect("reads");
            let Some((last, _)) = batch.last() else { break };
            after = *last;
            for (_, stored) in &batch {
                match hand::decode(&stored.event_type, stored.event_version, &stored.payload)
                    .expect("decodes")
                {
                    hand::Event::Opened(e) => model.opened(&stored.stream_id, &e.owner),
                    hand::Event::Deposited(e) => model.deposited(&stored.stream_id, e.amount),
                    hand::Event::Withdrawn(e) => model.withdrawn(&stored.stream_id, e.amount),
                }
            }
        }
    });
    model
}

// ---- W4: decide and apply alone ---------------------------------------------------------------

/// W4, (a): the generated `Aggregate::handle` (command enum dispatch, handler, conversion of
/// its output into `Vec<Event>`) then `Aggregate::apply` of each event. No store, no JSON.
pub fn w4_generated(commands: Vec<AccountCommand>) -> (Outcome, Account) {
    let mut state = Account::default();
    let mut outcome = Outcome::default();
    for command in commands {
        match super::now(state.handle(command, &())) {
            Ok(events) => {
                for event in &events {
                    state.apply(event);
                }
                outcome.accepted += 1;
            }
            Err(_) => outcome.rejected += 1,
        }
    }
    outcome.balance = state.balance;
    (outcome, state)
}

/// W4, (b): a `match` that returns the one event, and a `match` that applies it.
pub fn w4_hand(commands: Vec<hand::Command>) -> (Outcome, Account) {
    let mut state = Account::default();
    let mut outcome = Outcome::default();
    for command in commands {
        match hand::decide(&state, command) {
            Ok(event) => {
                hand::apply(&mut state, &event);
                outcome.accepted += 1;
            }
            Err(_) => outcome.rejected += 1,
        }
    }
    outcome.balance = state.balance;
    (outcome, state)
}
