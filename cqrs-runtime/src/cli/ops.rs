//! `tail`, `projections`, `dead-letters` and `rebuild`: the log live, and the readers of it.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::output::{json, line, table};
use super::store::AnyStore;
use super::transfer::ExportedEvent;
use super::view::time;
use super::{CliError, Options, Outcome, Progress};
use crate::processing::RunError;
use crate::projection::{ProjectionRunner, SqlProjection, SqlReadModel};
use crate::store::{CheckpointCommit, Cursor, EventStore, LeaseStore, SqlBackend, StoredEvent};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the tool does with a registered projection: rebuild it, take a dead letter again.
pub(crate) trait ProjectionOps: Send + Sync {
    fn name(&self) -> &'static str;

    fn rebuild<'a>(
        &'a self,
        store: &'a AnyStore,
        batch: usize,
        progress: &'a mut Progress,
    ) -> BoxFuture<'a, Result<u64, CliError>>;

    fn retry<'a>(
        &'a self,
        store: &'a AnyStore,
        position: u64,
    ) -> BoxFuture<'a, Result<bool, CliError>>;
}

/// The operations of the SQL projection `P`, whose tables live in the store's database.
pub(crate) struct SqlOps<P>(pub(crate) PhantomData<fn() -> P>);

impl<P: SqlProjection + Default> ProjectionOps for SqlOps<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn rebuild<'a>(
        &'a self,
        store: &'a AnyStore,
        batch: usize,
        progress: &'a mut Progress,
    ) -> BoxFuture<'a, Result<u64, CliError>> {
        Box::pin(async move {
            match store {
                AnyStore::Sqlite(s) => rebuild_on::<P, _>(s.clone(), batch, progress).await,
                #[cfg(feature = "postgres")]
                AnyStore::Postgres(s) => rebuild_on::<P, _>(s.clone(), batch, progress).await,
            }
        })
    }

    fn retry<'a>(
        &'a self,
        store: &'a AnyStore,
        position: u64,
    ) -> BoxFuture<'a, Result<bool, CliError>> {
        Box::pin(async move {
            match store {
                AnyStore::Sqlite(s) => retry_on::<P, _>(s.clone(), position).await,
                #[cfg(feature = "postgres")]
                AnyStore::Postgres(s) => retry_on::<P, _>(s.clone(), position).await,
            }
        })
    }
}

/// Rebuilds `P` in `store`'s database under its lease, showing the runner's position.
async fn rebuild_on<P, B>(store: B, batch: usize, progress: &mut Progress) -> Result<u64, CliError>
where
    P: SqlProjection + Default,
    B: EventStore + SqlBackend + LeaseStore + Clone,
{
    let model = SqlReadModel::<P, B>::open(store.clone()).await?;
    let runner = ProjectionRunner::new(store.clone(), model)
        .with_leases(store.clone())
        .batch_size(batch);
    let handle = runner.handle();
    progress.total(EventStore::head(&store).await?.position);
    let rebuild = runner.rebuild();
    let mut rebuild = std::pin::pin!(rebuild);
    let done = loop {
        tokio::select! {
            done = &mut rebuild => break done?,
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                let lag = handle.lag();
                progress.total(lag.head);
                progress.set(lag.position);
            }
        }
    };
    let lag = handle.lag();
    progress.total(lag.head);
    progress.set(lag.position);
    progress.finish();
    Ok(done)
}

async fn retry_on<P, B>(store: B, position: u64) -> Result<bool, CliError>
where
    P: SqlProjection + Default,
    B: EventStore + SqlBackend + LeaseStore + Clone,
{
    let model = SqlReadModel::<P, B>::open(store.clone()).await?;
    let runner = ProjectionRunner::new(store.clone(), model).with_leases(store);
    Ok(runner.retry_dead_letter(position).await?)
}

