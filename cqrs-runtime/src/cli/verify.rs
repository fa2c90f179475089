//! `verify`: decode every stored event, check every stream's versions.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use serde::Serialize;

use super::output::{json, line, table};
use super::store::AnyStore;
use super::{Cli, CliError, Options, Outcome, Progress};
use crate::repository::DECISIONS_STREAM_TYPE;
use crate::store::{Cursor, StoreError, StoredEvent};

/// The `verify` report (its `--json` form).
#[derive(Debug, Default, Serialize)]
pub(crate) struct VerifyReport {
    /// Whether nothing failed.
    ok: bool,
    /// Every event read, system events included.
    events: u64,
    /// Records of the system streams (`$decisions`).
    system_events: u64,
    /// Per stream type, event name and stored version.
    decoded: Vec<TypeCount>,
    /// Events that did not decode (or rows the store could not read).
    failures: Vec<Failure>,
    /// Stream types no event enum is registered for.
    unregistered: Vec<Unregistered>,
    /// Version gaps and repeats.
    integrity: Vec<Integrity>,
}

#[derive(Debug, Serialize)]
struct TypeCount {
    stream_type: String,
    event_type: String,
    event_version: u32,
    decoded: u64,
    /// Decoded through an upcast (a version older than the current one, or an old name).
    upcast: u64,
    /// Decoded to nothing (a retired event type).
    retired: u64,
}

#[derive(Debug, Serialize)]
struct Failure {
    stream_type: Option<String>,
    stream_id: Option<String>,
    stream_version: Option<u64>,
    global_position: u64,
    event_type: Option<String>,
    event_version: Option<u32>,
    error: String,
}

#[derive(Debug, Serialize)]
struct Unregistered {
    stream_type: String,
    streams: u64,
    events: u64,
}

#[derive(Debug, Serialize)]
struct Integrity {
    stream_type: String,
    stream_id: String,
    global_position: u64,
    /// The version the stream's previous event had (0: none).
    previous_version: u64,
    /// The version found.
    stream_version: u64,
    /// `gap` or `repeat`.
    problem: &'static str,
}

#[derive(Default)]
struct Counts {
    decoded: u64,
    upcast: u64,
    retired: u64,
}

