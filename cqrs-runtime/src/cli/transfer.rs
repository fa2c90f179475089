//! `export`, `import` and `copy`: events out of and into stores, with their ids.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use super::output::{json, line};
use super::store::AnyStore;
use super::{CliError, Options, Outcome, Progress};
use crate::envelope::Metadata;
use crate::store::{
    CheckpointCommit, Cursor, ExpectedVersion, NewEvent, StoreError, StoredEvent, StreamAppend,
};

/// The default name of the checkpoint `copy` keeps in the target.
pub(crate) const COPY_CHECKPOINT: &str = "cqrs-cli.copy";

/// One line of an export (see the [module docs](super#the-export-format)).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportedEvent {
    /// The event's id: the idempotency key of the import.
    pub event_id: Uuid,
    /// The stream type.
    pub stream_type: String,
    /// The stream id.
    pub stream_id: String,
    /// The version within the stream, from 1.
    pub stream_version: u64,
    /// The position in the source's log (informational: the target assigns its own).
    pub global_position: u64,
    /// The wire name.
    pub event_type: String,
    /// The version of the payload's shape.
    pub event_version: u32,
    /// The JSON payload, as stored.
    pub payload: Box<RawValue>,
    /// Correlation, causation and user metadata.
    pub metadata: Metadata,
    /// When the event was recorded.
    pub recorded_at: DateTime<Utc>,
}

impl ExportedEvent {
    /// The line of a stored event.
    pub fn from_stored(event: StoredEvent) -> Result<Self, serde_json::Error> {
        Ok(Self {
            payload: serde_json::from_slice(&event.payload)?,
            event_id: event.event_id,
            stream_type: event.stream_type,
            stream_id: event.stream_id,
            stream_version: event.stream_version,
            global_position: event.global_position,
            event_type: event.event_type,
            event_version: event.event_version,
            metadata: event.metadata,
            recorded_at: event.recorded_at,
        })
    }
}

pub(crate) async fn export(
    store: &AnyStore,
    stream_type: Option<&str>,
    stream_id: Option<&str>,
    options: &Options,
    out: &mut (dyn Write + Send),
) -> Result<Outcome, CliError> {
    let mut progress = Progress::new("export", options);
    let mut write = |event: StoredEvent| -> Result<(), CliError> {
        serde_json::to_writer(&mut *out, &ExportedEvent::from_stored(event)?)?;
        writeln!(out).map_err(CliError::io("writing the export"))
    };
    if let (Some(stream_type), Some(stream_id)) = (stream_type, stream_id) {
        let events = store.read_stream(stream_type, stream_id).await?;
        progress.add(events.len() as u64);
        for event in events {
            write(event)?;
        }
    } else {
        let start = store.log_start().await?;
        let mut cursor = Cursor::START;
        loop {
            let batch = store.read_log(cursor, options.batch, &start).await?;
            let Some(&(last, _)) = batch.last() else {
                break;
            };
            cursor = last;
            progress.add(batch.len() as u64);
            for (_, event) in batch {
                if stream_type.is_none_or(|t| t == event.stream_type)
                    && stream_id.is_none_or(|i| i == event.stream_id)
                {
                    write(event)?;
                }
            }
        }
    }
    progress.finish();
    out.flush().map_err(CliError::io("writing the export"))?;
    Ok(Outcome::Clean)
}

/// Groups events into per-stream runs, each appended at the version it held, and writes
/// the runs of a batch together (`append_batch`: one transaction).
struct Appender<'a> {
    store: &'a AnyStore,
    pending: Vec<StreamAppend>,
    pending_events: usize,
    events: u64,
    streams: BTreeSet<(String, String)>,
}

impl<'a> Appender<'a> {
    fn new(store: &'a AnyStore) -> Self {
        Self {
            store,
            pending: Vec::new(),
            pending_events: 0,
            events: 0,
            streams: BTreeSet::new(),
        }
    }

    fn push(&mut self, stream_type: &str, stream_id: &str, stream_version: u64, event: NewEvent) {
        self.pending_events += 1;
        if let Some(run) = self.pending.last_mut()
            && run.stream_type == stream_type
            && run.stream_id == stream_id
            && run.expected.exact().unwrap_or_default() + run.events.len() as u64 + 1
                == stream_version
        {
            run.events.push(event);
            return;
        }
        let expected = ExpectedVersion::from_version(stream_version.saturating_sub(1));
        self.pending.push(StreamAppend::new(
            stream_type,
            stream_id,
            expected,
            vec![event],
        ));
    }

