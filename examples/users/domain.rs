//! Users with unique emails: the email is claimed in the scope `user_email` by the event that
//! registers a user, and moved by the event that changes it. Shared by `examples/users.rs` and
//! the integration tests.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use cqrs_runtime::claims::{ClaimView, Scope as _};
use cqrs_runtime::prelude::*;
use cqrs_runtime::store::{ClaimHolder, ClaimStore, StoreError};
use serde::{Deserialize, Serialize};

/// Emails, one account each, compared without surrounding spaces and case.
#[derive(Scope)]
#[scope(name = "user_email", normalize = "trim_lowercase")]
pub struct UserEmail;

// ---- commands -------------------------------------------------------------------------------

/// Registers a new user.
#[derive(Debug, Clone, Command)]
#[command(aggregate = User)]
pub struct Register {
    #[id]
    pub user: String,
    pub name: String,
    pub email: String,
}

/// Changes a user's email.
#[derive(Debug, Clone, Command)]
#[command(aggregate = User)]
pub struct ChangeEmail {
    #[id]
    pub user: String,
    pub email: String,
}

// ---- events ---------------------------------------------------------------------------------

/// A user registered: the email is theirs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "user_registered", version = 1)]
pub struct UserRegistered {
    pub name: String,
    #[claim(UserEmail)]
    pub email: String,
}

/// A user's email changed: the old one is free for others, the new one is theirs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "user_email_changed", version = 1)]
pub struct EmailChanged {
    #[release(UserEmail)]
    pub old_email: String,
    #[claim(UserEmail)]
    pub new_email: String,
}

/// Every event of a user's stream.
#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum UserEvent {
    Registered(UserRegistered),
    EmailChanged(EmailChanged),
}

// ---- what handlers ask ----------------------------------------------------------------------

/// A boxed answer of [`EmailOwners::owner`].
pub type OwnerLookup<'a> =
    Pin<Box<dyn Future<Output = Result<Option<ClaimHolder>, StoreError>> + Send + 'a>>;

/// Who holds an email: a [`ClaimView`] of any store, behind one type.
pub trait EmailOwners: Send + Sync {
    /// The holder of `email` (normalized as the scope says), if any.
    fn owner<'a>(&'a self, email: &'a str) -> OwnerLookup<'a>;
}

impl<S: ClaimStore> EmailOwners for ClaimView<S> {
    fn owner<'a>(&'a self, email: &'a str) -> OwnerLookup<'a> {
        Box::pin(self.holder::<UserEmail, str>(email))
    }
}

/// The users' services: the emails' owners, as the store's claims say.
pub struct Emails(Arc<dyn EmailOwners>);

impl Emails {
    /// The emails of `store`.
    pub fn of<S: ClaimStore>(store: S) -> Self {
        Self(Arc::new(ClaimView::new(store)))
    }

    /// Rejects `email` if a user other than `user` holds it.
    async fn check(&self, email: &str, user: &str) -> Result<(), UserError> {
        match self.0.owner(email).await {
            Ok(Some(holder)) if holder.stream_id != user => Err(UserError::EmailTaken {
                email: UserEmail::normalize(email).into_owned(),
                holder: holder.stream_id,
            }),
            Ok(_) => Ok(()),
            Err(e) => Err(UserError::Lookup(e.to_string())),
        }
    }
}

// ---- the aggregate --------------------------------------------------------------------------

/// Why a command was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("the email {email} is taken by user {holder}")]
    EmailTaken { email: String, holder: String },
    #[error("the email {0} is not an address")]
    NotAnEmail(String),
    #[error("the email lookup failed: {0}")]
    Lookup(String),
}

/// A user, as far as decisions need it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct User {
    pub name: String,
    pub email: String,
}

#[aggregate(name = "user", id = String, events = UserEvent, error = UserError, services = Emails)]
impl User {
    #[command(create)]
    async fn register(&self, cmd: Register, emails: &Emails) -> Result<UserRegistered, UserError> {
        check_address(&cmd.email)?;
        // The common case: a business error. The store's claim remains the guarantee.
        emails.check(&cmd.email, &cmd.user).await?;
        Ok(UserRegistered {
            name: cmd.name,
            email: cmd.email,
        })
    }

    #[command]
    async fn change_email(
        &self,
        cmd: ChangeEmail,
        emails: &Emails,
    ) -> Result<Option<EmailChanged>, UserError> {
        check_address(&cmd.email)?;
        // The same address (as the scope compares them): nothing changes, no event.
        if cmd.email.trim().to_lowercase() == self.email.trim().to_lowercase() {
            return Ok(None);
        }
        emails.check(&cmd.email, &cmd.user).await?;
        Ok(Some(EmailChanged {
            old_email: self.email.clone(),
            new_email: cmd.email,
        }))
    }

    #[apply]
    fn registered(&mut self, e: &UserRegistered) {
        self.name = e.name.clone();
        self.email = e.email.clone();
    }

    #[apply]
    fn email_changed(&mut self, e: &EmailChanged) {
        self.email = e.new_email.clone();
    }
}

fn check_address(email: &str) -> Result<(), UserError> {
    match email.trim().split_once('@') {
        Some((local, domain)) if !local.is_empty() && domain.contains('.') => Ok(()),
        _ => Err(UserError::NotAnEmail(email.to_owned())),
    }
}