pub(crate) async fn run(
    cli: &Cli,
    store: &AnyStore,
    strict: bool,
    options: &Options,
    out: &mut (dyn Write + Send),
) -> Result<Outcome, CliError> {
    let mut report = VerifyReport::default();
    let mut counts: BTreeMap<(String, String, u32), Counts> = BTreeMap::new();
    let mut unregistered: BTreeMap<String, u64> = BTreeMap::new();
    // Stream type → stream id → version: looked up by `&str`, no key built per event.
    let mut heads: HashMap<String, HashMap<String, u64>> = HashMap::new();
    let mut progress = Progress::new("verify", options);
    progress.total(store.head().await?.position);
    let start = store.log_start().await?;
    let mut cursor = Cursor::START;
    loop {
        let batch = match store.read_log(cursor, options.batch, &start).await {
            Ok(batch) => batch,
            Err(StoreError::Corrupt(corrupt)) if corrupt.cursor.is_some() => {
                report.failures.push(Failure {
                    stream_type: corrupt.stream_type.clone(),
                    stream_id: corrupt.stream_id.clone(),
                    stream_version: corrupt.stream_version,
                    global_position: corrupt.global_position,
                    event_type: None,
                    event_version: None,
                    error: corrupt.reason.clone(),
                });
                report.events += 1;
                cursor = corrupt.cursor.unwrap_or(cursor);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let Some(&(last, _)) = batch.last() else {
            break;
        };
        cursor = last;
        progress.add(batch.len() as u64);
        for (_, event) in &batch {
            report.events += 1;
            check_versions(&mut heads, event, &mut report.integrity);
            if event.stream_type == DECISIONS_STREAM_TYPE {
                report.system_events += 1;
                continue;
            }
            let Some(registered) = cli.registered(&event.stream_type) else {
                *unregistered.entry(event.stream_type.clone()).or_default() += 1;
                continue;
            };
            match (registered.check)(&event.event_type, event.event_version, &event.payload) {
                Ok(skipped) => {
                    let key = (
                        event.stream_type.as_str(),
                        event.event_type.as_str(),
                        event.event_version,
                    );
                    let matches =
                        |k: &(String, String, u32)| (k.0.as_str(), k.1.as_str(), k.2) == key;
                    if !counts.keys().any(matches) {
                        counts.insert(
                            (
                                event.stream_type.clone(),
                                event.event_type.clone(),
                                event.event_version,
                            ),
                            Counts::default(),
                        );
                    }
                    let Some((_, count)) = counts.iter_mut().find(|(k, _)| matches(k)) else {
                        continue;
                    };
                    count.decoded += 1;
                    if skipped {
                        count.retired += 1;
                    } else if registered
                        .current_version(&event.event_type)
                        .is_none_or(|current| event.event_version < current)
                    {
                        count.upcast += 1;
                    }
                }
                Err(e) => report.failures.push(Failure {
                    stream_type: Some(event.stream_type.clone()),
                    stream_id: Some(event.stream_id.clone()),
                    stream_version: Some(event.stream_version),
                    global_position: event.global_position,
                    event_type: Some(event.event_type.clone()),
                    event_version: Some(event.event_version),
                    error: e.to_string(),
                }),
            }
        }
    }
    progress.finish();
    report.decoded = counts
        .into_iter()
        .map(|((stream_type, event_type, event_version), c)| TypeCount {
            stream_type,
            event_type,
            event_version,
            decoded: c.decoded,
            upcast: c.upcast,
            retired: c.retired,
        })
        .collect();
    report.unregistered = unregistered
        .into_iter()
        .map(|(stream_type, events)| Unregistered {
            streams: heads.get(&stream_type).map_or(0, |ids| ids.len() as u64),
            stream_type,
            events,
        })
        .collect();
    report.ok = report.failures.is_empty()
        && report.integrity.is_empty()
        && (!strict || report.unregistered.is_empty());
    if options.json {
        json(out, &report)?;
    } else {
        render(&report, strict, out)?;
    }
    Ok(if report.ok {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}

/// Records a gap or repeat when `event` does not follow its stream's previous event.
fn check_versions(
    heads: &mut HashMap<String, HashMap<String, u64>>,
    event: &StoredEvent,
    problems: &mut Vec<Integrity>,
) {
    if !heads.contains_key(event.stream_type.as_str()) {
        heads.insert(event.stream_type.clone(), HashMap::new());
    }
    let Some(ids) = heads.get_mut(event.stream_type.as_str()) else {
        return;
    };
    if !ids.contains_key(event.stream_id.as_str()) {
        ids.insert(event.stream_id.clone(), 0);
    }
    let Some(head) = ids.get_mut(event.stream_id.as_str()) else {
        return;
    };
    let previous = *head;
    if event.stream_version != previous + 1 {
        problems.push(Integrity {
            stream_type: event.stream_type.clone(),
            stream_id: event.stream_id.clone(),
            global_position: event.global_position,
            previous_version: previous,
            stream_version: event.stream_version,
            problem: if event.stream_version > previous + 1 {
                "gap"
            } else {
                "repeat"
            },
        });
    }
    *head = previous.max(event.stream_version);
}

fn render(
    report: &VerifyReport,
    strict: bool,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    line(
        out,
        &format!(
            "events: {} ({} system)",
            report.events, report.system_events
        ),
    )?;
    if !report.decoded.is_empty() {
        line(out, "")?;
        let rows: Vec<Vec<String>> = report
            .decoded
            .iter()
            .map(|c| {
                vec![
                    c.stream_type.clone(),
                    c.event_type.clone(),
                    c.event_version.to_string(),
                    c.decoded.to_string(),
                    c.upcast.to_string(),
                    c.retired.to_string(),
                ]
            })
            .collect();
        table(
            out,
            &[
                "STREAM TYPE",
                "EVENT",
                "VERSION",
                "DECODED",
                "UPCAST",
                "RETIRED",
            ],
            &rows,
        )?;
    }
    if !report.unregistered.is_empty() {
        line(out, "")?;
        line(
            out,
            if strict {
                "unregistered stream types (failures with --strict):"
            } else {
                "unregistered stream types (not decoded):"
            },
        )?;
        for u in &report.unregistered {
            line(
                out,
                &format!(
                    "  {}: {} streams, {} events",
                    u.stream_type, u.streams, u.events
                ),
            )?;
        }
    }
    if !report.failures.is_empty() {
        line(out, "")?;
        line(out, &format!("failures: {}", report.failures.len()))?;
        for f in &report.failures {
            line(
                out,
                &format!(
                    "  {}/{} version {} (global position {}): {}",
                    f.stream_type.as_deref().unwrap_or("?"),
                    f.stream_id.as_deref().unwrap_or("?"),
                    f.stream_version
                        .map_or_else(|| "?".to_owned(), |v| v.to_string()),
                    f.global_position,
                    f.error
                ),
            )?;
        }
    }
    if !report.integrity.is_empty() {
        line(out, "")?;
        line(
            out,
            &format!("integrity problems: {}", report.integrity.len()),
        )?;
        for p in &report.integrity {
            line(
                out,
                &format!(
                    "  {}/{} version {} (global position {}): {} after version {}",
                    p.stream_type,
                    p.stream_id,
                    p.stream_version,
                    p.global_position,
                    p.problem,
                    p.previous_version
                ),
            )?;
        }
    }
    line(out, "")?;
    line(
        out,
        &if report.ok {
            "verify: OK".to_owned()
        } else {
            format!(
                "verify: FAILED ({} failures, {} integrity problems{})",
                report.failures.len(),
                report.integrity.len(),
                if strict && !report.unregistered.is_empty() {
                    ", unregistered stream types"
                } else {
                    ""
                }
            )
        },
    )
}
