//! Rules that span aggregates: values held exclusively in a named scope (one account per
//! email, one loan per book), claimed and released by events, atomically with the append.
//!
//! A [`Scope`] names the values (and how they are normalized); an event's fields declare what
//! they claim or release:
//!
//! ```
//! use cqrs_runtime::prelude::*;
//! use cqrs_runtime::claims::{ClaimView, Scope};
//! use serde::{Deserialize, Serialize};
//!
//! /// Emails, compared case-insensitively.
//! #[derive(Scope)]
//! #[scope(name = "user_email", normalize = "trim_lowercase")]
//! pub struct UserEmail;
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
//! #[event(name = "user_registered", version = 1)]
//! pub struct Registered {
//!     #[claim(UserEmail)]
//!     pub email: String,
//! }
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
//! #[event(name = "email_changed", version = 1)]
//! pub struct EmailChanged {
//!     #[release(UserEmail)]
//!     pub old: String,
//!     #[claim(UserEmail)]
//!     pub new: String,
//! }
//!
//! #[derive(Debug, Clone, PartialEq, EventEnum)]
//! pub enum UserEvent { Registered(Registered), EmailChanged(EmailChanged) }
//!
//! let changed = EmailChanged { old: "Ann@Example.com".into(), new: "ann@work.example".into() };
//! let claims = UserEvent::EmailChanged(changed).claims();
//! assert_eq!(claims[0].value, "ann@example.com"); // released, normalized
//! assert_eq!(claims[1].value, "ann@work.example"); // claimed
//! ```
//!
//! - **Atomic**: the store applies an event's claims in the append's transaction (one lock in
//!   memory, one transaction on SQLite, one statement on PostgreSQL). A value another stream
//!   holds refuses the whole append: [`StoreError::Claimed`],
//!   naming the scope, the value and the holder; nothing is stored. The repository re-decides
//!   the command (with its retry policy), so a handler that asks a [`ClaimView`] sees the clash
//!   and answers with its own business error; when attempts run out the command fails with
//!   [`CommandError::Claimed`](crate::error::CommandError::Claimed).
//! - **Handlers ask** a [`ClaimView`] (inject it through the aggregate's services): "is this
//!   email free?". The store's check remains the guarantee.
//! - **Derived from events**: [`Rebuild`] recomputes the claims of aggregates' scopes from the
//!   whole log (through today's types: an upcast that renames a claimed field keeps the
//!   claims right) and corrects them in one transaction.
//! - The compiler checks that a claimed field's type can be claimed, that a scope is a
//!   [`Scope`], and that every scope an enum's events release is claimed by one of them.

use std::borrow::Cow;

use crate::aggregate::Aggregate;
use crate::event::{Decoded, EventEnum};
pub use crate::store::ClaimsRebuilt;
use crate::store::{
    Claim, ClaimHolder, ClaimRebuild, ClaimStore, CorruptEvent, Derive, Derived, StoreError,
    StoredEvent,
};

#[doc(no_inline)]
pub use cqrs_macros::Scope;

/// A named scope of values held exclusively: implemented by `#[derive(Scope)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a claim scope",
    label = "`#[claim(...)]` and `#[release(...)]` name a scope type",
    note = "declare it: `#[derive(Scope)] #[scope(name = \"...\")] pub struct {Self};`"
)]
pub trait Scope: 'static {
    /// The scope's stable name (stored with every claim).
    const NAME: &'static str;

    /// How a value is normalized before it is claimed or looked up (unchanged by default).
    fn normalize(value: &str) -> Cow<'_, str> {
        Cow::Borrowed(value)
    }
}

/// The normalizations `#[scope(normalize = "...")]` names; a scope may also name its own
/// function with `normalize_with = path` (`fn(&str) -> Cow<'_, str>`).
pub mod normalize {
    use std::borrow::Cow;

