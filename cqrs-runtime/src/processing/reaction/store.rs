//! Where process managers keep their instances and deadlines: committed with the checkpoint,
//! on any SQL backend (portable tables) or in memory.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use super::Deadline;
use crate::event::DecodeError;
use crate::store::{
    Checkpoint, CheckpointChange, CheckpointCommit, CheckpointStore, DeadLetter, SqlBackend,
    SqlStatement, SqlValue, StoreError, already_committed, commit_in_memory, fenced,
};

/// A deadline that is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDeadline {
    /// The instance's correlation key.
    pub key: String,
    /// The deadline's name ([`Deadline::NAME`]).
    pub name: String,
    /// When it was due.
    pub due: DateTime<Utc>,
    /// The deadline, serialized.
    pub payload: Vec<u8>,
}

impl DueDeadline {
    /// The deadline as its type.
    pub fn decode<D: Deadline>(&self) -> Result<D, DecodeError> {
        serde_json::from_slice(&self.payload).map_err(|source| DecodeError::CorruptPayload {
            name: self.name.clone(),
            version: 1,
            source,
        })
    }
}

/// One change to a process manager's instances and deadlines, committed with its checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum InstanceChange {
    /// Stores the instance's state (JSON).
    Save {
        /// The instance's key.
        key: String,
        /// Its state, serialized.
        state: Vec<u8>,
    },
    /// Removes the instance and its pending deadlines (it ended).
    Remove {
        /// The instance's key.
        key: String,
    },
    /// Schedules (or moves) the deadline `name` of the instance.
    Schedule {
        /// The instance's key.
        key: String,
        /// The deadline's name.
        name: String,
        /// When it is due.
        due: DateTime<Utc>,
        /// The deadline, serialized.
        payload: Vec<u8>,
    },
    /// Cancels the deadline `name` of the instance (also: a fired deadline is done).
    Cancel {
        /// The instance's key.
        key: String,
        /// The deadline's name.
        name: String,
    },
    /// Removes every instance and deadline (a reset).
    ClearAll,
}

