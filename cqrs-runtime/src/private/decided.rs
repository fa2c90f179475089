//! [`Decided`]: the future a sync aggregate's `handle` returns (generated code only; users see
//! `impl Future` in [`Aggregate::handle`](crate::aggregate::Aggregate::handle)).
//!
//! # Safety argument
//!
//! The one piece of state is `taken`, and it is the only thing that decides whether `value`
//! holds a live `T`:
//!
//! - `taken == false` ⇔ `value` holds the value `decided` put there. It starts so, and the only
//!   write of `true` is in `poll`, immediately before the one `ManuallyDrop::take`.
//! - `poll` takes the value only after checking `taken == false` (a second poll panics before
//!   touching `value`), so the value is moved out at most once.
//! - `drop` drops the value only when `taken == false`, so a moved-out value is never dropped,
//!   and a value that was never polled is dropped exactly once (drop glue runs once).
//! - Pinning adds nothing: `Decided` never hands out a reference into `value`, and `poll` moves
//!   the value out by value, so `Decided` is `Unpin` whatever `T` is.
//! - Unwinding: `ManuallyDrop::take` cannot panic; if the panic in `poll`'s assert unwinds,
//!   `taken` is already `true` and nothing is taken.
//!
//! The tests below exercise each path (polled then dropped, dropped unpolled, polled twice,
//! a value with a destructor, a zero-sized value) and run under Miri:
//! `cargo +nightly miri test -p cqrs-runtime --lib decided`.

use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A decision that is already made: ready on the first poll, like [`core::future::Ready`].
///
/// An aggregate whose handlers are all sync returns this from `handle`, so deciding builds no
/// state machine. It differs from `Ready` in what dropping it costs once polled: `Ready` holds
/// an `Option`, and its drop glue (a call that checks the option, which the optimizer leaves
/// outlined when the decision type is large) runs after every command. Here a flag records that
/// the value was moved out, and the `Drop` impl is small enough to inline, so after a poll in
/// the same function the drop folds away. See the module's safety argument.
#[must_use = "futures do nothing unless polled"]
pub struct Decided<T> {
    value: ManuallyDrop<T>,
    taken: bool,
}

/// The decision `value`, as a future ready on its first poll.
#[inline]
pub fn decided<T>(value: T) -> Decided<T> {
    Decided {
        value: ManuallyDrop::new(value),
        taken: false,
    }
}

// The value is never pinned: `poll` moves it out, so the future may move freely.
impl<T> Unpin for Decided<T> {}

#[allow(unsafe_code)] // See the module's safety argument.
impl<T> Future for Decided<T> {
    type Output = T;

    #[inline]
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<T> {
        let this = self.get_mut();
        assert!(!this.taken, "`Decided` polled after it completed");
        this.taken = true;
        // SAFETY: `taken` was false, so the value is still there, and setting it first makes
        // this the only move out: later polls panic above and `drop` skips the value.
        Poll::Ready(unsafe { ManuallyDrop::take(&mut this.value) })
    }
}

#[allow(unsafe_code)] // See the module's safety argument.
impl<T> Drop for Decided<T> {
    #[inline]
    fn drop(&mut self) {
        if !self.taken {
            // SAFETY: the value was never moved out (`taken` is false), and `drop` runs once.
            unsafe { drop_unpolled(&mut self.value) }
        }
    }
}

/// The rare case (a decision dropped without being polled), kept out of line so that the drop
/// of a polled decision is only the flag test, which the optimizer removes.
///
/// # Safety
///
/// `value` still holds its value and is not used again.
#[cold]
#[inline(never)]
#[allow(unsafe_code)] // See the module's safety argument.
unsafe fn drop_unpolled<T>(value: &mut ManuallyDrop<T>) {
    // SAFETY: guaranteed by the caller.
    unsafe { ManuallyDrop::drop(value) }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Waker};

    use super::decided;

    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_polled_decision_hands_over_its_value_and_drops_nothing() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut future = Box::pin(decided(Counted(drops.clone())));
        let Poll::Ready(value) = future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        else {
            panic!("a decision is ready on its first poll");
        };
        drop(future);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            0,
            "the future dropped a moved value"
        );
        drop(value);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn an_unpolled_decision_drops_its_value_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        drop(decided(Counted(drops.clone())));
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_zero_sized_decision_is_ready_at_once() {
        let mut future = pin!(decided(()));
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(future.as_mut().poll(&mut cx), Poll::Ready(()));
    }

    #[test]
    fn a_boxed_decision_moves_out_intact() {
        let mut future = pin!(decided(vec![String::from("a"), String::from("b")]));
        let mut cx = Context::from_waker(Waker::noop());
        let Poll::Ready(value) = future.as_mut().poll(&mut cx) else {
            panic!("a decision is ready on its first poll");
        };
        assert_eq!(value, ["a", "b"]);
    }

    #[test]
    fn a_second_poll_drops_nothing_twice() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut future = Box::pin(decided(Counted(drops.clone())));
        let mut cx = Context::from_waker(Waker::noop());
        let first = future.as_mut().poll(&mut cx);
        let second = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = future.as_mut().poll(&mut cx);
        }));
        assert!(second.is_err(), "a second poll panics");
        drop(future);
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(first);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    #[should_panic(expected = "polled after it completed")]
    fn a_second_poll_panics() {
        let mut future = pin!(decided(1_u8));
        let mut cx = Context::from_waker(Waker::noop());
        let _ = future.as_mut().poll(&mut cx);
        let _ = future.as_mut().poll(&mut cx);
    }
}
