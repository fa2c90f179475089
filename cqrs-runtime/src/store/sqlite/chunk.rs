//! Aggregate loads on SQLite: the rows are read on the blocking pool and decoded on the
//! caller's task at the same time, handed over in chunks whose buffers are reused.

use std::sync::Mutex;

use crate::store::StreamEventRef;

/// Events of one stream on their way from the blocking pool to the task that decodes
/// them: every event type and payload of the chunk in one buffer, so a chunk costs no
/// allocation per event (and none at all once its buffers are recycled).
pub(super) struct Chunk {
    bytes: Vec<u8>,
    rows: Vec<ChunkRow>,
}

/// One event of a [`Chunk`]: its type and payload are `bytes[start..type_end]` and
/// `bytes[type_end..payload_end]`, `start` being the previous row's `payload_end`.
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
            bytes: Vec::new(),
            rows: Vec::with_capacity(Self::ROWS),
        }
    }

    pub(super) fn is_full(&self) -> bool {
        self.rows.len() >= Self::ROWS
    }

    pub(super) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub(super) fn push(
        &mut self,
        global_position: u64,
        stream_version: u64,
        event_version: u32,
        event_type: &str,
        payload: &[u8],
    ) {
        if self.bytes.capacity() == 0 {
            // The first row sizes the buffer for a chunk of similar rows.
            self.bytes
                .reserve((event_type.len() + payload.len()) * Self::ROWS);
        }
        self.bytes.extend_from_slice(event_type.as_bytes());
        let type_end = self.bytes.len();
        self.bytes.extend_from_slice(payload);
        self.rows.push(ChunkRow {
            global_position,
            stream_version,
            event_version,
            type_end,
            payload_end: self.bytes.len(),
        });
    }

    /// The chunk's events, in stream order.
    pub(super) fn events(&self) -> impl Iterator<Item = StreamEventRef<'_>> {
        let mut start = 0;
        self.rows.iter().map(move |row| {
            let event_type = self.bytes.get(start..row.type_end).unwrap_or_default();
            let payload = self
                .bytes
                .get(row.type_end..row.payload_end)
                .unwrap_or_default();
            start = row.payload_end;
            StreamEventRef {
                global_position: row.global_position,
                stream_version: row.stream_version,
                // Pushed as a `&str`, so always UTF-8.
                event_type: std::str::from_utf8(event_type).unwrap_or_default(),
                event_version: row.event_version,
                payload,
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
        if chunk.bytes.capacity() > Chunk::KEEP_BYTES {
            return;
        }
        chunk.bytes.clear();
        chunk.rows.clear();
        if let Ok(mut pool) = self.0.lock()
            && pool.len() < Self::KEEP
        {
            pool.push(chunk);
        }
    }
}
