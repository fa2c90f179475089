//! `EventStore` through `Arc<S>` and `&'static S`: every method forwards, so a store's
//! overrides (`read_after`, `read_stream_events`, `replay_stream`) are kept.

use std::future::Future;
use std::sync::Arc;

use super::{
    AppendOutcome, Cursor, EventStore, ExpectedVersion, NewEvent, StoreError, StoredEvent,
    StreamEvent, StreamEventRef,
};

/// Implements `EventStore` for a pointer type by forwarding every method to `S`.
macro_rules! forward_event_store {
    ($($pointer:ty),* $(,)?) => {$(
        impl<S: EventStore> EventStore for $pointer {
            fn append(
                &self,
                stream_type: &str,
                stream_id: &str,
                expected: ExpectedVersion,
                events: Vec<NewEvent>,
            ) -> impl Future<Output = Result<AppendOutcome, StoreError>> + Send {
                S::append(self, stream_type, stream_id, expected, events)
            }

            fn read_stream(
                &self,
                stream_type: &str,
                stream_id: &str,
                from_version: u64,
            ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send {
                S::read_stream(self, stream_type, stream_id, from_version)
            }

            fn read_stream_events(
                &self,
                stream_type: &str,
                stream_id: &str,
                from_version: u64,
            ) -> impl Future<Output = Result<Vec<StreamEvent>, StoreError>> + Send {
                S::read_stream_events(self, stream_type, stream_id, from_version)
            }

            fn replay_stream<F>(
                &self,
                stream_type: &str,
                stream_id: &str,
                from_version: u64,
                visit: F,
            ) -> impl Future<Output = Result<(), StoreError>> + Send
            where
                F: FnMut(StreamEventRef<'_>) -> bool + Send,
            {
                S::replay_stream(self, stream_type, stream_id, from_version, visit)
            }

            fn read_all(
                &self,
                after_position: u64,
                limit: usize,
            ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send {
                S::read_all(self, after_position, limit)
            }

            fn head_position(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
                S::head_position(self)
            }

            fn read_after(
                &self,
                cursor: Cursor,
                limit: usize,
            ) -> impl Future<Output = Result<Vec<(Cursor, StoredEvent)>, StoreError>> + Send {
                S::read_after(self, cursor, limit)
            }
        }
    )*};
}

forward_event_store!(Arc<S>, &'static S);
