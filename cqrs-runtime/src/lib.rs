//! Compile-time checked CQRS and event sourcing.
#![warn(missing_docs)]

pub mod aggregate;
pub mod envelope;
pub mod error;
pub mod event;
pub mod repository;
pub mod store;
pub mod testkit;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use cqrs_macros::{Command, Event, EventEnum, aggregate};

pub use envelope::{CommandMetadata, Envelope, Metadata};
pub use error::CommandError;
pub use repository::{Committed, Loaded, Repository, RetryPolicy};
pub use store::{EventStore, ExpectedVersion, InMemoryEventStore, StoreError};
pub use testkit::TestFramework;

/// Everything a domain module needs: the traits, the macros, the envelope, the stores.
pub mod prelude {
    pub use crate::aggregate::{Aggregate, Command, CreationPolicy};
    pub use crate::envelope::{CommandMetadata, Envelope, Metadata};
    pub use crate::error::CommandError;
    pub use crate::event::{Event, EventEnum};
    pub use crate::repository::{Committed, Repository, RetryPolicy};
    pub use crate::store::{EventStore, ExpectedVersion, InMemoryEventStore};
    pub use crate::testkit::TestFramework;
    pub use cqrs_macros::{Command, Event, EventEnum, aggregate};
}