    /// The value as it is (`normalize = "none"`, the default).
    pub fn none(value: &str) -> Cow<'_, str> {
        Cow::Borrowed(value)
    }

    /// Lowercased (Unicode), so `Ann@Example.com` and `ann@example.com` are one value
    /// (`normalize = "lowercase"`).
    pub fn lowercase(value: &str) -> Cow<'_, str> {
        let changes = |c: char| {
            let mut lower = c.to_lowercase();
            lower.next() != Some(c) || lower.next().is_some()
        };
        if value.chars().any(changes) {
            Cow::Owned(value.to_lowercase())
        } else {
            Cow::Borrowed(value)
        }
    }

    /// Without leading and trailing whitespace (`normalize = "trim"`).
    pub fn trim(value: &str) -> Cow<'_, str> {
        Cow::Borrowed(value.trim())
    }

    /// Trimmed, then lowercased (`normalize = "trim_lowercase"`).
    pub fn trim_lowercase(value: &str) -> Cow<'_, str> {
        lowercase(value.trim())
    }
}

/// A field type whose value can be claimed: its claim value, or `None` for nothing to claim.
#[diagnostic::on_unimplemented(
    message = "a `{Self}` field cannot be claimed",
    label = "claim a `String`, an integer, a `Uuid`, or an `Option` of one",
    note = "or implement `cqrs_runtime::claims::Claimable` for `{Self}`: the text a value is claimed as"
)]
pub trait Claimable {
    /// The value as claimed (before the scope's normalization), `None` to claim nothing.
    fn claim_value(&self) -> Option<String>;
}

impl Claimable for String {
    fn claim_value(&self) -> Option<String> {
        Some(self.clone())
    }
}

impl Claimable for str {
    fn claim_value(&self) -> Option<String> {
        Some(self.to_owned())
    }
}

impl<T: Claimable + ?Sized> Claimable for &T {
    fn claim_value(&self) -> Option<String> {
        (**self).claim_value()
    }
}

impl<T: Claimable> Claimable for Option<T> {
    fn claim_value(&self) -> Option<String> {
        self.as_ref().and_then(Claimable::claim_value)
    }
}

impl Claimable for uuid::Uuid {
    fn claim_value(&self) -> Option<String> {
        Some(self.hyphenated().to_string())
    }
}

macro_rules! claimable_int {
    ($($t:ty),*) => {$(
        impl Claimable for $t {
            fn claim_value(&self) -> Option<String> {
                Some(self.to_string())
            }
        }
    )*};
}
claimable_int!(
    i8, i16, i32, i64, i128, u8, u16, u32, u64, u128, isize, usize
);

/// The claim of `value` in the scope `S` (normalized), if it has a value.
pub fn take<S: Scope, V: Claimable + ?Sized>(value: &V) -> Option<Claim> {
    let value = value.claim_value()?;
    Some(Claim::take(S::NAME, S::normalize(&value).into_owned()))
}

/// The release of `value` in the scope `S` (normalized), if it has a value.
pub fn release<S: Scope, V: Claimable + ?Sized>(value: &V) -> Option<Claim> {
    let value = value.claim_value()?;
    Some(Claim::release(S::NAME, S::normalize(&value).into_owned()))
}

/// A typed, read-only view of a store's claims for command handlers: "is this email free?".
///
/// Inject it through the aggregate's services. It answers from committed claims; the store's
/// check at the append remains the guarantee.
#[derive(Debug, Clone)]
pub struct ClaimView<S> {
    store: S,
}

impl<S: ClaimStore> ClaimView<S> {
    /// A view of `store`'s claims.
    pub fn new(store: S) -> Self {
        Self { store }
    }

    /// Who holds `value` in the scope `Sc`, if anyone.
    pub async fn holder<Sc: Scope, V: Claimable + ?Sized>(
        &self,
        value: &V,
    ) -> Result<Option<ClaimHolder>, StoreError> {
        let Some(value) = value.claim_value() else {
            return Ok(None);
        };
        self.store.holder(Sc::NAME, &Sc::normalize(&value)).await
    }

    /// Whether `value` is free in `Sc`, or held by the aggregate `A` with the id `id` itself:
    /// `view.is_free_for::<UserEmail, User>(&email, &user_id)`. A value held by another
    /// aggregate type under the same id is not free (a scope may be claimed by several).
    pub async fn is_free_for<Sc: Scope, A: Aggregate>(
        &self,
        value: &(impl Claimable + ?Sized),
        id: &A::Id,
    ) -> Result<bool, StoreError> {
        Ok(self.holder::<Sc, _>(value).await?.is_none_or(|holder| {
            holder.stream_type == A::TYPE && holder.stream_id == id.to_string()
        }))
    }
}

