//! `#[reactor]`, `#[process_manager]`, `#[derive(CommandBus)]` and `#[derive(Deadline)]`
//! output names nothing the user can shadow: prelude names and the crate name are shadowed
//! here, warnings are errors, and the reactions still expand and work.
#![deny(warnings, unused_qualifications, missing_docs)]

/// Shadows the crate name: generated code must use `::cqrs_runtime`.
mod cqrs_runtime {}

/// Shadows prelude names the generated code could otherwise pick up by accident.
pub mod domain {
    #![allow(dead_code)]
    use ::cqrs_runtime::prelude::*;
    use ::cqrs_runtime::store::StoredEvent;
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
    struct String;
    struct Box;
    trait Send {}
    trait Sync {}
    trait ToString {}

    /// Bumps a counter.
    #[derive(::core::fmt::Debug, ::core::clone::Clone, Command)]
    #[command(aggregate = Counter, crate = ::cqrs_runtime)]
    pub struct Bump {
        /// The counter.
        #[id]
        pub id: ::std::string::String,
    }

    /// An event.
    #[derive(
        ::core::fmt::Debug,
        ::core::clone::Clone,
        ::core::cmp::PartialEq,
        Serialize,
        Deserialize,
        Event,
    )]
    #[event(name = "hyg_reaction_bumped", version = 1, crate = ::cqrs_runtime)]
    pub struct Bumped {
        /// The counter.
        pub id: ::std::string::String,
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
    #[event(name = "hyg_reaction_closed", version = 1, crate = ::cqrs_runtime)]
    pub struct Closed {
        /// The counter.
        pub id: ::std::string::String,
    }

    /// The events.
    #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::cmp::PartialEq, EventEnum)]
    #[event_enum(crate = ::cqrs_runtime)]
    pub enum CounterEvent {
        /// Bumped.
        Bumped(Bumped),
        /// Closed.
        Closed(Closed),
    }

    /// The counter's error.
    #[derive(::core::fmt::Debug, thiserror::Error)]
    #[error("never")]
    pub struct Never;

    /// The aggregate.
    #[derive(::core::fmt::Debug, ::core::default::Default)]
    pub struct Counter {
        /// Count.
        pub count: u32,
    }

    #[aggregate(name = "hyg_counter", id = ::std::string::String, events = CounterEvent, error = Never, crate = ::cqrs_runtime)]
    impl Counter {
        #[command(any)]
        fn bump(&self, cmd: Bump) -> ::core::result::Result<Bumped, Never> {
            ::core::result::Result::Ok(Bumped { id: cmd.id })
        }

        #[apply]
        fn bumped(&mut self, _: &Bumped) {
            self.count += 1;
        }

        #[apply]
        fn closed(&mut self, _: &Closed) {}
    }

    /// The bus.
    #[derive(CommandBus)]
    #[command_bus(crate = ::cqrs_runtime)]
    pub struct Bus<S: EventStore> {
        /// Counters.
        pub counters: Repository<Counter, S>,
    }

    /// A deadline.
    #[derive(::core::fmt::Debug, Serialize, Deserialize, Deadline)]
    #[deadline(crate = ::cqrs_runtime)]
    pub struct Later {
        /// The counter.
        pub id: ::std::string::String,
    }

    /// A reactor.
    pub struct Echo;

    #[reactor(name = "hyg_echo", version = 2, events = CounterEvent, ignore(Bumped), crate = ::cqrs_runtime)]
    impl<S: EventStore> Echo {
        #[on]
        async fn closed(
            &self,
            e: &Closed,
            _stored: &StoredEvent,
            ctx: &mut ReactionContext<'_, Bus<S>>,
        ) -> ::core::result::Result<(), ReactionError> {
            ctx.send(Bump { id: e.id.clone() }).await?;
            ::core::result::Result::Ok(())
        }
    }

    /// A process manager.
    #[derive(::core::fmt::Debug, ::core::default::Default, Serialize, Deserialize)]
    pub struct Watch {
        /// Seen.
        pub seen: u32,
    }

    #[process_manager(name = "hyg_watch", events = [Counter], crate = ::cqrs_runtime)]
    impl<S: EventStore> Watch {
        #[on(start, key = id)]
        async fn bumped(
            &mut self,
            _: &Bumped,
            ctx: &mut ProcessContext<'_, Bus<S>>,
        ) -> ::core::result::Result<(), ReactionError> {
            self.seen += 1;
            let due = ctx.now();
            ctx.schedule(
                due,
                &Later {
                    id: ctx.key().into(),
                },
            )
        }

        #[on(end, key = key_of())]
        async fn closed(
            &mut self,
            _: &Closed,
            _: &mut ProcessContext<'_, Bus<S>>,
        ) -> ::core::result::Result<(), ReactionError> {
            ::core::result::Result::Ok(())
        }

        #[deadline]
        async fn later(
            &mut self,
            _: Later,
            _: &mut ProcessContext<'_, Bus<S>>,
        ) -> ::core::result::Result<(), ReactionError> {
            self.seen += 10;
            ::core::result::Result::Ok(())
        }
    }

    impl Closed {
        /// The key of a closing.
        pub fn key_of(&self) -> &str {
            &self.id
        }
    }
}

use ::cqrs_runtime::prelude::*;
use ::cqrs_runtime::processing::reaction::{ProcessManager, Reactor, Role, Route};
use ::cqrs_runtime::store::StoredEvent;
use domain::*;

fn stored(name: &str, payload: &str) -> StoredEvent {
    StoredEvent {
        global_position: 1,
        stream_type: "hyg_counter".into(),
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

type B = Bus<InMemoryEventStore>;

#[test]
fn shadowed_names_do_not_break_generated_reactions() {
    assert_eq!(<Echo as Reactor<B>>::NAME, "hyg_echo");
    assert_eq!(<Echo as Reactor<B>>::VERSION, 2);
    assert_eq!(<Echo as Reactor<B>>::HANDLED, &["hyg_reaction_closed"]);
    assert_eq!(<Watch as ProcessManager<B>>::DEADLINES, &["later"]);
    let bumped = stored("hyg_reaction_bumped", "{\"id\":\"c-7\"}");
    assert_eq!(
        <Watch as ProcessManager<B>>::route(&bumped).unwrap(),
        Route::Handle {
            key: "c-7".into(),
            role: Role::Start
        }
    );
    let closed = stored("hyg_reaction_closed", "{\"id\":\"c-8\"}");
    assert_eq!(
        <Watch as ProcessManager<B>>::route(&closed).unwrap(),
        Route::Handle {
            key: "c-8".into(),
            role: Role::End
        }
    );
    // An aggregate source's stream is strict: an unknown event there is an error.
    assert!(<Watch as ProcessManager<B>>::route(&stored("hyg_other", "{}")).is_err());
    let mut foreign = stored("hyg_other", "{}");
    foreign.stream_type = "elsewhere".into();
    assert_eq!(
        <Watch as ProcessManager<B>>::route(&foreign).unwrap(),
        Route::Foreign
    );
}
