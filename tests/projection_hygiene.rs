//! `#[projection]` output names nothing the user can shadow: prelude names and the crate name
//! are shadowed here, warnings are errors, and the projection still expands and works.
#![deny(warnings, unused_qualifications, missing_docs)]

/// Shadows the crate name: generated code must use `::cqrs_runtime`.
mod cqrs_runtime {}

/// Shadows prelude names the generated code could otherwise pick up by accident.
pub mod domain {
    #![allow(dead_code)]
    use ::cqrs_runtime::prelude::*;
    use ::cqrs_runtime::projection::EventMeta;
    use serde::{Deserialize, Serialize};

    struct Result;
    struct Option;
    struct Ok;
    struct Err;
    struct Some;
    struct None;
    struct Vec;
    struct From;
    struct Default;
    trait Send {}
    trait Sync {}

    /// An event.
    #[derive(
        ::core::fmt::Debug,
        ::core::clone::Clone,
        ::core::cmp::PartialEq,
        Serialize,
        Deserialize,
        Event,
    )]
    #[event(name = "hyg_bumped", version = 1)]
    pub struct Bumped {
        /// Amount.
        pub by: u32,
    }

    /// Another event.
    #[derive(
        ::core::fmt::Debug,
        ::core::clone::Clone,
        ::core::cmp::PartialEq,
        Serialize,
        Deserialize,
        Event,
    )]
    #[event(name = "hyg_reset", version = 1)]
    pub struct WasReset;

    /// A second source's event.
    #[derive(
        ::core::fmt::Debug,
        ::core::clone::Clone,
        ::core::cmp::PartialEq,
        Serialize,
        Deserialize,
        Event,
    )]
    #[event(name = "hyg_named", version = 1)]
    pub struct Named {
        /// Name.
        pub name: ::std::string::String,
    }

    /// The events.
    #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::cmp::PartialEq, EventEnum)]
    pub enum CounterEvent {
        /// Bumped.
        Bumped(Bumped),
        /// Reset.
        Reset(WasReset),
    }

    /// The other source.
    #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::cmp::PartialEq, EventEnum)]
    pub enum NameEvent {
        /// Named.
        Named(Named),
    }

    /// A query.
    pub struct Total;

    /// A store transaction stand-in.
    pub struct Tx;

    /// The read model.
    #[derive(::core::fmt::Debug, ::core::default::Default, ::core::cmp::PartialEq)]
    pub struct Totals {
        /// Sum.
        pub total: u32,
        /// Names seen.
        pub names: ::std::vec::Vec<::std::string::String>,
    }

    #[projection(name = "hyg_totals", version = 3, events = [CounterEvent, NameEvent], ignore(WasReset), crate = ::cqrs_runtime)]
    impl Totals {
        #[on]
        fn bumped(&mut self, e: &Bumped, _meta: &EventMeta<'_>) {
            self.total += e.by;
        }

        #[on]
        fn named(&mut self, e: &Named) {
            self.names.push(e.name.clone());
        }

        #[query]
        fn total(&self, _: Total) -> u32 {
            self.total
        }
    }

    /// A read model with a transaction, a custom reset hook and no exhaustiveness.
    #[derive(::core::fmt::Debug)]
    pub struct Sql {
        /// Rows written.
        pub rows: u32,
    }

    #[projection(name = "hyg_sql", events = CounterEvent, non_exhaustive, transaction = Tx, reset = Self::clear)]
    impl Sql {
        #[on]
        fn bumped(&mut self, _: &Bumped, _: &EventMeta<'_>, _tx: &mut Tx) {
            self.rows += 1;
        }

        fn clear(&mut self) {
            self.rows = 0;
        }
    }

    /// The counter's error.
    #[derive(::core::fmt::Debug, thiserror::Error)]
    #[error("never")]
    pub struct Never;

    /// The aggregate of the `counter` streams.
    #[derive(::core::fmt::Debug, ::core::default::Default)]
    pub struct Counter {
        /// Count.
        pub count: u32,
    }

    #[aggregate(name = "counter", id = ::std::string::String, events = CounterEvent, error = Never, crate = ::cqrs_runtime)]
    impl Counter {
        #[apply]
        fn bumped(&mut self, e: &Bumped) {
            self.count += e.by;
        }

        #[apply]
        fn reset(&mut self, _: &WasReset) {
            self.count = 0;
        }
    }

    /// An aggregate source (its streams strict) next to an event enum, with a handler under
    /// `#[cfg]`, exhaustive and not.
    #[derive(::core::fmt::Debug, ::core::default::Default, ::core::cmp::PartialEq)]
    pub struct Strict {
        /// Events seen.
        pub seen: u32,
    }

    #[projection(name = "hyg_strict", events = [Counter, NameEvent], ignore(WasReset), crate = ::cqrs_runtime)]
    impl Strict {
        #[cfg(not(any()))]
        #[on]
        fn named(&mut self, _: &Named) {
            self.seen += 1;
        }

        #[on]
        fn bumped(&mut self, _: &Bumped) {
            self.seen += 1;
        }
    }

    /// The same, `non_exhaustive`.
    #[derive(::core::fmt::Debug, ::core::default::Default, ::core::cmp::PartialEq)]
    pub struct StrictNames {
        /// Events seen.
        pub seen: u32,
    }

    #[projection(name = "hyg_strict_names", events = [Counter, NameEvent], non_exhaustive, crate = ::cqrs_runtime)]
    impl StrictNames {
        #[cfg(not(any()))]
        #[on]
        fn named(&mut self, _: &Named) {
            self.seen += 1;
        }
    }
}