/// `tail`'s own options.
pub(crate) struct TailArgs {
    /// Print the events after this global position (`None`: from the head).
    pub(crate) from: Option<u64>,
    pub(crate) limit: Option<u64>,
    pub(crate) stream_type: Option<String>,
    pub(crate) poll: Duration,
}

pub(crate) async fn tail(
    store: &AnyStore,
    args: &TailArgs,
    options: &Options,
    out: &mut (dyn Write + Send),
) -> Result<Outcome, CliError> {
    let (mut cursor, skip_through) = match args.from {
        None => (store.head().await?, 0),
        // The SQLite log is in position order: the cursor of a position is the position.
        Some(p) if matches!(store, AnyStore::Sqlite(_)) => (Cursor { tx: 0, position: p }, 0),
        // Elsewhere the place of a position is found by reading the log up to it.
        Some(p) => (Cursor::START, p),
    };
    let mut wake = store.listen().await;
    let mut printed = 0_u64;
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    if !options.quiet && !options.json {
        eprintln!(
            "following {} (Ctrl-C to stop)",
            if wake.is_some() {
                "with notifications"
            } else {
                "by polling"
            }
        );
    }
    loop {
        let batch = store.read_after(cursor, options.batch).await?;
        let full = batch.len() >= options.batch;
        for (at, event) in batch {
            cursor = at;
            if event.global_position <= skip_through
                || args
                    .stream_type
                    .as_deref()
                    .is_some_and(|t| t != event.stream_type)
            {
                continue;
            }
            print_event(event, options, out)?;
            printed += 1;
            if args.limit.is_some_and(|limit| printed >= limit) {
                return Ok(Outcome::Clean);
            }
        }
        out.flush().map_err(CliError::io("writing the output"))?;
        if full {
            continue;
        }
        tokio::select! {
            _ = &mut ctrl_c => return Ok(Outcome::Clean),
            () = changed(&mut wake) => {}
            () = tokio::time::sleep(args.poll) => {}
        }
    }
}

async fn changed(wake: &mut Option<tokio::sync::watch::Receiver<u64>>) {
    if let Some(rx) = wake {
        if rx.changed().await.is_ok() {
            return;
        }
        *wake = None;
    }
    std::future::pending::<()>().await;
}

fn print_event(
    event: StoredEvent,
    options: &Options,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    if options.json {
        serde_json::to_writer(&mut *out, &ExportedEvent::from_stored(event)?)?;
        return writeln!(out).map_err(CliError::io("writing the output"));
    }
    let payload = String::from_utf8_lossy(&event.payload);
    line(
        out,
        &format!(
            "{}  {}  {}/{} #{}  {} v{}  {}",
            event.global_position,
            time(&event.recorded_at),
            event.stream_type,
            event.stream_id,
            event.stream_version,
            event.event_type,
            event.event_version,
            payload
        ),
    )
}

/// One reader of the `projections` report.
#[derive(Debug, Serialize)]
struct ReaderInfo {
    name: String,
    /// The last position committed past (0: none).
    position: u64,
    head: u64,
    lag: u64,
    version: u32,
    generation: u64,
    /// Who holds the lease, if anyone.
    lease_holder: Option<String>,
    dead_letters: u64,
    /// When the checkpoint was last claimed or committed (`None`: no checkpoint yet).
    updated_at: Option<DateTime<Utc>>,
    /// Whether the binary registered the projection (so that it can rebuild it).
    registered: bool,
}

