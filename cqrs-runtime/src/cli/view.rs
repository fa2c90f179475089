//! `streams`, `events` and `schema`: what is stored, and what the registered types decode.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::output::{json, line, table};
use super::store::AnyStore;
use super::{Cli, CliError, Options, Outcome, Progress};
use crate::envelope::Metadata;
use crate::schema::lock;
use crate::store::Cursor;

/// One stream of the `streams` report.
#[derive(Debug, Serialize)]
struct StreamInfo {
    stream_type: String,
    stream_id: String,
    version: u64,
    events: u64,
    last_write: DateTime<Utc>,
}

pub(crate) fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) async fn streams(
    store: &AnyStore,
    options: &Options,
    out: &mut (dyn Write + Send),
) -> Result<Outcome, CliError> {
    let mut streams: BTreeMap<(String, String), StreamInfo> = BTreeMap::new();
    let mut progress = Progress::new("streams", options);
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
            let info = streams
                .entry((e.stream_type.clone(), e.stream_id.clone()))
                .or_insert_with(|| StreamInfo {
                    stream_type: e.stream_type,
                    stream_id: e.stream_id,
                    version: 0,
                    events: 0,
                    last_write: e.recorded_at,
                });
            info.version = info.version.max(e.stream_version);
            info.events += 1;
            info.last_write = info.last_write.max(e.recorded_at);
        }
    }
    progress.finish();
    let streams: Vec<StreamInfo> = streams.into_values().collect();
    if options.json {
        json(out, &streams)?;
    } else {
        let rows: Vec<Vec<String>> = streams
            .iter()
            .map(|s| {
                vec![
                    s.stream_type.clone(),
                    s.stream_id.clone(),
                    s.version.to_string(),
                    s.events.to_string(),
                    time(&s.last_write),
                ]
            })
            .collect();
        table(
            out,
            &[
                "STREAM TYPE",
                "STREAM ID",
                "VERSION",
                "EVENTS",
                "LAST WRITE",
            ],
            &rows,
        )?;
        line(out, &format!("{} streams", streams.len()))?;
    }
    Ok(Outcome::Clean)
}

/// One event of the `events` report.
#[derive(Debug, Serialize)]
struct EventInfo {
    stream_version: u64,
    global_position: u64,
    event_id: Uuid,
    event_type: String,
    event_version: u32,
    recorded_at: DateTime<Utc>,
    payload: serde_json::Value,
    metadata: Metadata,
    /// The decoded value's `Debug`, when the stream type is registered and it decodes.
    decoded: Option<String>,
    /// Why it does not decode, when the stream type is registered.
    decode_error: Option<String>,
}

pub(crate) async fn events(
    cli: &Cli,
    store: &AnyStore,
    stream_type: &str,
    stream_id: &str,
    options: &Options,
    out: &mut (dyn Write + Send),
) -> Result<Outcome, CliError> {
    let registered = cli.registered(stream_type);
    let events: Vec<EventInfo> = store
        .read_stream(stream_type, stream_id)
        .await?
        .into_iter()
        .map(|e| {
            let decoded = registered.map(|r| (r.debug)(&e.event_type, e.event_version, &e.payload));
            EventInfo {
                stream_version: e.stream_version,
                global_position: e.global_position,
                event_id: e.event_id,
                payload: serde_json::from_slice(&e.payload).unwrap_or_else(|_| {
                    serde_json::Value::String(String::from_utf8_lossy(&e.payload).into_owned())
                }),
                event_type: e.event_type,
                event_version: e.event_version,
                recorded_at: e.recorded_at,
                metadata: e.metadata,
                decode_error: decoded
                    .as_ref()
                    .and_then(|d| d.as_ref().err().map(ToString::to_string)),
                decoded: decoded.and_then(Result::ok),
            }
        })
        .collect();
    if options.json {
        return json(out, &events).map(|()| Outcome::Clean);
    }
    if events.is_empty() {
        line(out, &format!("{stream_type}/{stream_id}: no events"))?;
        return Ok(Outcome::Clean);
    }
    for e in &events {
        line(
            out,
            &format!(
                "#{} {} v{}  position {}  id {}  at {}",
                e.stream_version,
                e.event_type,
                e.event_version,
                e.global_position,
                e.event_id,
                time(&e.recorded_at)
            ),
        )?;
        line(out, &format!("  payload:  {}", e.payload))?;
        line(
            out,
            &format!("  metadata: {}", serde_json::to_string(&e.metadata)?),
        )?;
        if let Some(decoded) = &e.decoded {
            line(out, &format!("  decoded:  {decoded}"))?;
        }
        if let Some(error) = &e.decode_error {
            line(out, &format!("  decode error: {error}"))?;
        }
    }
    if registered.is_none() {
        line(
            out,
            &format!("(stream type `{stream_type}` is not registered: not decoded)"),
        )?;
    }
    Ok(Outcome::Clean)
}

/// One registered enum of the `schema describe` report.
#[derive(Debug, Serialize)]
struct Described {
    stream_type: String,
    rust_type: &'static str,
    /// Every stored shape, one lock-style line each (see [`crate::event::describe`]).
    shapes: Vec<String>,
}

pub(crate) fn describe(
    cli: &Cli,
    options: &Options,
    out: &mut (dyn Write + Send),
) -> Result<Outcome, CliError> {
    let described: Vec<Described> = cli
        .types
        .iter()
        .map(|t| Described {
            stream_type: t.stream_type.clone(),
            rust_type: t.enum_type,
            shapes: (t.describe)().lines().map(str::to_owned).collect(),
        })
        .collect();
    if options.json {
        return json(out, &described).map(|()| Outcome::Clean);
    }
    if described.is_empty() {
        line(out, "no event enums are registered")?;
    }
    for (i, d) in described.iter().enumerate() {
        if i > 0 {
            line(out, "")?;
        }
        line(out, &format!("{} ({})", d.stream_type, d.rust_type))?;
        for shape in &d.shapes {
            line(out, &format!("  {shape}"))?;
        }
    }
    Ok(Outcome::Clean)
}

/// The `schema diff` report.
#[derive(Debug, Serialize)]
struct Diff {
    lock: String,
    /// Shapes the registered enums decode that the lock does not record (lock lines).
    missing: Vec<String>,
    /// Lock lines no registered enum decodes.
    stale: Vec<String>,
}

pub(crate) fn diff(
    cli: &Cli,
    path: &str,
    options: &Options,
    out: &mut (dyn Write + Send),
) -> Result<Outcome, CliError> {
    let text = std::fs::read_to_string(path).map_err(CliError::io(format!("reading {path}")))?;
    let histories: Vec<_> = cli.types.iter().flat_map(|t| (t.history)()).collect();
    let diff = Diff {
        lock: path.to_owned(),
        missing: lock::missing_in(&histories, &text),
        stale: lock::stale_in(&histories, &text),
    };
    let clean = diff.missing.is_empty() && diff.stale.is_empty();
    if options.json {
        json(out, &diff)?;
    } else if clean {
        line(
            out,
            &format!("{path} records exactly the registered event versions"),
        )?;
    } else {
        for l in &diff.missing {
            line(out, &format!("+ {l}"))?;
        }
        for l in &diff.stale {
            line(out, &format!("- {l}"))?;
        }
        line(
            out,
            &format!(
                "{} not recorded (+), {} recorded but not decoded by a registered enum (-)",
                diff.missing.len(),
                diff.stale.len()
            ),
        )?;
    }
    Ok(if clean {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}
