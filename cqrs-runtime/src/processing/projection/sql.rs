//! SQL read models, exactly once: a projection whose model lives in SQL tables, over any
//! [`SqlBackend`].
//!
//! A projection whose read model lives in SQL tables declares
//! `#[projection(..., transaction = SqlBatch)]`; its `#[on]` handlers take a third argument,
//! `db: &mut SqlBatch`, and call [`SqlBatch::execute`]. Handlers are sync and drivers async,
//! so handlers do not talk to the database: they *buffer* statements. [`SqlReadModel`] then
//! hands the batch's statements to the backend, which runs them, the dead letters and the
//! checkpoint's change in **one transaction**, after checking the runner's fence: the model's
//! rows and the checkpoint commit together or not at all, so a runner killed at any point
//! leaves a model that matches its checkpoint, and a runner that was taken over (a lost lease,
//! a rebuild started elsewhere) cannot commit.
//!
//! The fields of the projection struct itself are not stored and not rolled back: keep the
//! read model in the tables, and treat `self` as configuration or scratch space.
//!
//! ```
//! use cqrs_runtime::prelude::*;
//! use cqrs_runtime::projection::{EventMeta, ProjectionRunner, SqlProjection, SqlReadModel};
//! use cqrs_runtime::sqlite::SqliteEventStore;
//! use cqrs_runtime::store::{NewEvent, SqlValue, SqlBatch};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
//! #[event(name = "item_added", version = 1)]
//! pub struct ItemAdded { pub sku: String, pub qty: u32 }
//!
//! #[derive(Debug, Clone, PartialEq, EventEnum)]
//! pub enum CartEvent { Added(ItemAdded) }
//!
//! #[derive(Default)]
//! pub struct Demand;
//!
//! #[projection(name = "demand", events = CartEvent, transaction = SqlBatch)]
//! impl Demand {
//!     #[on]
//!     fn added(&mut self, e: &ItemAdded, _: &EventMeta, db: &mut SqlBatch) {
//!         db.execute(
//!             "INSERT INTO demand (sku, qty) VALUES ($1, $2) \
//!              ON CONFLICT (sku) DO UPDATE SET qty = demand.qty + excluded.qty",
//!             [e.sku.as_str().into(), e.qty.into()],
//!         );
//!     }
//! }
//!
//! impl SqlProjection for Demand {
//!     fn create_tables(db: &mut SqlBatch) {
//!         db.execute("CREATE TABLE IF NOT EXISTS demand (sku TEXT PRIMARY KEY, qty BIGINT NOT NULL)", []);
//!     }
//!     fn clear_tables(db: &mut SqlBatch) {
//!         db.execute("DELETE FROM demand", []);
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! # let dir = std::env::temp_dir().join(format!("cqrs-doc-{}", uuid::Uuid::now_v7()));
//! # std::fs::create_dir_all(&dir)?;
//! let store = SqliteEventStore::open(dir.join("app.sqlite")).await?;
//! for qty in [2, 3] {
//!     let added = CartEvent::Added(ItemAdded { sku: "tea".into(), qty }).encode()?;
//!     store.append("cart", "c-1", ExpectedVersion::Any, vec![NewEvent::from_encoded(added, Metadata::new())]).await?;
//! }
//! // The model's tables live in the store's file (open a second store for another file).
//! let model = SqlReadModel::<Demand, _>::open(store.clone()).await?;
//! ProjectionRunner::new(store.clone(), model.clone()).with_leases(store).catch_up().await?;
//! let rows = model.fetch_all("SELECT qty FROM demand WHERE sku = $1", &["tea".into()]).await?;
//! assert_eq!(rows, vec![vec![SqlValue::Int(5)]]);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::fmt;
use std::sync::Arc;

use super::Projection;
use super::read_model::{Applied, Batch, Delivery, ReadModel, Step, batch_commit};
use crate::processing::partition::{Partition, partition_name};
use crate::store::{
    Checkpoint, CheckpointCommit, Cursor, DeadLetter, SqlBackend, SqlBatch, SqlStatement, SqlValue,
    StoreError, StoredEvent,
};