/// Where process managers keep their instances and deadlines: a checkpoint store whose
/// commits also carry instance changes, atomically.
///
/// Every [`SqlBackend`] is one (tables `cqrs_process_instances` and `cqrs_deadlines`, created
/// by [`ReactionStore::prepare`]); [`InMemoryReactions`] is the in-memory one.
pub trait ReactionStore: CheckpointStore + Clone {
    /// Creates the tables if they are missing.
    fn prepare(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The stored state of the instance `key` of `name`.
    fn instance(
        &self,
        name: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// Applies `commit` and `changes` together if the fence holds (else
    /// [`StoreError::Fenced`], nothing changed).
    fn commit_changes(
        &self,
        name: &str,
        commit: CheckpointCommit,
        changes: Vec<InstanceChange>,
    ) -> impl Future<Output = Result<Checkpoint, StoreError>> + Send;

    /// At most `limit` deadlines of `name` due at `now`, earliest first.
    fn due(
        &self,
        name: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<DueDeadline>, StoreError>> + Send;

    /// When the next deadline of `name` is due, if any.
    fn next_due(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<DateTime<Utc>>, StoreError>> + Send;
}

const INSTANCES: &str = "cqrs_process_instances";
const DEADLINES: &str = "cqrs_deadlines";

fn statement(sql: String, params: Vec<SqlValue>) -> SqlStatement {
    SqlStatement {
        sql: sql.into(),
        params,
    }
}

fn text(bytes: Vec<u8>) -> Result<SqlValue, StoreError> {
    String::from_utf8(bytes)
        .map(SqlValue::Text)
        .map_err(StoreError::backend)
}

fn micros(at: DateTime<Utc>) -> SqlValue {
    SqlValue::Int(at.timestamp_micros())
}

/// The SQL of one change, for both SQLite and PostgreSQL (portable statements).
fn change_statements(name: &str, change: InstanceChange) -> Result<Vec<SqlStatement>, StoreError> {
    let n = || SqlValue::Text(name.to_owned());
    Ok(match change {
        InstanceChange::Save { key, state } => vec![statement(
            format!(
                "INSERT INTO {INSTANCES} (name, key, state, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name, key) DO UPDATE SET state = excluded.state, \
                 updated_at = excluded.updated_at"
            ),
            vec![n(), key.into(), text(state)?, micros(crate::store::now())],
        )],
        InstanceChange::Remove { key } => vec![
            statement(
                format!("DELETE FROM {INSTANCES} WHERE name = $1 AND key = $2"),
                vec![n(), key.clone().into()],
            ),
            statement(
                format!("DELETE FROM {DEADLINES} WHERE name = $1 AND key = $2"),
                vec![n(), key.into()],
            ),
        ],
        InstanceChange::Schedule {
            key,
            name: deadline,
            due,
            payload,
        } => vec![statement(
            format!(
                "INSERT INTO {DEADLINES} (name, key, deadline, due_at, payload) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name, key, deadline) DO UPDATE SET \
                 due_at = excluded.due_at, payload = excluded.payload"
            ),
            vec![
                n(),
                key.into(),
                deadline.into(),
                micros(due),
                text(payload)?,
            ],
        )],
        InstanceChange::Cancel {
            key,
            name: deadline,
        } => vec![statement(
            format!("DELETE FROM {DEADLINES} WHERE name = $1 AND key = $2 AND deadline = $3"),
            vec![n(), key.into(), deadline.into()],
        )],
        InstanceChange::ClearAll => vec![
            statement(
                format!("DELETE FROM {INSTANCES} WHERE name = $1"),
                vec![n()],
            ),
            statement(
                format!("DELETE FROM {DEADLINES} WHERE name = $1"),
                vec![n()],
            ),
        ],
    })
}

fn int(value: Option<&SqlValue>, what: &str) -> Result<i64, StoreError> {
    match value {
        Some(SqlValue::Int(v)) => Ok(*v),
        other => Err(StoreError::backend(format!(
            "{what} is {other:?}, not an integer"
        ))),
    }
}

fn time(value: Option<&SqlValue>, what: &str) -> Result<DateTime<Utc>, StoreError> {
    let micros = int(value, what)?;
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| StoreError::backend(format!("{what} {micros} is out of range")))
}

fn string(value: Option<&SqlValue>, what: &str) -> Result<String, StoreError> {
    match value {
        Some(SqlValue::Text(v)) => Ok(v.clone()),
        other => Err(StoreError::backend(format!(
            "{what} is {other:?}, not text"
        ))),
    }
}

impl<B: SqlBackend> ReactionStore for B {
    async fn prepare(&self) -> Result<(), StoreError> {
        let create = [
            format!(
                "CREATE TABLE IF NOT EXISTS {INSTANCES} (name TEXT NOT NULL, key TEXT NOT NULL, \
                 state TEXT NOT NULL, updated_at BIGINT NOT NULL, PRIMARY KEY (name, key))"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {DEADLINES} (name TEXT NOT NULL, key TEXT NOT NULL, \
                 deadline TEXT NOT NULL, due_at BIGINT NOT NULL, payload TEXT NOT NULL, \
                 PRIMARY KEY (name, key, deadline))"
            ),
            format!("CREATE INDEX IF NOT EXISTS {DEADLINES}_due ON {DEADLINES} (name, due_at)"),
        ];
        let statements = create
            .into_iter()
            .map(|sql| statement(sql, vec![]))
            .collect();
        self.execute("reactions", statements).await
    }

    async fn instance(&self, name: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let rows = self
            .fetch_all(
                &format!("SELECT state FROM {INSTANCES} WHERE name = $1 AND key = $2"),
                &[name.into(), key.into()],
            )
            .await?;
        rows.first()
            .map(|row| string(row.first(), "an instance's state").map(String::into_bytes))
            .transpose()
    }

    async fn commit_changes(
        &self,
        name: &str,
        commit: CheckpointCommit,
        changes: Vec<InstanceChange>,
    ) -> Result<Checkpoint, StoreError> {
        let mut statements = Vec::new();
        for change in changes {
            statements.extend(change_statements(name, change)?);
        }
        self.commit_with(name, commit, statements).await
    }

    async fn due(
        &self,
        name: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueDeadline>, StoreError> {
        let limit = SqlValue::Int(i64::try_from(limit).unwrap_or(i64::MAX));
        let rows = self
            .fetch_all(
                &format!(
                    "SELECT key, deadline, due_at, payload FROM {DEADLINES} \
                     WHERE name = $1 AND due_at <= $2 ORDER BY due_at, key, deadline LIMIT $3"
                ),
                &[name.into(), micros(now), limit],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(DueDeadline {
                    key: string(row.first(), "a deadline's key")?,
                    name: string(row.get(1), "a deadline's name")?,
                    due: time(row.get(2), "a deadline's due time")?,
                    payload: string(row.get(3), "a deadline's payload")?.into_bytes(),
                })
            })
            .collect()
    }

    async fn next_due(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let rows = self
            .fetch_all(
                &format!("SELECT min(due_at) FROM {DEADLINES} WHERE name = $1"),
                &[name.into()],
            )
            .await?;
        match rows.first().and_then(|row| row.first()) {
            None | Some(SqlValue::Null) => Ok(None),
            value => time(value, "the next due time").map(Some),
        }
    }
}

/// (name, key, deadline).
type DeadlineKey = (String, String, String);

#[derive(Debug, Default)]
struct Memory {
    checkpoints: HashMap<String, (Checkpoint, BTreeMap<u64, DeadLetter>)>,
    instances: HashMap<(String, String), Vec<u8>>,
    deadlines: BTreeMap<DeadlineKey, (DateTime<Utc>, Vec<u8>)>,
}

/// Checkpoints, instances and deadlines of reactions in memory (tests, demos). Cloning is
/// cheap; clones share the tables.
#[derive(Debug, Clone, Default)]
pub struct InMemoryReactions {
    inner: Arc<Mutex<Memory>>,
}

impl InMemoryReactions {
    /// Empty tables.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Memory>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::backend("the in-memory reaction tables are poisoned"))
    }
}

impl CheckpointStore for InMemoryReactions {
    async fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self.lock()?.checkpoints.get(name).map(|(c, _)| *c))
    }

