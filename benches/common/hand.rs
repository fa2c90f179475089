//! (b) The hand-written floor, no framework: a plain event enum, a `match` on (name, version)
//! with `serde_json::from_slice` straight into the typed structs and `From` for the upcast, a
//! plain command enum, and a decision that returns the one event it makes.

use super::data::{Step, stream_id};
use super::domain::{
    Account, AccountError, Deposit, Deposited, DepositedV1, Open, Opened, Withdraw, Withdrawn,
};

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Opened(Opened),
    Deposited(Deposited),
    Withdrawn(Withdrawn),
}

#[derive(Debug, Clone)]
pub enum Command {
    Open(Open),
    Deposit(Deposit),
    Withdraw(Withdraw),
}

impl Command {
    pub fn from_step(step: Step) -> Self {
        match step {
            Step::Open(a) => Command::Open(Open {
                id: stream_id(a),
                owner: format!("owner-{a}"),
            }),
            Step::Deposit(a, amount) => Command::Deposit(Deposit {
                id: stream_id(a),
                amount,
            }),
            Step::Withdraw(a, amount) => Command::Withdraw(Withdraw {
                id: stream_id(a),
                amount,
            }),
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Command::Open(c) => &c.id,
            Command::Deposit(c) => &c.id,
            Command::Withdraw(c) => &c.id,
        }
    }

    /// Whether the command creates its stream (else it needs an existing one).
    pub fn creates(&self) -> bool {
        matches!(self, Command::Open(_))
    }
}

pub fn decode(name: &str, version: u32, payload: &[u8]) -> Result<Event, serde_json::Error> {
    Ok(match (name, version) {
        ("bench_opened", 1) => Event::Opened(serde_json::from_slice(payload)?),
        ("bench_deposited", 1) => {
            Event::Deposited(serde_json::from_slice::<DepositedV1>(payload)?.into())
        }
        ("bench_deposited", 2) => Event::Deposited(serde_json::from_slice(payload)?),
        ("bench_withdrawn", 1) => Event::Withdrawn(serde_json::from_slice(payload)?),
        _ => return Err(serde::de::Error::custom("unknown event")),
    })
}

pub fn encode(event: &Event) -> Result<(&'static str, u32, Vec<u8>), serde_json::Error> {
    Ok(match event {
        Event::Opened(e) => ("bench_opened", 1, serde_json::to_vec(e)?),
        Event::Deposited(e) => ("bench_deposited", 2, serde_json::to_vec(e)?),
        Event::Withdrawn(e) => ("bench_withdrawn", 1, serde_json::to_vec(e)?),
    })
}

pub fn apply(state: &mut Account, event: &Event) {
    match event {
        Event::Opened(e) => state.owner.clone_from(&e.owner),
        Event::Deposited(e) => {
            state.balance += e.amount;
            state.deposits += 1;
        }
        Event::Withdrawn(e) => state.balance -= e.amount,
    }
}

pub fn decide(state: &Account, command: Command) -> Result<Event, AccountError> {
    match command {
        Command::Open(c) => Ok(Event::Opened(Opened { owner: c.owner })),
        Command::Deposit(c) => {
            Account::check_deposit(c.amount)?;
            Ok(Event::Deposited(Deposited {
                amount: c.amount,
                currency: "EUR".into(),
            }))
        }
        Command::Withdraw(c) => {
            state.check_withdraw(c.amount)?;
            Ok(Event::Withdrawn(Withdrawn { amount: c.amount }))
        }
    }
}