/// A projection whose read model lives in SQL tables, written through [`SqlBatch`].
///
/// How a rebuild resets SQL tables: [`Projection::reset`] has no transaction (it clears the
/// in-memory fields), so a SQL projection also names its tables' statements here.
/// [`SqlReadModel::open`] runs [`SqlProjection::create_tables`] (idempotent statements, in one
/// transaction), and a rebuild runs [`SqlProjection::clear_tables`] in the same transaction
/// that resets the checkpoint: a rebuild killed half-way leaves empty tables and a checkpoint
/// at the start, never a cleared model with a stale checkpoint. Bumping the projection's
/// `version` (or changing its handled events) makes the runner refuse the old checkpoint
/// ([`RunError::RebuildRequired`](crate::processing::RunError::RebuildRequired), or a
/// rebuild with `rebuild_on_change()`); `create_tables` runs before that, so a changed table
/// shape is best given a new table name, or dropped and re-created in `clear_tables`.
pub trait SqlProjection: Projection<Transaction = SqlBatch> {
    /// Buffers the statements that create the read model's tables if they are missing
    /// (`CREATE TABLE IF NOT EXISTS ...`, indexes). Run at every open: keep them idempotent.
    fn create_tables(db: &mut SqlBatch);

    /// Buffers the statements that empty the read model's tables (`DELETE FROM ...`).
    fn clear_tables(db: &mut SqlBatch);
}

/// A SQL read model: the projection `P`'s tables in the database of the backend `B`, exactly
/// once (see the [module docs](mod@crate::projection)).
///
/// Cloning is cheap; clones share the backend and the projection value handlers run on.
///
/// # Partitions
///
/// [`partition`](Self::partition) gives the view of one [`Partition`] of the model: the same
/// tables, its own checkpoint (under the partition's name) committed in the same transaction
/// as the statements of the partition's events, and its own projection value (so partitions
/// in one process commit side by side). Each event's effect is in the tables exactly once
/// while every partition of the same count runs over them (see
/// [`Fleet`](crate::processing::Fleet)). A partition's view cannot be rebuilt alone (the tables
/// are shared): its reset is refused; rebuild with [`clear`](Self::clear) and
/// [`Fleet::repartition`](crate::processing::Fleet::repartition) instead.
pub struct SqlReadModel<P, B> {
    inner: Arc<Inner<B>>,
    /// The projection value handlers run on; also serializes this view's batches.
    model: Arc<tokio::sync::Mutex<P>>,
    /// The checkpoint's name: the projection's, or the partition's.
    name: Arc<str>,
    /// Whether this is the view of one partition.
    partitioned: bool,
}

struct Inner<B> {
    backend: B,
}

impl<P, B> Clone for SqlReadModel<P, B> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            model: Arc::clone(&self.model),
            name: Arc::clone(&self.name),
            partitioned: self.partitioned,
        }
    }
}

impl<P: Projection, B: fmt::Debug> fmt::Debug for SqlReadModel<P, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlReadModel")
            .field("projection", &P::NAME)
            .field("name", &self.name)
            .field("backend", &self.inner.backend)
            .finish_non_exhaustive()
    }
}

impl<P: SqlProjection + Default, B: SqlBackend> SqlReadModel<P, B> {
    /// The model of `P` in `backend`'s database: creates its tables if missing
    /// ([`SqlProjection::create_tables`], one transaction).
    pub async fn open(backend: B) -> Result<Self, StoreError> {
        let mut setup = SqlBatch::new(backend.dialect());
        P::create_tables(&mut setup);
        backend.execute(P::NAME, setup.take()).await?;
        Ok(Self {
            inner: Arc::new(Inner { backend }),
            model: Arc::new(tokio::sync::Mutex::new(P::default())),
            name: Arc::from(P::NAME),
            partitioned: false,
        })
    }

    /// The view of `partition` of the model: the same tables, the partition's checkpoint
    /// (named [`Partition::name`]), a projection value of its own (see
    /// [Partitions](Self#partitions)).
    pub fn partition(&self, partition: &Partition) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            model: Arc::new(tokio::sync::Mutex::new(P::default())),
            name: Arc::from(partition_name(
                P::NAME,
                partition.index(),
                partition.count(),
            )),
            partitioned: true,
        }
    }
}

impl<P: SqlProjection, B: SqlBackend> SqlReadModel<P, B> {
    /// The backend holding the model's tables.
    pub fn backend(&self) -> &B {
        &self.inner.backend
    }