    /// Appends the pending runs in one transaction. Runs that clash with stored ids (part
    /// of them landed before, in other batches) are appended one by one, a clashing run one
    /// event at a time, each idempotently.
    async fn flush(&mut self) -> Result<(), CliError> {
        let appends = std::mem::take(&mut self.pending);
        self.pending_events = 0;
        if appends.is_empty() {
            return Ok(());
        }
        match self.store.append_batch(appends.clone()).await {
            Ok(_) => {}
            Err(StoreError::DuplicateEventId { .. } | StoreError::Conflict { .. }) => {
                for run in appends.iter().cloned() {
                    self.append_run(run).await?;
                }
            }
            Err(e) => return Err(e.into()),
        }
        for run in appends {
            self.events += run.events.len() as u64;
            self.streams.insert((run.stream_type, run.stream_id));
        }
        Ok(())
    }

    async fn append_run(&self, run: StreamAppend) -> Result<(), CliError> {
        let retry = (run.events.len() > 1).then(|| run.events.clone());
        let first = run.expected.exact().unwrap_or_default();
        match self
            .store
            .append(&run.stream_type, &run.stream_id, run.expected, run.events)
            .await
        {
            Ok(_) => Ok(()),
            Err(StoreError::DuplicateEventId { .. }) if retry.is_some() => {
                for (i, event) in retry.into_iter().flatten().enumerate() {
                    self.store
                        .append(
                            &run.stream_type,
                            &run.stream_id,
                            ExpectedVersion::from_version(first + i as u64),
                            vec![event],
                        )
                        .await?;
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn new_event(
    event_id: Uuid,
    event_type: String,
    event_version: u32,
    payload: Vec<u8>,
    metadata: Metadata,
    recorded_at: DateTime<Utc>,
) -> NewEvent {
    NewEvent::new(event_type, event_version, payload, metadata)
        .with_id(event_id)
        .with_recorded_at(recorded_at)
}

/// The `import` report.
#[derive(Debug, Serialize)]
struct Imported {
    file: String,
    /// Events appended or found already stored at their place.
    events: u64,
    streams: u64,
}

pub(crate) async fn import(
    store: &AnyStore,
    path: &str,
    options: &Options,
    out: &mut (dyn Write + Send),
) -> Result<Outcome, CliError> {
    let reader: Box<dyn BufRead + Send> = if path == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(path).map_err(CliError::io(format!("opening {path}")))?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut appender = Appender::new(store);
    let mut progress = Progress::new("import", options);
    for (i, text) in reader.lines().enumerate() {
        let text = text.map_err(CliError::io(format!("reading {path}")))?;
        if text.trim().is_empty() {
            continue;
        }
        let e: ExportedEvent = serde_json::from_str(&text).map_err(|source| CliError::BadLine {
            path: path.to_owned(),
            line: i + 1,
            source,
        })?;
        let event = new_event(
            e.event_id,
            e.event_type,
            e.event_version,
            e.payload.get().as_bytes().to_vec(),
            e.metadata,
            e.recorded_at,
        );
        appender.push(&e.stream_type, &e.stream_id, e.stream_version, event);
        if appender.pending_events >= options.batch {
            appender.flush().await?;
        }
        progress.add(1);
    }
    appender.flush().await?;
    progress.finish();
    let report = Imported {
        file: path.to_owned(),
        events: appender.events,
        streams: appender.streams.len() as u64,
    };
    if options.json {
        json(out, &report)?;
    } else {
        line(
            out,
            &format!(
                "imported {} events of {} streams from {} (events already stored at their place are kept)",
                report.events, report.streams, report.file
            ),
        )?;
    }
    Ok(Outcome::Clean)
}

/// `copy`'s own options.
pub(crate) struct CopyArgs {
    pub(crate) checkpoint: String,
    pub(crate) limit: Option<u64>,
    pub(crate) verify: bool,
}

/// The `copy` report.
#[derive(Debug, Serialize)]
struct Copied {
    /// Events appended (or found already stored) by this run.
    events: u64,
    /// The source's global position this run resumed after (0: from the start).
    resumed_after: u64,
    /// The source's global position of the last event copied.
    cursor: u64,
    /// Whether the source was read to its end (false when `--limit` stopped the copy).
    complete: bool,
    /// The comparison of both stores, when the copy is complete and verified.
    verification: Option<Verification>,
}

/// Both stores compared stream by stream.
#[derive(Debug, Serialize)]
struct Verification {
    ok: bool,
    source_streams: u64,
    source_events: u64,
    target_streams: u64,
    target_events: u64,
    /// Streams whose count, version or checksum differ, or that only one store holds.
    mismatches: Vec<Mismatch>,
}

#[derive(Debug, Serialize)]
struct Mismatch {
    stream_type: String,
    stream_id: String,
    source: Option<StreamSum>,
    target: Option<StreamSum>,
}

/// A stream's event count, version and checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct StreamSum {
    events: u64,
    version: u64,
    checksum: u64,
}

pub(crate) async fn copy(
    from: &AnyStore,
    to: &AnyStore,
    args: &CopyArgs,
    options: &Options,
    out: &mut (dyn Write + Send),
) -> Result<Outcome, CliError> {
    let claimed = to.claim(&args.checkpoint).await?;
    let mut cursor = claimed.cursor;
    let resumed_after = cursor.position;
    let mut appender = Appender::new(to);
    let mut progress = Progress::new("copy", options);
    let start = from.log_start().await?;
    let head = from.head().await?.position;
    progress.total(match args.limit {
        Some(limit) => limit.min(head.saturating_sub(resumed_after)),
        None => head.saturating_sub(resumed_after),
    });
    let mut complete = true;
    loop {
        let want = match args.limit {
            Some(limit) => {
                let left = limit.saturating_sub(appender.events);
                if left == 0 {
                    complete = false;
                    break;
                }
                usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(options.batch)
            }
            None => options.batch,
        };
        let batch = from.read_log(cursor, want, &start).await?;
        let Some(&(last, _)) = batch.last() else {
            break;
        };
        let n = batch.len() as u64;
        for (_, e) in batch {
            let event = new_event(
                e.event_id,
                e.event_type,
                e.event_version,
                e.payload,
                e.metadata,
                e.recorded_at,
            );
            appender.push(&e.stream_type, &e.stream_id, e.stream_version, event);
        }
        appender.flush().await?;
        to.commit(
            &args.checkpoint,
            CheckpointCommit::advance(claimed.fence, last, 0, 0),
        )
        .await?;
        cursor = last;
        progress.add(n);
    }
    progress.finish();
    if complete && args.limit.is_some() {
        // A limit that ends exactly at the source's end: the next read is empty.
        complete = from.read_log(cursor, 1, &start).await?.is_empty();
    }
    let verification = if complete && args.verify {
        Some(compare(from, to, options).await?)
    } else {
        None
    };
    let ok = verification.as_ref().is_none_or(|v| v.ok);
    let report = Copied {
        events: appender.events,
        resumed_after,
        cursor: cursor.position,
        complete,
        verification,
    };
    if options.json {
        json(out, &report)?;
    } else {
        render_copy(&report, out)?;
    }
    Ok(if ok {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}

fn render_copy(report: &Copied, out: &mut (dyn Write + Send)) -> Result<(), CliError> {
    line(
        out,
        &format!(
            "copied {} events (resumed after source position {}, now at {})",
            report.events, report.resumed_after, report.cursor
        ),
    )?;
    if !report.complete {
        line(
            out,
            "stopped at --limit: run the same command again to resume",
        )?;
    }
    let Some(v) = &report.verification else {
        return Ok(());
    };
    line(
        out,
        &format!(
            "source: {} streams, {} events; target: {} streams, {} events",
            v.source_streams, v.source_events, v.target_streams, v.target_events
        ),
    )?;
    for m in &v.mismatches {
        let show = |s: &Option<StreamSum>| {
            s.map_or_else(
                || "absent".to_owned(),
                |s| {
                    format!(
                        "{} events, version {}, checksum {:016x}",
                        s.events, s.version, s.checksum
                    )
                },
            )
        };
        line(
            out,
            &format!(
                "  differs: {}/{}: source {}; target {}",
                m.stream_type,
                m.stream_id,
                show(&m.source),
                show(&m.target)
            ),
        )?;
    }
    line(
        out,
        if v.ok {
            "verified: every stream is identical"
        } else {
            "verification FAILED"
        },
    )
}

async fn compare(
    from: &AnyStore,
    to: &AnyStore,
    options: &Options,
) -> Result<Verification, CliError> {
    let source = checksums(from, options).await?;
    let target = checksums(to, options).await?;
    let total =
        |sums: &BTreeMap<(String, String), StreamSum>| sums.values().map(|s| s.events).sum();
    let keys: BTreeSet<&(String, String)> = source.keys().chain(target.keys()).collect();
    let mismatches: Vec<Mismatch> = keys
        .into_iter()
        .filter(|k| source.get(*k) != target.get(*k))
        .map(|k| Mismatch {
            stream_type: k.0.clone(),
            stream_id: k.1.clone(),
            source: source.get(k).copied(),
            target: target.get(k).copied(),
        })
        .collect();
    Ok(Verification {
        ok: mismatches.is_empty(),
        source_streams: source.len() as u64,
        source_events: total(&source),
        target_streams: target.len() as u64,
        target_events: total(&target),
        mismatches,
    })
}

/// Every stream's count, version and checksum (see [`event_checksum`]), read in commit order.
pub(crate) async fn checksums(
    store: &AnyStore,
    options: &Options,
) -> Result<BTreeMap<(String, String), StreamSum>, CliError> {
    let mut sums: BTreeMap<(String, String), StreamSum> = BTreeMap::new();
    let mut progress = Progress::new("checksums", options);
    progress.total(store.head().await?.position);
    let start = store.log_start().await?;
    let mut cursor = Cursor::START;
    loop {
        let batch = store.read_log(cursor, options.batch, &start).await?;
        let Some(&(last, _)) = batch.last() else {
            break;
        };
        cursor = last;
        progress.add(batch.len() as u64);
        for (_, e) in batch {
            let sum = sums
                .entry((e.stream_type.clone(), e.stream_id.clone()))
                .or_insert(StreamSum {
                    events: 0,
                    version: 0,
                    checksum: cqrs_lock::FNV_OFFSET,
                });
            sum.events += 1;
            sum.version = sum.version.max(e.stream_version);
            sum.checksum = event_checksum(sum.checksum, &e)?;
        }
    }
    progress.finish();
    Ok(sums)
}

/// Folds one event into a stream's checksum (FNV-1a, not cryptographic): its id, version,
/// wire name and version, payload and metadata as canonical JSON (objects' keys sorted, no
/// whitespace), and `recorded_at` in microseconds.
fn event_checksum(hash: u64, e: &StoredEvent) -> Result<u64, CliError> {
    use cqrs_lock::fnv1a;
    let mut hash = fnv1a(hash, e.event_id.as_bytes());
    hash = fnv1a(hash, &e.stream_version.to_le_bytes());
    hash = fnv1a(hash, e.event_type.as_bytes());
    hash = fnv1a(hash, &[0]);
    hash = fnv1a(hash, &e.event_version.to_le_bytes());
    let payload: serde_json::Value = serde_json::from_slice(&e.payload)?;
    hash = fnv1a(hash, canonical(&payload).as_bytes());
    hash = fnv1a(hash, &[0]);
    let metadata = serde_json::to_value(&e.metadata)?;
    hash = fnv1a(hash, canonical(&metadata).as_bytes());
    hash = fnv1a(hash, &e.recorded_at.timestamp_micros().to_le_bytes());
    Ok(hash)
}

/// `value` as JSON with every object's keys sorted and no whitespace.
fn canonical(value: &serde_json::Value) -> String {
    fn write(value: &serde_json::Value, out: &mut String) {
        use serde_json::Value;
        match value {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (i, (k, v)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(v, out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(v, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn canonical_json_sorts_keys_and_drops_whitespace() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b": [1, {"d":2,"c":3}], "a": "x"}"#).expect("json");
        assert_eq!(canonical(&a), r#"{"a":"x","b":[1,{"c":3,"d":2}]}"#);
    }
}
