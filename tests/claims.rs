//! Rules across aggregates, through the macros and the repository: one account per email, one
//! loan per book, on the in-memory, SQLite and PostgreSQL stores.
//!
//! ```text
//! cargo test --test claims                       # in memory and SQLite
//! cargo test --features postgres --test claims   # and PostgreSQL
//! ```
//!
//! PostgreSQL tests read `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`),
//! each in a schema of its own; without a server they are skipped with a printed reason, and
//! fail instead when `CI=true`.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cqrs_runtime::claims::{self, Rebuild, Scope as _};
use cqrs_runtime::prelude::*;
use cqrs_runtime::store::{ClaimHolder, ClaimStore, NewEvent, StoreError};
use cqrs_runtime::{Metadata, Repository};
use serde::{Deserialize, Serialize};

// ---- the users ------------------------------------------------------------------------------

/// Emails: one account each, compared trimmed and lowercased.
#[derive(Scope)]
#[scope(name = "user_email", normalize = "trim_lowercase")]
pub struct UserEmail;

/// Registers a user without asking who holds the email: the store alone refuses a clash.
#[derive(Debug, Clone, Command)]
#[command(aggregate = User)]
pub struct Register {
    #[id]
    pub user: String,
    pub email: String,
}

/// Registers a user after asking the claims (a business error for a taken email).
#[derive(Debug, Clone, Command)]
#[command(aggregate = User)]
pub struct SignUp {
    #[id]
    pub user: String,
    pub email: String,
}

/// Changes a user's email, after asking the claims.
#[derive(Debug, Clone, Command)]
#[command(aggregate = User)]
pub struct ChangeEmail {
    #[id]
    pub user: String,
    pub email: String,
}

/// The first version of the registration: the email was called `mail`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "user_signed_up", version = 1)]
pub struct UserSignedUpV1 {
    #[claim(UserEmail)]
    pub mail: String,
}

/// A user registered, holding the email.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "user_signed_up", version = 2, upcast_from = UserSignedUpV1)]
pub struct UserRegistered {
    #[claim(UserEmail)]
    pub email: String,
}

impl From<UserSignedUpV1> for UserRegistered {
    fn from(v1: UserSignedUpV1) -> Self {
        Self { email: v1.mail }
    }
}

/// The user's email changed: the old one is free for others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "email_changed", version = 1)]
pub struct EmailChanged {
    #[release(UserEmail)]
    pub old_email: String,
    #[claim(UserEmail)]
    pub new_email: String,
}

/// A user's events; `user_imported` (which claimed the imported email) is retired.
#[derive(Debug, Clone, PartialEq, EventEnum)]
#[event_enum(retired("user_imported"))]
pub enum UserEvent {
    Registered(UserRegistered),
    EmailChanged(EmailChanged),
}

/// Why a user command was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("the email {email} is taken by user {holder}")]
    EmailTaken { email: String, holder: String },
    #[error("the email lookup failed: {0}")]
    Lookup(String),
}

type Lookup<'a> =
    Pin<Box<dyn Future<Output = Result<Option<ClaimHolder>, StoreError>> + Send + 'a>>;

/// Who holds an email: a [`claims::ClaimView`] of any store, behind one type.
pub trait EmailOwners: Send + Sync {
    /// The holder of `email` (normalized by the scope), if any.
    fn owner<'a>(&'a self, email: &'a str) -> Lookup<'a>;
}

impl<S: ClaimStore> EmailOwners for ClaimView<S> {
    fn owner<'a>(&'a self, email: &'a str) -> Lookup<'a> {
        Box::pin(self.holder::<UserEmail, str>(email))
    }
}

/// The users' services: who holds an email.
pub struct Emails(Arc<dyn EmailOwners>);

impl Emails {
    /// Emails as `store`'s claims say.
    pub fn of<S: ClaimStore>(store: S) -> Self {
        Self(Arc::new(ClaimView::new(store)))
    }

