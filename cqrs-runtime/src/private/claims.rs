//! What `#[claim(...)]`, `#[release(...)]` and `#[derive(Scope)]` expand to.

pub use crate::claims::{Claimable, Scope, normalize};
pub use crate::store::Claim;
pub use std::borrow::Cow;

/// A scope as an event's claims use it: named once per field (`ScopeRef::of::<S>()`), so that a
/// type that is no scope is one error.
#[derive(Clone, Copy)]
pub struct ScopeRef {
    /// The scope's name.
    pub name: &'static str,
    normalize: fn(&str) -> Cow<'_, str>,
}

impl ScopeRef {
    /// The scope `S`.
    pub const fn of<S: Scope>() -> Self {
        Self {
            name: S::NAME,
            normalize: S::normalize,
        }
    }
}

/// Pushes the claim of `value` in `scope`, if it has one.
#[inline]
pub fn claim_take<V: Claimable + ?Sized>(claims: &mut Vec<Claim>, scope: &ScopeRef, value: &V) {
    if let Some(value) = value.claim_value() {
        let value = (scope.normalize)(&value).into_owned();
        claims.push(Claim::take(scope.name, value));
    }
}

/// Pushes the release of `value` in `scope`, if it has one.
#[inline]
pub fn claim_release<V: Claimable + ?Sized>(claims: &mut Vec<Claim>, scope: &ScopeRef, value: &V) {
    if let Some(value) = value.claim_value() {
        let value = (scope.normalize)(&value).into_owned();
        claims.push(Claim::release(scope.name, value));
    }
}

/// The user's `normalize_with` function, as a scope's normalization.
#[inline]
pub fn normalize_with(f: fn(&str) -> Cow<'_, str>, value: &str) -> Cow<'_, str> {
    f(value)
}

/// Whether every scope of `before` is in `after`.
pub const fn scopes_kept(before: &[&str], after: &[&str]) -> bool {
    let mut i = 0;
    while i < before.len() {
        if !super::name_taken(before[i], after) {
            return false;
        }
        i += 1;
    }
    true
}

/// Whether every scope of `released` is claimed in one of `claimed`.
pub const fn scopes_claimed(released: &[&str], claimed: &[&[&str]]) -> bool {
    let mut i = 0;
    while i < released.len() {
        let mut found = false;
        let mut j = 0;
        while j < claimed.len() {
            if super::name_taken(released[i], claimed[j]) {
                found = true;
            }
            j += 1;
        }
        if !found {
            return false;
        }
        i += 1;
    }
    true
}

/// The scopes of `lists`, each once, in order.
pub fn scopes_of(lists: &[&[&'static str]]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for scope in lists.iter().flat_map(|l| l.iter()) {
        if !out.contains(scope) {
            out.push(scope);
        }
    }
    out
}
