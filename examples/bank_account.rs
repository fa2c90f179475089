//! Placeholder until the runtime lands.
mod domain;
fn main() {
    let _ = domain::MAX_DEPOSIT;
}
