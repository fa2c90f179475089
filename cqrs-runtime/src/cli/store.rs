//! The store a `--store` URL names.

use std::path::Path;

use super::CliError;
#[cfg(feature = "postgres")]
use crate::postgres::{PostgresConfig, PostgresEventStore};
use crate::sqlite::{SqliteConfig, SqliteEventStore};
use crate::store::{
    AppendOutcome, Checkpoint, CheckpointCommit, CheckpointStore, Cursor, DeadLetter, EventStore,
    ExpectedVersion, NamedCheckpoint, NewEvent, StoreError, StoredEvent, StreamAppend,
};

/// How long a whole-log read waits for transactions that were open when it started.
const SETTLE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// The start of a whole-log read (see [`AnyStore::read_log`]).
pub(crate) struct LogStart {
    point: u64,
    since: std::time::Instant,
}

/// One of the stores this build can open.
pub(crate) enum AnyStore {
    Sqlite(SqliteEventStore),
    #[cfg(feature = "postgres")]
    Postgres(PostgresEventStore),
}

macro_rules! dispatch {
    ($self:expr, $store:ident => $body:expr) => {
        match $self {
            AnyStore::Sqlite($store) => $body,
            #[cfg(feature = "postgres")]
            AnyStore::Postgres($store) => $body,
        }
    };
}

/// Opens the store `url` names. With `create` false, nothing is created or migrated: a
/// SQLite file must exist and a PostgreSQL schema must hold a store, both at the schema
/// version of this build.
pub(crate) async fn open(url: &str, create: bool) -> Result<AnyStore, CliError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return open_postgres(url, create).await;
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.is_empty() {
        return Err(CliError::Open {
            url: url.to_owned(),
            reason: "no file path".to_owned(),
        });
    }
    if !create && !Path::new(path).exists() {
        return Err(CliError::Open {
            url: url.to_owned(),
            reason: format!("no such file: {path}"),
        });
    }
    let store = SqliteConfig::new(path).migrate(create).open().await?;
    Ok(AnyStore::Sqlite(store))
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str, create: bool) -> Result<AnyStore, CliError> {
    let (url_only, schema) = take_param(url, "schema");
    let (url_only, notify) = take_param(&url_only, "notify");
    let bad = |e: crate::postgres::InvalidIdentifier| CliError::Open {
        url: url.to_owned(),
        reason: e.to_string(),
    };
    let mut config = PostgresConfig::new(&url_only)?
        .connections(2)
        .migrate(create);
    if let Some(schema) = schema {
        config = config.schema(&schema).map_err(bad)?;
    }
    if let Some(channel) = notify {
        config = config.notify(&channel).map_err(bad)?;
    }
    Ok(AnyStore::Postgres(config.open().await?))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(url: &str, _create: bool) -> Result<AnyStore, CliError> {
    Err(CliError::Open {
        url: url.to_owned(),
        reason: "this build has no PostgreSQL support (feature `postgres`)".to_owned(),
    })
}

/// `url` without its `name=` query parameter, and the parameter's value.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
fn take_param(url: &str, name: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let prefix = format!("{name}=");
    let mut schema = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix(prefix.as_str()) {
            Some(value) => {
                schema = Some(value.to_owned());
                false
            }
            None => !pair.is_empty(),
        })
        .collect();
    if rest.is_empty() {
        (base.to_owned(), schema)
    } else {
        (format!("{base}?{}", rest.join("&")), schema)
    }
}

impl AnyStore {
    pub(crate) async fn read_after(
        &self,
        after: Cursor,
        limit: usize,
    ) -> Result<Vec<(Cursor, StoredEvent)>, StoreError> {
        dispatch!(self, s => s.read_after(after, limit).await)
    }

    /// Where a whole-log read must get to: on PostgreSQL, the transactions that existed when
    /// the command started (their events are readable once each has ended); nothing on
    /// SQLite, where every committed event is readable at once.
    pub(crate) async fn log_start(&self) -> Result<LogStart, StoreError> {
        Ok(LogStart {
            point: match self {
                AnyStore::Sqlite(_) => 0,
                #[cfg(feature = "postgres")]
                AnyStore::Postgres(s) => s.settle_point().await?,
            },
            since: std::time::Instant::now(),
        })
    }