    async fn claim(&self, name: &str) -> Result<Checkpoint, StoreError> {
        let mut memory = self.lock()?;
        let (checkpoint, _) = memory.checkpoints.entry(name.to_owned()).or_default();
        checkpoint.fence += 1;
        Ok(*checkpoint)
    }

    async fn commit(&self, name: &str, commit: CheckpointCommit) -> Result<Checkpoint, StoreError> {
        self.commit_changes(name, commit, Vec::new()).await
    }

    async fn dead_letters(&self, name: &str) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(self
            .lock()?
            .checkpoints
            .get(name)
            .map(|(_, dead)| dead.values().cloned().collect())
            .unwrap_or_default())
    }
}

impl ReactionStore for InMemoryReactions {
    async fn prepare(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn instance(&self, name: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .lock()?
            .instances
            .get(&(name.to_owned(), key.to_owned()))
            .cloned())
    }

    async fn commit_changes(
        &self,
        name: &str,
        commit: CheckpointCommit,
        changes: Vec<InstanceChange>,
    ) -> Result<Checkpoint, StoreError> {
        let mut memory = self.lock()?;
        let memory = &mut *memory;
        let Some((checkpoint, dead)) = memory.checkpoints.get_mut(name) else {
            return Err(fenced(name, commit.fence, 0));
        };
        if checkpoint.fence == commit.fence && already_committed(checkpoint, &commit) {
            return Ok(*checkpoint);
        }
        let reset = matches!(commit.change, CheckpointChange::Reset { .. });
        let committed = commit_in_memory(name, checkpoint, dead, commit)?;
        if reset {
            memory.instances.retain(|(n, _), _| n != name);
            memory.deadlines.retain(|(n, _, _), _| n != name);
        }
        for change in changes {
            match change {
                InstanceChange::Save { key, state } => {
                    memory.instances.insert((name.to_owned(), key), state);
                }
                InstanceChange::Remove { key } => {
                    memory.instances.remove(&(name.to_owned(), key.clone()));
                    memory
                        .deadlines
                        .retain(|(n, k, _), _| !(n == name && *k == key));
                }
                InstanceChange::Schedule {
                    key,
                    name: deadline,
                    due,
                    payload,
                } => {
                    memory
                        .deadlines
                        .insert((name.to_owned(), key, deadline), (due, payload));
                }
                InstanceChange::Cancel {
                    key,
                    name: deadline,
                } => {
                    memory.deadlines.remove(&(name.to_owned(), key, deadline));
                }
                InstanceChange::ClearAll => {
                    memory.instances.retain(|(n, _), _| n != name);
                    memory.deadlines.retain(|(n, _, _), _| n != name);
                }
            }
        }
        Ok(committed)
    }

    async fn due(
        &self,
        name: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueDeadline>, StoreError> {
        let memory = self.lock()?;
        let mut due: Vec<DueDeadline> = memory
            .deadlines
            .iter()
            .filter(|((n, _, _), (at, _))| n == name && *at <= now)
            .map(|((_, key, deadline), (at, payload))| DueDeadline {
                key: key.clone(),
                name: deadline.clone(),
                due: *at,
                payload: payload.clone(),
            })
            .collect();
        due.sort_by(|a, b| (a.due, &a.key, &a.name).cmp(&(b.due, &b.key, &b.name)));
        due.truncate(limit);
        Ok(due)
    }

    async fn next_due(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .lock()?
            .deadlines
            .iter()
            .filter(|((n, _, _), _)| n == name)
            .map(|(_, (at, _))| *at)
            .min())
    }
}
