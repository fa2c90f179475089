//! Aggregate loads on SQLite: the rows are read on the blocking pool and decoded on the
//! caller's task at the same time, handed over in chunks whose buffers are reused.

use std::sync::Mutex;

use crate::store::StreamEventRef;

/// Events of one stream on their way from the blocking pool to the task that decodes
/// them: the event types of the chunk in one string, the payloads in one buffer, so a chunk
/// costs no allocation per event (and none at all once its buffers are recycled).
pub(super) struct Chunk {
    types: String,
    payloads: Vec<u8>,
    rows: Vec<ChunkRow>,
}

/// One event of a [`Chunk`]: its type and payload end at `type_end` and `payload_end`, and
/// start where the previous row's end.
struct ChunkRow {
    global_position: u64,
    stream_version: u64,
    event_version: u32,
    type_end: usize,
    payload_end: usize,
}

impl Chunk {
    /// Events per chunk. Each hand-over wakes the decoding task, which on a busy machine
    /// costs more than the overlap of reading and decoding gains (measured: 256 rows per
    /// chunk loaded 10,000 events about 10% slower than 2,048), while the chunk bounds the
    /// memory a load of a long stream holds.
    const ROWS: usize = 2048;
    /// A chunk whose buffer grew beyond this is dropped rather than kept for reuse.
    const KEEP_BYTES: usize = 1 << 20;

    fn new() -> Self {
        Self {
            types: String::new(),
            payloads: Vec::new(),
            rows: Vec::with_capacity(Self::ROWS),
        }
    }

    pub(super) fn is_full(&self) -> bool {
        self.rows.len() >= Self::ROWS
    }

    pub(super) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Copies `event` into the chunk.
    pub(super) fn push(&mut self, event: StreamEventRef<'_>) {
        if self.payloads.capacity() == 0 {
            // The first row sizes the buffers for a chunk of similar rows.
            self.types.reserve(event.event_type.len() * Self::ROWS);
            self.payloads.reserve(event.payload.len() * Self::ROWS);
        }
        self.types.push_str(event.event_type);
        self.payloads.extend_from_slice(event.payload);
        self.rows.push(ChunkRow {
            global_position: event.global_position,
            stream_version: event.stream_version,
            event_version: event.event_version,
            type_end: self.types.len(),
            payload_end: self.payloads.len(),
        });
    }

    /// The chunk's events, in stream order.
    pub(super) fn events(&self) -> impl Iterator<Item = StreamEventRef<'_>> {
        let (mut type_start, mut payload_start) = (0, 0);
        self.rows.iter().map(move |row| {
            let event_type = self.types.get(type_start..row.type_end);
            let payload = self.payloads.get(payload_start..row.payload_end);
            (type_start, payload_start) = (row.type_end, row.payload_end);
            StreamEventRef {
                global_position: row.global_position,
                stream_version: row.stream_version,
                event_type: event_type.unwrap_or_default(),
                event_version: row.event_version,
                payload: payload.unwrap_or_default(),
            }
        })
    }
}

/// Emptied chunks kept for the next loads, so that steady loads allocate nothing.
#[derive(Default)]
pub(super) struct ChunkPool(Mutex<Vec<Chunk>>);

impl ChunkPool {
    /// The most chunks kept.
    const KEEP: usize = 8;

    /// A recycled chunk, or a new one.
    pub(super) fn take(&self) -> Chunk {
        let recycled = self.0.lock().ok().and_then(|mut pool| pool.pop());
        recycled.unwrap_or_else(Chunk::new)
    }

    /// Empties `chunk` and keeps it for reuse (unless the pool is full or it grew large).
    pub(super) fn give(&self, mut chunk: Chunk) {
        if chunk.payloads.capacity() + chunk.types.capacity() > Chunk::KEEP_BYTES {
            return;
        }
        chunk.types.clear();
        chunk.payloads.clear();
        chunk.rows.clear();
        if let Ok(mut pool) = self.0.lock()
            && pool.len() < Self::KEEP
        {
            pool.push(chunk);
        }
    }
}
