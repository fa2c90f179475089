//! Generated code names nothing the user can shadow: prelude names and the crate name are
//! shadowed here, warnings are errors, and every macro still expands and works.
#![deny(warnings, unused_qualifications, missing_docs)]

/// Shadows the crate name: generated code must use `::cqrs_runtime`.
mod cqrs_runtime {}

/// Shadows prelude names the generated code could otherwise pick up by accident.
pub mod domain {
    #![allow(dead_code)]
    use ::cqrs_runtime::prelude::*;
    use serde::{Deserialize, Serialize};

    struct Result;
    struct Option;
    struct Ok;
    struct Err;
    struct Some;
    struct None;
    struct Vec;
    struct Box;
    struct From;
    struct Into;
    struct Default;
    trait Future {}
    trait Send {}
    trait Clone {}
    trait Debug {}

    /// The error.
    #[derive(::core::fmt::Debug, ::core::cmp::PartialEq, thiserror::Error)]
    #[error("rejected")]
    pub struct Rejected;

    /// A command.
    #[derive(::core::fmt::Debug, ::core::clone::Clone, Command)]
    #[command(aggregate = Counter)]
    pub struct Bump {
        /// Target.
        #[id]
        pub id: ::std::string::String,
        /// Amount.
        pub by: u32,
    }

    /// A command with services.
    #[derive(::core::fmt::Debug, ::core::clone::Clone, Command)]
    #[command(aggregate = Counter, name = "counter.reset")]
    pub struct Reset {
        /// Target.
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
    #[event(name = "bumped", version = 1)]
    pub struct Bumped {
        /// Amount.
        pub by: u32,
    }

    /// The first version of `reset`.
    #[derive(
        ::core::fmt::Debug,
        ::core::clone::Clone,
        ::core::cmp::PartialEq,
        Serialize,
        Deserialize,
        Event,
    )]
    #[event(name = "reset", version = 1)]
    pub struct WasResetV1 {
        /// Why.
        pub reason: ::std::string::String,
    }

    /// An event with a custom runtime path and an upcaster chain.
    #[derive(
        ::core::fmt::Debug,
        ::core::clone::Clone,
        ::core::cmp::PartialEq,
        Serialize,
        Deserialize,
        Event,
    )]
    #[event(name = "reset", version = 2, upcast_from = WasResetV1, crate = ::cqrs_runtime)]
    pub struct WasReset;

    impl ::core::convert::From<WasResetV1> for WasReset {
        fn from(_: WasResetV1) -> Self {
            WasReset
        }
    }

    /// A nested type with a shape.
    #[derive(
        ::core::fmt::Debug,
        ::core::clone::Clone,
        ::core::cmp::PartialEq,
        Serialize,
        Deserialize,
        Shape,
    )]
    pub struct Note {
        /// Text.
        pub text: ::std::string::String,
    }

    /// An event with a nested type.
    #[derive(
        ::core::fmt::Debug,
        ::core::clone::Clone,
        ::core::cmp::PartialEq,
        Serialize,
        Deserialize,
        Event,
    )]
    #[event(name = "noted", version = 1)]
    pub struct Noted {
        /// The note.
        pub note: ::core::option::Option<Note>,
    }

    /// The events.
    #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::cmp::PartialEq, EventEnum)]
    pub enum CounterEvent {
        /// Bumped.
        Bumped(Bumped),
        /// Reset.
        Reset(WasReset),
        /// Noted.
        Noted(Noted),
    }

    /// Services.
    pub struct Limits {
        /// Max.
        pub max: u32,
    }

    /// The aggregate.
    #[derive(::core::fmt::Debug, ::core::default::Default, ::core::cmp::PartialEq)]
    pub struct Counter {
        /// Value.
        pub value: u32,
    }

    #[aggregate(name = "counter", id = ::std::string::String, events = CounterEvent, error = Rejected, services = Limits)]
    impl Counter {
        #[command(any)]
        fn bump(
            &self,
            cmd: Bump,
        ) -> ::core::result::Result<::std::vec::Vec<CounterEvent>, Rejected> {
            ::core::result::Result::Ok(::std::vec![Bumped { by: cmd.by }.into()])
        }

        #[command]
        async fn reset(
            &self,
            _cmd: Reset,
            limits: &Limits,
        ) -> ::core::result::Result<::core::option::Option<WasReset>, Rejected> {
            if self.value > limits.max {
                ::core::result::Result::Ok(::core::option::Option::Some(WasReset))
            } else {
                ::core::result::Result::Err(Rejected)
            }
        }

        #[apply]
        fn bumped(&mut self, e: &Bumped) {
            self.value += e.by;
        }

        #[apply]
        fn was_reset(&mut self, _: &WasReset) {
            self.value = 0;
        }

        #[apply]
        fn noted(&mut self, _: &Noted) {}
    }
}

use ::cqrs_runtime::prelude::*;
use domain::*;

#[test]
fn shadowed_names_do_not_break_generated_code() {
    let limits = Limits { max: 3 };
    let mut state = Counter::default();
    let bump: CounterCommand = Bump {
        id: "c".into(),
        by: 5,
    }
    .into();
    assert_eq!(bump.command_name(), "Bump");
    assert_eq!(Counter::creation_policy(&bump), CreationPolicy::Any);
    let events = poll_ready(state.handle(bump, &limits)).unwrap();
    for e in &events {
        state.apply(e);
    }
    assert_eq!(state.value, 5);
    let reset: CounterCommand = Reset { id: "c".into() }.into();
    assert_eq!(reset.command_name(), "counter.reset");
    let events = poll_ready(state.handle(reset, &limits)).unwrap();
    assert_eq!(*events, [CounterEvent::Reset(WasReset)]);
    assert_eq!(CounterEvent::RESET, "reset");
    assert_eq!(events[0].event_version(), 2);
    let old = CounterEvent::decode("reset", 1, br#"{"reason":"x"}"#).unwrap();
    assert_eq!(
        old.one(),
        ::core::option::Option::Some(CounterEvent::Reset(WasReset))
    );
}

fn poll_ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("pending"),
    }
}