use ::cqrs_runtime::prelude::*;
use ::cqrs_runtime::projection::Outcome;
use ::cqrs_runtime::store::{Cursor, StoredEvent};
use domain::*;

fn stored(name: &str, payload: &str) -> StoredEvent {
    StoredEvent {
        global_position: 1,
        stream_type: "counter".into(),
        stream_id: "c-1".into(),
        stream_version: 1,
        event_id: uuid::Uuid::now_v7(),
        event_type: name.into(),
        event_version: 1,
        payload: payload.as_bytes().to_vec(),
        metadata: Metadata::new(),
        recorded_at: ::std::time::SystemTime::now().into(),
    }
}

#[test]
fn shadowed_names_do_not_break_generated_projections() {
    let mut totals = Totals::default();
    for (name, payload) in [
        ("hyg_bumped", "{\"by\":2}"),
        ("hyg_reset", "null"),
        ("hyg_named", "{\"name\":\"n\"}"),
    ] {
        let event = stored(name, payload);
        let meta = ::cqrs_runtime::projection::EventMeta::new(&event, Cursor::START);
        assert_eq!(
            totals.project(&event, &meta, &mut ()).unwrap(),
            Outcome::Applied
        );
    }
    let foreign = stored("elsewhere", "{}");
    let meta = ::cqrs_runtime::projection::EventMeta::new(&foreign, Cursor::START);
    assert_eq!(
        totals.project(&foreign, &meta, &mut ()).unwrap(),
        Outcome::Foreign
    );
    assert_eq!(totals.answer(Total), 2);
    assert_eq!(totals.names, vec!["n".to_string()]);
    assert_eq!(<Totals as Projection>::NAME, "hyg_totals");
    assert_eq!(<Totals as Projection>::VERSION, 3);
    assert_eq!(
        <Totals as Projection>::HANDLED,
        &["hyg_bumped", "hyg_named"]
    );
    totals.reset();
    assert_eq!(totals, Totals::default());

    let mut sql = Sql { rows: 0 };
    let event = stored("hyg_bumped", "{\"by\":1}");
    let meta = ::cqrs_runtime::projection::EventMeta::new(&event, Cursor::START);
    assert_eq!(
        sql.project(&event, &meta, &mut Tx).unwrap(),
        Outcome::Applied
    );
    let reset = stored("hyg_reset", "null");
    assert_eq!(
        sql.project(&reset, &meta, &mut Tx).unwrap(),
        Outcome::Foreign
    );
    assert_eq!(sql.rows, 1);
    sql.reset();
    assert_eq!(sql.rows, 0);
}

#[test]
fn aggregate_sources_expand_quietly_and_keep_their_streams_strict() {
    let unknown = stored("hyg_unknown", "{}"); // in a `counter` stream
    let meta = ::cqrs_runtime::projection::EventMeta::new(&unknown, Cursor::START);
    assert!(Strict::default().project(&unknown, &meta, &mut ()).is_err());
    assert!(
        StrictNames::default()
            .project(&unknown, &meta, &mut ())
            .is_err()
    );
    // Another source's event in a `counter` stream is not a counter event either.
    let named = stored("hyg_named", "{\"name\":\"n\"}");
    assert!(Strict::default().project(&named, &meta, &mut ()).is_err());
    assert!(
        StrictNames::default()
            .project(&named, &meta, &mut ())
            .is_err()
    );
    let mut elsewhere = named.clone();
    elsewhere.stream_type = "names".into();
    let mut strict = Strict::default();
    assert_eq!(
        strict.project(&elsewhere, &meta, &mut ()).unwrap(),
        Outcome::Applied
    );
    let mut names = StrictNames::default();
    assert_eq!(
        names.project(&elsewhere, &meta, &mut ()).unwrap(),
        Outcome::Applied
    );
    assert_eq!((strict.seen, names.seen), (1, 1));
    elsewhere.event_type = "hyg_unknown".into();
    assert_eq!(
        strict.project(&elsewhere, &meta, &mut ()).unwrap(),
        Outcome::Foreign
    );
}
