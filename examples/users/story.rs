//! The users story: every step the example prints, written to any `io::Write`, so that
//! `tests/example_users.rs` can check the transcript.

use std::collections::BTreeMap;
use std::error::Error;
use std::io::Write;
use std::sync::Arc;

use cqrs_runtime::claims::{Rebuild, Scope as _};
use cqrs_runtime::prelude::*;
use cqrs_runtime::store::ClaimStore;

use crate::domain::*;

/// What the story leaves behind, for checks that do not depend on its wording.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Each email of the story, normalized, and the user holding it.
    pub holders: BTreeMap<String, String>,
    /// How many of the racing sign-ups registered.
    pub race_won: usize,
    /// How many were told that the email is taken.
    pub race_taken: usize,
}

/// How many users race for one email.
const RACERS: usize = 8;

/// Runs the story against `store`, writing what happens to `out`.
pub async fn run<S>(store: S, out: &mut dyn Write) -> Result<Outcome, Box<dyn Error>>
where
    S: EventStore + ClaimStore + Clone,
{
    // A clash the handler did not see (two sign-ups at the same moment) refuses the append;
    // the repository decides again, and this time the handler sees the holder.
    let users = Arc::new(
        Repository::<User, S>::with_services(store.clone(), Emails::of(store.clone()))
            .retry(RetryPolicy::attempts(3)),
    );
    let register = |user: &str, email: &str| Register {
        user: user.into(),
        name: user.to_uppercase(),
        email: email.into(),
    };
    let change = |user: &str, email: &str| ChangeEmail {
        user: user.into(),
        email: email.into(),
    };

    writeln!(
        out,
        "== Registration: one account per email (trimmed, case ignored)"
    )?;
    for (user, email) in [
        ("ann", "ann@example.com"),
        ("bob", "Bob@Example.com"),
        ("eve", " ANN@example.com "),
        ("eve", "eve-at-example.com"),
    ] {
        match users.execute(register(user, email)).await {
            Ok(_) => writeln!(out, "  {user} registers with {email:?}: registered")?,
            Err(CommandError::Rejected(why)) => {
                writeln!(out, "  {user} registers with {email:?}: rejected, {why}")?
            }
            Err(other) => return Err(other.into()),
        }
    }

    writeln!(out, "== Change of email: the old one is free again")?;
    let changed = users.execute(change("ann", "ann@work.example")).await?;
    writeln!(
        out,
        "  ann changes email to {:?}: changed (version {})",
        changed.state.email, changed.version
    )?;
    let unchanged = users.execute(change("ann", " Ann@Work.example")).await?;
    writeln!(
        out,
        "  ann changes email to \" Ann@Work.example\": unchanged, no event (version {})",
        unchanged.version
    )?;
    users.execute(register("eve", "ann@example.com")).await?;
    writeln!(out, "  eve registers with \"ann@example.com\": registered")?;
    match users.execute(change("bob", "ANN@work.example")).await {
        Ok(_) => writeln!(out, "  bob changes email to \"ANN@work.example\": changed")?,
        Err(CommandError::Rejected(why)) => writeln!(
            out,
            "  bob changes email to \"ANN@work.example\": rejected, {why}"
        )?,
        Err(other) => return Err(other.into()),
    }

    writeln!(
        out,
        "== {RACERS} sign-ups with one email at the same moment"
    )?;
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..RACERS {
        let users = users.clone();
        let email = if i % 2 == 0 {
            "sam@example.com"
        } else {
            " SAM@example.com"
        };
        let cmd = register(&format!("racer-{i}"), email);
        racers.spawn(async move { users.execute(cmd).await });
    }
    let mut outcome = Outcome::default();
    while let Some(done) = racers.join_next().await {
        match done? {
            Ok(_) => outcome.race_won += 1,
            Err(CommandError::Rejected(UserError::EmailTaken { .. })) => outcome.race_taken += 1,
            Err(other) => return Err(other.into()),
        }
    }
    writeln!(
        out,
        "  {} registered, {} rejected: the email sam@example.com is taken",
        outcome.race_won, outcome.race_taken
    )?;

    writeln!(out, "== Claims in the store (scope {})", UserEmail::NAME)?;
    let view = ClaimView::new(store.clone());
    for email in [
        "ann@example.com",
        "ann@work.example",
        "bob@example.com",
        "eve-at-example.com",
        "sam@example.com",
    ] {
        match view.holder::<UserEmail, _>(email).await? {
            Some(holder) => {
                if holder.stream_id.starts_with("racer-") {
                    writeln!(out, "  {email}: the race's winner")?;
                } else {
                    writeln!(
                        out,
                        "  {email}: {} {}",
                        holder.stream_type, holder.stream_id
                    )?;
                }
                outcome
                    .holders
                    .insert(email.to_owned(), holder.stream_id.clone());
            }
            None => writeln!(out, "  {email}: free")?,
        }
    }

    // The claims are derived from the events: a rebuild from the log finds them as they are.
    let check = Rebuild::new()
        .aggregate::<User>()
        .dry_run()
        .run(&store)
        .await?;
    writeln!(
        out,
        "== Rebuilt from the log (dry run): {} claims, {} to add, {} to remove",
        check.claims, check.added, check.removed
    )?;
    Ok(outcome)
}