    /// The next events after `after` of a read of the whole log that began at `start`: empty
    /// only once every event committed before `start` has been returned. On PostgreSQL an
    /// event committed before the start can be held back by an older transaction still open
    /// (see `EventStore::head`); the read waits for it, up to `SETTLE_PATIENCE`.
    pub(crate) async fn read_log(
        &self,
        after: Cursor,
        limit: usize,
        start: &LogStart,
    ) -> Result<Vec<(Cursor, StoredEvent)>, StoreError> {
        loop {
            let batch = self.read_after(after, limit).await?;
            if !batch.is_empty() || self.settled(start.point).await? {
                return Ok(batch);
            }
            if start.since.elapsed() > SETTLE_PATIENCE {
                return Err(StoreError::unavailable(format!(
                    "a transaction open since before this command started still holds events \
                     back after {} s (find it in pg_stat_activity, oldest xact_start first)",
                    SETTLE_PATIENCE.as_secs()
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    async fn settled(&self, point: u64) -> Result<bool, StoreError> {
        match self {
            AnyStore::Sqlite(_) => {
                let _ = point;
                Ok(true)
            }
            #[cfg(feature = "postgres")]
            AnyStore::Postgres(s) => s.settled(point).await,
        }
    }

    pub(crate) async fn head(&self) -> Result<Cursor, StoreError> {
        dispatch!(self, s => EventStore::head(s).await)
    }

    pub(crate) async fn checkpoints(&self) -> Result<Vec<NamedCheckpoint>, StoreError> {
        dispatch!(self, s => s.checkpoints().await)
    }

    pub(crate) async fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, StoreError> {
        dispatch!(self, s => s.checkpoint(name).await)
    }

    pub(crate) async fn dead_letters(&self, name: &str) -> Result<Vec<DeadLetter>, StoreError> {
        dispatch!(self, s => s.dead_letters(name).await)
    }

    /// Who holds the lease on `name`: a process id (SQLite) or a server session's (PostgreSQL).
    pub(crate) async fn lease_holder(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(match self {
            AnyStore::Sqlite(s) => s.lease_holder(name).await?.map(|pid| format!("pid {pid}")),
            #[cfg(feature = "postgres")]
            AnyStore::Postgres(s) => s
                .lease_holder(name)
                .await?
                .map(|pid| format!("pg backend {pid}")),
        })
    }

    /// A wake-up on new appends, when the store has one configured (PostgreSQL's `notify=`).
    pub(crate) async fn listen(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        match self {
            AnyStore::Sqlite(_) => None,
            #[cfg(feature = "postgres")]
            AnyStore::Postgres(s) => match s.listen().await {
                Ok(rx) => Some(rx),
                Err(e) => {
                    tracing::debug!(error = %e, "no notifications: polling");
                    None
                }
            },
        }
    }

    pub(crate) async fn read_stream(
        &self,
        stream_type: &str,
        stream_id: &str,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        dispatch!(self, s => s.read_stream(stream_type, stream_id, 0).await)
    }

    pub(crate) async fn append(
        &self,
        stream_type: &str,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        dispatch!(self, s => s.append(stream_type, stream_id, expected, events).await)
    }

    pub(crate) async fn append_batch(
        &self,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        dispatch!(self, s => s.append_batch(appends).await)
    }

    pub(crate) async fn claim(&self, name: &str) -> Result<Checkpoint, StoreError> {
        dispatch!(self, s => s.claim(name).await)
    }

    pub(crate) async fn commit(
        &self,
        name: &str,
        commit: CheckpointCommit,
    ) -> Result<Checkpoint, StoreError> {
        dispatch!(self, s => s.commit(name, commit).await)
    }
}

#[cfg(test)]
mod tests {
    use super::take_param;

    fn split_schema(url: &str) -> (String, Option<String>) {
        take_param(url, "schema")
    }

    #[test]
    fn the_schema_parameter_is_taken_out_of_the_url() {
        assert_eq!(
            split_schema("postgres://u@h/db?schema=s1"),
            ("postgres://u@h/db".to_owned(), Some("s1".to_owned()))
        );
        assert_eq!(
            split_schema("postgres://u@h/db?sslmode=disable&schema=s1"),
            (
                "postgres://u@h/db?sslmode=disable".to_owned(),
                Some("s1".to_owned())
            )
        );
        assert_eq!(
            split_schema("postgres://u@h/db"),
            ("postgres://u@h/db".to_owned(), None)
        );
    }
}
