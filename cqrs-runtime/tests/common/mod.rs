//! A small hand-written domain (what the macros will generate, written out by hand).
#![allow(dead_code)]

use std::fmt;

use cqrs_runtime::aggregate::{Aggregate, Apply, Command, CreationPolicy, Events};
use cqrs_runtime::event::{
    DecodeError, Decoded, EncodedEvent, Event, EventEnum, EventOf, EventSchema, FieldSchema,
};
use cqrs_runtime::memory::InMemoryEventStore;
use cqrs_runtime::repository::Repository;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------- ids and events

/// The account id; its `Display` form is the stream id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountId(pub String);

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn id(s: &str) -> AccountId {
    AccountId(s.to_owned())
}

macro_rules! event {
    ($ty:ident, $name:literal, $version:literal, [$($field:literal: $fty:literal),*]) => {
        impl Event for $ty {
            const NAME: &'static str = $name;
            const VERSION: u32 = $version;
            const SCHEMA: EventSchema = EventSchema {
                name: $name,
                version: $version,
                rust_type: stringify!($ty),
                fields: &[$(FieldSchema { name: $field, ty: $fty }),*],
                fingerprint: 0,
            };
        }
    };
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountOpened {
    pub owner: String,
}
event!(AccountOpened, "account_opened", 1, ["owner": "String"]);

/// The frozen first version of `money_deposited`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoneyDepositedV1 {
    pub amt: String,
}

/// The current version of `money_deposited`, upcast from v1 by hand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoneyDeposited {
    pub amount: u64,
}

impl Event for MoneyDeposited {
    const NAME: &'static str = "money_deposited";
    const VERSION: u32 = 2;
    const SCHEMA: EventSchema = EventSchema {
        name: "money_deposited",
        version: 2,
        rust_type: "MoneyDeposited",
        fields: &[FieldSchema {
            name: "amount",
            ty: "u64",
        }],
        fingerprint: 0,
    };

