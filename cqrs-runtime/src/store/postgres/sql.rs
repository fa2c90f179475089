//! The PostgreSQL store's SQL text: migrations and statements. Schema and table names are
//! validated identifiers spliced in once, at connect; every value is a bound parameter.

use crate::store::names::{Ident, TableNames};

/// The schema versions, applied in order, each once (see `PostgresEventStore::migrate`).
pub(super) fn migrations(schema: &Ident, t: &TableNames) -> Vec<String> {
    let q = |table: &Ident| format!("{schema}.{table}");
    let (events, snapshots, checkpoints) = (q(&t.events), q(&t.snapshots), q(&t.checkpoints));
    let name = |suffix: &str| format!("\"{}_{suffix}\"", t.events.as_str());
    let (stream_key, id_key, tx_index) = (name("stream_key"), name("event_id_key"), name("tx"));
    vec![format!(
        "CREATE TABLE IF NOT EXISTS {events} (
            global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tx_id           xid8        NOT NULL DEFAULT pg_current_xact_id(),
            stream_type     text        NOT NULL,
            stream_id       text        NOT NULL,
            stream_version  bigint      NOT NULL,
            event_id        uuid        NOT NULL,
            event_type      text        NOT NULL,
            event_version   integer     NOT NULL,
            payload         jsonb       NOT NULL,
            metadata        jsonb       NOT NULL,
            recorded_at     timestamptz NOT NULL,
            CONSTRAINT {stream_key} UNIQUE (stream_type, stream_id, stream_version),
            CONSTRAINT {id_key} UNIQUE (event_id)
        );
        CREATE INDEX IF NOT EXISTS {tx_index} ON {events} (tx_id, global_position);
        CREATE TABLE IF NOT EXISTS {snapshots} (
            stream_type       text        NOT NULL,
            stream_id         text        NOT NULL,
            version           bigint      NOT NULL,
            state_fingerprint bigint      NOT NULL,
            payload           bytea       NOT NULL,
            taken_at          timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (stream_type, stream_id)
        );
        CREATE TABLE IF NOT EXISTS {checkpoints} (
            projection    text        PRIMARY KEY,
            last_tx_id    bigint      NOT NULL,
            last_position bigint      NOT NULL,
            updated_at    timestamptz NOT NULL DEFAULT now()
        );"
    )]
}

/// The columns every event read returns, in the order `row_to_event` expects.
const COLUMNS: &str = "global_position, stream_type, stream_id, stream_version, event_id, \
    event_type, event_version, payload::text, metadata::text, recorded_at";

const INSERT_COLUMNS: &str = "(stream_type, stream_id, stream_version, event_id, event_type, \
    event_version, payload, metadata, recorded_at)";

const BATCH: &str = "unnest($4::uuid[], $5::text[], $6::int4[], $7::text[], $8::text[], \
    $9::timestamptz[]) WITH ORDINALITY AS b(event_id, event_type, event_version, payload, \
    metadata, recorded_at, n)";

/// Every statement, as text; each connection prepares them once.
pub(super) struct Texts {
    pub(super) append_new: String,
    pub(super) append_exact: String,
    pub(super) append_any: String,
    pub(super) head: String,
    pub(super) slots: String,
    pub(super) read_stream: String,
    pub(super) read_stream_events: String,
    pub(super) read_all: String,
    pub(super) read_after: String,
    pub(super) head_position: String,
    pub(super) load_checkpoint: String,
    pub(super) save_checkpoint: String,
    pub(super) reset_checkpoint: String,
    pub(super) load_snapshot: String,
    pub(super) save_snapshot: String,
}

/// An append statement that also notifies `channel` of the last position it stored, in the
/// same statement (so still one round trip per command). An append that stores nothing
/// (refused) notifies nobody: the notification is computed from the inserted rows.
fn notifying(insert: String, channel: &Ident) -> String {
    let channel = channel.as_str(); // validated: `[a-z_][a-z0-9_]*`, safe as a literal
    format!(
        "WITH ins AS ({insert}), \
         note AS (SELECT pg_notify('{channel}', max(global_position)::text) FROM ins \
           HAVING count(*) > 0) \
         SELECT ins.global_position, ins.stream_version FROM ins LEFT JOIN note ON true"
    )
}

impl Texts {
    /// The statements of a store in `schema` with tables `t`; with `notify`, every append also
    /// notifies that channel (see [`notifying`]).
    pub(super) fn new(schema: &Ident, t: &TableNames, notify: Option<&Ident>) -> Self {
        let mut texts = Self::plain(schema, t);
        if let Some(channel) = notify {
            for append in [
                &mut texts.append_new,
                &mut texts.append_exact,
                &mut texts.append_any,
            ] {
                *append = notifying(std::mem::take(append), channel);
            }
        }
        texts
    }

