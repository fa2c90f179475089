//! The PostgreSQL store's SQL text: migrations and statements. Schema and table names are
//! validated identifiers spliced in once, at connect; every value is a bound parameter.

use tokio_postgres::Transaction;

use super::db;
use crate::backends::names::{Ident, TableNames};
use crate::store::StoreError;

/// The schema versions, applied in order, each once (see `PostgresEventStore::migrate`).
pub(super) fn migrations(schema: &Ident, t: &TableNames) -> Vec<String> {
    let q = |table: &Ident| format!("{schema}.{table}");
    let (events, snapshots, checkpoints) = (q(&t.events), q(&t.snapshots), q(&t.checkpoints));
    let (dead_letters, claims) = (q(&t.dead_letters), q(&t.claims));
    let name = |suffix: &str| format!("\"{}_{suffix}\"", t.events.as_str());
    let (stream_key, id_key, tx_index) = (name("stream_key"), name("event_id_key"), name("tx"));
    let (by_type, by_name) = (name("stream_type_tx"), name("event_type_tx"));
    vec![
        format!(
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
        ),
        // One checkpoint concept: identity, generation and fence join the cursor; dead letters
        // are kept beside it.
        format!(
            "ALTER TABLE {checkpoints} RENAME COLUMN projection TO name;
        ALTER TABLE {checkpoints}
            ADD COLUMN version     bigint NOT NULL DEFAULT 0,
            ADD COLUMN fingerprint bigint NOT NULL DEFAULT 0,
            ADD COLUMN generation  bigint NOT NULL DEFAULT 0,
            ADD COLUMN fence       bigint NOT NULL DEFAULT 0;
        CREATE TABLE IF NOT EXISTS {dead_letters} (
            name           text        NOT NULL,
            position       bigint      NOT NULL,
            tx             bigint      NOT NULL,
            event_id       uuid,
            stream_type    text        NOT NULL,
            stream_id      text        NOT NULL,
            stream_version bigint      NOT NULL,
            event_type     text        NOT NULL,
            event_version  bigint      NOT NULL,
            error          text        NOT NULL,
            recorded_at    timestamptz NOT NULL,
            PRIMARY KEY (name, position)
        );"
        ),
        // Claims: values held exclusively per scope, taken and released with the events.
        format!(
            "CREATE TABLE IF NOT EXISTS {claims} (
            scope       text   NOT NULL,
            value       text   NOT NULL,
            stream_type text   NOT NULL,
            stream_id   text   NOT NULL,
            position    bigint NOT NULL,
            PRIMARY KEY (scope, value)
        );"
        ),
        // Filtered reads: each stream type and each wire name is an index range in the log's
        // commit order.
        format!(
            "CREATE INDEX IF NOT EXISTS {by_type} ON {events} (stream_type, tx_id, global_position);
        CREATE INDEX IF NOT EXISTS {by_name} ON {events} (event_type, tx_id, global_position);"
        ),
    ]
}