    fn decode_stored(_name: &str, version: u32, payload: &[u8]) -> Result<Self, DecodeError> {
        let corrupt = |source| DecodeError::CorruptPayload {
            name: Self::NAME.to_owned(),
            version,
            source,
        };
        match version {
            1 => {
                let v1: MoneyDepositedV1 = serde_json::from_slice(payload).map_err(corrupt)?;
                let amount = v1.amt.parse().map_err(|e| {
                    corrupt(<serde_json::Error as serde::de::Error>::custom(
                        format_args!("amt: {e}"),
                    ))
                })?;
                Ok(Self { amount })
            }
            2 => serde_json::from_slice(payload).map_err(corrupt),
            _ => Err(DecodeError::UnknownVersion {
                name: Self::NAME.to_owned(),
                version,
                known: Self::VERSION,
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoneyWithdrawn {
    pub amount: u64,
}
event!(MoneyWithdrawn, "money_withdrawn", 1, ["amount": "u64"]);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountClosed {}
event!(AccountClosed, "account_closed", 1, []);

#[derive(Debug, Clone, PartialEq)]
pub enum AccountEvent {
    Opened(AccountOpened),
    Deposited(MoneyDeposited),
    Withdrawn(MoneyWithdrawn),
    Closed(AccountClosed),
}

pub(crate) fn encode<T: Event>(event: &T) -> Result<EncodedEvent, serde_json::Error> {
    Ok(EncodedEvent {
        name: T::NAME,
        version: T::VERSION,
        payload: serde_json::to_vec(event)?,
    })
}

impl EventEnum for AccountEvent {
    const NAMES: &'static [&'static str] = &[
        AccountOpened::NAME,
        MoneyDeposited::NAME,
        MoneyWithdrawn::NAME,
        AccountClosed::NAME,
    ];

    fn event_name(&self) -> &'static str {
        match self {
            Self::Opened(_) => AccountOpened::NAME,
            Self::Deposited(_) => MoneyDeposited::NAME,
            Self::Withdrawn(_) => MoneyWithdrawn::NAME,
            Self::Closed(_) => AccountClosed::NAME,
        }
    }

    fn event_version(&self) -> u32 {
        match self {
            Self::Opened(_) => AccountOpened::VERSION,
            Self::Deposited(_) => MoneyDeposited::VERSION,
            Self::Withdrawn(_) => MoneyWithdrawn::VERSION,
            Self::Closed(_) => AccountClosed::VERSION,
        }
    }

    fn event_any(&self) -> &dyn std::any::Any {
        match self {
            Self::Opened(e) => e,
            Self::Deposited(e) => e,
            Self::Withdrawn(e) => e,
            Self::Closed(e) => e,
        }
    }

    fn encode(&self) -> Result<EncodedEvent, serde_json::Error> {
        match self {
            Self::Opened(e) => encode(e),
            Self::Deposited(e) => encode(e),
            Self::Withdrawn(e) => encode(e),
            Self::Closed(e) => encode(e),
        }
    }

    fn decode(name: &str, version: u32, payload: &[u8]) -> Result<Decoded<Self>, DecodeError> {
        match name {
            AccountOpened::NAME => AccountOpened::decode_stored(name, version, payload)
                .map(|e| Decoded::One(Self::Opened(e))),
            MoneyDeposited::NAME => MoneyDeposited::decode_stored(name, version, payload)
                .map(|e| Decoded::One(Self::Deposited(e))),
            MoneyWithdrawn::NAME => MoneyWithdrawn::decode_stored(name, version, payload)
                .map(|e| Decoded::One(Self::Withdrawn(e))),
            AccountClosed::NAME => AccountClosed::decode_stored(name, version, payload)
                .map(|e| Decoded::One(Self::Closed(e))),
            other => Err(DecodeError::UnknownEventType {
                name: other.to_owned(),
            }),
        }
    }

    fn schema() -> &'static [EventSchema] {
        const SCHEMA: &[EventSchema] = &[
            AccountOpened::SCHEMA,
            MoneyDeposited::SCHEMA,
            MoneyWithdrawn::SCHEMA,
            AccountClosed::SCHEMA,
        ];
        SCHEMA
    }
}

macro_rules! event_of {
    ($enum:ident :: $variant:ident($ty:ty)) => {
        impl EventOf<$enum> for $ty {
            fn into_enum(self) -> $enum {
                $enum::$variant(self)
            }
            fn from_enum(event: &$enum) -> Option<&Self> {
                match event {
                    $enum::$variant(e) => Some(e),
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }
        }
        impl From<$ty> for $enum {
            fn from(event: $ty) -> Self {
                $enum::$variant(event)
            }
        }
    };
}
event_of!(AccountEvent::Opened(AccountOpened));
event_of!(AccountEvent::Deposited(MoneyDeposited));
event_of!(AccountEvent::Withdrawn(MoneyWithdrawn));
event_of!(AccountEvent::Closed(AccountClosed));

pub fn opened(owner: &str) -> AccountEvent {
    AccountOpened {
        owner: owner.to_owned(),
    }
    .into()
}

pub fn deposited(amount: u64) -> AccountEvent {
    MoneyDeposited { amount }.into()
}

pub fn withdrawn(amount: u64) -> AccountEvent {
    MoneyWithdrawn { amount }.into()
}

// ---------------------------------------------------------------- the aggregate

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Account {
    pub owner: Option<String>,
    pub balance: u64,
    pub closed: bool,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AccountError {
    #[error("insufficient funds: balance {balance}, requested {requested}")]
    InsufficientFunds { balance: u64, requested: u64 },
    #[error("account is closed")]
    Closed,
    #[error("deposit of {amount} exceeds the limit of {limit}")]
    OverLimit { amount: u64, limit: u64 },
}

/// Services handed to handlers.
#[derive(Debug, Default)]
pub struct AccountServices {
    pub deposit_limit: Option<u64>,
}

impl Apply<AccountOpened> for Account {
    fn apply_event(&mut self, event: &AccountOpened) {
        self.owner = Some(event.owner.clone());
    }
}
impl Apply<MoneyDeposited> for Account {
    fn apply_event(&mut self, event: &MoneyDeposited) {
        self.balance += event.amount;
    }
}
impl Apply<MoneyWithdrawn> for Account {
    fn apply_event(&mut self, event: &MoneyWithdrawn) {
        self.balance -= event.amount;
    }
}
impl Apply<AccountClosed> for Account {
    fn apply_event(&mut self, _: &AccountClosed) {
        self.closed = true;
    }
}

macro_rules! commands {
    ($enum:ident for $agg:ty { $($variant:ident($ty:ident) = $policy:ident),* $(,)? }) => {
        #[derive(Debug, Clone)]
        pub enum $enum { $($variant($ty)),* }
        $(impl From<$ty> for $enum {
            fn from(cmd: $ty) -> Self { $enum::$variant(cmd) }
        })*
        impl Command for $enum {
            type Aggregate = $agg;
            fn command_name(&self) -> &'static str {
                match self { $($enum::$variant(_) => stringify!($ty)),* }
            }
            fn aggregate_id(&self) -> &AccountId {
                match self { $($enum::$variant(cmd) => &cmd.id),* }
            }
        }
        impl $enum {
            fn policy(&self) -> CreationPolicy {
                match self { $($enum::$variant(_) => CreationPolicy::$policy),* }
            }
        }
    };
}

#[derive(Debug, Clone)]
pub struct OpenAccount {
    pub id: AccountId,
    pub owner: String,
}
/// Creates the account and deposits in one command (two events).
#[derive(Debug, Clone)]
pub struct OpenWithDeposit {
    pub id: AccountId,
    pub owner: String,
    pub initial: u64,
}
#[derive(Debug, Clone)]
pub struct Deposit {
    pub id: AccountId,
    pub amount: u64,
}
#[derive(Debug, Clone)]
pub struct Withdraw {
    pub id: AccountId,
    pub amount: u64,
}
#[derive(Debug, Clone)]
pub struct Close {
    pub id: AccountId,
}
/// Policy `any`; never emits.
#[derive(Debug, Clone)]
pub struct Ping {
    pub id: AccountId,
}
/// A deposit whose handler really awaits (returns `Pending` once).
#[derive(Debug, Clone)]
pub struct AuditedDeposit {
    pub id: AccountId,
    pub amount: u64,
}

commands!(AccountCommand for Account {
    Open(OpenAccount) = Create,
    OpenWithDeposit(OpenWithDeposit) = Create,
    Deposit(Deposit) = Existing,
    Withdraw(Withdraw) = Existing,
    Close(Close) = Existing,
    Ping(Ping) = Any,
    AuditedDeposit(AuditedDeposit) = Existing,
});

impl Account {
    fn deposit(
        &self,
        amount: u64,
        services: &AccountServices,
    ) -> Result<Vec<AccountEvent>, AccountError> {
        if self.closed {
            return Err(AccountError::Closed);
        }
        if let Some(limit) = services.deposit_limit.filter(|&limit| amount > limit) {
            return Err(AccountError::OverLimit { amount, limit });
        }
        Ok(vec![deposited(amount)])
    }
}

impl Aggregate for Account {
    const TYPE: &'static str = "account";
    type Id = AccountId;
    type Event = AccountEvent;
    type Command = AccountCommand;
    type Error = AccountError;
    type Services = AccountServices;

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened(e) => self.apply_event(e),
            AccountEvent::Deposited(e) => self.apply_event(e),
            AccountEvent::Withdrawn(e) => self.apply_event(e),
            AccountEvent::Closed(e) => self.apply_event(e),
        }
    }

    async fn handle(
        &self,
        command: AccountCommand,
        services: &AccountServices,
    ) -> Result<Events<AccountEvent>, AccountError> {
        let decided: Result<Vec<AccountEvent>, AccountError> = match command {
            AccountCommand::Open(cmd) => Ok(vec![opened(&cmd.owner)]),
            AccountCommand::OpenWithDeposit(cmd) => {
                Ok(vec![opened(&cmd.owner), deposited(cmd.initial)])
            }
            AccountCommand::Deposit(cmd) => self.deposit(cmd.amount, services),
            AccountCommand::AuditedDeposit(cmd) => {
                tokio::task::yield_now().await;
                self.deposit(cmd.amount, services)
            }
            AccountCommand::Withdraw(cmd) => {
                if self.closed {
                    Err(AccountError::Closed)
                } else if cmd.amount > self.balance {
                    Err(AccountError::InsufficientFunds {
                        balance: self.balance,
                        requested: cmd.amount,
                    })
                } else {
                    Ok(vec![withdrawn(cmd.amount)])
                }
            }
            AccountCommand::Close(_) if self.closed => Ok(vec![]),
            AccountCommand::Close(_) => Ok(vec![AccountClosed {}.into()]),
            AccountCommand::Ping(_) => Ok(vec![]),
        };
        decided.map(Events::Many)
    }

    fn creation_policy(command: &AccountCommand) -> CreationPolicy {
        command.policy()
    }
}

// ---------------------------------------------------------------- repository helpers

pub type Repo = Repository<Account, InMemoryEventStore>;

pub fn repo() -> Repo {
    Repository::new(InMemoryEventStore::new())
}

pub async fn open(repo: &Repo, account: &str) {
    repo.execute(OpenAccount {
        id: id(account),
        owner: "ada".into(),
    })
    .await
    .unwrap();
}

mod sneaky;
#[allow(unused_imports)] // not every test crate uses it
pub use sneaky::*;
