//! Claims: values an event holds exclusively in a named scope (an email in `user_email`, a book
//! in `book_loan`), taken and given back in the same transaction as the events.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;

use super::{Cursor, StoreError, StoredEvent};

/// What an event does to a value in a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClaimAction {
    /// Takes the value for the event's stream; refused if another stream holds it.
    Claim,
    /// Gives the value back, if the event's stream holds it.
    Release,
}

/// One claim or release an appended event carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Claim {
    /// The scope (a `Scope`'s name).
    pub scope: Cow<'static, str>,
    /// The value, normalized as the scope declares.
    pub value: String,
    /// Claim or release.
    pub action: ClaimAction,
}

impl Claim {
    /// Takes (claims) `value` in `scope`.
    pub fn take(scope: impl Into<Cow<'static, str>>, value: impl Into<String>) -> Self {
        Self {
            scope: scope.into(),
            value: value.into(),
            action: ClaimAction::Claim,
        }
    }

    /// Releases `value` in `scope`.
    pub fn release(scope: impl Into<Cow<'static, str>>, value: impl Into<String>) -> Self {
        Self {
            scope: scope.into(),
            value: value.into(),
            action: ClaimAction::Release,
        }
    }
}

/// Who holds a claimed value: a stream, since the event at `position`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClaimHolder {
    /// The holder's stream type.
    pub stream_type: String,
    /// The holder's stream id.
    pub stream_id: String,
    /// The global position of the event that claimed it.
    pub position: u64,
}

/// The claims of a store: who holds a value, and a rebuild from the log.
///
/// Appends enforce claims on every backend ([`EventStore::append`](super::EventStore::append)
/// applies each [`NewEvent`](super::NewEvent)'s claims in its transaction); this trait reads
/// them, and recomputes them from the events ([`crate::claims::Rebuild`]).
pub trait ClaimStore: Send + Sync + 'static {
    /// The holder of `value` in `scope`, if it is claimed.
    fn holder(
        &self,
        scope: &str,
        value: &str,
    ) -> impl Future<Output = Result<Option<ClaimHolder>, StoreError>> + Send;

    /// Runs `rebuild` over the whole log and applies its changes to the claims of its scopes.
    ///
    /// The contract: feed every event, in log order, to [`ClaimRebuild::feed`] (the bulk
    /// without holding anything up); then, while appends that carry claims are held off,
    /// feed the rest of the log, read the current claims of
    /// [`ClaimRebuild::scopes`], and apply what [`ClaimRebuild::finish`] returns in one
    /// transaction (nothing for a [dry run](ClaimRebuild::is_dry_run)). Appends that carry
    /// no claims go on throughout.
    fn rebuild_claims(
        &self,
        rebuild: ClaimRebuild,
    ) -> impl Future<Output = Result<ClaimsRebuilt, StoreError>> + Send;
}

/// What a claims rebuild makes of one stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Derived {
    /// An event of a rebuilt stream type: these are its claims and releases (maybe none).
    Claims(Vec<Claim>),
    /// An event of a rebuilt stream type that decodes to nothing (a retired type): what it
    /// holds cannot be derived, so the claims it took are kept as they are.
    Retired,
    /// An event of another stream type: passed over.
    Other,
}

/// The function a rebuild derives claims with: decodes a stored event with the user's types.
pub type Derive = Box<dyn FnMut(&StoredEvent) -> Result<Derived, StoreError> + Send>;

/// What a claims rebuild found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimsRebuilt {
    /// The events read.
    pub events: u64,
    /// The claims of the rebuilt scopes held at the end.
    pub claims: u64,
    /// Claims refused on the way because another stream held the value (the earlier holder
    /// keeps it); non-zero only for a log written without claim checks.
    pub clashes: u64,
    /// Claims kept as they were: taken by retired events, or held by stream types the rebuild
    /// does not derive.
    pub kept: u64,
    /// Claims written (missing or held by another stream before).
    pub added: u64,
    /// Claims removed (held before, not derived from the log).
    pub removed: u64,
    /// Whether the changes were only computed, not applied.
    pub dry_run: bool,
}