    /// Rejects `email` if a user other than `user` holds it.
    async fn check(&self, email: &str, user: &str) -> Result<(), UserError> {
        match self.0.owner(email).await {
            Ok(Some(holder)) if holder.stream_id != user => Err(UserError::EmailTaken {
                email: UserEmail::normalize(email).into_owned(),
                holder: holder.stream_id,
            }),
            Ok(_) => Ok(()),
            Err(e) => Err(UserError::Lookup(e.to_string())),
        }
    }
}

/// A user, as far as decisions need it.
#[derive(Debug, Default)]
pub struct User {
    pub email: String,
}

#[aggregate(name = "user", id = String, events = UserEvent, error = UserError, services = Emails)]
impl User {
    #[command(create)]
    fn register(&self, cmd: Register) -> Result<UserRegistered, UserError> {
        Ok(UserRegistered { email: cmd.email })
    }

    #[command(create)]
    async fn sign_up(&self, cmd: SignUp, emails: &Emails) -> Result<UserRegistered, UserError> {
        emails.check(&cmd.email, &cmd.user).await?;
        Ok(UserRegistered { email: cmd.email })
    }

    #[command]
    async fn change_email(
        &self,
        cmd: ChangeEmail,
        emails: &Emails,
    ) -> Result<EmailChanged, UserError> {
        emails.check(&cmd.email, &cmd.user).await?;
        Ok(EmailChanged {
            old_email: self.email.clone(),
            new_email: cmd.email,
        })
    }

    #[apply]
    fn registered(&mut self, e: &UserRegistered) {
        self.email = e.email.clone();
    }

    #[apply]
    fn email_changed(&mut self, e: &EmailChanged) {
        self.email = e.new_email.clone();
    }
}

// ---- the library ----------------------------------------------------------------------------

/// Books on loan: one member at a time.
#[derive(Scope)]
#[scope(name = "book_loan")]
pub struct BookLoan;

/// A member borrows a book.
#[derive(Debug, Clone, Command)]
#[command(aggregate = Member)]
pub struct LendBook {
    #[id]
    pub member: String,
    pub book_id: String,
}

/// A member brings a book back.
#[derive(Debug, Clone, Command)]
#[command(aggregate = Member)]
pub struct ReturnBook {
    #[id]
    pub member: String,
    pub book_id: String,
}

/// A book was lent to the member: no one else can borrow it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "book_lent", version = 1)]
pub struct BookLent {
    #[claim(BookLoan)]
    pub book_id: String,
}

/// The member returned the book: free for the next member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "book_returned", version = 1)]
pub struct BookReturned {
    #[release(BookLoan)]
    pub book_id: String,
}

/// A member's events.
#[derive(Debug, Clone, PartialEq, EventEnum)]
pub enum MemberEvent {
    Lent(BookLent),
    Returned(BookReturned),
}

/// Why a library command was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LibraryError {
    #[error("the member has no loan of {0}")]
    NotBorrowed(String),
}

/// A library member: the books they hold.
#[derive(Debug, Default)]
pub struct Member {
    pub loans: BTreeSet<String>,
}

#[aggregate(name = "member", id = String, events = MemberEvent, error = LibraryError)]
impl Member {
    #[command(any)]
    fn lend(&self, cmd: LendBook) -> Result<BookLent, LibraryError> {
        Ok(BookLent {
            book_id: cmd.book_id,
        })
    }

    #[command]
    fn give_back(&self, cmd: ReturnBook) -> Result<BookReturned, LibraryError> {
        if !self.loans.contains(&cmd.book_id) {
            return Err(LibraryError::NotBorrowed(cmd.book_id));
        }
        Ok(BookReturned {
            book_id: cmd.book_id,
        })
    }

    #[apply]
    fn lent(&mut self, e: &BookLent) {
        self.loans.insert(e.book_id.clone());
    }

    #[apply]
    fn returned(&mut self, e: &BookReturned) {
        self.loans.remove(&e.book_id);
    }
}