    /// Empties the model's tables ([`SqlProjection::clear_tables`], one transaction) and
    /// leaves every checkpoint where it is: the first step of a re-partition, run while no
    /// runner of the model is running (see
    /// [`Fleet::repartition`](crate::processing::Fleet::repartition)).
    pub async fn clear(&self) -> Result<(), StoreError> {
        let _model = self.model.lock().await;
        let mut clear = SqlBatch::new(self.inner.backend.dialect());
        P::clear_tables(&mut clear);
        self.inner.backend.execute(P::NAME, clear.take()).await
    }

    /// Runs a read query with `$1`, `$2`, ... bound to `params`; returns every row as values
    /// (the portable way to read a model on either SQL backend).
    pub async fn fetch_all(
        &self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Vec<Vec<SqlValue>>, StoreError> {
        self.inner.backend.fetch_all(sql, params).await
    }

    /// Buffers `statements` with the batch's steps, keeping only those of advanced events;
    /// returns the statements, the advanced cursors, the dead letters and the count.
    fn buffer<F>(
        model: &mut P,
        dialect: crate::store::SqlDialect,
        batch: &Batch<'_>,
        mut step: F,
    ) -> (Vec<SqlStatement>, Vec<Cursor>, Vec<DeadLetter>)
    where
        F: FnMut(&mut P, &mut SqlBatch, Cursor, &StoredEvent) -> Step,
    {
        let mut writes = SqlBatch::new(dialect);
        let (mut advanced, mut record) = (Vec::new(), Vec::new());
        for (cursor, event) in batch.events {
            let mark = writes.len();
            match step(model, &mut writes, *cursor, event) {
                Step::Advance => {}
                Step::Skip(letter) => {
                    writes.truncate(mark);
                    record.push(letter);
                }
                Step::Halt => {
                    writes.truncate(mark);
                    break;
                }
            }
            advanced.push(*cursor);
        }
        (writes.take(), advanced, record)
    }
}

impl<P: SqlProjection, B: SqlBackend> ReadModel for SqlReadModel<P, B> {
    type Projection = P;

    fn delivery(&self) -> Delivery {
        Delivery::ExactlyOnce
    }

    fn checkpoint_name(&self) -> &str {
        &self.name
    }

    async fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        self.inner.backend.checkpoint(&self.name).await
    }

    async fn claim(&self) -> Result<Checkpoint, StoreError> {
        self.inner.backend.claim(&self.name).await
    }

    async fn apply_batch<F>(&self, batch: Batch<'_>, step: F) -> Result<Applied, StoreError>
    where
        F: FnMut(&mut P, &mut SqlBatch, Cursor, &StoredEvent) -> Step + Send,
    {
        let mut model = self.model.lock().await;
        let dialect = self.inner.backend.dialect();
        let (statements, advanced, record) = Self::buffer(&mut model, dialect, &batch, step);
        let Some(&last) = advanced.last() else {
            return Ok(Applied::default());
        };
        let skipped = record.len() as u64;
        let commit = batch_commit::<P>(&batch, last, &advanced, record);
        self.inner
            .backend
            .commit_with(&self.name, commit, statements)
            .await?;
        Ok(Applied {
            reached: Some(last),
            count: advanced.len() as u64,
            skipped,
        })
    }

    async fn commit(&self, commit: CheckpointCommit) -> Result<Checkpoint, StoreError> {
        self.inner.backend.commit(&self.name, commit).await
    }

    /// Clears the tables and resets the checkpoint in one transaction; refused for the view
    /// of a partition, whose tables the other partitions share.
    async fn reset(&self, fence: u64) -> Result<Checkpoint, StoreError> {
        if self.partitioned {
            return Err(StoreError::backend(format!(
                "`{}` is one partition of the SQL read model `{}`, whose tables the other \
                 partitions share: it cannot be rebuilt alone; stop every worker, clear the \
                 model (`SqlReadModel::clear`) and re-partition (`Fleet::repartition`)",
                self.name,
                P::NAME
            )));
        }
        let mut model = self.model.lock().await;
        let mut clear = SqlBatch::new(self.inner.backend.dialect());
        P::clear_tables(&mut clear);
        let commit = CheckpointCommit::reset(fence, Cursor::START, P::VERSION, P::FINGERPRINT);
        let reset = self
            .inner
            .backend
            .commit_with(&self.name, commit, clear.take())
            .await?;
        model.reset();
        Ok(reset)
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.inner.backend.dead_letters(&self.name).await
    }
}
