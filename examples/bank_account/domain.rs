//! The bank-account domain of the CQRS literature, written with the cqrs-runtime DSL.
//! Shared by `examples/bank_account.rs` and the integration tests.

use std::fmt;

use cqrs_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// Amounts are whole cents.
pub type Cents = i64;

/// The largest single deposit accepted.
pub const MAX_DEPOSIT: Cents = 1_000_000;

/// Identifies one account; its `Display` form is the stream id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AccountId(pub String);

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---- commands -------------------------------------------------------------------------------

/// Opens a new account.
#[derive(Debug, Clone, Command)]
#[command(aggregate = BankAccount)]
pub struct OpenAccount {
    #[id]
    pub account: AccountId,
    pub owner: String,
    pub initial_balance: Cents,
}

/// Puts money in.
#[derive(Debug, Clone, Command)]
#[command(aggregate = BankAccount)]
pub struct Deposit {
    #[id]
    pub account: AccountId,
    pub amount: Cents,
}

/// Takes money out.
#[derive(Debug, Clone, Command)]
#[command(aggregate = BankAccount)]
pub struct Withdraw {
    #[id]
    pub account: AccountId,
    pub amount: Cents,
}

/// Closes the account.
#[derive(Debug, Clone, Command)]
#[command(aggregate = BankAccount)]
pub struct CloseAccount {
    #[id]
    pub account: AccountId,
}

// ---- events ---------------------------------------------------------------------------------

/// An account was opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "account_opened", version = 1)]
pub struct AccountOpened {
    pub owner: String,
    pub initial_balance: Cents,
}

/// Money was deposited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "money_deposited", version = 1)]
pub struct MoneyDeposited {
    pub amount: Cents,
    pub balance_after: Cents,
}

/// Money was withdrawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "money_withdrawn", version = 1)]
pub struct MoneyWithdrawn {
    pub amount: Cents,
    pub balance_after: Cents,
}

/// The account was closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "account_closed", version = 1)]
pub struct AccountClosed {}

/// Every event of an account's stream.
#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum AccountEvent {
    Opened(AccountOpened),
    Deposited(MoneyDeposited),
    Withdrawn(MoneyWithdrawn),
    Closed(AccountClosed),
}

// ---- the aggregate --------------------------------------------------------------------------

/// Why a command was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("the initial balance must not be negative (got {0})")]
    NegativeInitialBalance(Cents),
    #[error("a deposit must be positive (got {0})")]
    NonPositiveDeposit(Cents),
    #[error("a single deposit is at most {MAX_DEPOSIT} (got {0})")]
    DepositTooLarge(Cents),
    #[error("a withdrawal must be positive (got {0})")]
    NonPositiveWithdrawal(Cents),
    #[error("insufficient funds: balance {balance}, requested {requested}")]
    InsufficientFunds { balance: Cents, requested: Cents },
    #[error("the account is closed")]
    Closed,
    #[error("the balance must be zero to close the account (it is {0})")]
    BalanceNotZero(Cents),
}

/// The state of one account, as far as decisions need it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BankAccount {
    pub owner: String,
    pub balance: Cents,
    pub closed: bool,
}

#[aggregate(name = "account", id = AccountId, events = AccountEvent, error = AccountError)]
impl BankAccount {
    #[command(create)]
    fn open(&self, cmd: OpenAccount) -> Result<AccountOpened, AccountError> {
        if cmd.initial_balance < 0 {
            return Err(AccountError::NegativeInitialBalance(cmd.initial_balance));
        }
        Ok(AccountOpened {
            owner: cmd.owner,
            initial_balance: cmd.initial_balance,
        })
    }

    #[command]
    fn deposit(&self, cmd: Deposit) -> Result<MoneyDeposited, AccountError> {
        self.ensure_open()?;
        if cmd.amount <= 0 {
            return Err(AccountError::NonPositiveDeposit(cmd.amount));
        }
        if cmd.amount > MAX_DEPOSIT {
            return Err(AccountError::DepositTooLarge(cmd.amount));
        }
        Ok(MoneyDeposited {
            amount: cmd.amount,
            balance_after: self.balance + cmd.amount,
        })
    }

    #[command]
    fn withdraw(&self, cmd: Withdraw) -> Result<MoneyWithdrawn, AccountError> {
        self.ensure_open()?;
        if cmd.amount <= 0 {
            return Err(AccountError::NonPositiveWithdrawal(cmd.amount));
        }
        if cmd.amount > self.balance {
            return Err(AccountError::InsufficientFunds {
                balance: self.balance,
                requested: cmd.amount,
            });
        }
        Ok(MoneyWithdrawn {
            amount: cmd.amount,
            balance_after: self.balance - cmd.amount,
        })
    }

    #[command]
    fn close(&self, _cmd: CloseAccount) -> Result<Option<AccountClosed>, AccountError> {
        if self.closed {
            return Ok(None); // closing twice is a no-op, not an error
        }
        if self.balance != 0 {
            return Err(AccountError::BalanceNotZero(self.balance));
        }
        Ok(Some(AccountClosed {}))
    }

    #[apply]
    fn opened(&mut self, e: &AccountOpened) {
        self.owner = e.owner.clone();
        self.balance = e.initial_balance;
    }

    #[apply]
    fn deposited(&mut self, e: &MoneyDeposited) {
        self.balance = e.balance_after;
    }

    #[apply]
    fn withdrawn(&mut self, e: &MoneyWithdrawn) {
        self.balance = e.balance_after;
    }

    #[apply]
    fn closed(&mut self, _e: &AccountClosed) {
        self.closed = true;
    }

    fn ensure_open(&self) -> Result<(), AccountError> {
        if self.closed {
            Err(AccountError::Closed)
        } else {
            Ok(())
        }
    }
}