// ---- helpers --------------------------------------------------------------------------------

/// What every store under test is.
trait Store: EventStore + ClaimStore + Clone {}
impl<S: EventStore + ClaimStore + Clone> Store for S {}

/// Re-decides at once, `n` attempts in all.
fn attempts(n: u32) -> RetryPolicy {
    RetryPolicy::attempts(n).with_backoff(Duration::ZERO, Duration::ZERO)
}

fn users<S: Store>(store: &S, retry: RetryPolicy) -> Arc<Repository<User, S>> {
    Arc::new(Repository::with_services(store.clone(), Emails::of(store.clone())).retry(retry))
}

/// `email` with its letters' case flipped by the bits of `i`, padded with spaces by `i`.
fn spelled(email: &str, i: usize) -> String {
    let cased: String = email
        .chars()
        .enumerate()
        .map(|(k, c)| {
            if (i >> (k % 4)) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    format!("{}{cased}{}", " ".repeat(i % 3), "\t".repeat(i % 2))
}

async fn holder<S: Store>(store: &S, scope: &str, value: &str) -> Option<ClaimHolder> {
    store.holder(scope, value).await.expect("holder")
}

fn held_by(holder: Option<ClaimHolder>) -> Option<(String, String)> {
    holder.map(|h| (h.stream_type, h.stream_id))
}

fn user(id: &str) -> Option<(String, String)> {
    Some(("user".to_owned(), id.to_owned()))
}

fn member(id: &str) -> Option<(String, String)> {
    Some(("member".to_owned(), id.to_owned()))
}

// ---- the scenarios, each run on every store -------------------------------------------------

/// 16 tasks register 16 users with one email, spelled 16 ways, 20 rounds: exactly one wins;
/// the 15 others fail with `CommandError::Claimed` naming the scope, the value and the winner.
async fn racing_registrations<S: Store>(store: S) {
    let repo = users(&store, attempts(2));
    for round in 0..20 {
        let email = format!("racer{round}@example.com");
        let barrier = Arc::new(tokio::sync::Barrier::new(16));
        let mut racers = tokio::task::JoinSet::new();
        for i in 0..16 {
            let (repo, barrier) = (repo.clone(), barrier.clone());
            let cmd = Register {
                user: format!("r{round}-u{i}"),
                email: spelled(&email, i),
            };
            racers.spawn(async move {
                barrier.wait().await;
                (cmd.user.clone(), repo.execute(cmd).await)
            });
        }
        let (mut winners, mut clashes) = (Vec::new(), Vec::new());
        for done in racers.join_all().await {
            match done {
                (id, Ok(committed)) => {
                    assert_eq!(committed.version, 1);
                    winners.push(id);
                }
                (id, Err(CommandError::Claimed(clash))) => clashes.push((id, clash)),
                (id, Err(other)) => panic!("round {round}: {id} failed otherwise: {other}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one wins");
        assert_eq!(clashes.len(), 15, "round {round}");
        let winner = &winners[0];
        for (id, clash) in &clashes {
            assert_eq!(clash.scope, "user_email");
            assert_eq!(clash.value, email, "the value, normalized");
            assert_eq!(
                (clash.stream_type.as_str(), clash.stream_id.as_str()),
                ("user", id.as_str())
            );
            assert_eq!(held_by(Some(clash.holder.clone())), user(winner));
            assert_eq!(clash.attempts, 2, "re-decided once, refused again");
            let message = CommandError::<UserError>::Claimed(clash.clone()).to_string();
            assert!(
                message.contains(&email) && message.contains(winner),
                "{message}"
            );
            // Nothing of the loser was stored.
            let stored = store.read_stream("user", id, 0).await.expect("read");
            assert!(stored.is_empty(), "{id}: {stored:?}");
        }
        assert_eq!(
            held_by(holder(&store, "user_email", &email).await),
            user(winner)
        );
    }
}

/// 16 members borrow one book at the same moment: one gets it, the others are refused.
async fn racing_loans<S: Store>(store: S) {
    let repo = Arc::new(Repository::<Member, _>::new(store.clone()));
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..16 {
        let (repo, barrier) = (repo.clone(), barrier.clone());
        racers.spawn(async move {
            barrier.wait().await;
            let cmd = LendBook {
                member: format!("m-{i}"),
                book_id: "moby-dick".into(),
            };
            (format!("m-{i}"), repo.execute(cmd).await)
        });
    }
    let (mut winners, mut refused) = (Vec::new(), 0);
    for done in racers.join_all().await {
        match done {
            (id, Ok(_)) => winners.push(id),
            (_, Err(CommandError::Claimed(clash))) => {
                assert_eq!(
                    (clash.scope.as_str(), clash.value.as_str()),
                    ("book_loan", "moby-dick")
                );
                refused += 1;
            }
            (id, Err(other)) => panic!("{id} failed otherwise: {other}"),
        }
    }
    assert_eq!((winners.len(), refused), (1, 15));
    assert_eq!(
        held_by(holder(&store, "book_loan", "moby-dick").await),
        member(&winners[0])
    );
}

/// Claim, release, claim by another stream; a change of email frees the old one.
async fn claim_release_reclaim<S: Store>(store: S) {
    let members = Repository::<Member, _>::new(store.clone());
    let lend = |m: &str| LendBook {
        member: m.into(),
        book_id: "dune".into(),
    };
    members.execute(lend("ann")).await.expect("ann borrows");
    match members.execute(lend("bob")).await {
        Err(CommandError::Claimed(clash)) => {
            assert_eq!(held_by(Some(clash.holder)), member("ann"))
        }
        other => panic!("bob borrows a lent book: {other:?}"),
    }
    let back = ReturnBook {
        member: "ann".into(),
        book_id: "dune".into(),
    };
    members.execute(back).await.expect("ann returns");
    assert_eq!(holder(&store, "book_loan", "dune").await, None);
    members.execute(lend("bob")).await.expect("bob borrows");
    assert_eq!(
        held_by(holder(&store, "book_loan", "dune").await),
        member("bob")
    );
    let again = ReturnBook {
        member: "ann".into(),
        book_id: "dune".into(),
    };
    let not_hers = members.execute(again).await.expect_err("ann has no loan");
    assert!(matches!(
        not_hers,
        CommandError::Rejected(LibraryError::NotBorrowed(_))
    ));

    // An email change releases the old value: another user can take it.
    let repo = users(&store, attempts(1));
    let register = |user: &str, email: &str| Register {
        user: user.into(),
        email: email.into(),
    };
    repo.execute(register("u-1", "Ann@Example.com"))
        .await
        .expect("u-1");
    let change = ChangeEmail {
        user: "u-1".into(),
        email: "ann@work.example".into(),
    };
    let changed = repo.execute(change).await.expect("change");
    assert_eq!(changed.state.email, "ann@work.example");
    assert_eq!(holder(&store, "user_email", "ann@example.com").await, None);
    assert_eq!(
        held_by(holder(&store, "user_email", "ann@work.example").await),
        user("u-1")
    );
    repo.execute(register("u-2", " ANN@example.COM"))
        .await
        .expect("the old email is free again");
    assert_eq!(
        held_by(holder(&store, "user_email", "ann@example.com").await),
        user("u-2")
    );
    match repo.execute(register("u-3", "ann@work.example")).await {
        Err(CommandError::Claimed(clash)) => assert_eq!(held_by(Some(clash.holder)), user("u-1")),
        other => panic!("u-3 takes u-1's new email: {other:?}"),
    }
    // A user whose change only recases the email keeps it (release and claim in one event).
    let recase = ChangeEmail {
        user: "u-1".into(),
        email: "ANN@work.example".into(),
    };
    repo.execute(recase).await.expect("recase");
    assert_eq!(
        held_by(holder(&store, "user_email", "ann@work.example").await),
        user("u-1")
    );
}

/// The handler asks the claims first and answers with its own error; a view that says "free"
/// does not break the rule, the store still refuses.
async fn handler_asks_first<S: Store>(store: S) {
    let repo = users(&store, attempts(2));
    let sign_up = |user: &str, email: &str| SignUp {
        user: user.into(),
        email: email.into(),
    };
    repo.execute(sign_up("u-1", "eve@example.com"))
        .await
        .expect("u-1");
    let taken = repo
        .execute(sign_up("u-2", " Eve@Example.com "))
        .await
        .expect_err("taken");
    assert_eq!(
        taken.rejection(),
        Some(&UserError::EmailTaken {
            email: "eve@example.com".into(),
            holder: "u-1".into()
        })
    );
    let change = ChangeEmail {
        user: "u-1".into(),
        email: "EVE@example.com".into(),
    };
    repo.execute(change)
        .await
        .expect("its own email is free for the holder");

    // 16 sign-ups race with the check: one wins, the others are told by the handler (those that
    // lost at the store were re-decided and saw the winner).
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..16 {
        let (repo, barrier) = (repo.clone(), barrier.clone());
        let cmd = sign_up(&format!("s-{i}"), &spelled("sam@example.com", i));
        racers.spawn(async move {
            barrier.wait().await;
            repo.execute(cmd).await
        });
    }
    let mut won = 0;
    for done in racers.join_all().await {
        match done {
            Ok(_) => won += 1,
            Err(CommandError::Rejected(UserError::EmailTaken { email, .. })) => {
                assert_eq!(email, "sam@example.com")
            }
            Err(other) => panic!("a racer failed otherwise: {other}"),
        }
    }
    assert_eq!(won, 1);

    // A view of another (empty) store says every email is free: the store still refuses.
    let blind =
        Repository::<User, _>::with_services(store.clone(), Emails::of(InMemoryEventStore::new()));
    match blind.execute(sign_up("u-3", "eve@example.com")).await {
        Err(CommandError::Claimed(clash)) => {
            assert_eq!(clash.value, "eve@example.com");
            assert_eq!(held_by(Some(clash.holder)), user("u-1"));
        }
        other => panic!("a blind handler's clash: {other:?}"),
    }
}

/// A view answers for one aggregate's stream: a value another stream type holds under the same
/// id is not free for it (one scope may be claimed by several aggregates).
async fn view_answers_for_the_stream<S: Store>(store: S) {
    let held =
        NewEvent::new("admin_created", 1, b"{}".to_vec(), Metadata::new()).with_claims(vec![
            claims::take::<UserEmail, _>("root@example.com").expect("a value"),
        ]);
    store
        .append("admin", "u-1", ExpectedVersion::NoStream, vec![held])
        .await
        .expect("an admin claims");
    let view = ClaimView::new(store.clone());
    let free = |email: &'static str, user: &'static str| {
        let view = view.clone();
        async move {
            view.is_free_for::<UserEmail, User>(email, &user.to_owned())
                .await
                .expect("view")
        }
    };
    assert!(!free(" Root@Example.com", "u-1").await, "held by admin u-1");
    assert!(free("other@example.com", "u-1").await);
    let repo = users(&store, attempts(1));
    let register = Register {
        user: "u-2".into(),
        email: "two@example.com".into(),
    };
    repo.execute(register).await.expect("u-2");
    assert!(free("TWO@example.com", "u-2").await, "its own");
    assert!(!free("two@example.com", "u-1").await);
}

/// A history with a retired event and an old version of the claiming event, then today's
/// events: a rebuild over the log matches the live claims; a dry run changes nothing; claims
/// missing from the table are restored.
async fn rebuild_matches_the_live_claims<S: Store>(store: S) {
    // What older code wrote: a retired `user_imported` and `user_signed_up` version 1.
    let raw = |name: &'static str, version: u32, payload: &str| {
        NewEvent::new(name, version, payload.as_bytes().to_vec(), Metadata::new())
    };
    let v1 = UserSignedUpV1 {
        mail: " Old@Example.com ".into(),
    };
    let v1_claims = Event::claims(&v1);
    assert_eq!(v1_claims[0].value, "old@example.com");
    let payload = serde_json::to_string(&v1).expect("json");
    store
        .append(
            "user",
            "u-old",
            ExpectedVersion::NoStream,
            vec![raw("user_signed_up", 1, &payload).with_claims(v1_claims)],
        )
        .await
        .expect("v1");
    store
        .append(
            "user",
            "u-imported",
            ExpectedVersion::NoStream,
            vec![
                raw("user_imported", 1, r#"{"address":"imp@example.com"}"#).with_claims(vec![
                    claims::take::<UserEmail, _>("Imp@Example.com").expect("a value"),
                ]),
            ],
        )
        .await
        .expect("retired");

    // Today's code on top of it.
    let repo = users(&store, attempts(1));
    let register = |user: &str, email: &str| Register {
        user: user.into(),
        email: email.into(),
    };
    let change = |user: &str, email: &str| ChangeEmail {
        user: user.into(),
        email: email.into(),
    };
    repo.execute(register("u-1", "one@example.com"))
        .await
        .expect("u-1");
    repo.execute(register("u-2", "two@example.com"))
        .await
        .expect("u-2");
    repo.execute(change("u-old", "old@work.example"))
        .await
        .expect("the v1 user changes email");
    repo.execute(change("u-2", "Two@Example.com"))
        .await
        .expect("recased");
    repo.execute(register("u-3", "old@example.com"))
        .await
        .expect("u-old's first email, free again");
    let taken = repo.execute(register("u-4", "imp@example.com")).await;
    assert!(
        matches!(taken, Err(CommandError::Claimed(_))),
        "the retired event's claim holds: {taken:?}"
    );
    let members = Repository::<Member, _>::new(store.clone());
    for (m, book) in [("m-1", "dune"), ("m-1", "emma"), ("m-2", "ulysses")] {
        let lend = LendBook {
            member: m.into(),
            book_id: book.into(),
        };
        members.execute(lend).await.expect("lend");
    }
    let back = ReturnBook {
        member: "m-1".into(),
        book_id: "dune".into(),
    };
    members.execute(back).await.expect("return");

    let values = [
        ("user_email", "old@example.com", user("u-3")),
        ("user_email", "old@work.example", user("u-old")),
        ("user_email", "imp@example.com", user("u-imported")),
        ("user_email", "one@example.com", user("u-1")),
        ("user_email", "two@example.com", user("u-2")),
        ("book_loan", "dune", None),
        ("book_loan", "emma", member("m-1")),
        ("book_loan", "ulysses", member("m-2")),
    ];
    let mut live = Vec::new();
    for (scope, value, expected) in &values {
        let h = holder(&store, scope, value).await;
        assert_eq!(held_by(h.clone()), *expected, "{scope} {value}");
        live.push(h);
    }
    let rebuild = || Rebuild::new().aggregate::<User>().aggregate::<Member>();

    let dry = rebuild().dry_run().run(&store).await.expect("dry run");
    assert!(dry.dry_run);
    assert_eq!(
        (dry.added, dry.removed, dry.clashes),
        (0, 0, 0),
        "the log and the live claims agree: {dry:?}"
    );
    assert_eq!(dry.claims, 7, "{dry:?}");
    assert_eq!(dry.kept, 1, "the retired event's claim: {dry:?}");
    let done = rebuild().run(&store).await.expect("rebuild");
    assert_eq!(
        (done.added, done.removed, done.claims),
        (0, 0, 7),
        "{done:?}"
    );
    for ((scope, value, _), before) in values.iter().zip(&live) {
        assert_eq!(
            holder(&store, scope, value).await,
            *before,
            "{scope} {value}: the same holder, from the same event"
        );
    }

    // Events stored without their claims (as before the claims were declared): a dry run
    // reports the gap and leaves it, a rebuild closes it.
    let late = UserRegistered {
        email: "late@example.com".into(),
    };
    let payload = serde_json::to_string(&late).expect("json");
    store
        .append(
            "user",
            "u-late",
            ExpectedVersion::NoStream,
            vec![raw("user_signed_up", 2, &payload)],
        )
        .await
        .expect("without claims");
    let dry = rebuild().dry_run().run(&store).await.expect("dry run");
    assert_eq!((dry.added, dry.removed, dry.claims), (1, 0, 8), "{dry:?}");
    assert_eq!(holder(&store, "user_email", "late@example.com").await, None);
    let done = rebuild().run(&store).await.expect("rebuild");
    assert_eq!(
        (done.added, done.removed, done.claims),
        (1, 0, 8),
        "{done:?}"
    );
    assert_eq!(
        held_by(holder(&store, "user_email", "late@example.com").await),
        user("u-late")
    );
    let again = rebuild().dry_run().run(&store).await.expect("again");
    assert_eq!((again.added, again.removed), (0, 0), "{again:?}");
}

// ---- the stores -----------------------------------------------------------------------------

/// One test per scenario and store.
macro_rules! on_every_store {
    ($($scenario:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $scenario() {
                    super::$scenario(cqrs_runtime::InMemoryEventStore::new()).await;
                }
            )*
        }

        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $scenario() {
                    let dir = std::env::temp_dir()
                        .join(format!("cqrs-claims-{}", uuid::Uuid::now_v7()));
                    std::fs::create_dir_all(&dir).expect("temp dir");
                    let store = cqrs_runtime::sqlite::SqliteEventStore::open(dir.join("events.sqlite"))
                        .await
                        .expect("open");
                    super::$scenario(store).await;
                    let _ = std::fs::remove_dir_all(&dir);
                }
            )*
        }

        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $scenario() {
                    super::pg::run(super::$scenario).await;
                }
            )*
        }
    };
}

