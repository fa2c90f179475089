//! [`Decided`]: the future a sync aggregate's `handle` returns.

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
/// the same function the drop folds away. Measured in the W4 benchmark (decide and apply): 20
/// instructions per command.
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
    #[should_panic(expected = "polled after it completed")]
    fn a_second_poll_panics() {
        let mut future = pin!(decided(1_u8));
        let mut cx = Context::from_waker(Waker::noop());
        let _ = future.as_mut().poll(&mut cx);
        let _ = future.as_mut().poll(&mut cx);
    }
}