/// The changes a rebuild makes to a store's claims ([`ClaimRebuild::finish`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimChanges {
    /// Claims to write (insert, or replace the holder): scope, value, holder.
    pub upsert: Vec<(String, String, ClaimHolder)>,
    /// Claims to delete: scope, value.
    pub remove: Vec<(String, String)>,
    /// The report, counts filled in.
    pub report: ClaimsRebuilt,
}

/// A rebuild of claims in progress, driven by a [`ClaimStore`]: built by
/// [`crate::claims::Rebuild`], fed the log by the store.
pub struct ClaimRebuild {
    derive: Derive,
    scopes: Vec<String>,
    stream_types: Vec<String>,
    held: HashMap<(String, String), ClaimHolder>,
    retired: std::collections::HashSet<u64>,
    cursor: Cursor,
    report: ClaimsRebuilt,
}

impl std::fmt::Debug for ClaimRebuild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimRebuild")
            .field("scopes", &self.scopes)
            .field("stream_types", &self.stream_types)
            .field("cursor", &self.cursor)
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl ClaimRebuild {
    /// A rebuild of the claims of `scopes`, derived by `derive` from the events of
    /// `stream_types`.
    pub fn new(derive: Derive, scopes: Vec<String>, stream_types: Vec<String>) -> Self {
        Self {
            derive,
            scopes,
            stream_types,
            held: HashMap::new(),
            retired: Default::default(),
            cursor: Cursor::START,
            report: ClaimsRebuilt::default(),
        }
    }

    /// Computes the changes without applying them.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.report.dry_run = dry_run;
        self
    }

    /// Whether the changes are only computed.
    pub fn is_dry_run(&self) -> bool {
        self.report.dry_run
    }

    /// The scopes rebuilt.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The cursor of the last event fed: where the log goes on.
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// Takes the next event of the log (at `cursor`), in order.
    pub fn feed(&mut self, cursor: Cursor, event: &StoredEvent) -> Result<(), StoreError> {
        self.cursor = cursor;
        self.report.events += 1;
        let claims = match (self.derive)(event)? {
            Derived::Claims(claims) => claims,
            Derived::Retired => {
                self.retired.insert(event.global_position);
                return Ok(());
            }
            Derived::Other => return Ok(()),
        };
        // The event's net effect, as the store applies it: a value given back and taken again
        // by one event stays with its holder.
        for (_, claim) in net(claims.iter().map(|claim| (0, claim))) {
            if !self.scopes.iter().any(|s| *s == claim.scope) {
                continue;
            }
            let key = (claim.scope.to_string(), claim.value.clone());
            let mine = |h: &ClaimHolder| same_stream(h, &event.stream_type, &event.stream_id);
            match claim.action {
                ClaimAction::Claim => match self.held.get(&key) {
                    Some(holder) if !mine(holder) => self.report.clashes += 1,
                    Some(_) => {}
                    None => {
                        self.held.insert(
                            key,
                            ClaimHolder {
                                stream_type: event.stream_type.clone(),
                                stream_id: event.stream_id.clone(),
                                position: event.global_position,
                            },
                        );
                    }
                },
                ClaimAction::Release => {
                    if self.held.get(&key).is_some_and(mine) {
                        self.held.remove(&key);
                    }
                }
            }
        }
        Ok(())
    }

    /// The changes that turn `live` (the store's claims of [`scopes`](Self::scopes), read
    /// while claiming appends are held off, after the last event was fed) into the claims
    /// derived from the log. Claims held by stream types the rebuild does not derive, and
    /// claims taken by retired events, are kept.
    pub fn finish(self, live: Vec<(String, String, ClaimHolder)>) -> ClaimChanges {
        let Self {
            stream_types,
            mut held,
            retired,
            mut report,
            ..
        } = self;
        for (scope, value, holder) in &live {
            let derived = stream_types.contains(&holder.stream_type);
            if derived && !retired.contains(&holder.position) {
                continue;
            }
            let key = (scope.clone(), value.clone());
            match held.get(&key) {
                Some(mine) if same_stream(mine, &holder.stream_type, &holder.stream_id) => {}
                Some(_) if derived => continue,
                Some(_) => report.clashes += 1,
                None => {}
            }
            report.kept += 1;
            held.insert(key, holder.clone());
        }
        let mut live: HashMap<(String, String), ClaimHolder> = live
            .into_iter()
            .map(|(scope, value, holder)| ((scope, value), holder))
            .collect();
        let mut upsert: Vec<(String, String, ClaimHolder)> = Vec::new();
        report.claims = held.len() as u64;
        // A value the log gives to the stream that holds it is right as it is: the store keeps
        // the position of the claim that took it first, where one append gives a value back and
        // takes it again, or takes it twice, a replay may name a later event.
        for (key, holder) in held {
            match live.remove(&key) {
                Some(before) if same_stream(&before, &holder.stream_type, &holder.stream_id) => {}
                _ => upsert.push((key.0, key.1, holder)),
            }
        }
        let mut remove: Vec<(String, String)> = live.into_keys().collect();
        upsert.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        remove.sort();
        report.added = upsert.len() as u64;
        report.removed = remove.len() as u64;
        ClaimChanges {
            upsert,
            remove,
            report,
        }
    }
}