on_every_store!(
    racing_registrations,
    racing_loans,
    claim_release_reclaim,
    handler_asks_first,
    view_answers_for_the_stream,
    rebuild_matches_the_live_claims,
);

#[cfg(feature = "postgres")]
mod pg {
    use std::future::Future;
    use std::time::Duration;

    use cqrs_runtime::postgres::{PostgresConfig, PostgresEventStore, tokio_postgres};

    /// `DATABASE_URL`, or the local default.
    fn url() -> String {
        std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    async fn client(url: &str) -> Result<tokio_postgres::Client, String> {
        let connect = tokio_postgres::connect(url, tokio_postgres::NoTls);
        let (client, connection) = tokio::time::timeout(Duration::from_secs(5), connect)
            .await
            .map_err(|_| "timed out after 5 s".to_owned())?
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Runs `scenario` on a store in a schema of its own, dropped afterwards (also when the
    /// scenario fails); skips without a server unless `CI=true`.
    pub async fn run<F, Fut>(scenario: F)
    where
        F: FnOnce(PostgresEventStore) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let url = url();
        let admin = match client(&url).await {
            Ok(client) => client,
            Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("PostgreSQL is unreachable at {url} and CI=true: {e}")
            }
            Err(e) => {
                eprintln!("skipping a PostgreSQL test: cannot connect to {url}: {e}");
                return;
            }
        };
        let schema = format!("cqrs_claims_{}", uuid::Uuid::now_v7().simple());
        let store = PostgresConfig::new(&url)
            .expect("DATABASE_URL parses")
            .schema(&schema)
            .expect("valid schema name")
            .open()
            .await
            .expect("connect and migrate");
        let outcome = tokio::spawn(scenario(store)).await;
        let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
        let _ = admin.batch_execute(&drop).await;
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}