    fn plain(schema: &Ident, t: &TableNames) -> Self {
        let events = format!("{schema}.{}", t.events);
        let snapshots = format!("{schema}.{}", t.snapshots);
        let checkpoints = format!("{schema}.{}", t.checkpoints);
        let select_batch = "b.event_id, b.event_type, b.event_version, b.payload::jsonb, \
            b.metadata::jsonb, b.recorded_at";
        Self {
            // No existence check: for a new stream (`$3 = 0`), where the unique key alone
            // refuses a stream that exists, and for an exact version the store knows to be
            // stored (`heads.rs`), where it refuses a stream that is ahead. The check below
            // costs about 10% of single-writer throughput even when it could be skipped.
            append_new: format!(
                "INSERT INTO {events} {INSERT_COLUMNS} \
                 SELECT $1::text, $2::text, $3::int8 + b.n, {select_batch} FROM {BATCH} \
                 RETURNING global_position, stream_version"
            ),
            // Neither this statement nor `append_new` sorts: the plan is the `unnest` function
            // scan feeding the INSERT (behind a one-time filter), which inserts, and so takes
            // positions, in array order; a `Sort` node there cost about 15% of the
            // throughput of 8 concurrent single-event writers (measured). The outcome pairs
            // positions with versions by sorting on the version anyway.
            //
            // One statement per command, whatever the batch size. `$3` (at least 1) is the
            // expected version: the batch takes `$3 + 1 ..`, and version `$3` must exist (else
            // the stream is behind and nothing is inserted); the unique key catches a stream
            // ahead.
            append_exact: format!(
                "INSERT INTO {events} {INSERT_COLUMNS} \
                 SELECT $1::text, $2::text, $3::int8 + b.n, {select_batch} FROM {BATCH} \
                 WHERE EXISTS (SELECT 1 FROM {events} \
                   WHERE stream_type = $1::text AND stream_id = $2::text AND stream_version = $3::int8) \
                 RETURNING global_position, stream_version"
            ),
            // `$3` is unused by the any-version append but keeps the parameter list shared.
            append_any: format!(
                "INSERT INTO {events} {INSERT_COLUMNS} \
                 SELECT $1::text, $2::text, h.head + b.n, {select_batch} \
                 FROM (SELECT coalesce(max(stream_version), 0) + 0 * $3::int8 AS head FROM {events} \
                   WHERE stream_type = $1::text AND stream_id = $2::text) h, {BATCH} \
                 ORDER BY b.n RETURNING global_position, stream_version"
            ),
            head: format!(
                "SELECT coalesce(max(stream_version), 0) FROM {events} \
                 WHERE stream_type = $1 AND stream_id = $2"
            ),
            slots: format!(
                "SELECT event_id, stream_type, stream_id, stream_version, global_position \
                 FROM {events} WHERE event_id = ANY($1::uuid[])"
            ),
            read_stream: format!(
                "SELECT {COLUMNS} FROM {events} WHERE stream_type = $1 AND stream_id = $2 \
                 AND stream_version >= $3 ORDER BY stream_version"
            ),
            read_stream_events: format!(
                "SELECT global_position, stream_version, event_type, event_version, payload::text \
                 FROM {events} WHERE stream_type = $1 AND stream_id = $2 \
                 AND stream_version >= $3 ORDER BY stream_version"
            ),
            read_all: format!(
                "SELECT {COLUMNS} FROM {events} WHERE global_position > $1 \
                 ORDER BY global_position LIMIT $2"
            ),
            // Only transactions below the snapshot's xmin: every one of them has committed or
            // aborted, so no event can still appear behind the returned cursor.
            read_after: format!(
                "SELECT {COLUMNS}, (tx_id::text)::int8 FROM {events} \
                 WHERE (tx_id, global_position) > ((($1::int8)::text)::xid8, $2::int8) \
                 AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
                 ORDER BY tx_id, global_position LIMIT $3"
            ),
            head_position: format!("SELECT coalesce(max(global_position), 0) FROM {events}"),
            load_checkpoint: format!(
                "SELECT last_tx_id, last_position FROM {checkpoints} WHERE projection = $1"
            ),
            save_checkpoint: format!(
                "INSERT INTO {checkpoints} (projection, last_tx_id, last_position) \
                 VALUES ($1, $2, $3) ON CONFLICT (projection) DO UPDATE SET \
                 last_tx_id = excluded.last_tx_id, last_position = excluded.last_position, \
                 updated_at = now()"
            ),
            reset_checkpoint: format!("DELETE FROM {checkpoints} WHERE projection = $1"),
            load_snapshot: format!(
                "SELECT version, state_fingerprint, payload FROM {snapshots} \
                 WHERE stream_type = $1 AND stream_id = $2"
            ),
            save_snapshot: format!(
                "INSERT INTO {snapshots} AS s (stream_type, stream_id, version, \
                 state_fingerprint, payload) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (stream_type, stream_id) DO UPDATE SET version = excluded.version, \
                 state_fingerprint = excluded.state_fingerprint, payload = excluded.payload, \
                 taken_at = now() WHERE excluded.version > s.version"
            ),
        }
    }
}
