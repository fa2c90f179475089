//! The workloads shared by the root bench (`benches/workloads.rs`: this project's macros against
//! hand-written code) and the comparison crate (`benches/compare`, which adds cqrs-es). Both
//! include this directory with `#[path]`, so the two contenders they share are the same code.
//!
//! - [`domain`]: (a) the account aggregate written with this project's macros;
//! - [`hand`]: (b) the same aggregate hand-written: plain enums, `match`, `serde_json` straight
//!   into the typed structs;
//! - [`data`]: the stored streams and command scripts every contender starts from;
//! - [`work`]: W1–W4 for (a) and (b).

#![allow(dead_code)] // each bench binary uses a different subset

pub mod data;
pub mod domain;
pub mod hand;
pub mod suite;
pub mod work;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Polls a future once and returns its output: every future the W4 workload drives (decisions
/// that await nothing) is ready on its first poll, so no executor is measured.
pub fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a W4 decision awaited something"),
    }
}

/// A single-threaded Tokio runtime for the workloads that go through a store (W1–W3): every
/// contender runs its async API on the same kind of runtime.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime")
}