pub(crate) async fn projections(
    store: &AnyStore,
    registered: &[&'static str],
    options: &Options,
    out: &mut (dyn Write + Send),
) -> Result<Outcome, CliError> {
    let head = store.head().await?.position;
    let mut readers: BTreeMap<String, ReaderInfo> = BTreeMap::new();
    for named in store.checkpoints().await? {
        let position = named.checkpoint.cursor.position;
        readers.insert(
            named.name.clone(),
            ReaderInfo {
                lease_holder: store.lease_holder(&named.name).await?,
                registered: registered.contains(&named.name.as_str()),
                name: named.name,
                position,
                head,
                lag: head.saturating_sub(position),
                version: named.checkpoint.version,
                generation: named.checkpoint.generation,
                dead_letters: named.dead_letters,
                updated_at: Some(named.updated_at),
            },
        );
    }
    for name in registered {
        if !readers.contains_key(*name) {
            readers.insert(
                (*name).to_owned(),
                ReaderInfo {
                    name: (*name).to_owned(),
                    position: 0,
                    head,
                    lag: head,
                    version: 0,
                    generation: 0,
                    lease_holder: store.lease_holder(name).await?,
                    dead_letters: 0,
                    updated_at: None,
                    registered: true,
                },
            );
        }
    }
    let readers: Vec<ReaderInfo> = readers.into_values().collect();
    if options.json {
        json(out, &readers)?;
        return Ok(Outcome::Clean);
    }
    let rows: Vec<Vec<String>> = readers
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.position.to_string(),
                r.head.to_string(),
                r.lag.to_string(),
                r.lease_holder.clone().unwrap_or_else(|| "-".to_owned()),
                r.dead_letters.to_string(),
                r.updated_at
                    .as_ref()
                    .map_or_else(|| "(no checkpoint)".to_owned(), time),
            ]
        })
        .collect();
    table(
        out,
        &[
            "NAME",
            "POSITION",
            "HEAD",
            "LAG",
            "LEASE",
            "DEAD LETTERS",
            "UPDATED",
        ],
        &rows,
    )?;
    line(out, &format!("{} readers, head {head}", readers.len()))?;
    Ok(Outcome::Clean)
}

/// One dead letter of the `dead-letters list` report.
#[derive(Debug, Serialize)]
struct LetterInfo {
    name: String,
    position: u64,
    event_id: Option<uuid::Uuid>,
    stream_type: String,
    stream_id: String,
    stream_version: u64,
    event_type: String,
    event_version: u32,
    error: String,
    recorded_at: DateTime<Utc>,
}

/// The readers to look at: `name`, or every reader with dead letters.
async fn names(store: &AnyStore, name: Option<&str>) -> Result<Vec<String>, CliError> {
    Ok(match name {
        Some(name) => vec![name.to_owned()],
        None => store
            .checkpoints()
            .await?
            .into_iter()
            .filter(|c| c.dead_letters > 0)
            .map(|c| c.name)
            .collect(),
    })
}

pub(crate) async fn list_dead_letters(
    store: &AnyStore,
    name: Option<&str>,
    options: &Options,
    out: &mut (dyn Write + Send),
) -> Result<Outcome, CliError> {
    let mut letters = Vec::new();
    for name in names(store, name).await? {
        for l in store.dead_letters(&name).await? {
            letters.push(LetterInfo {
                name: name.clone(),
                position: l.cursor.position,
                event_id: l.event_id,
                stream_type: l.stream_type,
                stream_id: l.stream_id,
                stream_version: l.stream_version,
                event_type: l.event_type,
                event_version: l.event_version,
                error: l.error,
                recorded_at: l.recorded_at,
            });
        }
    }
    if options.json {
        json(out, &letters)?;
        return Ok(Outcome::Clean);
    }
    let rows: Vec<Vec<String>> = letters
        .iter()
        .map(|l| {
            vec![
                l.name.clone(),
                l.position.to_string(),
                format!("{}/{} #{}", l.stream_type, l.stream_id, l.stream_version),
                format!("{} v{}", l.event_type, l.event_version),
                time(&l.recorded_at),
                l.error.clone(),
            ]
        })
        .collect();
    table(
        out,
        &["NAME", "POSITION", "STREAM", "EVENT", "RECORDED", "ERROR"],
        &rows,
    )?;
    line(out, &format!("{} dead letters", letters.len()))?;
    Ok(Outcome::Clean)
}

/// What `retry` or `discard` does to the dead letters it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LetterAction {
    Retry,
    Discard,
}