/// Recomputes the claims of aggregates' scopes from the whole log, with today's types, and
/// corrects the store's claims to match; a [`dry run`](Rebuild::dry_run) only reports.
///
/// Use it when claims are declared on events that already have a history, when a scope's
/// normalization changes, or to check a store ([`ClaimsRebuilt`] counts what is added and
/// removed). Events of the listed aggregates' streams are decoded (upcast first) and their
/// claims replayed in log order; events of other streams are passed over, and their claims
/// left alone. A retired event cannot say what it held: the claims it took are kept as they
/// are (an event whose type is retired should not be one that *releases*; upcast it instead).
/// An event of a listed aggregate that does not decode stops the rebuild with its error.
///
/// The bulk of the log is read while appends go on; the last stretch and the change are made
/// while appends that carry claims wait (one transaction), so the result is exact.
///
/// ```
/// # use cqrs_runtime::claims::Rebuild;
/// # async fn demo<A: cqrs_runtime::aggregate::Aggregate>(store: cqrs_runtime::memory::InMemoryEventStore)
/// # -> Result<(), cqrs_runtime::store::StoreError> {
/// let report = Rebuild::new().aggregate::<A>().run(&store).await?;
/// println!("{} claims, {} added, {} removed", report.claims, report.added, report.removed);
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct Rebuild {
    derives: Vec<(&'static str, DeriveFn)>,
    scopes: Vec<&'static str>,
    dry_run: bool,
}

impl std::fmt::Debug for Rebuild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rebuild")
            .field(
                "stream_types",
                &self.derives.iter().map(|(t, _)| t).collect::<Vec<_>>(),
            )
            .field("scopes", &self.scopes)
            .field("dry_run", &self.dry_run)
            .finish()
    }
}

impl Rebuild {
    /// A rebuild of nothing yet: add the aggregates whose events claim.
    pub fn new() -> Self {
        Self::default()
    }

    /// Derives claims from the streams of `A`, decoded as `A::Event`, and rebuilds the scopes
    /// its events claim or release.
    pub fn aggregate<A: Aggregate>(mut self) -> Self {
        self.derives.push((A::TYPE, derive::<A::Event>));
        for scope in <A::Event as EventEnum>::scopes() {
            if !self.scopes.contains(&scope) {
                self.scopes.push(scope);
            }
        }
        self
    }

    /// Only computes and reports the changes (`report.dry_run` is set).
    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }

    /// Runs the rebuild on `store`.
    pub async fn run<S: ClaimStore>(self, store: &S) -> Result<ClaimsRebuilt, StoreError> {
        let derives = self.derives;
        let stream_types = derives.iter().map(|(t, _)| (*t).to_owned()).collect();
        let derive: Derive = Box::new(move |event: &StoredEvent| {
            match derives.iter().find(|(t, _)| *t == event.stream_type) {
                Some((_, derive)) => derive(event),
                None => Ok(Derived::Other),
            }
        });
        let scopes = self.scopes.iter().map(|s| (*s).to_owned()).collect();
        let rebuild = ClaimRebuild::new(derive, scopes, stream_types).dry_run(self.dry_run);
        store.rebuild_claims(rebuild).await
    }
}

/// How the events of one stream type yield their claims.
type DeriveFn = fn(&StoredEvent) -> Result<Derived, StoreError>;

/// The claims of one stored event of an `E` stream.
fn derive<E: EventEnum>(event: &StoredEvent) -> Result<Derived, StoreError> {
    let decoded =
        E::decode(&event.event_type, event.event_version, &event.payload).map_err(|error| {
            StoreError::from(CorruptEvent::of(
                event,
                format!("it does not decode with today's types: {error}"),
            ))
        })?;
    Ok(match decoded {
        Decoded::One(e) => Derived::Claims(e.claims()),
        Decoded::Many(es) => Derived::Claims(es.iter().flat_map(EventEnum::claims).collect()),
        Decoded::Skipped => Derived::Retired,
    })
}
