//! (a) The account aggregate written with this project's macros. The event and command structs
//! and the state are shared with the hand-written contender (plain serde structs underneath), so
//! the contenders differ only in the code around them: codec, dispatch, store access.

use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "bench_opened", version = 1)]
pub struct Opened {
    pub owner: String,
}

/// The old version: half of every stored stream, upcast on each read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "bench_deposited", version = 1)]
pub struct DepositedV1 {
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "bench_deposited", version = 2, upcast_from = DepositedV1)]
pub struct Deposited {
    pub amount: i64,
    pub currency: String,
}

impl From<DepositedV1> for Deposited {
    fn from(v1: DepositedV1) -> Self {
        Deposited {
            amount: v1.amount,
            currency: "EUR".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "bench_withdrawn", version = 1)]
pub struct Withdrawn {
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum AccountEvent {
    Opened(Opened),
    Deposited(Deposited),
    Withdrawn(Withdrawn),
}

#[derive(Debug, Clone, Command)]
#[command(aggregate = Account)]
pub struct Open {
    #[id]
    pub id: String,
    pub owner: String,
}

#[derive(Debug, Clone, Command)]
#[command(aggregate = Account)]
pub struct Deposit {
    #[id]
    pub id: String,
    pub amount: i64,
}

#[derive(Debug, Clone, Command)]
#[command(aggregate = Account)]
pub struct Withdraw {
    #[id]
    pub id: String,
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AccountError {
    #[error("deposit of {0} is not positive")]
    NonPositive(i64),
    #[error("balance {balance} is below {requested}")]
    Insufficient { balance: i64, requested: i64 },
    /// A creation rule that cqrs-es leaves to the handler (this project checks it in the
    /// repository, from `#[command(create)]`); the scripts never break it.
    #[error("{0}")]
    Policy(&'static str),
}

/// The state. `Serialize`/`Deserialize` only because cqrs-es requires them of its aggregates
/// (its wrapper in the comparison crate holds one of these).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub owner: String,
    pub balance: i64,
    pub deposits: u64,
}

impl Account {
    /// The one decision rule, shared by every contender so that they decide the same.
    #[inline]
    pub fn check_deposit(amount: i64) -> Result<(), AccountError> {
        if amount <= 0 {
            return Err(AccountError::NonPositive(amount));
        }
        Ok(())
    }

    #[inline]
    pub fn check_withdraw(&self, amount: i64) -> Result<(), AccountError> {
        if amount > self.balance {
            return Err(AccountError::Insufficient {
                balance: self.balance,
                requested: amount,
            });
        }
        Ok(())
    }
}

// Generates `AccountCommand`, the command enum.
#[aggregate(name = "account", id = String, events = AccountEvent, error = AccountError)]
impl Account {
    #[command(create)]
    fn open(&self, cmd: Open) -> Result<Opened, AccountError> {
        Ok(Opened { owner: cmd.owner })
    }

    #[command]
    fn deposit(&self, cmd: Deposit) -> Result<Deposited, AccountError> {
        Account::check_deposit(cmd.amount)?;
        Ok(Deposited {
            amount: cmd.amount,
            currency: "EUR".into(),
        })
    }

    #[command]
    fn withdraw(&self, cmd: Withdraw) -> Result<Withdrawn, AccountError> {
        self.check_withdraw(cmd.amount)?;
        Ok(Withdrawn { amount: cmd.amount })
    }

    #[apply]
    fn opened(&mut self, e: &Opened) {
        self.owner.clone_from(&e.owner);
    }

    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
        self.deposits += 1;
    }

    #[apply]
    fn withdrawn(&mut self, e: &Withdrawn) {
        self.balance -= e.amount;
    }
}