/// Whether `holder` is the stream `stream_type`/`stream_id`.
fn same_stream(holder: &ClaimHolder, stream_type: &str, stream_id: &str) -> bool {
    holder.stream_type == stream_type && holder.stream_id == stream_id
}

/// The net effect of a batch's claims, per (scope, value), in first-seen order: the last
/// action on a value wins. `event` is the index of the event whose action it is.
pub(crate) fn net<'a>(
    claims: impl IntoIterator<Item = (usize, &'a Claim)>,
) -> Vec<(usize, &'a Claim)> {
    let mut order: Vec<(usize, &'a Claim)> = Vec::new();
    let mut index: HashMap<(&str, &str), usize> = HashMap::new();
    for (event, claim) in claims {
        let key = (claim.scope.as_ref(), claim.value.as_str());
        match index.get(&key) {
            Some(&i) => {
                if let Some(slot) = order.get_mut(i) {
                    *slot = (event, claim);
                }
            }
            None => {
                index.insert(key, order.len());
                order.push((event, claim));
            }
        }
    }
    order
}

/// The refusal of a claim held by `holder`.
pub(crate) fn claimed(claim: &Claim, holder: ClaimHolder) -> StoreError {
    StoreError::Claimed {
        scope: claim.scope.to_string(),
        value: claim.value.clone(),
        holder,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Metadata;

    /// A stored event of the stream `user`/`id` at `position` that carries `claims`.
    fn stored(position: u64, id: &str, claims: &[Claim]) -> StoredEvent {
        StoredEvent {
            global_position: position,
            stream_type: "user".into(),
            stream_id: id.into(),
            stream_version: position,
            event_id: uuid::Uuid::now_v7(),
            event_type: "e".into(),
            event_version: 1,
            payload: serde_json::to_vec(
                &claims
                    .iter()
                    .map(|c| {
                        (
                            c.scope.to_string(),
                            c.value.clone(),
                            c.action == ClaimAction::Claim,
                        )
                    })
                    .collect::<Vec<_>>(),
            )
            .unwrap_or_default(),
            metadata: Metadata::new(),
            recorded_at: crate::store::now(),
        }
    }

    /// A rebuild of the scope `s` over `user` streams whose events carry the claims encoded by
    /// [`stored`].
    fn rebuild() -> ClaimRebuild {
        let derive: Derive = Box::new(|event: &StoredEvent| {
            let claims: Vec<(String, String, bool)> =
                serde_json::from_slice(&event.payload).unwrap_or_default();
            Ok(Derived::Claims(
                claims
                    .into_iter()
                    .map(|(scope, value, take)| {
                        if take {
                            Claim::take(scope, value)
                        } else {
                            Claim::release(scope, value)
                        }
                    })
                    .collect(),
            ))
        });
        ClaimRebuild::new(derive, vec!["s".into()], vec!["user".into()])
    }

    fn holder(id: &str, position: u64) -> ClaimHolder {
        ClaimHolder {
            stream_type: "user".into(),
            stream_id: id.into(),
            position,
        }
    }

    /// What a store holds after the appends of `batches` (each one append of events at
    /// consecutive positions from 1): the store's own rules, in memory.
    fn applied(
        batches: &[(&str, Vec<Vec<Claim>>)],
    ) -> (Vec<StoredEvent>, Vec<(String, String, ClaimHolder)>) {
        let mut log = Vec::new();
        let mut held: HashMap<(String, String), ClaimHolder> = HashMap::new();
        for (id, events) in batches {
            let first = log.len() as u64 + 1;
            let batch = events
                .iter()
                .enumerate()
                .flat_map(|(i, e)| e.iter().map(move |c| (i, c)));
            for (i, claim) in net(batch) {
                let key = (claim.scope.to_string(), claim.value.clone());
                match claim.action {
                    ClaimAction::Claim => {
                        held.entry(key)
                            .or_insert_with(|| holder(id, first + i as u64));
                    }
                    ClaimAction::Release => {
                        if held.get(&key).is_some_and(|h| h.stream_id == *id) {
                            held.remove(&key);
                        }
                    }
                }
            }
            for claims in events {
                log.push(stored(log.len() as u64 + 1, id, claims));
            }
        }
        let mut live: Vec<_> = held.into_iter().map(|((s, v), h)| (s, v, h)).collect();
        live.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        (log, live)
    }

    /// A rebuild of a log whose claims the store applied finds nothing to change.
    fn assert_agrees(batches: &[(&str, Vec<Vec<Claim>>)]) {
        let (log, live) = applied(batches);
        let mut rebuild = rebuild();
        for event in &log {
            let cursor = Cursor {
                tx: 0,
                position: event.global_position,
            };
            rebuild.feed(cursor, event).expect("feed");
        }
        let changes = rebuild.finish(live.clone());
        assert_eq!(
            (changes.upsert, changes.remove, changes.report.clashes),
            (Vec::new(), Vec::new(), 0),
            "live: {live:?}"
        );
        assert_eq!(changes.report.claims, live.len() as u64);
    }

    #[test]
    fn a_rebuild_agrees_with_a_store_after_a_release_and_claim_of_one_value() {
        let (take, give) = (
            |v: &str| Claim::take("s", v),
            |v: &str| Claim::release("s", v),
        );
        // One event gives back the value it takes again (an email changed only in case).
        assert_agrees(&[
            ("a", vec![vec![take("x")]]),
            ("a", vec![vec![give("x"), take("x")]]),
        ]);
        // The same over two events of one append.
        assert_agrees(&[
            ("a", vec![vec![take("x")]]),
            ("a", vec![vec![give("x")], vec![take("x")]]),
        ]);
        // Two events of one append take one value.
        assert_agrees(&[("a", vec![vec![take("x")], vec![take("x")]])]);
        // An event takes a value another stream holds and gives it back: nothing happens.
        assert_agrees(&[
            ("a", vec![vec![take("x")]]),
            ("b", vec![vec![take("x"), give("x")]]),
        ]);
    }

    #[test]
    fn the_last_action_on_a_value_wins() {
        let a = Claim::take("s", "x");
        let b = Claim::release("s", "x");
        let c = Claim::take("s", "y");
        let net = net([(0, &a), (0, &c), (1, &b)]);
        assert_eq!(net, vec![(1, &b), (0, &c)]);
    }
}