/// Read models of earlier versions kept their checkpoints in a table of their own in their
/// schema; the checkpoints table now holds them (identity included).
pub(super) async fn adopt_read_model_checkpoints(
    tx: &Transaction<'_>,
    schema: &Ident,
    t: &TableNames,
) -> Result<(), StoreError> {
    let legacy: bool = tx
        .query_one(
            "SELECT to_regclass(format('%I.read_model_checkpoints', $1::text)) IS NOT NULL",
            &[&schema.as_str()],
        )
        .await
        .and_then(|row| row.try_get(0))
        .map_err(db)?;
    if legacy {
        tx.batch_execute(&format!(
            "INSERT INTO {schema}.{} (name, last_tx_id, last_position, version, fingerprint, \
             generation, fence, updated_at) SELECT projection, last_tx_id, last_position, version, \
             fingerprint, 0, 0, updated_at FROM {schema}.read_model_checkpoints \
             ON CONFLICT (name) DO NOTHING",
            t.checkpoints
        ))
        .await
        .map_err(db)?;
    }
    Ok(())
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
    pub(super) search_path: String,
    pub(super) append_new: String,
    pub(super) append_exact: String,
    pub(super) append_any: String,
    pub(super) claiming_new: String,
    pub(super) claiming_exact: String,
    pub(super) claiming_any: String,
    pub(super) claim_holder: String,
    pub(super) claims_lock: String,
    pub(super) claims_tail: String,
    pub(super) claims_live: String,
    pub(super) claims_remove: String,
    pub(super) claims_upsert: String,
    pub(super) head: String,
    pub(super) slots: String,
    pub(super) batch_heads: String,
    pub(super) append_batch: String,
    pub(super) read_stream: String,
    pub(super) read_stream_events: String,
    pub(super) read_after: String,
    pub(super) read_filtered: String,
    pub(super) log_head: String,
    pub(super) read_event: String,
    pub(super) checkpoint: String,
    pub(super) checkpoint_for_update: String,
    pub(super) claim: String,
    pub(super) checkpoint_update: String,
    pub(super) dead_insert: String,
    pub(super) dead_remove: String,
    pub(super) dead_clear: String,
    pub(super) dead_select: String,
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

/// An append statement that also takes and releases the batch's claims, in the same
/// statement (one round trip): `$10`/`$11` are the claimed scopes and values, `$14` the index
/// of the claiming event in the batch, `$12`/`$13` the released scopes and values. A value
/// another stream holds makes the statement divide by zero (SQLSTATE 22012), which aborts it
/// whole: no event and no claim is stored, and the store then looks up who holds what. Claims
/// and releases apply only when the events were inserted.
///
/// Each claim and release array is read through `LIMIT cardinality(..)`, which returns every
/// element and tells the planner nothing of the array's length: it then estimates one row
/// instead of ten for an `unnest` of a parameter. With ten, the generic plan's release join
/// (ten index probes) costs more than a custom plan, so PostgreSQL planned the statement anew
/// at every execution (about 0.6 ms, more than the statement's execution); with one row the
/// cached generic plan is kept after the first five executions.
fn claiming(insert: &str, claims: &str, notify: Option<&Ident>) -> String {
    let note = notify.map_or(String::new(), |channel| {
        format!(
            "note AS (SELECT pg_notify('{}', max(global_position)::text) FROM ins \
             HAVING count(*) > 0), ",
            channel.as_str()
        )
    });
    let join = if notify.is_some() {
        " LEFT JOIN note ON true"
    } else {
        ""
    };
    format!(
        "WITH ins AS ({insert}), {note}\
         c AS (INSERT INTO {claims} AS h (scope, value, stream_type, stream_id, position) \
           SELECT x.scope, x.value, $1::text, $2::text, \
             (SELECT i.global_position FROM ins i WHERE i.stream_version = \
               (SELECT min(stream_version) FROM ins) + x.n) \
           FROM (SELECT * FROM unnest($10::text[], $11::text[], $14::int4[]) \
             LIMIT cardinality($10::text[])) AS x(scope, value, n) \
           WHERE EXISTS (SELECT 1 FROM ins) \
           ON CONFLICT (scope, value) DO UPDATE SET position = h.position \
           WHERE h.stream_type = excluded.stream_type AND h.stream_id = excluded.stream_id \
           RETURNING 1), \
         r AS (DELETE FROM {claims} d USING (SELECT * FROM unnest($12::text[], $13::text[]) \
             LIMIT cardinality($12::text[])) AS y(scope, value) \
           WHERE d.scope = y.scope AND d.value = y.value AND d.stream_type = $1::text \
           AND d.stream_id = $2::text AND EXISTS (SELECT 1 FROM ins) RETURNING 1) \
         SELECT ins.global_position, ins.stream_version, \
           1 / (CASE WHEN (SELECT count(*) FROM c) = cardinality($10::text[]) THEN 1 ELSE 0 END) \
           + 0 * (SELECT count(*) FROM r) \
         FROM ins{join}"
    )
}

impl Texts {
    /// The statements of a store in `schema` with tables `t`; with `notify`, every append also
    /// notifies that channel (see [`notifying`]).
    pub(super) fn new(schema: &Ident, t: &TableNames, notify: Option<&Ident>) -> Self {
        let mut texts = Self::plain(schema, t);
        let claims = format!("{schema}.{}", t.claims);
        texts.claiming_new = claiming(&texts.append_new, &claims, notify);
        texts.claiming_exact = claiming(&texts.append_exact, &claims, notify);
        texts.claiming_any = claiming(&texts.append_any, &claims, notify);
        if let Some(channel) = notify {
            // Every checkpoint commit notifies too, in its transaction (so on its commit).
            let checkpoints = super::notify::checkpoint_channel(channel);
            texts.checkpoint_update = format!(
                "WITH up AS ({} RETURNING last_position) \
                 SELECT pg_notify('{}', (SELECT last_position FROM up)::text)",
                texts.checkpoint_update,
                checkpoints.as_str()
            );
            for append in [
                &mut texts.append_new,
                &mut texts.append_exact,
                &mut texts.append_any,
                &mut texts.append_batch,
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
        let dead = format!("{schema}.{}", t.dead_letters);
        let claims = format!("{schema}.{}", t.claims);
        let checkpoint_columns =
            "last_tx_id, last_position, version, fingerprint, generation, fence";
        let select_batch = "b.event_id, b.event_type, b.event_version, b.payload::jsonb, \
            b.metadata::jsonb, b.recorded_at";
        Self {
            search_path: format!("SET search_path TO {schema}"),
            claiming_new: String::new(),
            claiming_exact: String::new(),
            claiming_any: String::new(),
            claim_holder: format!(
                "SELECT stream_type, stream_id, position FROM {schema}.{} \
                 WHERE scope = $1 AND value = $2",
                t.claims
            ),
            // Conflicts with the row-exclusive lock of every statement that writes claims
            // (and with itself): claiming appends wait, others go on.
            claims_lock: format!("LOCK TABLE {claims} IN SHARE ROW EXCLUSIVE MODE"),
            // Under that lock every claiming append has committed: no need to hold events
            // back behind open transactions, as `read_after` does.
            claims_tail: format!(
                "SELECT {COLUMNS}, (tx_id::text)::int8 AS tx FROM {events} \
                 WHERE (tx_id, global_position) > ((($1::int8)::text)::xid8, $2::int8) \
                 ORDER BY tx_id, global_position LIMIT $3"
            ),
            claims_live: format!(
                "SELECT scope, value, stream_type, stream_id, position FROM {claims} \
                 WHERE scope = ANY($1::text[])"
            ),
            claims_remove: format!(
                "DELETE FROM {claims} d USING unnest($1::text[], $2::text[]) AS x(scope, value) \
                 WHERE d.scope = x.scope AND d.value = x.value"
            ),
            claims_upsert: format!(
                "INSERT INTO {claims} (scope, value, stream_type, stream_id, position) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], \
                 $5::int8[]) ON CONFLICT (scope, value) DO UPDATE SET \
                 stream_type = excluded.stream_type, stream_id = excluded.stream_id, \
                 position = excluded.position"
            ),
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
            // The head of each stream of a multi-stream batch (`append_batch`).
            batch_heads: format!(
                "SELECT s.t, s.i, coalesce((SELECT max(stream_version) FROM {events} e \
                 WHERE e.stream_type = s.t AND e.stream_id = s.i), 0) \
                 FROM unnest($1::text[], $2::text[]) AS s(t, i)"
            ),
            // A multi-stream batch at the versions the store computed from `batch_heads` in
            // the same transaction: the unique key refuses a stream another writer moved
            // meanwhile. Rows are inserted, and so take positions, in array order.
            append_batch: format!(
                "INSERT INTO {events} {INSERT_COLUMNS} \
                 SELECT b.stream_type, b.stream_id, b.stream_version, b.event_id, b.event_type, \
                 b.event_version, b.payload::jsonb, b.metadata::jsonb, b.recorded_at \
                 FROM unnest($1::text[], $2::text[], $3::int8[], $4::uuid[], $5::text[], \
                 $6::int4[], $7::text[], $8::text[], $9::timestamptz[]) AS b(stream_type, \
                 stream_id, stream_version, event_id, event_type, event_version, payload, \
                 metadata, recorded_at) \
                 RETURNING global_position, stream_version"
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
            // Only transactions below the snapshot's xmin: every one of them has committed or
            // aborted, so no event can still appear behind the returned cursor.
            // The cast column is named `tx`: unnamed, it would be called `tx_id`, and
            // `ORDER BY tx_id` would sort by it instead of reading the index in order.
            read_after: format!(
                "SELECT {COLUMNS}, (tx_id::text)::int8 AS tx FROM {events} \
                 WHERE (tx_id, global_position) > ((($1::int8)::text)::xid8, $2::int8) \
                 AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
                 ORDER BY tx_id, global_position LIMIT $3"
            ),
            // `read_after` through a filter, in one statement (one snapshot, one xmin): per
            // stream type (`$4`) and per name (`$5`, in other streams), an index range in
            // commit order below the xmin, at most `$3` rows each, merged. Every row carries
            // the last event below the xmin in commit order (the end of what the read
            // examined when fewer than `$3` events match); with no match, one row carries it
            // alone. The row comparisons lead with the filtered column so that only the
            // `(stream_type | event_type, tx_id, global_position)` indexes can serve them: the
            // planner cannot tell how rare a value from `unnest` is, and would otherwise walk
            // the whole commit-order index with a filter.
            read_filtered: format!(
                "WITH b AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin), \
                 hits AS ( \
                   SELECT h.* FROM b, unnest($4::text[]) AS f(v) CROSS JOIN LATERAL ( \
                     SELECT {COLUMNS}, (tx_id::text)::int8 AS tx FROM {events} \
                     WHERE stream_type = f.v AND (stream_type, tx_id, global_position) > \
                       (f.v, (($1::int8)::text)::xid8, $2::int8) \
                     AND tx_id < b.xmin ORDER BY stream_type, tx_id, global_position LIMIT $3) h \
                   UNION ALL \
                   SELECT h.* FROM b, unnest($5::text[]) AS f(v) CROSS JOIN LATERAL ( \
                     SELECT {COLUMNS}, (tx_id::text)::int8 AS tx FROM {events} \
                     WHERE event_type = f.v AND stream_type <> ALL($4::text[]) \
                     AND (event_type, tx_id, global_position) > \
                       (f.v, (($1::int8)::text)::xid8, $2::int8) \
                     AND tx_id < b.xmin ORDER BY event_type, tx_id, global_position LIMIT $3) h), \
                 tail AS ( \
                   SELECT (e.tx_id::text)::int8 AS tx, e.global_position FROM {events} e, b \
                   WHERE e.tx_id < b.xmin ORDER BY e.tx_id DESC, e.global_position DESC LIMIT 1) \
                 SELECT m.*, tail.tx, tail.global_position FROM (SELECT 1) AS one \
                 LEFT JOIN LATERAL (SELECT * FROM hits ORDER BY tx, global_position LIMIT $3) m \
                 ON true LEFT JOIN tail ON true ORDER BY m.tx, m.global_position"
            ),
            // The transactions below the snapshot's xmin are all finished: a cursor just below
            // it is after every event `read_after` has shown or will show from them.
            log_head: format!(
                "SELECT (pg_snapshot_xmin(pg_current_snapshot())::text)::int8 - 1, \
                 coalesce(max(global_position), 0) FROM {events}"
            ),
            read_event: format!(
                "SELECT {COLUMNS}, (tx_id::text)::int8 FROM {events} WHERE event_id = $1"
            ),
            checkpoint: format!("SELECT {checkpoint_columns} FROM {checkpoints} WHERE name = $1"),
            checkpoint_for_update: format!(
                "SELECT {checkpoint_columns} FROM {checkpoints} WHERE name = $1 FOR UPDATE"
            ),
            claim: format!(
                "INSERT INTO {checkpoints} AS c (name, last_tx_id, last_position, version, \
                 fingerprint, generation, fence) VALUES ($1, 0, 0, 0, 0, 0, 1) \
                 ON CONFLICT (name) DO UPDATE SET fence = c.fence + 1, updated_at = now() \
                 RETURNING {checkpoint_columns}"
            ),
            checkpoint_update: format!(
                "UPDATE {checkpoints} SET last_tx_id = $2, last_position = $3, version = $4, \
                 fingerprint = $5, generation = $6, updated_at = now() WHERE name = $1"
            ),
            dead_insert: format!(
                "INSERT INTO {dead} (name, position, tx, event_id, stream_type, stream_id, \
                 stream_version, event_type, event_version, error, recorded_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (name, position) DO UPDATE SET error = excluded.error, \
                 recorded_at = excluded.recorded_at"
            ),
            dead_remove: format!("DELETE FROM {dead} WHERE name = $1 AND position = $2"),
            dead_clear: format!("DELETE FROM {dead} WHERE name = $1"),
            dead_select: format!(
                "SELECT position, tx, event_id, stream_type, stream_id, stream_version, event_type, \
                 event_version, error, recorded_at FROM {dead} WHERE name = $1 ORDER BY position"
            ),
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