/// The `dead-letters retry` / `discard` report.
#[derive(Debug, Default, Serialize)]
struct Settled {
    name: String,
    /// Positions whose dead letter went (taken again, or forgotten).
    done: Vec<u64>,
    /// Positions with no dead letter.
    missing: Vec<u64>,
    /// Positions whose event failed again (the dead letter stays), with the error.
    failed: Vec<(u64, String)>,
}

pub(crate) async fn settle_dead_letters(
    store: &AnyStore,
    ops: Option<&dyn ProjectionOps>,
    name: &str,
    positions: Option<Vec<u64>>,
    action: LetterAction,
    options: &Options,
    out: &mut (dyn Write + Send),
) -> Result<Outcome, CliError> {
    let stored = store.dead_letters(name).await?;
    let positions = positions.unwrap_or_else(|| stored.iter().map(|l| l.cursor.position).collect());
    let mut report = Settled {
        name: name.to_owned(),
        ..Settled::default()
    };
    for position in positions {
        if !stored.iter().any(|l| l.cursor.position == position) {
            report.missing.push(position);
            continue;
        }
        match action {
            LetterAction::Discard => {
                // Under the checkpoint's current fence: a live runner is not taken over.
                let fence = store.checkpoint(name).await?.map_or(0, |c| c.fence);
                store
                    .commit(name, CheckpointCommit::keep(fence, vec![position]))
                    .await?;
                report.done.push(position);
            }
            LetterAction::Retry => {
                let Some(ops) = ops else {
                    return Err(CliError::Usage(format!(
                        "`{name}` is not a projection this tool knows: register it with \
                         `Cli::projection::<P>()` in your binary to retry its dead letters"
                    )));
                };
                match ops.retry(store, position).await {
                    Ok(true) => report.done.push(position),
                    Ok(false) => report.missing.push(position),
                    Err(CliError::Run(e)) => report.failed.push((position, e.to_string())),
                    Err(e) => return Err(e),
                }
            }
        }
    }
    let verb = match action {
        LetterAction::Retry => "retried",
        LetterAction::Discard => "discarded",
    };
    if options.json {
        json(out, &report)?;
    } else {
        line(
            out,
            &format!(
                "{name}: {verb} {} dead letters{}",
                report.done.len(),
                if report.done.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (positions {})",
                        report
                            .done
                            .iter()
                            .map(u64::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ),
        )?;
        for p in &report.missing {
            line(out, &format!("  no dead letter at position {p}"))?;
        }
        for (p, e) in &report.failed {
            line(out, &format!("  position {p} failed again: {e}"))?;
        }
    }
    Ok(if report.missing.is_empty() && report.failed.is_empty() {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}

/// The `rebuild` report.
#[derive(Debug, Serialize)]
struct Rebuilt {
    projection: String,
    events: u64,
    position: u64,
    seconds: f64,
}

pub(crate) async fn rebuild(
    store: &AnyStore,
    ops: &dyn ProjectionOps,
    options: &Options,
    out: &mut (dyn Write + Send),
) -> Result<Outcome, CliError> {
    let started = std::time::Instant::now();
    let mut progress = Progress::new("rebuild", options);
    let events = ops.rebuild(store, options.batch, &mut progress).await?;
    let position = store
        .checkpoint(ops.name())
        .await?
        .map_or(0, |c| c.cursor.position);
    let report = Rebuilt {
        projection: ops.name().to_owned(),
        events,
        position,
        seconds: started.elapsed().as_secs_f64(),
    };
    if options.json {
        json(out, &report)?;
    } else {
        line(
            out,
            &format!(
                "rebuilt {}: {} events, now at position {} ({:.1}s)",
                report.projection, report.events, report.position, report.seconds
            ),
        )?;
    }
    Ok(Outcome::Clean)
}

/// The error of a runner, for the report.
impl From<RunError> for CliError {
    fn from(error: RunError) -> Self {
        CliError::Run(Box::new(error))
    }
}
